/* destination.c — which addresses the engine may open a connection to (see destination.h).
 *
 * Owns: the special-range table and the process-wide switch.
 * Does not own: where the check is made (job.c, smtp.c, http.c). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "destination.h"

static bool allow_private; /* refused until the engine says otherwise */

void vd_destination_allow_private(bool allow)
{
    allow_private = allow;
}

bool vd_destination_private_allowed(void)
{
    return allow_private;
}

/* IPv4 special-purpose ranges (RFC 6890 and its updates) that no public mail or web server
 * is reached at. */
static const struct {
    uint32_t net;
    int bits;
} V4[] = {
    {0x00000000, 8},  /* 0.0.0.0/8 "this network" */
    {0x0a000000, 8},  /* 10/8 private */
    {0x64400000, 10}, /* 100.64/10 shared address space (CGNAT) */
    {0x7f000000, 8},  /* 127/8 loopback */
    {0xa9fe0000, 16}, /* 169.254/16 link-local (cloud metadata) */
    {0xac100000, 12}, /* 172.16/12 private */
    {0xc0000000, 24}, /* 192.0.0/24 IETF protocol assignments */
    {0xc0000200, 24}, /* 192.0.2/24 TEST-NET-1 */
    {0xc0586300, 24}, /* 192.88.99/24 6to4 relay anycast (deprecated) */
    {0xc0a80000, 16}, /* 192.168/16 private */
    {0xc6120000, 15}, /* 198.18/15 benchmarking */
    {0xc6336400, 24}, /* 198.51.100/24 TEST-NET-2 */
    {0xcb007100, 24}, /* 203.0.113/24 TEST-NET-3 */
    {0xe0000000, 4},  /* 224/4 multicast */
    {0xf0000000, 4},  /* 240/4 reserved, and 255.255.255.255 */
};

static bool v4_special(uint32_t a)
{
    for (size_t i = 0; i < sizeof V4 / sizeof V4[0]; i++) {
        uint32_t mask = V4[i].bits ? 0xffffffffu << (32 - V4[i].bits) : 0;
        if ((a & mask) == V4[i].net) return true;
    }
    return false;
}

static uint32_t v4_at(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static bool v6_special(const struct in6_addr *a)
{
    const unsigned char *b = a->s6_addr;
    static const unsigned char zero[16];
    if (!memcmp(b, zero, 15) && (b[15] == 0 || b[15] == 1)) return true; /* :: and ::1 */
    /* ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible, deprecated): the IPv4 address */
    if (!memcmp(b, zero, 10) && b[10] == 0xff && b[11] == 0xff) return v4_special(v4_at(b + 12));
    if (!memcmp(b, zero, 12)) return true;
    /* 64:ff9b::/96 NAT64 and 64:ff9b:1::/48 local-use NAT64: the IPv4 address it reaches */
    static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b};
    if (!memcmp(b, nat64, 12)) return v4_special(v4_at(b + 12));
    if (b[0] == 0 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b && b[4] == 0 && b[5] == 1)
        return true;
    if (b[0] == 0x20 && b[1] == 0x02) return v4_special(v4_at(b + 2)); /* 2002::/16 6to4 */
    if ((b[0] & 0xfe) == 0xfc) return true;                            /* fc00::/7 unique-local */
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return true;            /* fe80::/10 link-local */
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) return true;            /* fec0::/10 site-local */
    if (b[0] == 0xff) return true;                                     /* ff00::/8 multicast */
    if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8) return true; /* doc */
    if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0 && b[3] == 0) return true; /* 2001::/32 Teredo */
    if (b[0] == 0x01 && b[1] == 0 && !memcmp(b + 2, zero, 6)) return true;   /* 100::/64 discard */
    return false;
}

bool vd_destination_special(const struct sockaddr *addr)
{
    if (!addr) return true;
    if (addr->sa_family == AF_INET)
        return v4_special(ntohl(((const struct sockaddr_in *)(const void *)addr)->sin_addr.s_addr));
    if (addr->sa_family == AF_INET6)
        return v6_special(&((const struct sockaddr_in6 *)(const void *)addr)->sin6_addr);
    return true;
}

bool vd_destination_ok(const struct sockaddr *addr)
{
    return allow_private || !vd_destination_special(addr);
}

const char *vd_destination_text(const struct sockaddr *addr, char *buf, size_t len)
{
    const void *a = NULL;
    if (addr && addr->sa_family == AF_INET)
        a = &((const struct sockaddr_in *)(const void *)addr)->sin_addr;
    else if (addr && addr->sa_family == AF_INET6)
        a = &((const struct sockaddr_in6 *)(const void *)addr)->sin6_addr;
    if (!a || !inet_ntop(addr->sa_family, a, buf, (socklen_t)len)) snprintf(buf, len, "?");
    return buf;
}
