/* pidfile.c -- see pidfile.h. */
#include "core/pidfile.h"
#include "core/home.h"
#include "core/base/fmt.h"
#include "core/base/fsutil.h"
#include "core/base/jsonr.h"
#include "core/base/jsonw.h"
#include "core/lock.h"
#include "platform/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define PIDFILE_MAX 2048

int
pidrec_capture(pid_t pid, struct pid_record *rec)
{
	struct proc_info pi;
	int st = proc_read(pid, &pi);

	if (st < 0)
		return -1;
	if (st != PROC_ALIVE) {
		errno = ESRCH;
		return -1;
	}
	memset(rec, 0, sizeof *rec);
	rec->pid = pid;
	rec->start_ticks = pi.start_ticks;
	rec->pgid = pi.pgid;
	if (proc_boot_id(rec->boot_id) < 0)
		return -1;
	str_copy(rec->machine, sizeof rec->machine, home_machine_id());
	{
		char exe[512];          /* informational, kept to 255 bytes */
		if (proc_exe(pid, exe, sizeof exe) < 0)
			exe[0] = '\0';
		fmt_n(rec->exe, sizeof rec->exe, "%.255s", exe);
	}
	return 0;
}

int
pidrec_format(const struct pid_record *rec, char *buf, size_t cap)
{
	struct jsonw w;

	jsonw_init(&w, buf, cap);
	jsonw_obj_begin(&w);
	jsonw_kint(&w, "pid", rec->pid);
	jsonw_kstr(&w, "bootId", rec->boot_id);
	jsonw_kint(&w, "startTicks", (long long)rec->start_ticks);
	jsonw_kint(&w, "pgid", rec->pgid);
	jsonw_kstr(&w, "exe", rec->exe);
	if (rec->machine[0] != '\0')
		jsonw_kstr(&w, "machineId", rec->machine);
	jsonw_obj_end(&w);
	return jsonw_finish(&w);
}

/* A boot id as proc_boot_id() makes them: 1..63 printable ASCII bytes
 * without spaces (a UUID on Linux and macOS, digits on FreeBSD).  Anything
 * else is a damaged record: it could never match a live process and would
 * not be written back as the same bytes (fuzz_json found a 0xda byte). */
static int
boot_id_ok(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return 0;
	return 1;
}

int
pidrec_parse(const char *text, size_t len, struct pid_record *rec)
{
	jsmntok_t tok[32];
	struct jsonr r;
	long long pid, ticks, pgid = 0;

	memset(rec, 0, sizeof *rec);
	if (jsonr_parse(&r, text, len, tok, 32) < 0)
		return -1;
	if (jsonr_int(&r, jsonr_get(&r, 0, "pid"), &pid) < 0 || pid <= 0 ||
	    pid > 0x3fffffff)
		return -1;
	if (jsonr_int(&r, jsonr_get(&r, 0, "startTicks"), &ticks) < 0 || ticks < 0)
		return -1;
	if (jsonr_str(&r, jsonr_get(&r, 0, "bootId"), rec->boot_id, sizeof rec->boot_id) < 0 ||
	    !boot_id_ok(rec->boot_id))
		return -1;
	if (jsonr_get(&r, 0, "pgid") >= 0 &&
	    jsonr_int(&r, jsonr_get(&r, 0, "pgid"), &pgid) < 0)
		return -1;
	/* exe is informational: a long one is dropped, not an error */
	if (jsonr_get(&r, 0, "exe") >= 0 &&
	    jsonr_str(&r, jsonr_get(&r, 0, "exe"), rec->exe, sizeof rec->exe) < 0)
		rec->exe[0] = '\0';
	if (jsonr_get(&r, 0, "machineId") >= 0 &&
	    (jsonr_str(&r, jsonr_get(&r, 0, "machineId"), rec->machine, sizeof rec->machine) < 0 ||
	     !boot_id_ok(rec->machine)))
		return -1;
	rec->pid = (long)pid;
	rec->start_ticks = (unsigned long long)ticks;
	rec->pgid = (long)pgid;
	return 0;
}

int
pidrec_active(const struct pid_record *rec)
{
	if (rec->machine[0] != '\0' && strcmp(rec->machine, home_machine_id()) != 0) {
		errno = EREMOTE;
		return -1;
	}
	return proc_matches((pid_t)rec->pid, rec->start_ticks, rec->boot_id);
}

int
pidrec_same(const struct pid_record *a, const struct pid_record *b)
{
	return a->pid == b->pid && a->start_ticks == b->start_ticks &&
	    strcmp(a->boot_id, b->boot_id) == 0;
}

static int
lock_path(const char *path, char *out, size_t cap)
{
	int n = fmt_n(out, cap, "%s.lock", path);

	return n < 0 || (size_t)n >= cap ? -1 : 0;
}

static int
is_blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\n' && s[i] != '\t' && s[i] != '\r')
			return 0;
	return 1;
}

/* 0 missing, 1 empty, 2 record; -1 error (ERR_PIDFILE when garbage). */
static int
load(const char *path, struct pid_record *rec, struct err *e)
{
	char buf[PIDFILE_MAX];
	size_t len;

	if (fs_read_file(path, buf, sizeof buf, &len) < 0) {
		if (errno == ENOENT)
			return 0;
		if (errno == EFBIG) {
			err_ctx_str(e, "path", path);
			return err_set(e, ERR_PIDFILE, "invalid pid file contents in %s (too large)", path);
		}
		return fs_read_fail(e, ERR_IO, "pid file", path);
	}
	if (is_blank(buf, len))
		return 1;
	if (pidrec_parse(buf, len, rec) < 0) {
		err_ctx_str(e, "path", path);
		return err_set(e, ERR_PIDFILE, "invalid pid file contents in %s; "
		    "it was left as it is: remove it if no appd process uses it", path);
	}
	return 2;
}

static int
locked_read(const char *path, enum pidfile_state *st, struct pid_record *rec, struct err *e)
{
	int k = load(path, rec, e);

	if (k < 0)
		return -1;
	if (k == 1 && unlink(path) < 0 && errno != ENOENT)
		return err_sys(e, ERR_IO, "failed to remove stale reservation %s", path);
	*st = k == 2 ? PIDFILE_RUNNING : PIDFILE_MISSING;
	return 0;
}

int
pidfile_peek(const char *path, enum pidfile_state *st, struct pid_record *rec, struct err *e)
{
	char lp[FS_PATH_MAX];
	int k = load(path, rec, e);

	if (k < 0)
		return -1;
	if (k == 2) {
		*st = PIDFILE_RUNNING;
		return 0;
	}
	if (lock_path(path, lp, sizeof lp) < 0)
		return err_set(e, ERR_IO, "path too long: %s", path);
	*st = lock_is_held(lp) == 1 ? PIDFILE_STARTING : PIDFILE_MISSING;
	return 0;
}

int
pidfile_read_state(const char *path, enum pidfile_state *st, struct pid_record *rec,
    struct err *e)
{
	char lp[FS_PATH_MAX];
	int k, fd, r;

	k = load(path, rec, e);
	if (k < 0)
		return -1;
	if (k == 2) {
		*st = PIDFILE_RUNNING;
		return 0;
	}
	if (lock_path(path, lp, sizeof lp) < 0)
		return err_set(e, ERR_IO, "path too long: %s", path);
	fd = lock_acquire(lp, 0);
	if (fd < 0) {
		if (errno == ETIMEDOUT || errno == ENOENT) {
			/* held: a reservation is in flight; ENOENT: no lock dir */
			*st = errno == ETIMEDOUT ? PIDFILE_STARTING : PIDFILE_MISSING;
			return 0;
		}
		return err_sys(e, ERR_IO, "failed to inspect pid lock file %s", lp);
	}
	if (k == 0) {
		lock_release(fd);
		*st = PIDFILE_MISSING;
		return 0;
	}
	/* empty file and a free lock: re-read under the lock */
	r = locked_read(path, st, rec, e);
	lock_release(fd);
	return r;
}

/* Take `path`'s reservation lock, waiting at most timeout_ms.  The fd,
 * or -1 with ERR_BUSY (timeout) / ERR_IO filled in. */
static int
take_lock(const char *path, int64_t timeout_ms, const char *busy_fmt, struct err *e)
{
	char lp[FS_PATH_MAX];
	int fd;

	if (lock_path(path, lp, sizeof lp) < 0)
		return err_set(e, ERR_IO, "path too long: %s", path);
	fd = lock_acquire(lp, timeout_ms);
	if (fd >= 0)
		return fd;
	err_ctx_str(e, "path", lp);
	if (errno == ETIMEDOUT)
		return err_set(e, ERR_BUSY, busy_fmt, path);
	return err_sys(e, ERR_IO, "failed to open pid lock file %s", lp);
}

int
pidfile_wait_reservation(const char *path, int64_t timeout_ms, struct err *e)
{
	int fd = take_lock(path, timeout_ms,
	    "timed out waiting for pid reservation in %s to finish initializing", e);

	if (fd < 0)
		return -1;
	lock_release(fd);
	return 0;
}

/* pidrec_active() failed on the record in `path`. */
static int
inspect_fail(struct err *e, const char *path, const struct pid_record *rec)
{
	if (errno == EREMOTE) {
		err_ctx_str(e, "path", path);
		err_ctx_str(e, "machineId", rec->machine);
		return err_set(e, ERR_BUSY, "%s is the record of a process on another machine "
		    "(%s) sharing this home; it is left as it is", path, rec->machine);
	}
	return err_sys(e, ERR_IO, "failed to inspect process %ld", rec->pid);
}

int
pidfile_refresh_after_stale(const char *path, const struct pid_record *expected,
    enum pidfile_state *st, struct pid_record *rec, struct err *e)
{
	int fd, r = 0;

	fd = take_lock(path, PIDFILE_LOCK_TIMEOUT_MS, "timed out waiting for pid lock of %s", e);
	if (fd < 0)
		return -1;
	if (locked_read(path, st, rec, e) < 0) {
		r = -1;
	} else if (*st == PIDFILE_RUNNING && pidrec_same(rec, expected)) {
		/* EROFS, EPERM (immutable), EACCES: a home that cannot be
		 * written keeps the record; every reader judges it stale by
		 * identity, so it is as good as gone */
		if (unlink(path) < 0 && errno != ENOENT && errno != EROFS &&
		    errno != EPERM && errno != EACCES)
			r = err_sys(e, ERR_IO, "failed to remove stale pid file %s", path);
		else
			*st = PIDFILE_MISSING;
	}
	lock_release(fd);
	return r;
}

int
pidfile_is_starting_or_running(const char *path, enum pidfile_state *st,
    struct pid_record *rec, struct err *e)
{
	int guard;

	for (guard = 0; guard < 100; guard++) {
		struct pid_record stale;
		int a;

		if (pidfile_read_state(path, st, rec, e) < 0)
			return -1;
		if (*st == PIDFILE_MISSING)
			return 0;
		if (*st == PIDFILE_STARTING)
			return 1;
		a = pidrec_active(rec);
		if (a < 0)
			return inspect_fail(e, path, rec);
		if (a == 1)
			return 1;
		stale = *rec;
		if (pidfile_refresh_after_stale(path, &stale, st, rec, e) < 0)
			return -1;
		if (*st == PIDFILE_MISSING)
			return 0;
	}
	return err_set(e, ERR_IO, "pid file %s keeps changing", path);
}

int
pidfile_reserve(const char *path, int64_t timeout_ms, struct pidfile_resv *rv,
    struct pid_record *other, struct err *e)
{
	int fd, guard;

	if (str_copy(rv->path, sizeof rv->path, path) < 0)
		return err_set(e, ERR_IO, "path too long: %s", path);
	rv->lock_fd = take_lock(path, timeout_ms, "timed out waiting for pid lock of %s", e);
	if (rv->lock_fd < 0)
		return -1;
	for (guard = 0; guard < 100; guard++) {
		enum pidfile_state st;
		int a;

		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd >= 0) {
			close(fd);
			return 0;
		}
		if (errno != EEXIST) {
			err_sys(e, ERR_IO, "failed to reserve pid file %s", path);
			break;
		}
		if (locked_read(path, &st, other, e) < 0)
			break;
		if (st == PIDFILE_MISSING)
			continue;
		a = pidrec_active(other);
		if (a < 0) {
			inspect_fail(e, path, other);
			break;
		}
		if (a == 1) {
			lock_release(rv->lock_fd);
			rv->lock_fd = -1;
			return 1;
		}
		if (unlink(path) < 0 && errno != ENOENT) {
			err_sys(e, ERR_IO, "failed to remove stale pid file %s", path);
			break;
		}
	}
	if (e->code == ERR_NONE)
		err_set(e, ERR_IO, "pid file %s keeps changing", path);
	lock_release(rv->lock_fd);
	rv->lock_fd = -1;
	return -1;
}

int
pidfile_publish(struct pidfile_resv *rv, const struct pid_record *rec, struct err *e)
{
	char buf[PIDFILE_MAX];
	int r = 0;

	if (pidrec_format(rec, buf, sizeof buf) < 0 ||
	    fs_write_atomic(rv->path, buf, strlen(buf), 0600) < 0) {
		r = err_sys(e, ERR_IO, "failed to publish pid file %s", rv->path);
		unlink(rv->path);
	}
	lock_release(rv->lock_fd);
	rv->lock_fd = -1;
	return r;
}

void
pidfile_abandon(struct pidfile_resv *rv)
{
	unlink(rv->path);
	lock_release(rv->lock_fd);
	rv->lock_fd = -1;
}

int
pidfile_clear_own(const char *path, const struct pid_record *rec, struct err *e)
{
	enum pidfile_state st;
	struct pid_record cur;

	return pidfile_refresh_after_stale(path, rec, &st, &cur, e);
}
