/* kiln's block deflater (deflate.c): libdeflate, made to write one block of a gzip member. */
#ifndef KILN_DEFLATE_H
#define KILN_DEFLATE_H
#include <node_api.h>

/* Sets the environment's state (compressors, scratch); 0, or -1 when out of memory. */
int deflate_init_state(napi_env env);
napi_value deflate_block(napi_env env, napi_callback_info info);

#endif
