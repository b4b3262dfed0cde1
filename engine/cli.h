/* cli.h — what the subcommands of the `validora` command share (cli_common.c): exit
 * statuses, option parsing and --help from the option tables, the log printer, the address
 * input reader, signals (drain, stop, reload), and the polite close of an engine.
 * The CLI includes only public headers (include/validora/) and this one. */
#ifndef VALIDORA_CLI_H
#define VALIDORA_CLI_H
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>
#include "csv_reader.h"
#include "validora/options.h"
#include "validora/validora.h"

struct event_base;

/* Exit statuses of every subcommand. */
#define VD_EXIT_OK    0 /* done */
#define VD_EXIT_FATAL 1 /* a file could not be read, a stream was damaged, a run was cut short */
#define VD_EXIT_USAGE 2 /* bad command line */

/* ---- options ---- */

/* One option table and the struct its values go into. */
typedef struct vd_cli_table {
    const vd_option *opts;
    void *target;
} vd_cli_table;

/* What a subcommand tells about itself in --help. */
typedef struct vd_cli_usage {
    const char *cmd;  /* "verify" */
    const char *head; /* "Usage: ..." and what it does; ends with a newline */
    const char *tail; /* after the options (exit statuses, signals); may be NULL */
    /* The config file's section for this command ("verify"; NULL: the command reads no
     * config file, e.g. `rules test`, which must not depend on the machine's settings). */
    const char *section;
    /* Options end at the first operand (`validora run [OPTION]... SCRIPT [ARG]...`: the
     * script's arguments are its own). */
    bool stop_at_operand;
} vd_cli_usage;

/* Parses argv (argv[0] is the subcommand) against the tables; every table's defaults must be
 * set already. -h/--help prints the help, --version the version. Returns the index of the
 * first operand; or -1 after a usage error on stderr (exit VD_EXIT_USAGE); or -2 after help or
 * version (exit VD_EXIT_OK). */
int vd_cli_parse(const vd_cli_usage *u, int argc, char **argv, const vd_cli_table *tables,
                 size_t ntables);
/* The exit status for a negative result of the vd_cli_parse family: VD_EXIT_OK after help or
 * version (-2), VD_EXIT_USAGE after a usage error (-1). */
int vd_cli_parse_exit(int first);
/* The same; with u->section set it first reads the config file (-c/--config FILE, default
 * VD_CLI_CONFIG_PATH, docs/config.md): its top-level engine options and its section's options
 * go into the tables, then the command line overrides them (a list option given on the
 * command line replaces the file's list). src, when not NULL, gets for every option of the
 * tables (in table order, then -c/--config itself when u->section is set) where its value came
 * from: NULL (default), the file's path, or "command line". */
int vd_cli_parse_sourced(const vd_cli_usage *u, int argc, char **argv, const vd_cli_table *tables,
                         size_t ntables, const char **src);
#define VD_CLI_CONFIG_PATH "/etc/validora/validora.lua"
/* `NAME = {}` in the config file for option o: an empty list (o's list in target emptied), or
 * an error for an option that is not a list. */
int vd_cli_config_clear(const vd_option *o, void *target, char *err, size_t errlen);
/* The config file's sections (cli_common.c, the parser's): one per command that reads one
 * (its usage's section); a command whose usage has section "" reads the top level only. Each
 * section's own option table is cli_config.c's. */
typedef enum vd_cli_section {
    VD_SECTION_VERIFY,
    VD_SECTION_DOCTOR,
    VD_SECTION_LEDGER,
    VD_SECTION_SERVE,
    VD_SECTION_RUN,
    VD_NSECTIONS
} vd_cli_section;
/* The section named s, or -1. */
int vd_cli_section_find(const char *s);
/* Is s a section; their names for messages ("verify, doctor, ..."). */
bool vd_cli_section_known(const char *s);
const char *vd_cli_section_names(void);
extern const vd_option vd_cli_verify_options[], vd_cli_which_options[], vd_cli_doctor_options[],
    vd_cli_ledger_options[], vd_cli_serve_options[];
/* `validora run SCRIPT.lua [ARG]...` (cli_run.c): argv[0] is "run"; its own options. */
int vd_cli_run(int argc, char **argv);
extern const vd_option vd_cli_run_options[];
/* `validora config check|show` (cli_config.c): argv[0] is "config". */
int vd_cli_config(int argc, char **argv);
/* Like vd_cli_parse; given (one bool per option of all the tables, in order, all false) is set for
 * each option the command line or the config file gave, so an option whose default depends on
 * something (a terminal) can tell "not given" from its default. A FLAG entry's def_str, when set,
 * is the default
 * --help shows ("when stderr is a terminal"). */
int vd_cli_parse_given(const vd_cli_usage *u, int argc, char **argv, const vd_cli_table *tables,
                       size_t ntables, bool *given);
/* --help, generated from the tables: every option with its argument, help and default. */
void vd_cli_help(FILE *out, const vd_cli_usage *u, const vd_cli_table *tables, size_t ntables);
/* "validora CMD: message" and "Try 'validora CMD --help'." on stderr; returns VD_EXIT_USAGE. */
int vd_cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- messages ---- */

typedef struct vd_cli_log {
    const char *cmd;
    int verbose; /* 0: errors and warnings; 1: and info; 2: and debug */
} vd_cli_log;
/* A vd_log_cb printing "validora CMD: msg" on stderr; arg is a vd_cli_log. */
void vd_cli_log_cb(vd_log_level level, const char *msg, void *arg);

/* ---- input ---- */

/* Addresses from the command line, then from a file or '-' (stdin), one per line. Blank lines
 * and lines starting with '#' are skipped; surrounding blanks are trimmed; a line is passed on
 * whole up to VD_CLI_MAX_LINE bytes, NULs included. A pipe or terminal is read without
 * blocking: when nothing is ready, readable(arg) is called once more arrives. */
#define VD_CLI_MAX_LINE VD_TEXT_MAX_LINE /* csv_reader.h */
typedef struct vd_cli_input vd_cli_input;
vd_cli_input *vd_cli_input_new(struct event_base *base, const char *cmd, char **args, int nargs,
                               const char *path, void (*readable)(void *), void *arg);
/* The next address and its length; -1 when none is ready now (see done and failed). */
ssize_t vd_cli_input_next(vd_cli_input *in, const char **addr);
bool vd_cli_input_done(const vd_cli_input *in);   /* every address has been read */
bool vd_cli_input_failed(const vd_cli_input *in); /* reading failed (reported on stderr) */
void vd_cli_input_free(vd_cli_input *in);
/* Reads the file as CSV (RFC 4180) and takes the column named column (a header name, case
 * ignored: the first row is the header) or numbered (from 1: the first row is skipped as a
 * header when that cell holds no '@'). Empty cells are skipped. */
void vd_cli_input_csv(vd_cli_input *in, const char *column);
bool vd_cli_input_header_skipped(const vd_cli_input *in);
/* Whether the file at path looks like CSV rather than one address a line: its name ends in
 * .csv or .tsv, or its first line holds a comma, semicolon or TAB outside quotes (no address
 * does). first gets that line, for the message. A pipe is never looked at. */
bool vd_cli_input_looks_csv(const char *path, char *first, size_t firstlen);
/* The length of a UTF-8 byte-order mark (EF BB BF) at the start of s[0..n), or 0. Excel and
 * Notepad start a saved list with one; every input (lists, CSV, serve bodies) drops it before
 * the first address, so it never becomes part of one. */
size_t vd_cli_bom_len(const char *s, size_t n);
/* Says on stderr that cmd ("validora", "validora rules") has no command word, suggesting the
 * nearest of names (NULL-terminated) when one is close (a typo, or a unique prefix), and
 * returns VD_EXIT_USAGE. */
int vd_cli_unknown_command(const char *cmd, const char *word, const char *const *names);
/* Drops a UTF-8 byte-order mark at the current position of f, if there is one. */
void vd_cli_skip_bom(FILE *f);

/* ---- signals ---- */

/* SIGINT/SIGTERM: the first calls stop(arg, false) (take no more work, finish what is in
 * flight), the second stop(arg, true) (now). SIGHUP calls reload(arg). SIGPIPE is ignored. */
typedef struct vd_cli_signals vd_cli_signals;
vd_cli_signals *vd_cli_signals_new(struct event_base *base, void (*stop)(void *, bool now),
                                   void (*reload)(void *), void *arg);
void vd_cli_signals_free(vd_cli_signals *s);
/* Reloads the engine's rules; says so on stderr (a failure is the engine's log error). */
void vd_cli_reload(const char *cmd, vd_engine *e);

/* Frees the engine and keeps the loop running until its sessions have said QUIT and closed,
 * or 3 s: a polite close is part of a sender's reputation. */
void vd_cli_close_engine(struct event_base *base, vd_engine *e);

/* `validora cat` and `validora verify`: argv[0] is the subcommand. */
int vd_cli_cat(int argc, char **argv);
int vd_cli_verify(int argc, char **argv);
/* `validora rules check|which|test` (cli_rules.c): argv[0] is "rules". */
int vd_cli_rules(int argc, char **argv);
/* `validora rules test` (cli_rules_test.c): argv[0] is "test". */
int vd_cli_rules_test(int argc, char **argv);
/* `validora ledger show|set-age|lock` (cli_ledger.c): argv[0] is "ledger". */
int vd_cli_ledger(int argc, char **argv);
/* `validora doctor` (cli_doctor.c): argv[0] is "doctor". */
int vd_cli_doctor(int argc, char **argv);
/* `validora serve` (cli_serve.c): argv[0] is "serve". */
int vd_cli_serve(int argc, char **argv);

#endif
