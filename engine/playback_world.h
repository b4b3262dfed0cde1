/* playback_world.h — everything a rule test plays, started together on one event base: the
 * DNS responder (playback_dns.h), the SMTP playback server (playback_smtp.h) and the HTTP
 * playback server (playback_http.h), with one list of problems. `validora rules test`
 * (cli_rules_test.c) runs the engine against one world per test. I/O layer: no Lua (the
 * HTTP entries' patterns go to the matcher it is given). */
#ifndef VALIDORA_PLAYBACK_WORLD_H
#define VALIDORA_PLAYBACK_WORLD_H
#include <stddef.h>
#include "playback.h"
#include "playback_http.h" /* vd_pb_match_fn */

struct event_base;

typedef struct vd_pb_world vd_pb_world;

/* Starts the three servers for t on base (t is played: it must outlive the world). Problems
 * of the playback go to msgs; HTTP patterns to match(match_arg, ...). NULL with err. */
vd_pb_world *vd_pb_world_new(struct event_base *base, vd_pb_test *t, vd_pb_msgs *msgs,
                             vd_pb_match_fn match, void *match_arg, char *err, size_t errlen);
int vd_pb_world_dns_port(const vd_pb_world *w);
int vd_pb_world_smtp_port(const vd_pb_world *w);
int vd_pb_world_http_port(const vd_pb_world *w);
/* HTTP requests the world got so far. */
size_t vd_pb_world_http_requests(const vd_pb_world *w);
/* SMTP connections still open. */
size_t vd_pb_world_connections(const vd_pb_world *w);
/* Closes every connection and stops serving; notes HTTP entries never requested, sessions
 * never opened and scripts not played to their end. */
void vd_pb_world_finish(vd_pb_world *w);
void vd_pb_world_free(vd_pb_world *w);

#endif
