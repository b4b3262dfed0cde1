/* cli_csv.h — reading CSV (RFC 4180: a quoted field may hold commas, quotes written twice and
 * line breaks) one row at a time, on libcsv, for `validora run`'s validora.csv.
 * Owns: rows as arrays of NUL-terminated fields, bounds (CLI_CSV_MAX_ROW bytes and
 * CLI_CSV_MAX_FIELDS fields a row), errors naming the file and row.
 * Does not own: the parsing itself (libcsv), which column means what (the script). */
#ifndef VALIDORA_CLI_CSV_H
#define VALIDORA_CLI_CSV_H
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define CLI_CSV_MAX_ROW                                                                            \
    (1u << 20) /* bytes of one row: a list row is an address and a few columns */
#define CLI_CSV_MAX_FIELDS 4096

typedef struct vd_csv vd_csv;
/* A reader of f (closed by vd_csv_free when close is set); name is for messages. */
vd_csv *vd_csv_new(FILE *f, const char *name, bool close);
/* The next row: 1 with its fields (valid until the next call), 0 at the end, -1 on an error
 * (vd_csv_error says what and where). */
int vd_csv_next(vd_csv *c, const char *const **fields, size_t *n);
const char *vd_csv_error(const vd_csv *c);
void vd_csv_free(vd_csv *c);
#endif
