/*
 * cmd_proxy.c -- `appd proxy [--start]`: relay stdin/stdout to the control
 * socket (DESIGN.md command table; seed-contract.md §1.8).  stdout belongs
 * to the relayed bytes: JSON is printed only for a failure before any
 * byte was relayed (exit 4 when nothing answers on the socket); a failure
 * after that is a message on stderr and exit 1.  With --start a server
 * that is not running is started first, as `appd start` would, without
 * printing the start JSON.
 */
#include "cmd/appd.h"
#include "core/base/fmt.h"
#include "core/lock.h"
#include "core/net/relay.h"
#include "platform/reactor.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Bound on a connect while the server's backlog is full. */
#define PROXY_CONNECT_TIMEOUT_MS 10000

/* Everything in one static object: the few pages of state the proxy
 * touches sit next to each other and the stack stays shallow (peak RSS);
 * of the relay's buffers, last in struct relay, only the first page each
 * is touched when stdin/stdout are pipes. */
static struct proxy {
	struct reactor r;
	int finished;
	int signo;              /* the signal that ended the relay, or 0 */
	struct err e;
	struct home h;
	struct relay rl;        /* its buffers come last */
	struct settings s;      /* --start only */
} px;

static void
on_done(struct relay *rl, void *arg)
{
	struct proxy *p = arg;

	(void)rl;
	p->finished = 1;
}

/* HUP (the SSH session went away), INT, TERM: put the stdio flags back,
 * then die of the same signal. */
static void
on_signal(struct reactor *r, int h, int signo, void *arg)
{
	struct proxy *p = arg;

	(void)r; (void)h;
	relay_cancel(&p->rl);
	p->signo = signo;
	p->finished = 1;
}

/* Start the server under the lifecycle lock, as `appd start` does
 * (cmd_start.c), printing nothing. */
static int
start_server(struct proxy *p)
{
	struct start_result res;
	int lock, r;

	lock = cmd_lock(&p->h, "proxy", LOCK_TIMEOUT_DEFAULT_S, &p->e);
	if (lock < 0)
		return -1;
	if (settings_load(p->h.settings, &p->s, &p->e) < 0) {
		lock_release(lock);
		return -1;
	}
	r = lc_unmanaged(&p->h, &p->e);
	if (r != 0) {
		/* 1: someone else's server answers now; connect to it */
		lock_release(lock);
		return r < 0 ? -1 : 0;
	}
	if (lc_start(&p->h, &p->s, p->s.ready_timeout_s, &res, &p->e) < 0) {
		err_managed(&p->e, &p->h, &p->s);
		lock_release(lock);
		return -1;
	}
	lock_release(lock);
	return 0;
}

/* Failure before the relay runs: JSON on stdout, the status of `e`. */
static int
early_fail(struct proxy *p, const struct err *e, int fd)
{
	reactor_fini(&p->r);
	if (fd >= 0)
		close(fd);
	return out_fail(e);
}

int
cmd_proxy(int argc, char **argv)
{
	static const int sigs[] = { SIGHUP, SIGINT, SIGTERM };
	struct proxy *p = &px;          /* static storage: zeroed; never memset
	                                 * (that would touch the buffers) */
	int i, start = 0, fd;

	err_clear(&p->e);
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--start") == 0) {
			start = 1;
		} else {
			err_set(&p->e, ERR_USAGE, "unknown argument \"%s\" to proxy", argv[i]);
			return out_fail(&p->e);
		}
	}
	if (cmd_home(&p->h, start, &p->e) < 0)
		return out_fail(&p->e);
	fd = relay_connect(p->h.socket, PROXY_CONNECT_TIMEOUT_MS, &p->e);
	if (fd < 0 && start && p->e.code == ERR_NOT_RUNNING) {
		err_clear(&p->e);
		if (start_server(p) < 0)
			return out_fail(&p->e);
		fd = relay_connect(p->h.socket, PROXY_CONNECT_TIMEOUT_MS, &p->e);
	}
	if (fd < 0) {
		err_ctx_str(&p->e, "socketPath", p->h.socket);
		return out_fail(&p->e);
	}
	/* only now: the supervisor started above must not inherit SIG_IGN */
	signal(SIGPIPE, SIG_IGN);
	if (reactor_init(&p->r) < 0) {
		err_sys(&p->e, ERR_IO, "cannot create the event loop");
		close(fd);
		return out_fail(&p->e);
	}
	for (i = 0; i < (int)(sizeof sigs / sizeof sigs[0]); i++)
		if (reactor_signal_add(&p->r, sigs[i], on_signal, p) < 0) {
			err_sys(&p->e, ERR_IO, "cannot watch signals");
			return early_fail(p, &p->e, fd);
		}
	if (relay_start(&p->rl, &p->r, 0, fd, 1, 0, on_done, p) < 0)
		return early_fail(p, &p->rl.err, fd);
	while (!p->finished)
		if (reactor_run_once(&p->r, -1) < 0 && errno != EINTR) {
			err_sys(&p->rl.err, ERR_IO, "event loop failed");
			relay_cancel(&p->rl);
			p->rl.ok = 0;
			break;
		}
	reactor_fini(&p->r);
	close(fd);
	if (p->signo != 0) {
		signal(p->signo, SIG_DFL);
		raise(p->signo);
		return 128 + p->signo;
	}
	if (p->rl.ok)
		return 0;
	/* JSON only while stdout has carried nothing and still can */
	if (p->rl.bytes[RELAY_UP] == 0 && p->rl.bytes[RELAY_DOWN] == 0 && !p->rl.out_closed)
		return out_fail(&p->rl.err);
	fmt_fd(2, "appd: %s\n", p->rl.err.msg);
	return err_exit_status(ERR_IO);
}
