/* boot.c -- see boot.h. */
#include "core/boot.h"
#include "core/base/fmt.h"
#include "core/base/fsutil.h"
#include "core/base/hex.h"
#include "core/childrun.h"
#include "core/update/sig.h"

#include <dirent.h>
#include <errno.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define TOOL_TIMEOUT_MS 10000
#define CRON_MAX 65536

const char *
boot_mech_name(enum boot_mech m)
{
	return m == BOOT_SYSTEMD ? "systemd" : m == BOOT_CRON ? "cron" : "auto";
}

/* `name` found in $PATH into `out`.  0 or -1. */
static int
which(const char *name, char *out, size_t cap)
{
	const char *p = getenv("PATH");

	if (p == NULL || *p == '\0')
		p = "/usr/local/bin:/usr/bin:/bin";
	while (*p) {
		size_t n = strcspn(p, ":");
		if (n > 0 && fmt_n(out, cap, "%.*s/%s", (int)n, p, name) < (int)cap &&
		    access(out, X_OK) == 0)
			return 0;
		p += n + (p[n] == ':');
	}
	return -1;
}

/* Run argv (argv[0] looked up in PATH); its stdout into out.  The exit
 * status (0..255, 256 for a signal or timeout), or -1 with `e`. */
static int
run_tool(const char *const *argv, char *out, size_t cap, struct err *e)
{
	static struct childrun c;
	char path[512];
	const char *av[8];
	int i;

	if (which(argv[0], path, sizeof path) < 0)
		return err_set(e, ERR_IO, "%s not found in PATH", argv[0]);
	av[0] = path;
	for (i = 1; argv[i] != NULL && i < 7; i++)
		av[i] = argv[i];
	av[i] = NULL;
	if (childrun_sync(&c, childrun_exec, (void *)av, out, cap - 1, TOOL_TIMEOUT_MS, e) < 0)
		return -1;
	out[c.len] = '\0';
	/* a crontab longer than the buffer would be written back cut */
	if (c.truncated)
		return err_set(e, ERR_IO, "the output of %s is longer than %zu bytes; nothing "
		    "was changed", argv[0], cap - 1);
	if (c.timed_out || !c.exited || !WIFEXITED(c.status))
		return 256;
	return WEXITSTATUS(c.status);
}

static const char *
user_name(void)
{
	struct passwd *pw = getpwuid(geteuid());

	return pw != NULL && pw->pw_name != NULL ? pw->pw_name : "";
}

/* logind's KillUserProcesses: the last assignment wins (logind.conf(5)). */
static void
scan_logind(const char *path, int *val)
{
	char buf[16384];
	size_t len;
	const char *p;

	if (fs_read_file(path, buf, sizeof buf, &len) < 0)
		return;
	buf[len < sizeof buf ? len : sizeof buf - 1] = '\0';
	for (p = buf; p != NULL && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (strncmp(p, "KillUserProcesses=", 18) == 0)
			*val = strncmp(p + 18, "yes", 3) == 0 || strncmp(p + 18, "true", 4) == 0 ||
			    strncmp(p + 18, "1", 1) == 0 || strncmp(p + 18, "on", 2) == 0;
	}
}

static int
kill_user_processes(void)
{
	static const char *const dirs[] = { "/usr/lib/systemd/logind.conf.d",
		"/etc/systemd/logind.conf.d", "/run/systemd/logind.conf.d" };
	int val = 0;

	scan_logind("/etc/systemd/logind.conf", &val);
	for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
		DIR *d = opendir(dirs[i]);
		struct dirent *de;
		char path[512];

		if (d == NULL)
			continue;
		/* drop-ins in lexical order would need sorting; appd reads
		 * them in directory order, which only matters for conflicting
		 * drop-ins */
		while ((de = readdir(d)) != NULL) {
			size_t n = strlen(de->d_name);
			if (n > 5 && strcmp(de->d_name + n - 5, ".conf") == 0 &&
			    fmt_n(path, sizeof path, "%s/%s", dirs[i], de->d_name) < (int)sizeof path)
				scan_logind(path, &val);
		}
		closedir(d);
	}
	return val;
}

static int
user_manager_running(void)
{
	const char *rt = getenv("XDG_RUNTIME_DIR");
	char path[512];
	struct stat st;

	return rt != NULL && rt[0] == '/' &&
	    fmt_n(path, sizeof path, "%s/systemd/private", rt) < (int)sizeof path &&
	    stat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

static void
unit_name(const struct home *h, char *out, size_t cap)
{
	const char *hm = getenv("HOME");
	char def[HOME_PATH_MAX + 8];
	unsigned char d[SIG_SHA256_LEN];
	char hex[2 * SIG_SHA256_LEN + 1];

	if (hm != NULL && fmt_n(def, sizeof def, "%s/.appd", hm) < (int)sizeof def &&
	    strcmp(def, h->root) == 0) {
		str_copy(out, cap, "appd");
		return;
	}
	sig_sha256(h->root, strlen(h->root), d);
	hex_encode(d, sizeof d, hex);
	fmt_n(out, cap, "appd-%.8s", hex);
}

/* mkdir -p with `mode` for what is created. */
static int
mkdir_p(const char *path, mode_t mode)
{
	char buf[HOME_PATH_MAX];

	if (str_copy(buf, sizeof buf, path) < 0)
		return -1;
	for (char *q = buf + 1; ; q++) {
		if (*q == '/' || *q == '\0') {
			char c = *q;
			*q = '\0';
			if (mkdir(buf, mode) < 0 && errno != EEXIST)
				return -1;
			*q = c;
			if (c == '\0')
				return 0;
		}
	}
}

/* ---- systemd ---- */

static int
systemd_apply(const struct home *h, const char *appd, int enable, int dry_run,
    struct boot_result *r, struct err *e)
{
	const char *cfg = getenv("XDG_CONFIG_HOME"), *hm = getenv("HOME");
	char dir[HOME_PATH_MAX], out[4096], unit[80], lp[300];
	char old[2048];
	size_t olen = 0;
	int have, rc;

	if (cfg != NULL && cfg[0] == '/')
		fmt_n(dir, sizeof dir, "%s/systemd/user", cfg);
	else if (hm != NULL && hm[0] == '/')
		fmt_n(dir, sizeof dir, "%s/.config/systemd/user", hm);
	else
		return err_set(e, ERR_USAGE, "neither XDG_CONFIG_HOME nor HOME is set");
	fmt_n(unit, sizeof unit, "%s.service", r->unit_name);
	fmt_n(r->written, sizeof r->written, "%s/%s", dir, unit);
	fmt_n(r->text, sizeof r->text,
	    "# written by appd enable-boot; removed by appd disable-boot\n"
	    "[Unit]\n"
	    "Description=app-server supervised by appd (%s)\n"
	    "\n"
	    "[Service]\n"
	    "Type=notify\n"
	    "NotifyAccess=main\n"
	    "Environment=\"APPD_HOME=%s\"\n"
	    "ExecStart=\"%s\" run\n"
	    "ExecStop=\"%s\" stop\n"
	    "Restart=on-failure\n"
	    "RestartSec=2\n"
	    "TimeoutStopSec=330\n"
	    "\n"
	    "[Install]\n"
	    "WantedBy=default.target\n", h->root, h->root, appd, appd);
	fmt_n(lp, sizeof lp, "/var/lib/systemd/linger/%s", user_name());
	r->linger = access(lp, F_OK) == 0;
	if (!r->linger)
		fmt_n(r->hint, sizeof r->hint, "loginctl enable-linger %s", user_name());
	have = fs_read_file(r->written, old, sizeof old, &olen) == 0;
	if (enable)
		r->changed = !have || olen != strlen(r->text) || memcmp(old, r->text, olen) != 0;
	else
		r->changed = have;
	if (dry_run)
		return 0;
	if (!user_manager_running())
		return err_set(e, ERR_IO, "no systemd user manager runs for this user "
		    "($XDG_RUNTIME_DIR/systemd/private is not a socket): nothing was written; "
		    "use --mechanism cron, or log in with a systemd session");
	if (enable) {
		if (r->changed && (mkdir_p(dir, 0700) < 0 ||
		    fs_write_atomic(r->written, r->text, strlen(r->text), 0644) < 0))
			return err_sys(e, ERR_IO, "cannot write %s", r->written);
	} else if (have && unlink(r->written) < 0) {
		return err_sys(e, ERR_IO, "cannot remove %s", r->written);
	}
	{
		const char *reload[] = { "systemctl", "--user", "daemon-reload", NULL };
		const char *en[] = { "systemctl", "--user", enable ? "enable" : "disable", unit, NULL };
		if ((rc = run_tool(reload, out, sizeof out, e)) != 0 ||
		    (rc = run_tool(en, out, sizeof out, e)) != 0) {
			if (rc > 0)
				err_set(e, ERR_IO, "systemctl --user failed (status %d): %.300s", rc, out);
			return -1;
		}
	}
	return 0;
}

/* ---- cron ---- */

static int
cron_apply(const struct home *h, const char *appd, int enable, int dry_run,
    struct boot_result *r, struct err *e)
{
	static char cur[CRON_MAX], next[CRON_MAX + 2048];
	char marker[HOME_PATH_MAX + 32], tmp[HOME_PATH_MAX + 32];
	const char *list[] = { "crontab", "-l", NULL };
	size_t n = 0;
	const char *p;
	int rc, found = 0;

	if (strpbrk(h->root, "'\n%") != NULL || strpbrk(appd, "'\n%") != NULL)
		return err_set(e, ERR_USAGE, "the home or appd path holds a quote, %% or a newline "
		    "and cannot go into a crontab line");
	fmt_n(marker, sizeof marker, "# appd-boot %s", h->root);
	fmt_n(r->text, sizeof r->text, "@reboot APPD_HOME='%s' '%s' start >/dev/null 2>&1 %s",
	    h->root, appd, marker);
	str_copy(r->written, sizeof r->written, "crontab");
	r->linger = -1;
	rc = run_tool(list, cur, sizeof cur, e);
	if (rc < 0)
		return -1;
	if (rc != 0)
		cur[0] = '\0';          /* "no crontab for <user>" */
	/* every line but ours, then ours when enabling */
	for (p = cur; *p; ) {
		size_t l = strcspn(p, "\n");
		int ours = l >= strlen(marker) &&
		    memcmp(p + l - strlen(marker), marker, strlen(marker)) == 0;

		if (ours) {
			found = 1;
			if (enable && (l != strlen(r->text) || memcmp(p, r->text, l) != 0))
				found = 2;      /* ours, but stale: rewritten */
		} else if (n + l + 1 < sizeof next) {
			memcpy(next + n, p, l);
			next[n + l] = '\n';
			n += l + 1;
		}
		p += l + (p[l] == '\n');
	}
	r->changed = enable ? found != 1 : found != 0;
	if (dry_run || !r->changed)
		return 0;
	if (enable)
		n += (size_t)fmt_n(next + n, sizeof next - n, "%s\n", r->text);
	fmt_n(tmp, sizeof tmp, "%s/crontab.%ld.tmp", h->state, (long)getpid());
	if (fs_write_atomic(tmp, next, n, 0600) < 0)
		return err_sys(e, ERR_IO, "cannot write %s", tmp);
	{
		const char *inst[] = { "crontab", tmp, NULL };
		char out[1024];
		rc = run_tool(inst, out, sizeof out, e);
		unlink(tmp);
		if (rc != 0) {
			if (rc > 0)
				err_set(e, ERR_IO, "crontab %s failed (status %d)", tmp, rc);
			return -1;
		}
	}
	return 0;
}

int
boot_apply(const struct home *h, const char *appd, enum boot_mech want, int enable,
    int dry_run, struct boot_result *r, struct err *e)
{
	memset(r, 0, sizeof *r);
	r->kill_user_processes = kill_user_processes();
	unit_name(h, r->unit_name, sizeof r->unit_name);
	r->mech = want != BOOT_AUTO ? want : user_manager_running() ? BOOT_SYSTEMD : BOOT_CRON;
	if (r->mech == BOOT_SYSTEMD)
		return systemd_apply(h, appd, enable, dry_run, r, e);
	return cron_apply(h, appd, enable, dry_run, r, e);
}
