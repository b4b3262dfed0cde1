/* record.c — the result record: packing a vd_record as one msgpack map, reading a msgpack
 * record stream back, and rendering msgpack objects as JSON Lines or CSV rows.
 *
 * Owns: the key set and order (docs/records.md), the writer, the streaming reader behind
 * `validora cat`, the one JSON renderer and the one CSV row renderer. Every output format goes
 * through msgpack first (the writer packs, unpacks and renders), so JSON and CSV can never say
 * something the msgpack stream does not.
 *
 * Does not own: deciding what goes in a record (job.c / engine.c), where it is written (CLI). */
#include "validora/record.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>

/* A hostile or corrupt stream must not make the reader allocate without bound: a record is a
 * few hundred bytes, so anything past these limits is not one of ours. */
#define RECORD_MAX_BYTES (16u * 1024 * 1024)
#define RECORD_MAX_ITEMS (1u << 20) /* array elements + map keys and values in one record */
#define RECORD_MAX_DEPTH 16         /* msgpack-c itself gives up at 32 */
#define READ_CHUNK       (64u * 1024)
/* A record read back renders to at most this many bytes per msgpack byte, plus a constant: a
 * control character in a string becomes "\u001b" (6), an empty map a CSV row of 20. Without a
 * bound, map keys that are themselves maps with such keys are escaped once per level and
 * double at each one: 70 hostile bytes rendered as 33 KB, a 1 MB record as terabytes. */
#define RENDER_MAX_FACTOR 32u
#define RENDER_MAX_SLACK  64u

/* ---------------------------------------------------------------- growable output buffer */

typedef struct sink {
    char *p;
    size_t len, cap;
    size_t max;   /* 0: no limit; else content past max bytes fails the sink */
    bool failed;  /* sticky: an allocation failed or max was passed, the content is incomplete */
    bool too_big; /* the failure was max */
} sink;

static void sink_put(sink *s, const void *data, size_t n)
{
    /* n == 0 on a sink never written to: s->p is NULL, and memcpy(NULL, ..., 0) is UB. */
    if (s->failed || n == 0) return;
    if (s->max && n > s->max - s->len) {
        s->failed = s->too_big = true;
        return;
    }
    if (s->cap - s->len < n) {
        size_t cap = s->cap ? s->cap : 256;
        while (cap - s->len < n) {
            if (cap > SIZE_MAX / 2) {
                s->failed = true;
                return;
            }
            cap *= 2;
        }
        char *p = realloc(s->p, cap);
        if (!p) {
            s->failed = true;
            return;
        }
        s->p = p;
        s->cap = cap;
    }
    memcpy(s->p + s->len, data, n);
    s->len += n;
}

/* A scratch sink for text that will be copied into s, at least byte for byte: it gets what is
 * left of s's budget (+1 so that a limited budget never reads as 0, "no limit"). */
static sink sink_for(const sink *s)
{
    return (sink){.max = s->max ? s->max - s->len + 1 : 0};
}

static void sink_puts(sink *s, const char *str)
{
    sink_put(s, str, strlen(str));
}

static void sink_putc(sink *s, char c)
{
    sink_put(s, &c, 1);
}

__attribute__((format(printf, 2, 3))) static void sink_printf(sink *s, const char *fmt, ...)
{
    char buf[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof buf) {
        s->failed = true; /* only used for numbers, which always fit */
        return;
    }
    sink_put(s, buf, (size_t)n);
}

static void sink_free(sink *s)
{
    free(s->p);
    *s = (sink){0};
}

/* ---------------------------------------------------------------- UTF-8 */

/* Decodes one well-formed UTF-8 sequence at p (no overlongs, no surrogates, nothing past
 * U+10FFFF). Returns its length and sets *cp, or returns 0 and sets *bad to the length of the
 * maximal ill-formed subpart (at least 1), which the caller replaces with one U+FFFD — the
 * substitution Unicode recommends (chapter 3, "U+FFFD Substitution of Maximal Subparts"). */
static size_t utf8_decode(const unsigned char *p, size_t n, uint32_t *cp, size_t *bad)
{
    unsigned char c = p[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    uint32_t v;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2, v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, v = c & 0x0F;
        if (c == 0xE0) lo = 0xA0; /* overlong */
        if (c == 0xED) hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, v = c & 0x07;
        if (c == 0xF0) lo = 0x90; /* overlong */
        if (c == 0xF4) hi = 0x8F; /* past U+10FFFF */
    } else {
        *bad = 1;
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        unsigned char lo_i = i == 1 ? lo : 0x80, hi_i = i == 1 ? hi : 0xBF;
        if (i >= n || p[i] < lo_i || p[i] > hi_i) {
            *bad = i;
            return 0;
        }
        v = (v << 6) | (p[i] & 0x3F);
    }
    *cp = v;
    return len;
}

#define REPLACEMENT_UTF8 "\xEF\xBF\xBD"

/* The only JSON string escaper: RFC 8259, plus \u escapes for DEL, the C1 controls and
 * U+2028/U+2029 (so a line is safe to paste into JavaScript and to show on a terminal);
 * ill-formed UTF-8 becomes U+FFFD. */
static void json_string(sink *s, const char *str, size_t n)
{
    const unsigned char *p = (const unsigned char *)str;
    sink_putc(s, '"');
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        size_t bad = 0, len = utf8_decode(p + i, n - i, &cp, &bad);
        if (len == 0) {
            sink_puts(s, REPLACEMENT_UTF8);
            i += bad;
            continue;
        }
        switch (cp) {
        case '"':
            sink_puts(s, "\\\"");
            break;
        case '\\':
            sink_puts(s, "\\\\");
            break;
        case '\b':
            sink_puts(s, "\\b");
            break;
        case '\f':
            sink_puts(s, "\\f");
            break;
        case '\n':
            sink_puts(s, "\\n");
            break;
        case '\r':
            sink_puts(s, "\\r");
            break;
        case '\t':
            sink_puts(s, "\\t");
            break;
        default:
            if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || cp == 0x2028 || cp == 0x2029)
                sink_printf(s, "\\u%04" PRIx32, cp);
            else
                sink_put(s, p + i, len);
        }
        i += len;
    }
    sink_putc(s, '"');
}

/* Text for CSV: the same UTF-8 cleaning as JSON, no escaping (quoting is the row's job). */
static void utf8_clean(sink *s, const char *str, size_t n)
{
    const unsigned char *p = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        size_t bad = 0, len = utf8_decode(p + i, n - i, &cp, &bad);
        if (len == 0) {
            sink_puts(s, REPLACEMENT_UTF8);
            i += bad;
        } else {
            sink_put(s, p + i, len);
            i += len;
        }
    }
}

static void base64(sink *s, const char *data, size_t n)
{
    static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *p = (const unsigned char *)data;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n) v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n) v |= p[i + 2];
        char q[4] = {A[v >> 18], A[(v >> 12) & 63], i + 1 < n ? A[(v >> 6) & 63] : '=',
                     i + 2 < n ? A[v & 63] : '='};
        sink_put(s, q, 4);
    }
}

/* ---------------------------------------------------------------- msgpack -> JSON */

/* The shortest decimal that reads back as the same value (as a float for float32), so 0.1
 * prints as 0.1, not 0.10000000000000001. */
static void json_number(sink *s, double d, bool single)
{
    if (!isfinite(d)) {
        sink_puts(s, "null"); /* JSON has no NaN or infinity */
        return;
    }
    char buf[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, d);
        double back = strtod(buf, NULL);
        if (single ? (float)back == (float)d : back == d) break;
    }
    sink_puts(s, buf);
}

/* Renders any msgpack object as JSON. Maps keep their order; keys that are not strings are
 * rendered as JSON and used as the key's text (JSON keys must be strings); bin becomes a
 * base64 string; ext becomes {"ext":TYPE,"base64":DATA}. */
static void render_json(sink *s, const msgpack_object *o)
{
    if (s->failed) return; /* nothing more of it will be used */
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        sink_puts(s, "null");
        break;
    case MSGPACK_OBJECT_BOOLEAN:
        sink_puts(s, o->via.boolean ? "true" : "false");
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        sink_printf(s, "%" PRIu64, o->via.u64);
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        sink_printf(s, "%" PRId64, o->via.i64);
        break;
    case MSGPACK_OBJECT_FLOAT32:
        json_number(s, o->via.f64, true);
        break;
    case MSGPACK_OBJECT_FLOAT64:
        json_number(s, o->via.f64, false);
        break;
    case MSGPACK_OBJECT_STR:
        json_string(s, o->via.str.ptr, o->via.str.size);
        break;
    case MSGPACK_OBJECT_BIN:
        sink_putc(s, '"');
        base64(s, o->via.bin.ptr, o->via.bin.size);
        sink_putc(s, '"');
        break;
    case MSGPACK_OBJECT_EXT:
        sink_printf(s, "{\"ext\":%d,\"base64\":\"", (int)o->via.ext.type);
        base64(s, o->via.ext.ptr, o->via.ext.size);
        sink_puts(s, "\"}");
        break;
    case MSGPACK_OBJECT_ARRAY:
        sink_putc(s, '[');
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (i) sink_putc(s, ',');
            render_json(s, &o->via.array.ptr[i]);
        }
        sink_putc(s, ']');
        break;
    case MSGPACK_OBJECT_MAP:
        sink_putc(s, '{');
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            if (i) sink_putc(s, ',');
            if (kv->key.type == MSGPACK_OBJECT_STR) {
                json_string(s, kv->key.via.str.ptr, kv->key.via.str.size);
            } else {
                sink k = sink_for(s);
                render_json(&k, &kv->key);
                if (k.failed) s->failed = true;
                if (k.too_big) s->too_big = true;
                json_string(s, k.p ? k.p : "", k.len);
                sink_free(&k);
            }
            sink_putc(s, ':');
            render_json(s, &kv->val);
        }
        sink_putc(s, '}');
        break;
    default:
        sink_puts(s, "null");
        break;
    }
}

/* ---------------------------------------------------------------- msgpack -> CSV */

/* The CSV columns, in order: the header name, and where the value lives (a top-level key, or
 * a key inside the "smtp" map). The header line is made from this table too. */
static const struct {
    const char *column, *key, *smtp_key;
} CSV_COLUMNS[] = {
    {"email", "email", NULL},
    {"address", "address", NULL},
    {"domain", "domain", NULL},
    {"status", "status", NULL},
    {"reason", "reason", NULL},
    {"mx", "mx", NULL},
    {"smtp_code", NULL, "code"},
    {"smtp_enhanced", NULL, "enhanced"},
    {"smtp_text", NULL, "text"},
    {"tls", "tls", NULL},
    {"catch_all", "catch_all", NULL},
    {"disposable", "disposable", NULL},
    {"role", "role", NULL},
    {"free", "free", NULL},
    {"suggestion", "suggestion", NULL},
    {"provider", "provider", NULL},
    {"attempts", "attempts", NULL},
    {"elapsed_ms", "elapsed_ms", NULL},
    {"checked_at", "checked_at", NULL},
    {"detail", "detail", NULL},
};
#define CSV_NCOLUMNS (sizeof CSV_COLUMNS / sizeof CSV_COLUMNS[0])

static int write_csv_header(FILE *fp)
{
    for (size_t i = 0; i < CSV_NCOLUMNS; i++)
        if (fputs(CSV_COLUMNS[i].column, fp) == EOF ||
            putc(i + 1 < CSV_NCOLUMNS ? ',' : '\n', fp) == EOF)
            return -1;
    return 0;
}

static const msgpack_object *map_get(const msgpack_object *map, const char *key)
{
    if (!map || map->type != MSGPACK_OBJECT_MAP) return NULL;
    size_t n = strlen(key);
    /* The first occurrence wins, as JSON readers differ on duplicates anyway. */
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
            memcmp(k->via.str.ptr, key, n) == 0)
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

static void csv_field(sink *s, const msgpack_object *v)
{
    sink text = sink_for(s);
    if (!v || v->type == MSGPACK_OBJECT_NIL) {
        /* absent: empty field */
    } else if (v->type == MSGPACK_OBJECT_STR) {
        utf8_clean(&text, v->via.str.ptr, v->via.str.size);
    } else if (v->type == MSGPACK_OBJECT_BOOLEAN) {
        sink_puts(&text, v->via.boolean ? "true" : "false");
    } else {
        render_json(&text, v); /* numbers as JSON writes them; odd values stay readable */
    }
    if (text.failed) s->failed = true;
    if (text.too_big) s->too_big = true;
    bool quote = false;
    for (size_t i = 0; i < text.len && !quote; i++)
        quote = text.p[i] == ',' || text.p[i] == '"' || text.p[i] == '\n' || text.p[i] == '\r';
    if (!quote) {
        sink_put(s, text.p ? text.p : "", text.len);
    } else {
        /* RFC 4180: the field in double quotes, a quote inside doubled; CR and LF stay as they
         * are inside the quotes. */
        sink_putc(s, '"');
        for (size_t i = 0; i < text.len; i++) {
            if (text.p[i] == '"') sink_putc(s, '"');
            sink_putc(s, text.p[i]);
        }
        sink_putc(s, '"');
    }
    sink_free(&text);
}

/* The only CSV row renderer: the columns of CSV_COLUMNS from a record map; other keys
 * are ignored. */
static void render_csv_row(sink *s, const msgpack_object *map)
{
    const msgpack_object *smtp = map_get(map, "smtp");
    for (size_t i = 0; i < CSV_NCOLUMNS; i++) {
        if (i) sink_putc(s, ',');
        if (CSV_COLUMNS[i].key)
            csv_field(s, map_get(map, CSV_COLUMNS[i].key));
        else
            csv_field(s, map_get(smtp, CSV_COLUMNS[i].smtp_key));
    }
    sink_putc(s, '\n');
}

/* Renders one record map as a JSON line or CSV row into s (cleared first), in at most max
 * bytes (0: no limit). Returns -1 with errno EFBIG when it would take more, ENOMEM when
 * memory ran out. */
static int render_record(sink *s, const msgpack_object *map, vd_format fmt, size_t max)
{
    s->len = 0;
    s->max = max;
    s->failed = s->too_big = false;
    if (fmt == VD_FMT_CSV) {
        render_csv_row(s, map);
    } else {
        render_json(s, map);
        sink_putc(s, '\n');
    }
    if (s->failed) {
        errno = s->too_big ? EFBIG : ENOMEM;
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- writer */

struct vd_writer {
    FILE *fp;
    vd_format fmt;
    msgpack_sbuffer sbuf;
    msgpack_packer pk;
    sink line;
};

vd_writer *vd_writer_new(FILE *fp, vd_format fmt)
{
    vd_writer *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->fp = fp;
    w->fmt = fmt;
    msgpack_sbuffer_init(&w->sbuf);
    msgpack_packer_init(&w->pk, &w->sbuf, msgpack_sbuffer_write);
    if (fmt == VD_FMT_CSV) {
        if (write_csv_header(fp) != 0 || fflush(fp) == EOF) {
            int e = errno;
            vd_writer_free(w);
            errno = e;
            return NULL;
        }
    }
    return w;
}

void vd_writer_free(vd_writer *w)
{
    if (!w) return;
    msgpack_sbuffer_destroy(&w->sbuf);
    sink_free(&w->line);
    free(w);
}

static int pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    if (n > UINT32_MAX) return -1;
    return msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, s, n) ? -1 : 0;
}

static int pack_key(msgpack_packer *pk, const char *key)
{
    return pack_str(pk, key);
}

static int pack_kv_str(msgpack_packer *pk, const char *key, const char *val)
{
    if (!val) return 0;
    return pack_key(pk, key) || pack_str(pk, val) ? -1 : 0;
}

static int pack_kv_bool(msgpack_packer *pk, const char *key, bool val)
{
    return pack_key(pk, key) || (val ? msgpack_pack_true(pk) : msgpack_pack_false(pk)) ? -1 : 0;
}

static int pack_kv_tri(msgpack_packer *pk, const char *key, vd_tristate val)
{
    if (val == VD_UNSET) return 0;
    return pack_kv_bool(pk, key, val == VD_YES);
}

static int pack_kv_int(msgpack_packer *pk, const char *key, int64_t val)
{
    return pack_key(pk, key) || msgpack_pack_int64(pk, val) ? -1 : 0;
}

/* The record as one msgpack map. Keys whose value is absent are left out rather than
 * written as nil, so "absent" has one spelling; the order is fixed (docs/records.md). */
static int pack_record(msgpack_packer *pk, const vd_record *r)
{
    size_t n = 6; /* disposable, role, free, attempts, elapsed_ms, checked_at: always there */
    const char *strs[] = {r->email,  r->address, r->domain,     r->status,  r->reason,
                          r->detail, r->mx,      r->suggestion, r->provider};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        n += strs[i] != NULL;
    n += r->has_smtp;
    n += r->tls != VD_UNSET;
    n += r->tls_verified != VD_UNSET;
    n += r->catch_all != VD_UNSET;
    if (msgpack_pack_map(pk, n)) return -1;
    if (pack_kv_str(pk, "email", r->email) || pack_kv_str(pk, "address", r->address) ||
        pack_kv_str(pk, "domain", r->domain) || pack_kv_str(pk, "status", r->status) ||
        pack_kv_str(pk, "reason", r->reason) || pack_kv_str(pk, "detail", r->detail) ||
        pack_kv_str(pk, "mx", r->mx))
        return -1;
    if (r->has_smtp) {
        size_t m = 1u + (r->smtp_enhanced ? 1u : 0u) + (r->smtp_text ? 1u : 0u);
        if (pack_key(pk, "smtp") || msgpack_pack_map(pk, m) ||
            pack_kv_int(pk, "code", r->smtp_code) ||
            pack_kv_str(pk, "enhanced", r->smtp_enhanced) || pack_kv_str(pk, "text", r->smtp_text))
            return -1;
    }
    if (pack_kv_tri(pk, "tls", r->tls) || pack_kv_tri(pk, "tls_verified", r->tls_verified) ||
        pack_kv_tri(pk, "catch_all", r->catch_all) ||
        pack_kv_bool(pk, "disposable", r->disposable) || pack_kv_bool(pk, "role", r->role) ||
        pack_kv_bool(pk, "free", r->free) || pack_kv_str(pk, "suggestion", r->suggestion) ||
        pack_kv_str(pk, "provider", r->provider) || pack_kv_int(pk, "attempts", r->attempts) ||
        pack_kv_int(pk, "elapsed_ms", r->elapsed_ms) ||
        pack_kv_int(pk, "checked_at", r->checked_at))
        return -1;
    return 0;
}

int vd_writer_put(vd_writer *w, const vd_record *r)
{
    msgpack_sbuffer_clear(&w->sbuf);
    if (pack_record(&w->pk, r) != 0) {
        errno = ENOMEM;
        return -1;
    }
    const char *out = w->sbuf.data;
    size_t outlen = w->sbuf.size;
    if (w->fmt != VD_FMT_MSGPACK) {
        /* Render what was packed, not the struct: one source of truth for every format. */
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        size_t off = 0;
        int rc = -1;
        if (msgpack_unpack_next(&u, w->sbuf.data, w->sbuf.size, &off) == MSGPACK_UNPACK_SUCCESS)
            rc = render_record(&w->line, &u.data, w->fmt, 0);
        msgpack_unpacked_destroy(&u);
        if (rc != 0) {
            errno = ENOMEM;
            return -1;
        }
        out = w->line.p;
        outlen = w->line.len;
    }
    if (fwrite(out, 1, outlen, w->fp) != outlen || fflush(w->fp) == EOF) return -1;
    return 0;
}

/* ---------------------------------------------------------------- reader */

/* Finds where the next top-level object ends without building it, so that no allocation
 * depends on a length the stream claims: msgpack-c allocates a map's or array's elements
 * when it reads the header, before the elements arrive. Resumable: called again with more
 * bytes, it carries on where it stopped (positions are relative to the object's first byte). */
typedef enum { SCAN_COMPLETE, SCAN_MORE, SCAN_INVALID, SCAN_NOT_MAP, SCAN_TOO_LARGE } scan_result;

typedef struct scan {
    size_t pos;   /* bytes of the object consumed so far */
    size_t need;  /* after SCAN_MORE: bytes that must arrive before anything can change */
    size_t items; /* elements announced so far */
    unsigned depth;
    uint64_t left[RECORD_MAX_DEPTH + 1]; /* items still to come at each level */
} scan;

static void scan_reset(scan *sc)
{
    memset(sc, 0, sizeof *sc);
    sc->left[0] = 1;
}

static uint64_t be(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

static scan_result scan_object(scan *sc, const unsigned char *buf, size_t avail)
{
    for (;;) {
        while (sc->depth > 0 && sc->left[sc->depth] == 0)
            sc->depth--;
        if (sc->depth == 0 && sc->left[0] == 0) return SCAN_COMPLETE;
        if (sc->pos >= avail) {
            sc->need = sc->pos + 1 - avail;
            return SCAN_MORE;
        }
        const unsigned char *p = buf + sc->pos;
        unsigned char b = p[0];
        size_t lenbytes = 0, extra = 0; /* size of the length field, fixed bytes after it */
        uint64_t payload = 0, children = 0;
        bool counted = false; /* payload/children come from the length field */
        bool is_map = false;
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
            /* fixint, nil, bool */
        } else if (b <= 0x8f) {
            children = 2u * (b & 0x0f), is_map = true;
        } else if (b <= 0x9f) {
            children = b & 0x0f;
        } else if (b <= 0xbf) {
            payload = b & 0x1f;
        } else {
            switch (b) {
            case 0xc4:
            case 0xd9:
                lenbytes = 1, counted = true;
                break; /* bin8, str8 */
            case 0xc5:
            case 0xda:
                lenbytes = 2, counted = true;
                break;
            case 0xc6:
            case 0xdb:
                lenbytes = 4, counted = true;
                break;
            case 0xc7:
                lenbytes = 1, extra = 1, counted = true;
                break; /* ext8: len, type */
            case 0xc8:
                lenbytes = 2, extra = 1, counted = true;
                break;
            case 0xc9:
                lenbytes = 4, extra = 1, counted = true;
                break;
            case 0xca:
            case 0xce:
            case 0xd2:
                payload = 4;
                break;
            case 0xcb:
            case 0xcf:
            case 0xd3:
                payload = 8;
                break;
            case 0xcc:
            case 0xd0:
                payload = 1;
                break;
            case 0xcd:
            case 0xd1:
                payload = 2;
                break;
            case 0xd4:
                payload = 2;
                break; /* fixext: type byte + data */
            case 0xd5:
                payload = 3;
                break;
            case 0xd6:
                payload = 5;
                break;
            case 0xd7:
                payload = 9;
                break;
            case 0xd8:
                payload = 17;
                break;
            case 0xdc:
                lenbytes = 2;
                break; /* array16 */
            case 0xdd:
                lenbytes = 4;
                break;
            case 0xde:
                lenbytes = 2, is_map = true;
                break; /* map16 */
            case 0xdf:
                lenbytes = 4, is_map = true;
                break;
            default:
                return SCAN_INVALID; /* 0xc1 is never used */
            }
        }
        if (sc->pos == 0 && !is_map) return SCAN_NOT_MAP;
        if (sc->pos + 1 + lenbytes > avail) {
            sc->need = sc->pos + 1 + lenbytes - avail;
            return SCAN_MORE;
        }
        if (lenbytes) {
            uint64_t n = be(p + 1, lenbytes);
            if (counted)
                payload = n + extra;
            else
                children = is_map ? 2 * n : n;
        }
        uint64_t end = (uint64_t)sc->pos + 1 + lenbytes + payload;
        if (end > RECORD_MAX_BYTES || children > RECORD_MAX_ITEMS - sc->items)
            return SCAN_TOO_LARGE;
        if (end > avail) {
            sc->need = (size_t)(end - avail);
            return SCAN_MORE;
        }
        /* The item is whole: consume it (a container's header only). */
        sc->left[sc->depth]--;
        sc->pos = (size_t)end;
        if (children) {
            if (sc->depth == RECORD_MAX_DEPTH) return SCAN_INVALID;
            sc->items += children;
            sc->left[++sc->depth] = children;
        }
    }
}

/* Reading: a regular file is read in large chunks. Anything else (a pipe, a terminal, a
 * socket: `tail -f out.mp | validora cat`) is read only as far as the scanner knows bytes must
 * follow, because fread blocks until its count is met; so every record is printed as soon as
 * its last byte arrives, never held back waiting for the next one. */
int vd_record_cat(FILE *in, FILE *out, vd_format fmt, FILE *err, const char *name)
{
    msgpack_unpacker mpac;
    if (!msgpack_unpacker_init(&mpac, READ_CHUNK)) {
        fprintf(err, "%s: out of memory\n", name);
        return -1;
    }
    struct stat st;
    bool chunked = fstat(fileno(in), &st) == 0 && S_ISREG(st.st_mode);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    sink line = {0};
    scan sc;
    scan_reset(&sc);
    uint64_t offset = 0; /* byte offset of the record being read */
    uint64_t records = 0;
    bool eof = false, unflushed = false;
    int rc = -1;
    if (fmt == VD_FMT_CSV && write_csv_header(out) != 0) goto write_error;

    for (;;) {
        const unsigned char *start = (const unsigned char *)mpac.buffer + mpac.off;
        scan_result r = scan_object(&sc, start, mpac.used - mpac.off);
        if (r == SCAN_COMPLETE) {
            size_t size = sc.pos, parsed = 0;
            if (msgpack_unpacker_next_with_size(&mpac, &u, &parsed) != MSGPACK_UNPACK_SUCCESS ||
                parsed != size || u.data.type != MSGPACK_OBJECT_MAP) {
                /* The scanner and msgpack-c disagree: only a damaged stream gets here. */
                fprintf(err,
                        "%s: invalid msgpack in the record at byte %" PRIu64 " (%" PRIu64
                        " complete records before it)\n",
                        name, offset, records);
                goto done;
            }
            if (fmt == VD_FMT_MSGPACK) {
                /* Copy the record's bytes as they were: salvages the good part of a stream.
                 * They are still in the unpacker's buffer (next() does not move it). */
                if (fwrite(start, 1, size, out) != size) goto write_error;
            } else {
                if (render_record(&line, &u.data, fmt,
                                  size * RENDER_MAX_FACTOR + RENDER_MAX_SLACK) != 0) {
                    if (errno == EFBIG)
                        fprintf(err,
                                "%s: the record at byte %" PRIu64
                                " renders too large (over %u bytes per byte; %" PRIu64
                                " complete records before it)\n",
                                name, offset, RENDER_MAX_FACTOR, records);
                    else
                        fprintf(err, "%s: out of memory\n", name);
                    goto done;
                }
                if (fwrite(line.p, 1, line.len, out) != line.len) goto write_error;
            }
            unflushed = true;
            records++;
            offset += size;
            scan_reset(&sc);
            continue;
        }
        if (r == SCAN_NOT_MAP) {
            fprintf(err,
                    "%s: the object at byte %" PRIu64 " is not a map, so not a record (%" PRIu64
                    " complete records before it)\n",
                    name, offset, records);
            goto done;
        }
        if (r == SCAN_INVALID) {
            fprintf(err,
                    "%s: invalid msgpack at byte %" PRIu64 " in the record at byte %" PRIu64
                    " (%" PRIu64 " complete records before it)\n",
                    name, offset + sc.pos, offset, records);
            goto done;
        }
        if (r == SCAN_TOO_LARGE) {
            fprintf(err,
                    "%s: the record at byte %" PRIu64
                    " is too large (over %u MiB or %u items; %" PRIu64
                    " complete records before it)\n",
                    name, offset, RECORD_MAX_BYTES >> 20, RECORD_MAX_ITEMS, records);
            goto done;
        }
        /* SCAN_MORE */
        if (eof) {
            if (mpac.used > mpac.off) {
                fprintf(err,
                        "%s: truncated record at byte %" PRIu64 " (%" PRIu64
                        " complete records before it)\n",
                        name, offset, records);
                goto done;
            }
            rc = 0;
            goto done;
        }
        /* Show what is done before possibly waiting for more input. */
        if (unflushed && fflush(out) == EOF) goto write_error;
        unflushed = false;
        size_t want = chunked && sc.need < READ_CHUNK ? READ_CHUNK : sc.need;
        if (!msgpack_unpacker_reserve_buffer(&mpac, want)) {
            fprintf(err, "%s: out of memory\n", name);
            goto done;
        }
        size_t got = fread(msgpack_unpacker_buffer(&mpac), 1, want, in);
        msgpack_unpacker_buffer_consumed(&mpac, got);
        if (got < want) {
            if (ferror(in)) {
                fprintf(err, "%s: read error: %s\n", name, strerror(errno));
                goto done;
            }
            eof = true;
        }
    }

write_error:
    fprintf(err, "%s: write error: %s\n", name, strerror(errno));
    rc = -1;
    goto release;
done:
    if (fflush(out) == EOF) {
        fprintf(err, "%s: write error: %s\n", name, strerror(errno));
        rc = -1;
    }
release:
    msgpack_unpacked_destroy(&u);
    msgpack_unpacker_destroy(&mpac);
    sink_free(&line);
    return rc;
}
