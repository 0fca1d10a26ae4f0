/* kiln's native file-system helper (fswalk.c): a directory read with every entry's lstat, a small file read. */
#ifndef KILN_FSWALK_H
#define KILN_FSWALK_H
#include <node_api.h>

napi_value read_directory(napi_env env, napi_callback_info info);
napi_value read_file_into(napi_env env, napi_callback_info info);
napi_value cold_reads_count(napi_env env, napi_callback_info info);

#endif
