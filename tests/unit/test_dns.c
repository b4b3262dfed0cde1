/* test_dns.c — engine/dns.c against a real unbound serving the world's zones.
 *
 * Starts its own unbound (tests/world/unbound.sh on port VALIDORA_TEST_DNS_PORT, default a
 * free one, in /tmp/validora-test-dns-PID) so it needs no fixture, and stops it at the end.
 * The timeout case talks to a UDP socket of its own that never answers. The answer parser
 * (vd_dns_parse_answer) is also tested alone, on replies built here: no server needed. */
#include "check.h"
#include "dns.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ares.h>
#include <errno.h>
#include <event2/event.h>
#include <glob.h>
#include <signal.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static struct event_base *base;
static char server[64];
static char tmpdir[256];
static char script[1024];
static const char *port;

/* ---- helpers ---- */

static char portbuf[16];

/* A port free on 127.0.0.1 for both UDP and TCP (unbound listens on both). */
static int free_port(void)
{
    for (int attempt = 0; attempt < 50; attempt++) {
        struct sockaddr_in sin = {.sin_family = AF_INET};
        socklen_t sl = sizeof sin;
        inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
        int u = socket(AF_INET, SOCK_DGRAM, 0), t = socket(AF_INET, SOCK_STREAM, 0);
        int p = 0;
        if (u >= 0 && t >= 0 && bind(u, (struct sockaddr *)&sin, sizeof sin) == 0 &&
            getsockname(u, (struct sockaddr *)&sin, &sl) == 0 &&
            bind(t, (struct sockaddr *)&sin, sizeof sin) == 0)
            p = ntohs(sin.sin_port);
        if (u >= 0) close(u);
        if (t >= 0) close(t);
        if (p) return p;
    }
    return 5399;
}

/* Stops the unbound of, and removes, every /tmp/validora-test-dns-PID whose PID is gone. */
static void reap_orphans(void)
{
    glob_t g;
    if (glob("/tmp/validora-test-dns-*", 0, NULL, &g) != 0) return;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        long pid = atol(strrchr(g.gl_pathv[i], '-') + 1);
        if (pid <= 0 || kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        char line[2048];
        snprintf(line, sizeof line, "bash '%s' stop '%s' && rm -rf '%s'", script, g.gl_pathv[i],
                 g.gl_pathv[i]);
        if (system(line) != 0) fprintf(stderr, "could not reap %s\n", g.gl_pathv[i]);
    }
    globfree(&g);
}

typedef struct mx_out {
    int calls;
    vd_dns_status status;
    bool null_mx, implicit;
    size_t nhosts;
    char names[8][256];
    uint16_t prefs[8];
    size_t naddrs[8];
    char addr0[8][64];
    int family0[8];
    vd_dns_status addr_status[8];
    uint32_t ttl;
    char error[128];
} mx_out;

static void addr_str(const struct sockaddr_storage *ss, char *out, size_t len)
{
    if (ss->ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, out, (socklen_t)len);
    else if (ss->ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, out, (socklen_t)len);
    else
        snprintf(out, len, "?");
}

static void on_mx(const vd_mx_result *r, void *arg)
{
    mx_out *o = arg;
    o->calls++;
    o->status = r->status;
    o->null_mx = r->null_mx;
    o->implicit = r->implicit;
    o->nhosts = r->nhosts;
    o->ttl = r->ttl;
    snprintf(o->error, sizeof o->error, "%s", r->error);
    for (size_t i = 0; i < r->nhosts && i < 8; i++) {
        snprintf(o->names[i], sizeof o->names[i], "%s", r->hosts[i].name);
        o->prefs[i] = r->hosts[i].preference;
        o->naddrs[i] = r->hosts[i].naddrs;
        o->addr_status[i] = r->hosts[i].addr_status;
        o->addr0[i][0] = '\0';
        o->family0[i] = 0;
        if (r->hosts[i].naddrs) {
            addr_str(&r->hosts[i].addrs[0], o->addr0[i], sizeof o->addr0[i]);
            o->family0[i] = r->hosts[i].addrs[0].ss_family;
        }
    }
}

typedef struct rec_out {
    int calls;
    vd_dns_status status;
    size_t n;
    char first[256];
} rec_out;

static void on_rec(const vd_dns_records *r, void *arg)
{
    rec_out *o = arg;
    o->calls++;
    o->status = r->status;
    o->n = r->n;
    snprintf(o->first, sizeof o->first, "%s", r->n ? r->items[0] : "");
}

typedef struct addrs_out {
    int calls;
    vd_dns_status status;
    size_t n;
    char first[64];
} addrs_out;

static void on_addrs(const vd_dns_addr_list *r, void *arg)
{
    addrs_out *o = arg;
    o->calls++;
    o->status = r->status;
    o->n = r->n;
    o->first[0] = '\0';
    if (r->n) addr_str(&r->addrs[0], o->first, sizeof o->first);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    *(bool *)arg = true;
}

/* Runs the loop until *calls reaches want, or 10 s have passed. */
static void run_until(const int *calls, int want)
{
    bool late = false;
    struct timeval tv = {10, 0};
    struct event *t = evtimer_new(base, on_deadline, &late);
    evtimer_add(t, &tv);
    while (*calls < want && !late)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(t);
    CHECK_MSG(*calls >= want, "callback not called within 10 s");
}

/* Sleeps on the loop (the cache's clock keeps running, the loop keeps serving). */
static void loop_sleep(double seconds)
{
    bool done = false;
    struct timeval tv = {(time_t)seconds, (suseconds_t)((seconds - (time_t)seconds) * 1e6)};
    struct event *t = evtimer_new(base, on_deadline, &done);
    evtimer_add(t, &tv);
    while (!done)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(t);
}

static vd_dns *dns_new(const char *servers, int timeout_ms, int tries, bool no_cache)
{
    char err[256] = "";
    vd_dns_opts o = {
        .servers = servers, .timeout_ms = timeout_ms, .tries = tries, .no_cache = no_cache};
    vd_dns *d = vd_dns_new(base, &o, err, sizeof err);
    CHECK_MSG(d != NULL, "vd_dns_new: %s", err);
    if (!d) exit(check_done());
    return d;
}

/* Resolves DOMAIN's MX on D and waits for the answer. */
static void mx(vd_dns *d, const char *domain, mx_out *o)
{
    memset(o, 0, sizeof *o);
    vd_dns_mx(d, domain, on_mx, o);
    run_until(&o->calls, 1);
    CHECK_MSG(o->calls == 1, "%s: callback called %d times", domain, o->calls);
}

static size_t queries(vd_dns *d)
{
    size_t q = 0, h = 0;
    vd_dns_stats(d, &q, &h);
    return q;
}

static int unbound(const char *cmd)
{
    char line[2048];
    snprintf(line, sizeof line, "VALIDORA_DNS_PORT=%s bash '%s' %s '%s'", port, script, cmd,
             tmpdir);
    return system(line);
}

/* ---- replies built by hand, for the parser alone ---- */

typedef struct reply {
    unsigned char b[1024];
    size_t len;
} reply;

static void put(reply *m, const void *p, size_t n)
{
    if (m->len + n > sizeof m->b) abort();
    memcpy(m->b + m->len, p, n);
    m->len += n;
}

static void put16(reply *m, unsigned v)
{
    unsigned char b[2] = {(unsigned char)(v >> 8), (unsigned char)v};
    put(m, b, 2);
}

static void put32(reply *m, uint32_t v)
{
    put16(m, v >> 16);
    put16(m, v & 0xffff);
}

/* NAME in wire format, uncompressed ("" is the root). */
static size_t name_wire(const char *name, unsigned char *out)
{
    size_t n = 0;
    while (*name) {
        size_t l = strcspn(name, ".");
        out[n++] = (unsigned char)l;
        memcpy(out + n, name, l);
        n += l;
        name += l;
        if (*name == '.') name++;
    }
    out[n++] = 0;
    return n;
}

/* A response header with RCODE and the counts, and the question QNAME/TYPE. */
static void reply_start(reply *m, unsigned rcode, const char *qname, uint16_t type, unsigned an,
                        unsigned ns)
{
    m->len = 0;
    put16(m, 0x1234);
    put16(m, 0x8180 | rcode);
    put16(m, 1);
    put16(m, an);
    put16(m, ns);
    put16(m, 0);
    unsigned char w[256];
    put(m, w, name_wire(qname, w));
    put16(m, type);
    put16(m, ns_c_in);
}

static void put_rr(reply *m, const char *owner, uint16_t type, uint32_t ttl, const void *rd,
                   size_t rdlen)
{
    unsigned char w[256];
    put(m, w, name_wire(owner, w));
    put16(m, type);
    put16(m, ns_c_in);
    put32(m, ttl);
    put16(m, (unsigned)rdlen);
    put(m, rd, rdlen);
}

/* A record whose rdata is one name (CNAME, PTR), or a preference and a name (MX). */
static void put_name_rr(reply *m, const char *owner, uint16_t type, uint32_t ttl, int pref,
                        const char *target)
{
    unsigned char rd[260];
    size_t n = 0;
    if (pref >= 0) {
        rd[n++] = (unsigned char)(pref >> 8);
        rd[n++] = (unsigned char)pref;
    }
    n += name_wire(target, rd + n);
    put_rr(m, owner, type, ttl, rd, n);
}

static bool parse(vd_dns_answer *a, uint16_t type, const char *qname, const reply *m,
                  char next[256])
{
    return vd_dns_parse_answer(a, type, qname, ARES_SUCCESS, m->b, (int)m->len, next);
}

/* ---- the cases ---- */

static void test_parse(void)
{
    reply m;
    char next[256];
    vd_dns_answer a = {.chain_ttl = UINT32_MAX};

    /* A well-formed answer first, so the helpers are known to build what dns.c reads. */
    reply_start(&m, ns_r_noerror, "a.test", ns_t_mx, 2, 0);
    put_name_rr(&m, "a.test", ns_t_mx, 300, 20, "mx2.a.test");
    put_name_rr(&m, "a.test", ns_t_mx, 100, 10, "MX1.a.test.");
    CHECK(!parse(&a, ns_t_mx, "a.test", &m, next));
    CHECK_MSG(a.status == VD_DNS_OK && a.n == 2, "%s, %zu records", vd_dns_status_name(a.status),
              a.n);
    CHECK(a.n == 2 && a.mx[0].pref == 20 && a.mx[1].pref == 10);
    if (a.n == 2) CHECK_STR(a.mx[1].name, "mx1.a.test");
    CHECK(a.ttl == 100);
    vd_dns_answer_clear(&a);

    /* Found by tests/fuzz/fuzz_dns: an answer whose records of the type asked are all
     * malformed (an MX with empty rdata) kept the array allocated for them with no record in
     * it, and a CNAME taken after them allocated another over it (leaked; with a CNAME loop,
     * once per step). Now the empty array is dropped: no records, no array. */
    a = (vd_dns_answer){.chain_ttl = UINT32_MAX};
    reply_start(&m, ns_r_noerror, "a.test", ns_t_mx, 1, 0);
    put_rr(&m, "a.test", ns_t_mx, 300, "", 0);
    CHECK(!parse(&a, ns_t_mx, "a.test", &m, next));
    CHECK(a.status == VD_DNS_NODATA && a.n == 0);
    CHECK_MSG(a.mx == NULL, "an MX array without records");
    vd_dns_answer_clear(&a);

    /* ... then a CNAME in the same answer, to a name with a usable MX. */
    a = (vd_dns_answer){.chain_ttl = UINT32_MAX};
    reply_start(&m, ns_r_noerror, "a.test", ns_t_mx, 3, 0);
    put_rr(&m, "a.test", ns_t_mx, 300, "", 0);
    put_name_rr(&m, "a.test", ns_t_cname, 300, -1, "b.test");
    put_name_rr(&m, "b.test", ns_t_mx, 300, 10, "mx.b.test");
    CHECK(!parse(&a, ns_t_mx, "a.test", &m, next));
    CHECK(a.status == VD_DNS_OK && a.n == 1 && a.cname_depth == 1);
    if (a.n == 1) CHECK_STR(a.mx[0].name, "mx.b.test");
    vd_dns_answer_clear(&a);

    /* ... a CNAME loop over a malformed A record: an array per step before. */
    a = (vd_dns_answer){.chain_ttl = UINT32_MAX};
    reply_start(&m, ns_r_noerror, "loop.test", ns_t_a, 2, 0);
    put_name_rr(&m, "loop.test", ns_t_cname, 300, -1, "loop.test");
    put_rr(&m, "loop.test", ns_t_a, 300, "\x7f\0\0", 3);
    CHECK(!parse(&a, ns_t_a, "loop.test", &m, next));
    CHECK_MSG(a.status == VD_DNS_ERROR, "CNAME loop: %s", vd_dns_status_name(a.status));
    CHECK(a.n == 0 && a.addrs == NULL);
    vd_dns_answer_clear(&a);

    /* ... and a CNAME to another zone, followed with a second query: its answer goes into the
     * same vd_dns_answer, which must hold no array from the first reply. */
    a = (vd_dns_answer){.chain_ttl = UINT32_MAX};
    reply_start(&m, ns_r_noerror, "a.test", ns_t_mx, 2, 0);
    put_rr(&m, "a.test", ns_t_mx, 300, "\0", 1);
    put_name_rr(&m, "a.test", ns_t_cname, 50, -1, "b.other");
    CHECK(parse(&a, ns_t_mx, "a.test", &m, next));
    CHECK_STR(next, "b.other");
    CHECK(a.status == VD_DNS_OK && a.n == 0 && a.mx == NULL && a.chain_ttl == 50);
    reply_start(&m, ns_r_noerror, "b.other", ns_t_mx, 1, 0);
    put_name_rr(&m, "b.other", ns_t_mx, 300, 5, "mx.b.other");
    CHECK(!parse(&a, ns_t_mx, "b.other", &m, next));
    CHECK(a.status == VD_DNS_OK && a.n == 1 && a.ttl == 50);
    if (a.n == 1) CHECK_STR(a.mx[0].name, "mx.b.other");
    vd_dns_answer_clear(&a);

    /* Found by tests/fuzz/fuzz_dns: names c-ares cannot spell. It escapes a '.' inside a
     * label ("test." -> "test\."), and dns.c stripped that as a trailing dot ("mx.test\");
     * it writes a label of one NUL byte as a raw NUL (c-ares 1.18), which cut the name
     * short: "\0.a" read as the root (a null MX) and "b.\0" as "b". Such names are now
     * malformed: the record is skipped, the CNAME chain broken. */
    a = (vd_dns_answer){.chain_ttl = UINT32_MAX};
    reply_start(&m, ns_r_noerror, "a.test", ns_t_mx, 2, 0);
    put_rr(&m, "a.test", ns_t_mx, 300, "\0\12\2mx\5test.\0", 12);
    put_rr(&m, "a.test", ns_t_mx, 300, "\0\0\1\0\1a\0", 7);
    CHECK(!parse(&a, ns_t_mx, "a.test", &m, next));
    CHECK_MSG(a.status == VD_DNS_NODATA && a.n == 0, "%s, %zu records, first '%s'",
              vd_dns_status_name(a.status), a.n, a.n ? a.mx[0].name : "");
    vd_dns_answer_clear(&a);

    a = (vd_dns_answer){.chain_ttl = UINT32_MAX};
    reply_start(&m, ns_r_noerror, "a.test", ns_t_mx, 2, 0);
    put_rr(&m, "a.test", ns_t_cname, 300, "\1b\1\0\0", 5);
    put_name_rr(&m, "b", ns_t_mx, 300, 10, "mx.b");
    CHECK(!parse(&a, ns_t_mx, "a.test", &m, next));
    CHECK_MSG(a.status == VD_DNS_ERROR && a.n == 0, "CNAME to b.\\0: %s, %zu records",
              vd_dns_status_name(a.status), a.n);
    vd_dns_answer_clear(&a);

    /* The root stays the root: a null MX, spelled as its zero byte or as a pointer to one
     * (offset 19: the end of the question's name). */
    a = (vd_dns_answer){.chain_ttl = UINT32_MAX};
    reply_start(&m, ns_r_noerror, "a.test", ns_t_mx, 2, 0);
    put_rr(&m, "a.test", ns_t_mx, 300, "\0\0\0", 3);
    put_rr(&m, "a.test", ns_t_mx, 300, "\0\0\xc0\x13", 4);
    CHECK(m.b[19] == 0);
    CHECK(!parse(&a, ns_t_mx, "a.test", &m, next));
    CHECK(a.status == VD_DNS_OK && a.n == 2);
    CHECK(a.n == 2 && a.mx[0].name[0] == '\0' && a.mx[1].name[0] == '\0');
    vd_dns_answer_clear(&a);
}

static void test_basic(vd_dns *d)
{
    mx_out o;
    mx(d, "valid.test", &o);
    CHECK_MSG(o.status == VD_DNS_OK, "valid.test: %s %s", vd_dns_status_name(o.status), o.error);
    CHECK(!o.null_mx && !o.implicit);
    CHECK(o.nhosts == 1);
    CHECK_STR(o.names[0], "mx.valid.test");
    CHECK(o.prefs[0] == 10);
    CHECK(o.naddrs[0] == 1);
    CHECK(o.addr_status[0] == VD_DNS_OK);
    CHECK_STR(o.addr0[0], "127.0.0.10");
    CHECK_MSG(o.ttl > 0 && o.ttl <= 300, "ttl %u", o.ttl);

    /* Names are case-insensitive and may end in a dot. */
    mx(d, "VALID.Test.", &o);
    CHECK(o.status == VD_DNS_OK && o.nhosts == 1);

    mx(d, "deadfirst.test", &o);
    CHECK(o.status == VD_DNS_OK && o.nhosts == 2);
    CHECK_STR(o.names[0], "mx1.deadfirst.test");
    CHECK_STR(o.names[1], "mx2.deadfirst.test");
    CHECK_STR(o.addr0[0], "127.0.0.13");
    CHECK_STR(o.addr0[1], "127.0.0.10");

    mx(d, "xn--bcher-kva.test", &o);
    CHECK(o.status == VD_DNS_OK && o.nhosts == 1);
    CHECK_STR(o.names[0], "mx.xn--bcher-kva.test");
    CHECK_STR(o.addr0[0], "127.0.0.10");
}

static void test_special(vd_dns *d)
{
    mx_out o;
    mx(d, "implicit.test", &o);
    CHECK_MSG(o.status == VD_DNS_OK, "implicit: %s", vd_dns_status_name(o.status));
    CHECK(o.implicit && !o.null_mx);
    CHECK(o.nhosts == 1);
    CHECK_STR(o.names[0], "implicit.test");
    CHECK_STR(o.addr0[0], "127.0.0.10");

    /* nullmx.test also has an A record: it must not turn into an implicit MX. */
    mx(d, "nullmx.test", &o);
    CHECK(o.status == VD_DNS_OK);
    CHECK(o.null_mx && !o.implicit);
    CHECK(o.nhosts == 0);

    mx(d, "nosuch.test", &o);
    CHECK_MSG(o.status == VD_DNS_NXDOMAIN, "nosuch: %s", vd_dns_status_name(o.status));
    CHECK(o.nhosts == 0);

    /* Name exists (TXT), no MX and no address: NODATA, not NXDOMAIN. */
    mx(d, "nomx.test", &o);
    CHECK_MSG(o.status == VD_DNS_NODATA, "nomx: %s", vd_dns_status_name(o.status));
    CHECK(o.nhosts == 0);

    mx(d, "servfail.test", &o);
    CHECK_MSG(o.status == VD_DNS_SERVFAIL, "servfail: %s", vd_dns_status_name(o.status));
    /* The server's rcode, not c-ares' "could not contact DNS servers" after retries. */
    CHECK_MSG(strstr(o.error, "SERVFAIL") != NULL, "servfail detail: %s", o.error);

    /* Outside the world: refused, never looked up on the internet. */
    mx(d, "example.com", &o);
    CHECK_MSG(o.status == VD_DNS_SERVFAIL, "example.com: %s", vd_dns_status_name(o.status));
    CHECK_MSG(strstr(o.error, "REFUSED") != NULL, "example.com detail: %s", o.error);

    /* mailalias.test is a CNAME to valid.test in another zone: the server does not chase
     * it, so dns.c asks for the target itself. */
    mx(d, "mailalias.test", &o);
    CHECK_MSG(o.status == VD_DNS_OK, "mailalias: %s %s", vd_dns_status_name(o.status), o.error);
    CHECK(o.nhosts == 1);
    CHECK_STR(o.names[0], "mx.valid.test");
    CHECK_STR(o.addr0[0], "127.0.0.10");

    /* MX target that is a CNAME: the host keeps its name, its address comes from the chain. */
    mx(d, "mxcname.test", &o);
    CHECK(o.status == VD_DNS_OK && o.nhosts == 1);
    CHECK_STR(o.names[0], "mail.mxcname.test");
    CHECK(o.naddrs[0] == 1);
    CHECK_STR(o.addr0[0], "127.0.0.10");

    mx(d, "v6only.test", &o);
    CHECK(o.status == VD_DNS_OK && o.nhosts == 1);
    CHECK(o.naddrs[0] == 1 && o.family0[0] == AF_INET6);
    CHECK_STR(o.addr0[0], "::1");
    CHECK(o.addr_status[0] == VD_DNS_OK);

    rec_out r = {0};
    vd_dns_txt(d, "nomx.test", on_rec, &r);
    run_until(&r.calls, 1);
    CHECK(r.status == VD_DNS_OK && r.n == 1);
    CHECK_STR(r.first, "no mail here");

    memset(&r, 0, sizeof r);
    vd_dns_txt(d, "mx.valid.test", on_rec, &r);
    run_until(&r.calls, 1);
    CHECK_MSG(r.status == VD_DNS_NODATA, "txt nodata: %s", vd_dns_status_name(r.status));

    /* unbound's built-in localhost reverse zones. */
    struct sockaddr_in sin = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    memset(&r, 0, sizeof r);
    vd_dns_ptr(d, (struct sockaddr *)&sin, on_rec, &r);
    run_until(&r.calls, 1);
    CHECK_MSG(r.status == VD_DNS_OK, "ptr: %s", vd_dns_status_name(r.status));
    CHECK_STR(r.first, "localhost");
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    memset(&r, 0, sizeof r);
    vd_dns_ptr(d, (struct sockaddr *)&sin6, on_rec, &r);
    run_until(&r.calls, 1);
    CHECK_STR(r.first, "localhost");

    addrs_out a = {0};
    vd_dns_addrs(d, "mx.deadfirst.test", on_addrs, &a);
    run_until(&a.calls, 1);
    CHECK_MSG(a.status == VD_DNS_NXDOMAIN, "addrs nx: %s", vd_dns_status_name(a.status));
    memset(&a, 0, sizeof a);
    vd_dns_addrs(d, "mx2.deadfirst.test", on_addrs, &a);
    run_until(&a.calls, 1);
    CHECK(a.status == VD_DNS_OK && a.n == 1);
    CHECK_STR(a.first, "127.0.0.10");
    memset(&a, 0, sizeof a);
    vd_dns_addrs(d, "nomx.test", on_addrs, &a);
    run_until(&a.calls, 1);
    CHECK(a.status == VD_DNS_NODATA && a.n == 0);

    mx(d, "bad..name", &o);
    CHECK(o.status == VD_DNS_ERROR);
}

static void test_order_and_shuffle(vd_dns *d)
{
    mx_out o;
    int a_first = 0, b_first = 0, bad = 0;
    for (int i = 0; i < 64; i++) {
        mx(d, "multi.test", &o);
        if (o.status != VD_DNS_OK || o.nhosts != 3 || strcmp(o.names[2], "c.multi.test") ||
            o.prefs[0] != 10 || o.prefs[1] != 10 || o.prefs[2] != 20) {
            bad++;
            continue;
        }
        if (!strcmp(o.names[0], "a.multi.test") && !strcmp(o.names[1], "b.multi.test")) a_first++;
        if (!strcmp(o.names[0], "b.multi.test") && !strcmp(o.names[1], "a.multi.test")) b_first++;
    }
    CHECK_MSG(bad == 0, "%d answers out of preference order", bad);
    /* From the cache after the first call, so the shuffle is the request's, not the server's. */
    CHECK_MSG(a_first > 0 && b_first > 0, "a first %d times, b first %d times", a_first, b_first);
    CHECK(a_first + b_first == 64);
}

static void test_cache_and_sync(vd_dns *d)
{
    mx_out o;
    mx(d, "catchall.test", &o);
    CHECK(o.status == VD_DNS_OK);
    size_t q = queries(d);
    /* A hit answers before vd_dns_mx returns, and returns NULL. */
    memset(&o, 0, sizeof o);
    vd_dns_req *r = vd_dns_mx(d, "catchall.test", on_mx, &o);
    CHECK(r == NULL);
    CHECK(o.calls == 1 && o.status == VD_DNS_OK);
    CHECK_STR(o.addr0[0], "127.0.0.10");
    CHECK(queries(d) == q);
}

static void test_ttl_expiry(vd_dns *d)
{
    mx_out o;
    size_t q0 = queries(d);
    mx(d, "ttl.test", &o);
    CHECK(o.status == VD_DNS_OK && o.nhosts == 1);
    CHECK_MSG(o.ttl >= 1 && o.ttl <= 2, "ttl.test ttl %u", o.ttl);
    size_t q1 = queries(d);
    CHECK_MSG(q1 - q0 == 3, "MX + A + AAAA: %zu queries", q1 - q0);
    mx(d, "ttl.test", &o);
    CHECK(queries(d) == q1);
    loop_sleep(3.0);
    mx(d, "ttl.test", &o);
    CHECK(o.status == VD_DNS_OK && o.nhosts == 1);
    CHECK_MSG(queries(d) == q1 + 3, "after expiry: %zu new queries", queries(d) - q1);
}

static void test_coalescing(void)
{
    vd_dns *d = dns_new(server, 3000, 0, false);
    mx_out o1, o2;
    memset(&o1, 0, sizeof o1);
    memset(&o2, 0, sizeof o2);
    vd_dns_req *r1 = vd_dns_mx(d, "valid.test", on_mx, &o1);
    vd_dns_req *r2 = vd_dns_mx(d, "valid.test", on_mx, &o2);
    CHECK(r1 != NULL && r2 != NULL);
    run_until(&o2.calls, 1);
    run_until(&o1.calls, 1);
    CHECK(o1.status == VD_DNS_OK && o2.status == VD_DNS_OK);
    CHECK_STR(o2.addr0[0], "127.0.0.10");
    size_t q = 0, hits = 0;
    vd_dns_stats(d, &q, &hits);
    CHECK_MSG(q == 3, "two concurrent lookups sent %zu queries (want MX + A + AAAA)", q);
    CHECK(hits == 3);
    vd_dns_free(d);

    /* Without the cache the same two lookups send everything twice. */
    d = dns_new(server, 3000, 0, true);
    memset(&o1, 0, sizeof o1);
    memset(&o2, 0, sizeof o2);
    vd_dns_mx(d, "valid.test", on_mx, &o1);
    vd_dns_mx(d, "valid.test", on_mx, &o2);
    run_until(&o2.calls, 1);
    run_until(&o1.calls, 1);
    CHECK(o1.status == VD_DNS_OK && o2.status == VD_DNS_OK);
    CHECK(queries(d) == 6);
    vd_dns_free(d);
}

static void test_cancel(void)
{
    vd_dns *d = dns_new(server, 3000, 0, false);
    mx_out o1, o2, o3;
    memset(&o1, 0, sizeof o1);
    memset(&o2, 0, sizeof o2);
    memset(&o3, 0, sizeof o3);
    /* Cancel the first of two coalesced requests, and a lone one. */
    vd_dns_req *r1 = vd_dns_mx(d, "tls.test", on_mx, &o1);
    vd_dns_req *r2 = vd_dns_mx(d, "tls.test", on_mx, &o2);
    vd_dns_req *r3 = vd_dns_mx(d, "grey.test", on_mx, &o3);
    CHECK(r1 && r2 && r3);
    vd_dns_cancel(r1);
    vd_dns_cancel(r3);
    run_until(&o2.calls, 1);
    loop_sleep(0.2);
    CHECK(o1.calls == 0 && o3.calls == 0);
    CHECK(o2.status == VD_DNS_OK);
    CHECK_STR(o2.addr0[0], "127.0.0.12");
    /* The cancelled lookup still filled the cache with grey.test's MX (not its host's
     * addresses: those were never asked). Cancel again in the middle: MX from the cache,
     * A and AAAA in flight. */
    size_t q = queries(d);
    memset(&o3, 0, sizeof o3);
    r3 = vd_dns_mx(d, "grey.test", on_mx, &o3);
    CHECK(r3 != NULL);
    CHECK_MSG(queries(d) == q + 2, "%zu queries (want A + AAAA only)", queries(d) - q);
    vd_dns_cancel(r3);
    loop_sleep(0.2);
    CHECK(o3.calls == 0);
    /* Now everything is cached. */
    mx(d, "grey.test", &o3);
    CHECK(o3.status == VD_DNS_OK && queries(d) == q + 2);
    CHECK_STR(o3.addr0[0], "127.0.0.11");
    vd_dns_free(d);
}

static void test_free_pending(int silent_port)
{
    /* Requests in flight (server and black hole), some half-done: free must call nothing
     * and leak nothing (ASan). */
    vd_dns *d = dns_new(server, 3000, 0, false);
    mx_out o[4];
    memset(o, 0, sizeof o);
    vd_dns_mx(d, "blocked.test", on_mx, &o[0]);
    vd_dns_mx(d, "blocked.test", on_mx, &o[1]);
    vd_dns_mx(d, "tarpit.test", on_mx, &o[2]);
    event_base_loop(base, EVLOOP_NONBLOCK);
    /* an answer may already have come in that one pass; none may come after the free */
    int before = o[0].calls + o[1].calls + o[2].calls;
    vd_dns_free(d);

    char hole[64];
    snprintf(hole, sizeof hole, "127.0.0.1:%d", silent_port);
    d = dns_new(hole, 5000, 1, false);
    vd_dns_mx(d, "longline.test", on_mx, &o[3]);
    event_base_loop(base, EVLOOP_NONBLOCK);
    vd_dns_free(d);
    loop_sleep(0.1);
    CHECK(o[0].calls + o[1].calls + o[2].calls == before);
    CHECK(o[3].calls == 0); /* the black hole never answers */
}

static void test_timeout(int silent_port)
{
    char hole[64];
    snprintf(hole, sizeof hole, "127.0.0.1:%d", silent_port);
    vd_dns *d = dns_new(hole, 200, 1, false);
    struct timeval t0, t1;
    gettimeofday(&t0, NULL);
    mx_out o;
    mx(d, "valid.test", &o);
    gettimeofday(&t1, NULL);
    double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_usec - t0.tv_usec) / 1e6;
    CHECK_MSG(o.status == VD_DNS_TIMEOUT, "black hole: %s", vd_dns_status_name(o.status));
    CHECK_MSG(took >= 0.15 && took < 2.0, "timeout took %.2f s", took);
    vd_dns_free(d);
}

static void test_server_gone(vd_dns *d)
{
    /* Within their TTL, cached answers need no server. */
    CHECK(unbound("stop") == 0);
    size_t q = queries(d);
    mx_out o;
    mx(d, "valid.test", &o);
    CHECK(o.status == VD_DNS_OK && o.nhosts == 1);
    CHECK_STR(o.addr0[0], "127.0.0.10");
    mx(d, "implicit.test", &o);
    CHECK(o.status == VD_DNS_OK && o.implicit);
    mx(d, "nosuch.test", &o); /* negative answers are cached too (SOA minimum 60 s) */
    CHECK(o.status == VD_DNS_NXDOMAIN);
    CHECK(queries(d) == q);
    /* Something not cached now fails as unknown, never as "does not exist". */
    mx(d, "endless.test", &o);
    CHECK_MSG(o.status == VD_DNS_SERVFAIL || o.status == VD_DNS_TIMEOUT, "no server: %s",
              vd_dns_status_name(o.status));
}

int main(void)
{
    const char *src = getenv("VALIDORA_SOURCE_DIR");
    if (src)
        snprintf(script, sizeof script, "%s/tests/world/unbound.sh", src);
    else
        snprintf(script, sizeof script, "%.*s/../world/unbound.sh",
                 (int)(strrchr(__FILE__, '/') - __FILE__), __FILE__);
    /* Several builds may run this test at once (and a killed run may have left its unbound
     * behind): each run gets a free port and a directory named after its pid, and reaps the
     * directories of runs that are gone. */
    test_parse(); /* no server needed */

    reap_orphans();
    port = getenv("VALIDORA_TEST_DNS_PORT");
    if (!port) {
        snprintf(portbuf, sizeof portbuf, "%d", free_port());
        port = portbuf;
    }
    snprintf(server, sizeof server, "127.0.0.1:%s", port);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/validora-test-dns-%ld", (long)getpid());
    if (unbound("start") != 0) {
        fprintf(stderr, "cannot start unbound (%s)\n", script);
        return 1;
    }

    /* A UDP socket that receives queries and never answers. */
    int hole = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET};
    socklen_t sl = sizeof sin;
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    CHECK(bind(hole, (struct sockaddr *)&sin, sizeof sin) == 0);
    getsockname(hole, (struct sockaddr *)&sin, &sl);
    int hole_port = ntohs(sin.sin_port);

    base = event_base_new();
    CHECK_STR(vd_dns_status_name(VD_DNS_NXDOMAIN), "nxdomain");
    CHECK_STR(vd_dns_status_name(VD_DNS_NODATA), "nodata");

    vd_dns *d = dns_new(server, 3000, 0, false);
    test_basic(d);
    test_special(d);
    test_order_and_shuffle(d);
    test_cache_and_sync(d);
    test_ttl_expiry(d);
    test_coalescing();
    test_cancel();
    test_timeout(hole_port);
    test_free_pending(hole_port);
    test_server_gone(d); /* stops unbound: last */
    vd_dns_free(d);

    event_base_free(base);
    close(hole);
    unbound("stop");
    char rm[512];
    snprintf(rm, sizeof rm, "rm -rf '%s'", tmpdir);
    if (system(rm) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_done();
}
