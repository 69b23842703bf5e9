/* https.c -- see https.h. */
#include "core/net/https.h"
#include "core/net/http.h"
#include "core/net/job.h"
#include "core/base/fmt.h"
#include "core/base/entropy.h"
#include "core/base/fsutil.h"
#include "platform/compat.h"
#include "core/version.h"
#include "platform/reactor.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

enum {
	ST_IDLE = 0,
	ST_DNS,          /* the DNS helper runs */
	ST_CONNECTING,   /* connect(2) in progress on f->fd */
	ST_TLS           /* handshake, request and response through the engine */
};



/* ---- names ---- */

static const char *const fail_names[] = {
	[HTTPS_OK] = "ok",
	[HTTPS_E_URL] = "url",
	[HTTPS_E_DNS] = "dns",
	[HTTPS_E_CONNECT] = "connect",
	[HTTPS_E_TLS] = "tls",
	[HTTPS_E_NAME] = "name",
	[HTTPS_E_UNTRUSTED] = "untrusted",
	[HTTPS_E_EXPIRED] = "expired",
	[HTTPS_E_TIMEOUT] = "timeout",
	[HTTPS_E_TOO_BIG] = "tooBig",
	[HTTPS_E_TRUNCATED] = "truncated",
	[HTTPS_E_INSECURE_REDIRECT] = "insecureRedirect",
	[HTTPS_E_TOO_MANY_REDIRECTS] = "tooManyRedirects",
	[HTTPS_E_PROTOCOL] = "protocol",
	[HTTPS_E_STATUS] = "status",
	[HTTPS_E_ABORTED] = "aborted",
	[HTTPS_E_IO] = "io",
};

const char *
https_fail_name(enum https_fail fail)
{
	if ((unsigned)fail >= sizeof fail_names / sizeof fail_names[0] ||
	    fail_names[fail] == NULL)
		return "error";
	return fail_names[fail];
}

#define BRE(x) [x] = #x
static const char *const br_names[] = {
	BRE(BR_ERR_OK), BRE(BR_ERR_BAD_PARAM), BRE(BR_ERR_BAD_STATE),
	BRE(BR_ERR_UNSUPPORTED_VERSION), BRE(BR_ERR_BAD_VERSION),
	BRE(BR_ERR_BAD_LENGTH), BRE(BR_ERR_TOO_LARGE), BRE(BR_ERR_BAD_MAC),
	BRE(BR_ERR_NO_RANDOM), BRE(BR_ERR_UNKNOWN_TYPE), BRE(BR_ERR_UNEXPECTED),
	BRE(BR_ERR_BAD_CCS), BRE(BR_ERR_BAD_ALERT), BRE(BR_ERR_BAD_HANDSHAKE),
	BRE(BR_ERR_OVERSIZED_ID), BRE(BR_ERR_BAD_CIPHER_SUITE),
	BRE(BR_ERR_BAD_COMPRESSION), BRE(BR_ERR_BAD_FRAGLEN),
	BRE(BR_ERR_BAD_SECRENEG), BRE(BR_ERR_EXTRA_EXTENSION), BRE(BR_ERR_BAD_SNI),
	BRE(BR_ERR_BAD_HELLO_DONE), BRE(BR_ERR_LIMIT_EXCEEDED),
	BRE(BR_ERR_BAD_FINISHED), BRE(BR_ERR_RESUME_MISMATCH),
	BRE(BR_ERR_INVALID_ALGORITHM), BRE(BR_ERR_BAD_SIGNATURE),
	BRE(BR_ERR_WRONG_KEY_USAGE), BRE(BR_ERR_NO_CLIENT_AUTH), BRE(BR_ERR_IO),
	BRE(BR_ERR_X509_OK), BRE(BR_ERR_X509_INVALID_VALUE),
	BRE(BR_ERR_X509_TRUNCATED), BRE(BR_ERR_X509_EMPTY_CHAIN),
	BRE(BR_ERR_X509_INNER_TRUNC), BRE(BR_ERR_X509_BAD_TAG_CLASS),
	BRE(BR_ERR_X509_BAD_TAG_VALUE), BRE(BR_ERR_X509_INDEFINITE_LENGTH),
	BRE(BR_ERR_X509_EXTRA_ELEMENT), BRE(BR_ERR_X509_UNEXPECTED),
	BRE(BR_ERR_X509_NOT_CONSTRUCTED), BRE(BR_ERR_X509_NOT_PRIMITIVE),
	BRE(BR_ERR_X509_PARTIAL_BYTE), BRE(BR_ERR_X509_BAD_BOOLEAN),
	BRE(BR_ERR_X509_OVERFLOW), BRE(BR_ERR_X509_BAD_DN),
	BRE(BR_ERR_X509_BAD_TIME), BRE(BR_ERR_X509_UNSUPPORTED),
	BRE(BR_ERR_X509_LIMIT_EXCEEDED), BRE(BR_ERR_X509_WRONG_KEY_TYPE),
	BRE(BR_ERR_X509_BAD_SIGNATURE), BRE(BR_ERR_X509_TIME_UNKNOWN),
	BRE(BR_ERR_X509_EXPIRED), BRE(BR_ERR_X509_DN_MISMATCH),
	BRE(BR_ERR_X509_BAD_SERVER_NAME), BRE(BR_ERR_X509_CRITICAL_EXTENSION),
	BRE(BR_ERR_X509_NOT_CA), BRE(BR_ERR_X509_FORBIDDEN_KEY_USAGE),
	BRE(BR_ERR_X509_WEAK_PUBLIC_KEY), BRE(BR_ERR_X509_NOT_TRUSTED),
};
#undef BRE

const char *
https_br_error_name(int code)
{
	static char alert[40];

	if (code >= BR_ERR_SEND_FATAL_ALERT && code < BR_ERR_SEND_FATAL_ALERT + 256) {
		fmt_n(alert, sizeof alert, "BR_ERR_SEND_FATAL_ALERT+%d",
		    code - BR_ERR_SEND_FATAL_ALERT);
		return alert;
	}
	if (code >= BR_ERR_RECV_FATAL_ALERT && code < BR_ERR_RECV_FATAL_ALERT + 256) {
		fmt_n(alert, sizeof alert, "BR_ERR_RECV_FATAL_ALERT+%d",
		    code - BR_ERR_RECV_FATAL_ALERT);
		return alert;
	}
	if (code < 0 || (size_t)code >= sizeof br_names / sizeof br_names[0] ||
	    br_names[code] == NULL)
		return "BR_ERR_?";
	return br_names[code];
}

/* A few words on the codes a user will meet. */
static const char *
br_error_text(int code)
{
	switch (code) {
	case BR_ERR_X509_EXPIRED:
		return "certificate expired or not yet valid";
	case BR_ERR_X509_NOT_TRUSTED:
		return "certificate not signed by a trusted CA";
	case BR_ERR_X509_BAD_SERVER_NAME:
		return "certificate is not for this host name";
	case BR_ERR_X509_TIME_UNKNOWN:
		return "the current time is unknown";
	case BR_ERR_X509_NOT_CA:
		return "an issuer in the chain is not a CA";
	case BR_ERR_X509_BAD_SIGNATURE:
		return "bad certificate signature";
	case BR_ERR_BAD_CIPHER_SUITE:
	case BR_ERR_UNSUPPORTED_VERSION:
		return "no common TLS 1.2 cipher suite";
	case BR_ERR_NO_RANDOM:
		return "no entropy";
	default:
		break;
	}
	if (code >= BR_ERR_RECV_FATAL_ALERT && code < BR_ERR_SEND_FATAL_ALERT)
		return "the server sent a fatal alert";
	if (code >= BR_ERR_SEND_FATAL_ALERT)
		return "sent a fatal alert";
	return NULL;
}

/* ---- URLs ---- */

static int
host_char(int c)
{
	return isalnum(c) || c == '-' || c == '.' || c == '_';
}

/* One pass over the URL grammar (RFC 3986 §3), left to right. */
int
https_url_split(const char *url, char *host, uint16_t *port, long *path_off,
    const char **why)
{
	const char *a, *end, *h, *he, *pp = NULL;
	size_t hl, n = strlen(url);
	unsigned long pv = 443;

	if (n > HTTPS_URL_MAX) {
		*why = "too long";
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)url[i] <= 0x20 || url[i] == 0x7f) {
			*why = "contains a space or a control character";
			return -1;
		}
	if (strncasecmp(url, "https://", 8) != 0) {
		*why = strncasecmp(url, "http://", 7) == 0 ? "not https" :
		    "not an https:// URL";
		return -1;
	}
	a = url + 8;
	end = a + strcspn(a, "/?#");
	if (memchr(a, '@', (size_t)(end - a)) != NULL) {
		*why = "user information in URLs is not supported";
		return -1;
	}
	if (*a == '[') {
		h = a + 1;
		he = memchr(h, ']', (size_t)(end - h));
		if (he == NULL) {
			*why = "unterminated IPv6 literal";
			return -1;
		}
		for (const char *c = h; c < he; c++)
			if (!isxdigit((unsigned char)*c) && *c != ':' && *c != '.') {
				*why = "bad IPv6 literal";
				return -1;
			}
		if (he + 1 < end) {
			if (he[1] != ':') {
				*why = "bad authority";
				return -1;
			}
			pp = he + 2;
		}
	} else {
		h = a;
		he = memchr(a, ':', (size_t)(end - a));
		if (he != NULL)
			pp = he + 1;
		else
			he = end;
		for (const char *c = h; c < he; c++)
			if (!host_char((unsigned char)*c)) {
				*why = "bad character in the host name";
				return -1;
			}
	}
	hl = (size_t)(he - h);
	if (hl == 0) {
		*why = "no host";
		return -1;
	}
	if (hl > DNSHELPER_HOST_MAX) {
		*why = "host name too long";
		return -1;
	}
	if (pp != NULL) {
		if (pp == end || end - pp > 5) {
			*why = "bad port";
			return -1;
		}
		pv = 0;
		for (const char *c = pp; c < end; c++) {
			if (!isdigit((unsigned char)*c)) {
				*why = "bad port";
				return -1;
			}
			pv = pv * 10 + (unsigned long)(*c - '0');
		}
		if (pv == 0 || pv > 65535) {
			*why = "bad port";
			return -1;
		}
	}
	for (size_t i = 0; i < hl; i++)
		host[i] = (char)tolower((unsigned char)h[i]);
	host[hl] = '\0';
	*port = (uint16_t)pv;
	*path_off = *end == '/' || *end == '?' ? (long)(end - url) : -1;
	return 0;
}

/* ---- lifecycle ---- */

int
https_fetch_running(const struct https_fetch *f)
{
	return f->job.active;
}

/* The current hop's connection. */
static void
release_conn(struct https_fetch *f)
{
	job_unwatch(&f->job, &f->io_h);
	job_unwatch(&f->job, &f->conn_h);
	job_close(&f->job, &f->fd);
	f->io_mask = 0;
}

static void
release(struct https_fetch *f)
{
	dnshelper_cancel(&f->dns);
	job_release(&f->job);
	f->io_mask = 0;
	f->state = ST_IDLE;
}

/* End the fetch: release everything and call done -- or, inside
 * https_fetch_start, not (it returns -1; core/net/job.h).  Returns -1:
 * the caller must not touch `f` afterwards (done may have started a new
 * fetch on it). */
static int
finish(struct https_fetch *f)
{
	dnshelper_cancel(&f->dns);
	f->io_mask = 0;
	f->state = ST_IDLE;
	if (job_end(&f->job))
		f->done(f, &f->res, f->arg);
	return -1;
}

static int
fail(struct https_fetch *f, enum https_fail kind, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int
fail(struct https_fetch *f, enum https_fail kind, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	f->res.fail = kind;
	err_vset(&f->res.err, ERR_IO, fmt, ap);
	va_end(ap);
	err_ctx_str(&f->res.err, "url", f->res.url);
	return finish(f);
}

static int
succeed(struct https_fetch *f)
{
	f->res.fail = HTTPS_OK;
	err_clear(&f->res.err);
	return finish(f);
}

void
https_fetch_cancel(struct https_fetch *f)
{
	if (f->job.active)
		release(f);
}

static void fmt_host_port(const char *host, uint16_t port, char *buf, size_t cap);

/* "host" or "host:port" of the current hop. */
static void
host_port(const struct https_fetch *f, char *buf, size_t cap)
{
	fmt_host_port(f->host, f->port, buf, cap);
}

/* ---- hops ---- */

static void on_dns(struct dnshelper *d, void *arg);
static void on_io(struct reactor *r, int h, int events, void *arg);
static int engine_run(struct https_fetch *f);
static int connect_next(struct https_fetch *f);
static void note_conn(struct https_fetch *f, int en);

/* Start fetching f->res.url: split it, build the request, resolve. */
static int
hop_start(struct https_fetch *f)
{
	char hp[DNSHELPER_HOST_MAX + 10];
	const char *why, *path;
	int n;

	if (https_url_split(f->res.url, f->host, &f->port, &f->path_off, &why) < 0)
		return fail(f, HTTPS_E_URL, "bad URL %s: %s", f->res.url, why);
	host_port(f, hp, sizeof hp);
	path = f->path_off >= 0 ? f->res.url + f->path_off : "/";
	n = fmt_n(f->req, sizeof f->req,
	    "GET %s%s HTTP/1.1\r\n"
	    "Host: %s\r\n"
	    "User-Agent: appd/" APPD_VERSION "\r\n"
	    "Accept: */*\r\n"
	    "Accept-Encoding: identity\r\n"
	    "Connection: close\r\n"
	    "%s%s%s"
	    "\r\n",
	    *path == '?' ? "/" : "", path, hp,
	    f->inm[0] ? "If-None-Match: " : "", f->inm, f->inm[0] ? "\r\n" : "");
	if (n < 0 || (size_t)n >= sizeof f->req) {
		(void)fail(f, HTTPS_E_URL, "bad URL %s: request too long", f->res.url);
		errno = EINVAL;
		return -1;
	}
	f->req_len = (size_t)n;
	f->req_off = 0;
	http_init(&f->hp);
	f->hs_done = 0;
	f->res.status = 0;
	f->res.etag[0] = '\0';
	f->res.retry_after = -1;
	f->res.content_length = -1;
	f->res.tls_error = 0;
	f->state = ST_DNS;
	if (dnshelper_start(&f->dns, f->job.r, f->host, f->port, f->connect_timeout_ms,
	    on_dns, f) < 0) {
		int en = errno;

		(void)fail(f, HTTPS_E_DNS, "%s", f->dns.err.msg);
		errno = en;
		return -1;
	}
	return 0;
}

/* ---- connect ---- */

static void
on_conn_timer(struct reactor *r, int h, int events, void *arg)
{
	struct https_fetch *f = arg;

	(void)r;
	(void)h;
	(void)events;
	f->conn_h = -1;
	release_conn(f);
	note_conn(f, ETIMEDOUT);
	(void)connect_next(f);
}

/*
 * The crypto the client links, chosen explicitly: BearSSL's
 * br_ssl_engine_set_default_* helpers (like br_ssl_client_init_full) pull
 * in every implementation of each primitive (AES x86ni + ct64, GHASH
 * pclmul + ctmul64, ChaCha20 sse2 + ct, Poly1305 ctmulq + ctmul, RSA i62,
 * EC p256_m31 + c25519_m31 + prime_i31) and pick one at run time.  Here:
 * one portable, constant-time implementation each, the same suites,
 * curves, hashes and signature algorithms as before.
 *   EC: br_ec_prime_i31 for P-256, P-384 and P-521 (ECDHE and ECDSA;
 *       core/sig.c uses it too, so no P-256-only code is linked) and
 *       br_ec_c25519_i31 for X25519: the curves br_ec_all_m31 offers.
 *   RSA: br_rsa_i31_pkcs1_vrfy (certificate chains, ECDHE_RSA).
 *   AES-GCM: br_aes_x86ni_ctr + br_ghash_pclmul where the CPU has
 *   them, else br_aes_ct64_ctr + br_ghash_ctmul64 (64-bit bitsliced).
 *   ChaCha20-Poly1305: br_chacha20_ct_run + br_poly1305_ctmul_run.
 */
static const br_ec_impl *
ec_for(int curve)
{
	return curve == BR_EC_curve25519 ? &br_ec_c25519_i31 : &br_ec_prime_i31;
}

static const unsigned char *
ec_generator(int curve, size_t *len)
{
	return ec_for(curve)->generator(curve, len);
}

static const unsigned char *
ec_order(int curve, size_t *len)
{
	return ec_for(curve)->order(curve, len);
}

static size_t
ec_xoff(int curve, size_t *len)
{
	return ec_for(curve)->xoff(curve, len);
}

static uint32_t
ec_mul(unsigned char *g, size_t glen, const unsigned char *x, size_t xlen,
    int curve)
{
	return ec_for(curve)->mul(g, glen, x, xlen, curve);
}

static size_t
ec_mulgen(unsigned char *r, const unsigned char *x, size_t xlen, int curve)
{
	return ec_for(curve)->mulgen(r, x, xlen, curve);
}

static uint32_t
ec_muladd(unsigned char *a, const unsigned char *b, size_t len,
    const unsigned char *x, size_t xlen, const unsigned char *y, size_t ylen,
    int curve)
{
	return ec_for(curve)->muladd(a, b, len, x, xlen, y, ylen, curve);
}

static const br_ec_impl tls_ec = {
	(uint32_t)1 << BR_EC_secp256r1 | (uint32_t)1 << BR_EC_secp384r1 |
	    (uint32_t)1 << BR_EC_secp521r1 | (uint32_t)1 << BR_EC_curve25519,
	ec_generator, ec_order, ec_xoff, ec_mul, ec_mulgen, ec_muladd
};

/* Connected: set up the TLS client and run the engine. */
static int
tls_start(struct https_fetch *f)
{
	static const uint16_t suites[] = {
		BR_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		BR_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		BR_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		BR_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		BR_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		BR_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	};
	static const struct {
		int id;
		const br_hash_class *vt;
	} hashes[] = {
		{ br_sha256_ID, &br_sha256_vtable },
		{ br_sha384_ID, &br_sha384_vtable },
		{ br_sha512_ID, &br_sha512_vtable },
	};
	br_ssl_engine_context *eng = &f->cc.eng;
	unsigned char seed[32];
	time_t now = time(NULL);
	size_t i;

	br_ssl_client_zero(&f->cc);
	br_ssl_engine_set_versions(eng, BR_TLS12, BR_TLS12);
	br_x509_minimal_init(&f->xc, &br_sha256_vtable, f->anchors, f->nanchors);
	br_ssl_engine_set_suites(eng, suites, sizeof suites / sizeof suites[0]);
	br_ssl_engine_set_rsavrfy(eng, &br_rsa_i31_pkcs1_vrfy);
	br_ssl_engine_set_ec(eng, &tls_ec);
	br_ssl_engine_set_ecdsa(eng, &br_ecdsa_i31_vrfy_asn1);
	br_x509_minimal_set_rsa(&f->xc, &br_rsa_i31_pkcs1_vrfy);
	br_x509_minimal_set_ecdsa(&f->xc, &tls_ec, &br_ecdsa_i31_vrfy_asn1);
	for (i = 0; i < sizeof hashes / sizeof hashes[0]; i++) {
		br_ssl_engine_set_hash(eng, hashes[i].id, hashes[i].vt);
		br_x509_minimal_set_hash(&f->xc, hashes[i].id, hashes[i].vt);
	}
	br_ssl_engine_set_x509(eng, &f->xc.vtable);
	br_ssl_engine_set_prf_sha256(eng, &br_tls12_sha256_prf);
	br_ssl_engine_set_prf_sha384(eng, &br_tls12_sha384_prf);
	br_ssl_engine_set_gcm(eng, &br_sslrec_in_gcm_vtable,
	    &br_sslrec_out_gcm_vtable);
	{
		/* AES-NI and PCLMULQDQ when the CPU has them (an artifact of
		 * 300 MB costs 1 s instead of 10 s of CPU), else constant-time
		 * portable code */
		const br_block_ctr_class *ni = br_aes_x86ni_ctr_get_vtable();
		br_ghash gh = br_ghash_pclmul_get();

		br_ssl_engine_set_aes_ctr(eng, ni ? ni : &br_aes_ct64_ctr_vtable);
		br_ssl_engine_set_ghash(eng, gh ? gh : &br_ghash_ctmul64);
	}
	br_ssl_engine_set_chapol(eng, &br_sslrec_in_chapol_vtable,
	    &br_sslrec_out_chapol_vtable);
	br_ssl_engine_set_chacha20(eng, &br_chacha20_ct_run);
	br_ssl_engine_set_poly1305(eng, &br_poly1305_ctmul_run);
	br_ssl_engine_add_flags(eng, BR_OPT_NO_RENEGOTIATION);
	br_ssl_engine_set_buffer(eng, f->iobuf, sizeof f->iobuf, 1);
	/* Validity is checked against this clock, explicitly (days since
	 * 0000-01-01; 719528 is 1970-01-01). */
	if (now > 0)
		br_x509_minimal_set_time(&f->xc, (uint32_t)(now / 86400 + 719528),
		    (uint32_t)(now % 86400));
	/* Seed the engine's DRBG ourselves; BearSSL may add its own. */
	if (entropy_get(seed, sizeof seed, &(struct err){ 0 }) == 0)
		br_ssl_engine_inject_entropy(eng, seed, sizeof seed);
	memset(seed, 0, sizeof seed);
	if (!br_ssl_client_reset(&f->cc, f->host, 0)) {
		int e = br_ssl_engine_last_error(eng);

		f->res.tls_error = e;
		return fail(f, HTTPS_E_TLS, "TLS error with %s: %s (%d): cannot "
		    "start the handshake", f->host, https_br_error_name(e), e);
	}
	f->state = ST_TLS;
	return engine_run(f);
}

/* Remember why the address being tried (ai - 1) failed: `en`, or
 * ETIMEDOUT for its share of the connect timeout. */
static void
note_conn(struct https_fetch *f, int en)
{
	char as[INET6_ADDRSTRLEN];
	size_t n = strlen(f->conn_why);

	if (en != ETIMEDOUT)
		f->conn_refused = 1;
	if (f->ai <= 0 || n + 2 >= sizeof f->conn_why)
		return;
	fmt_n(f->conn_why + n, sizeof f->conn_why - n, "%s%s: %s",
	    n ? "; " : "", dnshelper_addr_str(&f->dns.addr[f->ai - 1], as, sizeof as),
	    en == ETIMEDOUT ? "timed out" : strerror(en));
}

static int
conn_fail(struct https_fetch *f)
{
	char hp[DNSHELPER_HOST_MAX + 10];

	host_port(f, hp, sizeof hp);
	if (!f->conn_refused)
		return fail(f, HTTPS_E_CONNECT, "connecting to %s timed out after "
		    "%llu ms (%s)", hp, (unsigned long long)f->connect_timeout_ms,
		    f->conn_why);
	return fail(f, HTTPS_E_CONNECT, "cannot connect to %s (%s)", hp, f->conn_why);
}

/* Try the next address.  0 (in progress, or connected and running), or
 * -1 when finished. */
static int
connect_next(struct https_fetch *f)
{
	uint64_t now = reactor_now(f->job.r);

	while (f->ai < f->dns.naddr) {
		const struct dnshelper_addr *a = &f->dns.addr[f->ai++];
		int left = f->dns.naddr - f->ai + 1;
		uint64_t budget;
		int fd, rc;

		if (now >= f->connect_until)
			break;          /* no time left for the others */
		fd = compat_socket(a->u.sa.sa_family, SOCK_STREAM, COMPAT_NONBLOCK);
		if (fd < 0) {
			note_conn(f, errno);
			continue;
		}
		{
			/* the engine writes the client's last handshake flight
			 * as several records: Nagle would hold the later ones
			 * for the peer's delayed ACK (~40 ms a connection) */
			int one = 1;
			(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		}
		rc = connect(fd, &a->u.sa, a->len);
		if (rc < 0 && errno != EINPROGRESS && errno != EINTR) {
			note_conn(f, errno);
			close(fd);
			continue;
		}
		f->fd = fd;
		f->state = ST_CONNECTING;
		f->io_mask = REACTOR_WRITE;
		if ((f->io_h = reactor_io_add(f->job.r, fd, REACTOR_WRITE, on_io, f)) < 0)
			return fail(f, HTTPS_E_CONNECT, "cannot watch a socket: %s",
			    strerror(errno));
		if (rc == 0)
			return tls_start(f);
		budget = (f->connect_until - now) / (uint64_t)left;
		if (budget == 0)
			budget = 1;
		if ((f->conn_h = reactor_timer_add(f->job.r, budget, on_conn_timer, f)) < 0)
			return fail(f, HTTPS_E_CONNECT, "cannot add a timer: %s",
			    strerror(errno));
		return 0;
	}
	return conn_fail(f);
}

static void
on_dns(struct dnshelper *d, void *arg)
{
	struct https_fetch *f = arg;

	if (d->naddr == 0) {
		(void)fail(f, HTTPS_E_DNS, "%s", d->err.msg);
		return;
	}
	f->ai = 0;
	f->conn_refused = 0;
	f->conn_why[0] = '\0';
	f->connect_until = reactor_now(f->job.r) + f->connect_timeout_ms;
	(void)connect_next(f);
}

/* The socket became writable while connecting. */
static int
connect_done(struct https_fetch *f)
{
	int soerr = 0;
	socklen_t sl = sizeof soerr;

	if (getsockopt(f->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
		soerr = errno;
	if (soerr == EINPROGRESS || soerr == EALREADY)
		return 0;        /* spurious */
	if (soerr != 0) {
		note_conn(f, soerr);
		release_conn(f);
		return connect_next(f);
	}
	if (f->conn_h >= 0)
		reactor_del(f->job.r, f->conn_h);
	f->conn_h = -1;
	return tls_start(f);
}

/* ---- redirects ---- */

/* "host" or "host:port" of a split URL, brackets around an IPv6 literal. */
static void
fmt_host_port(const char *host, uint16_t port, char *buf, size_t cap)
{
	int v6 = strchr(host, ':') != NULL;

	if (port == 443)
		fmt_n(buf, cap, "%s%s%s", v6 ? "[" : "", host, v6 ? "]" : "");
	else
		fmt_n(buf, cap, "%s%s%s:%u", v6 ? "[" : "", host, v6 ? "]" : "",
		    (unsigned)port);
}

int
https_resolve_location(const char *base, const char *loc, char *out, size_t cap,
    enum https_fail *kind, const char **why)
{
	char host[DNSHELPER_HOST_MAX + 1], hp[DNSHELPER_HOST_MAX + 10];
	const char *colon;
	uint16_t port;
	long path_off;
	size_t n, base_len;
	int w;

	*kind = HTTPS_E_PROTOCOL;
	colon = loc + strcspn(loc, ":/?#");
	if (*colon == ':') {
		/* Has a scheme. */
		if ((size_t)(colon - loc) != 5 || strncasecmp(loc, "https", 5) != 0) {
			*kind = HTTPS_E_INSECURE_REDIRECT;
			*why = "not https";
			return -1;
		}
		w = fmt_n(out, cap, "%s", loc);
	} else if (loc[0] == '/' && loc[1] == '/') {
		w = fmt_n(out, cap, "https:%s", loc);
	} else {
		if (https_url_split(base, host, &port, &path_off, why) < 0) {
			*kind = HTTPS_E_URL;
			return -1;
		}
		fmt_host_port(host, port, hp, sizeof hp);
		if (loc[0] == '/') {
			w = fmt_n(out, cap, "https://%s%s", hp, loc);
		} else {
			/* Relative to the current path: its directory, or
			 * (a query alone) the path itself. */
			const char *path = path_off >= 0 ? base + path_off : "/";
			size_t plen = strcspn(path, "?#");

			if (*path == '?')
				path = "/", plen = 1;
			base_len = plen;
			if (loc[0] != '?' && loc[0] != '\0')
				while (base_len > 0 && path[base_len - 1] != '/')
					base_len--;
			w = fmt_n(out, cap, "https://%s%.*s%s", hp, (int)base_len, path, loc);
		}
	}
	if (w < 0 || (size_t)w >= cap) {
		*why = "Location too long";
		return -1;
	}
	n = strcspn(out, "#");
	out[n] = '\0';          /* the fragment is not sent */
	return 0;
}

static int
redirect(struct https_fetch *f)
{
	char next[HTTPS_URL_MAX + 1];
	enum https_fail kind;
	const char *why;

	if (f->res.redirects >= HTTPS_MAX_REDIRECTS)
		return fail(f, HTTPS_E_TOO_MANY_REDIRECTS, "too many redirects "
		    "(more than %d) from %s", HTTPS_MAX_REDIRECTS, f->res.url);
	if (https_resolve_location(f->res.url, f->location, next, sizeof next,
	    &kind, &why) < 0) {
		if (kind == HTTPS_E_INSECURE_REDIRECT)
			return fail(f, kind, "redirect to a non-https URL refused: %s",
			    f->location);
		return fail(f, kind, "bad HTTP response from %s: %s", f->host, why);
	}
	release_conn(f);
	f->res.redirects++;
	memcpy(f->res.url, next, strlen(next) + 1);
	(void)hop_start(f);
	return -1;              /* the old connection is gone either way */
}

/* ---- the response ---- */

static int
proto(struct https_fetch *f, const char *why)
{
	return fail(f, HTTPS_E_PROTOCOL, "bad HTTP response from %s: %s", f->host, why);
}

/* Hand body bytes to the caller.  0, or -1 when finished (or cancelled). */
static int
deliver(struct https_fetch *f, const unsigned char *p, size_t n)
{
	unsigned gen = f->job.gen;

	if (n == 0)
		return 0;
	if (f->res.bytes + n > f->body_max)
		return fail(f, HTTPS_E_TOO_BIG, "body of %s exceeds %llu bytes",
		    f->res.url, (unsigned long long)f->body_max);
	f->res.bytes += n;
	if (f->on_body != NULL) {
		int rc = f->on_body(f->arg, p, n);

		if (!f->job.active || f->job.gen != gen)
			return -1;          /* cancelled from the sink */
		if (rc < 0)
			return fail(f, HTTPS_E_ABORTED, "body of %s rejected by "
			    "the caller", f->res.url);
	}
	return 0;
}

/* The status line and header are in f->hp.  0 to read the body (or the
 * next header after a 1xx), -1 when finished. */
static int
on_header(struct https_fetch *f)
{
	struct http_parser *hp = &f->hp;
	const char *v;
	int status = hp->status;

	f->res.status = status;
	f->res.etag[0] = '\0';
	f->res.retry_after = -1;
	f->res.content_length = hp->content_length;
	f->location[0] = '\0';
	if ((v = http_header(hp, "ETag")) != NULL && strlen(v) < sizeof f->res.etag)
		memcpy(f->res.etag, v, strlen(v) + 1);
	if ((v = http_header(hp, "Retry-After")) != NULL)
		f->res.retry_after = http_retry_after(v, time(NULL));
	if ((v = http_header(hp, "Location")) != NULL) {
		if (strlen(v) > HTTPS_URL_MAX)
			return proto(f, "Location too long");
		memcpy(f->location, v, strlen(v) + 1);
	}
	if (status < 200) {
		if (status == 101)
			return proto(f, "unexpected 101 Switching Protocols");
		http_init(hp);          /* interim: the real answer follows */
		return 0;
	}
	switch (status) {
	case 301: case 302: case 303: case 307: case 308:
		if (f->location[0] != '\0')
			return redirect(f);
		break;
	case 304:
		return succeed(f);
	default:
		break;
	}
	if (status > 299) {
		if (f->res.retry_after >= 0)
			return fail(f, HTTPS_E_STATUS, "HTTP %d from %s (Retry-After "
			    "%lld s)", status, f->res.url, f->res.retry_after);
		return fail(f, HTTPS_E_STATUS, "HTTP %d from %s", status, f->res.url);
	}
	if (status == 204 || status == 205)
		return succeed(f);
	if (http_body_begin(hp, 0) < 0)
		return proto(f, hp->error);
	if (hp->framing == HTTP_FRAME_LENGTH && (uint64_t)hp->content_length > f->body_max)
		return fail(f, HTTPS_E_TOO_BIG, "body of %s exceeds %llu bytes "
		    "(Content-Length %llu)", f->res.url,
		    (unsigned long long)f->body_max, (unsigned long long)hp->content_length);
	return 0;
}

/* Plaintext from the engine.  0 when everything was taken, -1 when the
 * connection is no longer ours (finished, or redirected). */
static int
consume(struct https_fetch *f, const unsigned char *p, size_t n)
{
	for (;;) {
		enum http_ev ev;
		size_t k = http_feed(&f->hp, p, n, &ev);

		p += k;
		n -= k;
		switch (ev) {
		case HTTP_EV_MORE:
			return 0;
		case HTTP_EV_HEADERS:
			if (on_header(f) < 0)
				return -1;
			break;
		case HTTP_EV_DATA:
			if (deliver(f, f->hp.data, f->hp.len) < 0)
				return -1;
			break;
		case HTTP_EV_DONE:
			return succeed(f);      /* extra bytes are ignored */
		case HTTP_EV_ERROR:
			return proto(f, f->hp.error);
		}
	}
}

/* The connection ended: a TCP EOF, or the server's close_notify. */
static int
conn_ended(struct https_fetch *f, int close_notify)
{
	char what[128];

	if (!f->hs_done)
		return fail(f, HTTPS_E_TLS, "TLS error with %s: connection closed "
		    "during the handshake", f->host);
	if (close_notify && f->hp.framing == HTTP_FRAME_CLOSE && http_eof(&f->hp) == HTTP_EV_DONE)
		return succeed(f);
	if (f->hp.framing == HTTP_FRAME_NONE)
		fmt_n(what, sizeof what, "connection closed before the end of "
		    "the response header");
	else if (f->hp.framing == HTTP_FRAME_LENGTH)
		fmt_n(what, sizeof what, "got %llu of %lld body bytes",
		    (unsigned long long)f->res.bytes, (long long)f->res.content_length);
	else if (f->hp.framing == HTTP_FRAME_CHUNKED)
		fmt_n(what, sizeof what, "chunked body without the last chunk "
		    "(%llu bytes)", (unsigned long long)f->res.bytes);
	else
		fmt_n(what, sizeof what, "connection closed without TLS "
		    "close_notify (%llu bytes)", (unsigned long long)f->res.bytes);
	return fail(f, HTTPS_E_TRUNCATED, "response from %s truncated: %s",
	    f->host, what);
}

static int
tls_fail(struct https_fetch *f, int e)
{
	const char *text = br_error_text(e);
	enum https_fail kind = HTTPS_E_TLS;

	f->res.tls_error = e;
	if (e == BR_ERR_X509_BAD_SERVER_NAME)
		kind = HTTPS_E_NAME;
	else if (e == BR_ERR_X509_NOT_TRUSTED)
		kind = HTTPS_E_UNTRUSTED;
	else if (e == BR_ERR_X509_EXPIRED)
		kind = HTTPS_E_EXPIRED;
	return fail(f, kind, "TLS error with %s: %s (%d)%s%s", f->host,
	    https_br_error_name(e), e, text ? ": " : "", text ? text : "");
}

/* Reads per engine_run before yielding to the reactor: a fast sender
 * never runs dry, and the loop must still see signals and timers
 * (SIGTERM during a download). */
#define RECV_BUDGET 16

static void
on_yield(struct reactor *r, int h, int events, void *arg)
{
	struct https_fetch *f = arg;

	(void)r; (void)h; (void)events;
	f->conn_h = -1;
	if (f->state == ST_TLS)
		(void)engine_run(f);
}

/* The engine loop: do every step that can be done now (at most
 * RECV_BUDGET reads), then watch what the engine waits for.  0, or -1
 * when finished.  Longer than most: one engine-state read and one branch
 * per channel, as in BearSSL's own samples, reads best as one loop. */
static int
engine_run(struct https_fetch *f)
{
	br_ssl_engine_context *eng = &f->cc.eng;
	int rd_blocked = 0, wr_blocked = 0, budget = RECV_BUDGET, yielded = 0;
	unsigned st, m;
	unsigned char *buf;
	size_t len;
	ssize_t n;

	for (;;) {
		st = br_ssl_engine_current_state(eng);
		if (st & BR_SSL_CLOSED) {
			int e = br_ssl_engine_last_error(eng);

			if (e != BR_ERR_OK)
				return tls_fail(f, e);
			return conn_ended(f, 1);
		}
		if (st & (BR_SSL_SENDAPP | BR_SSL_RECVAPP))
			f->hs_done = 1;
		if (st & BR_SSL_RECVAPP) {
			buf = br_ssl_engine_recvapp_buf(eng, &len);
			if (consume(f, buf, len) < 0)
				return -1;
			br_ssl_engine_recvapp_ack(eng, len);
			continue;
		}
		if ((st & BR_SSL_SENDREC) && !wr_blocked) {
			buf = br_ssl_engine_sendrec_buf(eng, &len);
			n = send(f->fd, buf, len, COMPAT_NOSIGNAL | MSG_DONTWAIT);
			if (n > 0) {
				br_ssl_engine_sendrec_ack(eng, (size_t)n);
			} else if (n < 0 && errno == EINTR) {
				/* again */
			} else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
				wr_blocked = 1;
			} else {
				if (!f->hs_done && (errno == EPIPE || errno == ECONNRESET))
					return fail(f, HTTPS_E_TLS, "TLS error with %s: "
					    "connection closed during the handshake: %s",
					    f->host, strerror(errno));
				return fail(f, HTTPS_E_IO, "send with %s failed: %s",
				    f->host, strerror(errno));
			}
			continue;
		}
		if ((st & BR_SSL_SENDAPP) && f->req_off < f->req_len) {
			size_t k;

			buf = br_ssl_engine_sendapp_buf(eng, &len);
			k = f->req_len - f->req_off < len ? f->req_len - f->req_off : len;
			memcpy(buf, f->req + f->req_off, k);
			br_ssl_engine_sendapp_ack(eng, k);
			f->req_off += k;
			if (f->req_off == f->req_len)
				br_ssl_engine_flush(eng, 0);
			continue;
		}
		if ((st & BR_SSL_RECVREC) && !rd_blocked) {
			buf = br_ssl_engine_recvrec_buf(eng, &len);
			n = recv(f->fd, buf, len, MSG_DONTWAIT);
			if (n > 0) {
				br_ssl_engine_recvrec_ack(eng, (size_t)n);
				if (--budget == 0)
					rd_blocked = yielded = 1;
			} else if (n == 0) {
				return conn_ended(f, 0);
			} else if (errno == EINTR) {
				/* again */
			} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
				rd_blocked = 1;
			} else {
				if (!f->hs_done)
					return fail(f, HTTPS_E_TLS, "TLS error with %s: "
					    "connection lost during the handshake: %s",
					    f->host, strerror(errno));
				return fail(f, HTTPS_E_IO, "recv with %s failed: %s",
				    f->host, strerror(errno));
			}
			continue;
		}
		break;
	}
	m = (st & BR_SSL_SENDREC ? REACTOR_WRITE : 0u) |
	    (st & BR_SSL_RECVREC ? REACTOR_READ : 0u);
	if (m == 0)
		return fail(f, HTTPS_E_TLS, "TLS error with %s: the engine waits "
		    "for nothing (state 0x%x)", f->host, st);
	if (m != f->io_mask) {
		if (reactor_io_set(f->job.r, f->io_h, m) < 0)
			return fail(f, HTTPS_E_IO, "cannot watch the socket: %s",
			    strerror(errno));
		f->io_mask = m;
	}
	/* the socket may still hold data: come back on the next turn, after
	 * whatever else is ready (the conn timer is free once connected) */
	if (yielded && f->conn_h < 0 &&
	    (f->conn_h = reactor_timer_add(f->job.r, 0, on_yield, f)) < 0)
		return fail(f, HTTPS_E_IO, "cannot schedule the socket: %s", strerror(errno));
	return 0;
}

static void
on_io(struct reactor *r, int h, int events, void *arg)
{
	struct https_fetch *f = arg;

	(void)r;
	(void)h;
	(void)events;
	if (f->state == ST_CONNECTING)
		(void)connect_done(f);
	else if (f->state == ST_TLS)
		(void)engine_run(f);
}

static void
on_deadline(struct reactor *r, int h, int events, void *arg)
{
	struct https_fetch *f = arg;
	char hp[DNSHELPER_HOST_MAX + 10], phase[DNSHELPER_HOST_MAX + 64];

	(void)r;
	(void)h;
	(void)events;
	f->deadline_h = -1;
	host_port(f, hp, sizeof hp);
	switch (f->state) {
	case ST_DNS:
		fmt_n(phase, sizeof phase, "resolving %s", f->host);
		break;
	case ST_CONNECTING:
		fmt_n(phase, sizeof phase, "connecting to %s", hp);
		break;
	default:
		if (!f->hs_done)
			fmt_n(phase, sizeof phase, "TLS handshake with %s", hp);
		else if (f->hp.framing == HTTP_FRAME_NONE)
			fmt_n(phase, sizeof phase, "waiting for the response from %s", hp);
		else
			fmt_n(phase, sizeof phase, "reading the body, %llu bytes so far",
			    (unsigned long long)f->res.bytes);
		break;
	}
	(void)fail(f, HTTPS_E_TIMEOUT, "fetching %s timed out after %llu ms (%s)",
	    f->res.url, (unsigned long long)f->deadline_ms, phase);
}

static int
start_error(struct https_fetch *f, int en, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int
start_error(struct https_fetch *f, int en, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	err_vset(&f->res.err, ERR_IO, fmt, ap);
	va_end(ap);
	errno = en;
	return -1;
}

int
https_fetch_start(struct https_fetch *f, struct reactor *r,
    const struct https_request *req)
{
	size_t n;
	int rc;

	char url[HTTPS_URL_MAX + 1], inm[HTTPS_ETAG_MAX];

	int *const watches[] = { &f->io_h, &f->conn_h, &f->deadline_h }, *const fds[] = { &f->fd };

	if (f->job.active)
		return start_error(f, EBUSY, "a fetch is already running");
	/* Copy the strings first: they may point into f->res (the last
	 * response's url or etag). */
	url[0] = inm[0] = '\0';
	if (req != NULL && req->url != NULL && (n = strlen(req->url)) <= HTTPS_URL_MAX)
		memcpy(url, req->url, n + 1);
	if (req != NULL && req->if_none_match != NULL &&
	    (n = strlen(req->if_none_match)) < sizeof inm)
		memcpy(inm, req->if_none_match, n + 1);
	memset(&f->res, 0, sizeof f->res);
	err_clear(&f->res.err);
	f->res.retry_after = -1;
	f->res.content_length = -1;
	f->fd = f->io_h = f->deadline_h = f->conn_h = -1;   /* owned from job_begin on */
	f->io_mask = 0;
	f->state = ST_IDLE;
	if (req == NULL || req->url == NULL || req->done == NULL ||
	    (req->anchors == NULL && req->nanchors > 0))
		return start_error(f, EINVAL, "bad fetch request");
	if (url[0] == '\0' && req->url[0] != '\0')
		return start_error(f, EINVAL, "bad URL: too long");
	memcpy(f->res.url, url, strlen(url) + 1);
	f->res.url[strcspn(f->res.url, "#")] = '\0';
	if (req->if_none_match != NULL) {
		const char *c;

		if (inm[0] == '\0' && req->if_none_match[0] != '\0')
			return start_error(f, EINVAL, "If-None-Match value too long");
		for (c = inm; *c; c++)
			if ((unsigned char)*c < 0x20 || *c == 0x7f)
				return start_error(f, EINVAL, "bad If-None-Match value");
	}
	memcpy(f->inm, inm, strlen(inm) + 1);
	{
		char host[DNSHELPER_HOST_MAX + 1];
		uint16_t port;
		long off;
		const char *why;

		if (https_url_split(f->res.url, host, &port, &off, &why) < 0)
			return start_error(f, EINVAL, "bad URL %s: %s", f->res.url, why);
	}
	f->on_body = req->on_body;
	f->done = req->done;
	f->arg = req->arg;
	f->anchors = req->anchors;
	f->nanchors = req->nanchors;
	f->connect_timeout_ms = req->connect_timeout_ms ? req->connect_timeout_ms :
	    HTTPS_DEFAULT_CONNECT_TIMEOUT_MS;
	f->deadline_ms = req->deadline_ms ? req->deadline_ms : HTTPS_DEFAULT_DEADLINE_MS;
	f->body_max = req->body_max ? req->body_max : HTTPS_DEFAULT_BODY_MAX;
	job_begin(&f->job, r, watches, 3, fds, 1);
	if ((f->deadline_h = reactor_timer_add(r, f->deadline_ms, on_deadline, f)) < 0) {
		int en = errno;
		release(f);
		return start_error(f, en, "cannot add a timer: %s", strerror(en));
	}
	rc = hop_start(f);      /* a failure here is returned (job.h) */
	if (rc == 0)
		job_started(&f->job);
	return rc < 0 ? -1 : 0;
}
