/* doctor.c — `validora doctor`: the sender's own setup checked the way a receiving mail
 * server sees it, each check with what to fix (docs/doctor.md; API: validora/doctor.h).
 *
 * Owns: the checks and their pass/fail/unknown/skip rules; a private event_base and vd_dns
 * (dns.c) driven synchronously (each lookup runs the loop until its callback); libspf2 with
 * a DNS layer of ours on top of that vd_dns, so SPF asks the --dns servers and nothing else;
 * the port-25 session's judgement: one session opened through smtp.c on the same loop, as
 * the engine opens one (connect, banner, EHLO/HELO, STARTTLS via tls.c, --smtp-timeout for
 * each step), its banner seen through the session's trace, then QUIT.
 * Does not own: printing (cli_doctor.c), the lists (lists.c), the default HELO and MAIL FROM
 * and which of them are someone else's (sender.c, shared with the engine's start-up), what an
 * SPF record means (libspf2), the instance lock (ledger.c), the SMTP dialogue and its reply
 * parsing (smtp.c), TLS contexts (tls.c). */
#include "doctor.h"
#include "ledger.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libpsl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <event2/event.h>
#include <spf2/spf.h>
#include "clock.h"
#include "destination.h"
#include "dns.h"
#include "lists.h"
#include "sender.h"
#include "smtp.h"
#include "tls.h"

const char *const vd_doctor_default_dnsbls[] = {"zen.spamhaus.org", "bl.spamcop.net",
                                                "b.barracudacentral.org", NULL};

#define MAX_ADDRS 16 /* addresses shown in a detail */
#define MAX_PTRS  10 /* PTR names followed forward */

const char *vd_doctor_status_name(vd_doctor_status s)
{
    switch (s) {
    case VD_DOCTOR_PASS:
        return "pass";
    case VD_DOCTOR_FAIL:
        return "fail";
    case VD_DOCTOR_UNKNOWN:
        return "unknown";
    case VD_DOCTOR_SKIP:
        return "skip";
    }
    return "?";
}

/* ---- the pure judgements ---- */

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcasecmp(s + n - m, suffix);
}

const char *vd_doctor_helo_problem(const char *name, char *why, size_t whylen)
{
    char h[256];
    size_t n = name ? strlen(name) : 0;
    if (n && name[n - 1] == '.') n--;
    if (n == 0) {
        snprintf(why, whylen, "the HELO name is empty");
        return why;
    }
    if (n > 253) {
        snprintf(why, whylen, "the HELO name is longer than 253 bytes");
        return why;
    }
    memcpy(h, name, n);
    h[n] = '\0';
    unsigned char buf[sizeof(struct in6_addr)];
    if (h[0] == '[' || strchr(h, ':') || inet_pton(AF_INET, h, buf) == 1) {
        snprintf(why, whylen, "'%s' is an IP address, not a host name", h);
        return why;
    }
    if (!strchr(h, '.')) {
        snprintf(why, whylen, "'%s' is a bare host name, not fully qualified", h);
        return why;
    }
    if (!strcasecmp(h, "localhost") || ends_with(h, ".localhost")) {
        snprintf(why, whylen, "'%s' is localhost: it names every machine", h);
        return why;
    }
    if (ends_with(h, ".localdomain") || ends_with(h, ".local")) {
        snprintf(why, whylen, "'%s' is in %s, a name that exists only on this machine or network",
                 h, ends_with(h, ".local") ? ".local" : ".localdomain");
        return why;
    }
    const char *label = h;
    bool numeric = true;
    for (const char *p = h;; p++) {
        if (*p == '.' || *p == '\0') {
            size_t len = (size_t)(p - label);
            if (len == 0 || len > 63) {
                snprintf(why, whylen, "'%s' has a label that is %s", h,
                         len ? "longer than 63 bytes" : "empty");
                return why;
            }
            if (label[0] == '-' || p[-1] == '-') {
                snprintf(why, whylen, "'%s' has a label starting or ending with '-'", h);
                return why;
            }
            if (*p == '\0') break;
            label = p + 1;
            numeric = true;
            continue;
        }
        unsigned char c = (unsigned char)*p;
        bool digit = c >= '0' && c <= '9';
        if (!digit && !(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && c != '-') {
            snprintf(why, whylen, "'%s' has a character not allowed in a host name: '%c'", h,
                     c >= 0x20 && c < 0x7f ? c : '?');
            return why;
        }
        if (!digit) numeric = false;
    }
    if (numeric) {
        snprintf(why, whylen, "'%s' ends in a numeric label: no top-level domain is numeric", h);
        return why;
    }
    return NULL;
}

vd_dnsbl_answer vd_doctor_dnsbl_answer(uint32_t addr, const char **meaning)
{
    uint32_t a = ntohl(addr);
    if (meaning) *meaning = "";
    if ((a & 0xffffff00u) == 0x7fffff00u) {
        if (meaning) {
            if (a == 0x7ffffffcu)
                *meaning = "typing error in the DNSBL name";
            else if (a == 0x7ffffffeu)
                *meaning = "query through a public or open resolver: refused";
            else if (a == 0x7fffffffu)
                *meaning = "excessive number of queries: refused";
            else
                *meaning = "an error code";
        }
        return VD_DNSBL_ERROR;
    }
    if ((a & 0xffffff00u) == 0x7f000000u) return VD_DNSBL_LISTED;
    return VD_DNSBL_UNEXPECTED;
}

/* ---- the run ---- */

typedef struct doctor {
    const vd_engine_config *cfg;
    const vd_doctor_opts *o;
    vd_doctor_cb cb;
    void *arg;
    int not_passed;
    struct event_base *base;
    vd_dns *dns;
    vd_lists *lists;
    char helo[256];
    bool helo_fqdn;
    char mail_from[320];
    char domain[256]; /* the MAIL FROM domain; the HELO name for the null sender */
    bool have_ip;
    struct sockaddr_storage ip;
    char ipstr[INET6_ADDRSTRLEN];
    char no_ip[160]; /* why there is no source IP */
    bool have_host;
    struct sockaddr_storage host; /* the test host, port set */
    char host_name[256];
    uint16_t host_port;
    char host_err[300];     /* why the test host could not be resolved */
    struct timespec spf_by; /* the SPF evaluation's deadline */
} doctor;

static void report(doctor *d, const char *name, vd_doctor_status st, const char *fix,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void report(doctor *d, const char *name, vd_doctor_status st, const char *fix,
                   const char *fmt, ...)
{
    char detail[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    if (st == VD_DOCTOR_FAIL || st == VD_DOCTOR_UNKNOWN) d->not_passed++;
    vd_doctor_check c = {
        .name = name, .status = st, .detail = detail, .fix = st == VD_DOCTOR_PASS ? NULL : fix};
    if (st == VD_DOCTOR_SKIP) c.fix = NULL;
    d->cb(&c, d->arg);
}

static void lower(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z') *s = (char)(*s - 'A' + 'a');
}

static const char *addr_str(const struct sockaddr_storage *ss, char *buf, size_t len)
{
    const void *a = ss->ss_family == AF_INET6
                        ? (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr
                        : (const void *)&((const struct sockaddr_in *)ss)->sin_addr;
    if (!inet_ntop(ss->ss_family, a, buf, (socklen_t)len)) snprintf(buf, len, "?");
    return buf;
}

static bool same_ip(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family) return false;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    return !memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                   &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr));
}

static bool parse_ip(const char *s, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, s, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, s, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        return true;
    }
    return false;
}

static socklen_t ss_len(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

static void set_port(struct sockaddr_storage *ss, uint16_t port)
{
    if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
    else
        ((struct sockaddr_in *)ss)->sin_port = htons(port);
}

/* ---- synchronous DNS on the private loop ---- */

typedef struct sync_q {
    bool done;
    vd_dns_status status;
    size_t n;
    char **items;                   /* TXT strings, PTR or MX host names */
    struct sockaddr_storage *addrs; /* A/AAAA */
    bool null_mx, implicit;
} sync_q;

static void sync_free(sync_q *q)
{
    for (size_t i = 0; i < q->n && q->items; i++)
        free(q->items[i]);
    free(q->items);
    free(q->addrs);
    memset(q, 0, sizeof *q);
}

static void on_records(const vd_dns_records *r, void *arg)
{
    sync_q *q = arg;
    q->done = true;
    q->status = r->status;
    if (r->n && (q->items = calloc(r->n, sizeof *q->items))) {
        for (size_t i = 0; i < r->n; i++)
            if ((q->items[q->n] = strdup(r->items[i]))) q->n++;
    }
}

static void on_addrs(const vd_dns_addr_list *r, void *arg)
{
    sync_q *q = arg;
    q->done = true;
    q->status = r->status;
    if (r->n && (q->addrs = malloc(r->n * sizeof *q->addrs))) {
        memcpy(q->addrs, r->addrs, r->n * sizeof *q->addrs);
        q->n = r->n;
    }
}

static void on_mx(const vd_mx_result *r, void *arg)
{
    sync_q *q = arg;
    q->done = true;
    q->status = r->status;
    q->null_mx = r->null_mx;
    q->implicit = r->implicit;
    if (r->nhosts && (q->items = calloc(r->nhosts, sizeof *q->items))) {
        for (size_t i = 0; i < r->nhosts; i++)
            if ((q->items[q->n] = strdup(r->hosts[i].name))) q->n++;
    }
}

static void wait_for(doctor *d, sync_q *q)
{
    while (!q->done)
        if (event_base_loop(d->base, EVLOOP_ONCE) != 0) break;
    if (!q->done) {
        q->done = true;
        q->status = VD_DNS_ERROR;
    }
}

static void sync_txt(doctor *d, const char *name, sync_q *q)
{
    memset(q, 0, sizeof *q);
    vd_dns_txt(d->dns, name, on_records, q);
    wait_for(d, q);
}

static void sync_addrs(doctor *d, const char *name, sync_q *q)
{
    memset(q, 0, sizeof *q);
    vd_dns_addrs(d->dns, name, on_addrs, q);
    wait_for(d, q);
}

static void sync_ptr(doctor *d, const struct sockaddr_storage *ip, sync_q *q)
{
    memset(q, 0, sizeof *q);
    vd_dns_ptr(d->dns, (const struct sockaddr *)ip, on_records, q);
    wait_for(d, q);
}

static void sync_mx(doctor *d, const char *name, sync_q *q)
{
    memset(q, 0, sizeof *q);
    vd_dns_mx(d->dns, name, on_mx, q);
    wait_for(d, q);
}

/* "a, b, c" of q's addresses. */
static void addrs_list(const sync_q *q, char *buf, size_t len)
{
    buf[0] = '\0';
    for (size_t i = 0; i < q->n && i < MAX_ADDRS; i++) {
        char a[INET6_ADDRSTRLEN];
        size_t used = strlen(buf);
        snprintf(buf + used, len - used, "%s%s", i ? ", " : "",
                 addr_str(&q->addrs[i], a, sizeof a));
    }
}

static bool q_has_ip(const sync_q *q, const struct sockaddr_storage *ip)
{
    for (size_t i = 0; i < q->n; i++)
        if (same_ip(&q->addrs[i], ip)) return true;
    return false;
}

/* A DNS failure in words: "timeout", "servfail", ... */
static const char *dns_why(vd_dns_status s)
{
    return vd_dns_status_name(s);
}

/* ---- checks ---- */

static void check_helo_fqdn(doctor *d)
{
    char why[400], fix[600];
    if (!vd_doctor_helo_problem(d->helo, why, sizeof why)) {
        d->helo_fqdn = true;
        report(d, "helo-fqdn", VD_DOCTOR_PASS, NULL, "'%s' is a fully qualified domain name",
               d->helo);
        return;
    }
    snprintf(fix, sizeof fix,
             "set --helo to this host's fully qualified name in a domain you own (e.g. "
             "mta.example.com), with an A/AAAA record pointing to %s and the PTR of %s "
             "pointing back to it",
             d->have_ip ? d->ipstr : "the source IP", d->have_ip ? d->ipstr : "that IP");
    report(d, "helo-fqdn", VD_DOCTOR_FAIL, fix, "%s", why);
}

static void check_helo_resolves(doctor *d)
{
    const char *name = "helo-resolves";
    if (!d->helo_fqdn) {
        report(d, name, VD_DOCTOR_FAIL, "fix helo-fqdn first",
               "not looked up: '%s' is not a fully qualified name", d->helo);
        return;
    }
    sync_q q;
    sync_addrs(d, d->helo, &q);
    char fix[600], list[1024];
    switch (q.status) {
    case VD_DNS_OK:
        addrs_list(&q, list, sizeof list);
        if (!d->have_ip)
            report(d, name, VD_DOCTOR_UNKNOWN, "give --source-ip",
                   "could not tell: %s resolves to %s, and the source IP is not known (%s)",
                   d->helo, list, d->no_ip);
        else if (q_has_ip(&q, &d->ip))
            report(d, name, VD_DOCTOR_PASS, NULL, "%s resolves to %s, the source IP is among them",
                   d->helo, list);
        else {
            snprintf(fix, sizeof fix,
                     "add an %s record %s for %s, or set --helo to the name that has one",
                     d->ip.ss_family == AF_INET6 ? "AAAA" : "A", d->ipstr, d->helo);
            report(d, name, VD_DOCTOR_FAIL, fix, "%s resolves to %s, not to the source IP %s",
                   d->helo, list, d->ipstr);
        }
        break;
    case VD_DNS_NXDOMAIN:
    case VD_DNS_NODATA:
        snprintf(fix, sizeof fix, "publish an %s record %s for %s",
                 d->have_ip && d->ip.ss_family == AF_INET6 ? "AAAA" : "A",
                 d->have_ip ? d->ipstr : "(the source IP)", d->helo);
        report(d, name, VD_DOCTOR_FAIL, fix, "%s %s", d->helo,
               q.status == VD_DNS_NXDOMAIN ? "does not exist in DNS (NXDOMAIN)"
                                           : "has no A or AAAA record");
        break;
    default:
        report(d, name, VD_DOCTOR_UNKNOWN,
               "make sure the --dns servers answer for the HELO name's domain, then run again",
               "could not tell: looking up %s failed (%s)", d->helo, dns_why(q.status));
    }
    sync_free(&q);
}

static void check_fcrdns(doctor *d)
{
    const char *name = "fcrdns";
    if (!d->have_ip) {
        report(d, name, VD_DOCTOR_UNKNOWN, "give --source-ip", "could not tell: %s", d->no_ip);
        return;
    }
    char fix[700];
    sync_q q;
    sync_ptr(d, &d->ip, &q);
    if (q.status == VD_DNS_NXDOMAIN || q.status == VD_DNS_NODATA ||
        (q.status == VD_DNS_OK && !q.n)) {
        snprintf(fix, sizeof fix,
                 "ask whoever assigns %s (the hosting provider or ISP) to set its PTR record to "
                 "%s; many receivers refuse mail from an IP without reverse DNS",
                 d->ipstr, d->helo);
        report(d, name, VD_DOCTOR_FAIL, fix, "%s has no PTR record (%s)", d->ipstr,
               dns_why(q.status));
        sync_free(&q);
        return;
    }
    if (q.status != VD_DNS_OK) {
        report(d, name, VD_DOCTOR_UNKNOWN,
               "make sure the --dns servers answer reverse (in-addr.arpa/ip6.arpa) queries",
               "could not tell: the PTR lookup of %s failed (%s)", d->ipstr, dns_why(q.status));
        sync_free(&q);
        return;
    }
    char names[1024] = "", confirmed[1024] = "", best[256] = "";
    bool helo_named = false, helo_confirmed = false, lookup_failed = false;
    for (size_t i = 0; i < q.n && i < MAX_PTRS; i++) {
        char *p = q.items[i];
        size_t len = strlen(p);
        if (len && p[len - 1] == '.') p[len - 1] = '\0';
        lower(p);
        size_t u = strlen(names);
        snprintf(names + u, sizeof names - u, "%s%s", i ? ", " : "", p);
        bool is_helo = !strcasecmp(p, d->helo);
        if (is_helo) helo_named = true;
        sync_q f;
        sync_addrs(d, p, &f);
        if (f.status == VD_DNS_OK && q_has_ip(&f, &d->ip)) {
            u = strlen(confirmed);
            snprintf(confirmed + u, sizeof confirmed - u, "%s%s", confirmed[0] ? ", " : "", p);
            if (is_helo) helo_confirmed = true;
            char why[300];
            if (!best[0] && !vd_doctor_helo_problem(p, why, sizeof why))
                snprintf(best, sizeof best, "%s", p);
        } else if (f.status != VD_DNS_OK && f.status != VD_DNS_NXDOMAIN &&
                   f.status != VD_DNS_NODATA) {
            lookup_failed = true;
        }
        sync_free(&f);
    }
    if (helo_confirmed) {
        report(d, name, VD_DOCTOR_PASS, NULL, "PTR %s -> %s -> %s (forward-confirmed)", d->ipstr,
               d->helo, d->ipstr);
    } else if (helo_named) {
        snprintf(fix, sizeof fix, "publish an %s record %s for %s so that the PTR confirms",
                 d->ip.ss_family == AF_INET6 ? "AAAA" : "A", d->ipstr, d->helo);
        report(d, name, lookup_failed ? VD_DOCTOR_UNKNOWN : VD_DOCTOR_FAIL, fix,
               "the PTR of %s names %s, but %s does not resolve back to %s%s", d->ipstr, d->helo,
               d->helo, d->ipstr, lookup_failed ? " (a lookup failed)" : "");
    } else if (confirmed[0]) {
        snprintf(fix, sizeof fix,
                 "set --helo to %s (a forward-confirmed PTR name), or have the PTR of %s "
                 "changed to %s",
                 best[0] ? best : confirmed, d->ipstr, d->helo);
        report(d, name, VD_DOCTOR_FAIL, fix,
               "the PTR of %s names %s (forward-confirmed), not the HELO name %s", d->ipstr, names,
               d->helo);
    } else {
        snprintf(fix, sizeof fix,
                 "have the PTR of %s set to %s, and %s's %s record set to %s (forward-confirmed "
                 "reverse DNS)",
                 d->ipstr, d->helo, d->helo, d->ip.ss_family == AF_INET6 ? "AAAA" : "A", d->ipstr);
        report(d, name, lookup_failed ? VD_DOCTOR_UNKNOWN : VD_DOCTOR_FAIL, fix,
               "the PTR of %s names %s, which does not resolve back to %s%s", d->ipstr, names,
               d->ipstr, lookup_failed ? " (a lookup failed)" : "");
    }
    sync_free(&q);
}

/* ---- SPF through libspf2, with dns.c as its DNS layer ---- */

static bool past(const struct timespec *by)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec > by->tv_sec || (t.tv_sec == by->tv_sec && t.tv_nsec >= by->tv_nsec);
}

/* "4.3.2.1.in-addr.arpa" (or the 32 nibbles of ip6.arpa) back into an address. */
static bool arpa_to_ip(const char *name, struct sockaddr_storage *ss)
{
    char buf[128];
    memset(ss, 0, sizeof *ss);
    size_t n = strlen(name);
    if (n >= sizeof buf) return false;
    memcpy(buf, name, n + 1);
    if (n && buf[n - 1] == '.') buf[--n] = '\0';
    lower(buf);
    if (ends_with(buf, ".in-addr.arpa")) {
        buf[n - strlen(".in-addr.arpa")] = '\0';
        unsigned o[4];
        char extra;
        if (sscanf(buf, "%u.%u.%u.%u%c", &o[3], &o[2], &o[1], &o[0], &extra) != 4) return false;
        for (int i = 0; i < 4; i++)
            if (o[i] > 255) return false;
        struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
        v4->sin_family = AF_INET;
        v4->sin_addr.s_addr = htonl(o[0] << 24 | o[1] << 16 | o[2] << 8 | o[3]);
        return true;
    }
    if (ends_with(buf, ".ip6.arpa")) {
        buf[n - strlen(".ip6.arpa")] = '\0';
        if (strlen(buf) != 63) return false;
        struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
        v6->sin6_family = AF_INET6;
        for (int i = 0; i < 32; i++) {
            char c = buf[2 * i];
            if (i < 31 && buf[2 * i + 1] != '.') return false;
            int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (v < 0) return false;
            int nib = 31 - i; /* the first label is the lowest nibble */
            v6->sin6_addr.s6_addr[nib / 2] |= (uint8_t)(nib % 2 ? v : v << 4);
        }
        return true;
    }
    return false;
}

static int spf_herrno(vd_dns_status s)
{
    switch (s) {
    case VD_DNS_OK:
        return NETDB_SUCCESS;
    case VD_DNS_NXDOMAIN:
        return HOST_NOT_FOUND;
    case VD_DNS_NODATA:
        return NO_DATA;
    default:
        return TRY_AGAIN;
    }
}

static SPF_dns_rr_t *spf_lookup(SPF_dns_server_t *server, const char *domain, ns_type type,
                                int should_cache)
{
    (void)should_cache;
    doctor *d = server->hook;
    if (past(&d->spf_by)) return SPF_dns_rr_new_init(server, domain, type, 0, TRY_AGAIN);
    sync_q q;
    memset(&q, 0, sizeof q);
    bool strings = true;
    switch (type) {
    case ns_t_a:
    case ns_t_aaaa:
        sync_addrs(d, domain, &q);
        strings = false;
        break;
    case ns_t_txt:
        sync_txt(d, domain, &q);
        break;
    case ns_t_mx:
        sync_mx(d, domain, &q);
        /* an implicit MX is not an MX record; a null MX names no host */
        if (q.status == VD_DNS_OK && (q.implicit || q.null_mx)) {
            sync_free(&q);
            q.status = VD_DNS_NODATA;
        }
        break;
    case ns_t_ptr: {
        struct sockaddr_storage ss;
        if (!arpa_to_ip(domain, &ss)) return SPF_dns_rr_new_init(server, domain, type, 0, NO_DATA);
        sync_ptr(d, &ss, &q);
        break;
    }
    default:
        return SPF_dns_rr_new_init(server, domain, type, 0, NO_DATA);
    }
    SPF_dns_rr_t *rr = SPF_dns_rr_new_init(server, domain, type, 0, spf_herrno(q.status));
    if (!rr || q.status != VD_DNS_OK) {
        sync_free(&q);
        return rr;
    }
    int cnt = 0;
    for (size_t i = 0; i < q.n; i++) {
        if (strings) {
            size_t len = strlen(q.items[i]);
            if (len && q.items[i][len - 1] == '.' && type != ns_t_txt) q.items[i][--len] = '\0';
            if (SPF_dns_rr_buf_realloc(rr, cnt, len + 1) != SPF_E_SUCCESS) break;
            memcpy(rr->rr[cnt]->txt, q.items[i], len + 1);
            cnt++;
            continue;
        }
        int fam = type == ns_t_a ? AF_INET : AF_INET6;
        if (q.addrs[i].ss_family != fam) continue;
        if (fam == AF_INET) {
            if (SPF_dns_rr_buf_realloc(rr, cnt, sizeof rr->rr[cnt]->a) != SPF_E_SUCCESS) break;
            rr->rr[cnt]->a = ((struct sockaddr_in *)&q.addrs[i])->sin_addr;
        } else {
            if (SPF_dns_rr_buf_realloc(rr, cnt, sizeof rr->rr[cnt]->aaaa) != SPF_E_SUCCESS) break;
            rr->rr[cnt]->aaaa = ((struct sockaddr_in6 *)&q.addrs[i])->sin6_addr;
        }
        cnt++;
    }
    rr->num_rr = cnt;
    if (cnt == 0) rr->herrno = NO_DATA;
    sync_free(&q);
    return rr;
}

/* libspf2 prints its warnings and notes on stderr; the library says nothing by itself. */
static void spf_quiet(const char *file, int line, const char *msg)
{
    (void)file;
    (void)line;
    (void)msg;
}

/* The v=spf1 record of domain, for the detail ("" when none could be read). */
static void spf_record_text(doctor *d, const char *domain, char *out, size_t len)
{
    sync_q q;
    sync_txt(d, domain, &q);
    out[0] = '\0';
    for (size_t i = 0; q.status == VD_DNS_OK && i < q.n; i++)
        if (!strncasecmp(q.items[i], "v=spf1", 6) && (q.items[i][6] == ' ' || !q.items[i][6])) {
            snprintf(out, len, "\"%.300s\"", q.items[i]);
            break;
        }
    sync_free(&q);
}

/* The fix for a DNS record of the domain the SPF and DMARC checks judge, when that domain is a
 * free-mail provider's or a disposable-mail service's (own-domain's judgement): the user cannot
 * publish anything there, so the only fix is a domain of their own (issue 17: doctor advised
 * publishing an SPF record at gmail.com). NULL when the domain may be the user's. */
static const char *foreign_domain_fix(doctor *d, char *fix, size_t len)
{
    char why[512];
    int foreign =
        d->lists ? vd_sender_identity_check(d->lists, d->helo, d->mail_from, why, sizeof why) : 0;
    bool null_sender = !d->mail_from[0];
    if (!(foreign & (null_sender ? VD_SENDER_FOREIGN_HELO : VD_SENDER_FOREIGN_MAIL_FROM)))
        return NULL;
    snprintf(fix, len,
             "%s is not yours to publish records for (a free-mail or disposable-mail domain): "
             "use a %s at a domain you own (%s), then publish its records there",
             d->domain, null_sender ? "HELO name" : "MAIL FROM",
             null_sender ? "--helo host.your-domain" : "--mail-from verify@your-domain");
    return fix;
}

static void check_spf(doctor *d)
{
    const char *name = "spf";
    if (!d->have_ip) {
        report(d, name, VD_DOCTOR_UNKNOWN, "give --source-ip", "could not tell: %s", d->no_ip);
        return;
    }
    SPF_warning_handler = spf_quiet;
    SPF_info_handler = spf_quiet;
    SPF_debug_handler = spf_quiet;
    SPF_dns_server_t layer = {.lookup = spf_lookup, .name = "validora", .hook = d};
    SPF_server_t *srv = SPF_server_new_dns(&layer, 0);
    SPF_request_t *rq = srv ? SPF_request_new(srv) : NULL;
    SPF_response_t *rs = NULL;
    if (!rq) {
        if (srv) SPF_server_free(srv);
        report(d, name, VD_DOCTOR_UNKNOWN, "run again", "could not tell: out of memory");
        return;
    }
    if (d->ip.ss_family == AF_INET)
        SPF_request_set_ipv4(rq, ((struct sockaddr_in *)&d->ip)->sin_addr);
    else
        SPF_request_set_ipv6(rq, ((struct sockaddr_in6 *)&d->ip)->sin6_addr);
    SPF_request_set_helo_dom(rq, d->helo);
    SPF_request_set_env_from(rq, d->mail_from);
    double by = vd_now_mono() + VD_DOCTOR_SPF_DEADLINE;
    d->spf_by.tv_sec = (time_t)by;
    d->spf_by.tv_nsec = (long)((by - (double)(time_t)by) * 1e9);
    /* SPF_request_query_mailfrom, without its "free ride" for loopback addresses: a receiver
     * never sees the sender's own loopback, and the test world lives on 127.0.0.0/8. The same
     * steps as libspf2's: the record of the MAIL FROM domain, then its interpretation. */
    SPF_errcode_t e = SPF_E_NO_MEMORY;
    SPF_result_t res = SPF_RESULT_INVALID;
    if ((rs = SPF_response_new(rq))) {
        rq->use_helo = 0;
        rq->cur_dom = rq->env_from_dp;
        SPF_record_t *rec = NULL;
        e = SPF_server_get_record(srv, rq, rs, &rec);
        if (e == SPF_E_SUCCESS && rec) {
            rs->spf_record_exp = rec;
            e = SPF_record_interpret(rec, rq, rs, 0);
            rs->spf_record_exp = NULL;
        }
        if (rec) SPF_record_free(rec);
        res = SPF_response_result(rs);
    }
    char record[400], fix[800], foreign[600];
    const char *not_ours = foreign_domain_fix(d, foreign, sizeof foreign);
    spf_record_text(d, d->domain, record, sizeof record);
    const char *what = res == SPF_RESULT_INVALID ? "no result" : SPF_strresult(res);
    const char *err = e != SPF_E_SUCCESS ? SPF_strerror(e) : "";
    bool timed_out = past(&d->spf_by);
    switch (res) {
    case SPF_RESULT_PASS:
        report(d, name, VD_DOCTOR_PASS, NULL, "%s's SPF authorises %s (pass): %s", d->domain,
               d->ipstr, record);
        break;
    case SPF_RESULT_FAIL:
    case SPF_RESULT_SOFTFAIL:
    case SPF_RESULT_NEUTRAL:
        snprintf(fix, sizeof fix,
                 "add %s:%s to %s's SPF record (e.g. \"v=spf1 %s:%s ... -all\"), or send from an "
                 "IP it already lists",
                 d->ip.ss_family == AF_INET6 ? "ip6" : "ip4", d->ipstr, d->domain,
                 d->ip.ss_family == AF_INET6 ? "ip6" : "ip4", d->ipstr);
        report(d, name, VD_DOCTOR_FAIL, not_ours ? not_ours : fix,
               "%s's SPF does not authorise %s (%s): %s", d->domain, d->ipstr, what, record);
        break;
    case SPF_RESULT_NONE:
        snprintf(fix, sizeof fix, "publish a TXT record at %s: \"v=spf1 %s:%s -all\"", d->domain,
                 d->ip.ss_family == AF_INET6 ? "ip6" : "ip4", d->ipstr);
        report(d, name, VD_DOCTOR_FAIL, not_ours ? not_ours : fix, "%s has no SPF record (none)",
               d->domain);
        break;
    case SPF_RESULT_PERMERROR:
        snprintf(fix, sizeof fix,
                 "correct %s's SPF record (RFC 7208): at most 10 DNS-querying mechanisms, one "
                 "v=spf1 record, valid syntax",
                 d->domain);
        report(d, name, VD_DOCTOR_FAIL, fix, "%s's SPF record is broken (permerror: %s): %s",
               d->domain, err, record);
        break;
    default:
        report(d, name, VD_DOCTOR_UNKNOWN,
               "make sure the --dns servers answer for the MAIL FROM domain, then run again",
               "could not tell: SPF evaluation of %s gave %s%s%s%s%s", d->domain, what,
               err[0] ? " (" : "", err, err[0] ? ")" : "",
               timed_out ? "; it ran out of its time" : "");
        break;
    }
    SPF_response_free(rs);
    SPF_request_free(rq);
    SPF_server_free(srv);
}

/* The registrable domain of name (libpsl), or name itself. */
static void org_domain(const char *name, char *out, size_t len)
{
    const char *r = psl_registrable_domain(psl_builtin(), name);
    snprintf(out, len, "%s", r ? r : name);
}

/* The first TXT record at name starting with prefix (case-insensitive), copied into out. */
static vd_dns_status find_txt(doctor *d, const char *name, const char *prefix, char *out,
                              size_t len)
{
    sync_q q;
    sync_txt(d, name, &q);
    vd_dns_status st = q.status;
    out[0] = '\0';
    if (st == VD_DNS_OK) {
        st = VD_DNS_NODATA;
        for (size_t i = 0; i < q.n; i++)
            if (!strncasecmp(q.items[i], prefix, strlen(prefix))) {
                snprintf(out, len, "%s", q.items[i]);
                st = VD_DNS_OK;
                break;
            }
    }
    sync_free(&q);
    return st;
}

static void check_dmarc(doctor *d)
{
    const char *name = "dmarc";
    char qname[300], rec[600], fix[1200], org[256];
    snprintf(qname, sizeof qname, "_dmarc.%s", d->domain);
    vd_dns_status st = find_txt(d, qname, "v=DMARC1", rec, sizeof rec);
    org_domain(d->domain, org, sizeof org);
    if (st != VD_DNS_OK && st != VD_DNS_TIMEOUT && st != VD_DNS_SERVFAIL && st != VD_DNS_ERROR &&
        strcasecmp(org, d->domain) != 0) {
        /* RFC 7489 §6.6.3: no record at the domain: the organizational domain's applies */
        snprintf(qname, sizeof qname, "_dmarc.%s", org);
        st = find_txt(d, qname, "v=DMARC1", rec, sizeof rec);
    }
    if (st == VD_DNS_OK) {
        report(d, name, VD_DOCTOR_PASS, NULL, "%s TXT \"%.400s\"", qname, rec);
    } else if (st == VD_DNS_NXDOMAIN || st == VD_DNS_NODATA) {
        snprintf(fix, sizeof fix,
                 "publish a TXT record at _dmarc.%s: \"v=DMARC1; p=none; rua=mailto:dmarc@%s\" "
                 "(then tighten p= to quarantine or reject)",
                 org, org);
        char foreign[600];
        const char *not_ours = foreign_domain_fix(d, foreign, sizeof foreign);
        report(d, name, VD_DOCTOR_FAIL, not_ours ? not_ours : fix,
               "no DMARC record (TXT v=DMARC1) at _dmarc.%s%s%s", d->domain,
               strcasecmp(org, d->domain) ? " nor _dmarc." : "",
               strcasecmp(org, d->domain) ? org : "");
    } else {
        report(d, name, VD_DOCTOR_UNKNOWN,
               "make sure the --dns servers answer for the MAIL FROM domain, then run again",
               "could not tell: looking up %s failed (%s)", qname, dns_why(st));
    }
}

static void check_dkim(doctor *d)
{
    const char *name = "dkim";
    if (!d->o->dkim_selector || !d->o->dkim_selector[0]) {
        report(d, name, VD_DOCTOR_SKIP, NULL,
               "skipped: no selector given (--dkim-selector NAME checks NAME._domainkey.%s)",
               d->domain);
        return;
    }
    char qname[600], fix[1400];
    snprintf(qname, sizeof qname, "%s._domainkey.%s", d->o->dkim_selector, d->domain);
    sync_q q;
    sync_txt(d, qname, &q);
    const char *key = NULL;
    for (size_t i = 0; q.status == VD_DNS_OK && i < q.n; i++)
        if (!strncasecmp(q.items[i], "v=DKIM1", 7) || strstr(q.items[i], "p=")) {
            key = q.items[i];
            break;
        }
    if (key) {
        /* p= with nothing after it: the key was revoked (RFC 6376 §3.6.1) */
        const char *p = strstr(key, "p=");
        bool revoked = false;
        if (p) {
            p += 2;
            while (*p == ' ' || *p == '\t')
                p++;
            revoked = *p == '\0' || *p == ';';
        }
        if (!p) {
            snprintf(fix, sizeof fix, "add the public key (p=...) to the TXT record at %s", qname);
            report(d, name, VD_DOCTOR_FAIL, fix, "%s has a DKIM record without a key (no p=)",
                   qname);
        } else if (revoked) {
            snprintf(fix, sizeof fix,
                     "publish the current public key at %s, or give the selector now in use",
                     qname);
            report(d, name, VD_DOCTOR_FAIL, fix, "%s has a revoked DKIM key (empty p=)", qname);
        } else {
            report(d, name, VD_DOCTOR_PASS, NULL, "%s TXT \"%.80s%s\"", qname, key,
                   strlen(key) > 80 ? "..." : "");
        }
    } else if (q.status == VD_DNS_OK || q.status == VD_DNS_NXDOMAIN || q.status == VD_DNS_NODATA) {
        snprintf(fix, sizeof fix,
                 "publish the selector's public key as a TXT record at %s (\"v=DKIM1; k=rsa; "
                 "p=...\"), or give the selector your signer uses",
                 qname);
        report(d, name, VD_DOCTOR_FAIL, fix, "no DKIM key record (TXT v=DKIM1 or p=) at %s", qname);
    } else {
        report(d, name, VD_DOCTOR_UNKNOWN,
               "make sure the --dns servers answer for the MAIL FROM domain, then run again",
               "could not tell: looking up %s failed (%s)", qname, dns_why(q.status));
    }
    sync_free(&q);
}

static void check_own_domain(doctor *d)
{
    const char *name = "own-domain";
    if (!d->lists) {
        report(d, name, VD_DOCTOR_UNKNOWN, "give --rules DIR with a lists/ folder",
               "could not tell: the free-mail list could not be read");
        return;
    }
    char detail[900];
    if (vd_sender_identity_check(d->lists, d->helo, d->mail_from, detail, sizeof detail)) {
        report(d, name, VD_DOCTOR_FAIL, vd_sender_foreign_fix, "%s", detail);
        return;
    }
    char helo[256], mail[256];
    snprintf(helo, sizeof helo, "%s", d->helo);
    lower(helo);
    const char *at = strrchr(d->mail_from, '@');
    snprintf(mail, sizeof mail, "%s", at ? at + 1 : "");
    lower(mail);
    report(d, name, VD_DOCTOR_PASS, NULL, "%s%s%s%s %s at a free-mail or disposable domain",
           mail[0] ? "MAIL FROM " : "", mail, mail[0] ? " and HELO " : "HELO ", helo,
           mail[0] ? "are not" : "is not");
}

/* ---- port 25: one SMTP session through smtp.c, opened as the engine opens one ---- */

/* What the session showed: the banner (seen through the session's trace) and how the open
 * ended (its callback). */
typedef struct port25 {
    bool opened;      /* the open callback ran */
    bool done;        /* the session is gone: freed after a failed open, or closed after QUIT */
    char banner[256]; /* the first line the server sent, as read; "" when none */
    bool banner_done; /* the banner's last line came ("NNN " or "NNN") */
    bool banner_bad;  /* a line of it with another code than the first's */
    vd_smtp_err err;  /* the open's result */
    int code;         /* its reply code (the failing reply's, or 250 when ready) */
    char reply[256];  /* its first line of text */
    char errmsg[256]; /* its error detail */
} port25;

static void *p25_start(void *arg, const char *mx, const struct sockaddr *a, socklen_t alen)
{
    (void)mx;
    (void)a;
    (void)alen;
    return arg;
}

static void p25_line(void *h, bool sent, const char *line, size_t len)
{
    port25 *p = h;
    if (sent || p->banner_done) return;
    p->banner_done = len == 3 || (len > 3 && line[3] == ' ');
    if (p->banner[0]) {
        p->banner_bad |= len < 3 || strncmp(line, p->banner, 3) != 0;
        return;
    }
    if (len == 0) {
        line = "?"; /* an empty first line is still a line */
        len = 1;
    }
    snprintf(p->banner, sizeof p->banner, "%.*s", (int)(len > 200 ? 200 : len), line);
    for (char *c = p->banner; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
}

static void p25_tls(void *h, const char *protocol, const char *cipher, bool verified)
{
    (void)h;
    (void)protocol;
    (void)cipher;
    (void)verified;
}

/* The connection closed; after the open's callback that is the end of the session (QUIT
 * sent: the session frees itself as it closes). */
static void p25_end(void *h, vd_smtp_end how, vd_smtp_err err)
{
    port25 *p = h;
    (void)how;
    (void)err;
    if (p->opened) p->done = true;
}

/* The open's reply; then QUIT when the session is ready, else the session is freed. */
static void p25_opened(vd_smtp *s, const vd_smtp_reply *r, void *arg)
{
    port25 *p = arg;
    p->opened = true;
    p->err = r->err;
    p->code = r->code;
    size_t n = strcspn(r->text, "\n");
    snprintf(p->reply, sizeof p->reply, "%.*s", (int)(n > 200 ? 200 : n), r->text);
    snprintf(p->errmsg, sizeof p->errmsg, "%s", r->errmsg ? r->errmsg : "");
    if (r->err == VD_SMTP_OK && r->code == 250) {
        vd_smtp_quit(s); /* the polite close: QUIT, and a moment for its 221 (p25_end) */
    } else {
        vd_smtp_free(s); /* freed as this callback returns */
        p->done = true;
    }
}

/* The banner's reply code, or 0 when the first line is not one. */
static int banner_code(const char *b)
{
    if (!(b[0] >= '2' && b[0] <= '5' && b[1] >= '0' && b[1] <= '9' && b[2] >= '0' && b[2] <= '9' &&
          (b[3] == '\0' || b[3] == ' ' || b[3] == '-')))
        return 0;
    return (b[0] - '0') * 100 + (b[1] - '0') * 10 + (b[2] - '0');
}

/* Runs the session to its end on d's loop. false (why in err) when it could not start. */
static bool p25_run(doctor *d, SSL_CTX *tls, port25 *p, char *err, size_t errlen)
{
    int ms = (int)(d->cfg->smtp_timeout * 1000); /* vd_doctor_run refused a missing one */
    struct sockaddr_storage src = d->ip;
    set_port(&src, 0);
    bool bind_src = d->cfg->source_ip && d->have_ip && src.ss_family == d->host.ss_family;
    vd_smtp_trace trace = {p25_start, p25_line, p25_tls, p25_end, p};
    vd_smtp_opts o = {.helo = d->helo,
                      .source = bind_src ? (const struct sockaddr *)&src : NULL,
                      .source_len = bind_src ? ss_len(&src) : 0,
                      .connect_timeout_ms = ms,
                      .command_timeout_ms = ms,
                      .tls_ctx = tls,
                      .tls_sni = d->host_name,
                      .trace = &trace};
    /* The test host is the operator's own choice, not a name from the DNS of an address
     * being verified: a private or loopback one is allowed, for this session only. */
    bool allowed = vd_destination_private_allowed();
    vd_destination_allow_private(true);
    vd_smtp *s = vd_smtp_open(d->base, (const struct sockaddr *)&d->host, ss_len(&d->host), &o,
                              p25_opened, p);
    vd_destination_allow_private(allowed);
    if (!s) {
        snprintf(err, errlen,
                 "the SMTP session could not be set up (out of memory, or a HELO "
                 "name SMTP cannot send)");
        return false;
    }
    while (!p->done)
        if (event_base_loop(d->base, EVLOOP_ONCE) != 0) break;
    return true;
}

static const char *const P25_HFIX = "give --test-host with an SMTP server you may connect to "
                                    "(e.g. one of your own MX hosts)";
static const char *const P25_BLOCKED =
    "ask your provider to open outbound TCP port 25 (many hosting and cloud providers block "
    "it), or verify from a host that can reach it";
static const char *const P25_NOT_SMTP =
    "port 25 is open, but what answered does not speak SMTP as verify expects: try another "
    "--test-host";
static const char *const P25_REFUSED =
    "port 25 is open, but the server refuses this client: read its reply (a DNSBL listing, no "
    "reverse DNS) and fix that, or try another --test-host";

/* The connection itself failed: bind, refused, timed out. */
static void p25_connect_failed(doctor *d, const port25 *p, const char *hp)
{
    const char *name = "port-25";
    if (!strncmp(p->errmsg, "bind: ", 6)) {
        report(d, name, VD_DOCTOR_FAIL, "give a --source-ip that is an address of this host",
               "cannot use the source IP %s: %s", d->ipstr, p->errmsg + 6);
        return;
    }
    bool timeout = !strcmp(p->errmsg, "connect timeout");
    const char *why = timeout                               ? strerror(ETIMEDOUT)
                      : !strncmp(p->errmsg, "connect: ", 9) ? p->errmsg + 9
                                                            : p->errmsg;
    report(d, name, VD_DOCTOR_FAIL, strstr(why, strerror(ECONNREFUSED)) ? P25_HFIX : P25_BLOCKED,
           "could not connect to %s: %s%s", hp, why,
           timeout ? " (outbound port 25 is probably blocked)" : "");
}

static void p25_judge(doctor *d, const port25 *p, const char *hp)
{
    const char *name = "port-25";
    int code = p->banner_done && !p->banner_bad ? banner_code(p->banner) : 0;
    if (p->err == VD_SMTP_ERR_CONNECT || p->err == VD_SMTP_ERR_FORBIDDEN) {
        p25_connect_failed(d, p, hp);
    } else if (code == 220 && p->err == VD_SMTP_OK && p->code == 250) {
        report(d, name, VD_DOCTOR_PASS, NULL, "%s answered: %s", hp, p->banner);
    } else if (code && code != 220) {
        report(d, name, VD_DOCTOR_FAIL, P25_REFUSED, "%s answered %d instead of 220: %s", hp, code,
               p->banner);
    } else if (code == 220 && p->err == VD_SMTP_OK) {
        /* the banner was fine; the server refused what the engine says next (EHLO, HELO) */
        report(d, name, VD_DOCTOR_FAIL, P25_REFUSED, "%s answered: %s; then %d to EHLO/HELO: %s",
               hp, p->banner, p->code, p->reply);
    } else if (code == 220) {
        report(d, name, VD_DOCTOR_FAIL,
               p->err == VD_SMTP_ERR_TLS
                   ? "the server's STARTTLS handshake fails (verify records tls_error there): "
                     "try another --test-host, or --no-starttls"
                   : P25_REFUSED,
               "%s answered: %s; then the session failed: %s (%s)", hp, p->banner,
               vd_smtp_err_name(p->err), p->errmsg);
    } else if (p->err == VD_SMTP_ERR_TIMEOUT) {
        report(d, name, VD_DOCTOR_FAIL, P25_BLOCKED,
               "connected to %s, but no SMTP banner within %g s%s%s", hp, d->cfg->smtp_timeout,
               p->banner[0] ? ": " : "", p->banner);
    } else {
        report(d, name, VD_DOCTOR_FAIL, P25_NOT_SMTP,
               "connected to %s, but no SMTP banner: %s (%s)%s%s", hp, vd_smtp_err_name(p->err),
               p->errmsg, p->banner[0] ? ": " : "", p->banner);
    }
}

static void check_port25(doctor *d)
{
    const char *name = "port-25";
    if (!d->o->test_host) {
        report(d, name, VD_DOCTOR_SKIP, NULL,
               "skipped: no --test-host; give --test-host HOST[:PORT] (an SMTP server you may "
               "connect to, e.g. your own MX) to check that outbound port 25 is open");
        return;
    }
    if (!d->have_host) {
        report(d, name, VD_DOCTOR_UNKNOWN, P25_HFIX, "could not tell: %s", d->host_err);
        return;
    }
    char hp[300], a[INET6_ADDRSTRLEN], err[512];
    snprintf(hp, sizeof hp, "%s%s%s:%u", d->host.ss_family == AF_INET6 ? "[" : "",
             addr_str(&d->host, a, sizeof a), d->host.ss_family == AF_INET6 ? "]" : "",
             d->host_port);
    /* STARTTLS as the engine does it: opportunistic, --tls-ca's store, --no-starttls: none */
    SSL_CTX *tls = NULL;
    vd_tls_opts topts = {.ca_file = d->cfg->tls_ca, .require_verified = false};
    if (d->cfg->starttls && !(tls = vd_tls_client_ctx_new(&topts, err, sizeof err))) {
        report(d, name, VD_DOCTOR_UNKNOWN, "give a --tls-ca file that can be read",
               "could not tell: TLS: %s", err);
        return;
    }
    port25 p = {.err = VD_SMTP_OK};
    if (p25_run(d, tls, &p, err, sizeof err))
        p25_judge(d, &p, hp);
    else
        report(d, name, VD_DOCTOR_UNKNOWN, "run again", "could not tell: %s", err);
    vd_tls_ctx_free(tls);
}

static void check_dnsbl(doctor *d, const char *zone)
{
    char name[300], qname[400], fix[900];
    snprintf(name, sizeof name, "dnsbl:%s", zone);
    if (!d->have_ip) {
        report(d, name, VD_DOCTOR_UNKNOWN, "give --source-ip", "could not tell: %s", d->no_ip);
        return;
    }
    if (d->ip.ss_family == AF_INET) {
        uint32_t a = ntohl(((struct sockaddr_in *)&d->ip)->sin_addr.s_addr);
        snprintf(qname, sizeof qname, "%u.%u.%u.%u.%s", a & 255, a >> 8 & 255, a >> 16 & 255,
                 a >> 24, zone);
    } else {
        const uint8_t *b = ((struct sockaddr_in6 *)&d->ip)->sin6_addr.s6_addr;
        size_t u = 0;
        for (int i = 15; i >= 0; i--)
            u += (size_t)snprintf(qname + u, sizeof qname - u, "%x.%x.", b[i] & 15, b[i] >> 4);
        snprintf(qname + u, sizeof qname - u, "%s", zone);
    }
    sync_q q;
    sync_addrs(d, qname, &q);
    if (q.status == VD_DNS_NXDOMAIN || q.status == VD_DNS_NODATA) {
        report(d, name, VD_DOCTOR_PASS, NULL, "%s is not listed on %s (%s: %s)", d->ipstr, zone,
               qname, dns_why(q.status));
        sync_free(&q);
        return;
    }
    if (q.status != VD_DNS_OK) {
        snprintf(fix, sizeof fix,
                 "make sure the --dns servers can reach %s (a DNSBL may refuse public or busy "
                 "resolvers), then run again",
                 zone);
        report(d, name, VD_DOCTOR_UNKNOWN, fix, "could not tell: looking up %s failed (%s)", qname,
               dns_why(q.status));
        sync_free(&q);
        return;
    }
    char listed[200] = "", errors[400] = "", odd[200] = "";
    for (size_t i = 0; i < q.n; i++) {
        if (q.addrs[i].ss_family != AF_INET) continue;
        char a[INET6_ADDRSTRLEN];
        addr_str(&q.addrs[i], a, sizeof a);
        const char *meaning;
        vd_dnsbl_answer k =
            vd_doctor_dnsbl_answer(((struct sockaddr_in *)&q.addrs[i])->sin_addr.s_addr, &meaning);
        char *to = k == VD_DNSBL_LISTED ? listed : k == VD_DNSBL_ERROR ? errors : odd;
        size_t cap = k == VD_DNSBL_LISTED  ? sizeof listed
                     : k == VD_DNSBL_ERROR ? sizeof errors
                                           : sizeof odd;
        size_t u = strlen(to);
        snprintf(to + u, cap - u, "%s%s%s%s%s", u ? ", " : "", a, meaning[0] ? " (" : "", meaning,
                 meaning[0] ? ")" : "");
    }
    sync_free(&q);
    if (listed[0]) {
        char reason[300];
        vd_dns_status ts = find_txt(d, qname, "", reason, sizeof reason);
        snprintf(fix, sizeof fix,
                 "find and stop the cause (a compromised account, probing too fast, a trap "
                 "address), then request delisting on %s's website; until it is done, verify from "
                 "another IP",
                 zone);
        report(d, name, VD_DOCTOR_FAIL, fix, "%s is listed on %s: %s answers %s%s%.250s%s",
               d->ipstr, zone, qname, listed, ts == VD_DNS_OK && reason[0] ? " \"" : "",
               ts == VD_DNS_OK ? reason : "", ts == VD_DNS_OK && reason[0] ? "\"" : "");
    } else if (errors[0]) {
        snprintf(fix, sizeof fix,
                 "query %s through a resolver of your own (not a public one such as 8.8.8.8, "
                 "which it refuses), within its usage limits, or with its data query service key",
                 zone);
        report(d, name, VD_DOCTOR_UNKNOWN, fix,
               "could not tell: %s answered %s, an error code, not a listing", zone, errors);
    } else {
        snprintf(fix, sizeof fix,
                 "use --dns servers that do not rewrite answers (a resolver that answers every "
                 "name makes every IP look listed), and check the zone name %s",
                 zone);
        report(d, name, VD_DOCTOR_UNKNOWN, fix,
               "could not tell: %s answered %s, which is not a DNSBL return code (127.0.0.x)",
               qname, odd[0] ? odd : "no IPv4 address");
    }
}

static void check_instance_lock(doctor *d)
{
    char err[512];
    char *dir = vd_state_dir(d->o->state_dir, err, sizeof err);
    if (!dir) {
        report(d, "instance-lock", VD_DOCTOR_FAIL, "give a writable --state-dir", "%s", err);
        return;
    }
    int fd = vd_instance_lock(dir, d->have_ip ? d->ipstr : NULL, err, sizeof err);
    if (fd < 0) {
        report(d, "instance-lock", VD_DOCTOR_FAIL,
               "stop the other instance, or verify from another source IP", "%s", err);
    } else {
        vd_instance_unlock(fd);
        report(d, "instance-lock", VD_DOCTOR_PASS, NULL,
               "no other validora verifies from %s with state dir %s",
               d->have_ip ? d->ipstr : "any source IP", dir);
    }
    free(dir);
}

/* ---- setting up ---- */

/* The lists of the last rules directory with a lists/ folder, as a generation loads them. */
static vd_lists *load_lists(const vd_engine_config *cfg)
{
    char path[4200];
    struct stat st;
    for (int i = cfg->rules_dirs.n; i-- > 0;) {
        snprintf(path, sizeof path, "%s/lists", cfg->rules_dirs.v[i]);
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) break;
    }
    if (cfg->rules_dirs.n == 0) snprintf(path, sizeof path, "%s/lists", vd_rules_default_dir());
    char err[512];
    return vd_lists_new(path, err, sizeof err);
}

/* HOST[:PORT], [V6]:PORT or a bare IPv6 address. Returns false on a malformed value. */
static bool parse_host(const char *s, char *host, size_t hlen, uint16_t *port)
{
    *port = 25;
    const char *end, *colon = NULL;
    if (s[0] == '[') {
        end = strchr(s, ']');
        if (!end || (end[1] && end[1] != ':')) return false;
        if (end[1] == ':') colon = end + 1;
        s++;
    } else {
        colon = strchr(s, ':');
        if (colon && strchr(colon + 1, ':')) colon = NULL; /* a bare IPv6 address */
        end = colon ? colon : s + strlen(s);
    }
    size_t n = (size_t)(end - s);
    if (n == 0 || n >= hlen) return false;
    memcpy(host, s, n);
    host[n] = '\0';
    if (colon) {
        char *e;
        long p = strtol(colon + 1, &e, 10);
        if (!colon[1] || *e || p < 1 || p > 65535) return false;
        *port = (uint16_t)p;
    }
    return true;
}

static void resolve_test_host(doctor *d)
{
    if (parse_ip(d->host_name, &d->host)) {
        d->have_host = true;
    } else {
        sync_q q;
        sync_addrs(d, d->host_name, &q);
        if (q.status == VD_DNS_OK && q.n) {
            d->host = q.addrs[0];
            d->have_host = true;
        } else {
            snprintf(d->host_err, sizeof d->host_err, "the test host %s could not be resolved (%s)",
                     d->host_name, dns_why(q.status));
        }
        sync_free(&q);
    }
    if (d->have_host) set_port(&d->host, d->host_port);
}

/* The address the kernel would send from to reach the test host. */
static void default_source(doctor *d)
{
    if (!d->have_host) {
        snprintf(d->no_ip, sizeof d->no_ip, "no --source-ip, and %s",
                 d->o->test_host ? "the test host could not be resolved"
                                 : "no --test-host to find it from");
        return;
    }
    int fd = socket(d->host.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (fd >= 0 && connect(fd, (struct sockaddr *)&d->host, ss_len(&d->host)) == 0 &&
        getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
        d->ip = ss;
        set_port(&d->ip, 0);
        d->have_ip = true;
    } else {
        snprintf(d->no_ip, sizeof d->no_ip, "no --source-ip, and no route to the test host (%s)",
                 strerror(errno));
    }
    if (fd >= 0) close(fd);
}

/* Every check in turn; with port25_only (vd_doctor_port25) only the port-25 check. */
static void run_checks(doctor *d, bool port25_only)
{
    if (port25_only) {
        check_port25(d);
        return;
    }
    check_helo_fqdn(d);
    check_helo_resolves(d);
    check_fcrdns(d);
    check_spf(d);
    check_dmarc(d);
    check_dkim(d);
    check_own_domain(d);
    check_port25(d);
    if (d->o->dnsbl.n)
        for (int i = 0; i < d->o->dnsbl.n; i++)
            check_dnsbl(d, d->o->dnsbl.v[i]);
    else
        for (int i = 0; vd_doctor_default_dnsbls[i]; i++)
            check_dnsbl(d, vd_doctor_default_dnsbls[i]);
    check_instance_lock(d);
}

static int run(const vd_engine_config *cfg, const vd_doctor_opts *o, vd_doctor_cb cb, void *arg,
               char *err, size_t errlen, bool port25_only)
{
    doctor *d = calloc(1, sizeof *d);
    if (!d) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    d->cfg = cfg;
    d->o = o;
    d->cb = cb;
    d->arg = arg;
    int rc = -2;
    /* The default is the options table's (vd_engine_config_init): a missing one is refused. */
    if (!(cfg->smtp_timeout > 0)) {
        snprintf(err, errlen, "--smtp-timeout: missing (not a positive number of seconds)");
        goto out;
    }
    if (cfg->helo) {
        if (strlen(cfg->helo) >= sizeof d->helo) {
            snprintf(err, errlen, "--helo: longer than %zu bytes", sizeof d->helo - 1);
            goto out;
        }
        snprintf(d->helo, sizeof d->helo, "%s", cfg->helo);
        size_t n = strlen(d->helo);
        if (n > 1 && d->helo[n - 1] == '.') d->helo[n - 1] = '\0';
    } else {
        vd_default_helo(d->helo, sizeof d->helo);
    }
    if (cfg->mail_from) {
        if (strlen(cfg->mail_from) >= sizeof d->mail_from) {
            snprintf(err, errlen, "--mail-from: longer than %zu bytes", sizeof d->mail_from - 1);
            goto out;
        }
        snprintf(d->mail_from, sizeof d->mail_from, "%s", cfg->mail_from);
    } else {
        vd_sender_default_mail_from(d->helo, d->mail_from, sizeof d->mail_from);
    }
    const char *at = strrchr(d->mail_from, '@');
    if (d->mail_from[0] && (!at || !at[1])) {
        snprintf(err, errlen, "--mail-from: not an address: '%s'", d->mail_from);
        goto out;
    }
    /* RFC 7208 §2.4: for the null sender, SPF (and so this check) judges the HELO name */
    snprintf(d->domain, sizeof d->domain, "%s", at ? at + 1 : d->helo);
    lower(d->domain);
    if (cfg->source_ip) {
        if (!parse_ip(cfg->source_ip, &d->ip)) {
            snprintf(err, errlen, "--source-ip: not an IP address: '%s'", cfg->source_ip);
            goto out;
        }
        d->have_ip = true;
    }
    if (o->test_host &&
        !parse_host(o->test_host, d->host_name, sizeof d->host_name, &d->host_port)) {
        snprintf(err, errlen, "--test-host: not HOST[:PORT]: '%s'", o->test_host);
        goto out;
    }
    rc = -1;
    if (!(d->base = event_base_new())) {
        snprintf(err, errlen, "cannot create an event loop");
        goto out;
    }
    vd_dns_opts dopts = {.servers = cfg->dns_servers,
                         .timeout_ms = (int)(cfg->dns_timeout * 1000 + 0.5)};
    if (!(d->dns = vd_dns_new(d->base, &dopts, err, errlen))) goto out;
    d->lists = load_lists(cfg);
    if (o->test_host) resolve_test_host(d);
    if (!d->have_ip) default_source(d);
    if (d->have_ip) addr_str(&d->ip, d->ipstr, sizeof d->ipstr);

    run_checks(d, port25_only);
    rc = d->not_passed;
out:
    if (d->lists) vd_lists_free(d->lists);
    if (d->dns) vd_dns_free(d->dns);
    if (d->base) event_base_free(d->base);
    free(d);
    return rc;
}

int vd_doctor_run(const vd_engine_config *cfg, const vd_doctor_opts *o, vd_doctor_cb cb, void *arg,
                  char *err, size_t errlen)
{
    return run(cfg, o, cb, arg, err, errlen, false);
}

int vd_doctor_port25(const vd_engine_config *cfg, const vd_doctor_opts *o, vd_doctor_cb cb,
                     void *arg, char *err, size_t errlen)
{
    return run(cfg, o, cb, arg, err, errlen, true);
}
