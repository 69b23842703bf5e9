/*
 * test_supervisor.c -- the server lifecycle's transition table
 * (core/sup.h): every event in every state has a deliberate action, and
 * each is the one the design says (DESIGN.md "Readiness and liveness",
 * "Processes").  The behaviour of the actions themselves is tested
 * black-box through the binary (tests/integration).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "core/sup.h"

#include <string.h>

/* The specification, written out independently of the table. */
static const struct {
	enum srv_state st;
	enum srv_event ev;
	enum srv_action act;
} spec[] = {
	{ SRV_STOPPED, SEV_START, SA_SPAWN },
	{ SRV_STOPPED, SEV_READY, SA_IGNORE },
	{ SRV_STOPPED, SEV_EXIT, SA_IGNORE },
	{ SRV_STOPPED, SEV_TIMER, SA_IGNORE },
	{ SRV_STOPPED, SEV_RESTART, SA_SPAWN },
	{ SRV_STOPPED, SEV_STOP, SA_STOP_IDLE },

	{ SRV_STARTING, SEV_START, SA_IGNORE },
	{ SRV_STARTING, SEV_READY, SA_READY },
	{ SRV_STARTING, SEV_EXIT, SA_EXITED },
	{ SRV_STARTING, SEV_TIMER, SA_NOT_READY },     /* the readiness deadline */
	{ SRV_STARTING, SEV_RESTART, SA_TERM_RESTART },
	{ SRV_STARTING, SEV_STOP, SA_TERM_STOP },

	{ SRV_RUNNING, SEV_START, SA_IGNORE },
	{ SRV_RUNNING, SEV_READY, SA_IGNORE },         /* a second READY=1 */
	{ SRV_RUNNING, SEV_EXIT, SA_EXITED },
	{ SRV_RUNNING, SEV_TIMER, SA_IGNORE },
	{ SRV_RUNNING, SEV_RESTART, SA_TERM_RESTART },
	{ SRV_RUNNING, SEV_STOP, SA_TERM_STOP },

	{ SRV_BACKOFF, SEV_START, SA_IGNORE },
	{ SRV_BACKOFF, SEV_READY, SA_IGNORE },
	{ SRV_BACKOFF, SEV_EXIT, SA_IGNORE },
	{ SRV_BACKOFF, SEV_TIMER, SA_SPAWN },          /* the restart is due */
	{ SRV_BACKOFF, SEV_RESTART, SA_SPAWN },        /* HUP: no need to wait */
	{ SRV_BACKOFF, SEV_STOP, SA_STOP_IDLE },

	{ SRV_RESTARTING, SEV_START, SA_IGNORE },
	{ SRV_RESTARTING, SEV_READY, SA_IGNORE },      /* the old one, going */
	{ SRV_RESTARTING, SEV_EXIT, SA_RESPAWN },
	{ SRV_RESTARTING, SEV_TIMER, SA_KILL },        /* grace over */
	{ SRV_RESTARTING, SEV_RESTART, SA_IGNORE },    /* already restarting */
	{ SRV_RESTARTING, SEV_STOP, SA_TERM_STOP },

	{ SRV_STOPPING, SEV_START, SA_IGNORE },
	{ SRV_STOPPING, SEV_READY, SA_IGNORE },
	{ SRV_STOPPING, SEV_EXIT, SA_GONE },
	{ SRV_STOPPING, SEV_TIMER, SA_KILL },
	{ SRV_STOPPING, SEV_RESTART, SA_IGNORE },      /* a HUP while stopping */
	{ SRV_STOPPING, SEV_STOP, SA_IGNORE },         /* a second TERM */
};

static void
every_cell_is_deliberate(void **state)
{
	(void)state;
	for (int st = 0; st < SRV_NSTATES; st++)
		for (int ev = 0; ev < SEV_NEVENTS; ev++)
			assert_int_not_equal(srv_action_of((enum srv_state)st, (enum srv_event)ev),
			    SA_UNDEFINED);
}

static void
every_cell_is_the_specified_one(void **state)
{
	int seen[SRV_NSTATES][SEV_NEVENTS];

	(void)state;
	memset(seen, 0, sizeof seen);
	for (size_t i = 0; i < sizeof spec / sizeof spec[0]; i++) {
		enum srv_action got = srv_action_of(spec[i].st, spec[i].ev);
		if (got != spec[i].act)
			fail_msg("state %s, event %d: action %d, specified %d",
			    srv_state_name(spec[i].st), spec[i].ev, got, spec[i].act);
		seen[spec[i].st][spec[i].ev]++;
	}
	/* the specification covers the whole table, once */
	for (int st = 0; st < SRV_NSTATES; st++)
		for (int ev = 0; ev < SEV_NEVENTS; ev++)
			assert_int_equal(seen[st][ev], 1);
}

static void
out_of_range_is_undefined(void **state)
{
	(void)state;
	assert_int_equal(srv_action_of(SRV_NSTATES, SEV_START), SA_UNDEFINED);
	assert_int_equal(srv_action_of(SRV_RUNNING, SEV_NEVENTS), SA_UNDEFINED);
	assert_int_equal(srv_action_of((enum srv_state)-1, SEV_START), SA_UNDEFINED);
}

static void
published_names_are_the_documented_ones(void **state)
{
	static const char *const names[SRV_NSTATES] = {
		"stopped", "starting", "running", "backoff", "restarting", "stopping"
	};

	(void)state;
	for (int st = 0; st < SRV_NSTATES; st++)
		assert_string_equal(srv_state_name((enum srv_state)st), names[st]);
	assert_string_equal(srv_state_name(SRV_NSTATES), "unknown");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_cell_is_deliberate),
		cmocka_unit_test(every_cell_is_the_specified_one),
		cmocka_unit_test(out_of_range_is_undefined),
		cmocka_unit_test(published_names_are_the_documented_ones),
	};
	return cmocka_run_group_tests_name("supervisor transition table", tests, NULL, NULL);
}
