/* cli_serve_jobs.c — the jobs of `validora serve`: lists of addresses verified in the
 * background, kept on disk so that a restart goes on where the last process stopped.
 *
 * A job is a directory DIR/ID (DIR = STATE_DIR/serve/jobs): `input` (the addresses, one a
 * line, written whole before the job exists), `meta.json` (id, created_at, total, state,
 * finished_at; replaced by rename, so it is always whole: a directory without it is a job
 * whose creation was cut short, and is removed) and `results.mpk` (the msgpack record stream,
 * one record appended and flushed per address as it is decided). At start-up every job reads
 * its results back under validora/resume.h's policy: a torn tail (a kill in the middle of a
 * write, a power cut's zeros) is cut off, and every address of the input without a complete
 * record is verified again (an address given twice gets a record for each time; a deferred
 * record is the job's answer, as while it runs); damage before the end is refused: the job
 * fails, saying where, and its files stay as they are.
 *
 * Owns: job ids, the files and their formats, when a job is resumed, the order work is started
 * in (jobs first come first served, up to the concurrency for all of them), expiry of finished
 * jobs.
 * Does not own: HTTP (cli_serve.c), the records' format (record.c), what a resume keeps, cuts
 * or refuses (resume.c), what the engine does. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <jansson.h>
#include "cli_serve_jobs.h"
#include "validora/resume.h"

#define EXPIRE_EVERY_S 60 /* how often finished jobs are checked against --job-ttl */
#define ID_LEN         32 /* hex digits of a job id: 128 random bits, not guessable */

/* ---- jobs ---- */

typedef enum { JOB_QUEUED, JOB_RUNNING, JOB_DONE, JOB_FAILED } job_state;
static const char *const STATE_NAMES[] = {"queued", "running", "done", "failed"};

struct sv_job {
    sv_jobs *s;
    char id[ID_LEN + 1];
    char *dir;
    long created_at, finished_at;
    long total, done;
    long by_status[VD_STATUS_COUNT];
    job_state state;
    char error[512]; /* why it failed */
    FILE *in;        /* open while its addresses are being started */
    bool input_done; /* every address has been started (or had a record) */
    FILE *out;
    vd_writer *writer;
    vd_resume *resumed; /* addresses with a record from an earlier process; NULL: none */
    long inflight;
    bool deleted; /* freed when the last address in flight comes back */
    sv_job *next;
};

struct sv_jobs {
    struct event_base *base;
    vd_engine *engine;
    char *dir;
    sv_limits lim;
    sv_metrics *metrics;
    sv_job *head, *tail;
    long count;
    size_t inflight;
    bool stopping;
    struct event *pump_ev, *expire_ev;
};

static char *path_of(const sv_job *j, const char *name)
{
    size_t n = strlen(j->dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", j->dir, name);
    return p;
}

/* fsync of a directory: a name created or renamed in it survives a power cut (as
 * cli_output.c's sync_dir). */
static int sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* Writes meta.json whole (temp file, fsync, rename, fsync of the job's directory): once it
 * returns 0, meta.json and every file beside it survive a power cut. */
static int write_meta(sv_job *j)
{
    json_t *o = json_pack("{s:s, s:I, s:I, s:s}", "id", j->id, "created_at",
                          (json_int_t)j->created_at, "total", (json_int_t)j->total, "state",
                          j->state == JOB_DONE || j->state == JOB_FAILED ? STATE_NAMES[j->state]
                                                                         : "queued");
    if (!o) return -1;
    if (j->finished_at) json_object_set_new(o, "finished_at", json_integer(j->finished_at));
    if (j->state == JOB_FAILED) json_object_set_new(o, "error", json_string(j->error));
    char *tmp = path_of(j, "meta.json.tmp"), *dst = path_of(j, "meta.json");
    int rc = -1;
    if (tmp && dst) {
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        char *text = fd >= 0 ? json_dumps(o, JSON_COMPACT) : NULL; /* one write, not one a token */
        if (fd >= 0) {
            int w = text ? 0 : -1;
            for (size_t off = 0, n = text ? strlen(text) : 0; w == 0 && off < n;) {
                ssize_t k = write(fd, text + off, n - off);
                if (k < 0 && errno != EINTR) w = -1;
                if (k > 0) off += (size_t)k;
            }
            free(text);
            if (w == 0 && fsync(fd) == 0 && close(fd) == 0)
                rc = rename(tmp, dst) == 0 ? sync_dir(j->dir) : -1;
            else
                close(fd);
        }
    }
    free(tmp);
    free(dst);
    json_decref(o);
    return rc;
}

static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d))) {
            if (de->d_name[0] == '.') continue;
            char p[4352];
            snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

static void close_files(sv_job *j)
{
    if (j->in) fclose(j->in);
    j->in = NULL;
    if (j->writer) vd_writer_free(j->writer);
    j->writer = NULL;
    if (j->out) fclose(j->out);
    j->out = NULL;
    vd_resume_free(j->resumed);
    j->resumed = NULL;
}

static void job_free(sv_job *j)
{
    close_files(j);
    free(j->dir);
    free(j);
}

static void unlink_job(sv_jobs *s, sv_job *j)
{
    sv_job **pp = &s->head, *prev = NULL;
    while (*pp && *pp != j) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (!*pp) return;
    *pp = j->next;
    if (s->tail == j) s->tail = prev;
    s->count--;
}

/* The job stops for good, saying why (error) in its progress and meta.json. */
static void job_fail_with(sv_job *j, const char *error)
{
    snprintf(j->error, sizeof j->error, "%s", error);
    fprintf(stderr, "validora serve: job %s failed: %s\n", j->id, j->error);
    j->state = JOB_FAILED;
    j->finished_at = time(NULL);
    close_files(j);
    write_meta(j);
}

static void job_fail(sv_job *j, const char *what)
{
    char msg[sizeof j->error];
    snprintf(msg, sizeof msg, "%s: %s", what, strerror(errno));
    job_fail_with(j, msg);
}

/* Every address started and back: the job is done. */
static void job_check_done(sv_job *j)
{
    if (j->state != JOB_RUNNING && j->state != JOB_QUEUED) return;
    if (!j->input_done || j->inflight > 0) return;
    j->state = JOB_DONE;
    j->finished_at = time(NULL);
    close_files(j);
    if (write_meta(j) != 0)
        fprintf(stderr, "validora serve: job %s: writing meta.json: %s\n", j->id, strerror(errno));
}

static void on_record(const vd_record *rec, void *arg)
{
    sv_job *j = arg;
    sv_jobs *s = j->s;
    j->inflight--;
    s->inflight--;
    sv_metrics_record(s->metrics, rec);
    if (j->deleted) {
        if (j->inflight == 0) job_free(j);
    } else if (j->state == JOB_RUNNING && j->writer) {
        if (vd_writer_put(j->writer, rec) != 0) {
            job_fail(j, "writing results.mpk");
        } else {
            j->done++;
            vd_status k = VD_STATUS_UNKNOWN;
            (void)vd_status_parse(rec->status, strlen(rec->status), &k);
            j->by_status[k]++;
            job_check_done(j);
        }
    }
    event_active(s->pump_ev, EV_TIMEOUT, 0); /* refill from the loop, not from here */
}

/* Opens the input and the results for appending. */
static int job_open(sv_job *j)
{
    char *in = path_of(j, "input"), *out = path_of(j, "results.mpk");
    if (in) j->in = fopen(in, "re");
    if (out && j->in) j->out = fopen(out, "ae");
    free(in);
    free(out);
    if (!j->in || !j->out || !(j->writer = vd_writer_new(j->out, VD_FMT_MSGPACK))) {
        job_fail(j, "opening its files");
        return -1;
    }
    j->state = JOB_RUNNING;
    return 0;
}

/* Starts the job's next address; false when it has none to start now. */
static bool job_start_one(sv_jobs *s, sv_job *j)
{
    static char *line;
    static size_t cap;
    for (;;) {
        ssize_t n = getline(&line, &cap, j->in);
        if (n < 0) {
            j->input_done = true;
            fclose(j->in);
            j->in = NULL;
            vd_resume_free(j->resumed);
            j->resumed = NULL;
            job_check_done(j);
            return false;
        }
        if (n > 0 && line[n - 1] == '\n') n--;
        if (vd_resume_take(j->resumed, line, (size_t)n)) continue;
        j->inflight++;
        s->inflight++;
        if (vd_engine_submit(s->engine, line, (size_t)n, on_record, j) != 0) {
            j->inflight--;
            s->inflight--;
            errno = ENOMEM;
            job_fail(j, "starting an address");
            return false;
        }
        return true;
    }
}

void sv_jobs_pump(sv_jobs *s)
{
    for (sv_job *j = s->head; j && !s->stopping; j = j->next) {
        if (j->deleted || j->input_done || j->state == JOB_DONE || j->state == JOB_FAILED) continue;
        if (!j->in && job_open(j) != 0) continue;
        while (!s->stopping && s->inflight < (size_t)s->lim.concurrency && j->in)
            if (!job_start_one(s, j)) break;
        if (s->inflight >= (size_t)s->lim.concurrency) return;
    }
}

static void on_pump(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sv_jobs_pump(arg);
}

/* Reads a job's results back under validora/resume.h's policy (a deferred record is this job's
 * answer, as while it runs): the counts and the addresses to skip, a torn tail cut off (the log
 * says where). 0; 1 when the results are refused (damage that is not a torn tail: msg says
 * what and where); -1 on a system error (errno). */
static int job_read_results(sv_job *j, char *msg, size_t msglen)
{
    char *p = path_of(j, "results.mpk");
    FILE *f = p ? fopen(p, "r+e") : NULL;
    free(p);
    if (!f) return errno == ENOENT ? 0 : -1;
    int rc = (j->resumed = vd_resume_new(VD_RESUME_DEFERRED_DONE)) ? 0 : -1;
    if (rc == 0 && vd_resume_scan(j->resumed, f, "results.mpk", msg, msglen) != 0) rc = 1;
    const vd_resume_found *found = j->resumed ? vd_resume_found_get(j->resumed) : NULL;
    if (rc == 0 && found->tail[0]) {
        fprintf(stderr, "validora serve: job %s: results.mpk: %s; cut there, redoing the rest\n",
                j->id, found->tail);
        if (vd_resume_cut(j->resumed, fileno(f), "results.mpk", msg, msglen) != 0) rc = 1;
    }
    if (rc == 0) {
        j->done = (long)found->kept;
        for (int k = 0; k < VD_STATUS_COUNT; k++)
            j->by_status[k] = (long)found->by_status[k];
    }
    fclose(f);
    return rc;
}

static sv_job *job_new(sv_jobs *s, const char *id)
{
    sv_job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->s = s;
    snprintf(j->id, sizeof j->id, "%s", id);
    size_t n = strlen(s->dir) + strlen(id) + 2;
    if (!(j->dir = malloc(n))) {
        free(j);
        return NULL;
    }
    snprintf(j->dir, n, "%s/%s", s->dir, id);
    return j;
}

static void append_job(sv_jobs *s, sv_job *j)
{
    if (s->tail)
        s->tail->next = j;
    else
        s->head = j;
    s->tail = j;
    s->count++;
}

static bool valid_id(const char *id)
{
    size_t i = 0;
    for (; id[i]; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f'))) return false;
    return i == ID_LEN;
}

/* Loads DIR/ID; NULL (and the directory removed) when its creation was cut short. */
static sv_job *job_load(sv_jobs *s, const char *id)
{
    sv_job *j = job_new(s, id);
    if (!j) return NULL;
    char *mp = path_of(j, "meta.json");
    json_error_t je;
    json_t *m = mp ? json_load_file(mp, 0, &je) : NULL;
    free(mp);
    const char *state = NULL, *error = NULL;
    json_int_t created = 0, total = 0, finished = 0;
    if (!m || json_unpack(m, "{s:I, s:I, s:s, s?I, s?s}", "created_at", &created, "total", &total,
                          "state", &state, "finished_at", &finished, "error", &error) != 0) {
        fprintf(stderr, "validora serve: %s: no whole meta.json (creation cut short): removed\n",
                j->dir);
        remove_dir(j->dir);
        json_decref(m);
        job_free(j);
        return NULL;
    }
    j->created_at = (long)created;
    j->total = (long)total;
    j->finished_at = (long)finished;
    j->state = !strcmp(state, "done")     ? JOB_DONE
               : !strcmp(state, "failed") ? JOB_FAILED
                                          : JOB_QUEUED;
    if (error) snprintf(j->error, sizeof j->error, "%s", error);
    json_decref(m);
    char msg[sizeof j->error];
    int rc = job_read_results(j, msg, sizeof msg);
    if (rc < 0) job_fail(j, "reading results.mpk");
    /* refused results: the job fails (if it had not already), its files stay for a look */
    if (rc > 0 && j->state == JOB_FAILED)
        fprintf(stderr, "validora serve: job %s (failed): %s\n", j->id, msg);
    else if (rc > 0)
        job_fail_with(j, msg);
    if (j->state != JOB_QUEUED) { /* nothing to skip: it starts no address */
        vd_resume_free(j->resumed);
        j->resumed = NULL;
    }
    return j;
}

static int by_created(const void *a, const void *b)
{
    const sv_job *x = *(sv_job *const *)a, *y = *(sv_job *const *)b;
    if (x->created_at != y->created_at) return x->created_at < y->created_at ? -1 : 1;
    return strcmp(x->id, y->id);
}

static int load_all(sv_jobs *s, char *err, size_t errlen)
{
    DIR *d = opendir(s->dir);
    if (!d) {
        snprintf(err, errlen, "%s: %s", s->dir, strerror(errno));
        return -1;
    }
    sv_job **v = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!valid_id(de->d_name)) continue;
        sv_job *j = job_load(s, de->d_name);
        if (!j) continue;
        if (n == cap) {
            sv_job **nv = realloc(v, (cap = cap ? cap * 2 : 16) * sizeof *v);
            if (!nv) {
                job_free(j);
                break;
            }
            v = nv;
        }
        v[n++] = j;
    }
    closedir(d);
    if (n) qsort(v, n, sizeof *v, by_created);
    long resumed = 0;
    for (size_t i = 0; i < n; i++) {
        append_job(s, v[i]);
        if (v[i]->state == JOB_QUEUED) resumed++;
    }
    free(v);
    if (resumed)
        fprintf(stderr, "validora serve: resuming %ld unfinished job%s\n", resumed,
                resumed == 1 ? "" : "s");
    return 0;
}

static void expire(sv_jobs *s)
{
    long now = time(NULL);
    for (sv_job *j = s->head, *next; j; j = next) {
        next = j->next;
        if ((j->state == JOB_DONE || j->state == JOB_FAILED) && j->finished_at &&
            (double)(now - j->finished_at) >= s->lim.job_ttl)
            sv_jobs_delete(s, j);
    }
}

static void on_expire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    expire(arg);
}

/* mkdir -p, mode 0700. */
static int make_dirs(const char *path)
{
    char p[4096];
    snprintf(p, sizeof p, "%s", path);
    for (char *c = p + 1; *c; c++) {
        if (*c != '/') continue;
        *c = 0;
        if (mkdir(p, 0700) != 0 && errno != EEXIST) return -1;
        *c = '/';
    }
    return mkdir(p, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

sv_jobs *sv_jobs_open(struct event_base *base, vd_engine *e, const char *dir, const sv_limits *lim,
                      sv_metrics *m, char *err, size_t errlen)
{
    sv_jobs *s = calloc(1, sizeof *s);
    if (!s || !(s->dir = strdup(dir))) {
        free(s);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    *s = (sv_jobs){.base = base, .engine = e, .dir = s->dir, .lim = *lim, .metrics = m};
    struct timeval every = {EXPIRE_EVERY_S, 0};
    if (make_dirs(dir) != 0) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
    } else if (!(s->pump_ev = event_new(base, -1, 0, on_pump, s)) ||
               !(s->expire_ev = event_new(base, -1, EV_PERSIST, on_expire, s))) {
        snprintf(err, errlen, "out of memory");
    } else if (load_all(s, err, errlen) == 0) {
        event_add(s->expire_ev, &every);
        expire(s);
        event_active(s->pump_ev, EV_TIMEOUT, 0);
        return s;
    }
    sv_jobs_free(s);
    return NULL;
}

void sv_jobs_free(sv_jobs *s)
{
    if (!s) return;
    for (sv_job *j = s->head, *next; j; j = next) {
        next = j->next;
        job_free(j); /* unfinished: meta.json still says queued; the next start resumes it */
    }
    if (s->pump_ev) event_free(s->pump_ev);
    if (s->expire_ev) event_free(s->expire_ev);
    free(s->dir);
    free(s);
}

/* Writes the input file, fsync'd. */
static int write_input(sv_job *j, const sv_list *l)
{
    char *p = path_of(j, "input");
    if (!p) return -1;
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    free(p);
    if (fd < 0) return -1;
    size_t off = 0;
    while (off < l->len) {
        ssize_t w = write(fd, l->buf + off, l->len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
            close(fd);
            return -1;
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0) {
        close(fd);
        return -1;
    }
    return close(fd);
}

sv_job *sv_jobs_create(sv_jobs *s, sv_list *l, char *err, size_t errlen)
{
    if (s->count >= s->lim.max_jobs) {
        expire(s);
        if (s->count >= s->lim.max_jobs) {
            errno = ENOSPC;
            return NULL;
        }
    }
    unsigned char rnd[ID_LEN / 2];
    char id[ID_LEN + 1];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        snprintf(err, errlen, "no random bytes for a job id: %s", strerror(errno));
        errno = EIO;
        return NULL;
    }
    for (size_t i = 0; i < sizeof rnd; i++)
        snprintf(id + 2 * i, 3, "%02x", rnd[i]);
    sv_job *j = job_new(s, id);
    if (!j) {
        snprintf(err, errlen, "out of memory");
        errno = EIO;
        return NULL;
    }
    j->created_at = time(NULL);
    j->total = l->n;
    /* Before the 202: input and meta.json synced, then the job's directory (their names, by
     * write_meta), then the jobs' directory (the job's name). A power cut after the 202 cannot
     * leave a directory without meta.json, which the next start would remove. */
    if (mkdir(j->dir, 0700) != 0 || write_input(j, l) != 0 || write_meta(j) != 0 ||
        sync_dir(s->dir) != 0) {
        snprintf(err, errlen, "%s: %s", j->dir, strerror(errno));
        remove_dir(j->dir);
        job_free(j);
        errno = EIO;
        return NULL;
    }
    sv_list_free(l);
    append_job(s, j);
    event_active(s->pump_ev, EV_TIMEOUT, 0);
    return j;
}

sv_job *sv_jobs_find(sv_jobs *s, const char *id)
{
    for (sv_job *j = s->head; j; j = j->next)
        if (!strcmp(j->id, id)) return j;
    return NULL;
}

const char *sv_job_id(const sv_job *j)
{
    return j->id;
}

void sv_job_progress(const sv_job *j, struct evbuffer *out)
{
    job_state st =
        j->state == JOB_RUNNING && j->done == 0 && j->inflight == 0 ? JOB_QUEUED : j->state;
    json_t *counts = json_object();
    for (int k = 0; k < VD_STATUS_COUNT; k++)
        json_object_set_new(counts, vd_status_name((vd_status)k), json_integer(j->by_status[k]));
    json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:I, s:o, s:I}", "id", j->id, "state",
                          STATE_NAMES[st], "total", (json_int_t)j->total, "done",
                          (json_int_t)j->done, "in_flight", (json_int_t)j->inflight, "counts",
                          counts, "created_at", (json_int_t)j->created_at);
    if (!o) return;
    if (j->finished_at) json_object_set_new(o, "finished_at", json_integer(j->finished_at));
    if (st == JOB_FAILED) json_object_set_new(o, "error", json_string(j->error));
    char *text = json_dumps(o, JSON_COMPACT);
    if (text) {
        evbuffer_add_printf(out, "%s\n", text);
        free(text);
    }
    json_decref(o);
}

/* The msgpack stream as it is on disk, sent from the file (no copy in memory): every write
 * to it is a whole record, flushed, and a torn tail was cut at start-up. */
static int send_file(const char *p, struct evbuffer *out, char *err, size_t errlen)
{
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0) close(fd);
        if (errno == ENOENT) return 0;
        snprintf(err, errlen, "results.mpk: %s", strerror(errno));
        return -1;
    }
    if (st.st_size == 0 || evbuffer_add_file(out, fd, 0, st.st_size) != 0) close(fd);
    return 0;
}

int sv_job_results(const sv_job *j, vd_format fmt, struct evbuffer *out, char *err, size_t errlen)
{
    char *p = path_of(j, "results.mpk");
    if (p && fmt == VD_FMT_MSGPACK && j->state != JOB_FAILED) { /* a failed write may be torn */
        int rc = send_file(p, out, err, errlen);
        free(p);
        return rc;
    }
    FILE *f = p ? fopen(p, "re") : NULL;
    free(p);
    if (!f) {
        if (errno == ENOENT) return 0; /* nothing decided yet */
        snprintf(err, errlen, "results.mpk: %s", strerror(errno));
        return -1;
    }
    vd_reader *r = vd_reader_new(f);
    vd_record_view v;
    char buf[8192];
    while (r && vd_reader_next(r, &v) == VD_READ_RECORD) {
        size_t len;
        if (vd_record_render(&v, fmt, buf, sizeof buf, &len) == 0) {
            evbuffer_add(out, buf, len);
            continue;
        }
        char *big;
        if (errno != ERANGE || !(big = malloc(len + 1))) continue;
        if (vd_record_render(&v, fmt, big, len + 1, &len) == 0) evbuffer_add(out, big, len);
        free(big);
    }
    /* a tail being written cannot be seen here (one process, whole records); a damaged one
     * was cut at start-up: whatever stopped the loop, what came before is good */
    vd_reader_free(r);
    fclose(f);
    return 0;
}

void sv_jobs_delete(sv_jobs *s, sv_job *j)
{
    unlink_job(s, j);
    remove_dir(j->dir);
    close_files(j);
    j->input_done = true;
    if (j->inflight > 0)
        j->deleted = true; /* freed by on_record */
    else
        job_free(j);
}

void sv_jobs_stop(sv_jobs *s)
{
    s->stopping = true;
    event_del(s->expire_ev); /* nothing of ours keeps the loop going */
}

size_t sv_jobs_inflight(const sv_jobs *s)
{
    return s->inflight;
}

void sv_jobs_gauges(const sv_jobs *s, sv_gauges *g)
{
    for (const sv_job *j = s->head; j; j = j->next) {
        if (j->state == JOB_DONE || j->state == JOB_FAILED)
            g->jobs_done++;
        else if (j->done > 0 || j->inflight > 0)
            g->jobs_running++;
        else
            g->jobs_queued++;
        if (j->state == JOB_QUEUED || j->state == JOB_RUNNING)
            g->job_addresses_pending += j->total - j->done;
    }
}
