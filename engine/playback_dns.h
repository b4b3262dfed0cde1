/* playback_dns.h — a DNS responder on loopback that answers from a rule test's names
 * (playback.h): `validora rules test` points the engine's resolver at it, and any test may
 * (the fleet's). One UDP socket on 127.0.0.1, an ephemeral port; queries from 127/8 only.
 * I/O layer: libevent, no Lua. */
#ifndef VALIDORA_PLAYBACK_DNS_H
#define VALIDORA_PLAYBACK_DNS_H
#include "playback.h"

struct event_base;

typedef struct vd_pb_dns vd_pb_dns;

/* Starts answering on base from t's names (t must outlive it; it is only read). NULL with
 * err. */
vd_pb_dns *vd_pb_dns_new(struct event_base *base, const vd_pb_test *t, char *err, size_t errlen);
int vd_pb_dns_port(const vd_pb_dns *s);
/* Stops answering; the port stays taken until vd_pb_dns_free. */
void vd_pb_dns_stop(vd_pb_dns *s);
void vd_pb_dns_free(vd_pb_dns *s);

#endif
