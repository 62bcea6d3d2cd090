/*
 * dot_neon.c - AArch64 Advanced SIMD (NEON) versions of the kernels of cpu/kernels.h:
 * every weight type's dot product (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K, F16, BF16,
 * F32) and the activation quantizers (Q8_0, Q8_1, Q8_K, F16, BF16; F32 is a copy).
 *
 * What it does not do: it is built only for aarch64 (the Makefile drops src/cpu/arm/
 * elsewhere) and used only on little-endian targets; the int8 dot products use SDOT
 * (vdotq_s32) only when the whole build targets it (__ARM_FEATURE_DOTPROD, e.g.
 * -march=armv8.2-a+dotprod), otherwise widening multiplies - no runtime dotprod switch.
 * Tested under qemu-aarch64 in both forms.
 *
 * Exactness, as for the AVX2 file: the integer block sums are those of the scalar
 * reference (int8 x int8 products fit int16, pairs are accumulated in int32), only the
 * f32 summation order differs. The quantizers are bit-identical to dot_ref.c: the same
 * scalar d and 1/d, x * (1/d) is one IEEE multiply, FCVTAS rounds like roundf (ties
 * away), FCVTNS like nearest_even, FCVTN (f32 -> f16) to nearest even.
 */
#include "cpu/kernels.h"
#include "quant/blocks.h"
#include "quant/quant.h"
#include "smoe.h"

#include <arm_neon.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

void smoe_kernels_fill_neon(smoe_kernel *rows, int count);

/* Small helpers called with constant group indices: inlined so that their masks fold. */
#define AI static inline __attribute__((always_inline))

/* ------------------------------------------------------------ helpers */

static inline float rd_f16(const uint8_t *p) {
    __fp16 h;
    memcpy(&h, p, sizeof h);
    return (float)h;
}

static inline float rd_f32(const uint8_t *p) {
    float f;
    memcpy(&f, p, sizeof f);
    return f;
}

static inline int8x16_t ld_s8(const void *p) { return vld1q_s8((const int8_t *)p); }
static inline uint8x16_t ld_u8(const void *p) { return vld1q_u8((const uint8_t *)p); }

/* acc += the 16 products a*b, summed in groups of four into the 4 int32 lanes. */
static inline int32x4_t dot16(int32x4_t acc, int8x16_t a, int8x16_t b) {
#if defined(__ARM_FEATURE_DOTPROD)
    return vdotq_s32(acc, a, b);
#else
    /* |a*b| <= 128*128 fits int16; pairs are added into int32 */
    const int16x8_t p0 = vmull_s8(vget_low_s8(a), vget_low_s8(b));
    const int16x8_t p1 = vmull_high_s8(a, b);
    return vpadalq_s16(vpadalq_s16(acc, p0), p1);
#endif
}

static inline int32x4_t dot16z(int8x16_t a, int8x16_t b) { return dot16(vdupq_n_s32(0), a, b); }

/* ------------------------------------------------------------ activation quantizers */

static float q8_block(const float *x, int8_t *qs, int *sum) {
    float32x4_t v[8];
    for (int k = 0; k < 8; k++) v[k] = vld1q_f32(x + 4 * k);
    float32x4_t m = vabsq_f32(v[0]);
    for (int k = 1; k < 8; k++) m = vmaxq_f32(m, vabsq_f32(v[k]));
    const float amax = vmaxvq_f32(m);
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    int32x4_t s = vdupq_n_s32(0);
    for (int k = 0; k < 8; k += 2) {
        /* FCVTAS: round to nearest, ties away from zero, as roundf */
        const int32x4_t a = vcvtaq_s32_f32(vmulq_n_f32(v[k], id));
        const int32x4_t b = vcvtaq_s32_f32(vmulq_n_f32(v[k + 1], id));
        s = vaddq_s32(s, vaddq_s32(a, b));
        const int16x8_t h = vcombine_s16(vqmovn_s32(a), vqmovn_s32(b));
        vst1_s8(qs + 4 * k, vqmovn_s16(h));
    }
    *sum = vaddvq_s32(s);
    return d;
}

static inline uint16_t to_f16(float f) {
    const __fp16 h = (__fp16)f; /* FCVT: nearest even, NaN quieted keeping payload top bits */
    uint16_t u;
    memcpy(&u, &h, sizeof u);
    return u;
}

static void quant_q8_0(const float *src, void *dst, int64_t n) {
    smoe_block_q8_0 *y = dst;
    for (int64_t i = 0; i < n / SMOE_QK; i++, y++, src += SMOE_QK) {
        int sum;
        const uint16_t h = to_f16(q8_block(src, y->qs, &sum));
        memcpy(y->d, &h, 2);
    }
}

static void quant_q8_1(const float *src, void *dst, int64_t n) {
    smoe_block_q8_1 *y = dst;
    for (int64_t i = 0; i < n / SMOE_QK; i++, y++, src += SMOE_QK) {
        int sum;
        const float d = q8_block(src, y->qs, &sum);
        const uint16_t hd = to_f16(d), hs = to_f16((float)sum * d);
        memcpy(y->d, &hd, 2);
        memcpy(y->s, &hs, 2);
    }
}

static void quant_q8_K(const float *src, void *dst, int64_t n) {
    smoe_block_q8_K *y = dst;
    for (int64_t i = 0; i < n / SMOE_QK_K; i++, y++, src += SMOE_QK_K) {
        float32x4_t m = vdupq_n_f32(0.0f);
        for (int j = 0; j < SMOE_QK_K; j += 4) m = vmaxq_f32(m, vabsq_f32(vld1q_f32(src + j)));
        const float amax = vmaxvq_f32(m);
        if (amax == 0.0f) {
            memset(y, 0, sizeof *y);
            continue;
        }
        float xmax = amax; /* the reference keeps the sign of the first |x| == amax */
        for (int j = 0; j < SMOE_QK_K; j++)
            if (fabsf(src[j]) == amax) {
                xmax = src[j];
                break;
            }
        const float iscale = -127.0f / xmax;
        for (int g = 0; g < SMOE_QK_K / 16; g++) {
            int32x4_t q[4];
            for (int k = 0; k < 4; k++) /* FCVTNS: nearest, ties to even */
                q[k] = vminq_s32(vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(src + 16 * g + 4 * k), iscale)), vdupq_n_s32(127));
            const int16x8_t h0 = vcombine_s16(vqmovn_s32(q[0]), vqmovn_s32(q[1]));
            const int16x8_t h1 = vcombine_s16(vqmovn_s32(q[2]), vqmovn_s32(q[3]));
            vst1q_s8(y->qs + 16 * g, vcombine_s8(vqmovn_s16(h0), vqmovn_s16(h1)));
            const int16_t bs = (int16_t)vaddvq_s32(vaddq_s32(vaddq_s32(q[0], q[1]), vaddq_s32(q[2], q[3])));
            memcpy(y->bsums[g], &bs, 2);
        }
        const float d = 1.0f / iscale;
        memcpy(y->d, &d, 4);
    }
}

static void quant_f16(const float *src, void *dst, int64_t n) {
    uint8_t *p = dst;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const float16x8_t h = vcvt_high_f16_f32(vcvt_f16_f32(vld1q_f32(src + i)), vld1q_f32(src + i + 4));
        vst1q_u8(p + 2 * i, vreinterpretq_u8_f16(h));
    }
    for (; i < n; i++) {
        const uint16_t h = smoe_f32_to_f16(src[i]);
        memcpy(p + 2 * i, &h, 2);
    }
}

/* 4 floats -> 4 bf16 (smoe_f32_to_bf16 rules: nearest even, NaN stays a quiet NaN). */
static inline uint16x4_t bf16x4(float32x4_t f) {
    const uint32x4_t u = vreinterpretq_u32_f32(f);
    const uint32x4_t lsb = vandq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(1));
    const uint32x4_t r = vaddq_u32(u, vaddq_u32(lsb, vdupq_n_u32(0x7fff)));
    const uint32x4_t nan = vcgtq_u32(vandq_u32(u, vdupq_n_u32(0x7fffffff)), vdupq_n_u32(0x7f800000));
    const uint32x4_t qnan = vorrq_u32(u, vdupq_n_u32(0x400000)); /* 0x40 in the top half */
    return vshrn_n_u32(vbslq_u32(nan, qnan, r), 16);
}

static void quant_bf16(const float *src, void *dst, int64_t n) {
    uint8_t *p = dst;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const uint16x8_t h = vcombine_u16(bf16x4(vld1q_f32(src + i)), bf16x4(vld1q_f32(src + i + 4)));
        vst1q_u8(p + 2 * i, vreinterpretq_u8_u16(h));
    }
    for (; i < n; i++) {
        const uint16_t h = smoe_f32_to_bf16(src[i]);
        memcpy(p + 2 * i, &h, 2);
    }
}

static void quant_f32(const float *src, void *dst, int64_t n) {
    memmove(dst, src, (size_t)n * sizeof(float));
}

/* ------------------------------------------------------------ legacy dot products */

/* The fifth bits of a Q5 block for values 0..15 (lo) and 16..31 (hi), as 0x10 / 0. */
static inline void q5_bits(const uint8_t *qh, uint8x16_t *lo, uint8x16_t *hi) {
    static const uint8_t bitsel[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    const uint8x16_t sel = vld1q_u8(bitsel);
    const uint8x16_t b4 = vdupq_n_u8(0x10);
    const uint8x16_t l = vcombine_u8(vdup_n_u8(qh[0]), vdup_n_u8(qh[1]));
    const uint8x16_t h = vcombine_u8(vdup_n_u8(qh[2]), vdup_n_u8(qh[3]));
    *lo = vandq_u8(vtstq_u8(l, sel), b4);
    *hi = vandq_u8(vtstq_u8(h, sel), b4);
}

/* Per block: the int32x4 partial sums of the integer dot product. */
static inline int32x4_t q4_0_isum(const smoe_block_q4_0 *x, const smoe_block_q8_0 *y) {
    const uint8x16_t q = ld_u8(x->qs);
    const int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0x0f))), vdupq_n_s8(8));
    const int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(q, 4)), vdupq_n_s8(8));
    return dot16(dot16z(lo, ld_s8(y->qs)), hi, ld_s8(y->qs + 16));
}

static inline int32x4_t q4_1_isum(const smoe_block_q4_1 *x, const smoe_block_q8_1 *y) {
    const uint8x16_t q = ld_u8(x->qs);
    const int8x16_t lo = vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0x0f)));
    const int8x16_t hi = vreinterpretq_s8_u8(vshrq_n_u8(q, 4));
    return dot16(dot16z(lo, ld_s8(y->qs)), hi, ld_s8(y->qs + 16));
}

static inline int32x4_t q5_0_isum(const smoe_block_q5_0 *x, const smoe_block_q8_0 *y) {
    uint8x16_t bl, bh;
    q5_bits(x->qh, &bl, &bh);
    const uint8x16_t q = ld_u8(x->qs);
    const int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(vandq_u8(q, vdupq_n_u8(0x0f)), bl)), vdupq_n_s8(16));
    const int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(q, 4), bh)), vdupq_n_s8(16));
    return dot16(dot16z(lo, ld_s8(y->qs)), hi, ld_s8(y->qs + 16));
}

static inline int32x4_t q5_1_isum(const smoe_block_q5_1 *x, const smoe_block_q8_1 *y) {
    uint8x16_t bl, bh;
    q5_bits(x->qh, &bl, &bh);
    const uint8x16_t q = ld_u8(x->qs);
    const int8x16_t lo = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(q, vdupq_n_u8(0x0f)), bl));
    const int8x16_t hi = vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(q, 4), bh));
    return dot16(dot16z(lo, ld_s8(y->qs)), hi, ld_s8(y->qs + 16));
}

static inline int32x4_t q8_0_isum(const smoe_block_q8_0 *x, const smoe_block_q8_0 *y) {
    return dot16(dot16z(ld_s8(x->qs), ld_s8(y->qs)), ld_s8(x->qs + 16), ld_s8(y->qs + 16));
}

/* Two blocks per step into two accumulators, then the odd one. */
#define LEGACY_DOT0(name, wtype, atype, isum)                                                  \
    static float name(int64_t n, const void *w, const void *a) {                               \
        const wtype *x = w;                                                                    \
        const atype *y = a;                                                                    \
        const int64_t nb = n / SMOE_QK;                                                        \
        float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = acc0;                                     \
        int64_t i = 0;                                                                         \
        for (; i + 2 <= nb; i += 2) {                                                          \
            acc0 = vmlaq_n_f32(acc0, vcvtq_f32_s32(isum(x + i, y + i)), rd_f16(x[i].d) * rd_f16(y[i].d)); \
            acc1 = vmlaq_n_f32(acc1, vcvtq_f32_s32(isum(x + i + 1, y + i + 1)),               \
                               rd_f16(x[i + 1].d) * rd_f16(y[i + 1].d));                       \
        }                                                                                      \
        if (i < nb)                                                                            \
            acc0 = vmlaq_n_f32(acc0, vcvtq_f32_s32(isum(x + i, y + i)), rd_f16(x[i].d) * rd_f16(y[i].d)); \
        return vaddvq_f32(vaddq_f32(acc0, acc1));                                              \
    }

#define LEGACY_DOT1(name, wtype, atype, isum)                                                  \
    static float name(int64_t n, const void *w, const void *a) {                               \
        const wtype *x = w;                                                                    \
        const atype *y = a;                                                                    \
        const int64_t nb = n / SMOE_QK;                                                        \
        float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = acc0;                                     \
        float ms = 0.0f;                                                                       \
        int64_t i = 0;                                                                         \
        for (; i + 2 <= nb; i += 2) {                                                          \
            acc0 = vmlaq_n_f32(acc0, vcvtq_f32_s32(isum(x + i, y + i)), rd_f16(x[i].d) * rd_f16(y[i].d)); \
            acc1 = vmlaq_n_f32(acc1, vcvtq_f32_s32(isum(x + i + 1, y + i + 1)),               \
                               rd_f16(x[i + 1].d) * rd_f16(y[i + 1].d));                       \
            ms += rd_f16(x[i].m) * rd_f16(y[i].s) + rd_f16(x[i + 1].m) * rd_f16(y[i + 1].s);   \
        }                                                                                      \
        if (i < nb) {                                                                          \
            acc0 = vmlaq_n_f32(acc0, vcvtq_f32_s32(isum(x + i, y + i)), rd_f16(x[i].d) * rd_f16(y[i].d)); \
            ms += rd_f16(x[i].m) * rd_f16(y[i].s);                                             \
        }                                                                                      \
        return vaddvq_f32(vaddq_f32(acc0, acc1)) + ms;                                         \
    }

LEGACY_DOT0(dot_q4_0, smoe_block_q4_0, smoe_block_q8_0, q4_0_isum)
LEGACY_DOT1(dot_q4_1, smoe_block_q4_1, smoe_block_q8_1, q4_1_isum)
LEGACY_DOT0(dot_q5_0, smoe_block_q5_0, smoe_block_q8_0, q5_0_isum)
LEGACY_DOT1(dot_q5_1, smoe_block_q5_1, smoe_block_q8_1, q5_1_isum)
LEGACY_DOT0(dot_q8_0, smoe_block_q8_0, smoe_block_q8_0, q8_0_isum)

/* ------------------------------------------------------------ K-quant dot products */

/* sum_j m[j] * bsums[j] for 16 small non-negative multipliers. */
static inline int mins_dot16(const uint8_t *m, const smoe_block_q8_K *y) {
    const int16x8_t m0 = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(m)));
    const int16x8_t m1 = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(m + 8)));
    const int16x8_t b0 = vreinterpretq_s16_u8(ld_u8(y->bsums[0]));
    const int16x8_t b1 = vreinterpretq_s16_u8(ld_u8(y->bsums[8]));
    int32x4_t s = vmull_s16(vget_low_s16(m0), vget_low_s16(b0));
    s = vmlal_high_s16(s, m0, b0);
    s = vmlal_s16(s, vget_low_s16(m1), vget_low_s16(b1));
    s = vmlal_high_s16(s, m1, b1);
    return vaddvq_s32(s);
}

/* Q2_K group (half h, field k, 16-byte part j): sub-block 8h + 2k + j. */
AI int32x4_t q2k_group(int32x4_t acc, uint8x16_t q, int k, const int8_t *q8, int sc) {
    /* USHL by a negative count: a right shift that needs no immediate */
    const uint8x16_t f = vshlq_u8(q, vdupq_n_s8((int8_t)(-2 * k)));
    const int8x16_t v = vreinterpretq_s8_u8(vandq_u8(f, vdupq_n_u8(3)));
    return vmlaq_n_s32(acc, dot16z(v, ld_s8(q8)), sc);
}

static float dot_q2_K(int64_t n, const void *w, const void *a) {
    const smoe_block_q2_K *x = w;
    const smoe_block_q8_K *y = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / SMOE_QK_K; i++, x++, y++) {
        uint8_t mins[16];
        vst1q_u8(mins, vshrq_n_u8(ld_u8(x->scales), 4));
        const int msum = mins_dot16(mins, y);
        int32x4_t acc = vdupq_n_s32(0);
        for (int h = 0; h < 2; h++) {
            const uint8_t *sc = x->scales + 8 * h;
            const int8_t *q8 = y->qs + 128 * h;
            for (int j = 0; j < 2; j++) {
                const uint8x16_t q = ld_u8(x->qs + 32 * h + 16 * j);
                acc = q2k_group(acc, q, 0, q8 + 16 * j, sc[0 + j] & 15);
                acc = q2k_group(acc, q, 1, q8 + 32 + 16 * j, sc[2 + j] & 15);
                acc = q2k_group(acc, q, 2, q8 + 64 + 16 * j, sc[4 + j] & 15);
                acc = q2k_group(acc, q, 3, q8 + 96 + 16 * j, sc[6 + j] & 15);
            }
        }
        const float dy = rd_f32(y->d);
        sum += dy * rd_f16(x->d) * (float)vaddvq_s32(acc) - dy * rd_f16(x->dmin) * (float)msum;
    }
    return sum;
}

/* Q3_K's sixteen scales (-32..31), layout of q3_scale in q_k.c, via 32-bit words. */
static inline void q3_scales(const uint8_t *s, int8_t out[16]) {
    uint32_t w[3];
    memcpy(w, s, 12);
    const uint32_t a = w[0], b = w[1], c = w[2], lo = 0x0f0f0f0fu, hi = 0x30303030u;
    const uint32_t v[4] = {(a & lo) | ((c << 4) & hi), (b & lo) | ((c << 2) & hi), ((a >> 4) & lo) | (c & hi),
                           ((b >> 4) & lo) | ((c >> 2) & hi)};
    vst1q_s8(out, vsubq_s8(vreinterpretq_s8_u8(vld1q_u8((const uint8_t *)v)), vdupq_n_s8(32)));
}

/* Q3_K group: q2 minus 4 where the hmask bit 4h+k is clear. */
AI int32x4_t q3k_group(int32x4_t acc, uint8x16_t q, uint8x16_t hm, int h, int k, const int8_t *q8, int sc) {
    const uint8x16_t q2 = vandq_u8(vshlq_u8(q, vdupq_n_s8((int8_t)(-2 * k))), vdupq_n_u8(3));
    const uint8x16_t set = vtstq_u8(hm, vdupq_n_u8((uint8_t)(1u << (4 * h + k))));
    const int8x16_t v = vsubq_s8(vreinterpretq_s8_u8(q2), vreinterpretq_s8_u8(vbicq_u8(vdupq_n_u8(4), set)));
    return vmlaq_n_s32(acc, dot16z(v, ld_s8(q8)), sc);
}

AI int32x4_t q3k_half(int32x4_t acc, const smoe_block_q3_K *x, const int8_t *q8, const int8_t *sc, int h) {
    for (int j = 0; j < 2; j++) {
        const uint8x16_t q = ld_u8(x->qs + 32 * h + 16 * j);
        const uint8x16_t hm = ld_u8(x->hmask + 16 * j);
        const int8_t *qy = q8 + 128 * h + 16 * j;
        const int8_t *s = sc + 8 * h + j;
        acc = q3k_group(acc, q, hm, h, 0, qy, s[0]);
        acc = q3k_group(acc, q, hm, h, 1, qy + 32, s[2]);
        acc = q3k_group(acc, q, hm, h, 2, qy + 64, s[4]);
        acc = q3k_group(acc, q, hm, h, 3, qy + 96, s[6]);
    }
    return acc;
}

static float dot_q3_K(int64_t n, const void *w, const void *a) {
    const smoe_block_q3_K *x = w;
    const smoe_block_q8_K *y = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / SMOE_QK_K; i++, x++, y++) {
        int8_t sc[16];
        q3_scales(x->scales, sc);
        int32x4_t acc = q3k_half(vdupq_n_s32(0), x, y->qs, sc, 0);
        acc = q3k_half(acc, x, y->qs, sc, 1);
        sum += rd_f32(y->d) * rd_f16(x->d) * (float)vaddvq_s32(acc);
    }
    return sum;
}

/* Q4_K/Q5_K 6-bit scales and mins (k_scale_min in q_k.c) via 32-bit words. */
static inline void k45_scales(const uint8_t *s, uint8_t sc[8], uint8_t m[16]) {
    uint32_t w[3];
    memcpy(w, s, 12);
    const uint32_t a = w[0], b = w[1], c = w[2];
    const uint32_t v[4] = {a & 0x3f3f3f3fu, (c & 0x0f0f0f0fu) | ((a >> 2) & 0x30303030u), b & 0x3f3f3f3fu,
                           ((c >> 4) & 0x0f0f0f0fu) | ((b >> 2) & 0x30303030u)};
    uint8_t t[16];
    memcpy(t, v, 16);
    memcpy(sc, t, 8);
    /* each min covers two bsums (32 values): spread to 16 multipliers */
    for (int j = 0; j < 8; j++) m[2 * j] = m[2 * j + 1] = t[8 + j];
}

/* One 64-value chunk: lo quants with y[64c..], hi with y[64c+32..], 16 bytes at a time. */
AI int32x4_t k45_chunk(int32x4_t acc, const uint8x16_t lo[2], const uint8x16_t hi[2], const int8_t *q8, int s1, int s2) {
    const int32x4_t a = dot16(dot16z(vreinterpretq_s8_u8(lo[0]), ld_s8(q8)), vreinterpretq_s8_u8(lo[1]), ld_s8(q8 + 16));
    const int32x4_t b = dot16(dot16z(vreinterpretq_s8_u8(hi[0]), ld_s8(q8 + 32)), vreinterpretq_s8_u8(hi[1]), ld_s8(q8 + 48));
    return vmlaq_n_s32(vmlaq_n_s32(acc, a, s1), b, s2);
}

static float dot_q4_K(int64_t n, const void *w, const void *a) {
    const smoe_block_q4_K *x = w;
    const smoe_block_q8_K *y = a;
    const uint8x16_t m4 = vdupq_n_u8(0x0f);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / SMOE_QK_K; i++, x++, y++) {
        uint8_t sc[8], mins[16];
        k45_scales(x->scales, sc, mins);
        const int msum = mins_dot16(mins, y);
        int32x4_t acc = vdupq_n_s32(0);
        for (int c = 0; c < 4; c++) {
            const uint8x16_t q0 = ld_u8(x->qs + 32 * c), q1 = ld_u8(x->qs + 32 * c + 16);
            const uint8x16_t lo[2] = {vandq_u8(q0, m4), vandq_u8(q1, m4)};
            const uint8x16_t hi[2] = {vshrq_n_u8(q0, 4), vshrq_n_u8(q1, 4)};
            acc = k45_chunk(acc, lo, hi, y->qs + 64 * c, sc[2 * c], sc[2 * c + 1]);
        }
        const float dy = rd_f32(y->d);
        sum += dy * rd_f16(x->d) * (float)vaddvq_s32(acc) - dy * rd_f16(x->dmin) * (float)msum;
    }
    return sum;
}

static float dot_q5_K(int64_t n, const void *w, const void *a) {
    const smoe_block_q5_K *x = w;
    const smoe_block_q8_K *y = a;
    const uint8x16_t m4 = vdupq_n_u8(0x0f), b4 = vdupq_n_u8(0x10);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / SMOE_QK_K; i++, x++, y++) {
        uint8_t sc[8], mins[16];
        k45_scales(x->scales, sc, mins);
        const int msum = mins_dot16(mins, y);
        const uint8x16_t h0 = ld_u8(x->qh), h1 = ld_u8(x->qh + 16);
        int32x4_t acc = vdupq_n_s32(0);
        for (int c = 0; c < 4; c++) {
            const uint8x16_t q0 = ld_u8(x->qs + 32 * c), q1 = ld_u8(x->qs + 32 * c + 16);
            const uint8x16_t bl = vdupq_n_u8((uint8_t)(1u << (2 * c))), bh = vdupq_n_u8((uint8_t)(2u << (2 * c)));
            const uint8x16_t lo[2] = {vorrq_u8(vandq_u8(q0, m4), vandq_u8(vtstq_u8(h0, bl), b4)),
                                      vorrq_u8(vandq_u8(q1, m4), vandq_u8(vtstq_u8(h1, bl), b4))};
            const uint8x16_t hi[2] = {vorrq_u8(vshrq_n_u8(q0, 4), vandq_u8(vtstq_u8(h0, bh), b4)),
                                      vorrq_u8(vshrq_n_u8(q1, 4), vandq_u8(vtstq_u8(h1, bh), b4))};
            acc = k45_chunk(acc, lo, hi, y->qs + 64 * c, sc[2 * c], sc[2 * c + 1]);
        }
        const float dy = rd_f32(y->d);
        sum += dy * rd_f16(x->d) * (float)vaddvq_s32(acc) - dy * rd_f16(x->dmin) * (float)msum;
    }
    return sum;
}

/* Q6_K: per half and 16-byte part j, four 6-bit quants (minus 32) per (ql, qh) pair,
 * sub-blocks 8h + 2k + j. */
static float dot_q6_K(int64_t n, const void *w, const void *a) {
    const smoe_block_q6_K *x = w;
    const smoe_block_q8_K *y = a;
    const uint8x16_t m4 = vdupq_n_u8(0x0f), m3 = vdupq_n_u8(0x03);
    const int8x16_t off = vdupq_n_s8(32);
    float sum = 0.0f;
    for (int64_t i = 0; i < n / SMOE_QK_K; i++, x++, y++) {
        int32x4_t acc = vdupq_n_s32(0);
        for (int h = 0; h < 2; h++) {
            const int8_t *sc = x->scales + 8 * h;
            const int8_t *q8 = y->qs + 128 * h;
            for (int j = 0; j < 2; j++) {
                const uint8x16_t la = ld_u8(x->ql + 64 * h + 16 * j), lb = ld_u8(x->ql + 64 * h + 32 + 16 * j);
                const uint8x16_t qh = ld_u8(x->qh + 32 * h + 16 * j);
                const uint8x16_t u0 = vorrq_u8(vandq_u8(la, m4), vshlq_n_u8(vandq_u8(qh, m3), 4));
                const uint8x16_t u1 = vorrq_u8(vandq_u8(lb, m4), vshlq_n_u8(vandq_u8(vshrq_n_u8(qh, 2), m3), 4));
                const uint8x16_t u2 = vorrq_u8(vshrq_n_u8(la, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(qh, 4), m3), 4));
                const uint8x16_t u3 = vorrq_u8(vshrq_n_u8(lb, 4), vshlq_n_u8(vshrq_n_u8(qh, 6), 4));
                const int8_t *qy = q8 + 16 * j;
                acc = vmlaq_n_s32(acc, dot16z(vsubq_s8(vreinterpretq_s8_u8(u0), off), ld_s8(qy)), sc[0 + j]);
                acc = vmlaq_n_s32(acc, dot16z(vsubq_s8(vreinterpretq_s8_u8(u1), off), ld_s8(qy + 32)), sc[2 + j]);
                acc = vmlaq_n_s32(acc, dot16z(vsubq_s8(vreinterpretq_s8_u8(u2), off), ld_s8(qy + 64)), sc[4 + j]);
                acc = vmlaq_n_s32(acc, dot16z(vsubq_s8(vreinterpretq_s8_u8(u3), off), ld_s8(qy + 96)), sc[6 + j]);
            }
        }
        sum += rd_f32(y->d) * rd_f16(x->d) * (float)vaddvq_s32(acc);
    }
    return sum;
}

/* ------------------------------------------------------------ float dot products */

static float dot_f16(int64_t n, const void *w, const void *a) {
    const uint8_t *x = w, *y = a;
    float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = acc0, acc2 = acc0, acc3 = acc0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const float16x8_t x0 = vreinterpretq_f16_u8(ld_u8(x + 2 * i)), y0 = vreinterpretq_f16_u8(ld_u8(y + 2 * i));
        const float16x8_t x1 = vreinterpretq_f16_u8(ld_u8(x + 2 * i + 16)), y1 = vreinterpretq_f16_u8(ld_u8(y + 2 * i + 16));
        acc0 = vfmaq_f32(acc0, vcvt_f32_f16(vget_low_f16(x0)), vcvt_f32_f16(vget_low_f16(y0)));
        acc1 = vfmaq_f32(acc1, vcvt_high_f32_f16(x0), vcvt_high_f32_f16(y0));
        acc2 = vfmaq_f32(acc2, vcvt_f32_f16(vget_low_f16(x1)), vcvt_f32_f16(vget_low_f16(y1)));
        acc3 = vfmaq_f32(acc3, vcvt_high_f32_f16(x1), vcvt_high_f32_f16(y1));
    }
    float sum = vaddvq_f32(vaddq_f32(vaddq_f32(acc0, acc1), vaddq_f32(acc2, acc3)));
    for (; i < n; i++) sum += rd_f16(x + 2 * i) * rd_f16(y + 2 * i);
    return sum;
}

static inline float32x4_t bf16_lo(uint16x8_t v) { return vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(v), 16)); }
static inline float32x4_t bf16_hi(uint16x8_t v) { return vreinterpretq_f32_u32(vshll_high_n_u16(v, 16)); }

static float dot_bf16(int64_t n, const void *w, const void *a) {
    const uint8_t *x = w, *y = a;
    float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = acc0, acc2 = acc0, acc3 = acc0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const uint16x8_t x0 = vreinterpretq_u16_u8(ld_u8(x + 2 * i)), y0 = vreinterpretq_u16_u8(ld_u8(y + 2 * i));
        const uint16x8_t x1 = vreinterpretq_u16_u8(ld_u8(x + 2 * i + 16)), y1 = vreinterpretq_u16_u8(ld_u8(y + 2 * i + 16));
        acc0 = vfmaq_f32(acc0, bf16_lo(x0), bf16_lo(y0));
        acc1 = vfmaq_f32(acc1, bf16_hi(x0), bf16_hi(y0));
        acc2 = vfmaq_f32(acc2, bf16_lo(x1), bf16_lo(y1));
        acc3 = vfmaq_f32(acc3, bf16_hi(x1), bf16_hi(y1));
    }
    float sum = vaddvq_f32(vaddq_f32(vaddq_f32(acc0, acc1), vaddq_f32(acc2, acc3)));
    for (; i < n; i++) {
        uint16_t u, v;
        memcpy(&u, x + 2 * i, 2);
        memcpy(&v, y + 2 * i, 2);
        sum += smoe_bf16_to_f32(u) * smoe_bf16_to_f32(v);
    }
    return sum;
}

static float dot_f32(int64_t n, const void *w, const void *a) {
    const uint8_t *x = w, *y = a;
    float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = acc0, acc2 = acc0, acc3 = acc0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = vfmaq_f32(acc0, vreinterpretq_f32_u8(ld_u8(x + 4 * i)), vreinterpretq_f32_u8(ld_u8(y + 4 * i)));
        acc1 = vfmaq_f32(acc1, vreinterpretq_f32_u8(ld_u8(x + 4 * i + 16)), vreinterpretq_f32_u8(ld_u8(y + 4 * i + 16)));
        acc2 = vfmaq_f32(acc2, vreinterpretq_f32_u8(ld_u8(x + 4 * i + 32)), vreinterpretq_f32_u8(ld_u8(y + 4 * i + 32)));
        acc3 = vfmaq_f32(acc3, vreinterpretq_f32_u8(ld_u8(x + 4 * i + 48)), vreinterpretq_f32_u8(ld_u8(y + 4 * i + 48)));
    }
    float sum = vaddvq_f32(vaddq_f32(vaddq_f32(acc0, acc1), vaddq_f32(acc2, acc3)));
    for (; i < n; i++) sum += rd_f32(x + 4 * i) * rd_f32(y + 4 * i);
    return sum;
}

/* ------------------------------------------------------------ the table */

static void set_row(smoe_kernel *rows, int count, int t, smoe_vec_dot_fn dot, smoe_from_float_fn q) {
    if (t >= count) return;
    rows[t].isa = "neon";
    rows[t].vec_dot = dot;
    rows[t].act_quant = q;
}

/* Overrides the rows (already holding the scalar ones, vec_dot_type included). */
void smoe_kernels_fill_neon(smoe_kernel *rows, int count) {
    set_row(rows, count, SMOE_DTYPE_Q4_0, dot_q4_0, quant_q8_0);
    set_row(rows, count, SMOE_DTYPE_Q4_1, dot_q4_1, quant_q8_1);
    set_row(rows, count, SMOE_DTYPE_Q5_0, dot_q5_0, quant_q8_0);
    set_row(rows, count, SMOE_DTYPE_Q5_1, dot_q5_1, quant_q8_1);
    set_row(rows, count, SMOE_DTYPE_Q8_0, dot_q8_0, quant_q8_0);
    set_row(rows, count, SMOE_DTYPE_Q2_K, dot_q2_K, quant_q8_K);
    set_row(rows, count, SMOE_DTYPE_Q3_K, dot_q3_K, quant_q8_K);
    set_row(rows, count, SMOE_DTYPE_Q4_K, dot_q4_K, quant_q8_K);
    set_row(rows, count, SMOE_DTYPE_Q5_K, dot_q5_K, quant_q8_K);
    set_row(rows, count, SMOE_DTYPE_Q6_K, dot_q6_K, quant_q8_K);
    set_row(rows, count, SMOE_DTYPE_F16, dot_f16, quant_f16);
    set_row(rows, count, SMOE_DTYPE_BF16, dot_bf16, quant_bf16);
    set_row(rows, count, SMOE_DTYPE_F32, dot_f32, quant_f32);
}
