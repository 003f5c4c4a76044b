# The Python package net_mesh (ctypes, nothing compiled). Included by the
# top-level Makefile; paths are relative to the repository root.

PYTHON   ?= python3
PY_DIR   := bindings/python
PY_LIB   := $(PY_DIR)/net_mesh/libnetmesh.so
PY_TESTFLAGS ?= -q

.PHONY: python test-python test-python-versions bench-python demo-python

$(PY_LIB): $(LIB)
	cp $(LIB) $@.tmp && mv -f $@.tmp $@  # a new inode: processes running the old copy keep it intact

# pytest is installed here because CI is a fresh clone (PEP 668 systems need
# --break-system-packages; a venv works too: make PYTHON=.venv/bin/python).
python: $(PY_LIB) ## copy libnetmesh.so next to the Python package; ensure pytest
	@$(PYTHON) -m pytest --version >/dev/null 2>&1 || \
	  $(PYTHON) -m pip install -q pytest 2>/dev/null || \
	  $(PYTHON) -m pip install -q --break-system-packages pytest

test-python: python ## Python binding tests (pytest)
	cd $(PY_DIR) && $(PYTHON) -m pytest $(PY_TESTFLAGS) tests

# the tests of deliver's fast paths (object layouts differ between versions)
PY_LAYOUT_TESTS := tests/test_native.py tests/test_pyobj.py tests/test_hostdeliver.py tests/test_fastpath.py tests/test_deliver_many.py

test-python-versions: python ## deliver's fast-path tests under every other CPython >= 3.9 found (pyenv, python3.N)
	cd $(PY_DIR) && PYTHON=$(PYTHON) bash tests/other_pythons.sh $(PY_LAYOUT_TESTS)

bench-python: python ## Python deliver vs floor; writes bindings/python/bench/RESULTS-python.md
	$(PYTHON) $(PY_DIR)/bench/bench_deliver.py --out $(PY_DIR)/bench/RESULTS-python.md

demo-python: python ## Python demo: a counter daemon migrates live between two Python processes
	PYTHONPATH=$(PY_DIR)$${PYTHONPATH:+:$$PYTHONPATH} $(PYTHON) examples/python/demo.py
