/*
 * dot2x4_avx2.c - AVX2 + FMA + F16C "2 weight rows x 4 activation rows" dot products
 * (vec_dot_2x4 of cpu/kernels.h) for Q8_0 and Q4_K: out[r*4 + j] is the dot of
 * weight row r (w + r*w_stride) with activation row j (a + j*a_stride). Each weight block
 * is loaded (and unpacked) once for the 4 tokens, each activation block once for the 2
 * rows, and the scale products of a block are computed 8 at a time.
 *
 * What it does not do: it is never called unless cpufeat.c saw AVX2, FMA and F16C (the
 * Makefile builds this file alone with -mavx2 -mfma -mf16c); no threading, no tiling
 * beyond the 2x4 (cpu_ops.c does that); other types have no 2x4 kernel (callers use
 * vec_dot4). Q6_K was tried (the Q4_K scheme: both rows' blocks in turn, the activation
 * scales shared) and measured 0.82-0.94x of two vec_dot4 calls: two rows' int32 sums
 * and 16 float accumulators spill, and little is shared, so it is left out.
 *
 * Speed (bench/bench_kernels.c --2x4, 4096x4096 x 64 tokens, one Zen 3 thread): Q8_0
 * 1.11-1.12x of two vec_dot4 calls, Q4_K 1.02x. The per-output work that remains is the
 * multiply chain itself (Q8_0: sign, maddubs, madd, convert, FMA per 32 values; Q4_K:
 * 2 maddubs, 2 madd, 2 adds per 64), which the 2x4 cannot share.
 *
 * Exactness: bit-identical to dot_avx2.c's vec_dot, output by output (as dot4_avx2.c is):
 * the same int32 lanes per block (same maddubs/madd grouping), the same f32 scale
 * products (f32(d_x) * f32(d_y), one IEEE multiply), the same FMA chain per accumulator
 * in block order and the same horizontal reductions. tests/test_kernels.c checks it.
 *
 * Q8_0: dot_avx2.c keeps 4 accumulators per output (block 4i + k into accumulator k), so
 * 2x4 outputs need 32: the row is cut into segments of SEG2 blocks (2 weight rows and 4
 * activation rows of a segment stay in L1), and each segment gets 4 passes, one per
 * accumulator index, with the 8 outputs' accumulators of that index in registers. The
 * scale products of the segment (8 per block) are computed once into a table, so that
 * each FMA takes its scale by a broadcast load.
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

void smoe_kernels_fill_avx2_2x4(smoe_kernel *rows, int count);

#define AI static inline __attribute__((always_inline))
#define FOR2(h) _Pragma("GCC unroll 2") for (int h = 0; h < 2; h++)
/* An empty asm that "changes" v: keeps v's value in a register at this point, so that the
 * compiler does not regroup integer adds over several chunks (and spill the products). */
#define KEEP(v) __asm__("" : "+x"(v))

/* ------------------------------------------------------------ Q8_0 */

#define SEG2 64 /* blocks per segment: 2 x 64 x 34 + 4 x 64 x 34 bytes = 13 KiB */

/* One pass over the blocks b = i0 + k, i0 + k + 4, ... < i1 of the segment: accumulators
 * [r][j] of index k. P holds the segment's scale products, 8 per block: [r*4 + j]. */
AI void q8_0_pass(const smoe_block_q8_0 *x0, const smoe_block_q8_0 *x1, const smoe_block_q8_0 *const *y, int64_t i0,
                  int64_t i1, int k, const float *P, __m256 (*acc)[4][4]) {
    __m256 c00 = acc[0][0][k], c01 = acc[0][1][k], c02 = acc[0][2][k], c03 = acc[0][3][k];
    __m256 c10 = acc[1][0][k], c11 = acc[1][1][k], c12 = acc[1][2][k], c13 = acc[1][3][k];
    const __m256i ones = _mm256_set1_epi16(1);
    for (int64_t i = i0 + k; i < i1; i += 4) {
        const float *p = P + 8 * (i - i0);
        const __m256i w0 = loadu256(x0[i].qs), w1 = loadu256(x1[i].qs);
        const __m256i u0 = _mm256_sign_epi8(w0, w0), u1 = _mm256_sign_epi8(w1, w1);
#define Q8TOK(j, cA, cB)                                                                                        \
    {                                                                                                           \
        const __m256i v = loadu256(y[j][i].qs);                                                                 \
        const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(u0, _mm256_sign_epi8(v, w0)), ones);          \
        const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(u1, _mm256_sign_epi8(v, w1)), ones);          \
        cA = _mm256_fmadd_ps(_mm256_broadcast_ss(p + (j)), _mm256_cvtepi32_ps(p0), cA);                        \
        cB = _mm256_fmadd_ps(_mm256_broadcast_ss(p + 4 + (j)), _mm256_cvtepi32_ps(p1), cB);                    \
    }
        Q8TOK(0, c00, c10)
        Q8TOK(1, c01, c11)
        Q8TOK(2, c02, c12)
        Q8TOK(3, c03, c13)
#undef Q8TOK
    }
    acc[0][0][k] = c00, acc[0][1][k] = c01, acc[0][2][k] = c02, acc[0][3][k] = c03;
    acc[1][0][k] = c10, acc[1][1][k] = c11, acc[1][2][k] = c12, acc[1][3][k] = c13;
}

static void dot2x4_q8_0(int64_t n, const void *w, size_t ws, const void *a, size_t as, float *out) {
    const smoe_block_q8_0 *x0 = w, *x1 = ROW(smoe_block_q8_0, w, ws, 1);
    const smoe_block_q8_0 *y[4] = {ROW(smoe_block_q8_0, a, as, 0), ROW(smoe_block_q8_0, a, as, 1),
                                   ROW(smoe_block_q8_0, a, as, 2), ROW(smoe_block_q8_0, a, as, 3)};
    const int64_t nb = n / SMOE_QK, n4 = nb / 4 * 4;
    __m256 acc[2][4][4];
    FOR2(r) FOR4(j) acc[r][j][0] = acc[r][j][1] = acc[r][j][2] = acc[r][j][3] = _mm256_setzero_ps();
    float P[SEG2 * 8] __attribute__((aligned(32)));
    for (int64_t s0 = 0; s0 < n4; s0 += SEG2) {
        const int64_t s1 = s0 + SEG2 < n4 ? s0 + SEG2 : n4;
        /* d_x * d_y of the segment: [d_x0 x4 | d_x1 x4] * [d_y0..d_y3 | d_y0..d_y3] */
        for (int64_t i = s0; i < s1; i++) {
            const uint64_t b0 = u16_at(x0[i].d) * 0x0001000100010001ull, b1 = u16_at(x1[i].d) * 0x0001000100010001ull;
            const uint64_t ya = u16_at(y[0][i].d) | u16_at(y[1][i].d) << 16 | u16_at(y[2][i].d) << 32 | u16_at(y[3][i].d) << 48;
            const __m256 dx = _mm256_cvtph_ps(_mm_set_epi64x((long long)b1, (long long)b0));
            const __m256 dy = _mm256_cvtph_ps(_mm_set1_epi64x((long long)ya));
            _mm256_store_ps(P + 8 * (i - s0), _mm256_mul_ps(dx, dy));
        }
        q8_0_pass(x0, x1, y, s0, s1, 0, P, acc);
        q8_0_pass(x0, x1, y, s0, s1, 1, P, acc);
        q8_0_pass(x0, x1, y, s0, s1, 2, P, acc);
        q8_0_pass(x0, x1, y, s0, s1, 3, P, acc);
    }
    /* the blocks past the last multiple of 4 go to accumulator 0, as in dot_avx2.c */
    for (int64_t i = n4; i < nb; i++) {
        FOR2(r) {
            const smoe_block_q8_0 *xr = r ? x1 : x0;
            const __m256i q = loadu256(xr[i].qs);
            const __m256i u = _mm256_sign_epi8(q, q);
            const float dxi = rd_f16(xr[i].d);
            FOR4(j) {
                const __m256i p = _mm256_maddubs_epi16(u, _mm256_sign_epi8(loadu256(y[j][i].qs), q));
                const __m256 f = _mm256_cvtepi32_ps(_mm256_madd_epi16(p, _mm256_set1_epi16(1)));
                acc[r][j][0] = _mm256_fmadd_ps(_mm256_set1_ps(dxi * rd_f16(y[j][i].d)), f, acc[r][j][0]);
            }
        }
    }
    FOR2(r) FOR4(j) {
        const __m256 *c = acc[r][j];
        out[4 * r + j] = hsum256(_mm256_add_ps(_mm256_add_ps(c[0], c[1]), _mm256_add_ps(c[2], c[3])));
    }
}

/* ------------------------------------------------------------ K-quants */

/* Broadcast of int16 element j of a 128-bit vector (in both lanes of v). */
AI __m256i bcast16(__m256i v, int j) {
    return _mm256_shuffle_epi8(v, _mm256_set1_epi16((short)(((2 * j + 1) << 8) | (2 * j))));
}

/* d_y of block i of the 4 tokens (f32 fields) as 4 floats. */
static inline __m128 dy4(const rows4 *r, int64_t i) {
    return _mm_setr_ps(rd_f32(r->y[0][i].d), rd_f32(r->y[1][i].d), rd_f32(r->y[2][i].d), rd_f32(r->y[3][i].d));
}

/* Chunk c (64 values) of one Q4_K row for the 4 tokens: s[j] += the chunk's int32 lanes
 * (dot_avx2.c's k45_chunk; integer sums, so any grouping gives the same lanes). */
AI void q4k_chunk4(const uint8_t *qs, __m256i sc, int c, const rows4 *r, int64_t i, __m256i *s) {
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i q = loadu256(qs + 32 * c);
    const __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
    const __m256i slo = bcast16(sc, 2 * c), shi = bcast16(sc, 2 * c + 1);
    FOR4(j) {
        const int8_t *q8 = r->y[j][i].qs + 64 * c;
        const __m256i plo = _mm256_maddubs_epi16(lo, loadu256(q8));
        const __m256i phi = _mm256_maddubs_epi16(hi, loadu256(q8 + 32));
        s[j] = _mm256_add_epi32(s[j], _mm256_add_epi32(_mm256_madd_epi16(plo, slo), _mm256_madd_epi16(phi, shi)));
        KEEP(s[j]);
    }
}

/* Q4_K (dot_avx2.c's dot_q4_K): per output one accumulator for the quant part (8 lanes)
 * and one for the min part (4 lanes; two outputs share a 256-bit one, token 2h in the
 * low half of accm[r][h], token 2h+1 in the high half). The bsums pairs of each token are
 * computed once for both rows. */
static void dot2x4_q4_K(int64_t n, const void *w, size_t ws, const void *a, size_t as, float *out) {
    const smoe_block_q4_K *x[2] = {w, ROW(smoe_block_q4_K, w, ws, 1)};
    const rows4 r = rows4_of(a, as);
    __m256 acc[2][4], accm[2][2];
    FOR2(k) {
        FOR4(j) acc[k][j] = _mm256_setzero_ps();
        accm[k][0] = accm[k][1] = _mm256_setzero_ps();
    }
    for (int64_t i = 0; i < n / SMOE_QK_K; i++) {
        /* bsums pairs of tokens 2h, 2h+1 (one per 128-bit half) */
        __m256i pairs[2];
        FOR2(h) {
            const __m256i b0 = loadu256(r.y[2 * h][i].bsums), b1 = loadu256(r.y[2 * h + 1][i].bsums);
            pairs[h] = _mm256_hadd_epi16(_mm256_permute2x128_si256(b0, b1, 0x20), _mm256_permute2x128_si256(b0, b1, 0x31));
        }
        const __m128 dy = dy4(&r, i);
        FOR2(k) {
            const smoe_block_q4_K *xb = x[k] + i;
            __m256i sc, s[4];
            __m128i mins;
            k45_scales(xb->scales, &sc, &mins);
            FOR4(j) s[j] = _mm256_setzero_si256();
            q4k_chunk4(xb->qs, sc, 0, &r, i, s);
            q4k_chunk4(xb->qs, sc, 1, &r, i, s);
            q4k_chunk4(xb->qs, sc, 2, &r, i, s);
            q4k_chunk4(xb->qs, sc, 3, &r, i, s);
            /* dy_j * d_x and dy_j * dmin: the f32 products dot_avx2.c computes */
            const __m128 dd = _mm_mul_ps(dy, _mm_set1_ps(rd_f16(xb->d)));
            const __m256 dm = _mm256_castps128_ps256(_mm_mul_ps(dy, _mm_set1_ps(rd_f16(xb->dmin))));
            acc[k][0] = _mm256_fmadd_ps(_mm256_set1_ps(_mm_cvtss_f32(dd)), _mm256_cvtepi32_ps(s[0]), acc[k][0]);
            acc[k][1] = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(_mm256_castps128_ps256(dd), _mm256_set1_epi32(1)),
                                        _mm256_cvtepi32_ps(s[1]), acc[k][1]);
            acc[k][2] = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(_mm256_castps128_ps256(dd), _mm256_set1_epi32(2)),
                                        _mm256_cvtepi32_ps(s[2]), acc[k][2]);
            acc[k][3] = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(_mm256_castps128_ps256(dd), _mm256_set1_epi32(3)),
                                        _mm256_cvtepi32_ps(s[3]), acc[k][3]);
            const __m256i m2 = _mm256_broadcastsi128_si256(mins);
            FOR2(h) {
                const __m256 scm = _mm256_permutevar8x32_ps(
                    dm, _mm256_setr_epi32(2 * h, 2 * h, 2 * h, 2 * h, 2 * h + 1, 2 * h + 1, 2 * h + 1, 2 * h + 1));
                accm[k][h] = _mm256_fmadd_ps(scm, _mm256_cvtepi32_ps(_mm256_madd_epi16(m2, pairs[h])), accm[k][h]);
            }
        }
    }
    FOR2(k) FOR4(j) {
        const __m256 v = accm[k][j / 2];
        const float m = hsum128(j & 1 ? _mm256_extractf128_ps(v, 1) : _mm256_castps256_ps128(v));
        out[4 * k + j] = hsum256(acc[k][j]) - m;
    }
}

/* ------------------------------------------------------------ the table */

static void set_2x4(smoe_kernel *rows, int count, int t, smoe_vec_dot_2x4_fn f) {
    if (t < count) rows[t].vec_dot_2x4 = f;
}

/* Called after smoe_kernels_fill_avx2 on the avx2 rows. */
void smoe_kernels_fill_avx2_2x4(smoe_kernel *rows, int count) {
    set_2x4(rows, count, SMOE_DTYPE_Q8_0, dot2x4_q8_0);
    set_2x4(rows, count, SMOE_DTYPE_Q4_K, dot2x4_q4_K);
}
