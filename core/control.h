/*
 * control.h -- the supervisor's private control socket, run/supervisor.sock
 * (DESIGN.md "Liveness and ownership"): liveness is asked, not written.
 *
 * Protocol: one request per connection.  The client connects, writes one
 * line of JSON, {"request":"status"}, and reads until EOF; the supervisor
 * answers with one JSON object and a newline (for "status": the record
 * of status.h, from its live state) and closes.  A request longer than
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
#define CTL_MAX_CLIENTS 4

/* Fill `buf` (`cap` bytes) with the answer to `request` (the request's
 * "request" member); the answer's length, or -1 to close unanswered. */
typedef int ctl_answer_fn(void *arg, const char *request, char *buf, size_t cap);

struct ctl;
struct ctl_client {
	struct ctl *owner;
	int fd;                     /* -1: free slot */
	int io_h, timer_h;
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

#endif
