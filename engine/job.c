/* job.c — the life of one address in C, from vd_engine_submit to its record.
 *
 * Owns: syntax and list flags, the DNS stage and the verdicts it alone decides
 * (invalid_syntax, domain_not_found, null_mx, no_mail_server, dns_error), handing the probe
 * to the current rule generation (rules.h), the probe's data (probe.h: verdict, evidence,
 * session leases), and assembling and delivering the record.
 * Does not own: what SMTP replies mean (rules/NAME.lua), how rules run (the Lua bridge), the
 * engine's start-up (engine.c). No Lua here. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include "destination.h"
#include "job.h"
#include "probe.h"
#include "validora/record.h"

typedef struct vd_job {
    vd_jobs *js; /* its engine's jobs */
    struct vd_job *prev, *next;
    vd_result_cb cb;
    void *cb_arg;
    char *email;
    size_t email_len;
    vd_address addr;
    bool addr_ok;
    const char *suggestion;
    vd_mx_result *mx; /* deep copy of the DNS answer */
    vd_dns_req *dnsreq;
    vd_gen *gen;       /* the rules and lists it started with, kept to its end */
    vd_run *run;       /* the rule's probe, while it runs */
    vd_which_cb which; /* vd_engine_which: tell the rule instead of probing */
    struct timeval started;
    vd_probe probe;
} vd_job;

/* ---- the MX answer, kept by the job ---- */

static void mx_free(vd_mx_result *m)
{
    if (!m) return;
    for (size_t i = 0; i < m->nhosts; i++)
        free(m->hosts[i].addrs);
    free(m->hosts);
    free(m);
}

static vd_mx_result *mx_dup(const vd_mx_result *r)
{
    vd_mx_result *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    *m = *r;
    m->hosts = NULL;
    m->nhosts = 0;
    if (!r->nhosts) return m;
    m->hosts = calloc(r->nhosts, sizeof *m->hosts);
    if (!m->hosts) goto oom;
    for (size_t i = 0; i < r->nhosts; i++) {
        m->hosts[i] = r->hosts[i];
        m->hosts[i].addrs = NULL;
        m->nhosts = i + 1;
        size_t bytes = r->hosts[i].naddrs * sizeof *r->hosts[i].addrs;
        if (!bytes) continue;
        m->hosts[i].addrs = malloc(bytes);
        if (!m->hosts[i].addrs) goto oom;
        memcpy(m->hosts[i].addrs, r->hosts[i].addrs, bytes);
    }
    return m;
oom:
    mx_free(m);
    return NULL;
}

/* An address literal is its own (only) mail host. */
static vd_mx_result *mx_from_literal(const vd_address *a)
{
    vd_mx_result *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->hosts = calloc(1, sizeof *m->hosts);
    vd_mx_host *h = m->hosts;
    if (!h || !(h->addrs = calloc(1, sizeof *h->addrs))) {
        mx_free(m);
        return NULL;
    }
    m->nhosts = 1;
    m->implicit = true;
    snprintf(h->name, sizeof h->name, "%s", a->domain);
    char ip[128];
    size_t n = strlen(a->domain);
    const char *inner = a->domain + 1;
    size_t ilen = n >= 2 ? n - 2 : 0;
    if (ilen >= 5 && strncasecmp(inner, "IPv6:", 5) == 0) {
        inner += 5;
        ilen -= 5;
    }
    snprintf(ip, sizeof ip, "%.*s", (int)ilen, inner);
    struct sockaddr_in *s4 = (struct sockaddr_in *)&h->addrs[0];
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&h->addrs[0];
    if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        h->naddrs = 1;
    } else if (inet_pton(AF_INET6, ip, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        h->naddrs = 1;
    }
    return m;
}

/* ---- finishing ---- */

static int64_t elapsed_ms(const struct timeval *since)
{
    struct timeval now;
    gettimeofday(&now, NULL);
    return (int64_t)(now.tv_sec - since->tv_sec) * 1000 + (now.tv_usec - since->tv_usec) / 1000;
}

static void job_unlink(vd_job *j)
{
    vd_jobs *js = j->js;
    if (j->prev)
        j->prev->next = j->next;
    else if (js->list == j)
        js->list = j->next;
    if (j->next) j->next->prev = j->prev;
    j->prev = j->next = NULL;
}

/* Frees everything the job holds; delivers nothing. */
static void job_free(vd_job *j)
{
    if (j->dnsreq) vd_dns_cancel(j->dnsreq);
    vd_rules_probe_cancel(j->run);
    vd_probe_clear(&j->probe);
    vd_gen_unref(j->gen);
    mx_free(j->mx);
    free(j->email);
    free(j);
}

static vd_record record_of(const vd_job *j)
{
    const vd_probe *p = &j->probe;
    return (vd_record){
        .email = j->email,
        .email_len = j->email_len,
        .address = !j->addr_ok  ? NULL
                   : p->address ? p->address
                                : j->addr.address,
        .domain = j->addr_ok ? j->addr.domain : NULL,
        .status = p->status,
        .reason = p->reason,
        .detail = p->detail,
        .mx = p->mx_used,
        .has_smtp = p->has_smtp,
        .smtp_code = p->smtp_code,
        .smtp_enhanced = p->smtp_enhanced[0] ? p->smtp_enhanced : NULL,
        .smtp_text = p->smtp_text ? p->smtp_text : "",
        .tls = p->tls,
        .tls_verified = p->tls_verified,
        .catch_all = p->catch_all,
        .disposable = p->disposable,
        .role = p->role,
        .free = p->free_provider,
        .suggestion = j->suggestion,
        .provider = p->provider[0] ? p->provider : NULL,
        .method = vd_probe_method_name(p->method),
        .generation = j->gen->hash,
        .attempts = p->attempts,
        .delayed_ms = (int64_t)(p->delayed * 1000),
        .elapsed_ms = elapsed_ms(&j->started),
        .checked_at = (int64_t)time(NULL),
    };
}

/* Delivers the record and frees the job. The sessions go back to the pool first, so the
 * callback can submit the next address onto them. */
static void which_finish(vd_job *j, const vd_pick *pick);

static void job_finish(vd_job *j)
{
    if (!j->probe.status) vd_probe_decide(&j->probe, VD_STATUS_UNKNOWN, VD_REASON_INTERNAL_ERROR);
    if (j->which) {
        which_finish(j, NULL);
        return;
    }
    vd_probe_release_all(&j->probe);
    vd_record r = record_of(j);
    job_unlink(j);
    j->js->inflight--;
    j->cb(&r, j->cb_arg);
    job_free(j);
}

/* A verdict the engine decides by itself, and the end of the job. */
static void job_decide(vd_job *j, vd_status status, const char *reason, const char *detail)
{
    vd_probe_decide(&j->probe, status, reason);
    if (detail) vd_probe_set_detail(&j->probe, detail);
    job_finish(j);
}

/* ---- the rule stage ---- */

static void on_probe_done(vd_probe *p, void *arg)
{
    (void)p;
    vd_job *j = arg;
    j->run = NULL;
    job_finish(j);
}

static void start_rule(vd_job *j)
{
    if (j->which) {
        vd_pick pick;
        vd_rules_pick(j->gen->rules, j->addr.domain, j->mx, &pick);
        which_finish(j, &pick);
        return;
    }
    if (!j->js->cfg->smtp) {
        job_decide(j, VD_STATUS_UNKNOWN, "not_probed", NULL);
        return;
    }
    j->probe.mx = j->mx;
    j->run = vd_rules_probe_new(j->gen->rules, &j->probe, on_probe_done, j);
    if (!j->run) {
        job_decide(j, VD_STATUS_UNKNOWN, VD_REASON_INTERNAL_ERROR, "out of memory");
        return;
    }
    vd_rules_probe_start(j->run); /* may finish the job */
}

/* ---- the DNS stage ---- */

static bool failed_lookup(vd_dns_status s)
{
    return s == VD_DNS_SERVFAIL || s == VD_DNS_TIMEOUT || s == VD_DNS_ERROR;
}

/* Whether any MX host has an address; *worst is the worst failed lookup of a host's. */
static bool any_address(const vd_mx_result *m, vd_dns_status *worst)
{
    bool any = false;
    *worst = VD_DNS_NXDOMAIN;
    for (size_t i = 0; i < m->nhosts; i++) {
        if (m->hosts[i].naddrs) any = true;
        if (failed_lookup(m->hosts[i].addr_status)) *worst = m->hosts[i].addr_status;
    }
    return any;
}

/* The verdict a DNS answer decides by itself, or false when the rule has to probe. */
static bool dns_verdict(const vd_mx_result *r, vd_status *status, const char **reason, char *msg,
                        size_t msglen)
{
    vd_dns_status worst;
    *status = VD_STATUS_UNDELIVERABLE;
    if (r->status == VD_DNS_NXDOMAIN) {
        *reason = "domain_not_found";
    } else if (r->status == VD_DNS_NODATA) { /* no MX, and no A/AAAA for the implicit MX */
        *reason = "no_mail_server";
    } else if (r->status != VD_DNS_OK) {
        *status = VD_STATUS_UNKNOWN, *reason = "dns_error";
        snprintf(msg, msglen, "%s%s%s", vd_dns_status_name(r->status), r->error[0] ? ": " : "",
                 r->error);
    } else if (r->null_mx) {
        *reason = "null_mx";
    } else if (r->nhosts == 0 || !any_address(r, &worst)) {
        *reason = "no_mail_server";
        if (r->nhosts && failed_lookup(worst)) {
            *status = VD_STATUS_UNKNOWN, *reason = "dns_error";
            snprintf(msg, msglen, "MX host addresses: %s", vd_dns_status_name(worst));
        }
    } else {
        return false;
    }
    return true;
}

/* Drops the MX addresses a connection may not be opened to (destination.h). Returns false
 * when none is left, with the first refused address in msg. */
static bool drop_forbidden(vd_mx_result *m, char *msg, size_t msglen)
{
    bool any = false;
    for (size_t i = 0; i < m->nhosts; i++) {
        vd_mx_host *h = &m->hosts[i];
        size_t kept = 0;
        for (size_t k = 0; k < h->naddrs; k++) {
            if (vd_destination_ok((const struct sockaddr *)&h->addrs[k])) {
                h->addrs[kept++] = h->addrs[k];
            } else if (!msg[0]) {
                char ip[64];
                snprintf(msg, msglen,
                         "%.100s is %s: a loopback, private or other special-purpose address "
                         "(--allow-private-destinations)",
                         h->name,
                         vd_destination_text((const struct sockaddr *)&h->addrs[k], ip, sizeof ip));
            }
        }
        h->naddrs = kept;
        if (kept) any = true;
    }
    return any;
}

static void on_mx(const vd_mx_result *r, void *arg)
{
    vd_job *j = arg;
    j->dnsreq = NULL;
    char msg[192] = "";
    vd_status status;
    const char *reason;
    if (dns_verdict(r, &status, &reason, msg, sizeof msg)) {
        job_decide(j, status, reason, msg[0] ? msg : NULL);
        return;
    }
    j->mx = mx_dup(r);
    if (!j->mx) {
        job_decide(j, VD_STATUS_UNKNOWN, VD_REASON_INTERNAL_ERROR, "out of memory");
        return;
    }
    msg[0] = '\0';
    if (!drop_forbidden(j->mx, msg, sizeof msg)) {
        job_decide(j, VD_STATUS_UNKNOWN, VD_FORBIDDEN_DESTINATION, msg);
        return;
    }
    start_rule(j);
}

/* ---- submitting ---- */

static vd_job *job_new(vd_jobs *js, vd_gen *gen, const char *email, size_t len, vd_result_cb cb,
                       void *arg)
{
    vd_job *j = calloc(1, sizeof *j);
    if (!j || !(j->email = malloc(len + 1))) {
        free(j);
        return NULL;
    }
    memcpy(j->email, email, len);
    j->email[len] = '\0';
    j->email_len = len;
    j->js = js;
    j->cb = cb;
    j->cb_arg = arg;
    gettimeofday(&j->started, NULL);
    vd_probe_init(&j->probe);
    j->probe.email = j->email;
    j->probe.email_len = len;
    j->probe.addr = &j->addr;
    j->probe.reuse = js->cfg->reuse;
    j->gen = gen;
    vd_gen_ref(j->gen);
    j->next = js->list;
    if (js->list) js->list->prev = j;
    js->list = j;
    js->inflight++;
    return j;
}

/* Syntax, list flags, then the DNS stage (or the literal's own host). May finish the job. */
static void start_job(vd_job *j)
{
    const char *why = NULL;
    const char *email = j->email;
    size_t len = j->email_len;
    j->addr_ok = vd_address_parse(email, len, &j->addr, &why);
    if (!j->addr_ok) {
        job_decide(j, VD_STATUS_UNDELIVERABLE, "invalid_syntax", why);
        return;
    }
    vd_probe *p = &j->probe;
    const vd_lists *lists = j->gen->lists;
    p->disposable = vd_lists_is_disposable(lists, j->addr.domain);
    p->free_provider = vd_lists_is_free(lists, j->addr.domain);
    p->role = vd_lists_is_role(lists, j->addr.local);
    j->suggestion = vd_lists_suggest(lists, j->addr.domain);

    if (j->addr.is_literal) {
        j->mx = mx_from_literal(&j->addr);
        char msg[192] = "";
        if (!j->mx || !j->mx->hosts[0].naddrs)
            job_decide(j, VD_STATUS_UNKNOWN, VD_REASON_INTERNAL_ERROR,
                       "address literal not understood");
        else if (!drop_forbidden(j->mx, msg, sizeof msg))
            job_decide(j, VD_STATUS_UNKNOWN, VD_FORBIDDEN_DESTINATION, msg);
        else
            start_rule(j);
        return;
    }
    /* A cache hit runs on_mx (which may free j) before vd_dns_mx returns NULL. */
    vd_dns_req *q = vd_dns_mx(j->js->dns, j->addr.domain, on_mx, j);
    if (q) j->dnsreq = q;
}

int vd_job_submit(vd_jobs *js, vd_gen *gen, const char *email, size_t len, vd_result_cb cb,
                  void *arg)
{
    vd_job *j = job_new(js, gen, email, len, cb, arg);
    if (!j) return -1;
    start_job(j);
    return 0;
}

/* ---- which rule ---- */

/* Tells the which callback the rule (pick) or the engine's own verdict, and frees the job. */
static void which_finish(vd_job *j, const vd_pick *pick)
{
    const vd_probe *p = &j->probe;
    vd_which w = {
        .email = j->email,
        .email_len = j->email_len,
        .domain = j->addr_ok ? j->addr.domain : NULL,
        .generation = j->gen->hash,
    };
    if (pick && strcmp(pick->by, "error") != 0) {
        w.rule = pick->rule;
        w.file = pick->file;
        w.by = pick->by;
        w.pattern = pick->pattern[0] ? pick->pattern : NULL;
        w.host = pick->host[0] ? pick->host : NULL;
    } else {
        w.status = pick ? vd_status_name(VD_STATUS_UNKNOWN) : p->status;
        w.reason = pick ? VD_REASON_RULE_ERROR : p->reason;
        w.detail = pick ? pick->pattern : p->detail;
    }
    job_unlink(j);
    j->js->inflight--;
    j->which(&w, j->cb_arg);
    job_free(j);
}

int vd_job_which(vd_jobs *js, vd_gen *gen, const char *email, size_t len, vd_which_cb cb, void *arg)
{
    vd_job *j = job_new(js, gen, email, len, NULL, arg);
    if (!j) return -1;
    j->which = cb;
    start_job(j);
    return 0;
}

void vd_jobs_free_all(vd_jobs *js)
{
    while (js->list) {
        vd_job *j = js->list;
        job_unlink(j);
        js->inflight--;
        job_free(j);
    }
}
