/*
 * ops.h - the operations of the forward pass, in their reference form: plain scalar C,
 * fp64 accumulation where it is cheap, no intrinsics. Each later fast kernel keeps the
 * same signature and is tested against the function here (the oracle).
 *
 * Kernels that take (ith, nth) compute only their slice; the caller runs them on the pool.
 */
#ifndef SMOE_OPS_H
#define SMOE_OPS_H

#include "model.h"

/* y[T][D] = x[T][D] / sqrt(mean(x^2) + eps) * w[D] */
void smoe_op_rmsnorm(float *y, const float *x, const float *w, int64_t T, int64_t D, float eps);

/* y[T][W.rows] = x[T][W.cols] @ W^T, rows [r0, r1) of W only, for any weight dtype:
 * each weight row is dequantized into scratch[W.cols] and dotted with every token. */
void smoe_op_matmul_rows(float *y, const float *x, const smoe_tensor *W, int64_t T, int64_t r0, int64_t r1,
                         float *scratch);

/* One row of W (dequantized) into out[W.cols]. */
void smoe_op_get_row(float *out, const smoe_tensor *W, int64_t row);

/* Rotary embedding in place on x[n_heads][head_dim] of one token at position pos:
 * adjacent pairs (2i, 2i+1) of the first rope_dim values of each head rotate by
 * pos * base^(-2i/rope_dim) (llama.cpp's "normal" mode, Mistral's complex pairs). */
void smoe_op_rope(float *x, int n_heads, int head_dim, int rope_dim, int32_t pos, float base);
/* The same in two steps, for a pass that rotates many heads at one position (every layer's
 * q and k): smoe_op_rope_cs fills cs[rope_dim] with the (cos, sin) pair of each i, and
 * smoe_op_rope_apply rotates by them; together they give smoe_op_rope's bits. */
void smoe_op_rope_cs(float *cs, int rope_dim, int32_t pos, float base);
void smoe_op_rope_apply(float *x, int n_heads, int head_dim, int rope_dim, const float *cs);

/* Causal attention of one query head of one token over the positions 0..n_kv-1 of the
 * cache: out[Dh] = softmax(q . k_s / sqrt(Dh)) @ v_s. kv rows are kv_stride floats apart.
 * scores: scratch of n_kv floats. */
void smoe_op_attend(float *out, const float *q, const float *kc, const float *vc, int64_t kv_stride, int32_t n_kv,
                    int head_dim, float *scores);

/* g[i] = silu(g[i]) * u[i] */
void smoe_op_swiglu(float *g, const float *u, int64_t n);

/* In-place softmax over n values (max-subtracted). */
void smoe_op_softmax(float *x, int64_t n);

#endif /* SMOE_OPS_H */
