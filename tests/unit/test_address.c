/* test_address.c — address parsing: the isemail corpus (Dominic Sayers,
 * BSD-3-Clause) with our policy per category, plus IDN, literals, length
 * limits, smuggling and wire safety. The corpus is required: when it cannot be
 * found the test fails rather than skips. */
#include "address.h"
#include "check.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 4096) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) {
                free(buf);
                buf = NULL;
            }
            buf = nb;
        }
    }
    fclose(f);
    if (buf) buf[len] = '\0';
    return buf;
}

static size_t put_utf8(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Decodes XML entities in s[0..len) into out; U+2400..U+241F (the "symbol for"
 * control pictures the corpus uses because XML cannot hold them) become the
 * real C0 characters. */
static size_t decode_xml(const char *s, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp = 0;
        if (s[i] == '&') {
            const char *semi = memchr(s + i, ';', len - i);
            size_t elen = semi ? (size_t)(semi - (s + i)) + 1 : 0;
            if (elen > 3 && s[i + 1] == '#') {
                bool hex = s[i + 2] == 'x' || s[i + 2] == 'X';
                cp = (uint32_t)strtoul(s + i + (hex ? 3 : 2), NULL, hex ? 16 : 10);
            } else if (elen == 5 && strncmp(s + i, "&amp;", 5) == 0) {
                cp = '&';
            } else if (elen == 4 && strncmp(s + i, "&lt;", 4) == 0) {
                cp = '<';
            } else if (elen == 4 && strncmp(s + i, "&gt;", 4) == 0) {
                cp = '>';
            } else if (elen == 6 && strncmp(s + i, "&quot;", 6) == 0) {
                cp = '"';
            } else if (elen == 6 && strncmp(s + i, "&apos;", 6) == 0) {
                cp = '\'';
            } else {
                out[o++] = s[i++];
                continue;
            }
            i += elen;
            if (cp >= 0x2400 && cp <= 0x241f) cp -= 0x2400;
            o += put_utf8(out + o, cp);
            continue;
        }
        /* Raw UTF-8 control pictures too (3 bytes: E2 90 80..9F). */
        if ((unsigned char)s[i] == 0xe2 && i + 2 < len && (unsigned char)s[i + 1] == 0x90 &&
            (unsigned char)s[i + 2] >= 0x80 && (unsigned char)s[i + 2] <= 0x9f) {
            out[o++] = (char)((unsigned char)s[i + 2] - 0x80);
            i += 3;
            continue;
        }
        out[o++] = s[i++];
    }
    return o;
}

/* Finds <tag>...</tag> inside [b, e); returns the content span or NULL. */
static const char *element(const char *b, const char *e, const char *tag, size_t *len)
{
    char open[32], close[32];
    snprintf(open, sizeof open, "<%s>", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    const char *p = strstr(b, open);
    if (!p || p >= e) return NULL;
    p += strlen(open);
    const char *q = strstr(p, close);
    if (!q || q > e) return NULL;
    *len = (size_t)(q - p);
    return p;
}

static void test_isemail(void)
{
    char path[4096];
    const char *corpora = getenv("VALIDORA_CORPORA");
    const char *src = getenv("VALIDORA_SOURCE_DIR");
    char *xml = NULL;
    if (corpora) {
        snprintf(path, sizeof path, "%s/isemail/tests.xml", corpora);
        xml = read_file(path);
    }
    if (!xml && src) {
        snprintf(path, sizeof path, "%s/../shared/corpora/isemail/tests.xml", src);
        xml = read_file(path);
    }
    CHECK_MSG(xml != NULL, "isemail corpus not found (VALIDORA_CORPORA=%s VALIDORA_SOURCE_DIR=%s)",
              corpora ? corpora : "(unset)", src ? src : "(unset)");
    if (!xml) return;

    int n_tests = 0, n_err = 0, n_ok = 0, n_policy = 0;
    for (const char *p = strstr(xml, "<test id=\""); p; p = strstr(p + 1, "<test id=\"")) {
        const char *end = strstr(p, "</test>");
        if (!end) break;
        int id = atoi(p + 10);
        size_t clen = 0, alen = 0;
        const char *cat = element(p, end, "category", &clen);
        const char *addr = element(p, end, "address", &alen); /* <address/> means empty */
        CHECK_MSG(cat != NULL, "test %d has no category", id);
        if (!cat) continue;
        char in[4096];
        size_t inlen = addr ? decode_xml(addr, alen, in) : 0;
        char category[64];
        snprintf(category, sizeof category, "%.*s", (int)clen, cat);

        vd_address a;
        const char *why = NULL;
        bool ok = vd_address_parse(in, inlen, &a, &why);
        n_tests++;
        if (strcmp(category, "ISEMAIL_VALID_CATEGORY") == 0 ||
            strcmp(category, "ISEMAIL_DNSWARN") == 0 || strcmp(category, "ISEMAIL_RFC5321") == 0) {
            n_ok++;
            CHECK_MSG(ok, "isemail %d (%s) '%.*s' should be accepted: %s", id, category, (int)inlen,
                      in, why);
            if (ok)
                CHECK_MSG(vd_address_wire_safe(a.address, false),
                          "isemail %d: normalised '%s' not wire safe", id, a.address);
        } else if (strcmp(category, "ISEMAIL_ERR") == 0) {
            n_err++;
            CHECK_MSG(!ok, "isemail %d (%s) '%.*s' should be rejected", id, category, (int)inlen,
                      in);
        } else if (strcmp(category, "ISEMAIL_CFWS") == 0 ||
                   strcmp(category, "ISEMAIL_DEPREC") == 0 ||
                   strcmp(category, "ISEMAIL_RFC5322") == 0) {
            /* Policy (docs/addresses.md): comments, folding white space, obsolete
             * forms and what only RFC 5322 allows never go into RCPT TO, so all are
             * refused. */
            n_policy++;
            CHECK_MSG(!ok, "isemail %d (%s) '%.*s' should be rejected by policy", id, category,
                      (int)inlen, in);
        } else {
            CHECK_MSG(0, "isemail %d: unknown category %s", id, category);
        }
        if (!ok) CHECK_MSG(why && *why, "isemail %d: rejected without a reason", id);
    }
    /* The corpus as shipped (v3.05) has 164 tests; a reader that finds none
     * proves nothing. */
    CHECK_MSG(n_tests >= 160, "only %d isemail tests read", n_tests);
    CHECK(n_err >= 60);
    CHECK(n_ok >= 30);
    CHECK(n_policy >= 50);
    free(xml);
}

static bool parse_s(const char *s, vd_address *a, const char **why)
{
    return vd_address_parse(s, strlen(s), a, why);
}

static void expect_ok(const char *s, const char *address)
{
    vd_address a;
    const char *why = NULL;
    bool ok = parse_s(s, &a, &why);
    CHECK_MSG(ok, "'%s' rejected: %s", s, why);
    if (ok && address) CHECK_STR(a.address, address);
}

static void expect_bad(const char *s, const char *why_want)
{
    vd_address a;
    const char *why = NULL;
    bool ok = parse_s(s, &a, &why);
    CHECK_MSG(!ok, "'%s' accepted", s);
    if (!ok && why_want) CHECK_STR(why, why_want);
}

static void test_idn(void)
{
    vd_address a;
    const char *why = NULL;
    CHECK(parse_s("Hans@bücher.de", &a, &why));
    CHECK_STR(a.domain, "xn--bcher-kva.de");
    CHECK_STR(a.domain_unicode, "bücher.de");
    CHECK_STR(a.local, "Hans");
    CHECK_STR(a.address, "Hans@xn--bcher-kva.de");
    CHECK(!a.smtputf8);
    CHECK(!a.is_literal);

    /* NFD input (u + combining diaeresis) lands on the same A-label. */
    CHECK(parse_s("x@bu\xcc\x88"
                  "cher.de",
                  &a, &why));
    CHECK_STR(a.domain, "xn--bcher-kva.de");
    /* Upper case, in ASCII and in Unicode, is lowered; the local part keeps its
     * case. */
    CHECK(parse_s("John.Smith@EXAMPLE.Com", &a, &why));
    CHECK_STR(a.domain, "example.com");
    CHECK_STR(a.local, "John.Smith");
    CHECK(parse_s("x@BÜCHER.DE", &a, &why));
    CHECK_STR(a.domain, "xn--bcher-kva.de");
    /* IDNA2008 non-transitional: ß stays ß (transitional would map to "fass.de").
     */
    CHECK(parse_s("x@faß.de", &a, &why));
    CHECK_STR(a.domain, "xn--fa-hia.de");
    /* A-label input is kept and decoded for display. */
    CHECK(parse_s("test@XN--hxajbheg2az3al.xn--jxalpdlp", &a, &why));
    CHECK_STR(a.domain, "xn--hxajbheg2az3al.xn--jxalpdlp");
    CHECK_STR(a.domain_unicode, "παράδειγμα.δοκιμή");
    expect_bad("x@xn--abc.com", "invalid internationalised domain");
    /* An A-label libidn2 decodes, but to U+010F and U+00AF (IDNA2008 disallows the macron):
     * its U-label does not encode back. Found by tests/fuzz/fuzz_address. */
    expect_bad("$@xn--iana-eld3abpik8b-rg-g1a52r", "invalid internationalised domain");
    /* A valid A-label still decodes and round-trips. */
    expect_ok("x@xn--fa-hia.de", "x@xn--fa-hia.de");
    /* Plain LDH host names that IDNA2008 alone would refuse are still host names.
     */
    expect_ok("x@ab--cd.example", "x@ab--cd.example");

    /* RFC 6531 UTF-8 local parts: accepted, flagged, unchanged. */
    CHECK(parse_s("Пётр@почта.рф", &a, &why));
    CHECK(a.smtputf8);
    CHECK_STR(a.local, "Пётр");
    CHECK_STR(a.domain, "xn--80a1acny.xn--p1ai");
    CHECK_STR(a.domain_unicode, "почта.рф");
    CHECK(parse_s("\"δοκιμή test\"@example.com", &a, &why));
    CHECK(a.smtputf8 && a.quoted);
    /* Broken UTF-8: overlong '/', lone continuation, surrogate, truncated
     * sequence. */
    expect_bad("a\xc0\xaf@example.com", "invalid utf-8");
    expect_bad("a\x80@example.com", "invalid utf-8");
    expect_bad("a\xed\xa0\x80@example.com", "invalid utf-8");
    expect_bad("a@example.com\xe2\x82", "invalid utf-8");
    /* C1 control (U+0085 NEL) and DEL. */
    expect_bad("a\xc2\x85@example.com", "control character");
    expect_bad("a\x7f@example.com", "control character");
}

static void test_local(void)
{
    vd_address a;
    const char *why = NULL;
    /* A quoted local part that needs no quoting is reduced to its dot-atom form.
     */
    CHECK(parse_s("\"john.smith\"@example.com", &a, &why));
    CHECK_STR(a.local, "john.smith");
    CHECK(!a.quoted);
    CHECK(parse_s("\"\\j\\o\\hn\"@example.com", &a, &why));
    CHECK_STR(a.local, "john");
    /* One that does is kept quoted, with only the escapes it needs. */
    CHECK(parse_s("\"john\\ smith\"@example.com", &a, &why));
    CHECK_STR(a.local, "\"john smith\"");
    CHECK(a.quoted);
    CHECK(parse_s("\"a\\\"b\\\\c\"@example.com", &a, &why));
    CHECK_STR(a.local, "\"a\\\"b\\\\c\"");
    CHECK(parse_s("\"a..b\"@example.com", &a, &why));
    CHECK_STR(a.local, "\"a..b\"");
    CHECK(parse_s("\"\"@example.com", &a, &why));
    CHECK_STR(a.local, "\"\"");
    expect_ok("user+tag@example.com", "user+tag@example.com");
    expect_ok("!#$%&'*+-/=?^_`{|}~@example.com", NULL);
    expect_bad("a b@example.com", "invalid character in local part");
    expect_bad("a@b@example.com", "more than one @");
    expect_bad("\"a\"b@example.com", "text after quoted string");
    expect_bad("\"a\".b@example.com", "text after quoted string");
    expect_bad("(c)a@example.com", "invalid character in local part");
    expect_bad("a@example.com (c)", "invalid character in domain");
}

static void test_literals(void)
{
    vd_address a;
    const char *why = NULL;
    CHECK(parse_s("postmaster@[192.0.2.1]", &a, &why));
    CHECK(a.is_literal);
    CHECK_STR(a.domain, "[192.0.2.1]");
    CHECK_STR(a.domain_unicode, "[192.0.2.1]");
    CHECK(parse_s("postmaster@[ipv6:2001:db8::1]", &a, &why));
    CHECK(a.is_literal);
    CHECK_STR(a.domain, "[IPv6:2001:db8::1]");
    expect_ok("a@[IPv6:::ffff:192.0.2.1]", NULL);
    expect_bad("a@[192.0.2.256]", "invalid ipv4 literal");
    expect_bad("a@[192.0.2]", "invalid ipv4 literal");
    expect_bad("a@[2001:db8::1]", "general address literal");
    expect_bad("a@[x400:c=us;a=;p=x]", "general address literal");
    expect_bad("a@[IPv6:2001:db8::g]", "invalid ipv6 literal");
    expect_bad("a@[IPv6:1:2:3:4:5:6:7::8]", "invalid ipv6 literal");
    expect_bad("a@[192.0.2.1", "unterminated address literal");
    expect_bad("a@[]", "invalid address literal");
}

static void repeat(char *o, char c, size_t n)
{
    memset(o, c, n);
    o[n] = '\0';
}

static void test_lengths(void)
{
    char buf[1200], l64[70], l65[70], lab63[70], lab64[70];
    repeat(l64, 'a', 64);
    repeat(l65, 'a', 65);
    repeat(lab63, 'b', 63);
    repeat(lab64, 'b', 64);

    snprintf(buf, sizeof buf, "%s@example.com", l64);
    expect_ok(buf, NULL);
    snprintf(buf, sizeof buf, "%s@example.com", l65);
    expect_bad(buf, "local part too long");
    /* Quoted: 62 characters + 2 quotes = 64 octets is the limit. */
    char q[80];
    snprintf(q, sizeof q, "\"%.61s \"@example.com", l64);
    expect_ok(q, NULL);
    snprintf(q, sizeof q, "\"%.62s \"@example.com", l64);
    expect_bad(q, "local part too long");

    snprintf(buf, sizeof buf, "a@%s.com", lab63);
    expect_ok(buf, NULL);
    snprintf(buf, sizeof buf, "a@%s.com", lab64);
    expect_bad(buf, "domain label too long");

    /* Whole path: 64 + 1 + 189 = 254 accepted, 255 refused. */
    char dom[300];
    snprintf(dom, sizeof dom, "%s.%s.%.61s", lab63, lab63, lab63); /* 63+1+63+1+61 = 189 */
    snprintf(buf, sizeof buf, "%s@%s", l64, dom);
    CHECK(strlen(buf) == 254);
    expect_ok(buf, NULL);
    snprintf(dom, sizeof dom, "%s.%s.%.62s", lab63, lab63, lab63);
    snprintf(buf, sizeof buf, "%s@%s", l64, dom);
    CHECK(strlen(buf) == 255);
    expect_bad(buf, "address too long");

    /* Domain over 255 octets. */
    snprintf(dom, sizeof dom, "%s.%s.%s.%s.com", lab63, lab63, lab63, lab63);
    snprintf(buf, sizeof buf, "a@%s", dom);
    expect_bad(buf, "domain too long");
    /* An IDN whose A-label form is too long, though its UTF-8 is short enough per
     * label. */
    snprintf(buf, sizeof buf, "a@%s%s.de", "ü", lab63);
    expect_bad(buf, "domain label too long");
    /* Absurd input is refused before anything else looks at it. */
    char big[2000];
    repeat(big, 'a', 1999);
    expect_bad(big, "address too long");
}

static void test_domain(void)
{
    expect_ok("a@localhost", "a@localhost"); /* dotless: RFC 5321 allows it (isemail #5, #166) */
    expect_bad("a@-example.com", "domain label starts or ends with a hyphen");
    expect_bad("a@example-.com", "domain label starts or ends with a hyphen");
    expect_bad("a@example..com", "empty domain label");
    expect_bad("a@example.com.", "empty domain label");
    expect_bad("a@.example.com", "empty domain label");
    expect_bad("a@exa_mple.com", "invalid character in domain");
    expect_bad("a@", "empty domain");
    expect_bad("@example.com", "empty local part");
    expect_bad("example.com", "missing @");
    expect_bad("", "empty address");
}

static void test_smuggling(void)
{
    const char *cases[] = {"a@b.com\r\nRCPT TO:<x@y>",
                           "a@b.com\nRCPT TO:<x@y>",
                           "a@b.com\r",
                           "\"a\r\nb\"@b.com",
                           "a@b.com\tx",
                           "a\x1b@b.com"};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        expect_bad(cases[i], "control character");
    /* NUL inside the given length: the parser must not stop at it and accept
     * "a@b.com". */
    const char nul[] = "a@b.com\0RCPT TO:<x@y>";
    vd_address a;
    const char *why = NULL;
    CHECK(!vd_address_parse(nul, sizeof nul - 1, &a, &why));
    CHECK_STR(why, "control character");
    const char nul2[] = "a\0@b.com";
    CHECK(!vd_address_parse(nul2, sizeof nul2 - 1, &a, &why));
    /* Angle brackets and spaces would break the path syntax. */
    expect_bad("a@b.com> SIZE=1", NULL);
    expect_bad("<a@b.com>", NULL);
    /* len is honoured: only the first 7 bytes are the address. */
    CHECK(vd_address_parse("a@b.com trailing", 7, &a, &why));
    CHECK_STR(a.address, "a@b.com");
    CHECK(!vd_address_parse(NULL, 3, &a, &why));
}

static void test_wire_safe(void)
{
    CHECK(vd_address_wire_safe("user@example.com", false));
    CHECK(vd_address_wire_safe("\"a b\"@example.com", false));
    CHECK(!vd_address_wire_safe("", false));
    CHECK(vd_address_wire_safe("", true));
    CHECK(!vd_address_wire_safe(NULL, true));
    CHECK(!vd_address_wire_safe("user@example.com\r\nDATA", true));
    CHECK(!vd_address_wire_safe("user@example.com>", true));
    CHECK(!vd_address_wire_safe("user", true));
}

/* Issue 17: a byte-order mark or an invisible/format character inside an address is
 * refused as syntax, never probed (an Excel list's "\ufeffalice@valid.test" was written
 * undeliverable). Visible non-ASCII stays accepted. */
static void test_invisible(void)
{
    static const uint32_t cps[] = {0xfeff, 0x200b, 0x200c, 0x200d, 0x2060,  0x200e,
                                   0x200f, 0x202a, 0x202e, 0x2066, 0x2069,  0x00ad,
                                   0x00a0, 0x3000, 0x2028, 0x180e, 0xe0041, 0x3164};
    for (size_t i = 0; i < sizeof cps / sizeof cps[0]; i++) {
        char buf[64], *o;
        o = buf + put_utf8(buf, cps[i]);
        strcpy(o, "alice@valid.test");
        expect_bad(buf, "invisible or format character");
        o = buf + sizeof "ali" - 1;
        memcpy(buf, "ali", 3);
        o += put_utf8(o, cps[i]);
        strcpy(o, "ce@valid.test");
        expect_bad(buf, "invisible or format character");
        o = buf + sizeof "alice@valid" - 1;
        memcpy(buf, "alice@valid", 11);
        o += put_utf8(o, cps[i]);
        strcpy(o, ".test");
        expect_bad(buf, "invisible or format character");
    }
    expect_ok("j\xc3\xb6rg@example.com", "j\xc3\xb6rg@example.com");
    expect_ok("\xe7\x94\xb0\xe4\xb8\xad@example.com", NULL);
}

int main(void)
{
    test_invisible();
    test_isemail();
    test_idn();
    test_local();
    test_literals();
    test_lengths();
    test_domain();
    test_smuggling();
    test_wire_safe();
    return check_done();
}
