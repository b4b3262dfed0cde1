/* dns.h — asynchronous DNS on the engine's libevent loop through c-ares.
 *
 * Owns: the c-ares channel (sock_state_cb, one event per socket, one timer from
 * ares_timeout), MX resolution per RFC 5321 §5.1 (preference order, equal preferences
 * shuffled, implicit MX, null MX per RFC 7505, CNAMEs followed), A/AAAA/TXT/PTR lookups,
 * and one TTL-respecting cache that coalesces concurrent lookups of the same name; the
 * parser of raw answers (vd_dns_parse_answer, exposed for the fuzzer and tests).
 * Does not own: what a DNS answer means for an address's verdict (job.c decides). */
#ifndef VALIDORA_DNS_H
#define VALIDORA_DNS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct event_base;
typedef struct vd_dns vd_dns;
typedef struct vd_dns_req vd_dns_req;

typedef enum vd_dns_status {
    VD_DNS_OK = 0,
    VD_DNS_NXDOMAIN, /* the name does not exist: the only "does not exist" answer */
    VD_DNS_NODATA,   /* the name exists, no records of this type */
    VD_DNS_SERVFAIL, /* server failure / refused: unknown, never "does not exist" */
    VD_DNS_TIMEOUT,
    VD_DNS_ERROR, /* anything else (bad reply, out of memory, cancelled channel) */
} vd_dns_status;

const char *vd_dns_status_name(vd_dns_status s); /* "ok", "nxdomain", "nodata", ... */

typedef struct vd_mx_host {
    char name[256]; /* lower-case, no trailing dot */
    uint16_t preference;
    size_t naddrs;
    struct sockaddr_storage *addrs; /* IPv4 then IPv6 (port 0; caller sets the port) */
    vd_dns_status addr_status;      /* outcome of the A/AAAA lookups for this host */
} vd_mx_host;

typedef struct vd_mx_result {
    vd_dns_status status; /* of the MX query itself (or of A/AAAA for an implicit MX) */
    bool null_mx;         /* RFC 7505: the domain says it accepts no mail */
    bool implicit;        /* no MX records; hosts[0] is the domain itself (§5.1) */
    size_t nhosts;
    vd_mx_host *hosts; /* preference order; equal preferences in random order */
    uint32_t ttl;      /* seconds the answer may be cached */
    char error[128];   /* human-readable detail when status != OK */
} vd_mx_result;

typedef struct vd_dns_records {
    vd_dns_status status;
    size_t n;
    char **items; /* TXT strings (one per record, chunks joined) or PTR names */
    uint32_t ttl;
} vd_dns_records;

typedef struct vd_dns_addr_list {
    vd_dns_status status;
    size_t n;
    struct sockaddr_storage *addrs;
    uint32_t ttl;
} vd_dns_addr_list;

#define VD_DNS_TRIES 2 /* tries per server: one retry covers a lost UDP datagram */

typedef struct vd_dns_opts {
    const char *servers; /* "HOST[:PORT][,...]" ("[v6]:port" for IPv6); NULL = resolv.conf */
    int timeout_ms;      /* per try; required (the default is the --dns-timeout option's) */
    int tries;           /* 0 = VD_DNS_TRIES */
    bool no_cache;       /* every lookup goes to the server (benchmarks) */
    /* Called once, the first time a query ends with no server answering (refused, timed out)
     * while no server has answered anything yet: the resolver is unreachable. May be NULL. */
    void (*unreachable)(const char *why, void *arg);
    void *unreachable_arg;
} vd_dns_opts;

vd_dns *vd_dns_new(struct event_base *base, const vd_dns_opts *opts, char *err, size_t errlen);
void vd_dns_free(vd_dns *d); /* pending callbacks are not called */

/* Callbacks get results owned by the cache: valid only during the callback; copy what
 * you keep. Every started request calls its callback exactly once unless cancelled;
 * it may be called before the starting function returns (cache hit). */
typedef void (*vd_dns_mx_cb)(const vd_mx_result *r, void *arg);
typedef void (*vd_dns_records_cb)(const vd_dns_records *r, void *arg);
typedef void (*vd_dns_addrs_cb)(const vd_dns_addr_list *r, void *arg);

/* These return a handle for vd_dns_cancel, or NULL when the callback already ran. */
vd_dns_req *vd_dns_mx(vd_dns *d, const char *domain, vd_dns_mx_cb cb, void *arg);
vd_dns_req *vd_dns_txt(vd_dns *d, const char *name, vd_dns_records_cb cb, void *arg);
vd_dns_req *vd_dns_ptr(vd_dns *d, const struct sockaddr *addr, vd_dns_records_cb cb, void *arg);
vd_dns_req *vd_dns_addrs(vd_dns *d, const char *name, vd_dns_addrs_cb cb, void *arg);
/* The callback will not be called. Safe to call on any handle not yet completed. */
void vd_dns_cancel(vd_dns_req *r);

/* Counters since vd_dns_new: queries sent to the server (CNAME follow-ups included), and
 * lookups answered without a query of their own (from the cache or by joining a query
 * already in flight). For tests and benchmarks. */
void vd_dns_stats(vd_dns *d, size_t *queries_sent, size_t *cache_hits);
/* Queries a server answered (any reply, SERVFAIL and REFUSED included) and queries no server
 * answered (connection refused, timed out), since vd_dns_new. */
void vd_dns_reach(const vd_dns *d, size_t *answered, size_t *unanswered);

/* ---- The answer parser: what the c-ares callback does with a reply. Exposed for the fuzzer
 * (tests/fuzz/fuzz_dns.c) and the unit tests; the engine has no other use for it. ---- */

typedef struct vd_dns_mx_rr {
    uint16_t pref;
    char name[256]; /* lower-case, no trailing dot; "" for the root (a null MX) */
} vd_dns_mx_rr;

/* One lookup's answer as the cache keeps it. Before the first reply: all zero but chain_ttl,
 * UINT32_MAX. While a CNAME chain is followed across queries, the same answer goes with each
 * reply (cname_depth and chain_ttl carry over). vd_dns_answer_clear frees what it holds. */
typedef struct vd_dns_answer {
    int cname_depth;    /* CNAMEs followed so far, in answers and across queries together */
    uint32_t chain_ttl; /* smallest TTL of those CNAMEs */
    vd_dns_status status;
    uint32_t ttl;    /* seconds the answer may be cached (clamped to the cache policy) */
    char error[128]; /* human-readable detail when status is a failure */
    size_t n;        /* records, in the array of the type asked */
    struct sockaddr_storage *addrs; /* A, AAAA (port 0) */
    vd_dns_mx_rr *mx;               /* MX, in answer order */
    char **items;                   /* TXT (one per record, its strings joined), PTR names */
} vd_dns_answer;

/* Parses the reply to a query of TYPE (ns_t_a, ns_t_aaaa, ns_t_mx, ns_t_txt, ns_t_ptr) for
 * QNAME (lower-case, no trailing dot), as c-ares handed it over: ARES_STATUS, and the raw
 * reply ABUF of ALEN bytes (NULL and 0 without one). Fills A: status, ttl, error, the records
 * at the end of the CNAME chain from QNAME. Returns true when that chain ends in a CNAME the
 * server did not resolve (its target is in another zone): NEXT (256 bytes) then names the
 * target to ask for next, and A is not final. */
bool vd_dns_parse_answer(vd_dns_answer *a, uint16_t type, const char *qname, int ares_status,
                         const unsigned char *abuf, int alen, char next[256]);
void vd_dns_answer_clear(vd_dns_answer *a); /* frees the records; A may be parsed into again */

#endif
