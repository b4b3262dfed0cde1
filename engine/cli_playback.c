/* cli_playback.c — rule test files, transcripts, and the loopback servers that play them for
 * `validora rules test` (see cli_playback.h; docs/rules-test.md for users).
 *
 * Owns: the test-file loader (a Lua state of its own: text only, an environment holding only
 * string/table/math, a memory cap and an instruction budget, then every value checked to be
 * data and every key known), the transcript parser, the DNS responder and the SMTP playback
 * server, and the problems playback notes.
 * Does not own: the engine, comparing records (cli_rules_test.c). */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include "cli_playback.h"
#include "validora/options.h"

/* ---------------------------------------------------------------- messages */

void vd_pb_msg(vd_pb_msgs *m, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (m->n == m->cap) {
        size_t cap = m->cap ? 2 * m->cap : 8;
        char **v = realloc(m->v, cap * sizeof *v);
        if (!v) return;
        m->v = v;
        m->cap = cap;
    }
    char *s = strdup(buf);
    if (s) m->v[m->n++] = s;
}

void vd_pb_msgs_clear(vd_pb_msgs *m)
{
    for (size_t i = 0; i < m->n; i++)
        free(m->v[i]);
    free(m->v);
    *m = (vd_pb_msgs){0};
}

void vd_pb_quote(char *buf, size_t size, const char *s, size_t len, size_t max)
{
    size_t o = 0;
    if (size < 8) {
        if (size) buf[0] = '\0';
        return;
    }
    buf[o++] = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i >= max || o + 8 >= size) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c < 0x20 || c >= 0x7f) {
            o += (size_t)snprintf(buf + o, size - o, "\\x%02X", c);
        } else {
            buf[o++] = (char)c;
        }
    }
    buf[o++] = '"';
    buf[o] = '\0';
}

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

/* ---------------------------------------------------------------- replies and scripts */

static int reply_add(vd_pb_reply *r, const char *s, size_t len)
{
    char **lines = realloc(r->lines, (r->nlines + 1) * sizeof *lines);
    if (!lines) return -1;
    r->lines = lines;
    size_t *lens = realloc(r->lens, (r->nlines + 1) * sizeof *lens);
    if (!lens) return -1;
    r->lens = lens;
    if (!(r->lines[r->nlines] = dupn(s, len))) return -1;
    r->lens[r->nlines++] = len;
    return 0;
}

void vd_pb_reply_clear(vd_pb_reply *r)
{
    for (size_t i = 0; i < r->nlines; i++)
        free(r->lines[i]);
    free(r->lines);
    free(r->lens);
    *r = (vd_pb_reply){0};
}

/* Drops line i of r. */
static void reply_drop(vd_pb_reply *r, size_t i)
{
    free(r->lines[i]);
    memmove(r->lines + i, r->lines + i + 1, (r->nlines - i - 1) * sizeof *r->lines);
    memmove(r->lens + i, r->lens + i + 1, (r->nlines - i - 1) * sizeof *r->lens);
    r->nlines--;
}

int vd_pb_reply_parse(const char *text, size_t len, vd_pb_reply *r, char *err, size_t errlen)
{
    *r = (vd_pb_reply){0};
    size_t at = 0;
    while (at < len) {
        const char *p = text + at;
        const char *nl = memchr(p, '\n', len - at);
        size_t n = nl ? (size_t)(nl - p) : len - at;
        at += n + (nl ? 1 : 0);
        if (n && p[n - 1] == '\r') n--;
        bool last = at >= len;
        if (last && n == 5 && !memcmp(p, "close", 5)) {
            r->then = VD_PB_CLOSE;
            break;
        }
        if (last && n == 7 && !memcmp(p, "timeout", 7)) {
            r->then = VD_PB_HANG;
            break;
        }
        if (n > VD_PB_MAX_LINE || r->nlines >= VD_PB_MAX_LINES) {
            snprintf(err, errlen, "reply too long");
            vd_pb_reply_clear(r);
            return -1;
        }
        if (reply_add(r, p, n) != 0) {
            snprintf(err, errlen, "out of memory");
            vd_pb_reply_clear(r);
            return -1;
        }
    }
    if (!r->nlines && r->then == VD_PB_GO_ON) {
        snprintf(err, errlen, "an empty reply (give reply lines, \"close\" or \"timeout\")");
        return -1;
    }
    return 0;
}

void vd_pb_script_clear(vd_pb_script *s)
{
    vd_pb_reply_clear(&s->banner);
    for (size_t i = 0; i < s->nsteps; i++) {
        free(s->steps[i].cmd);
        vd_pb_reply_clear(&s->steps[i].reply);
    }
    free(s->steps);
    *s = (vd_pb_script){0};
}

/* The verb of a command line: its first word, upper case ("MAIL FROM:<a>" is MAIL). */
static void verb_of(const char *line, size_t len, char verb[16])
{
    size_t n = 0;
    while (n < len && n < 15 && line[n] != ' ' && line[n] != ':' && line[n] != '\t') {
        verb[n] = (char)toupper((unsigned char)line[n]);
        n++;
    }
    verb[n] = '\0';
}

/* Unescapes \xHH and \\ of a transcript line into out (at least len + 1 bytes). */
static int unescape(const char *s, size_t len, char *out, size_t *outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '\\') {
            out[o++] = s[i];
            continue;
        }
        if (i + 1 < len && s[i + 1] == '\\') {
            out[o++] = '\\';
            i++;
        } else if (i + 3 < len && s[i + 1] == 'x' && isxdigit((unsigned char)s[i + 2]) &&
                   isxdigit((unsigned char)s[i + 3])) {
            char hex[3] = {s[i + 2], s[i + 3], '\0'};
            out[o++] = (char)strtol(hex, NULL, 16);
            i += 3;
        } else {
            return -1;
        }
    }
    out[o] = '\0';
    *outlen = o;
    return 0;
}

static bool is_starttls_keyword(const char *l, size_t n)
{
    return n >= 12 && !memcmp(l, "250", 3) && (l[3] == '-' || l[3] == ' ') &&
           !strncasecmp(l + 4, "STARTTLS", 8) && (n == 12 || l[12] == ' ');
}

/* Takes the STARTTLS keyword out of an EHLO reply (the line before becomes the last). The
 * first line is the greeting, never a keyword. */
static void strip_starttls_keyword(vd_pb_reply *r)
{
    for (size_t k = 1; k < r->nlines;) {
        if (!is_starttls_keyword(r->lines[k], r->lens[k])) {
            k++;
            continue;
        }
        bool was_last = r->lines[k][3] == ' ';
        reply_drop(r, k);
        if (was_last && k > 0 && r->lens[k - 1] >= 4) r->lines[k - 1][3] = ' ';
    }
}

static void step_drop(vd_pb_script *s, size_t i)
{
    free(s->steps[i].cmd);
    vd_pb_reply_clear(&s->steps[i].reply);
    memmove(s->steps + i, s->steps + i + 1, (s->nsteps - i - 1) * sizeof *s->steps);
    s->nsteps--;
}

/* Playback has no certificate: STARTTLS goes, with the EHLO before it when it was accepted
 * (the client then said EHLO again in TLS, and that EHLO's reply is the one it went on with),
 * and the keyword goes from every EHLO reply. */
static void strip_starttls(vd_pb_script *s)
{
    for (size_t i = 0; i < s->nsteps;) {
        if (strcmp(s->steps[i].verb, "STARTTLS") != 0) {
            i++;
            continue;
        }
        const vd_pb_reply *r = &s->steps[i].reply;
        bool accepted = r->nlines && r->lens[0] >= 3 && !memcmp(r->lines[0], "220", 3);
        step_drop(s, i);
        if (accepted && i > 0 &&
            (!strcmp(s->steps[i - 1].verb, "EHLO") || !strcmp(s->steps[i - 1].verb, "HELO")) &&
            i < s->nsteps && !strcmp(s->steps[i].verb, "EHLO")) {
            step_drop(s, i - 1);
            i--;
        }
    }
    for (size_t i = 0; i < s->nsteps; i++)
        if (!strcmp(s->steps[i].verb, "EHLO")) strip_starttls_keyword(&s->steps[i].reply);
}

#define PARSE_FAIL(...)                                                                            \
    do {                                                                                           \
        snprintf(err, errlen, __VA_ARGS__);                                                        \
        goto fail;                                                                                 \
    } while (0)

int vd_pb_transcript_parse(const char *text, size_t len, vd_pb_script *s, char *err, size_t errlen)
{
    *s = (vd_pb_script){0};
    char *buf = NULL;
    size_t at = 0, nlines = 0;
    int lineno = 0;
    bool ended = false;
    if (len > VD_PB_MAX_FILE) {
        snprintf(err, errlen, "larger than %u bytes", VD_PB_MAX_FILE);
        return -1;
    }
    while (at < len) {
        const char *p = text + at;
        const char *nl = memchr(p, '\n', len - at);
        size_t n = nl ? (size_t)(nl - p) : len - at;
        at += n + (nl ? 1 : 0);
        lineno++;
        if (n && p[n - 1] == '\r') n--;
        if (n > VD_PB_MAX_LINE + 64)
            PARSE_FAIL("line %d: longer than %d bytes", lineno, VD_PB_MAX_LINE);
        if (lineno == 1) {
            static const char magic[] = "# validora transcript ";
            size_t ml = sizeof magic - 1;
            if (n < ml || memcmp(p, magic, ml) != 0)
                PARSE_FAIL("line 1: not a validora transcript (it must start with "
                           "'# validora transcript 1')");
            size_t vl = n - ml;
            while (vl && p[ml + vl - 1] == ' ')
                vl--;
            if (vl != 1 || p[ml] != '1')
                PARSE_FAIL("line 1: transcript version '%.*s' is not one this validora reads (1)",
                           (int)(vl < 20 ? vl : 20), p + ml);
            continue;
        }
        size_t i = 0;
        while (i < n && (p[i] == ' ' || p[i] == '\t'))
            i++;
        if (i == n) continue; /* blank */
        if (p[i] == '#') {
            static const char endtag[] = "# end:";
            if (n - i >= sizeof endtag - 1 && !memcmp(p + i, endtag, sizeof endtag - 1)) {
                if (ended) PARSE_FAIL("line %d: a second '# end:'", lineno);
                ended = true;
                size_t k = i + sizeof endtag - 1;
                while (k < n && p[k] == ' ')
                    k++;
                while (k < n && (isdigit((unsigned char)p[k]) || p[k] == '.'))
                    k++;
                while (k < n && p[k] == ' ')
                    k++;
                size_t rl = n - k;
                while (rl && p[k + rl - 1] == ' ')
                    rl--;
                if (rl >= sizeof s->end) PARSE_FAIL("line %d: end reason too long", lineno);
                memcpy(s->end, p + k, rl);
                s->end[rl] = '\0';
            }
            continue; /* "# mx:", "# started:", "# tls:" and other notes */
        }
        if (ended) PARSE_FAIL("line %d: an entry after '# end:'", lineno);
        size_t digits = 0;
        while (i < n && (isdigit((unsigned char)p[i]) || p[i] == '.'))
            i++, digits++;
        size_t sp = 0;
        while (i < n && p[i] == ' ')
            i++, sp++;
        if (!digits || !sp || i >= n || (p[i] != '<' && p[i] != '>') ||
            (i + 1 < n && p[i + 1] != ' '))
            PARSE_FAIL("line %d: not an entry ('SECONDS < LINE' or 'SECONDS > LINE')", lineno);
        char dir = p[i];
        const char *t = i + 2 <= n ? p + i + 2 : p + n;
        size_t tl = (size_t)(p + n - t);
        free(buf);
        if (!(buf = malloc(tl + 1))) PARSE_FAIL("out of memory");
        size_t bl;
        if (unescape(t, tl, buf, &bl) != 0)
            PARSE_FAIL("line %d: a backslash that is not \\\\ or \\xHH", lineno);
        if (bl > VD_PB_MAX_LINE)
            PARSE_FAIL("line %d: longer than %d bytes", lineno, VD_PB_MAX_LINE);
        if (dir == '<') {
            if (++nlines > VD_PB_MAX_LINES)
                PARSE_FAIL("line %d: more than %d reply lines", lineno, VD_PB_MAX_LINES);
            vd_pb_reply *r = s->nsteps ? &s->steps[s->nsteps - 1].reply : &s->banner;
            if (reply_add(r, buf, bl) != 0) PARSE_FAIL("out of memory");
        } else {
            if (s->nsteps >= VD_PB_MAX_STEPS)
                PARSE_FAIL("line %d: more than %d commands", lineno, VD_PB_MAX_STEPS);
            vd_pb_step *steps = grow(s->steps, &s->nsteps, sizeof *steps);
            if (!steps) PARSE_FAIL("out of memory");
            s->steps = steps;
            vd_pb_step *st = &s->steps[s->nsteps - 1];
            st->lineno = lineno;
            verb_of(buf, bl, st->verb);
            st->cmd = buf;
            buf = NULL;
        }
    }
    free(buf);
    buf = NULL;
    if (lineno == 0) PARSE_FAIL("empty (it must start with '# validora transcript 1')");
    strip_starttls(s);
    vd_pb_reply *last = s->nsteps ? &s->steps[s->nsteps - 1].reply : &s->banner;
    if (!strcmp(s->end, "closed by server") || !strcmp(s->end, "connection_closed"))
        last->then = VD_PB_CLOSE;
    else if (!strcmp(s->end, "timeout"))
        last->then = VD_PB_HANG;
    return 0;
fail:
    free(buf);
    vd_pb_script_clear(s);
    return -1;
}

/* ---------------------------------------------------------------- the test file */

#define LOAD_MEMORY       (64u << 20) /* bytes the test file's Lua may allocate */
#define LOAD_INSTRUCTIONS 10000000    /* Lua instructions it may run */
#define MAX_DEPTH         16          /* table nesting */

typedef struct loader {
    size_t used, limit;
    long budget;
    vd_pb_test *t;
    char dir[4096];
    char *err;
    size_t errlen;
} loader;

static void *l_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    loader *ld = ud;
    if (!ptr) osize = 0;
    if (nsize == 0) {
        free(ptr);
        ld->used -= osize;
        return NULL;
    }
    if (nsize > osize && ld->used + (nsize - osize) > ld->limit) return NULL;
    void *p = realloc(ptr, nsize);
    if (p) ld->used = ld->used - osize + nsize;
    return p;
}

static void l_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    loader *ld;
    lua_getallocf(L, (void **)&ld);
    ld->budget -= 1000;
    if (ld->budget < 0) luaL_error(L, "the test file runs too long (it should be data)");
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

static int cmp_names(const void *a, const void *b)
{
    return strcmp(((const vd_pb_name *)a)->name, ((const vd_pb_name *)b)->name);
}

static const vd_pb_name *find_name(const vd_pb_test *t, const char *name)
{
    vd_pb_name key = {.name = (char *)name};
    return t->nnames ? bsearch(&key, t->names, t->nnames, sizeof key, cmp_names) : NULL;
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
    qsort(t->names, t->nnames, sizeof *t->names, cmp_names);
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
        const vd_pb_name *nm = find_name(ld->t, s->host);
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
        int rc = vd_pb_transcript_parse(text, len, &s->script, sub2, sizeof sub2);
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
            !(b = own = want_string(L, -1, sub, VD_PB_MAX_LINE, &bl, err, errlen)))
            return lua_pop(L, 1), -1;
        char why[200];
        int rc = vd_pb_reply_parse(b, bl, &s->banner, why, sizeof why);
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
        verb_of(k, kl, v->verb);
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
            int rc = vd_pb_reply_parse(text, rl, &v->replies[v->n], why, sizeof why);
            free(text);
            if (rc != 0) {
                snprintf(err, errlen, "%s: %s", rp, why);
                return lua_pop(L, 3), -1;
            }
            if (!strcmp(v->verb, "EHLO")) strip_starttls_keyword(&v->replies[v->n]);
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
    loader ld = {.limit = LOAD_MEMORY, .budget = LOAD_INSTRUCTIONS, .t = t};
    const char *slash = strrchr(path, '/');
    if (slash)
        snprintf(ld.dir, sizeof ld.dir, "%.*s", (int)(slash - path), path);
    else
        snprintf(ld.dir, sizeof ld.dir, ".");
    if (!ld.dir[0]) snprintf(ld.dir, sizeof ld.dir, "/");
    size_t len;
    char *text = read_file(path, &len, err, errlen);
    if (!text) return -1;
    lua_State *L = lua_newstate(l_alloc, &ld);
    int rc = -1;
    if (!L) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    lua_sethook(L, l_hook, LUA_MASKCOUNT, 1000);
    char chunkname[4200];
    snprintf(chunkname, sizeof chunkname, "@%s", path);
    if (luaL_loadbufferx(L, text, len, chunkname, "t") != LUA_OK) {
        snprintf(err, errlen, "%s", lua_tostring(L, -1));
        goto out;
    }
    /* The environment: string, table and math, nothing else. */
    lua_newtable(L);
    luaL_requiref(L, "string", luaopen_string, 0);
    lua_setfield(L, -2, "string");
    luaL_requiref(L, "table", luaopen_table, 0);
    lua_setfield(L, -2, "table");
    luaL_requiref(L, "math", luaopen_math, 0);
    lua_setfield(L, -2, "math");
    lua_setupvalue(L, -2, 1);
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
    lua_sethook(L, NULL, 0, 0);
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
    if (L) lua_close(L);
    free(text);
    return rc;
}

void vd_pb_test_clear(vd_pb_test *t)
{
    for (size_t i = 0; i < t->nnames; i++) {
        vd_pb_name *n = &t->names[i];
        free(n->name);
        for (size_t k = 0; k < n->nmx; k++)
            free(n->mx[k].host);
        free(n->mx);
        for (size_t k = 0; k < n->ntxt; k++)
            free(n->txt[k]);
        free(n->txt);
        for (size_t k = 0; k < n->nptr; k++)
            free(n->ptr[k]);
        free(n->ptr);
        free(n->cname);
    }
    free(t->names);
    for (size_t i = 0; i < t->nsessions; i++) {
        vd_pb_session *s = &t->sessions[i];
        free(s->what);
        free(s->host);
        vd_pb_script_clear(&s->script);
        vd_pb_reply_clear(&s->banner);
        for (size_t k = 0; k < s->nverbs; k++) {
            for (size_t r = 0; r < s->verbs[k].n; r++)
                vd_pb_reply_clear(&s->verbs[k].replies[r]);
            free(s->verbs[k].replies);
        }
        free(s->verbs);
    }
    free(t->sessions);
    for (size_t i = 0; i < t->nchecks; i++) {
        free(t->checks[i].address);
        for (size_t k = 0; k < t->checks[i].nexpect; k++) {
            free(t->checks[i].expect[k].key);
            free(t->checks[i].expect[k].s);
        }
        free(t->checks[i].expect);
    }
    free(t->checks);
    for (size_t i = 0; i < t->noptions; i++) {
        free(t->options[i].name);
        free(t->options[i].value);
    }
    free(t->options);
    for (size_t i = 0; i < t->nconfig; i++) {
        free(t->config[i].name);
        free(t->config[i].value);
    }
    free(t->config);
    for (size_t i = 0; i < t->nhttp; i++) {
        vd_pb_http *h = &t->http[i];
        free(h->method);
        free(h->path);
        free(h->body_matches);
        free(h->body);
        for (size_t k = 0; k < h->nheaders; k++) {
            free(h->headers[k].name);
            free(h->headers[k].value);
        }
        free(h->headers);
        for (size_t k = 0; k < h->nheaders_match; k++) {
            free(h->headers_match[k].name);
            free(h->headers_match[k].value);
        }
        free(h->headers_match);
    }
    free(t->http);
    free(t->path);
    free(t->name);
    *t = (vd_pb_test){0};
}

/* ---------------------------------------------------------------- the world */

typedef struct pb_conn pb_conn;

typedef struct pb_listener {
    struct evconnlistener *l;
    vd_pb_world *w;
    const vd_pb_name *host;
} pb_listener;

struct vd_pb_world {
    struct event_base *base;
    vd_pb_test *t;
    vd_pb_msgs *msgs;
    evutil_socket_t dns_fd;
    struct event *dns_ev;
    int dns_port;
    pb_listener *listeners;
    size_t nlisteners;
    int smtp_port;
    pb_conn *conns;
    size_t nconns, accepted;
    struct evhttp *http; /* the HTTP playback server */
    int http_port;
    size_t http_next;     /* the test's http entry the next request takes */
    size_t http_requests; /* requests received */
};

/* ---- DNS responder ---- */

#define DNS_TTL 300

typedef struct dnsbuf {
    unsigned char b[4096];
    size_t n;
    bool full;
} dnsbuf;

static void put(dnsbuf *d, const void *p, size_t n)
{
    if (d->full || d->n + n > sizeof d->b) {
        d->full = true;
        return;
    }
    memcpy(d->b + d->n, p, n);
    d->n += n;
}

static void put16(dnsbuf *d, unsigned v)
{
    unsigned char b[2] = {(unsigned char)(v >> 8), (unsigned char)v};
    put(d, b, 2);
}

static void put32(dnsbuf *d, uint32_t v)
{
    unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    put(d, b, 4);
}

/* A name in wire form, uncompressed ("." is the root). */
static void put_name(dnsbuf *d, const char *name)
{
    if (strcmp(name, ".") != 0) {
        const char *p = name;
        while (*p) {
            size_t l = strcspn(p, ".");
            unsigned char len = (unsigned char)l;
            put(d, &len, 1);
            put(d, p, l);
            p += l;
            if (*p == '.') p++;
        }
    }
    put(d, "", 1);
}

/* Starts a resource record; the owner is the question's name (a pointer to offset 12) when
 * owner is NULL. Returns where RDLENGTH goes. */
static size_t rr_begin(dnsbuf *d, const char *owner, unsigned type)
{
    if (owner)
        put_name(d, owner);
    else
        put16(d, 0xC00C);
    put16(d, type);
    put16(d, 1);
    put32(d, DNS_TTL);
    size_t at = d->n;
    put16(d, 0);
    return at;
}

static void rr_end(dnsbuf *d, size_t at)
{
    if (d->full) return;
    size_t len = d->n - at - 2;
    d->b[at] = (unsigned char)(len >> 8);
    d->b[at + 1] = (unsigned char)len;
}

/* The records of type qtype of nm, owned by owner; returns how many. */
static unsigned put_records(dnsbuf *d, const vd_pb_name *nm, const char *owner, unsigned qtype)
{
    unsigned n = 0;
    size_t at;
    switch (qtype) {
    case 1: /* A */
        if (nm->a) {
            at = rr_begin(d, owner, 1);
            put32(d, nm->ip);
            rr_end(d, at);
            n++;
        }
        break;
    case 15: /* MX */
        for (size_t i = 0; i < nm->nmx; i++, n++) {
            at = rr_begin(d, owner, 15);
            put16(d, nm->mx[i].pref);
            put_name(d, nm->mx[i].host);
            rr_end(d, at);
        }
        break;
    case 16: /* TXT */
        for (size_t i = 0; i < nm->ntxt; i++, n++) {
            at = rr_begin(d, owner, 16);
            const char *s = nm->txt[i];
            size_t left = strlen(s);
            do {
                unsigned char l = (unsigned char)(left > 255 ? 255 : left);
                put(d, &l, 1);
                put(d, s, l);
                s += l;
                left -= l;
            } while (left);
            rr_end(d, at);
        }
        break;
    case 12: /* PTR */
        for (size_t i = 0; i < nm->nptr; i++, n++) {
            at = rr_begin(d, owner, 12);
            put_name(d, nm->ptr[i]);
            rr_end(d, at);
        }
        break;
    }
    return n;
}

/* Parses the question at 12; the name in name (lower case), the end offset in *end. */
static bool dns_question(const unsigned char *q, size_t len, char name[256], unsigned *qtype,
                         unsigned *qclass, size_t *end)
{
    size_t at = 12, o = 0;
    for (;;) {
        if (at >= len) return false;
        unsigned l = q[at++];
        if (l == 0) break;
        if (l > 63 || at + l > len || o + l + 1 > 254) return false;
        if (o) name[o++] = '.';
        for (unsigned i = 0; i < l; i++)
            name[o++] = (char)tolower(q[at + i]);
        at += l;
    }
    name[o] = '\0';
    if (at + 4 > len) return false;
    *qtype = (unsigned)(q[at] << 8 | q[at + 1]);
    *qclass = (unsigned)(q[at + 2] << 8 | q[at + 3]);
    *end = at + 4;
    return true;
}

/* The answer to one query; false when none is to be sent. */
static bool dns_answer(const vd_pb_test *t, const unsigned char *q, size_t len, dnsbuf *d)
{
    if (len < 12 || (q[2] & 0x80)) return false; /* too short, or a response */
    unsigned qd = (unsigned)(q[4] << 8 | q[5]);
    unsigned rd = q[2] & 0x01, opcode = (q[2] >> 3) & 0x0f;
    char name[256];
    unsigned qtype = 0, qclass = 0;
    size_t qend = 12;
    unsigned rcode = 0;
    bool question = qd == 1 && dns_question(q, len, name, &qtype, &qclass, &qend);
    if (opcode != 0)
        rcode = 4; /* NOTIMP */
    else if (!question)
        rcode = 1; /* FORMERR */
    else if (qclass != 1)
        rcode = 5; /* REFUSED */
    size_t udp_max = 512;
    if (question && len >= qend + 11 && q[qend] == 0 && q[qend + 1] == 0 && q[qend + 2] == 41) {
        size_t sz = (size_t)(q[qend + 3] << 8 | q[qend + 4]);
        if (sz > udp_max) udp_max = sz < sizeof d->b ? sz : sizeof d->b;
    }
    d->n = 0;
    d->full = false;
    put(d, q, 2); /* id */
    unsigned char flags[2] = {(unsigned char)(0x80 | (opcode << 3) | 0x04 | rd), 0x80};
    put(d, flags, 2);
    put16(d, question ? 1 : 0);
    put16(d, 0);
    put16(d, 0);
    put16(d, 0);
    if (question) put(d, q + 12, qend - 12);
    unsigned an = 0;
    if (rcode == 0) {
        const vd_pb_name *nm = find_name(t, name);
        const char *owner = NULL;
        for (int depth = 0; nm; depth++) {
            if (nm->rcode == VD_PB_DROP) return false;
            if (nm->rcode != VD_PB_ANSWER) {
                rcode = nm->rcode == VD_PB_SERVFAIL ? 2 : nm->rcode == VD_PB_REFUSED ? 5 : 3;
                break;
            }
            if (nm->cname && qtype != 5 && depth < 8) {
                size_t at = rr_begin(d, owner, 5);
                put_name(d, nm->cname);
                rr_end(d, at);
                an++;
                owner = nm->cname;
                nm = find_name(t, nm->cname);
                if (!nm) rcode = 3;
                continue;
            }
            if (nm->cname && qtype == 5) {
                size_t at = rr_begin(d, owner, 5);
                put_name(d, nm->cname);
                rr_end(d, at);
                an++;
            } else {
                an += put_records(d, nm, owner, qtype);
            }
            break;
        }
        if (!nm && !an) rcode = 3; /* NXDOMAIN */
    }
    if (d->full || d->n > udp_max) { /* truncated: header and question only, TC set */
        d->n = 12 + (question ? qend - 12 : 0);
        d->full = false;
        d->b[2] |= 0x02;
        an = 0;
    }
    d->b[3] = (unsigned char)(0x80 | rcode);
    d->b[6] = (unsigned char)(an >> 8);
    d->b[7] = (unsigned char)an;
    return true;
}

static void on_dns(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    vd_pb_world *w = arg;
    for (int i = 0; i < 64; i++) {
        unsigned char q[1500];
        struct sockaddr_in from;
        socklen_t flen = sizeof from;
        ssize_t n = recvfrom(fd, q, sizeof q, 0, (struct sockaddr *)&from, &flen);
        if (n < 0) return; /* EAGAIN, or an error: nothing more now */
        /* traffic only to the loopback network */
        if (flen != sizeof from || from.sin_family != AF_INET ||
            (ntohl(from.sin_addr.s_addr) >> 24) != 127)
            continue;
        dnsbuf d;
        if (!dns_answer(w->t, q, (size_t)n, &d)) continue;
        sendto(fd, d.b, d.n, 0, (struct sockaddr *)&from, flen);
    }
}

static int dns_start(vd_pb_world *w, char *err, size_t errlen)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    w->dns_fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (w->dns_fd < 0 || evutil_make_socket_nonblocking(w->dns_fd) != 0 ||
        evutil_make_socket_closeonexec(w->dns_fd) != 0 ||
        bind(w->dns_fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        getsockname(w->dns_fd, (struct sockaddr *)&sa, &sl) != 0) {
        snprintf(err, errlen, "DNS responder on 127.0.0.1: %s", strerror(errno));
        return -1;
    }
    w->dns_port = ntohs(sa.sin_port);
    w->dns_ev = event_new(w->base, w->dns_fd, EV_READ | EV_PERSIST, on_dns, w);
    if (!w->dns_ev || event_add(w->dns_ev, NULL) != 0) {
        snprintf(err, errlen, "DNS responder: out of memory");
        return -1;
    }
    return 0;
}

/* ---- SMTP playback ---- */

#define CMD_MAX 4096 /* a command line longer than this is not one our client sends */

struct pb_conn {
    vd_pb_world *w;
    pb_conn *prev, *next;
    struct bufferevent *bev;
    vd_pb_session *s; /* NULL: no session was left for it */
    size_t num;       /* the session's number, from 1 */
    const vd_pb_name *host;
    bool closing, hung;
};

static void conn_free(pb_conn *c)
{
    vd_pb_world *w = c->w;
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    w->nconns--;
    bufferevent_free(c->bev);
    free(c);
}

static void conn_note(pb_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void conn_note(pb_conn *c, const char *fmt, ...)
{
    char buf[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (c->s) {
        c->s->broken = true;
        vd_pb_msg(c->w->msgs, "session %zu (%s): %s", c->num, c->s->what, buf);
    } else {
        vd_pb_msg(c->w->msgs, "%s", buf);
    }
}

/* Sends r; returns false when the connection was freed. */
static bool conn_send(pb_conn *c, const vd_pb_reply *r)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    for (size_t i = 0; i < r->nlines; i++) {
        evbuffer_add(out, r->lines[i], r->lens[i]);
        evbuffer_add(out, "\r\n", 2);
    }
    if (r->then == VD_PB_HANG) c->hung = true;
    if (r->then != VD_PB_CLOSE) return true;
    c->closing = true;
    bufferevent_disable(c->bev, EV_READ);
    if (evbuffer_get_length(out) == 0) {
        conn_free(c);
        return false;
    }
    return true; /* on_write closes it once the lines are out */
}

static bool conn_send_text(pb_conn *c, const char *line, vd_pb_then then)
{
    char *l = (char *)line;
    size_t len = strlen(line);
    vd_pb_reply r = {.lines = &l, .lens = &len, .nlines = 1, .then = then};
    return conn_send(c, &r);
}

static bool script_ended(pb_conn *c, const char *line, size_t len)
{
    char q[200];
    vd_pb_quote(q, sizeof q, line, len, 120);
    conn_note(c, "the client sent %s after the script ended", q);
    return conn_send_text(c, "421 4.3.0 playback script ended", VD_PB_CLOSE);
}

/* The reply an inline session gives a verb it has no entry for. */
static const char *inline_default(const char *verb)
{
    if (!strcmp(verb, "EHLO") || !strcmp(verb, "HELO")) return "250 playback.invalid";
    if (!strcmp(verb, "MAIL")) return "250 2.1.0 Ok";
    if (!strcmp(verb, "RSET") || !strcmp(verb, "NOOP")) return "250 2.0.0 Ok";
    if (!strcmp(verb, "QUIT")) return "221 2.0.0 Bye";
    return NULL;
}

/* One command from the client; returns false when the connection was freed. */
static bool conn_command(pb_conn *c, const char *line, size_t len)
{
    char verb[16], q[200];
    verb_of(line, len, verb);
    bool quit = !strcmp(verb, "QUIT");
    vd_pb_session *s = c->s;
    if (!s->inline_) {
        if (s->next_step >= s->script.nsteps) {
            /* QUIT is the client's polite close, sent when its pool lets the session go:
             * a capture that stopped before it still accepts it. */
            if (quit) return conn_send_text(c, "221 2.0.0 Bye", VD_PB_CLOSE);
            return script_ended(c, line, len);
        }
        const vd_pb_step *st = &s->script.steps[s->next_step];
        if (strcmp(st->verb, verb) != 0) {
            char want[200];
            vd_pb_quote(q, sizeof q, line, len, 120);
            vd_pb_quote(want, sizeof want, st->cmd, strlen(st->cmd), 120);
            conn_note(c, "line %d expects %s, the client sent %s", st->lineno, want, q);
            return conn_send_text(c, "421 4.3.0 playback: not the command of the script",
                                  VD_PB_CLOSE);
        }
        s->next_step++;
        if (quit && st->reply.then == VD_PB_GO_ON) {
            vd_pb_reply r = st->reply;
            r.then = VD_PB_CLOSE;
            return conn_send(c, &r);
        }
        return conn_send(c, &st->reply);
    }
    for (size_t i = 0; i < s->nverbs; i++) {
        vd_pb_verb *v = &s->verbs[i];
        if (strcmp(v->verb, verb) != 0) continue;
        if (v->every_time) return conn_send(c, &v->replies[0]);
        if (v->used < v->n) return conn_send(c, &v->replies[v->used++]);
        if (quit) return conn_send_text(c, "221 2.0.0 Bye", VD_PB_CLOSE);
        return script_ended(c, line, len);
    }
    const char *def = inline_default(verb);
    if (def) return conn_send_text(c, def, quit ? VD_PB_CLOSE : VD_PB_GO_ON);
    vd_pb_quote(q, sizeof q, line, len, 120);
    conn_note(c, "the client sent %s, which the session has no reply for", q);
    return conn_send_text(c, "421 4.3.0 playback: no reply for this command", VD_PB_CLOSE);
}

static void on_conn_read(struct bufferevent *bev, void *arg)
{
    pb_conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    for (;;) {
        size_t n;
        char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF);
        if (!line) break;
        if (c->closing || c->hung) {
            free(line);
            continue;
        }
        bool alive = n <= CMD_MAX ? conn_command(c, line, n) : true;
        if (n > CMD_MAX) {
            conn_note(c, "a command line longer than %d bytes", CMD_MAX);
            alive = conn_send_text(c, "500 5.5.2 line too long", VD_PB_CLOSE);
        }
        free(line);
        if (!alive) return;
    }
    if (evbuffer_get_length(in) > CMD_MAX) {
        conn_note(c, "a command line longer than %d bytes", CMD_MAX);
        evbuffer_drain(in, evbuffer_get_length(in));
        conn_send_text(c, "500 5.5.2 line too long", VD_PB_CLOSE);
    }
}

static void on_conn_write(struct bufferevent *bev, void *arg)
{
    pb_conn *c = arg;
    if (c->closing && evbuffer_get_length(bufferevent_get_output(bev)) == 0) conn_free(c);
}

static void on_conn_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) conn_free(arg);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
    (void)l;
    (void)sa;
    (void)salen;
    pb_listener *pl = arg;
    vd_pb_world *w = pl->w;
    pb_conn *c = calloc(1, sizeof *c);
    struct bufferevent *bev = c ? bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE) : NULL;
    if (!bev) {
        free(c);
        evutil_closesocket(fd);
        vd_pb_msg(w->msgs, "playback: out of memory");
        return;
    }
    c->w = w;
    c->bev = bev;
    c->host = pl->host;
    c->next = w->conns;
    if (w->conns) w->conns->prev = c;
    w->conns = c;
    w->nconns++;
    w->accepted++;
    for (size_t i = 0; i < w->t->nsessions; i++) {
        vd_pb_session *s = &w->t->sessions[i];
        if (s->opened || (s->host && strcmp(s->host, pl->host->name) != 0)) continue;
        s->opened = true;
        c->s = s;
        c->num = i + 1;
        break;
    }
    bufferevent_setcb(bev, on_conn_read, on_conn_write, on_conn_event, c);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    if (!c->s) {
        vd_pb_msg(w->msgs, "connection %zu (to %s): no session left for it (the test gives %zu)",
                  w->accepted, pl->host->name, w->t->nsessions);
        conn_send_text(c, "421 4.3.0 playback: no session left", VD_PB_CLOSE);
        return;
    }
    conn_send(c, c->s->inline_ ? &c->s->banner : &c->s->script.banner);
}

static void listeners_free(vd_pb_world *w)
{
    for (size_t i = 0; i < w->nlisteners; i++)
        if (w->listeners[i].l) evconnlistener_free(w->listeners[i].l);
    free(w->listeners);
    w->listeners = NULL;
    w->nlisteners = 0;
}

/* One listener per name with an A answer, all on one port: the engine has one smtp_port. */
static int smtp_start(vd_pb_world *w, char *err, size_t errlen)
{
    size_t hosts = 0;
    for (size_t i = 0; i < w->t->nnames; i++)
        hosts += w->t->names[i].a;
    w->smtp_port = 25; /* never used when nothing has an address */
    if (!hosts) return 0;
    for (int attempt = 0; attempt < 20; attempt++) {
        if (!(w->listeners = calloc(hosts, sizeof *w->listeners))) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        int port = 0;
        bool retry = false;
        for (size_t i = 0; i < w->t->nnames && !retry; i++) {
            const vd_pb_name *nm = &w->t->names[i];
            if (!nm->a) continue;
            pb_listener *pl = &w->listeners[w->nlisteners++];
            pl->w = w;
            pl->host = nm;
            struct sockaddr_in sa = {.sin_family = AF_INET,
                                     .sin_port = htons((uint16_t)port),
                                     .sin_addr.s_addr = htonl(nm->ip)};
            pl->l = evconnlistener_new_bind(w->base, on_accept, pl,
                                            LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
                                                LEV_OPT_CLOSE_ON_EXEC,
                                            16, (struct sockaddr *)&sa, sizeof sa);
            if (!pl->l) {
                if (port && errno == EADDRINUSE) {
                    retry = true;
                    break;
                }
                char ip[INET_ADDRSTRLEN];
                inet_ntop(AF_INET, &sa.sin_addr, ip, sizeof ip);
                snprintf(err, errlen, "SMTP playback on %s: %s", ip, strerror(errno));
                return -1;
            }
            if (!port) {
                socklen_t sl = sizeof sa;
                getsockname(evconnlistener_get_fd(pl->l), (struct sockaddr *)&sa, &sl);
                port = ntohs(sa.sin_port);
            }
        }
        if (!retry) {
            w->smtp_port = port;
            return 0;
        }
        listeners_free(w);
    }
    snprintf(err, errlen, "SMTP playback: no port free on every loopback address");
    return -1;
}

/* ---- HTTP playback ---- */

/* Does body match the Lua pattern? A Lua state of its own with the string library only. */
static bool body_matches(const char *body, size_t len, const char *pattern, char *why,
                         size_t whylen)
{
    lua_State *L = luaL_newstate();
    if (!L) return snprintf(why, whylen, "out of memory"), false;
    luaL_requiref(L, "string", luaopen_string, 0);
    lua_getfield(L, -1, "find");
    lua_pushlstring(L, body, len);
    lua_pushstring(L, pattern);
    bool ok = false;
    if (lua_pcall(L, 2, 1, 0) != LUA_OK)
        snprintf(why, whylen, "body_matches: %s", lua_tostring(L, -1));
    else if (!(ok = !lua_isnil(L, -1)))
        snprintf(why, whylen, "does not match %s", pattern);
    lua_close(L);
    return ok;
}

static const char *method_name(enum evhttp_cmd_type c)
{
    static const struct {
        enum evhttp_cmd_type c;
        const char *n;
    } m[] = {{EVHTTP_REQ_GET, "GET"},        {EVHTTP_REQ_POST, "POST"},
             {EVHTTP_REQ_HEAD, "HEAD"},      {EVHTTP_REQ_PUT, "PUT"},
             {EVHTTP_REQ_DELETE, "DELETE"},  {EVHTTP_REQ_OPTIONS, "OPTIONS"},
             {EVHTTP_REQ_PATCH, "PATCH"},    {EVHTTP_REQ_TRACE, "TRACE"},
             {EVHTTP_REQ_CONNECT, "CONNECT"}};
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        if (m[i].c == c) return m[i].n;
    return "?";
}

/* Why request er is not entry h ("" when it is). */
static void http_mismatch(struct evhttp_request *er, const vd_pb_http *h, const char *method,
                          char *why, size_t whylen)
{
    why[0] = '\0';
    const char *uri = evhttp_request_get_uri(er);
    const char *q = strchr(uri, '?');
    size_t plen = q && !strchr(h->path ? h->path : "", '?') ? (size_t)(q - uri) : strlen(uri);
    if (h->method && strcmp(h->method, method) != 0) {
        snprintf(why, whylen, "method %s, expected %s", method, h->method);
    } else if (h->path && (strlen(h->path) != plen || strncmp(h->path, uri, plen) != 0)) {
        snprintf(why, whylen, "path %.*s, expected %s", (int)(plen > 200 ? 200 : plen), uri,
                 h->path);
    } else {
        for (size_t k = 0; k < h->nheaders_match && !why[0]; k++) {
            const vd_pb_header *m = &h->headers_match[k];
            const char *v = evhttp_find_header(evhttp_request_get_input_headers(er), m->name);
            char sub[400];
            if (!v)
                snprintf(why, whylen, "no %s header", m->name);
            else if (!body_matches(v, strlen(v), m->value, sub, sizeof sub))
                snprintf(why, whylen, "header %s: %s", m->name, sub);
        }
    }
    if (!why[0] && h->body_matches) {
        struct evbuffer *b = evhttp_request_get_input_buffer(er);
        size_t len = evbuffer_get_length(b);
        const char *body = (const char *)evbuffer_pullup(b, -1);
        char sub[400];
        if (!body_matches(body ? body : "", body ? len : 0, h->body_matches, sub, sizeof sub))
            snprintf(why, whylen, "body %s", sub);
    }
}

static void on_http(struct evhttp_request *er, void *arg)
{
    vd_pb_world *w = arg;
    size_t n = ++w->http_requests;
    const char *method = method_name(evhttp_request_get_command(er));
    char q[240];
    const char *uri = evhttp_request_get_uri(er);
    vd_pb_quote(q, sizeof q, uri, strlen(uri), 200);
    struct evbuffer *out = evbuffer_new();
    if (!out) {
        evhttp_send_error(er, 500, "playback: out of memory");
        return;
    }
    if (w->http_next >= w->t->nhttp) {
        vd_pb_msg(w->msgs,
                  "http request %zu (%s %s): no http entry left for it (the test gives %zu)", n,
                  method, q, w->t->nhttp);
        evbuffer_add_printf(out, "playback: no http entry left\n");
        evhttp_send_reply(er, 500, "Playback", out);
        evbuffer_free(out);
        return;
    }
    size_t i = w->http_next++;
    const vd_pb_http *h = &w->t->http[i];
    char why[512];
    http_mismatch(er, h, method, why, sizeof why);
    if (why[0]) {
        vd_pb_msg(w->msgs, "http request %zu (%s %s): not http[%zu]: %s", n, method, q, i + 1, why);
        evbuffer_add_printf(out, "playback: not the request of the test\n");
        evhttp_send_reply(er, 500, "Playback", out);
        evbuffer_free(out);
        return;
    }
    struct evkeyvalq *oh = evhttp_request_get_output_headers(er);
    for (size_t k = 0; k < h->nheaders; k++)
        evhttp_add_header(oh, h->headers[k].name, h->headers[k].value);
    if (h->body_len) evbuffer_add(out, h->body, h->body_len);
    evhttp_send_reply(er, h->status, "Playback", out);
    evbuffer_free(out);
}

static int http_start(vd_pb_world *w, char *err, size_t errlen)
{
    if (!(w->http = evhttp_new(w->base))) return snprintf(err, errlen, "out of memory"), -1;
    evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_max_body_size(w->http, VD_PB_MAX_BODY);
    evhttp_set_gencb(w->http, on_http, w);
    struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(w->http, "127.0.0.1", 0);
    if (!bs) {
        snprintf(err, errlen, "HTTP playback on 127.0.0.1: %s", strerror(errno));
        return -1;
    }
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sa, &sl) != 0) {
        snprintf(err, errlen, "HTTP playback: %s", strerror(errno));
        return -1;
    }
    w->http_port = ntohs(sa.sin_port);
    return 0;
}

int vd_pb_world_http_port(const vd_pb_world *w)
{
    return w->http_port;
}

size_t vd_pb_world_http_requests(const vd_pb_world *w)
{
    return w->http_requests;
}

vd_pb_world *vd_pb_world_new(struct event_base *base, vd_pb_test *t, vd_pb_msgs *msgs, char *err,
                             size_t errlen)
{
    vd_pb_world *w = calloc(1, sizeof *w);
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    w->base = base;
    w->t = t;
    w->msgs = msgs;
    w->dns_fd = -1;
    for (size_t i = 0; i < t->nsessions; i++) {
        t->sessions[i].opened = t->sessions[i].broken = false;
        t->sessions[i].next_step = 0;
        for (size_t k = 0; k < t->sessions[i].nverbs; k++)
            t->sessions[i].verbs[k].used = 0;
    }
    if (dns_start(w, err, errlen) != 0 || smtp_start(w, err, errlen) != 0 ||
        http_start(w, err, errlen) != 0) {
        vd_pb_world_free(w);
        return NULL;
    }
    return w;
}

int vd_pb_world_dns_port(const vd_pb_world *w)
{
    return w->dns_port;
}

int vd_pb_world_smtp_port(const vd_pb_world *w)
{
    return w->smtp_port;
}

size_t vd_pb_world_connections(const vd_pb_world *w)
{
    return w->nconns;
}

/* Is everything after step i of s a QUIT (which the client sends when it pleases)? */
static bool only_quit_left(const vd_pb_session *s)
{
    for (size_t i = s->next_step; i < s->script.nsteps; i++)
        if (strcmp(s->script.steps[i].verb, "QUIT") != 0) return false;
    return true;
}

void vd_pb_world_finish(vd_pb_world *w)
{
    while (w->conns)
        conn_free(w->conns);
    listeners_free(w);
    if (w->http) evhttp_free(w->http);
    w->http = NULL;
    for (size_t i = w->http_next; i < w->t->nhttp; i++) {
        const vd_pb_http *h = &w->t->http[i];
        vd_pb_msg(w->msgs, "http[%zu] (%s %s) was never requested (%zu request%s made)", i + 1,
                  h->method ? h->method : "any method", h->path ? h->path : "any path",
                  w->http_requests, w->http_requests == 1 ? "" : "s");
    }
    if (w->dns_ev) event_free(w->dns_ev);
    w->dns_ev = NULL;
    for (size_t i = 0; i < w->t->nsessions; i++) {
        const vd_pb_session *s = &w->t->sessions[i];
        if (!s->opened) {
            vd_pb_msg(w->msgs, "session %zu (%s) was never connected (%zu connection%s made)",
                      i + 1, s->what, w->accepted, w->accepted == 1 ? "" : "s");
            continue;
        }
        if (s->broken) continue;
        if (!s->inline_ && !only_quit_left(s)) {
            const vd_pb_step *st = &s->script.steps[s->next_step];
            char q[200];
            vd_pb_quote(q, sizeof q, st->cmd, strlen(st->cmd), 120);
            vd_pb_msg(w->msgs, "session %zu (%s): not played to the end: line %d expects %s", i + 1,
                      s->what, st->lineno, q);
        }
        for (size_t k = 0; s->inline_ && k < s->nverbs; k++) {
            const vd_pb_verb *v = &s->verbs[k];
            if (!v->every_time && v->used < v->n)
                vd_pb_msg(w->msgs, "session %zu (inline): %zu of %zu %s replies used", i + 1,
                          v->used, v->n, v->verb);
        }
    }
}

void vd_pb_world_free(vd_pb_world *w)
{
    if (!w) return;
    while (w->conns)
        conn_free(w->conns);
    listeners_free(w);
    if (w->http) evhttp_free(w->http);
    if (w->dns_ev) event_free(w->dns_ev);
    if (w->dns_fd >= 0) evutil_closesocket(w->dns_fd);
    free(w);
}
