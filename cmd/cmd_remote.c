/*
 * cmd_remote.c -- `enable-remote-control` / `disable-remote-control`
 * (seed-contract.md §1.6): persist remoteControlEnabled first (under the
 * lifecycle lock, read-modify-write: other keys survive), then restart a
 * running managed server so the change takes effect, and wait until it is
 * ready.  A server on the socket that appd does not manage is refused.
 */
#include "cmd/appd.h"
#include "core/base/fsutil.h"
#include "core/lock.h"
#include "platform/proc.h"

#include <errno.h>
#include <signal.h>
#include <string.h>

int
cmd_remote_control(int argc, char **argv, int enable)
{
	struct home h;
	struct settings s;
	struct pid_record sup;
	struct sup_status st;
	struct err e;
	struct out o;
	const char *status;
	int lock_timeout = LOCK_TIMEOUT_DEFAULT_S, timeout = 0, lock, managed, i, r;

	err_clear(&e);
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--lock-timeout") == 0) {
			if (arg_seconds("--lock-timeout", i + 1 < argc ? argv[++i] : NULL, 0, 3600,
			    &lock_timeout, &e) < 0)
				return out_fail(&e);
		} else if (strcmp(argv[i], "--timeout") == 0) {
			if (arg_seconds("--timeout", i + 1 < argc ? argv[++i] : NULL, 1, 3600,
			    &timeout, &e) < 0)
				return out_fail(&e);
		} else {
			err_set(&e, ERR_USAGE, "unknown argument \"%s\" to %s", argv[i], argv[0]);
			return out_fail(&e);
		}
	}
	if (cmd_home(&h, 1, &e) < 0)
		return out_fail(&e);
	lock = cmd_lock(&h, argv[0], lock_timeout, &e);
	if (lock < 0)
		return out_fail(&e);
	if (settings_load(h.settings, &s, &e) < 0)
		return out_fail(&e);
	if (timeout == 0)
		timeout = s.ready_timeout_s;
	if ((r = lc_unmanaged(&h, &e)) != 0) {
		if (r > 0)
			err_unmanaged(&h, &e);
		return out_fail(&e);
	}
	managed = lc_supervisor(&h, &sup, &e);
	if (managed < 0)
		return out_fail(&e);
	st.app_server_version[0] = '\0';
	if (s.remote_control == enable) {
		status = enable ? "alreadyEnabled" : "alreadyDisabled";
		if (managed && lc_wait_ready(&h, &sup, 0, -1, timeout * 1000, &st, &e) < 0)
			return err_managed(&e, &h, &s), out_fail(&e);
	} else {
		status = enable ? "enabled" : "disabled";
		if (settings_set(h.settings, "remoteControlEnabled", enable ? "true" : "false", &e) < 0)
			return out_fail(&e);
		/* the supervisor re-reads settings on HUP and restarts the
		 * server with the new flag, socket kept */
		if (managed && lc_restart_in_place(&h, &sup, s.grace_s, timeout, &st, &e) < 0)
			return err_managed(&e, &h, &s), out_fail(&e);
	}
	lock_release(lock);
	out_begin(&o, status);
	if (managed)
		jsonw_kstr(&o.w, "backend", "pid");
	jsonw_kbool(&o.w, "remoteControlEnabled", enable);
	out_common(&o, &h, &s);
	if (managed)
		out_server_version(&o, st.app_server_version);
	return out_end(&o);
}
