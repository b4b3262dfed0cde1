/* test_tls.c — tls.c against real TLS servers on loopback: `openssl s_server` with a CA and
 * certificates made by `openssl req` / `openssl x509` in a temporary directory at run time.
 *
 * Server A presents tls.validora.test (SAN DNS:tls.validora.test, IP:127.0.0.1), signed by
 * the test CA. Server B presents the same by default and sni.validora.test when the client
 * sends that SNI; any other SNI gets a fatal alert (-servername_fatal), so a handshake with
 * B proves what the client did (not) send. Server C speaks only TLS 1.0 (RSA key exchange,
 * which OpenSSL's defaults alone still accept). Traffic goes to
 * 127.0.0.1 only; the client is a plain blocking socket with SSL_connect. */
#include "check.h"
#include "tls.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509_vfy.h>

static char dir[128];

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static struct sockaddr_in loopback(int port)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return sa;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = loopback(0);
    socklen_t len = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        perror("free_port");
        exit(2);
    }
    close(fd);
    return ntohs(sa.sin_port);
}

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = loopback(port);
    struct timeval tv = {5, 0}; /* never hang on a server that went quiet */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* openssl s_server on 127.0.0.1:port with extra arguments; waits until it accepts. */
static pid_t start_server(int port, const char *const *args)
{
    char accept[32];
    snprintf(accept, sizeof accept, "127.0.0.1:%d", port);
    char *argv[32] = {"openssl", "s_server", "-accept", accept, "-www", "-quiet"};
    int n = 6;
    for (int i = 0; args[i] && n < 30; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(2);
    }
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, 0);
            if (!getenv("VALIDORA_TEST_VERBOSE")) {
                dup2(null, 1);
                dup2(null, 2);
            }
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    for (int i = 0; i < 500; i++) {
        int fd = connect_to(port);
        if (fd >= 0) {
            close(fd);
            return pid;
        }
        sleep_ms(10);
    }
    fprintf(stderr, "openssl s_server did not start\n");
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    exit(2);
}

static void stop_server(pid_t pid)
{
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

static const char *path(const char *name)
{
    static char buf[4][256];
    static int i;
    char *p = buf[i++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}

/* The CA, and the server certificates it signs: tls and sni (P-256), old (RSA, for the
 * TLS 1.0 server: RSA key exchange is what such servers still offer). */
static bool make_pki(void)
{
    char cmd[2048];
    const char *ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2";
    snprintf(cmd, sizeof cmd,
             "set -e; cd %s;"
             "openssl req -x509 %s -subj '/CN=Validora Test CA' -keyout ca.key -out ca.pem;"
             "for n in tls sni; do"
             "  printf 'subjectAltName=DNS:%%s.validora.test%%s\\nbasicConstraints=CA:FALSE\\n"
             "extendedKeyUsage=serverAuth\\n' $n \"$([ $n = tls ] && echo ,IP:127.0.0.1)\" >$n.ext;"
             "  openssl req -new %s -subj /CN=$n.validora.test -keyout $n.key -out $n.csr;"
             "  openssl x509 -req -in $n.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2"
             "    -extfile $n.ext -out $n.pem;"
             "done;"
             "openssl req -new -newkey rsa:2048 -nodes -subj /CN=tls.validora.test"
             "  -keyout old.key -out old.csr;"
             "openssl x509 -req -in old.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2"
             "  -extfile tls.ext -out old.pem;"
             "printf 'not a certificate\\n' >garbage.pem",
             dir, ec, ec);
    if (mkdir(dir, 0700) != 0) {
        perror(dir);
        return false;
    }
    char full[2200];
    snprintf(full, sizeof full, "(%s) >%s/pki.log 2>&1", cmd, dir);
    if (system(full) != 0) {
        char show[300];
        snprintf(show, sizeof show, "cat %s/pki.log >&2", dir);
        if (system(show) != 0) fprintf(stderr, "no pki.log\n");
        return false;
    }
    return true;
}

typedef struct hs {
    bool made;      /* vd_tls_ssl_new gave an SSL */
    bool connected; /* SSL_connect succeeded */
    bool verified;  /* vd_tls_verified afterwards */
    long verify_result;
    int version;
    char sni[256]; /* the SNI the client set, "" for none */
    char err[256];
} hs;

/* One handshake with the server on port, host as given to vd_tls_ssl_new. */
static hs handshake(SSL_CTX *ctx, int port, const char *host)
{
    hs h = {0};
    SSL *ssl = vd_tls_ssl_new(ctx, host, h.err, sizeof h.err);
    if (!ssl) return h;
    h.made = true;
    CHECK(!vd_tls_verified(ssl)); /* not before the handshake */
    const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    snprintf(h.sni, sizeof h.sni, "%s", sni ? sni : "");
    int fd = connect_to(port);
    CHECK(fd >= 0);
    if (fd >= 0 && SSL_set_fd(ssl, fd) == 1) {
        h.connected = SSL_connect(ssl) == 1;
        h.verified = vd_tls_verified(ssl);
        h.verify_result = SSL_get_verify_result(ssl);
        h.version = SSL_version(ssl);
        if (h.connected) SSL_shutdown(ssl);
    }
    ERR_clear_error();
    SSL_free(ssl);
    if (fd >= 0) close(fd);
    return h;
}

static SSL_CTX *ctx_new(const char *ca_file, bool require)
{
    char err[512] = "";
    SSL_CTX *ctx = vd_tls_client_ctx_new(
        &(vd_tls_opts){.ca_file = ca_file, .require_verified = require}, err, sizeof err);
    CHECK_MSG(ctx != NULL, "%s", err);
    return ctx;
}

static void test_ca_file_errors(void)
{
    char err[512];
    /* missing */
    const char *missing = path("no-such-ca.pem");
    err[0] = '\0';
    CHECK(vd_tls_client_ctx_new(&(vd_tls_opts){.ca_file = missing}, err, sizeof err) == NULL);
    CHECK_MSG(strstr(err, missing) != NULL && strstr(err, "No such file") != NULL, "%s", err);
    /* readable but not PEM certificates */
    const char *garbage = path("garbage.pem");
    err[0] = '\0';
    CHECK(vd_tls_client_ctx_new(&(vd_tls_opts){.ca_file = garbage}, err, sizeof err) == NULL);
    CHECK_MSG(strstr(err, garbage) != NULL, "%s", err);
    /* a directory */
    err[0] = '\0';
    CHECK(vd_tls_client_ctx_new(&(vd_tls_opts){.ca_file = dir}, err, sizeof err) == NULL);
    CHECK_MSG(strstr(err, dir) != NULL, "%s", err);
    /* a failure leaves nothing in OpenSSL's error queue for the next caller */
    CHECK(ERR_peek_error() == 0);
    /* NULL options: the system store, opportunistic */
    SSL_CTX *ctx = vd_tls_client_ctx_new(NULL, err, sizeof err);
    CHECK_MSG(ctx != NULL, "%s", err);
    if (ctx) CHECK(!(SSL_CTX_get_verify_mode(ctx) & SSL_VERIFY_PEER));
    vd_tls_ctx_free(ctx);
    vd_tls_ctx_free(NULL);
}

static void test_ssl_new(void)
{
    SSL_CTX *opp = ctx_new(NULL, false), *strict = ctx_new(NULL, true);
    char err[256];
    /* TLS 1.2 is the floor when verifying, 1.0 when opportunistic; the verification policy
     * is the context's */
    CHECK(SSL_CTX_get_min_proto_version(opp) == TLS1_VERSION);
    CHECK(SSL_CTX_get_min_proto_version(strict) == TLS1_2_VERSION);
    CHECK(SSL_CTX_get_verify_mode(strict) & SSL_VERIFY_PEER);
    /* no host: fine when opportunistic (nothing will verify), refused when enforcing */
    SSL *ssl = vd_tls_ssl_new(opp, NULL, err, sizeof err);
    CHECK(ssl != NULL);
    SSL_free(ssl);
    err[0] = '\0';
    CHECK(vd_tls_ssl_new(strict, "", err, sizeof err) == NULL);
    CHECK_MSG(strstr(err, "host name") != NULL, "%s", err);
    CHECK(vd_tls_ssl_new(NULL, "mx.example", err, sizeof err) == NULL);
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    CHECK(vd_tls_ssl_new(opp, longname, err, sizeof err) == NULL);
    CHECK(!vd_tls_verified(NULL));
    vd_tls_ctx_free(opp);
    vd_tls_ctx_free(strict);
}

static void test_handshakes(void)
{
    int port_a = free_port();
    const char *args_a[] = {"-cert", path("tls.pem"), "-key", path("tls.key"), NULL};
    pid_t a = start_server(port_a, args_a);

    SSL_CTX *trust = ctx_new(path("ca.pem"), false);
    SSL_CTX *sys = ctx_new(NULL, false);
    SSL_CTX *trust_strict = ctx_new(path("ca.pem"), true);
    SSL_CTX *sys_strict = ctx_new(NULL, true);

    /* signed by the given CA, name matches: verified */
    hs h = handshake(trust, port_a, "tls.validora.test");
    CHECK_MSG(h.connected && h.verified, "%s %ld", h.err, h.verify_result);
    CHECK_STR(h.sni, "tls.validora.test");
    CHECK(h.version >= TLS1_2_VERSION);
    /* one trailing dot is the same name */
    h = handshake(trust, port_a, "tls.validora.test.");
    CHECK(h.connected && h.verified);
    CHECK_STR(h.sni, "tls.validora.test");
    /* an IP literal: checked against the certificate's iPAddress, no SNI */
    h = handshake(trust, port_a, "127.0.0.1");
    CHECK_MSG(h.connected && h.verified, "%ld", h.verify_result);
    CHECK_STR(h.sni, "");
    h = handshake(trust, port_a, "127.0.0.2");
    CHECK(h.connected && !h.verified && h.verify_result == X509_V_ERR_IP_ADDRESS_MISMATCH);
    /* the wrong host name: the handshake completes (opportunistic), not verified */
    h = handshake(trust, port_a, "wrong.validora.test");
    CHECK(h.connected && !h.verified);
    CHECK_MSG(h.verify_result == X509_V_ERR_HOSTNAME_MISMATCH, "%ld", h.verify_result);
    /* no name at all: never verified */
    h = handshake(trust, port_a, NULL);
    CHECK(h.made && h.connected && !h.verified);
    /* the system store does not know the test CA */
    h = handshake(sys, port_a, "tls.validora.test");
    CHECK(h.connected && !h.verified);
    CHECK_MSG(h.verify_result == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, "%ld",
              h.verify_result);

    /* require_verified: a certificate that does not verify fails the handshake */
    h = handshake(sys_strict, port_a, "tls.validora.test");
    CHECK(h.made && !h.connected && !h.verified);
    h = handshake(trust_strict, port_a, "wrong.validora.test");
    CHECK(h.made && !h.connected && !h.verified);
    h = handshake(trust_strict, port_a, "tls.validora.test");
    CHECK(h.connected && h.verified);
    stop_server(a);

    /* B: SNI decides the certificate; an unexpected SNI is a fatal alert */
    int port_b = free_port();
    const char *args_b[] = {"-cert",         path("tls.pem"),     "-key",
                            path("tls.key"), "-servername",       "sni.validora.test",
                            "-cert2",        path("sni.pem"),     "-key2",
                            path("sni.key"), "-servername_fatal", NULL};
    pid_t b = start_server(port_b, args_b);
    h = handshake(trust_strict, port_b, "sni.validora.test"); /* only with SNI on the wire */
    CHECK_MSG(h.connected && h.verified, "%ld", h.verify_result);
    h = handshake(trust_strict, port_b, "127.0.0.1"); /* SNI "127.0.0.1" would be fatal */
    CHECK_MSG(h.connected && h.verified, "%ld", h.verify_result);
    h = handshake(trust, port_b, "::1"); /* an IPv6 literal: no SNI either */
    CHECK(h.connected && !h.verified && h.verify_result == X509_V_ERR_IP_ADDRESS_MISMATCH);
    h = handshake(trust, port_b, "[::1]");
    CHECK(h.connected && !h.verified);
    CHECK_STR(h.sni, "");
    h = handshake(trust, port_b, "tls.validora.test"); /* SNI sent, not B's: fatal alert */
    CHECK(h.made && !h.connected);
    stop_server(b);

    /* C: TLS 1.0 only, with RSA key exchange: opportunistic STARTTLS still takes it (any TLS
     * beats clear text), a verifying context refuses it (below its floor) */
    int port_c = free_port();
    const char *args_c[] = {"-cert",   path("old.pem"),          "-key", path("old.key"), "-tls1",
                            "-cipher", "AES128-SHA:@SECLEVEL=0", NULL};
    pid_t c = start_server(port_c, args_c);
    h = handshake(trust_strict, port_c, "tls.validora.test");
    CHECK(h.made && !h.connected);
    h = handshake(trust, port_c, "tls.validora.test");
    CHECK_MSG(h.connected, "opportunistic TLS 1.0 handshake failed");
    stop_server(c);

    vd_tls_ctx_free(trust);
    vd_tls_ctx_free(sys);
    vd_tls_ctx_free(trust_strict);
    vd_tls_ctx_free(sys_strict);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    snprintf(dir, sizeof dir, "/tmp/vd-tls-test-%d", (int)getpid());
    if (!make_pki()) {
        CHECK_MSG(0, "cannot make the test CA and certificates in %s", dir);
        return check_done();
    }
    test_ca_file_errors();
    test_ssl_new();
    test_handshakes();
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", dir);
    return check_done();
}
