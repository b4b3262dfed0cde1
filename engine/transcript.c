/* transcript.c — SMTP session transcripts (transcript.h, format in docs/transcripts.md).
 *
 * Owns: the format (header, records, trailer, escaping, AUTH redaction, the size bound), the
 * reader (a transcript back into a script, with its bounds; hand-written replies), the
 * files (names with a per-process sequence number, O_EXCL creation, stdio buffering, one
 * flush at the end) and the sink (the directory, the log callback, the switch that turns
 * transcripts off after the first write error, the list of open files it then closes).
 * Does not own: SMTP (smtp.c says through its vd_smtp_trace what was sent and received and
 * how the connection ended; trace_* below turn that into transcript calls),
 * which host a session goes to (pool.c), the option (options.c), when the sink is made or
 * freed (engine.c). No Lua.
 *
 * Lifetime: every open transcript holds its sink; vd_transcript_sink_free only marks the
 * sink unowned (and forgets the log callback), and the last vd_transcript_end frees it, so
 * sessions that outlive the engine (a QUIT in flight) still end their files. */
#include "transcript.h"
#include "log.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Characters of the MX host name kept in a file name (the name is also in the header). */
#define NAME_HOST_MAX 200
/* Tries to find an unused file name (another process may write the same directory). */
#define NAME_TRIES 100
/* Longest escaped line kept on the stack; longer ones are escaped into the heap. */
#define STACK_LINE 8192

struct vd_transcript_sink {
    vd_smtp_trace trace; /* arg = this sink */
    char *dir;
    vd_log_cb log;
    void *log_arg;
    bool off;            /* a write failed: no more transcripts */
    bool owned;          /* vd_transcript_sink_free not called yet */
    vd_transcript *open; /* open transcripts, to close them when switched off */
};

struct vd_transcript {
    vd_transcript_sink *k;
    vd_transcript *next, *prev; /* in k->open */
    FILE *fp;                   /* NULL once the sink is off */
    char *path;
    struct timespec t0; /* CLOCK_MONOTONIC at open */
    size_t bytes;       /* written so far */
    bool truncated;     /* VD_TRANSCRIPT_MAX_BYTES reached */
    bool auth;          /* in a SASL exchange: the client's lines are secret */
};

/* Per process, so that two sinks (two engines) on one directory never pick the same name. */
static atomic_ulong sequence;

/* ---- escaping ---------------------------------------------------------------------- */

/* How many bytes at in[i] are written as they are: 1 for printable ASCII but backslash,
 * 2-4 for one valid UTF-8 sequence that is not a C1 control (U+0080-U+009F); 0 when in[i]
 * must be escaped. Valid means RFC 3629: no overlong forms, no surrogates, nothing above
 * U+10FFFF. */
static size_t literal_len(const unsigned char *in, size_t len, size_t i)
{
    unsigned char c = in[i];
    if (c >= 0x20 && c <= 0x7e) return c == '\\' ? 0 : 1;
    size_t n;
    unsigned char lo = 0x80, hi = 0xbf; /* bounds of the second byte */
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        if (c == 0xc2) lo = 0xa0; /* C2 80..C2 9F are the C1 controls */
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0) lo = 0xa0; /* overlong */
        if (c == 0xed) hi = 0x9f; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0) lo = 0x90; /* overlong */
        if (c == 0xf4) hi = 0x8f; /* above U+10FFFF */
    } else {
        return 0;
    }
    if (len - i < n || in[i + 1] < lo || in[i + 1] > hi) return 0;
    for (size_t k = 2; k < n; k++)
        if (in[i + k] < 0x80 || in[i + k] > 0xbf) return 0;
    return n;
}

size_t vd_transcript_escape(char *out, size_t outlen, const char *in, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)in;
    size_t need = 0;
#define EMIT(ch)                                                                                   \
    do {                                                                                           \
        if (need + 1 < outlen) out[need] = (ch);                                                   \
        need++;                                                                                    \
    } while (0)
    for (size_t i = 0; i < len;) {
        size_t n = literal_len(u, len, i);
        if (n > 0) {
            for (size_t k = 0; k < n; k++)
                EMIT(in[i + k]);
            i += n;
        } else if (u[i] == '\\') {
            EMIT('\\');
            EMIT('\\');
            i++;
        } else {
            EMIT('\\');
            EMIT('x');
            EMIT(hex[u[i] >> 4]);
            EMIT(hex[u[i] & 0xf]);
            i++;
        }
    }
#undef EMIT
    if (outlen > 0) out[need < outlen ? need : outlen - 1] = '\0';
    return need;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

long vd_transcript_unescape(char *s, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '\\') {
            s[o++] = s[i];
            continue;
        }
        if (i + 1 < len && s[i + 1] == '\\') {
            s[o++] = '\\';
            i++;
        } else if (i + 3 < len && s[i + 1] == 'x' && hexval(s[i + 2]) >= 0 &&
                   hexval(s[i + 3]) >= 0) {
            s[o++] = (char)(hexval(s[i + 2]) * 16 + hexval(s[i + 3]));
            i += 3;
        } else {
            return -1;
        }
    }
    return (long)o;
}

/* ---- the sink ---------------------------------------------------------------------- */

static void *trace_start(void *arg, const char *mx, const struct sockaddr *addr, socklen_t addrlen);
static void trace_line(void *h, bool sent, const char *line, size_t len);
static void trace_tls(void *h, const char *protocol, const char *cipher, bool verified);
static void trace_end(void *h, vd_smtp_end how, vd_smtp_err err);

vd_transcript_sink *vd_transcript_sink_new(const char *dir, vd_log_cb log, void *log_arg, char *err,
                                           size_t errlen)
{
    struct stat st;
    if (!dir || !*dir) {
        snprintf(err, errlen, "--transcript: no directory given");
        return NULL;
    }
    if (stat(dir, &st) != 0) {
        snprintf(err, errlen, "--transcript %s: %s", dir, strerror(errno));
        return NULL;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "--transcript %s: not a directory", dir);
        return NULL;
    }
    if (access(dir, W_OK | X_OK) != 0) {
        snprintf(err, errlen, "--transcript %s: cannot write there: %s", dir, strerror(errno));
        return NULL;
    }
    vd_transcript_sink *k = calloc(1, sizeof *k);
    if (!k || !(k->dir = strdup(dir))) {
        free(k);
        snprintf(err, errlen, "--transcript %s: out of memory", dir);
        return NULL;
    }
    k->log = log;
    k->log_arg = log_arg;
    k->owned = true;
    k->trace = (vd_smtp_trace){
        .start = trace_start, .line = trace_line, .tls = trace_tls, .end = trace_end, .arg = k};
    return k;
}

/* The first failure: say so once, stop writing, and give back every open file (a
 * transcript must not hold descriptors the sessions themselves may need). */
static void sink_off(vd_transcript_sink *k, const char *what, const char *path, int e)
{
    if (k->off) return;
    k->off = true;
    vd_log_to(k->log, k->log_arg, VD_LOG_WARNING,
              "transcripts: cannot %s %s: %s; no more transcripts are written", what, path,
              strerror(e));
    for (vd_transcript *t = k->open; t; t = t->next)
        if (t->fp) {
            fclose(t->fp);
            t->fp = NULL;
        }
}

static void sink_release(vd_transcript_sink *k)
{
    if (k->owned || k->open) return;
    free(k->dir);
    free(k);
}

void vd_transcript_sink_free(vd_transcript_sink *k)
{
    if (!k) return;
    /* What the sessions still closing have said so far is on disk even if the process ends
     * before their QUIT is answered (their files then lack the "# end:" line). */
    for (vd_transcript *t = k->open; t && !k->off; t = t->next)
        if (t->fp && fflush(t->fp) != 0) sink_off(k, "write", t->path, errno ? errno : EIO);
    k->owned = false;
    k->log = NULL;
    k->log_arg = NULL;
    sink_release(k);
}

bool vd_transcript_sink_on(const vd_transcript_sink *k)
{
    return k && !k->off;
}

const char *vd_transcript_sink_dir(const vd_transcript_sink *k)
{
    return k ? k->dir : NULL;
}

const vd_smtp_trace *vd_transcript_sink_trace(vd_transcript_sink *k)
{
    return k ? &k->trace : NULL;
}

/* ---- one transcript ---------------------------------------------------------------- */

static double elapsed(const vd_transcript *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t->t0.tv_sec) + (double)(now.tv_nsec - t->t0.tv_nsec) / 1e9;
}

/* Writes n bytes; the first error switches the sink off. */
static void put(vd_transcript *t, const char *s, size_t n)
{
    if (!t->fp) return;
    if (fwrite(s, 1, n, t->fp) != n) {
        sink_off(t->k, "write", t->path, errno ? errno : EIO);
        return;
    }
    t->bytes += n;
}

/* One line of the file: prefix, then text escaped, then LF. Records (bounded) stop at
 * VD_TRANSCRIPT_MAX_BYTES with "# truncated"; the trailer (bounded = false) always goes. */
static void put_line(vd_transcript *t, const char *prefix, const char *text, size_t len,
                     bool bounded)
{
    if (!t->fp || (bounded && t->truncated)) return;
    size_t plen = strlen(prefix);
    size_t elen = vd_transcript_escape(NULL, 0, text, len);
    if (bounded && t->bytes + plen + elen + 1 > VD_TRANSCRIPT_MAX_BYTES) {
        t->truncated = true;
        put(t, "# truncated\n", strlen("# truncated\n"));
        return;
    }
    char stack[STACK_LINE];
    char *buf = elen < sizeof stack ? stack : malloc(elen + 1);
    if (!buf) {
        sink_off(t->k, "write", t->path, ENOMEM);
        return;
    }
    vd_transcript_escape(buf, elen + 1, text, len);
    put(t, prefix, plen);
    put(t, buf, elen);
    put(t, "\n", 1);
    if (buf != stack) free(buf);
}

/* "   0.031 > " */
static void record(vd_transcript *t, char dir, const char *text, size_t len)
{
    char prefix[48];
    snprintf(prefix, sizeof prefix, "%8.3f %c ", elapsed(t), dir);
    put_line(t, prefix, text, len, true);
}

/* A safe file-name part for the host: [A-Za-z0-9._-], anything else as '_'. */
static void name_part(char *out, size_t outlen, const char *host)
{
    size_t n = 0;
    for (const char *c = host; *c && n + 1 < outlen && n < NAME_HOST_MAX; c++) {
        bool keep = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                    (*c >= '0' && *c <= '9') || *c == '.' || *c == '-' || *c == '_';
        out[n++] = keep ? *c : '_';
    }
    out[n] = '\0';
    if (n == 0) snprintf(out, outlen, "unknown");
}

/* "127.0.0.10" and "127.0.0.10:25", "::1" and "[::1]:25"; "-" for anything else. */
static void addr_text(const struct sockaddr *addr, socklen_t addrlen, char *ip, size_t iplen,
                      char *ipport, size_t iplen2)
{
    snprintf(ip, iplen, "-");
    snprintf(ipport, iplen2, "-");
    if (!addr) return;
    if (addr->sa_family == AF_INET && addrlen >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)addr;
        if (!inet_ntop(AF_INET, &a->sin_addr, ip, (socklen_t)iplen)) return;
        snprintf(ipport, iplen2, "%s:%u", ip, (unsigned)ntohs(a->sin_port));
    } else if (addr->sa_family == AF_INET6 && addrlen >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)addr;
        if (!inet_ntop(AF_INET6, &a->sin6_addr, ip, (socklen_t)iplen)) return;
        snprintf(ipport, iplen2, "[%s]:%u", ip, (unsigned)ntohs(a->sin6_port));
    }
}

/* Creates a new file in k->dir named after the time and host; NULL (errno set) on failure. */
static FILE *create_file(vd_transcript_sink *k, const struct tm *tm, int ms, const char *host,
                         char **path)
{
    char part[NAME_HOST_MAX + 1];
    name_part(part, sizeof part, host);
    size_t cap = strlen(k->dir) + NAME_HOST_MAX + 64;
    char *p = malloc(cap);
    if (!p) {
        errno = ENOMEM;
        return NULL;
    }
    for (int i = 0; i < NAME_TRIES; i++) {
        unsigned long seq = atomic_fetch_add(&sequence, 1) + 1;
        snprintf(p, cap, "%s/%04d%02d%02dT%02d%02d%02d.%03dZ-%06lu-%s.txt", k->dir,
                 tm->tm_year + 1900, tm->tm_mon + 1, tm->tm_mday, tm->tm_hour, tm->tm_min,
                 tm->tm_sec, ms, seq, part);
        /* O_EXCL: never write into a file that is there already (nor through a symlink) */
        int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0640);
        if (fd < 0) {
            if (errno == EEXIST) continue;
            break;
        }
        FILE *fp = fdopen(fd, "w");
        if (!fp) {
            int e = errno;
            close(fd);
            unlink(p);
            errno = e;
            break;
        }
        *path = p;
        return fp;
    }
    int e = errno;
    free(p);
    errno = e;
    return NULL;
}

vd_transcript *vd_transcript_open(vd_transcript_sink *k, const char *mx,
                                  const struct sockaddr *addr, socklen_t addrlen)
{
    if (!k || k->off) return NULL;
    vd_transcript *t = calloc(1, sizeof *t);
    if (!t) {
        sink_off(k, "start a transcript in", k->dir, ENOMEM);
        return NULL;
    }
    clock_gettime(CLOCK_MONOTONIC, &t->t0);
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    struct tm tm;
    gmtime_r(&wall.tv_sec, &tm);
    int ms = (int)(wall.tv_nsec / 1000000);

    char ip[INET6_ADDRSTRLEN], ipport[INET6_ADDRSTRLEN + 16];
    addr_text(addr, addrlen, ip, sizeof ip, ipport, sizeof ipport);
    const char *host = mx && *mx ? mx : ip;

    t->fp = create_file(k, &tm, ms, host, &t->path);
    if (!t->fp) {
        sink_off(k, "create a transcript in", k->dir, errno ? errno : EIO);
        free(t);
        return NULL;
    }
    t->k = k;
    t->next = k->open;
    if (k->open) k->open->prev = t;
    k->open = t;

    put_line(t, "# validora transcript 1", "", 0, true);
    char line[INET6_ADDRSTRLEN + 32];
    snprintf(line, sizeof line, " %s", ipport);
    /* the host escaped like any text: a name from DNS cannot break the line */
    size_t hlen = strlen(host) > 255 ? 255 : strlen(host);
    char *h = malloc(hlen + strlen(line) + 1);
    if (h) {
        memcpy(h, host, hlen);
        strcpy(h + hlen, line);
        put_line(t, "# mx: ", h, strlen(h), true);
        free(h);
    } else {
        sink_off(k, "write", t->path, ENOMEM);
    }
    snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
    put_line(t, "# started: ", line, strlen(line), true);
    return t;
}

/* Is line the command verb (case-insensitive), alone or followed by a space? */
static bool is_verb(const char *line, size_t len, const char *verb)
{
    size_t n = strlen(verb);
    return len >= n && strncasecmp(line, verb, n) == 0 && (len == n || line[n] == ' ');
}

void vd_transcript_sent(vd_transcript *t, const char *line, size_t len)
{
    if (!t || !line) return;
    if (t->auth) {
        /* a SASL response (RFC 4954 §4): credentials, whatever they look like */
        record(t, '>', "***", 3);
        return;
    }
    if (is_verb(line, len, "AUTH")) {
        /* "AUTH mechanism [initial-response]": the mechanism stays, the rest is secret */
        size_t m = 4;
        while (m < len && line[m] == ' ')
            m++;
        while (m < len && line[m] != ' ')
            m++;
        size_t r = m;
        while (r < len && line[r] == ' ')
            r++;
        char buf[64 + 8];
        size_t keep = m < 64 ? m : 64;
        memcpy(buf, line, keep);
        if (r < len) {
            memcpy(buf + keep, " ***", 4);
            keep += 4;
        }
        t->auth = true;
        record(t, '>', buf, keep);
        return;
    }
    record(t, '>', line, len);
}

void vd_transcript_received(vd_transcript *t, const char *line, size_t len)
{
    if (!t || !line) return;
    if (t->auth && !(len >= 3 && memcmp(line, "334", 3) == 0))
        t->auth = false; /* the exchange is over: success, failure or anything else */
    record(t, '<', line, len);
}

void vd_transcript_tls(vd_transcript *t, const char *protocol, const char *cipher, bool verified)
{
    if (!t) return;
    char line[256];
    snprintf(line, sizeof line, "%s %s verified=%s", protocol && *protocol ? protocol : "-",
             cipher && *cipher ? cipher : "-", verified ? "yes" : "no");
    put_line(t, "# tls: ", line, strlen(line), true);
}

void vd_transcript_end(vd_transcript *t, const char *reason)
{
    if (!t) return;
    vd_transcript_sink *k = t->k;
    if (t->fp) {
        char prefix[48];
        snprintf(prefix, sizeof prefix, "# end: %.3f ", elapsed(t));
        const char *why = reason && *reason ? reason : VD_TRANSCRIPT_CLOSED_BY_CLIENT;
        put_line(t, prefix, why, strlen(why), false);
    }
    if (t->fp) {
        /* the one flush of the session; a full disk shows here at the latest */
        int bad = fflush(t->fp) != 0 || ferror(t->fp);
        int e = errno;
        if (fclose(t->fp) != 0 && !bad) {
            bad = 1;
            e = errno;
        }
        t->fp = NULL;
        if (bad) sink_off(k, "write", t->path, e ? e : EIO);
    }
    if (t->prev)
        t->prev->next = t->next;
    else
        k->open = t->next;
    if (t->next) t->next->prev = t->prev;
    free(t->path);
    free(t);
    sink_release(k);
}

const char *vd_transcript_path(const vd_transcript *t)
{
    return t ? t->path : NULL;
}

/* ---- the SMTP session's trace ------------------------------------------------------ */

static void *trace_start(void *arg, const char *mx, const struct sockaddr *addr, socklen_t addrlen)
{
    return vd_transcript_open(arg, mx, addr, addrlen);
}

static void trace_line(void *h, bool sent, const char *line, size_t len)
{
    if (sent)
        vd_transcript_sent(h, line, len);
    else
        vd_transcript_received(h, line, len);
}

static void trace_tls(void *h, const char *protocol, const char *cipher, bool verified)
{
    vd_transcript_tls(h, protocol, cipher, verified);
}

static void trace_end(void *h, vd_smtp_end how, vd_smtp_err err)
{
    vd_transcript_end(h, how == VD_SMTP_END_CLIENT   ? VD_TRANSCRIPT_CLOSED_BY_CLIENT
                         : how == VD_SMTP_END_SERVER ? VD_TRANSCRIPT_CLOSED_BY_SERVER
                                                     : vd_smtp_err_name(err));
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

/* ---- reading: replies and scripts (for playback) ---------------------------------- */

static int reply_add(vd_transcript_reply *r, const char *s, size_t len)
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

void vd_transcript_reply_clear(vd_transcript_reply *r)
{
    for (size_t i = 0; i < r->nlines; i++)
        free(r->lines[i]);
    free(r->lines);
    free(r->lens);
    *r = (vd_transcript_reply){0};
}

/* Drops line i of r. */
static void reply_drop(vd_transcript_reply *r, size_t i)
{
    free(r->lines[i]);
    memmove(r->lines + i, r->lines + i + 1, (r->nlines - i - 1) * sizeof *r->lines);
    memmove(r->lens + i, r->lens + i + 1, (r->nlines - i - 1) * sizeof *r->lens);
    r->nlines--;
}

int vd_transcript_reply_parse(const char *text, size_t len, vd_transcript_reply *r, char *err,
                              size_t errlen)
{
    *r = (vd_transcript_reply){0};
    size_t at = 0;
    while (at < len) {
        const char *p = text + at;
        const char *nl = memchr(p, '\n', len - at);
        size_t n = nl ? (size_t)(nl - p) : len - at;
        at += n + (nl ? 1 : 0);
        if (n && p[n - 1] == '\r') n--;
        bool last = at >= len;
        if (last && n == 5 && !memcmp(p, "close", 5)) {
            r->then = VD_TRANSCRIPT_CLOSE;
            break;
        }
        if (last && n == 7 && !memcmp(p, "timeout", 7)) {
            r->then = VD_TRANSCRIPT_HANG;
            break;
        }
        if (n > VD_TRANSCRIPT_MAX_LINE || r->nlines >= VD_TRANSCRIPT_MAX_LINES) {
            snprintf(err, errlen, "reply too long");
            vd_transcript_reply_clear(r);
            return -1;
        }
        if (reply_add(r, p, n) != 0) {
            snprintf(err, errlen, "out of memory");
            vd_transcript_reply_clear(r);
            return -1;
        }
    }
    if (!r->nlines && r->then == VD_TRANSCRIPT_GO_ON) {
        snprintf(err, errlen, "an empty reply (give reply lines, \"close\" or \"timeout\")");
        return -1;
    }
    return 0;
}

void vd_transcript_script_clear(vd_transcript_script *s)
{
    vd_transcript_reply_clear(&s->banner);
    for (size_t i = 0; i < s->nsteps; i++) {
        free(s->steps[i].cmd);
        vd_transcript_reply_clear(&s->steps[i].reply);
    }
    free(s->steps);
    *s = (vd_transcript_script){0};
}

void vd_transcript_verb(const char *line, size_t len, char verb[16])
{
    size_t n = 0;
    while (n < len && n < 15 && line[n] != ' ' && line[n] != ':' && line[n] != '\t') {
        verb[n] = (char)toupper((unsigned char)line[n]);
        n++;
    }
    verb[n] = '\0';
}

static bool is_starttls_keyword(const char *l, size_t n)
{
    return n >= 12 && !memcmp(l, "250", 3) && (l[3] == '-' || l[3] == ' ') &&
           !strncasecmp(l + 4, "STARTTLS", 8) && (n == 12 || l[12] == ' ');
}

void vd_transcript_strip_starttls_keyword(vd_transcript_reply *r)
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

static void step_drop(vd_transcript_script *s, size_t i)
{
    free(s->steps[i].cmd);
    vd_transcript_reply_clear(&s->steps[i].reply);
    memmove(s->steps + i, s->steps + i + 1, (s->nsteps - i - 1) * sizeof *s->steps);
    s->nsteps--;
}

/* Playback has no certificate: STARTTLS goes, with the EHLO before it when it was accepted
 * (the client then said EHLO again in TLS, and that EHLO's reply is the one it went on with),
 * and the keyword goes from every EHLO reply. */
static void strip_starttls(vd_transcript_script *s)
{
    for (size_t i = 0; i < s->nsteps;) {
        if (strcmp(s->steps[i].verb, "STARTTLS") != 0) {
            i++;
            continue;
        }
        const vd_transcript_reply *r = &s->steps[i].reply;
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
        if (!strcmp(s->steps[i].verb, "EHLO"))
            vd_transcript_strip_starttls_keyword(&s->steps[i].reply);
}

#define PARSE_FAIL(...)                                                                            \
    do {                                                                                           \
        snprintf(err, errlen, __VA_ARGS__);                                                        \
        goto fail;                                                                                 \
    } while (0)

int vd_transcript_parse(const char *text, size_t len, vd_transcript_script *s, char *err,
                        size_t errlen)
{
    *s = (vd_transcript_script){0};
    char *buf = NULL;
    size_t at = 0, nlines = 0;
    int lineno = 0;
    bool ended = false;
    if (len > VD_TRANSCRIPT_READ_MAX) {
        snprintf(err, errlen, "larger than %u bytes", VD_TRANSCRIPT_READ_MAX);
        return -1;
    }
    while (at < len) {
        const char *p = text + at;
        const char *nl = memchr(p, '\n', len - at);
        size_t n = nl ? (size_t)(nl - p) : len - at;
        at += n + (nl ? 1 : 0);
        lineno++;
        if (n && p[n - 1] == '\r') n--;
        if (n > VD_TRANSCRIPT_MAX_LINE + 64)
            PARSE_FAIL("line %d: longer than %d bytes", lineno, VD_TRANSCRIPT_MAX_LINE);
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
        if (!(buf = dupn(t, tl))) PARSE_FAIL("out of memory");
        long unescaped = vd_transcript_unescape(buf, tl);
        if (unescaped < 0) PARSE_FAIL("line %d: a backslash that is not \\\\ or \\xHH", lineno);
        size_t bl = (size_t)unescaped;
        buf[bl] = '\0';
        if (bl > VD_TRANSCRIPT_MAX_LINE)
            PARSE_FAIL("line %d: longer than %d bytes", lineno, VD_TRANSCRIPT_MAX_LINE);
        if (dir == '<') {
            if (++nlines > VD_TRANSCRIPT_MAX_LINES)
                PARSE_FAIL("line %d: more than %d reply lines", lineno, VD_TRANSCRIPT_MAX_LINES);
            vd_transcript_reply *r = s->nsteps ? &s->steps[s->nsteps - 1].reply : &s->banner;
            if (reply_add(r, buf, bl) != 0) PARSE_FAIL("out of memory");
        } else {
            if (s->nsteps >= VD_TRANSCRIPT_MAX_STEPS)
                PARSE_FAIL("line %d: more than %d commands", lineno, VD_TRANSCRIPT_MAX_STEPS);
            vd_transcript_step *steps = grow(s->steps, &s->nsteps, sizeof *steps);
            if (!steps) PARSE_FAIL("out of memory");
            s->steps = steps;
            vd_transcript_step *st = &s->steps[s->nsteps - 1];
            st->lineno = lineno;
            vd_transcript_verb(buf, bl, st->verb);
            st->cmd = buf;
            buf = NULL;
        }
    }
    free(buf);
    buf = NULL;
    if (lineno == 0) PARSE_FAIL("empty (it must start with '# validora transcript 1')");
    strip_starttls(s);
    vd_transcript_reply *last = s->nsteps ? &s->steps[s->nsteps - 1].reply : &s->banner;
    if (!strcmp(s->end, "closed by server") || !strcmp(s->end, "connection_closed"))
        last->then = VD_TRANSCRIPT_CLOSE;
    else if (!strcmp(s->end, "timeout"))
        last->then = VD_TRANSCRIPT_HANG;
    return 0;
fail:
    free(buf);
    vd_transcript_script_clear(s);
    return -1;
}
