/*
 * appd.h -- shared by the command implementations in cmd/: JSON output,
 * exit statuses, and the lifecycle steps several commands share.  Only
 * cmd/ prints and exits.
 */
#ifndef APPD_CMD_H
#define APPD_CMD_H

#include "core/base/err.h"
#include "core/home.h"
#include "core/base/jsonw.h"
#include "core/pidfile.h"
#include "core/settings.h"
#include "core/status.h"
#include "core/version.h"

#define LOCK_TIMEOUT_DEFAULT_S 75

/* Output: one JSON object on stdout (and for failures the message on
 * stderr).  Return the exit status. */
struct out {
	char buf[16384];
	struct jsonw w;
	char warnings[4][512];
	int nwarn;
};
void out_begin(struct out *o, const char *status);
/* managedPath / managedVersion / socketPath / cliVersion */
void out_common(struct out *o, const struct home *h, const struct settings *s);
int out_end(struct out *o);
/* appServerVersion, when known (non-empty). */
void out_server_version(struct out *o, const char *v);
/* Add managedPath / managedVersion to a failure (readiness errors). */
void err_managed(struct err *e, const struct home *h, const struct settings *s);
int out_fail(const struct err *e);
void out_warn(struct out *o, const char *msg);
/* Set by `status`: managedVersion only from the cache, never by running
 * the binary. */
extern int out_cache_only;

/* Argument helpers: 0 ok, -1 usage error filled in `e`. */
int arg_seconds(const char *flag, const char *val, int lo, int hi, int *out, struct err *e);

/* `*path` made absolute against the cwd (into `store`) when it is
 * relative: the supervisor runs in /.  0, or -1 (ERR_USAGE). */
int arg_abspath(const char **path, char *store, size_t cap, struct err *e);

/* Resolve the home and create/check it (every mutating command). */
int cmd_home(struct home *h, int create, struct err *e);
/* Take state/daemon.lock for `command` (bounded; ERR_BUSY names the
 * holder).  Returns the fd. */
int cmd_lock(const struct home *h, const char *command, int timeout_s, struct err *e);

/* Lifecycle steps (cmd/lifecycle.c). */
struct start_result {
	int started;            /* 1 launched now, 0 already running */
	long server_pid;
	long sup_pid;
};
int lc_start(const struct home *h, const struct settings *s, int timeout_s,
	     struct start_result *res, struct err *e);
/* stopped: 1 when something was stopped, 0 when nothing ran.  With
 * `explicit_grace` the supervisor is told `grace_s` (a stop request file);
 * otherwise it uses the grace period of the settings it runs with. */
int lc_stop(const struct home *h, int grace_s, int explicit_grace, int *stopped, struct err *e);
/* Supervisor record and freshness: 1 when an active supervisor exists. */
int lc_supervisor(const struct home *h, struct pid_record *rec, struct err *e);
/* Kill a server left behind by a dead supervisor, by identity. */
int lc_kill_orphan(const struct home *h, int grace_s, int *killed, struct err *e);
/* Wait until check(arg) is true: it runs now, then whenever an entry of
 * `dir` appears, moves in or goes (inotify), until the supervisor `sup`
 * exits or `timeout_ms` passes.  1 done, 0 timed out, -2 the supervisor
 * went first, -1 error (`e`). */
int lc_wait_dir(const char *dir, const struct pid_record *sup, int timeout_ms,
		int (*check)(void *arg), void *arg, struct err *e);
/* Wait until the running supervisor reports the server ready, or the
 * incarnation passes `after_incarnation` and it is ready. */
int lc_wait_ready(const struct home *h, const struct pid_record *sup, int after_incarnation,
		  int timeout_ms, struct sup_status *st, struct err *e);

/* Probes (cmd/probe.c).  cli_probe: 1 when the control socket answers
 * (`version` filled when the server speaks codex-initialize), 0 when
 * nothing listens, -1 with ERR_NOT_RUNNING when the probe failed. */
int cli_probe(const struct home *h, const struct settings *s, char *version, size_t cap,
	      struct err *e);
/* Second token of `<bin> --version` (bounded: 5 s), or "" when unknown. */
void managed_version(const char *bin, char *out, size_t cap);
/* 1 when a server answers on the socket but appd does not manage it (no
 * live supervisor and no record of ours). */
int lc_unmanaged(const struct home *h, struct err *e);
#define UNMANAGED_MSG "app server is running but is not managed by appd"

int cmd_start(int argc, char **argv);
int cmd_remote_control(int argc, char **argv, int enable);
int cmd_stop(int argc, char **argv);
int cmd_restart(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_version(int argc, char **argv);
int cmd_supervise(int argc, char **argv);
int cmd_logs(int argc, char **argv);
int cmd_release(int argc, char **argv);
int cmd_proxy(int argc, char **argv);
int cmd_bootstrap(int argc, char **argv);
int cmd_update(int argc, char **argv);
/* status: autoUpdateEnabled, installedVersion, lastCheckAt, lastResult,
 * lastReason, nextCheckAt (from `live`, the running supervisor's status,
 * or NULL), rejectedVersions. */
void out_updater(struct out *o, const struct home *h, const struct settings *s,
		 const struct sup_status *live);

#endif
