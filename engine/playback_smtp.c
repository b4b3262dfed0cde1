/* playback_smtp.c — the SMTP playback server of a rule test (playback_smtp.h).
 * Owns: a listener per mail host of the test (its 127.0.0.x, one port for all), which
 * session a connection plays (the next one not yet opened for its host), playing it (a
 * transcript's steps in order, or inline replies by verb with defaults for the rest), the
 * problems it sees (a command the script did not expect, a session never connected, a
 * script not played to its end).
 * Does not own: the sessions (playback.h, loaded by testfile.c), reading transcripts
 * (transcript.c), SMTP's client side (smtp.c). No Lua. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include "playback_smtp.h"

typedef struct pb_conn pb_conn;

typedef struct pb_listener {
    struct evconnlistener *l;
    vd_pb_smtp *w;
    const vd_pb_name *host;
} pb_listener;

struct vd_pb_smtp {
    struct event_base *base;
    vd_pb_test *t;
    vd_pb_msgs *msgs;
    pb_listener *listeners;
    size_t nlisteners;
    int port;
    pb_conn *conns;
    size_t nconns, accepted;
};

#define CMD_MAX 4096 /* a command line longer than this is not one our client sends */

struct pb_conn {
    vd_pb_smtp *w;
    pb_conn *prev, *next;
    struct bufferevent *bev;
    vd_pb_session *s; /* NULL: no session was left for it */
    size_t num;       /* the session's number, from 1 */
    const vd_pb_name *host;
    bool closing, hung;
};

static void conn_free(pb_conn *c)
{
    vd_pb_smtp *w = c->w;
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
static bool conn_send(pb_conn *c, const vd_transcript_reply *r)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    for (size_t i = 0; i < r->nlines; i++) {
        evbuffer_add(out, r->lines[i], r->lens[i]);
        evbuffer_add(out, "\r\n", 2);
    }
    if (r->then == VD_TRANSCRIPT_HANG) c->hung = true;
    if (r->then != VD_TRANSCRIPT_CLOSE) return true;
    c->closing = true;
    bufferevent_disable(c->bev, EV_READ);
    if (evbuffer_get_length(out) == 0) {
        conn_free(c);
        return false;
    }
    return true; /* on_write closes it once the lines are out */
}

static bool conn_send_text(pb_conn *c, const char *line, vd_transcript_then then)
{
    char *l = (char *)line;
    size_t len = strlen(line);
    vd_transcript_reply r = {.lines = &l, .lens = &len, .nlines = 1, .then = then};
    return conn_send(c, &r);
}

static bool script_ended(pb_conn *c, const char *line, size_t len)
{
    char q[200];
    vd_pb_quote(q, sizeof q, line, len, 120);
    conn_note(c, "the client sent %s after the script ended", q);
    return conn_send_text(c, "421 4.3.0 playback script ended", VD_TRANSCRIPT_CLOSE);
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
    vd_transcript_verb(line, len, verb);
    bool quit = !strcmp(verb, "QUIT");
    vd_pb_session *s = c->s;
    if (!s->inline_) {
        if (s->next_step >= s->script.nsteps) {
            /* QUIT is the client's polite close, sent when its pool lets the session go:
             * a capture that stopped before it still accepts it. */
            if (quit) return conn_send_text(c, "221 2.0.0 Bye", VD_TRANSCRIPT_CLOSE);
            return script_ended(c, line, len);
        }
        const vd_transcript_step *st = &s->script.steps[s->next_step];
        if (strcmp(st->verb, verb) != 0) {
            char want[200];
            vd_pb_quote(q, sizeof q, line, len, 120);
            vd_pb_quote(want, sizeof want, st->cmd, strlen(st->cmd), 120);
            conn_note(c, "line %d expects %s, the client sent %s", st->lineno, want, q);
            return conn_send_text(c, "421 4.3.0 playback: not the command of the script",
                                  VD_TRANSCRIPT_CLOSE);
        }
        s->next_step++;
        if (quit && st->reply.then == VD_TRANSCRIPT_GO_ON) {
            vd_transcript_reply r = st->reply;
            r.then = VD_TRANSCRIPT_CLOSE;
            return conn_send(c, &r);
        }
        return conn_send(c, &st->reply);
    }
    for (size_t i = 0; i < s->nverbs; i++) {
        vd_pb_verb *v = &s->verbs[i];
        if (strcmp(v->verb, verb) != 0) continue;
        if (v->every_time) return conn_send(c, &v->replies[0]);
        if (v->used < v->n) return conn_send(c, &v->replies[v->used++]);
        if (quit) return conn_send_text(c, "221 2.0.0 Bye", VD_TRANSCRIPT_CLOSE);
        return script_ended(c, line, len);
    }
    const char *def = inline_default(verb);
    if (def) return conn_send_text(c, def, quit ? VD_TRANSCRIPT_CLOSE : VD_TRANSCRIPT_GO_ON);
    vd_pb_quote(q, sizeof q, line, len, 120);
    conn_note(c, "the client sent %s, which the session has no reply for", q);
    return conn_send_text(c, "421 4.3.0 playback: no reply for this command", VD_TRANSCRIPT_CLOSE);
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
            alive = conn_send_text(c, "500 5.5.2 line too long", VD_TRANSCRIPT_CLOSE);
        }
        free(line);
        if (!alive) return;
    }
    if (evbuffer_get_length(in) > CMD_MAX) {
        conn_note(c, "a command line longer than %d bytes", CMD_MAX);
        evbuffer_drain(in, evbuffer_get_length(in));
        conn_send_text(c, "500 5.5.2 line too long", VD_TRANSCRIPT_CLOSE);
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
    vd_pb_smtp *w = pl->w;
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
        conn_send_text(c, "421 4.3.0 playback: no session left", VD_TRANSCRIPT_CLOSE);
        return;
    }
    conn_send(c, c->s->inline_ ? &c->s->banner : &c->s->script.banner);
}

static void listeners_free(vd_pb_smtp *w)
{
    for (size_t i = 0; i < w->nlisteners; i++)
        if (w->listeners[i].l) evconnlistener_free(w->listeners[i].l);
    free(w->listeners);
    w->listeners = NULL;
    w->nlisteners = 0;
}

/* One listener per name with an A answer, all on one port: the engine has one smtp_port. */
static int listen_all(vd_pb_smtp *w, char *err, size_t errlen)
{
    size_t hosts = 0;
    for (size_t i = 0; i < w->t->nnames; i++)
        hosts += w->t->names[i].a;
    w->port = 25; /* never used when nothing has an address */
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
            w->port = port;
            return 0;
        }
        listeners_free(w);
    }
    snprintf(err, errlen, "SMTP playback: no port free on every loopback address");
    return -1;
}

vd_pb_smtp *vd_pb_smtp_new(struct event_base *base, vd_pb_test *t, vd_pb_msgs *msgs, char *err,
                           size_t errlen)
{
    vd_pb_smtp *w = calloc(1, sizeof *w);
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    w->base = base;
    w->t = t;
    w->msgs = msgs;
    for (size_t i = 0; i < t->nsessions; i++) {
        t->sessions[i].opened = t->sessions[i].broken = false;
        t->sessions[i].next_step = 0;
        for (size_t k = 0; k < t->sessions[i].nverbs; k++)
            t->sessions[i].verbs[k].used = 0;
    }
    if (listen_all(w, err, errlen) != 0) {
        vd_pb_smtp_free(w);
        return NULL;
    }
    return w;
}

int vd_pb_smtp_port(const vd_pb_smtp *w)
{
    return w->port;
}

size_t vd_pb_smtp_connections(const vd_pb_smtp *w)
{
    return w->nconns;
}

void vd_pb_smtp_close(vd_pb_smtp *w)
{
    while (w->conns)
        conn_free(w->conns);
    listeners_free(w);
}

/* Is everything after step i of s a QUIT (which the client sends when it pleases)? */
static bool only_quit_left(const vd_pb_session *s)
{
    for (size_t i = s->next_step; i < s->script.nsteps; i++)
        if (strcmp(s->script.steps[i].verb, "QUIT") != 0) return false;
    return true;
}

void vd_pb_smtp_finish(vd_pb_smtp *w)
{
    vd_pb_smtp_close(w);
    for (size_t i = 0; i < w->t->nsessions; i++) {
        const vd_pb_session *s = &w->t->sessions[i];
        if (!s->opened) {
            vd_pb_msg(w->msgs, "session %zu (%s) was never connected (%zu connection%s made)",
                      i + 1, s->what, w->accepted, w->accepted == 1 ? "" : "s");
            continue;
        }
        if (s->broken) continue;
        if (!s->inline_ && !only_quit_left(s)) {
            const vd_transcript_step *st = &s->script.steps[s->next_step];
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

void vd_pb_smtp_free(vd_pb_smtp *w)
{
    if (!w) return;
    vd_pb_smtp_close(w);
    free(w);
}
