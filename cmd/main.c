/*
 * main.c -- `appd <command>`: dispatch, usage, and the exit statuses of
 * README.md.  Every command prints exactly one JSON object on stdout
 * (except `logs`, `supervise` and `--version`).
 */
#include "cmd/appd.h"
#include "platform/target.h"
#include "core/base/fmt.h"
#include "core/base/fsutil.h"

#include <stdio.h>
#include <string.h>

static const char usage_text[] =
	"usage: appd <command> [options]\n"
	"\n"
	"  start [--timeout S] [--lock-timeout S] [-- CMD ARGS...]\n"
	"                       start the server (idempotent); returns once it is ready\n"
	"  stop [--grace S] [--lock-timeout S] [--unmanaged]\n"
	"                       stop the server tree and the supervisor; --unmanaged:\n"
	"                       the server of this user that appd does not manage\n"
	"  restart [--timeout S] [--lock-timeout S]\n"
	"                       restart the server (in place when the supervisor is healthy)\n"
	"  run [--notification-fd N] [--timeout S] [-- CMD ARGS...]\n"
	"                       supervise in the foreground (systemd, s6, runit, PID 1)\n"
	"  enable-boot / disable-boot [--mechanism systemd|cron] [--dry-run]\n"
	"                       start the server at boot (systemd user unit or @reboot)\n"
	"  with [--ready SPEC] [--timeout S] [--check-timeout S] [--home DIR] [--keep]\n"
	"       [--allow-restarts] -- SERVER ARGS... -- CHECK ARGS...\n"
	"                       CI: start a server, run CHECK, always stop it\n"
	"  status               what runs, its readiness, restarts and liveness\n"
	"  version              probe the running server\n"
	"  enable-remote-control / disable-remote-control\n"
	"                       persist the flag; restart a running managed server\n"
	"  bootstrap [--remote-control] --manifest-url URL --public-key HEX\n"
	"          [--public-key HEX] [--ca-file PEM] [--fetch-timeout S] [--timeout S]\n"
	"          [--replace-unmanaged]\n"
	"                       install the latest signed release, start it, updates on\n"
	"  update [--check] [--fetch-timeout S] [--timeout S]\n"
	"                       check for (and install) a new release now\n"
	"  logs [--lines N]     tail of the server log (plain text)\n"
	"  release keygen --out KEY | release sign --key KEY --version V --serial S\n"
	"          --expires T [--rollout P] --artifact NAME=URL@FILE... --out DIR\n"
	"                       publisher: make a key, write a signed manifest\n"
	"  proxy [--start]      relay stdin/stdout to the control socket (JSON only on failure)\n"
	"\n"
	"Home: $APPD_HOME (default $HOME/.appd).  Output: one JSON object.\n"
	"Exit: 0 ok, 1 error, 2 usage, 3 busy, 4 not running, 5 unmanaged server or\n"
	"socket in use, 6 not ready, 7 update rejected, 8 (with) the server failed\n"
	"while the check passed, 124 (with) the check timed out.\n";

int
main(int argc, char **argv)
{
	static struct err e;
	const char *cmd = argc > 1 ? argv[1] : "";

	(void)fd_std_open();
	if (strcmp(cmd, "start") == 0)
		return cmd_start(argc - 1, argv + 1);
	if (strcmp(cmd, "stop") == 0)
		return cmd_stop(argc - 1, argv + 1);
	if (strcmp(cmd, "restart") == 0)
		return cmd_restart(argc - 1, argv + 1);
	if (strcmp(cmd, "status") == 0)
		return cmd_status(argc - 1, argv + 1);
	if (strcmp(cmd, "version") == 0)
		return cmd_version(argc - 1, argv + 1);
	if (strcmp(cmd, "enable-boot") == 0)
		return cmd_boot(argc - 1, argv + 1, 1);
	if (strcmp(cmd, "disable-boot") == 0)
		return cmd_boot(argc - 1, argv + 1, 0);
	if (strcmp(cmd, "with") == 0)
		return cmd_with(argc - 1, argv + 1);
	if (strcmp(cmd, "run") == 0)
		return cmd_run(argc - 1, argv + 1);
	if (strcmp(cmd, "supervise") == 0)
		return cmd_supervise(argc - 1, argv + 1);
	if (strcmp(cmd, "enable-remote-control") == 0)
		return cmd_remote_control(argc - 1, argv + 1, 1);
	if (strcmp(cmd, "disable-remote-control") == 0)
		return cmd_remote_control(argc - 1, argv + 1, 0);
	if (strcmp(cmd, "logs") == 0)
		return cmd_logs(argc - 1, argv + 1);
	if (strcmp(cmd, "release") == 0)
		return cmd_release(argc - 1, argv + 1);
	if (strcmp(cmd, "bootstrap") == 0)
		return cmd_bootstrap(argc - 1, argv + 1);
	if (strcmp(cmd, "update") == 0)
		return cmd_update(argc - 1, argv + 1);
	if (strcmp(cmd, "proxy") == 0)
		return cmd_proxy(argc - 1, argv + 1);
	if (strcmp(cmd, "--version") == 0) {
		fmt_fd(1, "appd %s %s\n", APPD_VERSION, APPD_TARGET);
		return 0;
	}
	if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
		fputs(usage_text, stdout);
		return 0;
	}
	err_clear(&e);
	if (cmd[0] == '\0')
		err_set(&e, ERR_USAGE, "no command given; try: appd help");
	else
		err_set(&e, ERR_USAGE, "unknown command \"%s\"; try: appd help", cmd);
	return out_fail(&e);
}
