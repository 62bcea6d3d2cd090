/*
 * tmodel.c - the parameter block's layout (GGUF names and order, as llama.cpp writes a
 * Mixtral-style "llama" file), its views, and the activation buffers of one batch.
 */
#include "train/tmodel.h"
#include "train/tgemm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

smoe_status smoe_tconfig_check(const smoe_tconfig *c) {
    if (c->n_vocab < 3 || c->n_embd < 2 || c->n_layer < 1 || c->n_head < 1 || c->n_head_kv < 1 || c->head_dim < 2 ||
        c->n_ff < 1)
        return smoe_err(SMOE_ERR_INVALID_ARG, "model sizes must be positive (vocab >= 3, dim >= 2, head size >= 2)");
    if (c->n_layer > SMOE_TLAYER_MAX) return smoe_err(SMOE_ERR_INVALID_ARG, "at most %d layers", SMOE_TLAYER_MAX);
    if (c->n_head % c->n_head_kv)
        return smoe_err(SMOE_ERR_INVALID_ARG, "heads (%d) must be a multiple of kv heads (%d)", c->n_head, c->n_head_kv);
    if (c->head_dim % 2) return smoe_err(SMOE_ERR_INVALID_ARG, "head size %d must be even (RoPE pairs)", c->head_dim);
    if (!(c->norm_eps > 0) || !(c->rope_base > 1))
        return smoe_err(SMOE_ERR_INVALID_ARG, "norm eps must be > 0 and RoPE base > 1");
    return smoe_troute_check(&c->router);
}

/* Append one tensor to the table (when it has room) and return its offset in floats. */
static int64_t add(smoe_tparam *table, int cap, int *count, int64_t *off, const char *name, int ndim, int64_t ne0,
                   int64_t ne1, int64_t ne2, bool is_norm) {
    const int64_t n = ne0 * (ndim > 1 ? ne1 : 1) * (ndim > 2 ? ne2 : 1), at = *off;
    if (table && *count < cap) {
        smoe_tparam *p = &table[*count];
        snprintf(p->name, sizeof p->name, "%s", name);
        p->ndim = ndim;
        p->ne[0] = ne0, p->ne[1] = ndim > 1 ? ne1 : 1, p->ne[2] = ndim > 2 ? ne2 : 1;
        p->n = n;
        p->offset = (size_t)at;
        p->is_norm = is_norm;
    }
    (*count)++;
    *off += n;
    return at;
}

/* The one walk over the tensors: fills the table and/or the views (w may be NULL). */
static int64_t layout(const smoe_tconfig *c, smoe_tparam *table, int cap, int *count, float *base, smoe_tweights *w) {
    const int64_t V = c->n_vocab, D = c->n_embd, Dq = (int64_t)c->n_head * c->head_dim,
                  Dkv = (int64_t)c->n_head_kv * c->head_dim, F = c->n_ff, E = c->router.n_expert,
                  R = smoe_troute_width(&c->router);
    int64_t off = 0, at;
    char name[64];
    *count = 0;
#define PUT(view, ...)                                          \
    at = add(table, cap, count, &off, __VA_ARGS__);             \
    if (w) view = base + at
    PUT(w->tok_embd, "token_embd.weight", 2, D, V, 0, false);
    for (int l = 0; l < c->n_layer; l++) {
        smoe_tlayer *L = w ? &w->layers[l] : NULL;
#define LAYER(view, suffix, ...)                                \
    snprintf(name, sizeof name, "blk.%d.%s", l, suffix);        \
    PUT(L->view, name, __VA_ARGS__)
        LAYER(attn_norm, "attn_norm.weight", 1, D, 0, 0, true);
        LAYER(wq, "attn_q.weight", 2, D, Dq, 0, false);
        LAYER(wk, "attn_k.weight", 2, D, Dkv, 0, false);
        LAYER(wv, "attn_v.weight", 2, D, Dkv, 0, false);
        LAYER(wo, "attn_output.weight", 2, Dq, D, 0, false);
        LAYER(ffn_norm, "ffn_norm.weight", 1, D, 0, 0, true);
        LAYER(router, "ffn_gate_inp.weight", 2, D, R, 0, false);
        LAYER(exp_gate, "ffn_gate_exps.weight", 3, D, F, E, false);
        LAYER(exp_up, "ffn_up_exps.weight", 3, D, F, E, false);
        LAYER(exp_down, "ffn_down_exps.weight", 3, F, D, E, false);
#undef LAYER
    }
    PUT(w->output_norm, "output_norm.weight", 1, D, 0, 0, true);
    PUT(w->output, "output.weight", 2, D, V, 0, false);
#undef PUT
    return off;
}

int64_t smoe_tmodel_layout(const smoe_tconfig *c, smoe_tparam *table, int cap, int *count) {
    return layout(c, table, cap, count, NULL, NULL);
}

void smoe_tmodel_views(const smoe_tconfig *c, float *base, smoe_tweights *w) {
    int n;
    memset(w, 0, sizeof *w);
    w->base = base;
    layout(c, NULL, 0, &n, base, w);
}

/* ------------------------------------------------------------------ activations */

#define ALLOC(field, count)                                                       \
    do {                                                                          \
        size_t n_ = (size_t)(count);                                              \
        if (!(a->field = smoe_alloc_aligned(n_ ? n_ : 1, sizeof *a->field))) goto oom; \
        bytes += sizeof *a->field * n_;                                           \
    } while (0)

smoe_status smoe_tacts_init(smoe_tacts *a, const smoe_tconfig *c, int32_t B, int32_t T, int n_threads) {
    memset(a, 0, sizeof *a);
    if (B < 1 || T < 1 || T > 4096) return smoe_err(SMOE_ERR_INVALID_ARG, "batch %d and sequence %d out of range", B, T);
    if (n_threads < 1 || n_threads > 1024) return smoe_err(SMOE_ERR_INVALID_ARG, "thread count %d out of range", n_threads);
    const int64_t N = (int64_t)B * T, L = c->n_layer, D = c->n_embd, V = c->n_vocab, F = c->n_ff,
                  Dq = (int64_t)c->n_head * c->head_dim, Dkv = (int64_t)c->n_head_kv * c->head_dim,
                  E = c->router.n_expert, R = smoe_troute_width(&c->router), S = smoe_troute_slots(&c->router);
    size_t bytes = 0;
    a->B = B, a->T = T, a->N = N, a->S = (int32_t)S;
    a->state_floats = smoe_troute_state_floats(&c->router, N);
    ALLOC(h, (L + 1) * N * D);
    ALLOC(xn1, L * N * D);
    ALLOC(rs1, L * N);
    ALLOC(q, L * N * Dq);
    ALLOC(k, L * N * Dkv);
    ALLOC(v, L * N * Dkv);
    ALLOC(att, L * B * c->n_head * (int64_t)T * T);
    ALLOC(ao, L * N * Dq);
    ALLOC(hm, L * N * D);
    ALLOC(xn2, L * N * D);
    ALLOC(rs2, L * N);
    ALLOC(rz, L * N * R);
    ALLOC(rstate, (size_t)L * a->state_floats);
    ALLOC(ids, L * N * S);
    ALLOC(gw, L * N * S);
    ALLOC(ex_off, L * (E + 1));
    ALLOC(ex_slot, L * N * S);
    ALLOC(ex_pos, L * N * S);
    ALLOC(eg, L * N * S * F);
    ALLOC(eu, L * N * S * F);
    ALLOC(es, L * N * S * F);
    ALLOC(eo, L * N * S * D);
    ALLOC(xf, N * D);
    ALLOC(rsf, N);
    ALLOC(logits, N * V);
    ALLOC(dh, N * D);
    ALLOC(dx, N * D);
    ALLOC(dbuf, N * SMOE_MAX(Dq, D));
    ALLOC(dq, N * Dq);
    ALLOC(dk, N * Dkv);
    ALLOC(dv, N * Dkv);
    ALLOC(dgw, N * S);
    ALLOC(drz, N * R);
    ALLOC(xg, N * S * D);
    ALLOC(ga, N * S * F);
    ALLOC(dg, N * S * F);
    ALLOC(du, N * S * F);
    ALLOC(dyo, N * S * D);
    ALLOC(rope, (int64_t)T * c->head_dim);
    ALLOC(hf_F, E);
    a->ws_bytes = tgemm_ws_bytes_max(n_threads);
    a->ws_threads = n_threads;
    if (!(a->ws = smoe_alloc_aligned(a->ws_bytes, 1))) goto oom;
    a->ws1_bytes = (tgemm_ws_bytes_max(1) + 63) / 64 * 64;
    if (!(a->ws1 = smoe_alloc_aligned((size_t)n_threads, a->ws1_bytes))) goto oom;
    ALLOC(attn_scratch, (int64_t)n_threads * T * T);
    (void)bytes;
    return SMOE_OK;
oom:
    smoe_tacts_free(a);
    return smoe_err(SMOE_ERR_NOMEM, "out of memory for the activations of a %d x %d batch", B, T);
}

void smoe_tacts_free(smoe_tacts *a) {
    void *bufs[] = {a->h,   a->xn1, a->rs1, a->q,      a->k,   a->v,  a->att, a->ao,  a->hm,  a->xn2,  a->rs2,
                    a->rz,  a->rstate, a->ids, a->gw, a->ex_off, a->ex_slot, a->ex_pos, a->eg, a->eu, a->es, a->eo, a->xf, a->rsf,
                    a->logits, a->dh, a->dx, a->dbuf, a->dq, a->dk, a->dv, a->dgw, a->drz, a->xg, a->ga, a->dg,
                    a->du, a->dyo, a->rope, a->hf_F, a->ws, a->ws1, a->attn_scratch};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) smoe_free_aligned(bufs[i]);
    memset(a, 0, sizeof *a);
}

/* ------------------------------------------------------------------ GGUF */

smoe_status smoe_tconfig_from_gguf(const smoe_gguf *g, smoe_tconfig *c) {
    const char *arch;
    uint64_t alen;
    char key[96];
    smoe_status st = smoe_gguf_get_str(g, "general.architecture", &arch, &alen);
    if (st) return st;
    if (alen >= 32) return smoe_err(SMOE_ERR_FORMAT, "architecture name too long");
    char a[32];
    memcpy(a, arch, alen);
    a[alen] = 0;
    memset(c, 0, sizeof *c);
    struct {
        const char *suffix;
        int32_t *dst;
        bool required;
    } keys[] = {{"embedding_length", &c->n_embd, true},       {"block_count", &c->n_layer, true},
                {"feed_forward_length", &c->n_ff, true},      {"attention.head_count", &c->n_head, true},
                {"attention.head_count_kv", &c->n_head_kv, false}, {"expert_count", &c->router.n_expert, true},
                {"expert_used_count", &c->router.k, true},   {"vocab_size", &c->n_vocab, false}};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        uint32_t v;
        snprintf(key, sizeof key, "%s.%s", a, keys[i].suffix);
        if ((st = smoe_gguf_get_u32(g, key, &v))) {
            if (keys[i].required) return st;
            continue;
        }
        if (v > INT32_MAX) return smoe_err(SMOE_ERR_RANGE, "%s out of range", key);
        *keys[i].dst = (int32_t)v;
    }
    if (!c->n_head_kv) c->n_head_kv = c->n_head;
    if (c->n_head < 1 || c->n_embd % c->n_head) return smoe_err(SMOE_ERR_FORMAT, "embedding not divisible by heads");
    c->head_dim = c->n_embd / c->n_head;
    if (!c->n_vocab) { /* from the tokenizer, as llama.cpp does */
        int64_t t = smoe_gguf_find_tensor(g, "token_embd.weight");
        if (t < 0) return smoe_err(SMOE_ERR_FORMAT, "no vocab_size and no token_embd.weight");
        c->n_vocab = (int32_t)smoe_gguf_tensor_ne(g, t, 1);
    }
    snprintf(key, sizeof key, "%s.rope.freq_base", a);
    if (smoe_gguf_get_f32(g, key, &c->rope_base)) c->rope_base = 10000.0f;
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", a);
    if ((st = smoe_gguf_get_f32(g, key, &c->norm_eps))) return st;
    c->router.kind = SMOE_TROUTE_TOPK;
    return SMOE_OK;
}

smoe_status smoe_tmodel_read_gguf(const smoe_gguf *g, const smoe_tconfig *c, float *base) {
    smoe_tparam *tab = smoe_alloc_aligned(4 + 10 * SMOE_TLAYER_MAX, sizeof *tab);
    if (!tab) return smoe_err(SMOE_ERR_NOMEM, "out of memory");
    int n;
    smoe_tmodel_layout(c, tab, 4 + 10 * SMOE_TLAYER_MAX, &n);
    smoe_status st = SMOE_OK;
    for (int i = 0; i < n && !st; i++) {
        const smoe_tparam *p = &tab[i];
        const int64_t t = smoe_gguf_find_tensor(g, p->name);
        if (t < 0) {
            st = smoe_err(SMOE_ERR_FORMAT, "tensor '%s' missing", p->name);
            break;
        }
        for (int d = 0; d < 3; d++)
            if (smoe_gguf_tensor_ne(g, t, d) != p->ne[d])
                st = smoe_err(SMOE_ERR_FORMAT, "tensor '%s': shape [%lld, %lld, %lld], expected [%lld, %lld, %lld]",
                              p->name, (long long)smoe_gguf_tensor_ne(g, t, 0), (long long)smoe_gguf_tensor_ne(g, t, 1),
                              (long long)smoe_gguf_tensor_ne(g, t, 2), (long long)p->ne[0], (long long)p->ne[1],
                              (long long)p->ne[2]);
        if (st) break;
        if (smoe_gguf_tensor_dtype(g, t) != SMOE_DTYPE_F32) {
            st = smoe_err(SMOE_ERR_UNSUPPORTED, "tensor '%s': training reads F32 tensors only", p->name);
            break;
        }
        memcpy(base + p->offset, smoe_gguf_tensor_data(g, t), sizeof(float) * (size_t)p->n);
    }
    smoe_free_aligned(tab);
    return st;
}
