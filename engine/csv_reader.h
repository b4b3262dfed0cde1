/* csv_reader.h — text input below the CLI: the UTF-8 byte-order mark, and CSV (RFC 4180: a quoted
 * field may hold commas, quotes written twice and line breaks) one row at a time, on libcsv,
 * for the CLI's input reader, serve's CSV bodies and scripts' validora.csv.
 * Owns: what a BOM is and a list line's bound (one home: the CLI's vd_cli_bom_len and
 * VD_CLI_MAX_LINE are these), rows as arrays of
 * NUL-terminated fields, bounds (CLI_CSV_MAX_ROW bytes and CLI_CSV_MAX_FIELDS fields a row),
 * errors naming the file and row.
 * Does not own: the parsing itself (libcsv), which column means what (the caller). */
#ifndef VALIDORA_CSV_READER_H
#define VALIDORA_CSV_READER_H
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define CLI_CSV_MAX_ROW                                                                            \
    (1u << 20) /* bytes of one row: a list row is an address and a few columns */
#define CLI_CSV_MAX_FIELDS 4096

/* Bytes of one line of an address list (verify -i, validora.lines): no address is longer than
 * 254, so a cut line is still invalid. */
#define VD_TEXT_MAX_LINE 4096

/* Bytes of a UTF-8 byte-order mark at the start of s (3 or 0): a list saved by Excel or
 * Notepad starts with one. */
size_t vd_bom_len(const char *s, size_t n);
/* Reads past a byte-order mark at f's position, if there is one (else reads nothing). */
void vd_bom_skip(FILE *f);

typedef struct vd_csv vd_csv;
/* A reader of f (closed by vd_csv_free when close is set); name is for messages. */
vd_csv *vd_csv_new(FILE *f, const char *name, bool close);
/* The next row: 1 with its fields (valid until the next call), 0 at the end, -1 on an error
 * (vd_csv_error says what and where). */
int vd_csv_next(vd_csv *c, const char *const **fields, size_t *n);
const char *vd_csv_error(const vd_csv *c);
void vd_csv_free(vd_csv *c);
#endif
