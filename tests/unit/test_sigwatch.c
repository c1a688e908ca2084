/* The termination-signal thread: a signal reaches the main loop, and a VM that does not stop
 * within the grace time (or a second signal) still ends the process with 128+N. Each case runs
 * in a forked child, whose main thread plays a stuck VM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/sigwatch.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Fork a child that blocks SIGUSR1, starts the watcher with `grace`, sends itself a SIGUSR1,
 * checks that it reached the fd (else exits 91), sends a second one when count > 1, then
 * hangs like a stuck VM. Returns the child's wait status and the seconds it lived. */
static int run_child(int grace, int count, double *lived)
{
	double t0 = now_s();
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		sigset_t set;
		struct sigwatch *w;
		struct pollfd p;

		alarm(20); /* a broken watcher must not hang the test */
		sigemptyset(&set);
		sigaddset(&set, SIGUSR1);
		pthread_sigmask(SIG_BLOCK, &set, NULL);
		w = sigwatch_start(&set, grace);
		if (!w)
			_exit(90);
		kill(getpid(), SIGUSR1);
		p = (struct pollfd){ .fd = sigwatch_fd(w), .events = POLLIN };
		if (poll(&p, 1, 5000) != 1 || sigwatch_take(w) != SIGUSR1)
			_exit(91); /* the main loop never heard of the signal */
		if (count > 1)
			kill(getpid(), SIGUSR1);
		for (;;)
			pause(); /* the VM is stuck: only the watcher can end us */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	*lived = now_s() - t0;
	return status;
}

static void test_grace_expires(void **state)
{
	double lived;
	int st = run_child(1, 1, &lived);

	(void)state;
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 128 + SIGUSR1);
	assert_true(lived >= 0.9);
	assert_true(lived < 10);
}

static void test_second_signal_ends_at_once(void **state)
{
	double lived;
	int st = run_child(30, 2, &lived);

	(void)state;
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 128 + SIGUSR1);
	assert_true(lived < 10); /* long before the 30 s grace */
}

/* A process that stops on its own is not killed: stop joins the thread. */
static void test_stop(void **state)
{
	sigset_t set;
	struct sigwatch *w;

	(void)state;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	w = sigwatch_start(&set, 1);
	assert_non_null(w);
	assert_int_equal(sigwatch_take(w), 0);
	sigwatch_stop(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_grace_expires),
		cmocka_unit_test(test_second_signal_ends_at_once),
		cmocka_unit_test(test_stop),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
