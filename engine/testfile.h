/* testfile.h — a rule test file (`validora rules test`, docs/rules-test.md) loaded into a
 * vd_pb_test (playback.h), and the pattern language of its http entries. The file is Lua
 * text run in a state of its own with an empty environment but string/table/math, a memory
 * cap and an instruction budget; what it returns must be data, every key known. Lua bridge
 * layer: the CLI asks here and never includes lua.h. */
#ifndef VALIDORA_TESTFILE_H
#define VALIDORA_TESTFILE_H
#include <stdbool.h>
#include <stddef.h>
#include "playback.h"

/* Loads the test file at path (transcripts relative to its directory). Returns 0, or -1 with
 * the reason in err ("file.lua:3: ...", "dns[\"x\"].mx: ..."). */
int vd_pb_test_load(const char *path, vd_pb_test *t, char *err, size_t errlen);

/* Does subject (len bytes) match the Lua pattern (string.find)? When not, why says so
 * ("does not match PATTERN", or "body_matches: " and Lua's error). arg is unused: this is
 * the vd_pb_match_fn (playback_http.h) a test's HTTP playback server is given. */
bool vd_pb_pattern_match(void *arg, const char *subject, size_t len, const char *pattern, char *why,
                         size_t whylen);

#endif
