/* cli_run.c — `validora run SCRIPT.lua [ARG]...`: its command line, and the engine a script
 * verifies with (docs/scripts.md).
 *
 * Owns: run's options, making the engine at the script's first address (the script's
 * verifier), signals (SIGTERM: no new addresses; SIGHUP: reload), closing the engine.
 * Does not own: the script runtime, its Lua state or the `validora` table (script.c, behind
 * validora/script.h: no Lua here). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>
#include "cli.h"
#include "validora/script.h"

typedef struct run_opts {
    int concurrency;
} run_opts;

#define ROFF(f) offsetof(run_opts, f)
const vd_option vd_cli_run_options[] = {
    {"concurrency", 'j', VD_OPT_INT, ROFF(concurrency), 256, NULL, 1, VD_SCRIPT_MAX_CONCURRENCY,
     "N", "Run", "addresses in flight for validora.verify_all (a script may ask for fewer or more)",
     false},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL, NULL, NULL, false},
};

static const vd_cli_usage USAGE = {
    .cmd = "run",
    .section = "run",
    .stop_at_operand = true,
    .head = "Usage: validora run [OPTION]... SCRIPT.lua [ARG]...\n"
            "Runs a Lua script with the engine at hand (docs/scripts.md): validora.verify,\n"
            "validora.verify_all, readers of lists, CSV and record streams, record writers.\n"
            "Options before SCRIPT are validora's; everything after it is the script's (arg).\n",
    .tail = "Exit status: what the script returns (a number; false is 1), 1 when it raises an "
            "error,\n2 on a usage error. Shipped scripts: scripts/ (each has --help).\n",
};

/* The script's verifier: the engine, made at the first address (a script that only reads
 * records needs no rules, ledger or instance lock); a failure to start is the script's error. */
typedef struct run_ctx {
    struct event_base *base;
    const vd_engine_config *cfg;
    vd_engine *engine;
    vd_script *script;
} run_ctx;

static int submit(void *arg, const char *addr, size_t len, vd_script_record_cb done, void *done_arg,
                  char *err, size_t errlen)
{
    run_ctx *c = arg;
    char why[1024];
    if (!c->engine && !(c->engine = vd_engine_new(c->base, c->cfg, why, sizeof why))) {
        snprintf(err, errlen, "the engine did not start: %s", why);
        return -1;
    }
    if (vd_engine_submit(c->engine, addr, len, done, done_arg) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

static void on_stop(void *arg, bool now)
{
    run_ctx *c = arg;
    vd_script_stop(c->script, now);
}

static void on_reload(void *arg)
{
    run_ctx *c = arg;
    if (c->engine) vd_cli_reload("run", c->engine); /* no engine yet: nothing loaded to reload */
}

/* The rules directories (the default when none is given): where require looks after the
 * script's own directory (validora.* modules). */
static int run_script(run_ctx *c, const char *path, int argc, char **argv, int concurrency)
{
    const char *def = vd_rules_default_dir();
    const vd_engine_config *cfg = c->cfg;
    vd_script_config sc = {
        .base = c->base,
        .path = path,
        .argc = argc,
        .argv = argv,
        .module_dirs = cfg->rules_dirs.n ? (const char *const *)cfg->rules_dirs.v : &def,
        .nmodule_dirs = cfg->rules_dirs.n ? (size_t)cfg->rules_dirs.n : 1,
        .concurrency = concurrency,
        .submit = submit,
        .submit_arg = c,
    };
    char err[512];
    if (!(c->script = vd_script_new(&sc, err, sizeof err))) {
        fprintf(stderr, "validora run: %s\n", err);
        return VD_EXIT_FATAL;
    }
    vd_cli_signals *sig = vd_cli_signals_new(c->base, on_stop, on_reload, c);
    if (!sig) {
        fprintf(stderr, "validora run: out of memory\n");
        return VD_EXIT_FATAL;
    }
    int rc = vd_script_run(c->script);
    vd_cli_signals_free(sig);
    return rc;
}

int vd_cli_run(int argc, char **argv)
{
    vd_engine_config cfg;
    vd_engine_config_init(&cfg);
    run_opts o;
    vd_options_defaults(vd_cli_run_options, &o);
    vd_cli_table tables[] = {{vd_cli_run_options, &o}, {vd_engine_options, &cfg}};
    size_t nopts = 0;
    for (const vd_option *op = vd_engine_options; op->name; op++)
        nopts++;
    for (const vd_option *op = vd_cli_run_options; op->name; op++)
        nopts++;
    bool *given = calloc(nopts + 1, sizeof *given);
    if (!given) {
        fprintf(stderr, "validora run: out of memory\n");
        return VD_EXIT_FATAL;
    }
    int first = vd_cli_parse_given(&USAGE, argc, argv, tables, 2, given);
    /* The watchdog only when asked for: a script may wait for its own input (a prompt, a slow
     * pipe) on the loop's thread. given is indexed over both tables, run's first. */
    size_t wd = 0;
    for (const vd_option *op = vd_cli_run_options; op->name; op++)
        wd++;
    for (const vd_option *op = vd_engine_options; op->name && strcmp(op->name, "watchdog"); op++)
        wd++;
    if (!given[wd]) cfg.watchdog = 0;
    free(given);
    if (first < 0) return vd_cli_parse_exit(first);
    if (first >= argc) return vd_cli_usage_error("run", "no SCRIPT.lua given");
    vd_cli_log log = {.cmd = "run", .verbose = 0};
    cfg.log = vd_cli_log_cb;
    cfg.log_arg = &log;
    run_ctx c = {.cfg = &cfg};
    int rc = VD_EXIT_FATAL;
    if (!(c.base = event_base_new())) {
        fprintf(stderr, "validora run: out of memory\n");
        return rc;
    }
    rc = run_script(&c, argv[first], argc - first - 1, argv + first + 1, o.concurrency);
    vd_script_free(c.script); /* records still in flight are dropped */
    if (c.engine) vd_cli_close_engine(c.base, c.engine);
    event_base_free(c.base);
    return rc;
}
