/* test_json.c -- the JSON writer and reader, settings merge, log tail. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "core/base/fsutil.h"
#include "core/base/jsonr.h"
#include "core/base/jsonw.h"
#include "core/logcap.h"
#include "core/settings.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
writer_escapes_and_separates(void **state)
{
	char buf[256];
	struct jsonw w;

	(void)state;
	jsonw_init(&w, buf, sizeof buf);
	jsonw_obj_begin(&w);
	jsonw_kstr(&w, "a", "q\"b\\\n\x01é");
	jsonw_kint(&w, "n", -42);
	jsonw_key(&w, "arr");
	jsonw_arr_begin(&w);
	jsonw_bool(&w, 1);
	jsonw_null(&w);
	jsonw_arr_end(&w);
	jsonw_obj_end(&w);
	assert_int_equal(jsonw_finish(&w), 0);
	assert_string_equal(buf, "{\"a\":\"q\\\"b\\\\\\n\\u0001é\",\"n\":-42,\"arr\":[true,null]}");
}

static void
writer_overflow_is_reported(void **state)
{
	char buf[8];
	struct jsonw w;

	(void)state;
	jsonw_init(&w, buf, sizeof buf);
	jsonw_obj_begin(&w);
	jsonw_kstr(&w, "long", "value");
	jsonw_obj_end(&w);
	assert_int_equal(jsonw_finish(&w), -1);
	assert_int_equal(errno, ENOSPC);
	assert_true(strlen(buf) < sizeof buf);
}

static void
reader_unescapes_round_trip(void **state)
{
	const char *js = "{\"s\":\"a\\u00e9\\ud83d\\ude00\\n\",\"o\":{\"k\":[1,2,3]},\"b\":false}";
	jsmntok_t tok[32];
	struct jsonr r;
	char out[64];
	long long v;
	int b;

	(void)state;
	assert_int_equal(jsonr_parse(&r, js, strlen(js), tok, 32), 0);
	assert_int_equal(jsonr_str(&r, jsonr_get(&r, 0, "s"), out, sizeof out), 0);
	assert_string_equal(out, "a\xc3\xa9\xf0\x9f\x98\x80\n");
	assert_int_equal(jsonr_int(&r, jsonr_elem(&r, jsonr_path(&r, "o.k"), 2), &v), 0);
	assert_int_equal(v, 3);
	assert_int_equal(jsonr_bool(&r, jsonr_get(&r, 0, "b"), &b), 0);
	assert_int_equal(b, 0);
	assert_int_equal(jsonr_get(&r, 0, "missing"), -1);
	assert_int_equal(jsonr_parse(&r, "{\"a\":1} x", 9, tok, 32), -1);
	assert_int_equal(jsonr_parse(&r, "[1]", 3, tok, 32), -1);
}

/* Structures jsmn tokenizes but that are not JSON objects of name/value
 * pairs: refused, so nothing walks them out of step (fuzz_json). */
static void
reader_refuses_misshapen_members(void **state)
{
	static const char *const bad[] = {
		"{\"a\",\"b\":1}",               /* a name without a value */
		"{\"a\"}",
		"{\"x\":[\"a\":1]}",             /* ':' inside an array */
		"{\"x\":{\"y\":1,\"z\"}}",
		"{1:2}",                          /* a name that is not a string */
		"{\"a\":1",                        /* unclosed */
	};
	jsmntok_t tok[32];
	struct jsonr r;
	char key[16];

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		errno = 0;
		assert_int_equal(jsonr_parse(&r, bad[i], strlen(bad[i]), tok, 32), -1);
		assert_int_equal(errno, EINVAL);
	}
	assert_int_equal(jsonr_parse(&r, "{\"a\":{},\"b\":[],\"a\":[1,{\"c\":\"d\"}]}", 33,
	    tok, 32), 0);
	assert_int_equal(jsonr_dup_key(&r, key, sizeof key), 1);
	assert_string_equal(key, "a");
}

static void
set_keeps_unknown_members(void **state)
{
	const char *js = "{\"zeta\":{\"x\":[1,\"two\"]},\"server\":{\"command\":[\"old\"],\"keep\":\"me\"},\"n\":null}";
	char out[512];

	(void)state;
	assert_int_equal(jsonr_set(js, strlen(js), "server.command", "[\"new\",\"arg\"]", out, sizeof out), 0);
	assert_string_equal(out, "{\"zeta\":{\"x\":[1,\"two\"]},\"server\":{\"command\":[\"new\",\"arg\"],\"keep\":\"me\"},\"n\":null}");
	assert_int_equal(jsonr_set("{}", 2, "server.readiness", "\"notify\"", out, sizeof out), 0);
	assert_string_equal(out, "{\"server\":{\"readiness\":\"notify\"}}");
	assert_int_equal(jsonr_set("", 0, "a.b.c", "1", out, sizeof out), 0);
	assert_string_equal(out, "{\"a\":{\"b\":{\"c\":1}}}");
	assert_int_equal(jsonr_set("{\"a\":1,\"b\":2}", 13, "a", NULL, out, sizeof out), 0);
	assert_string_equal(out, "{\"b\":2}");
	assert_int_equal(jsonr_set("{\"a\":1}", 7, "b", "2", out, 6), -1);
	assert_int_equal(errno, ENOSPC);
}

static void
settings_save_command_keeps_other_keys(void **state)
{
	char dir[] = "/tmp/appd-settings-XXXXXX", path[128], text[1024];
	char *argv[] = { "/bin/srv", "--listen", "unix://{socket}" };
	struct settings s;
	struct err e;
	size_t len;
	int fd;

	(void)state;
	err_clear(&e);
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/settings.json", dir);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	const char *orig = "{\"future\":{\"knob\":7},\"server\":{\"readiness\":\"none\"}}";
	assert_int_equal(write(fd, orig, strlen(orig)), (ssize_t)strlen(orig));
	close(fd);
	assert_int_equal(settings_save_command(path, 3, argv, &e), 0);
	assert_int_equal(fs_read_file(path, text, sizeof text, &len), 0);
	assert_non_null(strstr(text, "\"future\":{\"knob\":7}"));
	assert_int_equal(settings_load(path, &s, &e), 0);
	assert_int_equal(s.readiness, READY_NONE);
	assert_int_equal(s.argc, 3);
	assert_string_equal(settings_arg(&s, 2), "unix://{socket}");
	{
		/* a plain copy is whole: clobbering the source leaves it intact */
		static struct settings copy;
		copy = s;
		memset(&s, 'x', sizeof s);
		assert_int_equal(copy.argc, 3);
		assert_string_equal(settings_arg(&copy, 0), "/bin/srv");
		assert_string_equal(settings_arg(&copy, 2), "unix://{socket}");
	}
	unlink(path);
	rmdir(dir);
}

static void
read_stderr_log_tail_returns_recent_complete_lines(void **state)
{
	char path[] = "/tmp/appd-tail-XXXXXX";
	char *content, out[4097];
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	content = malloc(4100 + 64);
	memset(content, 'x', 4100);
	strcpy(content + 4100, "\nrecent error\nusage");
	assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	close(fd);
	assert_int_equal(log_tail(path, 4096, out, sizeof out), 0);
	assert_string_equal(out, "recent error\nusage");
	/* a short log is returned whole */
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, "a\nb", 3), 3);
	close(fd);
	assert_int_equal(log_tail(path, 4096, out, sizeof out), 0);
	assert_string_equal(out, "a\nb");
	unlink(path);
	free(content);
}

static void
iso8601_round_trips(void **state)
{
	char t[32];

	(void)state;
	iso8601_ms(1795000000123LL, t);
	assert_string_equal(t, "2026-11-18T11:06:40.123Z");
	assert_int_equal(iso8601_parse(t), 1795000000123LL);
	assert_int_equal(iso8601_parse("2026-12-31T00:00:00Z"), 1798675200000LL);
	assert_int_equal(iso8601_parse("nonsense"), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(writer_escapes_and_separates),
		cmocka_unit_test(writer_overflow_is_reported),
		cmocka_unit_test(reader_unescapes_round_trip),
		cmocka_unit_test(reader_refuses_misshapen_members),
		cmocka_unit_test(set_keeps_unknown_members),
		cmocka_unit_test(settings_save_command_keeps_other_keys),
		cmocka_unit_test(read_stderr_log_tail_returns_recent_complete_lines),
		cmocka_unit_test(iso8601_round_trips),
	};
	return cmocka_run_group_tests_name("json", tests, NULL, NULL);
}
