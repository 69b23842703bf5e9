/* relay.c -- see relay.h. */
#include "core/net/relay.h"
#include "core/net/job.h"
#include "core/base/fmt.h"
#include "platform/compat.h"
#include "core/sockprep.h"
#include "platform/reactor.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

enum {
	RELAY_T_PIPE = 1,       /* FIFO: splice-able, watched */
	RELAY_T_SOCK,           /* socket: watched, O_NONBLOCK */
	RELAY_T_FILE,           /* never watched: always ready (regular file,
	                         * or a device epoll refuses) */
	RELAY_T_OTHER           /* tty or other device: watched, flags kept */
};

static const char *const dir_what[RELAY_NDIRS] = {
	"stdin to socket", "socket to stdout"
};
static const char *const end_name[RELAY_NENDS] = { "stdin", "socket", "stdout" };

/* ---- flags ---- */

static int
make_nonblock(struct relay_end *x)
{
	if (x->fl & O_NONBLOCK)
		return 0;
	if (fcntl(x->fd, F_SETFL, x->fl | O_NONBLOCK) < 0)
		return -1;
	x->changed = 1;
	return 0;
}

static void
restore(struct relay_end *x)
{
	if (x->changed && !x->closed)
		(void)fcntl(x->fd, F_SETFL, x->fl);
	x->changed = 0;
}

/* ---- the end of the relay ---- */

static void
release(struct relay *rl)
{
	job_release(&rl->job);
	for (int i = 0; i < RELAY_NENDS; i++)
		rl->end[i].mask = 0;
	/* the saved flags predate every change: any order restores them */
	for (int i = 0; i < RELAY_NENDS; i++)
		restore(&rl->end[i]);
}

/* End the relay: release everything and call done (core/net/job.h).
 * Returns -1: the caller must not touch `rl` afterwards (done may have
 * reused it). */
static int
finish(struct relay *rl)
{
	for (int i = 0; i < RELAY_NENDS; i++)
		rl->end[i].mask = 0;
	for (int i = 0; i < RELAY_NENDS; i++)
		restore(&rl->end[i]);
	if (job_end(&rl->job))
		rl->done(rl, rl->arg);
	return -1;
}

static int
fail(struct relay *rl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
fail(struct relay *rl, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	err_vset(&rl->err, ERR_IO, fmt, ap);
	va_end(ap);
	rl->ok = 0;
	return finish(rl);
}

void
relay_cancel(struct relay *rl)
{
	if (rl->job.active)
		release(rl);
}

/* ---- interest ---- */

static int
always_ready(const struct relay_end *x)
{
	return x->type == RELAY_T_FILE;
}

/* Bytes of the buffer a direction uses. */
static size_t
buf_cap(const struct relay_dir *d)
{
	return d->splice ? RELAY_SMALL : RELAY_BUF_SIZE;
}

/* What end `idx` must be watched for, over both directions: read
 * interest only while there is room for what is read, write interest
 * only while something waits to be written (or an always-ready source
 * waits for the destination). */
static unsigned
want_mask(const struct relay *rl, int idx)
{
	unsigned m = 0;
	int k;

	for (k = 0; k < RELAY_NDIRS; k++) {
		const struct relay_dir *d = &rl->dir[k];
		size_t pend = d->len - d->off;

		if (d->done)
			continue;
		if (d->bulk && pend == 0) {
			if (d->wait_dst && d->dst == idx)
				m |= REACTOR_WRITE;
			else if (!d->wait_dst && d->src == idx)
				m |= REACTOR_READ;
			continue;
		}
		if (d->src == idx && !d->eof && !d->bulk && pend < buf_cap(d))
			m |= REACTOR_READ;
		if (d->dst == idx && (pend > 0 ||
		    (!d->eof && always_ready(&rl->end[d->src]))))
			m |= REACTOR_WRITE;
	}
	return m;
}

/* Apply the interest; -1/errno when the reactor refuses (nothing else is
 * done: the caller decides whether that ends the relay). */
static int
set_interest(struct relay *rl, int *bad)
{
	int i;

	for (i = 0; i < RELAY_NENDS; i++) {
		struct relay_end *x = &rl->end[i];
		unsigned m;

		if (x->handle < 0)
			continue;
		m = want_mask(rl, i);
		if (m == x->mask)
			continue;
		if (reactor_io_set(rl->job.r, x->handle, m) < 0) {
			*bad = i;
			return -1;
		}
		x->mask = m;
	}
	return 0;
}

/* ---- one direction ---- */

/* The source is exhausted and everything is written: half-close the
 * destination so its reader sees EOF. */
static int
dir_end(struct relay *rl, int k)
{
	struct relay_dir *d = &rl->dir[k];
	struct relay_end *t = &rl->end[d->dst];

	d->done = 1;
	if (t->type == RELAY_T_SOCK) {
		if (shutdown(t->fd, SHUT_WR) < 0 && errno != ENOTCONN)
			return fail(rl, "failed to shutdown %s writer: %s", end_name[d->dst],
			    strerror(errno));
	} else {
		if (t->handle >= 0)
			(void)reactor_del(rl->job.r, t->handle);
		t->handle = -1;
		t->mask = 0;
		restore(t);
		t->closed = 1;
		/* EINTR: the fd is gone anyway on Linux; do not retry */
		if (close(t->fd) < 0 && errno != EINTR) {
			rl->out_closed = d->dst == RELAY_OUT;
			return fail(rl, "failed to close %s: %s", end_name[d->dst], strerror(errno));
		}
	}
	if (d->dst == RELAY_OUT)
		rl->out_closed = 1;
	return 0;
}

static ssize_t
end_read(const struct relay_end *x, void *buf, size_t n)
{
	ssize_t r;

	do
		r = read(x->fd, buf, n);
	while (r < 0 && errno == EINTR);
	return r;
}

static ssize_t
end_write(const struct relay_end *x, const void *buf, size_t n)
{
	ssize_t r;

	do
		r = x->type == RELAY_T_SOCK ? send(x->fd, buf, n, COMPAT_NOSIGNAL) :
		    write(x->fd, buf, n);
	while (r < 0 && errno == EINTR);
	return r;
}

/*
 * A write to the socket failed with EPIPE or ECONNRESET: the server has
 * closed.  What it sent before closing is still queued for us (a direct
 * client reads all of it before the reset), so the upward direction ends
 * here, with its error kept, and the downward one goes on until the
 * socket's EOF or reset; the relay then ends in that error (exit 1)
 * with everything delivered.  0 when that applies, else -1 (errno kept).
 */
static int
up_broken(struct relay *rl, int k)
{
	struct relay_dir *d = &rl->dir[k];
	int saved = errno;

	if (k != RELAY_UP || (saved != EPIPE && saved != ECONNRESET) ||
	    rl->dir[RELAY_DOWN].done)
		return -1;
	err_set(&rl->err, ERR_IO, "failed to copy data from %s: %s", dir_what[k],
	    strerror(saved));
	rl->broken = 1;
	d->done = 1;
	d->len = d->off = 0;
	return 0;
}

/* Buffer mode.  `src_ev` / `dst_ev`: the source was reported readable /
 * the destination writable (or in error) in this turn. */
static int
buf_step(struct relay *rl, int k, int src_ev, int dst_ev)
{
	struct relay_dir *d = &rl->dir[k];
	struct relay_end *s = &rl->end[d->src], *t = &rl->end[d->dst];
	int src_ready = src_ev || always_ready(s);
	int i;

	if (dst_ev || always_ready(t))
		d->blocked = 0;
	for (i = 0; i < RELAY_STEP_MAX; i++) {
		int moved = 0;

		/* an always-ready destination takes everything now; any other
		 * gets one write, and a short one means it is full */
		while (d->len > d->off && !d->blocked) {
			ssize_t n = end_write(t, rl->buf[k] + d->off, d->len - d->off);

			if (n < 0) {
				if (errno != EAGAIN && errno != EWOULDBLOCK) {
					if (up_broken(rl, k) == 0)
						return 0;
					return fail(rl, "failed to copy data from %s: %s",
					    dir_what[k], strerror(errno));
				}
				d->blocked = 1;
				break;
			}
			moved = 1;
			d->off += (size_t)n;
			rl->bytes[k] += (uint64_t)n;
			if (d->off == d->len)
				d->off = d->len = 0;
			else if (!always_ready(t))
				d->blocked = 1;
		}
		if (!d->eof && src_ready && !d->bulk && d->len - d->off < buf_cap(d)) {
			size_t want;
			ssize_t n;

			if (d->len == buf_cap(d)) {
				memmove(rl->buf[k], rl->buf[k] + d->off, d->len - d->off);
				d->len -= d->off;
				d->off = 0;
			}
			want = buf_cap(d) - d->len;
			n = end_read(s, rl->buf[k] + d->len, want);
			if (n < 0 && rl->broken && errno == ECONNRESET) {
				d->eof = 1;     /* drained: the reset follows the data */
			} else if (n < 0) {
				if (errno != EAGAIN && errno != EWOULDBLOCK)
					return fail(rl, "failed to copy data from %s: %s",
					    dir_what[k], strerror(errno));
			} else if (n == 0) {
				d->eof = 1;
			} else {
				d->len += (size_t)n;
				moved = 1;
				/* a full small read: bulk data, splice it once the
				 * buffer is flushed */
				if (d->splice && (size_t)n == want && want == RELAY_SMALL)
					d->bulk = 1;
			}
			/* one read per readiness report: level-triggered
			 * epoll reports the rest on the next turn */
			if (!always_ready(s))
				src_ready = 0;
		}
		if (!moved)
			break;
	}
	if (d->eof && d->len == d->off)
		return dir_end(rl, k);
	return 0;
}

/* Splice mode: move what the destination takes; on EAGAIN find out which
 * side is not ready. */
static int
splice_step(struct relay *rl, int k)
{
	struct relay_dir *d = &rl->dir[k];
	struct relay_end *s = &rl->end[d->src], *t = &rl->end[d->dst];
	ssize_t n;
	int q = 0;

	n = compat_splice(s->fd, t->fd, RELAY_SPLICE_MAX);
	if (n > 0) {
		rl->bytes[k] += (uint64_t)n;
		d->wait_dst = 0;
		if (n < RELAY_SMALL)
			d->bulk = 0;    /* small again: read/write is cheaper */
		return 0;
	}
	if (n == 0) {
		d->eof = 1;
		return dir_end(rl, k);
	}
	if (up_broken(rl, k) == 0)
		return 0;
	if (rl->broken && errno == ECONNRESET && k == RELAY_DOWN) {
		d->eof = 1;
		return dir_end(rl, k);
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK) {
		/* data left in the source: the destination is full */
		if (ioctl(s->fd, FIONREAD, &q) < 0)
			q = 0;
		d->wait_dst = q > 0;
		return 0;
	}
	if (errno == EPIPE && s->type == RELAY_T_SOCK) {
		/* splice(2) into a pipe without readers fails before it looks at
		 * the socket; read(2) would have seen the EOF first.  Only data
		 * that cannot be delivered is an error. */
		char c;

		do
			n = recv(s->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
		while (n < 0 && errno == EINTR);
		if (n == 0) {
			d->eof = 1;
			return dir_end(rl, k);
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			d->wait_dst = 0;        /* decide when the socket speaks */
			return 0;
		}
		if (n > 0)
			errno = EPIPE;
	}
	if (errno == EINVAL || errno == ENOSYS) {
		/* splice refused for these fds: buffers only */
		d->splice = d->bulk = d->wait_dst = 0;
		return buf_step(rl, k, 1, 1);
	}
	return fail(rl, "failed to copy data from %s: %s", dir_what[k], strerror(errno));
}

static int
dir_step(struct relay *rl, int k, int src_ev, int dst_ev)
{
	struct relay_dir *d = &rl->dir[k];

	if (d->bulk && d->len == d->off)
		return splice_step(rl, k);
	return buf_step(rl, k, src_ev, dst_ev);
}

/* ---- events ---- */

static void
on_io(struct reactor *r, int h, int ev, void *arg)
{
	struct relay *rl = arg;
	int idx, k, bad = 0;

	(void)r;
	for (idx = 0; idx < RELAY_NENDS; idx++)
		if (rl->end[idx].handle == h)
			break;
	if (idx == RELAY_NENDS || !rl->job.active)
		return;
	for (k = 0; k < RELAY_NDIRS; k++) {
		struct relay_dir *d = &rl->dir[k];
		int src_ev = d->src == idx && (ev & (REACTOR_READ | REACTOR_ERR));
		int dst_ev = d->dst == idx && (ev & (REACTOR_WRITE | REACTOR_ERR));

		if (d->done || (!src_ev && !dst_ev))
			continue;
		if (dir_step(rl, k, src_ev, dst_ev) < 0)
			return;         /* finished: rl is not ours any more */
	}
	if (rl->dir[RELAY_UP].done && rl->dir[RELAY_DOWN].done) {
		rl->ok = !rl->broken;   /* broken: rl->err was set then */
		finish(rl);
		return;
	}
	if (set_interest(rl, &bad) < 0)
		fail(rl, "failed to watch %s: %s", end_name[bad], strerror(errno));
}

/* ---- start ---- */

static int
end_type(const struct stat *st)
{
	if (S_ISFIFO(st->st_mode))
		return RELAY_T_PIPE;
	if (S_ISSOCK(st->st_mode))
		return RELAY_T_SOCK;
	if (S_ISCHR(st->st_mode))
		return RELAY_T_OTHER;
	return RELAY_T_FILE;
}

static int
start_fail(struct relay *rl, const char *what, int idx)
{
	int saved = errno;

	release(rl);
	errno = saved;
	err_set(&rl->err, ERR_IO, "failed to %s %s: %s", what, end_name[idx], strerror(saved));
	errno = saved;
	return -1;
}

/* Set-up in the order it can be undone: arguments, flags read before any
 * is changed, directions, non-blocking mode, watches. */
int
relay_start(struct relay *rl, struct reactor *r, int in_fd, int sock_fd, int out_fd,
    unsigned flags, relay_done_cb *done, void *arg)
{
	const int fds[RELAY_NENDS] = { in_fd, sock_fd, out_fd };
	struct stat st;
	int i, bad = 0;

	rl->ok = 0;
	err_clear(&rl->err);
	rl->bytes[RELAY_UP] = rl->bytes[RELAY_DOWN] = 0;
	rl->out_closed = 0;
	rl->broken = 0;
	rl->done = done;
	rl->arg = arg;
	for (i = 0; i < RELAY_NENDS; i++) {
		struct relay_end *x = &rl->end[i];

		x->fd = fds[i];
		x->type = 0;
		x->handle = -1;
		x->mask = 0;
		x->fl = 0;
		x->changed = 0;
		x->closed = 0;
	}
	if (in_fd < 0 || sock_fd < 0 || out_fd < 0 || in_fd == sock_fd || in_fd == out_fd ||
	    sock_fd == out_fd || done == NULL || r == NULL) {
		errno = EINVAL;
		return err_set(&rl->err, ERR_IO, "relay: bad arguments");
	}
	{
		int *const watches[] = { &rl->end[0].handle, &rl->end[1].handle, &rl->end[2].handle };
		job_begin(&rl->job, r, watches, RELAY_NENDS, NULL, 0);
	}
	/* every flag is read before any is changed: fd 0 and 1 may share
	 * one open file description */
	for (i = 0; i < RELAY_NENDS; i++) {
		struct relay_end *x = &rl->end[i];

		if (fstat(x->fd, &st) < 0)
			return start_fail(rl, "inspect", i);
		if ((x->fl = fcntl(x->fd, F_GETFL)) < 0)
			return start_fail(rl, "inspect", i);
		x->type = end_type(&st);
	}
	if (rl->end[RELAY_SOCK].type != RELAY_T_SOCK) {
		errno = ENOTSOCK;
		return start_fail(rl, "use", RELAY_SOCK);
	}
	rl->dir[RELAY_UP].src = RELAY_IN;
	rl->dir[RELAY_UP].dst = RELAY_SOCK;
	rl->dir[RELAY_DOWN].src = RELAY_SOCK;
	rl->dir[RELAY_DOWN].dst = RELAY_OUT;
	for (i = 0; i < RELAY_NDIRS; i++) {
		struct relay_dir *d = &rl->dir[i];
		int pipe_end = i == RELAY_UP ? RELAY_IN : RELAY_OUT;

		d->splice = compat_has_splice() && rl->end[pipe_end].type == RELAY_T_PIPE &&
		    !(flags & RELAY_NO_SPLICE);
		d->bulk = d->wait_dst = d->blocked = d->eof = d->done = 0;
		d->off = d->len = 0;
	}
	/* read(2)/write(2) must never block; a tty or a file is left as it is */
	for (i = 0; i < RELAY_NENDS; i++)
		if ((rl->end[i].type == RELAY_T_SOCK || rl->end[i].type == RELAY_T_PIPE) &&
		    make_nonblock(&rl->end[i]) < 0)
			return start_fail(rl, "set up", i);
	/* register each watchable end with a natural first interest; epoll
	 * refuses (EPERM) what is always ready, such as /dev/null */
	for (i = 0; i < RELAY_NENDS; i++) {
		struct relay_end *x = &rl->end[i];
		unsigned probe = i == RELAY_OUT ? REACTOR_WRITE : REACTOR_READ;
		int h;

		if (x->type == RELAY_T_FILE)
			continue;
		h = reactor_io_add(r, x->fd, probe, on_io, rl);
		if (h < 0) {
			if (errno == EPERM && i != RELAY_SOCK) {
				x->type = RELAY_T_FILE;
				continue;
			}
			return start_fail(rl, "watch", i);
		}
		x->handle = h;
		x->mask = probe;
	}
	if (set_interest(rl, &bad) < 0)
		return start_fail(rl, "watch", bad);
	job_started(&rl->job);
	return 0;
}

/* ---- connect ---- */

int
relay_connect(const char *path, int timeout_ms, struct err *e)
{
	struct sockaddr_un sa;
	struct timeval tv;
	int fd, r, saved;

	if (sock_path_check(path, e) < 0)
		return -1;
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path));
	fd = compat_socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0)
		return err_sys(e, ERR_IO, "cannot create a socket");
	/* a blocking connect waits while the backlog is full; SO_SNDTIMEO
	 * bounds that wait (unix(7)) */
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	do
		r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
	while (r < 0 && errno == EINTR);
	if (r < 0) {
		saved = errno;
		close(fd);
		errno = saved;
		if (saved == EAGAIN || saved == EWOULDBLOCK || saved == EINPROGRESS)
			return err_set(e, ERR_NOT_RUNNING, "timed out connecting to socket at %s "
			    "after %d ms: the server does not accept", path, timeout_ms);
		if (saved == ENOENT || saved == ECONNREFUSED || saved == ENOTDIR)
			return err_sys(e, ERR_NOT_RUNNING, "failed to connect to socket at %s", path);
		return err_sys(e, ERR_IO, "failed to connect to socket at %s", path);
	}
	memset(&tv, 0, sizeof tv);
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0 ||
	    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
		saved = errno;
		close(fd);
		errno = saved;
		return err_sys(e, ERR_IO, "cannot set up the socket connected to %s", path);
	}
	return fd;
}
