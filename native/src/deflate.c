/*
 * kiln's block deflater (Node-API): one block of a pigz-style gzip stream (src/layer/gzip-block.ts),
 * raw-deflated by libdeflate. libdeflate compresses at the same ratio as zlib for about half its
 * CPU, but only whole buffers: its output always ends with a final block (BFINAL 1) and takes no
 * dictionary. A block in the middle of a gzip member must not be final, and must end on a byte
 * boundary so that the next block can simply follow it. So the output is walked block by block
 * (deflate_walk.c), the last block's BFINAL bit cleared, and an empty stored block appended (what
 * zlib's sync flush writes): the block then ends byte-aligned and not final, as zlib's did.
 *
 * The bytes depend only on the input, the level and libdeflate's version (every block is compressed
 * alone, with no dictionary), never on the thread that compresses it.
 */
#include <libdeflate.h>
#include <node_api.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "deflate.h"
#include "deflate_walk.h"

#define MAX_LEVEL 12

/* Per Node.js environment (the main thread and each worker): a compressor per level and a scratch
 * output buffer, kept between calls (a level-2 compressor is ~0.5 MB to set up). */
struct deflate_state {
  struct libdeflate_compressor *compressors[MAX_LEVEL + 1];
  uint8_t *scratch;
  size_t scratch_cap;
};

static struct deflate_state *state_of(napi_env env) {
  struct deflate_state *s = NULL;
  if (napi_get_instance_data(env, (void **)&s) != napi_ok) return NULL;
  return s;
}

static void free_state(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  struct deflate_state *s = data;
  for (int i = 0; i <= MAX_LEVEL; i++)
    if (s->compressors[i] != NULL) libdeflate_free_compressor(s->compressors[i]);
  free(s->scratch);
  free(s);
}

int deflate_init_state(napi_env env) {
  struct deflate_state *s = calloc(1, sizeof *s);
  if (s == NULL) return -1;
  if (napi_set_instance_data(env, s, free_state, NULL) != napi_ok) {
    free(s);
    return -1;
  }
  return 0;
}

static napi_value throw_error(napi_env env, const char *message) {
  napi_throw_error(env, "KILN_DEFLATE", message);
  return NULL;
}

/* deflateBlock(input: Uint8Array, level: number): Buffer — raw deflate of input, not final, ending
 * on a byte boundary. Throws on a bad argument or when the output cannot be walked (a bug). */
napi_value deflate_block(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_typedarray_type type;
  size_t length = 0;
  void *data = NULL;
  int32_t level = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
      napi_get_typedarray_info(env, argv[0], &type, &length, &data, NULL, NULL) != napi_ok ||
      type != napi_uint8_array || napi_get_value_int32(env, argv[1], &level) != napi_ok || level < 0 ||
      level > MAX_LEVEL)
    return throw_error(env, "deflateBlock(input: Uint8Array, level: 0-12)");
  struct deflate_state *s = state_of(env);
  if (s == NULL) return throw_error(env, "deflateBlock: the addon's state is missing");
  if (s->compressors[level] == NULL && (s->compressors[level] = libdeflate_alloc_compressor(level)) == NULL)
    return throw_error(env, "deflateBlock: out of memory (libdeflate_alloc_compressor)");
  struct libdeflate_compressor *c = s->compressors[level];
  /* The bound, plus the empty stored block appended (at most 5 bytes), plus the walker's slack
   * (it reads a little past the end; those bytes must be zero). */
  size_t bound = libdeflate_deflate_compress_bound(c, length);
  size_t cap = bound + DEFLATE_APPEND_MAX + DEFLATE_WALK_SLACK;
  if (s->scratch_cap < cap) {
    uint8_t *grown = realloc(s->scratch, cap);
    if (grown == NULL) return throw_error(env, "deflateBlock: out of memory");
    s->scratch = grown;
    s->scratch_cap = cap;
  }
  size_t n = length == 0 ? 0 : libdeflate_deflate_compress(c, data, length, s->scratch, bound);
  if (length > 0 && n == 0) return throw_error(env, "deflateBlock: libdeflate's output exceeded its bound");
  if (length == 0) {
    /* libdeflate has nothing to say about no input: an empty stored block alone. */
    memcpy(s->scratch, "\x00\x00\x00\xff\xff", 5);
    n = 5;
  } else {
    memset(s->scratch + n, 0, DEFLATE_WALK_SLACK + DEFLATE_APPEND_MAX);
    long long end = deflate_unfinal(s->scratch, n, s->scratch_cap);
    if (end < 0) return throw_error(env, "deflateBlock: libdeflate's output could not be walked");
    n = (size_t)end;
  }
  napi_value out;
  void *copy = NULL;
  if (napi_create_buffer_copy(env, n, s->scratch, &copy, &out) != napi_ok)
    return throw_error(env, "deflateBlock: out of memory (Buffer)");
  return out;
}
