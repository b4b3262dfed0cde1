/* watchdog.h — a thread that stops the process when its event loop makes no progress.
 *
 * A timer on the loop marks progress every fraction of the period; a thread checks the mark.
 * When the loop has not run the timer for the whole period (a C bug, a blocking call, Lua code
 * that escaped its budget), the thread writes what was running (the last vd_watchdog_doing
 * note) to stderr and ends the process with exit status 1: a daemon that hangs silently holds
 * its port, its /healthz and its jobs; one that exits is restarted by its supervisor.
 *
 * Owns: the progress timer, the thread, the note of what the loop is doing.
 * Does not own: the period (the command's option: serve's and verify's --watchdog), what
 * runs on the loop. */
#ifndef VALIDORA_WATCHDOG_H
#define VALIDORA_WATCHDOG_H

struct event_base;
typedef struct vd_watchdog vd_watchdog;

/* Starts watching base's loop: no progress for `seconds` stops the process. who names the
 * process in the message ("validora serve"). NULL when seconds <= 0 (off) or on failure. */
vd_watchdog *vd_watchdog_start(struct event_base *base, double seconds, const char *who);
/* Stops the thread and the timer. NULL is fine. */
void vd_watchdog_stop(vd_watchdog *w);

/* What the loop thread is about to run (copied, cut at 160 bytes), NULL or "" for nothing in
 * particular. Cheap; called around each resume of a rule's coroutine. */
void vd_watchdog_doing(const char *what);

#endif
