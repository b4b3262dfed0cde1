/* playback.c — a rule test as data (playback.h): problems, quoting, names, freeing.
 * Owns: the list of one-line problems of a test, quoting bytes for them, looking a DNS name
 * up, freeing a test. Does not own: loading (testfile.c), serving (playback_*.c). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "playback.h"

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

/* ---------------------------------------------------------------- the test */

int vd_pb_name_cmp(const void *a, const void *b)
{
    return strcmp(((const vd_pb_name *)a)->name, ((const vd_pb_name *)b)->name);
}

const vd_pb_name *vd_pb_find_name(const vd_pb_test *t, const char *name)
{
    vd_pb_name key = {.name = (char *)name};
    return t->nnames ? bsearch(&key, t->names, t->nnames, sizeof key, vd_pb_name_cmp) : NULL;
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
        vd_transcript_script_clear(&s->script);
        vd_transcript_reply_clear(&s->banner);
        for (size_t k = 0; k < s->nverbs; k++) {
            for (size_t r = 0; r < s->verbs[k].n; r++)
                vd_transcript_reply_clear(&s->verbs[k].replies[r]);
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
