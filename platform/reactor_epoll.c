/*
 * reactor_epoll.c -- Linux backend of the reactor (reactor_backend.h):
 * level-triggered epoll, one signalfd for the trapped signals, pidfds for
 * process exits.
 */
#include "platform/reactor_backend.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434      /* same number on every architecture but alpha */
#endif
/* waitid(P_PIDFD, ...), Linux >= 5.4; not a macro in musl, absent in old
 * libcs. */
#define REACTOR_P_PIDFD ((idtype_t)3)

int
reactor_be_init(struct reactor *r)
{
	r->backend_fd = epoll_create1(EPOLL_CLOEXEC);
	return r->backend_fd < 0 ? -1 : 0;
}

void
reactor_be_fini(struct reactor *r)
{
	if (r->signal_fd >= 0)
		close(r->signal_fd);
	r->signal_fd = -1;
	if (r->signal_handle >= 0)
		reactor_slot_put(r, r->signal_handle);
	r->signal_handle = -1;
	if (r->backend_fd >= 0)
		close(r->backend_fd);
	r->backend_fd = -1;
}

static int
ep_ctl(struct reactor *r, int op, int h, unsigned mask)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof ev);      /* DEL wants a non-NULL event before 2.6.9 */
	ev.events = (mask & REACTOR_READ ? EPOLLIN : 0) |
	    (mask & REACTOR_WRITE ? EPOLLOUT : 0);
	ev.data.u64 = REACTOR_TAG(r, h);
	return epoll_ctl(r->backend_fd, op, r->w[h].fd, &ev);
}

/* An idle watch (mask 0) is left out of the epoll set: epoll would still
 * report EPOLLHUP/EPOLLERR for it, level-triggered, and spin the loop. */
int
reactor_be_io(struct reactor *r, int h, unsigned old, unsigned mask)
{
	if (old == 0 && mask == 0)
		return 0;
	if (old == 0)
		return ep_ctl(r, EPOLL_CTL_ADD, h, mask);
	if (mask == 0)
		return ep_ctl(r, EPOLL_CTL_DEL, h, 0);
	return ep_ctl(r, EPOLL_CTL_MOD, h, mask);
}

/* The first trapped signal creates the signalfd and its internal watch;
 * later changes re-arm the same fd with the whole set. */
int
reactor_be_signals(struct reactor *r)
{
	int fd, h, e;

	if (r->signal_fd >= 0)
		return signalfd(r->signal_fd, &r->trapped, 0) < 0 ? -1 : 0;
	fd = signalfd(-1, &r->trapped, SFD_CLOEXEC | SFD_NONBLOCK);
	if (fd < 0)
		return -1;
	if ((h = reactor_slot_get(r, REACTOR_IO)) < 0) {
		close(fd);
		errno = ENOSPC;
		return -1;
	}
	r->w[h].fd = fd;
	r->w[h].mask = REACTOR_READ;
	if (ep_ctl(r, EPOLL_CTL_ADD, h, REACTOR_READ) < 0) {
		e = errno;
		reactor_slot_put(r, h);
		close(fd);
		errno = e;
		return -1;
	}
	r->signal_fd = fd;
	r->signal_handle = h;
	return 0;
}

int
reactor_be_proc(struct reactor *r, int h)
{
	long fd;
	int e;

	if (r->no_pidfd) {
		errno = ENOSYS;
		return -1;
	}
	/* pidfds are always close-on-exec. */
	fd = syscall(SYS_pidfd_open, (pid_t)r->w[h].ident, 0u);
	if (fd < 0) {
		/* EPERM: a seccomp filter refusing unknown syscalls. */
		if (errno == ENOSYS || errno == EPERM) {
			r->no_pidfd = 1;
			errno = ENOSYS;
		}
		return -1;
	}
	r->w[h].fd = (int)fd;
	if (ep_ctl(r, EPOLL_CTL_ADD, h, REACTOR_READ) < 0) {
		e = errno;
		close((int)fd);
		r->w[h].fd = -1;
		errno = e;
		return -1;
	}
	return 0;
}

/* siginfo from waitid to a waitpid(2)-style status. */
static int
wait_status(const siginfo_t *si)
{
	switch (si->si_code) {
	case CLD_EXITED:
		return (si->si_status & 0xff) << 8;
	case CLD_KILLED:
		return si->si_status & 0x7f;
	case CLD_DUMPED:
		return (si->si_status & 0x7f) | 0x80;
	default:
		return -1;
	}
}

int
reactor_be_reap(struct reactor *r, int h, int *status)
{
	struct reactor_watch *w = &r->w[h];
	siginfo_t si;

	for (;;) {
		memset(&si, 0, sizeof si);
		if (waitid(REACTOR_P_PIDFD, (id_t)w->fd, &si, WEXITED | WNOHANG) == 0) {
			if (si.si_pid == 0)
				return 0;
			*status = wait_status(&si);
			return 1;
		}
		if (errno != EINTR)
			break;
	}
	if (errno != EINVAL) {
		*status = -1;   /* ECHILD: reaped by someone else */
		return 1;
	}
	/* Linux 5.3 has pidfd_open but not P_PIDFD.  The pid is safe to use:
	 * our unreaped child keeps it. */
	return reactor_reap_pid((pid_t)w->ident, status);
}

void
reactor_be_forget(struct reactor *r, int h)
{
	struct reactor_watch *w = &r->w[h];

	if (w->fd < 0)
		return;
	if (w->kind == REACTOR_IO) {
		/* Not our fd; it may be closed already (then epoll dropped it). */
		if (w->mask != 0)
			ep_ctl(r, EPOLL_CTL_DEL, h, 0);
		return;
	}
	/* Delete explicitly: a forked child may still share the pidfd. */
	ep_ctl(r, EPOLL_CTL_DEL, h, 0);
	close(w->fd);
	w->fd = -1;
}

/* Drain the signalfd; one entry per distinct signal, in arrival order. */
static int
read_signals(struct reactor *r, struct reactor_fired *out, int max)
{
	struct signalfd_siginfo si[2];  /* the loop drains the rest; small:
	                                 * this frame is under every wait */
	sigset_t seen;
	ssize_t n;
	size_t i;
	int k = 0;

	sigemptyset(&seen);
	for (;;) {
		n = read(r->signal_fd, si, sizeof si);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;  /* EAGAIN: drained */
		for (i = 0; i < (size_t)n / sizeof si[0]; i++) {
			int s = (int)si[i].ssi_signo;

			if (s <= 0 || s >= NSIG || sigismember(&seen, s) == 1 || k >= max)
				continue;
			sigaddset(&seen, s);
			out[k].handle = -1;
			out[k].gen = 0;
			out[k++].events = (unsigned)s;
		}
	}
	return k;
}

int
reactor_be_wait(struct reactor *r, int timeout_ms, struct reactor_fired *out)
{
	struct epoll_event ev[REACTOR_BATCH];
	int i, n, k = 0;

	n = epoll_wait(r->backend_fd, ev, REACTOR_BATCH, timeout_ms);
	if (n < 0)
		return -1;
	for (i = 0; i < n && k < REACTOR_FIRED_MAX; i++) {
		int h = (int)(uint32_t)ev[i].data.u64;
		uint32_t gen = (uint32_t)(ev[i].data.u64 >> 32);
		unsigned e = 0;

		if (h == r->signal_handle && gen == r->w[h].gen) {
			k += read_signals(r, out + k, REACTOR_FIRED_MAX - k);
			continue;
		}
		if (ev[i].events & EPOLLIN)
			e |= REACTOR_READ;
		if (ev[i].events & EPOLLOUT)
			e |= REACTOR_WRITE;
		if (ev[i].events & (EPOLLERR | EPOLLHUP))
			e |= REACTOR_ERR;
		out[k].handle = h;
		out[k].gen = gen;
		out[k++].events = e;
	}
	return k;
}
