/* hashset.c — a set of keyed 64-bit hashes (hashset.h). Linear probing over a power-of-two
 * table; 0 marks an empty slot, so a hash of 0 is stored as 1. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include "hashset.h"

#define MIN_SLOTS 1024u

struct vd_hashset {
    uint64_t k0, k1; /* the SipHash key */
    uint64_t *slot;
    size_t mask; /* slots - 1 */
    size_t count;
};

static uint64_t rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

static void sip_round(uint64_t v[4])
{
    v[0] += v[1], v[1] = rotl(v[1], 13), v[1] ^= v[0], v[0] = rotl(v[0], 32);
    v[2] += v[3], v[3] = rotl(v[3], 16), v[3] ^= v[2];
    v[0] += v[3], v[3] = rotl(v[3], 21), v[3] ^= v[0];
    v[2] += v[1], v[1] = rotl(v[1], 17), v[1] ^= v[2], v[2] = rotl(v[2], 32);
}

static uint64_t le64(const unsigned char *p, size_t n)
{
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++)
        x |= (uint64_t)p[i] << (8 * i);
    return x;
}

/* SipHash-2-4 (Aumasson and Bernstein, 2012) of the bytes under (k0, k1). */
static uint64_t siphash(uint64_t k0, uint64_t k1, const unsigned char *p, size_t len)
{
    uint64_t v[4] = {k0 ^ 0x736f6d6570736575ull, k1 ^ 0x646f72616e646f6dull,
                     k0 ^ 0x6c7967656e657261ull, k1 ^ 0x7465646279746573ull};
    size_t whole = len - len % 8;
    for (size_t i = 0; i < whole; i += 8) {
        uint64_t m = le64(p + i, 8);
        v[3] ^= m;
        sip_round(v);
        sip_round(v);
        v[0] ^= m;
    }
    uint64_t m = ((uint64_t)len << 56) | le64(p + whole, len % 8);
    v[3] ^= m;
    sip_round(v);
    sip_round(v);
    v[0] ^= m;
    v[2] ^= 0xff;
    for (int i = 0; i < 4; i++)
        sip_round(v);
    return v[0] ^ v[1] ^ v[2] ^ v[3];
}

static uint64_t hash_of(const vd_hashset *h, const void *key, size_t len)
{
    uint64_t x = siphash(h->k0, h->k1, key, len);
    return x ? x : 1;
}

/* The slot holding x, or the empty one where it would go. */
static size_t find(const vd_hashset *h, uint64_t x)
{
    size_t i = (size_t)x & h->mask;
    while (h->slot[i] && h->slot[i] != x)
        i = (i + 1) & h->mask;
    return i;
}

vd_hashset *vd_hashset_new(void)
{
    vd_hashset *h = calloc(1, sizeof *h);
    if (!h || !(h->slot = calloc(MIN_SLOTS, sizeof *h->slot))) {
        free(h);
        return NULL;
    }
    h->mask = MIN_SLOTS - 1;
    uint64_t key[2] = {0, 0};
    if (getrandom(key, sizeof key, 0) != (ssize_t)sizeof key) { /* no entropy yet: still a set */
        key[0] = (uint64_t)(uintptr_t)h;
        key[1] = (uint64_t)(uintptr_t)h->slot;
    }
    h->k0 = key[0];
    h->k1 = key[1];
    return h;
}

static int grow(vd_hashset *h)
{
    size_t slots = (h->mask + 1) * 2;
    uint64_t *old = h->slot, *nu = calloc(slots, sizeof *nu);
    if (!nu) return -1;
    size_t oldslots = h->mask + 1;
    h->slot = nu;
    h->mask = slots - 1;
    for (size_t i = 0; i < oldslots; i++)
        if (old[i]) h->slot[find(h, old[i])] = old[i];
    free(old);
    return 0;
}

int vd_hashset_add(vd_hashset *h, const void *key, size_t len)
{
    if ((h->count + 1) * 2 > h->mask + 1 && grow(h) != 0) return -1;
    uint64_t x = hash_of(h, key, len);
    size_t i = find(h, x);
    if (h->slot[i]) return 0;
    h->slot[i] = x;
    h->count++;
    return 1;
}

bool vd_hashset_has(const vd_hashset *h, const void *key, size_t len)
{
    return h->slot[find(h, hash_of(h, key, len))] != 0;
}

size_t vd_hashset_count(const vd_hashset *h)
{
    return h->count;
}

size_t vd_hashset_bytes(const vd_hashset *h)
{
    return (h->mask + 1) * sizeof *h->slot;
}

void vd_hashset_free(vd_hashset *h)
{
    if (!h) return;
    free(h->slot);
    free(h);
}
