/*
 * lock.h -- advisory whole-file locks (flock(2)) with a bounded wait.
 *
 * A lock file is never deleted; only the flock state means anything
 * (seed-contract.md §2.5).  The wait is event-driven: a blocking
 * flock(LOCK_EX) that the kernel wakes when the holder lets go, cut off
 * at the deadline by an interval timer (SIGALRM, no SA_RESTART) that keeps
 * firing until the call returns, so a signal landing just before the call
 * cannot leave it blocked.  Not for use inside the reactor's loop (it
 * blocks); the supervisor only try-locks (timeout 0).
 */
#ifndef APPD_LOCK_H
#define APPD_LOCK_H

#include <stdint.h>

/* Open or create `path` (0600) and lock it exclusively, waiting at most
 * `timeout_ms` (0: one try).  Returns the fd (CLOEXEC; closing it
 * releases the lock), or -1 with errno ETIMEDOUT (held by someone until
 * the deadline) or the open/flock error. */
int lock_acquire(const char *path, int64_t timeout_ms);

/* 1 when someone holds the lock on `path`, 0 when free or the file does
 * not exist, -1/errno.  Does not create the file. */
int lock_is_held(const char *path);

/* Record in the lock file who holds it: "pid command since-ms\n".  For
 * error messages only (best effort). */
int lock_note_holder(int fd, const char *command);

struct lock_holder {
	long pid;
	char command[64];
	int64_t since_ms;
};
/* Read what lock_note_holder wrote; -1 when nothing usable is there. */
int lock_read_holder(const char *path, struct lock_holder *h);

void lock_release(int fd);

#endif
