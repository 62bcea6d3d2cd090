/*
 * forward.c - THE forward pass of a llama-architecture model, dense or MoE, for T tokens
 * at positions n_past..n_past+T-1:
 *
 *   h = token_embd[ids]
 *   per layer:  h += Wo . Attn(RoPE(Wq x), RoPE(Wk x), Wv x)      x = RMSNorm(h) * attn_norm
 *               h += MoE(x) or SwiGLU(x)                          x = RMSNorm(h) * ffn_norm
 *   logits = output . (RMSNorm(h) * output_norm)
 *
 * One op call per line, with the shape it produces. The ops run on the context's thread
 * pool through the small task wrappers at the top; everything else lives in ops_ref.c
 * (kernels), router.c (expert choice) and context.c (buffers).
 */
#include "model.h"
#include "ops.h"
#include "router.h"

#include <string.h>

/* ------------------------------------------------------------------ parallel wrappers */

typedef struct mm_task {
    float *y;
    const float *x;
    const smoe_tensor *W;
    int64_t T;
    smoe_ctx *c;
} mm_task;

static void mm_kernel(void *arg, int ith, int nth) {
    mm_task *a = arg;
    int64_t r0, r1;
    smoe_split(a->W->rows, ith, nth, &r0, &r1);
    smoe_op_matmul_rows(a->y, a->x, a->W, a->T, r0, r1, a->c->dq + (size_t)ith * (size_t)a->c->model->max_cols);
}

/* y[T][W.rows] = x[T][W.cols] @ W^T */
static void matmul(smoe_ctx *c, float *y, const float *x, const smoe_tensor *W, int64_t T) {
    mm_task a = {y, x, W, T, c};
    smoe_pool_run(c->pool, mm_kernel, &a);
}

typedef struct attn_task {
    smoe_ctx *c;
    int il;
    int32_t T;
} attn_task;

static void attn_kernel(void *arg, int ith, int nth) {
    attn_task *a = arg;
    smoe_ctx *c = a->c;
    const smoe_model_info *inf = &c->model->info;
    const int H = inf->n_head, Dh = inf->head_dim, group = inf->n_head / inf->n_head_kv;
    const int64_t Dkv = (int64_t)inf->n_head_kv * Dh;
    const float *kc = c->k_cache + (size_t)a->il * c->n_ctx * Dkv;
    const float *vc = c->v_cache + (size_t)a->il * c->n_ctx * Dkv;
    int64_t w0, w1;
    smoe_split((int64_t)a->T * H, ith, nth, &w0, &w1);
    for (int64_t w = w0; w < w1; w++) {
        const int64_t t = w / H, hq = w % H, hk = hq / group; /* query head hq reads kv head hq / (H/Hkv) */
        smoe_op_attend(c->att + t * H * Dh + hq * Dh, c->q + t * H * Dh + hq * Dh, kc + hk * Dh, vc + hk * Dh, Dkv,
                       c->n_past + (int32_t)t + 1, Dh, c->scores + (size_t)ith * c->n_ctx);
    }
}

/* ------------------------------------------------------------------ feed-forward blocks */

/* out[T][D] = sum over the chosen experts of w * down(silu(gate x) * up x) */
static smoe_status moe_ffn(smoe_ctx *c, const smoe_layer *l, int il, int32_t T, float *out) {
    const smoe_model_info *inf = &c->model->info;
    const int32_t E = inf->n_expert, K = inf->n_expert_used, D = inf->n_embd, F = inf->n_ff;
    smoe_router_cfg rc = {.kind = inf->router, .n_expert = E, .k = K, .scale = 1.0f};

    matmul(c, c->rlogits, c->xn, &l->router, T);                          /* [T][E] */
    smoe_status st = smoe_route(&rc, c->rlogits, T, c->rids, c->rw, c->rscratch); /* [T][K] ids, weights */
    if (st) return st;
    if (c->route_fn) c->route_fn(c->route_user, il, c->n_past, T, K, c->rids, c->rw, c->rlogits, E);

    /* dispatch: group the T*K assignments by expert, in token order within each group */
    int32_t n = 0;
    for (int32_t e = 0; e < E; e++) {
        c->ex_off[e] = n;
        for (int32_t i = 0; i < T * K; i++)
            if (c->rids[i] == e) c->ex_tok[n] = i / K, c->ex_w[n++] = c->rw[i];
    }
    c->ex_off[E] = n;

    memset(out, 0, sizeof(float) * (size_t)T * D);
    for (int32_t e = 0; e < E; e++) {
        const int32_t n_e = c->ex_off[e + 1] - c->ex_off[e];
        if (n_e == 0) continue;
        const int32_t *tok = c->ex_tok + c->ex_off[e];
        const float *w = c->ex_w + c->ex_off[e];
        for (int32_t i = 0; i < n_e; i++) memcpy(c->xg + (size_t)i * D, c->xn + (size_t)tok[i] * D, sizeof(float) * D);
        matmul(c, c->hg, c->xg, &l->exp_gate[e], n_e);                 /* [n_e][F] */
        matmul(c, c->hu, c->xg, &l->exp_up[e], n_e);                   /* [n_e][F] */
        smoe_op_swiglu(c->hg, c->hu, (int64_t)n_e * F);                 /* [n_e][F] */
        matmul(c, c->yg, c->hg, &l->exp_down[e], n_e);                 /* [n_e][D] */
        for (int32_t i = 0; i < n_e; i++)                               /* out[tok] += w * y */
            for (int32_t d = 0; d < D; d++) out[(size_t)tok[i] * D + d] += w[i] * c->yg[(size_t)i * D + d];
    }
    return SMOE_OK;
}

/* out[T][D] = down(silu(gate x) * up x) */
static void dense_ffn(smoe_ctx *c, const smoe_layer *l, int32_t T, float *out) {
    const int64_t F = c->model->info.n_ff;
    matmul(c, c->hg, c->xn, &l->ffn_gate, T);                          /* [T][F] */
    matmul(c, c->hu, c->xn, &l->ffn_up, T);                            /* [T][F] */
    smoe_op_swiglu(c->hg, c->hu, T * F);                                /* [T][F] */
    matmul(c, out, c->hg, &l->ffn_down, T);                            /* [T][D] */
}

static void add_inplace(float *h, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) h[i] += x[i];
}

/* ------------------------------------------------------------------ the forward pass */

smoe_status smoe_forward(smoe_ctx *c, const int32_t *ids, int32_t T, float *logits_out, bool all_logits) {
    const smoe_model *m = c->model;
    const smoe_model_info *inf = &m->info;
    const int64_t D = inf->n_embd, Dq = (int64_t)inf->n_head * inf->head_dim, Dkv = (int64_t)inf->n_head_kv * inf->head_dim;
    smoe_status st;

    for (int32_t t = 0; t < T; t++) smoe_op_get_row(c->h + t * D, &m->tok_embd, ids[t]); /* [T][D] */

    for (int il = 0; il < inf->n_layer; il++) {
        const smoe_layer *l = &m->layers[il];
        float *kc = c->k_cache + ((size_t)il * c->n_ctx + c->n_past) * Dkv;
        float *vc = c->v_cache + ((size_t)il * c->n_ctx + c->n_past) * Dkv;

        /* attention */
        smoe_op_rmsnorm(c->xn, c->h, l->attn_norm, T, D, inf->norm_eps);  /* [T][D] */
        matmul(c, c->q, c->xn, &l->wq, T);                                /* [T][H*Dh] */
        matmul(c, kc, c->xn, &l->wk, T);                                  /* [T][Hkv*Dh] into the cache */
        matmul(c, vc, c->xn, &l->wv, T);                                  /* [T][Hkv*Dh] into the cache */
        for (int32_t t = 0; t < T; t++) {
            smoe_op_rope(c->q + t * Dq, inf->n_head, inf->head_dim, inf->rope_dim, c->n_past + t, inf->rope_freq_base);
            smoe_op_rope(kc + t * Dkv, inf->n_head_kv, inf->head_dim, inf->rope_dim, c->n_past + t, inf->rope_freq_base);
        }
        attn_task at = {c, il, T};
        smoe_pool_run(c->pool, attn_kernel, &at);                          /* [T][H*Dh] causal */
        matmul(c, c->tmp, c->att, &l->wo, T);                             /* [T][D] */
        add_inplace(c->h, c->tmp, T * D);                                 /* h += attn */

        /* feed-forward */
        smoe_op_rmsnorm(c->xn, c->h, l->ffn_norm, T, D, inf->norm_eps);   /* [T][D] */
        if (inf->n_expert > 0) {
            if ((st = moe_ffn(c, l, il, T, c->tmp))) return st;           /* [T][D] */
        } else {
            dense_ffn(c, l, T, c->tmp);                                   /* [T][D] */
        }
        add_inplace(c->h, c->tmp, T * D);                                 /* h += ffn */
    }

    if (logits_out) {
        const int32_t n_out = all_logits ? T : 1;
        const float *rows = c->h + (size_t)(T - n_out) * D;
        smoe_op_rmsnorm(c->out_rows, rows, m->output_norm, n_out, D, inf->norm_eps); /* [n_out][D] */
        matmul(c, logits_out, c->out_rows, &m->output, n_out);                       /* [n_out][V] */
    }
    return SMOE_OK;
}
