/* test_watchdog.c — engine/watchdog.c: a loop that makes no progress for the period stops the
 * process with exit status 1 and a message saying what was running; a loop that keeps running
 * (or a stopped watchdog) is left alone. Each case runs in a child process.
 * Does not test: the --watchdog option's plumbing (tests/functional/hardening.sh). */
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <event2/event.h>
#include "check.h"
#include "watchdog.h"

static void spin(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    vd_watchdog_doing("a test callback that spins");
    for (volatile unsigned long i = 0;; i++) {
    }
}

static void quit(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
}

/* Child: a loop with a 1 s watchdog; spins after 0.2 s when hang, else quits after 2.5 s.
 * Returns the child's wait status; its stderr into err. */
static int child(bool hang, char *err, size_t errlen)
{
    int fds[2];
    if (pipe(fds) != 0) return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        alarm(20);
        struct event_base *base = event_base_new();
        vd_watchdog *w = vd_watchdog_start(base, 1.0, "test_watchdog");
        struct timeval at = {0, 200000}, end = {2, 500000};
        if (hang) event_base_once(base, -1, EV_TIMEOUT, spin, NULL, &at);
        event_base_once(base, -1, EV_TIMEOUT, quit, base, &end);
        event_base_dispatch(base);
        vd_watchdog_stop(w);
        event_base_free(base);
        _exit(0);
    }
    close(fds[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < errlen && (r = read(fds[0], err + n, errlen - n - 1)) > 0)
        n += (size_t)r;
    err[n] = 0;
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return status;
}

int main(void)
{
    char err[1024];
    time_t t0 = time(NULL);
    int st = child(true, err, sizeof err);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 1, "status %d, stderr: %s", st, err);
    CHECK_MSG(strstr(err, "no progress") && strstr(err, "a test callback that spins") &&
                  strstr(err, "test_watchdog"),
              "stderr: %s", err);
    CHECK(time(NULL) - t0 < 10);
    st = child(false, err, sizeof err);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d, stderr: %s", st, err);
    CHECK(vd_watchdog_start(NULL, 0, "off") == NULL); /* 0: off */
    return check_done();
}
