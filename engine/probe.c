/* probe.c — the data of one address's probe and its setters (see probe.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "probe.h"

void vd_probe_init(vd_probe *p)
{
    memset(p, 0, sizeof *p);
    p->tls = p->tls_verified = p->catch_all = VD_UNSET;
    p->reuse = true;
}

void vd_probe_clear(vd_probe *p)
{
    vd_probe_release_all(p);
    free(p->detail);
    free(p->mx_used);
    free(p->smtp_text);
    free(p->address);
    p->detail = p->mx_used = p->smtp_text = p->address = NULL;
}

static bool reason_ok(const char *reason, size_t n)
{
    if (n == 0 || n >= VD_REASON_MAX) return false;
    for (const char *c = reason; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_')) return false;
    return true;
}

int vd_probe_decide(vd_probe *p, vd_status s, const char *reason)
{
    size_t n = reason ? strlen(reason) : 0;
    if (!vd_status_name(s) || !reason_ok(reason, n)) return -1;
    p->status = vd_status_name(s);
    memcpy(p->reason, reason, n + 1);
    return 0;
}

static void set_str(char **slot, const char *s)
{
    char *copy = s ? strdup(s) : NULL;
    free(*slot);
    *slot = copy;
}

void vd_probe_set_detail(vd_probe *p, const char *s)
{
    set_str(&p->detail, s);
}

void vd_probe_set_reply(vd_probe *p, int code, const char *enhanced, const char *text)
{
    p->has_smtp = true;
    p->smtp_code = code;
    snprintf(p->smtp_enhanced, sizeof p->smtp_enhanced, "%s", enhanced ? enhanced : "");
    set_str(&p->smtp_text, text ? text : "");
}

void vd_probe_set_mx(vd_probe *p, const char *mx)
{
    if (mx && (!p->mx_used || strcmp(p->mx_used, mx) != 0)) set_str(&p->mx_used, mx);
}

void vd_probe_note_session(vd_probe *p, const vd_lease *l)
{
    vd_probe_set_mx(p, vd_lease_mx(l));
    p->tls = vd_lease_tls(l) ? VD_YES : VD_NO;
    p->tls_verified = vd_lease_tls_verified(l) ? VD_YES : VD_NO;
}

void vd_probe_set_provider(vd_probe *p, const char *name)
{
    snprintf(p->provider, sizeof p->provider, "%s", name ? name : "");
}

void vd_probe_note_method(vd_probe *p, vd_method m)
{
    if (!p->method_forced && m > p->method) p->method = m;
}

void vd_probe_force_method(vd_probe *p, vd_method m)
{
    p->method = m;
    p->method_forced = true;
}

static const char *const METHOD_NAMES[] = {
    [VD_METHOD_NONE] = NULL,
    [VD_METHOD_SKIPPED] = "skipped",
    [VD_METHOD_SMTP] = "smtp",
    [VD_METHOD_HTTP] = "http",
};

const char *vd_probe_method_name(vd_method m)
{
    return (unsigned)m < sizeof METHOD_NAMES / sizeof METHOD_NAMES[0] ? METHOD_NAMES[m] : NULL;
}

vd_method vd_probe_method_parse(const char *name)
{
    for (size_t i = 0; name && i < sizeof METHOD_NAMES / sizeof METHOD_NAMES[0]; i++)
        if (METHOD_NAMES[i] && !strcmp(METHOD_NAMES[i], name)) return (vd_method)i;
    return VD_METHOD_NONE;
}

void vd_probe_set_address(vd_probe *p, const char *a)
{
    set_str(&p->address, a);
}

bool vd_probe_lease_room(const vd_probe *p)
{
    for (int i = 0; i < VD_PROBE_MAX_SESSIONS; i++)
        if (!p->leases[i]) return true;
    return false;
}

int vd_probe_lease_add(vd_probe *p, vd_lease *l)
{
    for (int i = 0; i < VD_PROBE_MAX_SESSIONS; i++)
        if (!p->leases[i]) {
            p->leases[i] = l;
            return i;
        }
    vd_lease_release(l, p->reuse);
    vd_limiter_session_end(p->limiter, &p->limits);
    return -1;
}

void vd_probe_lease_release(vd_probe *p, int slot, bool reusable)
{
    if (slot < 0 || slot >= VD_PROBE_MAX_SESSIONS || !p->leases[slot]) return;
    vd_lease *l = p->leases[slot];
    p->leases[slot] = NULL;
    bool closed = vd_lease_release(l, reusable && p->reuse && !p->retire[slot]);
    p->retire[slot] = false;
    if (closed)
        vd_limiter_session_closed(p->limiter, &p->limits);
    else
        vd_limiter_session_end(p->limiter, &p->limits);
}

void vd_probe_release_all(vd_probe *p)
{
    for (int i = 0; i < VD_PROBE_MAX_SESSIONS; i++)
        vd_probe_lease_release(p, i, true);
    for (; p->granted > 0; p->granted--) /* the probe ended while the pool was connecting */
        vd_limiter_session_end(p->limiter, &p->limits);
}
