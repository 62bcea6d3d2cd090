/*
 * tkern.h - the element-wise kernels of a training step that are worth vector code:
 * AdamW over the whole parameter block, SwiGLU forward and backward over the expert
 * activations (tens of MB a step each), and the exponentials of a softmax row (attention
 * and cross-entropy). Scalar code in the portable build does a
 * division and a square root per element at a time; the AVX2 versions do eight. Each has
 * a scalar twin (tkern.c) that does the same IEEE operations in the same order, so every
 * version gives the same bits (tests/test_tops.c checks it on random data).
 */
#ifndef SMOE_TKERN_H
#define SMOE_TKERN_H

#include <stdbool.h>
#include <stdint.h>

/* One AdamW step's constants (train/optim.c derives them). */
typedef struct tk_adamw_par {
    float scale;     /* gradient scale (clipping) */
    float decay;     /* 1 - lr wd */
    float b1, b2;    /* moment decays */
    float step;      /* lr / (1 - b1^s) */
    float inv_sbc2;  /* 1 / sqrt(1 - b2^s) */
    float eps;
} tk_adamw_par;

typedef struct tkern {
    const char *isa;
    /* for i < n: gi = g scale; m = b1 m + (1-b1) gi; v = b2 v + (1-b2) gi gi;
     * theta = theta decay - step m / (sqrt(v) inv_sbc2 + eps); g = 0 if clear_g */
    void (*adamw)(int64_t n, float *theta, float *m, float *v, float *g, bool clear_g, const tk_adamw_par *p);
    /* s = 1 / (1 + e^-g) (sigmoid), a = g s u (SwiGLU: silu(g) u) */
    void (*swiglu)(int64_t n, const float *g, const float *u, float *s, float *a);
    /* backward of a = silu(g) u, with da given in dg: du = da g s,
     * dg = da u s (1 + g (1 - s)) (written over da) */
    void (*swiglu_bwd)(int64_t n, const float *g, const float *u, const float *s, float *dg, float *du);
    /* softmax numerators of a row, in place: x = x scale; *max = max x (n >= 1);
     * x = e^(x - max) (cpu/vexp.h); returns sum x in double in the order of train/tred.h */
    double (*exp_sum)(int64_t n, float *x, float scale, float *max);
} tkern;

/* The best kernels this CPU runs (SMOE_ISA=scalar forces the twins), and the twins. */
const tkern *tkern_best(void);
const tkern *tkern_scalar(void);

#endif /* SMOE_TKERN_H */
