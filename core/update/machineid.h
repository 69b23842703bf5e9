/*
 * machineid.h -- this host's stable machine id, the input of the rollout
 * bucket (DESIGN.md "Updater") and of per-host record ownership.
 */
#ifndef APPD_MACHINEID_H
#define APPD_MACHINEID_H

#include "core/base/err.h"

#define MACHINE_ID_MAX 128          /* with the NUL */

/*
 * The first line of /etc/machine-id, else of /var/lib/dbus/machine-id
 * (machine-id(5)), else of `fallback_path`; when none exists, 16 random
 * bytes as 32 hex characters are written to `fallback_path` (0600,
 * atomically) and returned.  Only a non-empty line of printable ASCII
 * without spaces counts, and systemd's "uninitialized" does not.  `out`
 * gets at most MACHINE_ID_MAX bytes.  0, or -1 with ERR_IO when the
 * fallback cannot be read or written.
 */
int machineid_get(const char *fallback_path, char out[MACHINE_ID_MAX], struct err *e);
/* The system's own id alone (/etc/machine-id, /var/lib/dbus/machine-id):
 * 1 found, 0 none (nothing is written). */
int machineid_system(char out[MACHINE_ID_MAX]);
/* The same with an explicit list of `n` system paths (for tests). */
int machineid_get_from(const char *const *paths, int n, const char *fallback_path,
		       char out[MACHINE_ID_MAX], struct err *e);

#endif
