/*
 * reactor.h -- the event loop: fd readiness, one-shot timers, signals and
 * child exits, multiplexed in one thread.
 *
 * Shape (after Redis's ae and skalibs' iopause): one `struct reactor` per
 * process, caller-owned (no malloc); a fixed table of REACTOR_MAX_WATCHES
 * watches addressed by small integer handles; a binary min-heap of timers on
 * a monotonic millisecond clock; level-triggered readiness.
 *
 * Every event carries the watch's handle and generation (packed into
 * epoll_event.data.u64 / kevent.udata), so a watch removed (or removed and
 * reused) while a batch is being dispatched never fires again.
 *
 * Errors: functions returning int give a handle (>= 0) or 0 on success and
 * -1 with errno set on failure (ENOSPC: table full, EBADF/EINVAL: bad
 * handle or arguments). Nothing here prints or exits.
 *
 * Backends and how each call maps:
 *
 *   call                 epoll (Linux, reactor_epoll.c)      kqueue (FreeBSD/macOS, reactor_kqueue.c)
 *   reactor_init         epoll_create1(EPOLL_CLOEXEC)         kqueue() + FD_CLOEXEC
 *   reactor_io_add/set   epoll_ctl ADD/MOD, EPOLLIN/OUT       EVFILT_READ / EVFILT_WRITE, EV_ADD
 *                                                             and EV_DELETE per direction
 *   reactor_io_del       epoll_ctl DEL                        EV_DELETE on the registered filters
 *   reactor_timer_*      heap only; the earliest deadline     heap only, same code: the earliest
 *                        becomes epoll_wait's timeout         deadline is kevent's timeout
 *   reactor_signal_add   sigprocmask(SIG_BLOCK) + one         sigprocmask(SIG_BLOCK) + EVFILT_SIGNAL
 *                        signalfd(SFD_CLOEXEC|SFD_NONBLOCK)   per signal; the pending one is taken
 *                        re-armed with the whole trapped set  with sigwait when reported
 *   reactor_child_add    pidfd_open(pid) watched for EPOLLIN,  EVFILT_PROC NOTE_EXIT, EV_ONESHOT;
 *                        reaped with waitid(P_PIDFD, WNOHANG); reaped with waitpid(WNOHANG);
 *                                                             ESRCH (a zombie) => reap at once
 *                        ENOSYS => SIGCHLD on the signalfd +
 *                        waitpid(pid, WNOHANG) per child
 *   reactor_pid_add      pidfd_open(pid), EPOLLIN on exit,    EVFILT_PROC NOTE_EXIT
 *                        no reaping (any process, not only
 *                        our children)
 *   reactor_run_once     epoll_wait(timeout = earliest        kevent(timeout = earliest deadline)
 *                        deadline, capped by max_wait)
 *
 * Signals trapped with reactor_signal_add are blocked in the process; a
 * child must restore the mask reactor_child_sigmask gives before execve
 * (core/spawn.c does).
 *
 * Source of the behaviour: epoll(7), signalfd(2), pidfd_open(2), waitid(2),
 * kqueue(2); design after updater-reactor-style.md section 3.10.
 */
#ifndef APPD_REACTOR_H
#define APPD_REACTOR_H

#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

#define REACTOR_MAX_WATCHES 64
#define REACTOR_MAX_SIGNALS 8

/* Interest / event bits for IO watches. */
#define REACTOR_READ  0x1u
#define REACTOR_WRITE 0x2u
#define REACTOR_ERR   0x4u   /* EPOLLERR/EPOLLHUP/EV_EOF: reported, never requested */

enum reactor_kind {
	REACTOR_FREE = 0,
	REACTOR_IO,
	REACTOR_TIMER,
	REACTOR_SIGNAL,
	REACTOR_CHILD,
	REACTOR_PID
};

struct reactor;

/*
 * Callback for every kind.  `events` is:
 *   IO     : REACTOR_READ / REACTOR_WRITE / REACTOR_ERR bits
 *   TIMER  : 0 (the timer is already disarmed and its watch removed;
 *            add a new timer to repeat)
 *   SIGNAL : the signal number
 *   CHILD  : the wait status of the reaped child, as from waitpid(2)
 *            (use WIFEXITED etc.); the watch is already removed.  -1 if
 *            the child exited but was reaped by someone else (status lost)
 *   PID    : 0; the process has exited; the watch is already removed
 */
typedef void reactor_cb(struct reactor *r, int handle, int events, void *arg);

struct reactor_watch {
	enum reactor_kind kind;
	uint32_t gen;          /* bumped at every add and del */
	int fd;                /* IO fd, or the pidfd for CHILD/PID (-1 if none) */
	int ident;             /* signo for SIGNAL, pid for CHILD/PID */
	unsigned mask;         /* IO interest */
	uint64_t deadline;     /* TIMER: absolute ms on the monotonic clock */
	uint64_t seq;          /* TIMER: insertion order, ties broken FIFO */
	int heap_index;        /* TIMER: position in the heap, -1 if not armed */
	int pending;           /* CHILD: known to have exited; reaped and fired next turn */
	reactor_cb *cb;
	void *arg;
};

struct reactor {
	int backend_fd;                 /* epoll or kqueue fd */
	int signal_fd;                  /* Linux signalfd, -1 until a signal is trapped */
	int signal_handle;              /* internal watch for signal_fd, -1 if none */
	sigset_t trapped;               /* signals routed through the reactor */
	sigset_t saved_mask;            /* mask before the first trap, restored by fini */
	int nchild_fallback;            /* CHILD watches using the SIGCHLD fallback */
	int no_pidfd;                   /* pidfd_open unusable (ENOSYS, or forced) */
	uint64_t now_ms;                /* cached at every turn; reactor_now() */
	uint64_t timer_seq;
	int stopping;
	int nheap;
	int nw;                         /* slots ever used: w[nw..] are free and
	                                 * untouched (a resident process keeps
	                                 * only the pages its watches use) */
	int heap[REACTOR_MAX_WATCHES];  /* handles of armed timers, min-heap */
	struct reactor_watch w[REACTOR_MAX_WATCHES];
};

/* Monotonic clock in milliseconds (CLOCK_MONOTONIC). */
uint64_t reactor_clock_ms(void);

/* Set up `r` (caller-owned storage).  0 or -1/errno.
 * If the environment has APPD_REACTOR_NO_PIDFD=1 the Linux backend acts as
 * if pidfd_open were missing (SIGCHLD fallback; reactor_pid_add gives
 * ENOSYS); meant for tests. */
int reactor_init(struct reactor *r);
/* Close the backend fds, restore the signal mask.  Watches' own fds
 * (IO fds) are the caller's and are not closed; pidfds are. */
void reactor_fini(struct reactor *r);
/* The time cached at the start of the current turn, in ms. */
uint64_t reactor_now(const struct reactor *r);

/* Watch `fd` (not owned) for `mask` (REACTOR_READ|REACTOR_WRITE, may be 0
 * to keep it registered but idle).  Returns the handle. */
int reactor_io_add(struct reactor *r, int fd, unsigned mask, reactor_cb *cb, void *arg);
int reactor_io_set(struct reactor *r, int handle, unsigned mask);

/* One-shot timer firing `delay_ms` after now.  Returns the handle. */
int reactor_timer_add(struct reactor *r, uint64_t delay_ms, reactor_cb *cb, void *arg);

/* Route `signo` through the loop (blocked + signalfd).  Returns the handle. */
int reactor_signal_add(struct reactor *r, int signo, reactor_cb *cb, void *arg);

/* Watch our child `pid` for exit and reap it.  If the child has already
 * exited (even before the call), the callback still fires once on the next
 * turn with its status.  Returns the handle; -1/ECHILD if `pid` is not an
 * unreaped child of ours. */
int reactor_child_add(struct reactor *r, pid_t pid, reactor_cb *cb, void *arg);

/* 1 when a reactor_child_add watch for `pid` is armed (its exit will be
 * reaped and reported there: nobody else may reap it), else 0. */
int reactor_child_watched(const struct reactor *r, pid_t pid);

/* Watch any process `pid` (not necessarily our child) for exit; no reaping.
 * Needs pidfd (Linux >= 5.3) or kqueue; else -1/ENOSYS.  ESRCH if the
 * process does not exist.  Note a zombie counts as exited. */
int reactor_pid_add(struct reactor *r, pid_t pid, reactor_cb *cb, void *arg);

/* Remove any watch (IO, timer, signal, child, pid).  Safe during dispatch:
 * a pending event for the removed watch is dropped.  Removing a CHILD watch
 * leaves the child unreaped.  0, or -1/EBADF for a stale handle. */
int reactor_del(struct reactor *r, int handle);

/* Milliseconds until `handle` (a timer) fires, or -1 if not armed. */
int64_t reactor_timer_remaining(const struct reactor *r, int handle);

/* Wait at most `max_wait_ms` (-1: until the next timer or event) and
 * dispatch what fired: IO, signals and child exits first, then expired
 * timers in deadline order.  Returns the number of callbacks run, or -1
 * with errno (EINTR is retried inside). */
int reactor_run_once(struct reactor *r, int64_t max_wait_ms);

/* Loop reactor_run_once until reactor_stop() is called or no watch is
 * left.  0, or -1/errno. */
int reactor_run(struct reactor *r);
void reactor_stop(struct reactor *r);

/* The signal mask a child should exec with: the mask in force before any
 * reactor_signal_add.  Use in the child between fork and execve. */
void reactor_child_sigmask(const struct reactor *r, sigset_t *out);

#endif
