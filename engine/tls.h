/* tls.h — every TLS context and every TLS connection object Validora makes.
 *
 * Owns: making and configuring SSL_CTX (protocol floor, CA store, verification policy) and
 * SSL (SNI, host-name or IP-address verification), and saying after a handshake whether
 * the peer verified. SMTP STARTTLS (smtp.c) uses it today, an HTTPS client later.
 * Does not own: sockets, bufferevents or the handshake itself (the caller runs it, e.g.
 * through bufferevent_openssl_filter_new), when to use TLS, what to do when it fails. */
#ifndef VALIDORA_TLS_H
#define VALIDORA_TLS_H
#include <stdbool.h>
#include <stddef.h>
#include <openssl/ssl.h>

typedef struct vd_tls_opts {
    const char *ca_file;   /* PEM file of trusted CAs (only these are trusted); NULL = the
                              system store */
    bool require_verified; /* true: a certificate that does not verify fails the handshake
                              (HTTPS); false: opportunistic, the result is only recorded (SMTP) */
} vd_tls_opts;

/* A client context: TLS 1.2 minimum, the CA store loaded (error if ca_file cannot be read),
 * verification policy as above. o NULL = {NULL, false}. NULL with a message in err on
 * failure (a ca_file problem names the file). */
SSL_CTX *vd_tls_client_ctx_new(const vd_tls_opts *o, char *err, size_t errlen);
void vd_tls_ctx_free(SSL_CTX *ctx); /* NULL is fine */

/* An SSL for one connection to host: SNI set when host is a DNS name (not an IP literal),
 * host-name verification (SSL_set1_host, no partial wildcards) or, for an IPv4/IPv6
 * literal ("[::1]" too), address verification (X509_VERIFY_PARAM_set1_ip_asc). One trailing
 * dot of a DNS name is dropped. host NULL or "": no SNI and no name to check, so
 * vd_tls_verified() is never true; refused (NULL) on a require_verified context.
 * NULL with a message in err on failure. The verification policy is the context's. */
SSL *vd_tls_ssl_new(SSL_CTX *ctx, const char *host, char *err, size_t errlen);

/* After the handshake: did the peer's chain verify against the context's CA store and its
 * certificate match the host given to vd_tls_ssl_new? false before the handshake is done,
 * without a peer certificate, or when no host was given. */
bool vd_tls_verified(const SSL *ssl);

#endif
