/* hashset.h — a compact set of byte strings kept as keyed 64-bit hashes (scripts'
 * validora.set: clean.lua's duplicate check over lists of millions).
 *
 * Owns: SipHash-2-4 under a random key per set (so nobody can choose colliding inputs), an
 * open-addressing table of the hashes (8 bytes a slot, at most half full: 16-32 bytes an
 * entry), growth.
 * Does not own: what a key means (the caller canonicalizes). Two different keys may share a
 * hash: for n keys the odds that any two do are about n^2 / 2^65 (1e-8 for a million, 3e-4
 * for a hundred million): has() may then say yes to a key never added. */
#ifndef VALIDORA_HASHSET_H
#define VALIDORA_HASHSET_H
#include <stdbool.h>
#include <stddef.h>

typedef struct vd_hashset vd_hashset;

vd_hashset *vd_hashset_new(void); /* NULL when out of memory */
/* 1 when key was added, 0 when it was there already, -1 when out of memory. */
int vd_hashset_add(vd_hashset *h, const void *key, size_t len);
bool vd_hashset_has(const vd_hashset *h, const void *key, size_t len);
size_t vd_hashset_count(const vd_hashset *h);
size_t vd_hashset_bytes(const vd_hashset *h); /* the table's size */
void vd_hashset_free(vd_hashset *h);

#endif
