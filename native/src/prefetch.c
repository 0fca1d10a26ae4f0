/*
 * kiln's read-ahead of small files (Node-API): a layer's tar reads each small file synchronously in
 * the main thread (fswalk.c's readFileInto), one read in flight at a time. When the files are not
 * in the page cache (an export of an older image, a context on a cold disk), that is the disk's
 * latency per file, not its parallel speed. Here one background thread opens the next files of
 * the walk and asks the kernel to read them into the page cache (posix_fadvise WILLNEED, which
 * submits the reads and returns without waiting: many reads in flight from one thread), so that the
 * main thread's read finds them there. Nothing is read into memory of ours, and nothing read here
 * is used: the main thread's read stays the source of truth, and every error here is ignored.
 *
 * The thread is started on the first paths handed to it (never for a tar whose files are cached:
 * src/util/read-ahead.ts decides), ends after IDLE_MS without work, and is stopped and waited
 * for when the Node.js environment that started it is torn down (no thread outlives the process's
 * need, none holds its exit). The queue is bounded (QUEUE_CAP paths; more are dropped).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <node_api.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "prefetch.h"

#define QUEUE_CAP 1024
#define IDLE_MS 250

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work_cond = PTHREAD_COND_INITIALIZER; /* paths queued, or stop */
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER; /* the thread ended */
static char *queue[QUEUE_CAP];
static size_t head, count;
static int running, stopping;
/* The environment that owns the thread (the first to hand it paths): others' paths are refused. */
static napi_env owner;
/* Files the thread looked at, and those of them whose first page was not in the page cache. */
static uint64_t probed, probed_cold;

/* The kernel asked to read `p` into the page cache, if it is a regular file (no symlink followed at
 * its end, no device or FIFO opened in a blocking way). Returns 1 when its first page was not cached. */
static int read_ahead(const char *p) {
  int fd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) return 0;
  struct stat st;
  int cold = 0;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
    char byte;
    struct iovec v = {&byte, 1};
    /* Whether the first page is cached, without waiting for the disk. */
    ssize_t n = preadv2(fd, &v, 1, 0, RWF_NOWAIT);
    cold = n != 1;
    if (cold || st.st_size > 4096) posix_fadvise(fd, 0, st.st_size, POSIX_FADV_WILLNEED);
  }
  close(fd);
  return cold;
}

static void *worker(void *arg) {
  (void)arg;
  pthread_mutex_lock(&mu);
  for (;;) {
    while (count == 0 && !stopping) {
      struct timespec until;
      clock_gettime(CLOCK_REALTIME, &until);
      until.tv_nsec += (long)IDLE_MS * 1000000L;
      if (until.tv_nsec >= 1000000000L) {
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
      }
      if (pthread_cond_timedwait(&work_cond, &mu, &until) == ETIMEDOUT && count == 0) goto end;
    }
    if (stopping) break;
    char *p = queue[head];
    head = (head + 1) % QUEUE_CAP;
    count--;
    pthread_mutex_unlock(&mu);
    int cold = read_ahead(p);
    free(p);
    pthread_mutex_lock(&mu);
    probed++;
    probed_cold += (uint64_t)cold;
  }
end:
  running = 0;
  pthread_cond_broadcast(&done_cond);
  pthread_mutex_unlock(&mu);
  return NULL;
}

/* The owning environment is torn down: drop the queue, stop the thread, and wait for it (at most
 * the open/fadvise/close it is in). */
static void stop_prefetch(void *arg) {
  (void)arg;
  pthread_mutex_lock(&mu);
  stopping = 1;
  pthread_cond_broadcast(&work_cond);
  while (running) pthread_cond_wait(&done_cond, &mu);
  for (; count > 0; count--, head = (head + 1) % QUEUE_CAP) free(queue[head]);
  stopping = 0;
  owner = NULL;
  pthread_mutex_unlock(&mu);
}

/* prefetchFiles(paths: string[]): how many of them were queued (0 for another environment's call,
 * or when the queue is full or the thread cannot be started). */
napi_value prefetch_files(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  uint32_t n = 0, queued = 0;
  bool is_array = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_is_array(env, argv[0], &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, argv[0], &n) != napi_ok)
    goto done;
  pthread_mutex_lock(&mu);
  if (owner == NULL) {
    if (napi_add_env_cleanup_hook(env, stop_prefetch, NULL) != napi_ok) {
      pthread_mutex_unlock(&mu);
      goto done;
    }
    owner = env;
  }
  int mine = owner == env;
  pthread_mutex_unlock(&mu);
  if (!mine) goto done;
  char p[PATH_MAX];
  for (uint32_t i = 0; i < n; i++) {
    napi_value v;
    size_t len = 0;
    if (napi_get_element(env, argv[0], i, &v) != napi_ok ||
        napi_get_value_string_utf8(env, v, p, sizeof p, &len) != napi_ok || len == 0 || len >= sizeof p - 1)
      continue;
    char *copy = malloc(len + 1);
    if (copy == NULL) break;
    memcpy(copy, p, len + 1);
    pthread_mutex_lock(&mu);
    if (count == QUEUE_CAP) {
      pthread_mutex_unlock(&mu);
      free(copy);
      break;
    }
    queue[(head + count) % QUEUE_CAP] = copy;
    count++;
    queued++;
    pthread_mutex_unlock(&mu);
  }
  pthread_mutex_lock(&mu);
  if (count > 0 && !running) {
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 * 1024 + PATH_MAX);
    if (pthread_create(&t, &attr, worker, NULL) == 0) running = 1;
    else
      for (; count > 0; count--, head = (head + 1) % QUEUE_CAP) free(queue[head]); /* reads stay as they were */
    pthread_attr_destroy(&attr);
  }
  pthread_cond_signal(&work_cond);
  pthread_mutex_unlock(&mu);
done:
  napi_create_uint32(env, queued, &out);
  return out;
}

/* prefetchStats(): [files the thread looked at, of them not in the page cache, whether it runs (1/0)]. */
napi_value prefetch_stats(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out, v;
  pthread_mutex_lock(&mu);
  double nums[3] = {(double)probed, (double)probed_cold, running ? 1 : 0};
  pthread_mutex_unlock(&mu);
  napi_create_array_with_length(env, 3, &out);
  for (uint32_t i = 0; i < 3; i++) {
    napi_create_double(env, nums[i], &v);
    napi_set_element(env, out, i, v);
  }
  return out;
}
