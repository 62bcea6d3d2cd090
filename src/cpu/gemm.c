/*
 * gemm.c - the portable half of the f32 GEMM path (see gemm.h): packing the tokens into
 * panels, the driver that blocks the weight rows and k, and the scalar twin of the
 * micro-kernel. The ISA micro-kernels and fast dequantizers live in x86/gemm_avx2.c and
 * arm/gemm_neon.c.
 *
 * What it does not do: threading (cpu_ops.c splits rows over the pool and packs panels
 * in parallel) or choosing when to use it (cpu_ops.c: types whose kernel row has a
 * gemm_tile, blocks with enough tokens: gemm_pays).
 */
#include "cpu/gemm.h"
#include "model.h"

#include <math.h>
#include <string.h>

void smoe_gemm_tile_ref(int64_t kc, const float *a, const float *const *w, float *acc, int init) {
    for (int j = 0; j < SMOE_GEMM_NR; j++)
        for (int t = 0; t < SMOE_GEMM_MT; t++) {
            float c = init ? 0.0f : acc[j * SMOE_GEMM_MT + t];
            for (int64_t k = 0; k < kc; k++) c = fmaf(w[j][k], a[k * SMOE_GEMM_MT + t], c);
            acc[j * SMOE_GEMM_MT + t] = c;
        }
}

void smoe_gemm_pack(const float *x, int64_t T, int64_t K, int64_t p0, int64_t p1, float *a) {
    for (int64_t p = p0; p < p1; p++) {
        float *dst = a + (size_t)p * SMOE_GEMM_MT * (size_t)K;
        const int64_t t0 = p * SMOE_GEMM_MT, nt = SMOE_MIN(SMOE_GEMM_MT, T - t0);
        if (nt < SMOE_GEMM_MT) memset(dst, 0, sizeof(float) * SMOE_GEMM_MT * (size_t)K);
        /* 16 rows of x in k order: each source row is read sequentially, the writes go
         * 16 floats apart within one 64 KiB-or-so panel */
        for (int64_t t = 0; t < nt; t++) {
            const float *src = x + (size_t)(t0 + t) * (size_t)K;
            for (int64_t k = 0; k < K; k++) dst[k * SMOE_GEMM_MT + t] = src[k];
        }
    }
}

void smoe_gemm_rows(const smoe_tensor *W, const float *a, int64_t T, int64_t r0, int64_t r1, float *y, int64_t ldy,
                    float *ws) {
    const smoe_gemm_tile_fn tile = W->kern->gemm_tile;
    const smoe_to_f32_fn to_f32 = W->kern->to_f32;
    const int64_t K = W->cols, P = smoe_gemm_panels(T);
    const int64_t bs = smoe_dtype_block_size(W->dtype);
    const size_t bb = smoe_dtype_block_bytes(W->dtype);
    float *wbuf = ws, *acc = ws + (size_t)SMOE_GEMM_RC * SMOE_GEMM_KC;
    for (int64_t rc0 = r0; rc0 < r1; rc0 += SMOE_GEMM_RC) {
        const int64_t nr = SMOE_MIN(SMOE_GEMM_RC, r1 - rc0), G = (nr + SMOE_GEMM_NR - 1) / SMOE_GEMM_NR;
        for (int64_t k0 = 0; k0 < K; k0 += SMOE_GEMM_KC) {
            const int64_t kc = SMOE_MIN(SMOE_GEMM_KC, K - k0);
            const float *wr[SMOE_GEMM_RC];
            for (int64_t r = 0; r < nr; r++) {
                const uint8_t *src = W->data + (size_t)(rc0 + r) * W->row_bytes + (size_t)(k0 / bs) * bb;
                to_f32(src, wbuf + (size_t)r * SMOE_GEMM_KC, kc);
                wr[r] = wbuf + (size_t)r * SMOE_GEMM_KC;
            }
            for (int64_t p = 0; p < P; p++) {
                const float *ap = a + ((size_t)p * (size_t)K + (size_t)k0) * SMOE_GEMM_MT;
                for (int64_t g = 0; g < G; g++) {
                    /* a short last group repeats its first row; those outputs are dropped */
                    const float *w6[SMOE_GEMM_NR];
                    for (int j = 0; j < SMOE_GEMM_NR; j++) {
                        const int64_t r = g * SMOE_GEMM_NR + j;
                        w6[j] = wr[r < nr ? r : g * SMOE_GEMM_NR];
                    }
                    tile(kc, ap, w6, acc + (size_t)(p * G + g) * SMOE_GEMM_NR * SMOE_GEMM_MT, k0 == 0);
                }
            }
        }
        for (int64_t p = 0; p < P; p++)
            for (int64_t g = 0; g < G; g++) {
                const float *at = acc + (size_t)(p * G + g) * SMOE_GEMM_NR * SMOE_GEMM_MT;
                const int64_t nj = SMOE_MIN(SMOE_GEMM_NR, nr - g * SMOE_GEMM_NR);
                const int64_t nt = SMOE_MIN(SMOE_GEMM_MT, T - p * SMOE_GEMM_MT);
                for (int64_t t = 0; t < nt; t++) {
                    float *yt = y + (size_t)(p * SMOE_GEMM_MT + t) * (size_t)ldy + rc0 + g * SMOE_GEMM_NR;
                    for (int64_t j = 0; j < nj; j++) yt[j] = at[j * SMOE_GEMM_MT + t];
                }
            }
    }
}
