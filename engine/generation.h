/* generation.h — one generation of what decides verdicts: the rules and the lists, loaded
 * together from the rules directories and named by a short hash of every file they read.
 *
 * Owns: finding the directories (--rules, repeated; $VALIDORA_RULES; the installed rules),
 * which lists directory counts (the last rules directory that has lists/), loading both
 * whole, the hash a record carries as `generation`, and the references jobs hold.
 * Does not own: when a generation becomes current (engine.c), the Lua side (rules.h). */
#ifndef VALIDORA_GENERATION_H
#define VALIDORA_GENERATION_H
#include "lists.h"
#include "rules.h"

typedef struct vd_gen {
    unsigned id;   /* 1, 2, ... in the order they were loaded */
    char hash[13]; /* 12 hex digits of SHA-256 over the rule and list files */
    vd_lists *lists;
    vd_rules *rules;
    int refs;
} vd_gen;

/* The rules directories of c, copied (default ones when c names none); returns how many,
 * 0 when out of memory. Free with vd_gen_dirs_free. */
size_t vd_gen_dirs(const vd_engine_config *c, char **dirs, size_t max);
void vd_gen_dirs_free(char **dirs, size_t n);

/* Loads generation id. Every problem goes to cb; NULL when there was any. */
vd_gen *vd_gen_load(const vd_rules_env *env, char *const *dirs, size_t ndirs, unsigned id,
                    vd_problem_cb cb, void *arg);
void vd_gen_ref(vd_gen *g);
void vd_gen_unref(vd_gen *g);

#endif
