/* clock.h — the monotonic clock, read one way everywhere.
 * Owns: reading CLOCK_MONOTONIC as seconds (a double) or whole milliseconds.
 * Does not own: the wall clock, timers (the event loop), a clock driven by hand (the limiter's
 * option). */
#ifndef VALIDORA_CLOCK_H
#define VALIDORA_CLOCK_H
#include <stdint.h>

/* Seconds since an arbitrary point, with nanosecond resolution. */
double vd_now_mono(void);
/* The same clock in whole milliseconds (truncated). */
int64_t vd_now_mono_ms(void);

#endif
