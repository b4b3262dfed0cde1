/* sender.c — our identity on the wire: default HELO and MAIL FROM, and the identities we
 * refuse to probe with (see sender.h). */
#include "sender.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "validora/validora.h"

/* The FQDN we introduce ourselves with. Never asks DNS: /etc/mailname (the Debian
 * convention for "this host's mail name"), else the host name; a name without a dot gets
 * ".localdomain" so the HELO is at least syntactically a domain. */
void vd_default_helo(char *out, size_t len)
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

void vd_sender_default_mail_from(const char *helo, char *out, size_t len)
{
    snprintf(out, len, "verify@%s", helo);
}

const char vd_sender_foreign_fix[] =
    "use a MAIL FROM and a HELO name at a domain you own (e.g. verify@example.com, "
    "mta.example.com): that provider's SPF and DMARC do not authorise your IP, and probing as "
    "its user gets you blocked";

static void lower_copy(char *out, size_t len, const char *in)
{
    snprintf(out, len, "%s", in);
    for (char *p = out; *p; p++)
        if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
}

static const char *foreign_kind(const vd_lists *l, const char *dom)
{
    if (!dom[0]) return NULL;
    return vd_lists_is_free(l, dom)         ? "a free-mail provider's"
           : vd_lists_is_disposable(l, dom) ? "a disposable-mail service's"
                                            : NULL;
}

int vd_sender_identity_check(const vd_lists *l, const char *helo, const char *mail_from, char *why,
                             size_t len)
{
    char h[256], m[256];
    lower_copy(h, sizeof h, helo ? helo : "");
    const char *at = mail_from ? strrchr(mail_from, '@') : NULL;
    lower_copy(m, sizeof m, at ? at + 1 : "");
    const char *mk = foreign_kind(l, m), *hk = foreign_kind(l, h);
    if (len) why[0] = '\0';
    if (mk && hk && !strcmp(m, h))
        snprintf(why, len, "the MAIL FROM and HELO domain %s is %s domain", m, mk);
    else if (mk && hk)
        snprintf(why, len, "the MAIL FROM domain %s is %s domain; the HELO domain %s is %s domain",
                 m, mk, h, hk);
    else if (mk || hk)
        snprintf(why, len, "the %s domain %s is %s domain", mk ? "MAIL FROM" : "HELO", mk ? m : h,
                 mk ? mk : hk);
    return (mk ? VD_SENDER_FOREIGN_MAIL_FROM : 0) | (hk ? VD_SENDER_FOREIGN_HELO : 0);
}
