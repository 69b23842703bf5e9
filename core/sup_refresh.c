/*
 * sup_refresh.c -- self-refresh (the seed's updater re-exec,
 * seed-contract.md §5.2): a newly installed appd is first run as
 * `appd --version` (its output on a pipe, its exit on the reactor, bounded
 * by VERIFY_MS), then execve'd in place.  execve keeps our pid, so the
 * server stays our child and supervisor.pid stays true; the listener, the
 * output pipe and the control socket are handed over as fds named on the
 * command line; every other fd is CLOEXEC.  The signal mask survives
 * execve, so a signal that arrives meanwhile waits for the new image.
 */
#include "core/sup.h"
#include "core/childrun.h"
#include "core/base/fsutil.h"
#include "platform/compat.h"
#include "platform/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#define VERIFY_MS 2000

static int
keep_fd(int fd)
{
	return fd < 0 || fcntl(fd, F_SETFD, 0) == 0 ? 0 : -1;
}

static void
exec_new(struct sup *s)
{
	char fds[64];
	char *argv[] = { (char *)"appd", (char *)"supervise", (char *)"--handover", fds, NULL };
	extern char **environ;

	if (keep_fd(s->lfd) < 0 || keep_fd(s->out_rd) < 0 || keep_fd(s->out_wr) < 0 ||
	    keep_fd(s->ctl.lfd) < 0) {
		sup_log("self-refresh: cannot hand over the fds: %s", strerror(errno));
		goto undo;
	}
	str_fmt(fds, sizeof fds, "%d,%d,%d,%d", s->lfd, s->out_rd, s->out_wr, s->ctl.lfd);
	s->st.checking = 0;
	sup_publish(s);
	sup_log("self-refresh: executing %s in place (pid %ld, server pid %ld)", s->vfy_path,
	    (long)getpid(), (long)s->srv);
	execve(s->vfy_path, argv, environ);
	sup_log("self-refresh: cannot execute %s: %s", s->vfy_path, strerror(errno));
undo:
	if (s->lfd >= 0)
		fd_cloexec(s->lfd);
	fd_cloexec(s->out_rd);
	fd_cloexec(s->out_wr);
	if (s->ctl.lfd >= 0)
		fd_cloexec(s->ctl.lfd);
}

/* `appd --version` of the new binary ended (core/childrun.h): exec it
 * when it said "appd " and exited 0. */
static void
probe_over(struct childrun *c, void *arg)
{
	struct sup *s = arg;
	int ok = !c->timed_out && c->exited && c->status == 0 && c->len >= 5 &&
	    memcmp(s->vfy_out, "appd ", 5) == 0;

	if (c->timed_out)
		sup_log("self-refresh: %s --version did not finish within %d ms", s->vfy_path,
		    VERIFY_MS);
	if (ok && s->state != SRV_STOPPING && s->upd_phase == UPH_NONE)
		exec_new(s);
	else if (!ok)
		sup_log("self-refresh: %s does not run as appd; keeping this one", s->vfy_path);
	upd_flow_next(s);
}

void
refresh_start(struct sup *s, const char *path)
{
	static char *argv[] = { NULL, (char *)"--version", NULL };
	struct err *e = sup_err();

	if (s->state == SRV_STOPPING || s->upd_phase != UPH_NONE || childrun_running(&s->vfy))
		return;
	str_copy(s->vfy_path, sizeof s->vfy_path, path);
	argv[0] = s->vfy_path;
	if (childrun_start(&s->vfy, &s->r, childrun_exec, argv, s->vfy_out, sizeof s->vfy_out,
	    VERIFY_MS, probe_over, s, e) < 0)
		sup_log("self-refresh: cannot run %s: %s", path, e->msg);
}

void
refresh_cancel(struct sup *s)
{
	childrun_cancel(&s->vfy);
}

pid_t
refresh_child(const struct sup *s)
{
	return childrun_pid(&s->vfy);
}

int
refresh_adopt(struct sup *s, const struct sup_opts *o, struct err *e)
{
	struct pid_record rec;
	enum pidfile_state ps;

	s->lfd = o->h_lfd;     /* the control socket's is taken by ctl_listen */
	s->out_rd = o->h_out_rd;
	s->out_wr = o->h_out_wr;
	if (s->lfd >= 0)
		fd_cloexec(s->lfd);
	if (fd_cloexec(s->out_rd) < 0 || fd_cloexec(s->out_wr) < 0)
		return err_sys(e, ERR_IO, "handover: bad output pipe fds");
	if (status_read(s->h->status, &s->st, sup_err()) != 0)
		memset(&s->st, 0, sizeof s->st);
	s->st.checking = 0;
	if (pidfile_peek(s->h->srv_pid, &ps, &rec, sup_err()) == 0 && ps == PIDFILE_RUNNING &&
	    pidrec_active(&rec) == 1 && rec.pid != getpid() &&
	    srv_adopt(s, &rec, s->st.ready) == 0)
		return 1;
	return 0;
}
