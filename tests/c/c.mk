# The C ABI: the shared library, the C test suite, soak, benchmark, install.
# Included by the top-level Makefile; paths are relative to the repository root.

CC       ?= cc
CXX      ?= c++
CFLAGS_C ?= -O2 -g
PREFIX   ?= /usr/local
SOAK_N   ?= 1000000
TEST_SOAK_N ?= 20000
CTEST_DIR := $(BUILD)/ctests
LIB_SRCS := $(shell find capi core -name '*.go' -not -name '*_test.go' 2>/dev/null) \
            $(wildcard capi/*.c capi/*.h) include/net_mesh.h go.mod go.sum
C_WARN   := -std=c11 -Wall -Wextra -pedantic -Werror
C_LINK   := -L$(BUILD) -lnetmesh -Wl,-rpath,$(abspath $(BUILD)) -lpthread
C_TESTS  := basic badinput runtime threads lease batch pyobj pyobj_tag pynative soak migrate migproc batchmig
C_TEST_BINS := $(addprefix $(CTEST_DIR)/,$(C_TESTS))

lib: $(LIB) ## build build/libnetmesh.so (cgo's header lands in build/, never shipped)

# cgo writes libnetmesh.h next to the library; it is an artifact, not the contract.
$(LIB): $(LIB_SRCS)
	@mkdir -p $(BUILD)
	$(GO) build $(GOFLAGS) -buildmode=c-shared -o $@ ./capi

$(CTEST_DIR)/pyobj_tag: tests/c/pyobj.c  # included by pyobj_tag.c

$(CTEST_DIR)/%: tests/c/%.c tests/c/harness.h tests/c/daemons.h tests/c/pyfake.h include/net_mesh.h $(LIB)
	@mkdir -p $(CTEST_DIR)
	$(CC) $(C_WARN) $(CFLAGS_C) -D_GNU_SOURCE -Iinclude -Itests/c -o $@ $< $(C_LINK)

test-c: $(LIB) $(C_TEST_BINS) ## C ABI suite: header checks, exported symbols, C tests, valgrind
	tests/c/check_header.sh "$(CC)" "$(CXX)"
	tests/c/check_symbols.sh $(LIB) include/net_mesh.h
	@set -e; for t in basic badinput runtime threads lease batch pyobj pyobj_tag pynative migrate migproc batchmig; do \
	  echo "== $$t"; $(CTEST_DIR)/$$t; done
	@echo "== soak (N=$(TEST_SOAK_N))"; $(CTEST_DIR)/soak $(TEST_SOAK_N)
	tests/c/valgrind.sh $(CTEST_DIR) basic badinput runtime threads lease batch pyobj pyobj_tag pynative
	VALGRIND_EXTRA=--undef-value-errors=no tests/c/valgrind.sh $(CTEST_DIR) migrate migproc batchmig
	$(MAKE) --no-print-directory test-install

soak: $(CTEST_DIR)/soak ## 10^6 spawn/stop and deliver cycles through the ABI, start/end RSS
	$(CTEST_DIR)/soak $(SOAK_N)

bench-c: $(CTEST_DIR)/bench ## C -> deliver -> C echo daemon -> back, next to the floor
	$(CTEST_DIR)/bench

$(CTEST_DIR)/bench: tests/c/bench.c include/net_mesh.h $(LIB)
	@mkdir -p $(CTEST_DIR)
	$(CC) $(C_WARN) -O2 -D_GNU_SOURCE -Iinclude -o $@ $< $(C_LINK)

# The example builds against an installed copy exactly as a user would.
test-install: ## install into a temp PREFIX and build examples/c with pkg-config
	@set -e; tmp=$$(mktemp -d); \
	$(MAKE) --no-print-directory install PREFIX=$$tmp >/dev/null; \
	PKG_CONFIG_PATH=$$tmp/lib/pkgconfig $(CC) $(C_WARN) examples/c/counter.c $$(PKG_CONFIG_PATH=$$tmp/lib/pkgconfig pkg-config --cflags --libs netmesh) -o $$tmp/counter; \
	$$tmp/counter | tail -1 | grep -q 'count 6' && echo "install: pkg-config build of examples/c/counter.c runs (count 6 after restore)"; \
	rm -rf $$tmp

install: $(LIB) ## install lib, header and netmesh.pc under PREFIX (default /usr/local)
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 0755 $(LIB) $(DESTDIR)$(PREFIX)/lib/libnetmesh.so
	install -m 0644 include/net_mesh.h $(DESTDIR)$(PREFIX)/include/net_mesh.h
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|'"$$(sed -n 's/^#define NET_MESH_VERSION_STRING "\(.*\)"/\1/p' include/net_mesh.h)"'|g' \
	  capi/netmesh.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/netmesh.pc
