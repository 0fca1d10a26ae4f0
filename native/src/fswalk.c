/*
 * kiln's native file-system helper (Node-API, so one build serves every Node.js line).
 *
 * A layer tar of many small files spends most of its time in per-file calls (Node's lstat with its
 * Stats object, fs-xattr's two listxattr calls and an array, open/read/close each through Node's
 * fs): here a directory is read with each entry's lstat in one call, and a small file is read into
 * the caller's buffer in one call. The tar format stays in TypeScript (src/layer/write.ts).
 *
 * Every call answers "do it the usual way" (null, a negative number) rather than fail: the caller
 * then repeats the step with Node's fs, which raises the same error it always did.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <node_api.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "fswalk.h"

/* Numbers per entry of readDirectory's `stats` (src/util/native-fs.ts reads the same layout). */
#define FIELDS 13
/* libuv's statx mask for lstat (STATX_BASIC_STATS | STATX_BTIME): the same fields as Node's lstatSync. */
#define LIBUV_STATX_MASK 0xFFF

/* A string argument as a NUL-terminated path in buf (PATH_MAX bytes): its length, or 0 when it is not
 * a string, is empty, may have been cut short, or holds a NUL (Node's fs refuses those). */
static size_t path_arg(napi_env env, napi_value v, char *buf) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, buf, PATH_MAX, &len) != napi_ok) return 0;
  if (len == 0 || len >= PATH_MAX - 1 || memchr(buf, 0, len) != NULL) return 0;
  return len;
}

/* Whether s is UTF-8 that V8 decodes without replacing anything (no overlong forms, no surrogates,
 * nothing above U+10FFFF): only then does the name Node gets back name the same file. */
static int valid_utf8(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t k;
    unsigned cp;
    if (c >= 0xc2 && c <= 0xdf) {
      k = 1;
      cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      k = 2;
      cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      k = 3;
      cp = c & 0x07;
    } else {
      return 0;
    }
    if (n - i <= k) return 0;
    for (size_t j = 1; j <= k; j++) {
      unsigned b = s[i + j];
      if ((b & 0xc0) != 0x80) return 0;
      cp = (cp << 6) | (b & 0x3f);
    }
    if (k == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) return 0;
    if (k == 3 && (cp < 0x10000 || cp > 0x10ffff)) return 0;
    i += k + 1;
  }
  return 1;
}

struct name {
  char *s;
  size_t len;
};

/* Byte order: strcmp compares as unsigned char, which for UTF-8 is code point order. */
static int by_bytes(const void *a, const void *b) {
  return strcmp(((const struct name *)a)->s, ((const struct name *)b)->s);
}

struct listing {
  struct name *names;
  size_t count, cap;
};

static void free_listing(struct listing *l) {
  for (size_t i = 0; i < l->count; i++) free(l->names[i].s);
  free(l->names);
}

/* The names of the open directory fd (without . and ..), sorted; -1 on an error or an odd name. */
static int list_names(int fd, struct listing *l) {
  DIR *d = fdopendir(fd);
  if (d == NULL) return -1;
  int ok = 0;
  struct dirent *e;
  errno = 0;
  while ((e = readdir(d)) != NULL) {
    const char *n = e->d_name;
    if (n[0] == '.' && (n[1] == 0 || (n[1] == '.' && n[2] == 0))) continue;
    size_t len = strlen(n);
    if (!valid_utf8((const unsigned char *)n, len)) goto fail;
    if (l->count == l->cap) {
      size_t cap = l->cap ? l->cap * 2 : 64;
      struct name *grown = realloc(l->names, cap * sizeof *grown);
      if (grown == NULL) goto fail;
      l->names = grown;
      l->cap = cap;
    }
    char *copy = malloc(len + 1);
    if (copy == NULL) goto fail;
    memcpy(copy, n, len + 1);
    l->names[l->count].s = copy;
    l->names[l->count].len = len;
    l->count++;
    errno = 0;
  }
  if (errno != 0) goto fail;
  qsort(l->names, l->count, sizeof *l->names, by_bytes);
  ok = 1;
fail:
  closedir(d); /* closes fd too */
  return ok ? 0 : -1;
}

/* One entry's numbers: mode, uid, gid, size, mtime s, mtime ns, ctime s, ctime ns, rdev, dev, ino,
 * nlink, and 1 when it may have xattrs (listxattr found some or failed: ask again), else 0. A mode of
 * -1: lstat it the usual way (it failed here, or its path is too long for Node's lstat). */
static void stat_entry(int dirfd, const char *dir, size_t dirlen, const struct name *n, double *f) {
  char full[PATH_MAX];
  int slash = dirlen > 0 && dir[dirlen - 1] != '/';
  size_t fulllen = dirlen + (size_t)slash + n->len;
  struct statx sx;
  if (fulllen >= PATH_MAX ||
      statx(dirfd, n->s, AT_SYMLINK_NOFOLLOW, LIBUV_STATX_MASK, &sx) != 0) {
    f[0] = -1;
    f[12] = 1;
    return;
  }
  f[0] = sx.stx_mode;
  f[1] = sx.stx_uid;
  f[2] = sx.stx_gid;
  f[3] = (double)sx.stx_size;
  f[4] = (double)sx.stx_mtime.tv_sec;
  f[5] = sx.stx_mtime.tv_nsec;
  f[6] = (double)sx.stx_ctime.tv_sec;
  f[7] = sx.stx_ctime.tv_nsec;
  f[8] = (double)makedev(sx.stx_rdev_major, sx.stx_rdev_minor);
  f[9] = (double)makedev(sx.stx_dev_major, sx.stx_dev_minor);
  f[10] = (double)sx.stx_ino;
  f[11] = sx.stx_nlink;
  f[12] = 0;
  if (S_ISLNK(sx.stx_mode)) return; /* a layer carries no symlink's xattrs */
  memcpy(full, dir, dirlen);
  if (slash) full[dirlen] = '/';
  memcpy(full + dirlen + slash, n->s, n->len + 1);
  /* The size of the list only (no buffer): one call, and most entries have none. listxattr, not
   * llistxattr: as fs-xattr reads them (the entry is no symlink). */
  f[12] = listxattr(full, NULL, 0) == 0 ? 0 : 1;
}

/* readDirectory(dir): { names: string[], stats: Float64Array } in byte order, or null (read it the
 * usual way: it cannot be opened or read, or a name is not UTF-8). */
napi_value read_directory(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result, null_value;
  napi_get_null(env, &null_value);
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1) return null_value;
  char dir[PATH_MAX];
  size_t dirlen = path_arg(env, argv[0], dir);
  if (dirlen == 0) return null_value;
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return null_value;
  int statfd = dup(fd); /* list_names closes fd with its DIR */
  if (statfd < 0) {
    close(fd);
    return null_value;
  }
  struct listing l = {0};
  if (list_names(fd, &l) != 0) {
    close(statfd);
    free_listing(&l);
    return null_value;
  }
  napi_value names, stats, buffer;
  void *data = NULL;
  size_t bytes = l.count * FIELDS * sizeof(double);
  if (napi_create_array_with_length(env, l.count, &names) != napi_ok ||
      napi_create_arraybuffer(env, bytes, &data, &buffer) != napi_ok ||
      napi_create_typedarray(env, napi_float64_array, l.count * FIELDS, buffer, 0, &stats) != napi_ok) {
    close(statfd);
    free_listing(&l);
    return null_value;
  }
  double *f = data;
  for (size_t i = 0; i < l.count; i++) {
    napi_value s;
    stat_entry(statfd, dir, dirlen, &l.names[i], f + i * FIELDS);
    if (napi_create_string_utf8(env, l.names[i].s, l.names[i].len, &s) != napi_ok ||
        napi_set_element(env, names, (uint32_t)i, s) != napi_ok) {
      close(statfd);
      free_listing(&l);
      return null_value;
    }
  }
  close(statfd);
  free_listing(&l);
  napi_create_object(env, &result);
  napi_set_named_property(env, result, "names", names);
  napi_set_named_property(env, result, "stats", stats);
  return result;
}

/* Small-file reads that found their file's first pages not in the page cache (RWF_NOWAIT's EAGAIN). */
static uint64_t cold_reads;
/* Cleared when the file system refuses RWF_NOWAIT: plain reads then, and none is counted cold. */
static int nowait_reads = 1;

/* coldReads(): how many readFileInto calls of this process found their file not cached. */
napi_value cold_reads_count(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  napi_create_double(env, (double)__atomic_load_n(&cold_reads, __ATOMIC_RELAXED), &out);
  return out;
}

/* readFileInto(path, into, offset, length): the bytes read (fewer at end of file; at most length)
 * into `into` at `offset`, or -errno (read it the usual way, which raises the error). */
napi_value read_file_into(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4], out;
  int64_t got = -EINVAL;
  char p[PATH_MAX];
  napi_typedarray_type type;
  size_t length = 0;
  void *data = NULL;
  int64_t offset = 0, want = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4 || path_arg(env, argv[0], p) == 0 ||
      napi_get_typedarray_info(env, argv[1], &type, &length, &data, NULL, NULL) != napi_ok ||
      type != napi_uint8_array || napi_get_value_int64(env, argv[2], &offset) != napi_ok ||
      napi_get_value_int64(env, argv[3], &want) != napi_ok || offset < 0 || want < 0 ||
      (uint64_t)offset + (uint64_t)want > length)
    goto done;
  /* O_NOFOLLOW: the walk saw a regular file here; a symbolic link put in its place since is not
   * followed (ELOOP: Node's fs then raises it, opened the same way by the caller). */
  int fd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    got = -errno;
    goto done;
  }
  char *at = (char *)data + offset;
  got = 0;
  if (want > 0 && nowait_reads) {
    /* The first read asks for cached pages only: the same one call when the file is cached; when it
     * is not, the read is counted (coldReads: src/util/read-ahead.ts starts reading ahead) and
     * made again the usual way (the kernel has started reading it already). */
    struct iovec v = {at, (size_t)want};
    ssize_t n = preadv2(fd, &v, 1, 0, RWF_NOWAIT);
    if (n > 0) got = n;
    else if (n < 0 && errno == EAGAIN) __atomic_add_fetch(&cold_reads, 1, __ATOMIC_RELAXED);
    else if (n < 0 && (errno == EOPNOTSUPP || errno == EINVAL || errno == ENOSYS)) nowait_reads = 0;
  }
  while (got < want) {
    ssize_t n = pread(fd, at + got, (size_t)(want - got), (off_t)got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      got = -errno;
      break;
    }
    if (n == 0) break;
    got += n;
  }
  close(fd);
done:
  napi_create_int64(env, got, &out);
  return out;
}
