/*
 * attn.h - attention for one token and one key/value head over the KV cache, for all the
 * query heads that share that KV head (grouped-query attention): each K and V row is
 * loaded once for the whole group, which is what bounds attention speed.
 *
 * out[g][Dh] = softmax_s(q[g] . k_s / sqrt(Dh)) @ v_s for g < n_group, s < n_kv. The q and
 * out heads are Dh floats apart; K/V rows are kv_stride floats apart. scores is scratch
 * of n_group * n_kv floats (linear in the context: no T x T matrix is ever formed).
 */
#ifndef SMOE_ATTN_H
#define SMOE_ATTN_H

#include <stdint.h>

typedef void (*smoe_attn_group_fn)(float *out, const float *q, const float *kc, const float *vc, int64_t kv_stride,
                                   int32_t n_kv, int n_group, int head_dim, float *scores);

/* Portable version (any n_group, head_dim). */
void smoe_attn_group_generic(float *out, const float *q, const float *kc, const float *vc, int64_t kv_stride,
                             int32_t n_kv, int n_group, int head_dim, float *scores);
/* AVX2+FMA version (x86 builds only; head_dim a multiple of 8, else it calls the generic one). */
void smoe_attn_group_avx2(float *out, const float *q, const float *kc, const float *vc, int64_t kv_stride,
                          int32_t n_kv, int n_group, int head_dim, float *scores);

/* The best version for this CPU. */
smoe_attn_group_fn smoe_attn_group_get(void);

#endif /* SMOE_ATTN_H */
