/* record.c — the result record: packing a vd_record as one msgpack map, reading a msgpack
 * record stream back record by record (vd_reader), the fields of a record read back, and
 * rendering msgpack maps as JSON Lines or CSV rows. API: include/validora/record.h.
 *
 * Owns: the key set and order (docs/records.md), the status names (vd_status), the writer,
 * the streaming reader and its limits (record size, items, depth; the render bound), field
 * access by key, the one JSON renderer and the one CSV row renderer, and vd_record_cat (the
 * reader and renderers behind `validora cat`). Every output format goes through msgpack first
 * (the writer packs, unpacks and renders), so JSON and CSV can never say something the msgpack
 * stream does not. Only vd_record_cat writes messages, to the FILE it is given; the reader
 * returns them.
 *
 * Does not own: deciding what goes in a record (engine.c), where it is written or read from
 * (the CLI, or an embedder). */
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

/* ---------------------------------------------------------------- the vocabulary */

static const char *const STATUS_NAMES[VD_STATUS_COUNT] = {
    [VD_STATUS_DELIVERABLE] = "deliverable",
    [VD_STATUS_UNDELIVERABLE] = "undeliverable",
    [VD_STATUS_RISKY] = "risky",
    [VD_STATUS_UNKNOWN] = "unknown",
};

const char *vd_status_name(vd_status s)
{
    return (unsigned)s < VD_STATUS_COUNT ? STATUS_NAMES[s] : NULL;
}

int vd_status_parse(const char *name, size_t len, vd_status *out)
{
    for (int i = 0; name && i < VD_STATUS_COUNT; i++)
        if (strlen(STATUS_NAMES[i]) == len && !memcmp(STATUS_NAMES[i], name, len)) {
            *out = (vd_status)i;
            return 0;
        }
    return -1;
}

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

int vd_record_json_str(FILE *out, const char *str, size_t n)
{
    sink s = {0};
    json_string(&s, str ? str : "", str ? n : 0);
    int rc = s.failed || fwrite(s.p, 1, s.len, out) != s.len ? -1 : 0;
    sink_free(&s);
    return rc;
}

/* Text for CSV: the same UTF-8 cleaning as JSON, no escaping (quoting is the row's job). The
 * control characters JSON escapes, but for TAB, LF and CR (NUL, the rest of C0, DEL, C1), become
 * U+FFFD as well: CSV has no escape syntax, many CSV readers refuse a NUL byte or cut the field
 * at it, and a raw ESC acts on the terminal of whoever looks at the file (docs/records.md). */
static void csv_text(sink *s, const char *str, size_t n)
{
    const unsigned char *p = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        size_t bad = 0, len = utf8_decode(p + i, n - i, &cp, &bad);
        if (len == 0) {
            sink_puts(s, REPLACEMENT_UTF8);
            i += bad;
            continue;
        }
        bool control =
            (cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') || (cp >= 0x7F && cp <= 0x9F);
        if (control)
            sink_puts(s, REPLACEMENT_UTF8);
        else
            sink_put(s, p + i, len);
        i += len;
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
    {"method", "method", NULL},
    {"generation", "generation", NULL},
    {"attempts", "attempts", NULL},
    {"elapsed_ms", "elapsed_ms", NULL},
    {"checked_at", "checked_at", NULL},
    {"detail", "detail", NULL},
};
#define CSV_NCOLUMNS (sizeof CSV_COLUMNS / sizeof CSV_COLUMNS[0])

/* The CSV header line, made from CSV_COLUMNS. */
static void csv_header(sink *s)
{
    for (size_t i = 0; i < CSV_NCOLUMNS; i++) {
        sink_puts(s, CSV_COLUMNS[i].column);
        sink_putc(s, i + 1 < CSV_NCOLUMNS ? ',' : '\n');
    }
}

static const msgpack_object *map_get(const msgpack_object *map, const char *key)
{
    if (!map || map->type != MSGPACK_OBJECT_MAP) return NULL;
    size_t n = strlen(key);
    /* The first occurrence wins, as JSON readers differ on duplicates anyway. */
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        /* An empty str has a NULL ptr in msgpack-c: no memcmp(NULL, "", 0). */
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
            (n == 0 || memcmp(k->via.str.ptr, key, n) == 0))
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
        csv_text(&text, v->via.str.ptr, v->via.str.size);
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
        if (vd_record_fprint_csv_header(fp) != 0 || fflush(fp) == EOF) {
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

char *vd_record_pack(const vd_record *r, vd_format fmt, size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *mem = open_memstream(&buf, &n);
    if (!mem) return NULL;
    vd_writer *w = vd_writer_new(mem, fmt);
    int rc = w ? vd_writer_put(w, r) : -1;
    int e = errno;
    vd_writer_free(w);
    if (fclose(mem) != 0 || rc != 0) {
        free(buf);
        errno = rc != 0 ? e : ENOMEM;
        return NULL;
    }
    *len = n;
    return buf;
}

static int pack_strn(msgpack_packer *pk, const char *s, size_t n)
{
    if (n > UINT32_MAX) return -1;
    return msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, s, n) ? -1 : 0;
}

static int pack_str(msgpack_packer *pk, const char *s)
{
    return pack_strn(pk, s, strlen(s));
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

/* The input line, NUL bytes included: email_len bytes, or strlen when the caller left it 0. */
static int pack_kv_email(msgpack_packer *pk, const vd_record *r)
{
    if (!r->email) return 0;
    size_t n = r->email_len ? r->email_len : strlen(r->email);
    return pack_key(pk, "email") || pack_strn(pk, r->email, n) ? -1 : 0;
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
    const char *strs[] = {r->email, r->address,    r->domain,   r->status, r->reason,    r->detail,
                          r->mx,    r->suggestion, r->provider, r->method, r->generation};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        n += strs[i] != NULL;
    n += r->has_smtp;
    n += r->tls != VD_UNSET;
    n += r->tls_verified != VD_UNSET;
    n += r->catch_all != VD_UNSET;
    n += r->delayed_ms > 0;
    if (msgpack_pack_map(pk, n)) return -1;
    if (pack_kv_email(pk, r) || pack_kv_str(pk, "address", r->address) ||
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
        pack_kv_str(pk, "provider", r->provider) || pack_kv_str(pk, "method", r->method) ||
        pack_kv_str(pk, "generation", r->generation) || pack_kv_int(pk, "attempts", r->attempts) ||
        (r->delayed_ms > 0 && pack_kv_int(pk, "delayed_ms", r->delayed_ms)) ||
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

/* ---------------------------------------------------------------- stream reader */

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

/* The stream reader. A regular file is read in large chunks. Anything else (a pipe, a terminal,
 * a socket: `tail -f out.mp | validora cat`) is read only as far as the scanner knows bytes must
 * follow, because fread blocks until its count is met; so every record is returned as soon as
 * its last byte arrives, never held back waiting for the next one. */
struct vd_reader {
    FILE *in;
    bool chunked; /* a regular file */
    bool eof;
    vd_read_status status; /* VD_READ_RECORD while reading, then the result that ended it */
    scan_result scanned;   /* of the buffered bytes; SCAN_MORE until they were scanned again */
    msgpack_unpacker mpac;
    msgpack_unpacked u; /* the record last returned */
    scan sc;
    uint64_t pos;    /* bytes of the complete records read: where the next one starts */
    uint64_t offset; /* where the current record starts */
    uint64_t records;
    char error[256];
};

vd_reader *vd_reader_new(FILE *in)
{
    vd_reader *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    if (!msgpack_unpacker_init(&r->mpac, READ_CHUNK)) {
        free(r);
        errno = ENOMEM;
        return NULL;
    }
    msgpack_unpacked_init(&r->u);
    struct stat st;
    r->in = in;
    r->chunked = fstat(fileno(in), &st) == 0 && S_ISREG(st.st_mode);
    r->status = VD_READ_RECORD;
    r->scanned = SCAN_MORE;
    scan_reset(&r->sc);
    return r;
}

void vd_reader_free(vd_reader *r)
{
    if (!r) return;
    msgpack_unpacked_destroy(&r->u);
    msgpack_unpacker_destroy(&r->mpac);
    free(r);
}

__attribute__((format(printf, 3, 4))) static vd_read_status
reader_fail(vd_reader *r, vd_read_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error, sizeof r->error, fmt, ap);
    va_end(ap);
    r->status = status;
    return status;
}

/* Scans the buffered bytes once per change: the scanner is resumable, but it must not be run
 * again over an object it already judged. */
static scan_result reader_scan(vd_reader *r)
{
    if (r->scanned == SCAN_MORE)
        r->scanned = scan_object(&r->sc, (const unsigned char *)r->mpac.buffer + r->mpac.off,
                                 r->mpac.used - r->mpac.off);
    return r->scanned;
}

bool vd_reader_ready(vd_reader *r)
{
    return r->status != VD_READ_RECORD || r->eof || reader_scan(r) != SCAN_MORE;
}

vd_read_status vd_reader_next(vd_reader *r, vd_record_view *rec)
{
    if (rec) *rec = (vd_record_view){0};
    if (r->status != VD_READ_RECORD) return r->status;
    r->offset = r->pos;
    for (;;) {
        const char *start = r->mpac.buffer + r->mpac.off;
        switch (reader_scan(r)) {
        case SCAN_COMPLETE: {
            size_t size = r->sc.pos, parsed = 0;
            msgpack_unpack_return ur = msgpack_unpacker_next_with_size(&r->mpac, &r->u, &parsed);
            if (ur == MSGPACK_UNPACK_NOMEM_ERROR)
                return reader_fail(r, VD_READ_NOMEM, "out of memory");
            if (ur != MSGPACK_UNPACK_SUCCESS || parsed != size ||
                r->u.data.type != MSGPACK_OBJECT_MAP)
                /* The scanner and msgpack-c disagree: only a damaged stream gets here. */
                return reader_fail(r, VD_READ_INVALID,
                                   "invalid msgpack in the record at byte %" PRIu64 " (%" PRIu64
                                   " complete records before it)",
                                   r->offset, r->records);
            scan_reset(&r->sc);
            r->scanned = SCAN_MORE;
            r->pos += size;
            r->records++;
            /* The record's bytes are still in the unpacker's buffer (next() does not move it)
             * until more is read, which only the next call does. */
            if (rec)
                *rec =
                    (vd_record_view){.priv_obj = &r->u.data, .priv_raw = start, .priv_size = size};
            return VD_READ_RECORD;
        }
        case SCAN_NOT_MAP:
            return reader_fail(r, VD_READ_NOT_MAP,
                               "the object at byte %" PRIu64
                               " is not a map, so not a record (%" PRIu64
                               " complete records before it)",
                               r->offset, r->records);
        case SCAN_INVALID:
            return reader_fail(r, VD_READ_INVALID,
                               "invalid msgpack at byte %" PRIu64 " in the record at byte %" PRIu64
                               " (%" PRIu64 " complete records before it)",
                               r->offset + r->sc.pos, r->offset, r->records);
        case SCAN_TOO_LARGE:
            return reader_fail(r, VD_READ_TOO_LARGE,
                               "the record at byte %" PRIu64
                               " is too large (over %u MiB or %u items; %" PRIu64
                               " complete records before it)",
                               r->offset, RECORD_MAX_BYTES >> 20, RECORD_MAX_ITEMS, r->records);
        case SCAN_MORE:
            break;
        }
        if (r->eof) {
            if (r->mpac.used > r->mpac.off)
                return reader_fail(r, VD_READ_TRUNCATED,
                                   "truncated record at byte %" PRIu64 " (%" PRIu64
                                   " complete records before it)",
                                   r->offset, r->records);
            r->status = VD_READ_END;
            return VD_READ_END;
        }
        size_t want = r->chunked && r->sc.need < READ_CHUNK ? READ_CHUNK : r->sc.need;
        if (!msgpack_unpacker_reserve_buffer(&r->mpac, want))
            return reader_fail(r, VD_READ_NOMEM, "out of memory");
        size_t got = fread(msgpack_unpacker_buffer(&r->mpac), 1, want, r->in);
        msgpack_unpacker_buffer_consumed(&r->mpac, got);
        if (got < want) {
            if (ferror(r->in))
                return reader_fail(r, VD_READ_IO_ERROR, "read error: %s", strerror(errno));
            r->eof = true;
        }
        r->scanned = SCAN_MORE;
    }
}

uint64_t vd_reader_offset(const vd_reader *r)
{
    return r->offset;
}

uint64_t vd_reader_records(const vd_reader *r)
{
    return r->records;
}

const char *vd_reader_error(const vd_reader *r)
{
    return r->status < 0 ? r->error : "";
}

/* ---------------------------------------------------------------- fields of a read record */

static const msgpack_object *view_obj(const vd_record_view *v)
{
    const msgpack_object *o = v ? v->priv_obj : NULL;
    return o && o->type == MSGPACK_OBJECT_MAP ? o : NULL;
}

vd_field_type vd_record_type(const vd_record_view *rec, const char *key)
{
    const msgpack_object *o = map_get(view_obj(rec), key);
    if (!o) return VD_FIELD_ABSENT;
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return VD_FIELD_NIL;
    case MSGPACK_OBJECT_BOOLEAN:
        return VD_FIELD_BOOL;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return VD_FIELD_INT;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return VD_FIELD_FLOAT;
    case MSGPACK_OBJECT_STR:
        return VD_FIELD_STR;
    case MSGPACK_OBJECT_BIN:
        return VD_FIELD_BIN;
    case MSGPACK_OBJECT_ARRAY:
        return VD_FIELD_ARRAY;
    case MSGPACK_OBJECT_MAP:
        return VD_FIELD_MAP;
    case MSGPACK_OBJECT_EXT:
        return VD_FIELD_EXT;
    }
    return VD_FIELD_ABSENT; /* not reached: msgpack-c makes no other type */
}

int vd_record_str(const vd_record_view *rec, const char *key, const char **s, size_t *len)
{
    const msgpack_object *o = map_get(view_obj(rec), key);
    if (!o || o->type != MSGPACK_OBJECT_STR) return -1;
    *s = o->via.str.size ? o->via.str.ptr : ""; /* never NULL (msgpack-c's empty str is) */
    *len = o->via.str.size;
    return 0;
}

int vd_record_int(const vd_record_view *rec, const char *key, int64_t *v)
{
    const msgpack_object *o = map_get(view_obj(rec), key);
    if (o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX) {
        *v = (int64_t)o->via.u64;
        return 0;
    }
    if (o && o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *v = o->via.i64;
        return 0;
    }
    return -1;
}

int vd_record_bool(const vd_record_view *rec, const char *key, bool *v)
{
    const msgpack_object *o = map_get(view_obj(rec), key);
    if (!o || o->type != MSGPACK_OBJECT_BOOLEAN) return -1;
    *v = o->via.boolean;
    return 0;
}

int vd_record_map(const vd_record_view *rec, const char *key, vd_record_view *sub)
{
    const msgpack_object *o = map_get(view_obj(rec), key);
    if (!o || o->type != MSGPACK_OBJECT_MAP) return -1;
    /* Not the record's bytes, but the record's size: it bounds the rendering of any part. */
    *sub = (vd_record_view){.priv_obj = o, .priv_raw = NULL, .priv_size = rec->priv_size};
    return 0;
}

size_t vd_record_count(const vd_record_view *rec)
{
    const msgpack_object *o = view_obj(rec);
    return o ? o->via.map.size : 0;
}

int vd_record_key(const vd_record_view *rec, size_t i, const char **key, size_t *len)
{
    const msgpack_object *o = view_obj(rec);
    if (!o || i >= o->via.map.size) return -1;
    const msgpack_object *k = &o->via.map.ptr[i].key;
    if (k->type != MSGPACK_OBJECT_STR) return -1;
    *key = k->via.str.size ? k->via.str.ptr : "";
    *len = k->via.str.size;
    return 0;
}

/* ---------------------------------------------------------------- rendering a read record */

/* Renders rec into s (cleared first). The bound of a record read back: RENDER_MAX_FACTOR bytes
 * per byte of the record it is (part of), plus RENDER_MAX_SLACK. */
static int render_view(sink *s, const vd_record_view *rec, vd_format fmt)
{
    const msgpack_object *o = view_obj(rec);
    if (!o || (fmt != VD_FMT_MSGPACK && fmt != VD_FMT_JSON && fmt != VD_FMT_CSV) ||
        (fmt == VD_FMT_MSGPACK && !rec->priv_raw)) {
        errno = EINVAL;
        return -1;
    }
    if (fmt == VD_FMT_MSGPACK) {
        s->len = 0;
        s->max = 0;
        s->failed = s->too_big = false;
        sink_put(s, rec->priv_raw, rec->priv_size);
        if (s->failed) {
            errno = ENOMEM;
            return -1;
        }
        return 0;
    }
    return render_record(s, o, fmt, rec->priv_size * RENDER_MAX_FACTOR + RENDER_MAX_SLACK);
}

/* A rendered sink into the caller's buffer, NUL-terminated; ERANGE with the length needed. */
static int sink_to_buffer(const sink *s, char *buf, size_t size, size_t *len)
{
    if (len) *len = s->len;
    if (s->len >= size) {
        errno = ERANGE;
        return -1;
    }
    if (s->len) memcpy(buf, s->p, s->len);
    buf[s->len] = '\0';
    return 0;
}

static int sink_to_file(const sink *s, FILE *out)
{
    return s->len && fwrite(s->p, 1, s->len, out) != s->len ? -1 : 0;
}

/* Frees the scratch sink of a public renderer, keeping errno for its caller. */
static int scratch_done(sink *s, int rc)
{
    int e = errno;
    sink_free(s);
    errno = e;
    return rc;
}

int vd_record_render(const vd_record_view *rec, vd_format fmt, char *buf, size_t size, size_t *len)
{
    sink s = {0};
    int rc = render_view(&s, rec, fmt);
    if (rc == 0) rc = sink_to_buffer(&s, buf, size, len);
    return scratch_done(&s, rc);
}

int vd_record_fprint(const vd_record_view *rec, vd_format fmt, FILE *out)
{
    sink s = {0};
    int rc = render_view(&s, rec, fmt);
    if (rc == 0) rc = sink_to_file(&s, out);
    return scratch_done(&s, rc);
}

static int csv_header_sink(sink *s)
{
    csv_header(s);
    if (s->failed) {
        errno = ENOMEM;
        return -1;
    }
    return 0;
}

int vd_record_csv_header(char *buf, size_t size, size_t *len)
{
    sink s = {0};
    int rc = csv_header_sink(&s);
    if (rc == 0) rc = sink_to_buffer(&s, buf, size, len);
    return scratch_done(&s, rc);
}

int vd_record_fprint_csv_header(FILE *out)
{
    sink s = {0};
    int rc = csv_header_sink(&s);
    if (rc == 0) rc = sink_to_file(&s, out);
    return scratch_done(&s, rc);
}

/* ---------------------------------------------------------------- vd_record_cat */

/* The reader and the renderers, with one line buffer for the whole stream; out is flushed
 * whenever the reader is about to read, so nothing done waits behind a blocking read. */
int vd_record_cat(FILE *in, FILE *out, vd_format fmt, FILE *err, const char *name)
{
    if (fmt != VD_FMT_MSGPACK && fmt != VD_FMT_JSON && fmt != VD_FMT_CSV) {
        fprintf(err, "%s: unknown output format %d\n", name, (int)fmt);
        errno = EINVAL;
        return -1;
    }
    vd_reader *r = vd_reader_new(in);
    if (!r) {
        fprintf(err, "%s: out of memory\n", name);
        return -1;
    }
    sink line = {0};
    int rc = -1;
    if (fmt == VD_FMT_CSV && vd_record_fprint_csv_header(out) != 0) goto write_error;
    for (;;) {
        vd_record_view rec;
        vd_read_status st = vd_reader_next(r, &rec);
        if (st == VD_READ_END) {
            rc = 0;
            break;
        }
        if (st != VD_READ_RECORD) {
            fprintf(err, "%s: %s\n", name, vd_reader_error(r));
            break;
        }
        if (render_view(&line, &rec, fmt) != 0) {
            if (errno == EFBIG)
                fprintf(err,
                        "%s: the record at byte %" PRIu64
                        " renders too large (over %u bytes per byte; %" PRIu64
                        " complete records before it)\n",
                        name, vd_reader_offset(r), RENDER_MAX_FACTOR, vd_reader_records(r) - 1);
            else
                fprintf(err, "%s: out of memory\n", name);
            break;
        }
        if (sink_to_file(&line, out) != 0) goto write_error;
        /* Show what is done before the reader possibly waits for more input. */
        if (!vd_reader_ready(r) && fflush(out) == EOF) goto write_error;
    }
    if (fflush(out) == EOF) {
        fprintf(err, "%s: write error: %s\n", name, strerror(errno));
        rc = -1;
    }
    goto release;

write_error:
    fprintf(err, "%s: write error: %s\n", name, strerror(errno));
    rc = -1;
release:
    sink_free(&line);
    vd_reader_free(r);
    return rc;
}
