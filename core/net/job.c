/* job.c -- see job.h. */
#include "core/net/job.h"

#include <unistd.h>

void
job_begin(struct job *j, struct reactor *r, int *const *watches, int nw, int *const *fds,
    int nf)
{
	j->r = r;
	j->active = 1;
	j->starting = 1;
	j->gen++;
	j->nw = nw < JOB_MAX_OWNED ? nw : JOB_MAX_OWNED;
	j->nf = nf < JOB_MAX_OWNED ? nf : JOB_MAX_OWNED;
	for (int i = 0; i < j->nw; i++) {
		j->watch[i] = watches[i];
		*watches[i] = -1;
	}
	for (int i = 0; i < j->nf; i++) {
		j->fd[i] = fds[i];
		*fds[i] = -1;
	}
}

void
job_started(struct job *j)
{
	j->starting = 0;
}

void
job_unwatch(struct job *j, int *watch)
{
	if (*watch >= 0)
		(void)reactor_del(j->r, *watch);
	*watch = -1;
}

void
job_close(struct job *j, int *fd)
{
	(void)j;
	if (*fd >= 0)
		(void)close(*fd);
	*fd = -1;
}

void
job_release(struct job *j)
{
	for (int i = 0; i < j->nw; i++)
		job_unwatch(j, j->watch[i]);
	for (int i = 0; i < j->nf; i++)
		job_close(j, j->fd[i]);
	if (j->active)
		j->gen++;
	j->active = 0;
}

int
job_end(struct job *j)
{
	int report = !j->starting;

	job_release(j);
	j->starting = 0;
	return report;
}
