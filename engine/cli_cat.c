/* cli_cat.c — `validora cat`: prints msgpack record streams (written by `validora verify
 * --format msgpack`) as JSON Lines or CSV.
 *
 * Owns: the command line of `cat`, its messages' "validora cat: FILE" prefix and its exit
 * statuses. Does not own reading or rendering: that is the public record API
 * (validora/record.h: vd_record_cat, built on vd_reader); this file only opens the inputs and
 * keeps a CSV header from repeating. Includes only public headers and cli.h. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

#include "cli.h"
#include "validora/record.h"

static const char USAGE[] =
    "Usage: validora cat [--json|--csv] [FILE]...\n"
    "Print msgpack record streams (from 'validora verify --format msgpack -o FILE') as\n"
    "JSON Lines (one object per record) or CSV. With no FILE, or when FILE is -, read\n"
    "standard input. Records are printed as soon as they are read, so\n"
    "'tail -f results.mp | validora cat' shows them as they are written.\n"
    "\n"
    "  --json       one JSON object per line, every key of the record (default)\n"
    "  --csv        a header line, then one row per record with a fixed set of columns\n"
    "               (keys that are not a column are left out); RFC 4180 quoting\n"
    "  -h, --help   show this help and exit\n"
    "\n"
    "A stream that ends inside a record (a writer that was killed, a file cut short), or\n"
    "that holds something other than a record, is reported with its byte offset, after\n"
    "every complete record before it has been printed; the remaining files are still read.\n"
    "\n"
    "Exit status: 0 when every file was read to its end, 1 when a file could not be opened\n"
    "or read, was damaged or truncated, or output failed; 2 on a usage error.\n"
    "The record keys are described in docs/records.md.\n";

static int usage_error(const char *msg, const char *arg)
{
    fprintf(stderr, "validora cat: %s%s%s\n", msg, arg ? " " : "", arg ? arg : "");
    fputs("Try 'validora cat --help'.\n", stderr);
    return VD_EXIT_USAGE;
}

/* CSV output of every file after the first goes through this filter, which drops the
 * header line vd_record_cat writes, so the output is one table. */
typedef struct {
    FILE *to;
    bool header_done;
} skip_header;

static ssize_t skip_header_write(void *cookie, const char *buf, size_t n)
{
    skip_header *sh = cookie;
    size_t i = 0;
    if (!sh->header_done) {
        const char *nl = memchr(buf, '\n', n);
        if (!nl) return (ssize_t)n; /* all of it is header */
        sh->header_done = true;
        i = (size_t)(nl - buf) + 1;
    }
    if (i < n && fwrite(buf + i, 1, n - i, sh->to) != n - i) return -1;
    if (fflush(sh->to) == EOF) return -1;
    return (ssize_t)n;
}

/* Returns 0, or -1 after a message when this input failed (open, read, damage, output).
 * Sets *printed once vd_record_cat has run (and so written a CSV header). */
static int cat_one(const char *path, vd_format fmt, bool drop_header, bool *printed)
{
    FILE *in = stdin;
    const char *shown = "-";
    if (strcmp(path, "-") != 0) {
        shown = path;
        in = fopen(path, "rb");
        if (!in) {
            fprintf(stderr, "validora cat: %s: %s\n", path, strerror(errno));
            return -1;
        }
    }
    char name[4096];
    snprintf(name, sizeof name, "validora cat: %s", shown);

    FILE *out = stdout;
    skip_header sh = {.to = stdout};
    if (drop_header) {
        out = fopencookie(&sh, "w", (cookie_io_functions_t){.write = skip_header_write});
        if (!out) {
            fprintf(stderr, "validora cat: %s\n", strerror(errno));
            if (in != stdin) fclose(in);
            return -1;
        }
    }
    int rc = vd_record_cat(in, out, fmt, stderr, name);
    *printed = true;
    if (out != stdout && fclose(out) == EOF && rc == 0) {
        fprintf(stderr, "validora cat: write error: %s\n", strerror(errno));
        rc = -1;
    }
    if (in != stdin)
        fclose(in);
    else
        clearerr(stdin); /* "-" may be given twice; the second time reads to its end again */
    return rc;
}

int vd_cli_cat(int argc, char **argv)
{
    static const struct option options[] = {
        {"json", no_argument, NULL, 'j'},
        {"csv", no_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    vd_format fmt = VD_FMT_JSON;
    bool json = false, csv = false;
    opterr = 0; /* our own messages, named after the subcommand */
    optind = 0; /* full re-initialisation in glibc; we may not be the first getopt user */
    for (;;) {
        int c = getopt_long(argc, argv, "h", options, NULL);
        if (c == -1) break;
        switch (c) {
        case 'j':
            json = true, fmt = VD_FMT_JSON;
            break;
        case 'c':
            csv = true, fmt = VD_FMT_CSV;
            break;
        case 'h':
            fputs(USAGE, stdout);
            return fflush(stdout) == EOF ? VD_EXIT_FATAL : VD_EXIT_OK;
        default:
            if (strncmp(argv[optind - 1], "--", 2) != 0 && optopt) {
                char opt[3] = {'-', (char)optopt, 0};
                return usage_error("invalid option", opt);
            }
            return usage_error("invalid option", argv[optind - 1]);
        }
    }
    if (json && csv) return usage_error("--json and --csv: choose one", NULL);

    static char *stdin_only[] = {"-", NULL};
    char **files = optind < argc ? argv + optind : stdin_only;
    int nfiles = optind < argc ? argc - optind : 1;
    int status = VD_EXIT_OK;
    bool printed = false;
    for (int i = 0; i < nfiles; i++) {
        bool drop_header = fmt == VD_FMT_CSV && printed;
        if (cat_one(files[i], fmt, drop_header, &printed) != 0) status = VD_EXIT_FATAL;
    }
    if (fflush(stdout) == EOF || ferror(stdout)) {
        fprintf(stderr, "validora cat: write error: %s\n", strerror(errno));
        status = VD_EXIT_FATAL;
    }
    return status;
}
