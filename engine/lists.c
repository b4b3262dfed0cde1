/* lists.c — flags from public lists: disposable domains, free providers, role
 * local parts, and typo suggestions towards big providers' domains.
 *
 * Owns: reading rules/lists/{disposable,free,role,suggest}.txt once at start-up
 * into open-addressing hash sets, and the lookups. Domains are judged on the
 * name itself and on each parent down to the registrable domain (libpsl), never
 * above it, so that a listed public suffix cannot swallow a whole TLD. Does not
 * own: refreshing the lists (contrib/update-lists.sh), address parsing. */
#include "lists.h"

#include <errno.h>
#include <idn2.h>
#include <libpsl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

#define ENTRY_MAX 256

/* A set of strings: entries live in one arena, slots hold arena offset + 1 (0 =
 * empty). */
typedef struct strset {
    uint32_t *slots;
    size_t cap; /* power of two, kept at least twice the count */
    size_t count;
    char *arena;
    size_t arena_len, arena_cap;
} strset;

struct vd_lists {
    strset disposable, free, role;
    char **suggest; /* in file order: ties go to the earlier, more common domain */
    size_t nsuggest;
    const psl_ctx_t *psl;
    psl_ctx_t *psl_owned;     /* when the builtin list is missing and we loaded the
                                 system one */
    unsigned char digest[32]; /* SHA-256 over the list files as read */
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static bool set_contains(const strset *set, const char *s)
{
    if (set->cap == 0) return false;
    for (size_t i = hash_str(s) & (set->cap - 1);; i = (i + 1) & (set->cap - 1)) {
        if (set->slots[i] == 0) return false;
        if (strcmp(set->arena + set->slots[i] - 1, s) == 0) return true;
    }
}

static void set_place(strset *set, uint32_t off)
{
    size_t i = hash_str(set->arena + off - 1) & (set->cap - 1);
    while (set->slots[i])
        i = (i + 1) & (set->cap - 1);
    set->slots[i] = off;
}

static bool set_add(strset *set, const char *s)
{
    if (set_contains(set, s)) return true;
    if ((set->count + 1) * 2 > set->cap) {
        size_t ncap = set->cap ? set->cap * 2 : 1024;
        uint32_t *old = set->slots;
        size_t ocap = set->cap;
        set->slots = calloc(ncap, sizeof *set->slots);
        if (!set->slots) {
            set->slots = old;
            return false;
        }
        set->cap = ncap;
        for (size_t i = 0; i < ocap; i++)
            if (old[i]) set_place(set, old[i]);
        free(old);
    }
    size_t n = strlen(s) + 1;
    if (set->arena_len + n > set->arena_cap) {
        size_t ncap = set->arena_cap ? set->arena_cap * 2 : 65536;
        while (ncap < set->arena_len + n)
            ncap *= 2;
        if (ncap > UINT32_MAX) return false;
        char *na = realloc(set->arena, ncap);
        if (!na) return false;
        set->arena = na;
        set->arena_cap = ncap;
    }
    memcpy(set->arena + set->arena_len, s, n);
    set_place(set, (uint32_t)(set->arena_len + 1));
    set->arena_len += n;
    set->count++;
    return true;
}

static void set_free(strset *set)
{
    free(set->slots);
    free(set->arena);
    memset(set, 0, sizeof *set);
}

static void lower_ascii(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z') *s = (char)(*s - 'A' + 'a');
}

/* Role keys: lower case, "+tag" cut, separators dropped ("No-Reply" and
 * "noreply" meet). */
static void role_key(const char *in, char *out, size_t outlen)
{
    size_t o = 0;
    for (const char *p = in; *p && *p != '+' && o + 1 < outlen; p++) {
        char c = *p;
        if (c == '.' || c == '-' || c == '_') continue;
        out[o++] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    out[o] = '\0';
}

enum kind { KIND_DOMAIN, KIND_ROLE };

/* Reads one list file into set (and, for the suggestion list, also into *vec).
 */
static bool load(EVP_MD_CTX *md, const char *dir, const char *name, enum kind kind, strset *set,
                 char ***vec, size_t *nvec, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "lists: cannot open %s: %s", path, strerror(errno));
        return false;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    unsigned lineno = 0;
    bool ok = true;
    EVP_DigestUpdate(md, name, strlen(name) + 1);
    while (ok && (n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        EVP_DigestUpdate(md, line, (size_t)n);
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        char *s = line;
        while (*s == ' ' || *s == '\t')
            s++;
        char *e = s + strlen(s);
        while (e > s && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
            *--e = '\0';
        if (*s == '\0') continue;
        char key[ENTRY_MAX];
        if (kind == KIND_ROLE) {
            role_key(s, key, sizeof key);
            if (key[0] == '\0') continue;
        } else {
            lower_ascii(s);
            bool ascii = true;
            for (char *p = s; *p; p++)
                if ((unsigned char)*p >= 0x80) ascii = false;
            if (ascii) {
                snprintf(key, sizeof key, "%s", s);
            } else {
                /* A few list entries are U-labels; lookups are on A-labels. */
                uint8_t *a = NULL;
                int rc =
                    idn2_lookup_u8((const uint8_t *)s, &a, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
                if (rc == IDN2_OK) snprintf(key, sizeof key, "%s", (const char *)a);
                free(a);
                if (rc != IDN2_OK) continue; /* not a valid IDN: no address can ever be at it */
            }
        }
        if (!set_add(set, key)) {
            snprintf(err, errlen, "lists: out of memory reading %s", path);
            ok = false;
        } else if (vec) {
            char **nv = realloc(*vec, (*nvec + 1) * sizeof **vec);
            char *dup = strdup(key);
            if (nv) *vec = nv;
            if (!nv || !dup) {
                free(dup);
                snprintf(err, errlen, "lists: out of memory reading %s", path);
                ok = false;
            } else {
                (*vec)[(*nvec)++] = dup;
            }
        }
    }
    if (ok && ferror(f)) {
        snprintf(err, errlen, "lists: error reading %s line %u: %s", path, lineno, strerror(errno));
        ok = false;
    }
    free(line);
    fclose(f);
    return ok;
}

vd_lists *vd_lists_new(const char *dir, char *err, size_t errlen)
{
    char dummy[1];
    if (!err || errlen == 0) {
        err = dummy;
        errlen = sizeof dummy;
    }
    if (!dir || !*dir) {
        snprintf(err, errlen, "lists: no list directory given");
        return NULL;
    }
    vd_lists *l = calloc(1, sizeof *l);
    if (!l) {
        snprintf(err, errlen, "lists: out of memory");
        return NULL;
    }
    strset suggest_set = {0};
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned dlen = 0;
    bool ok =
        md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) &&
        load(md, dir, "disposable.txt", KIND_DOMAIN, &l->disposable, NULL, NULL, err, errlen) &&
        load(md, dir, "free.txt", KIND_DOMAIN, &l->free, NULL, NULL, err, errlen) &&
        load(md, dir, "role.txt", KIND_ROLE, &l->role, NULL, NULL, err, errlen) &&
        load(md, dir, "suggest.txt", KIND_DOMAIN, &suggest_set, &l->suggest, &l->nsuggest, err,
             errlen) &&
        EVP_DigestFinal_ex(md, l->digest, &dlen);
    EVP_MD_CTX_free(md);
    set_free(&suggest_set);
    if (!ok) {
        vd_lists_free(l);
        return NULL;
    }
    l->psl = psl_builtin();
    if (!l->psl) /* libpsl built without its own copy: use the system's list */
        l->psl = l->psl_owned = psl_latest(NULL);
    return l;
}

void vd_lists_digest(const vd_lists *l, unsigned char out[32])
{
    memcpy(out, l->digest, sizeof l->digest);
}

void vd_lists_free(vd_lists *l)
{
    if (!l) return;
    set_free(&l->disposable);
    set_free(&l->free);
    set_free(&l->role);
    for (size_t i = 0; i < l->nsuggest; i++)
        free(l->suggest[i]);
    free(l->suggest);
    psl_free(l->psl_owned);
    free(l);
}

/* Copies domain lower-cased into buf without a trailing dot; false when it is
 * no name. */
static bool domain_key(const char *domain, char *buf, size_t len)
{
    if (!domain || !*domain || domain[0] == '[' || strlen(domain) >= len) return false;
    snprintf(buf, len, "%s", domain);
    lower_ascii(buf);
    size_t n = strlen(buf);
    if (n && buf[n - 1] == '.') buf[n - 1] = '\0';
    return buf[0] != '\0';
}

/* The registrable domain of d (a suffix of d), or NULL when d is a public
 * suffix itself. */
static const char *registrable(const vd_lists *l, const char *d)
{
    if (l->psl) return psl_registrable_domain(l->psl, d);
    /* No list at all: treat the last two labels as registrable. */
    const char *last = strrchr(d, '.');
    if (!last) return NULL;
    const char *p = last;
    while (p > d && p[-1] != '.')
        p--;
    return p == d ? d : p;
}

/* d itself, then each parent down to (and including) the registrable domain. */
static bool domain_listed(const vd_lists *l, const strset *set, const char *domain)
{
    char d[ENTRY_MAX];
    if (!domain_key(domain, d, sizeof d)) return false;
    if (set_contains(set, d)) return true;
    const char *reg = registrable(l, d);
    if (!reg) return false;
    for (const char *p = d; p < reg;) {
        p = strchr(p, '.');
        if (!p) break;
        p++;
        if (p <= reg && set_contains(set, p)) return true;
    }
    return false;
}

bool vd_lists_is_disposable(const vd_lists *l, const char *domain)
{
    return l && domain_listed(l, &l->disposable, domain);
}

bool vd_lists_is_free(const vd_lists *l, const char *domain)
{
    return l && domain_listed(l, &l->free, domain);
}

bool vd_lists_is_role(const vd_lists *l, const char *local)
{
    /* A local part that still needs quotes is nobody's role name. */
    if (!l || !local || !*local || local[0] == '"') return false;
    char key[ENTRY_MAX];
    role_key(local, key, sizeof key);
    return key[0] != '\0' && set_contains(&l->role, key);
}

/* Optimal string alignment distance (Damerau-Levenshtein with adjacent
 * transpositions). */
static size_t osa_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la >= ENTRY_MAX || lb >= ENTRY_MAX) return SIZE_MAX;
    size_t rows[3][ENTRY_MAX + 1];
    size_t *pp = rows[0], *p = rows[1], *c = rows[2];
    for (size_t j = 0; j <= lb; j++)
        p[j] = j;
    for (size_t i = 1; i <= la; i++) {
        c[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t v = p[j] + 1;
            if (c[j - 1] + 1 < v) v = c[j - 1] + 1;
            if (p[j - 1] + cost < v) v = p[j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && pp[j - 2] + 1 < v)
                v = pp[j - 2] + 1;
            c[j] = v;
        }
        size_t *t = pp;
        pp = p;
        p = c;
        c = t;
    }
    return p[lb];
}

const char *vd_lists_suggest(const vd_lists *l, const char *domain)
{
    char d[ENTRY_MAX];
    if (!l || !domain_key(domain, d, sizeof d)) return NULL;
    /* Typos of a provider's domain are registrable domains themselves
     * ("gmial.com"); a host under some other registrable domain is somebody's own
     * name. */
    const char *reg = registrable(l, d);
    if (reg && reg != d) return NULL;
    /* The public lists hold both real providers near the big ones (mail.com,
     * ymail.com, hotmail.gr) and typo-squatters (gmial.com in free, gmai.com in
     * disposable). For a listed domain only the typo shape counts: one slip, not
     * on the first letter, in the name. */
    bool listed = domain_listed(l, &l->free, d) || domain_listed(l, &l->disposable, d);
    const char *dot = strchr(d, '.');
    size_t name_len = dot ? (size_t)(dot - d) : strlen(d);

    const char *best = NULL;
    size_t best_dist = SIZE_MAX;
    for (size_t i = 0; i < l->nsuggest; i++) {
        const char *cand = l->suggest[i];
        if (strcmp(cand, d) == 0) return NULL;
        const char *cdot = strchr(cand, '.');
        size_t cname_len = cdot ? (size_t)(cdot - cand) : strlen(cand);
        size_t dist = SIZE_MAX;
        if (dot && cdot && name_len == cname_len && memcmp(d, cand, name_len) == 0) {
            /* Same name, mistyped suffix ("gmail.con", "gmail.cm"). When the typo is
             * itself a live suffix, only one slip is believable, and none for a
             * listed domain
             * ("hotmail.gr" is Microsoft's, not a slip for "hotmail.fr"). */
            bool live = !l->psl || psl_is_public_suffix(l->psl, dot + 1);
            size_t max = !live ? 2 : listed ? 0 : 1;
            size_t sd = osa_distance(dot + 1, cdot + 1);
            if (sd <= max) dist = sd;
        } else if (listed) {
            if (cname_len >= 4 && d[0] == cand[0] && osa_distance(d, cand) == 1) dist = 1;
        } else {
            /* Short names sit close to many real domains: allow fewer edits for them.
             */
            size_t max = cname_len >= 5 ? 2 : cname_len == 4 ? 1 : 0;
            size_t dd = osa_distance(d, cand);
            if (dd <= max) dist = dd;
        }
        if (dist < best_dist) {
            best_dist = dist;
            best = cand;
        }
    }
    return best;
}
