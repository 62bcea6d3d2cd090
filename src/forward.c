/*
 * forward.c - THE forward pass of a llama-architecture model, dense or MoE, for T tokens
 * at positions n_past..n_past+T-1:
 *
 *   h = token_embd[ids]
 *   per layer:  h += Wo . Attn(RoPE(Wq x), RoPE(Wk x), Wv x)      x = RMSNorm(h) * attn_norm
 *               h += MoE(x) or SwiGLU(x)                          x = RMSNorm(h) * ffn_norm
 *   logits = output . (RMSNorm(h) * output_norm)
 *
 * smoe_forward_multi runs the tokens of several sequences (each with its own cache and
 * positions) through one pass. One op call per line, with the shape it produces. The heavy ops run on the context's
 * thread pool (cpu/cpu_ops.c, kernels in ops_ref.c and cpu/); expert choice is in
 * router.c and the buffers are allocated in context.c.
 */
#include "cpu/cpu_ops.h"
#include "model.h"
#include "ops.h"
#include "router.h"

#include <string.h>

/* the ops run on the context's thread pool; see cpu/cpu_ops.c */
#define matmul smoe_cpu_matmul

/* ------------------------------------------------------------------ feed-forward blocks */

/* out[T][D] = sum over the chosen experts of w * down(silu(gate x) * up x) */
/* The sequences of a pass, for the route observers: seqs[i] has n_tok[i] rows. */
typedef struct fwd_segs {
    smoe_ctx *const *seqs;
    const int32_t *n_tok;
    int32_t n_seq;
} fwd_segs;

static smoe_status moe_ffn(smoe_ctx *c, const smoe_layer *l, int il, int32_t T, const fwd_segs *sg, float *out) {
    const smoe_model_info *inf = &c->model->info;
    const int32_t E = inf->n_expert, K = inf->n_expert_used, D = inf->n_embd;
    smoe_router_cfg rc = {.kind = inf->router, .n_expert = E, .k = K, .scale = 1.0f, .bias = l->router_bias};

    matmul(c, c->rlogits, c->xn, &l->router, T);                          /* [T][E], attention: [T][3E] */
    if (inf->router == SMOE_ROUTER_ATTENTION)                            /* [T][E] in place, token by token */
        for (int32_t t = 0; t < T; t++) {
            smoe_router_attention_logits(c->rlogits + (size_t)t * 3 * E, E, c->rscratch);
            memcpy(c->rlogits + (size_t)t * E, c->rscratch, sizeof(float) * (size_t)E);
        }
    smoe_status st = smoe_route(&rc, c->rlogits, T, c->rids, c->rw, c->rscratch); /* [T][K] ids, weights */
    if (st) return st;
    for (int32_t i = 0, r = 0; i < sg->n_seq; r += sg->n_tok[i++]) { /* each sequence's observer, its rows */
        const smoe_ctx *x = sg->seqs[i];
        if (x->route_fn)
            x->route_fn(x->route_user, il, x->n_past, sg->n_tok[i], K, c->rids + (size_t)r * K, c->rw + (size_t)r * K,
                        c->rlogits + (size_t)r * E, E);
    }

    /* dispatch: group the T*K assignments by expert, in token order within each group
     * (a stable counting sort; ex_off[e] serves as expert e's write cursor, then is
     * shifted back to its start) */
    const int32_t n = T * K;
    memset(c->ex_off, 0, sizeof(int32_t) * (size_t)(E + 1));
    for (int32_t i = 0; i < n; i++) c->ex_off[c->rids[i] + 1]++;
    for (int32_t e = 0; e < E; e++) c->ex_off[e + 1] += c->ex_off[e];
    for (int32_t i = 0; i < n; i++) {
        const int32_t at = c->ex_off[c->rids[i]]++;
        c->ex_tok[at] = i / K, c->ex_w[at] = c->rw[i];
    }
    for (int32_t e = E; e > 0; e--) c->ex_off[e] = c->ex_off[e - 1];
    c->ex_off[0] = 0;

    for (int32_t i = 0; i < n; i++)                                      /* [T*K][D] inputs, grouped by expert */
        memcpy(c->xg + (size_t)i * D, c->xn + (size_t)c->ex_tok[i] * D, sizeof(float) * D);
    smoe_cpu_experts(c, l->exp_gate, l->exp_up, l->exp_down, E, c->ex_off, n, c->xg, c->hg, c->hu, c->yg); /* [T*K][D] */
    memset(out, 0, sizeof(float) * (size_t)T * D);                      /* out[tok] += w * y */
    for (int32_t i = 0; i < n; i++)
        for (int32_t d = 0; d < D; d++) out[(size_t)c->ex_tok[i] * D + d] += c->ex_w[i] * c->yg[(size_t)i * D + d];
    return SMOE_OK;
}

/* out[T][D] = down(silu(gate x) * up x) */
static void dense_ffn(smoe_ctx *c, const smoe_layer *l, int32_t T, float *out) {
    smoe_cpu_gate_up(c, c->xn, T, &l->ffn_gate, &l->ffn_up, c->hg, c->hu); /* [T][F] silu(gate) * up */
    matmul(c, out, c->hg, &l->ffn_down, T);                            /* [T][D] */
}

static void add_inplace(float *h, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) h[i] += x[i];
}

/* h[T][D] += MoE or SwiGLU FFN of RMSNorm(h) * ffn_norm */
static smoe_status ffn_block(smoe_ctx *c, const smoe_layer *l, int il, int32_t T, const fwd_segs *sg) {
    const smoe_model_info *inf = &c->model->info;
    const int64_t D = inf->n_embd;
    smoe_op_rmsnorm(c->xn, c->h, l->ffn_norm, T, D, inf->norm_eps);       /* [T][D] */
    if (inf->n_expert > 0) {
        smoe_status st = moe_ffn(c, l, il, T, sg, c->tmp);               /* [T][D] */
        if (st) return st;
    } else {
        dense_ffn(c, l, T, c->tmp);                                       /* [T][D] */
    }
    add_inplace(c->h, c->tmp, T * D);                                     /* h += ffn */
    return SMOE_OK;
}

/* ------------------------------------------------------------------ the forward pass */

smoe_status smoe_forward(smoe_ctx *c, const int32_t *ids, int32_t T, float *logits_out, bool all_logits) {
    const smoe_model *m = c->model;
    const smoe_model_info *inf = &m->info;
    const int64_t D = inf->n_embd, Dq = (int64_t)inf->n_head * inf->head_dim, Dkv = (int64_t)inf->n_head_kv * inf->head_dim;
    smoe_status st;
    smoe_ctx *self[1] = {c};
    const fwd_segs sg = {self, &T, 1};

    const int R = inf->rope_dim;
    for (int32_t t = 0; t < T; t++) {
        smoe_op_get_row(c->h + t * D, &m->tok_embd, ids[t]);                       /* [T][D] */
        smoe_op_rope_cs(c->rope_cs + (size_t)t * R, R, c->n_past + t, inf->rope_freq_base); /* every layer's */
    }

    for (int il = 0; il < inf->n_layer; il++) {
        const smoe_layer *l = &m->layers[il];
        float *kc = c->k_cache + ((size_t)il * c->n_ctx + c->n_past) * Dkv;
        float *vc = c->v_cache + ((size_t)il * c->n_ctx + c->n_past) * Dkv;

        /* attention */
        smoe_op_rmsnorm(c->xn, c->h, l->attn_norm, T, D, inf->norm_eps);  /* [T][D] */
        const smoe_tensor *qkv[3] = {&l->wq, &l->wk, &l->wv};
        float *qkv_out[3] = {c->q, kc, vc};
        smoe_cpu_matmul_n(c, c->xn, T, 3, qkv, qkv_out);                 /* [T][H*Dh], [T][Hkv*Dh] x2 (k, v into the cache) */
        for (int32_t t = 0; t < T; t++) {
            smoe_op_rope_apply(c->q + t * Dq, inf->n_head, inf->head_dim, R, c->rope_cs + (size_t)t * R);
            smoe_op_rope_apply(kc + t * Dkv, inf->n_head_kv, inf->head_dim, R, c->rope_cs + (size_t)t * R);
        }
        smoe_cpu_attention(c, il, T);                                     /* [T][H*Dh] causal */
        matmul(c, c->tmp, c->att, &l->wo, T);                             /* [T][D] */
        add_inplace(c->h, c->tmp, T * D);                                 /* h += attn */

        if ((st = ffn_block(c, l, il, T, &sg))) return st;               /* h += ffn(RMSNorm(h)) */
    }

    if (logits_out) {
        const int32_t n_out = all_logits ? T : 1;
        const float *rows = c->h + (size_t)(T - n_out) * D;
        smoe_op_rmsnorm(c->out_rows, rows, m->output_norm, n_out, D, inf->norm_eps); /* [n_out][D] */
        matmul(c, logits_out, c->out_rows, &m->output, n_out);                       /* [n_out][V] */
    }
    return SMOE_OK;
}

/* The same pass over several sequences at once: every op but RoPE, the cache writes and
 * attention runs on all rows together (the experts see every sequence's tokens). */
smoe_status smoe_forward_multi(smoe_ctx *c, smoe_ctx *const *seqs, int32_t n_seq, const int32_t *ids,
                               const int32_t *n_tok, float *logits_out) {
    const smoe_model *m = c->model;
    const smoe_model_info *inf = &m->info;
    const int64_t D = inf->n_embd, Dq = (int64_t)inf->n_head * inf->head_dim, Dkv = (int64_t)inf->n_head_kv * inf->head_dim;
    const fwd_segs sg = {seqs, n_tok, n_seq};
    smoe_status st;
    int32_t T = 0;
    for (int32_t i = 0; i < n_seq; i++) T += n_tok[i];

    const int R = inf->rope_dim;
    for (int32_t t = 0; t < T; t++) smoe_op_get_row(c->h + t * D, &m->tok_embd, ids[t]); /* [T][D] */
    for (int32_t i = 0, r = 0; i < n_seq; r += n_tok[i++])                          /* every layer's RoPE */
        for (int32_t t = 0; t < n_tok[i]; t++)
            smoe_op_rope_cs(c->rope_cs + (size_t)(r + t) * R, R, seqs[i]->n_past + t, inf->rope_freq_base);

    for (int il = 0; il < inf->n_layer; il++) {
        const smoe_layer *l = &m->layers[il];

        /* attention: q, k, v of all rows; per sequence RoPE at its positions, k and v into
         * its cache; then every row attends over its own sequence */
        smoe_op_rmsnorm(c->xn, c->h, l->attn_norm, T, D, inf->norm_eps);  /* [T][D] */
        const smoe_tensor *qkv[3] = {&l->wq, &l->wk, &l->wv};
        float *qkv_out[3] = {c->q, c->k_new, c->v_new};
        smoe_cpu_matmul_n(c, c->xn, T, 3, qkv, qkv_out);                 /* [T][H*Dh], [T][Hkv*Dh] x2 */
        for (int32_t i = 0, r = 0; i < n_seq; r += n_tok[i++]) {
            smoe_ctx *x = seqs[i];
            float *kc = x->k_cache + (size_t)il * x->n_ctx * Dkv, *vc = x->v_cache + (size_t)il * x->n_ctx * Dkv;
            for (int32_t t = 0; t < n_tok[i]; t++) {
                const int32_t pos = x->n_past + t, row = r + t;
                smoe_op_rope_apply(c->q + row * Dq, inf->n_head, inf->head_dim, R, c->rope_cs + (size_t)row * R);
                smoe_op_rope_apply(c->k_new + row * Dkv, inf->n_head_kv, inf->head_dim, R, c->rope_cs + (size_t)row * R);
                memcpy(kc + (size_t)pos * Dkv, c->k_new + row * Dkv, sizeof(float) * (size_t)Dkv);
                memcpy(vc + (size_t)pos * Dkv, c->v_new + row * Dkv, sizeof(float) * (size_t)Dkv);
                c->tok_kc[row] = kc, c->tok_vc[row] = vc, c->tok_nkv[row] = pos + 1;
            }
        }
        smoe_cpu_attention_multi(c, T);                                   /* [T][H*Dh] causal, per sequence */
        matmul(c, c->tmp, c->att, &l->wo, T);                             /* [T][D] */
        add_inplace(c->h, c->tmp, T * D);                                 /* h += attn */

        if ((st = ffn_block(c, l, il, T, &sg))) return st;               /* h += ffn(RMSNorm(h)) */
    }

    if (logits_out) {                                                     /* each sequence's last row */
        for (int32_t i = 0, r = 0; i < n_seq; r += n_tok[i++])
            memcpy(c->xn + (size_t)i * D, c->h + (size_t)(r + n_tok[i] - 1) * D, sizeof(float) * (size_t)D);
        smoe_op_rmsnorm(c->out_rows, c->xn, m->output_norm, n_seq, D, inf->norm_eps); /* [n_seq][D] */
        matmul(c, logits_out, c->out_rows, &m->output, n_seq);                        /* [n_seq][V] */
    }
    return SMOE_OK;
}
