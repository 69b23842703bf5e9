/*
 * test_settings.c -- settings.json (core/settings.h, DESIGN.md
 * "Settings"): defaults, every member's type and range, the codex
 * profile, remote control, placeholders, and that a bad file is an
 * error naming the member and is left as it is.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "core/base/fsutil.h"
#include "core/settings.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64], path[128];
static struct settings S;
static struct err E;

static int
setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/appd-settings-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, sizeof path, "%s/settings.json", dir);
	err_clear(&E);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	unlink(path);
	rmdir(dir);
	return 0;
}

static void
write_settings(const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static void
fake_home(struct home *h)
{
	memset(h, 0, sizeof *h);
	h->root = "/h";
	h->socket = "/h/run/app-server.sock";
	h->current = "/h/packages/current";
}

static void
missing_file_gives_the_defaults(void **state)
{
	(void)state;
	assert_int_equal(settings_load(path, &S, &E), 0);
	assert_int_equal(S.from_file, 0);
	assert_int_equal(S.argc, 3);
	assert_string_equal(settings_arg(&S, 0), "{current}/bin/app-server");
	assert_string_equal(settings_arg(&S, 2), "unix://{socket}");
	assert_int_equal(S.readiness, READY_CONNECT);
	assert_int_equal(S.ready_timeout_s, 10);
	assert_int_equal(S.grace_s, 10);
	assert_int_equal(S.restart, RESTART_ON_FAILURE);
	assert_int_equal(S.socket_activation, 0);
	assert_int_equal(S.remote_control, 0);
	assert_int_equal(S.upd.enabled, 0);
	assert_int_equal(S.upd.interval_min, 60);
	assert_string_equal(settings_str(&S, S.upd.name), "app-server");
}

static void
every_member_is_read(void **state)
{
	(void)state;
	write_settings("{\"server\":{\"command\":[\"/bin/srv\",\"-x\"],\"readiness\":\"notify\","
	    "\"readyTimeoutSeconds\":3,\"shutdownGraceSeconds\":0,\"restart\":\"never\","
	    "\"socketActivation\":true,\"logMaxBytes\":8192},\"remoteControlEnabled\":true,"
	    "\"updater\":{\"intervalMinutes\":5}}");
	assert_int_equal(settings_load(path, &S, &E), 0);
	assert_int_equal(S.from_file, 1);
	assert_int_equal(S.argc, 2);
	assert_string_equal(settings_arg(&S, 1), "-x");
	assert_int_equal(S.readiness, READY_NOTIFY);
	assert_int_equal(S.ready_timeout_s, 3);
	assert_int_equal(S.grace_s, 0);
	assert_int_equal(S.restart, RESTART_NEVER);
	assert_int_equal(S.socket_activation, 1);
	assert_int_equal(S.log_max_bytes, 8192);
	assert_int_equal(S.remote_control, 1);
	assert_int_equal(S.upd.interval_min, 5);
}

/* Each bad file is refused with ERR_SETTINGS naming the member, and the
 * file is left byte for byte. */
static void
bad_members_are_named_and_the_file_is_kept(void **state)
{
	static const struct { const char *text, *names; } cases[] = {
		{ "[1,2]", "not a JSON object" },
		{ "{\"server\":{\"command\":\"/bin/srv\"}}", "server.command" },
		{ "{\"server\":{\"command\":[]}}", "server.command" },
		{ "{\"server\":{\"command\":[\"\"]}}", "server.command[0]" },
		{ "{\"server\":{\"readiness\":\"soon\"}}", "server.readiness" },
		{ "{\"server\":{\"restart\":\"sometimes\"}}", "server.restart" },
		{ "{\"server\":{\"readyTimeoutSeconds\":0}}", "server.readyTimeoutSeconds" },
		{ "{\"server\":{\"readyTimeoutSeconds\":3601}}", "server.readyTimeoutSeconds" },
		{ "{\"server\":{\"shutdownGraceSeconds\":-1}}", "server.shutdownGraceSeconds" },
		{ "{\"server\":{\"logMaxBytes\":10}}", "server.logMaxBytes" },
		{ "{\"server\":{\"socketActivation\":1}}", "server.socketActivation" },
		{ "{\"remoteControlEnabled\":\"yes\"}", "remoteControlEnabled" },
		{ "{\"profile\":\"fancy\"}", "profile" },
		{ "{\"server\":{\"remoteControlArgs\":\"--rc\"}}", "server.remoteControlArgs" },
		{ "{\"server\":{\"remoteControlDisabledEnv\":{\"A=B\":\"1\"}}}",
		  "server.remoteControlDisabledEnv" },
	};
	char back[4096];
	size_t len;

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		write_settings(cases[i].text);
		err_clear(&E);
		if (settings_load(path, &S, &E) != -1)
			fail_msg("accepted: %s", cases[i].text);
		assert_int_equal(E.code, ERR_SETTINGS);
		if (strstr(E.msg, cases[i].names) == NULL)
			fail_msg("%s: message does not name %s: %s", cases[i].text, cases[i].names, E.msg);
		assert_non_null(strstr(E.msg, path));
		assert_int_equal(fs_read_file(path, back, sizeof back, &len), 0);
		assert_int_equal(len, strlen(cases[i].text));
		assert_memory_equal(back, cases[i].text, len);
	}
}

static void
codex_profile_presets_what_codex_needs(void **state)
{
	static char buf[4096];
	char *argv[SETTINGS_MAX_ARGS + 9], *env[9];
	struct home h;

	(void)state;
	fake_home(&h);
	write_settings("{\"profile\":\"codex\"}");
	assert_int_equal(settings_load(path, &S, &E), 0);
	assert_int_equal(S.codex_profile, 1);
	assert_int_equal(S.readiness, READY_CODEX_INIT);
	assert_string_equal(settings_str(&S, S.upd.name), "codex");
	/* remote control off: the seed's env marker, no flag */
	assert_int_equal(settings_launch(&S, &h, buf, sizeof buf, argv, env, &E), 0);
	assert_string_equal(argv[0], "/h/packages/current/bin/codex");
	assert_string_equal(argv[1], "app-server");
	assert_string_equal(argv[3], "unix:///h/run/app-server.sock");
	assert_null(argv[4]);
	assert_string_equal(env[0], CODEX_RC_DISABLED_ENV);
	assert_null(env[1]);
	/* on: the flag, no marker */
	S.remote_control = 1;
	assert_int_equal(settings_launch(&S, &h, buf, sizeof buf, argv, env, &E), 0);
	assert_string_equal(argv[4], "--remote-control");
	assert_null(argv[5]);
	assert_null(env[0]);
}

static void
remote_control_members_replace_the_defaults(void **state)
{
	static char buf[4096];
	char *argv[SETTINGS_MAX_ARGS + 9], *env[9];
	struct home h;

	(void)state;
	fake_home(&h);
	write_settings("{\"server\":{\"command\":[\"srv\"],\"remoteControlArgs\":[\"--a\",\"--b\"],"
	    "\"remoteControlDisabledEnv\":{\"NO_RC\":\"1\",\"WHY\":\"off\"}}}");
	assert_int_equal(settings_load(path, &S, &E), 0);
	S.remote_control = 1;
	assert_int_equal(settings_launch(&S, &h, buf, sizeof buf, argv, env, &E), 0);
	assert_string_equal(argv[0], "srv");
	assert_string_equal(argv[1], "--a");
	assert_string_equal(argv[2], "--b");
	assert_null(argv[3]);
	S.remote_control = 0;
	assert_int_equal(settings_launch(&S, &h, buf, sizeof buf, argv, env, &E), 0);
	assert_null(argv[1]);
	assert_string_equal(env[0], "NO_RC=1");
	assert_string_equal(env[1], "WHY=off");
	assert_null(env[2]);
}

static void
placeholders_expand_and_overflow_is_an_error(void **state)
{
	static char buf[40];            /* the expansion needs 58 bytes */
	char *argv[SETTINGS_MAX_ARGS + 1];
	struct home h;

	(void)state;
	fake_home(&h);
	write_settings("{\"server\":{\"command\":[\"{home}/x\",\"{socket}\",\"a{current}b\",\"{other}\"]}}");
	assert_int_equal(settings_load(path, &S, &E), 0);
	assert_int_equal(settings_expand(&S, &h, buf, sizeof buf, argv, &E), -1);
	assert_int_equal(E.code, ERR_SETTINGS);
	{
		static char big[1024];
		assert_int_equal(settings_expand(&S, &h, big, sizeof big, argv, &E), 0);
		assert_string_equal(argv[0], "/h/x");
		assert_string_equal(argv[1], "/h/run/app-server.sock");
		assert_string_equal(argv[2], "a/h/packages/currentb");
		assert_string_equal(argv[3], "{other}");
		assert_null(argv[4]);
	}
}

static void
set_keeps_unknown_members(void **state)
{
	char back[4096];
	size_t len;

	(void)state;
	write_settings("{\"future\":[1,{\"x\":2}],\"server\":{\"restart\":\"always\"}}");
	assert_int_equal(settings_set(path, "server.readiness", "\"none\"", &E), 0);
	assert_int_equal(fs_read_file(path, back, sizeof back, &len), 0);
	assert_non_null(strstr(back, "\"future\":[1,{\"x\":2}]"));
	assert_int_equal(settings_load(path, &S, &E), 0);
	assert_int_equal(S.readiness, READY_NONE);
	assert_int_equal(S.restart, RESTART_ALWAYS);
	/* removing a member brings its default back */
	assert_int_equal(settings_set(path, "server.restart", NULL, &E), 0);
	assert_int_equal(settings_load(path, &S, &E), 0);
	assert_int_equal(S.restart, RESTART_ON_FAILURE);
}

static void
readiness_names_round_trip(void **state)
{
	static const char *const names[] = { "connect", "notify", "codex-initialize", "none" };
	char text[128];

	(void)state;
	for (int k = 0; k < 4; k++) {
		snprintf(text, sizeof text, "{\"server\":{\"readiness\":\"%s\"}}", names[k]);
		write_settings(text);
		assert_int_equal(settings_load(path, &S, &E), 0);
		assert_string_equal(readiness_name(S.readiness), names[k]);
	}
}

/* Every string member at its longest, all at once (the codex profile and
 * remote-control members rebuilt over their defaults too): each reads
 * back whole, and one byte more is refused naming the member. */
static void
longest_members_fit_together(void **state)
{
	static char text[48 * 1024], url[SETTINGS_URL_MAX + 2], ca[SETTINGS_CA_MAX + 2],
	    spec[SETTINGS_SPEC_MAX + 2], probe[SETTINGS_SPEC_MAX + 2], arg[128], rc[200];
	char key[SETTINGS_KEY_HEX + 1], name[SETTINGS_NAME_MAX + 2];
	size_t n = 0;
	int k;

	(void)state;
	memcpy(url, "https://", 8);
	memset(url + 8, 'u', SETTINGS_URL_MAX - 8);
	url[SETTINGS_URL_MAX] = '\0';
	ca[0] = '/';
	memset(ca + 1, 'c', SETTINGS_CA_MAX - 1);
	ca[SETTINGS_CA_MAX] = '\0';
	memcpy(spec, "exec:/", 6);
	memset(spec + 6, 's', SETTINGS_SPEC_MAX - 6);
	spec[SETTINGS_SPEC_MAX] = '\0';
	memcpy(probe, "exec:/", 6);
	memset(probe + 6, 'p', SETTINGS_SPEC_MAX - 6);
	probe[SETTINGS_SPEC_MAX] = '\0';
	memset(key, 'a', SETTINGS_KEY_HEX);
	key[SETTINGS_KEY_HEX] = '\0';
	memset(name, 'n', SETTINGS_NAME_MAX);
	name[SETTINGS_NAME_MAX] = '\0';
	memset(arg, 'a', sizeof arg - 1);           /* 64 x 128 bytes: 8192 */
	arg[sizeof arg - 1] = '\0';
	memset(rc, 'r', sizeof rc - 1);             /* 8 x 200 bytes: 1600 */
	rc[sizeof rc - 1] = '\0';

	n += (size_t)snprintf(text + n, sizeof text - n, "{\"profile\":\"codex\",\"server\":{"
	    "\"readiness\":\"%s\",\"liveness\":{\"probe\":\"%s\"},\"command\":[", spec, probe);
	for (k = 0; k < SETTINGS_MAX_ARGS; k++)
		n += (size_t)snprintf(text + n, sizeof text - n, "%s\"%s\"", k ? "," : "", arg);
	n += (size_t)snprintf(text + n, sizeof text - n, "],\"remoteControlArgs\":[");
	for (k = 0; k < 8; k++)
		n += (size_t)snprintf(text + n, sizeof text - n, "%s\"%s\"", k ? "," : "", rc);
	n += (size_t)snprintf(text + n, sizeof text - n, "]},\"updater\":{\"manifestUrl\":\"%s\","
	    "\"publicKeys\":[\"%s\",\"%s\"],\"caFile\":\"%s\",\"name\":\"%s\","
	    "\"target\":\"%s\"}}", url, key, key, ca, name, name);
	assert_true(n < sizeof text);
	write_settings(text);
	assert_int_equal(settings_load(path, &S, &E), 0);
	assert_int_equal(S.readiness, READY_PROBE);
	assert_string_equal(settings_str(&S, S.ready_spec), spec);
	assert_string_equal(settings_str(&S, S.live.probe), probe);
	assert_int_equal(S.argc, SETTINGS_MAX_ARGS);
	for (k = 0; k < SETTINGS_MAX_ARGS; k++)
		assert_string_equal(settings_arg(&S, k), arg);
	assert_int_equal(S.rc_argc, 8);
	for (k = 0; k < 8; k++)
		assert_string_equal(settings_rc_arg(&S, k), rc);
	assert_int_equal(S.rc_envc, 1);     /* the codex profile's marker, kept */
	assert_string_equal(settings_rc_env(&S, 0), CODEX_RC_DISABLED_ENV);
	assert_int_equal(S.upd.has_url, 1);
	assert_string_equal(settings_str(&S, S.upd.manifest_url), url);
	assert_int_equal(S.upd.nkeys, 2);
	assert_string_equal(settings_str(&S, S.upd.keys[1]), key);
	assert_string_equal(settings_str(&S, S.upd.ca_file), ca);
	assert_string_equal(settings_str(&S, S.upd.name), name);
	assert_string_equal(settings_str(&S, S.upd.target), name);

	/* one byte more of the URL, the CA file, the name: refused */
	strcat(url, "u");
	strcat(ca, "c");
	strcat(name, "n");
	{
		const struct { const char *member, *key, *value; } more[] = {
			{ "updater.manifestUrl", "manifestUrl", url },
			{ "updater.caFile", "caFile", ca },
			{ "updater.name", "name", name },
		};
		for (k = 0; k < 3; k++) {
			snprintf(text, sizeof text, "{\"updater\":{\"%s\":\"%s\"}}", more[k].key,
			    more[k].value);
			write_settings(text);
			err_clear(&E);
			assert_int_equal(settings_load(path, &S, &E), -1);
			assert_non_null(strstr(E.msg, more[k].member));
		}
	}
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(missing_file_gives_the_defaults),
		T(every_member_is_read),
		T(bad_members_are_named_and_the_file_is_kept),
		T(codex_profile_presets_what_codex_needs),
		T(remote_control_members_replace_the_defaults),
		T(placeholders_expand_and_overflow_is_an_error),
		T(set_keeps_unknown_members),
		T(readiness_names_round_trip),
		T(longest_members_fit_together),
	};
	return cmocka_run_group_tests_name("settings", tests, NULL, NULL);
}
