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
#include "core/lifecycle.h"
#include "core/probe.h"

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
/* The warning for a live record whose supervisor could not write its
 * state files (st->state_write_error); nothing when it could. */
struct sup_status;
void out_state_behind(struct out *o, const struct sup_status *st);
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

#define UNMANAGED_MSG "app server is running but is not managed by appd"

/* The listener on h->socket that appd does not manage, identified once
 * per process (static storage; NULL when nothing listens or it cannot
 * be identified). */
struct unmanaged;
const struct unmanaged *cmd_unmanaged(const struct home *h);
/* ERR_UNMANAGED for that server: UNMANAGED_MSG, who it is (the
 * "unmanaged" object, socketPath) and what to do; returns -1. */
int err_unmanaged(const struct home *h, struct err *e);

/* What a command line gives for the server, recorded in settings.json:
 * its command (argc > 0; argv[0] made absolute when it is a relative path,
 * a bare name looked up in PATH at exec time) and `ready` (--ready SPEC,
 * may be NULL) as server.readiness.  A bad --ready changes nothing.  0 or
 * -1 (e).  For start, run and with. */
int cmd_record_server(const struct home *h, int argc, char **argv, const char *ready,
		      struct err *e);
/* The managed program exists (ERR_SPAWN naming it when not). */
int cmd_preflight(const struct home *h, const struct settings *s, struct err *e);

int cmd_start(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_boot(int argc, char **argv, int enable);
int cmd_with(int argc, char **argv);
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
