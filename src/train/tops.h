/*
 * tops.h - the operations of training, forward and backward, in f32 on the thread pool.
 * Each output element is computed by one thread in a fixed order, so results do not
 * depend on the thread count. Backward functions ADD into their gradient outputs, except
 * where an `accumulate` flag says otherwise or the comment says "writes" (which saves the
 * caller a pass that zeroes the output first).
 *
 * Matrices are row-major (out, in): W[O][I], y[n] = W x[n].
 */
#ifndef SMOE_TOPS_H
#define SMOE_TOPS_H

#include "cpu/threadpool.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Where the ops run: the pool, the GEMM workspace (train/tgemm.h) sized for it, and
 * per-thread scratch for the ops whose threads run their own single-threaded products. */
typedef struct tops_ctx {
    smoe_pool *pool;
    void *ws;                  /* for tgemm on the whole pool */
    size_t ws_bytes;
    void *ws1;                 /* [nthreads][ws1_bytes] for tgemm on one thread */
    size_t ws1_bytes;
    float *attn_scratch;       /* [nthreads][attn_scratch_floats]: T*T of the attention backward */
    size_t attn_scratch_floats;
} tops_ctx;

/* fn(arg, i0, i1) over [0, n) split evenly over the pool's threads (each index once). */
typedef void (*tops_range_fn)(void *arg, int64_t i0, int64_t i1);
void tops_parallel(const tops_ctx *ctx, int64_t n, tops_range_fn fn, void *arg);

/* out[n] = sum over the slots s < S of token n that hold an assignment (pos[n*S+s] >= 0)
 * of w[n*S+s] * rows[pos] (w NULL: weight 1), in slot order; out [N][D], rows [*][D].
 * The MoE combine (forward) and the scatter of the expert-input gradients (backward). */
void tops_slot_sum(const tops_ctx *ctx, float *out, const float *rows, const int32_t *pos, const float *w, int64_t N,
                   int64_t S, int64_t D);

/* y[N][O] = x[N][I] W^T */
void tops_matmul(const tops_ctx *ctx, float *y, const float *x, const float *W, int64_t N, int64_t I, int64_t O);
/* dx[N][I] += dy[N][O] W (accumulate false: dx = dy W) */
void tops_matmul_bwd_x(const tops_ctx *ctx, float *dx, const float *dy, const float *W, int64_t N, int64_t I, int64_t O,
                       bool accumulate);
/* dW[O][I] += dy^T x (accumulate false: dW = dy^T x) */
void tops_matmul_bwd_w(const tops_ctx *ctx, float *dW, const float *dy, const float *x, int64_t N, int64_t I, int64_t O,
                       bool accumulate);

/* y[N][D] = x / rms(x) * w; rs[N] = 1/rms */
void tops_rmsnorm(const tops_ctx *ctx, float *y, float *rs, const float *x, const float *w, int64_t N, int64_t D,
                  float eps);
/* dx[N][D] += d/dx (accumulate_dx false: dx = d/dx), dw[D] += d/dw, given dy and the
 * forward's x, rs */
void tops_rmsnorm_bwd(const tops_ctx *ctx, float *dx, float *dw, const float *dy, const float *x, const float *rs,
                      const float *w, int64_t N, int64_t D, bool accumulate_dx);

/* table[T][Dh/2][2] = cos, sin of pos * base^(-2i/Dh) (llama.cpp "normal" mode, adjacent pairs) */
void tops_rope_table(float *table, int32_t T, int32_t Dh, float base);
/* Rotate x[N][nh][Dh] in place, token n at position n % T; inverse: rotate back (backward). */
void tops_rope(const tops_ctx *ctx, float *x, const float *table, int64_t N, int32_t T, int32_t nh, int32_t Dh,
               bool inverse);
/* y[n] = a[n] + b[n] for n < count (y may be a or b). */
void tops_add(const tops_ctx *ctx, float *y, const float *a, const float *b, int64_t count);

/* Causal grouped-query attention of B sequences of T tokens. q [N][H*Dh], k, v [N][Hkv*Dh];
 * P [B][H][T][T] (row t: t+1 probabilities, then zeros up to the edge of its block of 64
 * rows; the rest of the row is not written), out [N][H*Dh]. Scale 1/sqrt(Dh). */
void tops_attention(const tops_ctx *ctx, float *out, float *P, const float *q, const float *k, const float *v, int32_t B,
                    int32_t T, int32_t H, int32_t Hkv, int32_t Dh);
/* Gradients dq, dk, dv from dout (writes them: no need to zero them first). */
void tops_attention_bwd(const tops_ctx *ctx, float *dq, float *dk, float *dv, const float *dout, const float *P, const float *q,
                        const float *k, const float *v, int32_t B, int32_t T, int32_t H, int32_t Hkv, int32_t Dh);

/* Mean cross-entropy of logits [N][V] against targets [N], returned in double; logits are
 * replaced by the gradient of that mean, (softmax - onehot(target)) / N. */
double tops_cross_entropy(const tops_ctx *ctx, float *logits, const int32_t *targets, int64_t N, int64_t V);

#endif /* SMOE_TOPS_H */
