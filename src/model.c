/*
 * model.c - load a model from GGUF: hyper-parameters from the metadata, weights as typed
 * views into the mapped file, each looked up by name and checked for shape and type.
 *
 * The architecture is data: the `llama` layout as llama.cpp stores it, dense or MoE.
 * MoE experts come either as 3-D tensors (blk.L.ffn_{gate,up,down}_exps, ne = {in, out, E})
 * or, in older Mixtral files, as one 2-D tensor per expert (blk.L.ffn_gate.E.weight);
 * both become the same per-expert views, so forward.c never sees the difference.
 * Not here: the forward pass (forward.c), tokenizer (tokenizer.c).
 */
#include "model.h"
#include "router.h"
#include "quant/quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

smoe_model_params smoe_model_default_params(void) {
    smoe_model_params p = {.vocab_only = false};
    return p;
}

/* Look up a tensor and check it is a (rows, cols) matrix, or n3 stacked ones when n3 > 0. */
static smoe_status get_matrix(smoe_model *m, const char *name, int64_t cols, int64_t rows, int64_t n3, smoe_tensor *out,
                              bool optional, bool *found) {
    const smoe_gguf *g = m->gguf;
    int64_t i = smoe_gguf_find_tensor(g, name);
    if (found) *found = i >= 0;
    if (i < 0) {
        if (optional) return SMOE_OK;
        return smoe_err(SMOE_ERR_FORMAT, "tensor '%s' is missing", name);
    }
    int dt = smoe_gguf_tensor_dtype(g, i);
    int64_t ne0 = smoe_gguf_tensor_ne(g, i, 0), ne1 = smoe_gguf_tensor_ne(g, i, 1);
    int64_t ne2 = smoe_gguf_tensor_ne(g, i, 2), ne3 = smoe_gguf_tensor_ne(g, i, 3);
    int64_t want2 = n3 > 0 ? n3 : 1;
    if (ne0 != cols || ne1 != rows || ne2 != want2 || ne3 != 1)
        return smoe_err(SMOE_ERR_FORMAT, "tensor '%s' has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld, %lld, 1]",
                        name, (long long)ne0, (long long)ne1, (long long)ne2, (long long)ne3, (long long)cols,
                        (long long)rows, (long long)want2);
    if (!smoe_dtype_can_dequantize(dt)) {
        const char *tn = smoe_dtype_name(dt);
        return smoe_err(SMOE_ERR_UNSUPPORTED, "tensor '%s' has type %s, which smoe cannot compute with yet", name,
                        tn ? tn : "?");
    }
    const smoe_type_traits *tr = smoe_type_traits_get(dt);
    out->dtype = dt;
    out->cols = cols;
    out->rows = rows;
    out->row_bytes = (size_t)(cols / tr->block_size) * tr->block_bytes;
    out->data = smoe_gguf_tensor_data(g, i);
    out->kern = smoe_kernels_get(dt);
    if (m->max_cols < cols) m->max_cols = cols;
    return SMOE_OK;
}

/* A 1-D f32 copy of a vector tensor of length n (norm weights). */
static smoe_status get_vector(smoe_model *m, const char *name, int64_t n, float **out) {
    smoe_tensor t;
    smoe_status st = get_matrix(m, name, n, 1, 0, &t, false, NULL);
    if (st) return st;
    *out = malloc(sizeof(float) * (size_t)n);
    if (!*out) return smoe_err(SMOE_ERR_NOMEM, "out of memory");
    return smoe_dequantize(t.dtype, t.data, *out, n);
}

/* Views of expert e of a 3-D tensor (ne = {cols, rows, E}). */
static void expert_views(const smoe_tensor *all, int32_t E, smoe_tensor *views) {
    for (int32_t e = 0; e < E; e++) {
        views[e] = *all;
        views[e].data = all->data + (size_t)e * (size_t)all->rows * all->row_bytes;
    }
}

static smoe_status load_experts(smoe_model *m, int il, const char *kind, int64_t cols, int64_t rows, smoe_tensor *views) {
    char name[128];
    int32_t E = m->info.n_expert;
    smoe_tensor all;
    bool found;
    snprintf(name, sizeof name, "blk.%d.ffn_%s_exps.weight", il, kind);
    smoe_status st = get_matrix(m, name, cols, rows, E, &all, true, &found);
    if (st) return st;
    if (found) {
        expert_views(&all, E, views);
        return SMOE_OK;
    }
    for (int32_t e = 0; e < E; e++) { /* the older one-tensor-per-expert layout */
        snprintf(name, sizeof name, "blk.%d.ffn_%s.%d.weight", il, kind, e);
        if ((st = get_matrix(m, name, cols, rows, 0, &views[e], e > 0, &found))) return st;
        if (!found) {
            if (e == 0) break;
            return smoe_err(SMOE_ERR_FORMAT, "tensor '%s' is missing", name);
        }
        if (e == E - 1) return SMOE_OK;
    }
    return smoe_err(SMOE_ERR_FORMAT, "tensor 'blk.%d.ffn_%s_exps.weight' is missing", il, kind);
}

static smoe_status arch_u32(const smoe_gguf *g, const char *arch, const char *key, uint32_t *out, bool optional,
                            uint32_t dflt) {
    char full[160];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    smoe_status st = smoe_gguf_get_u32(g, full, out);
    if (st == SMOE_ERR_NOT_FOUND && optional) {
        *out = dflt;
        return SMOE_OK;
    }
    return st;
}

static smoe_status arch_f32(const smoe_gguf *g, const char *arch, const char *key, float *out, bool optional, float dflt) {
    char full[160];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    smoe_status st = smoe_gguf_get_f32(g, full, out);
    if (st == SMOE_ERR_NOT_FOUND && optional) {
        *out = dflt;
        return SMOE_OK;
    }
    return st;
}

static smoe_status read_config(smoe_model *m) {
    const smoe_gguf *g = m->gguf;
    smoe_model_info *inf = &m->info;
    const char *s;
    uint64_t len;
    smoe_status st = smoe_gguf_get_str(g, "general.architecture", &s, &len);
    if (st) return st;
    if (len >= sizeof inf->arch) return smoe_err(SMOE_ERR_FORMAT, "general.architecture is too long");
    memcpy(inf->arch, s, (size_t)len);
    inf->arch[len] = 0;
    int64_t tok = smoe_gguf_find_key(g, "tokenizer.ggml.tokens");
    inf->n_vocab = tok >= 0 ? (int32_t)SMOE_MIN(smoe_gguf_arr_n(g, tok), (uint64_t)INT32_MAX) : 0;
    if (m->vocab_only) return SMOE_OK;
    if (strcmp(inf->arch, "llama") != 0)
        return smoe_err(SMOE_ERR_UNSUPPORTED, "architecture '%s' is not supported (supported: llama, dense or MoE)", inf->arch);

    const char *a = inf->arch;
    uint32_t v[12];
    if ((st = arch_u32(g, a, "embedding_length", &v[0], false, 0)) ||
        (st = arch_u32(g, a, "block_count", &v[1], false, 0)) ||
        (st = arch_u32(g, a, "attention.head_count", &v[2], false, 0)) ||
        (st = arch_u32(g, a, "attention.head_count_kv", &v[3], true, v[2])) ||
        (st = arch_u32(g, a, "feed_forward_length", &v[4], false, 0)) ||
        (st = arch_u32(g, a, "expert_count", &v[5], true, 0)) ||
        (st = arch_u32(g, a, "expert_used_count", &v[6], true, 0)) ||
        (st = arch_u32(g, a, "context_length", &v[7], true, 4096)) ||
        (st = arch_f32(g, a, "rope.freq_base", &inf->rope_freq_base, true, 10000.0f)) ||
        (st = arch_f32(g, a, "attention.layer_norm_rms_epsilon", &inf->norm_eps, true, 1e-5f)))
        return st;
    const uint32_t lim = 1u << 20;
    if (v[0] == 0 || v[0] > lim || v[1] == 0 || v[1] > 4096 || v[2] == 0 || v[2] > 4096 || v[3] == 0 || v[2] % v[3] ||
        v[0] % v[2] || v[4] == 0 || v[4] > lim || v[5] > 4096 || v[6] > v[5] || (v[5] > 0 && v[6] == 0) || v[7] == 0 ||
        v[7] > (1u << 24))
        return smoe_err(SMOE_ERR_FORMAT,
                        "inconsistent hyper-parameters: embd %u, layers %u, heads %u/%u, ff %u, experts %u/%u, ctx %u",
                        v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]);
    inf->n_embd = (int32_t)v[0];
    inf->n_layer = (int32_t)v[1];
    inf->n_head = (int32_t)v[2];
    inf->n_head_kv = (int32_t)v[3];
    inf->n_ff = (int32_t)v[4];
    inf->n_expert = (int32_t)v[5];
    inf->n_expert_used = (int32_t)v[6];
    inf->n_ctx_train = (int32_t)v[7];
    uint32_t kl;
    if ((st = arch_u32(g, a, "attention.key_length", &kl, true, v[0] / v[2]))) return st;
    if (kl != v[0] / v[2]) return smoe_err(SMOE_ERR_UNSUPPORTED, "attention.key_length %u != embedding/heads", kl);
    inf->head_dim = (int32_t)kl;
    uint32_t rd;
    if ((st = arch_u32(g, a, "rope.dimension_count", &rd, true, kl))) return st;
    if (rd == 0 || rd > kl || rd % 2) return smoe_err(SMOE_ERR_FORMAT, "rope.dimension_count %u invalid for head size %u", rd, kl);
    inf->rope_dim = (int32_t)rd;
    if (!(inf->rope_freq_base > 0) || !(inf->norm_eps >= 0))
        return smoe_err(SMOE_ERR_FORMAT, "rope.freq_base %g or rms epsilon %g out of range", inf->rope_freq_base, inf->norm_eps);
    char full[160];
    snprintf(full, sizeof full, "%s.rope.scaling.type", a);
    if (smoe_gguf_get_str(g, full, &s, &len) == SMOE_OK && !(len == 4 && memcmp(s, "none", 4) == 0))
        return smoe_err(SMOE_ERR_UNSUPPORTED, "RoPE scaling type '%.*s' is not supported", (int)SMOE_MIN(len, 32), s);
    /* Mixtral's router unless the file names another (smoe train writes "smoe.router") */
    inf->router = SMOE_ROUTER_TOPK_SOFTMAX;
    if (smoe_gguf_get_str(g, "smoe.router", &s, &len) == SMOE_OK &&
        (st = smoe_router_from_name(s, (size_t)len, &inf->router)))
        return st;
    smoe_err_clear();
    return SMOE_OK;
}

static smoe_status load_weights(smoe_model *m) {
    smoe_model_info *inf = &m->info;
    const int64_t D = inf->n_embd, Dq = (int64_t)inf->n_head * inf->head_dim, Dkv = (int64_t)inf->n_head_kv * inf->head_dim;
    const int64_t F = inf->n_ff, E = inf->n_expert;
    smoe_status st;
    int64_t ti = smoe_gguf_find_tensor(m->gguf, "token_embd.weight");
    if (ti < 0) return smoe_err(SMOE_ERR_FORMAT, "tensor 'token_embd.weight' is missing");
    int64_t V = smoe_gguf_tensor_ne(m->gguf, ti, 1);
    if (V < 1 || V > INT32_MAX) return smoe_err(SMOE_ERR_FORMAT, "token_embd.weight has %lld rows", (long long)V);
    if (inf->n_vocab && inf->n_vocab != V)
        return smoe_err(SMOE_ERR_FORMAT, "the tokenizer has %d tokens but token_embd.weight has %lld rows", inf->n_vocab,
                        (long long)V);
    inf->n_vocab = (int32_t)V;
    if ((st = get_matrix(m, "token_embd.weight", D, V, 0, &m->tok_embd, false, NULL))) return st;
    if ((st = get_vector(m, "output_norm.weight", D, &m->output_norm))) return st;
    bool has_out;
    if ((st = get_matrix(m, "output.weight", D, V, 0, &m->output, true, &has_out))) return st;
    if (!has_out) m->output = m->tok_embd; /* tied embeddings */

    m->layers = calloc((size_t)inf->n_layer, sizeof *m->layers);
    if (!m->layers) return smoe_err(SMOE_ERR_NOMEM, "out of memory");
    if (E > 0) {
        m->expert_views = calloc((size_t)(inf->n_layer * E * 3), sizeof *m->expert_views);
        if (!m->expert_views) return smoe_err(SMOE_ERR_NOMEM, "out of memory");
    }
    char name[128];
#define NAME(fmt) (snprintf(name, sizeof name, "blk.%d." fmt, il), name)
    for (int il = 0; il < inf->n_layer; il++) {
        smoe_layer *l = &m->layers[il];
        if ((st = get_vector(m, NAME("attn_norm.weight"), D, &l->attn_norm)) ||
            (st = get_matrix(m, NAME("attn_q.weight"), D, Dq, 0, &l->wq, false, NULL)) ||
            (st = get_matrix(m, NAME("attn_k.weight"), D, Dkv, 0, &l->wk, false, NULL)) ||
            (st = get_matrix(m, NAME("attn_v.weight"), D, Dkv, 0, &l->wv, false, NULL)) ||
            (st = get_matrix(m, NAME("attn_output.weight"), Dq, D, 0, &l->wo, false, NULL)) ||
            (st = get_vector(m, NAME("ffn_norm.weight"), D, &l->ffn_norm)))
            return st;
        if (E > 0) {
            l->exp_gate = m->expert_views + (il * 3 + 0) * E;
            l->exp_up = m->expert_views + (il * 3 + 1) * E;
            l->exp_down = m->expert_views + (il * 3 + 2) * E;
            const int64_t R = inf->router == SMOE_ROUTER_ATTENTION ? 3 * E : E;
            if (inf->router == SMOE_ROUTER_SIGMOID_BIAS && smoe_gguf_find_tensor(m->gguf, NAME("exp_probs_b.bias")) >= 0 &&
                (st = get_vector(m, name, E, &l->router_bias)))
                return st;
            if ((st = get_matrix(m, NAME("ffn_gate_inp.weight"), D, R, 0, &l->router, false, NULL)) ||
                (st = load_experts(m, il, "gate", D, F, l->exp_gate)) ||
                (st = load_experts(m, il, "up", D, F, l->exp_up)) ||
                (st = load_experts(m, il, "down", F, D, l->exp_down)))
                return st;
        } else {
            if ((st = get_matrix(m, NAME("ffn_gate.weight"), D, F, 0, &l->ffn_gate, false, NULL)) ||
                (st = get_matrix(m, NAME("ffn_up.weight"), D, F, 0, &l->ffn_up, false, NULL)) ||
                (st = get_matrix(m, NAME("ffn_down.weight"), F, D, 0, &l->ffn_down, false, NULL)))
                return st;
        }
    }
#undef NAME
    /* parameter counts: every tensor; active = all minus the unused experts */
    int64_t total = 0;
    size_t bytes = 0;
    for (int64_t i = 0; i < smoe_gguf_n_tensors(m->gguf); i++) {
        int64_t n = 1;
        for (int d = 0; d < SMOE_MAX_DIMS; d++) n *= smoe_gguf_tensor_ne(m->gguf, i, d);
        total += n;
        bytes += smoe_gguf_tensor_nbytes(m->gguf, i);
    }
    const int64_t per_expert = 3 * F * D;
    inf->n_params = total;
    inf->n_params_active = total - (int64_t)inf->n_layer * (E - inf->n_expert_used) * per_expert;
    inf->weight_bytes = bytes;
    return SMOE_OK;
}

smoe_status smoe_model_load(const char *path, const smoe_model_params *params, smoe_model **out) {
    if (!path || !out) return smoe_err(SMOE_ERR_INVALID_ARG, "smoe_model_load: NULL argument");
    *out = NULL;
    smoe_model_params p = params ? *params : smoe_model_default_params();
    smoe_model *m = calloc(1, sizeof *m);
    if (!m) return smoe_err(SMOE_ERR_NOMEM, "out of memory");
    m->vocab_only = p.vocab_only;
    smoe_status st = smoe_gguf_open(path, &m->gguf);
    if (!st) st = read_config(m);
    if (!st && !m->vocab_only) st = load_weights(m);
    if (st) {
        smoe_model_free(m);
        if (strncmp(smoe_last_error(), path, strlen(path)) == 0) return st; /* already names the file */
        return smoe_err_prefix(st, "%s", path);
    }
    *out = m;
    return SMOE_OK;
}

void smoe_model_free(smoe_model *m) {
    if (!m) return;
    if (m->layers)
        for (int il = 0; il < m->info.n_layer; il++) free(m->layers[il].attn_norm), free(m->layers[il].ffn_norm), free(m->layers[il].router_bias);
    free(m->layers);
    free(m->expert_views);
    free(m->output_norm);
    smoe_gguf_free(m->gguf);
    free(m);
}

const smoe_model_info *smoe_model_get_info(const smoe_model *m) { return &m->info; }
const smoe_gguf *smoe_model_gguf(const smoe_model *m) { return m->gguf; }
