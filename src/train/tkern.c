/*
 * tkern.c - the scalar twins of the element-wise training kernels (see tkern.h) and the
 * dispatch. Every operation is a separate IEEE operation in the order the vector code
 * does it (no contraction into FMAs: -std=c11 keeps them apart).
 */
#include "train/tkern.h"
#include "train/tred.h"
#include "cpu/kernels.h"
#include "cpu/vexp.h"

#include <math.h>
#include <pthread.h>

#if defined(__x86_64__)
void tk_adamw_avx2(int64_t n, float *theta, float *m, float *v, float *g, bool clear_g, const tk_adamw_par *p);
void tk_swiglu_avx2(int64_t n, const float *g, const float *u, float *s, float *a);
void tk_swiglu_bwd_avx2(int64_t n, const float *g, const float *u, const float *s, float *dg, float *du);
double tk_exp_sum_avx2(int64_t n, float *x, float scale, float *max);
#endif

static void adamw_scalar(int64_t n, float *theta, float *m, float *v, float *g, bool clear_g, const tk_adamw_par *p) {
    const float c1 = 1.0f - p->b1, c2 = 1.0f - p->b2;
    for (int64_t i = 0; i < n; i++) {
        const float gi = g[i] * p->scale;
        const float mi = p->b1 * m[i] + c1 * gi;
        const float vi = p->b2 * v[i] + c2 * gi * gi;
        m[i] = mi, v[i] = vi;
        const float t = theta[i] * p->decay;
        const float den = sqrtf(vi) * p->inv_sbc2 + p->eps;
        theta[i] = t - p->step * mi / den;
        if (clear_g) g[i] = 0.0f;
    }
}

/* e^-g in chunks on the stack, then the rest element by element */
#define TK_CHUNK 256

static void swiglu_scalar(int64_t n, const float *g, const float *u, float *s, float *a) {
    float e[TK_CHUNK];
    for (int64_t i0 = 0; i0 < n; i0 += TK_CHUNK) {
        const int64_t k = n - i0 < TK_CHUNK ? n - i0 : TK_CHUNK;
        for (int64_t j = 0; j < k; j++) e[j] = -g[i0 + j];
        smoe_vexp_ref(e, e, k);
        for (int64_t j = 0; j < k; j++) {
            const int64_t i = i0 + j;
            const float si = 1.0f / (1.0f + e[j]);
            s[i] = si;
            a[i] = g[i] * si * u[i];
        }
    }
}

static void swiglu_bwd_scalar(int64_t n, const float *g, const float *u, const float *s, float *dg, float *du) {
    for (int64_t i = 0; i < n; i++) {
        const float gi = g[i], ui = u[i], si = s[i], da = dg[i];
        du[i] = da * gi * si;
        dg[i] = da * ui * si * (1.0f + gi * (1.0f - si));
    }
}

static double exp_sum_scalar(int64_t n, float *x, float scale, float *max) {
    for (int64_t i = 0; i < n; i++) x[i] *= scale;
    const float m = tred_max(x, n);
    for (int64_t i = 0; i < n; i++) x[i] -= m;
    smoe_vexp_ref(x, x, n);
    *max = m;
    return tred_sum(x, n);
}

static const tkern g_scalar = {"scalar", adamw_scalar, swiglu_scalar, swiglu_bwd_scalar, exp_sum_scalar};
static tkern g_best;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void pick(void) {
    g_best = g_scalar;
#if defined(__x86_64__)
    if (smoe_cpu_isa_allowed("avx2")) g_best = (tkern){"avx2", tk_adamw_avx2, tk_swiglu_avx2, tk_swiglu_bwd_avx2, tk_exp_sum_avx2};
#endif
}

const tkern *tkern_best(void) {
    pthread_once(&g_once, pick);
    return &g_best;
}

const tkern *tkern_scalar(void) { return &g_scalar; }
