/* strlist.h — the value of a list option (--rules DIR, repeated): a few strings, kept in place.
 *
 * Owns: the list's shape and its bound. Does not own: parsing or checking values (options.h),
 * what any list means (the struct that holds it: vd_engine_config, a subcommand's options).
 * validora.h and options.h both see it here, so neither needs the other. */
#ifndef VALIDORA_STRLIST_H
#define VALIDORA_STRLIST_H

#ifdef __cplusplus
extern "C" {
#endif

#define VD_STRLIST_MAX 16 /* values of a list option (e.g. --rules DIR, repeated) */
typedef struct vd_strlist {
    const char *v[VD_STRLIST_MAX];
    int n;
} vd_strlist;

#ifdef __cplusplus
}
#endif
#endif
