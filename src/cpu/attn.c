/*
 * attn.c - the portable grouped-query attention kernel and its dispatch (see attn.h).
 * The reference for both versions is smoe_op_attend in ops_ref.c (one head at a time,
 * fp64 accumulation).
 */
#include "cpu/attn.h"
#include "cpu/kernels.h"

#include <math.h>

/* Softmax of each group's scores row in place; returns nothing, rows are n_kv long. */
static void softmax_rows(float *scores, int n_group, int32_t n_kv) {
    for (int g = 0; g < n_group; g++) {
        float *sc = scores + (int64_t)g * n_kv, mx = -INFINITY, sum = 0;
        for (int32_t s = 0; s < n_kv; s++) mx = sc[s] > mx ? sc[s] : mx;
        for (int32_t s = 0; s < n_kv; s++) sum += (sc[s] = expf(sc[s] - mx));
        const float inv = 1.0f / sum;
        for (int32_t s = 0; s < n_kv; s++) sc[s] *= inv;
    }
}

void smoe_attn_group_generic(float *out, const float *q, const float *kc, const float *vc, int64_t kv_stride,
                             int32_t n_kv, int n_group, int head_dim, float *scores) {
    const float scale = 1.0f / sqrtf((float)head_dim);
    for (int32_t s = 0; s < n_kv; s++) {
        const float *k = kc + s * kv_stride;
        for (int g = 0; g < n_group; g++) {
            const float *qg = q + (int64_t)g * head_dim;
            float acc = 0;
            for (int d = 0; d < head_dim; d++) acc += qg[d] * k[d];
            scores[(int64_t)g * n_kv + s] = acc * scale;
        }
    }
    softmax_rows(scores, n_group, n_kv);
    for (int64_t i = 0; i < (int64_t)n_group * head_dim; i++) out[i] = 0;
    for (int32_t s = 0; s < n_kv; s++) {
        const float *v = vc + s * kv_stride;
        for (int g = 0; g < n_group; g++) {
            const float p = scores[(int64_t)g * n_kv + s];
            float *o = out + (int64_t)g * head_dim;
            for (int d = 0; d < head_dim; d++) o[d] += p * v[d];
        }
    }
}

smoe_attn_group_fn smoe_attn_group_get(void) {
#if defined(__x86_64__)
    if (smoe_cpu_get_features()->avx2 && smoe_cpu_get_features()->fma) {
        const smoe_kernel *k = smoe_kernels_get(0); /* honours the SMOE_ISA cap */
        if (k && k->isa && k->isa[0] != 's') return smoe_attn_group_avx2;
    }
#endif
    return smoe_attn_group_generic;
}
