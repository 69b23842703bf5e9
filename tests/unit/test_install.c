/*
 * test_install.c -- the packages/ layout: commit, switch, switch back,
 * prune, and crash safety (a child SIGKILLed at the fault points).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "core/base/fsutil.h"
#include "core/update/install.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define A "1.0.0-x86_64-linux"
#define B "1.1.0-x86_64-linux"
#define C "1.2.0-x86_64-linux"
#define PATH_CAP (3 * HOME_PATH_MAX)

static char dir[64];
static struct pkgdir pk;

static int
setup(void **state)
{
	struct err e;
	char pkgs[128];

	(void)state;
	err_clear(&e);
	strcpy(dir, "/tmp/appd-install-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(pkgs, sizeof pkgs, "%s/packages", dir);
	if (install_paths(&pk, pkgs, &e) < 0 || install_prepare(&pk, &e) < 0)
		return -1;
	return 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* A downloaded temp file holding `text`; its path in `path`. */
static void
make_tmp(char *path, size_t cap, const char *text)
{
	struct err e;
	int fd;

	err_clear(&e);
	fd = install_tmp_open(&pk, path, cap, &e);
	assert_true(fd >= 0);
	assert_int_equal(fd_write_all(fd, text, strlen(text)), 0);
	close(fd);
}

static int
commit(const char *release, const char *text, struct err *e)
{
	char tmp[PATH_CAP];

	make_tmp(tmp, sizeof tmp, text);
	err_clear(e);
	return install_commit(&pk, release, "app-server", tmp, e);
}

static void
commit_ok(const char *release)
{
	struct err e;

	assert_int_equal(commit(release, release, &e), 0);
}

static void
switch_ok(const char *release)
{
	struct err e;

	err_clear(&e);
	assert_int_equal(install_switch(&pk, release, &e), 0);
}

/* Assert `link` names `release` ("" : the link is missing). */
static void
assert_link(const char *link, const char *release)
{
	char got[256];
	struct err e;

	err_clear(&e);
	assert_int_equal(install_link_read(link, got, sizeof got, &e), *release ? 0 : 1);
	assert_string_equal(got, release);
}

/* releases/<release>/bin/app-server: a 0755 regular file holding `text`. */
static void
assert_release(const char *release, const char *text)
{
	char path[PATH_CAP], buf[256];
	struct stat st;

	snprintf(path, sizeof path, "%s/%s/bin/app-server", pk.releases, release);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0755);
	assert_int_equal(access(path, X_OK), 0);
	assert_int_equal(fs_read_file(path, buf, sizeof buf, NULL), 0);
	assert_string_equal(buf, text);
}

/* current resolves (through the symlink) to an executable bin/app-server. */
static void
assert_current_complete(void)
{
	char path[PATH_CAP];

	snprintf(path, sizeof path, "%s/bin/app-server", pk.current);
	assert_int_equal(access(path, X_OK), 0);
}

static int
exists(const char *dirpath, const char *name)
{
	char path[PATH_CAP];
	struct stat st;

	snprintf(path, sizeof path, "%s/%s", dirpath, name);
	return lstat(path, &st) == 0;
}

/* How many entries of `dirpath` start with `prefix`. */
static int
count_prefix(const char *dirpath, const char *prefix)
{
	DIR *d = opendir(dirpath);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		n += strncmp(de->d_name, prefix, strlen(prefix)) == 0;
	closedir(d);
	return n;
}

static void
touch(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	close(fd);
}

/* A pid that belonged to a process that is now gone. */
static pid_t
dead_pid(void)
{
	int st;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0)
		_exit(0);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return pid;
}

/* Run `fn` in a child with APPD_TEST_FAULT=point; assert it died by
 * SIGKILL (so the fault point was reached).  Returns the child's pid. */
static pid_t
crash_child(const char *point, void (*fn)(void))
{
	int st;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		setenv("APPD_TEST_FAULT", point, 1);
		fn();
		_exit(3);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGKILL);
	return pid;
}

static void
paths_and_prepare(void **state)
{
	char longdir[600];
	struct pkgdir p2;
	struct stat st;
	struct err e;

	(void)state;
	assert_non_null(strstr(pk.releases, "/packages/releases"));
	assert_non_null(strstr(pk.state, "/packages/updater.json"));
	assert_int_equal(lstat(pk.root, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(lstat(pk.releases, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(lstat(pk.appd, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	err_clear(&e);
	assert_int_equal(install_prepare(&pk, &e), 0);    /* idempotent */

	memset(longdir, 'a', sizeof longdir - 1);
	longdir[0] = '/';
	longdir[sizeof longdir - 1] = '\0';
	assert_int_equal(install_paths(&p2, longdir, &e), -1);
	assert_int_equal(e.code, ERR_IO);
}

static void
tmp_files_are_private_and_unique(void **state)
{
	char p1[PATH_CAP], p2[PATH_CAP], want[64];
	struct stat st;
	struct err e;
	int fd1, fd2;
	const char *base;

	(void)state;
	err_clear(&e);
	fd1 = install_tmp_open(&pk, p1, sizeof p1, &e);
	fd2 = install_tmp_open(&pk, p2, sizeof p2, &e);
	assert_true(fd1 >= 0 && fd2 >= 0);
	assert_string_not_equal(p1, p2);
	assert_true(fcntl(fd1, F_GETFD) & FD_CLOEXEC);
	assert_int_equal(fstat(fd1, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	base = strrchr(p1, '/') + 1;
	snprintf(want, sizeof want, ".dl-%ld-", (long)getpid());
	assert_int_equal(strncmp(base, want, strlen(want)), 0);
	assert_int_equal(strlen(base), strlen(want) + 16);
	assert_int_equal(strspn(base + strlen(want), "0123456789abcdef"), 16);
	assert_int_equal(strncmp(p1, pk.releases, strlen(pk.releases)), 0);
	close(fd1);
	close(fd2);
	/* too small a buffer */
	assert_int_equal(install_tmp_open(&pk, p1, 20, &e), -1);
}

static void
commit_switch_and_switch_back(void **state)
{
	struct err e;

	(void)state;
	commit_ok(A);
	assert_release(A, A);
	assert_int_equal(count_prefix(pk.releases, ".dl-"), 0);
	assert_int_equal(count_prefix(pk.releases, ".stage-"), 0);
	assert_link(pk.current, "");

	switch_ok(A);
	assert_link(pk.current, A);
	assert_link(pk.previous, "");
	assert_current_complete();
	switch_ok(A);                          /* same release: previous untouched */
	assert_link(pk.previous, "");

	commit_ok(B);
	switch_ok(B);
	assert_link(pk.current, B);
	assert_link(pk.previous, A);
	commit_ok(C);
	switch_ok(C);
	assert_link(pk.current, C);
	assert_link(pk.previous, B);
	assert_int_equal(count_prefix(pk.root, ".link-"), 0);

	err_clear(&e);
	assert_int_equal(install_switch_back(&pk, B, A, &e), 0);
	assert_link(pk.current, B);
	assert_link(pk.previous, A);
	assert_int_equal(install_switch_back(&pk, A, NULL, &e), 0);
	assert_link(pk.current, A);
	assert_link(pk.previous, "");
	assert_int_equal(install_switch_back(&pk, B, "", &e), 0);
	assert_link(pk.previous, "");

	/* a release that is not there: refused, current unchanged */
	assert_int_equal(install_switch(&pk, "9.9.9-x86_64-linux", &e), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(install_switch_back(&pk, "9.9.9-x86_64-linux", NULL, &e), -1);
	assert_link(pk.current, B);
	assert_int_equal(count_prefix(pk.root, ".link-"), 0);
}

static void
link_read_checks_the_shape(void **state)
{
	char path[PATH_CAP], got[8];
	struct err e;

	(void)state;
	err_clear(&e);
	snprintf(path, sizeof path, "%s/l", pk.root);
	assert_int_equal(install_link_read(path, got, sizeof got, &e), 1);
	assert_string_equal(got, "");
	assert_int_equal(symlink("releases/1-x", path), 0);
	assert_int_equal(install_link_read(path, got, sizeof got, &e), 0);
	assert_string_equal(got, "1-x");
	assert_int_equal(install_link_read(path, got, 3, &e), -1);   /* does not fit */

	static const char *const bad[] = {
		"/abs/releases/1-x", "releases/a/b", "releases/..", "releases/",
		"other/1-x", "releases/.stage-1-ab", "1-x",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		unlink(path);
		assert_int_equal(symlink(bad[i], path), 0);
		err_clear(&e);
		assert_int_equal(install_link_read(path, got, sizeof got, &e), -1);
		assert_int_equal(e.code, ERR_IO);
	}
	unlink(path);
	touch(path);                                                /* not a link */
	assert_int_equal(install_link_read(path, got, sizeof got, &e), -1);
}

static void
release_version_splits_off_the_target(void **state)
{
	char v[16];

	(void)state;
	assert_int_equal(install_release_version("1.4.2-x86_64-linux", "x86_64-linux", v, sizeof v), 0);
	assert_string_equal(v, "1.4.2");
	assert_int_equal(install_release_version("1.4.2-aarch64-linux", "x86_64-linux", v, sizeof v), -1);
	assert_int_equal(install_release_version("-x86_64-linux", "x86_64-linux", v, sizeof v), -1);
	assert_int_equal(install_release_version("x86_64-linux", "x86_64-linux", v, sizeof v), -1);
	assert_int_equal(install_release_version("1.4.2x86_64-linux", "x86_64-linux", v, sizeof v), -1);
	assert_int_equal(install_release_version("1.4.2-x86_64-linux", "", v, sizeof v), -1);
	assert_int_equal(install_release_version("1.4.2-x86_64-linux", "x86_64-linux", v, 5), -1);
	assert_int_equal(install_release_version("1.4.2-x86_64-linux", "x86_64-linux", v, 6), 0);
}

static void
commit_refuses_a_release_in_use(void **state)
{
	struct err e;

	(void)state;
	commit_ok(A);
	switch_ok(A);
	commit_ok(B);
	switch_ok(B);                           /* current B, previous A */
	assert_int_equal(commit(A, "new A", &e), -1);
	assert_int_equal(errno, EEXIST);
	assert_int_equal(e.code, ERR_IO);
	assert_non_null(strstr(e.msg, "release " A " is installed and in use"));
	assert_int_equal(commit(B, "new B", &e), -1);
	assert_int_equal(errno, EEXIST);
	assert_release(A, A);
	assert_release(B, B);
	assert_int_equal(count_prefix(pk.releases, ".dl-"), 0);
	assert_int_equal(count_prefix(pk.releases, ".stage-"), 0);

	/* not in use: replaced */
	commit_ok(C);
	assert_int_equal(commit(C, "new C", &e), 0);
	assert_release(C, "new C");
}

static void
commit_rejects_bad_names(void **state)
{
	static const char *const bad[] = { "", ".", "..", "a/b", "a b", "x\n", "../x" };
	struct err e;

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char tmp[PATH_CAP];

		make_tmp(tmp, sizeof tmp, "x");
		err_clear(&e);
		assert_int_equal(install_commit(&pk, A, bad[i], tmp, &e), -1);
		assert_int_equal(errno, EINVAL);
		assert_int_equal(e.code, ERR_IO);
		assert_int_equal(access(tmp, F_OK), -1);         /* temp removed */
		make_tmp(tmp, sizeof tmp, "x");
		assert_int_equal(install_commit(&pk, bad[i], "app-server", tmp, &e), -1);
		assert_int_equal(access(tmp, F_OK), -1);
	}
	assert_int_equal(commit(".hidden", "x", &e), -1);
	/* nothing at all was created in releases/ */
	assert_int_equal(count_prefix(pk.releases, ""), 2);  /* "." and ".." */
	assert_false(exists(pk.root, "x"));
}

static void
commit_failure_after_staging_cleans_up(void **state)
{
	char path[PATH_CAP];
	struct err e;

	(void)state;
	/* the temp file is gone: fails after the stage dir was made */
	snprintf(path, sizeof path, "%s/.dl-%ld-0000000000000000", pk.releases, (long)getpid());
	err_clear(&e);
	assert_int_equal(install_commit(&pk, A, "app-server", path, &e), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(e.code, ERR_IO);
	assert_non_null(strstr(e.msg, path));
	assert_int_equal(count_prefix(pk.releases, ""), 2);  /* "." and ".." */
}

static void
commit_appd_is_content_addressed(void **state)
{
	unsigned char sha[32];
	char tmp[PATH_CAP], out[PATH_CAP], buf[64], want[PATH_CAP];
	struct stat st;
	struct err e;

	(void)state;
	for (int i = 0; i < 32; i++)
		sha[i] = (unsigned char)(0xa0 + i);
	make_tmp(tmp, sizeof tmp, "appd v1");
	err_clear(&e);
	assert_int_equal(install_commit_appd(&pk, sha, tmp, out, sizeof out, &e), 0);
	snprintf(want, sizeof want, "%s/appd-a0a1a2a3a4a5a6a7", pk.appd);
	assert_string_equal(out, want);
	assert_int_equal(lstat(out, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0755);
	assert_int_equal(access(tmp, F_OK), -1);

	make_tmp(tmp, sizeof tmp, "appd v1 again");             /* same name: kept */
	assert_int_equal(install_commit_appd(&pk, sha, tmp, out, sizeof out, &e), 0);
	assert_string_equal(out, want);
	assert_int_equal(access(tmp, F_OK), -1);
	assert_int_equal(fs_read_file(out, buf, sizeof buf, NULL), 0);
	assert_string_equal(buf, "appd v1");
	assert_int_equal(install_commit_appd(&pk, sha, "/nonexistent/tmp", out, sizeof out, &e), 0);
	sha[0] = 0;
	assert_int_equal(install_commit_appd(&pk, sha, "/nonexistent/tmp", out, sizeof out, &e), -1);
	assert_int_equal(e.code, ERR_IO);
}

static void
prune_keeps_what_is_in_use_or_live(void **state)
{
	char path[PATH_CAP], live[PATH_CAP], keep[PATH_CAP], name[64];
	char outside[128];
	pid_t dead = dead_pid();
	struct err e;
	int fd;

	(void)state;
	commit_ok(A);
	switch_ok(A);
	commit_ok(B);
	switch_ok(B);
	commit_ok(C);
	switch_ok(C);                           /* current C, previous B, old A */
	/* old A holds a symlink to a directory outside: never followed */
	snprintf(outside, sizeof outside, "%s/outside", dir);
	assert_int_equal(mkdir(outside, 0700), 0);
	snprintf(path, sizeof path, "%s/keep", outside);
	touch(path);
	snprintf(path, sizeof path, "%s/%s/bin/out", pk.releases, A);
	assert_int_equal(symlink(outside, path), 0);

	err_clear(&e);
	fd = install_tmp_open(&pk, live, sizeof live, &e);   /* our own: live */
	assert_true(fd >= 0);
	close(fd);
	snprintf(path, sizeof path, "%s/.dl-%ld-0123456789abcdef", pk.releases, (long)dead);
	touch(path);
	snprintf(path, sizeof path, "%s/.stage-%ld-0123456789abcdef", pk.releases, (long)dead);
	assert_int_equal(mkdir(path, 0755), 0);
	strcat(path, "/bin");
	assert_int_equal(mkdir(path, 0755), 0);
	strcat(path, "/app-server");
	touch(path);
	snprintf(path, sizeof path, "%s/.link-%ld-0123456789abcdef", pk.root, (long)dead);
	assert_int_equal(symlink("releases/" A, path), 0);
	snprintf(path, sizeof path, "%s/.link-%ld-fedcba9876543210", pk.root, (long)getppid());
	assert_int_equal(symlink("releases/" A, path), 0);           /* live pid */
	snprintf(path, sizeof path, "%s/.dl-nopid", pk.releases);
	touch(path);
	snprintf(keep, sizeof keep, "%s/appd-1111111111111111", pk.appd);
	touch(keep);
	snprintf(path, sizeof path, "%s/appd-2222222222222222", pk.appd);
	touch(path);
	snprintf(path, sizeof path, "%s/other", pk.appd);
	touch(path);

	assert_int_equal(install_prune(&pk, keep, &e), 5);
	assert_false(exists(pk.releases, A));
	assert_release(B, B);
	assert_release(C, C);
	assert_link(pk.current, C);
	assert_link(pk.previous, B);
	assert_int_equal(access(live, F_OK), 0);
	assert_int_equal(count_prefix(pk.releases, ".dl-"), 2);      /* live + nopid */
	assert_int_equal(count_prefix(pk.releases, ".stage-"), 0);
	assert_int_equal(count_prefix(pk.root, ".link-"), 1);
	snprintf(name, sizeof name, ".link-%ld-", (long)getppid());
	assert_int_equal(count_prefix(pk.root, name), 1);
	assert_int_equal(access(keep, F_OK), 0);
	assert_false(exists(pk.appd, "appd-2222222222222222"));
	assert_true(exists(pk.appd, "other"));
	assert_true(exists(outside, "keep"));

	/* keep_appd NULL keeps every appd; nothing else left to do */
	snprintf(path, sizeof path, "%s/appd-3333333333333333", pk.appd);
	touch(path);
	assert_int_equal(install_prune(&pk, NULL, &e), 0);
	assert_true(exists(pk.appd, "appd-3333333333333333"));
	/* keep_appd spelled differently (a symlink to it): matched by inode */
	snprintf(path, sizeof path, "%s/alias", dir);
	assert_int_equal(symlink(keep, path), 0);
	assert_int_equal(install_prune(&pk, path, &e), 1);
	assert_int_equal(access(keep, F_OK), 0);
	assert_false(exists(pk.appd, "appd-3333333333333333"));
}

static void
prune_keeps_releases_when_current_is_unreadable(void **state)
{
	struct err e;

	(void)state;
	commit_ok(A);
	commit_ok(B);
	switch_ok(B);
	unlink(pk.current);
	assert_int_equal(symlink("/elsewhere", pk.current), 0);
	err_clear(&e);
	assert_int_equal(install_prune(&pk, NULL, &e), -1);
	assert_int_equal(e.code, ERR_IO);
	assert_true(exists(pk.releases, A));
	assert_true(exists(pk.releases, B));
	/* and install_switch refuses to replace what it does not recognize */
	assert_int_equal(install_switch(&pk, A, &e), -1);
	assert_int_equal(install_switch_back(&pk, A, NULL, &e), 0);   /* explicit undo does */
	assert_link(pk.current, A);
}

static void
switch_b(void)
{
	struct err e;

	err_clear(&e);
	install_switch(&pk, B, &e);
}

static void
crash_during_switch_keeps_a_complete_current(void **state)
{
	char path[PATH_CAP];
	struct err e;
	pid_t child;

	(void)state;
	commit_ok(A);
	switch_ok(A);
	commit_ok(B);
	child = crash_child("during-switch", switch_b);
	assert_link(pk.current, A);             /* the old release, complete */
	assert_current_complete();
	assert_release(A, A);
	assert_link(pk.previous, A);            /* previous was updated first */
	/* what a kill inside a link switch would leave */
	snprintf(path, sizeof path, "%s/.link-%ld-0123456789abcdef", pk.root, (long)child);
	assert_int_equal(symlink("releases/" B, path), 0);

	switch_ok(B);                           /* recovers */
	assert_link(pk.current, B);
	assert_link(pk.previous, A);
	assert_current_complete();
	err_clear(&e);
	assert_int_equal(install_prune(&pk, NULL, &e), 1);
	assert_int_equal(count_prefix(pk.root, ".link-"), 0);
	assert_release(A, A);
	assert_release(B, B);
}

static void
commit_b(void)
{
	struct err e;

	commit(B, B, &e);
}

static void
crash_during_commit_leaves_no_partial_release(void **state)
{
	char name[64];
	struct err e;
	pid_t child;

	(void)state;
	commit_ok(A);
	switch_ok(A);
	child = crash_child("during-commit", commit_b);
	/* the child stopped between the renames: a full stage, no release */
	snprintf(name, sizeof name, ".stage-%ld-", (long)child);
	assert_int_equal(count_prefix(pk.releases, name), 1);
	assert_false(exists(pk.releases, B));
	assert_link(pk.current, A);
	assert_current_complete();

	err_clear(&e);
	assert_int_equal(install_prune(&pk, NULL, &e), 1);
	assert_int_equal(count_prefix(pk.releases, ".stage-"), 0);
	assert_int_equal(count_prefix(pk.releases, ".dl-"), 0);
	assert_release(A, A);
	commit_ok(B);                           /* recovers */
	switch_ok(B);
	assert_release(B, B);
	assert_current_complete();
}

static void
fault_is_inert_without_the_variable(void **state)
{
	/* env value -> does install_fault("during-switch") kill the process? */
	static const struct { const char *env; int killed; } cases[] = {
		{ NULL, 0 }, { "during-commit", 0 }, { "", 0 }, { "during-switch", 1 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int status;
		pid_t pid = fork();

		assert_true(pid >= 0);
		if (pid == 0) {
			if (cases[i].env)
				setenv("APPD_TEST_FAULT", cases[i].env, 1);
			else
				unsetenv("APPD_TEST_FAULT");
			install_fault("during-switch");
			_exit(0);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		if (cases[i].killed) {
			assert_true(WIFSIGNALED(status));
			assert_int_equal(WTERMSIG(status), SIGKILL);
		} else {
			assert_true(WIFEXITED(status));
			assert_int_equal(WEXITSTATUS(status), 0);
		}
	}
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(paths_and_prepare),
		T(tmp_files_are_private_and_unique),
		T(commit_switch_and_switch_back),
		T(link_read_checks_the_shape),
		T(release_version_splits_off_the_target),
		T(commit_refuses_a_release_in_use),
		T(commit_rejects_bad_names),
		T(commit_failure_after_staging_cleans_up),
		T(commit_appd_is_content_addressed),
		T(prune_keeps_what_is_in_use_or_live),
		T(prune_keeps_releases_when_current_is_unreadable),
		T(crash_during_switch_keeps_a_complete_current),
		T(crash_during_commit_leaves_no_partial_release),
		T(fault_is_inert_without_the_variable),
	};
	return cmocka_run_group_tests_name("install", tests, NULL, NULL);
}
