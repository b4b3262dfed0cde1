/* engine.c — the engine and the life of a job up to the rule.
 *
 * Owns: start-up (DNS channel, lists, TLS context, SMTP pool, first rule generation),
 * submitting an address (syntax, list flags), the DNS stage and the verdicts it alone
 * decides (invalid_syntax, domain_not_found, null_mx, no_mail_server, dns_error), handing
 * the job to its rule, and assembling and delivering the record.
 * Does not own: what SMTP replies mean (rules/NAME.lua), the Lua bindings (lua_*.c). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <event2/event.h>
#include <lauxlib.h>
#include "engine_internal.h"

#ifndef VALIDORA_VERSION
#define VALIDORA_VERSION "0"
#endif

const char *vd_version(void)
{
    return VALIDORA_VERSION;
}

void vd_engine_config_init(vd_engine_config *c)
{
    memset(c, 0, sizeof *c);
    c->smtp = true;
    c->starttls = true;
    c->reuse_sessions = true;
    c->dns_timeout_ms = 3000;
    c->smtp_port = 25;
    c->smtp_timeout_ms = 30000;
    c->greylist_delay_s = 300;
    c->greylist_tries = 3;
    c->per_mx_sessions = 4;
}

void vd_engine_log(const vd_engine *e, int level, const char *fmt, ...)
{
    if (e && e->cfg.verbose < level) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("validora: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* The FQDN we introduce ourselves with. Never asks DNS: /etc/mailname (the Debian
 * convention for "this host's mail name"), else the host name; a name without a dot gets
 * ".localdomain" so the HELO is at least syntactically a domain. */
static void default_helo(char *out, size_t len)
{
    char buf[256] = "";
    FILE *fp = fopen("/etc/mailname", "r");
    if (fp) {
        if (fgets(buf, sizeof buf, fp)) buf[strcspn(buf, " \t\r\n")] = '\0';
        fclose(fp);
    }
    if (!buf[0] || !strchr(buf, '.')) {
        if (gethostname(buf, sizeof buf - 1) != 0 || !buf[0]) strcpy(buf, "localhost");
        buf[sizeof buf - 1] = '\0';
    }
    if (!strchr(buf, '.'))
        snprintf(out, len, "%.200s.localdomain", buf);
    else
        snprintf(out, len, "%s", buf);
    for (char *p = out; *p; p++)
        if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
}

static const char *default_rules_dir(void)
{
    const char *env = getenv("VALIDORA_RULES");
    if (env && *env) return env;
#ifdef VALIDORA_INSTALL_RULES_DIR
    if (access(VALIDORA_INSTALL_RULES_DIR "/default.lua", R_OK) == 0)
        return VALIDORA_INSTALL_RULES_DIR;
#endif
#ifdef VALIDORA_SOURCE_RULES_DIR
    return VALIDORA_SOURCE_RULES_DIR;
#else
    return "rules";
#endif
}

vd_engine *vd_engine_new(struct event_base *base, const vd_engine_config *c, char *err,
                         size_t errlen)
{
    vd_engine *e = calloc(1, sizeof *e);
    if (!e) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    e->base = base;
    e->cfg = *c;
    e->dns_servers = dup_or_null(c->dns_servers);
    e->rules_dir = strdup(c->rules_dir ? c->rules_dir : default_rules_dir());
    e->source_ip = dup_or_null(c->source_ip);
    e->cfg.dns_servers = e->dns_servers;
    e->cfg.rules_dir = e->rules_dir;
    e->cfg.source_ip = e->source_ip;
    if (e->cfg.smtp_port <= 0) e->cfg.smtp_port = 25;
    if (e->cfg.smtp_timeout_ms <= 0) e->cfg.smtp_timeout_ms = 30000;
    if (e->cfg.greylist_delay_s < 0) e->cfg.greylist_delay_s = 300;
    if (e->cfg.greylist_tries <= 0) e->cfg.greylist_tries = 3;
    if (e->cfg.per_mx_sessions <= 0) e->cfg.per_mx_sessions = 4;

    if (c->helo) {
        if (strlen(c->helo) >= sizeof e->helo || strpbrk(c->helo, " \t\r\n") || !c->helo[0]) {
            snprintf(err, errlen, "--helo: not a host name: '%s'", c->helo);
            goto fail;
        }
        snprintf(e->helo, sizeof e->helo, "%s", c->helo);
    } else {
        default_helo(e->helo, sizeof e->helo);
    }
    if (c->mail_from)
        snprintf(e->mail_from, sizeof e->mail_from, "%s", c->mail_from);
    else
        snprintf(e->mail_from, sizeof e->mail_from, "verify@%s", e->helo);
    if (!vd_address_wire_safe(e->mail_from, true)) {
        snprintf(err, errlen, "sender address '%s' is not a valid address%s", e->mail_from,
                 c->mail_from ? "" : " (set --mail-from or --helo)");
        goto fail;
    }
    if (e->source_ip) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&e->source;
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&e->source;
        if (inet_pton(AF_INET, e->source_ip, &s4->sin_addr) == 1) {
            s4->sin_family = AF_INET;
            e->source_len = sizeof *s4;
        } else if (inet_pton(AF_INET6, e->source_ip, &s6->sin6_addr) == 1) {
            s6->sin6_family = AF_INET6;
            e->source_len = sizeof *s6;
        } else {
            snprintf(err, errlen, "--source-ip: not an IP address: '%s'", e->source_ip);
            goto fail;
        }
    }

    vd_dns_opts dopts = {.servers = e->dns_servers, .timeout_ms = e->cfg.dns_timeout_ms};
    char sub[256];
    e->dns = vd_dns_new(base, &dopts, sub, sizeof sub);
    if (!e->dns) {
        snprintf(err, errlen, "DNS: %s", sub);
        goto fail;
    }
    char listdir[4096];
    snprintf(listdir, sizeof listdir, "%s/lists", e->rules_dir);
    e->lists = vd_lists_new(listdir, sub, sizeof sub);
    if (!e->lists) {
        snprintf(err, errlen, "lists: %s", sub);
        goto fail;
    }
    if (e->cfg.smtp && e->cfg.starttls) {
        e->tls = vd_tls_client_ctx_new(&(vd_tls_opts){.require_verified = false}, sub, sizeof sub);
        if (!e->tls) {
            snprintf(err, errlen, "TLS: %s", sub);
            goto fail;
        }
    }
    vd_pool_opts popts = {
        .smtp =
            {
                .helo = e->helo,
                .source = e->source_ip ? (const struct sockaddr *)&e->source : NULL,
                .source_len = e->source_len,
                .connect_timeout_ms = e->cfg.smtp_timeout_ms,
                .command_timeout_ms = e->cfg.smtp_timeout_ms,
                .tls_ctx = e->tls,
            },
        .port = e->cfg.smtp_port,
        .mail_from = e->mail_from,
        .per_mx_sessions = e->cfg.per_mx_sessions,
    };
    e->pool = vd_pool_new(base, &popts);
    if (!e->pool) {
        snprintf(err, errlen, "SMTP pool: out of memory");
        goto fail;
    }
    e->rules = vd_rules_load(e, e->rules_dir, err, errlen);
    if (!e->rules) goto fail;
    return e;
fail:
    vd_engine_free(e);
    return NULL;
}

int vd_engine_reload(vd_engine *e, char *err, size_t errlen)
{
    vd_rules *r = vd_rules_load(e, e->rules_dir, err, errlen);
    if (!r) return -1;
    vd_rules *old = e->rules;
    e->rules = r;
    if (old) vd_rules_unref(old);
    return 0;
}

size_t vd_engine_inflight(const vd_engine *e)
{
    return e->inflight;
}

/* ---- the mx answer, kept by the job ---- */

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
    if (r->nhosts) {
        m->hosts = calloc(r->nhosts, sizeof *m->hosts);
        if (!m->hosts) goto oom;
        for (size_t i = 0; i < r->nhosts; i++) {
            m->hosts[i] = r->hosts[i];
            m->hosts[i].addrs = NULL;
            m->nhosts = i + 1;
            if (r->hosts[i].naddrs) {
                m->hosts[i].addrs = malloc(r->hosts[i].naddrs * sizeof *r->hosts[i].addrs);
                if (!m->hosts[i].addrs) goto oom;
                memcpy(m->hosts[i].addrs, r->hosts[i].addrs,
                       r->hosts[i].naddrs * sizeof *r->hosts[i].addrs);
            }
        }
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
    if (!m->hosts) {
        free(m);
        return NULL;
    }
    m->nhosts = 1;
    m->implicit = true;
    vd_mx_host *h = &m->hosts[0];
    snprintf(h->name, sizeof h->name, "%s", a->domain);
    h->addrs = calloc(1, sizeof *h->addrs);
    if (!h->addrs) {
        mx_free(m);
        return NULL;
    }
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

void vd_job_verdict(vd_job *j, const char *status, const char *reason)
{
    j->status = status;
    snprintf(j->reason, sizeof j->reason, "%s", reason);
}

static void job_unlink(vd_job *j)
{
    vd_engine *e = j->e;
    if (j->prev)
        j->prev->next = j->next;
    else if (e->jobs == j)
        e->jobs = j->next;
    if (j->next) j->next->prev = j->prev;
    j->prev = j->next = NULL;
}

/* Frees everything the job holds; delivers nothing. */
static void job_free(vd_job *j)
{
    if (j->dnsreq) vd_dns_cancel(j->dnsreq);
    bool cancelled = false;
    if (j->wait_handle) {
        if (j->wait_kind == VD_WAIT_DNS) vd_dns_cancel(j->wait_handle), cancelled = true;
        if (j->wait_kind == VD_WAIT_POOL) vd_pool_cancel(j->wait_handle), cancelled = true;
    }
    /* Releasing the sessions closes any with a command in flight: no callback follows. */
    if (j->wait_kind == VD_WAIT_SMTP) cancelled = true;
    vd_lua_job_release_sessions(j);
    if (j->waiter) {
        if (cancelled)
            free(j->waiter);
        else
            j->waiter->job = NULL; /* a late completion frees it */
        j->waiter = NULL;
    }
    vd_lua_job_detach(j);
    if (j->timer) event_free(j->timer);
    if (j->gen) {
        lua_State *L = j->gen->L;
        if (j->co_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, j->co_ref);
        if (j->self_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, j->self_ref);
        if (j->park_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, j->park_ref);
        vd_rules_unref(j->gen);
    }
    mx_free(j->mx);
    free(j->email);
    free(j->detail);
    free(j->mx_used);
    free(j->smtp_text);
    free(j);
}

/* Delivers the record and frees the job. */
static void job_finish(vd_job *j)
{
    vd_engine *e = j->e;
    if (!j->status) vd_job_verdict(j, "unknown", "rule_error");
    vd_record r = {
        .email = j->email,
        .address = j->addr_ok ? j->addr.address : NULL,
        .domain = j->addr_ok ? j->addr.domain : NULL,
        .status = j->status,
        .reason = j->reason,
        .detail = j->detail,
        .mx = j->mx_used,
        .has_smtp = j->has_smtp,
        .smtp_code = j->smtp_code,
        .smtp_enhanced = j->smtp_enhanced[0] ? j->smtp_enhanced : NULL,
        .smtp_text = j->smtp_text ? j->smtp_text : "",
        .tls = j->tls,
        .tls_verified = j->tls_verified,
        .catch_all = j->catch_all,
        .disposable = j->disposable,
        .role = j->role,
        .free = j->free_provider,
        .suggestion = j->suggestion,
        .provider = j->provider[0] ? j->provider : NULL,
        .attempts = j->attempts,
        .elapsed_ms = elapsed_ms(&j->started),
        .checked_at = (int64_t)time(NULL),
    };
    job_unlink(j);
    e->inflight--;
    vd_result_cb cb = j->cb;
    void *arg = j->cb_arg;
    j->done = true;
    vd_lua_job_release_sessions(j);
    cb(&r, arg);
    job_free(j);
}

void vd_job_end(vd_job *j)
{
    job_finish(j);
}

void vd_job_set_detail(vd_job *j, const char *s)
{
    free(j->detail);
    j->detail = s ? strdup(s) : NULL;
}

/* ---- DNS stage ---- */

static bool any_address(const vd_mx_result *m, vd_dns_status *worst)
{
    bool any = false;
    *worst = VD_DNS_NXDOMAIN;
    for (size_t i = 0; i < m->nhosts; i++) {
        if (m->hosts[i].naddrs) any = true;
        vd_dns_status s = m->hosts[i].addr_status;
        if (s == VD_DNS_SERVFAIL || s == VD_DNS_TIMEOUT || s == VD_DNS_ERROR) *worst = s;
    }
    return any;
}

static void start_rule(vd_job *j)
{
    if (!j->e->cfg.smtp) {
        vd_job_verdict(j, "unknown", "not_probed");
        job_finish(j);
        return;
    }
    j->gen = j->e->rules;
    j->gen->refs++;
    vd_rules_start(j->gen, j); /* may finish the job */
}

static void on_mx(const vd_mx_result *r, void *arg)
{
    vd_job *j = arg;
    j->dnsreq = NULL;
    char msg[192];
    switch (r->status) {
    case VD_DNS_OK:
        break;
    case VD_DNS_NXDOMAIN:
        vd_job_verdict(j, "undeliverable", "domain_not_found");
        job_finish(j);
        return;
    case VD_DNS_NODATA:
        /* no MX and no A/AAAA for the implicit MX */
        vd_job_verdict(j, "undeliverable", "no_mail_server");
        job_finish(j);
        return;
    default:
        snprintf(msg, sizeof msg, "%s%s%s", vd_dns_status_name(r->status), r->error[0] ? ": " : "",
                 r->error);
        vd_job_verdict(j, "unknown", "dns_error");
        vd_job_set_detail(j, msg);
        job_finish(j);
        return;
    }
    if (r->null_mx) {
        vd_job_verdict(j, "undeliverable", "null_mx");
        job_finish(j);
        return;
    }
    vd_dns_status worst;
    if (r->nhosts == 0 || !any_address(r, &worst)) {
        if (r->nhosts &&
            (worst == VD_DNS_SERVFAIL || worst == VD_DNS_TIMEOUT || worst == VD_DNS_ERROR)) {
            snprintf(msg, sizeof msg, "MX host addresses: %s", vd_dns_status_name(worst));
            vd_job_verdict(j, "unknown", "dns_error");
            vd_job_set_detail(j, msg);
        } else {
            vd_job_verdict(j, "undeliverable", "no_mail_server");
        }
        job_finish(j);
        return;
    }
    j->mx = mx_dup(r);
    if (!j->mx) {
        vd_job_verdict(j, "unknown", "internal_error");
        vd_job_set_detail(j, "out of memory");
        job_finish(j);
        return;
    }
    start_rule(j);
}

int vd_engine_submit(vd_engine *e, const char *email, size_t len, vd_result_cb cb, void *arg)
{
    vd_job *j = calloc(1, sizeof *j);
    if (!j) return -1;
    j->e = e;
    j->cb = cb;
    j->cb_arg = arg;
    j->co_ref = j->self_ref = j->park_ref = LUA_NOREF;
    j->tls = j->tls_verified = j->catch_all = VD_UNSET;
    gettimeofday(&j->started, NULL);
    j->email = malloc(len + 1);
    if (!j->email) {
        free(j);
        return -1;
    }
    memcpy(j->email, email, len);
    j->email[len] = '\0';
    j->next = e->jobs;
    if (e->jobs) e->jobs->prev = j;
    e->jobs = j;
    e->inflight++;

    j->addr_ok = vd_address_parse(email, len, &j->addr, &j->why);
    if (!j->addr_ok) {
        vd_job_verdict(j, "undeliverable", "invalid_syntax");
        vd_job_set_detail(j, j->why);
        job_finish(j);
        return 0;
    }
    j->disposable = vd_lists_is_disposable(e->lists, j->addr.domain);
    j->free_provider = vd_lists_is_free(e->lists, j->addr.domain);
    j->role = vd_lists_is_role(e->lists, j->addr.local);
    j->suggestion = vd_lists_suggest(e->lists, j->addr.domain);

    if (j->addr.is_literal) {
        j->mx = mx_from_literal(&j->addr);
        if (!j->mx || !j->mx->hosts[0].naddrs) {
            vd_job_verdict(j, "unknown", "internal_error");
            vd_job_set_detail(j, "address literal not understood");
            job_finish(j);
            return 0;
        }
        start_rule(j);
        return 0;
    }
    /* A cache hit runs on_mx (which may free j) before vd_dns_mx returns NULL. */
    vd_dns_req *q = vd_dns_mx(e->dns, j->addr.domain, on_mx, j);
    if (q) j->dnsreq = q;
    return 0;
}

void vd_engine_free(vd_engine *e)
{
    if (!e) return;
    while (e->jobs) {
        vd_job *j = e->jobs;
        job_unlink(j);
        job_free(j);
    }
    if (e->rules) vd_rules_unref(e->rules);
    if (e->pool) vd_pool_free(e->pool);
    if (e->dns) vd_dns_free(e->dns);
    if (e->lists) vd_lists_free(e->lists);
    if (e->tls) SSL_CTX_free(e->tls);
    free(e->dns_servers);
    free(e->rules_dir);
    free(e->source_ip);
    free(e);
}
