/* playback_dns.c — the DNS responder of a rule test (playback_dns.h): UDP on 127.0.0.1,
 * answers built from the test's names.
 * Owns: reading a query (one question, class IN), building the answer (MX, A as the name's
 * loopback address, TXT, PTR, CNAME chains, the test's rcodes or no answer at all, TC when
 * it does not fit), answering only the loopback network.
 * Does not own: the names (playback.h, loaded by testfile.c), resolving (dns.c). No Lua. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <event2/event.h>
#include "playback_dns.h"

struct vd_pb_dns {
    const vd_pb_test *t;
    evutil_socket_t fd;
    struct event *ev;
    int port;
};

#define DNS_TTL 300

typedef struct dnsbuf {
    unsigned char b[4096];
    size_t n;
    bool full;
} dnsbuf;

static void put(dnsbuf *d, const void *p, size_t n)
{
    if (d->full || d->n + n > sizeof d->b) {
        d->full = true;
        return;
    }
    memcpy(d->b + d->n, p, n);
    d->n += n;
}

static void put16(dnsbuf *d, unsigned v)
{
    unsigned char b[2] = {(unsigned char)(v >> 8), (unsigned char)v};
    put(d, b, 2);
}

static void put32(dnsbuf *d, uint32_t v)
{
    unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    put(d, b, 4);
}

/* A name in wire form, uncompressed ("." is the root). */
static void put_name(dnsbuf *d, const char *name)
{
    if (strcmp(name, ".") != 0) {
        const char *p = name;
        while (*p) {
            size_t l = strcspn(p, ".");
            unsigned char len = (unsigned char)l;
            put(d, &len, 1);
            put(d, p, l);
            p += l;
            if (*p == '.') p++;
        }
    }
    put(d, "", 1);
}

/* Starts a resource record; the owner is the question's name (a pointer to offset 12) when
 * owner is NULL. Returns where RDLENGTH goes. */
static size_t rr_begin(dnsbuf *d, const char *owner, unsigned type)
{
    if (owner)
        put_name(d, owner);
    else
        put16(d, 0xC00C);
    put16(d, type);
    put16(d, 1);
    put32(d, DNS_TTL);
    size_t at = d->n;
    put16(d, 0);
    return at;
}

static void rr_end(dnsbuf *d, size_t at)
{
    if (d->full) return;
    size_t len = d->n - at - 2;
    d->b[at] = (unsigned char)(len >> 8);
    d->b[at + 1] = (unsigned char)len;
}

/* The records of type qtype of nm, owned by owner; returns how many. */
static unsigned put_records(dnsbuf *d, const vd_pb_name *nm, const char *owner, unsigned qtype)
{
    unsigned n = 0;
    size_t at;
    switch (qtype) {
    case 1: /* A */
        if (nm->a) {
            at = rr_begin(d, owner, 1);
            put32(d, nm->ip);
            rr_end(d, at);
            n++;
        }
        break;
    case 15: /* MX */
        for (size_t i = 0; i < nm->nmx; i++, n++) {
            at = rr_begin(d, owner, 15);
            put16(d, nm->mx[i].pref);
            put_name(d, nm->mx[i].host);
            rr_end(d, at);
        }
        break;
    case 16: /* TXT */
        for (size_t i = 0; i < nm->ntxt; i++, n++) {
            at = rr_begin(d, owner, 16);
            const char *s = nm->txt[i];
            size_t left = strlen(s);
            do {
                unsigned char l = (unsigned char)(left > 255 ? 255 : left);
                put(d, &l, 1);
                put(d, s, l);
                s += l;
                left -= l;
            } while (left);
            rr_end(d, at);
        }
        break;
    case 12: /* PTR */
        for (size_t i = 0; i < nm->nptr; i++, n++) {
            at = rr_begin(d, owner, 12);
            put_name(d, nm->ptr[i]);
            rr_end(d, at);
        }
        break;
    }
    return n;
}

/* Parses the question at 12; the name in name (lower case), the end offset in *end. */
static bool dns_question(const unsigned char *q, size_t len, char name[256], unsigned *qtype,
                         unsigned *qclass, size_t *end)
{
    size_t at = 12, o = 0;
    for (;;) {
        if (at >= len) return false;
        unsigned l = q[at++];
        if (l == 0) break;
        if (l > 63 || at + l > len || o + l + 1 > 254) return false;
        if (o) name[o++] = '.';
        for (unsigned i = 0; i < l; i++)
            name[o++] = (char)tolower(q[at + i]);
        at += l;
    }
    name[o] = '\0';
    if (at + 4 > len) return false;
    *qtype = (unsigned)(q[at] << 8 | q[at + 1]);
    *qclass = (unsigned)(q[at + 2] << 8 | q[at + 3]);
    *end = at + 4;
    return true;
}

/* The answer to one query; false when none is to be sent. */
static bool dns_answer(const vd_pb_test *t, const unsigned char *q, size_t len, dnsbuf *d)
{
    if (len < 12 || (q[2] & 0x80)) return false; /* too short, or a response */
    unsigned qd = (unsigned)(q[4] << 8 | q[5]);
    unsigned rd = q[2] & 0x01, opcode = (q[2] >> 3) & 0x0f;
    char name[256];
    unsigned qtype = 0, qclass = 0;
    size_t qend = 12;
    unsigned rcode = 0;
    bool question = qd == 1 && dns_question(q, len, name, &qtype, &qclass, &qend);
    if (opcode != 0)
        rcode = 4; /* NOTIMP */
    else if (!question)
        rcode = 1; /* FORMERR */
    else if (qclass != 1)
        rcode = 5; /* REFUSED */
    size_t udp_max = 512;
    if (question && len >= qend + 11 && q[qend] == 0 && q[qend + 1] == 0 && q[qend + 2] == 41) {
        size_t sz = (size_t)(q[qend + 3] << 8 | q[qend + 4]);
        if (sz > udp_max) udp_max = sz < sizeof d->b ? sz : sizeof d->b;
    }
    d->n = 0;
    d->full = false;
    put(d, q, 2); /* id */
    unsigned char flags[2] = {(unsigned char)(0x80 | (opcode << 3) | 0x04 | rd), 0x80};
    put(d, flags, 2);
    put16(d, question ? 1 : 0);
    put16(d, 0);
    put16(d, 0);
    put16(d, 0);
    if (question) put(d, q + 12, qend - 12);
    unsigned an = 0;
    if (rcode == 0) {
        const vd_pb_name *nm = vd_pb_find_name(t, name);
        const char *owner = NULL;
        for (int depth = 0; nm; depth++) {
            if (nm->rcode == VD_PB_DROP) return false;
            if (nm->rcode != VD_PB_ANSWER) {
                rcode = nm->rcode == VD_PB_SERVFAIL ? 2 : nm->rcode == VD_PB_REFUSED ? 5 : 3;
                break;
            }
            if (nm->cname && qtype != 5 && depth < 8) {
                size_t at = rr_begin(d, owner, 5);
                put_name(d, nm->cname);
                rr_end(d, at);
                an++;
                owner = nm->cname;
                nm = vd_pb_find_name(t, nm->cname);
                if (!nm) rcode = 3;
                continue;
            }
            if (nm->cname && qtype == 5) {
                size_t at = rr_begin(d, owner, 5);
                put_name(d, nm->cname);
                rr_end(d, at);
                an++;
            } else {
                an += put_records(d, nm, owner, qtype);
            }
            break;
        }
        if (!nm && !an) rcode = 3; /* NXDOMAIN */
    }
    if (d->full || d->n > udp_max) { /* truncated: header and question only, TC set */
        d->n = 12 + (question ? qend - 12 : 0);
        d->full = false;
        d->b[2] |= 0x02;
        an = 0;
    }
    d->b[3] = (unsigned char)(0x80 | rcode);
    d->b[6] = (unsigned char)(an >> 8);
    d->b[7] = (unsigned char)an;
    return true;
}

static void on_dns(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    vd_pb_dns *s = arg;
    for (int i = 0; i < 64; i++) {
        unsigned char q[1500];
        struct sockaddr_in from;
        socklen_t flen = sizeof from;
        ssize_t n = recvfrom(fd, q, sizeof q, 0, (struct sockaddr *)&from, &flen);
        if (n < 0) return; /* EAGAIN, or an error: nothing more now */
        /* traffic only to the loopback network */
        if (flen != sizeof from || from.sin_family != AF_INET ||
            (ntohl(from.sin_addr.s_addr) >> 24) != 127)
            continue;
        dnsbuf d;
        if (!dns_answer(s->t, q, (size_t)n, &d)) continue;
        sendto(fd, d.b, d.n, 0, (struct sockaddr *)&from, flen);
    }
}

vd_pb_dns *vd_pb_dns_new(struct event_base *base, const vd_pb_test *t, char *err, size_t errlen)
{
    vd_pb_dns *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->t = t;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    s->fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (s->fd < 0 || evutil_make_socket_nonblocking(s->fd) != 0 ||
        evutil_make_socket_closeonexec(s->fd) != 0 ||
        bind(s->fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        getsockname(s->fd, (struct sockaddr *)&sa, &sl) != 0) {
        snprintf(err, errlen, "DNS responder on 127.0.0.1: %s", strerror(errno));
        vd_pb_dns_free(s);
        return NULL;
    }
    s->port = ntohs(sa.sin_port);
    s->ev = event_new(base, s->fd, EV_READ | EV_PERSIST, on_dns, s);
    if (!s->ev || event_add(s->ev, NULL) != 0) {
        snprintf(err, errlen, "DNS responder: out of memory");
        vd_pb_dns_free(s);
        return NULL;
    }
    return s;
}

int vd_pb_dns_port(const vd_pb_dns *s)
{
    return s->port;
}

void vd_pb_dns_stop(vd_pb_dns *s)
{
    if (s->ev) event_free(s->ev);
    s->ev = NULL;
}

void vd_pb_dns_free(vd_pb_dns *s)
{
    if (!s) return;
    vd_pb_dns_stop(s);
    if (s->fd >= 0) evutil_closesocket(s->fd);
    free(s);
}
