/* fuzz_dns.c — libFuzzer target for the DNS answer parser (vd_dns_parse_answer, engine/dns.c)
 * on arbitrary replies, for every query type the engine sends.
 *
 * Owns: the invariants of a parsed answer, which the cache keeps and hands to every lookup of
 * the name: the record count is within what the reply can hold, the array of the type asked is
 * there exactly when there are records (and no other array), addresses are of the family asked,
 * names are NUL-terminated, at most 253 octets, lower case and without a trailing dot, TXT
 * strings no longer than the reply, the TTL within the cache policy (never an overflowed
 * one), a failure has a message, and a CNAME to follow names somewhere new. Any violation
 * aborts, and libFuzzer saves the input. ASan/LSan/UBSan catch the rest.
 *
 * Input: byte 0 chooses the query (bits 0-2, modulo 5: A, AAAA, MX, TXT, PTR) and the status
 * c-ares reports with the reply (bits 3-5: 0 as c-ares derives it from the reply's rcode and
 * answer count; 1 success; 2 ENODATA; 3 ENOTFOUND; 4 ESERVFAIL; 5 EREFUSED; 6 ETIMEOUT without
 * a reply; 7 EBADRESP). The rest: replies, each framed as over TCP (a 2-byte big-endian length,
 * then the message; a length past the end takes what is left). The name asked is the first
 * reply's question (lower-cased, without the trailing dot), or example.test when it has none
 * that is a name. When the parser says to follow a CNAME, the next reply is its answer, to the
 * same vd_dns_answer, as the engine does; when there is none, the lookup ends there. */
#include <arpa/nameser.h>
#include <ares.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond, ...)                                                                         \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_dns: %s:%d: %s: ", __FILE__, __LINE__, #cond);                   \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* From dns.c's cache policy (TTL_MIN, TTL_MAX, NEG_TTL_MAX, CNAME_MAX there). */
#define TTL_MIN   1
#define TTL_MAX   3600
#define NEG_MAX   300
#define CNAME_MAX 8
#define HEADER    12
#define RR_MIN    11 /* a one-byte owner (the root) and the fixed 10 bytes */

static const uint16_t types[] = {ns_t_a, ns_t_aaaa, ns_t_mx, ns_t_txt, ns_t_ptr};

static uint16_t get16(const unsigned char *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

/* The status c-ares' ares_query hands over with a reply (qcallback in ares_query.c). */
static int derived_status(const unsigned char *buf, size_t len)
{
    if (len < HEADER) return ARES_EBADRESP;
    switch (buf[3] & 0x0f) {
    case ns_r_noerror:
        return get16(buf + 6) > 0 ? ARES_SUCCESS : ARES_ENODATA;
    case ns_r_formerr:
        return ARES_EFORMERR;
    case ns_r_servfail:
        return ARES_ESERVFAIL;
    case ns_r_nxdomain:
        return ARES_ENOTFOUND;
    case ns_r_notimpl:
        return ARES_ENOTIMP;
    case ns_r_refused:
        return ARES_EREFUSED;
    default:
        return ARES_SUCCESS;
    }
}

/* A name as dns.c keeps it: 0..253 octets (0 only where ALLOW_ROOT), NUL-terminated within
 * 256, no ASCII upper case, no trailing dot. */
static void check_name(const char *what, const char *name, bool allow_root)
{
    size_t len = strnlen(name, 256);
    REQUIRE(len < 256, "%s unterminated", what);
    REQUIRE(len <= 253 && (allow_root || len > 0), "%s of %zu octets", what, len);
    for (size_t i = 0; i < len; i++)
        REQUIRE(!isupper((unsigned char)name[i]), "%s '%s' not lower case", what, name);
    REQUIRE(len == 0 || name[len - 1] != '.', "%s '%s' ends in a dot", what, name);
}

static void check_answer(const vd_dns_answer *a, uint16_t type, const char *qname, bool follow,
                         const char *next, const unsigned char *msg, size_t alen, int depth_before)
{
    REQUIRE(strnlen(a->error, sizeof a->error) < sizeof a->error, "error unterminated");
    REQUIRE(a->cname_depth >= depth_before && a->cname_depth <= CNAME_MAX + 1,
            "cname_depth %d after %d", a->cname_depth, depth_before);

    /* The records: at most one per answer RR the reply says it has and can hold; only in the
     * array of the type. */
    size_t max = alen > HEADER ? (alen - HEADER) / RR_MIN : 0;
    REQUIRE(a->n <= max, "%zu records from a reply of %zu bytes", a->n, alen);
    REQUIRE(a->n <= (alen >= HEADER ? get16(msg + 6) : 0u), "%zu records, answer count %u", a->n,
            alen >= HEADER ? get16(msg + 6) : 0u);
    bool addr_type = type == ns_t_a || type == ns_t_aaaa;
    bool item_type = type == ns_t_txt || type == ns_t_ptr;
    REQUIRE(addr_type || !a->addrs, "addresses for type %u", type);
    REQUIRE(type == ns_t_mx || !a->mx, "MX records for type %u", type);
    REQUIRE(item_type || !a->items, "items for type %u", type);
    REQUIRE(a->n == 0 || a->addrs || a->mx || a->items, "%zu records, no array", a->n);
    REQUIRE(a->n > 0 || (!a->addrs && !a->mx && !a->items), "an array without records (type %u)",
            type);
    for (size_t i = 0; i < a->n; i++) {
        if (addr_type) {
            int family = type == ns_t_a ? AF_INET : AF_INET6;
            REQUIRE(a->addrs[i].ss_family == family, "address %zu of family %d", i,
                    a->addrs[i].ss_family);
            const struct sockaddr_in *sin = (const struct sockaddr_in *)&a->addrs[i];
            REQUIRE(sin->sin_port == 0, "address %zu with a port", i);
        } else if (type == ns_t_mx) {
            check_name("MX target", a->mx[i].name, true);
        } else {
            REQUIRE(a->items[i] != NULL, "item %zu is NULL", i);
            if (type == ns_t_ptr)
                check_name("PTR name", a->items[i], true);
            else
                REQUIRE(strlen(a->items[i]) < alen, "TXT of %zu bytes from a reply of %zu",
                        strlen(a->items[i]), alen);
        }
    }

    if (follow) {
        /* Not final: the CNAME's target, somewhere new, and nothing taken yet. */
        check_name("CNAME target", next, false);
        REQUIRE(strcmp(next, qname) != 0, "CNAME to follow is the name asked, '%s'", next);
        REQUIRE(a->status == VD_DNS_OK && a->n == 0, "following with status %d and %zu records",
                (int)a->status, a->n);
        REQUIRE(a->cname_depth > depth_before, "following without a CNAME taken");
        REQUIRE(a->chain_ttl <= 0x7fffffffu, "chain TTL %u (RFC 2181 §8 caps TTLs)", a->chain_ttl);
        return;
    }
    REQUIRE(a->ttl >= TTL_MIN && a->ttl <= TTL_MAX, "ttl %u", a->ttl);
    switch (a->status) {
    case VD_DNS_OK:
        REQUIRE(a->n > 0, "OK without records");
        REQUIRE(a->error[0] == '\0', "OK with error '%s'", a->error);
        break;
    case VD_DNS_NXDOMAIN:
    case VD_DNS_NODATA:
        REQUIRE(a->n == 0, "negative answer with %zu records", a->n);
        REQUIRE(a->ttl <= NEG_MAX, "negative ttl %u", a->ttl);
        break;
    case VD_DNS_SERVFAIL:
    case VD_DNS_TIMEOUT:
    case VD_DNS_ERROR:
        REQUIRE(a->n == 0, "failure with %zu records", a->n);
        REQUIRE(a->error[0] != '\0', "failure %d without a message", (int)a->status);
        REQUIRE(a->ttl <= NEG_MAX, "failure ttl %u", a->ttl);
        break;
    default:
        REQUIRE(0, "status %d", (int)a->status);
    }
}

/* The question of the reply, as dns.c would have asked it; false when there is none. */
static bool question_name(const unsigned char *buf, size_t len, char out[256])
{
    if (len <= HEADER || get16(buf + 4) == 0) return false;
    char *s = NULL;
    long enc = 0;
    if (ares_expand_name(buf + HEADER, buf, (int)len, &s, &enc) != ARES_SUCCESS) return false;
    size_t n = strlen(s);
    if (n && s[n - 1] == '.') n--;
    bool ok = n > 0 && n <= 253;
    for (size_t i = 0; ok && i < n; i++)
        out[i] = (char)tolower((unsigned char)s[i]);
    if (ok) out[n] = '\0';
    ares_free_string(s);
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint16_t type = types[(data[0] & 7) % 5];
    int mode = (data[0] >> 3) & 7;
    const unsigned char *p = data + 1, *end = data + size;

    vd_dns_answer a;
    memset(&a, 0, sizeof a);
    a.chain_ttl = UINT32_MAX;
    char qname[256] = "example.test", next[256];
    bool first = true, follow;
    do {
        size_t len = 0;
        const unsigned char *msg = NULL;
        if (end - p >= 2) {
            len = get16(p);
            p += 2;
            if (len > (size_t)(end - p)) len = (size_t)(end - p);
            msg = p;
            p += len;
        }
        if (first && msg) question_name(msg, len, qname);
        first = false;

        int status;
        switch (mode) {
        case 0:
            status = msg ? derived_status(msg, len) : ARES_ECONNREFUSED;
            break;
        case 1:
            status = ARES_SUCCESS;
            break;
        case 2:
            status = ARES_ENODATA;
            break;
        case 3:
            status = ARES_ENOTFOUND;
            break;
        case 4:
            status = ARES_ESERVFAIL;
            break;
        case 5:
            status = ARES_EREFUSED;
            break;
        case 6:
            status = ARES_ETIMEOUT;
            msg = NULL;
            len = 0;
            break;
        default:
            status = ARES_EBADRESP;
            break;
        }

        int depth = a.cname_depth;
        memset(next, 0xAA, sizeof next); /* so that a target left unterminated is caught */
        /* c-ares hands over a mutable copy; ASan sees a read past it as past this one. */
        unsigned char *copy = NULL;
        if (msg && len) {
            copy = malloc(len);
            if (!copy) break;
            memcpy(copy, msg, len);
        }
        follow = vd_dns_parse_answer(&a, type, qname, status, copy, (int)len, next);
        check_answer(&a, type, qname, follow, next, copy, len, depth);
        free(copy);
        if (follow) memcpy(qname, next, sizeof qname);
    } while (follow && end - p >= 2);

    vd_dns_answer_clear(&a);
    REQUIRE(a.n == 0 && !a.addrs && !a.mx && !a.items, "answer not cleared");
    return 0;
}
