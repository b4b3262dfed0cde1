/* sandbox.h — the Lua state rule code runs in.
 *
 * Owns: the capped allocator, the instruction budget (for loading, and per task), the shared
 * read-only base environment (safe globals, copies of string/table/math/utf8, part of os),
 * loading a file as text into its own _ENV that inherits the base, and `require`, which loads
 * modules from the rules directory only, once per state.
 * Does not own: what the engine adds to the base (rules.c: config, log, dns, sleep, ...),
 * rule generations (rules.c), coroutines (lua_task.c). */
#ifndef VALIDORA_SANDBOX_H
#define VALIDORA_SANDBOX_H
#include <stddef.h>
#include <stdint.h>
#include <lua.h>

typedef struct vd_sandbox_limits {
    size_t memory;              /* bytes the state may hold */
    uint64_t load_instructions; /* VM instructions the main thread may run (loading) */
    uint64_t task_instructions; /* VM instructions each task may run */
} vd_sandbox_limits;

/* A new state whose code can reach only the base environment; require() finds modules in
 * dir (NAME.lua, a.b as a/b.lua). NULL with a message in err when out of memory. */
lua_State *vd_sandbox_new(const char *dir, const vd_sandbox_limits *lim, char *err, size_t errlen);
void vd_sandbox_close(lua_State *L);

/* Sets the value on top of the stack (popped) as global name of the base environment.
 * Call before loading rule code. */
void vd_sandbox_setglobal(lua_State *L, const char *name);

/* Loads path as a text chunk with a fresh _ENV inheriting the base. Leaves the chunk, or the
 * error message, on the stack; returns a LUA_* status. */
int vd_sandbox_loadfile(lua_State *L, const char *path);

/* Runs require(name) in protected mode: LUA_OK with the module's value on the stack, or an
 * error status with the message ("file:line: message") on the stack. */
int vd_sandbox_require(lua_State *L, const char *name);

/* Charges a task thread's instructions to its task (lua_task.h) against task_instructions. */
void vd_sandbox_hook(lua_State *co);

/* Bytes the state holds now. */
size_t vd_sandbox_memory(lua_State *L);

#endif
