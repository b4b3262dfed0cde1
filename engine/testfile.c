/* testfile.c — loading a rule test file (testfile.h; docs/rules-test.md for users).
 *
 * Owns: asking sandbox.c for the test file's Lua state (its testfile profile, in one place,
 * test_state: text only, an environment holding only string/table/math, a memory cap and an
 * instruction budget), checking that
 * what it returns is data (no functions, no metatables, bounded nesting) with every key
 * known, turning it into a vd_pb_test (playback.h): names, sessions (reading their
 * transcripts with transcript.c), checks, options, config, http; the patterns of its http
 * entries (Lua patterns, vd_pb_pattern_match).
 * Does not own: the shape of a test (playback.h), the transcript format (transcript.c),
 * playing a test (playback_*.c), option names (options.c, asked through
 * validora/options.h). Lua bridge layer. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include "lua_pattern.h"
#include "sandbox.h"
#include "testfile.h"
#include "validora/options.h"

static char *dupn(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

/* Grows *v (of *n elements of size sz) by one zeroed element; NULL when out of memory. */
static void *grow(void *v, size_t *n, size_t sz)
{
    char *nv = realloc(v, (*n + 1) * sz);
    if (!nv) return NULL;
    memset(nv + *n * sz, 0, sz);
    (*n)++;
    return nv;
}

/* snprintf for the paths of messages ("sessions[2].replies.RCPT"), which may be cut. */
static void pathf(char *out, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void pathf(char *out, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, size, fmt, ap);
    va_end(ap);
}

/* Reads a whole file of at most VD_PB_MAX_FILE bytes. */
static char *read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", path);
        fclose(fp);
        return NULL;
    }
    if ((unsigned long long)st.st_size > VD_PB_MAX_FILE) {
        snprintf(err, errlen, "%s: larger than %u bytes", path, VD_PB_MAX_FILE);
        fclose(fp);
        return NULL;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    size_t n = buf ? fread(buf, 1, (size_t)st.st_size, fp) : 0;
    bool bad = !buf || ferror(fp);
    fclose(fp);
    if (bad) {
        snprintf(err, errlen, "%s: %s", path, buf ? "read error" : "out of memory");
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

#define MAX_DEPTH 16 /* table nesting */

typedef struct loader {
    vd_pb_test *t;
    char dir[4096];
    char *err;
    size_t errlen;
} loader;

/* The one place a test file's Lua state is made: sandbox.c's testfile profile (its memory
 * cap and instruction budget, text only, string/table/math). NULL with err set. */
static lua_State *test_state(char *err, size_t errlen)
{
    return vd_lua_new(VD_LUA_TESTFILE, NULL, NULL, 0, err, errlen);
}

/* Checks that the value at idx is data: nil, booleans, numbers, strings and tables of them
 * without metatables, keyed by strings or integers, nested at most MAX_DEPTH. */
static int check_data(lua_State *L, int idx, int depth, const char *path, char *err, size_t errlen)
{
    int t = lua_type(L, idx);
    if (t == LUA_TNIL || t == LUA_TBOOLEAN || t == LUA_TNUMBER || t == LUA_TSTRING) return 0;
    if (t != LUA_TTABLE) {
        snprintf(err, errlen, "%s: a %s is not data", path, lua_typename(L, t));
        return -1;
    }
    if (depth > MAX_DEPTH) {
        snprintf(err, errlen, "%s: tables nested deeper than %d (does a table hold itself?)", path,
                 MAX_DEPTH);
        return -1;
    }
    if (lua_getmetatable(L, idx)) {
        lua_pop(L, 1);
        snprintf(err, errlen, "%s: a table with a metatable is not data", path);
        return -1;
    }
    idx = lua_absindex(L, idx);
    lua_checkstack(L, 8);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        char sub[512];
        if (lua_type(L, -2) == LUA_TSTRING)
            pathf(sub, sizeof sub, "%.300s.%.100s", path, lua_tostring(L, -2));
        else if (lua_isinteger(L, -2))
            pathf(sub, sizeof sub, "%.300s[%lld]", path, (long long)lua_tointeger(L, -2));
        else {
            snprintf(err, errlen, "%s: a key that is neither a string nor a whole number", path);
            lua_pop(L, 2);
            return -1;
        }
        if (check_data(L, -1, depth + 1, sub, err, errlen) != 0) {
            lua_pop(L, 2);
            return -1;
        }
        lua_pop(L, 1);
    }
    return 0;
}

/* Checks that every key of the table at idx is one of keys (NULL-terminated). */
static int known_keys(lua_State *L, int idx, const char *path, const char *const *keys, char *err,
                      size_t errlen)
{
    idx = lua_absindex(L, idx);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        bool ok = false;
        if (lua_type(L, -1) == LUA_TSTRING)
            for (const char *const *k = keys; *k && !ok; k++)
                ok = !strcmp(*k, lua_tostring(L, -1));
        if (!ok) {
            char list[256] = "";
            for (const char *const *k = keys; *k; k++)
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
                         k == keys ? "" : ", ", *k);
            if (lua_type(L, -1) == LUA_TSTRING)
                snprintf(err, errlen, "%s: unknown key '%.60s' (known: %s)", path,
                         lua_tostring(L, -1), list);
            else
                snprintf(err, errlen, "%s: a list where a table of %s was expected", path, list);
            lua_pop(L, 1);
            return -1;
        }
    }
    return 0;
}

/* Is the table at idx a list 1..n (and nothing else)? Sets *n. */
static bool is_list(lua_State *L, int idx, size_t *n)
{
    idx = lua_absindex(L, idx);
    size_t len = (size_t)lua_rawlen(L, idx), count = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        count++;
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 ||
            (size_t)lua_tointeger(L, -1) > len) {
            lua_pop(L, 1);
            return false;
        }
    }
    *n = len;
    return count == len;
}

static int want_list(lua_State *L, int idx, const char *path, size_t *n, char *err, size_t errlen)
{
    if (lua_type(L, idx) != LUA_TTABLE || !is_list(L, idx, n)) {
        snprintf(err, errlen, "%s: expected a list { ..., ... }", path);
        return -1;
    }
    return 0;
}

/* A string value at idx, copied; NULL with err when it is not a string. */
static char *want_string(lua_State *L, int idx, const char *path, size_t max, size_t *len,
                         char *err, size_t errlen)
{
    if (lua_type(L, idx) != LUA_TSTRING) {
        snprintf(err, errlen, "%s: expected a string, not a %s", path, luaL_typename(L, idx));
        return NULL;
    }
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    if (n > max) {
        snprintf(err, errlen, "%s: longer than %zu bytes", path, max);
        return NULL;
    }
    char *d = dupn(s, n);
    if (!d) snprintf(err, errlen, "out of memory");
    if (len) *len = n;
    return d;
}

/* A DNS name: lower case, no trailing dot, labels of 1-63 bytes, at most 253 bytes. */
static char *want_name(lua_State *L, int idx, const char *path, bool allow_root, char *err,
                       size_t errlen)
{
    char *s = want_string(L, idx, path, 254, NULL, err, errlen);
    if (!s) return NULL;
    size_t n = strlen(s);
    if (allow_root && !strcmp(s, ".")) return s;
    if (n && s[n - 1] == '.') s[--n] = '\0';
    bool ok = n > 0 && n <= 253;
    size_t label = 0;
    for (size_t i = 0; ok && i <= n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i == n || c == '.') {
            ok = label > 0 && label <= 63;
            label = 0;
            continue;
        }
        ok = c > ' ' && c < 0x7f && c != '\\' && c != '"';
        s[i] = (char)tolower(c);
        label++;
    }
    if (!ok) {
        snprintf(err, errlen, "%s: not a DNS name: '%.80s'", path, s);
        free(s);
        return NULL;
    }
    return s;
}

static int load_mx(lua_State *L, vd_pb_name *nm, const char *path, char *err, size_t errlen)
{
    size_t n;
    if (want_list(L, -1, path, &n, err, errlen) != 0) return -1;
    if (!n) {
        snprintf(err, errlen, "%s: an empty list (leave mx out for no MX records)", path);
        return -1;
    }
    nm->mx = calloc(n, sizeof *nm->mx);
    if (!nm->mx) return snprintf(err, errlen, "out of memory"), -1;
    for (size_t i = 1; i <= n; i++) {
        char sub[300];
        pathf(sub, sizeof sub, "%s[%zu]", path, i);
        lua_rawgeti(L, -1, (lua_Integer)i);
        size_t two;
        if (lua_type(L, -1) != LUA_TTABLE || !is_list(L, -1, &two) || two != 2) {
            snprintf(err, errlen, "%s: expected { PREFERENCE, \"host\" }", sub);
            lua_pop(L, 1);
            return -1;
        }
        lua_rawgeti(L, -1, 1);
        lua_Integer pref = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : -1;
        lua_pop(L, 1);
        if (pref < 0 || pref > 65535) {
            snprintf(err, errlen, "%s: the preference must be a whole number 0-65535", sub);
            lua_pop(L, 1);
            return -1;
        }
        lua_rawgeti(L, -1, 2);
        char *host = want_name(L, -1, sub, true, err, errlen);
        lua_pop(L, 2);
        if (!host) return -1;
        nm->mx[nm->nmx].pref = (uint16_t)pref;
        nm->mx[nm->nmx++].host = host;
    }
    return 0;
}

/* A list of strings (names when names is set) into *v, *n. */
static int load_strings(lua_State *L, char ***v, size_t *n, const char *path, bool names,
                        size_t max, char *err, size_t errlen)
{
    size_t len;
    if (want_list(L, -1, path, &len, err, errlen) != 0) return -1;
    if (!len) {
        snprintf(err, errlen, "%s: an empty list (leave it out instead)", path);
        return -1;
    }
    if (!(*v = calloc(len, sizeof **v))) return snprintf(err, errlen, "out of memory"), -1;
    for (size_t i = 1; i <= len; i++) {
        char sub[300];
        pathf(sub, sizeof sub, "%s[%zu]", path, i);
        lua_rawgeti(L, -1, (lua_Integer)i);
        char *s = names ? want_name(L, -1, sub, false, err, errlen)
                        : want_string(L, -1, sub, max, NULL, err, errlen);
        lua_pop(L, 1);
        if (!s) return -1;
        (*v)[(*n)++] = s;
    }
    return 0;
}

static int load_name(lua_State *L, vd_pb_name *nm, const char *path, char *err, size_t errlen)
{
    static const char *const keys[] = {"mx", "a", "aaaa", "txt", "ptr", "cname", "rcode", NULL};
    if (lua_type(L, -1) != LUA_TTABLE) {
        snprintf(err, errlen, "%s: expected a table of records { mx = ..., a = ... }", path);
        return -1;
    }
    if (known_keys(L, -1, path, keys, err, errlen) != 0) return -1;
    char sub[300];
    lua_getfield(L, -1, "aaaa");
    bool aaaa = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (aaaa) {
        snprintf(err, errlen,
                 "%s.aaaa: not served (playback listens on IPv4 loopback only; "
                 "leave it out)",
                 path);
        return -1;
    }
    lua_getfield(L, -1, "rcode");
    if (!lua_isnil(L, -1)) {
        pathf(sub, sizeof sub, "%s.rcode", path);
        char *rc = want_string(L, -1, sub, 32, NULL, err, errlen);
        lua_pop(L, 1);
        if (!rc) return -1;
        static const char *const names[] = {"servfail", "refused", "nxdomain", "timeout"};
        static const vd_pb_rcode codes[] = {VD_PB_SERVFAIL, VD_PB_REFUSED, VD_PB_NXDOMAIN,
                                            VD_PB_DROP};
        nm->rcode = VD_PB_ANSWER;
        for (size_t i = 0; i < 4; i++)
            if (!strcmp(rc, names[i])) nm->rcode = codes[i];
        bool bad = nm->rcode == VD_PB_ANSWER;
        free(rc);
        if (bad) {
            snprintf(err, errlen, "%s: not servfail, refused, nxdomain or timeout", sub);
            return -1;
        }
    } else {
        lua_pop(L, 1);
    }
    lua_getfield(L, -1, "mx");
    if (!lua_isnil(L, -1)) {
        pathf(sub, sizeof sub, "%s.mx", path);
        if (load_mx(L, nm, sub, err, errlen) != 0) return lua_pop(L, 1), -1;
    }
    lua_pop(L, 1);
    lua_getfield(L, -1, "a");
    if (!lua_isnil(L, -1)) {
        pathf(sub, sizeof sub, "%s.a", path);
        char **ips = NULL;
        size_t nips = 0;
        int rc = load_strings(L, &ips, &nips, sub, false, 64, err, errlen);
        for (size_t i = 0; rc == 0 && i < nips; i++) {
            struct in_addr a;
            if (inet_pton(AF_INET, ips[i], &a) != 1) {
                snprintf(err, errlen, "%s[%zu]: not an IPv4 address: '%s'", sub, i + 1, ips[i]);
                rc = -1;
            }
        }
        for (size_t i = 0; i < nips; i++)
            free(ips[i]);
        free(ips);
        if (rc != 0) return lua_pop(L, 1), -1;
        nm->a = true;
    }
    lua_pop(L, 1);
    lua_getfield(L, -1, "txt");
    if (!lua_isnil(L, -1)) {
        pathf(sub, sizeof sub, "%s.txt", path);
        if (load_strings(L, &nm->txt, &nm->ntxt, sub, false, 2000, err, errlen) != 0)
            return lua_pop(L, 1), -1;
    }
    lua_pop(L, 1);
    lua_getfield(L, -1, "ptr");
    if (!lua_isnil(L, -1)) {
        pathf(sub, sizeof sub, "%s.ptr", path);
        if (load_strings(L, &nm->ptr, &nm->nptr, sub, true, 0, err, errlen) != 0)
            return lua_pop(L, 1), -1;
    }
    lua_pop(L, 1);
    lua_getfield(L, -1, "cname");
    if (!lua_isnil(L, -1)) {
        pathf(sub, sizeof sub, "%s.cname", path);
        if (!(nm->cname = want_name(L, -1, sub, false, err, errlen))) return lua_pop(L, 1), -1;
        if (nm->nmx || nm->a || nm->ntxt || nm->nptr) {
            snprintf(err, errlen, "%s: a CNAME cannot have other records beside it", path);
            return lua_pop(L, 1), -1;
        }
    }
    lua_pop(L, 1);
    return 0;
}

static int load_dns(lua_State *L, vd_pb_test *t, char *err, size_t errlen)
{
    if (lua_type(L, -1) != LUA_TTABLE) {
        snprintf(err, errlen, "dns: expected a table { [\"name\"] = { records } }");
        return -1;
    }
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        if (t->nnames >= VD_PB_MAX_NAMES) {
            snprintf(err, errlen, "dns: more than %d names", VD_PB_MAX_NAMES);
            return lua_pop(L, 2), -1;
        }
        vd_pb_name *names = grow(t->names, &t->nnames, sizeof *names);
        if (!names) return lua_pop(L, 2), snprintf(err, errlen, "out of memory"), -1;
        t->names = names;
        vd_pb_name *nm = &t->names[t->nnames - 1];
        lua_pushvalue(L, -2);
        nm->name = want_name(L, -1, "dns: a name", false, err, errlen);
        lua_pop(L, 1);
        if (!nm->name) return lua_pop(L, 2), -1;
        char path[300];
        pathf(path, sizeof path, "dns[\"%s\"]", nm->name);
        if (load_name(L, nm, path, err, errlen) != 0) return lua_pop(L, 2), -1;
        lua_pop(L, 1);
    }
    qsort(t->names, t->nnames, sizeof *t->names, vd_pb_name_cmp);
    uint32_t next_ip = (127u << 24) | 2u;
    size_t hosts = 0;
    for (size_t i = 0; i < t->nnames; i++) {
        if (i && !strcmp(t->names[i].name, t->names[i - 1].name)) {
            snprintf(err, errlen, "dns: the name '%s' is given twice", t->names[i].name);
            return -1;
        }
        if (!t->names[i].a) continue;
        if (++hosts > VD_PB_MAX_HOSTS) {
            snprintf(err, errlen, "dns: more than %d names with an A answer", VD_PB_MAX_HOSTS);
            return -1;
        }
        t->names[i].ip = next_ip++;
    }
    return 0;
}

static const char *const DEFAULT_BANNER = "220 playback.invalid ESMTP validora rules test";

static int load_session(lua_State *L, loader *ld, vd_pb_session *s, size_t idx, char *err,
                        size_t errlen)
{
    static const char *const keys[] = {"transcript", "banner", "replies", "host", NULL};
    char path[300], sub[340];
    pathf(path, sizeof path, "sessions[%zu]", idx);
    if (lua_type(L, -1) != LUA_TTABLE) {
        snprintf(err, errlen, "%s: expected { transcript = \"FILE\" } or { replies = ... }", path);
        return -1;
    }
    if (known_keys(L, -1, path, keys, err, errlen) != 0) return -1;
    lua_getfield(L, -1, "host");
    if (!lua_isnil(L, -1)) {
        pathf(sub, sizeof sub, "%s.host", path);
        if (!(s->host = want_name(L, -1, sub, false, err, errlen))) return lua_pop(L, 1), -1;
        const vd_pb_name *nm = vd_pb_find_name(ld->t, s->host);
        if (!nm || !nm->a) {
            snprintf(err, errlen, "%s: '%s' has no A answer in dns, so nothing connects to it", sub,
                     s->host);
            return lua_pop(L, 1), -1;
        }
    }
    lua_pop(L, 1);
    lua_getfield(L, -1, "transcript");
    if (!lua_isnil(L, -1)) {
        pathf(sub, sizeof sub, "%s.transcript", path);
        char *file = want_string(L, -1, sub, 1024, NULL, err, errlen);
        lua_pop(L, 1);
        if (!file) return -1;
        s->what = file;
        lua_getfield(L, -1, "banner");
        lua_getfield(L, -2, "replies");
        bool mixed = !lua_isnil(L, -1) || !lua_isnil(L, -2);
        lua_pop(L, 2);
        if (mixed) {
            snprintf(err, errlen, "%s: a transcript, or banner and replies, not both", path);
            return -1;
        }
        char full[8192], sub2[256];
        if (file[0] == '/')
            snprintf(full, sizeof full, "%s", file);
        else
            snprintf(full, sizeof full, "%s/%s", ld->dir, file);
        size_t len;
        char *text = read_file(full, &len, sub2, sizeof sub2);
        if (!text) {
            snprintf(err, errlen, "%s: %s", sub, sub2);
            return -1;
        }
        int rc = vd_transcript_parse(text, len, &s->script, sub2, sizeof sub2);
        free(text);
        if (rc != 0) {
            snprintf(err, errlen, "%s: %s: %s", sub, file, sub2);
            return -1;
        }
        return 0;
    }
    lua_pop(L, 1);
    s->inline_ = true;
    if (!(s->what = strdup("inline"))) return snprintf(err, errlen, "out of memory"), -1;
    lua_getfield(L, -1, "banner");
    pathf(sub, sizeof sub, "%s.banner", path);
    {
        size_t bl = strlen(DEFAULT_BANNER);
        const char *b = DEFAULT_BANNER;
        char *own = NULL;
        if (!lua_isnil(L, -1) &&
            !(b = own = want_string(L, -1, sub, VD_TRANSCRIPT_MAX_LINE, &bl, err, errlen)))
            return lua_pop(L, 1), -1;
        char why[200];
        int rc = vd_transcript_reply_parse(b, bl, &s->banner, why, sizeof why);
        free(own);
        if (rc != 0) {
            snprintf(err, errlen, "%s: %s", sub, why);
            return lua_pop(L, 1), -1;
        }
    }
    lua_pop(L, 1);
    lua_getfield(L, -1, "replies");
    if (lua_isnil(L, -1)) return lua_pop(L, 1), 0;
    pathf(sub, sizeof sub, "%s.replies", path);
    if (lua_type(L, -1) != LUA_TTABLE) {
        snprintf(err, errlen, "%s: expected { RCPT = \"250 ok\", ... }", sub);
        return lua_pop(L, 1), -1;
    }
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        size_t kl = 0;
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &kl) : NULL;
        bool ok = k && kl > 0 && kl < 16;
        for (size_t i = 0; ok && i < kl; i++)
            ok = isalpha((unsigned char)k[i]);
        if (!ok) {
            snprintf(err, errlen, "%s: keys are SMTP verbs (EHLO, MAIL, RCPT, ...)", sub);
            return lua_pop(L, 3), -1;
        }
        vd_pb_verb *verbs = grow(s->verbs, &s->nverbs, sizeof *verbs);
        if (!verbs) return lua_pop(L, 3), snprintf(err, errlen, "out of memory"), -1;
        s->verbs = verbs;
        vd_pb_verb *v = &s->verbs[s->nverbs - 1];
        vd_transcript_verb(k, kl, v->verb);
        for (size_t i = 0; i + 1 < s->nverbs; i++)
            if (!strcmp(s->verbs[i].verb, v->verb)) {
                snprintf(err, errlen, "%s: %s given twice", sub, v->verb);
                return lua_pop(L, 3), -1;
            }
        char vp[400];
        pathf(vp, sizeof vp, "%s.%s", sub, v->verb);
        size_t n = 1;
        v->every_time = lua_type(L, -1) == LUA_TSTRING;
        if (!v->every_time && want_list(L, -1, vp, &n, err, errlen) != 0) return lua_pop(L, 3), -1;
        if (!n) {
            snprintf(err, errlen, "%s: an empty list", vp);
            return lua_pop(L, 3), -1;
        }
        if (!(v->replies = calloc(n, sizeof *v->replies)))
            return lua_pop(L, 3), snprintf(err, errlen, "out of memory"), -1;
        for (size_t i = 1; i <= n; i++) {
            char rp[420];
            pathf(rp, sizeof rp, v->every_time ? "%s" : "%s[%zu]", vp, i);
            if (!v->every_time) lua_rawgeti(L, -1, (lua_Integer)i);
            size_t rl;
            char *text = want_string(L, -1, rp, VD_PB_MAX_FILE, &rl, err, errlen);
            if (!v->every_time) lua_pop(L, 1);
            if (!text) return lua_pop(L, 3), -1;
            char why[200];
            int rc = vd_transcript_reply_parse(text, rl, &v->replies[v->n], why, sizeof why);
            free(text);
            if (rc != 0) {
                snprintf(err, errlen, "%s: %s", rp, why);
                return lua_pop(L, 3), -1;
            }
            if (!strcmp(v->verb, "EHLO")) vd_transcript_strip_starttls_keyword(&v->replies[v->n]);
            v->n++;
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return 0;
}

static int load_sessions(lua_State *L, loader *ld, char *err, size_t errlen)
{
    vd_pb_test *t = ld->t;
    size_t n;
    if (want_list(L, -1, "sessions", &n, err, errlen) != 0) return -1;
    if (n > VD_PB_MAX_SESSION) {
        snprintf(err, errlen, "sessions: more than %d", VD_PB_MAX_SESSION);
        return -1;
    }
    if (n && !(t->sessions = calloc(n, sizeof *t->sessions)))
        return snprintf(err, errlen, "out of memory"), -1;
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, (lua_Integer)i);
        t->nsessions = i;
        int rc = load_session(L, ld, &t->sessions[i - 1], i, err, errlen);
        lua_pop(L, 1);
        if (rc != 0) return -1;
    }
    return 0;
}

static int expect_add(vd_pb_check *c, vd_pb_expect **out, char *err, size_t errlen)
{
    vd_pb_expect *e = grow(c->expect, &c->nexpect, sizeof *e);
    if (!e) return snprintf(err, errlen, "out of memory"), -1;
    c->expect = e;
    *out = &e[c->nexpect - 1];
    return 0;
}

/* The value at -1 as what key must be. */
static int expect_value(lua_State *L, vd_pb_check *c, const char *key, const char *path, char *err,
                        size_t errlen)
{
    vd_pb_expect *e;
    if (expect_add(c, &e, err, errlen) != 0) return -1;
    if (!(e->key = strdup(key))) return snprintf(err, errlen, "out of memory"), -1;
    switch (lua_type(L, -1)) {
    case LUA_TSTRING:
        e->type = VD_PB_STR;
        return (e->s = want_string(L, -1, path, VD_PB_MAX_FILE, &e->slen, err, errlen)) ? 0 : -1;
    case LUA_TBOOLEAN:
        e->type = VD_PB_BOOL;
        e->b = lua_toboolean(L, -1);
        return 0;
    case LUA_TNUMBER:
        if (lua_isinteger(L, -1)) {
            e->type = VD_PB_INT;
            e->i = (int64_t)lua_tointeger(L, -1);
        } else {
            e->type = VD_PB_NUM;
            e->d = (double)lua_tonumber(L, -1);
        }
        return 0;
    default:
        snprintf(err, errlen, "%s: expected a string, number or boolean", path);
        return -1;
    }
}

static bool valid_key(const char *k, size_t n)
{
    if (!n || n > 64) return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)k[i]) && k[i] != '_' && k[i] != '.') return false;
    return true;
}

static int load_expect(lua_State *L, vd_pb_check *c, const char *path, char *err, size_t errlen)
{
    static const char *const keys[] = {"status", "reason",        "fields",
                                       "absent", "http_requests", NULL};
    char sub[300];
    if (lua_type(L, -1) != LUA_TTABLE) {
        snprintf(err, errlen, "%s: expected { status = ..., reason = ..., fields = {...} }", path);
        return -1;
    }
    if (known_keys(L, -1, path, keys, err, errlen) != 0) return -1;
    for (int k = 0; k < 2; k++) {
        lua_getfield(L, -1, keys[k]);
        pathf(sub, sizeof sub, "%s.%s", path, keys[k]);
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            if (k == 0) {
                snprintf(err, errlen, "%s: missing (every test says the status it expects)", sub);
                return -1;
            }
            continue;
        }
        if (lua_type(L, -1) != LUA_TSTRING) {
            snprintf(err, errlen, "%s: expected a string", sub);
            return lua_pop(L, 1), -1;
        }
        int rc = expect_value(L, c, keys[k], sub, err, errlen);
        lua_pop(L, 1);
        if (rc != 0) return -1;
    }
    lua_getfield(L, -1, "fields");
    if (!lua_isnil(L, -1)) {
        pathf(sub, sizeof sub, "%s.fields", path);
        if (lua_type(L, -1) != LUA_TTABLE) {
            snprintf(err, errlen, "%s: expected { key = value, ... }", sub);
            return lua_pop(L, 1), -1;
        }
        /* sorted, so messages come in the same order every run */
        size_t first = c->nexpect;
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            size_t kl = 0;
            const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &kl) : NULL;
            if (!k || !valid_key(k, kl)) {
                snprintf(err, errlen, "%s: keys are record keys (smtp_code, catch_all, ...)", sub);
                return lua_pop(L, 3), -1;
            }
            if (!strcmp(k, "status") || !strcmp(k, "reason")) {
                snprintf(err, errlen, "%s.%s: give it as %s.%s", sub, k, path, k);
                return lua_pop(L, 3), -1;
            }
            char fp[400];
            pathf(fp, sizeof fp, "%s.%s", sub, k);
            int rc = expect_value(L, c, k, fp, err, errlen);
            lua_pop(L, 1);
            if (rc != 0) return lua_pop(L, 2), -1;
        }
        for (size_t i = first + 1; i < c->nexpect; i++)
            for (size_t j = i; j > first && strcmp(c->expect[j - 1].key, c->expect[j].key) > 0;
                 j--) {
                vd_pb_expect tmp = c->expect[j];
                c->expect[j] = c->expect[j - 1];
                c->expect[j - 1] = tmp;
            }
    }
    lua_pop(L, 1);
    c->http_requests = -1;
    lua_getfield(L, -1, "http_requests");
    if (!lua_isnil(L, -1)) {
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0 ||
            lua_tointeger(L, -1) > VD_PB_MAX_HTTP) {
            snprintf(err, errlen, "%s.http_requests: expected a whole number 0 to %d", path,
                     VD_PB_MAX_HTTP);
            return lua_pop(L, 1), -1;
        }
        c->http_requests = (long)lua_tointeger(L, -1);
    }
    lua_pop(L, 1);
    lua_getfield(L, -1, "absent");
    if (!lua_isnil(L, -1)) {
        pathf(sub, sizeof sub, "%s.absent", path);
        char **keys2 = NULL;
        size_t n = 0;
        int rc = load_strings(L, &keys2, &n, sub, false, 64, err, errlen);
        for (size_t i = 0; i < n; i++) {
            vd_pb_expect *e;
            if (rc == 0 && !valid_key(keys2[i], strlen(keys2[i]))) {
                snprintf(err, errlen, "%s[%zu]: not a record key", sub, i + 1);
                rc = -1;
            }
            if (rc == 0 && (rc = expect_add(c, &e, err, errlen)) == 0) {
                e->key = keys2[i];
                e->type = VD_PB_ABSENT;
                keys2[i] = NULL;
            }
            free(keys2[i]);
        }
        free(keys2);
        if (rc != 0) return lua_pop(L, 1), -1;
    }
    lua_pop(L, 1);
    return 0;
}

static int load_check(lua_State *L, vd_pb_check *c, const char *path, int addr_idx, int expect_idx,
                      char *err, size_t errlen)
{
    char sub[300];
    pathf(sub, sizeof sub, "%s%saddress", path, *path ? "." : "");
    lua_pushvalue(L, addr_idx);
    if (lua_isnil(L, -1)) {
        snprintf(err, errlen, "%s: missing", sub);
        return lua_pop(L, 1), -1;
    }
    c->address = want_string(L, -1, sub, 1024, NULL, err, errlen);
    lua_pop(L, 1);
    if (!c->address) return -1;
    const char *at = strrchr(c->address, '@');
    if (at && at[1] == '[') {
        snprintf(err, errlen,
                 "%s: address literals are not played (the runner serves mail "
                 "hosts by name only)",
                 sub);
        return -1;
    }
    pathf(sub, sizeof sub, "%s%sexpect", path, *path ? "." : "");
    lua_pushvalue(L, expect_idx);
    if (lua_isnil(L, -1)) {
        snprintf(err, errlen, "%s: missing", sub);
        return lua_pop(L, 1), -1;
    }
    int rc = load_expect(L, c, sub, err, errlen);
    lua_pop(L, 1);
    return rc;
}

/* Engine options a test may not set: the runner's own wiring. */
static const char *const RUNNER_OPTIONS[] = {"dns",    "smtp-port", "source-ip", "starttls",
                                             "tls-ca", "rules",     NULL};

/* options = {...} (any engine option but the runner's) or, config, config = {...} (options
 * rules see, as config.NAME; "$HTTP" in a value is the HTTP playback server's base URL). */
static int load_options(lua_State *L, vd_pb_test *t, bool config, char *err, size_t errlen)
{
    const char *what = config ? "config" : "options";
    vd_pb_option **list = config ? &t->config : &t->options;
    size_t *nlist = config ? &t->nconfig : &t->noptions;
    if (lua_type(L, -1) != LUA_TTABLE) {
        snprintf(err, errlen, "%s: expected { %s, ... }", what,
                 config ? "microsoft_credential_url = \"$HTTP/...\"" : "reuse = false");
        return -1;
    }
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        if (lua_type(L, -2) != LUA_TSTRING || lua_rawlen(L, -2) > 64) {
            snprintf(err, errlen, "%s: keys are option names", what);
            return lua_pop(L, 2), -1;
        }
        char name[80];
        snprintf(name, sizeof name, "%s", lua_tostring(L, -2));
        for (char *p = name; *p; p++)
            if (*p == '_') *p = '-';
        const vd_option *opt = vd_option_find(vd_engine_options, name);
        if (!opt) {
            snprintf(err, errlen, "%s.%s: not an engine option (validora verify --help lists them)",
                     what, lua_tostring(L, -2));
            return lua_pop(L, 2), -1;
        }
        if (config && !opt->rules) {
            snprintf(err, errlen, "config.%s: rules do not see it (set it in options)",
                     lua_tostring(L, -2));
            return lua_pop(L, 2), -1;
        }
        for (const char *const *r = RUNNER_OPTIONS; *r; r++)
            if (!strcmp(*r, name)) {
                snprintf(err, errlen, "options.%s: set by the runner, not by a test",
                         lua_tostring(L, -2));
                return lua_pop(L, 2), -1;
            }
        char value[2048];
        switch (lua_type(L, -1)) {
        case LUA_TBOOLEAN:
            snprintf(value, sizeof value, "%s", lua_toboolean(L, -1) ? "true" : "false");
            break;
        case LUA_TNUMBER:
            if (lua_isinteger(L, -1))
                snprintf(value, sizeof value, "%lld", (long long)lua_tointeger(L, -1));
            else
                snprintf(value, sizeof value, "%.17g", (double)lua_tonumber(L, -1));
            break;
        case LUA_TSTRING:
            if (lua_rawlen(L, -1) >= sizeof value) {
                snprintf(err, errlen, "options.%s: too long", name);
                return lua_pop(L, 2), -1;
            }
            snprintf(value, sizeof value, "%s", lua_tostring(L, -1));
            break;
        default:
            snprintf(err, errlen, "options.%s: expected a boolean, number or string", name);
            return lua_pop(L, 2), -1;
        }
        if (!config && strlen(value) >= 128) {
            snprintf(err, errlen, "options.%s: too long", name);
            return lua_pop(L, 2), -1;
        }
        vd_pb_option *o = grow(*list, nlist, sizeof *o);
        if (!o) return lua_pop(L, 2), snprintf(err, errlen, "out of memory"), -1;
        *list = o;
        o = &o[*nlist - 1];
        if (!(o->name = strdup(name)) || !(o->value = strdup(value)))
            return lua_pop(L, 2), snprintf(err, errlen, "out of memory"), -1;
        lua_pop(L, 1);
    }
    return 0;
}

/* { ["Name"] = "value", ... } at -1 (nil: none) into v. */
static int load_headers(lua_State *L, vd_pb_header **v, size_t *n, const char *sub, char *err,
                        size_t errlen)
{
    if (lua_isnil(L, -1)) return 0;
    if (lua_type(L, -1) != LUA_TTABLE) {
        snprintf(err, errlen, "%s: expected { [\"Name\"] = \"value\", ... }", sub);
        return -1;
    }
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING ||
            lua_rawlen(L, -2) > 256 || lua_rawlen(L, -1) > 8192 ||
            strpbrk(lua_tostring(L, -1), "\r\n") || strpbrk(lua_tostring(L, -2), "\r\n: ")) {
            snprintf(err, errlen, "%s: names and values are strings, one line each", sub);
            return lua_pop(L, 2), -1;
        }
        vd_pb_header *hv = grow(*v, n, sizeof *hv);
        if (!hv) return lua_pop(L, 2), snprintf(err, errlen, "out of memory"), -1;
        *v = hv;
        hv = &hv[*n - 1];
        hv->name = strdup(lua_tostring(L, -2));
        hv->value = strdup(lua_tostring(L, -1));
        if (!hv->name || !hv->value)
            return lua_pop(L, 2), snprintf(err, errlen, "out of memory"), -1;
        lua_pop(L, 1);
    }
    return 0;
}

/* One http = { ... } entry (the table at -1). */
static int load_http_entry(lua_State *L, vd_pb_http *h, const char *path, char *err, size_t errlen)
{
    static const char *const keys[] = {"method", "path",    "body_matches", "headers_match",
                                       "status", "headers", "body",         NULL};
    char sub[300];
    if (lua_type(L, -1) != LUA_TTABLE) {
        snprintf(err, errlen, "%s: expected { method = ..., path = ..., status = ..., body = ... }",
                 path);
        return -1;
    }
    if (known_keys(L, -1, path, keys, err, errlen) != 0) return -1;
    char **fields[] = {&h->method, &h->path, &h->body_matches};
    for (int i = 0; i < 3; i++) {
        lua_getfield(L, -1, keys[i]);
        pathf(sub, sizeof sub, "%s.%s", path, keys[i]);
        if (!lua_isnil(L, -1) && !(*fields[i] = want_string(L, -1, sub, 4096, NULL, err, errlen)))
            return lua_pop(L, 1), -1;
        lua_pop(L, 1);
    }
    for (char *p = h->method; p && *p; p++)
        *p = (char)toupper((unsigned char)*p);
    if (h->path && h->path[0] != '/') {
        snprintf(err, errlen, "%s.path: starts with /", path);
        return -1;
    }
    lua_getfield(L, -1, "status");
    h->status = 200;
    if (!lua_isnil(L, -1)) {
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 100 || lua_tointeger(L, -1) > 599) {
            snprintf(err, errlen, "%s.status: expected 100 to 599", path);
            return lua_pop(L, 1), -1;
        }
        h->status = (int)lua_tointeger(L, -1);
    }
    lua_pop(L, 1);
    lua_getfield(L, -1, "body");
    pathf(sub, sizeof sub, "%s.body", path);
    if (!lua_isnil(L, -1) &&
        !(h->body = want_string(L, -1, sub, VD_PB_MAX_BODY, &h->body_len, err, errlen)))
        return lua_pop(L, 1), -1;
    lua_pop(L, 1);
    pathf(sub, sizeof sub, "%s.headers", path);
    lua_getfield(L, -1, "headers");
    int rc = load_headers(L, &h->headers, &h->nheaders, sub, err, errlen);
    lua_pop(L, 1);
    if (rc != 0) return -1;
    pathf(sub, sizeof sub, "%s.headers_match", path);
    lua_getfield(L, -1, "headers_match");
    rc = load_headers(L, &h->headers_match, &h->nheaders_match, sub, err, errlen);
    lua_pop(L, 1);
    return rc;
}

static int load_http(lua_State *L, vd_pb_test *t, char *err, size_t errlen)
{
    size_t n;
    if (want_list(L, -1, "http", &n, err, errlen) != 0) return -1;
    if (n > VD_PB_MAX_HTTP) {
        snprintf(err, errlen, "http: more than %d requests", VD_PB_MAX_HTTP);
        return -1;
    }
    if (n && !(t->http = calloc(n, sizeof *t->http)))
        return snprintf(err, errlen, "out of memory"), -1;
    for (size_t i = 1; i <= n; i++) {
        char path[64];
        pathf(path, sizeof path, "http[%zu]", i);
        lua_rawgeti(L, -1, (lua_Integer)i);
        t->nhttp = i;
        int rc = load_http_entry(L, &t->http[i - 1], path, err, errlen);
        lua_pop(L, 1);
        if (rc != 0) return -1;
    }
    return 0;
}

/* The test table at -1 into ld->t. */
static int load_test(lua_State *L, loader *ld, char *err, size_t errlen)
{
    static const char *const keys[] = {"name",    "address", "expect", "verify", "dns", "sessions",
                                       "options", "timeout", "config", "http",   NULL};
    vd_pb_test *t = ld->t;
    int top = lua_gettop(L);
    if (known_keys(L, top, "the test", keys, err, errlen) != 0) return -1;
    for (int i = 0; keys[i]; i++)
        lua_getfield(L, top, keys[i]); /* top+1 .. top+10 in the order of keys */
    if (!lua_isnil(L, top + 1) &&
        !(t->name = want_string(L, top + 1, "name", 200, NULL, err, errlen)))
        return -1;
    t->timeout = 30;
    if (!lua_isnil(L, top + 8)) {
        if (lua_type(L, top + 8) != LUA_TNUMBER || !(lua_tonumber(L, top + 8) >= 0.1) ||
            lua_tonumber(L, top + 8) > 3600) {
            snprintf(err, errlen, "timeout: expected seconds between 0.1 and 3600");
            return -1;
        }
        t->timeout = (double)lua_tonumber(L, top + 8);
    }
    if (!lua_isnil(L, top + 5)) {
        lua_pushvalue(L, top + 5);
        int rc = load_dns(L, t, err, errlen);
        lua_pop(L, 1);
        if (rc != 0) return -1;
    }
    if (!lua_isnil(L, top + 6)) {
        lua_pushvalue(L, top + 6);
        int rc = load_sessions(L, ld, err, errlen);
        lua_pop(L, 1);
        if (rc != 0) return -1;
    }
    if (!lua_isnil(L, top + 7)) {
        lua_pushvalue(L, top + 7);
        int rc = load_options(L, t, false, err, errlen);
        lua_pop(L, 1);
        if (rc != 0) return -1;
    }
    if (!lua_isnil(L, top + 9)) {
        lua_pushvalue(L, top + 9);
        int rc = load_options(L, t, true, err, errlen);
        lua_pop(L, 1);
        if (rc != 0) return -1;
    }
    if (!lua_isnil(L, top + 10)) {
        lua_pushvalue(L, top + 10);
        int rc = load_http(L, t, err, errlen);
        lua_pop(L, 1);
        if (rc != 0) return -1;
    }
    bool single = !lua_isnil(L, top + 2) || !lua_isnil(L, top + 3);
    if (single == !lua_isnil(L, top + 4)) {
        snprintf(err, errlen,
                 "the test: give address and expect, or verify = { { address = "
                 "..., expect = ... }, ... }, not both");
        return -1;
    }
    if (single) {
        if (!(t->checks = calloc(1, sizeof *t->checks)))
            return snprintf(err, errlen, "out of memory"), -1;
        t->nchecks = 1;
        return load_check(L, &t->checks[0], "", top + 2, top + 3, err, errlen);
    }
    size_t n;
    lua_pushvalue(L, top + 4);
    if (want_list(L, -1, "verify", &n, err, errlen) != 0) return -1;
    if (!n || n > VD_PB_MAX_CHECKS) {
        snprintf(err, errlen, "verify: give 1 to %d addresses", VD_PB_MAX_CHECKS);
        return -1;
    }
    if (!(t->checks = calloc(n, sizeof *t->checks)))
        return snprintf(err, errlen, "out of memory"), -1;
    for (size_t i = 1; i <= n; i++) {
        char path[64];
        pathf(path, sizeof path, "verify[%zu]", i);
        lua_rawgeti(L, -1, (lua_Integer)i);
        static const char *const ckeys[] = {"address", "expect", NULL};
        if (lua_type(L, -1) != LUA_TTABLE) {
            snprintf(err, errlen, "%s: expected { address = ..., expect = ... }", path);
            return -1;
        }
        if (known_keys(L, -1, path, ckeys, err, errlen) != 0) return -1;
        int e = lua_gettop(L);
        lua_getfield(L, e, "address");
        lua_getfield(L, e, "expect");
        t->nchecks = i;
        if (load_check(L, &t->checks[i - 1], path, e + 1, e + 2, err, errlen) != 0) return -1;
        lua_settop(L, e - 1);
    }
    return 0;
}

static int run_chunk(lua_State *L)
{
    lua_call(L, 0, LUA_MULTRET);
    return lua_gettop(L);
}

int vd_pb_test_load(const char *path, vd_pb_test *t, char *err, size_t errlen)
{
    *t = (vd_pb_test){0};
    if (!(t->path = strdup(path))) return snprintf(err, errlen, "out of memory"), -1;
    loader ld = {.t = t};
    const char *slash = strrchr(path, '/');
    if (slash)
        snprintf(ld.dir, sizeof ld.dir, "%.*s", (int)(slash - path), path);
    else
        snprintf(ld.dir, sizeof ld.dir, ".");
    if (!ld.dir[0]) snprintf(ld.dir, sizeof ld.dir, "/");
    size_t len;
    char *text = read_file(path, &len, err, errlen);
    if (!text) return -1;
    lua_State *L = test_state(err, errlen);
    int rc = -1;
    if (!L) goto out;
    char chunkname[4200];
    snprintf(chunkname, sizeof chunkname, "@%s", path);
    if (vd_lua_loadtext(L, text, len, chunkname) != LUA_OK) {
        snprintf(err, errlen, "%s", lua_tostring(L, -1));
        goto out;
    }
    lua_pushcfunction(L, run_chunk);
    lua_insert(L, -2);
    if (lua_pcall(L, 1, LUA_MULTRET, 0) != LUA_OK) {
        const char *m = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "an error";
        if (!strncmp(m, path, strlen(path)))
            snprintf(err, errlen, "%s", m);
        else
            snprintf(err, errlen, "%s: %s", path, m);
        goto out;
    }
    if (lua_gettop(L) != 1 || lua_type(L, 1) != LUA_TTABLE) {
        snprintf(err, errlen,
                 "%s: the file must return one table (return { address = ..., "
                 "... })",
                 path);
        goto out;
    }
    vd_lua_unbudget(L);
    char why[900];
    if (check_data(L, 1, 0, "the test", why, sizeof why) != 0 ||
        load_test(L, &ld, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s: %s", path, why);
        goto out;
    }
    if (!t->name) {
        const char *base = slash ? slash + 1 : path;
        size_t bl = strlen(base);
        if (bl > 4 && !strcmp(base + bl - 4, ".lua")) bl -= 4;
        if (!(t->name = dupn(base, bl))) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
    }
    rc = 0;
out:
    if (L) vd_sandbox_close(L);
    free(text);
    return rc;
}

bool vd_pb_pattern_match(void *arg, const char *subject, size_t len, const char *pattern, char *why,
                         size_t whylen)
{
    (void)arg;
    char err[512];
    int rc = vd_lua_pattern_find(subject, len, pattern, err, sizeof err);
    if (rc < 0)
        snprintf(why, whylen, "body_matches: %s", err);
    else if (rc == 0)
        snprintf(why, whylen, "does not match %s", pattern);
    return rc > 0;
}
