/*
 * tgemm_neon.c - the NEON micro-kernel of the training GEMM (train/tgemm.h) for AArch64:
 * 6 rows x 16 columns of C = 24 q-register accumulators (of 32); per k, four loads of the
 * packed B panel and one scalar of A per row multiplied in by vfmaq_n_f32.
 *
 * Exactness: vfmaq_n_f32(c, b, a) is one fused multiply-add per lane, c + b*a rounded
 * once, which is fmaf(a, b, c): each lane is its output's FMA chain in k order, bit-
 * identical to the scalar twin in tgemm.c.
 *
 * What it does not do: packing (the scalar packers of tgemm.c serve AArch64).
 */
#include "train/tgemm.h"

#include <arm_neon.h>
#include <stdint.h>

void tgemm_tile_neon(int64_t kc, const float *const *a, int64_t cs, const float *b, float *c, int64_t ldc, int init) {
    float32x4_t acc[TGEMM_MR][4];
    for (int i = 0; i < TGEMM_MR; i++)
        for (int v = 0; v < 4; v++) acc[i][v] = init ? vdupq_n_f32(0.0f) : vld1q_f32(c + i * ldc + 4 * v);
    const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3], *a4 = a[4], *a5 = a[5];
    for (int64_t k = 0; k < kc; k++) {
        const float32x4_t b0 = vld1q_f32(b + 16 * k), b1 = vld1q_f32(b + 16 * k + 4);
        const float32x4_t b2 = vld1q_f32(b + 16 * k + 8), b3 = vld1q_f32(b + 16 * k + 12);
        const int64_t o = k * cs;
        const float x[TGEMM_MR] = {a0[o], a1[o], a2[o], a3[o], a4[o], a5[o]};
        for (int i = 0; i < TGEMM_MR; i++) {
            acc[i][0] = vfmaq_n_f32(acc[i][0], b0, x[i]);
            acc[i][1] = vfmaq_n_f32(acc[i][1], b1, x[i]);
            acc[i][2] = vfmaq_n_f32(acc[i][2], b2, x[i]);
            acc[i][3] = vfmaq_n_f32(acc[i][3], b3, x[i]);
        }
    }
    for (int i = 0; i < TGEMM_MR; i++)
        for (int v = 0; v < 4; v++) vst1q_f32(c + i * ldc + 4 * v, acc[i][v]);
}
