/*
 * tkern_avx2.c - AVX2 versions of the element-wise training kernels (train/tkern.h):
 * AdamW, SwiGLU forward/backward and the exponentials of a softmax row, eight floats at a
 * time. Each vector operation is the
 * IEEE operation the scalar twin in train/tkern.c does, in the same order (mul, add, div
 * and sqrt are correctly rounded in both; no FMA is used), and the tails run the same
 * code on a masked-in copy, so every element gets the twin's bits.
 *
 * What it does not do: it is never called unless cpufeat.c saw AVX2 (the Makefile builds
 * this file alone with -mavx2 -mfma).
 */
#include "train/tkern.h"
#include "cpu/x86/vexp_avx2.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

void smoe_vexp_avx2(float *y, const float *x, int64_t n); /* vexp_avx2.c */

static inline void adamw8(float *theta, float *m, float *v, const float *g, const tk_adamw_par *p) {
    const __m256 gi = _mm256_mul_ps(_mm256_loadu_ps(g), _mm256_set1_ps(p->scale));
    const __m256 mi = _mm256_add_ps(_mm256_mul_ps(_mm256_set1_ps(p->b1), _mm256_loadu_ps(m)),
                                    _mm256_mul_ps(_mm256_set1_ps(1.0f - p->b1), gi));
    const __m256 vi = _mm256_add_ps(_mm256_mul_ps(_mm256_set1_ps(p->b2), _mm256_loadu_ps(v)),
                                    _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(1.0f - p->b2), gi), gi));
    _mm256_storeu_ps(m, mi);
    _mm256_storeu_ps(v, vi);
    const __m256 t = _mm256_mul_ps(_mm256_loadu_ps(theta), _mm256_set1_ps(p->decay));
    const __m256 den = _mm256_add_ps(_mm256_mul_ps(_mm256_sqrt_ps(vi), _mm256_set1_ps(p->inv_sbc2)),
                                     _mm256_set1_ps(p->eps));
    _mm256_storeu_ps(theta, _mm256_sub_ps(t, _mm256_div_ps(_mm256_mul_ps(_mm256_set1_ps(p->step), mi), den)));
}

void tk_adamw_avx2(int64_t n, float *theta, float *m, float *v, float *g, bool clear_g, const tk_adamw_par *p) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        adamw8(theta + i, m + i, v + i, g + i, p);
        if (clear_g) _mm256_storeu_ps(g + i, _mm256_setzero_ps());
    }
    if (i < n) { /* the tail through copies: the same lanes, the unused ones on zeros */
        float t[8] = {0}, mm[8] = {0}, vv[8] = {0}, gg[8] = {0};
        const size_t k = (size_t)(n - i) * sizeof(float);
        memcpy(t, theta + i, k), memcpy(mm, m + i, k), memcpy(vv, v + i, k), memcpy(gg, g + i, k);
        adamw8(t, mm, vv, gg, p);
        memcpy(theta + i, t, k), memcpy(m + i, mm, k), memcpy(v + i, vv, k);
        if (clear_g) memset(g + i, 0, k);
    }
}

#define TK_CHUNK 256

static inline void swiglu8(const float *g, const float *u, const float *e, float *s, float *a) {
    const __m256 sv = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_add_ps(_mm256_set1_ps(1.0f), _mm256_loadu_ps(e)));
    const __m256 gv = _mm256_loadu_ps(g);
    _mm256_storeu_ps(s, sv);
    _mm256_storeu_ps(a, _mm256_mul_ps(_mm256_mul_ps(gv, sv), _mm256_loadu_ps(u)));
}

void tk_swiglu_avx2(int64_t n, const float *g, const float *u, float *s, float *a) {
    _Alignas(32) float e[TK_CHUNK];
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t i0 = 0; i0 < n; i0 += TK_CHUNK) {
        const int64_t k = n - i0 < TK_CHUNK ? n - i0 : TK_CHUNK;
        int64_t j = 0;
        for (; j + 8 <= k; j += 8) _mm256_store_ps(e + j, _mm256_xor_ps(_mm256_loadu_ps(g + i0 + j), sign));
        for (; j < k; j++) e[j] = -g[i0 + j];
        smoe_vexp_avx2(e, e, k);
        for (j = 0; j + 8 <= k; j += 8) swiglu8(g + i0 + j, u + i0 + j, e + j, s + i0 + j, a + i0 + j);
        if (j < k) {
            float gg[8] = {0}, uu[8] = {0}, ee[8] = {0}, ss[8], aa[8];
            const size_t b = (size_t)(k - j) * sizeof(float);
            memcpy(gg, g + i0 + j, b), memcpy(uu, u + i0 + j, b), memcpy(ee, e + j, b);
            swiglu8(gg, uu, ee, ss, aa);
            memcpy(s + i0 + j, ss, b), memcpy(a + i0 + j, aa, b);
        }
    }
}

static inline void swiglu_bwd8(const float *g, const float *u, const float *s, float *dg, float *du) {
    const __m256 gv = _mm256_loadu_ps(g), uv = _mm256_loadu_ps(u), sv = _mm256_loadu_ps(s), da = _mm256_loadu_ps(dg);
    const __m256 one = _mm256_set1_ps(1.0f);
    _mm256_storeu_ps(du, _mm256_mul_ps(_mm256_mul_ps(da, gv), sv));
    const __m256 d = _mm256_add_ps(one, _mm256_mul_ps(gv, _mm256_sub_ps(one, sv)));
    _mm256_storeu_ps(dg, _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(da, uv), sv), d));
}

void tk_swiglu_bwd_avx2(int64_t n, const float *g, const float *u, const float *s, float *dg, float *du) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) swiglu_bwd8(g + i, u + i, s + i, dg + i, du + i);
    if (i < n) {
        float gg[8] = {0}, uu[8] = {0}, ss[8] = {0}, dd[8] = {0}, dw[8];
        const size_t b = (size_t)(n - i) * sizeof(float);
        memcpy(gg, g + i, b), memcpy(uu, u + i, b), memcpy(ss, s + i, b), memcpy(dd, dg + i, b);
        swiglu_bwd8(gg, uu, ss, dd, dw);
        memcpy(dg + i, dd, b), memcpy(du + i, dw, b);
    }
}

/* Two passes: scale and maximum, then e^(x - max) and the sum. The sum's lanes are
 * tred.h's: element i adds to lane i % 8 (lanes 0-3 in lo, 4-7 in hi), in double. */
double tk_exp_sum_avx2(int64_t n, float *x, float scale, float *max) {
    const __m256 sc = _mm256_set1_ps(scale);
    __m256 mx = _mm256_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + i), sc);
        _mm256_storeu_ps(x + i, v);
        mx = _mm256_max_ps(v, mx); /* a NaN in v keeps mx, as the twin's compare does */
    }
    const int64_t tail = n - i;
    if (tail) {
        float b[8];
        for (int l = 0; l < 8; l++) b[l] = -INFINITY;
        memcpy(b, x + i, sizeof(float) * (size_t)tail);
        const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(b), sc);
        _mm256_storeu_ps(b, v);
        memcpy(x + i, b, sizeof(float) * (size_t)tail);
        for (int l = (int)tail; l < 8; l++) b[l] = -INFINITY; /* whatever the padding became */
        mx = _mm256_max_ps(_mm256_loadu_ps(b), mx);
    }
    float lanes[8];
    _mm256_storeu_ps(lanes, mx);
    float m = lanes[0];
    for (int l = 1; l < 8; l++) m = lanes[l] > m ? lanes[l] : m;
    *max = m;

    const __m256 mv = _mm256_set1_ps(m);
    __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
    for (i = 0; i + 8 <= n; i += 8) {
        const __m256 e = smoe_exp8_avx2(_mm256_sub_ps(_mm256_loadu_ps(x + i), mv));
        _mm256_storeu_ps(x + i, e);
        lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    if (tail) {
        float b[8] = {0};
        memcpy(b, x + i, sizeof(float) * (size_t)tail);
        _mm256_storeu_ps(b, smoe_exp8_avx2(_mm256_sub_ps(_mm256_loadu_ps(b), mv)));
        memcpy(x + i, b, sizeof(float) * (size_t)tail);
        for (int l = (int)tail; l < 8; l++) b[l] = 0.0f; /* only the row's elements are summed */
        const __m256 e = _mm256_loadu_ps(b);
        lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    double s[8];
    _mm256_storeu_pd(s, lo);
    _mm256_storeu_pd(s + 4, hi);
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}
