/*
 * unmanaged.h -- who runs the server on our socket when appd does not.
 *
 * A live server on run/app-server.sock with no live supervisor and no
 * record of ours is unmanaged (seed-contract.md §1.1: refused, exit 5).
 * Codex users who hit that were told nothing they could act on
 * (openai/codex#24542, #37893), so appd now names it: one probe
 * connection, and the listener's credentials from the kernel
 * (compat_peer_cred: SO_PEERCRED on Linux, the process that called
 * listen(2)), its executable and start time from platform/proc.h.
 *
 * Memory: everything is in the caller's struct; nothing is allocated.
 */
#ifndef APPD_UNMANAGED_H
#define APPD_UNMANAGED_H

#include <stdint.h>

#include "core/base/err.h"

struct unmanaged {
	long pid;                       /* 0: the OS did not say */
	long uid;
	char exe[256];                  /* "" when unreadable (not ours) */
	long long started_at;           /* wall ms since the epoch; 0 unknown */
	unsigned long long start_ticks; /* identity (platform/proc.h) */
	char json[640];                 /* {"pid":…,"uid":…,"exe":…,"startedAt":…} */
};

/*
 * Connect to the Unix socket `sock` and identify the listener into `u`
 * (u->json ready to print).  1 identified (u->pid may still be 0 where the
 * OS gives no pid), 0 nothing listens (ENOENT, ECONNREFUSED), -1 with
 * ERR_IO in `e` for any other failure.
 */
int unmanaged_identify(const char *sock, struct unmanaged *u, struct err *e);

#endif
