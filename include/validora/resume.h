/* validora/resume.h — carrying on from a msgpack record stream: which lines of an input already
 * have a complete record, and where the good part of the stream ends. `verify --resume`, serve's
 * jobs and (next) the fleet's spool all read their records back through this one module, under
 * one policy (docs/records.md, "What resume does"):
 *
 *   - a complete record is kept: its `email` joins a multiset of lines done, so a line given
 *     twice is skipped only as often as it has records (vd_resume_take);
 *   - a complete record with reason `deferred` (VD_REASON_DEFERRED) is not an answer yet: it is
 *     counted and its line is NOT done, unless the caller asks VD_RESUME_DEFERRED_DONE (a serve
 *     job, where a deferred record is that job's answer);
 *   - a torn tail — the stream ends inside a record (a kill, a crash), or only zero bytes follow
 *     the last complete record (what a power cut leaves when a file's size reached the disk and
 *     its data did not) — is where the good part ends: vd_resume_cut cuts it off, and those
 *     lines are done again;
 *   - any other damage (a byte that is not msgpack, an object that is not a map, a map without
 *     `email` or `status`, a record too large) is refused: vd_resume_scan fails with a message
 *     saying where, and the file is left as it is. After damage record boundaries cannot be
 *     trusted, so nothing after it is read, and nothing before it is silently dropped.
 *
 * Owns: that policy, its messages, the multiset of lines done, cutting a torn tail, copying the
 * kept records (to supersede deferred ones).
 * Does not own: the record format and the reader (validora/record.h), opening, locking or
 * renaming files, printing anything (messages are returned).
 *
 * Not thread-safe per object. */
#ifndef VALIDORA_RESUME_H
#define VALIDORA_RESUME_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "validora/record.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Flags of vd_resume_new. */
#define VD_RESUME_DEFERRED_DONE 1u /* a deferred record counts as done, like any other */

/* What vd_resume_scan found. */
typedef struct vd_resume_found {
    uint64_t records;                    /* complete records, kept or deferred */
    uint64_t kept;                       /* complete records whose lines are done */
    uint64_t by_status[VD_STATUS_COUNT]; /* of those, by status (one not known: unknown) */
    uint64_t deferred;                   /* deferred records not counted as done */
    uint64_t good_end;                   /* bytes of the complete records: the good part */
    uint64_t tail_bytes;                 /* a torn tail's length past good_end; 0: none */
    bool tail_zeros;                     /* the tail is zero bytes only (a power cut) */
    char tail[192]; /* the tail in words ("truncated record at byte 120 (2 complete records
                       before it)", "4096 zero bytes at byte 120 (a power cut)"), or "" */
} vd_resume_found;

typedef struct vd_resume vd_resume;

/* An empty scan state (flags: VD_RESUME_*). NULL with errno ENOMEM. */
vd_resume *vd_resume_new(unsigned flags);

/* Reads the record stream in (a regular file, from its start) under the policy above; name is
 * how messages call it. Returns 0, or -1 with a one-line message in err: damage that is not a
 * torn tail ("NAME: damaged, not just a torn last record: invalid msgpack at byte 120 (2
 * complete records before it); not resuming (its first 120 bytes are whole: head -c 120)"), a
 * stream whose first object is not a map (JSON or CSV), a read error, out of memory. Call it
 * once per vd_resume. */
int vd_resume_scan(vd_resume *r, FILE *in, const char *name, char *err, size_t errlen);

const vd_resume_found *vd_resume_found_get(const vd_resume *r);

/* True when the input line (len bytes at line) has a kept record not yet taken: that record is
 * used up. False for every line of a fresh vd_resume. */
bool vd_resume_take(vd_resume *r, const char *line, size_t len);

/* Cuts the torn tail the scan found off the file open for writing at fd (ftruncate to good_end,
 * then fdatasync); nothing when there is none. 0, or -1 with a message in err. */
int vd_resume_cut(const vd_resume *r, int fd, const char *name, char *err, size_t errlen);

/* Copies the scan's complete records from in (the same stream, from its start) to out, byte for
 * byte and in their order, leaving out the deferred ones not counted as done: the file a resume
 * rewrites when deferred records are superseded. Does not flush. 0, or -1 with a message in err
 * (in changed since the scan, a read or write error). */
int vd_resume_copy_kept(const vd_resume *r, FILE *in, FILE *out, const char *name, char *err,
                        size_t errlen);

void vd_resume_free(vd_resume *r);

#ifdef __cplusplus
}
#endif
#endif
