/*
 * util.c - growable buffers and clocks for the server. See util.h.
 */
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static bool sbuf_reserve(sbuf *b, size_t extra) {
    if (extra > SIZE_MAX / 2 - b->len) return false;
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return false;
    b->p = p;
    b->cap = cap;
    return true;
}

bool sbuf_append(sbuf *b, const void *data, size_t n) {
    if (!sbuf_reserve(b, n)) return false;
    if (n) memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return true;
}

bool sbuf_puts(sbuf *b, const char *s) { return sbuf_append(b, s, strlen(s)); }

bool sbuf_printf(sbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !sbuf_reserve(b, (size_t)n)) return false;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return true;
}

void sbuf_free(sbuf *b) {
    free(b->p);
    *b = (sbuf){0};
}

bool idbuf_push(idbuf *b, int32_t id) {
    if (b->n == b->cap) {
        int64_t cap = b->cap ? b->cap * 2 : 64;
        int32_t *v = realloc(b->v, sizeof(int32_t) * (size_t)cap);
        if (!v) return false;
        b->v = v;
        b->cap = cap;
    }
    b->v[b->n++] = id;
    return true;
}

void idbuf_free(idbuf *b) {
    free(b->v);
    *b = (idbuf){0};
}

double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

long long unix_s(void) { return (long long)time(NULL); }
