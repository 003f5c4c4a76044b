/* tests/c/pyobj.c with the CPython 3.12+ int layout (lv_tag). */
#define NM_TEST_TAG 1
#include "pyobj.c"
