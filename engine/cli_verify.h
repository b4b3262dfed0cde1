/* cli_verify.h — `validora verify`. */
#ifndef VALIDORA_CLI_VERIFY_H
#define VALIDORA_CLI_VERIFY_H
int vd_cli_verify(int argc, char **argv);
#endif
