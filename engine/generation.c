/* generation.c — rules and lists loaded together as one generation (see generation.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/evp.h>
#include "generation.h"

const char *vd_rules_default_dir(void)
{
    const char *env = getenv("VALIDORA_RULES");
    if (env && *env) return env;
#ifdef VALIDORA_INSTALL_RULES_DIR
    if (access(VALIDORA_INSTALL_RULES_DIR "/default.lua", R_OK) == 0)
        return VALIDORA_INSTALL_RULES_DIR;
#endif
#ifdef VALIDORA_SOURCE_RULES_DIR
    return VALIDORA_SOURCE_RULES_DIR;
#else
    return "rules";
#endif
}

size_t vd_gen_dirs(const vd_engine_config *c, char **dirs, size_t max)
{
    size_t n = 0;
    if (c->rules_dirs.n == 0) {
        if (!(dirs[n++] = strdup(vd_rules_default_dir()))) return 0;
        return n;
    }
    for (int i = 0; i < c->rules_dirs.n && n < max; i++) {
        if (!(dirs[n] = strdup(c->rules_dirs.v[i]))) {
            vd_gen_dirs_free(dirs, n);
            return 0;
        }
        n++;
    }
    return n;
}

void vd_gen_dirs_free(char **dirs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(dirs[i]);
}

/* The lists of the last directory that has a lists/ folder. */
static vd_lists *load_lists(char *const *dirs, size_t ndirs, vd_problem_cb cb, void *arg)
{
    char path[4200] = "";
    for (size_t i = ndirs; i-- > 0;) {
        struct stat st;
        snprintf(path, sizeof path, "%s/lists", dirs[i]);
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) break;
    }
    char err[512];
    vd_lists *l = vd_lists_new(path, err, sizeof err);
    if (!l && cb) cb(path, 0, err, arg);
    return l;
}

static void set_hash(vd_gen *g)
{
    unsigned char a[32], b[32], out[32];
    unsigned n = 0;
    vd_rules_digest(g->rules, a);
    vd_lists_digest(g->lists, b);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL) || !EVP_DigestUpdate(md, a, 32) ||
        !EVP_DigestUpdate(md, b, 32) || !EVP_DigestFinal_ex(md, out, &n))
        memset(out, 0, sizeof out);
    EVP_MD_CTX_free(md);
    for (int i = 0; i < 6; i++)
        snprintf(g->hash + 2 * i, 3, "%02x", out[i]);
}

vd_gen *vd_gen_load(const vd_rules_env *env, char *const *dirs, size_t ndirs, unsigned id,
                    vd_problem_cb cb, void *arg)
{
    vd_gen *g = calloc(1, sizeof *g);
    if (!g) {
        if (cb) cb(ndirs ? dirs[0] : "rules", 0, "out of memory", arg);
        return NULL;
    }
    g->id = id;
    g->refs = 1;
    g->lists = load_lists(dirs, ndirs, cb, arg);
    g->rules = vd_rules_load(env, (const char *const *)dirs, ndirs, id, cb, arg);
    if (!g->lists || !g->rules) {
        vd_gen_unref(g);
        return NULL;
    }
    set_hash(g);
    return g;
}

void vd_gen_ref(vd_gen *g)
{
    g->refs++;
}

void vd_gen_unref(vd_gen *g)
{
    if (!g || --g->refs > 0) return;
    if (g->lists) vd_lists_free(g->lists);
    vd_rules_unref(g->rules);
    free(g);
}
