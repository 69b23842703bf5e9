/*
 * hprobe.h -- one health-probe attempt against a server, on the reactor:
 * the readiness kinds beyond the control socket (DESIGN.md "Readiness and
 * liveness"), also the liveness probe's.
 *
 *   tcp://HOST:PORT            a TCP connect(2) completes
 *   http://HOST:PORT/PATH      HTTP/1.1 GET PATH; any 2xx (core/net/http.h)
 *   http+unix://SOCKET/PATH    the same over a Unix socket ("{socket}" is
 *                              the server's control socket)
 *   exec:PROGRAM ARGS...       the program (absolute; arguments split on
 *                              spaces) exits 0
 * HOST is an IPv4 or IPv6 literal ([::1]) or "localhost" (127.0.0.1): a
 * probe never waits on DNS.  Each attempt is bounded by its timeout;
 * retrying is the caller's.
 *
 * The start/done rule of core/net/job.h: hprobe_start returns -1 (e set,
 * nothing left behind, done never called) or 0, after which done runs
 * exactly once from a reactor callback with p->ok and, when not ok,
 * p->why (a short reason: "connection refused", "HTTP 503", "exit
 * status 1", "timed out after N ms").  Memory: the caller's struct.
 */
#ifndef APPD_HPROBE_H
#define APPD_HPROBE_H

#include <stdint.h>
#include <sys/socket.h>

#include "core/base/err.h"
#include "core/childrun.h"
#include "core/net/http.h"
#include "core/net/job.h"

#define HPROBE_SPEC_MAX 512

enum hprobe_kind { HP_NONE = 0, HP_TCP, HP_HTTP, HP_HTTP_UNIX, HP_EXEC };

struct hprobe_spec {
	enum hprobe_kind kind;
	struct sockaddr_storage addr;   /* HP_TCP, HP_HTTP, HP_HTTP_UNIX */
	socklen_t addrlen;
	char host[128];                 /* the Host header */
	char path[256];                 /* HTTP request target */
	char *argv[17];                 /* HP_EXEC, into args */
	char args[HPROBE_SPEC_MAX];
};

/* 1 when `spec` has one of the forms above (nothing is checked further). */
int hprobe_is_spec(const char *spec);

/* Parse `spec`, with "{socket}" replaced by `socket`.  0, or -1 with
 * ERR_USAGE naming what is wrong. */
int hprobe_parse(const char *spec, const char *socket, struct hprobe_spec *out, struct err *e);

struct hprobe;
typedef void hprobe_done_cb(struct hprobe *p, void *arg);

struct hprobe {
	/* ---- results ---- */
	int ok;
	char why[160];
	/* ---- private ---- */
	struct job job;
	const struct hprobe_spec *spec;
	struct reactor *r;
	hprobe_done_cb *done;
	void *arg;
	int fd, io_h, timer_h;
	int sent;
	uint64_t timeout_ms;
	struct childrun c;
	char out[64];
	struct http_parser hp;
};

int hprobe_start(struct hprobe *p, struct reactor *r, const struct hprobe_spec *spec,
		 uint64_t timeout_ms, hprobe_done_cb *done, void *arg, struct err *e);
/* Stop a running attempt; done is not called.  A no-op when idle. */
void hprobe_cancel(struct hprobe *p);
int hprobe_running(const struct hprobe *p);

#endif
