/* Walking a raw deflate stream's blocks (RFC 1951) to make a final stream a non-final one. */
#ifndef KILN_DEFLATE_WALK_H
#define KILN_DEFLATE_WALK_H
#include <stddef.h>
#include <stdint.h>

/* Zero bytes the walker may read past the stream's end (it loads 8 bytes at a time, and reads a
 * block header's fields before checking where it is). */
#define DEFLATE_WALK_SLACK 32
/* Bytes the empty stored block adds at most past the stream's end. */
#define DEFLATE_APPEND_MAX 5

/*
 * buf[0, n) is a complete raw deflate stream whose last block is final, followed by at least
 * DEFLATE_WALK_SLACK + DEFLATE_APPEND_MAX zero bytes (cap bytes in all). Clears the last block's
 * BFINAL bit and appends an empty stored block (BFINAL 0), so that the stream ends, not final, on a
 * byte boundary: zlib's sync flush. Returns the new
 * length, or -1 when buf is not such a stream.
 */
long long deflate_unfinal(uint8_t *buf, size_t n, size_t cap);

#endif
