/*
 * cli.h - what the smoe command files share: one entry point per command (cmd_NAME, given
 * argv[0] = the command name) and the helpers of cli_util.c. Only tools/ print or exit.
 */
#ifndef SMOE_CLI_H
#define SMOE_CLI_H

#include "smoe.h"

#include <stdbool.h>
#include <stdint.h>

extern const char *g_cmd; /* "smoe run", ... for messages */

/* Print "g_cmd: message" and a hint to stderr, exit 2. */
void die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* Print "g_cmd: what: smoe_last_error()" to stderr; returns 1 (the exit status). */
int fail(const char *what);
double now_s(void);
long parse_long(const char *opt, const char *v, long lo, long hi);
float parse_float(const char *opt, const char *v, double lo, double hi);
uint64_t parse_u64(const char *opt, const char *v);
/* The value of option argv[*i], advancing *i; a usage error when it is missing. */
const char *opt_value(int argc, char **argv, int *i);
bool is_help(const char *a);

/* Commands: argv[0] is the command name. Return the exit status. */
int cmd_run(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_serve(int argc, char **argv); /* tools/server/ */
int cmd_tokenizer_train(int argc, char **argv); /* tools/cmd_tokenizer_train.c */
int cmd_prepare_data(int argc, char **argv);    /* tools/cmd_prepare_data.c */
int cmd_train(int argc, char **argv);           /* tools/cmd_train.c */
int cmd_routes(int argc, char **argv);          /* tools/cmd_routes.c */

#endif /* SMOE_CLI_H */
