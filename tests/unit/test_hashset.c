/* test_hashset.c — engine/hashset.c, the set behind validora.set (issue 18, item 13): add
 * says new or seen, has agrees, the table grows and stays at most half full, keys that differ
 * in one byte or only in length are told apart, NUL bytes count.
 * Does not test: the odds of two keys sharing a hash (documented in hashset.h). */
#include <stdlib.h>
#include "check.h"
#include "hashset.h"

static void test_basic(void)
{
    vd_hashset *h = vd_hashset_new();
    CHECK(h != NULL);
    CHECK(vd_hashset_add(h, "a", 1) == 1);
    CHECK(vd_hashset_add(h, "a", 1) == 0);
    CHECK(vd_hashset_has(h, "a", 1));
    CHECK(!vd_hashset_has(h, "b", 1));
    CHECK(vd_hashset_add(h, "", 0) == 1 && vd_hashset_has(h, "", 0));
    CHECK(vd_hashset_add(h, "a\0b", 3) == 1 && !vd_hashset_has(h, "a\0c", 3));
    CHECK(vd_hashset_add(h, "abcdefgh", 8) == 1 && !vd_hashset_has(h, "abcdefgh", 7));
    CHECK(vd_hashset_count(h) == 4);
    vd_hashset_free(h);
}

static void test_many(void)
{
    vd_hashset *h = vd_hashset_new();
    enum { N = 300000 };
    char k[32];
    size_t added = 0;
    for (int i = 0; i < N; i++) {
        int n = snprintf(k, sizeof k, "user%d@d%d.test", i, i % 5000);
        added += vd_hashset_add(h, k, (size_t)n) == 1;
    }
    CHECK_MSG(added == N, "%zu of %d added", added, N);
    size_t again = 0, missing = 0, foreign = 0;
    for (int i = 0; i < N; i++) {
        int n = snprintf(k, sizeof k, "user%d@d%d.test", i, i % 5000);
        again += vd_hashset_add(h, k, (size_t)n) == 1;
        missing += !vd_hashset_has(h, k, (size_t)n);
        n = snprintf(k, sizeof k, "other%d@d%d.test", i, i % 5000);
        foreign += vd_hashset_has(h, k, (size_t)n);
    }
    CHECK(again == 0 && missing == 0);
    CHECK_MSG(foreign == 0, "%zu keys never added found", foreign);
    CHECK(vd_hashset_count(h) == N);
    /* at most half full, and not more than twice that: 16-32 bytes an entry */
    CHECK(vd_hashset_bytes(h) >= 2 * N * 8 && vd_hashset_bytes(h) <= 4 * N * 8 + 8192);
    vd_hashset_free(h);
}

/* Two sets at once, each with its own key and table. */
static void test_keyed(void)
{
    vd_hashset *a = vd_hashset_new(), *b = vd_hashset_new();
    CHECK(a && b);
    for (int i = 0; i < 1000; i++) {
        char k[16];
        int n = snprintf(k, sizeof k, "k%d", i);
        vd_hashset_add(a, k, (size_t)n);
        vd_hashset_add(b, k, (size_t)n);
    }
    CHECK(vd_hashset_count(a) == 1000 && vd_hashset_count(b) == 1000);
    vd_hashset_free(a);
    vd_hashset_free(b);
}

int main(void)
{
    test_basic();
    test_many();
    test_keyed();
    return check_done();
}
