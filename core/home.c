/* home.c -- see home.h. */
#include "core/home.h"
#include "core/base/fmt.h"
#include "core/base/fsutil.h"
#include "core/base/jsonr.h"
#include "core/base/jsonw.h"
#include "core/sockprep.h"
#include "platform/compat.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* "a/b" appended to h->store, *out pointing at it. */
static int
join(struct home *h, const char **out, const char *a, const char *b, struct err *e)
{
	size_t room = sizeof h->store - h->used;
	int n = fmt_n(h->store + h->used, room < HOME_PATH_MAX ? room : HOME_PATH_MAX,
	    "%s/%s", a, b);

	if (n < 0 || n >= HOME_PATH_MAX || (size_t)n >= room)
		return err_set(e, ERR_IO, "path too long: %s/%s", a, b);
	*out = h->store + h->used;
	h->used += (unsigned)n + 1;
	return 0;
}

const char *
home_hostname(void)
{
	static char name[HOME_HOSTNAME_MAX] COMPAT_RESIDENT;

	if (name[0] == '\0' && (gethostname(name, sizeof name - 1) < 0 || name[0] == '\0'))
		str_copy(name, sizeof name, "localhost");
	name[sizeof name - 1] = '\0';
	return name;
}

const char *
home_machine_id(void)
{
	static char id[MACHINE_ID_MAX] COMPAT_RESIDENT;

	if (id[0] == '\0' && machineid_system(id) != 1) {
		char n[MACHINE_ID_MAX - 8];
		size_t k = 0;

		/* a machine id must be one token: the hostname's safe bytes */
		for (const char *p = home_hostname(); *p && k < sizeof n - 1; p++)
			n[k++] = (*p > 0x20 && *p < 0x7f && *p != '/') ? *p : '_';
		n[k] = '\0';
		fmt_n(id, sizeof id, "host-%s", n);
	}
	return id;
}

static int home_paths(struct home *h, struct err *e);

/* host.json's machine id into h->owner ("" when there is none). */
static void
read_owner(struct home *h)
{
	char buf[1024];
	jsmntok_t tok[16];
	struct jsonr r;
	size_t len;

	h->owner[0] = '\0';
	if (fs_read_file(h->host_file, buf, sizeof buf, &len) < 0 ||
	    jsonr_parse(&r, buf, len, tok, 16) < 0 ||
	    jsonr_str(&r, jsonr_get(&r, 0, "machineId"), h->owner, sizeof h->owner) < 0)
		h->owner[0] = '\0';
}

/* state/ and run/: this host's (see home.h). */
static int
host_dirs(struct home *h, struct err *e)
{
	const char *mine;

	h->used = h->root_end;
	str_copy(h->machine, sizeof h->machine, home_machine_id());
	str_copy(h->hostname, sizeof h->hostname, home_hostname());
	if (join(h, &h->host_file, h->root, "host.json", e) < 0 ||
	    join(h, &h->hosts, h->root, "hosts", e) < 0)
		return -1;
	read_owner(h);
	h->per_host = h->owner[0] != '\0' && strcmp(h->owner, h->machine) != 0;
	if (!h->per_host)
		return join(h, &h->state, h->root, "state", e) < 0 ||
		    join(h, &h->run, h->root, "run", e) < 0 ? -1 : 0;
	if (join(h, &mine, h->hosts, h->machine, e) < 0 ||
	    join(h, &h->state, mine, "state", e) < 0 ||
	    join(h, &h->run, mine, "run", e) < 0)
		return -1;
	return 0;
}

struct user_scratch {
	char path[HOME_PATH_MAX + 32], buf[4096], m[MACHINE_ID_MAX], n[HOME_HOSTNAME_MAX];
	jsmntok_t tok[128];
};

/* The machine (and host name) whose records are in the shared state/:
 * supervisor.pid's machineId, status.json's hostname.  Left as they are
 * when there is none. */
static void
state_user(const struct home *h, char *who, size_t wcap, char *name, size_t ncap)
{
	/* mapped for the call: the supervisor claims its home, and 7 KB of
	 * stack there would stay resident in it */
	struct user_scratch *u = compat_map(sizeof *u);
	struct jsonr r;
	size_t len;

	if (u == NULL)
		return;
	fmt_n(u->path, sizeof u->path, "%s/state/supervisor.pid", h->root);
	if (fs_read_file(u->path, u->buf, sizeof u->buf, &len) < 0 ||
	    jsonr_parse(&r, u->buf, len, u->tok, 128) < 0 ||
	    jsonr_str(&r, jsonr_get(&r, 0, "machineId"), u->m, sizeof u->m) < 0 ||
	    u->m[0] == '\0' || strcmp(u->m, h->machine) == 0)
		goto out;
	str_copy(who, wcap, u->m);
	name[0] = '\0';
	fmt_n(u->path, sizeof u->path, "%s/state/status.json", h->root);
	if (fs_read_file(u->path, u->buf, sizeof u->buf, &len) == 0 &&
	    jsonr_parse(&r, u->buf, len, u->tok, 128) == 0 &&
	    jsonr_str(&r, jsonr_get(&r, 0, "machineId"), u->m, sizeof u->m) == 0 &&
	    strcmp(u->m, who) == 0 &&
	    jsonr_str(&r, jsonr_get(&r, 0, "hostname"), u->n, sizeof u->n) == 0)
		str_copy(name, ncap, u->n);
out:
	compat_unmap(u, sizeof *u);
}

/* Name this host the owner of a home that has no host.json: written to a
 * temporary file and linked into place, so that of two hosts claiming at
 * once exactly one wins (link(2) fails with EEXIST for the other, on NFS
 * too); the loser re-reads and uses its per-host directories. */
static int
claim(struct home *h, struct err *e)
{
	char tmp[HOME_PATH_MAX + 32], buf[1024];
	struct jsonw w;
	int rc;

	char who[MACHINE_ID_MAX], name[HOME_HOSTNAME_MAX];

	if (h->owner[0] != '\0')
		return 0;
	/* state/ already in use by another machine (a home of an older appd,
	 * or host.json removed): that machine owns it, not us */
	str_copy(who, sizeof who, h->machine);
	str_copy(name, sizeof name, h->hostname);
	state_user(h, who, sizeof who, name, sizeof name);
	jsonw_init(&w, buf, sizeof buf - 1);
	jsonw_obj_begin(&w);
	jsonw_kstr(&w, "machineId", who);
	jsonw_kstr(&w, "hostname", name);
	jsonw_obj_end(&w);
	if (jsonw_finish(&w) < 0)
		return err_set(e, ERR_IO, "host name too long");
	buf[w.len] = '\n';
	fmt_n(tmp, sizeof tmp, "%s.%ld.tmp", h->host_file, (long)getpid());
	if (fs_write_atomic(tmp, buf, w.len + 1, 0600) < 0) {
		/* a home that cannot be written (read-only, immutable) is used
		 * as it is: `stop` must still work there */
		if (errno == EROFS || errno == EPERM || errno == EACCES)
			return 0;
		return err_sys(e, ERR_IO, "cannot write %s", tmp);
	}
	rc = link(tmp, h->host_file);
	if (rc < 0 && errno != EEXIST) {
		int en = errno;
		unlink(tmp);
		errno = en;
		return err_sys(e, ERR_IO, "cannot create %s", h->host_file);
	}
	unlink(tmp);
	if (host_dirs(h, e) < 0)
		return -1;
	/* the paths under state/ and run/ follow */
	return 1;
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
	h->used = 0;
	if (raw[0] != '/') {
		char cwd[HOME_PATH_MAX];
		if (getcwd(cwd, sizeof cwd) == NULL)
			return err_sys(e, ERR_IO, "cannot resolve relative APPD_HOME");
		if (join(h, &h->root, cwd, raw, e) < 0)
			return -1;
	} else {
		if (str_copy(h->store, HOME_PATH_MAX, raw) < 0)
			return err_set(e, ERR_IO, "APPD_HOME is longer than %d bytes", HOME_PATH_MAX - 1);
		h->root = h->store;
		h->used = (unsigned)strlen(raw) + 1;
	}
	n = strlen(h->root);
	while (n > 1 && h->store[n - 1] == '/')
		h->store[--n] = '\0';
	h->root_end = h->used;
	if (host_dirs(h, e) < 0)
		return -1;
	return home_paths(h, e);
}

/* Every path under state/, run/ and the shared parts. */
static int
home_paths(struct home *h, struct err *e)
{
	if (join(h, &h->packages, h->root, "packages", e) < 0 ||
	    join(h, &h->current, h->packages, "current", e) < 0 ||
	    join(h, &h->settings, h->root, "settings.json", e) < 0 ||
	    join(h, &h->daemon_lock, h->state, "daemon.lock", e) < 0 ||
	    join(h, &h->sup_pid, h->state, "supervisor.pid", e) < 0 ||
	    join(h, &h->srv_pid, h->state, "app-server.pid", e) < 0 ||
	    join(h, &h->status, h->state, "status.json", e) < 0 ||
	    join(h, &h->srv_log, h->state, "app-server.log", e) < 0 ||
	    join(h, &h->sup_log, h->state, "supervisor.log", e) < 0 ||
	    join(h, &h->socket, h->run, "app-server.sock", e) < 0 ||
	    join(h, &h->startup_lock, h->run, "startup.lock", e) < 0 ||
	    join(h, &h->notify_sock, h->run, "notify.sock", e) < 0 ||
	    join(h, &h->ctl_sock, h->run, "supervisor.sock", e) < 0 ||
	    join(h, &h->anchor, h->state, "listener.sock", e) < 0)
		return -1;
	return 0;
}

int
home_claim(struct home *h, struct err *e)
{
	int c;

	if (h->owner[0] != '\0')
		return 0;
	/* nothing is created for a home whose socket path cannot be bound */
	if (sock_path_check(h->socket, e) < 0 || fs_private_dir(h->root, e) < 0)
		return -1;
	if ((c = claim(h, e)) < 0 || (c == 1 && home_paths(h, e) < 0))
		return -1;
	return 0;
}

int
home_prepare(const struct home *h, struct err *e)
{
	/* a control socket path that cannot be bound is refused before
	 * anything more is created */
	if (sock_path_check(h->socket, e) < 0)
		return -1;
	if (fs_private_dir(h->root, e) < 0)
		return -1;
	if (h->per_host) {
		/* state/'s parent: hosts/<machine> */
		char mine[HOME_PATH_MAX];
		size_t n = strlen(h->state) - strlen("/state");
		if (fs_private_dir(h->hosts, e) < 0)
			return -1;
		memcpy(mine, h->state, n);
		mine[n] = '\0';
		if (fs_private_dir(mine, e) < 0)
			return -1;
	}
	if (fs_private_dir(h->state, e) < 0 || fs_private_dir(h->run, e) < 0)
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
