/* test_pool.c — the SMTP session pool against tarpit.py and smtp-sink on loopback.
 *
 * The pool uses one port for every host, so "hosts" are different 127.0.0.x addresses on
 * the same free port. The tarpit's log (CONNECT / C: lines) shows what went on the wire. */
#include "destination.h"
#include "check.h"
#include "pool.h"
#include "smtp_servers.h"

#include <event2/event.h>

static struct event_base *base;
static char logfile[128];

/* ---- driving the loop -------------------------------------------------------------- */

static void run_until(const int *flag, int want, double max_s)
{
    double end = now_s() + max_s;
    while (*flag < want && now_s() < end) {
        struct timeval tv = {0, 20000};
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
    }
}

static void run_for(double s)
{
    int never = 0;
    run_until(&never, 1, s);
}

typedef struct got {
    int n;
    vd_lease *lease;
    vd_smtp_err err;
    int attempts;
    char mx[256];
    char errmsg[600];
    bool has_reply;
    int reply_code;
    double at;
} got;

static void on_lease(vd_lease *l, const vd_pool_result *r, void *arg)
{
    got *g = arg;
    g->n++;
    g->lease = l;
    g->err = r->err;
    g->attempts = r->attempts;
    snprintf(g->mx, sizeof g->mx, "%s", r->mx ? r->mx : "");
    snprintf(g->errmsg, sizeof g->errmsg, "%s", r->errmsg ? r->errmsg : "");
    g->has_reply = r->reply != NULL;
    g->reply_code = r->reply ? r->reply->code : 0;
    g->at = now_s();
    CHECK((l != NULL) == (r->err == VD_SMTP_OK));
    if (l) CHECK_STR(vd_lease_mx(l), r->mx);
}

typedef struct rep {
    int n;
    vd_smtp_err err;
    int code;
    char enhanced[16];
} rep;

static void on_reply(vd_smtp *s, const vd_smtp_reply *r, void *arg)
{
    rep *x = arg;
    (void)s;
    x->n++;
    x->err = r->err;
    x->code = r->code;
    snprintf(x->enhanced, sizeof x->enhanced, "%s", r->enhanced);
}

/* RCPT on the lease and wait for the reply; returns the code (negative err on failure). */
static int rcpt(vd_lease *l, const char *to)
{
    rep x = {0};
    vd_lease_rcpt(l, to, on_reply, &x);
    run_until(&x.n, 1, 5.0);
    CHECK(x.n == 1);
    return x.err == VD_SMTP_OK ? x.code : -(int)x.err;
}

/* ---- MX lists ---------------------------------------------------------------------- */

typedef struct mxlist {
    vd_mx_result r;
    vd_mx_host h[4];
    struct sockaddr_storage a[4][2];
} mxlist;

/* hosts: "name=ip[,ip]" */
static void mx_make(mxlist *m, int n, const char *const *hosts)
{
    memset(m, 0, sizeof *m);
    m->r.status = VD_DNS_OK;
    m->r.nhosts = (size_t)n;
    m->r.hosts = m->h;
    for (int i = 0; i < n; i++) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", hosts[i]);
        char *eq = strchr(buf, '=');
        *eq = '\0';
        snprintf(m->h[i].name, sizeof m->h[i].name, "%s", buf);
        m->h[i].preference = (uint16_t)(10 * (i + 1));
        m->h[i].addrs = m->a[i];
        char *save = NULL;
        for (char *ip = strtok_r(eq + 1, ",", &save); ip && m->h[i].naddrs < 2;
             ip = strtok_r(NULL, ",", &save)) {
            struct sockaddr_in sa = sin_of(ip, 0);
            memcpy(&m->a[i][m->h[i].naddrs++], &sa, sizeof sa);
        }
    }
}

static vd_pool_opts popts(int port)
{
    vd_pool_opts o = {.smtp = {.helo = "probe.validora.test",
                               .connect_timeout_ms = 2000,
                               .command_timeout_ms = 3000},
                      .port = port,
                      .mail_from = "probe@validora.test",
                      .per_mx_sessions = 4};
    return o;
}

/* A port free on every address we use. */
static int common_port(void)
{
    for (;;) {
        int port = free_port("127.0.0.1");
        bool ok = true;
        for (int i = 1; i <= 6 && ok; i++) {
            char ip[32];
            snprintf(ip, sizeof ip, "127.0.0.%d", i);
            ok = !can_connect(ip, port);
        }
        if (ok) return port;
    }
}

/* ---- tests ------------------------------------------------------------------------- */

/* User options have no defaults in the pool: missing ones are refused. Its own limits do. */
static void test_required_options(void)
{
    vd_pool_opts ok = popts(2525);
    vd_pool *p = vd_pool_new(base, &ok);
    CHECK(p != NULL);
    vd_pool_free(p);
    vd_pool_opts o = ok;
    o.port = 0;
    CHECK(vd_pool_new(base, &o) == NULL);
    o.port = -25;
    CHECK(vd_pool_new(base, &o) == NULL);
    o.port = 65536;
    CHECK(vd_pool_new(base, &o) == NULL);
    o = ok;
    o.per_mx_sessions = 0;
    CHECK(vd_pool_new(base, &o) == NULL);
    o = ok;
    o.smtp.connect_timeout_ms = 0;
    CHECK(vd_pool_new(base, &o) == NULL);
    o = ok;
    o.smtp.command_timeout_ms = -1;
    CHECK(vd_pool_new(base, &o) == NULL);
    o = ok;
    o.smtp.helo = NULL;
    CHECK(vd_pool_new(base, &o) == NULL);
    /* the pool's own limits: 0 = the #define, negative refused */
    o = ok;
    o.rcpt_per_txn = o.txn_per_session = o.idle_timeout_ms = o.dead_host_ms = 0;
    p = vd_pool_new(base, &o);
    CHECK(p != NULL);
    vd_pool_free(p);
    o.rcpt_per_txn = -1;
    CHECK(vd_pool_new(base, &o) == NULL);
    o.rcpt_per_txn = 0;
    o.dead_host_ms = -1;
    CHECK(vd_pool_new(base, &o) == NULL);
}

static void test_reuse_and_transactions(void)
{
    int port = common_port();
    unlink(logfile);
    pid_t pid = start_tarpit("127.0.0.1", port, "ok", logfile);
    vd_pool_opts o = popts(port);
    o.rcpt_per_txn = 2;
    vd_pool *p = vd_pool_new(base, &o);
    mxlist m;
    static const char *const h1[] = {"mx1.reuse.test=127.0.0.1"};
    mx_make(&m, 1, h1);

    got g = {0};
    vd_pool_req *req = vd_pool_acquire(p, &m.r, on_lease, &g);
    CHECK(req != NULL); /* a connection is needed: not completed yet */
    run_until(&g.n, 1, 5.0);
    CHECK(g.n == 1 && g.err == VD_SMTP_OK && g.attempts == 1);
    CHECK_STR(g.mx, "mx1.reuse.test");
    CHECK(!vd_lease_tls(g.lease) && !vd_lease_tls_verified(g.lease));
    CHECK(rcpt(g.lease, "alice@valid.test") == 250);
    CHECK(rcpt(g.lease, "nobody@valid.test") == 550);
    vd_lease_release(g.lease, true);

    /* the idle session is leased at once: the callback runs inside acquire */
    got g2 = {0};
    req = vd_pool_acquire(p, &m.r, on_lease, &g2);
    CHECK(req == NULL && g2.n == 1 && g2.err == VD_SMTP_OK && g2.attempts == 0);
    /* the transaction is full (2 RCPTs): RSET, MAIL, RCPT */
    CHECK(rcpt(g2.lease, "bob@valid.test") == 250);
    CHECK(rcpt(g2.lease, "carol@valid.test") == 250);
    /* invalid address: refused before anything is sent */
    CHECK(rcpt(g2.lease, "x@y.test\r\nRSET") == -(int)VD_SMTP_ERR_INVALID);
    /* explicit MAIL on an open transaction: RSET first */
    rep x = {0};
    vd_lease_mail(g2.lease, "", on_reply, &x);
    run_until(&x.n, 1, 5.0);
    CHECK(x.n == 1 && x.code == 250);
    rep y = {0};
    vd_lease_rset(g2.lease, on_reply, &y);
    run_until(&y.n, 1, 5.0);
    CHECK(y.n == 1 && y.code == 250);
    vd_lease_release(g2.lease, true);

    vd_pool_free(p);
    run_for(0.3); /* QUIT goes out */
    stop_server(pid);
    CHECK(count_lines(logfile, "CONNECT ") == 1);
    CHECK(count_lines(logfile, "C: MAIL FROM:<probe@validora.test>") == 2);
    CHECK(count_lines(logfile, "C: MAIL FROM:<>") == 1);
    CHECK(count_lines(logfile, "C: RCPT ") == 4);
    CHECK(count_lines(logfile, "C: RSET") == 3);
    CHECK(count_lines(logfile, "C: QUIT") == 1);
}

/* A shared host: forty MX names, one server address. An idle session to the server is reused
 * for any of its names (the server counts connections per client IP, not per name); the lease
 * names the MX it was asked for. */
static void test_one_server_many_names(void)
{
    int port = common_port();
    unlink(logfile);
    pid_t pid = start_tarpit("127.0.0.1", port, "ok", logfile);
    vd_pool_opts o = popts(port);
    vd_pool *p = vd_pool_new(base, &o);
    for (int i = 0; i < 40; i++) {
        char h[64];
        snprintf(h, sizeof h, "mail.customer%d.shared.test=127.0.0.1", i);
        const char *const hosts[] = {h};
        mxlist m;
        mx_make(&m, 1, hosts);
        got g = {0};
        vd_pool_acquire(p, &m.r, on_lease, &g);
        run_until(&g.n, 1, 5.0);
        CHECK(g.n == 1 && g.err == VD_SMTP_OK);
        char want[64];
        snprintf(want, sizeof want, "mail.customer%d.shared.test", i);
        CHECK_STR(g.mx, want);
        CHECK(rcpt(g.lease, "alice@valid.test") == 250);
        vd_lease_release(g.lease, true);
    }
    vd_pool_free(p);
    run_for(0.3);
    stop_server(pid);
    CHECK_MSG(count_lines(logfile, "CONNECT ") == 1, "connections for 40 names on one server: %d",
              count_lines(logfile, "CONNECT "));
    CHECK(count_lines(logfile, "C: RCPT ") == 40);
}

/* Waiters of one name must not be stranded by a session of another name on the same server: a
 * woken waiter served by that session passes its wake on (a 20,000-address run stalled with 203
 * requests queued on a name that had no session left). */
static void test_wake_passed_on(void)
{
    int port = common_port();
    unlink(logfile);
    pid_t pid = start_tarpit("127.0.0.1", port, "ok", logfile);
    vd_pool_opts o = popts(port);
    o.per_mx_sessions = 1;
    vd_pool *p = vd_pool_new(base, &o);
    mxlist ma, mb;
    static const char *const ha[] = {"mx.a.shared.test=127.0.0.1"};
    static const char *const hb[] = {"mx.b.shared.test=127.0.0.1"};
    mx_make(&ma, 1, ha);
    mx_make(&mb, 1, hb);
    got a1 = {0}, b1 = {0}, a2 = {0}, a3 = {0};
    vd_pool_acquire(p, &ma.r, on_lease, &a1);
    run_until(&a1.n, 1, 5.0);
    vd_pool_acquire(p, &mb.r, on_lease, &b1); /* a1's session is leased: b opens its own */
    run_until(&b1.n, 1, 5.0);
    CHECK(a1.err == VD_SMTP_OK && b1.err == VD_SMTP_OK);
    vd_pool_acquire(p, &ma.r, on_lease, &a2); /* a is at its cap: both wait */
    vd_pool_acquire(p, &ma.r, on_lease, &a3);
    run_for(0.2);
    CHECK(a2.n == 0 && a3.n == 0);
    vd_lease_release(b1.lease, true);  /* b's session idles */
    vd_lease_release(a1.lease, false); /* a's ends: a2 is woken, and takes b's idle session */
    run_until(&a2.n, 1, 5.0);
    CHECK(a2.n == 1 && a2.err == VD_SMTP_OK);
    run_until(&a3.n, 1, 5.0); /* a3 must not be stranded */
    CHECK_MSG(a3.n == 1 && a3.err == VD_SMTP_OK, "a3: %d callbacks", a3.n);
    if (a2.n) vd_lease_release(a2.lease, true);
    if (a3.n && a3.lease) vd_lease_release(a3.lease, true);
    vd_pool_free(p);
    run_for(0.2);
    stop_server(pid);
}

static void test_txn_per_session_and_idle(void)
{
    int port = common_port();
    unlink(logfile);
    pid_t pid = start_tarpit("127.0.0.1", port, "ok", logfile);
    vd_pool_opts o = popts(port);
    o.rcpt_per_txn = 1;
    o.txn_per_session = 1;
    o.idle_timeout_ms = 300;
    vd_pool *p = vd_pool_new(base, &o);
    mxlist m;
    static const char *const h1[] = {"mx1.txn.test=127.0.0.1"};
    mx_make(&m, 1, h1);

    for (int i = 0; i < 2; i++) {
        got g = {0};
        vd_pool_acquire(p, &m.r, on_lease, &g);
        run_until(&g.n, 1, 5.0);
        CHECK(g.err == VD_SMTP_OK && g.attempts == 1); /* a new connection each time */
        CHECK(rcpt(g.lease, "alice@valid.test") == 250);
        vd_lease_release(g.lease, true);
    }
    run_for(0.2);
    CHECK(count_lines(logfile, "CONNECT ") == 2);
    CHECK(count_lines(logfile, "C: QUIT") == 2);

    /* idle timeout: a released session is closed with QUIT after idle_timeout_ms */
    o.txn_per_session = 100;
    vd_pool *p2 = vd_pool_new(base, &o);
    got g = {0};
    vd_pool_acquire(p2, &m.r, on_lease, &g);
    run_until(&g.n, 1, 5.0);
    CHECK(rcpt(g.lease, "alice@valid.test") == 250);
    vd_lease_release(g.lease, true);
    run_for(0.1);
    CHECK(count_lines(logfile, "C: QUIT") == 2);
    run_for(0.5);
    CHECK(count_lines(logfile, "C: QUIT") == 3);
    /* and the next request opens a new connection */
    got g2 = {0};
    vd_pool_acquire(p2, &m.r, on_lease, &g2);
    run_until(&g2.n, 1, 5.0);
    CHECK(g2.err == VD_SMTP_OK && g2.attempts == 1);
    vd_lease_release(g2.lease, false); /* not reusable: closed at once */
    run_for(0.2);
    CHECK(count_lines(logfile, "C: QUIT") == 4);
    vd_pool_free(p);
    vd_pool_free(p2);
    run_for(0.1);
    stop_server(pid);
}

static void test_cap_and_cancel(void)
{
    int port = common_port();
    unlink(logfile);
    pid_t pid = start_tarpit("127.0.0.1", port, "ok", logfile);
    vd_pool_opts o = popts(port);
    o.per_mx_sessions = 1;
    vd_pool *p = vd_pool_new(base, &o);
    mxlist m;
    static const char *const h1[] = {"mx1.cap.test=127.0.0.1"};
    mx_make(&m, 1, h1);

    got a = {0}, b = {0}, c = {0};
    CHECK(vd_pool_acquire(p, &m.r, on_lease, &a) != NULL);
    CHECK(vd_pool_acquire(p, &m.r, on_lease, &b) != NULL);
    vd_pool_req *rc = vd_pool_acquire(p, &m.r, on_lease, &c);
    CHECK(rc != NULL);
    run_until(&a.n, 1, 5.0);
    run_for(0.3);
    CHECK(a.n == 1 && a.err == VD_SMTP_OK);
    CHECK(b.n == 0 && c.n == 0); /* waiting for the one session */
    vd_pool_cancel(rc);          /* c never gets a callback */
    CHECK(rcpt(a.lease, "alice@valid.test") == 250);
    vd_lease_release(a.lease, true);
    run_until(&b.n, 1, 5.0);
    CHECK(b.n == 1 && b.err == VD_SMTP_OK && b.attempts == 0); /* the same session */
    CHECK(rcpt(b.lease, "bob@valid.test") == 250);
    vd_lease_release(b.lease, true);
    run_for(0.2);
    CHECK(c.n == 0);
    CHECK(count_lines(logfile, "CONNECT ") == 1);
    CHECK(count_lines(logfile, "C: MAIL ") == 1); /* the transaction went on across leases */

    /* cancel while connecting: the session is kept for the next request */
    vd_pool_opts o2 = popts(port);
    vd_pool *p2 = vd_pool_new(base, &o2);
    got d = {0}, e = {0};
    vd_pool_cancel(vd_pool_acquire(p2, &m.r, on_lease, &d));
    run_for(0.3);
    CHECK(d.n == 0);
    CHECK(vd_pool_acquire(p2, &m.r, on_lease, &e) == NULL); /* idle session at once */
    CHECK(e.n == 1 && e.err == VD_SMTP_OK && e.attempts == 0);
    vd_lease_release(e.lease, true);

    /* freeing the pool with a waiting request: no callback */
    got f = {0}, g = {0};
    vd_pool_acquire(p, &m.r, on_lease, &f);
    vd_pool_acquire(p, &m.r, on_lease, &g);
    run_until(&f.n, 1, 5.0);
    CHECK(f.n == 1 && g.n == 0);
    vd_pool_free(p);
    vd_pool_free(p2);
    run_for(0.3);
    CHECK(g.n == 0);
    stop_server(pid);
}

static void test_failover(void)
{
    int port = common_port();
    unlink(logfile);
    pid_t ok = start_tarpit("127.0.0.2", port, "ok", logfile);
    pid_t silent = start_tarpit("127.0.0.4", port, "silent", NULL);
    static const char *const sink_opts[] = {"-f", "CONNECT", NULL};
    pid_t refuser = start_sink("127.0.0.3", port, sink_opts);
    vd_pool_opts o = popts(port);
    o.smtp.command_timeout_ms = 500;
    vd_pool *p = vd_pool_new(base, &o);
    mxlist m;

    /* first MX refuses connections (nobody on 127.0.0.1:port): the second is used */
    static const char *const dead_first[] = {"mx1.deadfirst.test=127.0.0.1",
                                             "mx2.deadfirst.test=127.0.0.2"};
    mx_make(&m, 2, dead_first);
    got g = {0};
    vd_pool_acquire(p, &m.r, on_lease, &g);
    run_until(&g.n, 1, 5.0);
    CHECK(g.err == VD_SMTP_OK && g.attempts == 2);
    CHECK_STR(g.mx, "mx2.deadfirst.test");
    CHECK(rcpt(g.lease, "erin@deadfirst.test") == 250);
    vd_lease_release(g.lease, false);

    /* mx1 is now known dead: skipped without a connection attempt */
    got g2 = {0};
    vd_pool_acquire(p, &m.r, on_lease, &g2);
    run_until(&g2.n, 1, 5.0);
    CHECK(g2.err == VD_SMTP_OK && g2.attempts == 1);
    CHECK_STR(g2.mx, "mx2.deadfirst.test");
    vd_lease_release(g2.lease, false);

    /* a host with two addresses: the first refused, the second answers */
    static const char *const two_addrs[] = {"mx.twoaddr.test=127.0.0.5,127.0.0.2"};
    mx_make(&m, 1, two_addrs);
    got g3 = {0};
    vd_pool_acquire(p, &m.r, on_lease, &g3);
    run_until(&g3.n, 1, 5.0);
    CHECK(g3.err == VD_SMTP_OK && g3.attempts == 2);
    vd_lease_release(g3.lease, false);

    /* all dead: connect_failed, every address counted, no reply */
    static const char *const all_dead[] = {"mx1.refused.test=127.0.0.5,127.0.0.6",
                                           "mx2.refused.test=127.0.0.6"};
    mx_make(&m, 2, all_dead);
    got g4 = {0};
    CHECK(vd_pool_acquire(p, &m.r, on_lease, &g4) != NULL);
    run_until(&g4.n, 1, 5.0);
    CHECK(g4.n == 1 && g4.err == VD_SMTP_ERR_CONNECT && g4.attempts == 3 && !g4.has_reply);
    CHECK_STR(g4.mx, "mx2.refused.test");
    CHECK_MSG(strstr(g4.errmsg, "refused") != NULL, "%s", g4.errmsg);
    /* and again at once: both hosts are skipped, the callback runs inside acquire */
    got g5 = {0};
    CHECK(vd_pool_acquire(p, &m.r, on_lease, &g5) == NULL);
    CHECK(g5.n == 1 && g5.err == VD_SMTP_ERR_CONNECT && g5.attempts == 0);

    /* a host that refuses us at the banner: the next MX is used */
    static const char *const banner[] = {"mx1.blocked.test=127.0.0.3", "mx2.ok.test=127.0.0.2"};
    mx_make(&m, 2, banner);
    got g6 = {0};
    vd_pool_acquire(p, &m.r, on_lease, &g6);
    run_until(&g6.n, 1, 5.0);
    CHECK(g6.err == VD_SMTP_OK && g6.attempts == 2);
    CHECK_STR(g6.mx, "mx2.ok.test");
    vd_lease_release(g6.lease, false);
    /* ... and when it is the only one, its reply is reported */
    static const char *const banner_only[] = {"mx1.blocked.test=127.0.0.3"};
    mx_make(&m, 1, banner_only);
    got g7 = {0};
    vd_pool_acquire(p, &m.r, on_lease, &g7);
    run_until(&g7.n, 1, 5.0);
    CHECK(g7.n == 1 && g7.err == VD_SMTP_ERR_CLOSED && g7.has_reply);
    CHECK_MSG(g7.reply_code / 100 == 5, "%d", g7.reply_code);

    /* a tarpit (banner timeout) first: the next MX after command_timeout */
    static const char *const tarpit[] = {"mx1.tarpit.test=127.0.0.4", "mx2.ok.test=127.0.0.2"};
    mx_make(&m, 2, tarpit);
    got g8 = {0};
    double t0 = now_s();
    vd_pool_acquire(p, &m.r, on_lease, &g8);
    run_until(&g8.n, 1, 5.0);
    CHECK(g8.err == VD_SMTP_OK && g8.attempts == 2);
    CHECK(g8.at - t0 >= 0.45);
    vd_lease_release(g8.lease, true);
    /* tarpit alone: timeout */
    static const char *const tarpit_only[] = {"mx1.tarpit.test=127.0.0.4"};
    mx_make(&m, 1, tarpit_only);
    got g9 = {0};
    vd_pool_acquire(p, &m.r, on_lease, &g9);
    run_until(&g9.n, 1, 5.0);
    CHECK(g9.n == 1 && g9.err == VD_SMTP_ERR_TIMEOUT && !g9.has_reply);

    /* no hosts at all */
    mx_make(&m, 0, NULL);
    got g10 = {0};
    CHECK(vd_pool_acquire(p, &m.r, on_lease, &g10) == NULL);
    CHECK(g10.n == 1 && g10.err != VD_SMTP_OK);

    /* many distinct hosts (no addresses): the host table grows and is swept */
    for (int i = 0; i < 3000; i++) {
        char name[64];
        snprintf(name, sizeof name, "mx%d.many.test=", i);
        const char *one[] = {name};
        mx_make(&m, 1, one);
        got gi = {0};
        CHECK(vd_pool_acquire(p, &m.r, on_lease, &gi) == NULL);
        if (gi.n != 1 || gi.err != VD_SMTP_ERR_CONNECT || gi.attempts != 0)
            CHECK_MSG(0, "host %d: %s", i, gi.errmsg);
    }
    /* the live host survives sweeps: its idle session is still leased at once */
    static const char *const ok_only[] = {"mx2.ok.test=127.0.0.2"};
    mx_make(&m, 1, ok_only);
    got g11 = {0};
    CHECK(vd_pool_acquire(p, &m.r, on_lease, &g11) == NULL);
    CHECK(g11.n == 1 && g11.err == VD_SMTP_OK && g11.attempts == 0);
    CHECK_STR(g11.mx, "mx2.ok.test");
    vd_lease_release(g11.lease, true);

    vd_pool_free(p);
    run_for(0.2);
    stop_server(ok);
    stop_server(silent);
    stop_server(refuser);
}

static void test_retire_on_421(void)
{
    int port = common_port();
    unlink(logfile);
    pid_t pid = start_tarpit("127.0.0.1", port, "ok", logfile);
    vd_pool_opts o0 = popts(port);
    o0.mail_from = "";
    vd_pool *p = vd_pool_new(base, &o0);
    mxlist m;
    static const char *const h1[] = {"mx1.retire.test=127.0.0.1"};
    mx_make(&m, 1, h1);
    got g = {0};
    vd_pool_acquire(p, &m.r, on_lease, &g);
    run_until(&g.n, 1, 5.0);
    CHECK(rcpt(g.lease, "bye@valid.test") == 421);
    vd_lease_release(g.lease, true); /* asked to keep it, but a 421 retires it */
    got g2 = {0};
    CHECK(vd_pool_acquire(p, &m.r, on_lease, &g2) != NULL);
    run_until(&g2.n, 1, 5.0);
    CHECK(g2.err == VD_SMTP_OK && g2.attempts == 1);
    CHECK(rcpt(g2.lease, "alice@valid.test") == 250);
    vd_lease_release(g2.lease, true);
    vd_pool_free(p);
    run_for(0.2);
    stop_server(pid);
    CHECK(count_lines(logfile, "CONNECT ") == 2);
    CHECK(count_lines(logfile, "C: MAIL FROM:<> SMTPUTF8") == 2);

    /* smtp-sink: MAIL refused 4xx retires the session too */
    port = common_port();
    static const char *const sink_opts[] = {"-r", "MAIL", NULL};
    pid = start_sink("127.0.0.1", port, sink_opts);
    vd_pool_opts o = popts(port);
    p = vd_pool_new(base, &o);
    got g3 = {0};
    vd_pool_acquire(p, &m.r, on_lease, &g3);
    run_until(&g3.n, 1, 5.0);
    CHECK(rcpt(g3.lease, "alice@valid.test") == 450); /* MAIL's reply */
    vd_lease_release(g3.lease, true);
    got g4 = {0};
    CHECK(vd_pool_acquire(p, &m.r, on_lease, &g4) != NULL); /* not reused */
    run_until(&g4.n, 1, 5.0);
    CHECK(g4.err == VD_SMTP_OK && g4.attempts == 1);
    vd_lease_release(g4.lease, true);
    vd_pool_free(p);
    run_for(0.2);
    stop_server(pid);
}

/* A 421 to RCPT from a server that keeps the connection open: released with reusable=true
 * (what the Lua bridge does unless the rule says otherwise), the session is never handed
 * out again, not to a waiting request and not as an idle one. */
static void test_421_never_reused(void)
{
    int port = common_port();
    unlink(logfile);
    pid_t pid = start_stub421("127.0.0.1", port, logfile);
    vd_pool_opts o = popts(port);
    o.per_mx_sessions = 1;
    vd_pool *p = vd_pool_new(base, &o);
    mxlist m;
    static const char *const h1[] = {"mx1.stub.test=127.0.0.1"};
    mx_make(&m, 1, h1);

    got a = {0};
    vd_pool_acquire(p, &m.r, on_lease, &a);
    run_until(&a.n, 1, 5.0);
    CHECK(a.n == 1 && a.err == VD_SMTP_OK && vd_lease_usable(a.lease));
    CHECK(rcpt(a.lease, "alice@valid.test") == 250);
    CHECK(vd_lease_usable(a.lease));
    /* a second request waits for the one session */
    got b = {0};
    CHECK(vd_pool_acquire(p, &m.r, on_lease, &b) != NULL);
    run_for(0.1);
    CHECK(b.n == 0);

    rep x = {0};
    vd_lease_rcpt(a.lease, "bye@valid.test", on_reply, &x);
    CHECK(!vd_lease_usable(a.lease)); /* a command in flight */
    run_until(&x.n, 1, 5.0);
    CHECK(x.n == 1 && x.err == VD_SMTP_OK && x.code == 421);
    CHECK(!vd_lease_usable(a.lease));
    run_for(0.2); /* the connection stays open: nothing but the reply says it is over */
    CHECK(!vd_lease_usable(a.lease));
    CHECK(count_lines(logfile, "C: QUIT") == 0);
    vd_lease_release(a.lease, true);

    /* the waiter gets a new connection, not the session that had the 421 */
    run_until(&b.n, 1, 5.0);
    CHECK(b.n == 1 && b.err == VD_SMTP_OK && b.attempts == 1);
    CHECK(vd_lease_usable(b.lease));
    CHECK(rcpt(b.lease, "carol@valid.test") == 250);
    vd_lease_release(b.lease, true);
    /* the idle session is b's */
    got c = {0};
    CHECK(vd_pool_acquire(p, &m.r, on_lease, &c) == NULL);
    CHECK(c.n == 1 && c.err == VD_SMTP_OK && c.attempts == 0);
    CHECK(rcpt(c.lease, "dave@valid.test") == 250);
    vd_lease_release(c.lease, true);
    CHECK(!vd_lease_usable(NULL));

    vd_pool_free(p);
    run_for(0.3);
    stop_stub(pid);
    CHECK(count_lines(logfile, "CONNECT ") == 2);
    CHECK(count_lines(logfile, "C: RCPT ") == 4); /* alice, bye, carol, dave */
    CHECK(count_lines(logfile, "C: QUIT") == 2);  /* the 421 session at release, b's at free */
}

int main(void)
{
    vd_destination_allow_private(true); /* the servers here are on loopback */
    signal(SIGPIPE, SIG_IGN);
    snprintf(logfile, sizeof logfile, "/tmp/vd-pool-test-%d.log", (int)getpid());
    base = event_base_new();
    test_required_options();
    test_reuse_and_transactions();
    test_one_server_many_names();
    test_wake_passed_on();
    test_txn_per_session_and_idle();
    test_cap_and_cancel();
    test_failover();
    test_retire_on_421();
    test_421_never_reused();
    event_base_free(base);
    unlink(logfile);
    return check_done();
}
