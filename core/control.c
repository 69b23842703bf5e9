/* control.c -- see control.h. */
#include "core/control.h"
#include "core/base/fsutil.h"
#include "core/base/jsonr.h"
#include "platform/compat.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static const char request_status[] = "{\"request\":\"status\"}\n";

static int
fill_addr(struct sockaddr_un *sa, const char *path)
{
	size_t n = strlen(path);

	memset(sa, 0, sizeof *sa);
	sa->sun_family = AF_UNIX;
	if (n >= sizeof sa->sun_path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sa->sun_path, path, n);
	return 0;
}

/* ---- server ---- */

static void
client_drop(struct ctl *c, struct ctl_client *k)
{
	if (k->io_h >= 0)
		reactor_del(c->r, k->io_h);
	if (k->timer_h >= 0)
		reactor_del(c->r, k->timer_h);
	if (k->fd >= 0)
		close(k->fd);
	k->fd = k->io_h = k->timer_h = -1;
	k->len = 0;
	k->watching = 0;
}

/* One whole answer or nothing: a watcher that cannot take it is dropped
 * (it would otherwise read a truncated record). */
static void
send_answer(struct ctl *c, struct ctl_client *k, const char *out, int n)
{
	ssize_t w;

	do
		w = send(k->fd, out, (size_t)n, COMPAT_NOSIGNAL | MSG_DONTWAIT);
	while (w < 0 && errno == EINTR);
	if (k->watching && w != n)
		client_drop(c, k);
}

static int
watchers(const struct ctl *c)
{
	int n = 0;

	for (int i = 0; i < CTL_MAX_CLIENTS; i++)
		n += c->c[i].fd >= 0 && c->c[i].watching;
	return n;
}

/* An answer is rendered into memory mapped for the call: the supervisor
 * answers from deep in its callbacks, and a 4 KB buffer on the stack there
 * would stay resident in it for good. */
#define ANSWER_MAX (STATUS_MAX_BYTES + 64)

static int
render(struct ctl *c, const char *req, char **out)
{
	int n;

	if ((*out = compat_map(ANSWER_MAX)) == NULL)
		return -1;
	if ((n = c->answer(c->arg, req, *out, ANSWER_MAX)) <= 0) {
		compat_unmap(*out, ANSWER_MAX);
		*out = NULL;
	}
	return n;
}

static void
answer(struct ctl *c, struct ctl_client *k)
{
	char req[32] = "", *out;
	jsmntok_t tok[8];
	struct jsonr jr;
	int n;

	if (jsonr_parse(&jr, k->buf, k->len, tok, 8) < 0 ||
	    jsonr_str(&jr, jsonr_get(&jr, 0, "request"), req, sizeof req) < 0)
		return;
	if (strcmp(req, "watch") == 0) {
		if (watchers(c) >= CTL_MAX_WATCHERS)
			return;
		if ((n = render(c, "status", &out)) <= 0)
			return;
		/* no request deadline any more: the watch lasts */
		if (k->timer_h >= 0)
			reactor_del(c->r, k->timer_h);
		k->timer_h = -1;
		k->watching = 1;
		send_answer(c, k, out, n);
		compat_unmap(out, ANSWER_MAX);
		return;
	}
	if ((n = render(c, req, &out)) > 0) {
		send_answer(c, k, out, n);
		compat_unmap(out, ANSWER_MAX);
	}
}

void
ctl_notify(struct ctl *c)
{
	char *out = NULL;
	int n = -1;

	if (c->r == NULL)
		return;
	for (int i = 0; i < CTL_MAX_CLIENTS; i++) {
		struct ctl_client *k = &c->c[i];

		if (k->fd < 0 || !k->watching)
			continue;
		if (n < 0 && (n = render(c, "status", &out)) <= 0)
			return;
		send_answer(c, k, out, n);
	}
	compat_unmap(out, ANSWER_MAX);
}

static void
on_client_io(struct reactor *r, int h, int ev, void *arg)
{
	struct ctl_client *k = arg;
	struct ctl *c = k->owner;
	ssize_t n;

	(void)r; (void)h; (void)ev;
	if (k->watching) {
		/* a watcher has nothing more to say: EOF (or bytes) ends it */
		char sink[64];
		n = read(k->fd, sink, sizeof sink);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		client_drop(c, k);
		return;
	}
	n = read(k->fd, k->buf + k->len, sizeof k->buf - 1 - k->len);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0) {
		k->len += (size_t)n;
		k->buf[k->len] = '\0';
		if (memchr(k->buf, '\n', k->len) == NULL && k->len < sizeof k->buf - 1)
			return;
		if (memchr(k->buf, '\n', k->len) != NULL)
			answer(c, k);
		if (k->watching)
			return;
	}
	client_drop(c, k);
}

static void
on_client_timer(struct reactor *r, int h, int ev, void *arg)
{
	struct ctl_client *k = arg;

	(void)r; (void)h; (void)ev;
	k->timer_h = -1;
	client_drop(k->owner, k);
}

static void
on_accept(struct reactor *r, int h, int ev, void *arg)
{
	struct ctl *c = arg;
	uid_t uid;
	int fd, i;

	(void)r; (void)h; (void)ev;
	while ((fd = compat_accept(c->lfd, COMPAT_NONBLOCK)) >= 0) {
		for (i = 0; i < CTL_MAX_CLIENTS && c->c[i].fd >= 0; i++)
			;
		if (i == CTL_MAX_CLIENTS || compat_peer_uid(fd, &uid) < 0 || uid != geteuid()) {
			close(fd);
			continue;
		}
		c->c[i].fd = fd;
		c->c[i].len = 0;
		c->c[i].watching = 0;
		c->c[i].io_h = reactor_io_add(c->r, fd, REACTOR_READ, on_client_io, &c->c[i]);
		c->c[i].timer_h = reactor_timer_add(c->r, CTL_TIMEOUT_MS, on_client_timer, &c->c[i]);
		if (c->c[i].io_h < 0 || c->c[i].timer_h < 0)
			client_drop(c, &c->c[i]);
	}
}

int
ctl_listen(struct ctl *c, struct reactor *r, const char *path, int inherited_fd,
    ctl_answer_fn *ans, void *arg, struct err *e)
{
	struct sockaddr_un sa;
	struct stat st;

	c->r = r;
	c->answer = ans;
	c->arg = arg;
	c->lh = -1;
	for (int i = 0; i < CTL_MAX_CLIENTS; i++) {
		c->c[i].fd = c->c[i].io_h = c->c[i].timer_h = -1;
		c->c[i].len = 0;
		c->c[i].watching = 0;
		c->c[i].owner = c;
	}
	if (inherited_fd >= 0) {
		c->lfd = inherited_fd;
		if (fd_cloexec(c->lfd) < 0 || fd_nonblock(c->lfd) < 0)
			return err_sys(e, ERR_IO, "handover: bad control socket fd %d", inherited_fd);
	} else {
		if (fill_addr(&sa, path) < 0)
			return err_sys(e, ERR_IO, "control socket path %s", path);
		/* only a socket is ours to replace: a supervisor that died left it */
		if (lstat(path, &st) == 0) {
			if (!S_ISSOCK(st.st_mode))
				return err_set(e, ERR_IO, "%s exists and is not a socket", path);
			(void)unlink(path);
		}
		c->lfd = compat_socket(AF_UNIX, SOCK_STREAM, COMPAT_NONBLOCK);
		if (c->lfd < 0)
			return err_sys(e, ERR_IO, "cannot create the control socket");
		if (bind(c->lfd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
		    chmod(path, 0600) < 0 || listen(c->lfd, 16) < 0) {
			err_sys(e, ERR_IO, "cannot listen on %s", path);
			close(c->lfd);
			c->lfd = -1;
			return -1;
		}
	}
	c->lh = reactor_io_add(r, c->lfd, REACTOR_READ, on_accept, c);
	if (c->lh < 0) {
		close(c->lfd);
		c->lfd = -1;
		return err_sys(e, ERR_IO, "cannot watch the control socket");
	}
	return 0;
}

void
ctl_close(struct ctl *c, const char *path, int keep_fd)
{
	for (int i = 0; i < CTL_MAX_CLIENTS; i++)
		if (c->c[i].fd >= 0)
			client_drop(c, &c->c[i]);
	if (c->lh >= 0)
		reactor_del(c->r, c->lh);
	c->lh = -1;
	if (c->lfd >= 0 && !keep_fd)
		close(c->lfd);
	if (!keep_fd)
		c->lfd = -1;
	if (path != NULL)
		(void)unlink(path);
}

/* ---- client ---- */

static int64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
ctl_query_status(const char *path, int timeout_ms, struct sup_status *st, struct err *e)
{
	struct sockaddr_un sa;
	char buf[STATUS_MAX_BYTES + 64];
	size_t len = 0;
	int64_t deadline = mono_ms() + timeout_ms;
	int fd, rc;

	if (fill_addr(&sa, path) < 0)
		return err_sys(e, ERR_IO, "control socket path %s", path);
	fd = compat_socket(AF_UNIX, SOCK_STREAM, COMPAT_NONBLOCK);
	if (fd < 0)
		return err_sys(e, ERR_IO, "cannot create a socket");
	do
		rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
	while (rc < 0 && errno == EINTR);
	if (rc < 0 && errno != EAGAIN && errno != EINPROGRESS) {
		int en = errno;
		close(fd);
		errno = en;
		return err_sys(e, ERR_NOT_RUNNING, "no supervisor answers on %s", path);
	}
	for (;;) {
		struct pollfd p = { fd, POLLIN, 0 };
		int64_t left = deadline - mono_ms();
		ssize_t n;

		if (len == 0 && rc == 0) {
			/* connected: the request fits any socket buffer */
			if (send(fd, request_status, sizeof request_status - 1, COMPAT_NOSIGNAL) < 0 &&
			    errno != EAGAIN)
				break;
			rc = 1;
		}
		if (left <= 0)
			break;
		p.events = rc < 0 ? POLLOUT : POLLIN;
		n = poll(&p, 1, (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (rc < 0) {
			rc = 0;        /* connect finished (EINPROGRESS) */
			continue;
		}
		n = read(fd, buf + len, sizeof buf - 1 - len);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0) {
			close(fd);
			return len > 0 && status_parse(buf, len, st) == 0 ? 1 : 0;
		}
		len += (size_t)n;
		if (len == sizeof buf - 1)
			break;
	}
	close(fd);
	return 0;
}

static const char request_watch[] = "{\"request\":\"watch\"}\n";

int
ctl_watch_open(struct ctl_watch *w, const char *path)
{
	struct sockaddr_un sa;
	int rc, en;

	w->fd = -1;
	w->len = 0;
	if (fill_addr(&sa, path) < 0)
		return -1;
	w->fd = compat_socket(AF_UNIX, SOCK_STREAM, COMPAT_NONBLOCK);
	if (w->fd < 0)
		return -1;
	do
		rc = connect(w->fd, (struct sockaddr *)&sa, sizeof sa);
	while (rc < 0 && errno == EINTR);
	/* a Unix socket connects at once or not at all (EAGAIN: backlog full);
	 * the request then fits the empty socket buffer */
	if (rc == 0 && send(w->fd, request_watch, sizeof request_watch - 1,
	    COMPAT_NOSIGNAL) == (ssize_t)(sizeof request_watch - 1))
		return 0;
	en = rc < 0 ? errno : EIO;
	close(w->fd);
	w->fd = -1;
	errno = en;
	return -1;
}

int
ctl_watch_read(struct ctl_watch *w, struct sup_status *st)
{
	int got = 0;

	for (;;) {
		ssize_t n = read(w->fd, w->buf + w->len, sizeof w->buf - 1 - w->len);
		char *nl;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return got;
		if (n <= 0)
			return got ? got : -1;
		w->len += (size_t)n;
		while ((nl = memchr(w->buf, '\n', w->len)) != NULL) {
			size_t line = (size_t)(nl - w->buf) + 1;

			if (status_parse(w->buf, line - 1, st) == 0)
				got = 1;
			memmove(w->buf, w->buf + line, w->len - line);
			w->len -= line;
		}
		if (w->len == sizeof w->buf - 1) {
			errno = EPROTO;     /* a line longer than any record */
			return -1;
		}
	}
}
