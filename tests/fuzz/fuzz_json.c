/*
 * fuzz_json.c -- the JSON reader (core/base/jsonr.c over jsmn) and the
 * three loaders that read state files appd finds on disk: settings.json
 * (settings_load, through a real file as appd reads it), the pidfile
 * record (pidrec_parse) and status.json (status_parse).  The first byte
 * picks the loader; the rest is the document.
 */
#include "tests/fuzz/fuzz.h"

#include <fcntl.h>
#include <unistd.h>

#include "core/base/jsonr.h"
#include "core/base/fsutil.h"
#include "core/pidfile.h"
#include "core/settings.h"
#include "core/status.h"

static char settings_path[64];

static void
walk(const struct jsonr *r)
{
	char buf[256], key[64];
	long long v;
	int b;

	/* every accessor on every token: none may read out of bounds */
	for (int i = 0; i < r->ntok; i++) {
		if (jsonr_str(r, i, buf, sizeof buf) == 0 && !fuzz_terminated(buf, sizeof buf))
			fuzz_fail("jsonr_str result not terminated");
		(void)jsonr_int(r, i, &v);
		(void)jsonr_bool(r, i, &b);
		(void)jsonr_is_null(r, i);
		(void)jsonr_type(r, i);
		if (jsonr_skip(r, i) > r->ntok)
			fuzz_fail("jsonr_skip past the end");
	}
	(void)jsonr_path(r, "server.command");
	(void)jsonr_elem(r, jsonr_path(r, "server.command"), 3);
	(void)jsonr_time(r, 0, "startedAt");
	if (jsonr_dup_key(r, key, sizeof key) && !fuzz_terminated(key, sizeof key))
		fuzz_fail("jsonr_dup_key result not terminated");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *js = (const char *)data + 1;
	size_t len = size - 1;

	if (size < 1)
		return 0;
	switch (data[0] % 4) {
	case 0: {
		jsmntok_t tok[256];
		struct jsonr r;
		if (jsonr_parse(&r, js, len, tok, 256) == 0)
			walk(&r);
		break;
	}
	case 1: {
		struct pid_record rec, again;
		char out[2048];         /* PIDFILE_MAX in core/pidfile.c */
		int n;

		if (pidrec_parse(js, len, &rec) < 0)
			break;
		if (!fuzz_terminated(rec.boot_id, sizeof rec.boot_id) ||
		    !fuzz_terminated(rec.exe, sizeof rec.exe))
			fuzz_fail("pid record strings not terminated");
		/* what was accepted is written back as a record that reads
		 * as the same process */
		n = pidrec_format(&rec, out, sizeof out);
		if (n < 0 || pidrec_parse(out, strlen(out), &again) < 0 ||
		    !pidrec_same(&rec, &again))
			fuzz_fail("pid record does not survive format + parse");
		break;
	}
	case 2: {
		static struct sup_status st;
		static char out[16384];
		if (status_parse(js, len, &st) == 0)
			(void)status_format(&st, out, sizeof out);
		break;
	}
	default: {
		static struct settings s;
		struct err e;
		int fd;

		if (settings_path[0] == '\0')
			snprintf(settings_path, sizeof settings_path,
			    "/dev/shm/appd-fuzz-settings-%ld.json", (long)getpid());
		fd = open(settings_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0)
			fuzz_fail("cannot write %s", settings_path);
		if (len > 0 && write(fd, js, len) != (ssize_t)len)
			fuzz_fail("short write to %s", settings_path);
		close(fd);
		err_clear(&e);
		if (settings_load(settings_path, &s, &e) == 0 && s.argc < 1)
			fuzz_fail("settings loaded without a command");
		break;
	}
	}
	return 0;
}
