/* test_doctor.c — doctor's pure judgements (the HELO name, a DNSBL answer) and its port-25
 * check against tests/world/tarpit.py on loopback: the session is smtp.c's, so doctor sees
 * what verify would see. A server that drops the connection after its 220, or whose STARTTLS
 * is broken, passed the old banner-only read; here it fails, as verify would fail there. */
#include "check.h"
#include "doctor.h"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function" /* the servers this test does not start */
#include "smtp_servers.h"
#pragma GCC diagnostic pop

/* ---- the pure judgements ---- */

static void test_helo_problem(void)
{
    char why[200];
    CHECK(vd_doctor_helo_problem("mta.example.com", why, sizeof why) == NULL);
    CHECK(vd_doctor_helo_problem("mta.example.com.", why, sizeof why) == NULL);
    CHECK(vd_doctor_helo_problem("mta", why, sizeof why) != NULL);
    CHECK(vd_doctor_helo_problem("localhost", why, sizeof why) != NULL);
    CHECK(vd_doctor_helo_problem("mta.localdomain", why, sizeof why) != NULL);
    CHECK(vd_doctor_helo_problem("192.0.2.1", why, sizeof why) != NULL);
    CHECK(vd_doctor_helo_problem("", why, sizeof why) != NULL);
    CHECK(vd_doctor_helo_problem("bad_label.example.com", why, sizeof why) != NULL);
}

static void test_dnsbl_answer(void)
{
    const char *m = NULL;
    CHECK(vd_doctor_dnsbl_answer(htonl(0x7f000002), &m) == VD_DNSBL_LISTED);
    CHECK(vd_doctor_dnsbl_answer(htonl(0x7ffffffe), &m) == VD_DNSBL_ERROR);
    CHECK(m && *m);
    CHECK(vd_doctor_dnsbl_answer(htonl(0x0a000001), &m) == VD_DNSBL_UNEXPECTED);
}

/* ---- port 25 ---- */

typedef struct seen {
    int n;
    vd_doctor_status status;
    char name[64], detail[2048], fix[512];
} seen;

static void on_check(const vd_doctor_check *c, void *arg)
{
    seen *s = arg;
    s->n++;
    s->status = c->status;
    snprintf(s->name, sizeof s->name, "%s", c->name);
    snprintf(s->detail, sizeof s->detail, "%s", c->detail);
    snprintf(s->fix, sizeof s->fix, "%s", c->fix ? c->fix : "");
}

/* The port-25 check against 127.0.0.1:port; returns vd_doctor_port25's result. */
static int port25(int port, bool starttls, seen *s)
{
    vd_engine_config cfg;
    vd_engine_config_init(&cfg);
    cfg.helo = "mta.example.com";
    cfg.mail_from = "verify@example.com";
    cfg.smtp_timeout = 2;
    cfg.starttls = starttls;
    char host[64], err[512] = "";
    snprintf(host, sizeof host, "127.0.0.1:%d", port);
    vd_doctor_opts o = {.test_host = host};
    memset(s, 0, sizeof *s);
    int rc = vd_doctor_port25(&cfg, &o, on_check, s, err, sizeof err);
    CHECK_MSG(rc >= 0, "vd_doctor_port25: %d %s", rc, err);
    CHECK(s->n == 1);
    CHECK_STR(s->name, "port-25");
    return rc;
}

/* A server in mode; the check's result in s. */
static int against(const char *mode, bool starttls, seen *s)
{
    int port = free_port("127.0.0.1");
    pid_t pid = start_tarpit("127.0.0.1", port, mode, NULL);
    int rc = port25(port, starttls, s);
    stop_server(pid);
    return rc;
}

static void test_port25_ok(void)
{
    seen s;
    CHECK(against("ok", true, &s) == 0);
    CHECK_MSG(s.status == VD_DOCTOR_PASS, "%s", s.detail);
    CHECK_MSG(strstr(s.detail, "answered: 220 tarpit ESMTP ready"), "%s", s.detail);
    /* EHLO refused: HELO as verify falls back to it, still a pass */
    CHECK(against("noehlo", true, &s) == 0);
    CHECK_MSG(s.status == VD_DOCTOR_PASS, "%s", s.detail);
}

static void test_port25_refused(void)
{
    seen s;
    CHECK(port25(free_port("127.0.0.1"), true, &s) == 1);
    CHECK(s.status == VD_DOCTOR_FAIL);
    CHECK_MSG(strstr(s.detail, "could not connect to 127.0.0.1:") &&
                  strstr(s.detail, "Connection refused"),
              "%s", s.detail);
    CHECK_MSG(strstr(s.fix, "--test-host"), "%s", s.fix);
}

static void test_port25_no_banner(void)
{
    seen s;
    double t0 = now_s();
    CHECK(against("silent", true, &s) == 1);
    CHECK(now_s() - t0 < 5); /* --smtp-timeout, not more */
    CHECK(s.status == VD_DOCTOR_FAIL);
    CHECK_MSG(strstr(s.detail, "but no SMTP banner within 2 s"), "%s", s.detail);
    /* a banner whose lines disagree on the code: smtp.c's parser refuses it, as for verify */
    CHECK(against("mixedcodes", true, &s) == 1);
    CHECK_MSG(s.status == VD_DOCTOR_FAIL && strstr(s.detail, "no SMTP banner"), "%s", s.detail);
}

/* Cases the old banner-only read passed: verify cannot use these servers. */
static void test_port25_after_banner(void)
{
    seen s;
    CHECK(against("dropafterbanner", true, &s) == 1);
    CHECK(s.status == VD_DOCTOR_FAIL);
    CHECK_MSG(strstr(s.detail, "answered: 220") && strstr(s.detail, "connection_closed"), "%s",
              s.detail);
    CHECK(against("badtls", true, &s) == 1);
    CHECK(s.status == VD_DOCTOR_FAIL);
    CHECK_MSG(strstr(s.detail, "tls_error"), "%s", s.detail);
    CHECK_MSG(strstr(s.fix, "STARTTLS"), "%s", s.fix);
    /* --no-starttls: verify would not try it, and neither does doctor */
    CHECK(against("badtls", false, &s) == 0);
    CHECK_MSG(s.status == VD_DOCTOR_PASS, "%s", s.detail);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    test_helo_problem();
    test_dnsbl_answer();
    test_port25_ok();
    test_port25_refused();
    test_port25_no_banner();
    test_port25_after_banner();
    return check_done();
}
