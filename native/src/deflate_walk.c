/*
 * The block walker behind deflate.c: decodes each block's header (and, for Huffman blocks, skips
 * its symbols to the end-of-block code) to find where the last block starts and where it ends.
 * Nothing is decompressed: no output, no window. Everything read is checked against the stream's
 * end, so a stream that is not what libdeflate writes gives -1, never a read out of bounds.
 */
#include "deflate_walk.h"

#include <string.h>

struct bits {
  const uint8_t *buf;
  size_t n;     /* bytes of the stream */
  uint64_t pos; /* in bits */
};

/* The next 57 bits or more, least significant first (buf has DEFLATE_WALK_SLACK zero bytes past n). */
static inline uint64_t peek(const struct bits *b) {
  uint64_t w;
  memcpy(&w, b->buf + (b->pos >> 3), 8);
  return w >> (b->pos & 7);
}

static inline int past_end(const struct bits *b) { return b->pos > (uint64_t)b->n * 8; }

static inline uint32_t take(struct bits *b, unsigned count) {
  uint32_t v = (uint32_t)(peek(b) & ((1u << count) - 1));
  b->pos += count;
  return v;
}

/*
 * A canonical Huffman code (RFC 1951 §3.2.2) for skipping: a table indexed by the next PRIMARY_BITS
 * bits of the stream for the codes no longer than that (entry = symbol << 5 | the bits to skip: the
 * code's and its symbol's extra bits), and for the rare longer ones (entry LONG), the counts and
 * symbols of the code in canonical order, decoded bit by bit (as zlib's puff.c does). A full
 * 15-bit table would cost 32 Ki entries to fill per block, more than skipping the block's symbols.
 */
#define PRIMARY_BITS 10
#define PRIMARY_MASK ((1u << PRIMARY_BITS) - 1)
#define LONG 0

struct huffman {
  uint16_t table[1 << PRIMARY_BITS];
  uint16_t count[16];
  uint16_t symbol[288];
  const uint8_t *extra; /* extra bits per symbol, or NULL */
};

/* Extra bits after each literal/length symbol (lengths 257..285) and each distance symbol. */
static const uint8_t LITLEN_EXTRA[288] = {
    [265] = 1, [266] = 1, [267] = 1, [268] = 1, [269] = 2, [270] = 2, [271] = 2, [272] = 2,
    [273] = 3, [274] = 3, [275] = 3, [276] = 3, [277] = 4, [278] = 4, [279] = 4, [280] = 4,
    [281] = 5, [282] = 5, [283] = 5, [284] = 5};
static const uint8_t DIST_EXTRA[32] = {0, 0, 0, 0, 1, 1, 2, 2,  3,  3,  4,  4,  5,  5,  6, 6,
                                       7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 0, 0};

/* Returns -1 for an over-subscribed code or no code at all; an incomplete code decodes its codes. */
static int build(struct huffman *h, const uint8_t *lens, unsigned count, const uint8_t *extra) {
  h->extra = extra;
  memset(h->count, 0, sizeof h->count);
  for (unsigned s = 0; s < count; s++) h->count[lens[s]]++;
  if (h->count[0] == count) return -1;
  int left = 1;
  for (unsigned l = 1; l <= 15; l++) {
    left = (left << 1) - (int)h->count[l];
    if (left < 0) return -1;
  }
  uint16_t offset[16];
  offset[1] = 0;
  for (unsigned l = 1; l < 15; l++) offset[l + 1] = (uint16_t)(offset[l] + h->count[l]);
  for (unsigned s = 0; s < count; s++)
    if (lens[s] != 0) h->symbol[offset[lens[s]]++] = (uint16_t)s;
  memset(h->table, LONG, sizeof h->table);
  unsigned code = 0, index = 0;
  for (unsigned l = 1; l <= PRIMARY_BITS; l++) {
    for (unsigned i = 0; i < h->count[l]; i++, code++, index++) {
      unsigned rev = 0, sym = h->symbol[index];
      for (unsigned j = 0; j < l; j++) rev |= ((code >> j) & 1u) << (l - 1 - j);
      uint16_t entry = (uint16_t)(sym << 5 | (l + (extra ? extra[sym] : 0)));
      for (unsigned k = rev; k < (1u << PRIMARY_BITS); k += 1u << l) h->table[k] = entry;
    }
    code <<= 1;
  }
  return 0;
}

/* The symbol at the start of w (least significant bit first) and the bits it takes with its extra
 * bits, from the table or, for a long code, bit by bit; -1 when no code matches. */
static inline int decode(uint64_t w, const struct huffman *h, unsigned *bits) {
  uint16_t e = h->table[w & PRIMARY_MASK];
  if (e != LONG) {
    *bits = e & 31;
    return e >> 5;
  }
  int code = 0, first = 0, index = 0;
  for (unsigned l = 1; l <= 15; l++) {
    code |= (int)((w >> (l - 1)) & 1);
    int n = h->count[l];
    if (code - n < first) {
      int sym = h->symbol[index + (code - first)];
      *bits = l + (h->extra ? h->extra[sym] : 0);
      return sym;
    }
    index += n;
    first = (first + n) << 1;
    code <<= 1;
  }
  return -1;
}

/* Skip a Huffman block's symbols up to and through its end-of-block code: a 64-bit bit buffer
 * refilled without branches (as libdeflate's decompressor does), at least 56 bits before each
 * symbol, enough for a length, its distance and their extra bits (48 at most). */
static int skip_symbols(struct bits *b, const struct huffman *lit, const struct huffman *dist) {
  const uint8_t *in = b->buf + (b->pos >> 3);
  const uint8_t *limit = b->buf + b->n + 8; /* past it, the stream has certainly ended */
  uint64_t buf = 0;
  unsigned left = 0, bits;
#define REFILL()                             \
  do {                                       \
    uint64_t w_;                             \
    memcpy(&w_, in, 8);                      \
    buf |= w_ << left;                       \
    in += (63 - left) >> 3;                  \
    left |= 56;                              \
  } while (0)
  REFILL();
  buf >>= b->pos & 7;
  left -= b->pos & 7;
  for (;;) {
    if (in > limit) return -1;
    REFILL();
    int s = decode(buf, lit, &bits);
    if (s < 0) return -1;
    buf >>= bits;
    left -= bits;
    if (s < 256) continue;
    if (s == 256) break;
    if (s > 285) return -1;
    int d = decode(buf, dist, &bits);
    if (d < 0 || d > 29) return -1;
    buf >>= bits;
    left -= bits;
  }
#undef REFILL
  b->pos = (uint64_t)(in - b->buf) * 8 - left;
  return 0;
}

static const uint8_t CODE_LENGTH_ORDER[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};

/* A symbol of the code-length code, at b's position. */
static int decode_at(struct bits *b, const struct huffman *h) {
  unsigned bits;
  int s = decode(peek(b), h, &bits);
  if (s >= 0) b->pos += bits;
  return s;
}

static unsigned max_len(const uint8_t *lens, unsigned count) {
  unsigned m = 0;
  for (unsigned s = 0; s < count; s++)
    if (lens[s] > m) m = lens[s];
  return m;
}

/* A dynamic block's codes (after its BTYPE). */
static int read_dynamic(struct bits *b, struct huffman *lit, struct huffman *dist) {
  unsigned hlit = take(b, 5) + 257, hdist = take(b, 5) + 1, hclen = take(b, 4) + 4;
  if (hlit > 286 || hdist > 30) return -1;
  uint8_t cl_lens[19] = {0};
  for (unsigned i = 0; i < hclen; i++) cl_lens[CODE_LENGTH_ORDER[i]] = (uint8_t)take(b, 3);
  if (build(lit, cl_lens, 19, NULL) < 0) return -1; /* lit serves the code-length code first */
  uint8_t lens[286 + 30];
  unsigned i = 0;
  while (i < hlit + hdist) {
    if (past_end(b)) return -1;
    int s = decode_at(b, lit);
    if (s < 0) return -1;
    if (s < 16) {
      lens[i++] = (uint8_t)s;
      continue;
    }
    unsigned repeat;
    uint8_t value = 0;
    if (s == 16) {
      if (i == 0) return -1;
      value = lens[i - 1];
      repeat = 3 + take(b, 2);
    } else if (s == 17) {
      repeat = 3 + take(b, 3);
    } else {
      repeat = 11 + take(b, 7);
    }
    if (i + repeat > hlit + hdist) return -1;
    while (repeat--) lens[i++] = value;
  }
  if (lens[256] == 0) return -1; /* no end-of-block code */
  if (build(lit, lens, hlit, LITLEN_EXTRA) < 0) return -1;
  /* Only literals: no distance code at all (RFC 1951 allows it); a distance then fails to decode. */
  if (max_len(lens + hlit, hdist) == 0) {
    memset(dist, 0, sizeof *dist);
    return 0;
  }
  return build(dist, lens + hlit, hdist, DIST_EXTRA);
}

long long deflate_unfinal(uint8_t *buf, size_t n, size_t cap) {
  if (n == 0 || cap < n + DEFLATE_WALK_SLACK + DEFLATE_APPEND_MAX) return -1;
  struct huffman lit, dist;
  struct bits b = {buf, n, 0};
  uint64_t header;
  for (;;) {
    if (past_end(&b)) return -1;
    header = b.pos;
    unsigned final = take(&b, 1), type = take(&b, 2);
    if (type == 0) {
      b.pos = (b.pos + 7) & ~(uint64_t)7;
      if (b.pos / 8 + 4 > n) return -1;
      const uint8_t *p = buf + b.pos / 8;
      unsigned len = p[0] | (unsigned)p[1] << 8, nlen = p[2] | (unsigned)p[3] << 8;
      if ((len ^ 0xffff) != nlen) return -1;
      b.pos += 32 + (uint64_t)len * 8;
    } else if (type == 1) {
      uint8_t lens[288 + 32];
      memset(lens, 8, 144);
      memset(lens + 144, 9, 112);
      memset(lens + 256, 7, 24);
      memset(lens + 280, 8, 8);
      memset(lens + 288, 5, 32);
      if (build(&lit, lens, 288, LITLEN_EXTRA) < 0 || build(&dist, lens + 288, 32, DIST_EXTRA) < 0) return -1;
      if (skip_symbols(&b, &lit, &dist) < 0) return -1;
    } else if (type == 2) {
      if (read_dynamic(&b, &lit, &dist) < 0) return -1;
      if (skip_symbols(&b, &lit, &dist) < 0) return -1;
    } else {
      return -1;
    }
    if (past_end(&b)) return -1;
    if (final) break;
  }
  uint64_t end = b.pos;
  if ((end + 7) / 8 != n) return -1; /* the final block must end the stream */
  buf[header >> 3] &= (uint8_t) ~(1u << (header & 7));
  /* Past the end-of-block: zero bits to the byte boundary (deflate's padding), and the new block. */
  if (end & 7) buf[end >> 3] &= (uint8_t)((1u << (end & 7)) - 1);
  /* An empty stored block: BFINAL 0 and BTYPE 00 (3 zero bits), padding to a byte, LEN 0, NLEN 0xffff. */
  size_t at = (size_t)((end + 3 + 7) / 8);
  memset(buf + n, 0, at - n);
  buf[at] = 0;
  buf[at + 1] = 0;
  buf[at + 2] = 0xff;
  buf[at + 3] = 0xff;
  return (long long)(at + 4);
}
