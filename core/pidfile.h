/*
 * pidfile.h -- PidRecord and the seed's pidfile protocol
 * (seed-contract.md §2.3-§2.8, DESIGN.md "Pidfile protocol").
 *
 * A pidfile holds one compact JSON PidRecord
 *   {"pid":N,"bootId":"…","startTicks":N,"pgid":N,"exe":"…"}
 * or is empty while a reservation is in flight.  `<pidfile>.lock` is the
 * reservation lock.  States: Missing, Starting (empty/absent while the lock
 * is held), Running(record); stale = Running but not active.  A record is
 * active only when its process exists, is not a zombie, and has the same
 * boot id and start ticks; a stale record's pid is never signalled.
 *
 * Errors fill `struct err` (ERR_PIDFILE for unreadable contents, naming
 * the file; ERR_BUSY for lock timeouts; ERR_IO otherwise).
 */
#ifndef APPD_PIDFILE_H
#define APPD_PIDFILE_H

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/base/err.h"
#include "core/base/fsutil.h"
#include "core/update/machineid.h"

struct pid_record {
	long pid;
	char boot_id[64];
	unsigned long long start_ticks;
	long pgid;
	char exe[256];                 /* informational; truncated if longer */
	char machine[MACHINE_ID_MAX];  /* home_machine_id() of the host that
	                                * wrote it; "" in records of older appd
	                                * (taken as this host's) */
};

enum pidfile_state { PIDFILE_MISSING = 0, PIDFILE_STARTING, PIDFILE_RUNNING };

/* Reservation lock wait (seed START_TIMEOUT). */
#define PIDFILE_LOCK_TIMEOUT_MS 10000

/* Fill `rec` with the identity of live process `pid` (boot id, start
 * ticks, pgid, exe).  0, or -1/errno (ESRCH if gone or a zombie). */
int pidrec_capture(pid_t pid, struct pid_record *rec);
/* Serialize / parse.  parse: 0, or -1 on anything but a valid record. */
int pidrec_format(const struct pid_record *rec, char *buf, size_t cap);
int pidrec_parse(const char *text, size_t len, struct pid_record *rec);
/* 1 active, 0 stale, -1/errno.  A record of another machine (a home
 * shared between hosts) is neither: -1 with EREMOTE, so it is never
 * judged stale, signalled or removed here. */
int pidrec_active(const struct pid_record *rec);
/* Same process identity (pid, boot id, start ticks). */
int pidrec_same(const struct pid_record *a, const struct pid_record *b);

/* Unlocked read (seed read_pid_file_state): may remove an empty pidfile
 * left by a crashed reservation (after taking the free lock). */
int pidfile_read_state(const char *path, enum pidfile_state *st,
		       struct pid_record *rec, struct err *e);
/* Read without ever changing anything (for `status`). */
int pidfile_peek(const char *path, enum pidfile_state *st,
		 struct pid_record *rec, struct err *e);
/* Compare-and-delete under the reservation lock: deletes the pidfile
 * only if it still holds `expected`; otherwise reports what is there
 * (a replacement is kept). */
int pidfile_refresh_after_stale(const char *path, const struct pid_record *expected,
				enum pidfile_state *st, struct pid_record *rec,
				struct err *e);
/* seed is_starting_or_running: 1 (rec filled when Running) / 0 / -1.
 * Stale records are cleaned with pidfile_refresh_after_stale. */
int pidfile_is_starting_or_running(const char *path, enum pidfile_state *st,
				   struct pid_record *rec, struct err *e);
/* Wait (bounded) until no reservation is in flight: take and drop the
 * lock.  0, or -1 with ERR_BUSY naming the file. */
int pidfile_wait_reservation(const char *path, int64_t timeout_ms, struct err *e);

struct pidfile_resv {
	int lock_fd;
	char path[FS_PATH_MAX];       /* not PATH_MAX: it is on the stack of
	                               * the supervisor's start (home paths are
	                               * at most HOME_PATH_MAX) */
};

/* Reserve: take the lock (bounded), create the empty pidfile exclusively,
 * retrying past stale records and crashed reservations.  Returns 0 when
 * reserved (lock held, empty file created), 1 when an active record
 * already exists (copied to `other`; nothing held), -1 on error. */
int pidfile_reserve(const char *path, int64_t timeout_ms, struct pidfile_resv *rv,
		    struct pid_record *other, struct err *e);
/* Publish `rec` (temp + fsync + rename over the pidfile), release. */
int pidfile_publish(struct pidfile_resv *rv, const struct pid_record *rec, struct err *e);
/* Give up a reservation: remove the pidfile, release the lock. */
void pidfile_abandon(struct pidfile_resv *rv);
/* Remove the pidfile only if it still holds `rec` (under the lock, a
 * short bounded wait).  0 whether or not it was removed; -1 on error. */
int pidfile_clear_own(const char *path, const struct pid_record *rec, struct err *e);

#endif
