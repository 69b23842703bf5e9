/*
 * reactor.c -- see reactor.h.  Backend-independent parts: the watch table,
 * the timer heap, signal bookkeeping, the SIGCHLD fallback for children and
 * dispatch.  The kernel side lives in reactor_epoll.c (reactor_backend.h).
 */
#include "platform/reactor.h"
#include "platform/reactor_backend.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

/* A watch as seen when a batch started: fire only if still the same. */
struct reactor_snap {
	int h;
	uint32_t gen;
};

uint64_t
reactor_clock_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t
reactor_now(const struct reactor *r)
{
	return r->now_ms;
}

/* ---- watch table ---- */

int
reactor_slot_get(struct reactor *r, enum reactor_kind kind)
{
	struct reactor_watch *w;
	uint32_t gen;
	int h;

	for (h = 0; h < r->nw; h++)
		if (r->w[h].kind == REACTOR_FREE)
			break;
	if (h == r->nw) {
		if (r->nw == REACTOR_MAX_WATCHES) {
			errno = ENOSPC;
			return -1;
		}
		r->w[r->nw++].gen = 0;   /* first use of the slot */
	}
	w = &r->w[h];
	gen = w->gen + 1;
	memset(w, 0, sizeof *w);
	w->kind = kind;
	w->gen = gen;
	w->fd = -1;
	w->heap_index = -1;
	return h;
}

void
reactor_slot_put(struct reactor *r, int h)
{
	struct reactor_watch *w = &r->w[h];
	int saved = errno;      /* callers undo a failed add: keep its errno */

	w->kind = REACTOR_FREE;
	w->gen++;               /* any event still queued for it is now stale */
	w->fd = -1;
	w->heap_index = -1;
	w->pending = 0;
	w->cb = NULL;
	w->arg = NULL;
	errno = saved;
}

/* A new watch of `kind` with its callback, or -1 (ENOSPC). */
static int
watch_new(struct reactor *r, enum reactor_kind kind, int ident, reactor_cb *cb, void *arg)
{
	int h = reactor_slot_get(r, kind);

	if (h < 0)
		return -1;
	r->w[h].ident = ident;
	r->w[h].cb = cb;
	r->w[h].arg = arg;
	return h;
}

/* A handle the caller may use: in range, live, not the internal signalfd. */
static struct reactor_watch *
watch_get(struct reactor *r, int h)
{
	if (h < 0 || h >= r->nw || h == r->signal_handle ||
	    r->w[h].kind == REACTOR_FREE) {
		errno = EBADF;
		return NULL;
	}
	return &r->w[h];
}

static int
user_watches(const struct reactor *r)
{
	int h, n = 0;

	for (h = 0; h < r->nw; h++)
		if (r->w[h].kind != REACTOR_FREE && h != r->signal_handle)
			n++;
	return n;
}

/* A CHILD watch waiting for SIGCHLD (no pidfd, not reaped yet). */
static int
is_fallback_child(const struct reactor_watch *w)
{
	return w->kind == REACTOR_CHILD && w->fd < 0 && !w->pending;
}

/* ---- timer heap, ordered by (deadline, seq) ---- */

static int
timer_before(const struct reactor *r, int a, int b)
{
	const struct reactor_watch *x = &r->w[a], *y = &r->w[b];

	if (x->deadline != y->deadline)
		return x->deadline < y->deadline;
	return x->seq < y->seq;
}

static void
heap_place(struct reactor *r, int i, int h)
{
	r->heap[i] = h;
	r->w[h].heap_index = i;
}

static void
heap_up(struct reactor *r, int i)
{
	int h = r->heap[i];

	while (i > 0) {
		int p = (i - 1) / 2;

		if (!timer_before(r, h, r->heap[p]))
			break;
		heap_place(r, i, r->heap[p]);
		i = p;
	}
	heap_place(r, i, h);
}

static void
heap_down(struct reactor *r, int i)
{
	int h = r->heap[i];

	for (;;) {
		int c = 2 * i + 1;

		if (c >= r->nheap)
			break;
		if (c + 1 < r->nheap && timer_before(r, r->heap[c + 1], r->heap[c]))
			c++;
		if (!timer_before(r, r->heap[c], h))
			break;
		heap_place(r, i, r->heap[c]);
		i = c;
	}
	heap_place(r, i, h);
}

static void
heap_remove(struct reactor *r, int h)
{
	int i = r->w[h].heap_index, last;

	if (i < 0)
		return;
	r->w[h].heap_index = -1;
	last = r->heap[--r->nheap];
	if (i < r->nheap) {
		heap_place(r, i, last);
		heap_up(r, i);
		heap_down(r, r->w[last].heap_index);
	}
}

/* ---- signals ---- */

/*
 * Make the trapped set what the watches need: every SIGNAL watch's signo,
 * plus SIGCHLD while a child uses the fallback.  New signals are blocked
 * before the kernel routes them; dropped ones are unblocked afterwards
 * unless they were blocked before reactor_init.
 */
static int
signals_update(struct reactor *r)
{
	sigset_t want, old, add, drop;
	int h, s, e, changed = 0;

	sigemptyset(&want);
	for (h = 0; h < r->nw; h++)
		if (r->w[h].kind == REACTOR_SIGNAL)
			sigaddset(&want, r->w[h].ident);
	if (r->nchild_fallback > 0)
		sigaddset(&want, SIGCHLD);

	sigemptyset(&add);
	sigemptyset(&drop);
	for (s = 1; s < NSIG; s++) {
		int in_want = sigismember(&want, s) == 1;
		int in_old = sigismember(&r->trapped, s) == 1;

		if (in_want != in_old)
			changed = 1;
		if (in_want && !in_old)
			sigaddset(&add, s);
		else if (!in_want && in_old && sigismember(&r->saved_mask, s) != 1)
			sigaddset(&drop, s);
	}
	if (!changed)
		return 0;

	sigprocmask(SIG_BLOCK, &add, NULL);
	old = r->trapped;
	r->trapped = want;
	if (reactor_be_signals(r) < 0) {
		e = errno;
		r->trapped = old;
		for (s = 1; s < NSIG; s++)
			if (sigismember(&r->saved_mask, s) == 1)
				sigdelset(&add, s);
		sigprocmask(SIG_UNBLOCK, &add, NULL);
		errno = e;
		return -1;
	}
	sigprocmask(SIG_UNBLOCK, &drop, NULL);
	return 0;
}

void
reactor_child_sigmask(const struct reactor *r, sigset_t *out)
{
	*out = r->saved_mask;
}

/* ---- setup ---- */

int
reactor_init(struct reactor *r)
{
	const char *env;

	/* the table is left alone: slots are set up when first used (nw) */
	memset(r, 0, offsetof(struct reactor, heap));
	r->backend_fd = -1;
	r->signal_fd = -1;
	r->signal_handle = -1;
	sigemptyset(&r->trapped);
	sigprocmask(SIG_SETMASK, NULL, &r->saved_mask);
	env = getenv("APPD_REACTOR_NO_PIDFD");
	r->no_pidfd = env != NULL && strcmp(env, "1") == 0;
	r->now_ms = reactor_clock_ms();
	return reactor_be_init(r);
}

void
reactor_fini(struct reactor *r)
{
	sigset_t unblock;
	int h, s;

	for (h = 0; h < r->nw; h++) {
		if (r->w[h].kind == REACTOR_FREE || h == r->signal_handle)
			continue;
		reactor_be_forget(r, h);
		reactor_slot_put(r, h);
	}
	r->nheap = 0;
	r->nchild_fallback = 0;
	reactor_be_fini(r);

	/* Pending trapped signals now get their normal disposition. */
	sigemptyset(&unblock);
	for (s = 1; s < NSIG; s++)
		if (sigismember(&r->trapped, s) == 1 &&
		    sigismember(&r->saved_mask, s) != 1)
			sigaddset(&unblock, s);
	sigemptyset(&r->trapped);
	sigprocmask(SIG_UNBLOCK, &unblock, NULL);
}

/* ---- adding and removing watches ---- */

int
reactor_io_add(struct reactor *r, int fd, unsigned mask, reactor_cb *cb, void *arg)
{
	int h;

	if (fd < 0 || (mask & ~(REACTOR_READ | REACTOR_WRITE)) != 0 || cb == NULL) {
		errno = EINVAL;
		return -1;
	}
	/* epoll keys registrations by fd: one watch per fd. */
	for (h = 0; h < r->nw; h++)
		if (r->w[h].kind == REACTOR_IO && r->w[h].fd == fd) {
			errno = EEXIST;
			return -1;
		}
	if ((h = watch_new(r, REACTOR_IO, 0, cb, arg)) < 0)
		return -1;
	r->w[h].fd = fd;
	if (reactor_be_io(r, h, 0, mask) < 0) {
		reactor_slot_put(r, h);
		return -1;
	}
	r->w[h].mask = mask;
	return h;
}

int
reactor_io_set(struct reactor *r, int handle, unsigned mask)
{
	struct reactor_watch *w = watch_get(r, handle);

	if (w == NULL)
		return -1;
	if (w->kind != REACTOR_IO || (mask & ~(REACTOR_READ | REACTOR_WRITE)) != 0) {
		errno = EINVAL;
		return -1;
	}
	if (reactor_be_io(r, handle, w->mask, mask) < 0)
		return -1;
	w->mask = mask;
	return 0;
}

int
reactor_timer_add(struct reactor *r, uint64_t delay_ms, reactor_cb *cb, void *arg)
{
	uint64_t now;
	int h;

	if (cb == NULL) {
		errno = EINVAL;
		return -1;
	}
	if ((h = watch_new(r, REACTOR_TIMER, 0, cb, arg)) < 0)
		return -1;
	now = reactor_clock_ms();
	r->w[h].deadline = delay_ms > UINT64_MAX - now ? UINT64_MAX : now + delay_ms;
	r->w[h].seq = r->timer_seq++;
	heap_place(r, r->nheap++, h);
	heap_up(r, r->nheap - 1);
	return h;
}

int64_t
reactor_timer_remaining(const struct reactor *r, int handle)
{
	const struct reactor_watch *w;
	uint64_t now;

	if (handle < 0 || handle >= r->nw)
		return -1;
	w = &r->w[handle];
	if (w->kind != REACTOR_TIMER || w->heap_index < 0)
		return -1;
	now = reactor_clock_ms();
	if (w->deadline <= now)
		return 0;
	return w->deadline - now > INT64_MAX ? INT64_MAX : (int64_t)(w->deadline - now);
}

int
reactor_signal_add(struct reactor *r, int signo, reactor_cb *cb, void *arg)
{
	sigset_t probe;
	int h, n = 0;

	sigemptyset(&probe);
	if (signo <= 0 || signo >= NSIG || signo == SIGKILL || signo == SIGSTOP ||
	    cb == NULL || sigaddset(&probe, signo) < 0) {
		errno = EINVAL;
		return -1;
	}
	for (h = 0; h < r->nw; h++)
		if (r->w[h].kind == REACTOR_SIGNAL)
			n++;
	if (n >= REACTOR_MAX_SIGNALS) {
		errno = ENOSPC;
		return -1;
	}
	if ((h = watch_new(r, REACTOR_SIGNAL, signo, cb, arg)) < 0)
		return -1;
	if (signals_update(r) < 0) {
		reactor_slot_put(r, h);
		return -1;
	}
	return h;
}

/* Remove watch h (already validated) and release what it holds. */
static void
drop_watch(struct reactor *r, int h)
{
	struct reactor_watch *w = &r->w[h];
	enum reactor_kind kind = w->kind;
	int fallback = is_fallback_child(w);

	if (kind == REACTOR_TIMER)
		heap_remove(r, h);
	else
		reactor_be_forget(r, h);
	reactor_slot_put(r, h);
	if (fallback)
		r->nchild_fallback--;
	if (kind == REACTOR_SIGNAL || fallback)
		signals_update(r);      /* shrinking the set does not fail */
}

int
reactor_del(struct reactor *r, int handle)
{
	if (watch_get(r, handle) == NULL)
		return -1;
	drop_watch(r, handle);
	return 0;
}

/* Is our child `pid` a zombie?  1 yes, 0 no, -1/ECHILD not our child.
 * WNOWAIT: it stays unreaped until its watch fires (or is removed). */
static int
child_exited(pid_t pid)
{
	siginfo_t si;
	int rc;

	do {
		memset(&si, 0, sizeof si);
		rc = waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT);
	} while (rc < 0 && errno == EINTR);
	if (rc < 0)
		return -1;
	return si.si_pid == pid;
}

int
reactor_reap_pid(pid_t pid, int *status)
{
	pid_t got;
	int st;

	do
		got = waitpid(pid, &st, WNOHANG);
	while (got < 0 && errno == EINTR);
	if (got == 0)
		return 0;
	*status = got == pid ? st : -1;
	return 1;
}

/* Reap our exited child `pid`; its status, or -1 if someone else did. */
static int
child_reap(pid_t pid)
{
	int st = -1;

	return reactor_reap_pid(pid, &st) == 1 ? st : -1;
}

/* CHILD watch h has exited: reap and fire it on the next turn. */
static void
child_pending(struct reactor *r, int h)
{
	int fallback = is_fallback_child(&r->w[h]);

	r->w[h].pending = 1;
	if (fallback) {
		r->nchild_fallback--;
		signals_update(r);
	}
}

int
reactor_child_watched(const struct reactor *r, pid_t pid)
{
	for (int h = 0; h < r->nw; h++)
		if (r->w[h].kind == REACTOR_CHILD && r->w[h].ident == (int)pid)
			return 1;
	return 0;
}

int
reactor_child_add(struct reactor *r, pid_t pid, reactor_cb *cb, void *arg)
{
	int h, ex;

	if (pid <= 0 || cb == NULL) {
		errno = EINVAL;
		return -1;
	}
	/* Only our own children can be reaped (pidfd_open takes any pid). */
	if (child_exited(pid) < 0)
		return -1;      /* ECHILD */
	if ((h = watch_new(r, REACTOR_CHILD, pid, cb, arg)) < 0)
		return -1;

	if (reactor_be_proc(r, h) == 0)
		return h;       /* a zombie's pidfd is readable: fires next turn */
	if (errno == ESRCH) {
		/* Already a zombie (kqueue refuses those), or reaped by someone
		 * else since the check above. */
		if ((ex = child_exited(pid)) == 1) {
			child_pending(r, h);
			return h;
		}
		if (ex < 0) {
			reactor_slot_put(r, h);
			errno = ECHILD;
			return -1;
		}
		/* Still running after all: watch it through SIGCHLD. */
	} else if (errno != ENOSYS) {
		reactor_slot_put(r, h);
		return -1;
	}

	/* Fallback: trap SIGCHLD first, then check, so no exit is missed. */
	r->nchild_fallback++;
	if (signals_update(r) < 0) {
		r->nchild_fallback--;
		reactor_slot_put(r, h);
		return -1;
	}
	ex = child_exited(pid);
	if (ex == 1) {
		child_pending(r, h);
	} else if (ex < 0) {
		int e = errno;  /* ECHILD: not our child */
		drop_watch(r, h);
		errno = e;
		return -1;
	}
	return h;
}

int
reactor_pid_add(struct reactor *r, pid_t pid, reactor_cb *cb, void *arg)
{
	int h;

	if (pid <= 0 || cb == NULL) {
		errno = EINVAL;
		return -1;
	}
	if ((h = watch_new(r, REACTOR_PID, pid, cb, arg)) < 0)
		return -1;
	if (reactor_be_proc(r, h) < 0) {
		reactor_slot_put(r, h);
		return -1;
	}
	return h;
}

/* ---- dispatch ---- */

/* Remove a one-shot watch, then run its callback. */
static void
fire_once(struct reactor *r, int h, int events)
{
	reactor_cb *cb = r->w[h].cb;
	void *arg = r->w[h].arg;

	drop_watch(r, h);
	cb(r, h, events, arg);
}

/* SIGCHLD arrived: poll every fallback child (signals coalesce). */
static int
reap_fallback(struct reactor *r)
{
	struct reactor_snap snap[REACTOR_MAX_WATCHES];
	int h, i, n = 0, ncb = 0, st;
	pid_t got;

	for (h = 0; h < r->nw; h++)
		if (is_fallback_child(&r->w[h])) {
			snap[n].h = h;
			snap[n++].gen = r->w[h].gen;
		}
	for (i = 0; i < n; i++) {
		h = snap[i].h;
		if (r->w[h].gen != snap[i].gen || !is_fallback_child(&r->w[h]))
			continue;
		do
			got = waitpid(r->w[h].ident, &st, WNOHANG);
		while (got < 0 && errno == EINTR);
		if (got == 0)
			continue;
		/* -1: somebody else reaped it; the status is lost. */
		fire_once(r, h, got > 0 ? st : -1);
		ncb++;
	}
	return ncb;
}

static int
dispatch_event(struct reactor *r, const struct reactor_fired *ev,
    const struct reactor_snap *sigs, int nsigs)
{
	struct reactor_watch *w;
	int i, ncb = 0, st;

	if (ev->handle < 0) {
		int signo = (int)ev->events;

		if (signo == SIGCHLD)
			ncb += reap_fallback(r);
		for (i = 0; i < nsigs; i++) {
			w = &r->w[sigs[i].h];
			if (w->gen != sigs[i].gen || w->kind != REACTOR_SIGNAL ||
			    w->ident != signo)
				continue;
			w->cb(r, sigs[i].h, signo, w->arg);
			ncb++;
		}
		return ncb;
	}

	if (ev->handle < 0 || ev->handle >= r->nw)
		return 0;
	w = &r->w[ev->handle];
	if (w->kind == REACTOR_FREE || w->gen != ev->gen)
		return 0;       /* removed (and maybe reused) since the wait */
	switch (w->kind) {
	case REACTOR_IO: {
		unsigned events = ev->events & (w->mask | REACTOR_ERR);

		if (w->mask == 0 || events == 0)
			return 0;
		w->cb(r, ev->handle, (int)events, w->arg);
		return 1;
	}
	case REACTOR_CHILD:
		if (w->pending || reactor_be_reap(r, ev->handle, &st) != 1)
			return 0;
		fire_once(r, ev->handle, st);
		return 1;
	case REACTOR_PID:
		fire_once(r, ev->handle, 0);
		return 1;
	default:
		return 0;
	}
}

/* Expired timers, earliest first; timers added meanwhile wait a turn. */
static int
dispatch_timers(struct reactor *r)
{
	uint64_t now = reactor_clock_ms(), limit = r->timer_seq;
	int ncb = 0;

	while (r->nheap > 0) {
		int h = r->heap[0];

		if (r->w[h].deadline > now || r->w[h].seq >= limit)
			break;
		fire_once(r, h, 0);
		ncb++;
	}
	return ncb;
}

int
reactor_run_once(struct reactor *r, int64_t max_wait_ms)
{
	struct reactor_fired ev[REACTOR_FIRED_MAX];
	struct reactor_snap pend[REACTOR_MAX_WATCHES], sigs[REACTOR_MAX_SIGNALS];
	uint64_t start = reactor_clock_ms(), now;
	int h, i, n, npend = 0, nsigs = 0, ncb = 0;

	r->now_ms = start;
	if (max_wait_ms < 0 && user_watches(r) == 0)
		return 0;       /* nothing could ever wake us */
	for (h = 0; h < r->nw; h++)
		if (r->w[h].kind == REACTOR_CHILD && r->w[h].pending)
			npend++;

	for (;;) {
		int64_t t = -1;

		now = reactor_clock_ms();
		if (max_wait_ms >= 0)
			t = now - start >= (uint64_t)max_wait_ms ? 0 :
			    (int64_t)(start + (uint64_t)max_wait_ms - now);
		if (r->nheap > 0) {
			uint64_t d = r->w[r->heap[0]].deadline;
			uint64_t left = d > now ? d - now : 0;

			if (t < 0 || left < (uint64_t)t)
				t = left > INT64_MAX ? INT64_MAX : (int64_t)left;
		}
		if (npend > 0)
			t = 0;
		if (t > INT_MAX)
			t = INT_MAX;
		if ((n = reactor_be_wait(r, (int)t, ev)) >= 0)
			break;
		if (errno != EINTR)
			return -1;
	}
	r->now_ms = reactor_clock_ms();

	/* Watches that may fire for this batch, as they are now. */
	npend = 0;
	for (h = 0; h < r->nw; h++) {
		struct reactor_watch *w = &r->w[h];

		if (w->kind == REACTOR_CHILD && w->pending) {
			pend[npend].h = h;
			pend[npend++].gen = w->gen;
		} else if (w->kind == REACTOR_SIGNAL && nsigs < REACTOR_MAX_SIGNALS) {
			/* reactor_signal_add allows no more */
			sigs[nsigs].h = h;
			sigs[nsigs++].gen = w->gen;
		}
	}

	for (i = 0; i < npend; i++) {
		h = pend[i].h;
		if (r->w[h].gen != pend[i].gen || r->w[h].kind != REACTOR_CHILD)
			continue;
		fire_once(r, h, child_reap(r->w[h].ident));
		ncb++;
	}
	for (i = 0; i < n; i++)
		ncb += dispatch_event(r, &ev[i], sigs, nsigs);
	ncb += dispatch_timers(r);
	return ncb;
}

int
reactor_run(struct reactor *r)
{
	while (!r->stopping && user_watches(r) > 0)
		if (reactor_run_once(r, -1) < 0)
			return -1;
	r->stopping = 0;
	return 0;
}

void
reactor_stop(struct reactor *r)
{
	r->stopping = 1;
}
