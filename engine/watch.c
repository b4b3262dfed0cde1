/* watch.c — changes under the rules directories, with inotify (see watch.h). */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>
#include <event2/event.h>
#include "watch.h"

#define WATCH_DEPTH 4 /* directory levels below a rules directory that are watched */
#define WATCH_MASK                                                                                 \
    (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_DELETE_SELF |       \
     IN_MOVE_SELF | IN_ATTRIB)

struct vd_watch {
    int fd;
    struct event *ev, *timer;
    struct timeval delay;
    vd_watch_cb cb;
    void *arg;
    int wd[VD_WATCH_MAX];
    char *path[VD_WATCH_MAX]; /* by slot; the slot of a wd is found by search */
    int depth[VD_WATCH_MAX];
    size_t n;
    char first[PATH_MAX]; /* the first change since the callback last ran */
};

static void add_tree(vd_watch *w, const char *dir, int depth);

static void add_dir(vd_watch *w, const char *dir, int depth)
{
    if (w->n >= VD_WATCH_MAX) return;
    int wd = inotify_add_watch(w->fd, dir, WATCH_MASK | IN_ONLYDIR);
    if (wd < 0) return;
    for (size_t i = 0; i < w->n; i++)
        if (w->wd[i] == wd) return; /* already watched */
    char *copy = strdup(dir);
    if (!copy) return;
    w->wd[w->n] = wd;
    w->path[w->n] = copy;
    w->depth[w->n] = depth;
    w->n++;
    add_tree(w, dir, depth);
}

/* The directories below dir, down to WATCH_DEPTH. */
static void add_tree(vd_watch *w, const char *dir, int depth)
{
    if (depth >= WATCH_DEPTH) return;
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char sub[PATH_MAX];
        struct stat st;
        snprintf(sub, sizeof sub, "%.3800s/%.255s", dir, de->d_name);
        if (stat(sub, &st) == 0 && S_ISDIR(st.st_mode)) add_dir(w, sub, depth + 1);
    }
    closedir(d);
}

/* Whether a change to name matters: rule and list files, and directories. */
static bool counts(const char *name, bool is_dir)
{
    if (!name[0]) return true; /* the watched directory itself */
    if (name[0] == '.' || name[0] == '#') return false;
    size_t n = strlen(name);
    if (name[n - 1] == '~' || strcmp(name, "4913") == 0) return false;
    if (is_dir) return true;
    return n > 4 && (strcmp(name + n - 4, ".lua") == 0 || strcmp(name + n - 4, ".txt") == 0);
}

static void on_quiet(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    vd_watch *w = arg;
    char what_changed[PATH_MAX];
    memcpy(what_changed, w->first, sizeof what_changed);
    w->first[0] = '\0';
    w->cb(what_changed, w->arg);
}

static const char *path_of(const vd_watch *w, int wd, int *depth)
{
    for (size_t i = 0; i < w->n; i++)
        if (w->wd[i] == wd) {
            *depth = w->depth[i];
            return w->path[i];
        }
    return NULL;
}

static void on_events(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    vd_watch *w = arg;
    char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t n = read(fd, buf, sizeof buf);
    bool changed = false;
    for (ssize_t off = 0; n > 0 && off < n;) {
        const struct inotify_event *ev = (const struct inotify_event *)(buf + off);
        off += (ssize_t)(sizeof *ev + ev->len);
        const char *name = ev->len ? ev->name : "";
        bool is_dir = (ev->mask & IN_ISDIR) != 0;
        int depth = 0;
        const char *dir = path_of(w, ev->wd, &depth);
        if (!dir || !counts(name, is_dir)) continue;
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%.3800s%s%.255s", dir, name[0] ? "/" : "", name);
        if (is_dir && (ev->mask & (IN_CREATE | IN_MOVED_TO))) add_dir(w, path, depth + 1);
        if (!w->first[0]) snprintf(w->first, sizeof w->first, "%s", path);
        changed = true;
    }
    if (changed) evtimer_add(w->timer, &w->delay); /* (re)starts the quiet period */
}

vd_watch *vd_watch_new(struct event_base *base, char *const *dirs, size_t ndirs, double delay,
                       vd_watch_cb cb, void *arg, char *err, size_t errlen)
{
    vd_watch *w = calloc(1, sizeof *w);
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    w->cb = cb;
    w->arg = arg;
    w->delay.tv_sec = (time_t)delay;
    w->delay.tv_usec = (suseconds_t)((delay - (double)(time_t)delay) * 1e6);
    w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->fd < 0) {
        snprintf(err, errlen, "inotify: %s", strerror(errno));
        free(w);
        return NULL;
    }
    for (size_t i = 0; i < ndirs; i++) {
        int wd = inotify_add_watch(w->fd, dirs[i], WATCH_MASK | IN_ONLYDIR);
        if (wd < 0) {
            snprintf(err, errlen, "cannot watch %s: %s", dirs[i], strerror(errno));
            vd_watch_free(w);
            return NULL;
        }
        add_dir(w, dirs[i], 0);
    }
    w->ev = event_new(base, w->fd, EV_READ | EV_PERSIST, on_events, w);
    w->timer = evtimer_new(base, on_quiet, w);
    if (!w->ev || !w->timer || event_add(w->ev, NULL) != 0) {
        snprintf(err, errlen, "out of memory");
        vd_watch_free(w);
        return NULL;
    }
    return w;
}

void vd_watch_free(vd_watch *w)
{
    if (!w) return;
    if (w->ev) event_free(w->ev);
    if (w->timer) event_free(w->timer);
    if (w->fd >= 0) close(w->fd);
    for (size_t i = 0; i < w->n; i++)
        free(w->path[i]);
    free(w);
}
