/*
 * attn_avx2.c - grouped-query attention with AVX2+FMA (see attn.h). Per KV position the
 * K row is read once and dotted with every query head of the group (8 floats at a time,
 * one accumulator per head), and the V row is read once and added to every head's output.
 * Built with -mavx2 -mfma; called only when cpufeat says the CPU has both.
 */
#include "cpu/attn.h"

#include <immintrin.h>
#include <math.h>

#define MAX_GROUP 16

static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

void smoe_attn_group_avx2(float *out, const float *q, const float *kc, const float *vc, int64_t kv_stride,
                          int32_t n_kv, int n_group, int head_dim, float *scores) {
    if (head_dim % 8 || n_group > MAX_GROUP || n_group < 1) {
        smoe_attn_group_generic(out, q, kc, vc, kv_stride, n_kv, n_group, head_dim, scores);
        return;
    }
    const float scale = 1.0f / sqrtf((float)head_dim);
    float mx[MAX_GROUP];
    for (int g = 0; g < n_group; g++) mx[g] = -INFINITY;
    for (int32_t s = 0; s < n_kv; s++) {
        const float *k = kc + s * kv_stride;
        __m256 acc[MAX_GROUP];
        for (int g = 0; g < n_group; g++) acc[g] = _mm256_setzero_ps();
        for (int d = 0; d < head_dim; d += 8) {
            const __m256 kv = _mm256_loadu_ps(k + d);
            for (int g = 0; g < n_group; g++) acc[g] = _mm256_fmadd_ps(_mm256_loadu_ps(q + g * head_dim + d), kv, acc[g]);
        }
        for (int g = 0; g < n_group; g++) {
            const float sc = hsum(acc[g]) * scale;
            scores[(int64_t)g * n_kv + s] = sc;
            mx[g] = sc > mx[g] ? sc : mx[g];
        }
    }
    float inv[MAX_GROUP];
    for (int g = 0; g < n_group; g++) {
        float *sc = scores + (int64_t)g * n_kv, sum = 0;
        for (int32_t s = 0; s < n_kv; s++) sum += (sc[s] = expf(sc[s] - mx[g]));
        inv[g] = 1.0f / sum;
    }
    /* out[g] = sum_s p[g][s] v_s, accumulated in registers chunk by chunk of head_dim */
    for (int d0 = 0; d0 < head_dim; d0 += 32) {
        const int w = head_dim - d0 < 32 ? (head_dim - d0) / 8 : 4; /* ymm per head in this chunk */
        for (int g0 = 0; g0 < n_group; g0 += 2) {
            const int ng = n_group - g0 < 2 ? 1 : 2;
            __m256 o[2][4];
            for (int g = 0; g < 2; g++)
                for (int j = 0; j < 4; j++) o[g][j] = _mm256_setzero_ps();
            for (int32_t s = 0; s < n_kv; s++) {
                const float *v = vc + s * kv_stride + d0;
                for (int g = 0; g < ng; g++) {
                    const __m256 p = _mm256_set1_ps(scores[(int64_t)(g0 + g) * n_kv + s]);
                    for (int j = 0; j < w; j++) o[g][j] = _mm256_fmadd_ps(p, _mm256_loadu_ps(v + 8 * j), o[g][j]);
                }
            }
            for (int g = 0; g < ng; g++) {
                const __m256 iv = _mm256_set1_ps(inv[g0 + g]);
                for (int j = 0; j < w; j++)
                    _mm256_storeu_ps(out + (int64_t)(g0 + g) * head_dim + d0 + 8 * j, _mm256_mul_ps(o[g][j], iv));
            }
        }
    }
}
