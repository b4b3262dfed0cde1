/* validora/record.h — the result record of libvalidora: writing records (msgpack, JSON Lines,
 * CSV), reading a msgpack record stream back record by record, the fields of a record read
 * back, and rendering it as a JSON line or a CSV row.
 *
 * Owns: the record as an embedder sees it — the vd_record struct the engine fills, the writer,
 * the stream reader (bounded memory; a clean end told from a truncated or damaged stream, with
 * the byte offset), field access by key, and the renderers. The record keys and their meaning
 * are in docs/records.md. Readers keep keys they do not know: field access works for any key,
 * and the JSON renderer writes every key.
 *
 * Does not own: deciding what goes in a record (the engine, validora/validora.h), where records
 * are written or read from (the caller's FILEs), printing anything: the reader returns errors
 * as a status and a message, only vd_record_cat writes messages, to the FILE it is given.
 *
 * Not thread-safe per object: a vd_writer or vd_reader is used by one thread at a time. */
#ifndef VALIDORA_RECORD_H
#define VALIDORA_RECORD_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- the vocabulary */

/* A record's status (docs/records.md), in this order everywhere a count per status is kept. */
typedef enum {
    VD_STATUS_DELIVERABLE,
    VD_STATUS_UNDELIVERABLE,
    VD_STATUS_RISKY,
    VD_STATUS_UNKNOWN,
    VD_STATUS_COUNT
} vd_status;

/* "deliverable", "undeliverable", "risky", "unknown": a static string, the one spelling of each;
 * NULL for anything else. */
const char *vd_status_name(vd_status s);

/* The status spelled by the len bytes at name (not NUL-terminated): 0 and *out set, or -1 when
 * they spell no status (case matters, nothing is trimmed; *out untouched). */
int vd_status_parse(const char *name, size_t len, vd_status *out);

/* The reason of a record that has no answer yet, only a "not now": the day's warm-up budget
 * was spent or a breaker was open (docs/errors.md). `verify --resume` redoes such a record
 * (validora/resume.h). */
#define VD_REASON_DEFERRED "deferred"

/* ---------------------------------------------------------------- the record (writing) */

/* Tri-state for facts that may not have been established. */
typedef enum { VD_UNSET = -1, VD_NO = 0, VD_YES = 1 } vd_tristate;

/* One record as the engine fills it. A NULL string is an absent key. The strings need not
 * outlive vd_writer_put. */
typedef struct vd_record {
    /* The input exactly as given: email_len bytes at email, which may hold NUL bytes and
     * invalid UTF-8 (written as a msgpack str anyway; JSON writes NUL as \u0000 and U+FFFD for
     * invalid UTF-8; CSV: docs/records.md). email_len 0 with a non-NULL email means
     * strlen(email), for callers that set only email; an empty input is the same either way.
     * NULL leaves the key out. */
    const char *email;
    size_t email_len;
    const char *address; /* normalised, NULL when syntax failed */
    const char *domain;  /* normalised A-label, NULL when syntax failed */
    const char *status;  /* vd_status_name(): deliverable | undeliverable | risky | unknown */
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
    const char *method;     /* smtp | http | skipped; NULL = absent (no rule ran) */
    const char
        *generation; /* short hash of the rule and list files that decided it, NULL = absent */
    int attempts;
    int64_t delayed_ms; /* time the traffic shaper held it back; 0 = absent */
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

/* One record rendered in fmt into a new buffer (free it), as a writer would write it (CSV: the
 * header line, then the row), with a NUL after its *len bytes. NULL with errno set on failure. */
char *vd_record_pack(const vd_record *r, vd_format fmt, size_t *len);

/* len bytes at s written to out as one JSON string, exactly as the JSON renderer writes every
 * string (docs/records.md, "JSON rendering"): RFC 8259 escapes, \u escapes for the other
 * controls, DEL, C1 and U+2028/U+2029, and each maximal ill-formed UTF-8 subpart as one U+FFFD,
 * so the output is always valid UTF-8. This is libvalidora's only JSON string escaper; the CLI's
 * JSON output uses it too. NULL s writes "". Returns 0, or -1 (out of memory, or the write
 * failed). */
int vd_record_json_str(FILE *out, const char *s, size_t len);

/* ---------------------------------------------------------------- reading a stream */

/* A record read back, or a map inside one (the "smtp" map): a view into the reader's memory,
 * valid until the next vd_reader_next or vd_reader_free on the reader it came from. It may be
 * copied. Its members are private: use the functions below. */
typedef struct vd_record_view {
    const void *priv_obj; /* the map */
    const void *priv_raw; /* the record's msgpack bytes; NULL for a map inside a record */
    size_t priv_size;     /* bytes of the record the map belongs to */
} vd_record_view;

typedef enum {
    VD_READ_RECORD = 1,     /* a complete record was read */
    VD_READ_END = 0,        /* the stream ended cleanly, after a complete record (or empty) */
    VD_READ_TRUNCATED = -1, /* the stream ended inside a record */
    VD_READ_NOT_MAP = -2,   /* a complete msgpack object that is not a map, so not a record */
    VD_READ_INVALID = -3,   /* a byte that is not msgpack, or nesting deeper than 16 */
    VD_READ_TOO_LARGE = -4, /* a record announcing over 16 MiB or over 1 048 576 items */
    VD_READ_IO_ERROR = -5,  /* reading the input failed */
    VD_READ_NOMEM = -6,     /* out of memory */
} vd_read_status;

typedef struct vd_reader vd_reader;

/* A reader of the msgpack record stream in (not closed by vd_reader_free). Memory stays
 * bounded: about one record (at most 16 MiB) plus a 64 KiB read buffer, whatever the stream
 * claims. A regular file is read in 64 KiB chunks; anything else (a pipe, a terminal, a socket)
 * only as far as the current record needs, so a record is returned as soon as its last byte
 * has arrived. Returns NULL with errno ENOMEM. */
vd_reader *vd_reader_new(FILE *in);

/* Reads the next record into *rec. Returns VD_READ_RECORD; VD_READ_END at a clean end; or a
 * negative status after which vd_reader_error says what and where. Once it has returned
 * anything but VD_READ_RECORD it returns the same again without reading. After a damaged
 * record, reading stops: record boundaries can no longer be trusted. */
vd_read_status vd_reader_next(vd_reader *r, vd_record_view *rec);

/* Whether vd_reader_next would return without reading from the input (a complete record, the
 * end or an error is already buffered). A caller that streams output flushes it when this is
 * false, before vd_reader_next may wait for input. */
bool vd_reader_ready(vd_reader *r);

/* The byte offset where the current record starts: after VD_READ_RECORD the record just read;
 * after a negative status the record that failed (so the first OFFSET bytes of the stream are
 * its good part); after VD_READ_END the length of the stream. */
uint64_t vd_reader_offset(const vd_reader *r);

/* Complete records read so far. */
uint64_t vd_reader_records(const vd_reader *r);

/* After a negative status: a one-line message naming the byte offset, without a trailing
 * newline, e.g. "truncated record at byte 120 (2 complete records before it)" (the wording of
 * each case is in docs/records.md). Otherwise "". Valid until vd_reader_free. */
const char *vd_reader_error(const vd_reader *r);

void vd_reader_free(vd_reader *r);

/* ---------------------------------------------------------------- fields of a read record */

typedef enum {
    VD_FIELD_ABSENT = 0, /* no such key (or rec is not a map) */
    VD_FIELD_NIL,
    VD_FIELD_BOOL,
    VD_FIELD_INT, /* any integer, even one past INT64_MAX */
    VD_FIELD_FLOAT,
    VD_FIELD_STR,
    VD_FIELD_BIN,
    VD_FIELD_ARRAY,
    VD_FIELD_MAP,
    VD_FIELD_EXT,
} vd_field_type;

/* Keys are looked up by their bytes (key is a C string); when a map holds a key twice the first
 * one counts, as in the renderers. Every key can be looked up, known to this library or not. */
vd_field_type vd_record_type(const vd_record_view *rec, const char *key);

/* 0 and the string's bytes when the value at key is a str, else -1 (absent or another type).
 * *s points into the record (valid as long as it), is never NULL (an empty string is "") and
 * is NOT NUL-terminated: it is *len bytes, which may hold NUL and invalid UTF-8 (email is the
 * input as given). */
int vd_record_str(const vd_record_view *rec, const char *key, const char **s, size_t *len);

/* 0 and the value when it is an integer that fits int64_t, else -1. */
int vd_record_int(const vd_record_view *rec, const char *key, int64_t *v);

/* 0 and the value when it is a boolean, else -1. */
int vd_record_bool(const vd_record_view *rec, const char *key, bool *v);

/* 0 and a view of the map at key (e.g. "smtp", whose keys are code, enhanced, text), else -1.
 * The view lives as long as rec's. */
int vd_record_map(const vd_record_view *rec, const char *key, vd_record_view *sub);

/* Entries of the map, and the key of entry i (0 <= i < count): 0 and its bytes (not
 * NUL-terminated, never NULL) when it is a str, -1 when it is not or i is out of range. With these
 * a caller can list every key, including keys it does not know. */
size_t vd_record_count(const vd_record_view *rec);
int vd_record_key(const vd_record_view *rec, size_t i, const char **key, size_t *len);

/* ---------------------------------------------------------------- rendering a read record */

/* Renders rec as one JSON line (every key, in the stream's order) or one CSV row (the columns
 * of vd_record_csv_header; other keys are left out), ending in "\n", as docs/records.md
 * describes. VD_FMT_MSGPACK gives the record's bytes as they were read (a whole record only,
 * not a map inside one).
 *
 * Into a buffer: on success returns 0, writes the text and a terminating NUL to buf and sets
 * *len (if len is not NULL) to the text's length, without the NUL. When size is too small
 * (also buf NULL, size 0) returns -1 with errno ERANGE and sets *len to the length needed
 * without the NUL; buf's content is then unspecified.
 * Other failures, for both functions: -1 with errno EFBIG when the rendering would pass 32
 * bytes per msgpack byte of the record plus 64 (only hostile input gets there: map keys that
 * are maps, nested), ENOMEM, or EINVAL (a zeroed view, an unknown format, VD_FMT_MSGPACK for a
 * map inside a record).
 * Into a FILE: writes the text (not flushed); -1 with errno set on a write error too. */
int vd_record_render(const vd_record_view *rec, vd_format fmt, char *buf, size_t size, size_t *len);
int vd_record_fprint(const vd_record_view *rec, vd_format fmt, FILE *out);

/* The CSV header line, "email,address,...,detail\n", with the same conventions. */
int vd_record_csv_header(char *buf, size_t size, size_t *len);
int vd_record_fprint_csv_header(FILE *out);

/* ---------------------------------------------------------------- convenience */

/* Reads a msgpack record stream from in and writes it to out as fmt: JSON Lines, CSV (a header
 * first), or VD_FMT_MSGPACK (the complete records byte for byte: the good part of a damaged
 * stream). Built on vd_reader: every complete record is written (and out flushed before any
 * wait for input) before an error is reported. Returns 0 when the stream ended cleanly; -1 when
 * it did not, or reading or writing failed, after writing "NAME: MESSAGE\n" to err. */
int vd_record_cat(FILE *in, FILE *out, vd_format fmt, FILE *err, const char *name);

#ifdef __cplusplus
}
#endif
#endif
