/* test_smtp.c — the SMTP client session against smtp-sink (a real server) and tarpit.py
 * (hostile servers), on loopback ports chosen at run time.
 *
 * Each case runs a script: open, then one command per reply (MAIL/RCPT/RSET), then QUIT
 * or a free from inside the callback; every reply is recorded and checked afterwards.
 * A recording vd_smtp_trace checks what a session tells its transcript (test_trace, and the
 * handshake in test_starttls); the transcript file itself is test_transcript.c's. */
#include "destination.h"
#include "check.h"
#include "smtp.h"
#include "tls.h"
#include "smtp_servers.h"

#include <event2/event.h>

size_t vd_smtp_input_peak_(const vd_smtp *s); /* test hook in smtp.c */

enum { S_END, S_MAIL, S_RCPT, S_RSET, S_QUIT, S_FREE, S_RCPT2, S_LATER };
typedef struct step {
    int op;
    const char *arg;
} step;

typedef struct rec {
    vd_smtp_err err;
    int code;
    char enhanced[16];
    char text[1024];
    char errmsg[256];
    bool usable;
    double at;
} rec;

typedef struct run {
    struct event_base *base;
    vd_smtp *s;
    const step *steps;
    int next;
    int n;
    rec r[16];
    bool ext_starttls, ext_pipelining, ext_smtputf8, ext_enhanced, ext_size;
    int commands;
    bool tls, tls_verified;
    size_t peak;
    double t0;
    bool ended; /* script finished: QUIT or free */
} run;

/* ---- the trace (what a transcript is told) ------------------------------------------ */

typedef struct trace_rec {
    int starts, ends, late; /* late: calls after end, must stay 0 */
    char mx[64];
    char addr[64];
    char lines[160][160]; /* "> EHLO x", "< 220 hi", "# tls TLSv1.3 ... yes" */
    int n;
    vd_smtp_end how;
    vd_smtp_err err;
    bool refuse; /* start returns NULL */
} trace_rec;

static void *tr_start(void *arg, const char *mx, const struct sockaddr *addr, socklen_t len)
{
    trace_rec *t = arg;
    t->starts++;
    snprintf(t->mx, sizeof t->mx, "%s", mx ? mx : "(null)");
    const struct sockaddr_in *a = (const struct sockaddr_in *)addr;
    char ip[INET_ADDRSTRLEN] = "?";
    if (addr->sa_family == AF_INET && len >= (socklen_t)sizeof *a)
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
    snprintf(t->addr, sizeof t->addr, "%s:%d", ip, ntohs(a->sin_port));
    return t->refuse ? NULL : t;
}

static void tr_line(void *h, bool sent, const char *line, size_t len)
{
    trace_rec *t = h;
    if (t->ends) t->late++;
    if (t->n < 160) snprintf(t->lines[t->n++], 160, "%c %.*s", sent ? '>' : '<', (int)len, line);
}

static void tr_tls(void *h, const char *protocol, const char *cipher, bool verified)
{
    trace_rec *t = h;
    if (t->ends) t->late++;
    if (t->n < 160)
        snprintf(t->lines[t->n++], 160, "# tls %s %s %s", protocol, cipher,
                 verified ? "yes" : "no");
}

static void tr_end(void *h, vd_smtp_end how, vd_smtp_err err)
{
    trace_rec *t = h;
    t->ends++;
    t->how = how;
    t->err = err;
}

static const vd_smtp_trace TRACE = {tr_start, tr_line, tr_tls, tr_end, NULL};

static void on_reply(vd_smtp *s, const vd_smtp_reply *r, void *arg);

static void quit_later(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    vd_smtp_quit(arg);
}

static void do_next(run *u)
{
    const step *st = &u->steps[u->next];
    if (st->op != S_END) u->next++;
    switch (st->op) {
    case S_MAIL:
        vd_smtp_mail(u->s, st->arg, on_reply, u);
        break;
    case S_RCPT:
        vd_smtp_rcpt(u->s, st->arg, on_reply, u);
        break;
    case S_RCPT2: /* two commands back to back: the second must get BUSY */
        vd_smtp_rcpt(u->s, st->arg, on_reply, u);
        vd_smtp_rcpt(u->s, st->arg, on_reply, u);
        break;
    case S_RSET:
        vd_smtp_rset(u->s, on_reply, u);
        break;
    case S_FREE:
        u->commands = vd_smtp_commands(u->s);
        vd_smtp_free(u->s);
        u->ended = true;
        break;
    case S_LATER: { /* QUIT in 300 ms: what the server does meanwhile is seen */
        u->commands = vd_smtp_commands(u->s);
        struct timeval tv = {0, 300000};
        event_base_once(u->base, -1, EV_TIMEOUT, quit_later, u->s, &tv);
        u->ended = true;
        break;
    }
    case S_QUIT:
    case S_END:
    default:
        u->commands = vd_smtp_commands(u->s);
        vd_smtp_quit(u->s);
        u->ended = true;
        break;
    }
}

static void on_reply(vd_smtp *s, const vd_smtp_reply *r, void *arg)
{
    run *u = arg;
    if (u->n >= 16) return;
    rec *x = &u->r[u->n++];
    x->err = r->err;
    x->code = r->code;
    snprintf(x->enhanced, sizeof x->enhanced, "%s", r->enhanced);
    snprintf(x->text, sizeof x->text, "%s", r->text);
    snprintf(x->errmsg, sizeof x->errmsg, "%s", r->errmsg ? r->errmsg : "");
    x->usable = vd_smtp_usable(s);
    x->at = now_s() - u->t0;
    if (u->n == 1) {
        u->ext_starttls = vd_smtp_has_ext(s, "STARTTLS");
        u->ext_pipelining = vd_smtp_has_ext(s, "pipelining");
        u->ext_smtputf8 = vd_smtp_has_ext(s, "SMTPUTF8");
        u->ext_enhanced = vd_smtp_has_ext(s, "ENHANCEDSTATUSCODES");
        u->ext_size = vd_smtp_has_ext(s, "SIZE");
        u->peak = vd_smtp_input_peak_(s);
        u->tls = vd_smtp_tls(s);
        u->tls_verified = vd_smtp_tls_verified(s);
    }
    if (u->ended) return; /* a BUSY reply to the second of two back-to-back commands */
    if (r->err == VD_SMTP_ERR_BUSY && u->n > 1 && u->r[u->n - 2].err == VD_SMTP_OK &&
        u->steps[u->next - 1].op == S_RCPT2)
        return; /* the first command's reply is still due */
    do_next(u);
}

/* Runs steps against host:port; returns after the loop drained (session freed). */
static void run_script(run *u, const char *host, int port, const vd_smtp_opts *o, const step *steps)
{
    memset(u, 0, sizeof *u);
    u->base = event_base_new();
    u->steps = steps;
    u->t0 = now_s();
    struct sockaddr_in sa = sin_of(host, port);
    u->s = vd_smtp_open(u->base, (struct sockaddr *)&sa, sizeof sa, o, on_reply, u);
    CHECK(u->s != NULL);
    if (u->s) event_base_dispatch(u->base);
    event_base_free(u->base);
}

static vd_smtp_opts opts(int cmd_ms)
{
    vd_smtp_opts o = {
        .helo = "probe.validora.test", .connect_timeout_ms = 2000, .command_timeout_ms = cmd_ms};
    return o;
}

static void test_full_session(void)
{
    int port = free_port("127.0.0.1");
    pid_t pid = start_sink("127.0.0.1", port, NULL);
    static const step steps[] = {{S_MAIL, ""},
                                 {S_RCPT, "alice@valid.test"},
                                 {S_RSET, NULL},
                                 {S_MAIL, "probe@validora.test"},
                                 {S_RCPT, "bob@valid.test"},
                                 {S_QUIT, NULL},
                                 {S_END, NULL}};
    run u;
    vd_smtp_opts o = opts(5000);
    run_script(&u, "127.0.0.1", port, &o, steps);
    CHECK(u.n == 6);
    CHECK(u.r[0].err == VD_SMTP_OK && u.r[0].code == 250 && u.r[0].usable);
    /* the multi-line EHLO reply: lines joined with \n, codes stripped */
    CHECK_MSG(strncmp(u.r[0].text, "smtp-sink\n", 10) == 0, "%s", u.r[0].text);
    CHECK(strstr(u.r[0].text, "\nENHANCEDSTATUSCODES\n") != NULL);
    CHECK(u.ext_pipelining && u.ext_enhanced && !u.ext_starttls && !u.ext_smtputf8);
    CHECK(u.r[1].code == 250);
    CHECK_STR(u.r[1].enhanced, "2.1.0");
    CHECK_STR(u.r[1].text, "Ok");
    CHECK(u.r[2].code == 250 && strcmp(u.r[2].enhanced, "2.1.5") == 0);
    CHECK(u.r[3].code == 250 && u.r[3].usable); /* RSET */
    CHECK(u.r[4].code == 250 && u.r[5].code == 250);
    CHECK(u.commands == 6); /* EHLO MAIL RCPT RSET MAIL RCPT */
    stop_server(pid);
}

static void test_helo_fallback(void)
{
    int port = free_port("127.0.0.1");
    static const char *const sink_opts[] = {"-e", NULL};
    pid_t pid = start_sink("127.0.0.1", port, sink_opts);
    static const step steps[] = {{S_MAIL, ""}, {S_RCPT, "alice@valid.test"}, {S_END, NULL}};
    run u;
    vd_smtp_opts o = opts(5000);
    run_script(&u, "127.0.0.1", port, &o, steps);
    CHECK(u.n == 3);
    CHECK(u.r[0].err == VD_SMTP_OK && u.r[0].code == 250);
    CHECK(!u.ext_pipelining && !u.ext_enhanced);
    CHECK(u.r[1].code == 250 && u.r[2].code == 250);
    CHECK(u.commands == 4); /* EHLO (500) HELO MAIL RCPT */
    stop_server(pid);

    /* the tarpit answers EHLO with 502 */
    port = free_port("127.0.0.1");
    pid = start_tarpit("127.0.0.1", port, "noehlo", NULL);
    run_script(&u, "127.0.0.1", port, &o, steps);
    CHECK(u.n == 3 && u.r[0].code == 250 && u.r[2].code == 250);
    CHECK(u.commands == 4);
    stop_server(pid);
}

static void test_rejections(void)
{
    /* smtp-sink: MAIL rejected 5xx, RCPT answered 421 (then the session is not usable) */
    int port = free_port("127.0.0.1");
    static const char *const sink_opts[] = {"-f", "MAIL", "-Q", "RCPT", NULL};
    pid_t pid = start_sink("127.0.0.1", port, sink_opts);
    static const step steps[] = {
        {S_MAIL, ""}, {S_RCPT, "alice@valid.test"}, {S_RCPT, "x@y.test"}, {S_END, NULL}};
    run u;
    vd_smtp_opts o = opts(5000);
    run_script(&u, "127.0.0.1", port, &o, steps);
    CHECK(u.n == 4);
    CHECK(u.r[1].err == VD_SMTP_OK && u.r[1].code == 500 && u.r[1].usable);
    CHECK_STR(u.r[1].enhanced, "5.3.0");
    CHECK(u.r[2].err == VD_SMTP_OK && u.r[2].code == 421 && !u.r[2].usable);
    CHECK_STR(u.r[2].enhanced, "4.0.0");
    CHECK(u.r[3].err == VD_SMTP_ERR_BUSY);
    stop_server(pid);

    /* the tarpit: multi-line 550 5.1.1, 452 4.2.2, then 421 */
    port = free_port("127.0.0.1");
    pid = start_tarpit("127.0.0.1", port, "ok", NULL);
    static const step steps2[] = {{S_MAIL, ""},
                                  {S_RCPT, "nobody@valid.test"},
                                  {S_RCPT, "full@valid.test"},
                                  {S_RCPT, "bye@valid.test"},
                                  {S_RCPT, "alice@valid.test"},
                                  {S_END, NULL}};
    run_script(&u, "127.0.0.1", port, &o, steps2);
    CHECK(u.n == 6);
    CHECK(u.ext_smtputf8 && u.ext_size && u.ext_pipelining);
    CHECK(u.r[2].code == 550);
    CHECK_STR(u.r[2].enhanced, "5.1.1");
    CHECK_STR(u.r[2].text,
              "<nobody>: Recipient address rejected:\nUser unknown in virtual mailbox table");
    CHECK(u.r[2].usable);
    CHECK(u.r[3].code == 452);
    CHECK_STR(u.r[3].enhanced, "4.2.2");
    CHECK_STR(u.r[3].text, "Mailbox full");
    CHECK(u.r[4].code == 421 && !u.r[4].usable);
    CHECK(u.r[5].err == VD_SMTP_ERR_BUSY);
    stop_server(pid);
}

/* A 421 after which the server keeps the connection open: only the reply says the session
 * is over, and then only QUIT goes out. */
static void test_421_kept_open(void)
{
    char log[128];
    snprintf(log, sizeof log, "/tmp/vd-smtp-test-%d.log", (int)getpid());
    unlink(log);
    int port = free_port("127.0.0.1");
    pid_t pid = start_stub421("127.0.0.1", port, log);
    static const step steps[] = {{S_MAIL, ""},
                                 {S_RCPT, "alice@valid.test"},
                                 {S_RCPT, "bye@valid.test"},
                                 {S_RCPT, "carol@valid.test"},
                                 {S_END, NULL}};
    run u;
    vd_smtp_opts o = opts(5000);
    run_script(&u, "127.0.0.1", port, &o, steps);
    CHECK(u.n == 5);
    CHECK(u.r[2].err == VD_SMTP_OK && u.r[2].code == 250 && u.r[2].usable);
    CHECK(u.r[3].err == VD_SMTP_OK && u.r[3].code == 421 && !u.r[3].usable);
    CHECK_STR(u.r[3].enhanced, "4.7.0");
    CHECK(u.r[4].err == VD_SMTP_ERR_BUSY && !u.r[4].usable);
    stop_stub(pid);
    CHECK(count_lines(log, "C: RCPT ") == 2); /* nothing after the 421 ... */
    CHECK(count_lines(log, "C: QUIT") == 1);  /* ... but QUIT */
    unlink(log);
}

/* Without --allow-private-destinations, a loopback address is refused at vd_smtp_open: the
 * error through the callback, and no connection reaches the listener. */
static void test_forbidden_destination(void)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = sin_of("127.0.0.1", 0);
    socklen_t len = sizeof sa;
    bind(l, (struct sockaddr *)&sa, sizeof sa);
    listen(l, 8);
    getsockname(l, (struct sockaddr *)&sa, &len);
    static const step steps[] = {{S_END, NULL}};
    run u;
    vd_smtp_opts o = opts(5000);
    vd_destination_allow_private(false);
    run_script(&u, "127.0.0.1", ntohs(sa.sin_port), &o, steps);
    vd_destination_allow_private(true);
    CHECK(u.n == 1 && u.r[0].err == VD_SMTP_ERR_FORBIDDEN && u.r[0].code == 0);
    CHECK_STR(vd_smtp_err_name(VD_SMTP_ERR_FORBIDDEN), "forbidden_destination");
    CHECK_MSG(strstr(u.r[0].errmsg, "127.0.0.1") != NULL, "%s", u.r[0].errmsg);
    int fl = fcntl(l, F_GETFL);
    fcntl(l, F_SETFL, fl | O_NONBLOCK);
    int c = accept(l, NULL, NULL);
    CHECK_MSG(c < 0, "a connection reached the listener");
    if (c >= 0) close(c);
    close(l);
}

static void test_connect_failures(void)
{
    /* refused: nobody listens */
    int port = free_port("127.0.0.1");
    static const step steps[] = {{S_END, NULL}};
    run u;
    vd_smtp_opts o = opts(5000);
    run_script(&u, "127.0.0.1", port, &o, steps);
    CHECK(u.n == 1 && u.r[0].err == VD_SMTP_ERR_CONNECT && u.r[0].code == 0);
    CHECK_MSG(strstr(u.r[0].errmsg, "refused") != NULL, "%s", u.r[0].errmsg);
    CHECK(u.r[0].at < 1.0);

    /* timeout: a listener whose backlog is full drops our SYN */
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = sin_of("127.0.0.1", 0);
    socklen_t len = sizeof sa;
    bind(l, (struct sockaddr *)&sa, sizeof sa);
    listen(l, 0);
    getsockname(l, (struct sockaddr *)&sa, &len);
    int fill[4];
    for (int i = 0; i < 4; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fill[i], (struct sockaddr *)&sa, sizeof sa);
    }
    sleep_ms(50);
    o.connect_timeout_ms = 500;
    run_script(&u, "127.0.0.1", ntohs(sa.sin_port), &o, steps);
    CHECK(u.n == 1 && u.r[0].err == VD_SMTP_ERR_CONNECT);
    CHECK_MSG(strstr(u.r[0].errmsg, "timeout") != NULL, "%s", u.r[0].errmsg);
    CHECK(u.r[0].at >= 0.45 && u.r[0].at < 2.0);
    for (int i = 0; i < 4; i++)
        close(fill[i]);
    close(l);

    /* bind to a source address that is not ours: reported through the callback */
    struct sockaddr_in src = sin_of("192.0.2.1", 0);
    o.source = (struct sockaddr *)&src;
    o.source_len = sizeof src;
    run_script(&u, "127.0.0.1", port, &o, steps);
    CHECK(u.n == 1 && u.r[0].err == VD_SMTP_ERR_CONNECT);
    CHECK_MSG(strstr(u.r[0].errmsg, "bind") != NULL, "%s", u.r[0].errmsg);
}

static void test_source_bind(void)
{
    /* binding the source address works: the tarpit logs the peer */
    char log[128];
    snprintf(log, sizeof log, "/tmp/vd-smtp-test-%d.log", (int)getpid());
    unlink(log);
    int port = free_port("127.0.0.1");
    pid_t pid = start_tarpit("127.0.0.1", port, "ok", log);
    struct sockaddr_in src = sin_of("127.0.0.7", 0);
    vd_smtp_opts o = opts(5000);
    o.source = (struct sockaddr *)&src;
    o.source_len = sizeof src;
    static const step steps[] = {{S_END, NULL}};
    run u;
    run_script(&u, "127.0.0.1", port, &o, steps);
    CHECK(u.n == 1 && u.r[0].code == 250);
    stop_server(pid);
    CHECK(count_lines(log, "CONNECT 127.0.0.7:") == 1);
    CHECK(count_lines(log, "C: QUIT") == 1); /* vd_smtp_quit really says QUIT */
    unlink(log);
}

/* One hostile mode: the open callback must get err within max_s seconds. */
static void hostile(const char *mode, int cmd_ms, vd_smtp_err want, double max_s, run *u)
{
    int port = free_port("127.0.0.1");
    pid_t pid = start_tarpit("127.0.0.1", port, mode, NULL);
    static const step steps[] = {{S_MAIL, ""}, {S_END, NULL}};
    vd_smtp_opts o = opts(cmd_ms);
    run_script(u, "127.0.0.1", port, &o, steps);
    CHECK_MSG(u->n >= 1 && u->r[0].err == want, "%s: err %s (%s)", mode,
              vd_smtp_err_name(u->r[0].err), u->r[0].errmsg);
    CHECK_MSG(u->r[0].at < max_s, "%s: took %.2f s", mode, u->r[0].at);
    CHECK(!u->r[0].usable);
    if (u->n >= 2) CHECK(u->r[1].err == VD_SMTP_ERR_BUSY); /* MAIL on a failed session */
    stop_server(pid);
}

static void test_hostile(void)
{
    run u;
    hostile("silent", 1000, VD_SMTP_ERR_TIMEOUT, 2.0, &u);
    CHECK(u.r[0].at >= 0.95);
    CHECK_MSG(strstr(u.r[0].errmsg, "banner") != NULL, "%s", u.r[0].errmsg);

    hostile("longline", 10000, VD_SMTP_ERR_PROTOCOL, 2.0, &u);
    /* the 1 MB line never accumulated: the input buffer stayed within the read watermark */
    CHECK_MSG(u.peak <= 4 * VD_SMTP_MAX_LINE, "peak %zu", u.peak);
    CHECK(strstr(u.r[0].errmsg, "longer than") != NULL);

    hostile("endless", 10000, VD_SMTP_ERR_PROTOCOL, 2.0, &u);
    CHECK_MSG(strstr(u.r[0].errmsg, "128 lines") != NULL, "%s", u.r[0].errmsg);

    hostile("garbage", 10000, VD_SMTP_ERR_PROTOCOL, 3.0, &u);
    hostile("mixedcodes", 10000, VD_SMTP_ERR_PROTOCOL, 2.0, &u);
    hostile("slow", 1500, VD_SMTP_ERR_TIMEOUT, 3.0, &u);
    hostile("dropafterbanner", 10000, VD_SMTP_ERR_CLOSED, 2.0, &u);
}

static void test_wire_safety(void)
{
    char log[128];
    snprintf(log, sizeof log, "/tmp/vd-smtp-test-%d.log", (int)getpid());
    unlink(log);
    int port = free_port("127.0.0.1");
    pid_t pid = start_tarpit("127.0.0.1", port, "ok", log);
    static const step steps[] = {{S_MAIL, "x@y.test>\r\nRSET"},
                                 {S_MAIL, "probe@validora.test"},
                                 {S_RCPT, "a@b.test\r\nRSET"},
                                 {S_RCPT, "a@b.test\nRSET"},
                                 {S_RCPT, ""},
                                 {S_RCPT, "alice@valid.test"},
                                 {S_END, NULL}};
    run u;
    vd_smtp_opts o = opts(5000);
    run_script(&u, "127.0.0.1", port, &o, steps);
    CHECK(u.n == 7);
    CHECK(u.r[1].err == VD_SMTP_ERR_INVALID && u.r[1].usable);
    CHECK(u.r[2].err == VD_SMTP_OK && u.r[2].code == 250);
    CHECK(u.r[3].err == VD_SMTP_ERR_INVALID);
    CHECK(u.r[4].err == VD_SMTP_ERR_INVALID);
    CHECK(u.r[5].err == VD_SMTP_ERR_INVALID); /* empty forward path */
    CHECK(u.r[6].err == VD_SMTP_OK && u.r[6].code == 250);
    CHECK(u.commands == 3); /* EHLO, MAIL, RCPT: nothing else went out */
    stop_server(pid);
    CHECK(count_lines(log, "C: RSET") == 0);
    CHECK(count_lines(log, "C: MAIL FROM:<probe@validora.test> SMTPUTF8") == 1);
    CHECK(count_lines(log, "C: RCPT TO:<alice@valid.test>") == 1);
    CHECK(count_lines(log, "C: ") == 4); /* ... and QUIT */
    unlink(log);
}

static void test_busy_and_free(void)
{
    int port = free_port("127.0.0.1");
    pid_t pid = start_tarpit("127.0.0.1", port, "ok", NULL);
    vd_smtp_opts o = opts(5000);
    run u;

    /* a second command while one is in flight: BUSY, and the first still completes */
    static const step busy[] = {{S_MAIL, ""}, {S_RCPT2, "alice@valid.test"}, {S_END, NULL}};
    run_script(&u, "127.0.0.1", port, &o, busy);
    CHECK(u.n == 4);
    CHECK(u.r[2].err == VD_SMTP_ERR_BUSY);
    CHECK(u.r[3].err == VD_SMTP_OK && u.r[3].code == 250);

    /* free from inside the open callback and from inside a command callback (ASan) */
    static const step free0[] = {{S_FREE, NULL}};
    run_script(&u, "127.0.0.1", port, &o, free0);
    CHECK(u.n == 1 && u.r[0].code == 250 && u.ended);
    static const step free1[] = {{S_MAIL, ""}, {S_FREE, NULL}};
    run_script(&u, "127.0.0.1", port, &o, free1);
    CHECK(u.n == 2 && u.r[1].code == 250 && u.ended);

    /* free before the connection is up: the callback never runs */
    struct event_base *base = event_base_new();
    struct sockaddr_in sa = sin_of("127.0.0.1", port);
    memset(&u, 0, sizeof u);
    vd_smtp *s = vd_smtp_open(base, (struct sockaddr *)&sa, sizeof sa, &o, on_reply, &u);
    CHECK(s != NULL && !vd_smtp_usable(s));
    vd_smtp_free(s);
    event_base_dispatch(base);
    CHECK(u.n == 0);
    /* quit before the connection is up: freed on the loop, no callback */
    s = vd_smtp_open(base, (struct sockaddr *)&sa, sizeof sa, &o, on_reply, &u);
    vd_smtp_quit(s);
    event_base_dispatch(base);
    CHECK(u.n == 0);
    /* bad arguments */
    vd_smtp_opts bad = o;
    bad.helo = "a b";
    CHECK(vd_smtp_open(base, (struct sockaddr *)&sa, sizeof sa, &bad, on_reply, &u) == NULL);
    bad.helo = NULL;
    CHECK(vd_smtp_open(base, (struct sockaddr *)&sa, sizeof sa, &bad, on_reply, &u) == NULL);
    /* timeouts are required: no default here */
    bad = o;
    bad.connect_timeout_ms = 0;
    CHECK(vd_smtp_open(base, (struct sockaddr *)&sa, sizeof sa, &bad, on_reply, &u) == NULL);
    bad = o;
    bad.command_timeout_ms = -1;
    CHECK(vd_smtp_open(base, (struct sockaddr *)&sa, sizeof sa, &bad, on_reply, &u) == NULL);
    CHECK(u.n == 0);
    event_base_free(base);
    stop_server(pid);
}

static void test_tls_policy(void)
{
    char err[256] = "";
    SSL_CTX *ctx =
        vd_tls_client_ctx_new(&(vd_tls_opts){.require_verified = false}, err, sizeof err);
    CHECK_MSG(ctx != NULL, "%s", err);
    int port = free_port("127.0.0.1");
    pid_t pid = start_sink("127.0.0.1", port, NULL);
    static const step steps[] = {{S_MAIL, ""}, {S_END, NULL}};
    vd_smtp_opts o = opts(5000);
    o.tls_ctx = ctx;
    o.tls_sni = "mx.valid.test";
    run u;
    /* opportunistic: not offered, go on in clear */
    run_script(&u, "127.0.0.1", port, &o, steps);
    CHECK(u.n == 2 && u.r[0].code == 250 && u.r[1].code == 250);
    /* required: not offered is a TLS error, the session is not usable */
    o.require_tls = true;
    run_script(&u, "127.0.0.1", port, &o, steps);
    CHECK(u.n == 2 && u.r[0].err == VD_SMTP_ERR_TLS && !u.r[0].usable);
    CHECK_MSG(strstr(u.r[0].errmsg, "not offered") != NULL, "%s", u.r[0].errmsg);
    CHECK(u.r[1].err == VD_SMTP_ERR_BUSY);
    stop_server(pid);
    vd_tls_ctx_free(ctx);
}

/* STARTTLS against the tarpit with a self-signed certificate made for the test. */
static void test_starttls(void)
{
    char dir[64], cert[96], key[96], cmd[512], log[128];
    snprintf(dir, sizeof dir, "/tmp/vd-smtp-tls-%d", (int)getpid());
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    snprintf(log, sizeof log, "%s/log", dir);
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s && openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=mx.tls.test "
             "-addext subjectAltName=DNS:mx.tls.test -days 2 -keyout %s -out %s "
             ">/dev/null 2>&1",
             dir, key, cert);
    if (system(cmd) != 0) {
        CHECK_MSG(0, "cannot make a test certificate");
        return;
    }
    char err[256] = "";
    SSL_CTX *sys =
        vd_tls_client_ctx_new(&(vd_tls_opts){.require_verified = false}, err, sizeof err);
    CHECK_MSG(sys != NULL, "%s", err);
    /* the self-signed certificate is its own CA */
    SSL_CTX *trusting = vd_tls_client_ctx_new(
        &(vd_tls_opts){.ca_file = cert, .require_verified = false}, err, sizeof err);
    CHECK_MSG(trusting != NULL, "%s", err);
    /* a context that enforces verification (what HTTPS will use) */
    SSL_CTX *strict =
        vd_tls_client_ctx_new(&(vd_tls_opts){.require_verified = true}, err, sizeof err);
    CHECK_MSG(strict != NULL, "%s", err);

    int port = free_port("127.0.0.1");
    const char *const extra[] = {"--tls-cert", cert, "--tls-key", key, NULL};
    pid_t pid = start_tarpit_ex("127.0.0.1", port, "ok", log, extra);
    static const step steps[] = {{S_MAIL, ""}, {S_RCPT, "alice@valid.test"}, {S_END, NULL}};
    vd_smtp_opts o = opts(5000);
    run u;

    /* system CA store: TLS, but the self-signed certificate is not verified; the trace
     * gets the handshake between the 220 and the second EHLO */
    o.tls_ctx = sys;
    o.tls_sni = "mx.tls.test";
    trace_rec t;
    memset(&t, 0, sizeof t);
    vd_smtp_trace tr = TRACE;
    tr.arg = &t;
    o.trace = &tr;
    run_script(&u, "127.0.0.1", port, &o, steps);
    o.trace = NULL;
    {
        int k = 0;
        while (k < t.n && strcmp(t.lines[k], "> STARTTLS") != 0)
            k++;
        CHECK_MSG(k + 3 < t.n, "no STARTTLS in the trace (%d lines)", t.n);
        if (k + 3 < t.n) {
            CHECK_STR(t.lines[k + 1], "< 220 2.0.0 Ready to start TLS");
            CHECK_MSG(strncmp(t.lines[k + 2], "# tls TLSv1.", 12) == 0 &&
                          strstr(t.lines[k + 2], " no") != NULL,
                      "%s", t.lines[k + 2]);
            CHECK_STR(t.lines[k + 3], "> EHLO probe.validora.test");
        }
        CHECK(t.ends == 1 && t.late == 0 && t.how == VD_SMTP_END_CLIENT);
    }
    CHECK(u.n == 3 && u.r[0].err == VD_SMTP_OK && u.r[0].code == 250);
    CHECK(u.tls && !u.tls_verified);
    CHECK(!u.ext_starttls && u.ext_smtputf8); /* extensions from the EHLO after TLS */
    CHECK(u.r[1].code == 250 && u.r[2].code == 250);
    CHECK(u.commands == 5); /* EHLO STARTTLS EHLO MAIL RCPT */

    /* the certificate trusted and the name matching: verified */
    o.tls_ctx = trusting;
    run_script(&u, "127.0.0.1", port, &o, steps);
    CHECK(u.n == 3 && u.r[0].code == 250 && u.tls && u.tls_verified);
    CHECK(u.r[2].code == 250);
    /* trusted, but another name: not verified */
    o.tls_sni = "mx.other.test";
    run_script(&u, "127.0.0.1", port, &o, steps);
    CHECK(u.n == 3 && u.r[0].code == 250 && u.tls && !u.tls_verified);
    /* no tls_ctx: STARTTLS offered but never used */
    o.tls_ctx = NULL;
    run_script(&u, "127.0.0.1", port, &o, steps);
    CHECK(u.n == 3 && u.r[0].code == 250 && !u.tls && u.ext_starttls);
    stop_server(pid);
    CHECK(count_lines(log, "TLS") == 3);
    CHECK(count_lines(log, "C: STARTTLS") == 3);

    /* the context's policy is what applies (smtp.c does not override it); no name: TLS,
     * never verified */
    port = free_port("127.0.0.1");
    pid = start_tarpit_ex("127.0.0.1", port, "ok", NULL, extra);
    o.tls_ctx = strict;
    o.tls_sni = "mx.tls.test";
    run_script(&u, "127.0.0.1", port, &o, steps);
    CHECK_MSG(u.n == 3 && u.r[0].err == VD_SMTP_ERR_TLS, "%s", vd_smtp_err_name(u.r[0].err));
    o.tls_ctx = trusting;
    o.tls_sni = NULL;
    run_script(&u, "127.0.0.1", port, &o, steps);
    CHECK(u.n == 3 && u.r[0].code == 250 && u.tls && !u.tls_verified);
    CHECK(u.r[2].code == 250);
    stop_server(pid);

    /* STARTTLS answered 454: go on in clear, or fail when TLS is required */
    port = free_port("127.0.0.1");
    pid = start_tarpit("127.0.0.1", port, "notls", NULL);
    o.tls_ctx = sys;
    o.tls_sni = "mx.tls.test";
    run_script(&u, "127.0.0.1", port, &o, steps);
    CHECK(u.n == 3 && u.r[0].err == VD_SMTP_OK && u.r[0].code == 250 && !u.tls);
    CHECK(u.ext_starttls && u.ext_smtputf8); /* the EHLO reply is kept */
    CHECK(u.r[2].code == 250);
    o.require_tls = true;
    run_script(&u, "127.0.0.1", port, &o, steps);
    CHECK(u.n == 3 && u.r[0].err == VD_SMTP_ERR_TLS && u.r[1].err == VD_SMTP_ERR_BUSY);
    o.require_tls = false;
    stop_server(pid);

    /* a reply pipelined behind the 220 to STARTTLS: refused, never read as if secure */
    port = free_port("127.0.0.1");
    pid = start_tarpit("127.0.0.1", port, "tlsinject", NULL);
    run_script(&u, "127.0.0.1", port, &o, steps);
    CHECK(u.n == 3 && u.r[0].err == VD_SMTP_ERR_PROTOCOL);
    CHECK_MSG(strstr(u.r[0].errmsg, "after STARTTLS") != NULL, "%s", u.r[0].errmsg);
    stop_server(pid);

    /* plain text instead of a handshake */
    port = free_port("127.0.0.1");
    pid = start_tarpit("127.0.0.1", port, "badtls", NULL);
    run_script(&u, "127.0.0.1", port, &o, steps);
    CHECK_MSG(u.n == 3 && u.r[0].err == VD_SMTP_ERR_TLS, "%s", vd_smtp_err_name(u.r[0].err));
    CHECK(!u.r[0].usable);
    stop_server(pid);

    vd_tls_ctx_free(sys);
    vd_tls_ctx_free(trusting);
    vd_tls_ctx_free(strict);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", dir);
}

static void test_reply_facts(void)
{
    /* RFC 3463 prefixes by whole components */
    CHECK(vd_smtp_enhanced_matches("5.1.1", "5"));
    CHECK(vd_smtp_enhanced_matches("5.1.1", "5.1"));
    CHECK(vd_smtp_enhanced_matches("5.1.1", "5.1.1"));
    CHECK(vd_smtp_enhanced_matches("5.1.10", "5.1.10"));
    CHECK(!vd_smtp_enhanced_matches("5.1.10", "5.1.1"));
    CHECK(!vd_smtp_enhanced_matches("5.1.1", "5.1.10"));
    CHECK(!vd_smtp_enhanced_matches("5.10.1", "5.1"));
    CHECK(!vd_smtp_enhanced_matches("5.1.1", "4"));
    CHECK(!vd_smtp_enhanced_matches("5.1.1", "5."));
    CHECK(!vd_smtp_enhanced_matches("5.1.1", "5.1."));
    CHECK(!vd_smtp_enhanced_matches("5.1.1", "."));
    CHECK(!vd_smtp_enhanced_matches("5.1.1", ""));
    CHECK(!vd_smtp_enhanced_matches("", "5"));
    CHECK(!vd_smtp_enhanced_matches(NULL, "5"));
    CHECK(!vd_smtp_enhanced_matches("5.1.1", NULL));
    CHECK(!vd_smtp_enhanced_matches("5.01.1", "5.1")); /* components compare as text */

    /* reply:matches as the Lua bridge had it */
    const char *t = "<nobody>: Recipient address rejected:\nUser unknown in virtual mailbox table";
    CHECK(vd_smtp_reply_matches(550, "5.1.1", t, "550"));
    CHECK(!vd_smtp_reply_matches(550, "5.1.1", t, "551"));
    CHECK(!vd_smtp_reply_matches(550, "5.1.1", t, "55"));
    CHECK(!vd_smtp_reply_matches(550, "5.1.1", t, "5"));   /* a code, not a class */
    CHECK(vd_smtp_reply_matches(550, "5.1.1", t, "0550")); /* by value */
    CHECK(!vd_smtp_reply_matches(550, "5.1.1", t, "99999999999999999999550")); /* no overflow */
    CHECK(vd_smtp_reply_matches(550, "5.1.1", t, "5.1"));
    CHECK(vd_smtp_reply_matches(550, "5.1.1", t, "5.1.1"));
    CHECK(!vd_smtp_reply_matches(550, "5.1.10", t, "5.1.1"));
    CHECK(!vd_smtp_reply_matches(550, "", t, "5.1"));
    CHECK(!vd_smtp_reply_matches(550, NULL, t, "5.1"));
    CHECK(vd_smtp_reply_matches(550, "5.1.1", t, "user UNKNOWN"));
    CHECK(vd_smtp_reply_matches(550, "5.1.1", t, "rejected:\nuser"));
    CHECK(vd_smtp_reply_matches(550, "5.1.1", t, "table"));
    CHECK(!vd_smtp_reply_matches(550, "5.1.1", t, "tables"));
    CHECK(!vd_smtp_reply_matches(550, "5.1.1", t, "5.1.1 user")); /* not only digits/dots */
    CHECK(vd_smtp_reply_matches(550, "5.1.1", t, ""));            /* "" is in every text */
    CHECK(!vd_smtp_reply_matches(550, "5.1.1", NULL, "unknown"));
    CHECK(!vd_smtp_reply_matches(550, "5.1.1", t, NULL));
    /* digits and dots are an enhanced code even when they look like an address */
    CHECK(!vd_smtp_reply_matches(554, "5.7.1", "blocked: 127.0.0.2 listed", "127.0.0.2"));

    /* which replies end a session */
    vd_smtp_reply r = {.err = VD_SMTP_OK, .code = 421, .text = ""};
    CHECK(vd_smtp_reply_ends_session(&r));
    int live[] = {250, 251, 450, 451, 452, 550, 551, 552, 553, 554, 0};
    for (size_t i = 0; i < sizeof live / sizeof live[0]; i++) {
        r.code = live[i];
        CHECK_MSG(!vd_smtp_reply_ends_session(&r), "%d", live[i]);
    }
    r.code = 0;
    vd_smtp_err dead[] = {VD_SMTP_ERR_CONNECT, VD_SMTP_ERR_TIMEOUT, VD_SMTP_ERR_CLOSED,
                          VD_SMTP_ERR_PROTOCOL, VD_SMTP_ERR_TLS};
    for (size_t i = 0; i < sizeof dead / sizeof dead[0]; i++) {
        r.err = dead[i];
        CHECK_MSG(vd_smtp_reply_ends_session(&r), "%s", vd_smtp_err_name(dead[i]));
    }
    r.err = VD_SMTP_ERR_INVALID;
    CHECK(!vd_smtp_reply_ends_session(&r));
    r.err = VD_SMTP_ERR_BUSY;
    CHECK(!vd_smtp_reply_ends_session(&r));
    r.err = (vd_smtp_err)99;
    CHECK(vd_smtp_reply_ends_session(&r)); /* unknown: do not reuse */
    CHECK(!vd_smtp_reply_ends_session(NULL));
}

/* The names in docs/errors.md's "## SMTP" table, in order; returns how many. */
static int doc_err_names(char names[][64], int max)
{
    char file[4200];
    snprintf(file, sizeof file, "%s/docs/errors.md", source_dir());
    FILE *f = fopen(file, "r");
    CHECK_MSG(f != NULL, "cannot read %s", file);
    if (!f) return 0;
    char line[1024];
    int n = 0;
    bool in = false;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "## ", 3) == 0) in = strncmp(line, "## SMTP", 7) == 0;
        if (!in || strncmp(line, "| `", 3) != 0) continue;
        const char *b = line + 3, *e = strchr(b, '`');
        if (e && n < max) snprintf(names[n++], 64, "%.*s", (int)(e - b), b);
    }
    fclose(f);
    return n;
}

static void test_names(void)
{
    /* the names rules see: stable, whatever else changes */
    static const char *const want[] = {
        "connect_failed", "timeout", "connection_closed", "protocol_error",
        "tls_error",      "busy",    "invalid_argument",  "forbidden_destination"};
    CHECK(sizeof want / sizeof want[0] == VD_SMTP_ERR_COUNT);
    for (int e = 1; e <= VD_SMTP_ERR_COUNT; e++) {
        CHECK_STR(vd_smtp_err_name((vd_smtp_err)e), want[e - 1]);
        CHECK_STR(vd_smtp_err_names[e - 1], want[e - 1]);
    }
    CHECK(vd_smtp_err_names[VD_SMTP_ERR_COUNT] == NULL);
    CHECK_STR(vd_smtp_err_name(VD_SMTP_ERR_CONNECT), "connect_failed");
    CHECK_STR(vd_smtp_err_name(VD_SMTP_ERR_INVALID), "invalid_argument");
    CHECK_STR(vd_smtp_err_name(VD_SMTP_OK), "ok");
    CHECK_STR(vd_smtp_err_name((vd_smtp_err)(VD_SMTP_ERR_COUNT + 1)), "unknown");
    CHECK_STR(vd_smtp_err_name((vd_smtp_err)-1), "unknown");

    /* the docs list exactly these, in this order */
    char doc[16][64];
    int n = doc_err_names(doc, 16);
    CHECK_MSG(n == VD_SMTP_ERR_COUNT, "docs/errors.md lists %d SMTP error names", n);
    for (int i = 0; i < n && i < VD_SMTP_ERR_COUNT; i++)
        CHECK_STR(doc[i], vd_smtp_err_names[i]);
}

/* ---- the trace ------------------------------------------------------------------- */

/* Runs steps against the tarpit (or a closed port when mode is NULL) with a trace. */
static void traced(const char *mode, int cmd_ms, const step *steps, trace_rec *t, run *u)
{
    memset(t, 0, sizeof *t);
    int port = free_port("127.0.0.1");
    pid_t pid = mode ? start_tarpit("127.0.0.1", port, mode, NULL) : 0;
    vd_smtp_trace tr = TRACE;
    tr.arg = t;
    vd_smtp_opts o = opts(cmd_ms);
    o.trace = &tr;
    o.trace_mx = "mx.trace.test";
    run_script(u, "127.0.0.1", port, &o, steps);
    if (pid) stop_server(pid);
    char want[64];
    snprintf(want, sizeof want, "127.0.0.1:%d", port);
    CHECK_MSG(t->starts == 1 && t->ends == 1 && t->late == 0, "%s: %d starts, %d ends, %d late",
              mode ? mode : "refused", t->starts, t->ends, t->late);
    CHECK_STR(t->mx, "mx.trace.test");
    CHECK_STR(t->addr, want);
}

/* A one-connection server that greets, answers EHLO, and 100 ms later says "421" unasked
 * (as Postfix does at its error limit when the client is idle), then waits and closes. */
static pid_t start_unasked421(int port)
{
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = sin_of("127.0.0.1", port);
    if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(ls, 1) != 0) {
        perror("start_unasked421");
        exit(2);
    }
    pid_t pid = fork();
    if (pid == 0) {
        int c = accept(ls, NULL, NULL);
        char buf[512];
        if (c < 0 || write(c, "220 stub\r\n", 10) != 10 || read(c, buf, sizeof buf) <= 0 ||
            write(c, "250 stub\r\n", 10) != 10)
            _exit(1);
        sleep_ms(100);
        static const char bye[] = "421 4.7.0 Error: too many errors\r\n";
        if (write(c, bye, sizeof bye - 1) < 0) _exit(1);
        sleep_ms(1000);
        _exit(0);
    }
    close(ls);
    return pid;
}

static void test_trace(void)
{
    trace_rec t;
    run u;
    /* every line both ways, in order, as on the wire; QUIT's reply; closed by us */
    static const step steps[] = {{S_MAIL, ""},
                                 {S_RCPT, "nobody@valid.test"},
                                 {S_RCPT, "alice@valid.test"},
                                 {S_QUIT, NULL},
                                 {S_END, NULL}};
    traced("ok", 5000, steps, &t, &u);
    static const char *const want[] = {
        "< 220 tarpit ESMTP ready",
        "> EHLO probe.validora.test",
        "< 250-tarpit greets you",
        "< 250-PIPELINING",
        "< 250-SIZE 10240000",
        "< 250-SMTPUTF8",
        "< 250 ENHANCEDSTATUSCODES",
        "> MAIL FROM:<> SMTPUTF8",
        "< 250 2.1.0 Ok",
        "> RCPT TO:<nobody@valid.test>",
        "< 550-5.1.1 <nobody>: Recipient address rejected:",
        "< 550 5.1.1 User unknown in virtual mailbox table",
        "> RCPT TO:<alice@valid.test>",
        "< 250 2.1.5 Ok",
        "> QUIT",
        "< 221 2.0.0 Bye",
    };
    int nw = (int)(sizeof want / sizeof want[0]);
    CHECK_MSG(t.n == nw, "%d lines", t.n);
    for (int i = 0; i < nw && i < t.n; i++)
        CHECK_STR(t.lines[i], want[i]);
    CHECK(t.how == VD_SMTP_END_CLIENT && t.err == VD_SMTP_OK);
    CHECK(u.r[2].code == 550); /* and the session saw what it always sees */

    /* a 421, then the server hangs up before we QUIT: closed by server */
    static const step bye[] = {{S_MAIL, ""}, {S_RCPT, "bye@valid.test"}, {S_LATER, NULL}};
    traced("ok", 5000, bye, &t, &u);
    CHECK_MSG(t.n >= 1 && strcmp(t.lines[t.n - 1], "< 421 4.7.0 Too many errors, closing") == 0,
              "%s", t.n ? t.lines[t.n - 1] : "");
    CHECK_MSG(t.how == VD_SMTP_END_SERVER, "how %d", (int)t.how);

    /* failures end it with their error */
    static const step one[] = {{S_MAIL, ""}, {S_END, NULL}};
    traced(NULL, 5000, one, &t, &u); /* nobody listens */
    CHECK(t.n == 0 && t.how == VD_SMTP_END_ERROR && t.err == VD_SMTP_ERR_CONNECT);
    traced("silent", 500, one, &t, &u);
    CHECK(t.n == 0 && t.how == VD_SMTP_END_ERROR && t.err == VD_SMTP_ERR_TIMEOUT);
    traced("mixedcodes", 5000, one, &t, &u);
    CHECK_MSG(t.n == 2 && strcmp(t.lines[0], "< 220-tarpit") == 0 &&
                  strcmp(t.lines[1], "< 250 surprise") == 0,
              "%d", t.n);
    CHECK(t.how == VD_SMTP_END_ERROR && t.err == VD_SMTP_ERR_PROTOCOL);
    traced("endless", 5000, one, &t, &u); /* the line that broke the bound is told too */
    CHECK_MSG(t.n == VD_SMTP_MAX_LINES + 1, "%d lines", t.n);
    CHECK(t.n > 0 && strcmp(t.lines[t.n - 1], "< 220-x") == 0);
    CHECK(t.how == VD_SMTP_END_ERROR && t.err == VD_SMTP_ERR_PROTOCOL);
    traced("longline", 5000, one, &t, &u); /* an endless line is no line */
    CHECK(t.n == 0 && t.how == VD_SMTP_END_ERROR && t.err == VD_SMTP_ERR_PROTOCOL);
    traced("dropafterbanner", 5000, one, &t, &u);
    CHECK(t.n == 2 && strcmp(t.lines[1], "> EHLO probe.validora.test") == 0);
    CHECK(t.how == VD_SMTP_END_ERROR && t.err == VD_SMTP_ERR_CLOSED);
    traced("garbage", 5000, one, &t, &u);
    CHECK(t.how == VD_SMTP_END_ERROR && t.err == VD_SMTP_ERR_PROTOCOL);
    for (int i = 0; i < t.n; i++)
        CHECK(t.lines[i][0] == '<');

    /* lines the session refuses unread are still told: an unsolicited 421 ... */
    memset(&t, 0, sizeof t);
    int port = free_port("127.0.0.1");
    pid_t pid = start_unasked421(port);
    vd_smtp_trace tr = TRACE;
    tr.arg = &t;
    vd_smtp_opts o = opts(5000);
    o.trace = &tr;
    static const step idle[] = {{S_LATER, NULL}};
    run_script(&u, "127.0.0.1", port, &o, idle);
    stop_server(pid);
    CHECK_MSG(t.n == 4 && strcmp(t.lines[3], "< 421 4.7.0 Error: too many errors") == 0, "%d: %s",
              t.n, t.n ? t.lines[t.n - 1] : "");
    CHECK(t.ends == 1 && t.how == VD_SMTP_END_ERROR && t.err == VD_SMTP_ERR_PROTOCOL);
    /* ... and the line pipelined behind the 220 to STARTTLS */
    char why[256];
    SSL_CTX *ctx = vd_tls_client_ctx_new(NULL, why, sizeof why);
    CHECK_MSG(ctx != NULL, "%s", why);
    memset(&t, 0, sizeof t);
    port = free_port("127.0.0.1");
    pid = start_tarpit("127.0.0.1", port, "tlsinject", NULL);
    o.tls_ctx = ctx;
    run_script(&u, "127.0.0.1", port, &o, one);
    o.tls_ctx = NULL;
    stop_server(pid);
    vd_tls_ctx_free(ctx);
    CHECK_MSG(t.n >= 2 && strcmp(t.lines[t.n - 2], "< 220 2.0.0 Ready to start TLS") == 0 &&
                  strcmp(t.lines[t.n - 1], "< 250 injected") == 0,
              "%s", t.n ? t.lines[t.n - 1] : "");
    CHECK(t.ends == 1 && t.how == VD_SMTP_END_ERROR && t.err == VD_SMTP_ERR_PROTOCOL);

    /* freed from inside its own callback: closed by client, at once */
    static const step freed[] = {{S_MAIL, ""}, {S_FREE, NULL}};
    traced("ok", 5000, freed, &t, &u);
    CHECK(t.how == VD_SMTP_END_CLIENT && t.n == 9);

    /* start may decline (a transcript that cannot be written): nothing else is called */
    memset(&t, 0, sizeof t);
    t.refuse = true;
    port = free_port("127.0.0.1");
    pid = start_tarpit("127.0.0.1", port, "ok", NULL);
    o.trace_mx = NULL;
    run_script(&u, "127.0.0.1", port, &o, steps);
    CHECK(t.starts == 1 && t.n == 0 && t.ends == 0);
    CHECK(u.n == 4 && u.r[2].code == 550);
    CHECK_STR(t.mx, "(null)"); /* no trace_mx given */
    /* a trace missing a function is not used at all */
    memset(&t, 0, sizeof t);
    tr.end = NULL;
    run_script(&u, "127.0.0.1", port, &o, steps);
    CHECK(t.starts == 0 && t.n == 0);
    CHECK(u.n == 4 && u.r[3].code == 250);
    stop_server(pid);
}

int main(void)
{
    vd_destination_allow_private(true); /* the servers here are on loopback */
    signal(SIGPIPE, SIG_IGN);
    test_names();
    test_reply_facts();
    test_full_session();
    test_helo_fallback();
    test_rejections();
    test_421_kept_open();
    test_connect_failures();
    test_forbidden_destination();
    test_source_bind();
    test_hostile();
    test_wire_safety();
    test_busy_and_free();
    test_tls_policy();
    test_starttls();
    test_trace();
    return check_done();
}
