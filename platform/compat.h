/*
 * compat.h -- the small POSIX differences between the Unixes appd runs
 * on, behind one set of calls so that core/ and cmd/ carry no OS
 * conditionals (DESIGN.md "Shape").
 *
 *   call              Linux / FreeBSD              macOS
 *   compat_pipe       pipe2(O_CLOEXEC[|O_NONBLOCK]) pipe + fcntl (not atomic
 *                                                  with fork; callers fork
 *                                                  only from one thread)
 *   compat_socket     SOCK_CLOEXEC|SOCK_NONBLOCK   socket + fcntl, SO_NOSIGPIPE
 *   compat_accept     accept4                      accept + fcntl, SO_NOSIGPIPE
 *   COMPAT_NOSIGNAL   MSG_NOSIGNAL                 0 (SO_NOSIGPIPE is set)
 *   compat_wipe       explicit_bzero               memset_s
 *   compat_mtime_ns   st_mtim                      st_mtimespec
 *   compat_splice     splice(2)                    -1/ENOSYS
 *   getentropy(3)     <unistd.h>                   <sys/random.h>
 *
 * Errors: -1 with errno, as the underlying call; EINTR is not retried
 * here except where noted.  Source: pipe2(2), socket(2), accept4(2),
 * splice(2), explicit_bzero(3), stat(2) of each OS.
 */
#ifndef APPD_COMPAT_H
#define APPD_COMPAT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#if defined(__APPLE__)
#include <sys/random.h>         /* getentropy */
#endif

/* flags for compat_pipe / compat_socket / compat_accept */
#define COMPAT_NONBLOCK 0x1

#if defined(MSG_NOSIGNAL)
#define COMPAT_NOSIGNAL MSG_NOSIGNAL
#else
#define COMPAT_NOSIGNAL 0
#endif

/* A pipe whose both ends are close-on-exec (and non-blocking with
 * COMPAT_NONBLOCK).  0 or -1/errno. */
int compat_pipe(int p[2], int flags);

/* socket(2) with close-on-exec (and COMPAT_NONBLOCK), never raising
 * SIGPIPE on a send to a closed peer when sent with COMPAT_NOSIGNAL.
 * The fd, or -1/errno. */
int compat_socket(int domain, int type, int flags);

/* accept(2) on `fd` with the same properties as compat_socket; EINTR is
 * retried.  The fd, or -1/errno (EAGAIN when nothing is pending). */
int compat_accept(int fd, int flags);

/* Clear `n` bytes at `p` in a way the compiler may not elide (keys). */
void compat_wipe(void *p, size_t n);

/* A file's modification time in nanoseconds since the epoch. */
int64_t compat_mtime_ns(const struct stat *st);

/* 1 when compat_splice can move data between a pipe and another fd. */
int compat_has_splice(void);
/* Move up to `max` bytes from `in` to `out` without a user buffer,
 * non-blocking (SPLICE_F_NONBLOCK); EINTR is retried.  Bytes moved, 0 at
 * EOF, or -1/errno (ENOSYS where there is no splice). */
ssize_t compat_splice(int in, int out, size_t max);

/* For a small static that a long-lived process writes (a cache of a few
 * bytes): placed in the data segment, whose page every process has
 * resident anyway, instead of .bss, where it would make a page of its own
 * resident among untouched buffers.  ELF only (elsewhere: nothing). */
#if defined(__ELF__)
#define COMPAT_RESIDENT __attribute__((section(".data.appd_resident")))
#else
#define COMPAT_RESIDENT
#endif

/* Zeroed private memory of `n` bytes for a transient buffer, returned
 * to the kernel by compat_unmap (so a long-lived process does not keep
 * the pages resident).  NULL/errno on failure; compat_unmap keeps errno. */
void *compat_map(size_t n);
void compat_unmap(void *p, size_t n);

/* Return to the kernel the stack pages below the caller's frame, which a
 * deep call chain touched and which a long-lived process would otherwise
 * keep for good.  Only from a shallow frame (an event loop's), with
 * nothing live below it.  Linux: madvise(MADV_DONTNEED); elsewhere
 * MADV_FREE (freed when memory is short).  Never fails; errno kept. */
void compat_stack_release(void);

/* Mark every fd >= `low` close-on-exec: what a process inherited, at any
 * number (not only below 1024), must not reach what it executes.  Linux:
 * close_range(2) with CLOSE_RANGE_CLOEXEC (5.11), else each entry of
 * /proc/self/fd; elsewhere (and as the last resort) each fd up to
 * RLIMIT_NOFILE, at most 1 << 20.  Safe between fork and exec of a
 * single-threaded process.  Never fails. */
void compat_cloexec_from(int low);

/* The uid of the process at the other end of a connected AF_UNIX socket
 * (SO_PEERCRED on Linux, getpeereid(3) on the BSDs and macOS).  0 or
 * -1/errno. */
int compat_peer_uid(int fd, uid_t *uid);

/* The pid and uid of the process at the other end of a connected AF_UNIX
 * socket; for a client of a listening socket, the process that called
 * listen(2).  Linux SO_PEERCRED (socket(7)); macOS LOCAL_PEERPID with
 * getpeereid(3); FreeBSD LOCAL_PEERCRED's cr_pid (FreeBSD 13 and later,
 * unix(4)).  *pid is 0 when the OS does not say.  0 or -1/errno. */
int compat_peer_cred(int fd, pid_t *pid, uid_t *uid);

#endif
