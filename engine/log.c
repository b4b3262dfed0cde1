/* log.c — formatting a message for a vd_log_cb (see log.h). */
#include <stdarg.h>
#include <stdio.h>
#include "log.h"

#define LOG_MAX 1024 /* bytes of one message; a longer one is cut */

void vd_log_to(vd_log_cb cb, void *arg, vd_log_level level, const char *fmt, ...)
{
    if (!cb) return;
    char msg[LOG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cb(level, msg, arg);
}
