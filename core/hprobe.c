/* hprobe.c -- see hprobe.h. */
#include "core/hprobe.h"
#include "core/base/fmt.h"
#include "core/base/fsutil.h"
#include "platform/compat.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

int
hprobe_is_spec(const char *s)
{
	return strncmp(s, "tcp://", 6) == 0 || strncmp(s, "http://", 7) == 0 ||
	    strncmp(s, "http+unix://", 12) == 0 || strncmp(s, "exec:", 5) == 0;
}

/* HOST:PORT (HOST an IP literal, [v6] or localhost) into out->addr. */
static int
parse_hostport(const char *a, size_t n, struct hprobe_spec *out, struct err *e)
{
	char host[64], port[8];
	const char *colon;
	size_t hl;
	long pv = 0;

	if (n > 0 && a[0] == '[') {
		const char *rb = memchr(a, ']', n);
		if (rb == NULL || rb + 1 >= a + n || rb[1] != ':')
			return err_set(e, ERR_USAGE, "bad [IPv6]:PORT in probe");
		hl = (size_t)(rb - a - 1);
		if (hl >= sizeof host)
			return err_set(e, ERR_USAGE, "probe host too long");
		memcpy(host, a + 1, hl);
		colon = rb + 1;
	} else {
		colon = NULL;
		for (size_t i = 0; i < n; i++)
			if (a[i] == ':')
				colon = a + i;
		if (colon == NULL)
			return err_set(e, ERR_USAGE, "probe needs HOST:PORT");
		hl = (size_t)(colon - a);
		if (hl == 0 || hl >= sizeof host)
			return err_set(e, ERR_USAGE, "bad probe host");
		memcpy(host, a, hl);
	}
	host[hl] = '\0';
	if ((size_t)(a + n - colon - 1) == 0 || (size_t)(a + n - colon - 1) >= sizeof port)
		return err_set(e, ERR_USAGE, "bad probe port");
	memcpy(port, colon + 1, (size_t)(a + n - colon - 1));
	port[a + n - colon - 1] = '\0';
	for (const char *p = port; *p; p++) {
		if (*p < '0' || *p > '9')
			return err_set(e, ERR_USAGE, "bad probe port \"%s\"", port);
		pv = pv * 10 + (*p - '0');
	}
	if (pv < 1 || pv > 65535)
		return err_set(e, ERR_USAGE, "bad probe port \"%s\"", port);
	fmt_n(out->host, sizeof out->host, "%.*s", (int)n, a);
	if (strcmp(host, "localhost") == 0)
		str_copy(host, sizeof host, "127.0.0.1");
	memset(&out->addr, 0, sizeof out->addr);
	{
		struct sockaddr_in *s4 = (struct sockaddr_in *)&out->addr;
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&out->addr;
		if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
			s4->sin_family = AF_INET;
			s4->sin_port = htons((uint16_t)pv);
			out->addrlen = sizeof *s4;
		} else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
			s6->sin6_family = AF_INET6;
			s6->sin6_port = htons((uint16_t)pv);
			out->addrlen = sizeof *s6;
		} else {
			return err_set(e, ERR_USAGE, "probe host \"%s\" is not an IP address or "
			    "localhost (probes do not wait on DNS)", host);
		}
	}
	return 0;
}

int
hprobe_parse(const char *spec, const char *socket, struct hprobe_spec *out, struct err *e)
{
	char buf[HPROBE_SPEC_MAX];
	const char *sock = strstr(spec, "{socket}");

	memset(out, 0, sizeof *out);
	/* "{socket}": the server's control socket */
	if (sock != NULL) {
		if (fmt_n(buf, sizeof buf, "%.*s%s%s", (int)(sock - spec), spec, socket,
		    sock + 8) >= (int)sizeof buf)
			return err_set(e, ERR_USAGE, "probe too long");
	} else if (str_copy(buf, sizeof buf, spec) < 0) {
		return err_set(e, ERR_USAGE, "probe too long");
	}
	if (strncmp(buf, "tcp://", 6) == 0) {
		out->kind = HP_TCP;
		return parse_hostport(buf + 6, strlen(buf + 6), out, e);
	}
	if (strncmp(buf, "http://", 7) == 0) {
		const char *a = buf + 7, *slash = strchr(a, '/');
		size_t n = slash ? (size_t)(slash - a) : strlen(a);

		out->kind = HP_HTTP;
		str_copy(out->path, sizeof out->path, slash ? slash : "/");
		return parse_hostport(a, n, out, e);
	}
	if (strncmp(buf, "http+unix://", 12) == 0) {
		struct sockaddr_un *su = (struct sockaddr_un *)&out->addr;
		const char *a = buf + 12, *p;
		size_t n;

		/* the socket path ends at ".sock" when a request path follows,
		 * else the whole text is the socket and the path is "/" */
		out->kind = HP_HTTP_UNIX;
		p = strstr(a, ".sock/");
		n = p ? (size_t)(p - a) + 5 : strlen(a);
		if (a[0] != '/' || n >= sizeof su->sun_path)
			return err_set(e, ERR_USAGE, "http+unix:// needs an absolute socket path "
			    "(ending in .sock when a request path follows)");
		su->sun_family = AF_UNIX;
		memcpy(su->sun_path, a, n);
		out->addrlen = (socklen_t)sizeof *su;
		str_copy(out->path, sizeof out->path, p ? a + n : "/");
		str_copy(out->host, sizeof out->host, "localhost");
		return 0;
	}
	if (strncmp(buf, "exec:", 5) == 0) {
		char *save = NULL, *tok;
		int k = 0;

		out->kind = HP_EXEC;
		str_copy(out->args, sizeof out->args, buf + 5);
		for (tok = strtok_r(out->args, " ", &save); tok && k < 16;
		    tok = strtok_r(NULL, " ", &save))
			out->argv[k++] = tok;
		out->argv[k] = NULL;
		if (k == 0 || out->argv[0][0] != '/')
			return err_set(e, ERR_USAGE, "exec: needs an absolute program path");
		if (tok != NULL)
			return err_set(e, ERR_USAGE, "exec: at most 16 words");
		return 0;
	}
	return err_set(e, ERR_USAGE, "unknown probe \"%s\" (tcp://, http://, http+unix://, "
	    "exec:)", spec);
}

int
hprobe_running(const struct hprobe *p)
{
	return p->job.active;
}

static void
finish(struct hprobe *p, int ok, const char *why)
{
	p->ok = ok;
	str_copy(p->why, sizeof p->why, why ? why : "");
	childrun_cancel(&p->c);
	if (job_end(&p->job))
		p->done(p, p->arg);
}

void
hprobe_cancel(struct hprobe *p)
{
	if (p->job.active) {
		childrun_cancel(&p->c);
		job_release(&p->job);
	}
}

static void
on_timer(struct reactor *r, int h, int ev, void *arg)
{
	struct hprobe *p = arg;
	char why[64];

	(void)r; (void)h; (void)ev;
	p->timer_h = -1;
	fmt_n(why, sizeof why, "timed out after %llu ms", (unsigned long long)p->timeout_ms);
	finish(p, 0, why);
}

static void
on_refused(struct reactor *r, int h, int ev, void *arg)
{
	struct hprobe *p = arg;
	char why[sizeof p->why];

	(void)r; (void)h; (void)ev;
	p->timer_h = -1;
	str_copy(why, sizeof why, p->why);
	finish(p, 0, why);
}

static void
on_io(struct reactor *r, int h, int ev, void *arg)
{
	struct hprobe *p = arg;
	unsigned char buf[2048];

	(void)h; (void)ev;
	if (!p->sent) {
		int soerr = 0;
		socklen_t sl = sizeof soerr;

		if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
			soerr = errno;
		if (soerr != 0) {
			finish(p, 0, strerror(soerr));
			return;
		}
		if (p->spec->kind == HP_TCP) {
			finish(p, 1, NULL);
			return;
		}
		{
			char req[512];
			int n = fmt_n(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\n"
			    "User-Agent: appd-probe\r\nConnection: close\r\n\r\n",
			    p->spec->path, p->spec->host);
			/* a fresh connection's buffer takes the request whole */
			if (n < 0 || send(p->fd, req, (size_t)n, COMPAT_NOSIGNAL) != n) {
				finish(p, 0, "cannot send the request");
				return;
			}
		}
		p->sent = 1;
		http_init(&p->hp);
		reactor_io_set(r, p->io_h, REACTOR_READ);
		return;
	}
	for (;;) {
		ssize_t n = recv(p->fd, buf, sizeof buf, MSG_DONTWAIT);
		enum http_ev hev;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			finish(p, 0, n == 0 ? "connection closed before the response" :
			    strerror(errno));
			return;
		}
		(void)http_feed(&p->hp, buf, (size_t)n, &hev);
		if (hev == HTTP_EV_ERROR) {
			finish(p, 0, p->hp.error);
			return;
		}
		if (hev == HTTP_EV_HEADERS) {
			char why[32];
			if (p->hp.status >= 200 && p->hp.status < 300) {
				finish(p, 1, NULL);
			} else {
				fmt_n(why, sizeof why, "HTTP %d", p->hp.status);
				finish(p, 0, why);
			}
			return;
		}
	}
}

static void
on_exec_done(struct childrun *c, void *arg)
{
	struct hprobe *p = arg;
	char why[48];

	if (c->timed_out) {
		fmt_n(why, sizeof why, "timed out after %llu ms", (unsigned long long)p->timeout_ms);
		finish(p, 0, why);
	} else if (c->exited && WIFEXITED(c->status) && WEXITSTATUS(c->status) == 0) {
		finish(p, 1, NULL);
	} else if (c->exited && WIFSIGNALED(c->status)) {
		fmt_n(why, sizeof why, "killed by signal %d", WTERMSIG(c->status));
		finish(p, 0, why);
	} else {
		fmt_n(why, sizeof why, "exit status %d", c->exited ? WEXITSTATUS(c->status) : -1);
		finish(p, 0, why);
	}
}

int
hprobe_start(struct hprobe *p, struct reactor *r, const struct hprobe_spec *spec,
    uint64_t timeout_ms, hprobe_done_cb *done, void *arg, struct err *e)
{
	int *const watches[] = { &p->io_h, &p->timer_h }, *const fds[] = { &p->fd };
	int rc;

	if (p->job.active) {
		errno = EBUSY;
		return err_set(e, ERR_OTHER, "probe already running");
	}
	job_begin(&p->job, r, watches, 2, fds, 1);
	p->spec = spec;
	p->r = r;
	p->done = done;
	p->arg = arg;
	p->ok = 0;
	p->why[0] = '\0';
	p->sent = 0;
	p->timeout_ms = timeout_ms;
	if (spec->kind == HP_EXEC) {
		if (childrun_start(&p->c, r, childrun_exec, (void *)spec->argv, p->out,
		    sizeof p->out, timeout_ms, on_exec_done, p, e) < 0) {
			job_release(&p->job);
			return -1;
		}
		job_started(&p->job);
		return 0;
	}
	p->fd = compat_socket(spec->addr.ss_family, SOCK_STREAM, COMPAT_NONBLOCK);
	if (p->fd < 0) {
		job_release(&p->job);
		return err_sys(e, ERR_IO, "cannot create a probe socket");
	}
	do
		rc = connect(p->fd, (const struct sockaddr *)&spec->addr, spec->addrlen);
	while (rc < 0 && errno == EINTR);
	if (rc < 0 && errno != EINPROGRESS && errno != EAGAIN) {
		/* refused at once: still an attempt, reported through done
		 * on the next turn (job.h: never from inside start) */
		str_copy(p->why, sizeof p->why, strerror(errno));
		job_close(&p->job, &p->fd);
		p->timer_h = reactor_timer_add(r, 0, on_refused, p);
		if (p->timer_h < 0) {
			job_release(&p->job);
			return err_sys(e, ERR_IO, "reactor full");
		}
		job_started(&p->job);
		return 0;
	}
	p->io_h = reactor_io_add(r, p->fd, REACTOR_WRITE, on_io, p);
	p->timer_h = reactor_timer_add(r, timeout_ms, on_timer, p);
	if (p->io_h < 0 || p->timer_h < 0) {
		job_release(&p->job);
		return err_sys(e, ERR_IO, "reactor full");
	}
	job_started(&p->job);
	return 0;
}
