/*
 * util.h - growable byte and token-id buffers for the server (tools/server/). Appends
 * report allocation failure as false and leave the buffer as it was; nothing here prints.
 */
#ifndef SMOE_SERVER_UTIL_H
#define SMOE_SERVER_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes, always NUL-terminated once anything was appended (p may be NULL when empty). */
typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf;

bool sbuf_append(sbuf *b, const void *data, size_t n);
bool sbuf_puts(sbuf *b, const char *s);
bool sbuf_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sbuf_free(sbuf *b);

/* Token ids. */
typedef struct idbuf {
    int32_t *v;
    int64_t n, cap;
} idbuf;

bool idbuf_push(idbuf *b, int32_t id);
void idbuf_free(idbuf *b);

/* Monotonic seconds (for durations) and wall-clock seconds since the epoch (for "created"). */
double mono_s(void);
long long unix_s(void);

#endif /* SMOE_SERVER_UTIL_H */
