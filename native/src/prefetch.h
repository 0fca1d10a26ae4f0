/* kiln's read-ahead of small files (prefetch.c): paths handed to a background thread that asks the
 * kernel to read them into the page cache. */
#ifndef KILN_PREFETCH_H
#define KILN_PREFETCH_H
#include <node_api.h>

napi_value prefetch_files(napi_env env, napi_callback_info info);
napi_value prefetch_stats(napi_env env, napi_callback_info info);

#endif
