/*
 * backward.c - the backward pass of tforward.c, op by op in reverse order: the
 * gradient of mean CE + aux_coef * aux + z_coef * z with respect to every parameter,
 * ADDED into g (the caller zeroes it once per step, which is also how gradient
 * accumulation over micro-batches works).
 *
 * dh is the gradient of the residual stream, carried down through the layers; each
 * sublayer adds its part to it. The expert selection is piecewise constant: gradients
 * reach the router only through the gate weights (and the auxiliary losses), as in
 * PyTorch autograd over the Mistral reference.
 */
#include "train/tmodel.h"
#include "train/tops.h"
#include "train/tkern.h"
#include "train/tred.h"

#include <math.h>
#include <string.h>

/* The element-wise parts of the MoE backward, split over the pool (tops_parallel). */
typedef struct moe_bwd_task {
    int64_t D, F, S;
    const float *x, *dy, *gw, *eg, *eu, *es, *eo;
    const int32_t *ex_slot;
    float *dgw, *dyo, *xg, *ga, *dg, *du;
} moe_bwd_task;

/* Per assignment i (token n, slot s): dw = dy[n] . eo[i], d eo[i] = w dy[n]; the expert
 * inputs gathered again; silu(g) u recomputed. */
static void assign_rows(void *arg, int64_t i0, int64_t i1) {
    const moe_bwd_task *t = arg;
    const int64_t D = t->D, F = t->F;
    for (int64_t i = i0; i < i1; i++) {
        const int64_t slot = t->ex_slot[i], n = slot / t->S;
        const float wgt = t->gw[slot], *dy = t->dy + n * D, *eo = t->eo + i * D;
        t->dgw[slot] = (float)tred_dot(dy, eo, D);
        for (int64_t d = 0; d < D; d++) t->dyo[i * D + d] = wgt * dy[d];
        memcpy(t->xg + i * D, t->x + n * D, sizeof(float) * (size_t)D);
        for (int64_t f = i * F; f < (i + 1) * F; f++) t->ga[f] = t->eg[f] * t->es[f] * t->eu[f];
    }
}

/* a = silu(g) u: du = da silu(g), dg = da u silu'(g), silu' = s (1 + g (1 - s)); da
 * arrives in dg. */
static void swiglu_bwd_rows(void *arg, int64_t i0, int64_t i1) {
    const moe_bwd_task *t = arg;
    const int64_t a = i0 * t->F;
    tkern_best()->swiglu_bwd((i1 - i0) * t->F, t->eg + a, t->eu + a, t->es + a, t->dg + a, t->du + a);
}

/* Gradients of the MoE block of layer l, given dy [N][D] of its output: adds to the
 * expert and router weights' gradients and writes dx [N][D] (of its input xn2). */
static void moe_backward(const smoe_tconfig *c, const smoe_tlayer *lw, smoe_tlayer *lg, smoe_tacts *a, int l,
                         const tops_ctx *X, const float *dy, float *dx) {
    const int64_t N = a->N, D = c->n_embd, F = c->n_ff, S = a->S, R = smoe_troute_width(&c->router);
    const int32_t E = c->router.n_expert;
    const float *x = a->xn2 + l * N * D, *z = a->rz + l * N * R;
    const int32_t *ids = a->ids + l * N * S, *ex_off = a->ex_off + l * (E + 1), *ex_slot = a->ex_slot + l * N * S;
    const float *gw = a->gw + l * N * S, *state = a->rstate + (size_t)l * a->state_floats;
    const float *eg = a->eg + l * N * S * F, *eu = a->eu + l * N * S * F, *eo = a->eo + l * N * S * D;
    moe_bwd_task t = {D, F, S, x, dy, gw, eg, eu, a->es + l * N * S * F, eo, ex_slot,
                      a->dgw, a->dyo, a->xg, a->ga, a->dg, a->du};

    memset(a->dgw, 0, sizeof(float) * (size_t)(N * S));
    tops_parallel(X, ex_off[E], assign_rows, &t);                                /* dw, d eo, xg, silu(g) u */
    for (int32_t e = 0; e < E; e++) {
        const int64_t o = ex_off[e], m = ex_off[e + 1] - o;
        if (m == 0) continue;
        tops_matmul_bwd_w(X, lg->exp_down + e * D * F, a->dyo + o * D, a->ga + o * F, m, F, D, true); /* d down */
        tops_matmul_bwd_x(X, a->dg + o * F, a->dyo + o * D, lw->exp_down + e * D * F, m, F, D, false); /* d(silu(g) u) */
    }
    tops_parallel(X, ex_off[E], swiglu_bwd_rows, &t);                            /* SwiGLU */
    for (int32_t e = 0; e < E; e++) {
        const int64_t o = ex_off[e], m = ex_off[e + 1] - o;
        if (m == 0) continue;
        float *dxg = a->dyo + o * D; /* d xg [m][D], in dyo's place */
        tops_matmul_bwd_w(X, lg->exp_gate + e * F * D, a->dg + o * F, a->xg + o * D, m, D, F, true); /* d gate */
        tops_matmul_bwd_w(X, lg->exp_up + e * F * D, a->du + o * F, a->xg + o * D, m, D, F, true);   /* d up */
        tops_matmul_bwd_x(X, dxg, a->dg + o * F, lw->exp_gate + e * F * D, m, D, F, false);
        tops_matmul_bwd_x(X, dxg, a->du + o * F, lw->exp_up + e * F * D, m, D, F, true);
    }
    tops_slot_sum(X, dx, a->dyo, a->ex_pos + l * N * S, NULL, N, S, D);          /* back to the tokens */
    smoe_troute_backward(&c->router, N, z, ids, state, a->dgw,                   /* [N][R] */
                         c->router.aux_style == SMOE_AUX_HF ? a->hf_F : NULL, a->drz);
    tops_matmul_bwd_w(X, lg->router, a->drz, x, N, D, R, true);                  /* d router */
    tops_matmul_bwd_x(X, dx, a->drz, lw->router, N, D, R, true);
}

void smoe_tbackward(const smoe_tconfig *c, const smoe_tweights *w, smoe_tweights *g, smoe_tacts *a, smoe_pool *pool,
                    const int32_t *tokens, const int32_t *targets) {
    const int32_t B = a->B, T = a->T, H = c->n_head, Hkv = c->n_head_kv, Dh = c->head_dim, L = c->n_layer;
    const int64_t N = a->N, D = c->n_embd, V = c->n_vocab, Dq = (int64_t)H * Dh, Dkv = (int64_t)Hkv * Dh;
    float *dh = a->dh, *dx = a->dx;
    const tops_ctx Xs = {pool, a->ws, a->ws_bytes, a->ws1, a->ws1_bytes, a->attn_scratch, (size_t)a->T * (size_t)a->T},
                   *X = &Xs;
    SMOE_ASSERT(smoe_pool_size(pool) <= a->ws_threads);

    /* CE = mean_n -log p[n][target]: the forward pass left dlogits = (p - onehot) / N */
    (void)targets;
    tops_matmul_bwd_w(X, g->output, a->logits, a->xf, N, D, V, true);      /* d output */
    tops_matmul_bwd_x(X, dx, a->logits, w->output, N, D, V, false);        /* d xf */
    tops_rmsnorm_bwd(X, dh, g->output_norm, dx, a->h + (int64_t)L * N * D, a->rsf, w->output_norm, N, D, false);

    for (int l = L - 1; l >= 0; l--) {
        const smoe_tlayer *lw = &w->layers[l];
        smoe_tlayer *lg = &g->layers[l];
        const float *h = a->h + l * N * D, *hm = a->hm + l * N * D;
        const float *xn1 = a->xn1 + l * N * D, *q = a->q + l * N * Dq, *k = a->k + l * N * Dkv;
        const float *v = a->v + l * N * Dkv, *ao = a->ao + l * N * Dq;

        /* h_out = hm + moe(RMSNorm(hm)): dh stays (residual) and gains the MoE path */
        moe_backward(c, lw, lg, a, l, X, dh, dx);                           /* d xn2 */
        tops_rmsnorm_bwd(X, dh, lg->ffn_norm, dx, hm, a->rs2 + l * N, lw->ffn_norm, N, D, true);

        /* hm = h + Wo attn: dh stays and gains the attention path */
        tops_matmul_bwd_w(X, lg->wo, dh, ao, N, Dq, D, true);               /* d wo */
        tops_matmul_bwd_x(X, a->dbuf, dh, lw->wo, N, Dq, D, false);         /* d ao [N][H*Dh] */
        tops_attention_bwd(X, a->dq, a->dk, a->dv, a->dbuf, a->att + (int64_t)l * B * H * T * T, q, k, v, B, T, H,
                           Hkv, Dh);
        tops_rope(X, a->dq, a->rope, N, T, H, Dh, true);                       /* rotations are orthogonal */
        tops_rope(X, a->dk, a->rope, N, T, Hkv, Dh, true);
        tops_matmul_bwd_w(X, lg->wq, a->dq, xn1, N, D, Dq, true);
        tops_matmul_bwd_w(X, lg->wk, a->dk, xn1, N, D, Dkv, true);
        tops_matmul_bwd_w(X, lg->wv, a->dv, xn1, N, D, Dkv, true);
        tops_matmul_bwd_x(X, dx, a->dq, lw->wq, N, D, Dq, false);           /* d xn1 */
        tops_matmul_bwd_x(X, dx, a->dk, lw->wk, N, D, Dkv, true);
        tops_matmul_bwd_x(X, dx, a->dv, lw->wv, N, D, Dkv, true);
        tops_rmsnorm_bwd(X, dh, lg->attn_norm, dx, h, a->rs1 + l * N, lw->attn_norm, N, D, true);
    }
    for (int64_t n = 0; n < N; n++) {                                          /* d token_embd rows */
        float *ge = g->tok_embd + (int64_t)tokens[n] * D;
        for (int64_t d = 0; d < D; d++) ge[d] += dh[n * D + d];
    }
}
