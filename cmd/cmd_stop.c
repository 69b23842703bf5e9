/* cmd_stop.c -- `appd stop`: works even when settings.json is unreadable
 * (defaults, with a warning), as the seed's load_for_stop does. */
#include "cmd/appd.h"
#include "core/base/fmt.h"
#include "core/lock.h"
#include "core/status.h"
#include "core/unmanaged.h"

#include <stdio.h>
#include <errno.h>
#include <string.h>

int
cmd_stop(int argc, char **argv)
{
	struct home h;
	struct settings s;
	struct err e, se;
	struct out o;
	int grace = -1, lock_timeout = LOCK_TIMEOUT_DEFAULT_S, lock, stopped, i, explicit_grace, ro;
	int unmanaged = 0;

	err_clear(&e);
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--grace") == 0) {
			if (arg_seconds("--grace", i + 1 < argc ? argv[++i] : NULL, 0, 300, &grace, &e) < 0)
				return out_fail(&e);
		} else if (strcmp(argv[i], "--unmanaged") == 0) {
			unmanaged = 1;
		} else if (strcmp(argv[i], "--lock-timeout") == 0) {
			if (arg_seconds("--lock-timeout", i + 1 < argc ? argv[++i] : NULL, 0, 3600,
			    &lock_timeout, &e) < 0)
				return out_fail(&e);
		} else {
			err_set(&e, ERR_USAGE, "unknown argument \"%s\" to stop", argv[i]);
			return out_fail(&e);
		}
	}
	if (cmd_home(&h, 1, &e) < 0)
		return out_fail(&e);
	lock = cmd_lock(&h, "stop", lock_timeout, &e);
	if (lock < 0)
		return out_fail(&e);
	err_clear(&se);
	out_begin(&o, "stopped");
	if (settings_load(h.settings, &s, &se) < 0) {
		char msg[1100];
		settings_defaults(&s);
		fmt_n(msg, sizeof msg, "%.900s; stopping with default settings", se.msg);
		out_warn(&o, msg);
	}
	{
		/* the running supervisor's own word on its host */
		struct sup_status st;
		struct err fe;
		err_clear(&fe);
		if (status_read(h.status, &st, &fe) == 0 && st.no_subreaper)
			out_warn(&o, STATUS_NO_SUBREAPER_WARNING);
	}
	if ((ro = home_read_only(&h)) != 0) {
		char msg[300];
		fmt_n(msg, sizeof msg, "%s: the tree is stopped, but no state file could "
		    "be updated (stale records are judged by process identity, so "
		    "nothing is lost)", ro == EROFS ? "the home is on a read-only file "
		    "system" : "the home's state directory cannot be written (it is "
		    "immutable or not ours)");
		out_warn(&o, msg);
	}
	explicit_grace = grace >= 0;
	if (grace < 0)
		grace = s.grace_s;
	if (lc_stop(&h, grace, explicit_grace, &stopped, &e) < 0)
		return out_fail(&e);
	if (!stopped && lc_unmanaged(&h, &e) == 1) {
		const struct unmanaged *u = cmd_unmanaged(&h);
		int killed;

		if (!unmanaged || u == NULL)
			return err_unmanaged(&h, &e), out_fail(&e);
		if (lc_stop_unmanaged(&h, u, grace, &killed, &e) < 0)
			return out_fail(&e);
		lock_release(lock);
		jsonw_key(&o.w, "unmanaged");
		jsonw_raw(&o.w, u->json, strlen(u->json));
		jsonw_kbool(&o.w, "killed", killed);
		out_common(&o, &h, &s);
		return out_end(&o);
	}
	lock_release(lock);
	if (!stopped) {
		struct out o2;
		out_begin(&o2, "notRunning");
		memcpy(o2.warnings, o.warnings, sizeof o.warnings);
		o2.nwarn = o.nwarn;
		out_common(&o2, &h, &s);
		return out_end(&o2);
	}
	jsonw_kstr(&o.w, "backend", "pid");
	out_common(&o, &h, &s);
	return out_end(&o);
}
