/*
 * dot_avx2.c - AVX2 + FMA + F16C versions of the kernels of cpu/kernels.h: every weight
 * type's dot product (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K, F16, BF16, F32) and the
 * activation quantizers (Q8_0, Q8_1, Q8_K, F16, BF16; F32 is a copy).
 *
 * What it does not do: it is never called unless cpufeat.c saw AVX2, FMA and F16C (the
 * Makefile builds this file alone with -mavx2 -mfma -mf16c); no threading, no matmul
 * tiling (one weight row times one activation row per call).
 *
 * Exactness. The quantized dot products compute the same per-block integer sums as the
 * scalar reference (dot_ref.c), with no int16 saturation possible (the bounds are noted
 * at each maddubs), then scale and accumulate in f32 in another order: results match the
 * reference to f32 rounding. The quantizers are bit-identical to the reference: the
 * per-block scalars (amax, d, 1/d) are computed with the same scalar operations,
 * x * (1/d) is one IEEE multiply in both, and the roundings are reproduced exactly
 * (roundf's ties-away by trunc + fix-up, nearest-even by cvtps2dq in the default MXCSR
 * mode).
 *
 * Technique: products of unsigned weight quants with signed int8 activations use
 * vpmaddubsw (u8 x s8 -> pairs summed to int16) then vpmaddwd against ones or the
 * sub-block scales (-> int32), converted to f32 once per block and accumulated with FMA
 * into independent accumulators so that FMA latency does not serialize the loop.
 * Offsets (Q4_0's -8, Q5_0's -16, Q6_K's -32, Q3_K's -4) are subtracted as a second
 * maddubs or through the activation block sums, never by making the weight signed, so
 * an activation of -128 is handled too. Only Q8_0 x Q8_0 (both signed) uses the
 * abs/sign trick, which needs activations != -128: our quantizer yields [-127, 127].
 * All loads are unaligned loads (blocks are 18, 22, 34, ... bytes).
 */
#include "cpu/kernels.h"
#include "quant/blocks.h"
#include "quant/quant.h"
#include "smoe.h"

#include "cpu/x86/avx2_util.h"

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

void smoe_kernels_fill_avx2(smoe_kernel *rows, int count);

/* ------------------------------------------------------------ helpers */

/* Helpers taking a constant chunk index must be inlined so that their shuffle controls
 * and masks become constants (a loop over the index would rebuild them every time). */
#define AI static inline __attribute__((always_inline))


static inline int hsum256_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

/* ------------------------------------------------------------ activation quantizers */

/* roundf (ties away from zero) for |v| < 2^23, exactly: truncate, then step one away
 * from zero when the dropped fraction (computed exactly) is >= 0.5. */
static inline __m256 round_away(__m256 v) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 frac = _mm256_andnot_ps(sign, _mm256_sub_ps(v, t));
    const __m256 up = _mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    const __m256 one = _mm256_or_ps(_mm256_and_ps(v, sign), _mm256_set1_ps(1.0f));
    return _mm256_add_ps(t, _mm256_and_ps(up, one));
}

/* Four vectors of 8 int32 (values 0..31 of a block, in order) -> 32 int8 at dst. */
static inline void store_i8x32(void *dst, __m256i i0, __m256i i1, __m256i i2, __m256i i3) {
    /* packs work per 128-bit lane: the result holds 4-value groups in the dword order
     * i0a i1a i2a i3a | i0b i1b i2b i3b; the permute restores i0a i0b i1a ... */
    const __m256i p01 = _mm256_packs_epi32(i0, i1);
    const __m256i p23 = _mm256_packs_epi32(i2, i3);
    const __m256i b = _mm256_packs_epi16(p01, p23);
    const __m256i v = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)dst, v);
}

static inline float hmax256(__m256 m) {
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

/* One Q8_0/Q8_1 block: quants to qs, returns d (f32) and the quant sum. */
static inline float q8_block(const float *x, int8_t *qs, int *sum) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 v[4];
    for (int k = 0; k < 4; k++) v[k] = _mm256_loadu_ps(x + 8 * k);
    const __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v[0]), _mm256_andnot_ps(sign, v[1])),
                                   _mm256_max_ps(_mm256_andnot_ps(sign, v[2]), _mm256_andnot_ps(sign, v[3])));
    const float amax = hmax256(m);
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const __m256 vid = _mm256_set1_ps(id);
    __m256i q[4];
    for (int k = 0; k < 4; k++) q[k] = _mm256_cvtps_epi32(round_away(_mm256_mul_ps(v[k], vid)));
    store_i8x32(qs, q[0], q[1], q[2], q[3]);
    *sum = hsum256_epi32(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
    return d;
}

/* f32 -> fp16 by vcvtps2ph: round to nearest even, NaNs quieted with their top payload
 * bits, exactly smoe_f32_to_f16. */
static inline uint16_t to_f16(float f) { return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT); }

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

/* [sum(a), sum(b), sum(c), sum(d)] of four vectors of 8 int32. */
static inline __m128i hsum4_epi32(__m256i a, __m256i b, __m256i c, __m256i d) {
    const __m256i ab = _mm256_hadd_epi32(a, b);     /* per lane: a01 a23 b01 b23 */
    const __m256i cd = _mm256_hadd_epi32(c, d);
    const __m256i abcd = _mm256_hadd_epi32(ab, cd); /* per lane: a b c d (half sums) */
    return _mm_add_epi32(_mm256_castsi256_si128(abcd), _mm256_extracti128_si256(abcd, 1));
}

static void quant_q8_K(const float *src, void *dst, int64_t n) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    smoe_block_q8_K *y = dst;
    for (int64_t i = 0; i < n / SMOE_QK_K; i++, y++, src += SMOE_QK_K) {
        __m256 m0 = _mm256_setzero_ps(), m1 = m0, m2 = m0, m3 = m0;
        for (int j = 0; j < SMOE_QK_K; j += 32) {
            m0 = _mm256_max_ps(m0, _mm256_andnot_ps(sign, _mm256_loadu_ps(src + j)));
            m1 = _mm256_max_ps(m1, _mm256_andnot_ps(sign, _mm256_loadu_ps(src + j + 8)));
            m2 = _mm256_max_ps(m2, _mm256_andnot_ps(sign, _mm256_loadu_ps(src + j + 16)));
            m3 = _mm256_max_ps(m3, _mm256_andnot_ps(sign, _mm256_loadu_ps(src + j + 24)));
        }
        const float amax = hmax256(_mm256_max_ps(_mm256_max_ps(m0, m1), _mm256_max_ps(m2, m3)));
        if (amax == 0.0f) {
            memset(y, 0, sizeof *y);
            continue;
        }
        /* the reference keeps the sign of the FIRST element with |x| == amax */
        float xmax = amax;
        const __m256 va = _mm256_set1_ps(amax);
        for (int j = 0; j < SMOE_QK_K; j += 8) {
            const __m256 ax = _mm256_andnot_ps(sign, _mm256_loadu_ps(src + j));
            const int mask = _mm256_movemask_ps(_mm256_cmp_ps(ax, va, _CMP_EQ_OQ));
            if (mask) {
                xmax = src[j + __builtin_ctz((unsigned)mask)];
                break;
            }
        }
        const float iscale = -127.0f / xmax;
        const __m256 vs = _mm256_set1_ps(iscale);
        const __m256i max127 = _mm256_set1_epi32(127);
        __m256i gs[16]; /* per 16 values: the two vectors' int32 sums */
        for (int g = 0; g < SMOE_QK_K / 32; g++) {
            __m256i q[4];
            for (int k = 0; k < 4; k++) {
                const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(src + 32 * g + 8 * k), vs);
                q[k] = _mm256_min_epi32(_mm256_cvtps_epi32(v), max127);
            }
            store_i8x32(y->qs + 32 * g, q[0], q[1], q[2], q[3]);
            gs[2 * g] = _mm256_add_epi32(q[0], q[1]);
            gs[2 * g + 1] = _mm256_add_epi32(q[2], q[3]);
        }
        __m128i s[4];
        for (int k = 0; k < 4; k++)
            s[k] = hsum4_epi32(gs[4 * k], gs[4 * k + 1], gs[4 * k + 2], gs[4 * k + 3]);
        /* |bsum| <= 16 * 127: the saturating pack is exact */
        _mm_storeu_si128((__m128i *)y->bsums[0], _mm_packs_epi32(s[0], s[1]));
        _mm_storeu_si128((__m128i *)y->bsums[8], _mm_packs_epi32(s[2], s[3]));
        const float d = 1.0f / iscale;
        memcpy(y->d, &d, 4);
    }
}

static void quant_f16(const float *src, void *dst, int64_t n) {
    uint8_t *p = dst;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        /* vcvtps2ph rounds to nearest even like smoe_f32_to_f16, NaNs are quieted the
         * same way (payload top bits kept, quiet bit set) */
        const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
        _mm_storeu_si128((__m128i *)(p + 2 * i), h);
    }
    for (; i < n; i++) {
        const uint16_t h = smoe_f32_to_f16(src[i]);
        memcpy(p + 2 * i, &h, 2);
    }
}

/* 8 floats -> 8 bf16 in the low 16 bits of each int32 lane (smoe_f32_to_bf16 rules). */
static inline __m256i bf16x8(__m256 f) {
    const __m256i u = _mm256_castps_si256(f);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    const __m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff))), 16);
    const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)),
                                           _mm256_set1_epi32(0x7f800000));
    const __m256i qnan = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));
    return _mm256_blendv_epi8(r, qnan, nan);
}

static void quant_bf16(const float *src, void *dst, int64_t n) {
    uint8_t *p = dst;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256i a = bf16x8(_mm256_loadu_ps(src + i));
        const __m256i b = bf16x8(_mm256_loadu_ps(src + i + 8));
        /* packus per lane gives a0-3 b0-3 | a4-7 b4-7; swap the middle quadwords */
        const __m256i v = _mm256_permute4x64_epi64(_mm256_packus_epi32(a, b), _MM_SHUFFLE(3, 1, 2, 0));
        _mm256_storeu_si256((__m256i *)(p + 2 * i), v);
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

/* Each legacy kernel takes blocks 4 at a time into 4 accumulators, then the rest one by
 * one. The block's integer part comes out as 8 int32 partial sums converted to f32 (exact:
 * |partial| < 2^24), the scale product d_x*d_y is applied by FMA. The 8 fp16 scales of 4
 * blocks are gathered through integer registers and converted by one vcvtph2ps, so the
 * per-block scale cost is one in-lane broadcast (the products are the same f32 values as
 * one block at a time). */

/* fp16 fields p0[0], p0[s0], p0[2*s0], p0[3*s0], p1[0], ..., p1[3*s1] as 8 floats. */

AI __m256 f16x8_gather(const uint8_t *p0, size_t s0, const uint8_t *p1, size_t s1) {
    /* written out: a loop here stays a loop with variable shifts */
    const uint64_t a = u16_at(p0) | u16_at(p0 + s0) << 16 | u16_at(p0 + 2 * s0) << 32 | u16_at(p0 + 3 * s0) << 48;
    const uint64_t b = u16_at(p1) | u16_at(p1 + s1) << 16 | u16_at(p1 + 2 * s1) << 32 | u16_at(p1 + 3 * s1) << 48;
    return _mm256_cvtph_ps(_mm_set_epi64x((long long)b, (long long)a));
}

/* Lane products lo*hi of the 8 floats: for 4 blocks, d_x*d_y. */
static inline __m256 dprod4(__m256 f) {
    const __m128 d4 = _mm_mul_ps(_mm256_castps256_ps128(f), _mm256_extractf128_ps(f, 1));
    return _mm256_set_m128(d4, d4);
}
#define LANE(v, k) _mm256_permute_ps((v), (k) * 0x55) /* broadcast element k of each half */

/* Q4_0: sum((q - 8) * y) = maddubs(q, y) - maddubs(8, y); pair sums <= 2*15*128. */
static inline __m256 q4_0_isum(const smoe_block_q4_0 *x, const smoe_block_q8_0 *y) {
    const __m256i v = loadu256(y->qs);
    const __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(nibbles32(x->qs), v),
                                       _mm256_maddubs_epi16(_mm256_set1_epi8(8), v));
    return _mm256_cvtepi32_ps(sum_pairs(p));
}

/* Q4_1: unsigned quants times y; the min part is m * s per block. */
static inline __m256 q4_1_isum(const smoe_block_q4_1 *x, const smoe_block_q8_1 *y) {
    return _mm256_cvtepi32_ps(sum_pairs(_mm256_maddubs_epi16(nibbles32(x->qs), loadu256(y->qs))));
}

/* Q5_0: q = nibble | bit << 4 (0..31), value q - 16: maddubs(q, y) - maddubs(16, y),
 * pair sums <= 2*31*128. */
static inline __m256 q5_0_isum(const smoe_block_q5_0 *x, const smoe_block_q8_0 *y) {
    const __m256i hb = _mm256_and_si256(bits32(x->qh), _mm256_set1_epi8(0x10));
    const __m256i q = _mm256_or_si256(nibbles32(x->qs), hb);
    const __m256i v = loadu256(y->qs);
    const __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(q, v), _mm256_maddubs_epi16(_mm256_set1_epi8(16), v));
    return _mm256_cvtepi32_ps(sum_pairs(p));
}

static inline __m256 q5_1_isum(const smoe_block_q5_1 *x, const smoe_block_q8_1 *y) {
    const __m256i hb = _mm256_and_si256(bits32(x->qh), _mm256_set1_epi8(0x10));
    const __m256i q = _mm256_or_si256(nibbles32(x->qs), hb);
    return _mm256_cvtepi32_ps(sum_pairs(_mm256_maddubs_epi16(q, loadu256(y->qs))));
}

/* Q8_0: both signed: |x| times y with x's sign moved onto y (exact while y != -128;
 * pair sums <= 2*128*127). */
static inline __m256 q8_0_isum(const smoe_block_q8_0 *x, const smoe_block_q8_0 *y) {
    const __m256i q = loadu256(x->qs);
    const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(loadu256(y->qs), q));
    return _mm256_cvtepi32_ps(sum_pairs(p));
}

/* Kernels of the types without a min: 4 blocks per step, scales gathered. */
#define LEGACY_DOT0(name, wtype, atype, isum)                                                   \
    AI float name(int64_t n, const void *w, const void *a, const int pf) {                      \
        const wtype *x = w;                                                                     \
        const atype *y = a;                                                                     \
        const int64_t nb = n / SMOE_QK;                                                         \
        __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0;               \
        int64_t i = 0;                                                                          \
        for (; i + 4 <= nb; i += 4) {                                                           \
            if (pf) pf_ahead(x + i, 4 * sizeof *x);                                             \
            const __m256 d = dprod4(f16x8_gather(x[i].d, sizeof *x, y[i].d, sizeof *y));        \
            acc0 = _mm256_fmadd_ps(LANE(d, 0), isum(x + i, y + i), acc0);                       \
            acc1 = _mm256_fmadd_ps(LANE(d, 1), isum(x + i + 1, y + i + 1), acc1);               \
            acc2 = _mm256_fmadd_ps(LANE(d, 2), isum(x + i + 2, y + i + 2), acc2);               \
            acc3 = _mm256_fmadd_ps(LANE(d, 3), isum(x + i + 3, y + i + 3), acc3);               \
        }                                                                                       \
        for (; i < nb; i++) {                                                                   \
            if (pf) pf_ahead(x + i, sizeof *x);                                                 \
            acc0 = _mm256_fmadd_ps(_mm256_set1_ps(rd_f16(x[i].d) * rd_f16(y[i].d)), isum(x + i, y + i), acc0); \
        }                                                                                       \
        return hsum256(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));   \
    }

/* Types with a min: also sum m * s, with m and s gathered and converted like the d's. */
#define LEGACY_DOT1(name, wtype, atype, isum)                                                   \
    AI float name(int64_t n, const void *w, const void *a, const int pf) {                      \
        const wtype *x = w;                                                                     \
        const atype *y = a;                                                                     \
        const int64_t nb = n / SMOE_QK;                                                         \
        __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0;               \
        __m128 accm = _mm_setzero_ps();                                                         \
        int64_t i = 0;                                                                          \
        for (; i + 4 <= nb; i += 4) {                                                           \
            if (pf) pf_ahead(x + i, 4 * sizeof *x);                                             \
            const __m256 d = dprod4(f16x8_gather(x[i].d, sizeof *x, y[i].d, sizeof *y));        \
            const __m256 ms = f16x8_gather(x[i].m, sizeof *x, y[i].s, sizeof *y);               \
            accm = _mm_fmadd_ps(_mm256_castps256_ps128(ms), _mm256_extractf128_ps(ms, 1), accm); \
            acc0 = _mm256_fmadd_ps(LANE(d, 0), isum(x + i, y + i), acc0);                       \
            acc1 = _mm256_fmadd_ps(LANE(d, 1), isum(x + i + 1, y + i + 1), acc1);               \
            acc2 = _mm256_fmadd_ps(LANE(d, 2), isum(x + i + 2, y + i + 2), acc2);               \
            acc3 = _mm256_fmadd_ps(LANE(d, 3), isum(x + i + 3, y + i + 3), acc3);               \
        }                                                                                       \
        float ms1 = 0.0f;                                                                       \
        for (; i < nb; i++) {                                                                   \
            if (pf) pf_ahead(x + i, sizeof *x);                                                 \
            acc0 = _mm256_fmadd_ps(_mm256_set1_ps(rd_f16(x[i].d) * rd_f16(y[i].d)), isum(x + i, y + i), acc0); \
            ms1 += rd_f16(x[i].m) * rd_f16(y[i].s);                                             \
        }                                                                                       \
        return hsum256(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3))) +   \
               hsum128(accm) + ms1;                                                             \
    }

LEGACY_DOT0(row_q4_0, smoe_block_q4_0, smoe_block_q8_0, q4_0_isum)
LEGACY_DOT1(row_q4_1, smoe_block_q4_1, smoe_block_q8_1, q4_1_isum)
LEGACY_DOT0(row_q5_0, smoe_block_q5_0, smoe_block_q8_0, q5_0_isum)
LEGACY_DOT1(row_q5_1, smoe_block_q5_1, smoe_block_q8_1, q5_1_isum)
LEGACY_DOT0(row_q8_0, smoe_block_q8_0, smoe_block_q8_0, q8_0_isum)

/* ------------------------------------------------------------ K-quant dot products */

/* Broadcast of int16 element j of a 128-bit vector (in both lanes of the 256-bit
 * broadcast v): shuffle control picking bytes 2j, 2j+1. */
AI __m256i bcast16(__m256i v, int j) {
    return _mm256_shuffle_epi8(v, _mm256_set1_epi16((short)(((2 * j + 1) << 8) | (2 * j))));
}

/* 16 signed byte scales -> int16 vector: scale i in the low 8 lanes, scale i+1 in the
 * high 8 lanes (for a 32-value group spanning two 16-value sub-blocks). */
AI __m256i scale_pair(__m128i sc, int i) {
    const __m128i ctl = _mm_setr_epi8((char)i, (char)i, (char)i, (char)i, (char)i, (char)i, (char)i, (char)i,
                                      (char)(i + 1), (char)(i + 1), (char)(i + 1), (char)(i + 1),
                                      (char)(i + 1), (char)(i + 1), (char)(i + 1), (char)(i + 1));
    return _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc, ctl));
}

/* Q2_K. Group (h, k) (32 values) is 2-bit field k of the 32 qs bytes of half h, times
 * y[128h + 32k ..]; its first 16 values belong to sub-block 8h+2k (the low 128-bit lane
 * of the vectors), the last 16 to sub-block 8h+2k+1 (the high lane). The fields cost one
 * shift per half: q & 3 (field 0), q & 0x0c (4 x field 1), and the same of q >> 4
 * (fields 2, 3). Fields 1 and 3 meet the scales as they are, fields 0 and 2 the scales
 * times 4, so every int32 lane holds exactly 4x the lane of the plain sum (|lane| <
 * 2^20, no overflow) and the float scale is d * dy / 4 (an exact power-of-two step):
 * cvt(4s) * (f/4) == cvt(s) * f, the same floats as without the factor. maddubs pairs
 * <= 2*12*128, madd scales <= 60. The scale vectors hold the even sub-blocks' scales
 * (int16) in the low lane and the odd ones' in the high lane, so group (h, k) takes
 * element 4h+k of each lane: one pshufb from a register. The min part is
 * sum_j (sc_j >> 4) * bsums_j: one madd. */
AI void q2k_scales(const uint8_t *s, __m256i *sc1, __m256i *sc4, __m256i *mins) {
    const __m128i sc8 = loadu128(s);
    const __m128i eo = _mm_shuffle_epi8(sc8, _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15));
    *sc1 = _mm256_and_si256(_mm256_cvtepu8_epi16(eo), _mm256_set1_epi16(0x0f));
    *sc4 = _mm256_slli_epi16(*sc1, 2);
    *mins = _mm256_srli_epi16(_mm256_cvtepu8_epi16(sc8), 4);
}

/* The four fields of one half's 32 qs bytes: f[0] = q & 3, f[1] = q & 0x0c, f[2] =
 * (q >> 4) & 3, f[3] = (q >> 4) & 0x0c. */
AI void q2k_fields(const uint8_t *qs, __m256i *f) {
    const __m256i m3 = _mm256_set1_epi8(3), mc = _mm256_set1_epi8(0x0c);
    const __m256i q = loadu256(qs), q4 = _mm256_srli_epi16(q, 4);
    f[0] = _mm256_and_si256(q, m3);
    f[1] = _mm256_and_si256(q, mc);
    f[2] = _mm256_and_si256(q4, m3);
    f[3] = _mm256_and_si256(q4, mc);
}

/* 4x the scaled int32 sum of half h of a Q2_K block with the 128 activations q8. */
AI __m256i q2k_half(const __m256i *f, const int8_t *q8, __m256i sc1, __m256i sc4, int h) {
    const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(f[0], loadu256(q8)), bcast16(sc4, 4 * h));
    const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(f[1], loadu256(q8 + 32)), bcast16(sc1, 4 * h + 1));
    const __m256i p2 = _mm256_madd_epi16(_mm256_maddubs_epi16(f[2], loadu256(q8 + 64)), bcast16(sc4, 4 * h + 2));
    const __m256i p3 = _mm256_madd_epi16(_mm256_maddubs_epi16(f[3], loadu256(q8 + 96)), bcast16(sc1, 4 * h + 3));
    return _mm256_add_epi32(_mm256_add_epi32(p0, p1), _mm256_add_epi32(p2, p3));
}

/* d and dmin of a Q2_K block times dy, as f32 (the IEEE products dy * d, dy * dmin),
 * broadcast; the first divided by 4 (exact). */
AI void q2k_dd(const smoe_block_q2_K *x, float dy, __m256 *dd, __m256 *dm) {
    uint32_t u;
    memcpy(&u, x->d, sizeof u); /* d, dmin adjacent */
    const __m128 f = _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128((int)u)), _mm_set1_ps(dy));
    *dd = _mm256_mul_ps(_mm256_broadcastss_ps(f), _mm256_set1_ps(0.25f));
    *dm = _mm256_broadcastss_ps(_mm_movehdup_ps(f));
}

AI float row_q2_K(int64_t n, const void *w, const void *a, const int pf) {
    const smoe_block_q2_K *x = w;
    const smoe_block_q8_K *y = a;
    __m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / SMOE_QK_K; i++, x++, y++) {
        if (pf) pf_ahead(x, sizeof *x);
        __m256i sc1, sc4, mins, f0[4], f1[4];
        q2k_scales(x->scales, &sc1, &sc4, &mins);
        const __m256i msum = _mm256_madd_epi16(mins, loadu256(y->bsums));
        q2k_fields(x->qs, f0);
        q2k_fields(x->qs + 32, f1);
        const __m256i sumi = _mm256_add_epi32(q2k_half(f0, y->qs, sc1, sc4, 0), q2k_half(f1, y->qs + 128, sc1, sc4, 1));
        __m256 dd, dm;
        q2k_dd(x, rd_f32(y->d), &dd, &dm);
        acc = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(sumi), acc);
        accm = _mm256_fmadd_ps(dm, _mm256_cvtepi32_ps(msum), accm);
    }
    return hsum256(acc) - hsum256(accm);
}

/* One 32-value group (half h, field k) of Q3_K: value = q2 - 4*(hbit clear), computed
 * as maddubs(q2, y) - maddubs(4 where clear, y) (pair sums <= 2*3*128 and 2*4*128),
 * weighted by scales 8h+2k, 8h+2k+1 (-32..31). */
AI __m256i q3k_group(__m256i q, __m256i hm, const int8_t *q8, __m256i sc, int h, int k) {
    const __m256i q2 = _mm256_and_si256(_mm256_srli_epi16(q, 2 * k), _mm256_set1_epi8(3));
    const __m256i bit = _mm256_set1_epi8((char)(1u << (4 * h + k)));
    const __m256i clear = _mm256_cmpeq_epi8(_mm256_and_si256(hm, bit), _mm256_setzero_si256());
    const __m256i v = loadu256(q8 + 128 * h + 32 * k);
    const __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(q2, v),
                                       _mm256_maddubs_epi16(_mm256_and_si256(clear, _mm256_set1_epi8(4)), v));
    return _mm256_madd_epi16(p, bcast16(sc, 4 * h + k));
}

AI __m256i q3k_half(const smoe_block_q3_K *x, __m256i hm, const int8_t *q8, __m256i sc, int h) {
    const __m256i q = loadu256(x->qs + 32 * h);
    return _mm256_add_epi32(_mm256_add_epi32(q3k_group(q, hm, q8, sc, h, 0), q3k_group(q, hm, q8, sc, h, 1)),
                            _mm256_add_epi32(q3k_group(q, hm, q8, sc, h, 2), q3k_group(q, hm, q8, sc, h, 3)));
}

AI float row_q3_K(int64_t n, const void *w, const void *a, const int pf) {
    const smoe_block_q3_K *x = w;
    const smoe_block_q8_K *y = a;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / SMOE_QK_K; i++, x++, y++) {
        if (pf) pf_ahead(x, sizeof *x);
        const __m256i sc = q3_scales_eo(x->scales);
        const __m256i hm = loadu256(x->hmask);
        const __m256i sumi = _mm256_add_epi32(q3k_half(x, hm, y->qs, sc, 0), q3k_half(x, hm, y->qs, sc, 1));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(rd_f32(y->d) * rd_f16(x->d)), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum256(acc);
}

/* Min part of Q4_K/Q5_K: sum_j m_j * (bsums[2j] + bsums[2j+1]) as 4 int32 lanes (pair
 * sums <= 2*2032 fit int16). */
static inline __m128i k45_minsum(__m128i mins, const smoe_block_q8_K *y) {
    const __m256i bs = loadu256(y->bsums);
    const __m128i pairs = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
    return _mm_madd_epi16(mins, pairs);
}

/* One 64-value chunk c of Q4_K/Q5_K: lo/hi quants (0..31) times y[64c..], weighted by
 * scales 2c and 2c+1. maddubs pairs <= 2*31*128, scales <= 63. */
AI __m256i k45_chunk(__m256i lo, __m256i hi, const int8_t *q8, __m256i sc, int c) {
    const __m256i plo = _mm256_maddubs_epi16(lo, loadu256(q8 + 64 * c));
    const __m256i phi = _mm256_maddubs_epi16(hi, loadu256(q8 + 64 * c + 32));
    return _mm256_add_epi32(_mm256_madd_epi16(plo, bcast16(sc, 2 * c)), _mm256_madd_epi16(phi, bcast16(sc, 2 * c + 1)));
}

AI __m256i q4k_chunk(const uint8_t *qs, const int8_t *q8, __m256i sc, int c) {
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i q = loadu256(qs + 32 * c);
    return k45_chunk(_mm256_and_si256(q, m4), _mm256_and_si256(_mm256_srli_epi16(q, 4), m4), q8, sc, c);
}

/* Q4_K: chunk c = qs[32c..], low nibbles -> sub-block 2c (y[64c..]), high -> 2c+1. */
AI float row_q4_K(int64_t n, const void *w, const void *a, const int pf) {
    const smoe_block_q4_K *x = w;
    const smoe_block_q8_K *y = a;
    __m256 acc = _mm256_setzero_ps();
    __m128 accm = _mm_setzero_ps();
    for (int64_t i = 0; i < n / SMOE_QK_K; i++, x++, y++) {
        if (pf) pf_ahead(x, sizeof *x);
        const float dy = rd_f32(y->d);
        __m256i sc;
        __m128i mins;
        k45_scales(x->scales, &sc, &mins);
        accm = _mm_fmadd_ps(_mm_set1_ps(dy * rd_f16(x->dmin)), _mm_cvtepi32_ps(k45_minsum(mins, y)), accm);
        const __m256i s01 = _mm256_add_epi32(q4k_chunk(x->qs, y->qs, sc, 0), q4k_chunk(x->qs, y->qs, sc, 1));
        const __m256i s23 = _mm256_add_epi32(q4k_chunk(x->qs, y->qs, sc, 2), q4k_chunk(x->qs, y->qs, sc, 3));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(dy * rd_f16(x->d)), _mm256_cvtepi32_ps(_mm256_add_epi32(s01, s23)), acc);
    }
    return hsum256(acc) - hsum128(accm);
}

/* Q5_K chunk: Q4_K's plus bit 2c (low half) / 2c+1 (high half) of qh[l] as bit 4. A
 * 16-bit shift right by 2c keeps each byte's own bits 2c, 2c+1 in its bits 0, 1 (c <= 3),
 * then they are moved to bit 4. */
AI __m256i q5k_chunk(const uint8_t *qs, __m256i qh, const int8_t *q8, __m256i sc, int c) {
    const __m256i m4 = _mm256_set1_epi8(0x0f), b4 = _mm256_set1_epi8(0x10);
    const __m256i q = loadu256(qs + 32 * c);
    const __m256i h = _mm256_srli_epi16(qh, 2 * c);
    const __m256i lo = _mm256_or_si256(_mm256_and_si256(q, m4), _mm256_and_si256(_mm256_slli_epi16(h, 4), b4));
    const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4),
                                       _mm256_and_si256(_mm256_slli_epi16(h, 3), b4));
    return k45_chunk(lo, hi, q8, sc, c);
}

AI float row_q5_K(int64_t n, const void *w, const void *a, const int pf) {
    const smoe_block_q5_K *x = w;
    const smoe_block_q8_K *y = a;
    __m256 acc = _mm256_setzero_ps();
    __m128 accm = _mm_setzero_ps();
    for (int64_t i = 0; i < n / SMOE_QK_K; i++, x++, y++) {
        if (pf) pf_ahead(x, sizeof *x);
        const float dy = rd_f32(y->d);
        __m256i sc;
        __m128i mins;
        k45_scales(x->scales, &sc, &mins);
        accm = _mm_fmadd_ps(_mm_set1_ps(dy * rd_f16(x->dmin)), _mm_cvtepi32_ps(k45_minsum(mins, y)), accm);
        const __m256i qh = loadu256(x->qh);
        const __m256i s01 = _mm256_add_epi32(q5k_chunk(x->qs, qh, y->qs, sc, 0), q5k_chunk(x->qs, qh, y->qs, sc, 1));
        const __m256i s23 = _mm256_add_epi32(q5k_chunk(x->qs, qh, y->qs, sc, 2), q5k_chunk(x->qs, qh, y->qs, sc, 3));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(dy * rd_f16(x->d)), _mm256_cvtepi32_ps(_mm256_add_epi32(s01, s23)), acc);
    }
    return hsum256(acc) - hsum128(accm);
}

/* Q6_K: q in 0..63, value q - 32: sum sc*(q-32)*y = sum sc*q*y - 32 * sum_j sc_j*bsums_j.
 * maddubs pairs <= 2*63*128; madd with scales |sc| <= 128 (< 2^22 per lane per group). */
AI float row_q6_K(int64_t n, const void *w, const void *a, const int pf) {
    const smoe_block_q6_K *x = w;
    const smoe_block_q8_K *y = a;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i m2a = _mm256_set1_epi8(0x03), m2b = _mm256_set1_epi8(0x0c);
    const __m256i m2c = _mm256_set1_epi8(0x30), m2d = _mm256_set1_epi8((char)0xc0);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
    for (int64_t i = 0; i < n / SMOE_QK_K; i++) {
        const smoe_block_q6_K *xb = x + i;
        const smoe_block_q8_K *yb = y + i;
        if (pf) pf_ahead(xb, sizeof *xb);
        const __m128i sc = loadu128(xb->scales);
        /* the -32 offset through the block sums */
        __m256i sumi = _mm256_slli_epi32(_mm256_madd_epi16(_mm256_cvtepi8_epi16(sc), loadu256(yb->bsums)), 5);
        sumi = _mm256_sub_epi32(_mm256_setzero_si256(), sumi);
        for (int h = 0; h < 2; h++) {
            const __m256i la = loadu256(xb->ql + 64 * h);
            const __m256i lb = loadu256(xb->ql + 64 * h + 32);
            const __m256i qh = loadu256(xb->qh + 32 * h);
            const int8_t *q8 = yb->qs + 128 * h;
            /* 16-bit shifts of masked bytes: no bit crosses into the neighbouring byte */
            const __m256i q0 = _mm256_or_si256(_mm256_and_si256(la, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m2a), 4));
            const __m256i q1 = _mm256_or_si256(_mm256_and_si256(lb, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m2b), 2));
            const __m256i q2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(la, 4), m4), _mm256_and_si256(qh, m2c));
            const __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(lb, 4), m4),
                                               _mm256_srli_epi16(_mm256_and_si256(qh, m2d), 2));
            const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(q0, loadu256(q8)), scale_pair(sc, 8 * h));
            const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(q1, loadu256(q8 + 32)), scale_pair(sc, 8 * h + 2));
            const __m256i p2 = _mm256_madd_epi16(_mm256_maddubs_epi16(q2, loadu256(q8 + 64)), scale_pair(sc, 8 * h + 4));
            const __m256i p3 = _mm256_madd_epi16(_mm256_maddubs_epi16(q3, loadu256(q8 + 96)), scale_pair(sc, 8 * h + 6));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(_mm256_add_epi32(p0, p1), _mm256_add_epi32(p2, p3)));
        }
        const __m256 d = _mm256_set1_ps(rd_f32(yb->d) * rd_f16(xb->d));
        if (i & 1)
            acc1 = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc1);
        else
            acc0 = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc0);
    }
    return hsum256(_mm256_add_ps(acc0, acc1));
}

/* ------------------------------------------------------------ float dot products */

/* F16/BF16 products are exact in f32 (11 or 8 significant bits per factor), so the FMA
 * only rounds the sums; 4 accumulators of 8 lanes, then a scalar tail. */
AI float row_f16(int64_t n, const void *w, const void *a, const int pf) {
    const uint8_t *x = w, *y = a;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
    int64_t i = 0;
#define F16X8(p) _mm256_cvtph_ps(loadu128(p))
    for (; i + 32 <= n; i += 32) {
        if (pf) pf_ahead_float(x + 2 * i);
        acc0 = _mm256_fmadd_ps(F16X8(x + 2 * i), F16X8(y + 2 * i), acc0);
        acc1 = _mm256_fmadd_ps(F16X8(x + 2 * i + 16), F16X8(y + 2 * i + 16), acc1);
        acc2 = _mm256_fmadd_ps(F16X8(x + 2 * i + 32), F16X8(y + 2 * i + 32), acc2);
        acc3 = _mm256_fmadd_ps(F16X8(x + 2 * i + 48), F16X8(y + 2 * i + 48), acc3);
    }
    for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(F16X8(x + 2 * i), F16X8(y + 2 * i), acc0);
#undef F16X8
    float sum = hsum256(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
    for (; i < n; i++) sum += rd_f16(x + 2 * i) * rd_f16(y + 2 * i);
    return sum;
}

AI float row_bf16(int64_t n, const void *w, const void *a, const int pf) {
    const uint8_t *x = w, *y = a;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        if (pf) pf_ahead_float(x + 2 * i);
        const __m256i x0 = loadu256(x + 2 * i), y0 = loadu256(y + 2 * i);
        const __m256i x1 = loadu256(x + 2 * i + 32), y1 = loadu256(y + 2 * i + 32);
        acc0 = _mm256_fmadd_ps(bf16_lo(x0), bf16_lo(y0), acc0);
        acc1 = _mm256_fmadd_ps(bf16_hi(x0), bf16_hi(y0), acc1);
        acc2 = _mm256_fmadd_ps(bf16_lo(x1), bf16_lo(y1), acc2);
        acc3 = _mm256_fmadd_ps(bf16_hi(x1), bf16_hi(y1), acc3);
    }
    for (; i + 16 <= n; i += 16) {
        const __m256i x0 = loadu256(x + 2 * i), y0 = loadu256(y + 2 * i);
        acc0 = _mm256_fmadd_ps(bf16_lo(x0), bf16_lo(y0), acc0);
        acc1 = _mm256_fmadd_ps(bf16_hi(x0), bf16_hi(y0), acc1);
    }
    float sum = hsum256(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
    for (; i < n; i++) {
        uint16_t u, v;
        memcpy(&u, x + 2 * i, 2);
        memcpy(&v, y + 2 * i, 2);
        sum += smoe_bf16_to_f32(u) * smoe_bf16_to_f32(v);
    }
    return sum;
}

/* F32: one 8-lane accumulator, the 8-value blocks in order, then hsum256 and the scalar
 * tail. A single chain is latency-bound on one row, but F32 rows come here only one at a
 * time where no 4-row tile applies: cpu_ops.c runs them four rows at a time through
 * dot4xn_avx2.c, whose 4 x nt chains are independent and give these bits per output. */
static float dot_f32(int64_t n, const void *w, const void *a) {
    const float *x = w, *y = a; /* only passed to loadu / memcpy: any alignment */
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), acc);
    float sum = hsum256(acc);
    for (; i < n; i++) {
        float u, v;
        memcpy(&u, x + i, sizeof u);
        memcpy(&v, y + i, sizeof v);
        sum += u * v;
    }
    return sum;
}

/* ------------------------------------------------------------ one row and four rows */

/* Each type's vec_dot, and its vec_dot_4x1: four rows one after the other through the
 * same inlined code (the same bits), with the blocks' prefetches on (pf_ahead). */
#define ROW_KERNELS(T)                                                                          \
    static float dot_##T(int64_t n, const void *w, const void *a) { return row_##T(n, w, a, 0); } \
    static void dot4x1_##T(int64_t n, const void *w, size_t ws, const void *a, float *out) {    \
        FOR4(r) out[r] = row_##T(n, (const uint8_t *)w + (size_t)r * ws, a, 1);                 \
    }
ROW_KERNELS(q4_0)
ROW_KERNELS(q4_1)
ROW_KERNELS(q5_0)
ROW_KERNELS(q5_1)
ROW_KERNELS(q8_0)
ROW_KERNELS(q2_K)
ROW_KERNELS(q3_K)
ROW_KERNELS(q4_K)
ROW_KERNELS(q5_K)
ROW_KERNELS(q6_K)
ROW_KERNELS(f16)
ROW_KERNELS(bf16)

/* ------------------------------------------------------------ the table */

static void set_row(smoe_kernel *rows, int count, int t, smoe_vec_dot_fn dot, smoe_from_float_fn q,
                    smoe_vec_dot_4x1_fn dot4x1) {
    if (t >= count) return;
    rows[t].isa = "avx2";
    rows[t].vec_dot = dot;
    rows[t].act_quant = q;
    rows[t].vec_dot_4x1 = dot4x1;
}

/* Overrides the rows (already holding the scalar ones, vec_dot_type included). */
void smoe_kernels_fill_avx2(smoe_kernel *rows, int count) {
    set_row(rows, count, SMOE_DTYPE_Q4_0, dot_q4_0, quant_q8_0, dot4x1_q4_0);
    set_row(rows, count, SMOE_DTYPE_Q4_1, dot_q4_1, quant_q8_1, dot4x1_q4_1);
    set_row(rows, count, SMOE_DTYPE_Q5_0, dot_q5_0, quant_q8_0, dot4x1_q5_0);
    set_row(rows, count, SMOE_DTYPE_Q5_1, dot_q5_1, quant_q8_1, dot4x1_q5_1);
    set_row(rows, count, SMOE_DTYPE_Q8_0, dot_q8_0, quant_q8_0, dot4x1_q8_0);
    set_row(rows, count, SMOE_DTYPE_Q2_K, dot_q2_K, quant_q8_K, dot4x1_q2_K);
    set_row(rows, count, SMOE_DTYPE_Q3_K, dot_q3_K, quant_q8_K, dot4x1_q3_K);
    set_row(rows, count, SMOE_DTYPE_Q4_K, dot_q4_K, quant_q8_K, dot4x1_q4_K);
    set_row(rows, count, SMOE_DTYPE_Q5_K, dot_q5_K, quant_q8_K, dot4x1_q5_K);
    set_row(rows, count, SMOE_DTYPE_Q6_K, dot_q6_K, quant_q8_K, dot4x1_q6_K);
    set_row(rows, count, SMOE_DTYPE_F16, dot_f16, quant_f16, dot4x1_f16);
    set_row(rows, count, SMOE_DTYPE_BF16, dot_bf16, quant_bf16, dot4x1_bf16);
    set_row(rows, count, SMOE_DTYPE_F32, dot_f32, quant_f32, NULL);
}
