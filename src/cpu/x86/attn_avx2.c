/*
 * attn_avx2.c - grouped-query attention with AVX2+FMA (see attn.h). Built with -mavx2
 * -mfma; called only when cpufeat says the CPU has both.
 *
 * The group is done in sub-groups of GC = 8, 4, 2 or 1 query heads (8 for 8, 4 + 2 for 6,
 * ...), each by attn_core specialised for its GC, in three passes:
 *
 *  1. scores: tiles of P = 8 / GC cached positions x GC heads, i.e. 8 dot products over
 *     head_dim at once in 8 accumulators (each K row and q chunk is loaded once per tile),
 *     reduced together to one ymm of 8 scores (hadd tree: no horizontal sum per score).
 *     The scratch holds the scores position-major, scores[s * GC + g], so that ymm is
 *     stored as is, and lane l of any aligned ymm of the scratch belongs to head l % GC.
 *     The running max is kept lane-wise. K rows are prefetched PF_ROWS positions ahead.
 *  2. softmax numerators: a vectorised exp (exp8 below, ~1 ulp) of score - max, 8 at a
 *     time, with lane-wise sums. The max and sum of head g are folded over the lanes
 *     l % GC == g with in-register permutes.
 *  3. out[g] = sum_s p[g][s] v_s / sum[g]: blocks of rows of V small enough to stay in L1,
 *     and for each block tiles of 2 heads x 32 floats of head_dim held in 8 accumulators,
 *     each V chunk loaded once per tile.
 */
#include "cpu/attn.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

#define ALWAYS_INLINE static inline __attribute__((always_inline))
/* the loops over tile rows/heads have constant trip counts: unrolled, their arrays live in registers */
#if defined(__clang__)
#define UNROLL _Pragma("clang loop unroll(full)")
#else
#define UNROLL _Pragma("GCC unroll 8")
#endif
/* Keeps a loaded value in a register: without it the compiler folds the load into every
 * FMA that uses it, and the loads (2 ymm a cycle) rather than the FMAs become the bound. */
#define IN_REG(v) __asm__("" : "+x"(v))
/* K rows are prefetched this many positions ahead: long contexts stream K from L3 (for V,
 * read in small blocks tile after tile, the hardware prefetchers did as well, measured) */
#define PF_ROWS 8

/* exp(x) for x <= 0 (x >= 0 works too, up to 88), lane-wise. x is clamped below at -88;
 * below about -87.3 the result is subnormal or, from about -87.7 (n = -127), exactly 0 (it
 * is only ever added to a sum >= 1 here); -inf gives 0. exp(x) = 2^n * exp(r) with n = round(x
 * log2 e), r = x - n ln 2 in [-0.347, 0.347] (ln 2 in two parts, so r is exact to well under
 * an ulp), exp(r) by its degree-7 Taylor polynomial (truncation error < 6e-9 relative).
 * Measured in tests/test_attention.c: within 2 ulp of expf. */
ALWAYS_INLINE __m256 exp8(__m256 x) {
    x = _mm256_max_ps(x, _mm256_set1_ps(-88.0f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x); /* ln 2 high part: 16 bits */
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.42860682030941723e-6f), r);  /* ln 2 - high part */
    __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    /* 2^n for n in [-127, 127]: n = -127 gives the bit pattern 0, i.e. 0.0f */
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* Test hook (declared in tests/test_attention.c, not in attn.h): y[i] = exp8(x[i]). */
void smoe_attn_exp_avx2(float *y, const float *x, int64_t n);
void smoe_attn_exp_avx2(float *y, const float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, exp8(_mm256_loadu_ps(x + i)));
    if (i < n) {
        float t[8] = {0};
        memcpy(t, x + i, sizeof(float) * (size_t)(n - i));
        _mm256_storeu_ps(t, exp8(_mm256_loadu_ps(t)));
        memcpy(y + i, t, sizeof(float) * (size_t)(n - i));
    }
}

/* r[l] = sum of the 8 lanes of a[l]. */
ALWAYS_INLINE __m256 reduce8(const __m256 a[8]) {
    const __m256 t0 = _mm256_hadd_ps(a[0], a[1]), t1 = _mm256_hadd_ps(a[2], a[3]);
    const __m256 t2 = _mm256_hadd_ps(a[4], a[5]), t3 = _mm256_hadd_ps(a[6], a[7]);
    const __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
    return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

/* Every lane l gets the max (or sum) of the lanes l' with l' % GC == l % GC. */
ALWAYS_INLINE __m256 fold_max(__m256 m, const int GC) {
    if (GC <= 4) m = _mm256_max_ps(m, _mm256_permute2f128_ps(m, m, 1));
    if (GC <= 2) m = _mm256_max_ps(m, _mm256_permute_ps(m, _MM_SHUFFLE(1, 0, 3, 2)));
    if (GC <= 1) m = _mm256_max_ps(m, _mm256_permute_ps(m, _MM_SHUFFLE(2, 3, 0, 1)));
    return m;
}
ALWAYS_INLINE __m256 fold_add(__m256 m, const int GC) {
    if (GC <= 4) m = _mm256_add_ps(m, _mm256_permute2f128_ps(m, m, 1));
    if (GC <= 2) m = _mm256_add_ps(m, _mm256_permute_ps(m, _MM_SHUFFLE(1, 0, 3, 2)));
    if (GC <= 1) m = _mm256_add_ps(m, _mm256_permute_ps(m, _MM_SHUFFLE(2, 3, 0, 1)));
    return m;
}

/* o[g][8j..8j+7] += sum_{s0 <= s < s1} sc[s * GC + g0 + g] * v_s[8j..8j+7], g < GT, j < W. */
ALWAYS_INLINE void v_tile(float *o, const float *sc, const float *v, int64_t stride, int32_t s0, int32_t s1,
                          int head_dim, const int GC, const int g0, const int GT, const int W) {
    __m256 acc[2][4];
    UNROLL
    for (int g = 0; g < GT; g++)
        UNROLL
        for (int j = 0; j < W; j++) acc[g][j] = _mm256_loadu_ps(o + (int64_t)g * head_dim + 8 * j);
    for (int32_t s = s0; s < s1; s++) {
        const float *vr = v + s * stride;
        __m256 vv[4];
        UNROLL
        for (int j = 0; j < W; j++) {
            vv[j] = _mm256_loadu_ps(vr + 8 * j);
            if (GT > 1) IN_REG(vv[j]);
        }
        UNROLL
        for (int g = 0; g < GT; g++) {
            const __m256 p = _mm256_broadcast_ss(sc + (int64_t)s * GC + g0 + g);
            UNROLL
            for (int j = 0; j < W; j++) acc[g][j] = _mm256_fmadd_ps(p, vv[j], acc[g][j]);
        }
    }
    UNROLL
    for (int g = 0; g < GT; g++)
        UNROLL
        for (int j = 0; j < W; j++) _mm256_storeu_ps(o + (int64_t)g * head_dim + 8 * j, acc[g][j]);
}

/* Attention for GC query heads (GC in 1, 2, 4, 8), n_kv >= 1, head_dim a multiple of 8;
 * sc is scratch of GC * n_kv floats. */
ALWAYS_INLINE void attn_core(float *out, const float *q, const float *kc, const float *vc, int64_t stride,
                             int32_t n_kv, int head_dim, float *sc, const int GC) {
    const int P = 8 / GC; /* positions per score tile */
    const __m256 scale = _mm256_set1_ps(1.0f / sqrtf((float)head_dim));
    __m256 mx = _mm256_set1_ps(-INFINITY);
    /* 1. scores */
    for (int32_t s0 = 0; s0 < n_kv; s0 += P) {
        const float *k[8];
        UNROLL
        for (int p = 0; p < P; p++) k[p] = kc + (s0 + p < n_kv ? s0 + p : n_kv - 1) * stride; /* tail: repeat */
        UNROLL
        for (int p = 0; p < P; p++) {
            const int32_t sp = s0 + p + PF_ROWS < n_kv ? s0 + p + PF_ROWS : n_kv - 1;
            for (int d = 0; d < head_dim; d += 16) _mm_prefetch((const char *)(kc + sp * stride + d), _MM_HINT_T0);
        }
        __m256 acc[8];
        UNROLL
        for (int i = 0; i < 8; i++) acc[i] = _mm256_setzero_ps();
        for (int d = 0; d < head_dim; d += 8) {
            __m256 kv[8];
            UNROLL
            for (int p = 0; p < P; p++) kv[p] = _mm256_loadu_ps(k[p] + d);
            UNROLL
            for (int g = 0; g < GC; g++) {
                __m256 qv = _mm256_loadu_ps(q + g * head_dim + d);
                if (P > 1) IN_REG(qv);
                UNROLL
                for (int p = 0; p < P; p++) acc[p * GC + g] = _mm256_fmadd_ps(qv, kv[p], acc[p * GC + g]);
            }
        }
        const __m256 r = _mm256_mul_ps(reduce8(acc), scale);
        mx = _mm256_max_ps(mx, r); /* repeated tail rows only repeat real scores */
        if (s0 + P <= n_kv)
            _mm256_storeu_ps(sc + (int64_t)s0 * GC, r);
        else {
            float t[8];
            _mm256_storeu_ps(t, r);
            memcpy(sc + (int64_t)s0 * GC, t, sizeof(float) * (size_t)((n_kv - s0) * GC));
        }
    }
    /* 2. exp(score - max) in place, sums */
    mx = fold_max(mx, GC);
    const int64_t n = (int64_t)n_kv * GC;
    __m256 sum = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(sc + i), mx));
        _mm256_storeu_ps(sc + i, e);
        sum = _mm256_add_ps(sum, e);
    }
    if (i < n) { /* a multiple of GC: lanes keep their heads; padding gives exp(-inf) = 0 */
        float t[8] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY};
        memcpy(t, sc + i, sizeof(float) * (size_t)(n - i));
        const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(t), mx));
        _mm256_storeu_ps(t, e);
        memcpy(sc + i, t, sizeof(float) * (size_t)(n - i));
        sum = _mm256_add_ps(sum, e);
    }
    float inv[8];
    _mm256_storeu_ps(inv, _mm256_div_ps(_mm256_set1_ps(1.0f), fold_add(sum, GC)));
    /* 3. out = P V, rows of V in blocks of <= 16 KiB */
    memset(out, 0, sizeof(float) * (size_t)GC * (size_t)head_dim);
    const int32_t B = head_dim <= 64 ? 64 : head_dim <= 128 ? 32 : 16;
    for (int32_t s0 = 0; s0 < n_kv; s0 += B) {
        const int32_t s1 = n_kv - s0 < B ? n_kv : s0 + B;
        int d0 = 0;
        for (; d0 + 32 <= head_dim; d0 += 32) {
            if (GC == 1)
                v_tile(out + d0, sc, vc + d0, stride, s0, s1, head_dim, GC, 0, 1, 4);
            else
                for (int g0 = 0; g0 < GC; g0 += 2)
                    v_tile(out + (int64_t)g0 * head_dim + d0, sc, vc + d0, stride, s0, s1, head_dim, GC, g0, 2, 4);
        }
        for (; d0 < head_dim; d0 += 8) {
            if (GC == 1)
                v_tile(out + d0, sc, vc + d0, stride, s0, s1, head_dim, GC, 0, 1, 1);
            else
                for (int g0 = 0; g0 < GC; g0 += 2)
                    v_tile(out + (int64_t)g0 * head_dim + d0, sc, vc + d0, stride, s0, s1, head_dim, GC, g0, 2, 1);
        }
    }
    UNROLL
    for (int g = 0; g < GC; g++) {
        const __m256 iv = _mm256_set1_ps(inv[g]);
        float *o = out + (int64_t)g * head_dim;
        for (int d = 0; d < head_dim; d += 8) _mm256_storeu_ps(o + d, _mm256_mul_ps(_mm256_loadu_ps(o + d), iv));
    }
}

static void attn_g8(float *out, const float *q, const float *kc, const float *vc, int64_t stride, int32_t n_kv,
                    int head_dim, float *sc) {
    attn_core(out, q, kc, vc, stride, n_kv, head_dim, sc, 8);
}
static void attn_g4(float *out, const float *q, const float *kc, const float *vc, int64_t stride, int32_t n_kv,
                    int head_dim, float *sc) {
    attn_core(out, q, kc, vc, stride, n_kv, head_dim, sc, 4);
}
static void attn_g2(float *out, const float *q, const float *kc, const float *vc, int64_t stride, int32_t n_kv,
                    int head_dim, float *sc) {
    attn_core(out, q, kc, vc, stride, n_kv, head_dim, sc, 2);
}
static void attn_g1(float *out, const float *q, const float *kc, const float *vc, int64_t stride, int32_t n_kv,
                    int head_dim, float *sc) {
    attn_core(out, q, kc, vc, stride, n_kv, head_dim, sc, 1);
}

void smoe_attn_group_avx2(float *out, const float *q, const float *kc, const float *vc, int64_t kv_stride,
                          int32_t n_kv, int n_group, int head_dim, float *scores) {
    if (head_dim % 8 || head_dim <= 0 || n_kv < 1 || n_group < 1) {
        smoe_attn_group_generic(out, q, kc, vc, kv_stride, n_kv, n_group, head_dim, scores);
        return;
    }
    /* sub-groups of 8, then 4, 2, 1 heads: each needs <= its heads x n_kv of the scratch */
    for (int g = 0; g < n_group;) {
        const int left = n_group - g, gc = left >= 8 ? 8 : left >= 4 ? 4 : left >= 2 ? 2 : 1;
        const int64_t off = (int64_t)g * head_dim;
        switch (gc) {
        case 8: attn_g8(out + off, q + off, kc, vc, kv_stride, n_kv, head_dim, scores); break;
        case 4: attn_g4(out + off, q + off, kc, vc, kv_stride, n_kv, head_dim, scores); break;
        case 2: attn_g2(out + off, q + off, kc, vc, kv_stride, n_kv, head_dim, scores); break;
        default: attn_g1(out + off, q + off, kc, vc, kv_stride, n_kv, head_dim, scores); break;
        }
        g += gc;
    }
}
