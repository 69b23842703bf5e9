/*
 * sockprep.h -- the control socket path: probing and preparation under
 * run/startup.lock (DESIGN.md "Control socket"; seed-contract.md §6
 * prepare_control_socket_path, with its gaps closed: a refused connect
 * outside the lock is never proof, a path too long for sun_path fails
 * before anything is created, and nothing that is not a socket or a link
 * in our private run dir is ever deleted).
 */
#ifndef APPD_SOCKPREP_H
#define APPD_SOCKPREP_H

#include "core/base/err.h"

/* Non-blocking connect to the Unix socket at `path`: 1 when something
 * accepts (or its backlog is full), 0 when nothing listens or the path
 * is absent, -1/errno otherwise. */
int sock_probe(const char *path);
/* 0 when `path` fits sockaddr_un.sun_path, else -1 with a clear error. */
int sock_path_check(const char *path, struct err *e);
/* Under `lock_path`: leave `path` free for a new listener.  A live
 * listener is ERR_SOCKET_IN_USE (exit 5) and nothing is changed; a socket
 * or link nobody accepts on is probed again and removed; anything else is
 * an error and is left alone. */
int sock_prepare(const char *path, const char *lock_path, struct err *e);
/* Socket activation (sd_listen_fds(3) protocol): under `lock_path`,
 * prepare `path` as above, then bind a listening socket (0600, CLOEXEC,
 * non-blocking) at `anchor` -- a hidden name in a private directory of
 * ours -- and hard-link it to `path`, so the public path can be
 * re-created from the anchor if it disappears (sock_repair).  Returns the
 * listener fd, or -1 with `e` filled. */
int sock_listen(const char *path, const char *anchor, const char *lock_path, struct err *e);
/* If `path` no longer names the anchor's inode, re-link it.  Returns 1
 * when it repaired the path, 0 when nothing was needed, -1 on failure
 * (errno). */
int sock_repair(const char *path, const char *anchor);

/* After the server is gone: remove `path` if it is a socket or link that
 * nobody accepts on (what a killed server leaves behind). */
void sock_cleanup(const char *path);

#endif
