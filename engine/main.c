/* main.c — the `validora` command: dispatches to its subcommands. */
#include <stdio.h>
#include <string.h>
#include "cli.h"
#include "validora/validora.h"

static const char USAGE[] =
    "Usage: validora COMMAND [OPTION]...\n"
    "Tells whether email addresses can receive mail, without sending any.\n"
    "\n"
    "Commands:\n"
    "  verify   verify addresses and write one record per address\n"
    "  cat      print a msgpack record stream as JSON Lines or CSV\n"
    "  rules    check rules, tell which rule handles an address, run rule tests\n"
    "  ledger   show each source IP's ledger (age, today's budget, breakers), set an age\n"
    "  doctor   check this sender's own setup as receiving servers see it; what to fix\n"
    "  run      run a Lua script with the engine at hand (scripts/clean.lua, ...)\n"
    "  config   check the config file, show the settings in effect and where each comes from\n"
    "  serve    a daemon: verification over HTTP (single addresses and jobs), metrics\n"
    "\n"
    "'validora COMMAND --help' tells more of each. --version shows the version.\n";

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(USAGE, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "verify")) return vd_cli_verify(argc - 1, argv + 1);
    if (!strcmp(cmd, "cat")) return vd_cli_cat(argc - 1, argv + 1);
    if (!strcmp(cmd, "rules")) return vd_cli_rules(argc - 1, argv + 1);
    if (!strcmp(cmd, "ledger")) return vd_cli_ledger(argc - 1, argv + 1);
    if (!strcmp(cmd, "doctor")) return vd_cli_doctor(argc - 1, argv + 1);
    if (!strcmp(cmd, "run")) return vd_cli_run(argc - 1, argv + 1);
    if (!strcmp(cmd, "config")) return vd_cli_config(argc - 1, argv + 1);
    if (!strcmp(cmd, "serve")) return vd_cli_serve(argc - 1, argv + 1);
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        fputs(USAGE, stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version")) {
        printf("validora %s\n", vd_version());
        return 0;
    }
    static const char *const names[] = {"verify", "cat",    "rules", "ledger", "doctor",
                                        "run",    "config", "serve", "help",   NULL};
    return vd_cli_unknown_command("validora", cmd, names);
}
