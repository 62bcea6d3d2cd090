/*
 * vexp.c - the scalar twin of the vector e^x (see vexp.h) and the dispatch. The constants
 * are Cephes' (Moshier) expf ones; the code is ours.
 */
#include "cpu/vexp.h"
#include "cpu/kernels.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

void smoe_vexp_avx2(float *y, const float *x, int64_t n); /* x86/vexp_avx2.c */

/* One value, operation for operation as the AVX2 lanes do it. */
static inline float exp1(float x) {
    if (x != x) return x;
    x = fminf(fmaxf(x, -87.33654f), 88.02969f);
    const float n = nearbyintf(x * 1.44269504088896341f);
    float r = fmaf(n, -0.693359375f, x);
    r = fmaf(n, 2.12194440e-4f, r);
    float p = 1.9875691500e-4f;
    p = fmaf(p, r, 1.3981999507e-3f);
    p = fmaf(p, r, 8.3334519073e-3f);
    p = fmaf(p, r, 4.1665795894e-2f);
    p = fmaf(p, r, 1.6666665459e-1f);
    p = fmaf(p, r, 5.0000001201e-1f);
    const float y = fmaf(p, r * r, r) + 1.0f;
    const int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return y * scale;
}

void smoe_vexp_ref(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = exp1(x[i]);
}

static smoe_vexp_fn g_best = smoe_vexp_ref;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void pick(void) {
#if defined(__x86_64__)
    if (smoe_cpu_isa_allowed("avx2")) g_best = smoe_vexp_avx2;
#endif
}

void smoe_vexp(float *y, const float *x, int64_t n) {
    pthread_once(&g_once, pick);
    g_best(y, x, n);
}

int smoe_vexp_all(smoe_vexp_fn *out, const char **names, int cap) {
    int k = 0;
    if (k < cap) out[k] = smoe_vexp_ref, names[k++] = "scalar";
#if defined(__x86_64__)
    const smoe_cpu_features *f = smoe_cpu_get_features();
    if (f->avx2 && f->fma && k < cap) out[k] = smoe_vexp_avx2, names[k++] = "avx2";
#endif
    return k;
}
