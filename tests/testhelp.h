/*
 * testhelp.h - the minimal test harness every tests/test_*.c program uses (in the spirit
 * of redis' testhelp.h). Each CHECK counts as one passed or failed assertion; a test
 * program ends with TEST_REPORT(), which prints "N passed, N failed" and returns the exit
 * status (non-zero when anything failed). Data files are found under TEST_DATA_DIR
 * (tests/data by default; `make test` runs from the repository root).
 */
#ifndef SMOE_TESTHELP_H
#define SMOE_TESTHELP_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int th_passed, th_failed;

#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        if (cond) {                                                             \
            th_passed++;                                                        \
        } else {                                                                \
            th_failed++;                                                        \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);     \
            fprintf(stderr, __VA_ARGS__);                                       \
            fputc('\n', stderr);                                                \
        }                                                                       \
    } while (0)

/* Check that a smoe call returned SMOE_OK; prints smoe_last_error() otherwise. */
#define CHECK_OK(expr)                                                          \
    do {                                                                        \
        smoe_status th_st_ = (expr);                                            \
        CHECK(th_st_ == SMOE_OK, "%s -> %s: %s", #expr, smoe_status_name(th_st_), \
              smoe_last_error());                                               \
    } while (0)

#define TEST_REPORT()                                                           \
    (printf("%s: %d passed, %d failed\n", __FILE__, th_passed, th_failed),      \
     th_failed ? 1 : 0)

#ifndef TEST_DATA_DIR
#define TEST_DATA_DIR "tests/data"
#endif

/* Read a whole file into a malloc'd buffer (NUL-terminated); NULL on failure. */
static inline void *th_read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    if (buf) buf[n] = 0;
    fclose(f);
    if (size) *size = (size_t)n;
    return buf;
}

/* Path under the test data directory, in a static buffer (one at a time). */
static inline const char *th_data(const char *rel) {
    static char path[4][1024];
    static int k;
    k = (k + 1) & 3;
    snprintf(path[k], sizeof path[k], "%s/%s", TEST_DATA_DIR, rel);
    return path[k];
}

/* Parse every integer of a JSON-like text in order (e.g. a JSON array of ids).
 * Returns the count written (at most cap). */
static inline int th_parse_ints(const char *s, int *out, int cap) {
    int n = 0;
    while (*s && n < cap) {
        if ((*s >= '0' && *s <= '9') || (*s == '-' && s[1] >= '0' && s[1] <= '9')) {
            char *end;
            out[n++] = (int)strtol(s, &end, 10);
            s = end;
        } else {
            s++;
        }
    }
    return n;
}

/* Simple deterministic RNG for tests (splitmix64). */
static inline unsigned long long th_rng_next(unsigned long long *st) {
    unsigned long long z = (*st += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
/* Uniform float in [-1, 1). */
static inline float th_rng_float(unsigned long long *st) {
    return (float)((th_rng_next(st) >> 40) * (1.0 / (1ull << 24)) * 2.0 - 1.0);
}

#endif /* SMOE_TESTHELP_H */
