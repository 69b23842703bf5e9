/* install.c -- see install.h. */
#include "core/update/install.h"
#include "core/base/entropy.h"
#include "platform/proc.h"
#include "core/base/fsutil.h"
#include "core/update/sig.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NAME_CAP 256           /* a single path component, NUL included */
#define RM_DEPTH 8             /* our layout is 3 levels deep */

enum { T_FILE, T_DIR, T_LINK };

/* [A-Za-z0-9._-]+, not "." or "..", not starting with '.' when `release`. */
static int
valid_name(const char *s, int release)
{
	size_t n = strlen(s);

	return n > 0 && n < NAME_CAP && strcmp(s, ".") != 0 && strcmp(s, "..") != 0 &&
	    !(release && s[0] == '.') &&
	    strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

static int
bad_name(struct err *e, const char *what, const char *s)
{
	errno = EINVAL;
	return err_set(e, ERR_IO, "invalid %s name \"%.64s\"", what, s);
}

static int
xopenat(int dfd, const char *path, int flags, mode_t mode)
{
	int fd;

	do
		fd = openat(dfd, path, flags | O_CLOEXEC, mode);
	while (fd < 0 && errno == EINTR);
	return fd;
}

/* Close `fd` (if >= 0), remove `path` (if set; recursively); keep errno. */
static void
drop(int fd, const char *path)
{
	int saved = errno;

	if (fd >= 0)
		close(fd);
	if (path)
		(void)fs_remove_tree(AT_FDCWD, path, RM_DEPTH);
	errno = saved;
}

/* Open `path` read-only with `flags`, fsync it, fchmod it when `mode`. */
static int
sync_path(const char *path, int flags, mode_t mode)
{
	int fd = xopenat(AT_FDCWD, path, O_RDONLY | flags, 0), r;

	if (fd < 0)
		return -1;
	do
		r = fsync(fd);
	while (r < 0 && errno == EINTR);
	if (r == 0 && mode)
		r = fchmod(fd, mode);
	drop(fd, NULL);
	return r;
}

#define sync_dir(path) sync_path((path), O_DIRECTORY, 0)

/* Create "<dir>/<prefix>-<pid>-<16 random hex>" as a file (returns the
 * fd), a 0755 directory or a symlink to `target` (returns 0); its path
 * goes to `path`. */
static int
tmp_make(const char *dir, const char *prefix, int kind, const char *target,
	 char *path, size_t cap)
{
	unsigned char rnd[8];
	char hex[17];
	int i, r;

	for (i = 0; i < 8; i++) {
		if (entropy_get(rnd, sizeof rnd, &(struct err){ 0 }) < 0)
			return -1;
		hex_encode(rnd, sizeof rnd, hex);
		if (str_fmt(path, cap, "%s/%s-%ld-%s", dir, prefix, (long)getpid(), hex) < 0)
			return -1;
		if (kind == T_FILE)
			r = xopenat(AT_FDCWD, path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
		else if (kind == T_DIR)
			r = mkdir(path, 0755);
		else
			r = symlink(target, path);
		if (r >= 0 || errno != EEXIST)
			return r;
	}
	return -1;
}

/* Remove a whole release (or any entry) so that nobody, not even a crash
 * half-way, sees it half-removed: rename it first to a leftover name,
 * ".rm-<pid>-<name>", which a later prune removes if we die (dead_leftover),
 * then remove that.  0, or -1/errno. */
static int
retire(int dfd, const char *name)
{
	char aside[NAME_CAP + 32];

	if (str_fmt(aside, sizeof aside, ".rm-%ld-%s", (long)getpid(), name) < 0 ||
	    renameat(dfd, name, dfd, aside) < 0)
		return errno == ENOENT ? 0 : fs_remove_tree(dfd, name, RM_DEPTH);
	install_fault("during-prune");
	return fs_remove_tree(dfd, aside, RM_DEPTH);
}

/* retire() for `name` in directory `dir`. */
static int
retire_path(const char *dir, const char *name)
{
	int fd = xopenat(AT_FDCWD, dir, O_RDONLY | O_DIRECTORY, 0), r;

	if (fd < 0)
		return -1;
	r = retire(fd, name);
	drop(fd, NULL);
	return r;
}

static int
name_is_leftover(const char *name)
{
	return name[0] == '.';
}

int
install_paths(struct pkgdir *p, const char *dir, struct err *e)
{
	if (str_copy(p->root, sizeof p->root, dir) < 0 ||
	    str_fmt(p->releases, sizeof p->releases, "%s/releases", dir) < 0 ||
	    str_fmt(p->current, sizeof p->current, "%s/current", dir) < 0 ||
	    str_fmt(p->previous, sizeof p->previous, "%s/previous", dir) < 0 ||
	    str_fmt(p->appd, sizeof p->appd, "%s/appd", dir) < 0 ||
	    str_fmt(p->state, sizeof p->state, "%s/updater.json", dir) < 0)
		return err_sys(e, ERR_IO, "packages path too long: %.200s", dir);
	return 0;
}

int
install_prepare(const struct pkgdir *p, struct err *e)
{
	if (fs_private_dir(p->root, e) < 0)
		return -1;
	if (mkdir(p->releases, 0755) < 0 && errno != EEXIST)
		return err_sys(e, ERR_IO, "cannot create directory %s", p->releases);
	if (mkdir(p->appd, 0755) < 0 && errno != EEXIST)
		return err_sys(e, ERR_IO, "cannot create directory %s", p->appd);
	return 0;
}

int
install_tmp_open(const struct pkgdir *p, char *path, size_t cap, struct err *e)
{
	int fd = tmp_make(p->releases, ".dl", T_FILE, NULL, path, cap);

	if (fd < 0)
		return err_sys(e, ERR_IO, "cannot create a temp file in %s", p->releases);
	return fd;
}

int
install_commit(const struct pkgdir *p, const char *release, const char *name,
	       const char *tmp_path, struct err *e)
{
	char stage[HOME_PATH_MAX] = "", bin[HOME_PATH_MAX], dst[HOME_PATH_MAX];
	char rel[HOME_PATH_MAX], cur[NAME_CAP], prev[NAME_CAP];
	const char *what = "stage", *path = tmp_path;
	struct stat st;

	if (!valid_name(release, 1) || !valid_name(name, 0)) {
		bad_name(e, "release or file", valid_name(release, 1) ? name : release);
		goto out;
	}
	if (install_link_read(p->current, cur, sizeof cur, e) < 0 ||
	    install_link_read(p->previous, prev, sizeof prev, e) < 0)
		goto out;
	if (strcmp(cur, release) == 0 || strcmp(prev, release) == 0) {
		err_set(e, ERR_IO, "release %s is installed and in use", release);
		errno = EEXIST;
		goto out;
	}
	if (tmp_make(p->releases, ".stage", T_DIR, NULL, stage, sizeof stage) < 0) {
		stage[0] = '\0';
		goto fail;
	}
	if (sync_path(tmp_path, O_NOFOLLOW, 0755) < 0 ||
	    str_fmt(bin, sizeof bin, "%s/bin", stage) < 0 || mkdir(bin, 0755) < 0 ||
	    str_fmt(dst, sizeof dst, "%s/%s", bin, name) < 0 || rename(tmp_path, dst) < 0 ||
	    sync_dir(bin) < 0 || sync_dir(stage) < 0)
		goto fail;
	install_fault("during-commit");
	what = "install";
	path = rel;
	if (str_fmt(rel, sizeof rel, "%s/%s", p->releases, release) < 0 ||
	    (lstat(rel, &st) == 0 && retire_path(p->releases, release) < 0) ||
	    rename(stage, rel) < 0)
		goto fail;
	stage[0] = '\0';
	if (sync_dir(p->releases) < 0)
		goto fail;
	return 0;
fail:
	err_sys(e, ERR_IO, "cannot %s %s", what, path);
out:
	drop(-1, tmp_path);
	drop(-1, stage[0] ? stage : NULL);
	return -1;
}

int
install_commit_appd(const struct pkgdir *p, const unsigned char sha256[32],
		    const char *tmp_path, char *out, size_t cap, struct err *e)
{
	char hex[17];
	struct stat st;

	hex_encode(sha256, 8, hex);
	if (str_fmt(out, cap, "%s/appd-%s", p->appd, hex) < 0)
		goto fail;
	if (lstat(out, &st) == 0 && S_ISREG(st.st_mode)) {
		unlink(tmp_path);
		return 0;
	}
	if (sync_path(tmp_path, O_NOFOLLOW, 0755) == 0 && rename(tmp_path, out) == 0 &&
	    sync_dir(p->appd) == 0)
		return 0;
fail:
	err_sys(e, ERR_IO, "cannot install %s as %s/appd-%s", tmp_path, p->appd, hex);
	drop(-1, tmp_path);
	return -1;
}

/* -1 (e set) unless releases/<release> is a directory. */
static int
check_release_dir(const struct pkgdir *p, const char *release, struct err *e)
{
	char path[HOME_PATH_MAX];
	struct stat st;

	if (!valid_name(release, 1))
		return bad_name(e, "release", release);
	if (str_fmt(path, sizeof path, "%s/%s", p->releases, release) < 0 ||
	    lstat(path, &st) < 0 || (!S_ISDIR(st.st_mode) && (errno = ENOTDIR)))
		return err_sys(e, ERR_IO, "cannot use release %s", release);
	return 0;
}

/* link := releases/<release> by renaming a temp symlink over it, or
 * removed when `release` is NULL; then fsync packages/. */
static int
set_link(const struct pkgdir *p, const char *link, const char *release, struct err *e)
{
	char target[NAME_CAP + 16], tmp[HOME_PATH_MAX];

	if (release == NULL) {
		if (unlink(link) < 0 && errno != ENOENT)
			return err_sys(e, ERR_IO, "cannot remove %s", link);
	} else if (str_fmt(target, sizeof target, "releases/%s", release) < 0 ||
		   tmp_make(p->root, ".link", T_LINK, target, tmp, sizeof tmp) < 0) {
		return err_sys(e, ERR_IO, "cannot create a temp link in %s", p->root);
	} else if (rename(tmp, link) < 0) {
		drop(-1, tmp);
		return err_sys(e, ERR_IO, "cannot switch %s to %s", link, target);
	}
	if (sync_dir(p->root) < 0)
		return err_sys(e, ERR_IO, "cannot sync %s", p->root);
	return 0;
}

int
install_switch(const struct pkgdir *p, const char *release, struct err *e)
{
	char cur[NAME_CAP];
	int r;

	if (check_release_dir(p, release, e) < 0)
		return -1;
	r = install_link_read(p->current, cur, sizeof cur, e);
	if (r < 0 || (r == 0 && strcmp(cur, release) != 0 &&
		      set_link(p, p->previous, cur, e) < 0))
		return -1;
	install_fault("during-switch");
	return set_link(p, p->current, release, e);
}

int
install_switch_back(const struct pkgdir *p, const char *back, const char *prev_before,
		    struct err *e)
{
	const char *prev = prev_before && *prev_before ? prev_before : NULL;

	if (prev && !valid_name(prev, 1))
		return bad_name(e, "release", prev);
	if (check_release_dir(p, back, e) < 0 || set_link(p, p->current, back, e) < 0)
		return -1;
	return set_link(p, p->previous, prev, e);
}

int
install_link_read(const char *link_path, char *release, size_t cap, struct err *e)
{
	char buf[HOME_PATH_MAX];
	ssize_t n = readlink(link_path, buf, sizeof buf);

	if (cap)
		release[0] = '\0';
	if (n < 0)
		return errno == ENOENT ? 1 : err_sys(e, ERR_IO, "cannot read link %s", link_path);
	if ((size_t)n >= sizeof buf || (buf[n] = '\0', strncmp(buf, "releases/", 9) != 0) ||
	    !valid_name(buf + 9, 1)) {
		errno = EINVAL;
		return err_set(e, ERR_IO, "%s does not point at releases/<release>", link_path);
	}
	if (str_copy(release, cap, buf + 9) < 0)
		return err_sys(e, ERR_IO, "release name in %s", link_path);
	return 0;
}

int
install_release_version(const char *release, const char *target, char *version, size_t cap)
{
	size_t n = strlen(release), t = strlen(target);

	if (t == 0 || n < t + 2 || release[n - t - 1] != '-' ||
	    strcmp(release + n - t, target) != 0 || n - t - 1 >= cap)
		return -1;
	memcpy(version, release, n - t - 1);
	version[n - t - 1] = '\0';
	return 0;
}

/* 1 when `name` is ".dl-", ".stage-" or ".link-" + "<pid>-…" and that pid
 * is gone. */
static int
dead_leftover(const char *name)
{
	static const char *const pre[] = { ".dl-", ".stage-", ".link-", ".rm-" };
	size_t i, n;
	char *end;
	long pid;

	for (i = 0; i < sizeof pre / sizeof pre[0]; i++) {
		n = strlen(pre[i]);
		if (strncmp(name, pre[i], n) != 0 || name[n] < '0' || name[n] > '9')
			continue;
		errno = 0;
		pid = strtol(name + n, &end, 10);
		if (errno || *end != '-' || pid <= 0 || (long)(pid_t)pid != pid)
			return 0;
		{
			/* a zombie is dead too (its parent may reap late) */
			struct proc_info pi;
			return proc_read((pid_t)pid, &pi) != PROC_ALIVE;
		}
	}
	return 0;
}

enum { P_RELEASES, P_ROOT, P_APPD };

struct prune {
	const char *cur, *prev;        /* NULL: unknown, keep every release */
	const char *keep;              /* basename of keep_appd */
	struct stat keep_st;
	int have_st, removed, failed;
	struct err *e;
};

static int
prune_this(const struct prune *pr, int kind, int dfd, const char *name)
{
	struct stat st;

	if (name[0] == '.')
		return kind != P_APPD && dead_leftover(name);
	if (kind == P_RELEASES)
		return pr->cur && strcmp(name, pr->cur) != 0 && strcmp(name, pr->prev) != 0;
	if (kind != P_APPD || strncmp(name, "appd-", 5) != 0 || strcmp(name, pr->keep) == 0)
		return 0;
	return !(pr->have_st && fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		 st.st_dev == pr->keep_st.st_dev && st.st_ino == pr->keep_st.st_ino);
}

static void
prune_dir(struct prune *pr, const char *dir, int kind)
{
	struct dirent *de;
	DIR *d = NULL;
	int fd = xopenat(AT_FDCWD, dir, O_RDONLY | O_DIRECTORY, 0);

	if (fd < 0 || (d = fdopendir(fd)) == NULL) {
		drop(fd, NULL);
		if (errno != ENOENT && !pr->failed++)
			err_sys(pr->e, ERR_IO, "cannot open %s", dir);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (!prune_this(pr, kind, fd, de->d_name))
			continue;
		if ((name_is_leftover(de->d_name) ? fs_remove_tree(fd, de->d_name, RM_DEPTH) :
		     retire(fd, de->d_name)) == 0)
			pr->removed++;
		else if (!pr->failed++)
			err_sys(pr->e, ERR_IO, "cannot remove %s/%s", dir, de->d_name);
	}
	closedir(d);
}

int
install_prune(const struct pkgdir *p, const char *keep_appd, struct err *e)
{
	char cur[NAME_CAP], prev[NAME_CAP];
	struct prune pr = { .cur = cur, .prev = prev, .e = e };
	const char *slash;

	if (install_link_read(p->current, cur, sizeof cur, e) < 0 ||
	    install_link_read(p->previous, prev, sizeof prev, e) < 0) {
		pr.cur = NULL;             /* unknown: keep every release */
		pr.failed = 1;
	}
	prune_dir(&pr, p->releases, P_RELEASES);
	prune_dir(&pr, p->root, P_ROOT);
	if (keep_appd) {
		slash = strrchr(keep_appd, '/');
		pr.keep = slash ? slash + 1 : keep_appd;
		pr.have_st = stat(keep_appd, &pr.keep_st) == 0;
		prune_dir(&pr, p->appd, P_APPD);
	}
	return pr.failed ? -1 : pr.removed;
}

void
install_fault(const char *point)
{
	const char *f = getenv("APPD_TEST_FAULT");

	if (f && strcmp(f, point) == 0)
		raise(SIGKILL);
}

int
install_link_version(const char *link_path, const char *target, char *version, size_t cap,
    struct err *e)
{
	char rel[PATH_MAX];
	int k = install_link_read(link_path, rel, sizeof rel, e);

	version[0] = '\0';
	if (k != 0)
		return k;
	if (install_release_version(rel, target, version, cap) < 0) {
		version[0] = '\0';
		return 1;
	}
	return 0;
}
