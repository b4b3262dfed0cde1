/* test_sandbox.c — what rule code cannot do in engine/sandbox.c (issue 16, item 1):
 *  - attach a __gc finalizer (Lua runs finalizers with hooks off: one that loops would hang
 *    the process at the next GC step or when the state closes);
 *  - swallow the instruction budget's error with pcall/xpcall, even from a C-driven loop
 *    (string.gsub whose replacement table's __index is pcall);
 *  - reach string.dump, as string.dump or through the strings' metatable.
 * The hanging cases run in a child with an alarm: on the old code the child is killed by
 * SIGALRM, which fails the check instead of hanging the suite.
 * Does not test: the per-task budget through the engine (test_engine), rule loading
 * (test_engine, tests/functional/rules_bridge.sh). */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <lauxlib.h>
#include "check.h"
#include "sandbox.h"

static char dir[] = "/tmp/test_sandbox.XXXXXX";

/* Loads and runs code as a rule file on a fresh state: LUA_OK with the first result as text in
 * out, or the error message in out. */
static int run(const char *code, char *out, size_t len)
{
    char path[256];
    snprintf(path, sizeof path, "%s/chunk.lua", dir);
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs(code, f);
    fclose(f);
    vd_sandbox_limits lim = {
        .memory = 64u << 20, .load_instructions = 2000000, .task_instructions = 2000000};
    char err[256];
    const char *dirs[] = {dir};
    lua_State *L = vd_sandbox_new(dirs, 1, &lim, err, sizeof err);
    if (!L) {
        snprintf(out, len, "%s", err);
        return -1;
    }
    vd_sandbox_service(L);
    int st = vd_sandbox_loadfile(L, path, "chunk");
    if (st == LUA_OK) st = lua_pcall(L, 0, 1, 0);
    const char *s = luaL_tolstring(L, -1, NULL);
    snprintf(out, len, "%s", s ? s : "?");
    vd_sandbox_close(L); /* where a finalizer would run, with hooks off */
    return st;
}

/* run() in a child that must finish within secs: the child's exit status is 0 when the
 * status matched want_ok and out holds want. */
static bool in_child(const char *code, bool want_ok, const char *want, int secs)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        alarm((unsigned)secs);
        char out[512];
        int st = run(code, out, sizeof out);
        bool ok = (st == LUA_OK) == want_ok && strstr(out, want) != NULL;
        if (!ok) fprintf(stderr, "  got %s: %s\n", st == LUA_OK ? "ok" : "error", out);
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status))
        fprintf(stderr, "  child killed by signal %d (a hang)\n", WTERMSIG(status));
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

int main(void)
{
    if (!mkdtemp(dir)) return 1;
    /* A finalizer that loops: refused by setmetatable. */
    CHECK(in_child("local t = setmetatable({}, {__gc = function() while true do end end})\n"
                   "t = nil\nreturn 'loaded'\n",
                   false, "__gc is not allowed", 10));
    /* __gc = false now, a function later, would still be called: refused too. */
    CHECK(in_child("local mt = {__gc = false}\nlocal t = setmetatable({}, mt)\n"
                   "mt.__gc = function() while true do end end\nreturn 'loaded'\n",
                   false, "__gc is not allowed", 10));
    /* A metatable without __gc, and one that gains it afterwards (never marked): fine. */
    CHECK(in_child("local mt = {}\nlocal t = setmetatable({}, mt)\nmt.__gc = function() while "
                   "true do end end\nreturn getmetatable(t) == mt and 'fine'\n",
                   true, "fine", 10));
    /* Protected metatables stay protected. */
    CHECK(in_child("local t = setmetatable({}, {__metatable = 1})\nreturn select(2, pcall("
                   "setmetatable, t, {}))\n",
                   true, "protected metatable", 10));

    /* The budget's error cannot be swallowed: pcall in a C-driven loop. */
    CHECK(in_child("local spin = setmetatable({}, {__call = function() while true do end end, "
                   "__index = pcall})\n"
                   "local s = string.rep('x', 100000)\n"
                   "s:gsub('.', spin)\nreturn 'swallowed'\n",
                   false, "instruction budget", 30));
    CHECK(in_child("for i = 1, 1e9 do pcall(function() while true do end end) end\n"
                   "return 'swallowed'\n",
                   false, "instruction budget", 30));
    CHECK(in_child("for i = 1, 1e9 do xpcall(function() while true do end end, function(m) "
                   "return m end) end\nreturn 'swallowed'\n",
                   false, "instruction budget", 30));
    /* pcall still catches ordinary errors, and still returns values. */
    CHECK(in_child("local ok, e = pcall(error, 'boom')\nlocal ok2, v = pcall(function() return "
                   "42 end)\nreturn tostring(ok) .. e .. tostring(ok2) .. v\n",
                   true, "falseboomtrue42", 10));
    CHECK(in_child("return select(2, xpcall(error, function(m) return 'handled ' .. m end, "
                   "'x'))\n",
                   true, "handled x", 10));

    /* No string.dump, either way. */
    CHECK(in_child("return tostring(string.dump) .. ' ' .. tostring((''). dump)\n", true, "nil nil",
                   10));
    return check_done();
}
