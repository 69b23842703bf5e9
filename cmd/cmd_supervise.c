/* cmd_supervise.c -- `appd supervise` (internal): run the supervisor.
 * Launched detached by `start`; may also be run by hand, in which case it
 * claims state/supervisor.pid itself and refuses a second supervisor. */
#include "cmd/appd.h"
#include "core/base/scan.h"
#include "core/base/fmt.h"
#include "core/supervisor.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>

int
cmd_supervise(int argc, char **argv)
{
	struct sup_opts so = { -1, 0, 0, 0, -1, -1, -1, -1 };
	/* static: the supervisor's resident stack stays small */
	static struct home h;
	static struct err e;
	int i, rc;

	err_clear(&e);
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--ready-fd") == 0 && i + 1 < argc) {
			if (arg_seconds("--ready-fd", argv[++i], 3, 1023, &so.ready_fd, &e) < 0)
				return out_fail(&e);
			if (fcntl(so.ready_fd, F_SETFD, FD_CLOEXEC) < 0)
				so.ready_fd = -1;
		} else if (strcmp(argv[i], "--ready-timeout") == 0) {
			if (arg_seconds("--ready-timeout", i + 1 < argc ? argv[++i] : NULL, 1, 3600,
			    &so.ready_timeout_s, &e) < 0)
				return out_fail(&e);
		} else if (strcmp(argv[i], "--handover") == 0 && i + 1 < argc) {
			/* LISTENER,OUTPUT-READ,OUTPUT-WRITE[,CONTROL] (sup_refresh.c) */
			int *dst[] = { &so.h_lfd, &so.h_out_rd, &so.h_out_wr, &so.h_ctl };
			const char *p = argv[++i];
			int k;
			for (k = 0; k < 4; k++) {
				long long v;
				if ((k > 0 && scan_lit(&p, ",") < 0) || scan_ll(&p, &v) < 0 ||
				    v < -1 || v > 65535)
					break;
				*dst[k] = (int)v;
			}
			if (k < 3 || *p != '\0') {
				err_set(&e, ERR_USAGE, "bad --handover \"%s\"", argv[i]);
				return out_fail(&e);
			}
			so.handover = 1;
		} else if (strcmp(argv[i], "--reserved") == 0) {
			so.reserved = 1;
		} else {
			err_set(&e, ERR_USAGE, "unknown argument \"%s\" to supervise", argv[i]);
			return out_fail(&e);
		}
	}
	if (cmd_home(&h, 1, &e) < 0)
		return out_fail(&e);
	rc = supervisor_run(&h, &so, &e);
	if (rc != 0 && e.code != ERR_NONE)
		fmt_fd(2, "appd supervise: %s\n", e.msg);
	return rc;
}
