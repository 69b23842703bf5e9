/*
 * reactor_kqueue.c -- FreeBSD and macOS backend of the reactor
 * (reactor_backend.h) over kqueue(2):
 *
 *   fd readiness   EVFILT_READ / EVFILT_WRITE, one registration per filter,
 *                  level-triggered (no EV_CLEAR), EV_EOF reported as
 *                  REACTOR_ERR with the direction, as EPOLLHUP is
 *   signals        EVFILT_SIGNAL per trapped signal.  reactor.c keeps them
 *                  blocked (sigprocmask), exactly as for signalfd: kqueue
 *                  records a signal when it is posted, blocked or not, and
 *                  a child inherits no SIG_IGN disposition across execve.
 *                  What stays pending is consumed with sigwait(2) when its
 *                  event is read, so reactor_fini's unblocking cannot
 *                  deliver a signal already handled.
 *   process exits  EVFILT_PROC NOTE_EXIT (NOTE_EXITSTATUS on macOS, not
 *                  needed: the status comes from waitpid), EV_ONESHOT;
 *                  any process, not only our children.  A watch has no fd
 *                  of its own: w->fd holds the kqueue's, so that reactor.c
 *                  does not take it for a SIGCHLD-fallback child.
 *   timers         none in the kernel: reactor.c's heap gives kevent its
 *                  timeout, the same code as epoll's, so both backends
 *                  order and cancel timers identically and a timer costs
 *                  no registration (EVFILT_TIMER differs in units between
 *                  FreeBSD and macOS and would need one knote each).
 *
 * The generation tag travels in kevent.udata: the handle in the low bits,
 * the generation above; where a pointer has 32 bits, 24 bits of it, and a
 * mismatch in those is a stale event (the watch was reused).
 *
 * Source: kqueue(2) of FreeBSD 14 and macOS, sigwait(2), waitpid(2);
 * on Linux it is checked against libkqueue (make check-kqueue).
 */
#include "platform/reactor_backend.h"

#include <sys/types.h>
#include <sys/event.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#define TAG_HBITS 8u            /* REACTOR_MAX_WATCHES (64) fits */

static void *
tag_of(const struct reactor *r, int h)
{
	if (sizeof(void *) >= 8)
		return (void *)(uintptr_t)REACTOR_TAG(r, h);
	return (void *)(uintptr_t)(((uint32_t)h & 0xffu) | (r->w[h].gen << TAG_HBITS));
}

/* The handle and generation an event was registered with. */
static void
tag_decode(const struct reactor *r, void *udata, int *h, uint32_t *gen)
{
	uint64_t t = (uint64_t)(uintptr_t)udata;

	if (sizeof(void *) >= 8) {
		*h = (int)(uint32_t)t;
		*gen = (uint32_t)(t >> 32);
		return;
	}
	*h = (int)(t & 0xffu);
	if (*h >= REACTOR_MAX_WATCHES) {
		*gen = 0;
		return;
	}
	/* same low bits: the current generation; else surely not it */
	*gen = (uint32_t)(t >> TAG_HBITS) == (r->w[*h].gen & (UINT32_MAX >> TAG_HBITS)) ?
	    r->w[*h].gen : r->w[*h].gen + 1;
}

static int
kq_change(struct reactor *r, uintptr_t ident, short filter, unsigned short flags,
	  unsigned fflags, void *udata)
{
	struct kevent ch;
	int rc;

	EV_SET(&ch, ident, filter, flags, fflags, 0, udata);
	do
		rc = kevent(r->backend_fd, &ch, 1, NULL, 0, NULL);
	while (rc < 0 && errno == EINTR);
	return rc < 0 ? -1 : 0;
}

int
reactor_be_init(struct reactor *r)
{
	int fd = kqueue();

	if (fd < 0)
		return -1;
	if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	r->backend_fd = fd;
	return 0;
}

void
reactor_be_fini(struct reactor *r)
{
	if (r->backend_fd >= 0)
		close(r->backend_fd);   /* drops every registration */
	r->backend_fd = -1;
}

int
reactor_be_io(struct reactor *r, int h, unsigned old, unsigned mask)
{
	static const struct { unsigned bit; short filter; } dir[] = {
		{ REACTOR_READ, EVFILT_READ }, { REACTOR_WRITE, EVFILT_WRITE },
	};
	int fd = r->w[h].fd;

	for (size_t i = 0; i < sizeof dir / sizeof dir[0]; i++) {
		int was = (old & dir[i].bit) != 0, want = (mask & dir[i].bit) != 0;

		if (want && !was &&
		    kq_change(r, (uintptr_t)fd, dir[i].filter, EV_ADD | EV_ENABLE, 0,
		    tag_of(r, h)) < 0)
			return -1;
		if (!want && was)
			(void)kq_change(r, (uintptr_t)fd, dir[i].filter, EV_DELETE, 0, NULL);
	}
	return 0;
}

int
reactor_be_signals(struct reactor *r)
{
	for (int s = 1; s < NSIG; s++) {
		if (s == SIGKILL || s == SIGSTOP)
			continue;
		if (sigismember(&r->trapped, s) == 1) {
			if (kq_change(r, (uintptr_t)s, EVFILT_SIGNAL, EV_ADD | EV_ENABLE, 0,
			    NULL) < 0)
				return -1;
		} else {
			/* ENOENT for one never registered: nothing to undo */
			(void)kq_change(r, (uintptr_t)s, EVFILT_SIGNAL, EV_DELETE, 0, NULL);
		}
	}
	return 0;
}

int
reactor_be_proc(struct reactor *r, int h)
{
	unsigned fflags = NOTE_EXIT;

#if defined(NOTE_EXITSTATUS)
	fflags |= NOTE_EXITSTATUS;
#endif
	if (r->no_pidfd) {
		/* the tests' switch for the pidfd-less path; same meaning here */
		errno = ENOSYS;
		return -1;
	}
	if (kq_change(r, (uintptr_t)r->w[h].ident, EVFILT_PROC, EV_ADD | EV_ONESHOT, fflags,
	    tag_of(r, h)) < 0)
		return -1;      /* ESRCH: gone, or a zombie (reactor.c checks) */
	r->w[h].fd = r->backend_fd;
	return 0;
}

int
reactor_be_reap(struct reactor *r, int h, int *status)
{
	return reactor_reap_pid((pid_t)r->w[h].ident, status);
}

void
reactor_be_forget(struct reactor *r, int h)
{
	struct reactor_watch *w = &r->w[h];

	if (w->fd < 0)
		return;
	if (w->kind == REACTOR_IO) {
		/* not our fd; once closed, the kernel dropped its knotes */
		(void)reactor_be_io(r, h, w->mask, 0);
		return;
	}
	/* one-shot: already gone if it fired (ENOENT) */
	(void)kq_change(r, (uintptr_t)w->ident, EVFILT_PROC, EV_DELETE, 0, NULL);
	w->fd = -1;
}

/* A trapped signal that kqueue reported is still pending (it is blocked):
 * take it, so that it is not delivered again later. */
static void
consume_signal(int signo)
{
	sigset_t pend, one;
	int got;

	if (sigpending(&pend) < 0 || sigismember(&pend, signo) != 1)
		return;
	sigemptyset(&one);
	sigaddset(&one, signo);
	(void)sigwait(&one, &got);
}

int
reactor_be_wait(struct reactor *r, int timeout_ms, struct reactor_fired *out)
{
	struct kevent ev[REACTOR_BATCH];
	struct timespec ts, *tp = NULL;
	int i, n, k = 0;

	if (timeout_ms >= 0) {
		ts.tv_sec = timeout_ms / 1000;
		ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
		tp = &ts;
	}
	n = kevent(r->backend_fd, NULL, 0, ev, REACTOR_BATCH, tp);
	if (n < 0)
		return -1;
	for (i = 0; i < n && k < REACTOR_FIRED_MAX; i++) {
		unsigned e = 0;
		uint32_t gen;
		int h;

		if (ev[i].filter == EVFILT_SIGNAL) {
			consume_signal((int)ev[i].ident);
			out[k].handle = -1;
			out[k].gen = 0;
			out[k++].events = (unsigned)ev[i].ident;
			continue;
		}
		tag_decode(r, ev[i].udata, &h, &gen);
		if (ev[i].filter == EVFILT_READ)
			e = REACTOR_READ;
		else if (ev[i].filter == EVFILT_WRITE)
			e = REACTOR_WRITE;
		if (ev[i].flags & (EV_EOF | EV_ERROR))
			e |= REACTOR_ERR;
		out[k].handle = h;
		out[k].gen = gen;
		out[k++].events = e;
	}
	return k;
}
