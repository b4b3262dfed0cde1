/* csv_reader.c — the BOM and CSV rows on libcsv (csv_reader.h). libcsv pushes fields and row ends
 * through callbacks as it parses a chunk; the rows of a chunk wait in a small queue until asked
 * for. A UTF-8 byte-order mark at the start is dropped (an Excel CSV's header would otherwise start
 * with it). Does not own: which column holds the address (the caller). */
#include <csv.h>
#include <stdlib.h>
#include <string.h>
#include "csv_reader.h"

size_t vd_bom_len(const char *s, size_t n)
{
    return n >= 3 && !memcmp(s, "\xef\xbb\xbf", 3) ? 3 : 0;
}

void vd_bom_skip(FILE *f)
{
    unsigned char got[3];
    size_t n = 0;
    int c;
    while (n < 3 && (c = getc(f)) != EOF) {
        got[n++] = (unsigned char)c;
        if (got[n - 1] != (unsigned char)"\xef\xbb\xbf"[n - 1]) break;
    }
    if (n == 3 && !memcmp(got, "\xef\xbb\xbf", 3)) return;
    while (n > 0) /* glibc keeps more than one byte pushed back */
        ungetc(got[--n], f);
}

typedef struct row {
    char **fields;
    size_t n, bytes;
} row;

struct vd_csv {
    FILE *f;
    bool close, eof, failed;
    char name[256];
    char err[512];
    struct csv_parser p;
    row building;
    row *queue; /* complete rows not yet handed out */
    size_t qhead, qlen, qcap;
    row current; /* the row last handed out */
    size_t rows;
    bool started; /* the first chunk was read (a byte-order mark is dropped from it) */
    const char **view;
};

static void row_free(row *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->fields[i]);
    free(r->fields);
    memset(r, 0, sizeof *r);
}

static void fail(vd_csv *c, const char *what)
{
    if (!c->failed)
        snprintf(c->err, sizeof c->err, "%s: row %zu: %s", c->name, c->rows + c->qlen + 1, what);
    c->failed = true;
}

static void on_field(void *s, size_t len, void *arg)
{
    vd_csv *c = arg;
    row *r = &c->building;
    if (c->failed) return;
    if (r->n >= CLI_CSV_MAX_FIELDS || r->bytes + len > CLI_CSV_MAX_ROW) {
        fail(c, "row too long (at most 1 MiB and 4096 fields)");
        return;
    }
    char **grown = realloc(r->fields, (r->n + 1) * sizeof *grown);
    char *f = malloc(len + 1);
    if (!grown || !f) {
        free(f);
        if (grown) r->fields = grown;
        fail(c, "out of memory");
        return;
    }
    r->fields = grown;
    if (len) memcpy(f, s, len);
    f[len] = '\0';
    if (memchr(f, '\0', len)) {
        free(f);
        fail(c, "a NUL byte in a field");
        return;
    }
    r->fields[r->n++] = f;
    r->bytes += len;
}

static void on_row(int term, void *arg)
{
    (void)term;
    vd_csv *c = arg;
    if (c->failed) return;
    if (c->qlen == c->qcap) {
        size_t cap = c->qcap ? 2 * c->qcap : 16;
        row *q = malloc(cap * sizeof *q);
        if (!q) {
            fail(c, "out of memory");
            return;
        }
        for (size_t i = 0; i < c->qlen; i++)
            q[i] = c->queue[(c->qhead + i) % c->qcap];
        free(c->queue);
        c->queue = q;
        c->qcap = cap;
        c->qhead = 0;
    }
    c->queue[(c->qhead + c->qlen++) % c->qcap] = c->building;
    memset(&c->building, 0, sizeof c->building);
}

vd_csv *vd_csv_new(FILE *f, const char *name, bool close)
{
    vd_csv *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    if (csv_init(&c->p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) != 0) {
        free(c);
        return NULL;
    }
    c->f = f;
    c->close = close;
    snprintf(c->name, sizeof c->name, "%s", name);
    return c;
}

/* Parses chunks until a row is queued or the input ends. */
static void feed(vd_csv *c)
{
    char buf[16384];
    while (!c->qlen && !c->eof && !c->failed) {
        size_t n = fread(buf, 1, sizeof buf, c->f), bom = 0;
        if (!c->started) {
            c->started = true;
            bom = vd_bom_len(buf, n);
        }
        if (n > bom && csv_parse(&c->p, buf + bom, n - bom, on_field, on_row, c) != n - bom) {
            fail(c, csv_strerror(csv_error(&c->p)));
            return;
        }
        if (n < sizeof buf) {
            if (ferror(c->f)) {
                fail(c, "read error");
                return;
            }
            c->eof = true;
            if (csv_fini(&c->p, on_field, on_row, c) != 0)
                fail(c, "the file ends inside a quoted field");
        }
    }
}

int vd_csv_next(vd_csv *c, const char *const **fields, size_t *n)
{
    row_free(&c->current);
    feed(c);
    if (c->failed) return -1;
    if (!c->qlen) return 0;
    c->current = c->queue[c->qhead];
    c->qhead = (c->qhead + 1) % c->qcap;
    c->qlen--;
    c->rows++;
    *fields = (const char *const *)c->current.fields;
    *n = c->current.n;
    if (!c->current.n) {
        static const char *const EMPTY[] = {""};
        *fields = EMPTY;
    }
    return 1;
}

const char *vd_csv_error(const vd_csv *c)
{
    return c->err;
}

void vd_csv_free(vd_csv *c)
{
    if (!c) return;
    row_free(&c->current);
    row_free(&c->building);
    while (c->qlen) {
        row_free(&c->queue[c->qhead]);
        c->qhead = (c->qhead + 1) % c->qcap;
        c->qlen--;
    }
    free(c->queue);
    csv_free(&c->p);
    if (c->close && c->f) fclose(c->f);
    free(c);
}
