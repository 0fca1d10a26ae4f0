/*
 * kiln's native addon (Node-API, so one build serves every Node.js line): the file-system helper
 * (fswalk.c), the read-ahead of small files (prefetch.c) and the block deflater (deflate.c). Loaded by the main thread and by each gzip worker
 * thread; each environment gets its own deflater state.
 */
#include <node_api.h>

#include "deflate.h"
#include "fswalk.h"
#include "prefetch.h"

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"readDirectory", NULL, read_directory, NULL, NULL, NULL, napi_enumerable, NULL},
      {"readFileInto", NULL, read_file_into, NULL, NULL, NULL, napi_enumerable, NULL},
      {"coldReads", NULL, cold_reads_count, NULL, NULL, NULL, napi_enumerable, NULL},
      {"prefetchFiles", NULL, prefetch_files, NULL, NULL, NULL, napi_enumerable, NULL},
      {"prefetchStats", NULL, prefetch_stats, NULL, NULL, NULL, napi_enumerable, NULL},
      {"deflateBlock", NULL, deflate_block, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (deflate_init_state(env) != 0) {
    napi_throw_error(env, NULL, "kiln_native: out of memory");
    return NULL;
  }
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
