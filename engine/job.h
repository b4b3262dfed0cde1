/* job.h — the jobs of one engine: every address in flight, from vd_engine_submit to its record
 * (job.c). engine.c holds a vd_jobs, lends it what a job needs, and hands each address in with
 * the generation it starts on.
 *
 * Owns: the jobs' list and count, and the shape of what they are lent.
 * Does not own: the engine (engine.c: its start-up, which generation is current), the life of
 * one address (job.c). No Lua here. */
#ifndef VALIDORA_JOB_H
#define VALIDORA_JOB_H
#include <stddef.h>
#include "dns.h"
#include "generation.h"
#include "validora/validora.h"

struct vd_job;

/* The jobs of one engine, and what they are lent of it (the pointers outlive every job). */
typedef struct vd_jobs {
    vd_dns *dns;                 /* the DNS stage */
    const vd_engine_config *cfg; /* smtp: probe, or decide not_probed; reuse: the probe's */
    struct vd_job *list;         /* every live job, for vd_jobs_free_all */
    size_t inflight;             /* jobs not yet delivered */
} vd_jobs;

/* vd_engine_submit: the life of one address on gen (the current generation: the job holds a
 * reference to its end). -1 when out of memory. */
int vd_job_submit(vd_jobs *js, vd_gen *gen, const char *email, size_t len, vd_result_cb cb,
                  void *arg);
/* vd_engine_which: the DNS stage of a job, then the rule it would get instead of a probe. */
int vd_job_which(vd_jobs *js, vd_gen *gen, const char *email, size_t len, vd_which_cb cb,
                 void *arg);
/* Drops every job without a record. */
void vd_jobs_free_all(vd_jobs *js);

#endif
