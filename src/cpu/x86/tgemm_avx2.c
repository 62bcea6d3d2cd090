/*
 * tgemm_avx2.c - AVX2 + FMA pieces of the training GEMM (train/tgemm.h): the 6x16
 * micro-kernel and the packer of transposed B panels.
 *
 * Micro-kernel: 6 rows x 16 columns of C = 12 ymm accumulators; per k, two aligned loads
 * of the packed B panel, six broadcasts of A (from six row pointers, stride cs), twelve
 * FMAs: FMA-bound at 2 per cycle on Zen 3 and Skylake, like cpu/x86/gemm_avx2.c.
 * Exactness: each accumulator lane is one output's FMA chain in k order, started from +0
 * or from C, so the kernel is bit-identical to the scalar twin in tgemm.c.
 *
 * Packer: B^T -> [kc][16] panels by 8x8 register transposes (unpack, shuffle, permute),
 * 16 source rows read sequentially; edges go through the scalar loop. It only moves
 * floats, so it is exact by construction.
 *
 * What it does not do: it is never called unless cpufeat.c saw AVX2 and FMA (the Makefile
 * builds this file alone with -mavx2 -mfma -mf16c); blocking and threads are in tgemm.c.
 */
#include "train/tgemm.h"

#include <immintrin.h>
#include <stdint.h>

void tgemm_tile_avx2(int64_t kc, const float *const *a, int64_t cs, const float *b, float *c, int64_t ldc,
                     int init) {
    __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
    float *r0 = c, *r1 = c + ldc, *r2 = c + 2 * ldc, *r3 = c + 3 * ldc, *r4 = c + 4 * ldc, *r5 = c + 5 * ldc;
    if (init) {
        c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = _mm256_setzero_ps();
    } else {
        c00 = _mm256_loadu_ps(r0), c01 = _mm256_loadu_ps(r0 + 8);
        c10 = _mm256_loadu_ps(r1), c11 = _mm256_loadu_ps(r1 + 8);
        c20 = _mm256_loadu_ps(r2), c21 = _mm256_loadu_ps(r2 + 8);
        c30 = _mm256_loadu_ps(r3), c31 = _mm256_loadu_ps(r3 + 8);
        c40 = _mm256_loadu_ps(r4), c41 = _mm256_loadu_ps(r4 + 8);
        c50 = _mm256_loadu_ps(r5), c51 = _mm256_loadu_ps(r5 + 8);
    }
    const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3], *a4 = a[4], *a5 = a[5];
    _Pragma("GCC unroll 4") for (int64_t k = 0; k < kc; k++) {
        const __m256 b0 = _mm256_load_ps(b + 16 * k), b1 = _mm256_load_ps(b + 16 * k + 8);
        const int64_t o = k * cs;
        __m256 x;
        x = _mm256_broadcast_ss(a0 + o), c00 = _mm256_fmadd_ps(x, b0, c00), c01 = _mm256_fmadd_ps(x, b1, c01);
        x = _mm256_broadcast_ss(a1 + o), c10 = _mm256_fmadd_ps(x, b0, c10), c11 = _mm256_fmadd_ps(x, b1, c11);
        x = _mm256_broadcast_ss(a2 + o), c20 = _mm256_fmadd_ps(x, b0, c20), c21 = _mm256_fmadd_ps(x, b1, c21);
        x = _mm256_broadcast_ss(a3 + o), c30 = _mm256_fmadd_ps(x, b0, c30), c31 = _mm256_fmadd_ps(x, b1, c31);
        x = _mm256_broadcast_ss(a4 + o), c40 = _mm256_fmadd_ps(x, b0, c40), c41 = _mm256_fmadd_ps(x, b1, c41);
        x = _mm256_broadcast_ss(a5 + o), c50 = _mm256_fmadd_ps(x, b0, c50), c51 = _mm256_fmadd_ps(x, b1, c51);
    }
    _mm256_storeu_ps(r0, c00), _mm256_storeu_ps(r0 + 8, c01);
    _mm256_storeu_ps(r1, c10), _mm256_storeu_ps(r1 + 8, c11);
    _mm256_storeu_ps(r2, c20), _mm256_storeu_ps(r2 + 8, c21);
    _mm256_storeu_ps(r3, c30), _mm256_storeu_ps(r3 + 8, c31);
    _mm256_storeu_ps(r4, c40), _mm256_storeu_ps(r4 + 8, c41);
    _mm256_storeu_ps(r5, c50), _mm256_storeu_ps(r5 + 8, c51);
}

/* r[u] <- column u of the 8x8 block whose rows are r[0..7]. */
static inline void transpose8(__m256 r[8]) {
    const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    const __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20), r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20), r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31), r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31), r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

void tgemm_pack_bt_avx2(const float *b, int64_t ldb, int64_t kc, int64_t nc, float *bp) {
    for (int64_t j0 = 0; j0 < nc; j0 += TGEMM_NR, bp += kc * TGEMM_NR) {
        const int64_t nj = nc - j0 < TGEMM_NR ? nc - j0 : TGEMM_NR;
        int64_t k0 = 0;
        if (nj == TGEMM_NR)
            for (; k0 + 8 <= kc; k0 += 8)
                for (int h = 0; h < 2; h++) {
                    __m256 r[8];
                    for (int u = 0; u < 8; u++) r[u] = _mm256_loadu_ps(b + (j0 + 8 * h + u) * ldb + k0);
                    transpose8(r);
                    for (int u = 0; u < 8; u++) _mm256_store_ps(bp + (k0 + u) * TGEMM_NR + 8 * h, r[u]);
                }
        /* the k tail of a full panel, or a whole short panel (zero past nj) */
        for (int64_t j = 0; j < TGEMM_NR; j++)
            for (int64_t k = k0; k < kc; k++) bp[k * TGEMM_NR + j] = j < nj ? b[(j0 + j) * ldb + k] : 0.0f;
    }
}
