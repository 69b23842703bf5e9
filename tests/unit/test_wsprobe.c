/*
 * test_wsprobe.c -- cmocka tests for core/wsprobe.h: the codex-initialize
 * probe driven on a real reactor against build/fixtures/wsserver (built by
 * `make fixtures`; $APPD_FIXTURES/wsserver when set), plus one test
 * against the real `codex app-server` when tests/fetch-codex.sh finds it.
 *
 * Every wait is bounded; every process started here is killed and reaped
 * in the teardown.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/net/wsprobe.h"
#include "platform/reactor.h"

static struct reactor R;
static struct wsprobe P;          /* ~150 KiB: static */
static char tmpdir[128];
static char sock[256];
static char logpath[256];
static pid_t server = -1;
static int ndone;
static int nfds_before;

/* ---- helpers ---- */

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int
count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;   /* the DIR's own fd */
}

static const char *
fixture(void)
{
	static char path[512];
	const char *dir = getenv("APPD_FIXTURES");

	snprintf(path, sizeof path, "%s/wsserver", dir && *dir ? dir : "build/fixtures");
	if (access(path, X_OK) != 0)
		fail_msg("%s missing: run `make fixtures` first", path);
	return path;
}

static int
file_contains(const char *path, const char *needle)
{
	static char buf[65536];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n < 0)
		return 0;
	buf[n] = '\0';
	return strstr(buf, needle) != NULL;
}

/* Wait (bounded) until `needle` shows up in the server log. */
static int
wait_log(const char *needle, int ms)
{
	for (int t = 0; t < ms; t += 5) {
		if (file_contains(logpath, needle))
			return 1;
		sleep_ms(5);
	}
	return file_contains(logpath, needle);
}

/* fork/exec argv with stdout+stderr into logpath and `env` (NAME=VALUE,
 * may be NULL) added to the environment. */
static pid_t
spawn(char *const argv[], const char *env)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		sigset_t none;

		if (fd < 0)
			_exit(127);
		dup2(fd, 1);
		dup2(fd, 2);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (env)
			putenv((char *)env);
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

/* Start the fixture with extra flags (NULL-terminated) and wait until it
 * listens. */
static void
start_server(const char *flag, ...)
{
	char *argv[32];
	int n = 0;
	va_list ap;

	argv[n++] = (char *)fixture();
	argv[n++] = "--listen";
	argv[n++] = sock;
	va_start(ap, flag);
	for (const char *f = flag; f != NULL && n < 31; f = va_arg(ap, const char *))
		argv[n++] = (char *)f;
	va_end(ap);
	argv[n] = NULL;
	server = spawn(argv, NULL);
	if (!wait_log("wsserver listening on", 5000))
		fail_msg("wsserver did not start listening within 5 s");
}

/* SIGTERM, then SIGKILL after `ms`; always reaps. */
static int
stop_pid(pid_t pid, int ms)
{
	int st = -1;

	if (pid <= 0)
		return -1;
	kill(pid, SIGTERM);
	for (int t = 0; t < ms; t += 10) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return st;
		sleep_ms(10);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return -2;
}

static void
on_done(struct wsprobe *p, void *arg)
{
	int h;

	(void)arg;
	assert_ptr_equal(p, &P);
	ndone++;
	/* released before done: no watch left, not running */
	assert_false(wsprobe_running(p));
	for (h = 0; h < REACTOR_MAX_WATCHES; h++)
		if (h != R.signal_handle)
			assert_int_equal(R.w[h].kind, REACTOR_FREE);
}

/* Turn the reactor until `ndone` reaches `want` or `ms` pass. */
static void
run_until_done(int want, int ms)
{
	uint64_t end = reactor_clock_ms() + (uint64_t)ms;

	while (ndone < want) {
		uint64_t now = reactor_clock_ms();

		if (now >= end)
			break;
		assert_true(reactor_run_once(&R, (int64_t)(end - now)) >= 0);
	}
}

/* One probe of `sock`; asserts done ran exactly once and no fd leaked.
 * Returns the elapsed ms. */
static long
probe(uint64_t timeout_ms)
{
	uint64_t t0 = reactor_clock_ms();

	ndone = 0;
	assert_int_equal(wsprobe_start(&P, &R, sock, "9.8.7", timeout_ms, on_done, NULL), 0);
	assert_true(wsprobe_running(&P));
	run_until_done(1, (int)timeout_ms + 3000);
	assert_int_equal(ndone, 1);
	/* no second call later */
	reactor_run_once(&R, 20);
	assert_int_equal(ndone, 1);
	assert_int_equal(count_fds(), nfds_before);
	return (long)(reactor_clock_ms() - t0);
}

/* A probe whose connect fails at once: wsprobe_start returns it, done is
 * never called, nothing is left open (core/net/job.h). */
static void
probe_refused(void)
{
	ndone = 0;
	assert_int_equal(wsprobe_start(&P, &R, sock, "9.8.7", 2000, on_done, NULL), -1);
	assert_false(wsprobe_running(&P));
	reactor_run_once(&R, 20);
	assert_int_equal(ndone, 0);
	assert_int_equal(count_fds(), nfds_before);
}

static void
expect_ok(const char *version)
{
	if (!P.ok)
		fail_msg("probe failed: %s", P.err.msg);
	assert_int_equal(P.err.code, ERR_NONE);
	assert_string_equal(P.version, version);
}

static void
expect_err(const char *prefix)
{
	assert_false(P.ok);
	assert_int_equal(P.err.code, ERR_NOT_READY);
	if (strncmp(P.err.msg, prefix, strlen(prefix)) != 0)
		fail_msg("error \"%s\" does not start with \"%s\"", P.err.msg, prefix);
}

/* ---- fixtures ---- */

static int
setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof tmpdir, "/tmp/appd-wsprobe-XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	snprintf(sock, sizeof sock, "%s/s.sock", tmpdir);
	snprintf(logpath, sizeof logpath, "%s/server.log", tmpdir);
	if (reactor_init(&R) < 0)
		return -1;
	memset(&P, 0, sizeof P);
	server = -1;
	ndone = 0;
	nfds_before = count_fds();
	return 0;
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path);
}

static int
teardown(void **state)
{
	(void)state;
	wsprobe_cancel(&P);
	if (server > 0)
		stop_pid(server, 3000);
	server = -1;
	reactor_fini(&R);
	nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

/* ---- user agent parsing (seed tests by name) ---- */

static void
parses_version_from_codex_user_agent(void **state)
{
	char v[64];
	struct err e;

	(void)state;
	err_clear(&e);
	assert_int_equal(wsprobe_version_from_user_agent(
	    "codex_app_server_daemon/1.2.3 (Linux 6.8.0; x86_64) codex_cli_rs/1.2.3",
	    v, sizeof v, &e), 0);
	assert_string_equal(v, "1.2.3");
	assert_int_equal(wsprobe_version_from_user_agent("codex/0.169.0", v, sizeof v, &e), 0);
	assert_string_equal(v, "0.169.0");
	assert_int_equal(wsprobe_version_from_user_agent("a/b/c d", v, sizeof v, &e), 0);
	assert_string_equal(v, "b/c");
	assert_int_equal(e.code, ERR_NONE);
}

static void
rejects_user_agent_without_version(void **state)
{
	char v[8];
	struct err e;

	(void)state;
	err_clear(&e);
	assert_int_equal(wsprobe_version_from_user_agent("codex_app_server_daemon",
	    v, sizeof v, &e), -1);
	assert_int_equal(e.code, ERR_NOT_READY);
	assert_string_equal(e.msg, "app-server user-agent omitted version separator");
	err_clear(&e);
	assert_int_equal(wsprobe_version_from_user_agent("codex/", v, sizeof v, &e), -1);
	assert_string_equal(e.msg, "app-server user-agent omitted version");
	err_clear(&e);
	assert_int_equal(wsprobe_version_from_user_agent("codex/ 1.2.3", v, sizeof v, &e), -1);
	assert_string_equal(e.msg, "app-server user-agent omitted version");
	err_clear(&e);
	assert_int_equal(wsprobe_version_from_user_agent("codex/1.2.3.4.5.6", v, sizeof v, &e), -1);
	assert_int_equal(e.code, ERR_NOT_READY);
}

static void
accept_key_matches_rfc6455_example(void **state)
{
	char out[29];

	(void)state;
	wsprobe_accept_for_key("dGhlIHNhbXBsZSBub25jZQ==", out);
	assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

/* ---- against the fixture ---- */

static void
probe_succeeds(void **state)
{
	(void)state;
	start_server(NULL);
	probe(2000);
	expect_ok("0.169.0");
	assert_string_equal(P.user_agent, "codex_app_server/0.169.0 (Linux; x86_64) test");
	/* the exact request, then initialized and a close frame */
	assert_true(wait_log("wsserver got initialize {\"id\":1,\"method\":\"initialize\","
	    "\"params\":{\"clientInfo\":{\"name\":\"appd\",\"title\":\"appd\","
	    "\"version\":\"9.8.7\"}}}\n", 2000));
	assert_true(wait_log("wsserver got initialized\nwsserver got close\n", 2000));
}

static void
probe_reports_version_string(void **state)
{
	(void)state;
	start_server("--version-string", "1.2.3-alpha.4", NULL);
	probe(2000);
	expect_ok("1.2.3-alpha.4");
}

static void
probe_split_bytes(void **state)
{
	(void)state;
	start_server("--split-bytes", "--notifications", "2", "--ping-first", NULL);
	probe(5000);
	expect_ok("0.169.0");
	assert_true(wait_log("wsserver got pong", 2000));
}

static void
probe_skips_notifications(void **state)
{
	(void)state;
	/* 7-bit, 16-bit and 64-bit lengths, twice each */
	start_server("--notifications", "6", NULL);
	probe(5000);
	expect_ok("0.169.0");
}

static void
probe_fragments_binary_and_other_ids(void **state)
{
	(void)state;
	start_server("--notifications", "3", "--fragment", "--binary", "--wrong-id",
	    "--ping-first", NULL);
	probe(5000);
	expect_ok("0.169.0");
	assert_true(wait_log("wsserver got initialized", 2000));
}

static void
probe_answers_ping(void **state)
{
	(void)state;
	start_server("--ping-first", NULL);
	probe(2000);
	expect_ok("0.169.0");
	assert_true(wait_log("wsserver got pong", 2000));
}

static void
probe_times_out(void **state)
{
	long ms;

	(void)state;
	start_server("--never-answer", NULL);
	ms = probe(300);
	expect_err("timed out waiting for initialize response");
	assert_true(ms >= 280);
	assert_true(ms < 1500);
}

static void
probe_bad_user_agent(void **state)
{
	(void)state;
	start_server("--bad-user-agent", NULL);
	probe(2000);
	expect_err("app-server user-agent omitted version separator");
	assert_string_equal(P.user_agent, "codex_app_server_daemon");
	/* as in the seed: initialized still goes out before the parse */
	assert_true(wait_log("wsserver got initialized", 2000));
}

static void
probe_empty_version(void **state)
{
	(void)state;
	start_server("--empty-version", NULL);
	probe(2000);
	expect_err("app-server user-agent omitted version");
	assert_string_equal(P.err.msg, "app-server user-agent omitted version");
}

static void
probe_close_first(void **state)
{
	(void)state;
	start_server("--close-first", NULL);
	probe(2000);
	expect_err("app-server closed the control socket");
}

static void
probe_oversized(void **state)
{
	long ms;

	(void)state;
	start_server("--oversized", NULL);
	ms = probe(2000);
	expect_err("app-server websocket protocol error: message longer than");
	assert_true(ms < 1500);
}

static void
probe_masked_server_frames(void **state)
{
	(void)state;
	start_server("--masked", NULL);
	probe(2000);
	expect_err("app-server websocket protocol error: server frame is masked");
}

static void
probe_bad_accept(void **state)
{
	char want[400];

	(void)state;
	start_server("--bad-accept", NULL);
	probe(2000);
	snprintf(want, sizeof want, "failed to upgrade %s: wrong Sec-WebSocket-Accept", sock);
	expect_err(want);
}

static void
probe_no_upgrade(void **state)
{
	char want[400];

	(void)state;
	start_server("--no-upgrade", NULL);
	probe(2000);
	snprintf(want, sizeof want, "failed to upgrade %s: unexpected HTTP status: 400", sock);
	expect_err(want);
}

static void
probe_no_server(void **state)
{
	char want[400];
	struct sockaddr_un sa;
	int fd;

	(void)state;
	snprintf(want, sizeof want, "failed to connect to %s", sock);
	/* nothing at the path */
	probe_refused();
	expect_err(want);
	assert_int_equal(P.os_errno, ENOENT);
	/* a socket inode nobody listens on */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	strcpy(sa.sun_path, sock);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	close(fd);
	probe_refused();
	expect_err(want);
	assert_int_equal(P.os_errno, ECONNREFUSED);
}

static void
probe_backlog_full(void **state)
{
	struct sockaddr_un sa;
	int lfd, cfd, saved;

	(void)state;
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(lfd >= 0);
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	strcpy(sa.sun_path, sock);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(lfd, 0), 0);
	/* fill the backlog: non-blocking connects until one gets EAGAIN */
	int fill[8], nfill = 0;
	for (; nfill < 8; nfill++) {
		cfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		assert_true(cfd >= 0);
		if (connect(cfd, (struct sockaddr *)&sa, sizeof sa) < 0) {
			saved = errno;
			close(cfd);
			assert_int_equal(saved, EAGAIN);
			break;
		}
		fill[nfill] = cfd;
	}
	assert_true(nfill < 8);
	nfds_before = count_fds();
	probe_refused();
	expect_err("failed to connect to");
	assert_int_equal(P.os_errno, EAGAIN);
	for (int i = 0; i < nfill; i++)
		close(fill[i]);
	close(lfd);
}

/* done may start the next probe on the same struct */
static int chain_left;

static void
on_done_chain(struct wsprobe *p, void *arg)
{
	on_done(p, arg);
	if (!p->ok)
		fail_msg("probe %d failed: %s", ndone, p->err.msg);
	if (chain_left-- > 0)
		assert_int_equal(wsprobe_start(p, &R, sock, "1.0.0", 2000, on_done_chain, NULL), 0);
}

static void
probe_restarts_from_done(void **state)
{
	(void)state;
	start_server(NULL);
	ndone = 0;
	chain_left = 2;
	assert_int_equal(wsprobe_start(&P, &R, sock, "1.0.0", 2000, on_done_chain, NULL), 0);
	run_until_done(3, 8000);
	assert_int_equal(ndone, 3);
	assert_false(wsprobe_running(&P));
	assert_int_equal(count_fds(), nfds_before);
}

static void
probe_cancel(void **state)
{
	(void)state;
	start_server("--never-answer", NULL);
	ndone = 0;
	assert_int_equal(wsprobe_start(&P, &R, sock, "1.0.0", 500, on_done, NULL), 0);
	for (int i = 0; i < 10; i++)
		reactor_run_once(&R, 10);
	assert_true(wsprobe_running(&P));
	/* a second start while running is refused */
	assert_int_equal(wsprobe_start(&P, &R, sock, "1.0.0", 500, on_done, NULL), -1);
	assert_int_equal(errno, EBUSY);
	wsprobe_cancel(&P);
	assert_false(wsprobe_running(&P));
	wsprobe_cancel(&P);       /* idempotent */
	for (int i = 0; i < 10; i++)
		reactor_run_once(&R, 100);
	assert_int_equal(ndone, 0);
	assert_int_equal(count_fds(), nfds_before);
	for (int h = 0; h < REACTOR_MAX_WATCHES; h++)
		if (h != R.signal_handle)
			assert_int_equal(R.w[h].kind, REACTOR_FREE);
}

static void
probe_rejects_bad_arguments(void **state)
{
	char longpath[300];

	(void)state;
	memset(longpath, 'a', sizeof longpath - 1);
	longpath[0] = '/';
	longpath[sizeof longpath - 1] = '\0';
	assert_int_equal(wsprobe_start(&P, &R, longpath, "1", 100, on_done, NULL), -1);
	assert_int_equal(errno, EINVAL);
	assert_false(wsprobe_running(&P));
	assert_int_equal(wsprobe_start(&P, &R, sock,
	    "0123456789012345678901234567890123456789012345678901234567890123456789",
	    100, on_done, NULL), -1);
	assert_int_equal(errno, EINVAL);
	reactor_run_once(&R, 10);
	assert_int_equal(ndone, 0);
}

/* ---- against the real Codex app-server ---- */

/* The real codex binary: `make unit` runs tests/fetch-codex.sh (npm) and
 * names it in APPD_CODEX; the test is skipped when that found none. */
static int
fetch_codex(char *out, size_t cap)
{
	const char *p = getenv("APPD_CODEX");

	if (p == NULL || p[0] == '\0' || strlen(p) >= cap || access(p, X_OK) < 0)
		return -1;
	memcpy(out, p, strlen(p) + 1);
	return 0;
}

static void
probe_real_codex(void **state)
{
	static char codex[1024], listen[300], home_env[200];
	uint64_t end;
	int st;

	(void)state;
	if (fetch_codex(codex, sizeof codex) < 0) {
		print_message("APPD_CODEX names no codex binary (tests/fetch-codex.sh found none); skipping\n");
		skip();
	}
	snprintf(listen, sizeof listen, "unix://%s", sock);
	snprintf(home_env, sizeof home_env, "CODEX_HOME=%s", tmpdir);
	{
		char *argv[] = { codex, "app-server", "--listen", listen, NULL };
		server = spawn(argv, home_env);
	}
	end = reactor_clock_ms() + 20000;
	for (;;) {
		/* not listening yet: the start itself fails (ENOENT/ECONNREFUSED) */
		if (wsprobe_start(&P, &R, sock, "9.8.7", 2000, on_done, NULL) == 0) {
			ndone = 0;
			run_until_done(1, 5000);
		}
		if (P.ok || reactor_clock_ms() >= end)
			break;
		/* not listening yet: retry after 50 ms */
		if (waitpid(server, &st, WNOHANG) == server) {
			server = -1;
			fail_msg("codex app-server exited early (status %d); see %s", st, logpath);
		}
		reactor_run_once(&R, 50);
	}
	if (!P.ok)
		fail_msg("codex app-server not ready within 20 s: %s", P.err.msg);
	assert_string_equal(P.version, "0.169.0");
	/* the user agent starts with our clientInfo.name */
	assert_true(strncmp(P.user_agent, "appd/0.169.0", 12) == 0);
	st = stop_pid(server, 15000);
	server = -1;
	assert_true(st >= 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parses_version_from_codex_user_agent),
		cmocka_unit_test(rejects_user_agent_without_version),
		cmocka_unit_test(accept_key_matches_rfc6455_example),
		cmocka_unit_test_setup_teardown(probe_succeeds, setup, teardown),
		cmocka_unit_test_setup_teardown(probe_reports_version_string, setup, teardown),
		cmocka_unit_test_setup_teardown(probe_split_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(probe_skips_notifications, setup, teardown),
		cmocka_unit_test_setup_teardown(probe_fragments_binary_and_other_ids, setup, teardown),
		cmocka_unit_test_setup_teardown(probe_answers_ping, setup, teardown),
		cmocka_unit_test_setup_teardown(probe_times_out, setup, teardown),
		cmocka_unit_test_setup_teardown(probe_bad_user_agent, setup, teardown),
		cmocka_unit_test_setup_teardown(probe_empty_version, setup, teardown),
		cmocka_unit_test_setup_teardown(probe_close_first, setup, teardown),
		cmocka_unit_test_setup_teardown(probe_oversized, setup, teardown),
		cmocka_unit_test_setup_teardown(probe_masked_server_frames, setup, teardown),
		cmocka_unit_test_setup_teardown(probe_bad_accept, setup, teardown),
		cmocka_unit_test_setup_teardown(probe_no_upgrade, setup, teardown),
		cmocka_unit_test_setup_teardown(probe_no_server, setup, teardown),
		cmocka_unit_test_setup_teardown(probe_backlog_full, setup, teardown),
		cmocka_unit_test_setup_teardown(probe_restarts_from_done, setup, teardown),
		cmocka_unit_test_setup_teardown(probe_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(probe_rejects_bad_arguments, setup, teardown),
		cmocka_unit_test_setup_teardown(probe_real_codex, setup, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
