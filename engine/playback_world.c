/* playback_world.c — a rule test's three loopback servers together (playback_world.h).
 * Owns: starting them in order (DNS, SMTP, HTTP; none when one fails), the order they stop
 * in and note their problems. Does not own: any server's work (playback_dns.c,
 * playback_smtp.c, playback_http.c). */
#include <stdio.h>
#include <stdlib.h>
#include "playback_dns.h"
#include "playback_smtp.h"
#include "playback_world.h"

struct vd_pb_world {
    vd_pb_dns *dns;
    vd_pb_smtp *smtp;
    vd_pb_httpd *http;
};

vd_pb_world *vd_pb_world_new(struct event_base *base, vd_pb_test *t, vd_pb_msgs *msgs,
                             vd_pb_match_fn match, void *match_arg, char *err, size_t errlen)
{
    vd_pb_world *w = calloc(1, sizeof *w);
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (!(w->dns = vd_pb_dns_new(base, t, err, errlen)) ||
        !(w->smtp = vd_pb_smtp_new(base, t, msgs, err, errlen)) ||
        !(w->http = vd_pb_httpd_new(base, t, msgs, match, match_arg, err, errlen))) {
        vd_pb_world_free(w);
        return NULL;
    }
    return w;
}

int vd_pb_world_dns_port(const vd_pb_world *w)
{
    return vd_pb_dns_port(w->dns);
}

int vd_pb_world_smtp_port(const vd_pb_world *w)
{
    return vd_pb_smtp_port(w->smtp);
}

int vd_pb_world_http_port(const vd_pb_world *w)
{
    return vd_pb_httpd_port(w->http);
}

size_t vd_pb_world_http_requests(const vd_pb_world *w)
{
    return vd_pb_httpd_requests(w->http);
}

size_t vd_pb_world_connections(const vd_pb_world *w)
{
    return vd_pb_smtp_connections(w->smtp);
}

void vd_pb_world_finish(vd_pb_world *w)
{
    vd_pb_smtp_close(w->smtp);
    vd_pb_httpd_finish(w->http); /* its problems first, as they always came */
    vd_pb_dns_stop(w->dns);
    vd_pb_smtp_finish(w->smtp);
}

void vd_pb_world_free(vd_pb_world *w)
{
    if (!w) return;
    vd_pb_smtp_free(w->smtp);
    vd_pb_httpd_free(w->http);
    vd_pb_dns_free(w->dns);
    free(w);
}
