/* validora/record.h — the result record of libvalidora: one msgpack map per address, written
 * as a stream and flushed per record; reading a stream back and rendering it as JSON Lines or
 * CSV.
 *
 * Owns: the record as an embedder sees it — the vd_record struct the engine fills, the writer,
 * and the reader/renderer of a stream. The record keys and their meaning are in
 * docs/records.md. Readers pass keys they do not know through unchanged.
 *
 * Does not own: deciding what goes in a record (the engine, validora/validora.h), where records
 * are written or read from (the caller's FILEs). */
#ifndef VALIDORA_RECORD_H
#define VALIDORA_RECORD_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Tri-state for facts that may not have been established. */
typedef enum { VD_UNSET = -1, VD_NO = 0, VD_YES = 1 } vd_tristate;

/* One record as the engine fills it. A NULL string is an absent key. The strings need not
 * outlive vd_writer_put. */
typedef struct vd_record {
    const char *email;   /* as given (may be invalid UTF-8: written as msgpack str anyway,
                            the JSON renderer writes U+FFFD for invalid UTF-8) */
    const char *address; /* normalised, NULL when syntax failed */
    const char *domain;  /* normalised A-label, NULL when syntax failed */
    const char *status;  /* deliverable | undeliverable | risky | unknown */
    const char *reason;  /* one word */
    const char *detail;  /* optional human-readable detail (error messages), NULL = absent */
    const char *mx;      /* host that answered, NULL = absent */
    bool has_smtp;       /* smtp_* below are set */
    int smtp_code;
    const char *smtp_enhanced; /* "5.1.1" or NULL */
    const char *smtp_text;
    vd_tristate tls;
    vd_tristate tls_verified;
    vd_tristate catch_all;
    bool disposable, role, free;
    const char *suggestion; /* NULL = absent */
    const char *provider;   /* rule name, NULL = absent */
    int attempts;
    int64_t elapsed_ms;
    int64_t checked_at; /* unix seconds */
} vd_record;

typedef enum { VD_FMT_MSGPACK, VD_FMT_JSON, VD_FMT_CSV } vd_format;

typedef struct vd_writer vd_writer;

/* A writer of records to fp (not closed by vd_writer_free). CSV writes its header line first
 * (and flushes it). Returns NULL with errno set when out of memory or the header cannot be
 * written. */
vd_writer *vd_writer_new(FILE *fp, vd_format fmt);

/* Writes one record and flushes it. Every format is rendered from the packed msgpack map, so
 * JSON and CSV say what the msgpack says. Returns 0, or -1 with errno set (ENOMEM, or the write
 * error). */
int vd_writer_put(vd_writer *w, const vd_record *r);

void vd_writer_free(vd_writer *w);

/* Reads a msgpack record stream from in and writes it to out as fmt (JSON, CSV, or
 * VD_FMT_MSGPACK: the complete records byte for byte). Returns 0 when the stream ended cleanly;
 * -1 when it ended inside a record or held something that is not a map, after writing every
 * complete record before it and a message naming the byte offset to err. */
int vd_record_cat(FILE *in, FILE *out, vd_format fmt, FILE *err, const char *name);

#ifdef __cplusplus
}
#endif
#endif
