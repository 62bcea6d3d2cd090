/*
 * gemm_avx2.c - AVX2 + FMA + F16C pieces of the f32 GEMM path (cpu/gemm.h): the 6x16
 * micro-kernel and fast row dequantizers for the types that take the GEMM in prefill
 * (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, F16, BF16, F32).
 *
 * Micro-kernel: 6 weight rows x 16 tokens = 12 ymm accumulators; per k, two aligned
 * loads of the packed tokens and 6 broadcasts of the weights, 12 FMAs. That is FMA-bound
 * (2 per cycle on Zen 3 and Skylake), 16 multiply-adds per cycle, against about 13 for
 * the best integer Q8_0 dot product (5 ops per 32 values on the same two ports).
 *
 * Exactness: each accumulator lane is one output's FMA chain in k order, so the kernel
 * is bit-identical to smoe_gemm_tile_ref. The dequantizers compute what the reference
 * does: (float)q * d for type-0, (float)q * d + m (a multiply, then an add) for type-1;
 * q * d is exact in f32 (11-bit d, |q| <= 128), so every value matches bit for bit.
 *
 * What it does not do: it is never called unless cpufeat.c saw AVX2, FMA and F16C (the
 * Makefile builds this file alone with -mavx2 -mfma -mf16c); blocking and packing are in
 * gemm.c.
 */
#include "cpu/gemm.h"
#include "cpu/kernels.h"
#include "quant/blocks.h"
#include "smoe.h"

#include "cpu/x86/avx2_util.h"

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

void smoe_kernels_fill_avx2_gemm(smoe_kernel *rows, int count);

/* ------------------------------------------------------------ micro-kernel */

static void tile_6x16(int64_t kc, const float *a, const float *const *w, float *acc, int init) {
    __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
    if (init) {
        c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = _mm256_setzero_ps();
    } else {
        c00 = _mm256_loadu_ps(acc + 0), c01 = _mm256_loadu_ps(acc + 8);
        c10 = _mm256_loadu_ps(acc + 16), c11 = _mm256_loadu_ps(acc + 24);
        c20 = _mm256_loadu_ps(acc + 32), c21 = _mm256_loadu_ps(acc + 40);
        c30 = _mm256_loadu_ps(acc + 48), c31 = _mm256_loadu_ps(acc + 56);
        c40 = _mm256_loadu_ps(acc + 64), c41 = _mm256_loadu_ps(acc + 72);
        c50 = _mm256_loadu_ps(acc + 80), c51 = _mm256_loadu_ps(acc + 88);
    }
    const float *w0 = w[0], *w1 = w[1], *w2 = w[2], *w3 = w[3], *w4 = w[4], *w5 = w[5];
    _Pragma("GCC unroll 4") for (int64_t k = 0; k < kc; k++) {
        const __m256 a0 = _mm256_load_ps(a + 16 * k), a1 = _mm256_load_ps(a + 16 * k + 8);
        __m256 b;
        b = _mm256_broadcast_ss(w0 + k), c00 = _mm256_fmadd_ps(b, a0, c00), c01 = _mm256_fmadd_ps(b, a1, c01);
        b = _mm256_broadcast_ss(w1 + k), c10 = _mm256_fmadd_ps(b, a0, c10), c11 = _mm256_fmadd_ps(b, a1, c11);
        b = _mm256_broadcast_ss(w2 + k), c20 = _mm256_fmadd_ps(b, a0, c20), c21 = _mm256_fmadd_ps(b, a1, c21);
        b = _mm256_broadcast_ss(w3 + k), c30 = _mm256_fmadd_ps(b, a0, c30), c31 = _mm256_fmadd_ps(b, a1, c31);
        b = _mm256_broadcast_ss(w4 + k), c40 = _mm256_fmadd_ps(b, a0, c40), c41 = _mm256_fmadd_ps(b, a1, c41);
        b = _mm256_broadcast_ss(w5 + k), c50 = _mm256_fmadd_ps(b, a0, c50), c51 = _mm256_fmadd_ps(b, a1, c51);
    }
    _mm256_storeu_ps(acc + 0, c00), _mm256_storeu_ps(acc + 8, c01);
    _mm256_storeu_ps(acc + 16, c10), _mm256_storeu_ps(acc + 24, c11);
    _mm256_storeu_ps(acc + 32, c20), _mm256_storeu_ps(acc + 40, c21);
    _mm256_storeu_ps(acc + 48, c30), _mm256_storeu_ps(acc + 56, c31);
    _mm256_storeu_ps(acc + 64, c40), _mm256_storeu_ps(acc + 72, c41);
    _mm256_storeu_ps(acc + 80, c50), _mm256_storeu_ps(acc + 88, c51);
}

/* ------------------------------------------------------------ dequantizers */

/* 32 signed bytes -> 32 floats, each times d (plus m if add_m): out[0..31]. */
static inline void store_i8x32(__m256i q, __m256 d, __m256 m, int add_m, float *out) {
    const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    const __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
    for (int i = 0; i < 4; i++) {
        __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(parts[i])), d);
        if (add_m) v = _mm256_add_ps(v, m);
        _mm256_storeu_ps(out + 8 * i, v);
    }
}

static void to_f32_q8_0(const void *w, float *out, int64_t n) {
    const smoe_block_q8_0 *b = w;
    for (int64_t i = 0; i < n / SMOE_QK; i++, out += SMOE_QK)
        store_i8x32(loadu256(b[i].qs), _mm256_set1_ps(rd_f16(b[i].d)), _mm256_setzero_ps(), 0, out);
}

static void to_f32_q4_0(const void *w, float *out, int64_t n) {
    const smoe_block_q4_0 *b = w;
    for (int64_t i = 0; i < n / SMOE_QK; i++, out += SMOE_QK) {
        const __m256i q = _mm256_sub_epi8(nibbles32(b[i].qs), _mm256_set1_epi8(8));
        store_i8x32(q, _mm256_set1_ps(rd_f16(b[i].d)), _mm256_setzero_ps(), 0, out);
    }
}

static void to_f32_q4_1(const void *w, float *out, int64_t n) {
    const smoe_block_q4_1 *b = w;
    for (int64_t i = 0; i < n / SMOE_QK; i++, out += SMOE_QK)
        store_i8x32(nibbles32(b[i].qs), _mm256_set1_ps(rd_f16(b[i].d)), _mm256_set1_ps(rd_f16(b[i].m)), 1, out);
}

/* The 5-bit values of a Q5 block: low nibbles | bit j of qh as bit 4 of value j. */
static inline __m256i q5_values(const uint8_t *qs, const uint8_t *qh) {
    return _mm256_or_si256(nibbles32(qs), _mm256_and_si256(bits32(qh), _mm256_set1_epi8(0x10)));
}

static void to_f32_q5_0(const void *w, float *out, int64_t n) {
    const smoe_block_q5_0 *b = w;
    for (int64_t i = 0; i < n / SMOE_QK; i++, out += SMOE_QK) {
        const __m256i q = _mm256_sub_epi8(q5_values(b[i].qs, b[i].qh), _mm256_set1_epi8(16));
        store_i8x32(q, _mm256_set1_ps(rd_f16(b[i].d)), _mm256_setzero_ps(), 0, out);
    }
}

static void to_f32_q5_1(const void *w, float *out, int64_t n) {
    const smoe_block_q5_1 *b = w;
    for (int64_t i = 0; i < n / SMOE_QK; i++, out += SMOE_QK)
        store_i8x32(q5_values(b[i].qs, b[i].qh), _mm256_set1_ps(rd_f16(b[i].d)), _mm256_set1_ps(rd_f16(b[i].m)), 1,
                    out);
}

static void to_f32_f16(const void *w, float *out, int64_t n) {
    const uint8_t *p = w;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, _mm256_cvtph_ps(loadu128(p + 2 * i)));
    for (; i < n; i++) out[i] = rd_f16(p + 2 * i);
}

static void to_f32_bf16(const void *w, float *out, int64_t n) {
    const uint8_t *p = w;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256i v = _mm256_cvtepu16_epi32(loadu128(p + 2 * i));
        _mm256_storeu_ps(out + i, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
    }
    for (; i < n; i++) {
        const uint32_t u = (uint32_t)u16_at(p + 2 * i) << 16;
        memcpy(out + i, &u, sizeof u);
    }
}

static void to_f32_f32(const void *w, float *out, int64_t n) { memcpy(out, w, sizeof(float) * (size_t)n); }

/* ------------------------------------------------------------ table */

void smoe_kernels_fill_avx2_gemm(smoe_kernel *rows, int count) {
    static const struct {
        int type;
        smoe_to_f32_fn fn;
    } tab[] = {
        {SMOE_DTYPE_Q4_0, to_f32_q4_0}, {SMOE_DTYPE_Q4_1, to_f32_q4_1}, {SMOE_DTYPE_Q5_0, to_f32_q5_0},
        {SMOE_DTYPE_Q5_1, to_f32_q5_1}, {SMOE_DTYPE_Q8_0, to_f32_q8_0}, {SMOE_DTYPE_F16, to_f32_f16},
        {SMOE_DTYPE_BF16, to_f32_bf16}, {SMOE_DTYPE_F32, to_f32_f32},
    };
    for (size_t i = 0; i < sizeof tab / sizeof *tab; i++)
        if (tab[i].type < count) rows[tab[i].type].gemm_tile = tile_6x16, rows[tab[i].type].to_f32 = tab[i].fn;
}
