/*
 * dnshelper.h -- host name resolution that never blocks the event loop:
 * getaddrinfo(3) runs in a short-lived forked child that writes the
 * addresses over a pipe and exits.
 *
 * Shape: the parent makes a pipe (O_CLOEXEC; the read end O_NONBLOCK),
 * forks, closes the write end and watches the read end with the reactor
 * (REACTOR_READ) and the child with reactor_child_add (pidfd, reaped by
 * the reactor).  The child calls getaddrinfo(host, NULL, {AF_UNSPEC,
 * SOCK_STREAM, AI_ADDRCONFIG not set}), writes one message of at most
 * DNSHELPER_MSG_MAX (< PIPE_BUF, so one atomic write) and _exit()s.  The
 * lookup is over when the pipe has reached EOF *and* the child has been
 * reaped; then `done` runs.  A deadline timer bounds the whole lookup:
 * on expiry the child gets SIGKILL, its watch is handed to an internal
 * reaper watch (so it never stays a zombie) and `done` reports the
 * timeout at once.  dnshelper_cancel does the same without `done`.
 *
 * Numeric hosts (an IPv4 dotted quad, or an IPv6 literal with or without
 * brackets) are converted with inet_pton in the parent, without a child;
 * `done` still runs from the loop (a 0 ms timer), never from inside
 * dnshelper_start.
 *
 * Wire format, child -> parent (host byte order; same binary):
 *   'A' n  then n times { family (1 byte: 4 or 6), 16 address bytes }
 *   'E' then int32 getaddrinfo code, int32 errno (for EAI_SYSTEM)
 * Addresses keep getaddrinfo's order (RFC 6724 sorting in glibc/musl),
 * duplicates (one per socket type) removed, at most DNSHELPER_MAX_ADDRS.
 *
 * The child inherits the parent's fds while it runs (it never execs and
 * lives for one lookup); it blocks no signal the parent did not block.
 *
 * Memory: the caller owns `struct dnshelper` (about 4 KiB); no
 * allocation.  Zero it before its first use (static storage is).
 *
 * Source: getaddrinfo(3), pipe2(2), fork(2), pidfd_open(2) via
 * platform/reactor.h; design note updater-reactor-style.md section 3.10
 * ("resolve in a short-lived child and pass the address back over a pipe").
 */
#ifndef APPD_DNSHELPER_H
#define APPD_DNSHELPER_H

#include <stdint.h>
#include <sys/types.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "core/base/err.h"
#include "core/childrun.h"
#include "core/net/job.h"

struct reactor;

#define DNSHELPER_MAX_ADDRS 16
#define DNSHELPER_HOST_MAX  255                 /* bytes, without the NUL */
#define DNSHELPER_MSG_MAX   (2 + DNSHELPER_MAX_ADDRS * 17)
#define DNSHELPER_DEFAULT_TIMEOUT_MS 10000

union dnshelper_sockaddr {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
};

struct dnshelper_addr {
	socklen_t len;                  /* sizeof in or in6 */
	union dnshelper_sockaddr u;     /* port already set */
};

struct dnshelper;
typedef void dnshelper_done_cb(struct dnshelper *d, void *arg);

struct dnshelper {
	/* ---- results: valid when `done` runs ---- */
	int naddr;                      /* > 0 on success, 0 on failure */
	struct dnshelper_addr addr[DNSHELPER_MAX_ADDRS];
	int gai_error;                  /* getaddrinfo's code (EAI_*), or 0 */
	struct err err;                 /* ERR_IO + message when naddr == 0 */

	/* ---- private ---- */
	struct job job;                 /* the start/done rule: core/net/job.h */
	struct childrun run;            /* the getaddrinfo child */
	dnshelper_done_cb *done;
	void *arg;
	int timer_h;                    /* numeric host: the 0 ms report */
	uint64_t timeout_ms;
	unsigned char buf[DNSHELPER_MSG_MAX];
	uint16_t port;
	char host[DNSHELPER_HOST_MAX + 1];
};

/*
 * Resolve `host` (a DNS name or an IP literal, at most DNSHELPER_HOST_MAX
 * bytes) on reactor `r`; every address gets port `port` (host order).
 * `timeout_ms` bounds the lookup (0: DNSHELPER_DEFAULT_TIMEOUT_MS).
 *
 * Returns 0 when the lookup is started: `done(d, arg)` then runs exactly
 * once from a reactor callback, after the lookup released its pipe,
 * watches and timer (the child is reaped, or left to an internal reaper
 * watch after a timeout), so `done` may start a new lookup with the same
 * struct.  Results: d->naddr and d->addr[], or d->naddr == 0 and d->err
 * (ERR_IO) with one of:
 *   DNS lookup of HOST failed: <gai_strerror>      (d->gai_error set)
 *   DNS lookup of HOST timed out after N ms
 *   DNS helper for HOST died (<exit status or signal>)
 *   DNS lookup of HOST returned no usable address
 *
 * Returns -1 with d->err set and errno (EINVAL: bad host or arguments,
 * EBUSY: `d` is running; else what pipe2/fork/reactor gave, e.g. ENOSPC
 * for a full reactor table, EAGAIN from fork) when nothing was started;
 * `done` is not called.
 */
int dnshelper_start(struct dnshelper *d, struct reactor *r, const char *host,
    uint16_t port, uint64_t timeout_ms, dnshelper_done_cb *done, void *arg);

/* Stop a running lookup: SIGKILL the child (reaped later by the reactor),
 * close the pipe, remove the watches; `done` is not called.  A no-op when
 * nothing runs (or on a zeroed struct). */
void dnshelper_cancel(struct dnshelper *d);

/* 1 while a started lookup has not called done. */
int dnshelper_running(const struct dnshelper *d);

/* 1 when `host` is an IPv4 or IPv6 literal (brackets allowed for v6) and,
 * when `out` is not NULL, store it with `port` in *out. */
int dnshelper_numeric(const char *host, uint16_t port, struct dnshelper_addr *out);

/* "a.b.c.d" or "x:y::z" for `a` into `buf` (at least INET6_ADDRSTRLEN). */
const char *dnshelper_addr_str(const struct dnshelper_addr *a, char *buf, size_t cap);

#endif
