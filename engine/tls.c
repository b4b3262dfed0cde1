/* tls.c — every TLS context and every TLS connection object Validora makes.
 *
 * Owns: the one SSL_CTX_new (client contexts: TLS 1.2 minimum when verifying, 1.0 when
 * opportunistic; a CA store, SSL_VERIFY_PEER
 * or SSL_VERIFY_NONE), the one SSL_new (SNI and the name or address the peer must prove),
 * and the verdict after the handshake (chain and name verified).
 * Does not own: sockets, bufferevents, running the handshake, STARTTLS (smtp.c), what a
 * failed verification means to the caller.
 *
 * With SSL_VERIFY_NONE OpenSSL still builds and checks the chain and the name during the
 * handshake and keeps the outcome (SSL_get_verify_result); it only does not abort. That is
 * what opportunistic SMTP records. A per-SSL ex_data mark says that a name was set, so
 * that a connection made without one never counts as verified. */
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

static CRYPTO_ONCE index_once = CRYPTO_ONCE_STATIC_INIT;
static int name_index = -1; /* SSL ex_data: &name_mark when a host or address was set */
static char name_mark;

static void index_init(void)
{
    name_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

static bool have_index(void)
{
    return CRYPTO_THREAD_run_once(&index_once, index_init) && name_index >= 0;
}

/* "what: <OpenSSL's last error>" (or just what) into err; clears OpenSSL's error queue so
 * that nothing stale is reported by a later, unrelated failure. */
static void set_err(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    if (err && errlen) {
        if (e) {
            char ssl[256];
            ERR_error_string_n(e, ssl, sizeof ssl);
            snprintf(err, errlen, "%s: %s", what, ssl);
        } else {
            snprintf(err, errlen, "%s", what);
        }
    }
    ERR_clear_error();
}

static bool load_ca_file(SSL_CTX *ctx, const char *file, char *err, size_t errlen)
{
    char what[512];
    FILE *f = fopen(file, "r");
    if (!f) {
        snprintf(what, sizeof what, "cannot read CA file %s: %s", file, strerror(errno));
        set_err(err, errlen, what);
        return false;
    }
    fclose(f);
    if (SSL_CTX_load_verify_file(ctx, file) != 1) {
        snprintf(what, sizeof what, "cannot load CA file %s", file);
        set_err(err, errlen, what);
        return false;
    }
    return true;
}

SSL_CTX *vd_tls_client_ctx_new(const vd_tls_opts *o, char *err, size_t errlen)
{
    vd_tls_opts none = {0};
    if (!o) o = &none;
    ERR_clear_error();
    if (!have_index()) {
        set_err(err, errlen, "cannot allocate an SSL ex_data index");
        return NULL;
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        set_err(err, errlen, "SSL_CTX_new failed");
        return NULL;
    }
    /* Verifying (HTTPS): TLS 1.2 at least. Opportunistic (SMTP STARTTLS): any TLS beats
     * clear text (RFC 7435), and a failed handshake is never retried in clear, so an old
     * TLS 1.0 MX must still be reachable: Postfix's smtp_tls_protocols is ">=TLSv1" too. */
    int floor = o->require_verified ? TLS1_2_VERSION : TLS1_VERSION;
    if (SSL_CTX_set_min_proto_version(ctx, floor) != 1) {
        set_err(err, errlen, "cannot set the minimum TLS version");
        goto fail;
    }
    if (o->ca_file) {
        if (!load_ca_file(ctx, o->ca_file, err, errlen)) goto fail;
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        set_err(err, errlen, "cannot load the system CA store");
        goto fail;
    }
    SSL_CTX_set_verify(ctx, o->require_verified ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    /* HTTPS: a server that closes without close_notify (Python's http.server, many others)
     * ends an HTTP/1.0 body that runs to the close; OpenSSL 3 calls that an error unless told.
     * A body with a length or chunks is still checked whole by the HTTP client. */
    if (o->require_verified) SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

void vd_tls_ctx_free(SSL_CTX *ctx)
{
    SSL_CTX_free(ctx);
}

/* An IPv4 or IPv6 literal ("192.0.2.1", "2001:db8::1", "[2001:db8::1]") copied to out
 * without brackets; false for anything else. */
static bool ip_literal(const char *host, char *out, size_t outlen)
{
    unsigned char buf[sizeof(struct in6_addr)];
    size_t n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        if (n - 2 >= outlen) return false;
        memcpy(out, host + 1, n - 2);
        out[n - 2] = '\0';
        return inet_pton(AF_INET6, out, buf) == 1;
    }
    if (n >= outlen) return false;
    memcpy(out, host, n + 1);
    return inet_pton(AF_INET, out, buf) == 1 || inet_pton(AF_INET6, out, buf) == 1;
}

SSL *vd_tls_ssl_new(SSL_CTX *ctx, const char *host, char *err, size_t errlen)
{
    ERR_clear_error();
    if (!ctx) {
        set_err(err, errlen, "no TLS context");
        return NULL;
    }
    bool named = host && *host;
    if (!named && (SSL_CTX_get_verify_mode(ctx) & SSL_VERIFY_PEER)) {
        set_err(err, errlen, "a host name is needed to verify the peer");
        return NULL;
    }
    if (!have_index()) {
        set_err(err, errlen, "cannot allocate an SSL ex_data index");
        return NULL;
    }
    SSL *ssl = SSL_new(ctx);
    if (!ssl) {
        set_err(err, errlen, "SSL_new failed");
        return NULL;
    }
    if (!named) return ssl; /* nothing to check a certificate against */

    char ip[INET6_ADDRSTRLEN + 8];
    if (ip_literal(host, ip, sizeof ip)) {
        /* RFC 6066 §3: no SNI for an address; the certificate must name it (iPAddress) */
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), ip) != 1) {
            set_err(err, errlen, "cannot set the address to verify");
            goto fail;
        }
    } else {
        char name[256];
        size_t n = strlen(host);
        if (n > 1 && host[n - 1] == '.') n--; /* "mx.example." is "mx.example" (RFC 6066) */
        if (n >= sizeof name) {
            set_err(err, errlen, "host name longer than 255 octets");
            goto fail;
        }
        memcpy(name, host, n);
        name[n] = '\0';
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (SSL_set_tlsext_host_name(ssl, name) != 1 || SSL_set1_host(ssl, name) != 1) {
            set_err(err, errlen, "cannot set the host name to verify");
            goto fail;
        }
    }
    if (SSL_set_ex_data(ssl, name_index, &name_mark) != 1) {
        set_err(err, errlen, "SSL_set_ex_data failed");
        goto fail;
    }
    return ssl;
fail:
    SSL_free(ssl);
    return NULL;
}

bool vd_tls_verified(const SSL *ssl)
{
    return ssl && name_index >= 0 && SSL_get_ex_data(ssl, name_index) == &name_mark &&
           SSL_is_init_finished(ssl) && SSL_get0_peer_certificate(ssl) != NULL &&
           SSL_get_verify_result(ssl) == X509_V_OK;
}
