/*
 * dot_ref.c - the scalar reference kernels behind cpu/kernels.h: the activation
 * quantizers (f32 -> Q8_0, Q8_1, Q8_K, F16, BF16, F32) and the dot product of a weight
 * row with a quantized activation row for every weight type that has one (Q4_0, Q4_1,
 * Q5_0, Q5_1, Q8_0, Q2_K..Q6_K, F16, BF16, F32), with llama.cpp's semantics, and the
 * 1-row x 4-token vec_dot4 and the 4-row x 1-token vec_dot_4x1 of each (four of those
 * dot products), and the 2-row x 4-token vec_dot_2x4 (eight of them) of the types that
 * have a SIMD one (Q8_0, Q4_K, Q6_K).
 *
 * What it does not do: be fast (it is plain C, the fallback on CPUs without a SIMD
 * version and the yardstick the SIMD versions are tested against), pick kernels (that is
 * cpufeat.c), or quantize weights (quant/quantize.h).
 *
 * Semantics. Like ggml, each dot product sums the integer products of the quants of one
 * block exactly (int32), then scales that sum by the product of the two block scales and
 * accumulates in f32; types with a min ("type-1": Q4_1, Q5_1, Q2_K, Q4_K, Q5_K) add the
 * min times the activation's block sum (Q8_1's s field, Q8_K's bsums). So an ISA version
 * doing the same integer math differs from these only by the order of the f32 adds.
 * F16/BF16/F32 rows are summed in double (ggml's scalar code uses ggml_float = double).
 *
 * The activation quantizers follow ggml's reference quantizers:
 *   Q8_0, Q8_1: d = amax/127 (stored as fp16), q = roundf(x * (1/d)) (ties away from 0);
 *               Q8_1 adds s = fp16(d * sum(q)).
 *   Q8_K:       iscale = -127/x_m where x_m is the first element of largest |x|,
 *               q = nearest-even(iscale * x) (so x_m becomes -127), d = 1/iscale as f32
 *               (negative when x_m > 0), bsums[j] = sum of q[16j .. 16j+15].
 * ggml's own AVX2 Q8_0 quantizer differs slightly (127/amax and ties-to-even); we keep
 * the reference definition everywhere so that every ISA version is bit-identical to this
 * one. All blocks are written byte by byte (little-endian), any alignment is fine.
 */
#include "cpu/kernels.h"
#include "quant/blocks.h"
#include "quant/quant.h"
#include "smoe.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF /* keep the reference's roundings exactly as written */
#endif

/* Filled into cpufeat.c's scalar table; the prototype is repeated there (no shared
 * private header: each ISA file exports one such function). */
void smoe_kernels_fill_scalar(smoe_kernel *rows, int count);

/* ------------------------------------------------------------ small helpers */

static inline int rd_i16(const uint8_t *p) {
    const int u = smoe_rd_u16(p);
    return u >= 0x8000 ? u - 0x10000 : u; /* two's complement, without a narrowing cast */
}

static inline void wr_u16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v & 0xff);
    p[1] = (uint8_t)(v >> 8);
}

static inline void wr_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* Round to nearest, ties to even, for |f| < 2^22, independent of libm: adding 1.5*2^23
 * pushes the fraction out of the mantissa, the FPU's (default) rounding does the rest.
 * This is the rounding of ggml's nearest_int and of cvtps2dq, so SIMD code matches. */
static inline int nearest_even(float f) {
    const float v = f + 12582912.f;
    return (int)(smoe_f32_to_bits(v) & 0x007fffffu) - 0x00400000;
}

/* ------------------------------------------------------------ activation quantizers */

/* Shared by Q8_0 and Q8_1: one block of 32, returns d (f32, before fp16 rounding) and
 * the sum of the quants. */
static float q8_block(const float *x, int8_t *qs, int *sum) {
    float amax = 0.0f;
    for (int j = 0; j < SMOE_QK; j++) {
        const float a = fabsf(x[j]);
        if (a > amax) amax = a;
    }
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    int s = 0;
    for (int j = 0; j < SMOE_QK; j++) {
        /* |x*id| <= 127 up to a few ulps, so roundf stays within int8 */
        const int q = (int)roundf(x[j] * id);
        qs[j] = (int8_t)q;
        s += q;
    }
    *sum = s;
    return d;
}

static void quant_q8_0_ref(const float *src, void *dst, int64_t n) {
    smoe_block_q8_0 *y = dst;
    for (int64_t i = 0; i < n / SMOE_QK; i++, y++, src += SMOE_QK) {
        int sum;
        const float d = q8_block(src, y->qs, &sum);
        wr_u16(y->d, smoe_f32_to_f16(d));
    }
}

static void quant_q8_1_ref(const float *src, void *dst, int64_t n) {
    smoe_block_q8_1 *y = dst;
    for (int64_t i = 0; i < n / SMOE_QK; i++, y++, src += SMOE_QK) {
        int sum;
        const float d = q8_block(src, y->qs, &sum);
        wr_u16(y->d, smoe_f32_to_f16(d));
        wr_u16(y->s, smoe_f32_to_f16((float)sum * d));
    }
}

static void quant_q8_K_ref(const float *src, void *dst, int64_t n) {
    smoe_block_q8_K *y = dst;
    for (int64_t i = 0; i < n / SMOE_QK_K; i++, y++, src += SMOE_QK_K) {
        float amax = 0.0f, xmax = 0.0f;
        for (int j = 0; j < SMOE_QK_K; j++) {
            const float a = fabsf(src[j]);
            if (a > amax) { /* strict: the first element of largest |x| wins */
                amax = a;
                xmax = src[j];
            }
        }
        if (amax == 0.0f) {
            memset(y, 0, sizeof *y); /* d = 0, q = 0, bsums = 0 */
            continue;
        }
        const float iscale = -127.0f / xmax;
        for (int j = 0; j < SMOE_QK_K; j++) {
            const int q = nearest_even(iscale * src[j]);
            y->qs[j] = (int8_t)(q > 127 ? 127 : q);
        }
        for (int g = 0; g < SMOE_QK_K / 16; g++) {
            int s = 0;
            for (int j = 0; j < 16; j++) s += y->qs[16 * g + j];
            wr_u16(y->bsums[g], (uint16_t)(s & 0xffff)); /* |s| <= 2032 */
        }
        wr_u32(y->d, smoe_f32_to_bits(1.0f / iscale));
    }
}

static void quant_f16_ref(const float *src, void *dst, int64_t n) {
    uint8_t *p = dst;
    for (int64_t i = 0; i < n; i++) wr_u16(p + 2 * i, smoe_f32_to_f16(src[i]));
}

static void quant_bf16_ref(const float *src, void *dst, int64_t n) {
    uint8_t *p = dst;
    for (int64_t i = 0; i < n; i++) wr_u16(p + 2 * i, smoe_f32_to_bf16(src[i]));
}

static void quant_f32_ref(const float *src, void *dst, int64_t n) {
    memmove(dst, src, (size_t)n * sizeof(float));
}

/* ------------------------------------------------------------ legacy dot products */

static float dot_q4_0_ref(int64_t n, const void *w, const void *a) {
    const smoe_block_q4_0 *x = w;
    const smoe_block_q8_0 *y = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / SMOE_QK; i++, x++, y++) {
        int isum = 0;
        for (int j = 0; j < SMOE_QK / 2; j++) {
            isum += ((x->qs[j] & 0x0f) - 8) * y->qs[j];
            isum += ((x->qs[j] >> 4) - 8) * y->qs[j + SMOE_QK / 2];
        }
        sum += (float)isum * (smoe_rd_f16(x->d) * smoe_rd_f16(y->d));
    }
    return sum;
}

static float dot_q4_1_ref(int64_t n, const void *w, const void *a) {
    const smoe_block_q4_1 *x = w;
    const smoe_block_q8_1 *y = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / SMOE_QK; i++, x++, y++) {
        int isum = 0;
        for (int j = 0; j < SMOE_QK / 2; j++) {
            isum += (x->qs[j] & 0x0f) * y->qs[j];
            isum += (x->qs[j] >> 4) * y->qs[j + SMOE_QK / 2];
        }
        /* sum(d*q + m)(dy*qy) = d*dy*isum + m*(dy*sum(qy)) and s holds dy*sum(qy) */
        sum += (float)isum * (smoe_rd_f16(x->d) * smoe_rd_f16(y->d)) +
               smoe_rd_f16(x->m) * smoe_rd_f16(y->s);
    }
    return sum;
}

static float dot_q5_0_ref(int64_t n, const void *w, const void *a) {
    const smoe_block_q5_0 *x = w;
    const smoe_block_q8_0 *y = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / SMOE_QK; i++, x++, y++) {
        const uint32_t qh = smoe_rd_u32(x->qh);
        int isum = 0;
        for (int j = 0; j < SMOE_QK / 2; j++) {
            const int lo = (int)((x->qs[j] & 0x0f) | (((qh >> j) & 1u) << 4)) - 16;
            const int hi = (int)((x->qs[j] >> 4) | (((qh >> (j + 16)) & 1u) << 4)) - 16;
            isum += lo * y->qs[j] + hi * y->qs[j + SMOE_QK / 2];
        }
        sum += (float)isum * (smoe_rd_f16(x->d) * smoe_rd_f16(y->d));
    }
    return sum;
}

static float dot_q5_1_ref(int64_t n, const void *w, const void *a) {
    const smoe_block_q5_1 *x = w;
    const smoe_block_q8_1 *y = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / SMOE_QK; i++, x++, y++) {
        const uint32_t qh = smoe_rd_u32(x->qh);
        int isum = 0;
        for (int j = 0; j < SMOE_QK / 2; j++) {
            const int lo = (int)((x->qs[j] & 0x0f) | (((qh >> j) & 1u) << 4));
            const int hi = (int)((x->qs[j] >> 4) | (((qh >> (j + 16)) & 1u) << 4));
            isum += lo * y->qs[j] + hi * y->qs[j + SMOE_QK / 2];
        }
        sum += (float)isum * (smoe_rd_f16(x->d) * smoe_rd_f16(y->d)) +
               smoe_rd_f16(x->m) * smoe_rd_f16(y->s);
    }
    return sum;
}

static float dot_q8_0_ref(int64_t n, const void *w, const void *a) {
    const smoe_block_q8_0 *x = w;
    const smoe_block_q8_0 *y = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / SMOE_QK; i++, x++, y++) {
        int isum = 0;
        for (int j = 0; j < SMOE_QK; j++) isum += x->qs[j] * y->qs[j];
        sum += (float)isum * (smoe_rd_f16(x->d) * smoe_rd_f16(y->d));
    }
    return sum;
}

/* ------------------------------------------------------------ K-quant dot products */

static inline float q8k_d(const smoe_block_q8_K *y) {
    return smoe_bits_to_f32(smoe_rd_u32(y->d));
}

/* Q2_K: value = d*(sc&15)*q - dmin*(sc>>4), sub-blocks of 16, so the min part is
 * dmin * sum_j (sc_j>>4) * bsums_j. The quant layout is that of smoe_row_q2_K. */
static float dot_q2_K_ref(int64_t n, const void *w, const void *a) {
    const smoe_block_q2_K *x = w;
    const smoe_block_q8_K *y = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / SMOE_QK_K; i++, x++, y++) {
        int isum = 0, msum = 0;
        for (int j = 0; j < 16; j++) msum += (x->scales[j] >> 4) * rd_i16(y->bsums[j]);
        for (int half = 0; half < 2; half++) {
            const uint8_t *q = x->qs + 32 * half;
            const int8_t *q8 = y->qs + 128 * half;
            for (int k = 0; k < 4; k++) {
                for (int sub = 0; sub < 2; sub++) {
                    int s = 0;
                    for (int l = 16 * sub; l < 16 * sub + 16; l++)
                        s += ((q[l] >> (2 * k)) & 3) * q8[32 * k + l];
                    isum += (x->scales[8 * half + 2 * k + sub] & 0x0f) * s;
                }
            }
        }
        const float dy = q8k_d(y);
        sum += dy * smoe_rd_f16(x->d) * (float)isum - dy * smoe_rd_f16(x->dmin) * (float)msum;
    }
    return sum;
}

/* The 6-bit Q3_K scale i, unbiased (-32..31); see q3_scale in q_k.c. */
static int q3k_scale(const uint8_t *s, int i) {
    const int lo = i < 8 ? (s[i] & 0x0f) : (s[i - 8] >> 4);
    const int hi = (s[8 + (i & 3)] >> (2 * (i >> 2))) & 3;
    return (lo | (hi << 4)) - 32;
}

static float dot_q3_K_ref(int64_t n, const void *w, const void *a) {
    const smoe_block_q3_K *x = w;
    const smoe_block_q8_K *y = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / SMOE_QK_K; i++, x++, y++) {
        int isum = 0;
        for (int half = 0; half < 2; half++) {
            const uint8_t *q = x->qs + 32 * half;
            const int8_t *q8 = y->qs + 128 * half;
            for (int k = 0; k < 4; k++) {
                const int hbit = 1 << (4 * half + k);
                for (int sub = 0; sub < 2; sub++) {
                    int s = 0;
                    for (int l = 16 * sub; l < 16 * sub + 16; l++) {
                        const int v = ((q[l] >> (2 * k)) & 3) - ((x->hmask[l] & hbit) ? 0 : 4);
                        s += v * q8[32 * k + l];
                    }
                    isum += q3k_scale(x->scales, 8 * half + 2 * k + sub) * s;
                }
            }
        }
        sum += q8k_d(y) * smoe_rd_f16(x->d) * (float)isum;
    }
    return sum;
}

/* Q4_K/Q5_K scale and min j (6 bits each); see k_scale_min in q_k.c. */
static void k_scale_min(const uint8_t *s, int j, int *sc, int *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

/* Q4_K and Q5_K share everything but the fifth bit (qh == NULL for Q4_K). Sub-blocks of
 * 32 values, so the min of sub-block j meets bsums 2j and 2j+1. */
static float dot_k45(const uint8_t *dd, const uint8_t *dmin, const uint8_t *scales,
                     const uint8_t *qs, const uint8_t *qh, const smoe_block_q8_K *y) {
    int isum = 0, msum = 0;
    for (int c = 0; c < 4; c++) {
        const uint8_t *q = qs + 32 * c;
        const int8_t *q8 = y->qs + 64 * c;
        int sc1, m1, sc2, m2;
        k_scale_min(scales, 2 * c, &sc1, &m1);
        k_scale_min(scales, 2 * c + 1, &sc2, &m2);
        int s1 = 0, s2 = 0;
        for (int l = 0; l < 32; l++) {
            int lo = q[l] & 0x0f, hi = q[l] >> 4;
            if (qh) {
                lo |= ((qh[l] >> (2 * c)) & 1) << 4;
                hi |= ((qh[l] >> (2 * c + 1)) & 1) << 4;
            }
            s1 += lo * q8[l];
            s2 += hi * q8[32 + l];
        }
        isum += sc1 * s1 + sc2 * s2;
        msum += m1 * (rd_i16(y->bsums[4 * c]) + rd_i16(y->bsums[4 * c + 1])) +
                m2 * (rd_i16(y->bsums[4 * c + 2]) + rd_i16(y->bsums[4 * c + 3]));
    }
    const float dy = q8k_d(y);
    return dy * smoe_rd_f16(dd) * (float)isum - dy * smoe_rd_f16(dmin) * (float)msum;
}

static float dot_q4_K_ref(int64_t n, const void *w, const void *a) {
    const smoe_block_q4_K *x = w;
    const smoe_block_q8_K *y = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / SMOE_QK_K; i++, x++, y++)
        sum += dot_k45(x->d, x->dmin, x->scales, x->qs, NULL, y);
    return sum;
}

static float dot_q5_K_ref(int64_t n, const void *w, const void *a) {
    const smoe_block_q5_K *x = w;
    const smoe_block_q8_K *y = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / SMOE_QK_K; i++, x++, y++)
        sum += dot_k45(x->d, x->dmin, x->scales, x->qs, x->qh, y);
    return sum;
}

/* Q6_K: layout of smoe_row_q6_K; values are q - 32 with q in 0..63. */
static float dot_q6_K_ref(int64_t n, const void *w, const void *a) {
    const smoe_block_q6_K *x = w;
    const smoe_block_q8_K *y = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / SMOE_QK_K; i++, x++, y++) {
        int isum = 0;
        for (int half = 0; half < 2; half++) {
            const uint8_t *ql = x->ql + 64 * half;
            const uint8_t *qh = x->qh + 32 * half;
            const int8_t *sc = x->scales + 8 * half;
            const int8_t *q8 = y->qs + 128 * half;
            int s[8] = {0};
            for (int l = 0; l < 32; l++) {
                const int q0 = ((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int q1 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q2 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q3 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                /* value 32k + l belongs to sub-block 2k + l/16 of this half */
                s[0 + l / 16] += q0 * q8[l];
                s[2 + l / 16] += q1 * q8[32 + l];
                s[4 + l / 16] += q2 * q8[64 + l];
                s[6 + l / 16] += q3 * q8[96 + l];
            }
            for (int j = 0; j < 8; j++) isum += sc[j] * s[j];
        }
        sum += q8k_d(y) * smoe_rd_f16(x->d) * (float)isum;
    }
    return sum;
}

/* ------------------------------------------------------------ float dot products */

static float dot_f16_ref(int64_t n, const void *w, const void *a) {
    const uint8_t *x = w, *y = a;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)smoe_rd_f16(x + 2 * i) * (double)smoe_rd_f16(y + 2 * i);
    return (float)sum;
}

static float dot_bf16_ref(int64_t n, const void *w, const void *a) {
    const uint8_t *x = w, *y = a;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)smoe_bf16_to_f32(smoe_rd_u16(x + 2 * i)) *
               (double)smoe_bf16_to_f32(smoe_rd_u16(y + 2 * i));
    return (float)sum;
}

static float dot_f32_ref(int64_t n, const void *w, const void *a) {
    const uint8_t *x = w, *y = a;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        float u, v;
        memcpy(&u, x + 4 * i, sizeof u); /* rows may be unaligned */
        memcpy(&v, y + 4 * i, sizeof v);
        sum += (double)u * (double)v;
    }
    return (float)sum;
}

/* ------------------------------------------------------------ 1 row x 4 tokens */

/* The reference vec_dot4: four reference dots (exactly vec_dot's results). */
#define DOT4_REF(name, dot)                                                                 \
    static void name(int64_t n, const void *w, const void *a, size_t as, float *out) {    \
        for (int j = 0; j < 4; j++) out[j] = dot(n, w, (const uint8_t *)a + (size_t)j * as); \
    }

DOT4_REF(dot4_q4_0_ref, dot_q4_0_ref)
DOT4_REF(dot4_q4_1_ref, dot_q4_1_ref)
DOT4_REF(dot4_q5_0_ref, dot_q5_0_ref)
DOT4_REF(dot4_q5_1_ref, dot_q5_1_ref)
DOT4_REF(dot4_q8_0_ref, dot_q8_0_ref)
DOT4_REF(dot4_q2_K_ref, dot_q2_K_ref)
DOT4_REF(dot4_q3_K_ref, dot_q3_K_ref)
DOT4_REF(dot4_q4_K_ref, dot_q4_K_ref)
DOT4_REF(dot4_q5_K_ref, dot_q5_K_ref)
DOT4_REF(dot4_q6_K_ref, dot_q6_K_ref)
DOT4_REF(dot4_f16_ref, dot_f16_ref)
DOT4_REF(dot4_bf16_ref, dot_bf16_ref)
DOT4_REF(dot4_f32_ref, dot_f32_ref)

/* The reference vec_dot_4x1: four reference dots, one per weight row. */
#define DOT4X1_REF(name, dot)                                                                      \
    static void name(int64_t n, const void *w, size_t ws, const void *a, float *out) {             \
        for (int r = 0; r < 4; r++) out[r] = dot(n, (const uint8_t *)w + (size_t)r * ws, a);       \
    }

DOT4X1_REF(dot4x1_q4_0_ref, dot_q4_0_ref)
DOT4X1_REF(dot4x1_q4_1_ref, dot_q4_1_ref)
DOT4X1_REF(dot4x1_q5_0_ref, dot_q5_0_ref)
DOT4X1_REF(dot4x1_q5_1_ref, dot_q5_1_ref)
DOT4X1_REF(dot4x1_q8_0_ref, dot_q8_0_ref)
DOT4X1_REF(dot4x1_q2_K_ref, dot_q2_K_ref)
DOT4X1_REF(dot4x1_q3_K_ref, dot_q3_K_ref)
DOT4X1_REF(dot4x1_q4_K_ref, dot_q4_K_ref)
DOT4X1_REF(dot4x1_q5_K_ref, dot_q5_K_ref)
DOT4X1_REF(dot4x1_q6_K_ref, dot_q6_K_ref)
DOT4X1_REF(dot4x1_f16_ref, dot_f16_ref)
DOT4X1_REF(dot4x1_bf16_ref, dot_bf16_ref)

/* ------------------------------------------------------------ 2 rows x 4 tokens */

/* The reference vec_dot_2x4: eight reference dots (exactly vec_dot's results). */
#define DOT2X4_REF(name, dot)                                                                          \
    static void name(int64_t n, const void *w, size_t ws, const void *a, size_t as, float *out) {      \
        for (int r = 0; r < 2; r++)                                                                    \
            for (int j = 0; j < 4; j++)                                                                \
                out[4 * r + j] = dot(n, (const uint8_t *)w + (size_t)r * ws, (const uint8_t *)a + (size_t)j * as); \
    }

DOT2X4_REF(dot2x4_q8_0_ref, dot_q8_0_ref)
DOT2X4_REF(dot2x4_q4_K_ref, dot_q4_K_ref)
DOT2X4_REF(dot2x4_q6_K_ref, dot_q6_K_ref)

/* ------------------------------------------------------------ 1 row x 2-3 tokens */

/* The reference vec_dot_few: nt reference dots (exactly vec_dot's results). */
#define DOTFEW_REF(name, dot)                                                                      \
    static void name(int64_t n, const void *w, const void *a, size_t as, int nt, float *out) {    \
        for (int j = 0; j < nt; j++) out[j] = dot(n, w, (const uint8_t *)a + (size_t)j * as);      \
    }

DOTFEW_REF(dotfew_q4_K_ref, dot_q4_K_ref)
DOTFEW_REF(dotfew_q6_K_ref, dot_q6_K_ref)

/* ------------------------------------------------------------ 4 rows x 1-3 tokens */

/* The reference vec_dot_4xn (F32, the type that has a SIMD one): 4 x nt reference dots. */
static void dot4xn_f32_ref(int64_t n, const void *w, size_t ws, const void *a, size_t as, int nt, float *out,
                           size_t os) {
    for (int j = 0; j < nt; j++)
        for (int r = 0; r < 4; r++)
            out[(size_t)j * os + (size_t)r] =
                dot_f32_ref(n, (const uint8_t *)w + (size_t)r * ws, (const uint8_t *)a + (size_t)j * as);
}

/* ------------------------------------------------------------ the table */

static void set_row(smoe_kernel *rows, int count, int t, int vt, smoe_vec_dot_fn dot,
                    smoe_from_float_fn q, smoe_vec_dot4_fn dot4, smoe_vec_dot_4x1_fn dot4x1) {
    if (t >= count) return;
    rows[t] = (smoe_kernel){
        .isa = "scalar", .vec_dot_type = vt, .vec_dot = dot, .act_quant = q, .vec_dot4 = dot4, .vec_dot_4x1 = dot4x1};
}

void smoe_kernels_fill_scalar(smoe_kernel *rows, int count) {
    set_row(rows, count, SMOE_DTYPE_Q4_0, SMOE_DTYPE_Q8_0, dot_q4_0_ref, quant_q8_0_ref, dot4_q4_0_ref, dot4x1_q4_0_ref);
    set_row(rows, count, SMOE_DTYPE_Q4_1, SMOE_DTYPE_Q8_1, dot_q4_1_ref, quant_q8_1_ref, dot4_q4_1_ref, dot4x1_q4_1_ref);
    set_row(rows, count, SMOE_DTYPE_Q5_0, SMOE_DTYPE_Q8_0, dot_q5_0_ref, quant_q8_0_ref, dot4_q5_0_ref, dot4x1_q5_0_ref);
    set_row(rows, count, SMOE_DTYPE_Q5_1, SMOE_DTYPE_Q8_1, dot_q5_1_ref, quant_q8_1_ref, dot4_q5_1_ref, dot4x1_q5_1_ref);
    set_row(rows, count, SMOE_DTYPE_Q8_0, SMOE_DTYPE_Q8_0, dot_q8_0_ref, quant_q8_0_ref, dot4_q8_0_ref, dot4x1_q8_0_ref);
    set_row(rows, count, SMOE_DTYPE_Q2_K, SMOE_DTYPE_Q8_K, dot_q2_K_ref, quant_q8_K_ref, dot4_q2_K_ref, dot4x1_q2_K_ref);
    set_row(rows, count, SMOE_DTYPE_Q3_K, SMOE_DTYPE_Q8_K, dot_q3_K_ref, quant_q8_K_ref, dot4_q3_K_ref, dot4x1_q3_K_ref);
    set_row(rows, count, SMOE_DTYPE_Q4_K, SMOE_DTYPE_Q8_K, dot_q4_K_ref, quant_q8_K_ref, dot4_q4_K_ref, dot4x1_q4_K_ref);
    set_row(rows, count, SMOE_DTYPE_Q5_K, SMOE_DTYPE_Q8_K, dot_q5_K_ref, quant_q8_K_ref, dot4_q5_K_ref, dot4x1_q5_K_ref);
    set_row(rows, count, SMOE_DTYPE_Q6_K, SMOE_DTYPE_Q8_K, dot_q6_K_ref, quant_q8_K_ref, dot4_q6_K_ref, dot4x1_q6_K_ref);
    set_row(rows, count, SMOE_DTYPE_F16, SMOE_DTYPE_F16, dot_f16_ref, quant_f16_ref, dot4_f16_ref, dot4x1_f16_ref);
    set_row(rows, count, SMOE_DTYPE_BF16, SMOE_DTYPE_BF16, dot_bf16_ref, quant_bf16_ref, dot4_bf16_ref, dot4x1_bf16_ref);
    set_row(rows, count, SMOE_DTYPE_F32, SMOE_DTYPE_F32, dot_f32_ref, quant_f32_ref, dot4_f32_ref, NULL);
    /* 2 rows x 4 tokens: the types that have a SIMD 2x4 kernel */
    if (SMOE_DTYPE_Q8_0 < count) rows[SMOE_DTYPE_Q8_0].vec_dot_2x4 = dot2x4_q8_0_ref;
    if (SMOE_DTYPE_Q4_K < count) rows[SMOE_DTYPE_Q4_K].vec_dot_2x4 = dot2x4_q4_K_ref;
    if (SMOE_DTYPE_Q6_K < count) rows[SMOE_DTYPE_Q6_K].vec_dot_2x4 = dot2x4_q6_K_ref;
    /* 1 row x 2-3 tokens: the types that have a SIMD one */
    if (SMOE_DTYPE_Q4_K < count) rows[SMOE_DTYPE_Q4_K].vec_dot_few = dotfew_q4_K_ref;
    if (SMOE_DTYPE_Q6_K < count) rows[SMOE_DTYPE_Q6_K].vec_dot_few = dotfew_q6_K_ref;
    /* 4 rows x 1-3 tokens: F32 */
    if (SMOE_DTYPE_F32 < count) rows[SMOE_DTYPE_F32].vec_dot_4xn = dot4xn_f32_ref;
}
