/* fuzz_smtp_reply.c — libFuzzer target for the SMTP client's reply reader (engine/smtp.c),
 * driven end to end through the public API: no change to smtp.c.
 *
 * The reply parser is static and reads from a bufferevent that vd_smtp_open creates by
 * connecting, so the seam is a real loopback connection: a listening socket on 127.0.0.1 made
 * once; per input, vd_smtp_open connects to it, the harness accepts, writes the input as
 * everything the "server" will ever say, shuts its write side (so the client always sees EOF
 * and nothing waits for a timer), and runs the event loop until the session is gone. After
 * the session is ready the harness issues MAIL/RCPT/RSET commands, so the rest of the input is
 * read as their replies; then it quits (or frees at once).
 *
 * Input: byte 0 holds options (bit 0: a TLS context, so STARTTLS is tried when offered; bit 1:
 * require TLS; bit 2: vd_smtp_free instead of vd_smtp_quit at the end); the rest is the byte
 * stream from the server.
 *
 * Invariants, checked in every callback: a reply has text (never NULL, bounded by the line and
 * line-count limits), an OK reply has a code 200..599 and an enhanced code of the same class or
 * none, an error has a message, the input buffer never grew past the read watermark, and no
 * callback comes after the harness ended the session. ASan/LSan catch the rest. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "destination.h"
#include "smtp.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
size_t vd_smtp_input_peak_(const vd_smtp *s); /* test hook in smtp.c */

#define REQUIRE(cond, ...)                                                                         \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_smtp_reply: %s:%d: %s: ", __FILE__, __LINE__, #cond);            \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* smtp.c reads at most this far ahead (READ_HIGH_WATER there). */
#define WATERMARK (4 * VD_SMTP_MAX_LINE)
#define MAX_STEPS 6
#define INPUT_MAX (64 * 1024) /* fits the loopback socket buffers: the write never blocks */

static struct event_base *base;
static int listen_fd = -1;
static struct sockaddr_in listen_addr;
static SSL_CTX *tls_ctx;

typedef struct drive {
    int steps;
    bool ended; /* the harness quit or freed the session */
    bool use_free;
    int callbacks;
} drive;

static void on_reply(vd_smtp *s, const vd_smtp_reply *r, void *arg);

static void check_reply(const vd_smtp *s, const vd_smtp_reply *r)
{
    REQUIRE(r != NULL && r->text != NULL, "reply without text");
    size_t tlen = strlen(r->text);
    REQUIRE(tlen <= (size_t)VD_SMTP_MAX_LINES * (VD_SMTP_MAX_LINE + 1), "reply text %zu bytes",
            tlen);
    size_t elen = strnlen(r->enhanced, sizeof r->enhanced);
    REQUIRE(elen < sizeof r->enhanced, "enhanced code unterminated");
    if (r->err == VD_SMTP_OK) {
        REQUIRE(r->code >= 200 && r->code <= 599, "OK reply with code %d", r->code);
        REQUIRE(elen == 0 || (r->enhanced[0] == '0' + r->code / 100 && r->enhanced[1] == '.'),
                "enhanced code '%s' with reply code %d", r->enhanced, r->code);
    } else {
        REQUIRE(r->errmsg != NULL && *r->errmsg, "error %d without a message", (int)r->err);
        REQUIRE(strcmp(vd_smtp_err_name(r->err), "unknown") != 0, "error %d has no name",
                (int)r->err);
    }
    REQUIRE(vd_smtp_input_peak_(s) <= WATERMARK, "input buffer grew to %zu",
            vd_smtp_input_peak_(s));
}

static void end_session(vd_smtp *s, drive *d)
{
    d->ended = true;
    if (d->use_free)
        vd_smtp_free(s);
    else
        vd_smtp_quit(s);
}

static void on_reply(vd_smtp *s, const vd_smtp_reply *r, void *arg)
{
    drive *d = arg;
    REQUIRE(!d->ended, "callback after the session was ended");
    d->callbacks++;
    check_reply(s, r);
    /* Exercise the accessors on whatever state the session is in. */
    (void)vd_smtp_has_ext(s, "SMTPUTF8");
    (void)vd_smtp_has_ext(s, "");
    (void)vd_smtp_tls(s);
    (void)vd_smtp_tls_verified(s);
    (void)vd_smtp_commands(s);

    if (r->err != VD_SMTP_OK || d->steps >= MAX_STEPS || !vd_smtp_usable(s)) {
        end_session(s, d);
        return;
    }
    /* A command's callback may run before the call returns (nested): nothing after it. */
    switch (d->steps++) {
    case 0:
        vd_smtp_mail(s, "", on_reply, d);
        break;
    case 1:
        vd_smtp_rcpt(s, "probe@example.com", on_reply, d);
        break;
    case 2:
        vd_smtp_rcpt(s, "\"a b\"@[127.0.0.1]", on_reply, d);
        break;
    case 3:
        vd_smtp_rset(s, on_reply, d);
        break;
    case 4:
        vd_smtp_mail(s, "bounce@example.org", on_reply, d);
        break;
    default:
        vd_smtp_rcpt(s, "\xc3\xa9l\xc3\xa8ve@example.com", on_reply, d);
        break;
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN);           /* the client may write after the server side is gone */
    vd_destination_allow_private(true); /* the "server" is on 127.0.0.1 */
    base = event_base_new();
    listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    listen_addr.sin_family = AF_INET;
    listen_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    listen_addr.sin_port = 0;
    socklen_t len = sizeof listen_addr;
    if (!base || listen_fd < 0 ||
        bind(listen_fd, (struct sockaddr *)&listen_addr, sizeof listen_addr) != 0 ||
        listen(listen_fd, 16) != 0 ||
        getsockname(listen_fd, (struct sockaddr *)&listen_addr, &len) != 0) {
        perror("fuzz_smtp_reply: set-up");
        abort();
    }
    char err[256];
    tls_ctx = vd_tls_client_ctx_new(&(vd_tls_opts){.require_verified = false}, err, sizeof err);
    if (!tls_ctx) {
        fprintf(stderr, "fuzz_smtp_reply: %s\n", err);
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || size > INPUT_MAX) return 0;
    unsigned opts_byte = data[0];
    data++, size--;

    drive d = {.use_free = (opts_byte & 4) != 0};
    vd_smtp_opts opts = {
        .helo = "fuzz.example",
        .connect_timeout_ms = 5000,
        .command_timeout_ms = 5000, /* never reached: the server side always ends with EOF */
        .tls_ctx = (opts_byte & 1) ? tls_ctx : NULL,
        .require_tls = (opts_byte & 2) != 0,
        .tls_sni = "mx.example",
    };
    vd_smtp *s = vd_smtp_open(base, (struct sockaddr *)&listen_addr, sizeof listen_addr, &opts,
                              on_reply, &d);
    REQUIRE(s != NULL, "vd_smtp_open failed");
    int fd = accept(listen_fd, NULL, NULL);
    REQUIRE(fd >= 0, "accept failed");
    for (size_t off = 0; off < size;) {
        ssize_t n = write(fd, data + off, size - off);
        REQUIRE(n > 0, "write to the client failed");
        off += (size_t)n;
    }
    shutdown(fd, SHUT_WR);
    event_base_dispatch(base);     /* returns when the session has no event left */
    if (!d.ended) vd_smtp_free(s); /* e.g. EOF while idle: nobody was called back */
    /* An ended session frees itself from the loop; nothing of it may be left. */
    REQUIRE(event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED) == 0,
            "events left on the loop");
    close(fd);
    return 0;
}
