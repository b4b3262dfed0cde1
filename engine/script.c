/* script.c — the script runtime of `validora run SCRIPT.lua [ARG]...` (validora/script.h,
 * docs/scripts.md): a Lua program with verification at hand. The script runs as one coroutine
 * on the event loop; `validora.verify` and the iterator of `validora.verify_all` yield it
 * until records arrive, so a script reads as straight-line code while thousands of addresses
 * are in flight.
 *
 * Owns: the `validora` table, records as Lua tables (converted from their msgpack through
 * record.h's reader, so the schema stays in record.c), writers, reading text lists, CSV
 * columns and record streams, resuming the script's coroutine.
 * Does not own: the script's Lua state and what it may reach (sandbox.c's script profile),
 * verifying (the caller's submit: the CLI's engine), the record schema or rendering
 * (record.c), the CSV parser (csv_reader.c), signals and options (cli_run.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <event2/event.h>
#include <lauxlib.h>
#include <lua.h>
#include "csv_reader.h"
#include "hashset.h"
#include "sandbox.h"
#include "validora/record.h"
#include "validora/script.h"

#define RECORD_MT  "validora.record_raw"
#define WRITER_MT  "validora.writer"
#define STREAM_MT  "validora.records"
#define LINES_MT   "validora.lines"
#define CSV_MT     "validora.csv"
#define BATCH_MT   "validora.batch"
#define SET_MT     "validora.set"
#define RAW_KEY    "validora.raw" /* registry: weak-keyed record table -> its msgpack bytes */
#define SCRIPT_KEY "validora.script"

struct vd_script {
    vd_script_config cfg;
    struct event_base *base;
    lua_State *L;  /* the main state; NULL once freed (late records are dropped) */
    lua_State *co; /* the script's coroutine */
    int co_ref;
    struct event *resume_ev;
    bool waiting; /* the coroutine yielded for records */
    bool stopping, failed, finished;
    int exit_code;
    size_t pending; /* addresses submitted, no record yet: the struct outlives them */
    /* One reader for every record read back from bytes, over a stream fed one record at a
     * time (its 64 KiB buffer is made once, not per record). */
    vd_reader *rd;
    FILE *feed;
    const char *feed_at;
    size_t feed_left;
};
typedef struct vd_script script;

static script *script_of(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, SCRIPT_KEY);
    script *s = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return s;
}

/* ---- records as Lua tables ---- */

static void push_view(lua_State *L, const vd_record_view *v);

static void push_field(lua_State *L, const vd_record_view *v, const char *key)
{
    const char *s;
    size_t n;
    int64_t i;
    bool b;
    vd_record_view sub;
    switch (vd_record_type(v, key)) {
    case VD_FIELD_STR:
        vd_record_str(v, key, &s, &n);
        lua_pushlstring(L, s, n);
        break;
    case VD_FIELD_INT:
        if (vd_record_int(v, key, &i) == 0)
            lua_pushinteger(L, (lua_Integer)i);
        else
            lua_pushnil(L);
        break;
    case VD_FIELD_BOOL:
        vd_record_bool(v, key, &b);
        lua_pushboolean(L, b);
        break;
    case VD_FIELD_MAP:
        if (vd_record_map(v, key, &sub) == 0)
            push_view(L, &sub);
        else
            lua_pushnil(L);
        break;
    default:
        lua_pushnil(L);
        break;
    }
}

/* Every key of the map (those this version knows and those it does not). */
static void push_view(lua_State *L, const vd_record_view *v)
{
    size_t count = vd_record_count(v);
    lua_createtable(L, 0, (int)count);
    for (size_t k = 0; k < count; k++) {
        const char *key;
        size_t len;
        if (vd_record_key(v, k, &key, &len) != 0 || len >= 64 || memchr(key, 0, len)) continue;
        char name[64];
        memcpy(name, key, len);
        name[len] = '\0';
        push_field(L, v, name);
        lua_setfield(L, -2, name);
    }
}

/* The record's table, remembering its bytes so a writer writes it exactly as read. */
static void push_record(lua_State *L, const vd_record_view *v, const char *raw, size_t rawlen)
{
    push_view(L, v);
    lua_getfield(L, LUA_REGISTRYINDEX, RAW_KEY);
    lua_pushvalue(L, -2);
    lua_pushlstring(L, raw, rawlen);
    lua_rawset(L, -3);
    lua_pop(L, 1);
}

static ssize_t feed_read(void *cookie, char *buf, size_t size)
{
    script *s = cookie;
    size_t n = size < s->feed_left ? size : s->feed_left;
    memcpy(buf, s->feed_at, n);
    s->feed_at += n;
    s->feed_left -= n;
    return (ssize_t)n;
}

static void feed_close(script *s)
{
    vd_reader_free(s->rd);
    if (s->feed) fclose(s->feed);
    s->rd = NULL;
    s->feed = NULL;
}

/* The view of one record's msgpack bytes (valid until the next call); false when they do not
 * hold exactly one record. The reader reads a stream that is not a file only as far as the
 * record needs, so it never reads past the bytes it was fed. */
static bool view_of(script *s, const char *raw, size_t len, vd_record_view *v)
{
    if (!s->rd) {
        s->feed = fopencookie(s, "rb", (cookie_io_functions_t){.read = feed_read});
        if (!s->feed || !(s->rd = vd_reader_new(s->feed))) {
            feed_close(s);
            return false;
        }
    }
    s->feed_at = raw;
    s->feed_left = len;
    if (vd_reader_next(s->rd, v) == VD_READ_RECORD && s->feed_left == 0) return true;
    feed_close(s); /* a reader that failed stays failed: the next record gets a new one */
    return false;
}

/* msgpack bytes of one record → its table; false when they do not hold one. */
static bool push_record_bytes(lua_State *L, const char *raw, size_t len)
{
    vd_record_view v;
    if (!view_of(script_of(L), raw, len, &v)) return false;
    push_record(L, &v, raw, len);
    return true;
}

/* ---- resuming the script ---- */

static void script_step(script *s, int nargs);

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    script *s = arg;
    if (s->waiting) {
        s->waiting = false;
        script_step(s, 0);
    }
}

/* Wakes the script from the loop (never from inside an engine callback). */
static void wake(script *s)
{
    if (s->waiting) event_active(s->resume_ev, EV_TIMEOUT, 0);
}

/* ---- verify_all: a batch of addresses in flight ---- */

/* Records wait, packed, in a ring of `limit` slots: addresses in flight and records waiting
 * together never exceed the batch's concurrency, so memory stays flat however long the list
 * and however fast records come (a cached domain's arrive inside the submit call). */
typedef struct packed {
    char *raw; /* msgpack bytes (vd_record_pack) */
    size_t len;
} packed;

typedef struct batch {
    script *s;
    int input_ref;   /* the address iterator (a function) or table */
    lua_Integer pos; /* next index when the input is a table */
    packed *ring;    /* finished records, in order of arrival */
    size_t head, queued;
    int inflight, limit;
    bool input_done;
    bool closed; /* the iterator was garbage-collected: drop late records */
} batch;

typedef struct pending {
    batch *b;
} pending;

static void batch_free(batch *b)
{
    for (; b->queued; b->queued--, b->head = (b->head + 1) % (size_t)b->limit)
        free(b->ring[b->head].raw);
    free(b->ring);
    free(b);
}

static void on_batch_record(const struct vd_record *rec, void *arg)
{
    pending *p = arg;
    batch *b = p->b;
    free(p);
    b->inflight--;
    script *s = b->s;
    s->pending--;
    if (!s->L || b->closed) { /* the script or its iterator is gone: the record has nowhere to go */
        if (b->inflight == 0) batch_free(b);
        if (!s->L && s->pending == 0) free(s);
        return;
    }
    size_t len = 0;
    char *raw = vd_record_pack(rec, VD_FMT_MSGPACK, &len); /* record.c's schema, as bytes */
    if (!raw) {
        fprintf(stderr, "validora run: out of memory packing a record\n");
        s->failed = true;
    } else {
        b->ring[(b->head + b->queued++) % (size_t)b->limit] = (packed){raw, len};
    }
    wake(s);
}

/* The next address of the batch's input, pushed; false at its end. Runs in the script's
 * coroutine (the input may be Lua code: a file iterator, a generator). */
static bool next_input(lua_State *L, batch *b)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, b->input_ref);
    if (lua_istable(L, -1)) {
        lua_rawgeti(L, -1, ++b->pos);
        lua_remove(L, -2);
    } else {
        lua_call(L, 0, 1);
    }
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return false;
    }
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "verify_all: the input gave a %s, not an address", luaL_typename(L, -1));
    return true;
}

/* Hands addr to the caller's verifier; its failure (the engine did not start) is the
 * script's error. */
static void submit(lua_State *L, batch *b, const char *addr, size_t len)
{
    script *s = b->s;
    pending *p = malloc(sizeof *p);
    if (!p) luaL_error(L, "out of memory");
    p->b = b;
    b->inflight++;
    s->pending++;
    char err[1024] = "";
    if (s->cfg.submit(s->cfg.submit_arg, addr, len, on_batch_record, p, err, sizeof err) != 0) {
        b->inflight--;
        s->pending--;
        free(p);
        luaL_error(L, "%s", err[0] ? err : "out of memory");
    }
}

static void fill(lua_State *L, batch *b)
{
    script *s = b->s;
    while (!b->input_done && !s->stopping && b->inflight + (int)b->queued < b->limit) {
        if (!next_input(L, b)) {
            b->input_done = true;
            break;
        }
        size_t len;
        const char *addr = lua_tolstring(L, -1, &len);
        submit(L, b, addr, len);
        lua_pop(L, 1);
    }
}

static int batch_next_k(lua_State *L, int status, lua_KContext ctx);

/* The iterator verify_all returns: the next finished record, or nil when all are done. */
static int batch_next(lua_State *L)
{
    return batch_next_k(L, LUA_OK, 0);
}

static int batch_next_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    (void)ctx;
    batch *b = *(batch **)luaL_checkudata(L, lua_upvalueindex(1), BATCH_MT);
    script *s = b->s;
    fill(L, b);
    if (b->queued) {
        packed r = b->ring[b->head];
        b->head = (b->head + 1) % (size_t)b->limit;
        b->queued--;
        bool ok = push_record_bytes(L, r.raw, r.len);
        free(r.raw);
        if (!ok) return luaL_error(L, "a record did not read back");
        return 1;
    }
    if (b->inflight == 0 && (b->input_done || s->stopping)) return 0;
    fflush(NULL); /* what writers hold reaches their files while the script waits */
    s->waiting = true;
    return lua_yieldk(L, 0, 0, batch_next_k);
}

static int batch_gc(lua_State *L)
{
    batch **pb = luaL_checkudata(L, 1, BATCH_MT);
    batch *b = *pb;
    if (!b) return 0;
    *pb = NULL;
    luaL_unref(L, LUA_REGISTRYINDEX, b->input_ref);
    b->closed = true;
    if (b->inflight == 0) batch_free(b);
    return 0;
}

/* validora.verify_all(input, {concurrency = N}) → an iterator of records as they finish.
 * input: a function returning the next address (nil at the end) or a sequence of them. */
static int l_verify_all(lua_State *L)
{
    script *s = script_of(L);
    if (!lua_isfunction(L, 1) && !lua_istable(L, 1))
        return luaL_argerror(L, 1, "a function returning addresses, or a list of them");
    int limit = s->cfg.concurrency;
    if (lua_istable(L, 2)) {
        lua_getfield(L, 2, "concurrency");
        if (!lua_isnil(L, -1)) limit = (int)luaL_checkinteger(L, -1);
        lua_pop(L, 1);
    }
    if (limit < 1 || limit > VD_SCRIPT_MAX_CONCURRENCY)
        return luaL_error(L, "verify_all: concurrency must be 1..%d", VD_SCRIPT_MAX_CONCURRENCY);
    batch **pb = lua_newuserdatauv(L, sizeof *pb, 0);
    *pb = NULL;
    luaL_setmetatable(L, BATCH_MT);
    batch *b = calloc(1, sizeof *b);
    if (!b) return luaL_error(L, "out of memory");
    *pb = b;
    b->input_ref = LUA_NOREF;
    b->s = s;
    b->limit = limit;
    if (!(b->ring = calloc((size_t)limit, sizeof *b->ring))) return luaL_error(L, "out of memory");
    lua_pushvalue(L, 1);
    b->input_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushcclosure(L, batch_next, 1);
    return 1;
}

static int verify_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)L;
    (void)status;
    (void)ctx;
    return 1;
}

/* validora.verify(address) → its record (yields until it is known). */
static int l_verify(lua_State *L)
{
    luaL_checkstring(L, 1);
    lua_settop(L, 1);
    lua_createtable(L, 1, 0);
    lua_pushvalue(L, 1);
    lua_rawseti(L, -2, 1);
    lua_replace(L, 1);
    lua_pushcfunction(L, l_verify_all);
    lua_insert(L, 1);
    lua_call(L, 1, 1);
    lua_callk(L, 0, 1, 0, verify_k); /* the iterator's first record (it may yield) */
    return 1;
}

/* ---- reading ---- */

typedef struct linefile {
    FILE *f;
    char *path;
} linefile;

static int lines_gc(lua_State *L)
{
    linefile *lf = luaL_checkudata(L, 1, LINES_MT);
    if (lf->f) fclose(lf->f);
    free(lf->path);
    lf->f = NULL;
    lf->path = NULL;
    return 0;
}

/* The next address line: blanks trimmed, blank lines and '#' comments skipped (as `verify
 * -i` reads), a line longer than VD_TEXT_MAX_LINE an error naming the file and line. */
static int lines_next(lua_State *L)
{
    linefile *lf = luaL_checkudata(L, lua_upvalueindex(1), LINES_MT);
    static char buf[VD_TEXT_MAX_LINE + 2];
    while (lf->f && fgets(buf, sizeof buf, lf->f)) {
        size_t n = strlen(buf);
        if (n == sizeof buf - 1 && buf[n - 1] != '\n')
            return luaL_error(L, "%s: a line longer than %d bytes", lf->path, VD_TEXT_MAX_LINE);
        while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' ||
                     buf[n - 1] == '\t'))
            buf[--n] = '\0';
        char *p = buf;
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p || *p == '#') continue;
        lua_pushstring(L, p);
        return 1;
    }
    if (lf->f && ferror(lf->f)) return luaL_error(L, "%s: %s", lf->path, strerror(errno));
    return 0;
}

static FILE *open_or_nil(lua_State *L, const char *path, const char *mode)
{
    FILE *f = !strcmp(path, "-") ? (mode[0] == 'r' ? stdin : stdout) : fopen(path, mode);
    if (!f) {
        lua_pushnil(L);
        lua_pushfstring(L, "%s: %s", path, strerror(errno));
        lua_pushstring(L, "io_error");
    }
    return f;
}

/* validora.lines(path) → an iterator of addresses, or nil, err, detail. */
static int l_lines(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    FILE *f = open_or_nil(L, path, "r");
    if (!f) return 3;
    vd_bom_skip(f);
    linefile *lf = lua_newuserdatauv(L, sizeof *lf, 0);
    lf->f = f;
    lf->path = strdup(path);
    luaL_setmetatable(L, LINES_MT);
    lua_pushcclosure(L, lines_next, 1);
    return 1;
}

typedef struct csvfile {
    vd_csv *csv;
    int column; /* 0-based */
} csvfile;

static int csv_gc(lua_State *L)
{
    csvfile *cf = luaL_checkudata(L, 1, CSV_MT);
    if (cf->csv) vd_csv_free(cf->csv);
    cf->csv = NULL;
    return 0;
}

static int csv_next(lua_State *L)
{
    csvfile *cf = luaL_checkudata(L, lua_upvalueindex(1), CSV_MT);
    for (;;) {
        const char *const *fields;
        size_t nfields;
        int rc = vd_csv_next(cf->csv, &fields, &nfields);
        if (rc < 0) return luaL_error(L, "%s", vd_csv_error(cf->csv));
        if (rc == 0) return 0;
        if ((size_t)cf->column >= nfields || !fields[cf->column][0]) continue;
        lua_pushstring(L, fields[cf->column]);
        return 1;
    }
}

/* validora.csv(path, column [, {header = true}]) → an iterator of that column's values.
 * column: a header name (the first row is then the header) or a 1-based number. */
static int l_csv(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    bool by_name = lua_type(L, 2) == LUA_TSTRING;
    lua_Integer num = by_name ? 0 : luaL_checkinteger(L, 2);
    bool header = by_name;
    if (lua_istable(L, 3)) {
        lua_getfield(L, 3, "header");
        if (!lua_isnil(L, -1)) header = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    if (!by_name && (num < 1 || num > 4096)) return luaL_argerror(L, 2, "a column 1..4096");
    FILE *f = open_or_nil(L, path, "r");
    if (!f) return 3;
    csvfile *cf = lua_newuserdatauv(L, sizeof *cf, 0);
    cf->csv = vd_csv_new(f, path, f != stdin);
    luaL_setmetatable(L, CSV_MT);
    if (!cf->csv) return luaL_error(L, "out of memory");
    cf->column = (int)num - 1;
    if (header) {
        const char *const *fields;
        size_t n;
        int rc = vd_csv_next(cf->csv, &fields, &n);
        if (rc < 0) return luaL_error(L, "%s", vd_csv_error(cf->csv));
        if (by_name) {
            const char *want = lua_tostring(L, 2);
            cf->column = -1;
            for (size_t i = 0; rc > 0 && i < n; i++)
                if (!strcmp(fields[i], want)) cf->column = (int)i;
            if (cf->column < 0) {
                lua_pushnil(L);
                lua_pushfstring(L, "%s: no column '%s' in the header", path, want);
                lua_pushstring(L, "no_column");
                return 3;
            }
        }
    }
    lua_pushcclosure(L, csv_next, 1);
    return 1;
}

typedef struct stream {
    FILE *f;
    vd_reader *r;
    char *path;
} stream;

static int stream_gc(lua_State *L)
{
    stream *st = luaL_checkudata(L, 1, STREAM_MT);
    if (st->r) vd_reader_free(st->r);
    if (st->f && st->f != stdin) fclose(st->f);
    free(st->path);
    memset(st, 0, sizeof *st);
    return 0;
}

/* The next record of a msgpack stream; a damaged stream raises an error naming the byte. */
static int stream_next(lua_State *L)
{
    stream *st = luaL_checkudata(L, lua_upvalueindex(1), STREAM_MT);
    vd_record_view v;
    vd_read_status rs = vd_reader_next(st->r, &v);
    if (rs == VD_READ_END) return 0;
    if (rs != VD_READ_RECORD) return luaL_error(L, "%s: %s", st->path, vd_reader_error(st->r));
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    int rc = m ? vd_record_fprint(&v, VD_FMT_MSGPACK, m) : -1;
    if (m && fclose(m) != 0) rc = -1;
    if (rc != 0) {
        free(buf);
        return luaL_error(L, "out of memory");
    }
    push_record(L, &v, buf, len);
    free(buf);
    return 1;
}

/* validora.records(path) → an iterator of the records of a msgpack stream. */
static int l_records(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    FILE *f = open_or_nil(L, path, "rb");
    if (!f) return 3;
    stream *st = lua_newuserdatauv(L, sizeof *st, 0);
    memset(st, 0, sizeof *st);
    luaL_setmetatable(L, STREAM_MT);
    st->f = f;
    st->path = strdup(path);
    if (!(st->r = vd_reader_new(f))) return luaL_error(L, "out of memory");
    lua_pushcclosure(L, stream_next, 1);
    return 1;
}

/* ---- writing ---- */

typedef struct writer {
    FILE *f;
    vd_format fmt;
    bool header_done;
    long written;
} writer;

static writer *check_writer(lua_State *L)
{
    writer *w = luaL_checkudata(L, 1, WRITER_MT);
    if (!w->f) luaL_error(L, "the writer is closed");
    return w;
}

/* The record's rendering in w's format: msgpack is its bytes as they were (record.c's reader
 * renders a read record's msgpack as its bytes too), the others through record.c. */
static int render(lua_State *L, writer *w, const char *raw, size_t len)
{
    if (w->fmt == VD_FMT_MSGPACK) return fwrite(raw, 1, len, w->f) == len ? 0 : -1;
    vd_record_view v;
    if (!view_of(script_of(L), raw, len, &v)) return -1;
    if (w->fmt == VD_FMT_CSV && !w->header_done) {
        char hdr[1024];
        if (vd_record_csv_header(hdr, sizeof hdr, NULL) == 0) fputs(hdr, w->f);
        w->header_done = true;
    }
    return vd_record_fprint(&v, w->fmt, w->f);
}

/* w:write(record): the record as it was verified or read (a table the script built itself
 * is refused: records are written, not made up). Buffered: what is written reaches the file
 * when the script waits for records, and at close (whose result says whether all of it did). */
static int writer_write(lua_State *L)
{
    writer *w = check_writer(L);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getfield(L, LUA_REGISTRYINDEX, RAW_KEY);
    lua_pushvalue(L, 2);
    lua_rawget(L, -2);
    size_t len;
    const char *raw = lua_tolstring(L, -1, &len);
    if (!raw) return luaL_argerror(L, 2, "not a record from validora.verify or validora.records");
    if (render(L, w, raw, len) != 0 || ferror(w->f)) {
        lua_pushnil(L);
        lua_pushfstring(L, "writing a record: %s", strerror(errno));
        lua_pushstring(L, "io_error");
        return 3;
    }
    w->written++;
    lua_pushboolean(L, 1);
    return 1;
}

static int writer_close(lua_State *L)
{
    writer *w = luaL_checkudata(L, 1, WRITER_MT);
    if (!w->f) return 0;
    int rc = w->f == stdout ? fflush(w->f) : fclose(w->f);
    w->f = NULL;
    if (rc != 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "closing: %s", strerror(errno));
        lua_pushstring(L, "io_error");
        return 3;
    }
    lua_pushinteger(L, w->written);
    return 1;
}

/* validora.writer(path, format) → a writer of records ("msgpack", "json" or "csv"; "-" is
 * standard output), or nil, err, detail. */
static int l_writer(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    const char *fmt = luaL_optstring(L, 2, "msgpack");
    vd_format f;
    if (!strcmp(fmt, "msgpack"))
        f = VD_FMT_MSGPACK;
    else if (!strcmp(fmt, "json"))
        f = VD_FMT_JSON;
    else if (!strcmp(fmt, "csv"))
        f = VD_FMT_CSV;
    else
        return luaL_argerror(L, 2, "msgpack, json or csv");
    FILE *fp = open_or_nil(L, path, "wb");
    if (!fp) return 3;
    writer *w = lua_newuserdatauv(L, sizeof *w, 0);
    *w = (writer){.f = fp, .fmt = f};
    luaL_setmetatable(L, WRITER_MT);
    return 1;
}

/* validora.mkdir(path) → true (made, or a directory there already), or nil, err, detail: the
 * directory and its missing parents, as `mkdir -p` does (a script's OUTDIR, issue 17). */
static int l_mkdir(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    char buf[4096];
    int len = snprintf(buf, sizeof buf, "%s", path);
    errno = len <= 0 ? ENOENT : len >= (int)sizeof buf ? ENAMETOOLONG : 0;
    for (char *p = buf + 1; !errno; p++) {
        char c = *p;
        if (c != '/' && c != '\0') continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno == EEXIST) errno = 0;
        *p = c;
        if (!c) break;
    }
    struct stat st;
    if (!errno && stat(buf, &st) == 0 && !S_ISDIR(st.st_mode)) errno = ENOTDIR;
    if (!errno) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", path, strerror(errno));
    lua_pushstring(L, "io_error");
    return 3;
}

/* ---- the state ---- */

/* ---- validora.set: strings seen, as 64-bit hashes (hashset.h) ---- */

static vd_hashset *check_set(lua_State *L)
{
    vd_hashset **h = luaL_checkudata(L, 1, SET_MT);
    if (!*h) luaL_error(L, "the set is closed");
    return *h;
}

/* set:add(s) → true when s is new (now added), false when it was there. */
static int set_add(lua_State *L)
{
    vd_hashset *h = check_set(L);
    size_t n;
    const char *k = luaL_checklstring(L, 2, &n);
    int rc = vd_hashset_add(h, k, n);
    if (rc < 0) return luaL_error(L, "out of memory");
    lua_pushboolean(L, rc);
    return 1;
}

/* set:has(s) → whether s was added (or, with odds of n^2/2^65, shares a hash with one). */
static int set_has(lua_State *L)
{
    vd_hashset *h = check_set(L);
    size_t n;
    const char *k = luaL_checklstring(L, 2, &n);
    lua_pushboolean(L, vd_hashset_has(h, k, n));
    return 1;
}

static int set_len(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)vd_hashset_count(check_set(L)));
    return 1;
}

static int set_gc(lua_State *L)
{
    vd_hashset **h = luaL_checkudata(L, 1, SET_MT);
    vd_hashset_free(*h);
    *h = NULL;
    return 0;
}

/* validora.set() → an empty set of strings: 8-16 bytes an entry, whatever their length. */
static int l_set(lua_State *L)
{
    vd_hashset **h = lua_newuserdatauv(L, sizeof *h, 0);
    *h = NULL;
    luaL_setmetatable(L, SET_MT);
    if (!(*h = vd_hashset_new())) return luaL_error(L, "out of memory");
    return 1;
}

static const luaL_Reg VALIDORA_FUNCS[] = {
    {"verify", l_verify},   {"verify_all", l_verify_all}, {"lines", l_lines}, {"csv", l_csv},
    {"records", l_records}, {"writer", l_writer},         {"mkdir", l_mkdir}, {"set", l_set},
    {NULL, NULL},
};

static void metatable(lua_State *L, const char *name, lua_CFunction gc, const luaL_Reg *methods)
{
    luaL_newmetatable(L, name);
    if (gc) {
        lua_pushcfunction(L, gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, gc);
        lua_setfield(L, -2, "__close");
    }
    if (methods) {
        lua_newtable(L);
        luaL_setfuncs(L, methods, 0);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
}

static void script_finish(script *s, int code)
{
    s->finished = true;
    s->exit_code = code;
    event_base_loopbreak(s->base);
}

/* Resumes the coroutine; on its end or error, the script is over. */
static void script_step(script *s, int nargs)
{
    int nres = 0;
    int st = lua_resume(s->co, s->L, nargs, &nres);
    if (st == LUA_YIELD) {
        lua_pop(s->co, nres);
        if (!s->waiting) {
            fprintf(stderr, "validora run: the script yielded outside validora.verify*\n");
            script_finish(s, VD_SCRIPT_ERROR);
        }
        return;
    }
    if (st != LUA_OK) {
        const char *msg = lua_tostring(s->co, -1);
        luaL_traceback(s->L, s->co, msg ? msg : "error", 0);
        fprintf(stderr, "validora run: %s\n", lua_tostring(s->L, -1));
        lua_pop(s->L, 1);
        script_finish(s, VD_SCRIPT_ERROR);
        return;
    }
    int code = 0;
    if (nres > 0 && lua_isinteger(s->co, -nres)) code = (int)lua_tointeger(s->co, -nres);
    if (nres > 0 && lua_isboolean(s->co, -nres) && !lua_toboolean(s->co, -nres)) code = 1;
    script_finish(s, s->failed ? VD_SCRIPT_ERROR : code);
}

void vd_script_stop(vd_script *s, bool now)
{
    s->stopping = true;
    fprintf(stderr, "validora run: stopping: no new addresses%s\n", now ? "; now" : "");
    if (now) script_finish(s, VD_SCRIPT_ERROR);
    wake(s);
}

static int load_script(script *s)
{
    lua_State *L = s->L;
    int argc = s->cfg.argc;
    lua_createtable(L, argc, 1);
    lua_pushstring(L, s->cfg.path);
    lua_rawseti(L, -2, 0);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, s->cfg.argv[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setglobal(L, "arg");
    s->co = lua_newthread(L);
    s->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    if (luaL_loadfilex(s->co, s->cfg.path, "t") != LUA_OK) {
        fprintf(stderr, "validora run: %s\n", lua_tostring(s->co, -1));
        return -1;
    }
    for (int i = 0; i < argc; i++)
        lua_pushstring(s->co, s->cfg.argv[i]);
    return argc;
}

static void setup_state(script *s)
{
    lua_State *L = s->L;
    lua_pushlightuserdata(L, s);
    lua_setfield(L, LUA_REGISTRYINDEX, SCRIPT_KEY);
    lua_newtable(L);
    lua_newtable(L);
    lua_pushstring(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, RAW_KEY);
    static const luaL_Reg writer_methods[] = {
        {"write", writer_write}, {"close", writer_close}, {NULL, NULL}};
    metatable(L, WRITER_MT, writer_close, writer_methods);
    metatable(L, STREAM_MT, stream_gc, NULL);
    metatable(L, LINES_MT, lines_gc, NULL);
    metatable(L, CSV_MT, csv_gc, NULL);
    metatable(L, BATCH_MT, batch_gc, NULL);
    static const luaL_Reg set_methods[] = {{"add", set_add}, {"has", set_has}, {NULL, NULL}};
    metatable(L, SET_MT, set_gc, set_methods);
    luaL_getmetatable(L, SET_MT);
    lua_pushcfunction(L, set_len);
    lua_setfield(L, -2, "__len");
    lua_pop(L, 1);
    luaL_newlib(L, VALIDORA_FUNCS);
    lua_pushstring(L, VALIDORA_VERSION);
    lua_setfield(L, -2, "version");
    lua_setglobal(L, "validora");
}

/* Where require looks: the script's directory, then the module directories. */
static lua_State *new_state(const vd_script_config *cfg, char *err, size_t errlen)
{
    size_t n = cfg->nmodule_dirs + 1;
    const char **dirs = calloc(n, sizeof *dirs);
    const char *slash = strrchr(cfg->path, '/');
    char *own = slash ? strndup(cfg->path, (size_t)(slash - cfg->path)) : strdup(".");
    lua_State *L = NULL;
    if (dirs && own) {
        dirs[0] = own;
        for (size_t i = 1; i < n; i++)
            dirs[i] = cfg->module_dirs[i - 1];
        L = vd_lua_new(VD_LUA_SCRIPT, NULL, dirs, n, err, errlen);
    } else {
        snprintf(err, errlen, "out of memory");
    }
    free(own);
    free(dirs);
    return L;
}

vd_script *vd_script_new(const vd_script_config *cfg, char *err, size_t errlen)
{
    script *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->cfg = *cfg;
    s->base = cfg->base;
    if (!(s->L = new_state(cfg, err, errlen))) {
        free(s);
        return NULL;
    }
    if (!(s->resume_ev = event_new(s->base, -1, 0, on_resume, s))) {
        snprintf(err, errlen, "out of memory");
        vd_script_free(s);
        return NULL;
    }
    setup_state(s);
    return s;
}

int vd_script_run(vd_script *s)
{
    int nargs = load_script(s);
    if (nargs < 0) return VD_SCRIPT_ERROR;
    script_step(s, nargs);
    if (!s->finished) event_base_dispatch(s->base);
    return s->finished ? s->exit_code : VD_SCRIPT_ERROR;
}

void vd_script_free(vd_script *s)
{
    if (!s) return;
    if (s->L) vd_sandbox_close(s->L); /* batches still in flight see s->L NULL */
    s->L = NULL;
    feed_close(s);
    if (s->resume_ev) event_free(s->resume_ev);
    s->resume_ev = NULL;
    if (s->pending == 0) free(s);
}
