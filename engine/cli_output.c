/* cli_output.c — the records file of `validora verify -o FILE` (cli_output.h): the open
 * policy (an existing non-empty FILE is refused without --force or --resume: a typo in a
 * command line must not wipe a day of verifications), --resume's repair of FILE, the file lock,
 * and fdatasync every --sync seconds.
 *
 * Resume keeps exactly one final record per input line. What is kept, cut or refused is
 * validora/resume.h's policy (resume.c reads FILE back); here FILE is repaired for appending:
 * a torn tail is cut off, and when there are records with reason `deferred` the kept ones are
 * written to FILE.resume-tmp, synced and renamed over FILE (atomic: a crash leaves either file
 * whole). So `validora cat FILE` shows every address once.
 *
 * Owns: opening, the repair's file handling, the lock, the sync timer.
 * Does not own: the record format (record.c), which records are kept (resume.c), reading the
 * input, verifying (cli_verify.c). */
#include "cli_output.h"
#include "validora/resume.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <event2/event.h>

#define TMP_SUFFIX ".resume-tmp" /* beside FILE, so the rename stays on one file system */

struct vd_out {
    FILE *fp;
    bool regular; /* a regular file: locked and synced (not /dev/null, a FIFO) */
    double sync_s;
    bool dirty;     /* written since the last fdatasync */
    int sync_errno; /* a failed timed sync, reported by the next vd_out_wrote */
    struct event *tick;
    vd_out_found found;
    vd_resume *done; /* --resume: the lines with a kept record; NULL otherwise */
};

bool vd_out_skip(vd_out *o, const char *email, size_t len)
{
    return o && vd_resume_take(o->done, email, len);
}

/* ---- helpers ---- */

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt,
                                                      ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* fsync of the directory holding path: a new or renamed name survives a power loss. */
static int sync_dir(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else
        snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* Locks fd for this process, and checks that path still names it (not a file renamed over it
 * by another resume in the meantime). */
static int lock_file(int fd, const char *path, char *err, size_t errlen)
{
    if (flock(fd, LOCK_EX | LOCK_NB) != 0)
        return errno == EWOULDBLOCK
                   ? fail(err, errlen, "%s: in use by another validora verify (it holds the lock)",
                          path)
                   : fail(err, errlen, "%s: cannot lock it: %s", path, strerror(errno));
    struct stat a, b;
    if (fstat(fd, &a) != 0 || stat(path, &b) != 0 || a.st_ino != b.st_ino || a.st_dev != b.st_dev)
        return fail(err, errlen, "%s: replaced while it was being opened: try again", path);
    return 0;
}

/* ---- resume: reading back ---- */

/* What the scan found, as verify reports it. */
static void note_found(vd_out_found *of, const vd_resume_found *f)
{
    of->kept = (long)f->kept;
    for (int k = 0; k < VD_STATUS_COUNT; k++)
        of->by_status[k] = (long)f->by_status[k];
    of->deferred = (long)f->deferred;
    if (f->tail_bytes > 0) {
        of->cut_at = (long long)f->good_end;
        of->cut_bytes = (long long)f->tail_bytes;
        of->cut_zeros = f->tail_zeros;
    }
}

/* Reads FILE back under resume.h's policy: the lines done, the tail to cut, or a refusal. */
static int read_back(vd_out *o, const char *path, char *err, size_t errlen)
{
    FILE *in = fopen(path, "rbe");
    if (!in) return fail(err, errlen, "%s: %s", path, strerror(errno));
    int rc = !(o->done = vd_resume_new(0)) ? fail(err, errlen, "out of memory")
                                           : vd_resume_scan(o->done, in, path, err, errlen);
    fclose(in);
    if (rc == 0) note_found(&o->found, vd_resume_found_get(o->done));
    return rc;
}

/* Writes the kept records (not the deferred ones, not a torn tail) to FILE.resume-tmp, syncs
 * it and renames it over FILE. Returns the new file's descriptor (locked), or -1. */
static int rewrite(const vd_out *o, const char *path, int oldfd, char *err, size_t errlen)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s%s", path, TMP_SUFFIX);
    struct stat sb;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) return fail(err, errlen, "%s: %s", tmp, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) { /* before it has FILE's name */
        close(fd);
        return fail(err, errlen, "%s: cannot lock it: %s", tmp, strerror(errno));
    }
    if (fstat(oldfd, &sb) == 0) (void)fchmod(fd, sb.st_mode & 07777);
    FILE *in = fopen(path, "rbe");
    int dfd = dup(fd);
    FILE *out = dfd >= 0 ? fdopen(dfd, "wb") : NULL;
    if (!out && dfd >= 0) close(dfd);
    int rc = in && out ? vd_resume_copy_kept(o->done, in, out, path, err, errlen)
                       : fail(err, errlen, "%s: %s", in ? tmp : path, strerror(errno));
    if (rc == 0 && (fflush(out) != 0 || fdatasync(fd) != 0))
        rc = fail(err, errlen, "%s: %s", tmp, strerror(errno));
    if (rc == 0 && rename(tmp, path) != 0)
        rc = fail(err, errlen, "renaming %s to %s: %s", tmp, path, strerror(errno));
    if (rc == 0) (void)sync_dir(path);
    if (in) fclose(in);
    if (out) fclose(out);
    if (rc != 0) {
        unlink(tmp);
        close(fd);
        return -1;
    }
    if (lock_file(fd, path, err, errlen) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Reads FILE back and repairs it for appending. Returns the descriptor to append to (fd, or
 * the rewritten file's), or -1. */
static int resume(vd_out *o, const char *path, int fd, char *err, size_t errlen)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s%s", path, TMP_SUFFIX);
    (void)unlink(tmp); /* a rewrite a crash cut short: FILE itself is whole, and ours (locked) */
    if (read_back(o, path, err, errlen) != 0) return -1;
    if (o->found.deferred > 0) {
        int nfd = rewrite(o, path, fd, err, errlen);
        if (nfd < 0) return -1;
        close(fd); /* and its lock: the name is the new file's now */
        return nfd;
    }
    return vd_resume_cut(o->done, fd, path, err, errlen) == 0 ? fd : -1;
}

/* ---- open, write, close ---- */

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    vd_out *o = arg;
    if (!o->dirty || o->sync_errno) return;
    o->dirty = false;
    if (fdatasync(fileno(o->fp)) != 0) o->sync_errno = errno;
}

/* The descriptor of a regular FILE, created if need be, locked; -1 when FILE exists and is not a
 * regular file (*other set) or on error. */
static int open_regular(const char *path, bool *other, bool *existed, char *err, size_t errlen)
{
    struct stat sb;
    *existed = stat(path, &sb) == 0;
    if (*existed && !S_ISREG(sb.st_mode)) {
        *other = true;
        return -1;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) return fail(err, errlen, "%s: %s", path, strerror(errno));
    if (lock_file(fd, path, err, errlen) != 0) {
        close(fd);
        return -1;
    }
    if (!*existed) (void)sync_dir(path);
    return fd;
}

vd_out *vd_out_open(struct event_base *base, const vd_out_opts *opts, char *err, size_t errlen)
{
    vd_out *o = calloc(1, sizeof *o);
    if (!o) {
        fail(err, errlen, "out of memory");
        return NULL;
    }
    o->sync_s = opts->sync_s;
    o->found.cut_at = -1;
    bool other = false, existed = false;
    int fd = open_regular(opts->path, &other, &existed, err, errlen);
    o->found.existed = existed;
    if (other) {
        /* /dev/null, a FIFO, a terminal: nothing to keep, lock or sync */
        if (opts->resume)
            fail(err, errlen, "%s: --resume needs a regular file", opts->path);
        else if (!(o->fp = fopen(opts->path, "we")))
            fail(err, errlen, "%s: %s", opts->path, strerror(errno));
        if (!o->fp) goto fail;
        return o;
    }
    if (fd < 0) goto fail;
    struct stat sb;
    if (!opts->resume && fstat(fd, &sb) == 0 && sb.st_size > 0) {
        if (!opts->force) {
            fail(err, errlen,
                 "%s exists and holds %lld bytes: --resume carries on the run that wrote it, "
                 "--force overwrites it",
                 opts->path, (long long)sb.st_size);
            close(fd);
            goto fail;
        }
        if (ftruncate(fd, 0) != 0) {
            fail(err, errlen, "%s: %s", opts->path, strerror(errno));
            close(fd);
            goto fail;
        }
    }
    if (opts->resume) {
        /* FILE as a symbolic link's target: the rewrite replaces the file, not the link */
        char *real = realpath(opts->path, NULL);
        int nfd = resume(o, real ? real : opts->path, fd, err, errlen);
        free(real);
        if (nfd < 0) {
            close(fd);
            goto fail;
        }
        fd = nfd;
    }
    o->regular = true;
    if (lseek(fd, 0, SEEK_END) < 0 || !(o->fp = fdopen(fd, "ab"))) {
        fail(err, errlen, "%s: %s", opts->path, strerror(errno));
        close(fd);
        goto fail;
    }
    if (o->sync_s > 0) {
        struct timeval tv = {(time_t)o->sync_s,
                             (suseconds_t)((o->sync_s - (double)(time_t)o->sync_s) * 1e6)};
        if (!(o->tick = event_new(base, -1, EV_PERSIST, on_tick, o)) || event_add(o->tick, &tv)) {
            fail(err, errlen, "out of memory");
            goto fail;
        }
    }
    return o;
fail:
    vd_out_close(o, NULL, 0);
    return NULL;
}

FILE *vd_out_file(vd_out *o)
{
    return o->fp;
}

const vd_out_found *vd_out_found_get(const vd_out *o)
{
    return &o->found;
}

int vd_out_wrote(vd_out *o)
{
    if (!o->regular) return 0;
    if (o->sync_errno) {
        errno = o->sync_errno;
        return -1;
    }
    if (o->sync_s > 0) {
        o->dirty = true;
        return 0;
    }
    return fdatasync(fileno(o->fp));
}

int vd_out_close(vd_out *o, char *err, size_t errlen)
{
    if (!o) return 0;
    int rc = 0;
    if (o->tick) event_free(o->tick);
    if (o->fp) {
        if (fflush(o->fp) != 0 || (o->regular && fdatasync(fileno(o->fp)) != 0)) rc = -1;
        if (o->sync_errno) {
            errno = o->sync_errno;
            rc = -1;
        }
        if (fclose(o->fp) != 0) rc = -1; /* and the lock with it */
        if (rc != 0 && err) fail(err, errlen, "writing the records: %s", strerror(errno));
    }
    vd_resume_free(o->done);
    free(o);
    return rc;
}
