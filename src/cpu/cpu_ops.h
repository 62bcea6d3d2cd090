/*
 * cpu_ops.h - the forward pass's ops as the CPU runs them: each call splits its work over
 * the context's thread pool (static row partitioning, so a thread count gives the same
 * bits every run) and picks the fast kernels (kernels.h) or, when the context asks for
 * it, the reference ones (ops_ref.c).
 */
#ifndef SMOE_CPU_OPS_H
#define SMOE_CPU_OPS_H

#include "model.h"

/* y[T][W.rows] = x[T][W.cols] @ W^T */
void smoe_cpu_matmul(smoe_ctx *c, float *y, const float *x, const smoe_tensor *W, int64_t T);

/* Several weights reading the same input (q/k/v; an expert's gate and up): the input is
 * quantized once per vec_dot type and all rows run as one parallel job. n <= 3. */
void smoe_cpu_matmul_n(smoe_ctx *c, const float *x, int64_t T, int n, const smoe_tensor *const *W, float *const *y);

/* g[T][F] = silu(x @ Wg^T) * (x @ Wu^T), the SwiGLU of an expert or dense FFN, as one
 * parallel job (u[T][F] is scratch). */
void smoe_cpu_gate_up(smoe_ctx *c, const float *x, int64_t T, const smoe_tensor *Wg, const smoe_tensor *Wu, float *g,
                      float *u);

/* The experts of one MoE layer: x[n][D] holds the n = T*K routed input rows grouped by
 * expert (expert e owns rows off[e]..off[e+1]); y[n][D] gets each row's expert output.
 * Few rows (decode): all active experts' gate/up run as one job and all their downs as a
 * second one; many rows: a gate/up job and a down job per expert. h, u: [n_batch][F]. */
void smoe_cpu_experts(smoe_ctx *c, const smoe_tensor *Wg, const smoe_tensor *Wu, const smoe_tensor *Wd, int32_t E,
                      const int32_t *off, int64_t n, const float *x, float *h, float *u, float *y);

/* Causal attention of the T new tokens of layer il over the KV cache -> c->att. */
void smoe_cpu_attention(smoe_ctx *c, int il, int32_t T);
/* The same over tokens of several sequences: token t reads c->tok_kc[t], c->tok_vc[t]
 * (its sequence's caches of the layer) up to c->tok_nkv[t] positions. */
void smoe_cpu_attention_multi(smoe_ctx *c, int32_t T);

#endif /* SMOE_CPU_OPS_H */
