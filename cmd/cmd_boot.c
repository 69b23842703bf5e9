/* cmd_boot.c -- `appd enable-boot` / `appd disable-boot [--mechanism
 * systemd|cron] [--dry-run]`: the server comes back after a reboot
 * without a client (core/boot.h). */
#include "cmd/appd.h"
#include "core/boot.h"
#include "core/base/fmt.h"
#include "platform/proc.h"

#include <limits.h>
#include <string.h>

int
cmd_boot(int argc, char **argv, int enable)
{
	static struct boot_result r;
	enum boot_mech want = BOOT_AUTO;
	struct home h;
	struct settings s;
	struct err e;
	struct out o;
	char self[PATH_MAX];
	int dry = 0;

	err_clear(&e);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--dry-run") == 0) {
			dry = 1;
		} else if (strcmp(argv[i], "--mechanism") == 0 && i + 1 < argc) {
			i++;
			if (strcmp(argv[i], "systemd") == 0)
				want = BOOT_SYSTEMD;
			else if (strcmp(argv[i], "cron") == 0)
				want = BOOT_CRON;
			else
				return err_set(&e, ERR_USAGE, "--mechanism must be systemd or cron"),
				    out_fail(&e);
		} else {
			return err_set(&e, ERR_USAGE, "unknown argument \"%s\" to %s", argv[i],
			    argv[0]), out_fail(&e);
		}
	}
	if (cmd_home(&h, 1, &e) < 0)
		return out_fail(&e);
	if (proc_self_exe(self, sizeof self) < 0)
		return err_sys(&e, ERR_IO, "cannot tell where this appd binary is"), out_fail(&e);
	if (boot_apply(&h, self, want, enable, dry, &r, &e) < 0)
		return out_fail(&e);
	{
		struct err se;
		err_clear(&se);
		if (settings_load(h.settings, &s, &se) < 0)
			settings_defaults(&s);
	}
	out_begin(&o, enable ? "enabled" : "disabled");
	jsonw_kstr(&o.w, "mechanism", boot_mech_name(r.mech));
	jsonw_kbool(&o.w, "changed", r.changed);
	jsonw_kbool(&o.w, "dryRun", dry);
	if (r.mech == BOOT_SYSTEMD) {
		jsonw_kstr(&o.w, "unit", r.unit_name);
		jsonw_kstr(&o.w, "path", r.written);
		jsonw_kbool(&o.w, "linger", r.linger == 1);
		if (enable)
			jsonw_kstr(&o.w, "unitText", r.text);
	} else if (enable) {
		jsonw_kstr(&o.w, "crontabLine", r.text);
	}
	jsonw_kbool(&o.w, "killUserProcesses", r.kill_user_processes);
	if (r.mech == BOOT_SYSTEMD && r.linger != 1 && enable) {
		char msg[512];
		fmt_n(msg, sizeof msg, "linger is off for this user: the user manager, and with "
		    "it the server, starts only at login and stops at logout; an administrator "
		    "runs: %s", r.hint);
		out_warn(&o, msg);
	}
	if (r.kill_user_processes)
		out_warn(&o, "logind has KillUserProcesses=yes: a detached supervisor is killed "
		    "at logout (setsid does not help); use the systemd unit with linger");
	jsonw_kstr(&o.w, "home", h.root);
	out_common(&o, &h, &s);
	return out_end(&o);
}
