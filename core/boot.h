/*
 * boot.h -- bringing the server back after a reboot without a client
 * (`appd enable-boot` / `disable-boot`).
 *
 * Two mechanisms, chosen in this order unless one is asked for:
 *   systemd  a systemd user manager runs ($XDG_RUNTIME_DIR/systemd/private
 *            is its socket, systemd(1)): a user unit
 *            $XDG_CONFIG_HOME/systemd/user/<name>.service (Type=notify,
 *            ExecStart=<appd> run, Environment=APPD_HOME=...,
 *            Restart=on-failure), then `systemctl --user daemon-reload`
 *            and `systemctl --user enable <name>.service`.  Without
 *            linger (/var/lib/systemd/linger/<user>, loginctl(1)
 *            enable-linger) a user manager is not started at boot and
 *            stops at logout: reported as linger false with the command
 *            an administrator runs, never hidden.
 *   cron     a crontab(5) line "@reboot APPD_HOME='<home>' '<appd>' start
 *            ... # appd-boot <home>", read with `crontab -l` and installed
 *            with `crontab FILE` (Debian's cron); idempotent, removed by
 *            disable-boot.
 * <name> is "appd" for the default home ($HOME/.appd), else
 * "appd-<first 8 hex digits of SHA-256(home)>".
 *
 * Also reported: logind's KillUserProcesses=yes (logind.conf(5); the last
 * assignment in /etc/systemd/logind.conf and its .conf.d directories
 * wins), which kills a detached supervisor at logout despite setsid.
 *
 * Tools run through core/childrun.h (exec, bounded: 10 s each); nothing
 * goes through a shell.
 */
#ifndef APPD_BOOT_H
#define APPD_BOOT_H

#include "core/base/err.h"
#include "core/home.h"

enum boot_mech { BOOT_AUTO = 0, BOOT_SYSTEMD, BOOT_CRON };

struct boot_result {
	enum boot_mech mech;
	int changed;                    /* anything written or removed */
	int linger;                     /* systemd: 1 / 0; -1 unknown (cron) */
	int kill_user_processes;        /* logind says yes */
	char written[HOME_PATH_MAX];    /* the unit file, or "crontab" */
	char unit_name[64];
	char text[2048];                /* the unit text or the crontab line */
	char hint[256];                 /* what an administrator runs, or "" */
};

/* The mechanism's name: "systemd" / "cron". */
const char *boot_mech_name(enum boot_mech m);

/*
 * Make (enable=1) or remove (enable=0) the boot entry for home `h`,
 * starting the appd binary `appd` (absolute).  `dry_run`: compute
 * everything (text, paths, linger) but write and run nothing.  0, or -1
 * with `e`: ERR_USAGE for a home or binary path that cannot be written
 * into a crontab line (a quote or a newline in it), ERR_IO when a file or
 * a tool fails (its output in the message).
 */
int boot_apply(const struct home *h, const char *appd, enum boot_mech want, int enable,
	       int dry_run, struct boot_result *r, struct err *e);

#endif
