/* trust.c -- see trust.h. */
#include "core/update/trust.h"
#include "core/base/fmt.h"
#include "core/base/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const system_bundles[] = { TRUST_SYSTEM_BUNDLES };
#define NSYSTEM (sizeof system_bundles / sizeof system_bundles[0])

void
trust_reset(struct trust_store *ts)
{
	ts->n = 0;
	ts->skipped = 0;
	ts->used = 0;
	ts->mark = 0;
	ts->in_cert = 0;
	ts->overflow = 0;
	ts->path[0] = '\0';
}

/* Copy `len` bytes into the arena; NULL (and the overflow flag) when full. */
static unsigned char *
arena_put(struct trust_store *ts, const void *src, size_t len)
{
	unsigned char *p;

	if (len > sizeof ts->arena - ts->used) {
		ts->overflow = 1;
		return NULL;
	}
	p = ts->arena + ts->used;
	memcpy(p, src, len);
	ts->used += len;
	return p;
}

/* br_x509_decoder's subject-DN receiver. */
static void
dn_append(void *ctx, const void *buf, size_t len)
{
	(void)arena_put(ctx, buf, len);
}

/* br_pem_decoder's receiver: the DER bytes of a certificate. */
static void
der_push(void *ctx, const void *buf, size_t len)
{
	struct trust_store *ts = ctx;

	/* Once the decoder has finished (a whole certificate decoded, or an
	 * error) its T0 machine has stopped and must not be run again:
	 * BearSSL 0.6 dereferences a null instruction pointer.  Bytes after
	 * the certificate inside the same PEM object are ignored.  fuzz_trust
	 * found this with a PEM object holding a certificate and more. */
	if (ts->dc.err != 0 || ts->dc.decoded)
		return;
	br_x509_decoder_push(&ts->dc, buf, len);
}

static void
cert_begin(struct trust_store *ts)
{
	ts->in_cert = 1;
	ts->overflow = 0;
	ts->mark = ts->used;
	br_x509_decoder_init(&ts->dc, dn_append, ts);
	br_pem_decoder_setdest(&ts->pc, der_push, ts);
}

/* The certificate's bytes are all in: make it an anchor.  1 added, 0
 * skipped, -1 (e set) when the store is full. */
static int
cert_end(struct trust_store *ts, const char *what, struct err *e)
{
	br_x509_trust_anchor *ta;
	const br_x509_pkey *pk;
	size_t dn_len = ts->used - ts->mark;

	ts->in_cert = 0;
	pk = br_x509_decoder_get_pkey(&ts->dc);
	if (ts->overflow)
		goto full;
	if (pk == NULL || br_x509_decoder_last_error(&ts->dc) != 0 ||
	    (pk->key_type != BR_KEYTYPE_RSA && pk->key_type != BR_KEYTYPE_EC)) {
		ts->used = ts->mark;    /* forget its DN */
		ts->skipped++;
		return 0;
	}
	if (ts->n >= TRUST_MAX_ANCHORS) {
		ts->used = ts->mark;
		err_set(e, ERR_IO, "CA bundle %s has more than %d certificates",
		    what, TRUST_MAX_ANCHORS);
		err_ctx_str(e, "path", what);
		return -1;
	}
	ta = &ts->ta[ts->n];
	memset(ta, 0, sizeof *ta);
	ta->dn.data = ts->arena + ts->mark;
	ta->dn.len = dn_len;
	ta->flags = br_x509_decoder_isCA(&ts->dc) ? BR_X509_TA_CA : 0;
	ta->pkey.key_type = pk->key_type;
	if (pk->key_type == BR_KEYTYPE_RSA) {
		ta->pkey.key.rsa.n = arena_put(ts, pk->key.rsa.n, pk->key.rsa.nlen);
		ta->pkey.key.rsa.nlen = pk->key.rsa.nlen;
		ta->pkey.key.rsa.e = arena_put(ts, pk->key.rsa.e, pk->key.rsa.elen);
		ta->pkey.key.rsa.elen = pk->key.rsa.elen;
	} else {
		ta->pkey.key.ec.curve = pk->key.ec.curve;
		ta->pkey.key.ec.q = arena_put(ts, pk->key.ec.q, pk->key.ec.qlen);
		ta->pkey.key.ec.qlen = pk->key.ec.qlen;
	}
	if (ts->overflow)
		goto full;
	ts->n++;
	return 1;
full:
	ts->used = ts->mark;
	err_set(e, ERR_IO, "CA bundle %s is too large (more than %d bytes of "
	    "names and keys)", what, TRUST_ARENA_SIZE);
	err_ctx_str(e, "path", what);
	return -1;
}

/* Push bundle bytes; `len` 0 means the end of the input.  Anchors added
 * (>= 0) or -1 with `e` set. */
static int
push(struct trust_store *ts, const unsigned char *buf, size_t len,
    const char *what, struct err *e)
{
	int added = 0, rc;
	int final = len == 0;

	if (final) {
		/* A last line without its newline still counts (brssl does
		 * the same). */
		buf = (const unsigned char *)"\n";
		len = 1;
	}
	while (len > 0) {
		size_t k = br_pem_decoder_push(&ts->pc, buf, len);

		buf += k;
		len -= k;
		switch (br_pem_decoder_event(&ts->pc)) {
		case BR_PEM_BEGIN_OBJ: {
			const char *name = br_pem_decoder_name(&ts->pc);

			if (strcmp(name, "CERTIFICATE") == 0 ||
			    strcmp(name, "X509 CERTIFICATE") == 0)
				cert_begin(ts);
			else
				br_pem_decoder_setdest(&ts->pc, NULL, NULL);
			break;
		}
		case BR_PEM_END_OBJ:
			if (ts->in_cert) {
				if ((rc = cert_end(ts, what, e)) < 0)
					return -1;
				added += rc;
			}
			break;
		case BR_PEM_ERROR:
			if (ts->in_cert)
				ts->used = ts->mark;
			ts->in_cert = 0;
			err_set(e, ERR_IO, "CA bundle %s: invalid PEM encoding", what);
			err_ctx_str(e, "path", what);
			return -1;
		default:
			break;
		}
	}
	if (final && ts->in_cert) {
		ts->used = ts->mark;
		ts->in_cert = 0;
		err_set(e, ERR_IO, "CA bundle %s: unfinished PEM object", what);
		err_ctx_str(e, "path", what);
		return -1;
	}
	return added;
}

int
trust_add_pem(struct trust_store *ts, const void *pem, size_t len,
    const char *what, struct err *e)
{
	int a, b;

	br_pem_decoder_init(&ts->pc);
	ts->in_cert = 0;
	if ((a = len > 0 ? push(ts, pem, len, what, e) : 0) < 0)
		return -1;
	if ((b = push(ts, NULL, 0, what, e)) < 0)
		return -1;
	return a + b;
}

/* a system bundle is about 220 KB; this bounds a hostile one */
#define TRUST_FILE_MAX (8 << 20)

int
trust_load_file(struct trust_store *ts, const char *path, struct err *e)
{
	unsigned char buf[4096];
	struct stat st;
	size_t total = 0;
	int fd, rc;
	ssize_t n;

	trust_reset(ts);
	/* a FIFO must not block the open (nor the supervisor's loop); only a
	 * regular file of at most TRUST_FILE_MAX is read */
	fd = fs_open_regular(path, O_RDONLY, 0, &st);
	if (fd < 0 && errno != EINVAL) {
		err_sys(e, ERR_IO, "cannot open CA bundle %s", path);
		err_ctx_str(e, "path", path);
		return -1;
	}
	if (fd < 0 || st.st_size > TRUST_FILE_MAX) {
		if (fd >= 0)
			close(fd);
		err_ctx_str(e, "path", path);
		return err_set(e, ERR_IO, "CA bundle %s must be a regular file of at most %d "
		    "bytes", path, TRUST_FILE_MAX);
	}
	br_pem_decoder_init(&ts->pc);
	for (;;) {
		n = read(fd, buf, sizeof buf);
		if (n > 0 && (total += (size_t)n) > TRUST_FILE_MAX) {
			close(fd);
			trust_reset(ts);
			err_ctx_str(e, "path", path);
			return err_set(e, ERR_IO, "CA bundle %s grew past %d bytes while read",
			    path, TRUST_FILE_MAX);
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err_sys(e, ERR_IO, "cannot read CA bundle %s", path);
			err_ctx_str(e, "path", path);
			close(fd);
			trust_reset(ts);
			return -1;
		}
		rc = push(ts, buf, (size_t)n, path, e);   /* n == 0: the end */
		if (rc < 0) {
			close(fd);
			trust_reset(ts);
			return -1;
		}
		if (n == 0)
			break;
	}
	close(fd);
	if (ts->n == 0) {
		if (ts->skipped > 0)
			err_set(e, ERR_IO, "no usable certificate in CA bundle %s "
			    "(%zu could not be decoded or have unsupported keys)",
			    path, ts->skipped);
		else
			err_set(e, ERR_IO, "no certificate in CA bundle %s", path);
		err_ctx_str(e, "path", path);
		trust_reset(ts);
		return -1;
	}
	fmt_n(ts->path, sizeof ts->path, "%s", path);
	return 0;
}

const char *
trust_bundle_path(const char *ca_file)
{
	const char *env;
	size_t i;

	if (ca_file != NULL && *ca_file != '\0')
		return ca_file;
	env = getenv("SSL_CERT_FILE");
	if (env != NULL && *env != '\0')
		return env;
	for (i = 0; i < NSYSTEM; i++)
		if (access(system_bundles[i], F_OK) == 0)
			return system_bundles[i];
	return NULL;
}

int
trust_load_default(struct trust_store *ts, const char *ca_file, struct err *e)
{
	const char *path = trust_bundle_path(ca_file);

	if (path == NULL) {
		trust_reset(ts);
		err_set(e, ERR_IO, "no CA bundle found (set updater.caFile or "
		    "SSL_CERT_FILE; tried %s, %s, %s, %s)", TRUST_SYSTEM_BUNDLES);
		return -1;
	}
	return trust_load_file(ts, path, e);
}
