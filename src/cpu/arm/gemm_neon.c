/*
 * gemm_neon.c - the NEON micro-kernel of the f32 GEMM path (cpu/gemm.h) for AArch64:
 * 6 weight rows x 16 tokens = 24 q-register accumulators (of 32), per k four loads of
 * the packed tokens and one scalar weight per row multiplied in by vfmaq_n_f32.
 *
 * Exactness: vfmaq_n_f32(c, a, w) is one fused multiply-add per lane, c + a*w rounded
 * once, which is fmaf(w, a, c): each lane is its output's FMA chain in k order, bit-
 * identical to smoe_gemm_tile_ref (tests/test_gemm.c, run under qemu-aarch64).
 *
 * What it does not do: fast dequantizers. The rows are dequantized by the reference
 * functions of quant/ (exact by definition); a NEON to_f32 per type would only matter
 * for short prompts, where the dequantization is not amortized.
 */
#include "cpu/gemm.h"
#include "cpu/kernels.h"
#include "quant/quant.h"
#include "smoe.h"

#include <arm_neon.h>
#include <stdint.h>

void smoe_kernels_fill_neon_gemm(smoe_kernel *rows, int count);

static void tile_6x16(int64_t kc, const float *a, const float *const *w, float *acc, int init) {
    float32x4_t c[SMOE_GEMM_NR][4];
    for (int j = 0; j < SMOE_GEMM_NR; j++)
        for (int v = 0; v < 4; v++) c[j][v] = init ? vdupq_n_f32(0.0f) : vld1q_f32(acc + j * 16 + 4 * v);
    for (int64_t k = 0; k < kc; k++) {
        const float32x4_t a0 = vld1q_f32(a + 16 * k), a1 = vld1q_f32(a + 16 * k + 4);
        const float32x4_t a2 = vld1q_f32(a + 16 * k + 8), a3 = vld1q_f32(a + 16 * k + 12);
        for (int j = 0; j < SMOE_GEMM_NR; j++) {
            const float b = w[j][k];
            c[j][0] = vfmaq_n_f32(c[j][0], a0, b);
            c[j][1] = vfmaq_n_f32(c[j][1], a1, b);
            c[j][2] = vfmaq_n_f32(c[j][2], a2, b);
            c[j][3] = vfmaq_n_f32(c[j][3], a3, b);
        }
    }
    for (int j = 0; j < SMOE_GEMM_NR; j++)
        for (int v = 0; v < 4; v++) vst1q_f32(acc + j * 16 + 4 * v, c[j][v]);
}

void smoe_kernels_fill_neon_gemm(smoe_kernel *rows, int count) {
    static const int types[] = {SMOE_DTYPE_Q4_0, SMOE_DTYPE_Q4_1, SMOE_DTYPE_Q5_0, SMOE_DTYPE_Q5_1,
                                SMOE_DTYPE_Q8_0, SMOE_DTYPE_F16,  SMOE_DTYPE_BF16, SMOE_DTYPE_F32};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        const smoe_type_traits *tr = smoe_type_traits_get(types[i]);
        if (types[i] >= count || !tr || !tr->to_float) continue;
        rows[types[i]].gemm_tile = tile_6x16;
        rows[types[i]].to_f32 = tr->to_float;
    }
}
