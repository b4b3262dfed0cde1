/* log.h — formatting a message for a vd_log_cb (validora.h). The library prints nothing
 * itself: every module that has something to say is given a callback and uses this.
 * Owns: the message buffer (1 KiB, longer messages are cut). */
#ifndef VALIDORA_LOG_H
#define VALIDORA_LOG_H
#include "validora/validora.h"

/* Formats and hands the message to cb (nothing when cb is NULL). */
void vd_log_to(vd_log_cb cb, void *arg, vd_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
