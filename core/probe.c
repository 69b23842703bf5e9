/* probe.c -- see probe.h. */
#include "core/probe.h"
#include "core/childrun.h"
#include "core/base/scan.h"
#include "core/base/fmt.h"
#include "core/update/install.h"
#include "core/version.h"
#include "platform/compat.h"
#include "core/base/fsutil.h"
#include "core/sockprep.h"
#include "core/net/wsprobe.h"
#include "platform/reactor.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define VERSION_RUN_TIMEOUT_MS 5000

struct cli_ws {
	struct reactor r;
	int done;
};

static void
ws_done(struct wsprobe *p, void *arg)
{
	struct cli_ws *c = arg;

	(void)p;
	c->done = 1;
	reactor_stop(&c->r);
}

int
probe_server(const struct home *h, const struct settings *s, char *version, size_t cap,
    struct err *e)
{
	static struct wsprobe ws;
	static struct cli_ws c;
	int p;

	version[0] = '\0';
	p = sock_probe(h->socket);
	if (p <= 0 || s->readiness != READY_CODEX_INIT)
		return p < 0 ? err_sys(e, ERR_NOT_RUNNING, "failed to connect to %s", h->socket) : p;
	memset(&c, 0, sizeof c);
	if (reactor_init(&c.r) < 0)
		return err_sys(e, ERR_IO, "cannot create the event loop");
	if (wsprobe_start(&ws, &c.r, h->socket, APPD_VERSION, WSPROBE_DEFAULT_TIMEOUT_MS,
	    ws_done, &c) < 0) {
		reactor_fini(&c.r);
		return err_set(e, ERR_NOT_RUNNING, "%s", ws.err.msg);
	}
	while (!c.done)
		if (reactor_run_once(&c.r, -1) < 0 && errno != EINTR)
			break;
	reactor_fini(&c.r);
	if (!ws.ok) {
		err_ctx_str(e, "socketPath", h->socket);
		return err_set(e, ERR_NOT_RUNNING, "%s", ws.err.msg);
	}
	str_fmt(version, cap, "%s", ws.version);
	return 1;
}

void
probe_version(const char *bin, char *out, size_t cap)
{
	static struct childrun c;
	char *const argv[] = { (char *)bin, (char *)"--version", NULL };
	char text[256], *tok, *save = NULL;
	struct err e;

	out[0] = '\0';
	err_clear(&e);
	if (access(bin, X_OK) < 0 ||
	    childrun_sync(&c, childrun_exec, (void *)argv, text, sizeof text - 1,
	    VERSION_RUN_TIMEOUT_MS, &e) < 0)
		return;
	if (c.timed_out || !c.exited || !WIFEXITED(c.status) || WEXITSTATUS(c.status) != 0)
		return;
	text[c.len] = '\0';
	/* "codex-cli 0.169.0" -> the second whitespace-separated token */
	if (strtok_r(text, " \t\r\n", &save) == NULL ||
	    (tok = strtok_r(NULL, " \t\r\n", &save)) == NULL)
		return;
	str_fmt(out, cap, "%s", tok);
}

/*
 * managedVersion costs a run of `<bin> --version` (13 ms for codex), so
 * it is cached in state/managed-version, keyed on the binary's identity
 * (device, inode, size, mtime of the resolved file): a new release is a
 * new file and misses the cache.  The cache is a hint, rewritten freely.
 */
static void
cached_version(const struct home *h, const char *bin, int cache_only, char *out, size_t cap)
{
	char path[HOME_PATH_MAX + 32], buf[256], key[128], ck[128], cv[64];
	const char *p;
	struct stat st;
	size_t len;

	out[0] = '\0';
	if (stat(bin, &st) < 0 || str_fmt(path, sizeof path, "%s/managed-version", h->state) < 0)
		return;
	fmt_n(key, sizeof key, "%llu:%llu:%lld:%lld", (unsigned long long)st.st_dev,
	    (unsigned long long)st.st_ino, (long long)st.st_size,
	    (long long)compat_mtime_ns(&st));
	if (fs_read_file(path, buf, sizeof buf, &len) == 0 && (p = buf, 1) &&
	    scan_word(&p, ck, sizeof ck) == 0 && scan_lit(&p, " ") == 0 &&
	    scan_word(&p, cv, sizeof cv) == 0 && strcmp(ck, key) == 0) {
		str_fmt(out, cap, "%s", cv);
		return;
	}
	if (cache_only)
		return;
	probe_version(bin, out, cap);
	if (out[0] != '\0' && fmt_n(buf, sizeof buf, "%s %s\n", key, out) < (int)sizeof buf)
		(void)fs_replace(path, buf, strlen(buf), 0600);
}

/* A managed binary under packages/current is an installed release:
 * its version is the release's. */
static void
release_version(const struct home *h, const struct settings *s, const char *bin,
    char *out, size_t cap)
{
	size_t n = strlen(h->current);
	struct err e;

	out[0] = '\0';
	err_clear(&e);
	if (strncmp(bin, h->current, n) == 0 && bin[n] == '/')
		(void)install_link_version(h->current, settings_str(s, s->upd.target), out, cap, &e);
}

const char *
probe_managed(const struct home *h, const struct settings *s, int cache_only,
    char *version, size_t cap)
{
	static char buf[16384];
	static char *argv[SETTINGS_MAX_ARGS + 1];
	struct err e;

	version[0] = '\0';
	err_clear(&e);
	if (settings_expand(s, h, buf, sizeof buf, argv, &e) < 0)
		return NULL;
	if (s->codex_profile)
		cached_version(h, argv[0], cache_only, version, cap);
	else
		release_version(h, s, argv[0], version, cap);
	return argv[0];
}
