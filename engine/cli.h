/* cli.h — subcommands implemented outside main.c, and the exit statuses every subcommand uses:
 * 0 done, 1 fatal (a file could not be read, a stream was damaged), 2 usage error. */
#ifndef VALIDORA_CLI_H
#define VALIDORA_CLI_H

#define VD_EXIT_OK    0
#define VD_EXIT_FATAL 1
#define VD_EXIT_USAGE 2

/* `validora cat`: argv[0] is "cat". */
int vd_cli_cat(int argc, char **argv);

#endif
