/*
 * probe.h -- what the commands ask of a running server and of the managed
 * binary, without a supervisor: the live probe behind `version` (a
 * connect, or a whole codex-initialize session for servers that speak
 * it), the managed binary's own `--version` (seed-contract.md §3.1: the
 * second token of its output), and managedPath / managedVersion.  Every
 * wait is bounded, on a private reactor.
 */
#ifndef APPD_PROBE_H
#define APPD_PROBE_H

#include <stddef.h>

#include "core/base/err.h"
#include "core/home.h"
#include "core/settings.h"

/* 1 when the control socket answers (`version`, `cap` bytes, filled when
 * the server speaks codex-initialize), 0 when nothing listens, -1 with
 * ERR_NOT_RUNNING when the probe failed. */
int probe_server(const struct home *h, const struct settings *s, char *version, size_t cap,
		 struct err *e);

/* The second token of `<bin> --version` (bounded: 5 s) into `out`, or ""
 * when it cannot be had. */
void probe_version(const char *bin, char *out, size_t cap);

/*
 * managedPath: the expanded server.command's program (static storage;
 * NULL when the command does not expand).  managedVersion into `version`
 * ("" when unknown): for the codex profile `--version`, cached in
 * state/managed-version keyed on the binary's identity (device, inode,
 * size, mtime) -- with `cache_only` the cache alone, never running the
 * binary; otherwise the installed release's version when the program is
 * under packages/current.
 */
const char *probe_managed(const struct home *h, const struct settings *s, int cache_only,
			  char *version, size_t cap);

#endif
