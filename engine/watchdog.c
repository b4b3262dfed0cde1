/* watchdog.c — stops the process when its event loop makes no progress (see watchdog.h).
 *
 * Owns: the progress timer, the watching thread, the note of what runs.
 * Does not own: the period (an option of the command), anything that runs on the loop. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <event2/event.h>
#include "watchdog.h"
#include "clock.h"

#define NOTE_MAX 160

struct vd_watchdog {
    struct event *tick;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    double period;
    char who[64];
};

static _Atomic int64_t progress_ms; /* the loop's last mark, CLOCK_MONOTONIC */
/* The note: a sequence lock (odd while written) over a fixed buffer, so the watching thread
 * never waits for the loop and never reads a torn note without knowing. */
static _Atomic unsigned note_seq;
static char note[NOTE_MAX];

void vd_watchdog_doing(const char *what)
{
    atomic_fetch_add_explicit(&note_seq, 1, memory_order_acq_rel);
    size_t n = what ? strnlen(what, NOTE_MAX - 1) : 0;
    memcpy(note, what ? what : "", n);
    note[n] = 0;
    atomic_fetch_add_explicit(&note_seq, 1, memory_order_acq_rel);
}

static void read_note(char *out, size_t len)
{
    for (int tries = 0; tries < 100; tries++) {
        unsigned a = atomic_load_explicit(&note_seq, memory_order_acquire);
        if (a & 1) continue;
        snprintf(out, len, "%s", note);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&note_seq, memory_order_acquire) == a) return;
    }
    snprintf(out, len, "(changing)");
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    atomic_store_explicit(&progress_ms, vd_now_mono_ms(), memory_order_release);
}

static void *watch(void *arg)
{
    vd_watchdog *w = arg;
    int64_t limit = (int64_t)(w->period * 1000);
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 250 * 1000000L;
        if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&w->cv, &w->mu, &until);
        if (w->stop) break;
        int64_t idle = vd_now_mono_ms() - atomic_load_explicit(&progress_ms, memory_order_acquire);
        if (idle < limit) continue;
        char doing[NOTE_MAX + 16];
        read_note(doing, sizeof doing);
        char msg[512];
        int n = snprintf(msg, sizeof msg,
                         "%s: watchdog: the event loop made no progress for %.1f s (--watchdog "
                         "%g); running: %s; stopping\n",
                         w->who, (double)idle / 1000.0, w->period,
                         doing[0] ? doing
                                  : "no rule code (the engine's C code, or a blocking "
                                    "call)");
        if (n > 0) {
            ssize_t ignored = write(2, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
            (void)ignored;
        }
        _exit(1);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

vd_watchdog *vd_watchdog_start(struct event_base *base, double seconds, const char *who)
{
    if (seconds <= 0) return NULL;
    vd_watchdog *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->period = seconds;
    snprintf(w->who, sizeof w->who, "%s", who ? who : "validora");
    double every = seconds / 4 < 1 ? seconds / 4 : 1;
    struct timeval tv = {(time_t)every, (suseconds_t)((every - (double)(time_t)every) * 1e6)};
    w->tick = event_new(base, -1, EV_PERSIST, on_tick, w);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    atomic_store(&progress_ms, vd_now_mono_ms());
    if (!w->tick || event_add(w->tick, &tv) != 0 ||
        pthread_create(&w->thread, NULL, watch, w) != 0) {
        if (w->tick) event_free(w->tick);
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        free(w);
        return NULL;
    }
    return w;
}

void vd_watchdog_stop(vd_watchdog *w)
{
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    event_free(w->tick);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
}
