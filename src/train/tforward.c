/*
 * tforward.c - the forward pass of training over a batch of B sequences of T tokens
 * (positions 0..T-1 each), saving every activation the backward pass (backward.c) needs:
 *
 *   h = token_embd[tokens]
 *   per layer:  h += Wo . Attn(RoPE(Wq x), RoPE(Wk x), Wv x)      x = RMSNorm(h) * attn_norm
 *               h += MoE(x)                                        x = RMSNorm(h) * ffn_norm
 *   logits = output . (RMSNorm(h) * output_norm);  CE = mean -log softmax(logits)[target]
 *
 * The same model as forward.c (inference), in f32 with every parameter trainable. The
 * MoE block: router pre-logits z = W_r x, troute.h turns them into assignments (expert,
 * gate weight), the assignments are grouped by expert and each expert runs as one
 * matmul over its tokens; a token's output is the gate-weighted sum of its experts'.
 */
#include "train/tmodel.h"
#include "train/tops.h"
#include "train/tkern.h"

#include <math.h>
#include <string.h>

/* Group the N*S slots by expert, in slot order within each expert: ex_off[E+1],
 * ex_slot[] (slot index n*S + s) and its inverse ex_pos[NS]. Dropped and empty slots
 * (id -1) are left out. */
static void group_by_expert(const int32_t *ids, int64_t NS, int32_t E, int32_t *ex_off, int32_t *ex_slot,
                            int32_t *ex_pos) {
    memset(ex_off, 0, sizeof(int32_t) * (size_t)(E + 1));
    for (int64_t i = 0; i < NS; i++)
        if (ids[i] >= 0) ex_off[ids[i] + 1]++;
    for (int32_t e = 0; e < E; e++) ex_off[e + 1] += ex_off[e];
    for (int64_t i = 0; i < NS; i++) {
        ex_pos[i] = ids[i] >= 0 ? ex_off[ids[i]] : -1;
        if (ids[i] >= 0) ex_slot[ex_off[ids[i]]++] = (int32_t)i;
    }
    for (int32_t e = E; e > 0; e--) ex_off[e] = ex_off[e - 1];
    ex_off[0] = 0;
}

/* The element-wise parts of the MoE block, split over the pool (tops_parallel). */
typedef struct moe_task {
    int64_t D, F, S;
    const float *x, *eg, *eu;
    const int32_t *ex_slot;
    float *xg, *ga, *es;
} moe_task;

static void gather_rows(void *arg, int64_t i0, int64_t i1) { /* xg[i] = x[token of assignment i] */
    const moe_task *t = arg;
    for (int64_t i = i0; i < i1; i++)
        memcpy(t->xg + i * t->D, t->x + (t->ex_slot[i] / t->S) * t->D, sizeof(float) * (size_t)t->D);
}

static void swiglu_rows(void *arg, int64_t i0, int64_t i1) { /* ga = silu(eg) * eu; es = sigmoid(eg) for backward */
    const moe_task *t = arg;
    const int64_t a = i0 * t->F;
    tkern_best()->swiglu((i1 - i0) * t->F, t->eg + a, t->eu + a, t->es + a, t->ga + a);
}

/* out[N][D] = sum over each token's assignments of w * down(silu(gate x) * up x) */
static smoe_status moe_forward(const smoe_tconfig *c, const smoe_tlayer *lw, smoe_tacts *a, int l, const tops_ctx *X,
                               const float *bias, uint64_t *rng, float *out) {
    const int64_t N = a->N, D = c->n_embd, F = c->n_ff, S = a->S, R = smoe_troute_width(&c->router);
    const int32_t E = c->router.n_expert;
    const float *x = a->xn2 + l * N * D;
    float *z = a->rz + l * N * R;
    int32_t *ids = a->ids + l * N * S, *ex_off = a->ex_off + l * (E + 1), *ex_slot = a->ex_slot + l * N * S;
    int32_t *ex_pos = a->ex_pos + l * N * S;
    float *gw = a->gw + l * N * S, *state = a->rstate + (size_t)l * a->state_floats;
    float *eg = a->eg + l * N * S * F, *eu = a->eu + l * N * S * F, *eo = a->eo + l * N * S * D;
    moe_task t = {D, F, S, x, eg, eu, ex_slot, a->xg, a->ga, a->es + l * N * S * F};

    tops_matmul(X, z, x, lw->router, N, D, R);                                            /* [N][R] */
    smoe_status st = smoe_troute_forward(&c->router, N, z, bias, rng, ids, gw, state, &a->rstats[l]); /* [N][S] */
    if (st) return st;
    group_by_expert(ids, N * S, E, ex_off, ex_slot, ex_pos);
    tops_parallel(X, ex_off[E], gather_rows, &t);                                         /* [N*S][D] by expert */
    for (int32_t e = 0; e < E; e++) {
        const int64_t o = ex_off[e], m = ex_off[e + 1] - o;
        if (m == 0) continue;
        tops_matmul(X, eg + o * F, a->xg + o * D, lw->exp_gate + e * F * D, m, D, F);    /* [m][F] */
        tops_matmul(X, eu + o * F, a->xg + o * D, lw->exp_up + e * F * D, m, D, F);      /* [m][F] */
    }
    tops_parallel(X, ex_off[E], swiglu_rows, &t);                                         /* [N*S][F] */
    for (int32_t e = 0; e < E; e++) {
        const int64_t o = ex_off[e], m = ex_off[e + 1] - o;
        if (m == 0) continue;
        tops_matmul(X, eo + o * D, a->ga + o * F, lw->exp_down + e * D * F, m, F, D);    /* [m][D] */
    }
    tops_slot_sum(X, out, eo, ex_pos, gw, N, S, D);                                       /* [N][D] out[n] = sum w eo */
    return SMOE_OK;
}

smoe_status smoe_tforward(const smoe_tconfig *c, const smoe_tweights *w, smoe_tacts *a, smoe_pool *pool,
                          const int32_t *tokens, const int32_t *targets, const float *bias, uint64_t *rng, double *ce,
                          double *aux_total, double *z_total) {
    const int32_t B = a->B, T = a->T, H = c->n_head, Hkv = c->n_head_kv, Dh = c->head_dim, L = c->n_layer;
    const int64_t N = a->N, D = c->n_embd, V = c->n_vocab, Dq = (int64_t)H * Dh, Dkv = (int64_t)Hkv * Dh;
    const int32_t E = c->router.n_expert;
    const tops_ctx Xs = {pool, a->ws, a->ws_bytes, a->ws1, a->ws1_bytes, a->attn_scratch, (size_t)a->T * (size_t)a->T},
                   *X = &Xs;
    SMOE_ASSERT(smoe_pool_size(pool) <= a->ws_threads);
    for (int64_t n = 0; n < N; n++)
        if (tokens[n] < 0 || tokens[n] >= V || (targets && (targets[n] < 0 || targets[n] >= V)))
            return smoe_err(SMOE_ERR_INVALID_ARG, "token id out of range [0, %lld) at position %lld", (long long)V,
                            (long long)n);

    tops_rope_table(a->rope, T, Dh, c->rope_base);                                        /* [T][Dh/2][2] */
    for (int64_t n = 0; n < N; n++)                                                       /* [N][D] */
        memcpy(a->h + n * D, w->tok_embd + (int64_t)tokens[n] * D, sizeof(float) * (size_t)D);

    double aux = 0, zl = 0;
    for (int l = 0; l < L; l++) {
        const smoe_tlayer *lw = &w->layers[l];
        const float *h = a->h + l * N * D;
        float *hn = a->h + (l + 1) * N * D, *hm = a->hm + l * N * D, *tmp = a->dbuf;
        float *xn1 = a->xn1 + l * N * D, *xn2 = a->xn2 + l * N * D;
        float *q = a->q + l * N * Dq, *k = a->k + l * N * Dkv, *v = a->v + l * N * Dkv, *ao = a->ao + l * N * Dq;

        /* attention */
        tops_rmsnorm(X, xn1, a->rs1 + l * N, h, lw->attn_norm, N, D, c->norm_eps);          /* [N][D] */
        tops_matmul(X, q, xn1, lw->wq, N, D, Dq);                                      /* [N][H*Dh] */
        tops_matmul(X, k, xn1, lw->wk, N, D, Dkv);                                     /* [N][Hkv*Dh] */
        tops_matmul(X, v, xn1, lw->wv, N, D, Dkv);                                     /* [N][Hkv*Dh] */
        tops_rope(X, q, a->rope, N, T, H, Dh, false);
        tops_rope(X, k, a->rope, N, T, Hkv, Dh, false);
        tops_attention(X, ao, a->att + (int64_t)l * B * H * T * T, q, k, v, B, T, H, Hkv, Dh); /* [N][H*Dh] */
        tops_matmul(X, tmp, ao, lw->wo, N, Dq, D);                                     /* [N][D] */
        tops_add(X, hm, h, tmp, N * D);                                                   /* h += attn */

        /* mixture of experts */
        tops_rmsnorm(X, xn2, a->rs2 + l * N, hm, lw->ffn_norm, N, D, c->norm_eps);          /* [N][D] */
        smoe_status st = moe_forward(c, lw, a, l, X, bias ? bias + (int64_t)l * E : NULL, rng, tmp); /* [N][D] */
        if (st) return st;
        tops_add(X, hn, hm, tmp, N * D);                                                  /* h += moe */
        aux += a->rstats[l].aux;
        zl += a->rstats[l].z;
    }
    if (c->router.aux_style == SMOE_AUX_HF) {
        const float *states[SMOE_TLAYER_MAX];
        for (int l = 0; l < L; l++) states[l] = a->rstate + (size_t)l * a->state_floats;
        aux = smoe_troute_hf_pool(&c->router, L, N, states, a->hf_F);
    }

    tops_rmsnorm(X, a->xf, a->rsf, a->h + (int64_t)L * N * D, w->output_norm, N, D, c->norm_eps); /* [N][D] */
    tops_matmul(X, a->logits, a->xf, w->output, N, D, V);                              /* [N][V] */
    if (ce) *ce = targets ? tops_cross_entropy(X, a->logits, targets, N, V) : 0.0;     /* logits -> dCE/dlogits */
    if (aux_total) *aux_total = aux;
    if (z_total) *z_total = zl;
    return SMOE_OK;
}
