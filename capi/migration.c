/* C side of the migration exports: option initialiser and the trampolines
 * through which Go calls the host's progress, completion and output-sink
 * callbacks (Go cannot call a C function pointer itself). */
#include <string.h>
#include "capi.h"

void net_mesh_migration_options_init(net_mesh_migration_options *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->size = sizeof *o;
    o->transport_identity = 1;
}

void nm_call_progress(net_mesh_migration_progress_fn fn, uintptr_t ud, int phase,
                      uint64_t bytes_moved, uint64_t total_bytes, uint64_t chunks_moved,
                      uint64_t total_chunks) {
    fn((void *)ud, phase, bytes_moved, total_bytes, chunks_moved, total_chunks);
}

void nm_call_complete(net_mesh_migration_complete_fn fn, uintptr_t ud, int status) {
    fn((void *)ud, status);
}

void nm_call_sink(net_mesh_output_sink_fn fn, uintptr_t ud, uint64_t origin,
                  const net_mesh_event_list *outputs) {
    fn((void *)ud, origin, outputs);
}
