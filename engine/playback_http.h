/* playback_http.h — an HTTP server on loopback that answers a rule test's `http` entries
 * (playback.h) in order: `validora rules test` gives rules its address as "$HTTP"; any test
 * may use it (the fleet's). Plain HTTP on 127.0.0.1, an ephemeral port. I/O layer:
 * libevent's evhttp, no Lua: the patterns a request is matched with are the caller's. */
#ifndef VALIDORA_PLAYBACK_HTTP_H
#define VALIDORA_PLAYBACK_HTTP_H
#include <stdbool.h>
#include <stddef.h>
#include "playback.h"

struct event_base;

/* Does subject (len bytes) match pattern? When not, why says so ("does not match PATTERN",
 * or the pattern's own error). testfile.h's vd_pb_pattern_match is the test files' one. */
typedef bool (*vd_pb_match_fn)(void *arg, const char *subject, size_t len, const char *pattern,
                               char *why, size_t whylen);

typedef struct vd_pb_httpd vd_pb_httpd;

/* Starts serving t's http entries on base (t must outlive it; it is only read); patterns of
 * headers_match and body_matches go to match(match_arg, ...). Problems go to msgs. NULL with
 * err. */
vd_pb_httpd *vd_pb_httpd_new(struct event_base *base, const vd_pb_test *t, vd_pb_msgs *msgs,
                             vd_pb_match_fn match, void *match_arg, char *err, size_t errlen);
int vd_pb_httpd_port(const vd_pb_httpd *w);
/* Requests received so far. */
size_t vd_pb_httpd_requests(const vd_pb_httpd *w);
/* Stops serving; notes the entries never requested. */
void vd_pb_httpd_finish(vd_pb_httpd *w);
void vd_pb_httpd_free(vd_pb_httpd *w);

#endif
