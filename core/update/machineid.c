/* machineid.c -- see machineid.h. */
#include "core/update/machineid.h"
#include "core/base/entropy.h"
#include "core/base/fsutil.h"
#include "core/base/hex.h"

#include <errno.h>
#include <string.h>

/* First line of `path` if it is a usable id: 1 found, 0 not (missing or
 * unusable), -1 read error (errno). */
static int
read_id(const char *path, char out[MACHINE_ID_MAX])
{
	char buf[512];
	size_t len, n = 0;

	if (fs_read_file(path, buf, sizeof buf, &len) < 0)
		return errno == ENOENT ? 0 : -1;
	while (n < len && buf[n] != '\n')
		n++;
	if (n == 0 || n >= MACHINE_ID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (buf[i] <= 0x20 || buf[i] >= 0x7f)
			return 0;
	buf[n] = '\0';
	/* systemd writes this before first boot completes (machine-id(5)) */
	if (strcmp(buf, "uninitialized") == 0)
		return 0;
	memcpy(out, buf, n + 1);
	return 1;
}

int
machineid_get_from(const char *const *paths, int n, const char *fallback_path,
			 char out[MACHINE_ID_MAX], struct err *e)
{
	unsigned char raw[16];
	char text[2 * sizeof raw + 2];
	int i, rc;

	for (i = 0; i < n; i++)
		if (read_id(paths[i], out) == 1)
			return 0;
	rc = read_id(fallback_path, out);
	if (rc == 1)
		return 0;
	if (rc < 0) {
		err_ctx_str(e, "path", fallback_path);
		return err_sys(e, ERR_IO, "cannot read machine id %s", fallback_path);
	}
	if (entropy_get(raw, sizeof raw, e) < 0)
		return -1;
	hex_encode(raw, sizeof raw, text);
	text[2 * sizeof raw] = '\n';
	if (fs_write_atomic(fallback_path, text, 2 * sizeof raw + 1, 0600) < 0) {
		err_ctx_str(e, "path", fallback_path);
		return err_sys(e, ERR_IO, "cannot write machine id %s", fallback_path);
	}
	text[2 * sizeof raw] = '\0';
	memcpy(out, text, 2 * sizeof raw + 1);
	return 0;
}

int
machineid_system(char out[MACHINE_ID_MAX])
{
	static const char *const sys[] = { "/etc/machine-id", "/var/lib/dbus/machine-id" };

	for (size_t i = 0; i < sizeof sys / sizeof sys[0]; i++)
		if (read_id(sys[i], out) == 1)
			return 1;
	return 0;
}

int
machineid_get(const char *fallback_path, char out[MACHINE_ID_MAX], struct err *e)
{
	static const char *const sys[] = { "/etc/machine-id", "/var/lib/dbus/machine-id" };

	return machineid_get_from(sys, 2, fallback_path, out, e);
}
