/* cli_output.h — the records file of `validora verify -o FILE` (cli_output.c): opening it
 * (an existing non-empty FILE is refused unless --force or --resume), --resume (FILE read back
 * under validora/resume.h's policy: a torn tail cut off, deferred records dropped, the
 * addresses already done as a multiset), the lock that keeps two runs off one FILE, and
 * durability (fdatasync at most every --sync seconds, and at the end). docs/records.md, "Long
 * runs", says what a user sees. CLI layer: public headers only. */
#ifndef VALIDORA_CLI_OUTPUT_H
#define VALIDORA_CLI_OUTPUT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include "validora/record.h"

struct event_base;

typedef struct vd_out_opts {
    const char *path; /* not "-" */
    vd_format fmt;    /* --resume needs VD_FMT_MSGPACK (the caller checks) */
    bool resume, force;
    double sync_s; /* fdatasync at most this often while records are written; 0: each record */
} vd_out_opts;

/* What --resume found in FILE. */
typedef struct vd_out_found {
    long kept; /* complete records kept: their addresses are not verified again */
    long by_status[VD_STATUS_COUNT]; /* of those, by vd_status */
    long deferred;       /* complete records with reason deferred: dropped, to be redone */
    long long cut_at;    /* -1, or the byte where a torn tail (a record cut short, or zeros
                            after a power loss) began and was cut off */
    long long cut_bytes; /* its length */
    bool cut_zeros;      /* the tail was zero bytes only */
    bool existed;        /* FILE was there (else --resume started a new one) */
} vd_out_found;

typedef struct vd_out vd_out;

/* Opens (and with --resume, first repairs) FILE, locked for this process. NULL with a message
 * in err (a refusal, another format, damage that is not a torn tail, an I/O error). */
vd_out *vd_out_open(struct event_base *base, const vd_out_opts *o, char *err, size_t errlen);
FILE *vd_out_file(vd_out *out);
const vd_out_found *vd_out_found_get(const vd_out *out);
/* true when the input line (len bytes at email) already has a kept record: that record is
 * used up, so a line given twice is skipped only as often as it has records. */
bool vd_out_skip(vd_out *out, const char *email, size_t len);
/* A record was written: synced now (--sync 0) or by the next tick. 0, or -1 with errno. */
int vd_out_wrote(vd_out *out);
/* Flushes, syncs, closes and unlocks; 0, or -1 with a message in err. NULL is a no-op. */
int vd_out_close(vd_out *out, char *err, size_t errlen);

#endif
