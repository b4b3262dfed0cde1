/* validora/script.h — running a pipeline script (`validora run`, docs/scripts.md): a Lua
 * program with verification at hand, on the caller's libevent event_base.
 *
 * The script runs as one coroutine on the loop; validora.verify and the iterator of
 * validora.verify_all yield it until records arrive. Whoever embeds it hands down how an
 * address is verified (submit: the CLI makes the engine on first use and calls
 * vd_engine_submit), so the script runtime (a Lua bridge file, engine/script.c) never calls
 * up into the engine or the CLI. No Lua header is needed to use it. */
#ifndef VALIDORA_SCRIPT_H
#define VALIDORA_SCRIPT_H
#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct vd_record;

#define VD_SCRIPT_MAX_CONCURRENCY 100000 /* verify_all's bound on addresses in flight */
#define VD_SCRIPT_ERROR           1      /* vd_script_run: the script failed (or did not load) */

/* Called once per submitted address with its record (from the loop, or from inside submit). */
typedef void (*vd_script_record_cb)(const struct vd_record *rec, void *arg);
/* Starts verifying one address: 0, or -1 with a message in err (the script raises it). */
typedef int (*vd_script_submit_fn)(void *arg, const char *addr, size_t len,
                                   vd_script_record_cb done, void *done_arg, char *err,
                                   size_t errlen);

typedef struct vd_script_config {
    struct event_base *base;
    const char *path; /* the script; its directory is the first place require looks */
    int argc;         /* its arguments: arg[1..argc], and the chunk's ... */
    char **argv;
    const char *const *module_dirs; /* then these (the rules directories), in order */
    size_t nmodule_dirs;
    int concurrency; /* verify_all's default, 1..VD_SCRIPT_MAX_CONCURRENCY */
    vd_script_submit_fn submit;
    void *submit_arg;
} vd_script_config;

typedef struct vd_script vd_script;

/* A script's state (nothing loaded or run yet); NULL with a message in err. */
vd_script *vd_script_new(const vd_script_config *cfg, char *err, size_t errlen);
/* Loads and runs the script to its end, dispatching cfg->base meanwhile: what it returns (a
 * number; false is 1; nothing is 0), or VD_SCRIPT_ERROR when it did not load or raised an
 * error (said on stderr, with a traceback). */
int vd_script_run(vd_script *s);
/* No new addresses (SIGTERM); now: the script ends at once, with VD_SCRIPT_ERROR. */
void vd_script_stop(vd_script *s, bool now);
/* Frees the script's state. Addresses still in flight may complete afterwards (the caller
 * drains its engine): their records are dropped. */
void vd_script_free(vd_script *s);

#endif
