/*
 * tgemm.h - the f32 GEMM of training: C[M][N] = (or +=) op(A)[M][K] . op(B)[K][N], with
 * op(A) = A (row-major [M][K]) or A^T (A given as [K][M]), op(B) = B ([K][N]) or B^T (B
 * given as [N][K]), and any leading dimensions (row strides, in floats). The three
 * products of a linear layer y = x W^T, W[O][I]:
 *
 *   forward     y[T][O]   = x[T][I] . W^T   tgemm(p, ws, wsb, false, T, O, I, x, I, false, W, I, true, y, O)
 *   input grad  dx[T][I] += dy[T][O] . W    tgemm(p, ws, wsb, true, T, I, O, dy, O, false, W, I, false, dx, I)
 *   weight grad dW[O][I] += dy^T . x[T][I]  tgemm(p, ws, wsb, true, O, I, T, dy, O, true, x, I, false, dW, I)
 *
 * (ws, wsb: the workspace and its size in bytes; a column slice of a wider matrix, such
 * as one head's part of q[T][H*Dh], is passed with its own start and the wider row
 * stride as ld.)
 *
 * Exactness: every output is ONE fused multiply-add chain in k order,
 *   c = accumulate ? C[i][j] : +0.0f;  for k = 0..K-1: c = fmaf(op(A)[i][k], op(B)[k][j], c)
 * so the result does not depend on the blocking, the ISA or the thread count, and equals
 * tgemm_ref bit for bit (tests/test_tgemm.c). K = 0 gives C = 0 (or leaves C as it is).
 *
 * Threads: the output is split over blocks of rows or of columns, never over k, so no two
 * threads write the same element and every thread count gives the same bits.
 *
 * Memory: the caller passes a workspace (packed panels of B, and of A when transposed) of
 * at least tgemm_ws_bytes(M, N, K, nth) bytes, any alignment; the function allocates
 * nothing. tgemm_ws_bytes never decreases when an argument grows and never exceeds
 * tgemm_ws_bytes_max(nth) (about 1.1 MiB per thread), so one buffer of that size serves
 * every call.
 *
 * What it does not do: no alpha/beta other than 0/1, no other types, no NaN screening.
 * The micro-kernels live in cpu/x86/tgemm_avx2.c (6x16, 12 ymm accumulators, FMA) and
 * cpu/arm/tgemm_neon.c; the scalar twin of the kernel (fmaf) and the driver in tgemm.c.
 */
#ifndef SMOE_TRAIN_TGEMM_H
#define SMOE_TRAIN_TGEMM_H

#include "cpu/threadpool.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Workspace bytes for a call of these sizes with pool size nth (p == NULL: nth = 1). */
size_t tgemm_ws_bytes(int64_t M, int64_t N, int64_t K, int nth);
/* Enough for every size: the largest tgemm_ws_bytes for nth threads. */
size_t tgemm_ws_bytes_max(int nth);

/* C (+)= op(A) . op(B) as above, on the pool p (NULL: the calling thread alone). ws holds
 * ws_bytes >= tgemm_ws_bytes(M, N, K, pool size) bytes. C must not overlap A, B or ws.
 * lda, ldb, ldc: row strides in floats of A, B and C as given (lda >= K, or >= M if
 * transA; ldb >= N, or >= K if transB; ldc >= N). */
void tgemm(smoe_pool *p, void *ws, size_t ws_bytes, bool accumulate, int64_t M, int64_t N, int64_t K,
           const float *A, int64_t lda, bool transA, const float *B, int64_t ldb, bool transB, float *C, int64_t ldc);

/* The scalar twin: the definition above, one fmaf chain per output. Slow; the oracle. */
void tgemm_ref(bool accumulate, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, bool transA,
               const float *B, int64_t ldb, bool transB, float *C, int64_t ldc);

/* ------------------------------------------------------------ kernel interface */

#define TGEMM_MR 6  /* rows of C per micro-tile (broadcast operand A) */
#define TGEMM_NR 16 /* columns of C per micro-tile (vector operand B, packed) */

/* The micro-kernel: c[i*ldc + j] (+)= sum over k < kc of a[i][k*cs] * b[k*16 + j] for
 * i < 6, j < 16, one FMA chain per output in k order, from +0 if init, else from c.
 * a: six row pointers (A in place with cs = 1, or a packed [kc][6] panel with cs = 6);
 * b: a packed [kc][16] panel, 32-byte aligned. */
typedef void (*tgemm_tile_fn)(int64_t kc, const float *const *a, int64_t cs, const float *b, float *c,
                              int64_t ldc, int init);
/* Pack nc columns of op(B) = B^T over kc values of k into ceil(nc/16) panels [kc][16]
 * (zero past nc): panel p, row k, lane j = b[(16p + j)*ldb + k]. bp is 32-byte aligned. */
typedef void (*tgemm_pack_bt_fn)(const float *b, int64_t ldb, int64_t kc, int64_t nc, float *bp);

typedef struct tgemm_kernels {
    const char *isa; /* "scalar", "avx2", "neon" */
    tgemm_tile_fn tile;
    tgemm_pack_bt_fn pack_bt;
} tgemm_kernels;

/* The kernels tgemm uses: the best this CPU runs (AVX2+FMA, NEON, else scalar), chosen
 * once; SMOE_ISA=scalar in the environment forces the scalar ones. */
const tgemm_kernels *tgemm_kernels_best(void);
/* The scalar kernels (fmaf), on every machine. */
const tgemm_kernels *tgemm_kernels_scalar(void);
/* tgemm with the given kernels (tests and benchmarks compare ISAs with it). */
void tgemm_with(const tgemm_kernels *kern, smoe_pool *p, void *ws, size_t ws_bytes, bool accumulate, int64_t M,
                int64_t N, int64_t K, const float *A, int64_t lda, bool transA, const float *B, int64_t ldb,
                bool transB, float *C, int64_t ldc);

/* The ISA kernels (defined only where built: x86-64, little-endian AArch64). */
void tgemm_tile_avx2(int64_t kc, const float *const *a, int64_t cs, const float *b, float *c, int64_t ldc, int init);
void tgemm_pack_bt_avx2(const float *b, int64_t ldb, int64_t kc, int64_t nc, float *bp);
void tgemm_tile_neon(int64_t kc, const float *const *a, int64_t cs, const float *b, float *c, int64_t ldc, int init);

#endif /* SMOE_TRAIN_TGEMM_H */
