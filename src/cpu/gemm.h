/*
 * gemm.h - the f32 matrix-matrix path of prefill: y[t][r] = sum_k W[r][k] * x[t][k] for
 * a block of T tokens, with the weight rows dequantized to f32 once per call and the
 * tokens' activations kept in f32 (no activation quantization).
 *
 * Why it exists: for the types whose integer dot product costs about as much per value
 * as an f32 FMA (Q8_0 needs sign, maddubs, madd, convert and FMA per 32 values on AVX2;
 * the legacy 4/5-bit types, F16, BF16 and F32 are no cheaper), a cache-blocked f32 GEMM
 * at 2 FMAs per cycle beats the vec_dot path as soon as a weight row serves enough
 * tokens to amortize its dequantization. K-quants keep the integer path: their per-value
 * cost is lower (scales applied per 16 or 32 values in integers).
 *
 * The pieces:
 *   pack   x[T][K] -> panels of 16 tokens, panel p = [K][16] floats (token-minor), zero
 *          padded past T, so the micro-kernel loads 16 tokens of one k with two vector
 *          loads.
 *   tile   the micro-kernel: 6 weight rows x 16 tokens over kc values of k, accumulators
 *          in registers; acc is [6][16] (row-major: acc[j*16 + t]).
 *   rows   the driver: for a range of weight rows, chunk by SMOE_GEMM_RC rows and k by
 *          SMOE_GEMM_KC values, dequantize the chunk with the type's to_f32 (a copy for
 *          F32, whose mapped rows need not be aligned), sweep every panel over it, then write y.
 *
 * Exactness: every output is one FMA chain c = fma(W[r][k], x[t][k], c) for k = 0..K-1
 * in order, starting from +0 (the chain is stored and reloaded between k blocks, which
 * is exact). So the result does not depend on the thread split or the blocking, and a
 * plain loop of fmaf over the reference dequantization gives the same bits
 * (tests/test_gemm.c checks it).
 */
#ifndef SMOE_CPU_GEMM_H
#define SMOE_CPU_GEMM_H

#include <stddef.h>
#include <stdint.h>

#define SMOE_GEMM_NR 6    /* weight rows per tile */
#define SMOE_GEMM_MT 16   /* tokens per tile (one panel) */
#define SMOE_GEMM_KC 512  /* values of k per block: a multiple of every opted-in block size */
#define SMOE_GEMM_RC 48   /* weight rows dequantized per chunk (8 tiles): 96 KiB at KC */

struct smoe_tensor;

/* acc[j*16 + t] (+)= sum over k < kc of w[j][k] * a[k*16 + t], j < 6, t < 16, as one FMA
 * chain per output in k order; init: start from +0 instead of acc. a is 32-byte aligned. */
typedef void (*smoe_gemm_tile_fn)(int64_t kc, const float *a, const float *const *w, float *acc, int init);

/* The scalar twin of every ISA tile (fmaf per output). */
void smoe_gemm_tile_ref(int64_t kc, const float *a, const float *const *w, float *acc, int init);

/* Panels needed for T tokens, and the floats of the packed input (T tokens, K values). */
static inline int64_t smoe_gemm_panels(int64_t T) { return (T + SMOE_GEMM_MT - 1) / SMOE_GEMM_MT; }
static inline size_t smoe_gemm_pack_floats(int64_t T, int64_t K) {
    return (size_t)smoe_gemm_panels(T) * SMOE_GEMM_MT * (size_t)K;
}
/* Per-thread scratch (floats) of smoe_gemm_rows for at most T tokens. */
static inline size_t smoe_gemm_ws_floats(int64_t T) {
    return (size_t)SMOE_GEMM_RC * SMOE_GEMM_KC + (size_t)smoe_gemm_panels(T) * SMOE_GEMM_MT * SMOE_GEMM_RC;
}

/* Pack panels [p0, p1) of x[T][K] (row stride K) into a (smoe_gemm_pack_floats). */
void smoe_gemm_pack(const float *x, int64_t T, int64_t K, int64_t p0, int64_t p1, float *a);

/* y[t * ldy + r] = W row r . x[t] for r in [r0, r1), t < T, from the packed input a.
 * W's kernel row must have to_f32 and gemm_tile. ws: the
 * thread's scratch, 32-byte aligned, smoe_gemm_ws_floats(T) floats. */
void smoe_gemm_rows(const struct smoe_tensor *W, const float *a, int64_t T, int64_t r0, int64_t r1, float *y,
                    int64_t ldy, float *ws);

#endif /* SMOE_CPU_GEMM_H */
