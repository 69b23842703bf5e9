/*
 * job.h -- the one pattern every asynchronous operation on the reactor
 * follows (the DNS helper, the HTTPS fetch, the WebSocket probe, the
 * relay), and the bookkeeping they share.
 *
 * The rule: X_start either returns -1 -- the failure in X's error record,
 * errno kept, nothing left behind, the done callback never called -- or
 * returns 0, after which done is called exactly once, from a reactor
 * callback, unless X_cancel comes first.  A failure detected inside
 * X_start (a refused connect, a full reactor) is therefore returned,
 * never reported through the callback.
 *
 * A job owns some reactor watches and fds, named by the addresses of the
 * module's own fields (so the module keeps using `p->io_h`, `p->fd`);
 * job_release removes and closes them all and sets them to -1.  `gen`
 * changes at every start and end, so a callback that saved it can tell
 * that the job it belonged to is over (e.g. done started a new one).
 * Caller-owned storage; nothing is allocated.
 */
#ifndef APPD_JOB_H
#define APPD_JOB_H

#include "platform/reactor.h"

#define JOB_MAX_OWNED 4

struct job {
	struct reactor *r;
	int active;                   /* started and not yet ended */
	int starting;                 /* inside X_start: failures are returned */
	unsigned gen;
	int nw, nf;
	int *watch[JOB_MAX_OWNED];    /* reactor handles, -1 when not armed */
	int *fd[JOB_MAX_OWNED];       /* fds, -1 when closed */
};

/* Begin a job on `r`: active, starting, a new generation; the `nw`
 * watch fields and `nf` fd fields are set to -1 and owned from now on. */
void job_begin(struct job *j, struct reactor *r, int *const *watches, int nw,
	       int *const *fds, int nf);
/* X_start succeeded: from now on failures go through done. */
void job_started(struct job *j);
/* Remove one owned watch early (and set it to -1). */
void job_unwatch(struct job *j, int *watch);
/* Close one owned fd early (and set it to -1). */
void job_close(struct job *j, int *fd);
/* Remove every owned watch and close every owned fd; inactive, and a
 * new generation.  Safe on a job that is not active. */
void job_release(struct job *j);
/* The end of a job: release it and say whether done must be called --
 * 1 after X_start returned, 0 inside it (X_start returns -1 instead). */
int job_end(struct job *j);

#endif
