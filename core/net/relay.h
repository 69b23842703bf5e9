/*
 * relay.h -- the byte relay behind `appd proxy` (DESIGN.md command table;
 * seed-contract.md §1.8 `codex app-server proxy`): stdin -> socket and
 * socket -> stdout, driven by the reactor, with bounded buffers and
 * back-pressure, half-close and no allocation.
 *
 * Shape: two directions, UP (in -> sock) and DOWN (sock -> out), over
 * three distinct fds.  Each direction moves bytes in one of two ways:
 *
 *   buffer   read(2) into the direction's buffer, write(2)/send(2) out of
 *            it at once (no extra loop turn).  Read interest only while
 *            the buffer has room, write interest only while data is
 *            pending.  The buffer is RELAY_BUF_SIZE, or only its first
 *            RELAY_SMALL bytes when the direction can splice.
 *   splice   when the direction's stdio end is a pipe and a read filled
 *            those RELAY_SMALL bytes (bulk data): splice(2) straight
 *            between the pipe and the socket, no user-space copy.  The data
 *            waits in the source until the destination takes it, so
 *            back-pressure is the kernel's; after EAGAIN, FIONREAD on the
 *            source tells whether the source is empty (wait for it to be
 *            readable) or the destination is full (wait for it to be
 *            writable).  A splice that moves less than RELAY_SMALL goes
 *            back to read/write, which costs less for small messages.
 *            Switches happen only while nothing is buffered, so the order
 *            of bytes is kept.
 *
 * A regular file, or anything epoll refuses (EPERM: /dev/null), is
 * "always ready": it is never watched; a direction whose source is such
 * a file keeps write interest on the socket until the file's EOF, and one
 * whose destination is such a file writes it synchronously.
 *
 * Flags: O_NONBLOCK is set on the socket and on stdio fds that are
 * sockets or pipes; never on a tty or a file.  The original flags of
 * every fd are saved before any is changed (fd 0 and 1 may share one
 * open file description) and restored when the fd is closed and when the
 * relay ends (done or cancel).
 *
 * EOF: when `in` reaches EOF and everything read from it is written, the
 * socket is shut down for writing (half-close; the server still answers).
 * When the socket reaches EOF and everything is written to `out`, `out`
 * is closed (its flags restored first), or shut down for writing when it
 * is a socket, so the reader sees EOF.  The relay is done when both
 * directions are.  Errors (a reset, EPIPE, a failed write) end the relay
 * at once.  SIGPIPE: send(2) uses COMPAT_NOSIGNAL, but splice(2) and
 * write(2) to a pipe raise it; the caller must ignore it.
 *
 * Source of the behaviour: splice(2), epoll(7), unix(7), ioctl_fionread
 * (FIONREAD/SIOCINQ); the seed's stdio-to-uds relay (lib.rs @71163530).
 */
#ifndef APPD_RELAY_H
#define APPD_RELAY_H

#include <stddef.h>
#include <stdint.h>

#include "core/base/err.h"
#include "core/net/job.h"

struct reactor;

#define RELAY_BUF_SIZE   (64 * 1024)     /* bytes, per direction (buffer mode) */
#define RELAY_SMALL      4096            /* bytes: buffer used, and the read
                                          * size that means bulk, when the
                                          * direction can splice */
#define RELAY_SPLICE_MAX (1024 * 1024)   /* bytes asked of one splice(2) */
#define RELAY_STEP_MAX   8               /* read+write rounds per event */

/* relay_start flags */
#define RELAY_NO_SPLICE  0x1u            /* never splice (tests) */

enum { RELAY_IN = 0, RELAY_SOCK, RELAY_OUT, RELAY_NENDS };
enum { RELAY_UP = 0, RELAY_DOWN, RELAY_NDIRS };   /* in->sock, sock->out */

struct relay;
typedef void relay_done_cb(struct relay *rl, void *arg);

struct relay_end {
	int fd;
	int type;               /* RELAY_T_* in relay.c */
	int handle;             /* reactor watch, -1: not watched */
	unsigned mask;          /* current interest */
	int fl;                 /* F_GETFL at start, before any change */
	int changed;            /* we set O_NONBLOCK: restore `fl` */
	int closed;             /* closed by the relay */
};

struct relay_dir {
	int src, dst;           /* RELAY_IN / RELAY_SOCK / RELAY_OUT */
	int splice;             /* 1: may splice (a pipe end, where compat_has_splice()) */
	int bulk;               /* splicing now (while nothing is buffered) */
	int wait_dst;           /* splice: waiting for dst (else for src) */
	int blocked;            /* buffer: dst refused more (EAGAIN / partial) */
	int eof;                /* src reached EOF */
	int done;               /* EOF flushed and dst half-closed */
	size_t off, len;        /* buffer: pending bytes are buf[k][off, len) */
};

struct relay {
	/* ---- results: valid when `done` runs ---- */
	int ok;                         /* 1: both directions ended at EOF */
	struct err err;                 /* ERR_IO + message when !ok */
	uint64_t bytes[RELAY_NDIRS];    /* bytes written to each destination */
	int out_closed;                 /* `out` was closed by the relay */

	/* ---- private ---- */
	struct job job;                 /* the start/done rule: core/net/job.h */
	relay_done_cb *done;
	void *arg;
	struct relay_end end[RELAY_NENDS];
	struct relay_dir dir[RELAY_NDIRS];
	int broken;                     /* the socket refused our writes: rl->err
	                                 * says why; the rest it sent is drained */
	/* last, so the state above shares a page or two, and only the
	 * bytes a direction uses are ever touched (RELAY_SMALL of them, one
	 * page thanks to the alignment, when it can splice) */
	_Alignas(4096) unsigned char buf[RELAY_NDIRS][RELAY_BUF_SIZE];
};

/*
 * Relay `in_fd` -> `sock_fd` and `sock_fd` -> `out_fd` on reactor `r`.
 * `sock_fd` must be a connected stream socket; the three fds must be
 * distinct (fd 0 and 1 that share one file description are fine).  None
 * is owned: the relay never closes `in_fd` or `sock_fd`; it closes
 * `out_fd` at the socket's EOF (see above).  `flags`: 0 or
 * RELAY_NO_SPLICE.  `rl` is caller-owned (about 130 KiB: keep it static;
 * untouched buffer pages cost no memory) and need not be zeroed.
 *
 * Returns 0 when started: `done(rl, arg)` is then called exactly once,
 * from a reactor callback, after the relay removed its watches and
 * restored the fds' flags; results are in rl->ok / rl->err / rl->bytes.
 * Returns -1 with `rl->err` set (ERR_IO) and errno (EINVAL: bad fds,
 * ENOSPC: reactor table full, or the fstat/fcntl/epoll error) when
 * nothing was started; flags are restored and done is not called.
 *
 * Failures reported through done (ERR_IO):
 *   failed to copy data from stdin to socket: <strerror>
 *   failed to copy data from socket to stdout: <strerror>
 *   failed to shutdown socket writer: <strerror>
 *   failed to close stdout: <strerror>
 *   failed to watch <stdin|socket|stdout>: <strerror>
 */
int relay_start(struct relay *rl, struct reactor *r, int in_fd, int sock_fd, int out_fd,
    unsigned flags, relay_done_cb *done, void *arg);

/* Stop a running relay: remove its watches, restore the flags; `done` is
 * not called.  A no-op when it is not running. */
void relay_cancel(struct relay *rl);

/*
 * Connect to the Unix stream socket at `path`, waiting at most
 * `timeout_ms` for a server whose backlog is full (SO_SNDTIMEO; no
 * polling).  Returns the fd (CLOEXEC, O_NONBLOCK), or -1 with `e` set:
 *   ERR_NOT_RUNNING  nothing answers: ENOENT, ECONNREFUSED, ENOTDIR, or
 *                    the backlog stayed full ("failed to connect to socket
 *                    at <path>: <strerror>" / "timed out connecting ...")
 *   ERR_USAGE        the path does not fit sun_path
 *   ERR_IO           anything else (EACCES, ...)
 */
int relay_connect(const char *path, int timeout_ms, struct err *e);

#endif
