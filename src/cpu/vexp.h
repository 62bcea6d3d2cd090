/*
 * vexp.h - e^x over arrays, vectorised, for the softmaxes and sigmoids of training
 * (attention, cross-entropy, SwiGLU), where libm's scalar expf was a tenth of a step.
 *
 * The method (Cephes' expf): n = round(x log2 e); r = x - n ln2 (in two parts, by FMA);
 * e^r by a degree-6 polynomial; times 2^n through the exponent bits. Within 2 ulp of the
 * exact value for x in [-87.33, 88.02]; inputs are clamped to that range (so e^x for x <
 * -87.33 is 2^-126-ish instead of smaller or 0, which the callers add to sums >= 1),
 * NaN stays NaN. The scalar twin does the same float operations in the same order with
 * fmaf, so every ISA gives the same bits (tests/test_vexp.c).
 */
#ifndef SMOE_VEXP_H
#define SMOE_VEXP_H

#include <stdint.h>

typedef void (*smoe_vexp_fn)(float *y, const float *x, int64_t n);

/* y[i] = e^x[i] for i < n (y may be x): the best version for this CPU. */
void smoe_vexp(float *y, const float *x, int64_t n);
/* The scalar twin, and the version of each ISA the CPU has (tests): count written. */
void smoe_vexp_ref(float *y, const float *x, int64_t n);
int smoe_vexp_all(smoe_vexp_fn *out, const char **names, int cap);

#endif /* SMOE_VEXP_H */
