/* lua_pattern.h — Lua patterns for callers that hold no Lua state (rules test's HTTP playback
 * matches a request body against a test file's pattern): no Lua header needed.
 * Owns: matching in a state of sandbox.c's testfile profile (string library only, its memory
 * and instruction bounds). Does not own: what a match means (the caller). */
#ifndef VALIDORA_LUA_PATTERN_H
#define VALIDORA_LUA_PATTERN_H
#include <stddef.h>

/* Whether string.find(s, pattern) finds it: 1 yes, 0 no, -1 with a message in err when the
 * pattern is malformed or the match ran past the bounds. */
int vd_lua_pattern_find(const char *s, size_t len, const char *pattern, char *err, size_t errlen);

#endif
