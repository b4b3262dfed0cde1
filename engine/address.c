/* address.c — parsing, validation and normalisation of email addresses.
 *
 * Owns: the decision whether a string is a Mailbox a server would take in RCPT
 * TO (RFC 5321 §4.1.2, with RFC 6531 UTF-8 local parts and IDNA2008/UTS#46
 * domains through libidn2), and the normalised forms we carry on (A-label
 * domain, canonical local part). Does not own: any I/O, DNS, or deciding
 * whether the mailbox exists.
 *
 * The grammar is the SMTP one, not RFC 5322: no comments, no folding
 * whitespace, no obsolete forms, no general address literals. Anything that
 * could end an SMTP command line early (CR, LF, NUL, any C0/DEL/C1 control) is
 * refused before the grammar even looks at it. Policy decisions and their
 * reasons are in docs/addresses.md. */
#include "address.h"

#include <arpa/inet.h>
#include <idn2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The longest input we look at: far beyond any valid address even in UTF-8,
 * small enough that a hostile line costs nothing. */
#define INPUT_MAX 1024
#define LABEL_MAX 63

static bool is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* RFC 5322 atext (as used by RFC 5321 Atom), widened by RFC 6531 to any UTF-8
 * non-ASCII byte; the input has already been checked to be well-formed UTF-8.
 */
static bool is_atext(unsigned char c)
{
    if (is_alpha(c) || is_digit(c) || c >= 0x80) return true;
    return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* RFC 5321 qtextSMTP: %d32-33 / %d35-91 / %d93-126, plus UTF-8 non-ASCII (RFC
 * 6531). */
static bool is_qtext(unsigned char c)
{
    return c == 32 || c == 33 || (c >= 35 && c <= 91) || (c >= 93 && c <= 126) || c >= 0x80;
}

/* Code points that show nothing, or change how the text around them is shown:
 * the Unicode format characters (Cf: U+FEFF BOM, U+200B..U+200F zero widths
 * and marks, U+202A..U+202E and U+2066..U+2069 bidi controls, U+2060 word
 * joiner, the tag characters, ...), the non-ASCII spaces and separators (Zs,
 * Zl, Zp: U+00A0, U+2000..U+200A, U+2028/9, U+3000, ...) and the invisible
 * fillers (U+034F, U+115F/U+1160, U+3164, U+FFA0). In an address they come
 * from a copy and paste or a file's byte-order mark, never from the user's
 * intent, and a server would take them as a different mailbox: refused as
 * syntax, never probed (docs/addresses.md). */
static bool is_invisible(uint32_t cp)
{
    static const uint32_t ranges[][2] = {
        {0x00a0, 0x00a0},   {0x00ad, 0x00ad},   {0x034f, 0x034f},   {0x0600, 0x0605},
        {0x061c, 0x061c},   {0x06dd, 0x06dd},   {0x070f, 0x070f},   {0x0890, 0x0891},
        {0x08e2, 0x08e2},   {0x115f, 0x1160},   {0x1680, 0x1680},   {0x180e, 0x180e},
        {0x2000, 0x200f},   {0x2028, 0x202f},   {0x205f, 0x2064},   {0x2066, 0x206f},
        {0x3000, 0x3000},   {0x3164, 0x3164},   {0xfeff, 0xfeff},   {0xffa0, 0xffa0},
        {0xfff9, 0xfffb},   {0x110bd, 0x110bd}, {0x110cd, 0x110cd}, {0x13430, 0x1343f},
        {0x1bca0, 0x1bca3}, {0x1d173, 0x1d17a}, {0xe0001, 0xe0001}, {0xe0020, 0xe007f},
    };
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++)
        if (cp >= ranges[i][0] && cp <= ranges[i][1]) return true;
    return false;
}

/* Strict UTF-8 (RFC 3629: no overlongs, no surrogates, nothing past U+10FFFF)
 * and no control characters (C0, DEL, C1) nor invisible ones. Sets *non_ascii when any multi-byte
 * sequence is seen. */
static const char *check_bytes(const unsigned char *s, size_t len, bool *non_ascii)
{
    *non_ascii = false;
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f) return "control character";
            i++;
            continue;
        }
        *non_ascii = true;
        uint32_t cp;
        size_t n;
        uint32_t min;
        if (c >= 0xc2 && c <= 0xdf) {
            n = 2, cp = c & 0x1f, min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 3, cp = c & 0x0f, min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return "invalid utf-8";
        }
        if (len - i < n) return "invalid utf-8";
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return "invalid utf-8";
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return "invalid utf-8";
        if (cp >= 0x80 && cp <= 0x9f) return "control character";
        if (is_invisible(cp)) return "invisible or format character";
        i += n;
    }
    return NULL;
}

/* RFC 5321 Dot-string: Atom *("." Atom). */
static const char *check_dot_string(const char *s, size_t len)
{
    if (len == 0) return "empty local part";
    if (s[0] == '.' || s[len - 1] == '.') return "local part starts or ends with a dot";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            if (i + 1 < len && s[i + 1] == '.') return "consecutive dots in local part";
        } else if (!is_atext(c)) {
            return "invalid character in local part";
        }
    }
    return NULL;
}

/* Parses the local part at the start of in. On success *local_len is its length
 * in the input (quotes included) and out->local/out->quoted are set to the
 * canonical form. */
static const char *parse_local(const char *in, size_t len, size_t *local_len, vd_address *out)
{
    if (len == 0) return "empty address";
    if (in[0] != '"') {
        const char *at = memchr(in, '@', len);
        if (!at) return memchr(in, '"', len) ? "misplaced quote" : "missing @";
        size_t n = (size_t)(at - in);
        if (n == 0) return "empty local part";
        const char *why = check_dot_string(in, n);
        if (why) return why;
        if (n > VD_ADDR_LOCAL_MAX) return "local part too long";
        memcpy(out->local, in, n);
        out->local[n] = '\0';
        out->quoted = false;
        *local_len = n;
        return NULL;
    }

    /* Quoted-string: unescape into content, then write the canonical form. */
    char content[INPUT_MAX + 1];
    size_t clen = 0;
    size_t i = 1;
    for (;;) {
        if (i >= len) return "unterminated quoted string";
        unsigned char c = (unsigned char)in[i];
        if (c == '"') break;
        if (c == '\\') {
            /* quoted-pairSMTP = %d92 %d32-126: ASCII only, even under RFC 6531. */
            if (i + 1 >= len) return "unterminated quoted string";
            unsigned char e = (unsigned char)in[i + 1];
            if (e < 32 || e > 126) return "invalid quoted pair";
            content[clen++] = (char)e;
            i += 2;
            continue;
        }
        if (!is_qtext(c)) return "invalid character in quoted string";
        content[clen++] = (char)c;
        i++;
    }
    i++; /* closing quote */
    if (i >= len || in[i] != '@') return i >= len ? "missing @" : "text after quoted string";
    if (i > VD_ADDR_LOCAL_MAX) return "local part too long";
    *local_len = i;
    content[clen] = '\0';

    /* "john"@x and john@x are the same mailbox (RFC 5321 §4.1.2: quoting is only
     * a transfer form); carry the plain form when it exists, so one mailbox has
     * one spelling. */
    if (clen > 0 && check_dot_string(content, clen) == NULL) {
        memcpy(out->local, content, clen + 1);
        out->quoted = false;
        return NULL;
    }
    /* Otherwise re-quote with the minimum of escapes: only '"' and '\' need one.
     */
    size_t o = 0;
    out->local[o++] = '"';
    for (size_t k = 0; k < clen; k++) {
        if (content[k] == '"' || content[k] == '\\') out->local[o++] = '\\';
        out->local[o++] = content[k];
    }
    out->local[o++] = '"';
    out->local[o] = '\0';
    out->quoted = true;
    return NULL;
}

/* RFC 5321 address literal: "[" IPv4 "]" or "[IPv6:" IPv6 "]". General literals
 * (tag ":" content) are refused: no public MTA routes them. */
static const char *parse_literal(const char *d, size_t len, vd_address *out)
{
    if (len < 2 || d[len - 1] != ']') return "unterminated address literal";
    const char *body = d + 1;
    size_t blen = len - 2;
    char buf[64];
    unsigned char bin[16];
    if (blen >= 5 && strncasecmp(body, "IPv6:", 5) == 0) {
        const char *v6 = body + 5;
        size_t v6len = blen - 5;
        if (v6len == 0 || v6len >= sizeof buf) return "invalid ipv6 literal";
        memcpy(buf, v6, v6len);
        buf[v6len] = '\0';
        if (inet_pton(AF_INET6, buf, bin) != 1) return "invalid ipv6 literal";
        /* RFC 5321 IPv6-comp: "::" stands for at least two groups, so at most 6 (or
         * 4 before an IPv4 tail) explicit groups may go with it; inet_pton is
         * laxer. */
        if (strstr(buf, "::")) {
            int groups = 0;
            bool v4 = strchr(buf, '.') != NULL;
            for (const char *p = buf; *p;) {
                if (*p == ':') {
                    p++;
                    continue;
                }
                const char *q = p;
                while (*q && *q != ':')
                    q++;
                if (!memchr(p, '.', (size_t)(q - p))) groups++;
                p = q;
            }
            if (groups > (v4 ? 4 : 6)) return "invalid ipv6 literal";
        }
        snprintf(out->domain, sizeof out->domain, "[IPv6:%s]", buf);
    } else {
        for (size_t i = 0; i < blen; i++)
            if (!is_digit((unsigned char)body[i]) && body[i] != '.')
                return memchr(body, ':', blen) ? "general address literal"
                                               : "invalid address literal";
        if (blen == 0 || blen >= sizeof buf) return "invalid address literal";
        memcpy(buf, body, blen);
        buf[blen] = '\0';
        if (inet_pton(AF_INET, buf, bin) != 1) return "invalid ipv4 literal";
        snprintf(out->domain, sizeof out->domain, "[%s]", buf);
    }
    memcpy(out->domain_unicode, out->domain, strlen(out->domain) + 1);
    out->is_literal = true;
    return NULL;
}

/* RFC 5321 Domain in A-label form: sub-domains of letters, digits and inner
 * hyphens, 1..63 octets each, 255 in all. s is lower-case already. */
static const char *check_ldh(const char *s)
{
    size_t len = strlen(s);
    if (len == 0) return "empty domain";
    if (len > VD_ADDR_DOMAIN_MAX) return "domain too long";
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != '.') {
            unsigned char c = (unsigned char)s[i];
            if (!is_alpha(c) && !is_digit(c) && c != '-') return "invalid character in domain";
            continue;
        }
        size_t n = i - start;
        if (n == 0) return "empty domain label";
        if (n > LABEL_MAX) return "domain label too long";
        if (s[start] == '-' || s[i - 1] == '-') return "domain label starts or ends with a hyphen";
        start = i + 1;
    }
    return NULL;
}

static const char *idn_error(int rc)
{
    switch (rc) {
    case IDN2_TOO_BIG_DOMAIN:
        return "domain too long";
    case IDN2_TOO_BIG_LABEL:
    case IDN2_PUNYCODE_BIG_OUTPUT: /* the A-label would pass 63 octets */
        return "domain label too long";
    case IDN2_MALLOC:
        return "out of memory";
    default:
        return "invalid internationalised domain";
    }
}

static bool has_alabel(const char *s)
{
    for (const char *p = s; *p; p++)
        if ((p == s || p[-1] == '.') && strncmp(p, "xn--", 4) == 0) return true;
    return false;
}

static const char *parse_domain(const char *d, size_t len, bool non_ascii, vd_address *out)
{
    if (len == 0) return "empty domain";
    if (d[0] == '[') return parse_literal(d, len, out);
    if (len > INPUT_MAX) return "domain too long";
    char buf[INPUT_MAX + 1];
    memcpy(buf, d, len);
    buf[len] = '\0';

    if (!non_ascii) {
        /* Plain LDH names go through untouched but for case: IDNA2008 would refuse
         * valid host names such as "ab--cd.example", which are not IDNs at all. */
        for (size_t i = 0; i < len; i++)
            if (buf[i] >= 'A' && buf[i] <= 'Z') buf[i] = (char)(buf[i] - 'A' + 'a');
        const char *why = check_ldh(buf);
        if (why) return why;
        memcpy(out->domain, buf, len + 1);
        if (!has_alabel(buf)) {
            memcpy(out->domain_unicode, buf, len + 1);
            return NULL;
        }
        /* A-labels must decode and round-trip (UTS#46 validity), else "xn--" is
         * junk. */
    } else {
        /* Checked by check_ldh below after conversion; reject the obvious first so
         * that libidn2's error does not hide a simple mistake. */
        if (buf[0] == '.' || buf[len - 1] == '.' || strstr(buf, "..")) return "empty domain label";
    }

    uint8_t *alabel = NULL;
    int rc = idn2_lookup_u8((const uint8_t *)buf, &alabel, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
    if (rc != IDN2_OK) {
        free(alabel);
        return idn_error(rc);
    }
    const char *why = check_ldh((const char *)alabel);
    if (why) {
        free(alabel);
        return why;
    }
    char *ulabel = NULL;
    rc = idn2_to_unicode_8z8z((const char *)alabel, &ulabel, 0);
    if (rc != IDN2_OK || strlen(ulabel) >= sizeof out->domain_unicode) {
        free(alabel);
        free(ulabel);
        return rc != IDN2_OK ? idn_error(rc) : "domain too long";
    }
    /* The U-label must encode back to the same A-label: libidn2 takes an A-label that decodes
     * to characters IDNA2008 disallows (xn--iana-eld3abpik8b-rg-g1a52r holds U+00AF), and the
     * domain we would show could not be typed back. Found by tests/fuzz/fuzz_address. */
    uint8_t *again = NULL;
    rc = idn2_lookup_u8((const uint8_t *)ulabel, &again, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
    bool round_trips = rc == IDN2_OK && strcmp((const char *)again, (const char *)alabel) == 0;
    free(again);
    if (!round_trips) {
        free(alabel);
        free(ulabel);
        return "invalid internationalised domain";
    }
    memcpy(out->domain, alabel, strlen((const char *)alabel) + 1);
    memcpy(out->domain_unicode, ulabel, strlen(ulabel) + 1);
    free(alabel);
    free(ulabel);
    return NULL;
}

static const char *parse(const char *in, size_t len, vd_address *out)
{
    if (len == 0) return "empty address";
    if (len > INPUT_MAX) return "address too long";
    bool non_ascii;
    const char *why = check_bytes((const unsigned char *)in, len, &non_ascii);
    if (why) return why;

    size_t local_len;
    why = parse_local(in, len, &local_len, out);
    if (why) return why;
    out->smtputf8 = false;
    for (const char *p = out->local; *p; p++)
        if ((unsigned char)*p >= 0x80) out->smtputf8 = true;

    const char *d = in + local_len + 1;
    size_t dlen = len - local_len - 1;
    bool dom_non_ascii = false;
    for (size_t i = 0; i < dlen; i++)
        if ((unsigned char)d[i] >= 0x80) dom_non_ascii = true;
    if (dlen > 0 && memchr(d, '@', dlen)) return "more than one @";
    why = parse_domain(d, dlen, dom_non_ascii, out);
    if (why) return why;

    /* Limits count the local part as given (quotes and escapes included: that is
     * what the RFC 5321 limit is about) and the domain in the A-label form that
     * goes on the wire. */
    if (local_len + 1 + strlen(out->domain) > VD_ADDR_PATH_MAX) return "address too long";
    snprintf(out->address, sizeof out->address, "%s@%s", out->local, out->domain);
    return NULL;
}

bool vd_address_parse(const char *in, size_t len, vd_address *out, const char **why)
{
    vd_address tmp;
    memset(&tmp, 0, sizeof tmp);
    const char *w = in ? parse(in, len, &tmp) : "empty address";
    if (w) {
        if (why) *why = w;
        return false;
    }
    if (out) *out = tmp;
    return true;
}

bool vd_address_wire_safe(const char *s, bool allow_empty)
{
    if (!s) return false;
    if (*s == '\0') return allow_empty;
    vd_address a;
    const char *why;
    return vd_address_parse(s, strlen(s), &a, &why);
}
