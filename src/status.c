/*
 * status.c - the thread-local "last error" message behind smoe_last_error(), and the
 * assertion handler. The library reports failures only through these; it never prints
 * except in smoe_assert_fail, which is reached only by a programmer error.
 */
#include "smoe_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char g_err[1024];

const char *smoe_last_error(void) { return g_err; }

void smoe_err_clear(void) { g_err[0] = 0; }

smoe_status smoe_err(smoe_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_err, sizeof g_err, fmt, ap);
    va_end(ap);
    return st;
}

smoe_status smoe_err_prefix(smoe_status st, const char *fmt, ...) {
    char prefix[512], old[sizeof g_err];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, g_err, sizeof old);
    /* join by hand: the message is cut to fit, which is fine for a diagnostic */
    size_t np = strlen(prefix), no = strlen(old);
    if (np > sizeof g_err - 3) np = sizeof g_err - 3;
    memcpy(g_err, prefix, np);
    memcpy(g_err + np, ": ", 2);
    if (no > sizeof g_err - np - 3) no = sizeof g_err - np - 3;
    memcpy(g_err + np + 2, old, no);
    g_err[np + 2 + no] = 0;
    return st;
}

const char *smoe_status_name(smoe_status st) {
    switch (st) {
    case SMOE_OK: return "ok";
    case SMOE_ERR_INVALID_ARG: return "invalid argument";
    case SMOE_ERR_IO: return "I/O error";
    case SMOE_ERR_FORMAT: return "format error";
    case SMOE_ERR_UNSUPPORTED: return "unsupported";
    case SMOE_ERR_NOMEM: return "out of memory";
    case SMOE_ERR_RANGE: return "out of range";
    case SMOE_ERR_NOT_FOUND: return "not found";
    }
    return "unknown status";
}

void smoe_assert_fail(const char *expr, const char *file, int line) {
    /* A broken invariant inside the library: continuing would corrupt memory. */
    fprintf(stderr, "smoe: internal assertion failed: %s (%s:%d)\n", expr, file, line);
    abort();
}

void *smoe_alloc_aligned(size_t n, size_t size) {
    size_t bytes;
    if (__builtin_mul_overflow(n, size, &bytes)) return NULL;
    if (bytes == 0) bytes = 64;
    bytes = (bytes + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

void smoe_free_aligned(void *p) { free(p); }
