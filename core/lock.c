/* lock.c -- see lock.h. */
#include "core/lock.h"
#include "core/base/scan.h"
#include "core/base/fmt.h"
#include "core/base/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static void
on_alarm(int sig)
{
	(void)sig;
}

static uint64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
arm(int64_t ms)
{
	struct itimerval it;

	if (ms < 1)
		ms = 1;
	it.it_value.tv_sec = ms / 1000;
	it.it_value.tv_usec = (ms % 1000) * 1000;
	/* keeps firing after the deadline: closes the check-then-block race */
	it.it_interval.tv_sec = 0;
	it.it_interval.tv_usec = 20000;
	setitimer(ITIMER_REAL, &it, NULL);
}

int
lock_acquire(const char *path, int64_t timeout_ms)
{
	struct sigaction sa, old;
	struct itimerval off;
	sigset_t alrm, oldmask;
	uint64_t deadline;
	int fd, r, e;

	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	/* a read-only home (remounted, a full-disk emergency): flock needs
	 * no write access, so an existing lock file still serialises us */
	if (fd < 0 && (errno == EROFS || errno == EACCES || errno == EPERM))
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -1;
	if (flock(fd, LOCK_EX | LOCK_NB) == 0)
		return fd;
	if (errno != EWOULDBLOCK) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	if (timeout_ms <= 0) {
		close(fd);
		errno = ETIMEDOUT;
		return -1;
	}
	deadline = mono_ms() + (uint64_t)timeout_ms;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_alarm;       /* no SA_RESTART: flock returns EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, &old);
	sigemptyset(&alrm);
	sigaddset(&alrm, SIGALRM);
	sigprocmask(SIG_UNBLOCK, &alrm, &oldmask);
	for (;;) {
		uint64_t now = mono_ms();

		if (now >= deadline) {
			r = -1;
			e = ETIMEDOUT;
			break;
		}
		arm((int64_t)(deadline - now));
		r = flock(fd, LOCK_EX);
		e = errno;
		if (r == 0 || e != EINTR)
			break;
	}
	memset(&off, 0, sizeof off);
	setitimer(ITIMER_REAL, &off, NULL);
	sigprocmask(SIG_SETMASK, &oldmask, NULL);
	sigaction(SIGALRM, &old, NULL);
	if (r < 0) {
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

int
lock_is_held(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
		close(fd);
		return 0;
	}
	close(fd);
	return errno == EWOULDBLOCK ? 1 : -1;
}

int
lock_note_holder(int fd, const char *command)
{
	char buf[128];
	int n = fmt_n(buf, sizeof buf, "%ld %.60s %lld\n", (long)getpid(),
	    command, (long long)wall_ms());

	if (ftruncate(fd, 0) < 0)
		return -1;
	return pwrite(fd, buf, (size_t)n, 0) == n ? 0 : -1;
}

int
lock_read_holder(const char *path, struct lock_holder *h)
{
	char buf[128];
	const char *p = buf;
	size_t len;
	long long pid, since;

	if (fs_read_file(path, buf, sizeof buf, &len) < 0)
		return -1;
	if (scan_ll(&p, &pid) < 0 || scan_lit(&p, " ") < 0 ||
	    scan_word(&p, h->command, sizeof h->command) < 0 || scan_lit(&p, " ") < 0 ||
	    scan_ll(&p, &since) < 0)
		return -1;
	h->pid = (long)pid;
	h->since_ms = since;
	return 0;
}

void
lock_release(int fd)
{
	if (fd >= 0)
		close(fd);
}
