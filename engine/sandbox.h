/* sandbox.h — every Lua state the program makes: one factory (vd_lua_new), four profiles.
 *
 *   profile    libraries                                        limits (memory, instructions)
 *   rule       the read-only base (below), require from the     the caller's (options.c:
 *              rules directories                                 per load, per task)
 *   config     the rules' base, no require directories          8 MiB, 10 M (one load)
 *   testfile   string, table, math in the chunk's _ENV: data    64 MiB, 10 M (one load)
 *   script     the standard libraries minus process control,     none: a script is the user's
 *              C modules and bytecode; package read-only,        program and runs as long as
 *              require's path fixed at start                     its list (the allocator counts)
 *
 * Every profile: text-only loading, no string.dump, setmetatable without __gc (a finalizer
 * runs with hooks off, outside any budget). Rule and config: pcall/xpcall that stop catching
 * once the budget and a grace are spent (the budget is uncatchable).
 *
 * Owns: the capped allocator, the instruction budget (for loading, and per task), each
 * profile's library set and default limits, the shared read-only base environment (safe
 * globals, copies of string/table/math/utf8, part of os), loading a file as text into its own
 * _ENV that inherits the base, and `require`, which loads modules from the rules directory
 * only, once per state.
 * Does not own: what the engine adds to the base (rules.c: config, log, dns, sleep, ...),
 * rule generations (rules.c), coroutines (lua_task.c), what a script or test file may call
 * besides its libraries (script.c, the test-file loader). */
#ifndef VALIDORA_SANDBOX_H
#define VALIDORA_SANDBOX_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <lua.h>

typedef struct vd_sandbox_limits {
    size_t memory;              /* bytes the state may hold */
    uint64_t load_instructions; /* VM instructions the main thread may run (loading) */
    uint64_t task_instructions; /* VM instructions each task may run */
} vd_sandbox_limits;

#define VD_SANDBOX_MAX_FILE (4u << 20) /* bytes of one rule or module file: rules are code */

typedef enum vd_lua_profile {
    VD_LUA_RULE,     /* rules (rules.c): the base, require from dirs, the caller's limits */
    VD_LUA_CONFIG,   /* the config file (conffile.c) */
    VD_LUA_TESTFILE, /* a rule test file: data, loaded with vd_lua_loadtext */
    VD_LUA_SCRIPT,   /* `validora run` (script.c); dirs: where require looks, in order */
} vd_lua_profile;

/* A new state of the profile. lim: NULL for the profile's own (the rule profile has none:
 * its limits are options). dirs: the rule profile's require directories (the last first),
 * the script profile's module directories (the first first); the others take none. NULL
 * with a message in err when out of memory. */
lua_State *vd_lua_new(vd_lua_profile profile, const vd_sandbox_limits *lim, const char *const *dirs,
                      size_t ndirs, char *err, size_t errlen);
/* The profile's own limits (zero when it has none). */
vd_sandbox_limits vd_lua_limits(vd_lua_profile profile);

/* A test file's text as a chunk (text only) whose _ENV holds copies of string (no dump),
 * table and math, nothing else: the chunk, or the error message, on the stack; a LUA_*
 * status. The load budget runs from here until vd_lua_unbudget. */
int vd_lua_loadtext(lua_State *L, const char *text, size_t len, const char *chunkname);
/* Stops counting instructions on the main thread (the caller's own C code follows). */
void vd_lua_unbudget(lua_State *L);

/* vd_lua_new(VD_LUA_RULE, ...): a new state whose code can reach only the base environment;
 * require() finds modules in the directories (NAME.lua, a.b as a/b.lua), the last directory first,
 * so a later one overrides. NULL with a message in err when out of memory. */
lua_State *vd_sandbox_new(const char *const *dirs, size_t ndirs, const vd_sandbox_limits *lim,
                          char *err, size_t errlen);

/* The path of module name (as require finds it) into path; false when no directory has it. */
bool vd_sandbox_find(lua_State *L, const char *name, char *path, size_t len);

/* SHA-256 over the name and bytes of every file loaded so far, in load order. */
void vd_sandbox_digest(lua_State *L, unsigned char out[32]);
void vd_sandbox_close(lua_State *L);

/* Sets the value on top of the stack (popped) as global name of the base environment.
 * Call before loading rule code. */
void vd_sandbox_setglobal(lua_State *L, const char *name);

/* Loads path (module name, for the digest) as a text chunk with a fresh _ENV inheriting the
 * base: its own copies of the base's tables (string, table, config, ...), so no file can
 * change what another sees. Leaves the chunk, or the error message, on the stack; returns a
 * LUA_* status. */
int vd_sandbox_loadfile(lua_State *L, const char *path, const char *name);

/* Runs require(name) in protected mode: LUA_OK with the module's value on the stack, or an
 * error status with the message ("file:line: message") on the stack. */
int vd_sandbox_require(lua_State *L, const char *name);

/* Charges a task thread's instructions to its task (lua_task.h) against task_instructions. */
void vd_sandbox_hook(lua_State *co);

/* Before a call the engine makes on its own (not a task's): a fresh load budget for it. */
void vd_sandbox_service(lua_State *L);

/* setmetatable that refuses a metatable with a __gc field (finalizers run with hooks off,
 * outside any budget); otherwise the base library's. */
int vd_sandbox_setmetatable(lua_State *L);

/* Bytes the state holds now. */
size_t vd_sandbox_memory(lua_State *L);

#endif
