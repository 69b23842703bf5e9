/*
 * fuzz_wsprobe.c -- the codex-initialize readiness probe's client side
 * (core/net/wsprobe.c): the HTTP 101 upgrade answer and the WebSocket
 * frames (RFC 6455 §5) that follow, as an app-server (or something else
 * listening on its socket) sends them.
 *
 * The harness is the server: a Unix socket in /dev/shm, one connection
 * per input, driven by the real reactor.  It reads the probe's upgrade
 * request, computes the right Sec-WebSocket-Accept for its key, and sends
 * the input with every "{ACCEPT}" replaced by that value (so inputs can
 * get past the handshake to the frames), then half-closes.  The probe
 * must call done exactly once, within its timeout, with either a version
 * or an error message.
 */
#include "tests/fuzz/fuzz.h"

#include <errno.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/net/wsprobe.h"
#include "platform/reactor.h"

static struct reactor R;
static struct wsprobe P;
static int listen_fd = -1;
static char sock_path[108];
static int done_calls;

static void
on_done(struct wsprobe *p, void *arg)
{
	(void)arg;
	done_calls++;
	if (p->ok && (p->version[0] == '\0' || !fuzz_terminated(p->version, sizeof p->version)))
		fuzz_fail("ok without a version");
	if (!p->ok && p->err.msg[0] == '\0')
		fuzz_fail("failed without a message");
}

static void
init(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	signal(SIGPIPE, SIG_IGN);
	if (reactor_init(&R) < 0)
		fuzz_fail("reactor_init");
	snprintf(sock_path, sizeof sock_path, "/dev/shm/appd-fuzz-ws-%ld.sock", (long)getpid());
	unlink(sock_path);
	memcpy(sa.sun_path, sock_path, strlen(sock_path) + 1);
	listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
	    listen(listen_fd, 4) < 0)
		fuzz_fail("cannot listen on %s: %s", sock_path, strerror(errno));
}

/* Read the upgrade request from `fd` (blocking; the probe sends it at
 * once) and return its key in `key`.  0, or -1 if it did not come. */
static int
read_request(int fd, char *key, size_t cap)
{
	static char req[4096];
	size_t len = 0;
	const char *k, *end;

	while (len < sizeof req - 1 && strstr(req, "\r\n\r\n") == NULL) {
		ssize_t r;

		/* let the probe write: one reactor turn at a time */
		if (reactor_run_once(&R, 0) < 0 && errno != EINTR)
			return -1;
		r = recv(fd, req + len, sizeof req - 1 - len, MSG_DONTWAIT);
		if (r > 0) {
			len += (size_t)r;
			req[len] = '\0';
		} else if (r == 0 || (errno != EAGAIN && errno != EINTR) || done_calls) {
			return -1;
		}
	}
	k = strstr(req, "Sec-WebSocket-Key: ");
	if (k == NULL)
		return -1;
	k += strlen("Sec-WebSocket-Key: ");
	end = strstr(k, "\r\n");
	if (end == NULL || (size_t)(end - k) >= cap)
		return -1;
	memcpy(key, k, (size_t)(end - k));
	key[end - k] = '\0';
	req[0] = '\0';
	return 0;
}

/* Send `n` bytes without ever blocking: when the socket is full, let the
 * probe read (one reactor turn) and go on; stop when it is done.  (A
 * blocking send of many small pieces filled the socket's buffer with the
 * probe not running: a harness hang, found by the campaign.) */
static void
send_all(int fd, const uint8_t *d, size_t n)
{
	while (n > 0 && done_calls == 0) {
		ssize_t w = send(fd, d, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			if (reactor_run_once(&R, 100) < 0 && errno != EINTR)
				fuzz_fail("reactor_run_once: %s", strerror(errno));
			continue;
		}
		if (w <= 0)
			return;     /* the probe gave up and closed: fine */
		d += w;
		n -= (size_t)w;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char key[64], acc[29];
	int fd;

	if (listen_fd < 0)
		init();
	if (size > 65536)
		return 0;
	done_calls = 0;
	if (wsprobe_start(&P, &R, sock_path, "0.0.0-fuzz", 2000, on_done, NULL) < 0)
		fuzz_fail("wsprobe_start: %s", P.err.msg);
	fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		fuzz_fail("accept: %s", strerror(errno));
	if (read_request(fd, key, sizeof key) == 0) {
		const uint8_t *p = data, *end = data + size, *m;

		static uint8_t out[65536 / 8 * 28 + 65536];
		size_t len = 0;

		/* the whole answer in one buffer: one send, as a server would */
		wsprobe_accept_for_key(key, acc);
		while ((m = memmem(p, (size_t)(end - p), "{ACCEPT}", 8)) != NULL) {
			memcpy(out + len, p, (size_t)(m - p));
			len += (size_t)(m - p);
			memcpy(out + len, acc, 28);
			len += 28;
			p = m + 8;
		}
		memcpy(out + len, p, (size_t)(end - p));
		len += (size_t)(end - p);
		send_all(fd, out, len);
	}
	shutdown(fd, SHUT_WR);
	while (done_calls == 0) {
		char sink[4096];

		if (reactor_run_once(&R, 5000) < 0 && errno != EINTR)
			fuzz_fail("reactor_run_once: %s", strerror(errno));
		while (recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0)
			;
	}
	if (done_calls != 1 || wsprobe_running(&P))
		fuzz_fail("done called %d times", done_calls);
	close(fd);
	return 0;
}
