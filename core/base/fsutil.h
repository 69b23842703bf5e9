/*
 * fsutil.h -- bounded file reads, atomic state writes, private
 * directories, and small fd helpers.  All fds are opened O_CLOEXEC and
 * every call retries EINTR.  Errors: -1 with errno set.
 */
#ifndef APPD_FSUTIL_H
#define APPD_FSUTIL_H

#include <stddef.h>
#include <stdint.h>

/* The longest path the file helpers build (a file plus a temp suffix,
 * or its directory): far below PATH_MAX, so their frames stay small on
 * the resident supervisor's stack.  Longer paths fail with ENAMETOOLONG. */
#define FS_PATH_MAX 1024
#include <sys/stat.h>
#include <sys/types.h>

#include "core/base/err.h"

/* Open `path` with `flags` (| O_CLOEXEC | O_NONBLOCK | O_NOCTTY; `mode`
 * for O_CREAT) only if it is a regular file, its stat in `*st`.
 * O_NONBLOCK keeps a FIFO put there from blocking the open, and has no
 * effect on a regular file's reads and writes.  The fd, or -1/errno
 * (EINVAL: not a regular file). */
int fs_open_regular(const char *path, int flags, mode_t mode, struct stat *st);

/* Read the whole file into `buf` (cap bytes, NUL-terminated, so at most
 * cap-1 bytes of content).  EFBIG when it does not fit; EINVAL when `path`
 * is not a regular file (opened with O_NONBLOCK, so a FIFO never blocks). */
int fs_read_file(const char *path, char *buf, size_t cap, size_t *len);
/* The error for a failed fs_read_file of `what` ("status file") at `path`,
 * with errno as it left it; context "path".  Always -1. */
int fs_read_fail(struct err *e, enum err_code code, const char *what, const char *path);

/* Write `data` to `path` atomically: a temp file in the same directory,
 * fsync, rename(2) over `path`, fsync of the directory (DESIGN.md "Home
 * and state files").  No reader ever sees a torn file. */
int fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode);

/* Like fs_write_atomic but without the fsyncs: for files that describe a
 * live process (state/status.json, the stop request) and mean nothing
 * after a crash or reboot.  rename(2) alone keeps readers from ever
 * seeing a torn file; what is lost is only durability, which they do not
 * need (readers treat a missing or empty file as "no record"). */
int fs_replace(const char *path, const void *data, size_t len, mode_t mode);

/* Create `path` as a 0700 directory if missing, then check it: a real
 * directory (not a link), owned by the effective user, not writable by
 * group or other.  Never chmods an existing directory.  On refusal fills
 * `e` with ERR_UNSAFE_HOME naming the path. */
int fs_private_dir(const char *path, struct err *e);
/* The same checks without creating anything; ENOENT is not an error when
 * `missing_ok` (returns 1 then). */
int fs_check_private_dir(const char *path, int missing_ok, struct err *e);

/* fsync the directory containing `path`. */
int fs_sync_parent(const char *path);
/* Remove `name` (relative to directory fd `dfd`, or AT_FDCWD) and, for a
 * directory, what it holds, at most `depth` levels down (best effort:
 * keeps going, then fails with ENOTEMPTY).  A symlink is removed, never
 * followed (unlink comes first, the open is O_NOFOLLOW).  A missing entry
 * is not an error.  0, or -1/errno. */
int fs_remove_tree(int dfd, const char *name, int depth);

ssize_t fd_read(int fd, void *buf, size_t n);            /* EINTR retried */
int fd_write_all(int fd, const void *buf, size_t n);     /* 0 or -1 */
int fd_cloexec(int fd);
int fd_nonblock(int fd);
/* Move fd to a number >= 3 (so it cannot collide with stdio), CLOEXEC. */
int fd_above_stdio(int fd);
/* Open /dev/null on each of fds 0, 1 and 2 that is closed, as daemons do,
 * so that no socket or file of ours lands there (a client that ran
 * `appd proxy <&-`).  0, or -1/errno when /dev/null cannot be opened. */
int fd_std_open(void);

/* Wall clock in ms since the epoch; ISO-8601 UTC "2026-11-21T10:00:00.123Z". */
int64_t wall_ms(void);
/* Days since 1970-01-01 of the proleptic Gregorian date y-m-d, and back
 * (H. Hinnant's civil algorithms; no time zone, no libc). */
int64_t days_from_civil(int64_t y, unsigned m, unsigned d);
void civil_from_days(int64_t days, int64_t *y, unsigned *m, unsigned *d);
void iso8601_ms(int64_t ms, char out[32]);
/* Parse what iso8601_ms wrote (also without the fraction); -1 if bad. */
int64_t iso8601_parse(const char *s);

/* snprintf that reports truncation: 0, or -1/ENAMETOOLONG when the
 * output was cut (it is still NUL-terminated). */
int str_fmt(char *buf, size_t cap, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Copy with truncation check: 0, or -1/ENAMETOOLONG. */
int str_copy(char *dst, size_t cap, const char *src);

#endif
