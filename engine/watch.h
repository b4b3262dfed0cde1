/* watch.h — changes under a set of directories, seen with inotify on the event loop.
 *
 * Owns: the inotify descriptor and its watches (each directory and the directories below it,
 * new ones added as they appear, at most VD_WATCH_MAX), debouncing (the callback runs once the
 * directories have been quiet for the delay, so an editor's write-rename-chmod is one change),
 * and which names count (NAME.lua and NAME.txt; editors' dot-files, backups~ and vim's 4913
 * probe do not).
 * Does not own: what a change means (the callback: the engine reloads). */
#ifndef VALIDORA_WATCH_H
#define VALIDORA_WATCH_H
#include <stddef.h>

struct event_base;
typedef struct vd_watch vd_watch;

#define VD_WATCH_MAX 256 /* directories watched: a rules tree is small; inotify's are finite */

/* what: the path of the first change since the last call. */
typedef void (*vd_watch_cb)(const char *what, void *arg);

/* Watches the directories. NULL with a message in err when inotify is not available or a
 * directory cannot be watched. */
vd_watch *vd_watch_new(struct event_base *base, char *const *dirs, size_t ndirs, double delay,
                       vd_watch_cb cb, void *arg, char *err, size_t errlen);
void vd_watch_free(vd_watch *w);

#endif
