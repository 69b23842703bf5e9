/*
 * https.h -- one HTTPS GET on the reactor (the updater's manifest and
 * artifact downloads): DNS in a helper child, non-blocking connect, TLS 1.2
 * through BearSSL's low-level engine API, HTTP/1.1 with conditional GET,
 * Content-Length and chunked bodies, https-only redirects.
 *
 * Sequence, per hop (the first URL, then each redirect):
 *   1. split the URL (https only; host, port (443), path);
 *   2. resolve the host with core/dnshelper.h (a forked child; IP
 *      literals without one), bounded by the connect timeout;
 *   3. for each address in turn: socket(SOCK_NONBLOCK|SOCK_CLOEXEC),
 *      connect(2) -> EINPROGRESS -> wait for REACTOR_WRITE -> SO_ERROR;
 *      all attempts share the connect timeout (each gets the time left
 *      divided by the addresses left, so one black hole cannot eat it);
 *   4. TLS 1.2 only, ECDHE_{ECDSA,RSA} with AES-128/256-GCM or
 *      ChaCha20-Poly1305 (br_ssl_client_zero + explicit setup, not
 *      br_ssl_client_init_full, to keep code size down); X.509 by
 *      br_x509_minimal over the caller's anchors, SHA-256/384/512
 *      signatures (no SHA-1, no MD5); SNI and the name check use the
 *      URL's host (br_ssl_client_reset; BearSSL matches DNS names only,
 *      so an IP-literal URL always fails the name check); the time is set
 *      explicitly from time(NULL) (br_x509_minimal_set_time), so expiry is
 *      checked whatever BearSSL's BR_USE_UNIX_TIME detection says; 32 bytes
 *      of getentropy(3) are injected (br_ssl_engine_inject_entropy; BearSSL
 *      0.6 ignores BR_USE_GETENTROPY and would fall back to /dev/urandom);
 *   5. the engine loop, after every event: read br_ssl_engine_current_state;
 *      CLOSED -> br_ssl_engine_last_error; RECVAPP -> feed the response
 *      parser; SENDREC -> send(COMPAT_NOSIGNAL) (never SIGPIPE); SENDAPP ->
 *      copy the request in and flush; RECVREC -> recv; repeat until every
 *      possible step hit EAGAIN, then watch WRITE iff SENDREC and READ iff
 *      RECVREC.  br_sslio is not used (it can only spin or fail on EAGAIN);
 *   6. request: `GET path HTTP/1.1`, Host, User-Agent appd/VERSION,
 *      Accept-Encoding: identity, Connection: close, If-None-Match;
 *   7. response: 1xx skipped; 301/302/303/307/308 with Location ->
 *      next hop (absolute https://, scheme-relative //host or a path;
 *      http:// or another scheme is refused; at most HTTPS_MAX_REDIRECTS);
 *      304 and other non-2xx end the fetch after the header; 2xx bodies go
 *      to on_body, framed by Transfer-Encoding: chunked, Content-Length, or
 *      the TLS close_notify (a TCP EOF without close_notify is truncation).
 *      The fetch ends as soon as the body is complete (no wait for close).
 * One timer bounds the whole fetch (`deadline_ms`, all hops).
 *
 * Memory: `struct https_fetch` is caller-owned (72 344 bytes on x86-64:
 * the 33 178 byte BearSSL I/O buffer, the client and X.509 contexts, a
 * 16 KiB header buffer, the DNS helper); keep it static.  Nothing is allocated.  Zero it before its
 * first use (static storage is); it can be reused after done ran or after
 * https_fetch_cancel.  The trust anchors must stay valid and unmoved
 * until the fetch ends.
 *
 * SIGPIPE: never raised by this module (send with COMPAT_NOSIGNAL; the DNS
 * child's pipe is only written by the child).
 *
 * Source: BearSSL 0.6 bearssl_ssl.h (engine API, ~1950-2020), tools/
 * sslio.c run_ssl_engine, skarnet s6-networking sbearssl_run.c;
 * RFC 9110 (Location 10.2.2, Retry-After 10.2.3, HTTP-date 5.6.7),
 * RFC 9112 (message body length 6.3, chunked 7.1); updater-reactor-style.md
 * sections 1 and 3.10.
 */
#ifndef APPD_HTTPS_H
#define APPD_HTTPS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <bearssl.h>

#include "core/net/dnshelper.h"
#include "core/net/http.h"
#include "core/net/job.h"
#include "core/base/err.h"

struct reactor;

#define HTTPS_URL_MAX        2048          /* bytes, without the NUL */
#define HTTPS_ETAG_MAX       256           /* bytes, with the NUL */
#define HTTPS_HDR_MAX        HTTP_HDR_MAX  /* the response header block */
#define HTTPS_REQ_MAX        (HTTPS_URL_MAX + 1024)
#define HTTPS_MAX_REDIRECTS  5
#define HTTPS_DEFAULT_CONNECT_TIMEOUT_MS 10000
#define HTTPS_DEFAULT_DEADLINE_MS        (5 * 60 * 1000)
#define HTTPS_DEFAULT_BODY_MAX           (64ull * 1024 * 1024)

/* What went wrong; HTTPS_OK when a whole response arrived with status
 * 2xx or 304. */
enum https_fail {
	HTTPS_OK = 0,
	HTTPS_E_URL,            /* not an https:// URL we can use */
	HTTPS_E_DNS,            /* the lookup failed or timed out */
	HTTPS_E_CONNECT,        /* no address accepted within the connect timeout */
	HTTPS_E_TLS,            /* handshake or record error (tls_error set) */
	HTTPS_E_NAME,           /* certificate not for this host name */
	HTTPS_E_UNTRUSTED,      /* chain does not end at a trust anchor */
	HTTPS_E_EXPIRED,        /* certificate expired or not yet valid */
	HTTPS_E_TIMEOUT,        /* the whole-fetch deadline passed */
	HTTPS_E_TOO_BIG,        /* body larger than body_max */
	HTTPS_E_TRUNCATED,      /* connection ended before the end of the response */
	HTTPS_E_INSECURE_REDIRECT, /* Location not https */
	HTTPS_E_TOO_MANY_REDIRECTS,
	HTTPS_E_PROTOCOL,       /* malformed HTTP */
	HTTPS_E_STATUS,         /* a complete response with another status */
	HTTPS_E_ABORTED,        /* on_body returned -1 */
	HTTPS_E_IO              /* send/recv/socket error after connecting */
};

struct https_result {
	enum https_fail fail;
	int status;                     /* HTTP status of the last response, 0 if none */
	char etag[HTTPS_ETAG_MAX];      /* ETag of the last response, verbatim, "" if none */
	long long retry_after;          /* seconds from now (>= 0), -1 if absent/bad */
	char url[HTTPS_URL_MAX + 1];    /* the last URL requested (after redirects) */
	uint64_t bytes;                 /* body bytes handed to on_body */
	int64_t content_length;         /* of the last response, -1 if none */
	int redirects;                  /* redirects followed */
	int tls_error;                  /* br_ssl_engine_last_error, 0 if none */
	struct err err;                 /* ERR_IO + message unless HTTPS_OK */
};

struct https_fetch;

/* Body sink: `len` (> 0) bytes of a 2xx body, in order.  Return 0 to go
 * on, -1 to abort the fetch (HTTPS_E_ABORTED; e.g. the caller's size or
 * hash check failed).  May call https_fetch_cancel (done is then not
 * called). */
typedef int https_body_cb(void *arg, const void *buf, size_t len);

/* End of the fetch; `res` points into `f` and is valid until the fetch
 * is started again.  `f` is idle: done may start a new fetch on it. */
typedef void https_done_cb(struct https_fetch *f, const struct https_result *res,
    void *arg);

struct https_request {
	const char *url;                /* https://host[:port][/path][?query] */
	const char *if_none_match;      /* ETag to send, or NULL */
	const br_x509_trust_anchor *anchors;    /* e.g. trust_store.ta */
	size_t nanchors;
	uint64_t connect_timeout_ms;    /* DNS, and connect per hop; 0: 10 s */
	uint64_t deadline_ms;           /* the whole fetch; 0: 5 min */
	uint64_t body_max;              /* bytes; 0: HTTPS_DEFAULT_BODY_MAX */
	https_body_cb *on_body;         /* may be NULL: the body is discarded */
	https_done_cb *done;            /* required */
	void *arg;                      /* for on_body and done */
};

struct https_fetch {
	struct https_result res;

	/* ---- private ---- */
	struct job job;                 /* the start/done rule: core/net/job.h */
	https_body_cb *on_body;
	https_done_cb *done;
	void *arg;
	const br_x509_trust_anchor *anchors;
	size_t nanchors;
	uint64_t connect_timeout_ms, deadline_ms, body_max;
	uint64_t connect_until;         /* reactor ms: end of this hop's connect */
	int state;
	int fd, io_h, deadline_h, conn_h;
	unsigned io_mask;
	int ai;                         /* next address to try */
	int conn_refused;               /* an attempt failed other than by timeout */
	char conn_why[512];             /* "addr: why; ..." for the error */
	int hs_done;                    /* the handshake completed */
	char inm[HTTPS_ETAG_MAX];
	/* the current URL */
	char host[DNSHELPER_HOST_MAX + 1];
	uint16_t port;
	long path_off;                  /* path within res.url, -1: "/" */
	/* request */
	char req[HTTPS_REQ_MAX];
	size_t req_len, req_off;
	/* response */
	struct http_parser hp;
	char location[HTTPS_URL_MAX + 1];
	struct dnshelper dns;
	br_ssl_client_context cc;
	br_x509_minimal_context xc;
	unsigned char iobuf[BR_SSL_BUFSIZE_BIDI];
};

/*
 * Start fetching req->url on reactor `r`.  The request's strings are
 * copied; the anchors are not.
 *
 * Returns 0 when started: req->done then runs exactly once, from a reactor
 * callback, after every fd, watch, timer and child of the fetch is gone
 * (a timed-out DNS child is left to the reactor to reap).  res->fail says
 * how it went; res->err has the message (ERR_IO, context "url").  For
 * HTTPS_E_STATUS and HTTPS_OK the status, ETag, Retry-After and
 * Content-Length of the response are filled in.
 *
 * Messages (HOST is host[:port]):
 *   bad URL <url>: <why>                                   HTTPS_E_URL
 *   DNS lookup of HOST failed: <why> / timed out ...      HTTPS_E_DNS
 *   cannot connect to HOST (ADDR: <strerror>; ...)         HTTPS_E_CONNECT
 *   connecting to HOST timed out after N ms (ADDR: ...)    HTTPS_E_CONNECT
 *   TLS error with HOST: BR_ERR_NAME (N)[: text]           HTTPS_E_TLS/NAME/
 *                                                          UNTRUSTED/EXPIRED
 *   fetching URL timed out after N ms (<phase>)            HTTPS_E_TIMEOUT
 *   body of URL exceeds N bytes                            HTTPS_E_TOO_BIG
 *   response from HOST truncated: <what>                   HTTPS_E_TRUNCATED
 *   redirect to a non-https URL refused: <location>        HTTPS_E_INSECURE_REDIRECT
 *   too many redirects (more than 5) from <url>            HTTPS_E_TOO_MANY_REDIRECTS
 *   bad HTTP response from HOST: <why>                     HTTPS_E_PROTOCOL
 *   HTTP <status> from URL[ (Retry-After N s)]             HTTPS_E_STATUS
 *   body of URL rejected by the caller                     HTTPS_E_ABORTED
 *   <send|recv> with HOST failed: <strerror>               HTTPS_E_IO
 *
 * Returns -1 with f->res.err set (and errno: EINVAL bad arguments or URL,
 * EBUSY `f` is running, ENOSPC the reactor table is full, or what
 * fork/pipe gave) when nothing was started; done is not called.
 */
int https_fetch_start(struct https_fetch *f, struct reactor *r,
    const struct https_request *req);

/* Stop a running fetch: close its socket, remove its watches and timers,
 * stop its DNS helper; done is not called.  A no-op when idle (or on a
 * zeroed struct).  Safe from on_body. */
void https_fetch_cancel(struct https_fetch *f);

/* 1 while a started fetch has not called done. */
int https_fetch_running(const struct https_fetch *f);

/* Stable names: "ok", "url", "dns", "connect", "tls", "name", "untrusted",
 * "expired", "timeout", "tooBig", "truncated", "insecureRedirect",
 * "tooManyRedirects", "protocol", "status", "aborted", "io". */
const char *https_fail_name(enum https_fail fail);

/* BearSSL error code -> "BR_ERR_X509_EXPIRED" etc.; alerts as
 * "BR_ERR_RECV_FATAL_ALERT+N" / "BR_ERR_SEND_FATAL_ALERT+N"; unknown
 * codes as "BR_ERR_?".  Static strings. */
const char *https_br_error_name(int code);


/*
 * Split an https URL: host (lower-cased, brackets kept off an IPv6
 * literal) into `host` (DNSHELPER_HOST_MAX + 1 bytes), the port (443 when
 * absent) and the offset of the path ('/' or '?' first; -1 when the URL
 * has no path, meaning "/").  0, or -1 with `why` (static text) set.
 */
int https_url_split(const char *url, char *host, uint16_t *port,
    long *path_off, const char **why);

/*
 * Resolve a redirect's Location `loc` against the URL `base` (RFC 9110
 * 10.2.2, RFC 3986 5.2 for the forms servers send: absolute https URL,
 * network-path "//host/p", absolute path "/p", relative path "p" and
 * query "?q"), writing the next URL into `out` (`cap` bytes, NUL
 * included) without its fragment.  0, or -1 with `kind` and `why`
 * (static text) set: HTTPS_E_INSECURE_REDIRECT for another scheme,
 * HTTPS_E_URL when `base` does not split, HTTPS_E_PROTOCOL when the
 * result does not fit.  The result is not checked itself: the next hop
 * splits it (https_url_split).
 */
int https_resolve_location(const char *base, const char *loc, char *out, size_t cap,
    enum https_fail *kind, const char **why);

#endif
