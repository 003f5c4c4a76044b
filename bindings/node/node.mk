# The Node.js package net-mesh (N-API addon in C + JS). Included by the
# top-level Makefile; paths are relative to the repository root.
#
# The addon is compiled directly against the N-API headers (no node-gyp, no
# download): NODE_INCLUDE defaults to /usr/include/node. It links with rpath
# $ORIGIN against a copy of libnetmesh.so beside it, and with -z nodelete so
# a worker thread that unloads the addon never unmaps code still running.

NODE         ?= node
NODE_DIR     := bindings/node
NODE_BUILD   := $(NODE_DIR)/build
NODE_ADDON   := $(NODE_BUILD)/net_mesh.node
NODE_LIB     := $(NODE_BUILD)/libnetmesh.so
NODE_INCLUDE ?= $(firstword $(wildcard /usr/include/node /usr/local/include/node) \
                  $(NODE_DIR)/node_modules/node-api-headers/include)
NODE_CFLAGS  ?= -O2 -g
NODE_WARN    := -std=c11 -Wall -Wextra -Werror -Wno-unused-parameter -Wno-unused-function
NODE_TESTFLAGS ?=
NPM          ?= npm
# The dev tools pinned in package.json/package-lock.json (TypeScript and
# Node's type declarations), installed by `npm ci`; npm keeps its copy of the
# lock file in node_modules, which serves as the stamp.
NODE_DEV     := $(NODE_DIR)/node_modules/.package-lock.json

.PHONY: node test-node typecheck-node bench-node

$(NODE_LIB): $(LIB)
	@mkdir -p $(NODE_BUILD)
	cp $(LIB) $@.tmp && mv -f $@.tmp $@  # a new inode: processes running the old copy keep it intact

$(NODE_ADDON): $(NODE_DIR)/src/addon.c include/net_mesh.h $(NODE_LIB)
	@test -f $(NODE_INCLUDE)/node_api.h || { echo "node_api.h not found under NODE_INCLUDE=$(NODE_INCLUDE)"; exit 1; }
	$(CC) $(NODE_WARN) $(NODE_CFLAGS) -D_GNU_SOURCE -fPIC -shared -I$(NODE_INCLUDE) -Iinclude \
	  -o $@ $< -L$(NODE_BUILD) -lnetmesh -Wl,-rpath,'$$ORIGIN' -Wl,-z,nodelete -lpthread

node: $(NODE_ADDON) ## build the Node.js addon bindings/node/build/net_mesh.node

$(NODE_DEV): $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	cd $(NODE_DIR) && $(NPM) ci --no-audit --no-fund
	@touch $@

typecheck-node: $(NODE_DEV) ## tsc --noEmit of test/types/api.ts against index.d.ts (misuses must fail)
	cd $(NODE_DIR) && node_modules/.bin/tsc --noEmit -p test/types

test-node: node python typecheck-node ## Node binding tests: index.d.ts type check, then node --test (the cross-language tests use the Python package)
	cd $(NODE_DIR) && $(NODE) --test $(NODE_TESTFLAGS) test/*.test.js

bench-node: node ## Node deliver vs floor; writes bindings/node/bench/RESULTS-node.md
	$(NODE) $(NODE_DIR)/bench/bench_deliver.js --out $(NODE_DIR)/bench/RESULTS-node.md

.PHONY: demo-crosslang demo-node
demo-crosslang: $(LIB) python node ## cross-language demo: a counter migrates live Python → Node.js → Python
	$(NODE) examples/crosslang/demo.js

demo-node: node ## Node.js demo: a JS counter migrates live between two nodes in one process
	$(NODE) examples/node/demo.js
