/*
 * smoe_internal.h - private helpers shared by the library: error reporting, checked
 * arithmetic, aligned allocation, SMOE_ASSERT. Not installed, not seen by tools/.
 */
#ifndef SMOE_INTERNAL_H
#define SMOE_INTERNAL_H

#include "smoe.h"

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define SMOE_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define SMOE_PRINTF(a, b)
#endif

/* Record a message for smoe_last_error() and return st, so callers can write
 * `return smoe_err(SMOE_ERR_FORMAT, "bad magic %x", m);`. */
smoe_status smoe_err(smoe_status st, const char *fmt, ...) SMOE_PRINTF(2, 3);
/* Prefix the current message with more context ("loading x.gguf: ..."); returns st. */
smoe_status smoe_err_prefix(smoe_status st, const char *fmt, ...) SMOE_PRINTF(2, 3);
void smoe_err_clear(void);

/* Programmer errors only (never bad input): stays on under NDEBUG. */
void smoe_assert_fail(const char *expr, const char *file, int line);
#define SMOE_ASSERT(x) do { if (!(x)) smoe_assert_fail(#x, __FILE__, __LINE__); } while (0)

/* 64-byte aligned allocation, zeroed; free with smoe_free_aligned. NULL on failure
 * or on overflow of n*size. */
void *smoe_alloc_aligned(size_t n, size_t size);
void smoe_free_aligned(void *p);

/* Overflow-checked arithmetic: return 0 on success, 1 on overflow. */
static inline int smoe_mul_overflow_u64(uint64_t a, uint64_t b, uint64_t *r) {
    return __builtin_mul_overflow(a, b, r);
}
static inline int smoe_add_overflow_u64(uint64_t a, uint64_t b, uint64_t *r) {
    return __builtin_add_overflow(a, b, r);
}

#define SMOE_MIN(a, b) ((a) < (b) ? (a) : (b))
#define SMOE_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif /* SMOE_INTERNAL_H */
