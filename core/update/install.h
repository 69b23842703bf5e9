/*
 * install.h -- the on-disk layout of installed releases under the home's
 * packages/ directory (DESIGN.md "Home and state files", "Updater"):
 *
 *   packages/releases/<release>/bin/<name>   an installed release, 0755;
 *                                            <release> = "<version>-<target>"
 *   packages/current  -> releases/<release>  relative symlink
 *   packages/previous -> releases/<release>  the release before current
 *   packages/appd/appd-<hex16>               appd's own binary by the first
 *                                            16 hex of its SHA-256, 0755
 *   packages/releases/.dl-<pid>-<hex16>      temp downloads in flight
 *   packages/releases/.stage-<pid>-<hex16>/  a release being assembled
 *   packages/.link-<pid>-<hex16>             temp symlink renamed over a link
 *
 * Crash safety: a release directory only appears by rename(2) of a
 * complete, fsync'd stage directory, and a link only changes by rename(2)
 * of a temp symlink, so after a SIGKILL at any moment `current` points at
 * a complete release (the old or the new one).  Leftover temp entries
 * carry their creator's pid; install_prune removes those of dead
 * processes only.
 *
 * Names: a release, a binary name and a link target's last component are
 * single path components of [A-Za-z0-9._-], not starting with '.' for a
 * release (temp entries do), not "." or "..".
 *
 * Errors: -1 with `e` set (ERR_IO unless noted) and errno kept from the
 * failing call (EINVAL for a bad name).  Nothing is allocated; all paths
 * are caller-owned buffers.  Callers serialize installs (daemon.lock);
 * only prune copes with a concurrent installer.
 */
#ifndef APPD_INSTALL_H
#define APPD_INSTALL_H

#include <stddef.h>

#include "core/base/err.h"
#include "core/home.h"

struct pkgdir {
	char root[HOME_PATH_MAX];      /* packages/ */
	char releases[HOME_PATH_MAX];  /* packages/releases */
	char current[HOME_PATH_MAX];   /* packages/current */
	char previous[HOME_PATH_MAX];  /* packages/previous */
	char appd[HOME_PATH_MAX];      /* packages/appd */
	char state[HOME_PATH_MAX];     /* packages/updater.json */
};

/* Fill every path from `packages_dir` (home.h's h->packages).  ERR_IO
 * (ENAMETOOLONG) when one does not fit. */
int install_paths(struct pkgdir *p, const char *packages_dir, struct err *e);

/* Create packages/ (0700; then checked like the home's own directories:
 * ERR_UNSAFE_HOME when not ours or group/other-writable), releases/ and
 * appd/ (0755) where missing. */
int install_prepare(const struct pkgdir *p, struct err *e);

/* Create a new temp file releases/.dl-<pid>-<16 random hex> (getentropy;
 * O_RDWR|O_CREAT|O_EXCL|O_CLOEXEC|O_NOFOLLOW, 0600).  Returns the fd
 * (the caller closes it) and the file's path in `path` (cap bytes). */
int install_tmp_open(const struct pkgdir *p, char *path, size_t cap, struct err *e);

/* Make releases/<release>/bin/<name> from the verified temp file
 * `tmp_path` (in releases/): fsync and chmod 0755 it, rename it into a
 * new stage dir releases/.stage-…/bin/, fsync bin/ and the stage, rename
 * the stage to releases/<release>, fsync releases/.  An existing
 * releases/<release> is removed first, unless current or previous point
 * at it: then -1 with errno EEXIST, ERR_IO "release <release> is
 * installed and in use".  On every failure (bad names included) the temp
 * file and the stage are removed.  Fault point "during-commit" sits
 * between the two renames. */
int install_commit(const struct pkgdir *p, const char *release, const char *name,
		   const char *tmp_path, struct err *e);

/* Install the verified appd binary `tmp_path` (a temp file on the same
 * file system) as appd/appd-<first 16 hex of sha256> (fsync, chmod 0755,
 * rename, fsync appd/); `out` (cap bytes) gets that path.  A regular file
 * already there is kept: the temp file is removed and 0 returned.  The
 * temp file is removed on failure too. */
int install_commit_appd(const struct pkgdir *p, const unsigned char sha256[32],
			const char *tmp_path, char *out, size_t cap, struct err *e);

/* Point current at releases/<release> (which must be a directory): first
 * previous := current's release when current exists and names another
 * one, then current := releases/<release>.  Each change symlinks a temp
 * packages/.link-… and renames it over the link, then fsyncs packages/.
 * Fault point "during-switch" sits between the two changes.  A current
 * that exists but is not a "releases/<release>" link is an error, and is
 * left alone. */
int install_switch(const struct pkgdir *p, const char *release, struct err *e);

/* Undo a switch: current := releases/<back> (must be a directory), then
 * previous := releases/<prev_before>, or previous removed when
 * prev_before is NULL or "".  Same link protocol as install_switch. */
int install_switch_back(const struct pkgdir *p, const char *back, const char *prev_before,
			struct err *e);

/* Which release the symlink `link_path` names: 0 with `release` (cap
 * bytes) filled; 1 when the link does not exist (`release` = ""); -1 when
 * it cannot be read, is not a symlink, or its target is not exactly
 * "releases/<release>" (errno EINVAL), or does not fit `cap`. */
int install_link_read(const char *link_path, char *release, size_t cap, struct err *e);

/* Split "<version>-<target>" for a known `target`: 0 with `version` (cap
 * bytes, non-empty), or -1 when `release` does not end in "-<target>"
 * after a non-empty version, or the version does not fit.  No `err`. */
int install_release_version(const char *release, const char *target, char *version,
			    size_t cap);
/* The version of the release the link `link_path` (packages/current)
 * points at: install_link_read + install_release_version.  0 with
 * `version` filled, 1 when nothing is installed or the link names a
 * release of another shape (`version` is ""), -1 when the link cannot
 * be read (`e` set). */
int install_link_version(const char *link_path, const char *target, char *version,
			 size_t cap, struct err *e);

/* Remove (recursively, never following symlinks): every release other
 * than current's and previous's (none when either link is unreadable);
 * .dl-*, .stage-* (releases/) and .link-* (packages/) leftovers whose
 * embedded pid is dead (kill(pid, 0) fails with ESRCH) -- a live pid's,
 * our own included, are kept, as are names without a pid; and, unless
 * `keep_appd` is NULL, every appd/appd-* except `keep_appd` (matched by
 * name or by device and inode).  Best effort: keeps going after an
 * error.  Returns how many entries were removed, or -1 with the first
 * error in `e`. */
int install_prune(const struct pkgdir *p, const char *keep_appd, struct err *e);

/* Fault injection for crash-safety tests: raise(SIGKILL) when the
 * environment variable APPD_TEST_FAULT equals `point`.  Points:
 * "after-download" and "after-verify" (the caller's), "during-commit",
 * "during-switch" (see above), "during-prune" (a release renamed aside,
 * not yet removed). */
void install_fault(const char *point);

#endif
