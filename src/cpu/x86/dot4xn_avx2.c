/*
 * dot4xn_avx2.c - AVX2 + FMA "4 weight rows x 1-3 activation rows" F32 dot products
 * (vec_dot_4xn of cpu/kernels.h), the tile of batched decode and of single-token decode
 * on F32 weights.
 *
 * Why: a one-row vec_dot loads a weight vector and an activation vector per FMA and ends
 * in a horizontal sum, so on weights that sit in cache (the bundled model) it runs at
 * about a quarter of the FMA rate. A 4 x nt tile loads each weight vector once for the
 * nt tokens and each activation vector once for the 4 rows (4 x 3: 7 loads per 12 FMAs),
 * and reduces the 4 rows of a token together (one transposing reduction per 4 outputs).
 *
 * Exactness: bit-identical to dot_avx2.c's dot_f32, output by output: each output has
 * one 8-lane accumulator that takes the row's 8-value blocks in order, then the same
 * horizontal sum (avx2_util.h's hsum4 is hsum256's tree - lo + hi, then lanes 0 + 2 and 1 + 3,
 * then 0 + 1 - done for four vectors at once; float addition is commutative, so each
 * lane gets the same bits) and the same scalar tail. dot_f32 was given that order so
 * that a tile can keep all its outputs' chains in registers: 4 x 3 outputs are 12
 * accumulators. tests/test_kernels.c checks it.
 *
 * What it does not do: it is never called unless cpufeat.c saw AVX2 and FMA; no
 * threading or tiling over rows and tokens (cpu_ops.c does that); other types have no
 * 4 x n kernel.
 */
#include "cpu/kernels.h"
#include "smoe.h"

#include "cpu/x86/avx2_util.h"

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

void smoe_kernels_fill_avx2_4xn(smoe_kernel *rows, int count);

#define AI static inline __attribute__((always_inline))
#define FOR_R(r) _Pragma("GCC unroll 4") for (int r = 0; r < 4; r++)
#define FOR_J(j, nt) _Pragma("GCC unroll 3") for (int j = 0; j < (nt); j++)

AI void tile(int64_t n, const void *w, size_t ws, const void *a, size_t as, const int nt, float *out, size_t os) {
    const float *wr[4], *xr[3];
    FOR_R(r) wr[r] = (const float *)((const uint8_t *)w + (size_t)r * ws); /* only passed to loadu / memcpy */
    FOR_J(j, nt) xr[j] = (const float *)((const uint8_t *)a + (size_t)j * as);
    __m256 acc[4][3];
    FOR_R(r) FOR_J(j, nt) acc[r][j] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 xv[3];
        FOR_J(j, nt) xv[j] = _mm256_loadu_ps(xr[j] + i);
        FOR_R(r) {
            const __m256 wv = _mm256_loadu_ps(wr[r] + i);
            FOR_J(j, nt) acc[r][j] = _mm256_fmadd_ps(wv, xv[j], acc[r][j]);
        }
    }
    FOR_J(j, nt) {
        float s[4];
        _mm_storeu_ps(s, hsum4(acc[0][j], acc[1][j], acc[2][j], acc[3][j]));
        FOR_R(r) {
            for (int64_t t = i; t < n; t++) { /* dot_f32's scalar tail, the same expression */
                float u, v;
                memcpy(&u, wr[r] + t, sizeof u);
                memcpy(&v, xr[j] + t, sizeof v);
                s[r] += u * v;
            }
        }
        memcpy(out + (size_t)j * os, s, sizeof s);
    }
}

static void dot4xn_f32(int64_t n, const void *w, size_t ws, const void *a, size_t as, int nt, float *out, size_t os) {
    switch (nt) {
    case 1: tile(n, w, ws, a, as, 1, out, os); break;
    case 2: tile(n, w, ws, a, as, 2, out, os); break;
    default: tile(n, w, ws, a, as, 3, out, os); break;
    }
}

/* Called after smoe_kernels_fill_avx2 on the avx2 rows. */
void smoe_kernels_fill_avx2_4xn(smoe_kernel *rows, int count) {
    if (SMOE_DTYPE_F32 < count) rows[SMOE_DTYPE_F32].vec_dot_4xn = dot4xn_f32;
}
