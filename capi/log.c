#include "capi.h"

#define NM_LOG_STACK_FIELDS 16

void nm_call_log(net_mesh_log_fn fn, uintptr_t user_data, int level, const char *buf,
                 const uint32_t *offs, size_t nfields) {
    net_mesh_log_field stack[NM_LOG_STACK_FIELDS];
    net_mesh_log_field *fields = stack;
    if (nfields > NM_LOG_STACK_FIELDS) {
        fields = malloc(nfields * sizeof *fields);
        if (!fields) nfields = 0, fields = stack;
    }
    for (size_t i = 0; i < nfields; i++) {
        fields[i].key = buf + offs[1 + 2 * i];
        fields[i].value = buf + offs[2 + 2 * i];
    }
    fn((void *)user_data, level, buf + offs[0], nfields ? fields : NULL, nfields);
    if (fields != stack) free(fields);
}

void nm_call_finalize(net_mesh_finalize_fn fn, uintptr_t user_data) {
    if (fn) fn((void *)user_data);
}
