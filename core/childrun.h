/*
 * childrun.h -- run a short-lived child whose answer comes back on a
 * pipe, on the reactor, with a deadline: the DNS helper (getaddrinfo in a
 * child, core/net/dnshelper.h), `<managed binary> --version`
 * (core/probe.h) and the self-refresh check of a new appd
 * (core/sup_refresh.c).  Nothing blocks: the pipe, the child's exit and
 * the deadline are three events.
 *
 * The start/done rule of core/net/job.h: childrun_start returns -1 (with
 * `e`, errno kept, nothing left behind, done never called) or 0, after
 * which done runs exactly once from a reactor callback -- when the pipe
 * reached EOF and the child was reaped, or when the deadline passed (the
 * child is then SIGKILLed and left to a reaping watch of the reactor) --
 * unless childrun_cancel comes first.  Caller-owned storage, including
 * the output buffer; nothing is allocated.
 */
#ifndef APPD_CHILDRUN_H
#define APPD_CHILDRUN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/base/err.h"
#include "core/net/job.h"

struct childrun;
typedef void childrun_done_cb(struct childrun *c, void *arg);
/* Runs in the child with its output fd; must exec or _exit. */
typedef void childrun_body(void *ctx, int out_fd);

struct childrun {
	/* ---- results: valid when done runs ---- */
	int exited;                 /* reaped: `status` is its wait status */
	int status;
	int timed_out;              /* the deadline passed first */
	size_t len;                 /* output bytes in buf */
	int truncated;              /* it wrote more than the buffer holds */
	/* ---- private ---- */
	struct job job;
	childrun_done_cb *done;
	void *arg;
	unsigned char *buf;
	size_t cap;
	pid_t pid;
	int fd, io_h, exit_h, timer_h;
	int eof;
};

/*
 * Fork; the child restores the signal mask the reactor found, then runs
 * body(ctx, fd) with `fd` the write end of the pipe.  Its output goes into
 * `buf` (`cap` bytes).  `timeout_ms` bounds the whole run.
 */
int childrun_start(struct childrun *c, struct reactor *r, childrun_body *body, void *ctx,
		   void *buf, size_t cap, uint64_t timeout_ms, childrun_done_cb *done,
		   void *arg, struct err *e);
/* Stop a running child: SIGKILL it (reaped later by the reactor), close
 * the pipe; done is not called.  A no-op when idle or zeroed. */
void childrun_cancel(struct childrun *c);
int childrun_running(const struct childrun *c);
/* The child's pid while it has not been reaped, else 0 (for a SIGCHLD
 * sweep that must leave it to its owner). */
pid_t childrun_pid(const struct childrun *c);

/* A body: execv(argv[0], argv) with stdout on the pipe and stdin and
 * stderr on /dev/null; `ctx` is the NULL-terminated argv. */
void childrun_exec(void *argv, int out_fd);

/* Run to completion on a private reactor.  0 (results in `c`), or -1
 * (`e`) when it could not start. */
int childrun_sync(struct childrun *c, childrun_body *body, void *ctx, void *buf, size_t cap,
		  uint64_t timeout_ms, struct err *e);

#endif
