/*
 * cli_util.c - small helpers shared by the smoe commands: usage errors (exit 2), failure
 * reports with smoe_last_error() (exit status 1), strict number parsing, timing.
 */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *g_cmd = "smoe";

void die_usage(const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "%s: ", g_cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '%s --help'.\n", g_cmd);
    exit(2);
}

int fail(const char *what) {
    fprintf(stderr, "%s: %s: %s\n", g_cmd, what, smoe_last_error());
    return 1;
}

double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

long parse_long(const char *opt, const char *v, long lo, long hi) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi)
        die_usage("invalid value for %s: '%s' (want an integer in [%ld, %ld])", opt, v, lo, hi);
    return x;
}

float parse_float(const char *opt, const char *v, double lo, double hi) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !(x >= lo && x <= hi))
        die_usage("invalid value for %s: '%s' (want a number in [%g, %g])", opt, v, lo, hi);
    return (float)x;
}

uint64_t parse_u64(const char *opt, const char *v) {
    char *end;
    errno = 0;
    if (v[0] == '-') die_usage("invalid value for %s: '%s' (want a non-negative integer)", opt, v);
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || end == v || *end) die_usage("invalid value for %s: '%s' (want a non-negative integer)", opt, v);
    return (uint64_t)x;
}

/* Value of option argv[*i] (advancing *i), or a usage error if it is missing. */
const char *opt_value(int argc, char **argv, int *i) {
    if (*i + 1 >= argc) die_usage("option %s needs a value", argv[*i]);
    return argv[++*i];
}

bool is_help(const char *a) { return strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0; }

