/*
 * proxy_load.c -- the server and the load generator of bench_proxy.py.
 * One C11 file, no libraries; built by the benchmark itself:
 *
 *   gcc -std=c11 -D_GNU_SOURCE -O2 -o build/bench/proxy_load bench/proxy_load.c
 *
 *   proxy_load serve PATH
 *       Unix stream listener at PATH (unlinked first); every connection
 *       gets its own forked child that echoes with one 256 KiB buffer and
 *       blocking read(2)/write(2) until the client's EOF, then closes.
 *       Prints "ready\n" on stdout once listening.  SIGTERM: exit.
 *   proxy_load pump BYTES [--connect PATH]
 *       Writes BYTES bytes (a fixed pattern) to fd 1 and reads fd 0 until
 *       EOF at the same time (poll(2), non-blocking, 256 KiB chunks), then
 *       prints "result <seconds> <bytes read>".  Timed from the first write to
 *       EOF.  With --connect: one socket to PATH instead of fd 0/1 (the
 *       baseline without a proxy).  Exit 1 when fewer bytes came back.
 *       Results go to stderr as "result ..." (stdout may be the proxy).
 *   proxy_load rtt COUNT SIZE [--connect PATH]
 *       COUNT round trips: write SIZE bytes, read SIZE bytes back; prints
 *       "result <median us> <p90 us> <p99 us>" (CLOCK_MONOTONIC per round trip,
 *       100 warm-up round trips first, not counted).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (256 * 1024)

static unsigned char buf[CHUNK], wbuf[CHUNK];

static void
die(const char *what)
{
	fprintf(stderr, "proxy_load: %s: %s\n", what, strerror(errno));
	exit(1);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
unix_connect(const char *path)
{
	struct sockaddr_un sa;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
		die("connect");
	return fd;
}

static void
echo(int c)
{
	for (;;) {
		ssize_t n = read(c, buf, sizeof buf), off = 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		while (off < n) {
			ssize_t w = write(c, buf + off, (size_t)(n - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				_exit(0);
			off += w;
		}
	}
	_exit(0);
}

static _Noreturn void
serve(const char *path)
{
	struct sockaddr_un sa;
	int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	signal(SIGCHLD, SIG_IGN);       /* children are reaped by the kernel */
	signal(SIGPIPE, SIG_IGN);
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	unlink(path);
	if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(l, 64) < 0)
		die("listen");
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
		pid_t pid;

		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			die("accept");
		}
		pid = fork();
		if (pid == 0) {
			close(l);
			echo(c);
		}
		close(c);
	}
}

static int
pump(long long total, int in, int out)
{
	long long sent = 0, got = 0;
	double t0;

	for (size_t i = 0; i < sizeof wbuf; i++)
		wbuf[i] = (unsigned char)(i * 31 + 7);
	fcntl(in, F_SETFL, fcntl(in, F_GETFL) | O_NONBLOCK);
	fcntl(out, F_SETFL, fcntl(out, F_GETFL) | O_NONBLOCK);
	t0 = now_s();
	for (;;) {
		struct pollfd p[2] = { { in, POLLIN, 0 }, { out, POLLOUT, 0 } };
		int np = sent < total ? 2 : 1;

		if (poll(p, (nfds_t)np, -1) < 0) {
			if (errno == EINTR)
				continue;
			die("poll");
		}
		if (np == 2 && (p[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
			size_t n = total - sent < CHUNK ? (size_t)(total - sent) : CHUNK;
			ssize_t w = write(out, wbuf, n);

			if (w < 0 && errno != EAGAIN && errno != EINTR)
				die("write");
			if (w > 0)
				sent += w;
			if (sent == total) {
				if (in == out)
					shutdown(out, SHUT_WR);
				else
					close(out);
			}
		}
		if (p[0].revents & (POLLIN | POLLERR | POLLHUP)) {
			ssize_t r = read(in, buf, sizeof buf);

			if (r < 0 && errno != EAGAIN && errno != EINTR)
				die("read");
			if (r == 0)
				break;
			if (r > 0)
				got += r;
		}
	}
	fprintf(stderr, "result %.6f %lld\n", now_s() - t0, got);
	return got == total ? 0 : 1;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int
rtt(int count, int size, int in, int out)
{
	double *t = calloc((size_t)count, sizeof *t);
	int i;

	if (t == NULL || size <= 0 || size > CHUNK)
		return 2;
	memset(wbuf, 'x', (size_t)size);
	for (i = -100; i < count; i++) {
		double t0 = now_s();
		int got = 0;

		if (write(out, wbuf, (size_t)size) != size)
			die("write");
		while (got < size) {
			ssize_t r = read(in, buf + got, (size_t)(size - got));

			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				die("read");
			got += (int)r;
		}
		if (i >= 0)
			t[i] = (now_s() - t0) * 1e6;
	}
	qsort(t, (size_t)count, sizeof *t, cmp_double);
	fprintf(stderr, "result %.2f %.2f %.2f\n", t[count / 2], t[count * 9 / 10],
	    t[count * 99 / 100]);
	return 0;
}

int
main(int argc, char **argv)
{
	int in = 0, out = 1;

	signal(SIGPIPE, SIG_IGN);
	if (argc >= 3 && strcmp(argv[1], "serve") == 0)
		serve(argv[2]);
	if (argc >= 5 && strcmp(argv[argc - 2], "--connect") == 0) {
		in = out = unix_connect(argv[argc - 1]);
		argc -= 2;
	}
	if (argc == 3 && strcmp(argv[1], "pump") == 0)
		return pump(atoll(argv[2]), in, out);
	if (argc == 4 && strcmp(argv[1], "rtt") == 0)
		return rtt(atoi(argv[2]), atoi(argv[3]), in, out);
	fprintf(stderr, "usage: proxy_load serve PATH | pump BYTES [--connect PATH] | "
	    "rtt COUNT SIZE [--connect PATH]\n");
	return 2;
}
