/*
 * settings.h -- settings.json (DESIGN.md "Settings").
 *
 * Loading never changes the file.  A missing file gives the defaults; a
 * file that is not a JSON object or has a member of the wrong type or
 * range is an ERR_SETTINGS error naming the file and the member, and the
 * file is left as it is.  Saving is a read-modify-write of one member
 * (unknown keys survive, jsonr_set) written atomically; callers hold
 * state/daemon.lock so concurrent changes are never lost.
 */
#ifndef APPD_SETTINGS_H
#define APPD_SETTINGS_H

#include <stddef.h>

#include "core/base/err.h"
#include "core/home.h"

#define SETTINGS_MAX_ARGS 64
#define SETTINGS_MAX_BYTES 65536

/* READY_PROBE: server.readiness is a core/hprobe.h spec (tcp://, http://,
 * http+unix://, exec:), kept in settings.ready_spec */
enum readiness { READY_CONNECT = 0, READY_NOTIFY, READY_CODEX_INIT, READY_NONE, READY_PROBE };
enum restart_policy { RESTART_ON_FAILURE = 0, RESTART_ALWAYS, RESTART_NEVER };

/* The updater section (DESIGN.md "Updater").  Off until `bootstrap`
 * saves it. */
#define SETTINGS_URL_MAX 2048
#define SETTINGS_KEY_HEX 130          /* an uncompressed P-256 point, hex */
struct settings_updater {
	int enabled;                       /* updater.autoUpdateEnabled, default false */
	char manifest_url[SETTINGS_URL_MAX + 1];   /* "" when not configured */
	int nkeys;                         /* updater.publicKeys: 0..2 */
	char keys[2][SETTINGS_KEY_HEX + 1];
	char ca_file[1024];                /* updater.caFile, "" when null/absent */
	int interval_min;                  /* updater.intervalMinutes 1..10080, default 60 */
	char name[64];                     /* updater.name: the manifest's name and the
					      binary in bin/; "app-server", codex: "codex" */
	char target[64];                   /* updater.target, default APPD_TARGET */
};

/* server.liveness (DESIGN.md "Readiness and liveness"; Kubernetes'
 * livenessProbe, Docker's HEALTHCHECK): off unless a probe is given. */
struct settings_liveness {
	int enabled;
	int watchdog_s;                    /* server.watchdogSeconds 0..3600: the
	                                    * server's sd_notify WATCHDOG=1 pings
	                                    * (0: none asked for) */
	int interval_s;                    /* intervalSeconds 1..86400, default 10 */
	int timeout_s;                     /* timeoutSeconds 1..600, default 5 */
	int threshold;                     /* failureThreshold 1..100, default 3 */
	char probe[512];                   /* connect, codex-initialize, or an
	                                    * hprobe spec (core/hprobe.h) */
};

struct settings {
	/* small members first, the string stores last: a resident process
	 * touches only the pages its settings use */
	int from_file;                     /* 1 when settings.json existed */
	enum readiness readiness;
	int ready_timeout_s;               /* 1..3600, default 10 */
	int grace_s;                       /* 0..300, default 10 */
	enum restart_policy restart;
	int socket_activation;
	int codex_profile;                 /* "profile":"codex" */
	int remote_control;                /* remoteControlEnabled */
	long long log_max_bytes;           /* server.logMaxBytes, default 1 MiB */
	struct settings_updater upd;
	/* server.remoteControlArgs: appended when remote control is on */
	int rc_argc;
	unsigned short rc_argoff[8];       /* offsets into rcbuf */
	/* server.remoteControlDisabledEnv: NAME=VALUE set when it is off */
	int rc_envc;
	unsigned short rc_envoff[8];
	int argc;                          /* server.command, unexpanded: */
	unsigned short argoff[SETTINGS_MAX_ARGS]; /* offsets into argbuf */
	struct settings_liveness live;
	char ready_spec[512];              /* READY_PROBE's spec */
	char rcbuf[2048];
	char argbuf[8192];
};

/* The codex profile (DESIGN.md "Settings"): what the real Codex
 * app-server needs.  Its managed binary, and the env marker the seed's
 * daemon sets when remote control is disabled (seed-contract.md §1.6). */
#define CODEX_MANAGED_BIN "{current}/bin/codex"
#define CODEX_RC_DISABLED_ENV "CODEX_INTERNAL_APP_SERVER_REMOTE_CONTROL_DISABLED=1"

/* The struct holds offsets, not pointers, so a plain assignment copies
 * it.  Argument `i` of server.command, of remoteControlArgs, and the
 * NAME=VALUE pair `i` of remoteControlDisabledEnv: */
static inline const char *
settings_arg(const struct settings *s, int i)
{
	return s->argbuf + s->argoff[i];
}
static inline const char *
settings_rc_arg(const struct settings *s, int i)
{
	return s->rcbuf + s->rc_argoff[i];
}
static inline const char *
settings_rc_env(const struct settings *s, int i)
{
	return s->rcbuf + s->rc_envoff[i];
}

void settings_defaults(struct settings *s);
int settings_load(const char *path, struct settings *s, struct err *e);
/* Set the member at dotted `key` to the raw JSON `value` (NULL removes
 * it), keeping every other member as it was; atomic, durable. */
int settings_set(const char *path, const char *key, const char *value, struct err *e);
/* The command to run: server.command expanded, plus the remote-control
 * arguments when it is enabled.  `env` gets the NAME=VALUE pairs to add
 * (NULL-terminated; the disabled-marker when remote control is off).
 * Pointers go into `buf`. */
int settings_launch(const struct settings *s, const struct home *h, char *buf, size_t cap,
		    char **argv, char **env, struct err *e);

/* Store `argv` as server.command (placeholders kept as given). */
int settings_save_command(const char *path, int argc, char *const argv[], struct err *e);
/* Expand {home}, {socket} and {current} in every argument into `buf`;
 * `out` gets argc+1 pointers (NULL-terminated).  0 or -1 (ERR_SETTINGS
 * when it does not fit). */
int settings_expand(const struct settings *s, const struct home *h,
		    char *buf, size_t cap, char **out, struct err *e);
const char *readiness_name(enum readiness r);

#endif
