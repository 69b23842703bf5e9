/*
 * test_relay.c -- cmocka tests for core/relay.h: both modes (splice,
 * buffer), back-pressure, half-close, EOF/EPIPE/reset handling, always-
 * ready files, restored flags, and relay_connect.
 *
 * The "server" is the test itself on the far end of a socketpair; every
 * wait is a bounded loop of reactor turns.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/net/relay.h"
#include "platform/reactor.h"

static struct reactor R;
static struct relay RL;
static int done_calls;

/* the test's fds: in_w feeds the relay's in, out_r reads its out, peer is
 * the far end of the relay's socket */
static int in_r, in_w, out_r, out_w, sock, peer;

static unsigned char big[4 << 20];

static void
on_done(struct relay *rl, void *arg)
{
	(void)rl; (void)arg;
	done_calls++;
}

static void
closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static int
setup(void **state)
{
	int sv[2];

	(void)state;
	signal(SIGPIPE, SIG_IGN);
	alarm(60);              /* a test that blocks dies instead of hanging */
	done_calls = 0;
	in_r = in_w = out_r = out_w = sock = peer = -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	sock = sv[0];
	peer = sv[1];
	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (unsigned char)(i * 7 + i / 4093);
	return reactor_init(&R);
}

static int
teardown(void **state)
{
	(void)state;
	alarm(0);
	relay_cancel(&RL);
	reactor_fini(&R);
	if (RL.end[RELAY_OUT].closed && RL.end[RELAY_OUT].fd == out_w)
		out_w = -1;             /* the relay closed it */
	closep(&in_r);
	closep(&in_w);
	closep(&out_r);
	closep(&out_w);
	closep(&sock);
	closep(&peer);
	return 0;
}

static void
use_pipes(void)
{
	int p[2];

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	in_r = p[0];
	in_w = p[1];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	out_r = p[0];
	out_w = p[1];
}

static void
use_socketpairs(void)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	in_r = sv[0];
	in_w = sv[1];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	out_w = sv[0];
	out_r = sv[1];
}

static void
set_nonblock(int fd)
{
	assert_int_equal(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
}

/* A bounded loop of reactor turns that moves bytes for the test:
 * writes `src` into `wfd` (then closes it when `close_after`), reads
 * `rfd` into `dst` until EOF.  Stops when `until_done` and the relay
 * finished, or when nothing happened for `idle_ms`. */
struct flow {
	int wfd, close_after;
	const unsigned char *src;
	size_t src_len, sent;
	int rfd, eof;
	unsigned char *dst;
	size_t dst_cap, got;
};

static void
flow_step(struct flow *f)
{
	if (f->wfd >= 0 && f->sent < f->src_len) {
		ssize_t n = write(f->wfd, f->src + f->sent, f->src_len - f->sent);
		if (n > 0)
			f->sent += (size_t)n;
		else
			assert_true(errno == EAGAIN);
	}
	if (f->wfd >= 0 && f->sent == f->src_len && f->close_after) {
		if (f->wfd == in_w)
			closep(&in_w);
		else
			shutdown(f->wfd, SHUT_WR);
		f->wfd = -1;
	}
	while (f->rfd >= 0 && !f->eof) {
		unsigned char tmp[65536];
		ssize_t n = read(f->rfd, tmp, sizeof tmp);
		if (n < 0) {
			assert_true(errno == EAGAIN);
			break;
		}
		if (n == 0) {
			f->eof = 1;
			break;
		}
		assert_true(f->got + (size_t)n <= f->dst_cap);
		memcpy(f->dst + f->got, tmp, (size_t)n);
		f->got += (size_t)n;
	}
}

static void
run_flows(struct flow *a, struct flow *b, int until_done, int idle_ms)
{
	uint64_t end = reactor_clock_ms() + 20000;
	uint64_t idle_end = reactor_clock_ms() + (uint64_t)idle_ms;

	for (;;) {
		size_t before = (a ? a->sent + a->got : 0) + (b ? b->sent + b->got : 0);
		int n;

		if (a)
			flow_step(a);
		if (b)
			flow_step(b);
		if (until_done && done_calls > 0 && (!a || a->rfd < 0 || a->eof) &&
		    (!b || b->rfd < 0 || b->eof))
			return;
		n = reactor_run_once(&R, 5);
		assert_true(n >= 0);
		if (n > 0 || ((a ? a->sent + a->got : 0) + (b ? b->sent + b->got : 0)) != before)
			idle_end = reactor_clock_ms() + (uint64_t)idle_ms;
		if (!until_done && reactor_clock_ms() >= idle_end)
			return;
		assert_true(reactor_clock_ms() < end);
	}
}

static unsigned char up_got[sizeof big], down_got[sizeof big];

/* Full duplex: `big` up through the relay to the peer and, at the same
 * time, back down from the peer to `out`; both sides half-close. */
static void
roundtrip(unsigned flags)
{
	struct flow up = { in_w, 1, big, sizeof big, 0, peer, 0, up_got, sizeof up_got, 0 };
	struct flow down = { peer, 1, big, sizeof big, 0, out_r, 0, down_got, sizeof down_got, 0 };
	int fl_in = fcntl(in_r, F_GETFL), fl_out = fcntl(out_w, F_GETFL);

	set_nonblock(in_w);
	set_nonblock(out_r);
	set_nonblock(peer);
	assert_int_equal(relay_start(&RL, &R, in_r, sock, out_w, flags, on_done, NULL), 0);
	run_flows(&up, &down, 1, 0);
	assert_int_equal(done_calls, 1);
	assert_true(RL.ok);
	assert_int_equal(RL.err.code, ERR_NONE);
	assert_true(up.eof && down.eof);
	assert_int_equal(up.got, sizeof big);
	assert_int_equal(down.got, sizeof big);
	assert_memory_equal(up_got, big, sizeof big);
	assert_memory_equal(down_got, big, sizeof big);
	assert_int_equal(RL.bytes[RELAY_UP], sizeof big);
	assert_int_equal(RL.bytes[RELAY_DOWN], sizeof big);
	assert_true(RL.out_closed);
	/* flags as they were; `out` is closed by the relay (a socket: shut
	 * down, still open) */
	assert_int_equal(fcntl(in_r, F_GETFL), fl_in);
	if (RL.end[RELAY_OUT].closed) {
		assert_int_equal(fcntl(out_w, F_GETFL), -1);
		out_w = -1;
	} else {
		assert_int_equal(fcntl(out_w, F_GETFL), fl_out);
	}
	assert_int_equal(RL.end[RELAY_IN].handle, -1);
}

static void
test_pipes_splice(void **state)
{
	(void)state;
	use_pipes();
	/* a direction that can splice uses only RELAY_SMALL bytes of its
	 * buffer (the rest is never touched: no memory) */
	memset(RL.buf, 0xee, sizeof RL.buf);
	roundtrip(0);
	assert_true(RL.end[RELAY_OUT].closed);
	assert_true(RL.dir[RELAY_UP].splice && RL.dir[RELAY_DOWN].splice);
	for (int k = 0; k < RELAY_NDIRS; k++)
		for (size_t i = RELAY_SMALL; i < RELAY_BUF_SIZE; i++)
			assert_int_equal(RL.buf[k][i], 0xee);
}

/* Small messages go through read/write, bulk through splice, back and
 * forth, in order. */
static void
test_small_then_bulk(void **state)
{
	static unsigned char got[sizeof big];
	struct flow drain = { -1, 0, NULL, 0, 0, -1, 0, got, sizeof got, 0 };
	size_t sent = 0;
	int q;

	(void)state;
	use_pipes();
	drain.rfd = peer;
	set_nonblock(in_w);
	set_nonblock(peer);
	assert_int_equal(relay_start(&RL, &R, in_r, sock, out_w, 0, on_done, NULL), 0);
	for (q = 0; q < 6; q++) {
		size_t n = q % 2 ? 64 : 300000;     /* small, bulk, small, ... */
		uint64_t end = reactor_clock_ms() + 10000;

		for (size_t w = 0; w < n; ) {
			ssize_t r = write(in_w, big + sent + w, n - w);
			if (r > 0)
				w += (size_t)r;
			flow_step(&drain);
			assert_true(reactor_run_once(&R, 1) >= 0);
		}
		sent += n;
		while (drain.got < sent) {
			flow_step(&drain);
			assert_true(reactor_run_once(&R, 5) >= 0);
			assert_true(reactor_clock_ms() < end);
		}
		if (n == 64)
			assert_false(RL.dir[RELAY_UP].bulk);
	}
	assert_int_equal(drain.got, sent);
	assert_memory_equal(got, big, sent);
}

static void
test_pipes_buffered(void **state)
{
	(void)state;
	use_pipes();
	roundtrip(RELAY_NO_SPLICE);
	assert_true(!RL.dir[RELAY_UP].splice && !RL.dir[RELAY_DOWN].splice);
}

static void
test_socket_stdio(void **state)
{
	(void)state;
	use_socketpairs();
	roundtrip(0);
	assert_false(RL.end[RELAY_OUT].closed);        /* shut down, not closed */
	assert_true(!RL.dir[RELAY_UP].splice && !RL.dir[RELAY_DOWN].splice);
}

/* The peer does not read: the relay must stop reading `in` once its
 * buffer (or, in splice mode, the socket) is full. */
static void
backpressure(unsigned flags)
{
	struct flow up = { in_w, 0, big, sizeof big, 0, -1, 0, NULL, 0, 0 };
	struct flow drain = { -1, 0, NULL, 0, 0, peer, 0, up_got, sizeof up_got, 0 };
	int q = 0;

	use_pipes();
	up.wfd = in_w;
	drain.rfd = peer;
	set_nonblock(in_w);
	set_nonblock(peer);
	assert_int_equal(relay_start(&RL, &R, in_r, sock, out_w, flags, on_done, NULL), 0);
	run_flows(&up, NULL, 0, 100);
	/* stuck: data left in `in`, and it stays there while the peer does
	 * not read -- the relay stopped taking from `in` */
	assert_int_equal(ioctl(in_r, FIONREAD, &q), 0);
	assert_true(q > 0);
	for (int k = 0; k < 20; k++)
		assert_true(reactor_run_once(&R, 5) >= 0);
	{
		int q2 = 0;
		assert_int_equal(ioctl(in_r, FIONREAD, &q2), 0);
		assert_int_equal(q2, q);
	}
	assert_int_equal(done_calls, 0);
	/* the peer reads: everything moves */
	up.close_after = 1;
	run_flows(&up, &drain, 0, 0);
	for (uint64_t end = reactor_clock_ms() + 20000; !drain.eof; ) {
		flow_step(&up);
		flow_step(&drain);
		assert_true(reactor_run_once(&R, 5) >= 0);
		assert_true(reactor_clock_ms() < end);
	}
	assert_int_equal(drain.got, sizeof big);
	assert_memory_equal(up_got, big, sizeof big);
}

static void
test_backpressure_buffered(void **state)
{
	(void)state;
	backpressure(RELAY_NO_SPLICE);
}

static void
test_backpressure_splice(void **state)
{
	(void)state;
	backpressure(0);
}

/* The peer goes away with our bytes unread: a reset, reported. */
static void
test_reset(void **state)
{
	struct flow up = { in_w, 0, big, sizeof big, 0, -1, 0, NULL, 0, 0 };

	(void)state;
	use_pipes();
	up.wfd = in_w;
	set_nonblock(in_w);
	assert_int_equal(relay_start(&RL, &R, in_r, sock, out_w, 0, on_done, NULL), 0);
	run_flows(&up, NULL, 0, 50);
	closep(&peer);
	run_flows(&up, NULL, 1, 0);
	assert_int_equal(done_calls, 1);
	assert_false(RL.ok);
	assert_int_equal(RL.err.code, ERR_IO);
	assert_non_null(strstr(RL.err.msg, "failed to copy data from"));
}

/* A reader of `out` that went away is only an error when there is data
 * for it; at EOF, splice's early EPIPE is not one. */
static void
test_out_reader_gone(void **state)
{
	(void)state;
	use_pipes();
	closep(&out_r);
	closep(&in_w);                  /* in: EOF at once */
	assert_int_equal(relay_start(&RL, &R, in_r, sock, out_w, 0, on_done, NULL), 0);
	shutdown(peer, SHUT_WR);        /* the server ends without a byte */
	run_flows(NULL, NULL, 1, 0);
	assert_true(RL.ok);
	teardown(NULL);
	setup(NULL);

	use_pipes();
	closep(&out_r);
	assert_int_equal(relay_start(&RL, &R, in_r, sock, out_w, 0, on_done, NULL), 0);
	assert_int_equal(write(peer, "data", 4), 4);
	run_flows(NULL, NULL, 1, 0);
	assert_false(RL.ok);
	assert_non_null(strstr(RL.err.msg, "socket to stdout: Broken pipe"));
	assert_int_equal(RL.bytes[RELAY_DOWN], 0);
}

/* Regular files and /dev/null are never watched, always ready. */
static void
test_files(void **state)
{
	struct flow drain = { -1, 0, NULL, 0, 0, peer, 0, up_got, sizeof up_got, 0 };
	FILE *fi = tmpfile(), *fo = tmpfile();
	int dn = open("/dev/null", O_RDONLY | O_CLOEXEC);

	(void)state;
	assert_non_null(fi);
	assert_non_null(fo);
	assert_true(dn >= 0);
	assert_int_equal(write(fileno(fi), big, sizeof big), (ssize_t)sizeof big);
	assert_int_equal(lseek(fileno(fi), 0, SEEK_SET), 0);
	set_nonblock(peer);
	in_r = dup(fileno(fi));
	out_w = dup(fileno(fo));
	assert_int_equal(relay_start(&RL, &R, in_r, sock, out_w, 0, on_done, NULL), 0);
	assert_int_equal(RL.end[RELAY_IN].handle, -1);
	assert_int_equal(RL.end[RELAY_OUT].handle, -1);
	/* the server answers while it reads, then closes */
	assert_int_equal(write(peer, "answer", 6), 6);
	run_flows(NULL, &drain, 0, 0);
	for (uint64_t end = reactor_clock_ms() + 20000; !drain.eof; ) {
		flow_step(&drain);
		assert_true(reactor_run_once(&R, 5) >= 0);
		assert_true(reactor_clock_ms() < end);
	}
	assert_int_equal(drain.got, sizeof big);
	assert_memory_equal(up_got, big, sizeof big);
	shutdown(peer, SHUT_WR);
	run_flows(NULL, NULL, 1, 0);
	assert_true(RL.ok);
	{
		char b[16] = "";
		assert_int_equal(pread(fileno(fo), b, sizeof b, 0), 6);
		assert_memory_equal(b, "answer", 6);
	}
	fclose(fi);
	fclose(fo);

	/* /dev/null on stdin: EOF at once, the socket is half-closed */
	teardown(NULL);
	setup(NULL);
	use_pipes();
	closep(&in_r);
	in_r = dn;
	assert_int_equal(relay_start(&RL, &R, in_r, sock, out_w, 0, on_done, NULL), 0);
	assert_int_equal(RL.end[RELAY_IN].handle, -1);
	for (uint64_t end = reactor_clock_ms() + 5000; ; ) {
		char c;
		ssize_t n = recv(peer, &c, 1, MSG_DONTWAIT);
		if (n == 0)
			break;
		assert_true(n < 0 && errno == EAGAIN);
		assert_true(reactor_run_once(&R, 5) >= 0);
		assert_true(reactor_clock_ms() < end);
	}
	assert_int_equal(done_calls, 0);        /* the other direction runs on */
}

static void
test_bad_args(void **state)
{
	(void)state;
	use_pipes();
	errno = 0;
	assert_int_equal(relay_start(&RL, &R, in_r, in_r, out_w, 0, on_done, NULL), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(relay_start(&RL, &R, in_r, out_r, out_w, 0, on_done, NULL), -1);
	assert_int_equal(errno, ENOTSOCK);
	assert_int_equal(RL.err.code, ERR_IO);
	assert_int_equal(done_calls, 0);
}

/* Flags changed for buffer mode are put back by a cancel too. */
static void
test_cancel_restores(void **state)
{
	int fl_in, fl_sock;

	(void)state;
	use_socketpairs();
	fl_in = fcntl(in_r, F_GETFL);
	fl_sock = fcntl(sock, F_GETFL);
	assert_int_equal(relay_start(&RL, &R, in_r, sock, out_w, 0, on_done, NULL), 0);
	assert_true(fcntl(in_r, F_GETFL) & O_NONBLOCK);
	relay_cancel(&RL);
	assert_int_equal(fcntl(in_r, F_GETFL), fl_in);
	assert_int_equal(fcntl(sock, F_GETFL), fl_sock);
	assert_int_equal(done_calls, 0);
	assert_int_equal(reactor_run_once(&R, 0), 0);
}

static void
test_connect(void **state)
{
	struct sockaddr_un sa;
	struct err e;
	char path[64], longp[200];
	int l, fd;

	(void)state;
	snprintf(path, sizeof path, "/tmp/appd-relay-%d.sock", (int)getpid());
	unlink(path);
	err_clear(&e);
	assert_int_equal(relay_connect(path, 1000, &e), -1);
	assert_int_equal(e.code, ERR_NOT_RUNNING);
	assert_non_null(strstr(e.msg, "failed to connect to socket at"));

	memset(longp, 'a', sizeof longp - 1);
	longp[0] = '/';
	longp[sizeof longp - 1] = '\0';
	err_clear(&e);
	assert_int_equal(relay_connect(longp, 1000, &e), -1);
	assert_int_equal(e.code, ERR_USAGE);

	l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof sa), 0);
	/* bound, not listening: refused */
	err_clear(&e);
	assert_int_equal(relay_connect(path, 1000, &e), -1);
	assert_int_equal(e.code, ERR_NOT_RUNNING);
	assert_int_equal(listen(l, 1), 0);
	fd = relay_connect(path, 1000, &e);
	assert_true(fd >= 0);
	assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	close(fd);
	close(l);
	unlink(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pipes_splice, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pipes_buffered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_small_then_bulk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_socket_stdio, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backpressure_buffered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backpressure_splice, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_out_reader_gone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_args, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_restores, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connect, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
