/*
 * test_pidfile.c -- the seed's pidfile protocol tests, ported by name
 * (seed-contract.md §8 backend/pid.rs), plus identity checks.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "core/base/fsutil.h"
#include "core/lock.h"
#include "core/pidfile.h"
#include "platform/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char dir[64], pidpath[128], lockpath[160];

static int
setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/appd-pidfile-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(pidpath, sizeof pidpath, "%s/app-server.pid", dir);
	snprintf(lockpath, sizeof lockpath, "%s.lock", pidpath);
	return 0;
}

static int
teardown(void **state)
{
	char marker[200];

	(void)state;
	snprintf(marker, sizeof marker, "%s/released", dir);
	unlink(marker);
	unlink(pidpath);
	unlink(lockpath);
	rmdir(dir);
	return 0;
}

static void
write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static void
read_into(const char *path, char *buf, size_t cap)
{
	size_t len;
	assert_int_equal(fs_read_file(path, buf, cap, &len), 0);
}

/* Hold the reservation lock from another open file description. */
static int
hold_lock(void)
{
	int fd = open(lockpath, O_RDWR | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), 0);
	return fd;
}

static void
locked_empty_pid_file_is_treated_as_active_reservation(void **state)
{
	enum pidfile_state st;
	struct pid_record rec;
	struct err e;
	int fd;

	(void)state;
	err_clear(&e);
	write_file(pidpath, "");
	fd = hold_lock();
	assert_int_equal(pidfile_read_state(pidpath, &st, &rec, &e), 0);
	assert_int_equal(st, PIDFILE_STARTING);
	assert_int_equal(access(pidpath, F_OK), 0);     /* kept */
	assert_int_equal(pidfile_is_starting_or_running(pidpath, &st, &rec, &e), 1);
	close(fd);
}

static void
unlocked_empty_pid_file_is_treated_as_stale_reservation(void **state)
{
	enum pidfile_state st;
	struct pid_record rec;
	struct err e;

	(void)state;
	err_clear(&e);
	write_file(pidpath, "  \n");
	assert_int_equal(pidfile_read_state(pidpath, &st, &rec, &e), 0);
	assert_int_equal(st, PIDFILE_MISSING);
	assert_int_equal(access(pidpath, F_OK), -1);    /* deleted */
	assert_int_equal(errno, ENOENT);
}

static void
stop_waits_for_live_reservation_to_resolve(void **state)
{
	struct err e;
	char marker[200];
	pid_t child;
	int ready[2], status;
	char c;

	(void)state;
	err_clear(&e);
	snprintf(marker, sizeof marker, "%s/released", dir);
	write_file(pidpath, "");
	assert_int_equal(pipe(ready), 0);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		int fd = open(lockpath, O_RDWR | O_CREAT, 0600);
		flock(fd, LOCK_EX);
		(void)!write(ready[1], "x", 1);
		usleep(300 * 1000);
		/* the marker exists before the lock goes (with the process) */
		close(open(marker, O_WRONLY | O_CREAT, 0600));
		_exit(0);
	}
	close(ready[1]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	assert_int_equal(pidfile_wait_reservation(pidpath, 5000, &e), 0);
	/* it returned because the holder released, not before */
	assert_int_equal(access(marker, F_OK), 0);
	waitpid(child, &status, 0);
	/* and the crashed reservation's empty file is cleaned by a reader */
	{
		enum pidfile_state st;
		struct pid_record rec;
		assert_int_equal(pidfile_is_starting_or_running(pidpath, &st, &rec, &e), 0);
		assert_int_equal(access(pidpath, F_OK), -1);
	}
	close(ready[0]);
}

static void
stop_wait_for_reservation_is_bounded(void **state)
{
	struct err e;
	int fd;

	(void)state;
	err_clear(&e);
	fd = hold_lock();
	assert_int_equal(pidfile_wait_reservation(pidpath, 200, &e), -1);
	assert_int_equal(e.code, ERR_BUSY);
	assert_non_null(strstr(e.msg, "timed out waiting for pid reservation"));
	close(fd);
}

static void
start_retries_stale_empty_pid_file_under_its_own_lock(void **state)
{
	struct pidfile_resv rv;
	struct pid_record other;
	struct err e;
	char buf[64];

	(void)state;
	err_clear(&e);
	write_file(pidpath, "");       /* crashed reservation, lock free */
	assert_int_equal(pidfile_reserve(pidpath, 1000, &rv, &other, &e), 0);
	/* reserved: empty file, lock held by us */
	read_into(pidpath, buf, sizeof buf);
	assert_string_equal(buf, "");
	assert_int_equal(lock_is_held(lockpath), 1);
	pidfile_abandon(&rv);
	assert_int_equal(access(pidpath, F_OK), -1);
	assert_int_equal(lock_is_held(lockpath), 0);
}

static void
stale_record_cleanup_preserves_replacement_record(void **state)
{
	struct pid_record stale, cur;
	enum pidfile_state st;
	struct err e;
	char before[512], after[512];

	(void)state;
	err_clear(&e);
	memset(&stale, 0, sizeof stale);
	stale.pid = 1;
	strcpy(stale.boot_id, "old");
	stale.start_ticks = 1;
	write_file(pidpath, "{\"pid\":2,\"bootId\":\"new\",\"startTicks\":2,\"pgid\":2,\"exe\":\"\"}");
	read_into(pidpath, before, sizeof before);
	assert_int_equal(pidfile_refresh_after_stale(pidpath, &stale, &st, &cur, &e), 0);
	assert_int_equal(st, PIDFILE_RUNNING);
	assert_int_equal(cur.pid, 2);
	read_into(pidpath, after, sizeof after);
	assert_string_equal(before, after);
	/* the same record is deleted */
	assert_int_equal(pidfile_refresh_after_stale(pidpath, &cur, &st, &stale, &e), 0);
	assert_int_equal(st, PIDFILE_MISSING);
	assert_int_equal(access(pidpath, F_OK), -1);
}

static void
live_process_with_other_start_time_is_stale(void **state)
{
	struct pid_record rec, cur;
	enum pidfile_state st;
	struct err e;
	pid_t child;
	int status;

	(void)state;
	err_clear(&e);
	child = fork();
	if (child == 0) {
		pause();
		_exit(0);
	}
	assert_int_equal(pidrec_capture(child, &rec), 0);
	assert_int_equal(pidrec_active(&rec), 1);
	rec.start_ticks += 1;
	assert_int_equal(pidrec_active(&rec), 0);
	/* signalling by identity refuses it */
	assert_int_equal(proc_signal_ident(child, rec.start_ticks, SIGKILL, 0), -1);
	assert_int_equal(errno, ESRCH);
	{
		char text[1024];
		assert_int_equal(pidrec_format(&rec, text, sizeof text), 0);
		write_file(pidpath, text);
	}
	assert_int_equal(pidfile_is_starting_or_running(pidpath, &st, &cur, &e), 0);
	assert_int_equal(access(pidpath, F_OK), -1);
	assert_int_equal(waitpid(child, &status, WNOHANG), 0);   /* still alive */
	/* other boot id: stale too */
	rec.start_ticks -= 1;
	assert_int_equal(pidrec_active(&rec), 1);
	strcpy(rec.boot_id, "00000000-0000-0000-0000-000000000000");
	assert_int_equal(pidrec_active(&rec), 0);
	kill(child, SIGKILL);
	waitpid(child, &status, 0);
}

static void
zombie_counts_as_dead(void **state)
{
	struct pid_record rec;
	struct proc_info pi;
	siginfo_t si;
	pid_t child;
	int p[2], status;
	char c;

	(void)state;
	assert_int_equal(pipe(p), 0);
	child = fork();
	if (child == 0) {
		/* live until the parent has recorded our identity */
		close(p[1]);
		(void)read(p[0], &c, 1);
		_exit(0);
	}
	close(p[0]);
	assert_int_equal(pidrec_capture(child, &rec), 0);
	assert_int_equal(proc_matches(child, rec.start_ticks, NULL), 1);
	close(p[1]);
	/* wait until it has exited, leaving it a zombie (WNOWAIT: not reaped) */
	memset(&si, 0, sizeof si);
	assert_int_equal(waitid(P_PID, (id_t)child, &si, WEXITED | WNOWAIT), 0);
	assert_int_equal(si.si_pid, child);
	assert_int_equal(proc_read(child, &pi), PROC_ZOMBIE);
	assert_int_equal(proc_matches(child, rec.start_ticks, NULL), 0);
	assert_int_equal(waitpid(child, &status, 0), child);
}

static void
garbage_pidfile_is_an_error_naming_the_file(void **state)
{
	enum pidfile_state st;
	struct pid_record rec;
	struct err e;
	char buf[64];

	(void)state;
	err_clear(&e);
	write_file(pidpath, "{\"pid\":\"x\"}");
	assert_int_equal(pidfile_read_state(pidpath, &st, &rec, &e), -1);
	assert_int_equal(e.code, ERR_PIDFILE);
	assert_non_null(strstr(e.msg, pidpath));
	read_into(pidpath, buf, sizeof buf);
	assert_string_equal(buf, "{\"pid\":\"x\"}");
}

static void
reserve_reports_an_active_record(void **state)
{
	struct pidfile_resv rv;
	struct pid_record self, other;
	struct err e;
	char text[1024];

	(void)state;
	err_clear(&e);
	assert_int_equal(pidrec_capture(getpid(), &self), 0);
	assert_int_equal(pidrec_format(&self, text, sizeof text), 0);
	write_file(pidpath, text);
	assert_int_equal(pidfile_reserve(pidpath, 1000, &rv, &other, &e), 1);
	assert_int_equal(other.pid, getpid());
	assert_int_equal(lock_is_held(lockpath), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(locked_empty_pid_file_is_treated_as_active_reservation, setup, teardown),
		cmocka_unit_test_setup_teardown(unlocked_empty_pid_file_is_treated_as_stale_reservation, setup, teardown),
		cmocka_unit_test_setup_teardown(stop_waits_for_live_reservation_to_resolve, setup, teardown),
		cmocka_unit_test_setup_teardown(stop_wait_for_reservation_is_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(start_retries_stale_empty_pid_file_under_its_own_lock, setup, teardown),
		cmocka_unit_test_setup_teardown(stale_record_cleanup_preserves_replacement_record, setup, teardown),
		cmocka_unit_test_setup_teardown(live_process_with_other_start_time_is_stale, setup, teardown),
		cmocka_unit_test_setup_teardown(zombie_counts_as_dead, setup, teardown),
		cmocka_unit_test_setup_teardown(garbage_pidfile_is_an_error_naming_the_file, setup, teardown),
		cmocka_unit_test_setup_teardown(reserve_reports_an_active_record, setup, teardown),
	};
	return cmocka_run_group_tests_name("pidfile", tests, NULL, NULL);
}
