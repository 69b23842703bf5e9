/*
 * updater.h -- one update check on the reactor (DESIGN.md "Updater"), and
 * the updater's durable state, packages/updater.json.
 *
 * A check, in order:
 *   1. GET manifestUrl with If-None-Match (the stored ETag, only when a
 *      release is installed): 304 -> noUpdate;
 *   2. GET manifestUrl + ".sig";
 *   3. identical bytes to the last accepted manifest -> noUpdate;
 *   4. manifest_verify (signature, schema, name, serial > high-water mark,
 *      expiry, version >= installed, rollout, artifact for the target);
 *   5. a version the host rejected before -> noUpdate (never retried);
 *   6. check only: updateAvailable / noUpdate, nothing changes;
 *   7. download the "<target>" artifact (when the version is newer) into a
 *      temp file in packages/releases/, checking size and SHA-256 while it
 *      streams, then install_commit it as releases/<version>-<target>;
 *   8. download "appd-<target>" when the caller gave its own binary's
 *      SHA-256 and it differs; install_commit_appd.
 * The caller switches `current`, restarts what runs, and saves the state
 * (updater_accept / updater_save): what is durable follows what is live,
 * so a crash between install and switch re-does the install next time.
 *
 * Every failure ends the check as `rejected` with a stable reason: the
 * manifest rule's (manifest.h), the artifact check's ("size", "sha256",
 * "truncated"), or the fetch's (https_fail_name, with "certificateName",
 * "untrustedCertificate", "expiredCertificate" for the TLS ones), or
 * "trustStore" / "io".  Nothing half-installed remains.
 *
 * Memory: struct updater is large (the manifest buffer); keep it static.
 * The HTTPS fetch and trust store it uses are static inside updater.c, so
 * one check runs per process at a time.
 */
#ifndef APPD_UPDATER_H
#define APPD_UPDATER_H

#include <stdint.h>

#include "core/base/err.h"
#include "core/net/https.h"
#include "core/update/trust.h"
#include "core/update/install.h"
#include "core/update/manifest.h"
#include "core/settings.h"

struct reactor;

#define UPD_REJECTED_MAX 16
#define UPD_RELEASE_MAX  (MANIFEST_VERSION_MAX + MANIFEST_TARGET_MAX + 2)

/* packages/updater.json */
struct upd_state {
	long long serial;                    /* highest accepted manifest serial */
	char etag[HTTPS_ETAG_MAX];           /* of the last accepted manifest */
	char manifest_sha256[65];            /* hex SHA-256 of its bytes */
	int nrejected;
	char rejected[UPD_REJECTED_MAX][MANIFEST_VERSION_MAX];
	int failures;                        /* consecutive failed checks */
	int64_t last_check_at;               /* wall ms, 0: never */
	char last_result[24];                /* updated noUpdate updateAvailable rejected */
	char last_reason[32];
	char last_message[512];
	char last_version[MANIFEST_VERSION_MAX]; /* the version the result is about */
	char previous_version[MANIFEST_VERSION_MAX]; /* for "updated" */
	long last_pid;                       /* server pid after "updated" */
	int64_t next_check_at;               /* wall ms, 0: none scheduled */
	char request_id[64];                 /* the request the last result answers */
};

/* 0 (a missing file gives a zeroed state), or -1 (ERR_IO). */
int updstate_read(const char *path, struct upd_state *st, struct err *e);
/* Atomic and durable (fs_write_atomic). */
int updstate_write(const char *path, const struct upd_state *st, struct err *e);
int updstate_is_rejected(const struct upd_state *st, const char *version);
/* Remember `version` as rejected (the oldest entry goes when full). */
void updstate_add_rejected(struct upd_state *st, const char *version);

enum upd_kind { UPD_NO_UPDATE = 0, UPD_AVAILABLE, UPD_INSTALLED, UPD_REJECTED };

struct upd_result {
	enum upd_kind kind;
	char reason[32];                     /* rejected: why */
	char version[MANIFEST_VERSION_MAX];  /* the manifest's version, "" if none read */
	char installed[MANIFEST_VERSION_MAX];/* installed before the check, "" if none */
	char release[UPD_RELEASE_MAX];       /* UPD_INSTALLED with a new server: the
						release to switch to; "" when only appd */
	char appd_path[HOME_PATH_MAX];       /* UPD_INSTALLED: new appd binary, or "" */
	long long retry_after;               /* seconds, -1 if none */
	int not_modified;                    /* noUpdate by a 304 */
	uint64_t bytes;                      /* body bytes fetched in all */
	struct err err;                      /* message when not installed/available */
};

struct upd_opts {
	const struct settings *settings;     /* its updater section */
	const struct pkgdir *pk;
	int check_only;
	uint64_t fetch_timeout_ms;           /* each fetch's deadline; 0: 5 min */
	const char *machine_id_fallback;     /* machineid_get()'s file */
	const unsigned char *self_sha256;    /* the running appd's, or NULL: skip appd */
};

struct updater;
typedef void upd_done_cb(struct updater *u, const struct upd_result *res, void *arg);

struct updater {
	struct upd_result res;
	struct upd_state st;                 /* as read at the start; the caller
						saves it with updater_accept() */
	struct manifest m;
	/* ---- private ---- */
	struct reactor *r;
	struct upd_opts o;
	struct settings set;                 /* the settings of this check */
	struct pkgdir pk;
	unsigned char self_sha[32];
	int has_self;
	upd_done_cb *done;
	void *arg;
	int active, step;
	char url[HTTPS_URL_MAX + 1];
	char etag[HTTPS_ETAG_MAX];           /* of the manifest just fetched */
	char mbuf[MANIFEST_MAX_BYTES];
	size_t mlen;
	char sbuf[1024];
	size_t slen;
	int tmp_fd;
	char tmp_path[HOME_PATH_MAX];
	struct artifact_check ac;
	struct err ac_err;
	int ac_failed;
	struct trust_store trust;            /* the check's trust anchors */
	struct https_fetch fetch;            /* the fetch in flight */
};

/*
 * Start a check; `done` runs exactly once from a reactor callback unless
 * updater_cancel is called first.  0, or -1 with `e` set when nothing
 * started.  `o`'s pointers are copied from (not kept).
 */
int updater_start(struct updater *u, struct reactor *r, const struct upd_opts *o,
		  upd_done_cb *done, void *arg, struct err *e);
/* Stop a running check; removes its temp file.  A no-op when idle. */
void updater_cancel(struct updater *u);
int updater_running(const struct updater *u);

/* Record the manifest of the last check as accepted in u->st (serial
 * high-water mark, ETag, digest): call once what it installed is live,
 * or when it was a noUpdate.  Does not write the file. */
void updater_accept(struct updater *u);

/*
 * The one place a check's verdict is recorded (the supervisor's checks
 * and `appd update` without a supervisor): the last_* fields of `st`
 * (last_result is upd_kind_name(kind)), last_check_at = now, and the
 * failure count (+1 for UPD_REJECTED, reset otherwise), which drives the
 * failure backoff.  Does not write the file.
 */
void updstate_record(struct upd_state *st, enum upd_kind kind, const char *reason,
		     const char *version, const char *message);
/* "noUpdate", "updateAvailable", "updated", "rejected": the JSON names. */
const char *upd_kind_name(enum upd_kind k);
/* The kind of st->last_result (UPD_REJECTED for anything unknown). */
enum upd_kind updstate_kind(const struct upd_state *st);

/* Run one check to completion on a private reactor (for the CLI).  0, or
 * -1 with `e` set when it could not start. */
int updater_run_sync(struct updater *u, const struct upd_opts *o, struct err *e);

/*
 * Run one check in this process and make its result live (the `update`
 * and first `bootstrap` paths when no supervisor runs; the caller holds
 * daemon.lock): switch `current` to what it installed, record the
 * verdict (updstate_record) and save packages/updater.json.  A check-only
 * run, and a first bootstrap that was rejected, change nothing.  `st`
 * gets the state as the supervisor would publish it.  0, or -1 (`e`)
 * when the check could not run or the switch failed.
 */
struct home;
int upd_check_here(const struct home *h, const struct settings *s, const struct pkgdir *pk,
		   int check, int fetch_timeout_s, struct upd_state *st, int bootstrap,
		   struct err *e);

#endif
