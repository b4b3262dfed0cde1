/* playback.h — a rule test as data (`validora rules test`, docs/rules-test.md): the DNS
 * answers, the SMTP sessions (transcripts or inline replies), the HTTP answers, the addresses
 * and what their records must say; and the problems playback notes.
 *
 * Owns: the shape of a test (filled by the loader, testfile.c; served by the loopback
 * servers, playback_dns.c, playback_smtp.c, playback_http.c; compared by cli_rules_test.c),
 * its bounds, freeing it, the list of one-line problems, quoting bytes for them.
 * Does not own: reading a test file (testfile.c: Lua), reading a transcript (transcript.c),
 * serving anything. I/O & data layer: no Lua, no libevent. */
#ifndef VALIDORA_PLAYBACK_H
#define VALIDORA_PLAYBACK_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "transcript.h" /* vd_transcript_script, vd_transcript_reply */

/* Bounds of a test (it may come from anywhere: a file that breaks one is refused). */
#define VD_PB_MAX_FILE    (8u << 20) /* bytes of a test file */
#define VD_PB_MAX_NAMES   1000       /* DNS names in one test */
#define VD_PB_MAX_HOSTS   200        /* names with an A answer: 127.0.0.2 .. 127.0.0.201 */
#define VD_PB_MAX_SESSION 1000       /* sessions in one test */
#define VD_PB_MAX_CHECKS  1000       /* addresses in one test */
#define VD_PB_MAX_HTTP    1000       /* HTTP requests in one test */
#define VD_PB_MAX_BODY    (1u << 20) /* bytes of one HTTP body, either way */

/* ---- messages ---- */

/* A growing list of one-line messages (problems of a test). */
typedef struct vd_pb_msgs {
    char **v;
    size_t n, cap;
} vd_pb_msgs;
void vd_pb_msg(vd_pb_msgs *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void vd_pb_msgs_clear(vd_pb_msgs *m);
/* Writes s (len bytes) quoted as "...", non-printable bytes as \xHH, cut after max bytes with
 * "..." appended; buf always ends in NUL. */
void vd_pb_quote(char *buf, size_t size, const char *s, size_t len, size_t max);

/* ---- a test file ---- */

typedef struct vd_pb_mx {
    uint16_t pref;
    char *host; /* "." for a null MX (RFC 7505) */
} vd_pb_mx;

typedef enum vd_pb_rcode {
    VD_PB_ANSWER = 0, /* answer from the records (NODATA when the type has none) */
    VD_PB_SERVFAIL,
    VD_PB_REFUSED,
    VD_PB_NXDOMAIN,
    VD_PB_DROP, /* no answer: the resolver times out */
} vd_pb_rcode;

typedef struct vd_pb_name {
    char *name; /* lower case, no trailing dot */
    vd_pb_rcode rcode;
    vd_pb_mx *mx;
    size_t nmx;
    bool a;      /* served as this name's loopback address */
    uint32_t ip; /* 127.0.0.x in host order, when a */
    char **txt;
    size_t ntxt;
    char **ptr;
    size_t nptr;
    char *cname;
} vd_pb_name;

/* An SMTP connection's server side: a transcript, or inline replies by verb. */
typedef struct vd_pb_verb {
    char verb[16];
    vd_transcript_reply *replies; /* in order; a verb given one string answers it every time */
    size_t n;
    bool every_time;
    size_t used;
} vd_pb_verb;

typedef struct vd_pb_session {
    char *what; /* "transcripts/x.txt" or "inline", for messages */
    char *host; /* only connections to this host take it; NULL = any */
    bool inline_;
    vd_transcript_script script; /* transcript */
    vd_transcript_reply banner;  /* inline */
    vd_pb_verb *verbs;
    size_t nverbs;
    /* playing */
    bool opened;
    bool broken; /* a problem was noted: no "not played to the end" on top */
    size_t next_step;
} vd_pb_session;

typedef enum vd_pb_vtype { VD_PB_STR, VD_PB_INT, VD_PB_NUM, VD_PB_BOOL, VD_PB_ABSENT } vd_pb_vtype;

typedef struct vd_pb_expect {
    char *key; /* a record key; smtp_code/smtp_enhanced/smtp_text are the smtp map's */
    vd_pb_vtype type;
    char *s;
    size_t slen;
    int64_t i;
    double d;
    bool b;
} vd_pb_expect;

/* One address and what its record must say. */
typedef struct vd_pb_check {
    char *address;
    vd_pb_expect *expect;
    size_t nexpect;
    long http_requests; /* expect.http_requests: requests made while it ran; -1 = not asked */
} vd_pb_check;

typedef struct vd_pb_header {
    char *name, *value;
} vd_pb_header;

/* One HTTP request the test expects (http = { ... }, served in order) and its answer. */
typedef struct vd_pb_http {
    char *method;                /* upper case; NULL = any */
    char *path;                  /* the request's path (and ?query, when it has one); NULL = any */
    char *body_matches;          /* a Lua pattern the request body must match; NULL = any */
    vd_pb_header *headers_match; /* request headers (by name, any case) and Lua patterns */
    size_t nheaders_match;
    int status;
    vd_pb_header *headers;
    size_t nheaders;
    char *body;
    size_t body_len;
} vd_pb_http;

typedef struct vd_pb_option {
    char *name; /* an engine option, '_' written '-' */
    char *value;
} vd_pb_option;

typedef struct vd_pb_test {
    char *path;
    char *name;
    double timeout; /* seconds for the whole test */
    vd_pb_name *names;
    size_t nnames;
    vd_pb_session *sessions;
    size_t nsessions;
    vd_pb_check *checks;
    size_t nchecks;
    vd_pb_option *options;
    size_t noptions;
    vd_pb_option *config; /* options rules see; "$HTTP" stands for the HTTP playback server */
    size_t nconfig;
    vd_pb_http *http;
    size_t nhttp;
} vd_pb_test;

/* names are kept sorted by name (vd_pb_name_cmp): vd_pb_find_name looks one up (lower
 * case, no trailing dot), NULL when the test has none. */
int vd_pb_name_cmp(const void *a, const void *b);
const vd_pb_name *vd_pb_find_name(const vd_pb_test *t, const char *name);
void vd_pb_test_clear(vd_pb_test *t);

#endif
