/*
 * control.h -- the supervisor's private control socket, run/supervisor.sock
 * (DESIGN.md "Liveness and ownership"): liveness is asked, not written.
 *
 * Protocol: one request per connection.  The client connects, writes one
 * line of JSON, {"request":"status"}, and reads until EOF; the supervisor
 * answers with one JSON object and a newline (for "status": the record
 * of status.h, from its live state) and closes.  {"request":"watch"}
 * gets the same record at once and then again after every change
 * (sup_publish), one line each, until either side closes: a waiting
 * `start` or `restart` learns of readiness from the supervisor's memory,
 * so a state file that cannot be written (a full or read-only disk)
 * does not leave it waiting for a file that never changes.  At most
 * CTL_MAX_WATCHERS watch at once; a watcher that does not read its
 * lines (a full socket buffer) is dropped.  A request longer than
 * CTL_REQUEST_MAX, one that does not arrive within CTL_TIMEOUT_MS, or a
 * peer whose uid is not ours (SO_PEERCRED / getpeereid) gets the
 * connection closed without an answer.  The socket is 0600 in the 0700
 * run/ directory.
 *
 * Server side: a listener on the supervisor's reactor; it costs no
 * wakeup while nobody connects.  Client side: a bounded wait with
 * poll(2); a supervisor that is hung or SIGSTOPped does not answer, and
 * the client says so after its deadline instead of trusting a file.
 */
#ifndef APPD_CONTROL_H
#define APPD_CONTROL_H

#include <stddef.h>

#include "core/base/err.h"
#include "core/status.h"
#include "platform/reactor.h"

#define CTL_REQUEST_MAX 256
#define CTL_TIMEOUT_MS 1000        /* the freshness bound: an answer within 1 s */
#define CTL_MAX_CLIENTS 8
#define CTL_MAX_WATCHERS 4

/* Fill `buf` (`cap` bytes) with the answer to `request` (the request's
 * "request" member); the answer's length, or -1 to close unanswered. */
typedef int ctl_answer_fn(void *arg, const char *request, char *buf, size_t cap);

struct ctl;
struct ctl_client {
	struct ctl *owner;
	int fd;                     /* -1: free slot */
	int io_h, timer_h;
	int watching;               /* a "watch" request: kept open */
	size_t len;
	char buf[CTL_REQUEST_MAX];
};

struct ctl {
	struct reactor *r;
	int lfd, lh;
	ctl_answer_fn *answer;
	void *arg;
	struct ctl_client c[CTL_MAX_CLIENTS];
};

/*
 * Bind and listen on `path` (unlinking a socket left there), or adopt
 * `inherited_fd` (>= 0: a listener handed over across a self-refresh
 * execve), and watch it on `r`.  0, or -1 with ERR_IO in `e`.  The
 * caller owns `c` (no allocation).
 */
int ctl_listen(struct ctl *c, struct reactor *r, const char *path, int inherited_fd,
	       ctl_answer_fn *answer, void *arg, struct err *e);
/* Send the current "status" answer to every watcher (a no-op when none
 * watches or `c` is not listening). */
void ctl_notify(struct ctl *c);
/* Stop listening; close every connection.  `path` (may be NULL) is
 * unlinked.  The listener fd stays open when `keep_fd` (a handover). */
void ctl_close(struct ctl *c, const char *path, int keep_fd);

/*
 * Ask the supervisor listening on `path` for its live status record,
 * waiting at most `timeout_ms`.  1 answered (`st` filled), 0 connected but
 * no (valid) answer in time, -1 nobody listens (ENOENT, ECONNREFUSED) or
 * another error (errno kept; `e` names the path).
 */
int ctl_query_status(const char *path, int timeout_ms, struct sup_status *st, struct err *e);

/* The client side of a watch: the connection and the partial line. */
struct ctl_watch {
	int fd;                     /* -1: not watching */
	size_t len;
	char buf[STATUS_MAX_BYTES + 64];
};

/*
 * Start watching the supervisor listening on `path`: connect and send the
 * request without blocking.  0 with w->fd to wait on for reading (CLOEXEC,
 * non-blocking), or -1/errno (ENOENT, ECONNREFUSED: nobody listens; EAGAIN:
 * its backlog is full) with w->fd = -1.  The caller closes w->fd.
 */
int ctl_watch_open(struct ctl_watch *w, const char *path);
/*
 * Read what is there on w->fd.  1 when at least one whole record arrived
 * (`st` gets the newest), 0 when none yet, -1 when the supervisor closed
 * the connection (or dropped us, or an error: errno), after which only
 * the files remain to be read.
 */
int ctl_watch_read(struct ctl_watch *w, struct sup_status *st);

#endif
