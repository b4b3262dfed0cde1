/* cli_config.c — `validora config check` (is the config file right?) and `validora config
 * show` (the settings a command would run with, and where each comes from).
 * Owns: each config-file section's own option table, the two commands' command lines and
 * output.
 * Does not own: reading the file (conffile.c), applying it and which sections there are
 * (cli_common.c, the parser), option tables. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli.h"
#include "validora/config.h"
#include "validora/ledger.h"

/* Each section's own options (besides the engine's, which a section may set too); NULL for a
 * section whose command has none of its own yet. The sections are the parser's (cli.h). */
/* clang-format off */
static const vd_option *const OWN_OPTIONS[VD_NSECTIONS] = {
    [VD_SECTION_VERIFY] = vd_cli_verify_options,
    [VD_SECTION_DOCTOR] = vd_cli_doctor_options,
    [VD_SECTION_LEDGER] = vd_cli_ledger_options,
    [VD_SECTION_SERVE] = vd_cli_serve_options,
    [VD_SECTION_RUN] = vd_cli_run_options,
};
/* clang-format on */

static const vd_option NO_OPTIONS[] = {{NULL, 0, 0, 0, 0, NULL, 0, 0, NULL, NULL, NULL, false}};

/* A zeroed block big enough for every value of table (its target struct is private). */
static void *scratch_for(const vd_option *t)
{
    size_t n = sizeof(vd_strlist);
    for (; t && t->name; t++)
        if (t->offset + sizeof(vd_strlist) > n) n = t->offset + sizeof(vd_strlist);
    return calloc(1, n);
}

/* ---- config check ---- */

typedef struct checker {
    vd_engine_config cfg;
    void *own[VD_NSECTIONS];
    size_t items;
} checker;

static int check_item(void *arg, const char *section, const char *name, const char *text, char *err,
                      size_t errlen)
{
    checker *c = arg;
    const vd_option *o = NULL;
    void *target = &c->cfg;
    if (!text && !section && vd_cli_section_known(name)) return 0; /* an empty section */
    if (section) {
        int s = vd_cli_section_find(section);
        if (s < 0) {
            snprintf(err, errlen, "no command has a section '%s' (sections: %s)", section,
                     vd_cli_section_names());
            return -1;
        }
        if (OWN_OPTIONS[s] && (o = vd_option_find(OWN_OPTIONS[s], name))) target = c->own[s];
    }
    if (!o) o = vd_option_find(vd_engine_options, name);
    if (!o) {
        snprintf(err, errlen, "no %s option '%s'", section ? section : "engine", name);
        return -1;
    }
    c->items++;
    if (!text) return vd_cli_config_clear(o, target, err, errlen);
    /* the text lives in the reader's Lua state only while we look at it: parse a copy */
    char *copy = strdup(text);
    int rc = copy ? vd_option_parse(o, target, copy, err, errlen) : -1;
    if (!copy) snprintf(err, errlen, "out of memory");
    if (o->type != VD_OPT_LIST || rc != 0) free(copy); /* a list keeps it: free_lists */
    return rc;
}

/* The copies check_item left in list options. */
static void free_lists(const vd_option *t, void *target)
{
    for (; t && t->name; t++)
        if (t->type == VD_OPT_LIST) {
            vd_strlist *l = vd_option_value(t, target);
            for (int i = 0; i < l->n; i++)
                free((void *)l->v[i]);
            l->n = 0;
        }
}

static const char *config_path(const char *given)
{
    if (given) return given;
    const char *env = getenv("VALIDORA_CONFIG");
    return env ? env : VD_CLI_CONFIG_PATH;
}

typedef struct check_opts {
    const char *config;
} check_opts;

static const vd_option CHECK_OPTIONS[] = {
    {"config", 'c', VD_OPT_STRING, offsetof(check_opts, config), 0, NULL, 0, 0, "FILE", "Options",
     "the file to check (default: $VALIDORA_CONFIG, else " VD_CLI_CONFIG_PATH ")", false},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL, NULL, NULL, false},
};

static const vd_cli_usage CHECK_USAGE = {
    .cmd = "config check",
    .head = "Usage: validora config check [-c FILE]\n"
            "Checks the config file: every key an option of the engine or of its section's "
            "command,\nevery value within its bounds. Nothing else is started.\n",
    .tail = "Exit status: 0 when the file is right (or the default file does not exist), 1 "
            "when it is not,\n2 on a usage error.\n",
};

static int config_check(int argc, char **argv)
{
    check_opts o;
    vd_options_defaults(CHECK_OPTIONS, &o);
    vd_cli_table tables[] = {{CHECK_OPTIONS, &o}};
    int first = vd_cli_parse(&CHECK_USAGE, argc, argv, tables, 1);
    if (first < 0) return vd_cli_parse_exit(first);
    if (first < argc) return vd_cli_usage_error("config check", "no operands expected");
    const char *path = config_path(o.config);
    if (!*path) {
        printf("no config file (-c '' or VALIDORA_CONFIG=''): the defaults apply\n");
        return VD_EXIT_OK;
    }
    checker c = {.items = 0};
    vd_engine_config_init(&c.cfg);
    int rc = VD_EXIT_FATAL;
    for (size_t s = 0; s < VD_NSECTIONS; s++)
        if (!(c.own[s] = scratch_for(OWN_OPTIONS[s]))) goto out;
    char err[1024];
    if (vd_config_read(path, check_item, &c, err, sizeof err) != 0) {
        if (errno == ENOENT && !o.config && !getenv("VALIDORA_CONFIG")) {
            printf("%s: no such file: the defaults apply\n", path);
            rc = VD_EXIT_OK;
        } else {
            fprintf(stderr, "validora config check: %s\n", err);
        }
        goto out;
    }
    if (vd_options_check(vd_engine_options, &c.cfg, err, sizeof err) != 0) {
        fprintf(stderr, "validora config check: %s: %s\n", path, err);
        goto out;
    }
    printf("%s: ok (%zu setting%s)\n", path, c.items, c.items == 1 ? "" : "s");
    rc = VD_EXIT_OK;
out:
    free_lists(vd_engine_options, &c.cfg);
    for (size_t s = 0; s < VD_NSECTIONS; s++) {
        if (c.own[s]) free_lists(OWN_OPTIONS[s], c.own[s]);
        free(c.own[s]);
    }
    return rc;
}

/* ---- config show ---- */

/* s as a Lua string literal. */
static void lua_quote(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(out, "\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f)
            fprintf(out, "\\%03u", ch);
        else
            fputc(ch, out);
    }
    fputc('"', out);
}

static void show_value(FILE *out, const vd_option *o, const void *target)
{
    const void *v = vd_option_value(o, (void *)target);
    if (o->type == VD_OPT_STRING) {
        const char *s = *(const char *const *)v;
        if (s)
            lua_quote(out, s);
        else
            fputs("nil", out);
    } else if (o->type == VD_OPT_LIST) {
        const vd_strlist *l = v;
        fputs("{", out);
        for (int i = 0; i < l->n; i++) {
            fputs(i ? ", " : " ", out);
            lua_quote(out, l->v[i]);
        }
        fputs(l->n ? " }" : "}", out);
    } else {
        char buf[64];
        vd_option_format(o, target, buf, sizeof buf);
        fputs(buf, out);
    }
}

/* The nameservers of /etc/resolv.conf, comma-separated, into buf ("" when none). */
static void resolv_servers(char *buf, size_t len)
{
    buf[0] = '\0';
    FILE *f = fopen("/etc/resolv.conf", "re");
    char line[512], addr[256];
    while (f && fgets(line, sizeof line, f)) {
        size_t at = strlen(buf);
        if (sscanf(line, " nameserver %255s", addr) == 1 && at + strlen(addr) + 2 < len)
            snprintf(buf + at, len - at, "%s%s", at ? "," : "", addr);
    }
    if (f) fclose(f);
}

/* What the engine computes for an option left unset, and where from, into buf; NULL when the
 * option has no computed value (issue 17: `config show` printed `helo = nil` where the engine
 * would say vm.localdomain). cfg holds the settings as parsed (mail_from follows helo). */
static const char *computed(const vd_option *o, const void *target, char *buf, size_t len)
{
    const vd_engine_config *cfg = target;
    char v[1024];
    if (!strcmp(o->name, "helo") || !strcmp(o->name, "mail-from")) {
        char helo[256];
        vd_default_helo(helo, sizeof helo);
        FILE *f = fopen("/etc/mailname", "re");
        char first[256] = "";
        if (f && !fgets(first, sizeof first, f)) first[0] = '\0';
        if (f) fclose(f);
        const char *from = first[0] && first[0] != '\n' ? "/etc/mailname" : "the host name";
        if (!strcmp(o->name, "helo")) {
            snprintf(buf, len, "computed: \"%s\" (%s)", helo, from);
        } else if (cfg->helo) {
            snprintf(buf, len, "computed: \"verify@%s\" (verify@ the helo name)", cfg->helo);
        } else {
            snprintf(buf, len, "computed: \"verify@%s\" (verify@ the helo name, from %s)", helo,
                     from);
        }
        return buf;
    }
    if (!strcmp(o->name, "dns")) {
        resolv_servers(v, sizeof v);
        if (v[0])
            snprintf(buf, len, "computed: \"%s\" (the nameservers of /etc/resolv.conf)", v);
        else
            snprintf(buf, len, "unset, and /etc/resolv.conf names no nameserver: give dns");
        return buf;
    }
    if (!strcmp(o->name, "rules")) {
        const char *env = getenv("VALIDORA_RULES");
        snprintf(buf, len, "computed: { \"%s\" } (%s)", vd_rules_default_dir(),
                 env && *env ? "$VALIDORA_RULES" : "the installed rules, else the build's");
        return buf;
    }
    if (!strcmp(o->name, "state-dir")) {
        char err[256];
        char *dir = vd_state_dir_path(NULL, err, sizeof err);
        snprintf(buf, len, "computed: \"%s\" (%s)", dir ? dir : "?",
                 geteuid() == 0 ? "root's" : "$XDG_STATE_HOME, else ~/.local/state");
        free(dir);
        return buf;
    }
    if (!strcmp(o->name, "source-ip"))
        return "unset: the kernel picks the outgoing address; the ledger counts it as 'any'";
    if (!strcmp(o->name, "tls-ca")) return "unset: the system's CA store";
    if (!strcmp(o->name, "transcript")) return "unset: no transcripts";
    return NULL;
}

/* One line per option of table: `name = value, -- source`. */
static void show_table(FILE *out, const char *indent, const vd_option *t, const void *target,
                       const char *const *src)
{
    for (size_t i = 0; t[i].name; i++) {
        if (!strcmp(t[i].name, "config")) continue;
        fprintf(out, "%s", indent);
        for (const char *c = t[i].name; *c; c++)
            fputc(*c == '-' ? '_' : *c, out);
        fputs(" = ", out);
        show_value(out, &t[i], target);
        const char *why = src[i] ? src[i] : "default";
        char note[1400];
        const char *c =
            t == vd_engine_options && !src[i] ? computed(&t[i], target, note, sizeof note) : NULL;
        if (c)
            why = c;
        else if (!src[i] && t[i].type == VD_OPT_STRING && !t[i].def_str)
            why = "default: unset, or computed as --help says";
        fprintf(out, ", -- %s\n", why);
    }
}

static const vd_cli_usage SHOW_USAGE_HEAD = {
    .cmd = "config show",
    .head = "Usage: validora config show [SECTION] [-c FILE] [OPTION]...\n"
            "Prints the settings 'validora SECTION' (default verify) would run with, as a "
            "config file,\neach with where it comes from: default, the config file, or the "
            "command line given here.\n",
    .tail = "Sections: verify, doctor, ledger, serve, run.\n"
            "'rules check' and 'rules which' read the top level only.\n",
};

static int config_show(int argc, char **argv)
{
    const char *section = "verify";
    if (argc > 1 && argv[1][0] != '-') {
        section = argv[1];
        argv[1] = argv[0];
        argv++;
        argc--;
    }
    int s = vd_cli_section_find(section);
    if (s < 0)
        return vd_cli_usage_error("config show", "no section '%s' (sections: %s)", section,
                                  vd_cli_section_names());
    const vd_option *own = OWN_OPTIONS[s];
    if (!own) own = NO_OPTIONS;
    vd_cli_usage u = SHOW_USAGE_HEAD;
    u.section = section;
    vd_engine_config cfg;
    vd_engine_config_init(&cfg);
    void *mine = scratch_for(own);
    size_t nown = 0, neng = 0;
    while (own[nown].name)
        nown++;
    while (vd_engine_options[neng].name)
        neng++;
    const char **src = calloc(nown + neng + 2, sizeof *src);
    int rc = VD_EXIT_FATAL;
    if (!mine || !src) goto out;
    vd_options_defaults(own, mine);
    vd_cli_table tables[] = {{own, mine}, {vd_engine_options, &cfg}};
    int first = vd_cli_parse_sourced(&u, argc, argv, tables, 2, src);
    rc = vd_cli_parse_exit(first);
    if (first < 0) goto out;
    if (first < argc) {
        rc = vd_cli_usage_error("config show", "unexpected operand '%s'", argv[first]);
        goto out;
    }
    printf("-- the settings of 'validora %s'\nreturn {\n", section);
    show_table(stdout, "  ", vd_engine_options, &cfg, src + nown);
    if (nown) {
        printf("  %s = {\n", section);
        show_table(stdout, "    ", own, mine, src);
        printf("  },\n");
    }
    printf("}\n");
    rc = VD_EXIT_OK;
out:
    free(mine);
    free(src);
    return rc;
}

int vd_cli_config(int argc, char **argv)
{
    static const char USAGE[] =
        "Usage: validora config check|show [OPTION]...\n"
        "  check   check the config file (" VD_CLI_CONFIG_PATH ", or -c FILE)\n"
        "  show    the settings in effect for a command, and where each comes from\n"
        "'validora config COMMAND --help' tells more.\n";
    if (argc < 2) {
        fputs(USAGE, stderr);
        return VD_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "check")) return config_check(argc - 1, argv + 1);
    if (!strcmp(argv[1], "show")) return config_show(argc - 1, argv + 1);
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(USAGE, stdout);
        return VD_EXIT_OK;
    }
    static const char *const names[] = {"check", "show", NULL};
    return vd_cli_unknown_command("validora config", argv[1], names);
}
