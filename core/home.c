/* home.c -- see home.h. */
#include "core/home.h"
#include "core/base/fmt.h"
#include "core/base/fsutil.h"
#include "core/sockprep.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int
join(char *out, const char *a, const char *b, struct err *e)
{
	int n = fmt_n(out, HOME_PATH_MAX, "%s/%s", a, b);

	if (n < 0 || n >= HOME_PATH_MAX)
		return err_set(e, ERR_IO, "path too long: %s/%s", a, b);
	return 0;
}

int
home_resolve(struct home *h, struct err *e)
{
	const char *env = getenv("APPD_HOME");
	char raw[HOME_PATH_MAX];
	size_t n;

	if (env != NULL && env[0] != '\0') {
		if (str_copy(raw, sizeof raw, env) < 0)
			return err_set(e, ERR_IO, "APPD_HOME is too long");
	} else {
		const char *home = getenv("HOME");
		if (home == NULL || home[0] == '\0')
			return err_set(e, ERR_USAGE, "neither APPD_HOME nor HOME is set");
		if (fmt_n(raw, sizeof raw, "%s/.appd", home) >= (int)sizeof raw)
			return err_set(e, ERR_IO, "HOME is too long");
	}
	if (raw[0] != '/') {
		char cwd[HOME_PATH_MAX];
		if (getcwd(cwd, sizeof cwd) == NULL)
			return err_sys(e, ERR_IO, "cannot resolve relative APPD_HOME");
		if (join(h->root, cwd, raw, e) < 0)
			return -1;
	} else if (str_copy(h->root, sizeof h->root, raw) < 0) {
		return err_set(e, ERR_IO, "APPD_HOME is longer than %d bytes", HOME_PATH_MAX - 1);
	}
	n = strlen(h->root);
	while (n > 1 && h->root[n - 1] == '/')
		h->root[--n] = '\0';
	if (join(h->state, h->root, "state", e) < 0 ||
	    join(h->run, h->root, "run", e) < 0 ||
	    join(h->packages, h->root, "packages", e) < 0 ||
	    join(h->current, h->packages, "current", e) < 0 ||
	    join(h->settings, h->root, "settings.json", e) < 0 ||
	    join(h->daemon_lock, h->state, "daemon.lock", e) < 0 ||
	    join(h->sup_pid, h->state, "supervisor.pid", e) < 0 ||
	    join(h->srv_pid, h->state, "app-server.pid", e) < 0 ||
	    join(h->status, h->state, "status.json", e) < 0 ||
	    join(h->srv_log, h->state, "app-server.log", e) < 0 ||
	    join(h->sup_log, h->state, "supervisor.log", e) < 0 ||
	    join(h->socket, h->run, "app-server.sock", e) < 0 ||
	    join(h->startup_lock, h->run, "startup.lock", e) < 0 ||
	    join(h->notify_sock, h->run, "notify.sock", e) < 0 ||
	    join(h->ctl_sock, h->run, "supervisor.sock", e) < 0 ||
	    join(h->anchor, h->state, "listener.sock", e) < 0)
		return -1;
	return 0;
}

int
home_prepare(const struct home *h, struct err *e)
{
	/* a control socket path that cannot be bound is refused before
	 * anything is created */
	if (sock_path_check(h->socket, e) < 0)
		return -1;
	if (fs_private_dir(h->root, e) < 0 || fs_private_dir(h->state, e) < 0 ||
	    fs_private_dir(h->run, e) < 0)
		return -1;
	return 0;
}

int
home_check(const struct home *h, struct err *e)
{
	if (fs_check_private_dir(h->root, 1, e) < 0 ||
	    fs_check_private_dir(h->state, 1, e) < 0 ||
	    fs_check_private_dir(h->run, 1, e) < 0)
		return -1;
	return 0;
}

int
home_read_only(const struct home *h)
{
	if (access(h->state, W_OK) == 0)
		return 0;
	return errno == EROFS || errno == EPERM || errno == EACCES ? errno : 0;
}
