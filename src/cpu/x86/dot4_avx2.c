/*
 * dot4_avx2.c - AVX2 + FMA + F16C "1 weight row x 4 activation rows" dot products
 * (vec_dot4 of cpu/kernels.h; Q4_K and Q6_K also for 2 or 3 rows, vec_dot_few) for every weight type that x86/dot_avx2.c has a vec_dot
 * for: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K, F16, BF16, F32. Prefill runs each
 * weight row against many tokens; here each weight block is loaded and unpacked once
 * (nibble masks, high bits, scale decoding, fp16 -> f32) and multiplied with the four
 * activation rows, each into its own accumulators.
 *
 * What it does not do: it is never called unless cpufeat.c saw AVX2, FMA and F16C (the
 * Makefile builds this file alone with -mavx2 -mfma -mf16c); no threading, no tiling
 * over rows (cpu_ops.c does that), no activation quantizers (dot_avx2.c's are used).
 *
 * Exactness: bit-identical to dot_avx2.c. Output j equals the float that dot_avx2.c's
 * vec_dot returns for activation row j, bit for bit: each kernel computes the same int32
 * lanes per block (the same maddubs/madd grouping, so every lane holds the same exact
 * integer), the same f32 scale products (f32(d_x) * f32(d_y), exact conversions then one
 * IEEE multiply, however they are gathered), and feeds them to the same chain of FMAs per
 * accumulator, in the same block order, reduced by the same horizontal sums. So a token's
 * logits do not depend on whether the matmul grouped it with three others. Where
 * dot_avx2.c keeps 4 accumulators per row (legacy types, F16 and BF16), 4 tokens
 * would need 16 accumulators, as many as AVX2 has registers: those kernels cut the row
 * into short segments (in L1) and make two passes over each, accumulators 0-1 then 2-3,
 * so that every accumulator still sees its terms in row order. The scalar tails are
 * written as the same C expressions as dot_avx2.c's, so a compiler that contracts a*b+c
 * into an FMA (clang's default) does it in both files.
 *
 * Speed (tests/test_kernels.c checks the results, bench/bench_kernels.c --x4 the speed):
 * per token, the work left is the multiplies themselves (maddubs, madd), the int32 adds,
 * one conversion and one FMA per block; the K-quants gain most (their unpacking and
 * scale decoding is shared), Q8_0 least (it has nothing to unpack). GCC needs two hints
 * to keep the 4 tokens' state in registers: the token loops are unrolled by pragma (FOR4)
 * and an empty asm (KEEP) pins each token's int32 sum after every group, or GCC regroups
 * the adds of a whole block into one tree and spills the products.
 *
 * The helpers below repeat some of dot_avx2.c's (that file's are static): they must
 * produce the same lanes in the same order, and tests/test_kernels.c checks that every
 * output is bit-identical to the vec_dot of the same row.
 */
#include "cpu/kernels.h"
#include "quant/blocks.h"
#include "quant/quant.h"
#include "smoe.h"

#include "cpu/x86/avx2_util.h"

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

void smoe_kernels_fill_avx2_dot4(smoe_kernel *rows, int count);

/* ------------------------------------------------------------ helpers */

/* Helpers taking a constant chunk index or a token's accumulators by address must be
 * inlined: their shuffle controls become constants, the accumulators registers. */
#define AI static inline __attribute__((always_inline))

/* An empty asm that "changes" v: the compiler must have v's value in a register here,
 * so it cannot regroup the integer adds of several chunks into one tree (which keeps
 * all their products live at once and spills them). */
#define KEEP(v) __asm__("" : "+x"(v))
/* The same for the two halves of a K-quant block (their shuffle controls constants). */
#define FOR2(h) _Pragma("GCC unroll 2") for (int h = 0; h < 2; h++)
/* The token loop of a kernel instantiated for nt = 2, 3 or 4 tokens (a constant after inlining). */
#define FORN(j, nt) _Pragma("GCC unroll 4") for (int j = 0; j < (nt); j++)

/* The fp16 fields p[0], p[s], p[2s], p[3s] as 4 floats. */
AI __m128 f16x4(const uint8_t *p, size_t s) {
    const uint64_t v = u16_at(p) | u16_at(p + s) << 16 | u16_at(p + 2 * s) << 32 | u16_at(p + 3 * s) << 48;
    return _mm_cvtph_ps(_mm_cvtsi64_si128((long long)v));
}

/* Broadcast of int16 element j of a 128-bit vector (in both lanes of v). */
AI __m256i bcast16(__m256i v, int j) {
    return _mm256_shuffle_epi8(v, _mm256_set1_epi16((short)(((2 * j + 1) << 8) | (2 * j))));
}

/* 16 signed byte scales -> int16: scale i in the low 8 lanes, scale i+1 in the high 8. */
AI __m256i scale_pair(__m128i sc, int i) {
    const __m128i ctl = _mm_setr_epi8((char)i, (char)i, (char)i, (char)i, (char)i, (char)i, (char)i, (char)i,
                                      (char)(i + 1), (char)(i + 1), (char)(i + 1), (char)(i + 1),
                                      (char)(i + 1), (char)(i + 1), (char)(i + 1), (char)(i + 1));
    return _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc, ctl));
}

/* 16 accumulators [token][k] = 0. */
static inline void zero16(__m256 (*acc)[4]) {
    FOR4(j) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = _mm256_setzero_ps();
}

/* hsum256((acc0 + acc1) + (acc2 + acc3)) of each token. */
static inline void reduce16(__m256 (*acc)[4], float *sum) {
    FOR4(j) sum[j] = hsum256(_mm256_add_ps(_mm256_add_ps(acc[j][0], acc[j][1]), _mm256_add_ps(acc[j][2], acc[j][3])));
}

/* ------------------------------------------------------------ legacy types */

/* Per block and token, the 8 int32 lane sums of dot_avx2.c's *_isum (as f32: exact,
 * |lane| < 2^24). The weight part (q) is unpacked once per block by the *_w functions. */

/* Q4_0: (q - 8) * y as maddubs(q, y) - maddubs(8, y). */
static inline __m256i q4_0_w(const smoe_block_q4_0 *x) { return nibbles32(x->qs); }
static inline __m256 q4_0_t(__m256i q, const smoe_block_q8_0 *y) {
    const __m256i v = loadu256(y->qs);
    const __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(q, v), _mm256_maddubs_epi16(_mm256_set1_epi8(8), v));
    return _mm256_cvtepi32_ps(sum_pairs(p));
}

static inline __m256i q4_1_w(const smoe_block_q4_1 *x) { return nibbles32(x->qs); }
static inline __m256 q4_1_t(__m256i q, const smoe_block_q8_1 *y) {
    return _mm256_cvtepi32_ps(sum_pairs(_mm256_maddubs_epi16(q, loadu256(y->qs))));
}

static inline __m256i q5_0_w(const smoe_block_q5_0 *x) {
    return _mm256_or_si256(nibbles32(x->qs), _mm256_and_si256(bits32(x->qh), _mm256_set1_epi8(0x10)));
}
static inline __m256 q5_0_t(__m256i q, const smoe_block_q8_0 *y) {
    const __m256i v = loadu256(y->qs);
    const __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(q, v), _mm256_maddubs_epi16(_mm256_set1_epi8(16), v));
    return _mm256_cvtepi32_ps(sum_pairs(p));
}

static inline __m256i q5_1_w(const smoe_block_q5_1 *x) {
    return _mm256_or_si256(nibbles32(x->qs), _mm256_and_si256(bits32(x->qh), _mm256_set1_epi8(0x10)));
}
static inline __m256 q5_1_t(__m256i q, const smoe_block_q8_1 *y) {
    return _mm256_cvtepi32_ps(sum_pairs(_mm256_maddubs_epi16(q, loadu256(y->qs))));
}

/* Q8_0: the weight's sign moved onto the activation; q holds the raw weight quants
 * (the compiler computes |q| once per block: the same expression for all 4 tokens). */
static inline __m256i q8_0_w(const smoe_block_q8_0 *x) { return loadu256(x->qs); }
static inline __m256 q8_0_t(__m256i q, const smoe_block_q8_0 *y) {
    const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(loadu256(y->qs), q));
    return _mm256_cvtepi32_ps(sum_pairs(p));
}

/* The 8 scale products d_x * d_y of blocks i, i+1 (fp16 fields at px, px + sx) and
 * tokens 0..3 (fields at p0..p3, + sy for block i+1), converted together and multiplied
 * by one vmulps (each is f32(d_x) * f32(d_y), one IEEE multiply: the value dot_avx2.c
 * computes). Returned with tokens 0 and 1 (d01) or 2 and 3 (d23) in both 128-bit halves,
 * as [t0 b0, t0 b1, t1 b0, t1 b1], so that LANE broadcasts any of them. */
AI void legacy_scales4v(const uint8_t *px, size_t sx, const uint8_t *p0, const uint8_t *p1, const uint8_t *p2,
                       const uint8_t *p3, size_t sy, __m256 *d01, __m256 *d23) {
    const uint64_t xs = u16_at(px) | u16_at(px + sx) << 16;
    const uint64_t ya = u16_at(p0) | u16_at(p0 + sy) << 16 | u16_at(p1) << 32 | u16_at(p1 + sy) << 48;
    const uint64_t yb = u16_at(p2) | u16_at(p2 + sy) << 16 | u16_at(p3) << 32 | u16_at(p3 + sy) << 48;
    const __m256 dx = _mm256_cvtph_ps(_mm_set1_epi64x((long long)(xs | xs << 32)));
    const __m256 dy = _mm256_cvtph_ps(_mm_set_epi64x((long long)yb, (long long)ya));
    const __m256 d = _mm256_mul_ps(dx, dy);
    *d01 = _mm256_permute2f128_ps(d, d, 0x00);
    *d23 = _mm256_permute2f128_ps(d, d, 0x11);
}

/* Broadcast of element k of each 128-bit half of v. */
#define LANE(v, k) _mm256_permute_ps((v), (k) * 0x55)

/* dot_avx2.c's legacy kernels keep accumulator k for blocks 4i + k and put the blocks
 * past the last multiple of 4 into accumulator 0; the result is
 * hsum256((acc0 + acc1) + (acc2 + acc3)) (+ the min part). For 4 tokens these are 16
 * accumulators: the row is cut into segments of SEG_BLOCKS blocks, and each segment gets
 * two passes, accumulators 0-1 (blocks 4i, 4i+1) then 2-3 (4i+2, 4i+3), 8 live at a time
 * and kept in acc[token][k] between passes; the tail blocks follow in accumulator 0. The
 * scale products of one pass step (2 blocks x 4 tokens) are computed 8 at a time. */
#define SEG_BLOCKS 32
#define LEGACY_DOT4(name, wtype, atype, wfn, tfn, MINPART)                                          \
    AI void name##_pass(const wtype *x, const atype *const *y, int64_t i0, int64_t i1, int p, __m256 (*acc)[4]) { \
        __m256 a00 = acc[0][2 * p], a01 = acc[0][2 * p + 1], a10 = acc[1][2 * p], a11 = acc[1][2 * p + 1]; \
        __m256 a20 = acc[2][2 * p], a21 = acc[2][2 * p + 1], a30 = acc[3][2 * p], a31 = acc[3][2 * p + 1]; \
        const atype *y0 = y[0], *y1 = y[1], *y2 = y[2], *y3 = y[3];                                 \
        for (int64_t i = i0 + 2 * p; i < i1; i += 4) {                                              \
            __m256 d01, d23; /* d_x * d_y of blocks i, i+1: tokens 0, 1 (2, 3) in both halves */  \
            legacy_scales4v(x[i].d, sizeof *x, y0[i].d, y1[i].d, y2[i].d, y3[i].d, sizeof *y0, &d01, &d23); \
            const __m256i q0 = wfn(x + i), q1 = wfn(x + i + 1);                                     \
            a00 = _mm256_fmadd_ps(LANE(d01, 0), tfn(q0, y0 + i), a00);                              \
            a10 = _mm256_fmadd_ps(LANE(d01, 2), tfn(q0, y1 + i), a10);                              \
            a20 = _mm256_fmadd_ps(LANE(d23, 0), tfn(q0, y2 + i), a20);                              \
            a30 = _mm256_fmadd_ps(LANE(d23, 2), tfn(q0, y3 + i), a30);                              \
            a01 = _mm256_fmadd_ps(LANE(d01, 1), tfn(q1, y0 + i + 1), a01);                          \
            a11 = _mm256_fmadd_ps(LANE(d01, 3), tfn(q1, y1 + i + 1), a11);                          \
            a21 = _mm256_fmadd_ps(LANE(d23, 1), tfn(q1, y2 + i + 1), a21);                          \
            a31 = _mm256_fmadd_ps(LANE(d23, 3), tfn(q1, y3 + i + 1), a31);                          \
        }                                                                                           \
        acc[0][2 * p] = a00, acc[0][2 * p + 1] = a01, acc[1][2 * p] = a10, acc[1][2 * p + 1] = a11; \
        acc[2][2 * p] = a20, acc[2][2 * p + 1] = a21, acc[3][2 * p] = a30, acc[3][2 * p + 1] = a31; \
    }                                                                                               \
    static void name(int64_t n, const void *w, const void *a, size_t as, float *out) {              \
        const wtype *x = w;                                                                         \
        const atype *y[4] = {ROW(atype, a, as, 0), ROW(atype, a, as, 1), ROW(atype, a, as, 2), ROW(atype, a, as, 3)}; \
        const int64_t nb = n / SMOE_QK, n4 = nb / 4 * 4;                                            \
        __m256 acc[4][4];                                                                           \
        zero16(acc);                                                                                \
        for (int64_t s0 = 0; s0 < n4; s0 += SEG_BLOCKS) {                                           \
            const int64_t s1 = s0 + SEG_BLOCKS < n4 ? s0 + SEG_BLOCKS : n4;                         \
            name##_pass(x, y, s0, s1, 0, acc);                                                      \
            name##_pass(x, y, s0, s1, 1, acc);                                                      \
        }                                                                                           \
        for (int64_t i = n4; i < nb; i++) {                                                         \
            const __m256i q = wfn(x + i);                                                           \
            const float dxi = rd_f16(x[i].d);                                                       \
            FOR4(j) acc[j][0] = _mm256_fmadd_ps(_mm256_set1_ps(dxi * rd_f16(y[j][i].d)), tfn(q, y[j] + i), acc[j][0]); \
        }                                                                                           \
        reduce16(acc, out);                                                                         \
        MINPART(wtype, atype)                                                                       \
    }

/* The min part of Q4_1/Q5_1 (dot_avx2.c's accm and ms1: m * s per block, 4 blocks per
 * FMA into 4 lanes, the rest summed in scalar) added to out[j]. x: the weight blocks (bx
 * bytes each, m at offset mo), the activation rows of blocks of by bytes with s at so.
 * Two tokens share a 256-bit accumulator, one per half: the lanes are token j's accm. */
AI __m256 f16x8_2(const uint8_t *p, const uint8_t *q, size_t s) {
    const uint64_t a = u16_at(p) | u16_at(p + s) << 16 | u16_at(p + 2 * s) << 32 | u16_at(p + 3 * s) << 48;
    const uint64_t b = u16_at(q) | u16_at(q + s) << 16 | u16_at(q + 2 * s) << 32 | u16_at(q + 3 * s) << 48;
    return _mm256_cvtph_ps(_mm_set_epi64x((long long)b, (long long)a));
}

static void legacy_min4(int64_t n, const void *x, size_t bx, size_t mo, const void *a, size_t as, size_t by,
                        size_t so, float *out) {
    const int64_t nb = n / SMOE_QK, n4 = nb / 4 * 4;
    const uint8_t *xm = (const uint8_t *)x + mo;
    const uint8_t *ys[4];
    FOR4(j) ys[j] = (const uint8_t *)a + (size_t)j * as + so;
    __m256 acc01 = _mm256_setzero_ps(), acc23 = acc01;
    for (int64_t i = 0; i < n4; i += 4) {
        const __m128 m = f16x4(xm + (size_t)i * bx, bx);
        const __m256 mm = _mm256_set_m128(m, m);
        acc01 = _mm256_fmadd_ps(mm, f16x8_2(ys[0] + (size_t)i * by, ys[1] + (size_t)i * by, by), acc01);
        acc23 = _mm256_fmadd_ps(mm, f16x8_2(ys[2] + (size_t)i * by, ys[3] + (size_t)i * by, by), acc23);
    }
    const __m128 accm[4] = {_mm256_castps256_ps128(acc01), _mm256_extractf128_ps(acc01, 1),
                            _mm256_castps256_ps128(acc23), _mm256_extractf128_ps(acc23, 1)};
    FOR4(j) {
        float ms1 = 0.0f;
        for (int64_t i = n4; i < nb; i++) ms1 += rd_f16(xm + (size_t)i * bx) * rd_f16(ys[j] + (size_t)i * by);
        out[j] = out[j] + hsum128(accm[j]) + ms1;
    }
}

#define NO_MIN(wtype, atype)
#define WITH_MIN(wtype, atype) \
    legacy_min4(n, x, sizeof(wtype), offsetof(wtype, m), a, as, sizeof(atype), offsetof(atype, s), out);
LEGACY_DOT4(dot4_q4_0, smoe_block_q4_0, smoe_block_q8_0, q4_0_w, q4_0_t, NO_MIN)
LEGACY_DOT4(dot4_q4_1, smoe_block_q4_1, smoe_block_q8_1, q4_1_w, q4_1_t, WITH_MIN)
LEGACY_DOT4(dot4_q5_0, smoe_block_q5_0, smoe_block_q8_0, q5_0_w, q5_0_t, NO_MIN)
LEGACY_DOT4(dot4_q5_1, smoe_block_q5_1, smoe_block_q8_1, q5_1_w, q5_1_t, WITH_MIN)
LEGACY_DOT4(dot4_q8_0, smoe_block_q8_0, smoe_block_q8_0, q8_0_w, q8_0_t, NO_MIN)

/* ------------------------------------------------------------ K-quants */

/* s[j] += madd(maddubs(q, y_j[off..off+31]), sc) for the 4 tokens: one 32-value group
 * with its int16 scale vector. */
AI void group4(__m256i q, __m256i sc, const rows4 *r, int64_t i, int off, __m256i *s, const int nt) {
    FORN(j, nt) {
        s[j] = _mm256_add_epi32(s[j], _mm256_madd_epi16(_mm256_maddubs_epi16(q, loadu256(r->y[j][i].qs + off)), sc));
        KEEP(s[j]);
    }
}

/* Q2_K (dot_avx2.c's dot_q2_K, the same lanes): the fields q & 3, q & 0x0c of each half
 * and of its q >> 4, against scales x4 (fields 0, 2) or x1 (fields 1, 3) broadcast by
 * one pshufb from the even/odd scale vectors, so the int32 lanes are 4x the plain sums
 * and the float scale is dy * d / 4 (exact). One accumulator each for the quant and the
 * min part. */
static void dot4_q2_K(int64_t n, const void *w, const void *a, size_t as, float *out) {
    const smoe_block_q2_K *x = w;
    const rows4 r = rows4_of(a, as);
    const __m256i m3 = _mm256_set1_epi8(3), mc = _mm256_set1_epi8(0x0c);
    __m256 acc[4], accm[4];
    FOR4(j) acc[j] = accm[j] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / SMOE_QK_K; i++) {
        const __m128i sc8 = loadu128(x[i].scales);
        const __m128i eo = _mm_shuffle_epi8(sc8, _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15));
        const __m256i sc1 = _mm256_and_si256(_mm256_cvtepu8_epi16(eo), _mm256_set1_epi16(0x0f));
        const __m256i sc4 = _mm256_slli_epi16(sc1, 2);
        const __m256i mins = _mm256_srli_epi16(_mm256_cvtepu8_epi16(sc8), 4);
        __m256i s[4];
        FOR4(j) s[j] = _mm256_setzero_si256();
        FOR2(h) {
            const __m256i q = loadu256(x[i].qs + 32 * h), q4 = _mm256_srli_epi16(q, 4);
            group4(_mm256_and_si256(q, m3), bcast16(sc4, 4 * h), &r, i, 128 * h, s, 4);
            group4(_mm256_and_si256(q, mc), bcast16(sc1, 4 * h + 1), &r, i, 128 * h + 32, s, 4);
            group4(_mm256_and_si256(q4, m3), bcast16(sc4, 4 * h + 2), &r, i, 128 * h + 64, s, 4);
            group4(_mm256_and_si256(q4, mc), bcast16(sc1, 4 * h + 3), &r, i, 128 * h + 96, s, 4);
        }
        const float dx = rd_f16(x[i].d), dm = rd_f16(x[i].dmin);
        FOR4(j) {
            const smoe_block_q8_K *y = r.y[j] + i;
            const float dy = rd_f32(y->d);
            const __m256i msum = _mm256_madd_epi16(mins, loadu256(y->bsums));
            acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(dy * dx * 0.25f), _mm256_cvtepi32_ps(s[j]), acc[j]);
            accm[j] = _mm256_fmadd_ps(_mm256_set1_ps(dy * dm), _mm256_cvtepi32_ps(msum), accm[j]);
        }
    }
    FOR4(j) out[j] = hsum256(acc[j]) - hsum256(accm[j]);
}

/* One 32-value group (half h, field k) of Q3_K for 4 tokens: maddubs(q2, y) -
 * maddubs(4 where the high bit is clear, y), weighted by scales 8h+2k, 8h+2k+1. */
AI void q3k_group4(__m256i q, __m256i hm, __m256i sc, int h, int k, const rows4 *r, int64_t i, __m256i *s) {
    const __m256i q2 = _mm256_and_si256(_mm256_srli_epi16(q, 2 * k), _mm256_set1_epi8(3));
    const __m256i bit = _mm256_set1_epi8((char)(1u << (4 * h + k)));
    const __m256i clear = _mm256_cmpeq_epi8(_mm256_and_si256(hm, bit), _mm256_setzero_si256());
    const __m256i c4 = _mm256_and_si256(clear, _mm256_set1_epi8(4));
    const __m256i sp = bcast16(sc, 4 * h + k);
    FOR4(j) {
        const __m256i v = loadu256(r->y[j][i].qs + 128 * h + 32 * k);
        const __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(q2, v), _mm256_maddubs_epi16(c4, v));
        s[j] = _mm256_add_epi32(s[j], _mm256_madd_epi16(p, sp));
        KEEP(s[j]);
    }
}

static void dot4_q3_K(int64_t n, const void *w, const void *a, size_t as, float *out) {
    const smoe_block_q3_K *x = w;
    const rows4 r = rows4_of(a, as);
    __m256 acc[4];
    FOR4(j) acc[j] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / SMOE_QK_K; i++) {
        const __m256i sc = q3_scales_eo(x[i].scales);
        const __m256i hm = loadu256(x[i].hmask);
        __m256i s[4];
        FOR4(j) s[j] = _mm256_setzero_si256();
        FOR2(h) {
            const __m256i q = loadu256(x[i].qs + 32 * h);
            q3k_group4(q, hm, sc, h, 0, &r, i, s);
            q3k_group4(q, hm, sc, h, 1, &r, i, s);
            q3k_group4(q, hm, sc, h, 2, &r, i, s);
            q3k_group4(q, hm, sc, h, 3, &r, i, s);
        }
        const float dx = rd_f16(x[i].d);
        FOR4(j)
            acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(rd_f32(r.y[j][i].d) * dx), _mm256_cvtepi32_ps(s[j]), acc[j]);
    }
    FOR4(j) out[j] = hsum256(acc[j]);
}

/* One 64-value chunk c of Q4_K/Q5_K for 4 tokens: lo quants times y[64c..], hi quants
 * times y[64c+32..], scales 2c and 2c+1. */
AI void k45_chunk4(__m256i lo, __m256i hi, __m256i sc, int c, const rows4 *r, int64_t i, __m256i *s, const int nt) {
    const __m256i slo = bcast16(sc, 2 * c), shi = bcast16(sc, 2 * c + 1);
    FORN(j, nt) {
        const int8_t *q8 = r->y[j][i].qs + 64 * c;
        const __m256i plo = _mm256_maddubs_epi16(lo, loadu256(q8));
        const __m256i phi = _mm256_maddubs_epi16(hi, loadu256(q8 + 32));
        s[j] = _mm256_add_epi32(s[j], _mm256_add_epi32(_mm256_madd_epi16(plo, slo), _mm256_madd_epi16(phi, shi)));
        KEEP(s[j]);
    }
}

AI void q4k_chunk4(const uint8_t *qs, __m256i sc, int c, const rows4 *r, int64_t i, __m256i *s, const int nt) {
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i q = loadu256(qs + 32 * c);
    k45_chunk4(_mm256_and_si256(q, m4), _mm256_and_si256(_mm256_srli_epi16(q, 4), m4), sc, c, r, i, s, nt);
}

AI void q5k_chunk4(const uint8_t *qs, __m256i qh, __m256i sc, int c, const rows4 *r, int64_t i, __m256i *s) {
    const __m256i m4 = _mm256_set1_epi8(0x0f), b4 = _mm256_set1_epi8(0x10);
    const __m256i q = loadu256(qs + 32 * c);
    const __m256i h = _mm256_srli_epi16(qh, 2 * c);
    const __m256i lo = _mm256_or_si256(_mm256_and_si256(q, m4), _mm256_and_si256(_mm256_slli_epi16(h, 4), b4));
    const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4),
                                       _mm256_and_si256(_mm256_slli_epi16(h, 3), b4));
    k45_chunk4(lo, hi, sc, c, r, i, s, 4);
}

/* The per-block float part of Q4_K/Q5_K for the 4 tokens. */
AI void k45_finish4(const uint8_t *d, const uint8_t *dmin, __m128i mins, const rows4 *r, int64_t i,
                    const __m256i *s, __m256 *acc, __m256 *accm2, const int nt) {
    /* dy_j * d_x and dy_j * dmin for the 4 tokens, one vmulps each (the same f32 products) */
    const __m128 dy = _mm_setr_ps(rd_f32(r->y[0][i].d), rd_f32(r->y[1][i].d), rd_f32(r->y[2][i].d), rd_f32(r->y[3][i].d));
    const __m256 dm = _mm256_castps128_ps256(_mm_mul_ps(dy, _mm_set1_ps(rd_f16(dmin))));
    const float dx = rd_f16(d);
    FORN(j, nt) acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(rd_f32(r->y[j][i].d) * dx), _mm256_cvtepi32_ps(s[j]), acc[j]);
    /* the min parts two tokens per vector (all four rows: a kernel for fewer tokens repeats
     * its last row there, and ignores those sums): the bsums pairs of token j in half j & 1 */
    const __m256i m2 = _mm256_broadcastsi128_si256(mins);
    FOR2(h) {
        const __m256i b0 = loadu256(r->y[2 * h][i].bsums), b1 = loadu256(r->y[2 * h + 1][i].bsums);
        const __m256i pairs = _mm256_hadd_epi16(_mm256_permute2x128_si256(b0, b1, 0x20), _mm256_permute2x128_si256(b0, b1, 0x31));
        const __m256 sc = _mm256_permutevar8x32_ps(dm, _mm256_setr_epi32(2 * h, 2 * h, 2 * h, 2 * h, 2 * h + 1, 2 * h + 1, 2 * h + 1, 2 * h + 1));
        accm2[h] = _mm256_fmadd_ps(sc, _mm256_cvtepi32_ps(_mm256_madd_epi16(m2, pairs)), accm2[h]);
    }
}

/* hsum128 of token j's min accumulator (half j & 1 of accm2[j / 2]). */
static inline float accm_sum(const __m256 *accm2, int j) {
    const __m256 v = accm2[j / 2];
    return hsum128(j & 1 ? _mm256_extractf128_ps(v, 1) : _mm256_castps256_ps128(v));
}

AI void q4k_dot(int64_t n, const void *w, const rows4 *r, const int nt, float *out) {
    const smoe_block_q4_K *x = w;
    __m256 acc[4];
    __m256 accm2[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    FORN(j, nt) acc[j] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / SMOE_QK_K; i++) {
        __m256i sc, s[4];
        __m128i mins;
        if (nt < 4) pf_ahead(x + i, sizeof *x); /* vec_dot_few: a stream from memory */
        k45_scales(x[i].scales, &sc, &mins);
        FORN(j, nt) s[j] = _mm256_setzero_si256();
        q4k_chunk4(x[i].qs, sc, 0, r, i, s, nt);
        q4k_chunk4(x[i].qs, sc, 1, r, i, s, nt);
        q4k_chunk4(x[i].qs, sc, 2, r, i, s, nt);
        q4k_chunk4(x[i].qs, sc, 3, r, i, s, nt);
        k45_finish4(x[i].d, x[i].dmin, mins, r, i, s, acc, accm2, nt);
    }
    FORN(j, nt) out[j] = hsum256(acc[j]) - accm_sum(accm2, j);
}

static void dot4_q4_K(int64_t n, const void *w, const void *a, size_t as, float *out) {
    const rows4 r = rows4_of(a, as);
    q4k_dot(n, w, &r, 4, out);
}

static void dot4_q5_K(int64_t n, const void *w, const void *a, size_t as, float *out) {
    const smoe_block_q5_K *x = w;
    const rows4 r = rows4_of(a, as);
    __m256 acc[4];
    __m256 accm2[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    FOR4(j) acc[j] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / SMOE_QK_K; i++) {
        __m256i sc, s[4];
        __m128i mins;
        k45_scales(x[i].scales, &sc, &mins);
        const __m256i qh = loadu256(x[i].qh);
        FOR4(j) s[j] = _mm256_setzero_si256();
        q5k_chunk4(x[i].qs, qh, sc, 0, &r, i, s);
        q5k_chunk4(x[i].qs, qh, sc, 1, &r, i, s);
        q5k_chunk4(x[i].qs, qh, sc, 2, &r, i, s);
        q5k_chunk4(x[i].qs, qh, sc, 3, &r, i, s);
        k45_finish4(x[i].d, x[i].dmin, mins, &r, i, s, acc, accm2, 4);
    }
    FOR4(j) out[j] = hsum256(acc[j]) - accm_sum(accm2, j);
}

/* Q6_K block i for 4 tokens (dot_avx2.c's dot_q6_K): the int32 lane sums, the -32
 * offset through the block sums. */
AI void q6k_block4(const smoe_block_q6_K *xb, const rows4 *r, int64_t i, __m256i *s, const int nt) {
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i m2a = _mm256_set1_epi8(0x03), m2b = _mm256_set1_epi8(0x0c);
    const __m256i m2c = _mm256_set1_epi8(0x30), m2d = _mm256_set1_epi8((char)0xc0);
    const __m128i sc = loadu128(xb->scales);
    const __m256i sc16 = _mm256_cvtepi8_epi16(sc);
    FORN(j, nt) {
        const __m256i o = _mm256_slli_epi32(_mm256_madd_epi16(sc16, loadu256(r->y[j][i].bsums)), 5);
        s[j] = _mm256_sub_epi32(_mm256_setzero_si256(), o);
    }
    FOR2(h) {
        const __m256i la = loadu256(xb->ql + 64 * h);
        const __m256i lb = loadu256(xb->ql + 64 * h + 32);
        const __m256i qh = loadu256(xb->qh + 32 * h);
        const __m256i q0 = _mm256_or_si256(_mm256_and_si256(la, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m2a), 4));
        group4(q0, scale_pair(sc, 8 * h), r, i, 128 * h, s, nt);
        const __m256i q1 = _mm256_or_si256(_mm256_and_si256(lb, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m2b), 2));
        group4(q1, scale_pair(sc, 8 * h + 2), r, i, 128 * h + 32, s, nt);
        const __m256i q2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(la, 4), m4), _mm256_and_si256(qh, m2c));
        group4(q2, scale_pair(sc, 8 * h + 4), r, i, 128 * h + 64, s, nt);
        const __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(lb, 4), m4),
                                           _mm256_srli_epi16(_mm256_and_si256(qh, m2d), 2));
        group4(q3, scale_pair(sc, 8 * h + 6), r, i, 128 * h + 96, s, nt);
    }
}

AI void q6k_acc4(const smoe_block_q6_K *x, const rows4 *r, int64_t i, __m256 *acc, const int nt) {
    __m256i s[4];
    q6k_block4(x + i, r, i, s, nt);
    const float dx = rd_f16(x[i].d);
    FORN(j, nt) acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(rd_f32(r->y[j][i].d) * dx), _mm256_cvtepi32_ps(s[j]), acc[j]);
}

/* dot_q6_K alternates two accumulators, even blocks into the first. */
AI void q6k_dot(int64_t n, const void *w, const rows4 *r, const int nt, float *out) {
    const smoe_block_q6_K *x = w;
    const int64_t nb = n / SMOE_QK_K;
    __m256 acc0[4], acc1[4];
    FORN(j, nt) acc0[j] = acc1[j] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 2 <= nb; i += 2) {
        if (nt < 4) pf_ahead(x + i, 2 * sizeof *x); /* vec_dot_few: a stream from memory */
        q6k_acc4(x, r, i, acc0, nt);
        q6k_acc4(x, r, i + 1, acc1, nt);
    }
    if (i < nb) q6k_acc4(x, r, i, acc0, nt);
    FORN(j, nt) out[j] = hsum256(_mm256_add_ps(acc0[j], acc1[j]));
}

static void dot4_q6_K(int64_t n, const void *w, const void *a, size_t as, float *out) {
    const rows4 r = rows4_of(a, as);
    q6k_dot(n, w, &r, 4, out);
}

/* ------------------------------------------------------------ 2 or 3 tokens */

/* vec_dot_few (1 weight row x nt = 2 or 3 activation rows) of Q4_K and Q6_K: the 4-token
 * kernels above instantiated for nt tokens, for the experts of a batched decode step that
 * see only a few of its tokens (each weight block unpacked once for them). Rows past
 * nt - 1 repeat the last one for the parts computed for four at a time (the min sums),
 * whose extra results are dropped. The same bits as vec_dot, output by output. */
static rows4 rows_few(const void *a, size_t as, int nt) {
    rows4 r;
    FOR4(j) r.y[j] = ROW(smoe_block_q8_K, a, as, j < nt ? j : nt - 1);
    return r;
}

static void dotfew_q4_K(int64_t n, const void *w, const void *a, size_t as, int nt, float *out) {
    const rows4 r = rows_few(a, as, nt);
    if (nt == 2) q4k_dot(n, w, &r, 2, out);
    else q4k_dot(n, w, &r, 3, out);
}

static void dotfew_q6_K(int64_t n, const void *w, const void *a, size_t as, int nt, float *out) {
    const rows4 r = rows_few(a, as, nt);
    if (nt == 2) q6k_dot(n, w, &r, 2, out);
    else q6k_dot(n, w, &r, 3, out);
}

/* ------------------------------------------------------------ float types */

/* dot_avx2.c's float kernels keep 4 accumulators (8-float vectors 0..3 of each 32
 * values), then an 8- or 16-value step into the first ones, then
 * hsum256((acc0 + acc1) + (acc2 + acc3)) plus a scalar tail. For 4 tokens these are 16
 * accumulators: the row is cut into segments of SEG_BYTES per row, and each segment gets
 * two passes, accumulators 0-1 then 2-3 (8 live at a time, kept in acc[token][k] between
 * passes). Each accumulator still sees its terms in row order. The segments are short
 * so that the second pass finds the first one's cache lines in L1 (an F16 pass reads
 * half of each line): with activations streamed from L2/L3 (prefill), 512 bytes
 * measured 1.2-1.4x faster than 2 KiB ones and 1.4-1.7x faster than whole rows. */
#define SEG_BYTES 512

/* One pass of F16 (ESZ 2) or F32 (ESZ 4) over the 32-value steps [i0, i1): vectors 2p
 * and 2p+1 of each step, loaded by LD (8 values -> 8 floats). */
#define FLOAT_PASS(name, LD, ESZ)                                                                   \
    AI void name(const uint8_t *x, const uint8_t *const *y, int64_t i0, int64_t i1, int p, __m256 (*acc)[4]) { \
        __m256 a00 = acc[0][2 * p], a01 = acc[0][2 * p + 1], a10 = acc[1][2 * p], a11 = acc[1][2 * p + 1]; \
        __m256 a20 = acc[2][2 * p], a21 = acc[2][2 * p + 1], a30 = acc[3][2 * p], a31 = acc[3][2 * p + 1]; \
        const uint8_t *y0 = y[0], *y1 = y[1], *y2 = y[2], *y3 = y[3];                               \
        for (int64_t i = i0; i < i1; i += 32) {                                                     \
            const size_t b = (size_t)i * (ESZ) + (size_t)p * 16 * (ESZ), c = b + 8 * (ESZ);         \
            const __m256 w0 = LD(x + b), w1 = LD(x + c);                                            \
            a00 = _mm256_fmadd_ps(w0, LD(y0 + b), a00);                                             \
            a01 = _mm256_fmadd_ps(w1, LD(y0 + c), a01);                                             \
            a10 = _mm256_fmadd_ps(w0, LD(y1 + b), a10);                                             \
            a11 = _mm256_fmadd_ps(w1, LD(y1 + c), a11);                                             \
            a20 = _mm256_fmadd_ps(w0, LD(y2 + b), a20);                                             \
            a21 = _mm256_fmadd_ps(w1, LD(y2 + c), a21);                                             \
            a30 = _mm256_fmadd_ps(w0, LD(y3 + b), a30);                                             \
            a31 = _mm256_fmadd_ps(w1, LD(y3 + c), a31);                                             \
        }                                                                                           \
        acc[0][2 * p] = a00, acc[0][2 * p + 1] = a01, acc[1][2 * p] = a10, acc[1][2 * p + 1] = a11; \
        acc[2][2 * p] = a20, acc[2][2 * p + 1] = a21, acc[3][2 * p] = a30, acc[3][2 * p + 1] = a31; \
    }

static inline __m256 f16x8(const uint8_t *p) { return _mm256_cvtph_ps(loadu128(p)); }
FLOAT_PASS(f16_pass, f16x8, 2)

/* F16 up to the scalar tail: the segmented passes, then 8 values at a time into
 * accumulator 0; leaves i at the first value of the tail and the 4 sums in sum[]. */
#define FLOAT_BODY(PASS, LD, ESZ)                                                                   \
    const uint8_t *x = w;                                                                           \
    const uint8_t *y[4] = {a, (const uint8_t *)a + as, (const uint8_t *)a + 2 * as, (const uint8_t *)a + 3 * as}; \
    __m256 acc[4][4];                                                                               \
    zero16(acc);                                                                                    \
    const int64_t n32 = n / 32 * 32, seg = SEG_BYTES / (ESZ);                                       \
    for (int64_t s0 = 0; s0 < n32; s0 += seg) {                                                     \
        const int64_t s1 = s0 + seg < n32 ? s0 + seg : n32;                                         \
        PASS(x, y, s0, s1, 0, acc);                                                                 \
        PASS(x, y, s0, s1, 1, acc);                                                                 \
    }                                                                                               \
    int64_t i = n32;                                                                                \
    for (; i + 8 <= n; i += 8) {                                                                    \
        const __m256 w0 = LD(x + (size_t)i * (ESZ));                                                \
        FOR4(j) acc[j][0] = _mm256_fmadd_ps(w0, LD(y[j] + (size_t)i * (ESZ)), acc[j][0]);          \
    }                                                                                               \
    float sum[4];                                                                                   \
    reduce16(acc, sum);

static void dot4_f16(int64_t n, const void *w, const void *a, size_t as, float *out) {
    FLOAT_BODY(f16_pass, f16x8, 2)
    FOR4(j) {
        const uint8_t *yj = y[j];
        float s = sum[j];
        for (int64_t t = i; t < n; t++) s += rd_f16(x + 2 * t) * rd_f16(yj + 2 * t);
        out[j] = s;
    }
}

/* F32: dot_avx2.c keeps one accumulator per output (see there), so the 4 tokens need 4. */
static void dot4_f32(int64_t n, const void *w, const void *a, size_t as, float *out) {
    const float *x = w;
    const float *y[4] = {a, ROW(float, a, as, 1), ROW(float, a, as, 2), ROW(float, a, as, 3)};
    __m256 acc[4];
    FOR4(j) acc[j] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 w0 = _mm256_loadu_ps(x + i);
        FOR4(j) acc[j] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(y[j] + i), acc[j]);
    }
    FOR4(j) {
        float s = hsum256(acc[j]);
        for (int64_t t = i; t < n; t++) {
            float u, v;
            memcpy(&u, x + t, sizeof u);
            memcpy(&v, y[j] + t, sizeof v);
            s += u * v;
        }
        out[j] = s;
    }
}

/* BF16: dot_avx2.c takes 16 values per 256-bit load and widens them by interleaving
 * zeros below: accumulators 0/1 get the low/high interleave of the first 16 values of
 * each 32, 2/3 those of the second 16; then a 16-value step into 0/1. So pass p here
 * loads the 16 values at 32i + 16p and feeds accumulators 2p (low) and 2p+1 (high). */

AI void bf16_tok(__m256 wlo, __m256 whi, const uint8_t *p, __m256 *lo, __m256 *hi) {
    const __m256i v = loadu256(p);
    *lo = _mm256_fmadd_ps(wlo, bf16_lo(v), *lo);
    *hi = _mm256_fmadd_ps(whi, bf16_hi(v), *hi);
}

AI void bf16_pass(const uint8_t *x, const uint8_t *const *y, int64_t i0, int64_t i1, int p, __m256 (*acc)[4]) {
    __m256 a00 = acc[0][2 * p], a01 = acc[0][2 * p + 1], a10 = acc[1][2 * p], a11 = acc[1][2 * p + 1];
    __m256 a20 = acc[2][2 * p], a21 = acc[2][2 * p + 1], a30 = acc[3][2 * p], a31 = acc[3][2 * p + 1];
    for (int64_t i = i0; i < i1; i += 32) {
        const size_t b = 2 * (size_t)i + 32 * (size_t)p;
        const __m256i wv = loadu256(x + b);
        const __m256 wlo = bf16_lo(wv), whi = bf16_hi(wv);
        bf16_tok(wlo, whi, y[0] + b, &a00, &a01);
        bf16_tok(wlo, whi, y[1] + b, &a10, &a11);
        bf16_tok(wlo, whi, y[2] + b, &a20, &a21);
        bf16_tok(wlo, whi, y[3] + b, &a30, &a31);
    }
    acc[0][2 * p] = a00, acc[0][2 * p + 1] = a01, acc[1][2 * p] = a10, acc[1][2 * p + 1] = a11;
    acc[2][2 * p] = a20, acc[2][2 * p + 1] = a21, acc[3][2 * p] = a30, acc[3][2 * p + 1] = a31;
}

static void dot4_bf16(int64_t n, const void *w, const void *a, size_t as, float *out) {
    const uint8_t *x = w;
    const uint8_t *y[4] = {a, (const uint8_t *)a + as, (const uint8_t *)a + 2 * as, (const uint8_t *)a + 3 * as};
    __m256 acc[4][4];
    zero16(acc);
    const int64_t n32 = n / 32 * 32, seg = SEG_BYTES / 2;
    for (int64_t s0 = 0; s0 < n32; s0 += seg) {
        const int64_t s1 = s0 + seg < n32 ? s0 + seg : n32;
        bf16_pass(x, y, s0, s1, 0, acc);
        bf16_pass(x, y, s0, s1, 1, acc);
    }
    int64_t i = n32;
    for (; i + 16 <= n; i += 16) {
        const __m256i wv = loadu256(x + 2 * i);
        const __m256 wlo = bf16_lo(wv), whi = bf16_hi(wv);
        FOR4(j) bf16_tok(wlo, whi, y[j] + 2 * i, &acc[j][0], &acc[j][1]);
    }
    float sum[4];
    reduce16(acc, sum);
    FOR4(j) {
        const uint8_t *yj = y[j];
        float s = sum[j];
        for (int64_t t = i; t < n; t++) {
            uint16_t u, v;
            memcpy(&u, x + 2 * t, 2);
            memcpy(&v, yj + 2 * t, 2);
            s += smoe_bf16_to_f32(u) * smoe_bf16_to_f32(v);
        }
        out[j] = s;
    }
}

/* ------------------------------------------------------------ the table */

static void set_dot4(smoe_kernel *rows, int count, int t, smoe_vec_dot4_fn f) {
    if (t < count) rows[t].vec_dot4 = f;
}

/* Called after smoe_kernels_fill_avx2 on the avx2 rows. */
void smoe_kernels_fill_avx2_dot4(smoe_kernel *rows, int count) {
    set_dot4(rows, count, SMOE_DTYPE_Q4_0, dot4_q4_0);
    set_dot4(rows, count, SMOE_DTYPE_Q4_1, dot4_q4_1);
    set_dot4(rows, count, SMOE_DTYPE_Q5_0, dot4_q5_0);
    set_dot4(rows, count, SMOE_DTYPE_Q5_1, dot4_q5_1);
    set_dot4(rows, count, SMOE_DTYPE_Q8_0, dot4_q8_0);
    set_dot4(rows, count, SMOE_DTYPE_Q2_K, dot4_q2_K);
    set_dot4(rows, count, SMOE_DTYPE_Q3_K, dot4_q3_K);
    set_dot4(rows, count, SMOE_DTYPE_Q4_K, dot4_q4_K);
    set_dot4(rows, count, SMOE_DTYPE_Q5_K, dot4_q5_K);
    set_dot4(rows, count, SMOE_DTYPE_Q6_K, dot4_q6_K);
    set_dot4(rows, count, SMOE_DTYPE_F16, dot4_f16);
    set_dot4(rows, count, SMOE_DTYPE_BF16, dot4_bf16);
    set_dot4(rows, count, SMOE_DTYPE_F32, dot4_f32);
    if (SMOE_DTYPE_Q4_K < count) rows[SMOE_DTYPE_Q4_K].vec_dot_few = dotfew_q4_K;
    if (SMOE_DTYPE_Q6_K < count) rows[SMOE_DTYPE_Q6_K].vec_dot_few = dotfew_q6_K;
}
