/*
 * test_fmt.c -- core/base/fmt (the printf subset in the shipped binary)
 * against the C library's snprintf for every conversion appd uses, and
 * core/base/scan against the formats appd parses.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "core/base/fmt.h"
#include "core/base/fsutil.h"
#include "core/base/scan.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define SAME(...) do { \
	char a_[256], b_[256]; \
	int na_ = fmt_n(a_, sizeof a_, __VA_ARGS__); \
	int nb_ = snprintf(b_, sizeof b_, __VA_ARGS__); \
	if (na_ != nb_ || strcmp(a_, b_) != 0) \
		fail_msg("%s: fmt \"%s\" (%d), libc \"%s\" (%d)", #__VA_ARGS__, a_, na_, b_, nb_); \
} while (0)

static void
integers_match_the_c_library(void **state)
{
	static const long long vals[] = { 0, 1, -1, 7, 42, -42, 999, 65535, INT_MAX, INT_MIN,
		LLONG_MAX, LLONG_MIN };

	(void)state;
	for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
		long long v = vals[i];
		SAME("%d|%5d|%-5d|%05d|%.3d|%2d", (int)v, (int)v, (int)v, (int)v, (int)v, (int)v);
		SAME("%ld %lld %lli", (long)v, v, v);
		SAME("%u %x %X %o %04o", (unsigned)v, (unsigned)v, (unsigned)v, (unsigned)v,
		    (unsigned)v & 0777);
		SAME("%llu %llx %zu", (unsigned long long)v, (unsigned long long)v, (size_t)v);
		SAME("%02d:%02d:%03d %04d", (int)(v % 60), (int)(v % 7), (int)(v % 1000),
		    (int)(v % 10000));
	}
	SAME("%.0d|%.0u|%5.0d", 0, 0u, 0);
	SAME("%*d|%-*d|%.*d", 6, 12, 6, 12, 4, 12);
	SAME("%hhu %hu %jd %td", (unsigned char)300, (unsigned short)70000, (intmax_t)-5,
	    (ptrdiff_t)9);
}

static void
strings_and_the_rest_match(void **state)
{
	(void)state;
	SAME("%s|%10s|%-10s|%.3s|%.*s|%.0s", "abc", "abc", "abc", "abcdef", 2, "xyz", "gone");
	SAME("%c%c|%3c|%-3c|", 'a', 'b', 'z', 'y');
	SAME("100%% %s", "done");
	SAME("%s", "");
	SAME("plain text, no conversions");
}

static void
truncation_reports_the_whole_length(void **state)
{
	char buf[8];

	(void)state;
	assert_int_equal(fmt_n(buf, sizeof buf, "%s-%d", "abcdef", 1234), 11);
	assert_string_equal(buf, "abcdef-");
	assert_int_equal(fmt_n(buf, 1, "%d", 5), 1);
	assert_string_equal(buf, "");
	assert_int_equal(fmt_n(NULL, 0, "%s", "xyz"), 3);
	/* str_fmt says when it was cut */
	assert_int_equal(str_fmt(buf, sizeof buf, "%s", "1234567"), 0);
	assert_int_equal(str_fmt(buf, sizeof buf, "%s", "12345678"), -1);
}

static void
scanning(void **state)
{
	const char *p = "ready 1234 rest";
	char w[8];
	long long v;
	int d;

	(void)state;
	assert_int_equal(scan_lit(&p, "ready "), 0);
	assert_int_equal(scan_ll(&p, &v), 0);
	assert_int_equal(v, 1234);
	assert_int_equal(scan_lit(&p, "x"), -1);     /* no match: p unchanged */
	assert_string_equal(p, " rest");
	scan_blank(&p);
	assert_int_equal(scan_word(&p, w, sizeof w), 0);
	assert_string_equal(w, "rest");
	assert_int_equal(scan_word(&p, w, sizeof w), -1);
	p = "-17x";
	assert_int_equal(scan_ll(&p, &v), 0);
	assert_int_equal(v, -17);
	p = "1234567890123456789";
	assert_int_equal(scan_ll(&p, &v), -1);        /* 19 digits: refused */
	p = "20261";
	assert_int_equal(scan_digits(&p, 4, &d), 0);
	assert_int_equal(d, 2026);
	assert_string_equal(p, "1");
	p = "toolongword";
	assert_int_equal(scan_word(&p, w, sizeof w), -1);
	assert_string_equal(p, "toolongword");
	p = "Sun, 06";
	assert_int_equal(scan_alpha(&p, w, sizeof w), 0);
	assert_string_equal(w, "Sun");
}

static void
iso8601_round_trips(void **state)
{
	static const int64_t ms[] = { 0, 1, 86399999, 951782400000LL /* 2000-02-29 */,
		1798761599999LL /* 2026-12-31T23:59:59.999 */, 4102444800000LL /* 2100-01-01 */ };
	char t[32];

	(void)state;
	iso8601_ms(951782400123LL, t);
	assert_string_equal(t, "2000-02-29T00:00:00.123Z");
	for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
		iso8601_ms(ms[i], t);
		assert_int_equal(iso8601_parse(t), ms[i]);
	}
	assert_int_equal(iso8601_parse("2026-13-01T00:00:00Z"), -1);
	assert_int_equal(iso8601_parse("2026-12-01T00:00:00"), -1);
	assert_int_equal(iso8601_parse("2026-12-01T00:00:00.5Z"), 1796083200500LL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(integers_match_the_c_library),
		cmocka_unit_test(strings_and_the_rest_match),
		cmocka_unit_test(truncation_reports_the_whole_length),
		cmocka_unit_test(scanning),
		cmocka_unit_test(iso8601_round_trips),
	};
	return cmocka_run_group_tests_name("fmt and scan", tests, NULL, NULL);
}
