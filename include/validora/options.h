/* options.h — the one table of Validora's options.
 *
 * Every option has one entry: its name, type, default, bounds, help line, and whether rules
 * see it (as `config.NAME`, with '-' written '_'). The CLI parser, `--help`, the Lua `config`
 * table and (later) the config file are all driven by these tables, so a default is written
 * in exactly one place: here, in engine/options.c (engine options) or in the CLI's own table
 * (options of one subcommand, such as `verify --output`).
 *
 * Owns: the option types, parsing and bounds-checking a value, formatting a default.
 * Does not own: what an option does (the module that reads the value). */
#ifndef VALIDORA_OPTIONS_H
#define VALIDORA_OPTIONS_H
#include <stdbool.h>
#include <stddef.h>
#include "validora/strlist.h" /* vd_strlist: a list option's value */

#ifdef __cplusplus
extern "C" {
#endif

typedef enum vd_opt_type {
    VD_OPT_FLAG,    /* bool; --NAME sets it, --no-NAME clears it */
    VD_OPT_INT,     /* int within [min, max] */
    VD_OPT_SECONDS, /* double seconds within [min, max] */
    VD_OPT_STRING,  /* const char *; NULL = unset */
    VD_OPT_COUNT,   /* int; each --NAME adds one (-v -v) */
    VD_OPT_LIST,    /* vd_strlist; each --NAME VALUE appends one */
} vd_opt_type;

typedef struct vd_option {
    const char *name;    /* long option, config key; NULL ends a table */
    char short_name;     /* 0 = none */
    vd_opt_type type;    /* where the value lives: target + offset, of the C type above */
    size_t offset;       /* offsetof the value in the table's target struct */
    double def;          /* default of FLAG (0/1), INT, SECONDS, COUNT */
    const char *def_str; /* default of STRING; NULL: unset, or computed as the help says */
    double min, max;     /* bounds of INT and SECONDS */
    const char *arg;     /* argument name shown in --help ("SECS"); NULL for FLAG/COUNT */
    const char *group;   /* --help section; an entry with a new group starts a section */
    const char *help;    /* what it does; --help adds "(default X)" from def/def_str */
    bool rules;          /* rules see it as config.NAME ('-' as '_') */
} vd_option;

/* The engine's options; their target is vd_engine_config (validora.h). */
extern const vd_option vd_engine_options[];

/* Sets every option of the table to its default in target. */
void vd_options_defaults(const vd_option *table, void *target);
/* The entry named name (without leading dashes), or NULL. */
const vd_option *vd_option_find(const vd_option *table, const char *name);
/* Parses text as o's value into target (FLAG: "true"/"false"/"yes"/"no"/"1"/"0"; COUNT adds
 * one when text is NULL). Returns 0, or -1 with a message in err naming the option and the
 * bounds. Strings are not copied: text must outlive target. */
int vd_option_parse(const vd_option *o, void *target, const char *text, char *err, size_t errlen);
/* Checks every value of the table in target against its bounds. Returns 0 or -1 with err. */
int vd_options_check(const vd_option *table, const void *target, char *err, size_t errlen);
/* Writes o's value in target as text ("30", "true", "" for an unset string). */
void vd_option_format(const vd_option *o, const void *target, char *buf, size_t len);
/* Writes o's default as text, or "" when it has none (unset or computed). */
void vd_option_format_default(const vd_option *o, char *buf, size_t len);
/* The address of o's value in target. */
void *vd_option_value(const vd_option *o, void *target);

#ifdef __cplusplus
}
#endif
#endif
