/*
 * context.c - the run state of one sequence: every buffer the forward pass needs is
 * allocated here, once, sized from the model config and the context parameters (no
 * allocation happens while tokens are processed). smoe_ctx_decode validates its input,
 * splits it into steps of at most n_batch tokens and calls forward.c.
 */
#include "cpu/gemm.h"
#include "model.h"

#include <stdlib.h>
#include <string.h>

smoe_ctx_params smoe_ctx_default_params(void) {
    smoe_ctx_params p = {.n_ctx = 0, .n_batch = 256, .n_threads = 1, .reference = false};
    return p;
}

smoe_status smoe_ctx_init(const smoe_model *m, const smoe_ctx_params *params, smoe_ctx **out) {
    if (!m || !out) return smoe_err(SMOE_ERR_INVALID_ARG, "smoe_ctx_init: NULL argument");
    *out = NULL;
    if (m->vocab_only) return smoe_err(SMOE_ERR_INVALID_ARG, "the model was loaded without weights (vocab_only)");
    smoe_ctx_params p = params ? *params : smoe_ctx_default_params();
    const smoe_model_info *inf = &m->info;
    if (p.n_ctx <= 0) p.n_ctx = SMOE_MIN(inf->n_ctx_train, 4096);
    if (p.n_ctx > (1 << 24)) return smoe_err(SMOE_ERR_INVALID_ARG, "context length %d too large", p.n_ctx);
    if (p.n_batch <= 0) p.n_batch = 256;
    if (p.n_batch > p.n_ctx) p.n_batch = p.n_ctx;
    if (p.n_threads <= 0) p.n_threads = 1;

    smoe_ctx *c = calloc(1, sizeof *c);
    if (!c) return smoe_err(SMOE_ERR_NOMEM, "out of memory");
    c->model = m;
    c->n_ctx = p.n_ctx;
    c->n_batch = p.n_batch;
    c->n_threads = p.n_threads;
    c->reference = p.reference;
    c->attn_fn = smoe_attn_group_get();
    smoe_status st = smoe_pool_init(p.n_threads, &c->pool);
    if (st) {
        free(c);
        return st;
    }
    const size_t T = (size_t)p.n_batch, C = (size_t)p.n_ctx, D = (size_t)inf->n_embd;
    const size_t Dq = (size_t)inf->n_head * (size_t)inf->head_dim, Dkv = (size_t)inf->n_head_kv * (size_t)inf->head_dim;
    const size_t E = (size_t)SMOE_MAX(inf->n_expert, 1), K = (size_t)SMOE_MAX(inf->n_expert_used, 1);
    const size_t F = (size_t)inf->n_ff, L = (size_t)inf->n_layer, nt = (size_t)p.n_threads;
    bool ok = (c->k_cache = smoe_alloc_aligned(L * C, Dkv * sizeof(float))) &&
              (c->v_cache = smoe_alloc_aligned(L * C, Dkv * sizeof(float))) &&
              (c->h = smoe_alloc_aligned(T * D, sizeof(float))) && (c->xn = smoe_alloc_aligned(T * D, sizeof(float))) &&
              (c->q = smoe_alloc_aligned(T * Dq, sizeof(float))) && (c->att = smoe_alloc_aligned(T * Dq, sizeof(float))) &&
              (c->tmp = smoe_alloc_aligned(T * D, sizeof(float))) &&
              (c->rlogits = smoe_alloc_aligned(T * 3 * E, sizeof(float))) && /* 3E: attention router */
              (c->rids = smoe_alloc_aligned(T * K, sizeof(int32_t))) && (c->rw = smoe_alloc_aligned(T * K, sizeof(float))) &&
              (c->ex_tok = smoe_alloc_aligned(T * K, sizeof(int32_t))) &&
              (c->ex_w = smoe_alloc_aligned(T * K, sizeof(float))) &&
              (c->ex_off = smoe_alloc_aligned(E + 1, sizeof(int32_t))) &&
              (c->xg = smoe_alloc_aligned(T * K * D, sizeof(float))) && (c->hg = smoe_alloc_aligned(T * F, sizeof(float))) &&
              (c->hu = smoe_alloc_aligned(T * F, sizeof(float))) && (c->yg = smoe_alloc_aligned(T * K * D, sizeof(float))) &&
              (c->scores = smoe_alloc_aligned(nt * C * (size_t)(inf->n_head / inf->n_head_kv), sizeof(float))) &&
              (c->dq = smoe_alloc_aligned(nt * (size_t)m->max_cols, sizeof(float))) &&
              (c->out_rows = smoe_alloc_aligned(T * D, sizeof(float))) &&
              (c->rscratch = smoe_alloc_aligned(2 * E, sizeof(float))) &&
              (c->k_new = smoe_alloc_aligned(T * Dkv, sizeof(float))) &&
              (c->v_new = smoe_alloc_aligned(T * Dkv, sizeof(float))) &&
              (c->tok_kc = smoe_alloc_aligned(T, sizeof(float *))) && (c->tok_vc = smoe_alloc_aligned(T, sizeof(float *))) &&
              (c->tok_nkv = smoe_alloc_aligned(T, sizeof(int32_t))) &&
              (c->rope_cs = smoe_alloc_aligned(T * (size_t)SMOE_MAX(inf->rope_dim, 2), sizeof(float)));
    /* quantized activations: at most 4 bytes per value (F32 is the widest vec_dot_type) */
    for (int i = 0; i < 3 && ok; i++) ok = (c->xq[i] = smoe_alloc_aligned(T * (size_t)m->max_cols, sizeof(float))) != NULL;
    /* the f32 GEMM path of prefill (cpu/gemm.h) */
    c->gemm_ws_floats = smoe_gemm_ws_floats((int64_t)T);
    ok = ok && (c->gemm_a = smoe_alloc_aligned(smoe_gemm_pack_floats((int64_t)T, m->max_cols), sizeof(float))) &&
         (c->gemm_ws = smoe_alloc_aligned(nt * c->gemm_ws_floats, sizeof(float)));
    if (!ok) {
        size_t kv_mib = 2 * L * C * Dkv * sizeof(float) >> 20;
        smoe_ctx_free(c);
        return smoe_err(SMOE_ERR_NOMEM, "out of memory for a context of %d tokens (KV cache %zu MiB)", p.n_ctx, kv_mib);
    }
    *out = c;
    return SMOE_OK;
}

void smoe_ctx_free(smoe_ctx *c) {
    if (!c) return;
    smoe_pool_free(c->pool);
    float *fbufs[] = {c->k_cache, c->v_cache, c->h, c->xn, c->q, c->att, c->tmp, c->rlogits, c->rw,
                      c->ex_w, c->xg, c->hg, c->hu, c->yg, c->scores, c->dq, c->out_rows, c->rscratch,
                      c->gemm_a, c->gemm_ws, c->k_new, c->v_new, c->rope_cs};
    for (size_t i = 0; i < sizeof fbufs / sizeof *fbufs; i++) smoe_free_aligned(fbufs[i]);
    for (int i = 0; i < 3; i++) smoe_free_aligned(c->xq[i]);
    smoe_free_aligned(c->rids);
    smoe_free_aligned(c->ex_tok);
    smoe_free_aligned(c->ex_off);
    smoe_free_aligned((void *)c->tok_kc);
    smoe_free_aligned((void *)c->tok_vc);
    smoe_free_aligned(c->tok_nkv);
    free(c);
}

int32_t smoe_ctx_n_past(const smoe_ctx *c) { return c->n_past; }
int32_t smoe_ctx_n_ctx(const smoe_ctx *c) { return c->n_ctx; }
void smoe_ctx_reset(smoe_ctx *c) { c->n_past = 0; }

void smoe_ctx_set_route_observer(smoe_ctx *c, smoe_route_fn fn, void *user) {
    c->route_fn = fn;
    c->route_user = user;
}

smoe_status smoe_ctx_decode(smoe_ctx *c, const int32_t *ids, int32_t n, float *logits, bool all_logits) {
    if (!c || (!ids && n > 0)) return smoe_err(SMOE_ERR_INVALID_ARG, "smoe_ctx_decode: NULL argument");
    if (n <= 0) return smoe_err(SMOE_ERR_INVALID_ARG, "smoe_ctx_decode: no tokens");
    const int32_t V = c->model->info.n_vocab;
    for (int32_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return smoe_err(SMOE_ERR_RANGE, "token id %d at index %d is out of range [0, %d)", ids[i], i, V);
    if (n > c->n_ctx - c->n_past)
        return smoe_err(SMOE_ERR_RANGE, "context full: %d tokens in the cache + %d new > context length %d", c->n_past, n,
                        c->n_ctx);
    for (int32_t i0 = 0; i0 < n; i0 += c->n_batch) {
        const int32_t T = SMOE_MIN(c->n_batch, n - i0);
        const bool last = i0 + T == n;
        float *out = NULL;
        if (logits && all_logits) out = logits + (size_t)i0 * (size_t)V;
        else if (logits && last) out = logits;
        smoe_status st = smoe_forward(c, ids + i0, T, out, all_logits);
        if (st) return st; /* n_past stays at the last complete step */
        c->n_past += T;
    }
    return SMOE_OK;
}

smoe_status smoe_ctx_decode_multi(smoe_ctx *runner, smoe_ctx *const *ctxs, int32_t n_seq, const int32_t *ids,
                                  const int32_t *n_tok, float *logits) {
    if (!runner || !ctxs || !ids || !n_tok) return smoe_err(SMOE_ERR_INVALID_ARG, "smoe_ctx_decode_multi: NULL argument");
    if (n_seq <= 0) return smoe_err(SMOE_ERR_INVALID_ARG, "smoe_ctx_decode_multi: no sequences");
    smoe_ctx *c = runner;
    const int32_t V = c->model->info.n_vocab;
    int64_t total = 0;
    for (int32_t s = 0; s < n_seq; s++) {
        const smoe_ctx *x = ctxs[s];
        if (!x) return smoe_err(SMOE_ERR_INVALID_ARG, "smoe_ctx_decode_multi: context %d is NULL", s);
        if (x->model != c->model)
            return smoe_err(SMOE_ERR_INVALID_ARG, "smoe_ctx_decode_multi: context %d runs another model", s);
        if (x->n_ctx > c->n_ctx)
            return smoe_err(SMOE_ERR_INVALID_ARG, "smoe_ctx_decode_multi: context %d is longer (%d) than the runner (%d)", s,
                            x->n_ctx, c->n_ctx);
        for (int32_t r = 0; r < s; r++)
            if (ctxs[r] == x) return smoe_err(SMOE_ERR_INVALID_ARG, "smoe_ctx_decode_multi: context %d given twice", s);
        if (n_tok[s] <= 0) return smoe_err(SMOE_ERR_INVALID_ARG, "smoe_ctx_decode_multi: sequence %d has no tokens", s);
        if (n_tok[s] > x->n_ctx - x->n_past)
            return smoe_err(SMOE_ERR_RANGE, "context %d full: %d tokens in the cache + %d new > context length %d", s,
                            x->n_past, n_tok[s], x->n_ctx);
        total += n_tok[s];
    }
    if (total > c->n_batch)
        return smoe_err(SMOE_ERR_INVALID_ARG, "smoe_ctx_decode_multi: %lld tokens > the runner's batch size %d",
                        (long long)total, c->n_batch);
    for (int64_t i = 0; i < total; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return smoe_err(SMOE_ERR_RANGE, "token id %d at index %lld is out of range [0, %d)", ids[i], (long long)i, V);
    smoe_status st = smoe_forward_multi(c, ctxs, n_seq, ids, n_tok, logits);
    if (st) return st;
    for (int32_t s = 0; s < n_seq; s++) ctxs[s]->n_past += n_tok[s];
    return SMOE_OK;
}
