/* playback_smtp.h — an SMTP server on loopback that plays a rule test's sessions
 * (playback.h): each connection takes the next session not yet opened for the address it
 * came to and gets its banner and replies; what the client says that the session did not
 * expect is noted as a problem. `validora rules test` runs the engine against it; any test
 * may (the fleet's). I/O layer: libevent, no Lua. */
#ifndef VALIDORA_PLAYBACK_SMTP_H
#define VALIDORA_PLAYBACK_SMTP_H
#include <stddef.h>
#include "playback.h"

struct event_base;

typedef struct vd_pb_smtp vd_pb_smtp;

/* Listens on each of t's names with an A answer (its loopback address, one port for all:
 * the engine has one smtp_port; 25 when no name has one) on base. Resets the sessions' play
 * state (t is played, so it must outlive the server). Problems go to msgs. NULL with err. */
vd_pb_smtp *vd_pb_smtp_new(struct event_base *base, vd_pb_test *t, vd_pb_msgs *msgs, char *err,
                           size_t errlen);
int vd_pb_smtp_port(const vd_pb_smtp *w);
/* Connections still open. */
size_t vd_pb_smtp_connections(const vd_pb_smtp *w);
/* Closes every connection and stops listening. */
void vd_pb_smtp_close(vd_pb_smtp *w);
/* Closes, then notes sessions never connected and scripts not played to their end. */
void vd_pb_smtp_finish(vd_pb_smtp *w);
void vd_pb_smtp_free(vd_pb_smtp *w);

#endif
