/*
 * test_https.c -- cmocka tests for core/trust.h, core/dnshelper.h and
 * core/https.h: real fetches on a real reactor against local HTTPS servers
 * (tests/fixtures/https_fixture.py, python3 stdlib) on 127.0.0.1, with
 * certificates made at test time by tests/unit/certs.sh (openssl CLI) in a
 * temporary directory: a test CA, EC and RSA server certificates for
 * localhost, an expired one, one for other.example, a self-signed one.
 *
 * URLs use the name "localhost", so every fetch resolves it through the
 * DNS helper child.  SIGPIPE is left at SIG_DFL on purpose: a SIGPIPE
 * would kill the test.  Run from the top of the tree (make unit does):
 * tests/unit/certs.sh and tests/fixtures/https_fixture.py are found by
 * relative paths; $PYTHON picks the interpreter (default /usr/bin/python3).
 * TEST_HTTPS_VERBOSE=1 prints every fetch's outcome.
 * Every wait is bounded; every process started here
 * dies with the test (PR_SET_PDEATHSIG) and is killed and reaped in the
 * group teardown.
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
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/net/dnshelper.h"
#include "core/net/https.h"
#include "core/update/trust.h"
#include "platform/reactor.h"

enum { SV_GOOD, SV_RSA, SV_EXPIRED, SV_OTHER, SV_SELF, SV_N };

static const struct {
	const char *name, *cert, *key;
} sv_def[SV_N] = {
	[SV_GOOD] = { "good", "localhost.pem", "localhost.key" },
	[SV_RSA] = { "rsa", "rsa.pem", "rsa.key" },
	[SV_EXPIRED] = { "expired", "expired.pem", "localhost.key" },
	[SV_OTHER] = { "other", "other.pem", "localhost.key" },
	[SV_SELF] = { "self", "self.pem", "self.key" },
};

static struct reactor R;
static struct https_fetch F;            /* ~72 KiB: static */
static struct trust_store TS;           /* the test CA */
static struct trust_store TS2;          /* scratch for the trust tests */
static struct dnshelper D;
static char tmpdir[128];
static pid_t sv_pid[SV_N];
static int sv_port[SV_N];

/* what the callbacks saw */
static struct https_result RES;
static int ndone;
static unsigned char BODY[1 << 20];
static size_t blen;
static int body_calls;
static int sink_abort;                  /* on_body returns -1 */
static int sink_cancel;                 /* on_body cancels the fetch */
static int dns_done;

/* ---- helpers ---- */

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
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
	return n - 1;
}

/* Our live (or zombie) children, from /proc/<pid>/stat field 4. */
static int
count_children(void)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int n = 0;
	pid_t me = getpid();

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		char path[300], buf[512], *p;
		int fd;
		ssize_t k;
		long ppid;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof path, "/proc/%s/stat", de->d_name);
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
			continue;
		k = read(fd, buf, sizeof buf - 1);
		close(fd);
		if (k <= 0)
			continue;
		buf[k] = '\0';
		if ((p = strrchr(buf, ')')) == NULL)
			continue;
		if (sscanf(p + 2, "%*c %ld", &ppid) == 1 && ppid == me)
			n++;
	}
	closedir(d);
	return n;
}

/* Turn the loop until *flag or `ms` passed.  Returns *flag. */
static int
run_until(int *flag, uint64_t ms)
{
	uint64_t end = now_ms() + ms;

	while (!*flag && now_ms() < end)
		assert_true(reactor_run_once(&R, 50) >= 0);
	return *flag;
}

static void
run_for(uint64_t ms)
{
	uint64_t end = now_ms() + ms;

	while (now_ms() < end)
		assert_true(reactor_run_once(&R, 20) >= 0);
}

/* Wait (bounded, turning the loop so the reactor can reap) until only the
 * fixtures are our children. */
static void
assert_no_stray_children(void)
{
	uint64_t end = now_ms() + 3000;
	int n;

	while ((n = count_children()) > SV_N && now_ms() < end)
		(void)reactor_run_once(&R, 20);
	assert_int_equal(n, SV_N);
}

static int
run_cmd(char *const argv[], int timeout_ms)
{
	pid_t pid = fork(), got;
	int st = 0;
	uint64_t end = now_ms() + (uint64_t)timeout_ms;

	if (pid < 0)
		return -1;
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execvp(argv[0], argv);
		_exit(127);
	}
	while ((got = waitpid(pid, &st, WNOHANG)) == 0 && now_ms() < end) {
		struct timespec ts = { 0, 10 * 1000000L };
		nanosleep(&ts, NULL);
	}
	if (got == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		return -1;
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static const char *
python(void)
{
	const char *p = getenv("PYTHON");

	if (p && *p)
		return p;
	return access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
}

/* Start the fixture for server `i`; read its "PORT n" line (bounded). */
static int
start_server(int i)
{
	char cert[256], key[256], log[256];
	int p[2];
	pid_t pid;
	char line[64];
	size_t len = 0;
	uint64_t end;

	snprintf(cert, sizeof cert, "%s/%s", tmpdir, sv_def[i].cert);
	snprintf(key, sizeof key, "%s/%s", tmpdir, sv_def[i].key);
	snprintf(log, sizeof log, "%s/fixture-%s.log", tmpdir, sv_def[i].name);
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		const char *py = python();
		char *argv[] = { (char *)py, "tests/fixtures/https_fixture.py",
		    "--cert", cert, "--key", key, "--log", log, NULL };
		int lfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		sigset_t none;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(p[1], 1);
		if (lfd >= 0)
			dup2(lfd, 2);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execvp(py, argv);
		_exit(127);
	}
	close(p[1]);
	sv_pid[i] = pid;
	end = now_ms() + 15000;
	while (now_ms() < end && len < sizeof line - 1) {
		struct pollfd pfd = { p[0], POLLIN, 0 };
		ssize_t n;

		if (poll(&pfd, 1, 100) <= 0)
			continue;
		n = read(p[0], line + len, sizeof line - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
		line[len] = '\0';
		if (strchr(line, '\n'))
			break;
	}
	close(p[0]);
	line[len] = '\0';
	if (sscanf(line, "PORT %d", &sv_port[i]) != 1) {
		fprintf(stderr, "fixture %s did not start (see %s)\n", sv_def[i].name, log);
		return -1;
	}
	return 0;
}

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* ---- callbacks ---- */

static int
sink(void *arg, const void *buf, size_t len)
{
	(void)arg;
	body_calls++;
	if (sink_cancel) {
		https_fetch_cancel(&F);
		return 0;
	}
	if (sink_abort)
		return -1;
	if (blen + len <= sizeof BODY) {
		memcpy(BODY + blen, buf, len);
		blen += len;
	}
	return 0;
}

static void
on_done(struct https_fetch *f, const struct https_result *res, void *arg)
{
	(void)arg;
	assert_ptr_equal(f, &F);
	assert_false(https_fetch_running(f));
	RES = *res;
	ndone++;
}

static void
reset_run(void)
{
	https_fetch_cancel(&F);         /* left over by a failed test */
	memset(&RES, 0, sizeof RES);
	ndone = 0;
	blen = 0;
	body_calls = 0;
	sink_abort = sink_cancel = 0;
}

static struct https_request
request(const char *url)
{
	struct https_request q;

	memset(&q, 0, sizeof q);
	q.url = url;
	q.anchors = TS.ta;
	q.nanchors = TS.n;
	q.connect_timeout_ms = 5000;
	q.deadline_ms = 10000;
	q.on_body = sink;
	q.done = on_done;
	return q;
}

static void
url_of(char *buf, size_t cap, int sv, const char *path)
{
	snprintf(buf, cap, "https://localhost:%d%s", sv_port[sv], path);
}

/* Fetch and wait (bounded) for done; checks the fetch left no fd behind. */
static void
fetch_req(const struct https_request *q)
{
	int fds = count_fds();

	reset_run();
	assert_int_equal(https_fetch_start(&F, &R, q), 0);
	assert_true(https_fetch_running(&F));
	assert_true(run_until(&ndone, q->deadline_ms + 5000));
	assert_int_equal(ndone, 1);
	assert_int_equal(count_fds(), fds);
	if (getenv("TEST_HTTPS_VERBOSE"))
		fprintf(stderr, "  %s -> %s %d: %s\n", q->url,
		    https_fail_name(RES.fail), RES.status, RES.err.msg);
	if (RES.fail != HTTPS_OK)
		assert_int_equal(RES.err.code, ERR_IO);
}

static void
fetch(const char *url)
{
	struct https_request q = request(url);

	fetch_req(&q);
}

static int
is_pattern(const unsigned char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (b[i] != i % 251)
			return 0;
	return 1;
}

#define assert_contains(hay, needle) do { \
	if (strstr((hay), (needle)) == NULL) \
		fail_msg("\"%s\" does not contain \"%s\"", (hay), (needle)); \
} while (0)

#define assert_fail(kind) do { \
	if (RES.fail != (kind)) \
		fail_msg("fail %s (%s), expected %s", https_fail_name(RES.fail), \
		    RES.err.msg, https_fail_name(kind)); \
} while (0)

/* ---- setup ---- */

static int group_teardown(void **state);

static int
group_setup(void **state)
{
	struct err e;
	char ca[200];
	int i;

	signal(SIGPIPE, SIG_DFL);       /* a SIGPIPE must kill us: test it */
	for (i = 0; i < SV_N; i++)
		sv_pid[i] = -1;
	if (reactor_init(&R) < 0)
		return -1;
	snprintf(tmpdir, sizeof tmpdir, "/tmp/appd-https-XXXXXX");
	if (mkdtemp(tmpdir) == NULL) {
		tmpdir[0] = '\0';
		goto fail;
	}
	{
		char *argv[] = { "sh", "tests/unit/certs.sh", tmpdir, NULL };

		if (run_cmd(argv, 60000) != 0) {
			fprintf(stderr, "tests/unit/certs.sh failed (openssl missing?)\n");
			goto fail;
		}
	}
	snprintf(ca, sizeof ca, "%s/ca.pem", tmpdir);
	err_clear(&e);
	if (trust_load_file(&TS, ca, &e) < 0) {
		fprintf(stderr, "%s\n", e.msg);
		goto fail;
	}
	for (i = 0; i < SV_N; i++)
		if (start_server(i) < 0)
			goto fail;
	return 0;
fail:
	group_teardown(state);
	return -1;
}

static int
group_teardown(void **state)
{
	uint64_t end;

	(void)state;
	for (int i = 0; i < SV_N; i++)
		if (sv_pid[i] > 0) {
			kill(sv_pid[i], SIGKILL);
			while (waitpid(sv_pid[i], NULL, 0) < 0 && errno == EINTR)
				;
			sv_pid[i] = -1;
		}
	if (tmpdir[0])
		nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	https_fetch_cancel(&F);
	dnshelper_cancel(&D);
	end = now_ms() + 200;           /* let the reactor reap helpers */
	while (now_ms() < end && reactor_run_once(&R, 20) >= 0)
		;
	reactor_fini(&R);
	return 0;
}

/* ---- trust ---- */

static void
write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static void
test_trust(void **state)
{
	char path[256], ca[256], both[256];
	struct err e;
	const char *old = getenv("SSL_CERT_FILE");
	char saved[512] = "";

	(void)state;
	if (old)
		snprintf(saved, sizeof saved, "%s", old);
	/* the test CA: one RSA CA anchor */
	assert_int_equal(TS.n, 1);
	assert_int_equal(TS.ta[0].pkey.key_type, BR_KEYTYPE_RSA);
	assert_true(TS.ta[0].flags & BR_X509_TA_CA);

	/* several certificates, EC and RSA, other PEM objects ignored */
	snprintf(ca, sizeof ca, "%s/ca.pem", tmpdir);
	snprintf(both, sizeof both, "%s/both.pem", tmpdir);
	{
		char cmd[1024];
		char *argv[] = { "sh", "-c", cmd, NULL };

		snprintf(cmd, sizeof cmd, "cat %s/ca.pem %s/localhost.key "
		    "%s/self.pem > %s", tmpdir, tmpdir, tmpdir, both);
		assert_int_equal(run_cmd(argv, 10000), 0);
	}
	err_clear(&e);
	assert_int_equal(trust_load_file(&TS2, both, &e), 0);
	assert_int_equal(TS2.n, 2);
	assert_int_equal(TS2.ta[1].pkey.key_type, BR_KEYTYPE_EC);
	assert_string_equal(TS2.path, both);

	/* missing, empty, garbage, broken PEM */
	snprintf(path, sizeof path, "%s/nope.pem", tmpdir);
	assert_int_equal(trust_load_file(&TS2, path, &e), -1);
	assert_contains(e.msg, "cannot open CA bundle");
	assert_int_equal(TS2.n, 0);
	snprintf(path, sizeof path, "%s/empty.pem", tmpdir);
	write_file(path, "");
	assert_int_equal(trust_load_file(&TS2, path, &e), -1);
	assert_contains(e.msg, "no certificate in CA bundle");
	write_file(path, "just text\nno PEM here\n");
	assert_int_equal(trust_load_file(&TS2, path, &e), -1);
	assert_contains(e.msg, "no certificate in CA bundle");
	write_file(path, "-----BEGIN CERTIFICATE-----\nMII!!!\n-----END CERTIFICATE-----\n");
	assert_int_equal(trust_load_file(&TS2, path, &e), -1);
	assert_contains(e.msg, "invalid PEM");
	write_file(path, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
	assert_int_equal(trust_load_file(&TS2, path, &e), -1);
	assert_contains(e.msg, "no usable certificate");
	assert_int_equal(trust_load_file(&TS2, tmpdir, &e), -1);  /* a directory */

	/* path choice: caFile, then SSL_CERT_FILE, then the system bundle */
	setenv("SSL_CERT_FILE", both, 1);
	assert_string_equal(trust_bundle_path(ca), ca);
	assert_string_equal(trust_bundle_path(NULL), both);
	assert_int_equal(trust_load_default(&TS2, NULL, &e), 0);
	assert_int_equal(TS2.n, 2);
	assert_int_equal(trust_load_default(&TS2, ca, &e), 0);
	assert_int_equal(TS2.n, 1);
	setenv("SSL_CERT_FILE", path, 1);       /* broken: no fall back */
	assert_int_equal(trust_load_default(&TS2, NULL, &e), -1);
	unsetenv("SSL_CERT_FILE");
	if (access("/etc/ssl/certs/ca-certificates.crt", R_OK) == 0) {
		assert_string_equal(trust_bundle_path(""),
		    "/etc/ssl/certs/ca-certificates.crt");
		assert_int_equal(trust_load_default(&TS2, NULL, &e), 0);
		assert_true(TS2.n > 50);
	}
	if (saved[0])
		setenv("SSL_CERT_FILE", saved, 1);
}

/* ---- pure helpers ---- */

static void
test_url_split(void **state)
{
	char host[DNSHELPER_HOST_MAX + 1];
	uint16_t port;
	long off;
	const char *why;
	const char *u;

	(void)state;
	u = "https://Example.COM/a/b?c=d";
	assert_int_equal(https_url_split(u, host, &port, &off, &why), 0);
	assert_string_equal(host, "example.com");
	assert_int_equal(port, 443);
	assert_string_equal(u + off, "/a/b?c=d");
	assert_int_equal(https_url_split("https://h:8443", host, &port, &off, &why), 0);
	assert_int_equal(port, 8443);
	assert_int_equal(off, -1);
	assert_int_equal(https_url_split("https://[::1]:9/x", host, &port, &off, &why), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 9);
	assert_int_equal(https_url_split("http://h/", host, &port, &off, &why), -1);
	assert_string_equal(why, "not https");
	assert_int_equal(https_url_split("https://u@h/", host, &port, &off, &why), -1);
	assert_int_equal(https_url_split("https://h:0/", host, &port, &off, &why), -1);
	assert_int_equal(https_url_split("https://h:65536/", host, &port, &off, &why), -1);
	assert_int_equal(https_url_split("https:///x", host, &port, &off, &why), -1);
	assert_int_equal(https_url_split("https://h/a b", host, &port, &off, &why), -1);
	assert_int_equal(https_url_split("https://h\r\nX: y/", host, &port, &off, &why), -1);
	assert_int_equal(https_url_split("ftp://h/", host, &port, &off, &why), -1);
}

static void
test_retry_after(void **state)
{
	time_t t = 784111777;   /* Sun, 06 Nov 1994 08:49:37 GMT */

	(void)state;
	assert_int_equal(http_retry_after("120", 0), 120);
	assert_int_equal(http_retry_after(" 0 ", 0), 0);
	assert_int_equal(http_retry_after("99999999999999", 0), 1000000000LL);
	assert_int_equal(http_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", t - 100), 100);
	assert_int_equal(http_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", t - 5), 5);
	assert_int_equal(http_retry_after("Sun Nov  6 08:49:37 1994", t - 7), 7);
	assert_int_equal(http_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", t + 50), 0);
	assert_int_equal(http_retry_after("soon", 0), -1);
	assert_int_equal(http_retry_after("12abc", 0), -1);
	assert_int_equal(http_retry_after("Sun, 06 Foo 1994 08:49:37 GMT", 0), -1);
	assert_int_equal(http_retry_after("", 0), -1);
	assert_string_equal(https_br_error_name(54), "BR_ERR_X509_EXPIRED");
	assert_string_equal(https_br_error_name(BR_ERR_RECV_FATAL_ALERT + 42),
	    "BR_ERR_RECV_FATAL_ALERT+42");
	assert_string_equal(https_fail_name(HTTPS_E_TOO_BIG), "tooBig");
}

/* ---- DNS helper ---- */

static void
on_dns(struct dnshelper *d, void *arg)
{
	(void)arg;
	assert_ptr_equal(d, &D);
	assert_false(dnshelper_running(d));
	dns_done++;
}

static void
test_dns_localhost(void **state)
{
	char as[INET6_ADDRSTRLEN];
	int found = 0, fds = count_fds();
	pid_t child;

	(void)state;
	dns_done = 0;
	assert_int_equal(dnshelper_start(&D, &R, "localhost", 8443, 5000, on_dns, NULL), 0);
	child = childrun_pid(&D.run);
	assert_true(child > 0);                  /* a helper child runs */
	assert_int_equal(count_children(), SV_N + 1);
	assert_true(run_until(&dns_done, 6000));
	assert_int_equal(dns_done, 1);
	assert_true(D.naddr >= 1);
	for (int i = 0; i < D.naddr; i++) {
		dnshelper_addr_str(&D.addr[i], as, sizeof as);
		if (strcmp(as, "127.0.0.1") == 0) {
			found = 1;
			assert_int_equal(ntohs(D.addr[i].u.in.sin_port), 8443);
		}
	}
	assert_true(found);
	assert_int_equal(kill(child, 0), -1);    /* reaped, not a zombie */
	assert_int_equal(count_children(), SV_N);
	assert_int_equal(count_fds(), fds);
}

static void
test_dns_numeric_and_errors(void **state)
{
	char as[INET6_ADDRSTRLEN];
	int fds = count_fds();

	(void)state;
	dns_done = 0;
	assert_int_equal(dnshelper_start(&D, &R, "127.0.0.1", 1, 0, on_dns, NULL), 0);
	assert_int_equal(childrun_pid(&D.run), 0);  /* no child */
	assert_int_equal(dns_done, 0);           /* never from inside start */
	assert_true(run_until(&dns_done, 2000));
	assert_int_equal(D.naddr, 1);
	assert_string_equal(dnshelper_addr_str(&D.addr[0], as, sizeof as), "127.0.0.1");

	dns_done = 0;
	assert_int_equal(dnshelper_start(&D, &R, "[::1]", 2, 0, on_dns, NULL), 0);
	assert_true(run_until(&dns_done, 2000));
	assert_int_equal(D.naddr, 1);
	assert_int_equal(D.addr[0].u.sa.sa_family, AF_INET6);

	/* busy, bad arguments */
	dns_done = 0;
	assert_int_equal(dnshelper_start(&D, &R, "localhost", 1, 0, on_dns, NULL), 0);
	assert_int_equal(dnshelper_start(&D, &R, "localhost", 1, 0, on_dns, NULL), -1);
	assert_int_equal(errno, EBUSY);
	assert_true(run_until(&dns_done, 6000));
	assert_int_equal(dnshelper_start(&D, &R, "", 1, 0, on_dns, NULL), -1);
	assert_int_equal(errno, EINVAL);

	/* a name that cannot resolve: failure (or a timeout where no
	 * resolver answers), bounded either way */
	dns_done = 0;
	assert_int_equal(dnshelper_start(&D, &R, "no-such-host.invalid", 1, 3000,
	    on_dns, NULL), 0);
	assert_true(run_until(&dns_done, 5000));
	assert_int_equal(D.naddr, 0);
	assert_int_equal(D.err.code, ERR_IO);
	assert_contains(D.err.msg, "no-such-host.invalid");

	/* cancel: the child is killed and reaped by the reactor */
	dns_done = 0;
	assert_int_equal(dnshelper_start(&D, &R, "localhost", 1, 0, on_dns, NULL), 0);
	assert_true(childrun_pid(&D.run) > 0);
	dnshelper_cancel(&D);
	assert_false(dnshelper_running(&D));
	run_for(100);
	assert_int_equal(dns_done, 0);
	assert_no_stray_children();
	assert_int_equal(count_fds(), fds);
}

/* ---- fetches ---- */

static void
test_ok_content_length(void **state)
{
	char url[256];

	(void)state;
	url_of(url, sizeof url, SV_GOOD, "/ok?n=200000");
	fetch(url);
	assert_fail(HTTPS_OK);
	assert_int_equal(RES.status, 200);
	assert_int_equal(RES.bytes, 200000);
	assert_int_equal(RES.content_length, 200000);
	assert_int_equal(blen, 200000);
	assert_true(is_pattern(BODY, blen));
	assert_string_equal(RES.etag, "\"v1\"");
	assert_string_equal(RES.url, url);
	assert_int_equal(RES.redirects, 0);
	assert_int_equal(RES.retry_after, -1);
	assert_int_equal(RES.tls_error, 0);
	assert_no_stray_children();
}

static void
test_ok_chunked(void **state)
{
	char url[256];

	(void)state;
	url_of(url, sizeof url, SV_GOOD, "/chunked?n=70001&size=3000");
	fetch(url);
	assert_fail(HTTPS_OK);
	assert_int_equal(RES.status, 200);
	assert_int_equal(RES.bytes, 70001);
	assert_int_equal(RES.content_length, -1);
	assert_int_equal(blen, 70001);
	assert_true(is_pattern(BODY, blen));
	/* one byte per chunk */
	url_of(url, sizeof url, SV_GOOD, "/chunked?n=300&size=1");
	fetch(url);
	assert_fail(HTTPS_OK);
	assert_int_equal(blen, 300);
	assert_true(is_pattern(BODY, blen));
}

static void
test_ok_rsa(void **state)
{
	char url[256];

	(void)state;
	url_of(url, sizeof url, SV_RSA, "/ok?n=5000");
	fetch(url);
	assert_fail(HTTPS_OK);
	assert_int_equal(blen, 5000);
	assert_true(is_pattern(BODY, blen));
}

static void
test_request_headers(void **state)
{
	char url[256], host[64];
	struct https_request q;

	(void)state;
	url_of(url, sizeof url, SV_GOOD, "/headers");
	q = request(url);
	q.if_none_match = "\"abc\"";
	fetch_req(&q);
	assert_fail(HTTPS_OK);
	BODY[blen] = '\0';
	/* (python re-joins the fields with bare LFs) */
	snprintf(host, sizeof host, "Host: localhost:%d\n", sv_port[SV_GOOD]);
	assert_contains((char *)BODY, host);
	assert_contains((char *)BODY, "If-None-Match: \"abc\"\n");
	assert_contains((char *)BODY, "Connection: close\n");
	assert_contains((char *)BODY, "Accept-Encoding: identity\n");
}

static void
test_etag_304(void **state)
{
	char url[256];
	struct https_request q;

	(void)state;
	url_of(url, sizeof url, SV_GOOD, "/etag");
	fetch(url);
	assert_fail(HTTPS_OK);
	assert_int_equal(RES.status, 200);
	assert_string_equal(RES.etag, "\"v1\"");
	assert_int_equal(blen, 5);

	q = request(url);
	q.if_none_match = "\"v1\"";
	fetch_req(&q);
	assert_fail(HTTPS_OK);
	assert_int_equal(RES.status, 304);
	assert_string_equal(RES.etag, "\"v1\"");
	assert_int_equal(RES.bytes, 0);
	assert_int_equal(body_calls, 0);
}

static void
test_redirects(void **state)
{
	char url[600], to[256], want[256];

	(void)state;
	/* relative Locations, 5 hops: allowed */
	url_of(url, sizeof url, SV_GOOD, "/chain/5");
	fetch(url);
	assert_fail(HTTPS_OK);
	assert_int_equal(RES.redirects, 5);
	url_of(want, sizeof want, SV_GOOD, "/chain/0");
	assert_string_equal(RES.url, want);
	assert_int_equal(blen, 12);
	assert_memory_equal(BODY, "end of chain", 12);

	/* 6: refused */
	url_of(url, sizeof url, SV_GOOD, "/chain/6");
	fetch(url);
	assert_fail(HTTPS_E_TOO_MANY_REDIRECTS);
	assert_int_equal(RES.redirects, 5);
	assert_contains(RES.err.msg, "too many redirects");

	/* absolute, to another server (new connection, new handshake), 301 */
	url_of(to, sizeof to, SV_RSA, "/ok?n=10");
	snprintf(url, sizeof url, "https://localhost:%d/redirect?code=301&to=%s",
	    sv_port[SV_GOOD], to);
	fetch(url);
	assert_fail(HTTPS_OK);
	assert_int_equal(RES.redirects, 1);
	assert_string_equal(RES.url, to);
	assert_int_equal(blen, 10);

	/* scheme-relative, 307 */
	snprintf(url, sizeof url, "https://localhost:%d/redirect?code=307&to=//"
	    "localhost:%d/ok%%3Fn=3", sv_port[SV_GOOD], sv_port[SV_GOOD]);
	fetch(url);
	assert_fail(HTTPS_OK);
	assert_int_equal(blen, 3);
}

static void
test_redirect_http_refused(void **state)
{
	char url[256];

	(void)state;
	snprintf(url, sizeof url, "https://localhost:%d/redirect?to=http://"
	    "localhost:%d/ok", sv_port[SV_GOOD], sv_port[SV_GOOD]);
	fetch(url);
	assert_fail(HTTPS_E_INSECURE_REDIRECT);
	assert_int_equal(RES.status, 302);
	assert_int_equal(RES.redirects, 0);
	assert_contains(RES.err.msg, "http://localhost");
	snprintf(url, sizeof url, "https://localhost:%d/redirect?to=ftp://x/",
	    sv_port[SV_GOOD]);
	fetch(url);
	assert_fail(HTTPS_E_INSECURE_REDIRECT);
}

static void
test_name_mismatch(void **state)
{
	char url[600], to[256];

	(void)state;
	url_of(url, sizeof url, SV_OTHER, "/ok");
	fetch(url);
	assert_fail(HTTPS_E_NAME);
	assert_int_equal(RES.tls_error, BR_ERR_X509_BAD_SERVER_NAME);
	assert_contains(RES.err.msg, "BR_ERR_X509_BAD_SERVER_NAME (56)");
	assert_int_equal(RES.status, 0);

	/* the name is checked again after a redirect to another host */
	url_of(to, sizeof to, SV_OTHER, "/ok");
	snprintf(url, sizeof url, "https://localhost:%d/redirect?to=%s",
	    sv_port[SV_GOOD], to);
	fetch(url);
	assert_fail(HTTPS_E_NAME);
	assert_int_equal(RES.redirects, 1);

	/* and SNI/name follow the URL: 127.0.0.1 is not "localhost" */
	snprintf(url, sizeof url, "https://127.0.0.1:%d/ok", sv_port[SV_GOOD]);
	fetch(url);
	assert_fail(HTTPS_E_NAME);
}

static void
test_untrusted(void **state)
{
	char url[256];
	struct https_request q;

	(void)state;
	url_of(url, sizeof url, SV_SELF, "/ok");
	fetch(url);
	assert_fail(HTTPS_E_UNTRUSTED);
	assert_int_equal(RES.tls_error, BR_ERR_X509_NOT_TRUSTED);
	assert_contains(RES.err.msg, "BR_ERR_X509_NOT_TRUSTED");

	/* no anchors at all: nothing is trusted */
	url_of(url, sizeof url, SV_GOOD, "/ok");
	q = request(url);
	q.anchors = NULL;
	q.nanchors = 0;
	fetch_req(&q);
	assert_fail(HTTPS_E_UNTRUSTED);
}

static void
test_expired(void **state)
{
	char url[256];

	(void)state;
	url_of(url, sizeof url, SV_EXPIRED, "/ok");
	fetch(url);
	assert_fail(HTTPS_E_EXPIRED);
	assert_int_equal(RES.tls_error, BR_ERR_X509_EXPIRED);
	assert_contains(RES.err.msg, "expired");
}

static void
test_stall_deadline(void **state)
{
	char url[256];
	struct https_request q;
	uint64_t t0, dt;

	(void)state;
	url_of(url, sizeof url, SV_GOOD, "/stall");
	q = request(url);
	q.deadline_ms = 500;
	t0 = now_ms();
	fetch_req(&q);
	dt = now_ms() - t0;
	assert_fail(HTTPS_E_TIMEOUT);
	assert_contains(RES.err.msg, "timed out after 500 ms");
	assert_contains(RES.err.msg, "waiting for the response");
	assert_true(dt >= 450 && dt < 1500);
	assert_no_stray_children();
}

/* A TCP listener that never accepts: connect succeeds (backlog), the TLS
 * handshake never does. */
static int
raw_listener(int *port, int backlog)
{
	struct sockaddr_in a;
	socklen_t al = sizeof a;
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(s >= 0);
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(s, backlog), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&a, &al), 0);
	*port = ntohs(a.sin_port);
	return s;
}

static void
test_handshake_stall(void **state)
{
	char url[256];
	struct https_request q;
	int port, ls = raw_listener(&port, 8);
	uint64_t t0, dt;

	(void)state;
	snprintf(url, sizeof url, "https://localhost:%d/", port);
	q = request(url);
	q.deadline_ms = 500;
	t0 = now_ms();
	fetch_req(&q);
	dt = now_ms() - t0;
	close(ls);
	assert_fail(HTTPS_E_TIMEOUT);
	assert_contains(RES.err.msg, "TLS handshake");
	assert_true(dt >= 450 && dt < 1500);
}

static void
test_connect_timeout(void **state)
{
	char url[256];
	struct https_request q;
	int port, ls = raw_listener(&port, 0), c[4], nc = 0;
	uint64_t t0, dt;

	(void)state;
	/* Fill the accept queue: further SYNs are dropped, connect hangs. */
	for (int i = 0; i < 4; i++) {
		struct sockaddr_in a;

		memset(&a, 0, sizeof a);
		a.sin_family = AF_INET;
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		a.sin_port = htons((uint16_t)port);
		c[nc] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		(void)connect(c[nc], (struct sockaddr *)&a, sizeof a);
		nc++;
	}
	run_for(50);
	snprintf(url, sizeof url, "https://127.0.0.1:%d/", port);
	q = request(url);
	q.connect_timeout_ms = 300;
	q.deadline_ms = 5000;
	t0 = now_ms();
	fetch_req(&q);
	dt = now_ms() - t0;
	for (int i = 0; i < nc; i++)
		close(c[i]);
	close(ls);
	if (RES.fail == HTTPS_E_TLS || RES.fail == HTTPS_E_TIMEOUT)
		skip();   /* this kernel accepted the connection after all */
	assert_fail(HTTPS_E_CONNECT);
	assert_contains(RES.err.msg, "timed out after 300 ms");
	assert_true(dt >= 250 && dt < 1500);
}

static void
test_connect_refused(void **state)
{
	char url[256];
	int port, ls = raw_listener(&port, 1);

	(void)state;
	close(ls);              /* nobody listens there now */
	snprintf(url, sizeof url, "https://localhost:%d/", port);
	fetch(url);
	assert_fail(HTTPS_E_CONNECT);
	assert_contains(RES.err.msg, "127.0.0.1: Connection refused");
}

static void
test_too_big(void **state)
{
	char url[256];
	struct https_request q;

	(void)state;
	/* Content-Length over the cap: refused before any body byte */
	url_of(url, sizeof url, SV_GOOD, "/ok?n=200000");
	q = request(url);
	q.body_max = 100000;
	fetch_req(&q);
	assert_fail(HTTPS_E_TOO_BIG);
	assert_int_equal(RES.bytes, 0);
	assert_int_equal(RES.status, 200);
	/* chunked: stops at the chunk that would cross the cap */
	url_of(url, sizeof url, SV_GOOD, "/chunked?n=200000&size=4000");
	q = request(url);
	q.body_max = 100000;
	fetch_req(&q);
	assert_fail(HTTPS_E_TOO_BIG);
	assert_true(RES.bytes <= 100000);
	/* exactly the cap is fine */
	url_of(url, sizeof url, SV_GOOD, "/ok?n=100000");
	q = request(url);
	q.body_max = 100000;
	fetch_req(&q);
	assert_fail(HTTPS_OK);
}

static void
test_truncated(void **state)
{
	char url[256];

	(void)state;
	url_of(url, sizeof url, SV_GOOD, "/truncate?n=10000");
	fetch(url);
	assert_fail(HTTPS_E_TRUNCATED);
	assert_contains(RES.err.msg, "got 5000 of 10000 body bytes");
	assert_int_equal(RES.bytes, 5000);

	url_of(url, sizeof url, SV_GOOD, "/chunked-trunc?n=5000");
	fetch(url);
	assert_fail(HTTPS_E_TRUNCATED);
	assert_contains(RES.err.msg, "without the last chunk");
	assert_int_equal(RES.bytes, 5000);

	/* no length, no close_notify (Python does not send one) */
	url_of(url, sizeof url, SV_GOOD, "/close-delimited?n=100");
	fetch(url);
	assert_fail(HTTPS_E_TRUNCATED);
	assert_contains(RES.err.msg, "close_notify");
}

static void
test_status_retry_after(void **state)
{
	char url[256];

	(void)state;
	url_of(url, sizeof url, SV_GOOD, "/503");
	fetch(url);
	assert_fail(HTTPS_E_STATUS);
	assert_int_equal(RES.status, 503);
	assert_int_equal(RES.retry_after, 120);
	assert_contains(RES.err.msg, "HTTP 503");
	assert_contains(RES.err.msg, "Retry-After 120 s");
	assert_int_equal(body_calls, 0);

	url_of(url, sizeof url, SV_GOOD, "/503date");
	fetch(url);
	assert_fail(HTTPS_E_STATUS);
	assert_true(RES.retry_after >= 290 && RES.retry_after <= 301);

	url_of(url, sizeof url, SV_GOOD, "/status?code=429&retry=7");
	fetch(url);
	assert_fail(HTTPS_E_STATUS);
	assert_int_equal(RES.status, 429);
	assert_int_equal(RES.retry_after, 7);

	url_of(url, sizeof url, SV_GOOD, "/nothing-here");
	fetch(url);
	assert_fail(HTTPS_E_STATUS);
	assert_int_equal(RES.status, 404);
	assert_int_equal(RES.retry_after, -1);
}

static void
test_sink_abort(void **state)
{
	char url[256];
	struct https_request q;

	(void)state;
	url_of(url, sizeof url, SV_GOOD, "/ok?n=50000");
	q = request(url);
	reset_run();
	sink_abort = 1;
	assert_int_equal(https_fetch_start(&F, &R, &q), 0);
	assert_true(run_until(&ndone, 10000));
	assert_fail(HTTPS_E_ABORTED);
	assert_int_equal(body_calls, 1);
}

static void
test_cancel(void **state)
{
	char url[256];
	struct https_request q;
	int fds = count_fds();

	(void)state;
	/* during DNS (the helper child runs) */
	url_of(url, sizeof url, SV_GOOD, "/ok");
	q = request(url);
	reset_run();
	assert_int_equal(https_fetch_start(&F, &R, &q), 0);
	https_fetch_cancel(&F);
	assert_false(https_fetch_running(&F));
	run_for(200);
	assert_int_equal(ndone, 0);
	assert_no_stray_children();
	assert_int_equal(count_fds(), fds);

	/* while waiting for a stalled response */
	url_of(url, sizeof url, SV_GOOD, "/stall");
	q = request(url);
	reset_run();
	assert_int_equal(https_fetch_start(&F, &R, &q), 0);
	run_for(300);
	assert_true(https_fetch_running(&F));
	https_fetch_cancel(&F);
	https_fetch_cancel(&F);         /* idempotent */
	run_for(100);
	assert_int_equal(ndone, 0);
	assert_int_equal(count_fds(), fds);

	/* from inside on_body */
	url_of(url, sizeof url, SV_GOOD, "/ok?n=50000");
	q = request(url);
	reset_run();
	sink_cancel = 1;
	assert_int_equal(https_fetch_start(&F, &R, &q), 0);
	run_for(1000);
	assert_int_equal(body_calls, 1);
	assert_int_equal(ndone, 0);
	assert_false(https_fetch_running(&F));
	assert_int_equal(count_fds(), fds);

	/* the struct is reusable afterwards */
	url_of(url, sizeof url, SV_GOOD, "/ok?n=10");
	fetch(url);
	assert_fail(HTTPS_OK);
}

static void
test_start_errors(void **state)
{
	struct https_request q;
	char url[256];

	(void)state;
	q = request("http://localhost/");
	assert_int_equal(https_fetch_start(&F, &R, &q), -1);
	assert_int_equal(errno, EINVAL);
	assert_contains(F.res.err.msg, "not https");
	q = request("https://localhost/");
	q.done = NULL;
	assert_int_equal(https_fetch_start(&F, &R, &q), -1);
	q = request("https://localhost/");
	q.if_none_match = "\"a\"\r\nX-Evil: 1";
	assert_int_equal(https_fetch_start(&F, &R, &q), -1);
	assert_false(https_fetch_running(&F));

	url_of(url, sizeof url, SV_GOOD, "/stall");
	q = request(url);
	reset_run();
	assert_int_equal(https_fetch_start(&F, &R, &q), 0);
	assert_int_equal(https_fetch_start(&F, &R, &q), -1);
	assert_int_equal(errno, EBUSY);
	https_fetch_cancel(&F);
	run_for(100);
	assert_int_equal(ndone, 0);
}

/* SIGPIPE is SIG_DFL here, so a write that raised it would kill the test.
 *
 * Round 0 is deterministic: the test plays the server, reads the
 * ClientHello, shuts down the write side of the fetch's own socket
 * (white box: F.fd) and sends a TLS close_notify alert; BearSSL answers
 * with its own close_notify, and that send hits EPIPE, which raises
 * SIGPIPE unless MSG_NOSIGNAL is used.  Rounds 1-2: the peer resets the
 * connection (RST) at once, or after the ClientHello. */
static void
test_no_sigpipe(void **state)
{
	static const char close_notify[] = "\x15\x03\x03\x00\x02\x01\x00";
	char url[256];
	struct https_request q;
	int port, ls = raw_listener(&port, 8);
	struct sigaction sa;

	(void)state;
	assert_int_equal(sigaction(SIGPIPE, NULL, &sa), 0);
	assert_true(sa.sa_handler == SIG_DFL);
	for (int round = 0; round < 3; round++) {
		int c = -1, cs = -1;
		uint64_t end;

		snprintf(url, sizeof url, "https://localhost:%d/", port);
		q = request(url);
		q.deadline_ms = 3000;
		reset_run();
		assert_int_equal(https_fetch_start(&F, &R, &q), 0);
		end = now_ms() + 4000;
		while (!ndone && now_ms() < end) {
			struct pollfd p = { ls, POLLIN, 0 };
			struct linger lg = { 1, 0 };
			char buf[4096];

			assert_true(reactor_run_once(&R, 10) >= 0);
			if (c == -2)
				continue;       /* done with the socket */
			if (c < 0) {
				if (poll(&p, 1, 0) != 1)
					continue;
				c = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
				assert_true(c >= 0);
			}
			if (round != 1) {
				/* wait (turning the loop) for the ClientHello */
				struct pollfd pc = { c, POLLIN, 0 };

				if (poll(&pc, 1, 0) != 1)
					continue;
				assert_true(read(c, buf, sizeof buf) > 5);
				assert_int_equal(buf[0], 0x16);
			}
			if (round == 0) {
				assert_true(F.fd >= 0);
				assert_int_equal(shutdown(F.fd, SHUT_WR), 0);
				assert_int_equal(write(c, close_notify, 7), 7);
				cs = c;         /* closed after the fetch */
			} else {
				setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
				close(c);
			}
			c = -2;
		}
		if (cs >= 0)
			close(cs);
		assert_int_equal(ndone, 1);
		if (getenv("TEST_HTTPS_VERBOSE"))
			fprintf(stderr, "  round %d -> %s: %s\n", round,
			    https_fail_name(RES.fail), RES.err.msg);
		if (round == 0)
			assert_contains(RES.err.msg, "Broken pipe");
		assert_true(RES.fail == HTTPS_E_TLS || RES.fail == HTTPS_E_IO ||
		    RES.fail == HTTPS_E_CONNECT);
	}
	close(ls);
}

/* done may start the next fetch on the same struct */
static int chain_left;

static void
on_done_restart(struct https_fetch *f, const struct https_result *res, void *arg)
{
	struct https_request q;

	(void)arg;
	RES = *res;
	if (res->fail == HTTPS_OK && --chain_left > 0) {
		q = request(res->url);     /* both point into f->res */
		q.if_none_match = res->etag;
		q.done = on_done_restart;
		if (https_fetch_start(f, &R, &q) != 0)
			fail_msg("restart: %s", f->res.err.msg);
		return;
	}
	ndone++;
}

static void
test_restart_from_done(void **state)
{
	char url[256];
	struct https_request q;
	int fds = count_fds();

	(void)state;
	url_of(url, sizeof url, SV_GOOD, "/ok?n=100");
	q = request(url);
	q.done = on_done_restart;
	reset_run();
	chain_left = 3;
	assert_int_equal(https_fetch_start(&F, &R, &q), 0);
	assert_true(run_until(&ndone, 10000));
	assert_fail(HTTPS_OK);
	assert_int_equal(chain_left, 0);
	assert_int_equal(blen, 300);
	assert_int_equal(count_fds(), fds);
	assert_no_stray_children();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_url_split),
		cmocka_unit_test(test_retry_after),
		cmocka_unit_test(test_trust),
		cmocka_unit_test(test_dns_localhost),
		cmocka_unit_test(test_dns_numeric_and_errors),
		cmocka_unit_test(test_ok_content_length),
		cmocka_unit_test(test_ok_chunked),
		cmocka_unit_test(test_ok_rsa),
		cmocka_unit_test(test_request_headers),
		cmocka_unit_test(test_etag_304),
		cmocka_unit_test(test_redirects),
		cmocka_unit_test(test_redirect_http_refused),
		cmocka_unit_test(test_name_mismatch),
		cmocka_unit_test(test_untrusted),
		cmocka_unit_test(test_expired),
		cmocka_unit_test(test_stall_deadline),
		cmocka_unit_test(test_handshake_stall),
		cmocka_unit_test(test_connect_timeout),
		cmocka_unit_test(test_connect_refused),
		cmocka_unit_test(test_too_big),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_status_retry_after),
		cmocka_unit_test(test_sink_abort),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_start_errors),
		cmocka_unit_test(test_no_sigpipe),
		cmocka_unit_test(test_restart_from_done),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
