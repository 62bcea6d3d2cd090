/*
 * tred.h - the reductions of the training ops (sums, dot products, maxima over a row),
 * written as eight interleaved chains: element i goes to lane i % 8, and the lanes are
 * added pairwise at the end, ((0+1)+(2+3))+((4+5)+(6+7)). One chain of double adds
 * waits out the add latency at every element (a softmax row, a norm, the cross-entropy
 * over the vocabulary were latency-bound this way); eight chains keep both adders busy
 * and the compiler can pack them into vectors. The order is fixed by n alone, so a result
 * does not depend on the thread count or the ISA. Sums are in double, like the loops
 * they replace.
 */
#ifndef SMOE_TRED_H
#define SMOE_TRED_H

#include <math.h>
#include <stdint.h>

#define TRED_LANES 8

static inline double tred_fold(const double s[TRED_LANES]) {
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

/* sum x[i] */
static inline double tred_sum(const float *x, int64_t n) {
    double s[TRED_LANES] = {0};
    int64_t i = 0;
    for (; i + TRED_LANES <= n; i += TRED_LANES)
        for (int l = 0; l < TRED_LANES; l++) s[l] += (double)x[i + l];
    for (int l = 0; i < n; i++, l++) s[l] += (double)x[i];
    return tred_fold(s);
}

/* sum a[i] b[i], each product in double */
static inline double tred_dot(const float *a, const float *b, int64_t n) {
    double s[TRED_LANES] = {0};
    int64_t i = 0;
    for (; i + TRED_LANES <= n; i += TRED_LANES)
        for (int l = 0; l < TRED_LANES; l++) s[l] += (double)a[i + l] * b[i + l];
    for (int l = 0; i < n; i++, l++) s[l] += (double)a[i] * b[i];
    return tred_fold(s);
}

/* sum a[i] b[i] c[i], in double */
static inline double tred_dot3(const float *a, const float *b, const float *c, int64_t n) {
    double s[TRED_LANES] = {0};
    int64_t i = 0;
    for (; i + TRED_LANES <= n; i += TRED_LANES)
        for (int l = 0; l < TRED_LANES; l++) s[l] += (double)a[i + l] * b[i + l] * c[i + l];
    for (int l = 0; i < n; i++, l++) s[l] += (double)a[i] * b[i] * c[i];
    return tred_fold(s);
}

/* max x[i] (n >= 1; -inf for n = 0); exact in any order, so only the speed changes */
static inline float tred_max(const float *x, int64_t n) {
    float m[TRED_LANES];
    for (int l = 0; l < TRED_LANES; l++) m[l] = -INFINITY;
    int64_t i = 0;
    for (; i + TRED_LANES <= n; i += TRED_LANES)
        for (int l = 0; l < TRED_LANES; l++) m[l] = x[i + l] > m[l] ? x[i + l] : m[l];
    for (int l = 0; i < n; i++, l++) m[l] = x[i] > m[l] ? x[i] : m[l];
    float r = m[0];
    for (int l = 1; l < TRED_LANES; l++) r = m[l] > r ? m[l] : r;
    return r;
}

#endif /* SMOE_TRED_H */
