// flush_probe: what it costs on this disk to make a small or large write durable, by method.
// The figures behind docs/decisions/0006-intake-log.md.
//
//   cc -O2 -o /tmp/flush_probe bench/flush_probe.c && /tmp/flush_probe DIR [BYTES]
//
// DIR must be an empty folder on the disk to measure (it is filled with test files; remove it
// afterwards). BYTES is the size of each write (default 8192). Prints the median and the 90th
// percentile of 300 samples per method.
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SAMPLES 300

static double t[SAMPLES];

static double NowMs(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int Compare(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

static void Report(const char* name) {
  qsort(t, SAMPLES, sizeof(double), Compare);
  printf("%-44s median %.3f ms  p90 %.3f ms\n", name, t[SAMPLES / 2], t[SAMPLES * 9 / 10]);
}

static void Check(int ok, const char* what) {
  if (!ok) {
    perror(what);
    exit(1);
  }
}

// Times creating SAMPLES files of `size` bytes named <dir>/<prefix><n>, with fdatasync if `flush`.
static void CreateFiles(const char* dir, const char* prefix, const char* buf, size_t size,
                        int flush) {
  char path[4096];
  for (int i = 0; i < SAMPLES; ++i) {
    snprintf(path, sizeof path, "%s/%s%d", dir, prefix, i);
    double start = NowMs();
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    Check(fd >= 0 && write(fd, buf, size) == (ssize_t)size && (!flush || fdatasync(fd) == 0),
          prefix);
    close(fd);
    t[i] = NowMs() - start;
  }
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s DIR [BYTES]\n", argv[0]);
    return 2;
  }
  const char* dir = argv[1];
  size_t size = argc > 2 ? (size_t)atol(argv[2]) : 8192;
  size_t slot = (size + 4095) / 4096 * 4096;
  char* buf = aligned_alloc(4096, slot);
  memset(buf, 7, slot);
  char a[4096], b[4096];
  int dirfd = open(dir, O_RDONLY | O_DIRECTORY);
  Check(dirfd >= 0, dir);

  for (int i = 0; i < SAMPLES; ++i) {
    snprintf(a, sizeof a, "%s/publish%d.tmp", dir, i);
    snprintf(b, sizeof b, "%s/publish%d", dir, i);
    double start = NowMs();
    int fd = open(a, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    Check(fd >= 0 && write(fd, buf, size) == (ssize_t)size && fdatasync(fd) == 0, "publish");
    close(fd);
    Check(rename(a, b) == 0 && fsync(dirfd) == 0, "rename");
    t[i] = NowMs() - start;
  }
  Report("create + fdatasync + rename + fsync(dir)");

  CreateFiles(dir, "create", buf, size, 1);
  Report("create + fdatasync");

  static int pool[SAMPLES];
  for (int i = 0; i < SAMPLES; ++i) {
    snprintf(a, sizeof a, "%s/pool%d", dir, i);
    pool[i] = open(a, O_RDWR | O_CREAT | O_TRUNC, 0644);
    Check(pool[i] >= 0 && write(pool[i], buf, size) == (ssize_t)size && fsync(pool[i]) == 0,
          "pool");
  }
  fsync(dirfd);
  for (int i = 0; i < SAMPLES; ++i) {
    double start = NowMs();
    Check(pwrite(pool[i], buf, size, 0) == (ssize_t)size && fdatasync(pool[i]) == 0, "overwrite");
    t[i] = NowMs() - start;
  }
  Report("overwrite of a pre-written file + fdatasync");

  snprintf(a, sizeof a, "%s/log", dir);
  int log = open(a, O_RDWR | O_CREAT | O_TRUNC, 0644);
  char* zeros = calloc(1, 1 << 20);
  for (size_t off = 0; off < (size_t)SAMPLES * slot; off += 1 << 20) {
    Check(write(log, zeros, 1 << 20) == 1 << 20, "log");
  }
  Check(fsync(log) == 0, "log");
  for (int i = 0; i < SAMPLES; ++i) {
    double start = NowMs();
    Check(pwrite(log, buf, size, (off_t)i * slot) == (ssize_t)size && fdatasync(log) == 0,
          "log write");
    t[i] = NowMs() - start;
  }
  Report("region of one pre-written file + fdatasync");

  int direct = open(a, O_RDWR | O_DIRECT | O_DSYNC);
  Check(direct >= 0, "O_DIRECT");
  for (int i = 0; i < SAMPLES; ++i) {
    double start = NowMs();
    Check(pwrite(direct, buf, slot, (off_t)i * slot) == (ssize_t)slot, "direct write");
    t[i] = NowMs() - start;
  }
  Report("the same with O_DIRECT | O_DSYNC");

  CreateFiles(dir, "plain", buf, size, 0);
  Report("create, no flush");
  return 0;
}
