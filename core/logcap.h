/*
 * logcap.h -- the server's captured stdout+stderr: a size-capped log with
 * one rotated file (`<log>.1`), and the tail shown in errors.
 */
#ifndef APPD_LOGCAP_H
#define APPD_LOGCAP_H

#include <limits.h>
#include <stddef.h>

#define LOGCAP_PATH_MAX 600       /* a home path (home.h) and ".1" */

struct logcap {
	int fd;
	long long size;
	long long max;
	const char *path;              /* the caller's: outlives the capture */
};

/* Open `path` for appending (O_APPEND|O_CLOEXEC, 0600).  With `fresh`,
 * an existing log is first rotated to `<path>.1`.  0 or -1/errno
 * (ENAMETOOLONG for a path of LOGCAP_PATH_MAX - 2 bytes or more).  `path`
 * is kept, not copied: it must outlive `l`. */
int logcap_open(struct logcap *l, const char *path, long long max, int fresh);
/* Append; rotates first when the cap would be passed.  Write errors are
 * returned but leave the capture usable. */
int logcap_write(struct logcap *l, const void *buf, size_t n);
void logcap_close(struct logcap *l);

/* The last `max` (<= cap-1) bytes of `path`, starting at a line boundary
 * when the cut falls mid-line (seed read_stderr_log_tail: 4096 bytes, the
 * partial first line dropped).  NUL-terminated.  0, or -1/errno. */
int log_tail(const char *path, size_t max, char *out, size_t cap);

#endif
