/* config.h — reading Validora's config file (docs/config.md): one Lua file that returns a
 * table of option values, evaluated in the rules' sandbox (no I/O, capped memory and
 * instructions). Top-level keys are engine options; a key whose value is a table of named
 * keys is a section for one subcommand (`verify = { concurrency = 64 }`).
 *
 * Owns: evaluating the file and flattening its table into (section, option, text) items.
 * Does not own: which options exist or what a value means (the option tables, options.h),
 * where the file is or which value wins (the CLI). */
#ifndef VALIDORA_CONFIG_H
#define VALIDORA_CONFIG_H
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One item: section is NULL at the top level; name is the option's name ('_' in the file
 * written '-'); text is the value as the command line would give it (booleans "1"/"0",
 * numbers in decimal); a list gives one item per element, in order; an empty table `{}` gives
 * one item with text NULL (an empty list, or an empty section: the caller knows which; it comes
 * with the top-level options, before the sections). Returns 0 to go on, or -1
 * with a message in err (reading stops and vd_config_read fails with it). */
typedef int (*vd_config_item_cb)(void *arg, const char *section, const char *name, const char *text,
                                 char *err, size_t errlen);

/* Reads path and calls cb for every item, sections and keys in sorted order. Returns 0; or
 * -1 with "PATH: message" in err (the file cannot be read, is not valid Lua, runs too long,
 * does not return a table, holds a value that is no option value, or cb refused an item);
 * errno is ENOENT when the file does not exist. */
int vd_config_read(const char *path, vd_config_item_cb cb, void *arg, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
