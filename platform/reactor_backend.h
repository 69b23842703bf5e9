/*
 * reactor_backend.h -- internal interface between reactor.c (watch table,
 * timer heap, dispatch) and one kernel backend (reactor_epoll.c, or reactor_kqueue.c).  Not for use outside platform/reactor*.c.
 */
#ifndef APPD_REACTOR_BACKEND_H
#define APPD_REACTOR_BACKEND_H

#include "platform/reactor.h"

/* One event reported by a wait: a watch (handle and the generation it was
 * registered with) or, with handle -1, a signal. */
struct reactor_fired {
	int handle;
	uint32_t gen;
	unsigned events;        /* REACTOR_READ/WRITE/ERR, or the signo */
};

/* One wait takes at most REACTOR_BATCH kernel events (readiness is
 * level-triggered and kqueue keeps what was not taken, so the rest come
 * with the next wait); a batch of fired events holds those plus every
 * distinct trapped signal (SIGCHLD may be trapped internally on top of
 * REACTOR_MAX_SIGNALS).  Small on purpose: these arrays are on the stack
 * under every callback, and each page they push the callbacks down stays
 * resident in the supervisor for good. */
#define REACTOR_BATCH 16
#define REACTOR_FIRED_MAX (REACTOR_BATCH + REACTOR_MAX_SIGNALS + 1)

/* The value a backend stores with a kernel registration for watch h. */
#define REACTOR_TAG(r, h) ((uint64_t)(uint32_t)(h) | (uint64_t)(r)->w[h].gen << 32)

/* Provided by reactor.c for the backend's internal watches. */
int reactor_slot_get(struct reactor *r, enum reactor_kind kind);
void reactor_slot_put(struct reactor *r, int h);

/* waitpid(pid, WNOHANG), EINTR retried: 1 and *status when reaped (-1
 * when somebody else reaped it: ECHILD), 0 while it has not exited. */
int reactor_reap_pid(pid_t pid, int *status);

/* Provided by the backend.  All return 0 (or a count) or -1/errno. */
int reactor_be_init(struct reactor *r);
void reactor_be_fini(struct reactor *r);
/* Register, modify or drop w[h].fd's interest (mask 0 = not in the kernel
 * set); `old` is the mask currently registered. */
int reactor_be_io(struct reactor *r, int h, unsigned old, unsigned mask);
/* r->trapped changed: make the kernel route exactly that set (the signals
 * are already blocked). */
int reactor_be_signals(struct reactor *r);
/* Exit notification for process w[h].ident; sets w[h].fd when it uses
 * one.  ENOSYS: no per-process mechanism (caller falls back to SIGCHLD);
 * ESRCH: no such process. */
int reactor_be_proc(struct reactor *r, int h);
/* Watch h (CHILD) reported its process exited: reap it.  1 and *status
 * when reaped (-1 if somebody else reaped it), 0 if not exited after all. */
int reactor_be_reap(struct reactor *r, int h, int *status);
/* Release what the backend holds for watch h (registration, pidfd). */
void reactor_be_forget(struct reactor *r, int h);
/* Wait up to timeout_ms (-1: forever) and fill `out`; the count, or -1
 * with errno (EINTR is passed up so the caller recomputes the timeout). */
int reactor_be_wait(struct reactor *r, int timeout_ms, struct reactor_fired *out);

#endif
