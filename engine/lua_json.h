/* lua_json.h — the `json` table rules get (lua_json.c), as rules.c opens it.
 *
 * Owns: nothing but these two names; lua_json.c says what decode and encode do.
 * Does not own: the rest of the bridge (lua_bridge.h): the json table needs no run, no
 * generation and no I/O, so it stands below them all. */
#ifndef VALIDORA_LUA_JSON_H
#define VALIDORA_LUA_JSON_H
#include <lua.h>

void vd_lua_json_open(lua_State *L); /* pushes the json table */
extern const char VD_JSON_ERR[];     /* "bad_json" */

#endif
