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

/*
 * Every string member is an offset into the settings' own `store`
 * (settings_str), filled in the order the file is read: a resident
 * process touches only the bytes its settings use (well under a page),
 * and a plain assignment copies the whole record.  Offset 0 is "".
 */
#define SETTINGS_STORE_MAX 16384

/* The updater section (DESIGN.md "Updater").  Off until `bootstrap`
 * saves it. */
#define SETTINGS_URL_MAX 2048
#define SETTINGS_KEY_HEX 130          /* an uncompressed P-256 point, hex */
#define SETTINGS_CA_MAX 1023
#define SETTINGS_NAME_MAX 63
struct settings_updater {
	int enabled;                       /* updater.autoUpdateEnabled, default false */
	unsigned short manifest_url;       /* "" when not configured */
	int has_url;                       /* manifest_url is not "" */
	int nkeys;                         /* updater.publicKeys: 0..2 */
	unsigned short keys[2];            /* SETTINGS_KEY_HEX hex digits each */
	unsigned short ca_file;            /* updater.caFile, "" when null/absent */
	int interval_min;                  /* updater.intervalMinutes 1..10080, default 60 */
	unsigned short name;               /* updater.name: the manifest's name and the
					      binary in bin/; "app-server", codex: "codex" */
	unsigned short target;             /* updater.target, default APPD_TARGET */
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
	unsigned short probe;              /* connect, codex-initialize, or an
	                                    * hprobe spec (core/hprobe.h); "" if none */
};

#define SETTINGS_SPEC_MAX 511          /* a probe spec (readiness, liveness) */

struct settings {
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
	unsigned short rc_argoff[8];
	/* server.remoteControlDisabledEnv: NAME=VALUE set when it is off */
	int rc_envc;
	unsigned short rc_envoff[8];
	int argc;                          /* server.command, unexpanded */
	unsigned short argoff[SETTINGS_MAX_ARGS];
	struct settings_liveness live;
	unsigned short ready_spec;         /* READY_PROBE's spec */
	unsigned short used;               /* bytes of store in use */
	char store[SETTINGS_STORE_MAX];
};

/* The string at offset `off` of `s`'s store (never NULL). */
static inline const char *
settings_str(const struct settings *s, unsigned short off)
{
	return s->store + off;
}
/* Append `str` to the store and point `*slot` at it: 0, or -1 when it
 * does not fit (the member is then ""). */
int settings_put(struct settings *s, unsigned short *slot, const char *str);
/* *dst = *src, touching only the bytes of the store in use (a resident
 * supervisor's copy stays as small as its settings). */
void settings_assign(struct settings *dst, const struct settings *src);

/* The codex profile (DESIGN.md "Settings"): what the real Codex
 * app-server needs.  Its managed binary, and the env marker the seed's
 * daemon sets when remote control is disabled (seed-contract.md §1.6). */
#define CODEX_MANAGED_BIN "{current}/bin/codex"
#define CODEX_RC_DISABLED_ENV "CODEX_INTERNAL_APP_SERVER_REMOTE_CONTROL_DISABLED=1"

/* Argument `i` of server.command, of remoteControlArgs, and the
 * NAME=VALUE pair `i` of remoteControlDisabledEnv: */
static inline const char *
settings_arg(const struct settings *s, int i)
{
	return settings_str(s, s->argoff[i]);
}
static inline const char *
settings_rc_arg(const struct settings *s, int i)
{
	return settings_str(s, s->rc_argoff[i]);
}
static inline const char *
settings_rc_env(const struct settings *s, int i)
{
	return settings_str(s, s->rc_envoff[i]);
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
