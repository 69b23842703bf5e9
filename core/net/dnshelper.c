/* dnshelper.c -- see dnshelper.h. */
#include "core/net/dnshelper.h"
#include "core/childrun.h"
#include "core/base/fmt.h"
#include "platform/compat.h"
#include "platform/reactor.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>


int
dnshelper_numeric(const char *host, uint16_t port, struct dnshelper_addr *out)
{
	struct dnshelper_addr a;
	char v6[INET6_ADDRSTRLEN + 2];
	size_t n = strlen(host);

	memset(&a, 0, sizeof a);
	if (inet_pton(AF_INET, host, &a.u.in.sin_addr) == 1) {
		a.u.in.sin_family = AF_INET;
		a.u.in.sin_port = htons(port);
		a.len = sizeof a.u.in;
	} else {
		if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
			host++;
			n -= 2;
		}
		if (n >= sizeof v6)
			return 0;
		memcpy(v6, host, n);
		v6[n] = '\0';
		if (inet_pton(AF_INET6, v6, &a.u.in6.sin6_addr) != 1)
			return 0;
		a.u.in6.sin6_family = AF_INET6;
		a.u.in6.sin6_port = htons(port);
		a.len = sizeof a.u.in6;
	}
	if (out != NULL)
		*out = a;
	return 1;
}

/* Text of an address (RFC 5952 for IPv6: lowercase, the longest run of
 * two or more zero groups as "::"), without the C library's printf. */
const char *
dnshelper_addr_str(const struct dnshelper_addr *a, char *buf, size_t cap)
{
	const unsigned char *b;
	unsigned g[8];
	int best = -1, bestn = 1, i, n = 0;

	if (a->u.sa.sa_family != AF_INET6) {
		b = (const unsigned char *)&a->u.in.sin_addr;
		fmt_n(buf, cap, "%u.%u.%u.%u", b[0], b[1], b[2], b[3]);
		return buf;
	}
	b = (const unsigned char *)&a->u.in6.sin6_addr;
	for (i = 0; i < 8; i++)
		g[i] = (unsigned)b[2 * i] << 8 | b[2 * i + 1];
	for (i = 0; i < 8; i++) {
		int j = i;
		while (j < 8 && g[j] == 0)
			j++;
		if (j - i > bestn) {
			best = i;
			bestn = j - i;
		}
		if (j > i)
			i = j - 1;
	}
	buf[0] = '\0';
	for (i = 0; i < 8; i++) {
		if (i == best) {
			n += fmt_n(buf + n, cap > (size_t)n ? cap - (size_t)n : 0, "::");
			i += bestn - 1;
			continue;
		}
		n += fmt_n(buf + n, cap > (size_t)n ? cap - (size_t)n : 0, "%s%x",
		    i > 0 && i != best + bestn ? ":" : "", g[i]);
		if ((size_t)n >= cap)
			break;
	}
	return buf;
}

/* ---- the child ---- */

static void
put32(unsigned char *p, int32_t v)
{
	memcpy(p, &v, sizeof v);
}

/* Write all of buf; the message is below PIPE_BUF, so one write normally. */
static void
child_write(int fd, const unsigned char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			_exit(1);
		buf += n;
		len -= (size_t)n;
	}
}

/* In the child (a childrun body): resolve, write one message, exit. */
static void
child_main(void *ctx, int fd)
{
	const char *host = ctx;
	struct addrinfo hints, *res = NULL, *ai;
	unsigned char msg[DNSHELPER_MSG_MAX];
	size_t len = 2;
	int rc, n = 0;

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(host, NULL, &hints, &res);
	if (rc != 0) {
		msg[0] = 'E';
		put32(msg + 1, rc);
		put32(msg + 5, rc == EAI_SYSTEM ? errno : 0);
		child_write(fd, msg, 9);
		_exit(0);
	}
	for (ai = res; ai != NULL && n < DNSHELPER_MAX_ADDRS; ai = ai->ai_next) {
		unsigned char rec[17];
		int dup = 0;

		memset(rec, 0, sizeof rec);
		if (ai->ai_family == AF_INET &&
		    ai->ai_addrlen >= sizeof(struct sockaddr_in)) {
			rec[0] = 4;
			memcpy(rec + 1, &((struct sockaddr_in *)(void *)ai->ai_addr)->sin_addr, 4);
		} else if (ai->ai_family == AF_INET6 &&
		    ai->ai_addrlen >= sizeof(struct sockaddr_in6)) {
			rec[0] = 6;
			memcpy(rec + 1, &((struct sockaddr_in6 *)(void *)ai->ai_addr)->sin6_addr, 16);
		} else {
			continue;
		}
		for (int i = 0; i < n && !dup; i++)
			dup = memcmp(msg + 2 + (size_t)i * 17, rec, 17) == 0;
		if (dup)
			continue;
		memcpy(msg + len, rec, 17);
		len += 17;
		n++;
	}
	freeaddrinfo(res);
	msg[0] = 'A';
	msg[1] = (unsigned char)n;
	child_write(fd, msg, len);
	_exit(0);
}

/* ---- the parent ---- */

int
dnshelper_running(const struct dnshelper *d)
{
	return d->job.active;
}

static void
release(struct dnshelper *d)
{
	childrun_cancel(&d->run);
	job_release(&d->job);
}

/* End the lookup: release everything and call done (core/net/job.h). */
static void
finish(struct dnshelper *d)
{
	childrun_cancel(&d->run);
	if (job_end(&d->job))
		d->done(d, d->arg);
}

static void
fail(struct dnshelper *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
fail(struct dnshelper *d, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	err_vset(&d->err, ERR_IO, fmt, ap);
	va_end(ap);
	d->naddr = 0;
	finish(d);
}

static int32_t
get32(const unsigned char *p)
{
	int32_t v;

	memcpy(&v, p, sizeof v);
	return v;
}

/* The helper ended (or the deadline passed): decode its message. */
static void
on_helper(struct childrun *c, void *arg)
{
	struct dnshelper *d = arg;
	const unsigned char *m = d->buf;
	size_t len = c->truncated ? sizeof d->buf + 1 : c->len;
	int st = c->exited ? c->status : -1, n;

	if (c->timed_out) {
		fail(d, "DNS lookup of %s timed out after %llu ms", d->host,
		    (unsigned long long)d->timeout_ms);
		return;
	}

	if (len >= 9 && m[0] == 'E') {
		int gai = get32(m + 1), en = get32(m + 5);

		d->gai_error = gai;
		if (gai == EAI_SYSTEM && en != 0)
			fail(d, "DNS lookup of %s failed: %s", d->host, strerror(en));
		else
			fail(d, "DNS lookup of %s failed: %s", d->host, gai_strerror(gai));
		return;
	}
	if (len < 2 || m[0] != 'A' || len != 2 + (size_t)m[1] * 17 ||
	    m[1] > DNSHELPER_MAX_ADDRS) {
		if (st != -1 && WIFSIGNALED(st))
			fail(d, "DNS helper for %s died (signal %d)", d->host, WTERMSIG(st));
		else if (st != -1 && WIFEXITED(st) && WEXITSTATUS(st) != 0)
			fail(d, "DNS helper for %s died (exit status %d)", d->host,
			    WEXITSTATUS(st));
		else
			fail(d, "DNS helper for %s died (no answer)", d->host);
		return;
	}
	n = 0;
	for (int i = 0; i < m[1]; i++) {
		const unsigned char *rec = m + 2 + (size_t)i * 17;
		struct dnshelper_addr *a = &d->addr[n];

		memset(a, 0, sizeof *a);
		if (rec[0] == 4) {
			a->u.in.sin_family = AF_INET;
			a->u.in.sin_port = htons(d->port);
			memcpy(&a->u.in.sin_addr, rec + 1, 4);
			a->len = sizeof a->u.in;
		} else if (rec[0] == 6) {
			a->u.in6.sin6_family = AF_INET6;
			a->u.in6.sin6_port = htons(d->port);
			memcpy(&a->u.in6.sin6_addr, rec + 1, 16);
			a->len = sizeof a->u.in6;
		} else {
			continue;
		}
		n++;
	}
	if (n == 0) {
		fail(d, "DNS lookup of %s returned no usable address", d->host);
		return;
	}
	d->naddr = n;
	finish(d);
}

/* A numeric host: the answer is known; report it from a callback. */
static void
on_numeric(struct reactor *r, int h, int events, void *arg)
{
	struct dnshelper *d = arg;

	(void)r; (void)h; (void)events;
	d->timer_h = -1;
	finish(d);
}

int
dnshelper_start(struct dnshelper *d, struct reactor *r, const char *host,
    uint16_t port, uint64_t timeout_ms, dnshelper_done_cb *done, void *arg)
{
	int *const watches[] = { &d->timer_h };
	size_t hl;

	if (d->job.active) {
		err_set(&d->err, ERR_IO, "DNS lookup already running");
		errno = EBUSY;
		return -1;
	}
	err_clear(&d->err);
	d->done = done;
	d->arg = arg;
	d->naddr = 0;
	d->gai_error = 0;
	d->port = port;
	d->timeout_ms = timeout_ms ? timeout_ms : DNSHELPER_DEFAULT_TIMEOUT_MS;
	d->host[0] = '\0';
	hl = host != NULL ? strlen(host) : 0;
	if (done == NULL || r == NULL || hl == 0 || hl > DNSHELPER_HOST_MAX) {
		err_set(&d->err, ERR_IO, "DNS lookup: bad host name");
		errno = EINVAL;
		return -1;
	}
	memcpy(d->host, host, hl + 1);
	job_begin(&d->job, r, watches, 1, NULL, 0);
	if (dnshelper_numeric(host, port, &d->addr[0])) {
		d->naddr = 1;
		if ((d->timer_h = reactor_timer_add(r, 0, on_numeric, d)) < 0) {
			int en = errno;
			release(d);
			err_set(&d->err, ERR_IO, "DNS lookup of %s: cannot add a timer: %s", d->host,
			    strerror(en));
			errno = en;
			return -1;
		}
		job_started(&d->job);
		return 0;
	}
	if (childrun_start(&d->run, r, child_main, d->host, d->buf, sizeof d->buf,
	    d->timeout_ms, on_helper, d, &d->err) < 0) {
		int en = errno;
		release(d);
		err_set(&d->err, ERR_IO, "DNS lookup of %s: %s", d->host, d->err.msg);
		errno = en;
		return -1;
	}
	job_started(&d->job);
	return 0;
}

void
dnshelper_cancel(struct dnshelper *d)
{
	if (d->job.active)
		release(d);
}
