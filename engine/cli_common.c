/* cli_common.c — what every subcommand shares (see cli.h): option parsing and --help driven
 * by the option tables (the config file first: its sections are named here), the log printer,
 * the address input reader, signals, the polite close.
 * Does not own: any one subcommand's work (cli_verify.c, cli_cat.c). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include "cli.h"
#include "csv_reader.h"
#include "validora/config.h"

/* ---- options ---- */

int vd_cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "validora %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'validora %s --help'.\n", cmd);
    return VD_EXIT_USAGE;
}

#define HELP_COL   28 /* where help text starts */
#define HELP_WIDTH 92 /* where it wraps */

/* Writes text from column col, wrapped at HELP_WIDTH, continuation lines indented to col. */
static void wrap(FILE *out, int col, const char *text)
{
    int at = col;
    const char *p = text;
    while (*p) {
        while (*p == ' ')
            p++;
        size_t w = strcspn(p, " ");
        if (!w) break;
        if (at > col && at + 1 + (int)w > HELP_WIDTH) {
            fprintf(out, "\n%*s", col, "");
            at = col;
        } else if (at > col) {
            fputc(' ', out);
            at++;
        }
        fwrite(p, 1, w, out);
        at += (int)w;
        p += w;
    }
    fputc('\n', out);
}

static void help_line(FILE *out, const vd_option *o)
{
    char left[80], def[128], text[1024];
    const char *sw = o->type == VD_OPT_FLAG ? "[no-]" : "";
    if (o->short_name)
        snprintf(left, sizeof left, "  -%c, --%s%s%s%s", o->short_name, sw, o->name,
                 o->arg ? " " : "", o->arg ? o->arg : "");
    else
        snprintf(left, sizeof left, "      --%s%s%s%s", sw, o->name, o->arg ? " " : "",
                 o->arg ? o->arg : "");
    vd_option_format_default(o, def, sizeof def);
    if (o->type == VD_OPT_FLAG) /* def_str: a default that depends (on a terminal, say) */
        snprintf(text, sizeof text, "%s (default: %s)", o->help,
                 o->def_str ? o->def_str
                 : o->def   ? "on"
                            : "off");
    else if (def[0] && o->type != VD_OPT_COUNT)
        snprintf(text, sizeof text, "%s (default %s)", o->help, def);
    else
        snprintf(text, sizeof text, "%s", o->help);
    int n = fprintf(out, "%s", left);
    if (n >= HELP_COL - 1)
        fprintf(out, "\n%*s", HELP_COL, "");
    else
        fprintf(out, "%*s", HELP_COL - n, "");
    wrap(out, HELP_COL, text);
}

void vd_cli_help(FILE *out, const vd_cli_usage *u, const vd_cli_table *tables, size_t ntables)
{
    fputs(u->head, out);
    const char *group = NULL;
    for (size_t t = 0; t < ntables; t++)
        for (const vd_option *o = tables[t].opts; o->name; o++) {
            if (o->group && (!group || strcmp(group, o->group) != 0)) {
                group = o->group;
                fprintf(out, "\n%s:\n", group);
            }
            help_line(out, o);
        }
    fputs("  -h, --help                show this help\n"
          "      --version             show the version\n",
          out);
    if (u->tail) fprintf(out, "\n%s", u->tail);
}

/* getopt_long's table, built from the option tables: val is 256 + 2 * index (+1 for the
 * --no- form of a flag); short options map to the same index. */
typedef struct parser {
    struct option *longopts;
    const vd_option **opt; /* by index */
    void **target;
    size_t n;
    char shorts[128];
    char (*no_names)[80];
} parser;

enum { VAL_HELP = 'h', VAL_VERSION = 255, VAL_BASE = 256 };

static int parser_build(parser *p, const vd_cli_table *tables, size_t ntables, bool stop_at_operand)
{
    size_t n = 0;
    for (size_t t = 0; t < ntables; t++)
        for (const vd_option *o = tables[t].opts; o->name; o++)
            n++;
    p->n = n;
    p->longopts = calloc(2 * n + 3, sizeof *p->longopts);
    p->opt = calloc(n ? n : 1, sizeof *p->opt);
    p->target = calloc(n ? n : 1, sizeof *p->target);
    p->no_names = calloc(n ? n : 1, sizeof *p->no_names);
    if (!p->longopts || !p->opt || !p->target || !p->no_names) return -1;
    size_t i = 0, l = 0, s = 0;
    if (stop_at_operand) p->shorts[s++] = '+'; /* getopt: no permuting past the first operand */
    p->shorts[s++] = 'h';
    for (size_t t = 0; t < ntables; t++)
        for (const vd_option *o = tables[t].opts; o->name; o++, i++) {
            p->opt[i] = o;
            p->target[i] = tables[t].target;
            bool takes_arg = o->type != VD_OPT_FLAG && o->type != VD_OPT_COUNT;
            int val = VAL_BASE + 2 * (int)i;
            p->longopts[l++] =
                (struct option){o->name, takes_arg ? required_argument : no_argument, NULL, val};
            if (o->type == VD_OPT_FLAG) {
                snprintf(p->no_names[i], sizeof p->no_names[i], "no-%s", o->name);
                p->longopts[l++] = (struct option){p->no_names[i], no_argument, NULL, val + 1};
            }
            if (o->short_name && s + 3 < sizeof p->shorts) {
                p->shorts[s++] = o->short_name;
                if (takes_arg) p->shorts[s++] = ':';
            }
        }
    p->longopts[l++] = (struct option){"help", no_argument, NULL, VAL_HELP};
    p->longopts[l++] = (struct option){"version", no_argument, NULL, VAL_VERSION};
    p->shorts[s] = '\0';
    return 0;
}

static void parser_free(parser *p)
{
    free(p->longopts);
    free(p->opt);
    free(p->target);
    free(p->no_names);
}

static size_t short_index(const parser *p, int c)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->opt[i]->short_name == c) return i;
    return p->n;
}

/* ---- the config file ---- */

/* The config file's sections, by vd_cli_section. */
static const char *const SECTION_NAMES[VD_NSECTIONS] = {
    [VD_SECTION_VERIFY] = "verify", [VD_SECTION_DOCTOR] = "doctor", [VD_SECTION_LEDGER] = "ledger",
    [VD_SECTION_SERVE] = "serve",   [VD_SECTION_RUN] = "run",
};

int vd_cli_section_find(const char *s)
{
    for (int i = 0; i < VD_NSECTIONS; i++)
        if (!strcmp(SECTION_NAMES[i], s)) return i;
    return -1;
}

bool vd_cli_section_known(const char *s)
{
    return vd_cli_section_find(s) >= 0;
}

const char *vd_cli_section_names(void)
{
    static char names[256];
    if (!names[0])
        for (size_t i = 0, at = 0; i < VD_NSECTIONS && at < sizeof names; i++)
            at += (size_t)snprintf(names + at, sizeof names - at, "%s%s", i ? ", " : "",
                                   SECTION_NAMES[i]);
    return names;
}

typedef struct config_opts {
    const char *config;
} config_opts;

static const vd_option CONFIG_OPTIONS[] = {
    {"config", 'c', VD_OPT_STRING, offsetof(config_opts, config), 0, VD_CLI_CONFIG_PATH, 0, 0,
     "FILE", "Config file",
     "read settings from FILE (docs/config.md; '' = none; without -c: $VALIDORA_CONFIG if "
     "set); the default file may be missing; the command line wins over it",
     false},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL, NULL, NULL, false},
};

/* Values the file gave live as long as the process: option strings are not copied. */
typedef struct kept {
    struct kept *next;
    char text[];
} kept;
static kept *kept_values;

static const char *keep(const char *text)
{
    size_t n = strlen(text) + 1;
    kept *k = malloc(sizeof *k + n);
    if (!k) return NULL;
    memcpy(k->text, text, n);
    k->next = kept_values;
    kept_values = k;
    return k->text;
}

typedef struct applier {
    const vd_cli_usage *u;
    parser *p;
    const char *path;
    const char **src;
} applier;

/* The parser index of option name, or p->n. */
static size_t find_index(const parser *p, const char *name)
{
    for (size_t i = 0; i < p->n; i++)
        if (!strcmp(p->opt[i]->name, name)) return i;
    return p->n;
}

int vd_cli_config_clear(const vd_option *o, void *target, char *err, size_t errlen)
{
    if (o->type != VD_OPT_LIST) {
        snprintf(err, errlen, "{} is an empty list, and --%s takes no list", o->name);
        return -1;
    }
    ((vd_strlist *)vd_option_value(o, target))->n = 0;
    return 0;
}

static int apply_item(void *arg, const char *section, const char *name, const char *text, char *err,
                      size_t errlen)
{
    applier *a = arg;
    if (!strcmp(name, "config")) {
        snprintf(err, errlen, "a config file cannot name another (use -c FILE)");
        return -1;
    }
    if (!text && !section && vd_cli_section_known(name)) return 0; /* an empty section */
    if (section && !vd_cli_section_known(section)) {
        snprintf(err, errlen, "no command has a section '%s' (sections: %s)", section,
                 vd_cli_section_names());
        return -1;
    }
    if (!section && !vd_option_find(vd_engine_options, name)) {
        snprintf(err, errlen,
                 "no engine option '%s' (a command's own option goes in its "
                 "section, e.g. verify = { %s = ... })",
                 name, name);
        return -1;
    }
    size_t i = find_index(a->p, name);
    if (section && strcmp(section, a->u->section) != 0) return 0; /* another command's */
    if (i == a->p->n) {
        if (!section) return 0; /* an engine option this command does not use */
        snprintf(err, errlen, "'validora %s' has no option '%s'", a->u->cmd, name);
        return -1;
    }
    if (!text) {
        if (vd_cli_config_clear(a->p->opt[i], a->p->target[i], err, errlen) != 0) return -1;
        if (a->src) a->src[i] = a->path;
        return 0;
    }
    const char *copy = keep(text);
    if (!copy || vd_option_parse(a->p->opt[i], a->p->target[i], copy, err, errlen) != 0) {
        if (!copy) snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (a->src) a->src[i] = a->path;
    return 0;
}

/* The config file argv names (-c FILE, -cFILE, --config FILE, --config=FILE), or NULL. Only a
 * look ahead of getopt: options after "--" are operands. */
static const char *config_arg(int argc, char **argv)
{
    const char *path = NULL;
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
        const char *s = argv[i];
        if ((!strcmp(s, "-c") || !strcmp(s, "--config")) && i + 1 < argc)
            path = argv[++i];
        else if (!strncmp(s, "--config=", 9))
            path = s + 9;
        else if (!strncmp(s, "-c", 2) && s[2])
            path = s + 2;
    }
    return path;
}

static int read_config(const vd_cli_usage *u, parser *p, int argc, char **argv, const char **src)
{
    const char *given = config_arg(argc, argv);
    if (!given) given = getenv("VALIDORA_CONFIG"); /* as -c; the test suite sets it to "" */
    const char *path = given ? given : VD_CLI_CONFIG_PATH;
    if (!*path) return 0;
    applier a = {.u = u, .p = p, .path = path, .src = src};
    char err[1024];
    if (vd_config_read(path, apply_item, &a, err, sizeof err) == 0) return 0;
    if (!given && errno == ENOENT) return 0; /* no default file: the defaults stand */
    fprintf(stderr, "validora %s: %s\n", u->cmd, err);
    return -1;
}

int vd_cli_parse_exit(int first)
{
    return first == -2 ? VD_EXIT_OK : VD_EXIT_USAGE;
}

int vd_cli_parse(const vd_cli_usage *u, int argc, char **argv, const vd_cli_table *tables,
                 size_t ntables)
{
    return vd_cli_parse_sourced(u, argc, argv, tables, ntables, NULL);
}

/* Reports a getopt failure for the argument just read. */
static void bad_option(const vd_cli_usage *u, char **argv, int c)
{
    const char *bad = argv[optind - 1];
    if (c == ':')
        vd_cli_usage_error(u->cmd, "%s: needs an argument", bad);
    else if (optopt && strncmp(bad, "--", 2) != 0)
        vd_cli_usage_error(u->cmd, "invalid option -%c", optopt);
    else
        vd_cli_usage_error(u->cmd, "invalid option %s", bad);
}

/* The tables with the config option added when the command reads a config file. */
static vd_cli_table *with_config(const vd_cli_usage *u, const vd_cli_table *tables, size_t *ntables,
                                 config_opts *co)
{
    vd_cli_table *all = calloc(*ntables + 1, sizeof *all);
    if (!all) return NULL;
    memcpy(all, tables, *ntables * sizeof *all);
    if (u->section) {
        vd_options_defaults(CONFIG_OPTIONS, co);
        all[(*ntables)++] = (vd_cli_table){CONFIG_OPTIONS, co};
    }
    return all;
}

int vd_cli_parse_given(const vd_cli_usage *u, int argc, char **argv, const vd_cli_table *tables,
                       size_t ntables, bool *given)
{
    size_t n = 0;
    for (size_t t = 0; t < ntables; t++)
        for (const vd_option *o = tables[t].opts; o->name; o++)
            n++;
    const char **src = calloc(n + 2, sizeof *src);
    if (!src) {
        fprintf(stderr, "validora %s: out of memory\n", u->cmd);
        return -1;
    }
    int rc = vd_cli_parse_sourced(u, argc, argv, tables, ntables, src);
    for (size_t i = 0; i < n; i++)
        given[i] = src[i] != NULL; /* the command line or the config file set it */
    free(src);
    return rc;
}

int vd_cli_parse_sourced(const vd_cli_usage *u, int argc, char **argv, const vd_cli_table *tables,
                         size_t ntables, const char **src)
{
    parser p = {0};
    int rc = -1;
    config_opts co;
    size_t n = ntables;
    vd_cli_table *all = with_config(u, tables, &n, &co);
    if (!all || parser_build(&p, all, n, u->stop_at_operand) != 0) {
        fprintf(stderr, "validora %s: out of memory\n", u->cmd);
        goto out;
    }
    const char **where = src ? src : calloc(p.n + 1, sizeof *where);
    if (!where) goto out;
    if (u->section && read_config(u, &p, argc, argv, where) != 0) goto out_where;
    opterr = 0; /* our own messages, named after the subcommand */
    optind = 0; /* full re-initialisation in glibc */
    int c;
    while ((c = getopt_long(argc, argv, p.shorts, p.longopts, NULL)) != -1) {
        if (c == VAL_HELP || c == VAL_VERSION) {
            if (c == VAL_HELP)
                vd_cli_help(stdout, u, all, n);
            else
                printf("validora %s\n", vd_version());
            rc = -2;
            goto out_where;
        }
        size_t i = c >= VAL_BASE ? (size_t)(c - VAL_BASE) / 2 : short_index(&p, c);
        if (c == '?' || c == ':' || i >= p.n) {
            bad_option(u, argv, c);
            goto out_where;
        }
        char err[256];
        const char *text = optarg;
        if (p.opt[i]->type == VD_OPT_FLAG) text = c >= VAL_BASE && (c - VAL_BASE) % 2 ? "0" : "1";
        /* a list on the command line replaces the file's, not adds to it */
        if (p.opt[i]->type == VD_OPT_LIST && where[i] && strcmp(where[i], "command line") != 0)
            ((vd_strlist *)vd_option_value(p.opt[i], p.target[i]))->n = 0;
        if (vd_option_parse(p.opt[i], p.target[i], text, err, sizeof err) != 0) {
            vd_cli_usage_error(u->cmd, "%s", err);
            goto out_where;
        }
        where[i] = "command line";
    }
    rc = optind;
out_where:
    if (where != src) free((void *)where);
out:
    free(all);
    parser_free(&p);
    return rc;
}

/* ---- messages ---- */

void vd_cli_log_cb(vd_log_level level, const char *msg, void *arg)
{
    const vd_cli_log *l = arg;
    if ((int)level > VD_LOG_WARNING + l->verbose) return;
    static const char *const tag[] = {"error: ", "warning: ", "", ""};
    fprintf(stderr, "validora %s: %s%s\n", l->cmd, tag[level], msg);
}

/* ---- unknown commands ---- */

/* Optimal string alignment distance (a swap of two neighbours is one edit), capped at 9. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 31 || lb > 31) return 9;
    size_t d[32][32];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1, v = d[i - 1][j - 1] + cost;
            if (d[i - 1][j] + 1 < v) v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v) v = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    return d[la][lb];
}

int vd_cli_unknown_command(const char *cmd, const char *word, const char *const *names)
{
    const char *best = NULL;
    size_t best_d = 9, prefixed = 0;
    const char *prefix_of = NULL;
    for (size_t i = 0; names[i]; i++) {
        size_t dist = edit_distance(word, names[i]);
        if (dist < best_d) best_d = dist, best = names[i];
        if (*word && !strncmp(names[i], word, strlen(word))) prefixed++, prefix_of = names[i];
    }
    /* close enough: at most 2 edits, and fewer than half the word's letters */
    if (!(best && best_d <= 2 && best_d * 2 < strlen(word)))
        best = prefixed == 1 ? prefix_of : NULL;
    fprintf(stderr, "%s: unknown command '%s'", cmd, word);
    if (best) fprintf(stderr, "; did you mean '%s'?", best);
    fprintf(stderr, "\nTry '%s --help'.\n", cmd);
    return VD_EXIT_USAGE;
}

/* ---- input ---- */

struct vd_cli_input {
    struct event_base *base;
    const char *cmd;
    char **args;
    int nargs, next_arg;
    const char *path;
    FILE *in;
    bool opened, done, failed;
    /* A pipe, terminal or socket is read without blocking the loop: jobs in flight go on
     * while the producer is slow. Regular files are read with getline. */
    bool stream;
    int fd;
    int fd_flags; /* restored at the end: a shared terminal or pipe must not stay non-blocking */
    struct evbuffer *buf;
    struct event *ev;
    bool skip_to_eol;
    void (*readable)(void *);
    void *arg;
    char *line;
    size_t linecap;
    bool past_first;    /* the first line (which may start with a byte-order mark) was read */
    const char *column; /* CSV input (vd_cli_input_csv): the address column, a name or N */
    vd_csv *csv;
    long col;    /* its index from 0, once known; -1 before the first row */
    long header; /* the header row was skipped: 1, else 0 */
};

size_t vd_cli_bom_len(const char *s, size_t n)
{
    return vd_bom_len(s, n);
}

void vd_cli_skip_bom(FILE *f)
{
    vd_bom_skip(f);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    vd_cli_input *in = arg;
    in->readable(in->arg);
}

vd_cli_input *vd_cli_input_new(struct event_base *base, const char *cmd, char **args, int nargs,
                               const char *path, void (*readable)(void *), void *arg)
{
    vd_cli_input *in = calloc(1, sizeof *in);
    if (!in) return NULL;
    *in = (vd_cli_input){.base = base,
                         .cmd = cmd,
                         .args = args,
                         .nargs = nargs,
                         .path = path,
                         .readable = readable,
                         .arg = arg,
                         .fd = -1,
                         .fd_flags = -1};
    return in;
}

static void input_fail(vd_cli_input *in, const char *what)
{
    fprintf(stderr, "validora %s: %s%s%s\n", in->cmd, in->path, what ? ": " : "", what ? what : "");
    in->failed = in->done = true;
}

static bool input_open(vd_cli_input *in)
{
    in->opened = true;
    in->in = strcmp(in->path, "-") == 0 ? stdin : fopen(in->path, "r");
    if (!in->in) {
        input_fail(in, strerror(errno));
        return false;
    }
    struct stat st;
    in->fd = fileno(in->in);
    if (fstat(in->fd, &st) != 0 || S_ISREG(st.st_mode)) return true;
    in->stream = true;
    in->fd_flags = fcntl(in->fd, F_GETFL);
    in->buf = evbuffer_new();
    in->ev = event_new(in->base, in->fd, EV_READ, on_readable, in);
    if (!in->buf || !in->ev || evutil_make_socket_nonblocking(in->fd) != 0) {
        input_fail(in, "cannot watch it");
        return false;
    }
    return true;
}

/* Takes len bytes off the buffer as in->line. */
static ssize_t take_line(vd_cli_input *in, size_t len)
{
    char *ln = malloc(len + 1);
    if (!ln) {
        input_fail(in, "out of memory");
        return -1;
    }
    evbuffer_remove(in->buf, ln, len);
    ln[len] = '\0';
    free(in->line);
    in->line = ln;
    return (ssize_t)len;
}

/* The next raw line of a stream into in->line; its length, or -1 when none is ready now
 * (or the stream has ended: in->done). */
static ssize_t stream_line(vd_cli_input *in)
{
    for (;;) {
        if (in->skip_to_eol) { /* the rest of an over-long line */
            struct evbuffer_ptr eol = evbuffer_search(in->buf, "\n", 1, NULL);
            size_t drop = eol.pos >= 0 ? (size_t)eol.pos + 1 : evbuffer_get_length(in->buf);
            evbuffer_drain(in->buf, drop);
            in->skip_to_eol = eol.pos < 0;
        }
        size_t len = 0;
        char *ln = in->skip_to_eol ? NULL : evbuffer_readln(in->buf, &len, EVBUFFER_EOL_LF);
        if (ln) {
            free(in->line);
            in->line = ln;
            return (ssize_t)len;
        }
        if (evbuffer_get_length(in->buf) > VD_CLI_MAX_LINE) {
            /* keep the start (it gets its invalid_syntax record) and drop the rest of the
             * line, so memory stays bounded */
            in->skip_to_eol = true;
            return take_line(in, VD_CLI_MAX_LINE);
        }
        int got = evbuffer_read(in->buf, in->fd, 65536);
        if (got > 0) continue;
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            event_add(in->ev, NULL); /* readable() again when more arrives */
            return -1;
        }
        if (got < 0) input_fail(in, strerror(errno));
        len = evbuffer_get_length(in->buf); /* a last line without a newline still counts */
        if (!len) {
            in->done = true;
            return -1;
        }
        return take_line(in, len);
    }
}

static ssize_t file_line(vd_cli_input *in)
{
    ssize_t n = getline(&in->line, &in->linecap, in->in);
    if (n < 0) {
        if (ferror(in->in)) input_fail(in, strerror(errno));
        in->done = true;
    }
    return n;
}

void vd_cli_input_csv(vd_cli_input *in, const char *column)
{
    in->column = column;
    in->col = -1;
}

bool vd_cli_input_header_skipped(const vd_cli_input *in)
{
    return in->header > 0;
}

/* The column a header row names (case and surrounding blanks ignored), or -1. */
static long header_column(const char *const *fields, size_t n, const char *name)
{
    size_t nlen = strlen(name);
    for (size_t i = 0; i < n; i++) {
        const char *f = fields[i];
        size_t len = strlen(f);
        while (len && (f[len - 1] == ' ' || f[len - 1] == '\t'))
            len--;
        while (len && (*f == ' ' || *f == '\t'))
            f++, len--;
        if (len == nlen && !strncasecmp(f, name, len)) return (long)i;
    }
    return -1;
}

/* CSV input: the next non-empty cell of the address column. The first row is a header when
 * the column is given by name, and when it is given by number and that cell holds no '@' (no
 * address does without one: "email", "E-Mail address" are taken as the header, not as
 * addresses to verify). */
static ssize_t csv_next(vd_cli_input *in, const char **addr)
{
    if (!in->opened) {
        in->opened = true;
        FILE *f = strcmp(in->path, "-") == 0 ? stdin : fopen(in->path, "r");
        if (!f) {
            input_fail(in, strerror(errno));
            return -1;
        }
        if (!(in->csv = vd_csv_new(f, in->path, f != stdin))) {
            if (f != stdin) fclose(f);
            input_fail(in, "out of memory");
            return -1;
        }
    }
    for (;;) {
        const char *const *fields;
        size_t n;
        int rc = vd_csv_next(in->csv, &fields, &n);
        if (rc < 0) {
            fprintf(stderr, "validora %s: %s\n", in->cmd, vd_csv_error(in->csv));
            in->failed = in->done = true;
            return -1;
        }
        if (rc == 0) {
            in->done = true;
            return -1;
        }
        if (in->col < 0) { /* the first row */
            char *end;
            long num = strtol(in->column, &end, 10);
            if (*end == '\0' && end != in->column) {
                in->col = num - 1;
                if ((size_t)in->col < n && !strchr(fields[in->col], '@')) {
                    in->header = 1;
                    continue;
                }
            } else {
                in->header = 1;
                in->col = header_column(fields, n, in->column);
                if (in->col < 0) {
                    fprintf(stderr, "validora %s: %s: no column '%s' in the header row (", in->cmd,
                            in->path, in->column);
                    for (size_t i = 0; i < n && i < 20; i++)
                        fprintf(stderr, "%s'%s'", i ? ", " : "its columns: ", fields[i]);
                    fprintf(stderr, "); give --column NAME or N (from 1)\n");
                    in->failed = in->done = true;
                    return -1;
                }
                continue;
            }
        }
        if ((size_t)in->col >= n) continue;
        const char *s = fields[in->col];
        size_t len = strlen(s);
        while (len && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r'))
            len--;
        while (len && (*s == ' ' || *s == '\t'))
            s++, len--;
        if (!len) continue;
        if (len > VD_CLI_MAX_LINE) len = VD_CLI_MAX_LINE;
        *addr = s;
        return (ssize_t)len;
    }
}

bool vd_cli_input_looks_csv(const char *path, char *first, size_t firstlen)
{
    if (firstlen) first[0] = '\0';
    if (!path || !strcmp(path, "-")) return false;
    size_t plen = strlen(path);
    bool named =
        plen > 4 && (!strcasecmp(path + plen - 4, ".csv") || !strcasecmp(path + plen - 4, ".tsv"));
    /* only a regular file can be read twice: a first line read from a FIFO or a device would be
     * lost to the run itself (reload_load.sh lost 263 addresses from its named pipe) */
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return named;
    FILE *f = fopen(path, "r");
    if (!f) return named;
    vd_cli_skip_bom(f);
    char line[512];
    bool sep = false;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        const char *p = line + strspn(line, " \t");
        if (!*p || *p == '#') continue;
        snprintf(first, firstlen, "%.80s", p);
        /* a separator outside quotes: no address has a comma, semicolon or TAB there */
        bool quoted = false;
        for (; *p && !sep; p++) {
            if (*p == '"')
                quoted = !quoted;
            else if (!quoted && (*p == ',' || *p == ';' || *p == '\t'))
                sep = true;
        }
        break;
    }
    fclose(f);
    return named || sep;
}

ssize_t vd_cli_input_next(vd_cli_input *in, const char **addr)
{
    if (in->next_arg < in->nargs) {
        *addr = in->args[in->next_arg++];
        return (ssize_t)strlen(*addr);
    }
    if (!in->path || in->done) {
        in->done = true;
        return -1;
    }
    if (in->column) return csv_next(in, addr);
    if (!in->opened && !input_open(in)) return -1;
    for (;;) {
        ssize_t n = in->stream ? stream_line(in) : file_line(in);
        if (n < 0) return -1;
        if (n > VD_CLI_MAX_LINE) n = VD_CLI_MAX_LINE;
        char *s = in->line;
        if (!in->past_first) {
            in->past_first = true;
            size_t bom = vd_cli_bom_len(s, (size_t)n);
            s += bom, n -= (ssize_t)bom;
        }
        while (n > 0 &&
               (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
            n--;
        while (n > 0 && (*s == ' ' || *s == '\t'))
            s++, n--;
        if (n == 0 || *s == '#') continue;
        *addr = s;
        return n;
    }
}

bool vd_cli_input_done(const vd_cli_input *in)
{
    return in->done && in->next_arg >= in->nargs;
}

bool vd_cli_input_failed(const vd_cli_input *in)
{
    return in->failed;
}

void vd_cli_input_free(vd_cli_input *in)
{
    if (!in) return;
    if (in->ev) event_free(in->ev);
    if (in->stream && in->fd_flags >= 0) fcntl(in->fd, F_SETFL, in->fd_flags);
    if (in->buf) evbuffer_free(in->buf);
    if (in->in && in->in != stdin) fclose(in->in);
    vd_csv_free(in->csv);
    free(in->line);
    free(in);
}

/* ---- signals ---- */

struct vd_cli_signals {
    struct event *sigint, *sigterm, *sighup;
    void (*stop)(void *, bool);
    void (*reload)(void *);
    void *arg;
    bool stopping;
};

static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    vd_cli_signals *s = arg;
    bool now = s->stopping;
    s->stopping = true;
    s->stop(s->arg, now);
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    vd_cli_signals *s = arg;
    s->reload(s->arg);
}

vd_cli_signals *vd_cli_signals_new(struct event_base *base, void (*stop)(void *, bool now),
                                   void (*reload)(void *), void *arg)
{
    vd_cli_signals *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->stop = stop;
    s->reload = reload;
    s->arg = arg;
    signal(SIGPIPE, SIG_IGN);
    s->sigint = evsignal_new(base, SIGINT, on_stop_signal, s);
    s->sigterm = evsignal_new(base, SIGTERM, on_stop_signal, s);
    s->sighup = evsignal_new(base, SIGHUP, on_hup, s);
    if (!s->sigint || !s->sigterm || !s->sighup || evsignal_add(s->sigint, NULL) != 0 ||
        evsignal_add(s->sigterm, NULL) != 0 || evsignal_add(s->sighup, NULL) != 0) {
        vd_cli_signals_free(s);
        return NULL;
    }
    return s;
}

void vd_cli_signals_free(vd_cli_signals *s)
{
    if (!s) return;
    if (s->sigint) event_free(s->sigint);
    if (s->sigterm) event_free(s->sigterm);
    if (s->sighup) event_free(s->sighup);
    free(s);
}

void vd_cli_reload(const char *cmd, vd_engine *e)
{
    char err[1024];
    /* a failure is logged by the engine itself (an error, with every problem) */
    if (vd_engine_reload(e, err, sizeof err) == 0)
        fprintf(stderr, "validora %s: rules reloaded\n", cmd);
}

void vd_cli_close_engine(struct event_base *base, vd_engine *e)
{
    vd_engine_free(e);
    time_t deadline = time(NULL) + 3;
    while (event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED) > 0 && time(NULL) < deadline)
        event_base_loop(base, EVLOOP_ONCE);
}
