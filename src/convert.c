/*
 * convert.c - model-level quantization (smoe_model_quantize): read any GGUF model smoe can
 * dequantize, choose a type per tensor the way llama.cpp's llama-quantize does for the
 * named mix (Q4_K_M, ...), quantize the rows in parallel and write a new GGUF file
 * atomically with the same metadata.
 *
 * What it does not do: no importance matrix (so no IQ types and no Q2_K_S, which needs
 * one), no per-tensor overrides, no split files, no layer pruning. The whole output is
 * held in memory until it is written (the GGUF writer's model), so converting a model
 * needs about its quantized size in RAM on top of the mapped input.
 *
 * The per-tensor rules are a re-statement of llama.cpp's llama_tensor_get_type (src/
 * llama-quant.cpp) restricted to the mixes smoe can produce: norms, 1-D tensors and the
 * MoE router (ffn_gate_inp) are never quantized; output.weight (or token_embd when the
 * embeddings are tied) becomes Q6_K; the mixes raise attn_v, attn_output and ffn_down in
 * some layers, and models with 8 experts keep attn_k/attn_v at Q8_0. The per-layer
 * counters depend on the order the tensors are visited, so the order is llama.cpp's:
 * tensors outside the blocks first, then by block number, by name within a block. The
 * output file keeps that order too, which makes it line up with llama-quantize's.
 */
#include "smoe.h"

#include "quant/quant.h"
#include "quant/quantize.h"
#include "smoe_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------ file types */

typedef struct ftype_row {
    smoe_ftype ftype;
    const char *name;
    int dtype; /* the default tensor type of the mix */
} ftype_row;

static const ftype_row FTYPES[] = {
    {SMOE_FTYPE_F32, "F32", SMOE_DTYPE_F32},       {SMOE_FTYPE_F16, "F16", SMOE_DTYPE_F16},
    {SMOE_FTYPE_BF16, "BF16", SMOE_DTYPE_BF16},    {SMOE_FTYPE_Q8_0, "Q8_0", SMOE_DTYPE_Q8_0},
    {SMOE_FTYPE_Q4_0, "Q4_0", SMOE_DTYPE_Q4_0},    {SMOE_FTYPE_Q4_1, "Q4_1", SMOE_DTYPE_Q4_1},
    {SMOE_FTYPE_Q5_0, "Q5_0", SMOE_DTYPE_Q5_0},    {SMOE_FTYPE_Q5_1, "Q5_1", SMOE_DTYPE_Q5_1},
    {SMOE_FTYPE_Q2_K, "Q2_K", SMOE_DTYPE_Q2_K},    {SMOE_FTYPE_Q3_K_S, "Q3_K_S", SMOE_DTYPE_Q3_K},
    {SMOE_FTYPE_Q3_K_M, "Q3_K_M", SMOE_DTYPE_Q3_K}, {SMOE_FTYPE_Q3_K_L, "Q3_K_L", SMOE_DTYPE_Q3_K},
    {SMOE_FTYPE_Q4_K_S, "Q4_K_S", SMOE_DTYPE_Q4_K}, {SMOE_FTYPE_Q4_K_M, "Q4_K_M", SMOE_DTYPE_Q4_K},
    {SMOE_FTYPE_Q5_K_S, "Q5_K_S", SMOE_DTYPE_Q5_K}, {SMOE_FTYPE_Q5_K_M, "Q5_K_M", SMOE_DTYPE_Q5_K},
    {SMOE_FTYPE_Q6_K, "Q6_K", SMOE_DTYPE_Q6_K},
};
#define N_FTYPES (sizeof FTYPES / sizeof *FTYPES)

static const ftype_row *ftype_row_of(smoe_ftype f) {
    for (size_t i = 0; i < N_FTYPES; i++)
        if (FTYPES[i].ftype == f) return &FTYPES[i];
    return NULL;
}

const char *smoe_ftype_name(smoe_ftype ftype) {
    const ftype_row *r = ftype_row_of(ftype);
    return r ? r->name : NULL;
}

smoe_status smoe_ftype_from_name(const char *name, smoe_ftype *out) {
    if (!name || !out) return smoe_err(SMOE_ERR_INVALID_ARG, "smoe_ftype_from_name: NULL argument");
    /* llama-quantize's short names for the K mixes mean their _M variant */
    static const struct {
        const char *alias;
        smoe_ftype ftype;
    } ALIASES[] = {{"Q3_K", SMOE_FTYPE_Q3_K_M}, {"Q4_K", SMOE_FTYPE_Q4_K_M}, {"Q5_K", SMOE_FTYPE_Q5_K_M}};
    for (size_t i = 0; i < N_FTYPES; i++)
        if (strcasecmp(name, FTYPES[i].name) == 0) return *out = FTYPES[i].ftype, SMOE_OK;
    for (size_t i = 0; i < sizeof ALIASES / sizeof *ALIASES; i++)
        if (strcasecmp(name, ALIASES[i].alias) == 0) return *out = ALIASES[i].ftype, SMOE_OK;
    char list[256];
    size_t pos = 0;
    for (size_t i = 0; i < N_FTYPES && pos < sizeof list; i++)
        pos += (size_t)snprintf(list + pos, sizeof list - pos, "%s%s", i ? ", " : "", FTYPES[i].name);
    return smoe_err(SMOE_ERR_INVALID_ARG, "unknown quantization type '%s' (known: %s)", name, list);
}

/* ------------------------------------------------------------------ type selection */

typedef enum category {
    CAT_TOKEN_EMBD,
    CAT_ATTN_Q,
    CAT_ATTN_V,
    CAT_ATTN_K,
    CAT_ATTN_QKV,
    CAT_ATTN_KV_B,
    CAT_ATTN_OUTPUT,
    CAT_FFN_UP,
    CAT_FFN_GATE,
    CAT_FFN_DOWN,
    CAT_OUTPUT,
    CAT_OTHER,
} category;

/* Broad role of a tensor from its name; the order of the tests matters (attn_qkv before
 * attn_v, ...), as in llama.cpp. */
static category category_of(const char *name) {
    if (strcmp(name, "output.weight") == 0) return CAT_OUTPUT;
    if (strcmp(name, "token_embd.weight") == 0 || strcmp(name, "per_layer_token_embd.weight") == 0)
        return CAT_TOKEN_EMBD;
    if (strstr(name, "attn_qkv.weight")) return CAT_ATTN_QKV;
    if (strstr(name, "attn_kv_b.weight")) return CAT_ATTN_KV_B;
    if (strstr(name, "attn_v.weight")) return CAT_ATTN_V;
    if (strstr(name, "attn_k.weight")) return CAT_ATTN_K;
    if (strstr(name, "attn_q.weight")) return CAT_ATTN_Q;
    if (strstr(name, "attn_output.weight")) return CAT_ATTN_OUTPUT;
    if (strstr(name, "ffn_up")) return CAT_FFN_UP;
    if (strstr(name, "ffn_gate")) return CAT_FFN_GATE;
    if (strstr(name, "ffn_down")) return CAT_FFN_DOWN;
    return CAT_OTHER;
}

/* attn_v and the tensors that carry it (fused qkv, MLA kv_b) are the sensitive ones */
static bool is_attn_v_like(category c) { return c == CAT_ATTN_V || c == CAT_ATTN_QKV || c == CAT_ATTN_KV_B; }

/* ggml_n_dims: trailing dimensions of size 1 do not count. */
static int n_dims(const smoe_gguf *g, int64_t i) {
    for (int d = SMOE_MAX_DIMS - 1; d >= 1; d--)
        if (smoe_gguf_tensor_ne(g, i, d) > 1) return d + 1;
    return 1;
}

/* Whether a tensor may change type at all: 2-D and 3-D weights only, and not the small
 * or precision-critical ones llama.cpp keeps as they are (norms, the MoE router, position
 * and token-type embeddings, convolution and RWKV mixing vectors, ...). */
static bool allows_quantization(const char *name, int ndims) {
    static const char *const KEEP[] = {
        "_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel",
        "per_layer_model_proj", "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight",
        "indexer.q_proj.weight", "time_mix_first.weight", "time_mix_w0.weight", "time_mix_w1.weight",
        "time_mix_w2.weight", "time_mix_v0.weight", "time_mix_v1.weight", "time_mix_v2.weight",
        "time_mix_a0.weight", "time_mix_a1.weight", "time_mix_a2.weight", "time_mix_g1.weight",
        "time_mix_g2.weight", "time_mix_decay_w1.weight", "time_mix_decay_w2.weight",
        "time_mix_lerp_fused.weight", "attn_rel_b.weight", ".position_embd", "sam.pos_embd", "sam.neck.",
        "sam.net_", ".rel_pos", ".patch_embd", ".patch_merger", "a.rvq.codebook", "mm.a.code_embd",
    };
    if (ndims < 2) return false;
    const size_t len = strlen(name);
    if (len < 6 || strcmp(name + len - 6, "weight") != 0) return false;
    if (strcmp(name, "position_embd.weight") == 0 || strcmp(name, "token_types.weight") == 0) return false;
    for (size_t i = 0; i < sizeof KEEP / sizeof *KEEP; i++)
        if (strstr(name, KEEP[i])) return false;
    return true;
}

/* What the type choice needs to know about the model, and llama.cpp's running counters. */
typedef struct mix_state {
    smoe_ftype ftype;
    int default_type;
    bool falcon;       /* general.architecture == "falcon": a few rules differ */
    bool llama_70b;    /* 80-layer llama with grouped-query attention */
    bool tied;         /* no output.weight: token_embd doubles as the output matrix */
    int n_layer, n_expert, n_gqa;
    int n_attn_v, i_attn_v;
    int n_ffn, i_ffn_down, i_ffn_gate, i_ffn_up;
} mix_state;

static bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

/* The layer of an FFN tensor: with experts the tensors are not one per layer in order
 * (old Mixtral files have one per expert), so it comes from the name; else the counter. */
static int ffn_layer(const mix_state *s, int counter, const char *name) {
    int il;
    if (s->n_expert > 1 && sscanf(name, "blk.%d.", &il) == 1 && il >= 0 && il < s->n_ffn) return il;
    return counter;
}

static bool is_quantized_type(int dtype) { return smoe_dtype_block_size(dtype) > 1; }

/* llama.cpp's fallbacks when a row length is not a multiple of the block size; F16
 * when even that does not fit (llama.cpp gives up for the legacy types instead). */
static int shape_fallback(int t, int64_t ne0) {
    if (ne0 % smoe_dtype_block_size(t) == 0) return t;
    switch (t) {
    case SMOE_DTYPE_Q2_K:
    case SMOE_DTYPE_Q3_K: t = SMOE_DTYPE_Q4_0; break;
    case SMOE_DTYPE_Q4_K: t = SMOE_DTYPE_Q5_0; break;
    case SMOE_DTYPE_Q5_K: t = SMOE_DTYPE_Q5_1; break;
    case SMOE_DTYPE_Q6_K: t = SMOE_DTYPE_Q8_0; break;
    default: t = SMOE_DTYPE_F16; break;
    }
    return ne0 % smoe_dtype_block_size(t) == 0 ? t : SMOE_DTYPE_F16;
}

/* Target type of one tensor (called in llama.cpp's order: it advances the counters). */
static int choose_type(mix_state *s, const char *name, int cur_type, int ndims, int64_t ne0) {
    if (!allows_quantization(name, ndims)) return cur_type;
    int t = s->default_type;
    if (!is_quantized_type(t)) return t; /* F32/F16/BF16 files: every weight that may change */
    const smoe_ftype f = s->ftype;
    const category cat = category_of(name);

    if (cat == CAT_OUTPUT || (s->tied && cat == CAT_TOKEN_EMBD)) {
        if (s->falcon || ne0 % smoe_dtype_block_size(t) != 0) t = SMOE_DTYPE_Q8_0;
        else if (t != SMOE_DTYPE_Q8_0) t = SMOE_DTYPE_Q6_K;
    } else if (cat == CAT_TOKEN_EMBD) {
        /* the default type (the remaining rules concern IQ/ternary mixes) */
    } else if (is_attn_v_like(cat)) {
        if (f == SMOE_FTYPE_Q2_K) t = s->n_gqa >= 4 ? SMOE_DTYPE_Q4_K : SMOE_DTYPE_Q3_K;
        else if (f == SMOE_FTYPE_Q3_K_M) t = s->i_attn_v < 2 ? SMOE_DTYPE_Q5_K : SMOE_DTYPE_Q4_K;
        else if (f == SMOE_FTYPE_Q3_K_L) t = SMOE_DTYPE_Q5_K;
        else if ((f == SMOE_FTYPE_Q4_K_M || f == SMOE_FTYPE_Q5_K_M) && use_more_bits(s->i_attn_v, s->n_attn_v))
            t = SMOE_DTYPE_Q6_K;
        else if (f == SMOE_FTYPE_Q4_K_S && s->i_attn_v < 4) t = SMOE_DTYPE_Q5_K;
        /* 70B: attn_v is 8x smaller than attn_q (8 heads share it), more bits are cheap */
        if (s->llama_70b && (t == SMOE_DTYPE_Q3_K || t == SMOE_DTYPE_Q4_K)) t = SMOE_DTYPE_Q5_K;
        if (s->n_expert == 8) t = SMOE_DTYPE_Q8_0; /* Mixtral: a few hundred MB for much better K/V */
        s->i_attn_v++;
    } else if (cat == CAT_ATTN_K) {
        if (s->n_expert == 8) t = SMOE_DTYPE_Q8_0;
    } else if (cat == CAT_FFN_DOWN) {
        const int il = ffn_layer(s, s->i_ffn_down, name), nl = s->n_ffn;
        if (f == SMOE_FTYPE_Q2_K) {
            t = SMOE_DTYPE_Q3_K;
        } else if (f == SMOE_FTYPE_Q3_K_M) {
            t = il < nl / 16 ? SMOE_DTYPE_Q5_K
                : (!s->falcon || use_more_bits(il, nl)) ? SMOE_DTYPE_Q4_K
                                                         : SMOE_DTYPE_Q3_K;
        } else if (f == SMOE_FTYPE_Q3_K_L) {
            t = s->falcon ? SMOE_DTYPE_Q4_K : SMOE_DTYPE_Q5_K;
        } else if (f == SMOE_FTYPE_Q4_K_M) {
            if (s->falcon)
                t = il < nl / 16 ? SMOE_DTYPE_Q6_K : use_more_bits(il, nl) ? SMOE_DTYPE_Q5_K : SMOE_DTYPE_Q4_K;
            else if (use_more_bits(il, nl))
                t = SMOE_DTYPE_Q6_K;
        } else if (f == SMOE_FTYPE_Q5_K_M && use_more_bits(il, nl)) {
            t = SMOE_DTYPE_Q6_K;
        } else if (f == SMOE_FTYPE_Q4_K_S && !s->falcon && il < nl / 8) {
            t = SMOE_DTYPE_Q5_K;
        }
        s->i_ffn_down++;
    } else if (cat == CAT_ATTN_OUTPUT) {
        if (!s->falcon) {
            if (s->n_expert == 8) {
                if (f == SMOE_FTYPE_Q2_K || f == SMOE_FTYPE_Q3_K_S || f == SMOE_FTYPE_Q3_K_M ||
                    f == SMOE_FTYPE_Q4_K_S || f == SMOE_FTYPE_Q4_K_M)
                    t = SMOE_DTYPE_Q5_K;
            } else {
                if (f == SMOE_FTYPE_Q2_K) t = SMOE_DTYPE_Q3_K;
                else if (f == SMOE_FTYPE_Q3_K_M) t = SMOE_DTYPE_Q4_K;
                else if (f == SMOE_FTYPE_Q3_K_L) t = SMOE_DTYPE_Q5_K;
            }
        } else if (f == SMOE_FTYPE_Q3_K_L) {
            t = SMOE_DTYPE_Q4_K;
        }
    } else if (cat == CAT_FFN_GATE) {
        s->i_ffn_gate++; /* (only IQ mixes use these counters) */
    } else if (cat == CAT_FFN_UP) {
        s->i_ffn_up++;
    }
    return shape_fallback(t, ne0);
}

/* Hyper-parameters the rules look at; absent keys leave the neutral defaults. */
static void read_hparams(const smoe_gguf *g, mix_state *s) {
    const char *arch = "";
    uint64_t alen = 0;
    char a[64] = "";
    if (smoe_gguf_get_str(g, "general.architecture", &arch, &alen) == SMOE_OK && alen < sizeof a) {
        memcpy(a, arch, (size_t)alen);
        a[alen] = 0;
    }
    char key[128];
    uint32_t v;
    s->falcon = strcmp(a, "falcon") == 0;
    snprintf(key, sizeof key, "%s.block_count", a);
    s->n_layer = smoe_gguf_get_u32(g, key, &v) == SMOE_OK && v < (1u << 20) ? (int)v : 0;
    snprintf(key, sizeof key, "%s.expert_count", a);
    s->n_expert = smoe_gguf_get_u32(g, key, &v) == SMOE_OK && v < (1u << 20) ? (int)v : 0;
    uint32_t n_head = 0, n_head_kv = 0;
    snprintf(key, sizeof key, "%s.attention.head_count", a);
    if (smoe_gguf_get_u32(g, key, &v) == SMOE_OK) n_head = v;
    snprintf(key, sizeof key, "%s.attention.head_count_kv", a);
    n_head_kv = smoe_gguf_get_u32(g, key, &v) == SMOE_OK ? v : n_head;
    s->n_gqa = n_head && n_head_kv ? (int)(n_head / n_head_kv) : 1;
    s->llama_70b = strcmp(a, "llama") == 0 && s->n_layer == 80 && n_head != n_head_kv;
    smoe_err_clear(); /* the misses above are not failures */
}

/* llama.cpp's tensor order: outside the blocks first, then block number, then name. */
typedef struct order_key {
    int layer; /* -1 outside the blocks */
    const char *name;
    int64_t idx;
} order_key;

static int cmp_order(const void *pa, const void *pb) {
    const order_key *a = pa, *b = pb;
    if (a->layer != b->layer) return a->layer < b->layer ? -1 : 1;
    return strcmp(a->name, b->name);
}

/* ------------------------------------------------------------------ parallel rows */

typedef struct row_job {
    const uint8_t *src;
    int src_type;
    size_t src_row_bytes;
    uint8_t *dst;
    size_t dst_row_bytes;
    smoe_quantize_fn quantize;
    int64_t ne0, row0, row1;
    smoe_status st;
} row_job;

/* Rows [row0, row1): dequantize each to f32, then quantize it to the target type. */
static void *row_worker(void *arg) {
    row_job *j = arg;
    float *buf = malloc(sizeof(float) * (size_t)j->ne0);
    if (!buf) {
        j->st = SMOE_ERR_NOMEM;
        return NULL;
    }
    for (int64_t r = j->row0; r < j->row1; r++) {
        if (smoe_dequantize(j->src_type, j->src + (size_t)r * j->src_row_bytes, buf, j->ne0) != SMOE_OK) {
            j->st = SMOE_ERR_UNSUPPORTED;
            break;
        }
        j->quantize(buf, j->dst + (size_t)r * j->dst_row_bytes, j->ne0);
    }
    free(buf);
    return NULL;
}

/* Convert nrows rows on up to n_threads threads (the caller's included; at most 64, the
 * conversion is memory-bound long before that). Rows are split evenly: every row of a
 * tensor costs the same. A thread that cannot be started leaves its rows to the caller. */
static smoe_status convert_rows(const uint8_t *src, int src_type, uint8_t *dst, int dst_type, int64_t ne0,
                                int64_t nrows, int n_threads) {
    row_job jobs[64];
    pthread_t tid[64];
    bool started[64] = {false};
    int nt = n_threads < 64 ? n_threads : 64;
    /* small tensors are not worth a thread (and keep the work per thread >= ~64K values) */
    const int64_t by_size = (ne0 * nrows) / 65536 + 1;
    if (nt > by_size) nt = (int)by_size;
    if (nt > nrows) nt = (int)nrows;
    if (nt < 1) nt = 1;
    const smoe_type_traits *ts = smoe_type_traits_get(src_type), *td = smoe_type_traits_get(dst_type);
    for (int k = 0; k < nt; k++) {
        jobs[k] = (row_job){
            .src = src,
            .src_type = src_type,
            .src_row_bytes = (size_t)(ne0 / ts->block_size) * ts->block_bytes,
            .dst = dst,
            .dst_row_bytes = (size_t)(ne0 / td->block_size) * td->block_bytes,
            .quantize = smoe_quantizer_get(dst_type),
            .ne0 = ne0,
            .row0 = nrows * k / nt,
            .row1 = nrows * (k + 1) / nt,
            .st = SMOE_OK,
        };
    }
    for (int k = 1; k < nt; k++) started[k] = pthread_create(&tid[k], NULL, row_worker, &jobs[k]) == 0;
    row_worker(&jobs[0]);
    for (int k = 1; k < nt; k++) {
        if (started[k]) pthread_join(tid[k], NULL);
        else row_worker(&jobs[k]);
    }
    for (int k = 0; k < nt; k++) {
        if (jobs[k].st == SMOE_ERR_NOMEM) return smoe_err(SMOE_ERR_NOMEM, "out of memory");
        if (jobs[k].st != SMOE_OK) return smoe_err(jobs[k].st, "cannot dequantize type %s", ts->name);
    }
    return SMOE_OK;
}

/* ------------------------------------------------------------------ the model */

/* The directory that will hold path must exist and be writable: checked before the
 * (long) conversion rather than found out when the file is written. */
static smoe_status check_out_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash) {
        strcpy(dir, ".");
    } else if (slash == path) {
        strcpy(dir, "/");
    } else {
        const size_t n = (size_t)(slash - path);
        if (n >= sizeof dir) return smoe_err(SMOE_ERR_INVALID_ARG, "output path is too long");
        memcpy(dir, path, n);
        dir[n] = 0;
    }
    if (access(dir, W_OK | X_OK) != 0)
        return smoe_err(SMOE_ERR_IO, "cannot write to directory '%s': %s", dir, strerror(errno));
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return smoe_err(SMOE_ERR_IO, "output '%s' is a directory", path);
    return SMOE_OK;
}

static int online_cpus(void) {
    const long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 64 ? 64 : (int)n;
}

typedef struct fill_ctx {
    const smoe_gguf *g;
    const int64_t *order; /* writer tensor k = input tensor order[k] */
    const int *types;     /* its output type */
    int64_t nt;
    int n_threads;
    smoe_progress_fn progress;
    void *user;
} fill_ctx;

/* Produce output tensor k: a copy when the type stays, else converted row by row. */
static smoe_status fill_tensor(void *arg, int64_t k, void *buf, size_t nbytes) {
    const fill_ctx *fc = arg;
    const int64_t i = fc->order[k];
    const char *name = smoe_gguf_tensor_name(fc->g, i);
    const int cur = smoe_gguf_tensor_dtype(fc->g, i);
    if (fc->progress) fc->progress(fc->user, k, fc->nt, name);
    if (fc->types[k] == cur) {
        memcpy(buf, smoe_gguf_tensor_data(fc->g, i), nbytes);
        return SMOE_OK;
    }
    const int64_t ne0 = smoe_gguf_tensor_ne(fc->g, i, 0);
    int64_t nel = 1;
    for (int d = 0; d < SMOE_MAX_DIMS; d++) nel *= smoe_gguf_tensor_ne(fc->g, i, d);
    smoe_status st = convert_rows(smoe_gguf_tensor_data(fc->g, i), cur, buf, fc->types[k], ne0, nel / ne0, fc->n_threads);
    return st ? smoe_err_prefix(st, "tensor '%s'", name) : SMOE_OK;
}

smoe_status smoe_model_quantize(const char *in_path, const char *out_path, smoe_ftype ftype, int n_threads,
                                smoe_progress_fn progress, void *user) {
    if (!in_path || !out_path) return smoe_err(SMOE_ERR_INVALID_ARG, "smoe_model_quantize: NULL path");
    const ftype_row *fr = ftype_row_of(ftype);
    if (!fr) return smoe_err(SMOE_ERR_INVALID_ARG, "smoe_model_quantize: unknown file type %d", (int)ftype);
    if (n_threads <= 0) n_threads = online_cpus();
    smoe_status st = check_out_dir(out_path);
    if (st) return st;

    smoe_gguf *g = NULL;
    smoe_gguf_writer *w = NULL;
    order_key *keys = NULL;
    int64_t *order = NULL;
    int *types = NULL;
    st = smoe_gguf_open(in_path, &g);
    if (st) return st; /* the reader's message names the file */

    const int64_t nt = smoe_gguf_n_tensors(g);
    const size_t ntz = (size_t)(nt > 0 ? nt : 1);
    keys = malloc(sizeof *keys * ntz);
    order = malloc(sizeof *order * ntz);
    types = malloc(sizeof *types * ntz);
    if (!keys || !order || !types) {
        st = smoe_err(SMOE_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (int64_t i = 0; i < nt; i++) {
        keys[i].name = smoe_gguf_tensor_name(g, i);
        keys[i].idx = i;
        if (sscanf(keys[i].name, "blk.%d.", &keys[i].layer) != 1) keys[i].layer = -1;
    }
    qsort(keys, (size_t)nt, sizeof *keys, cmp_order);
    for (int64_t k = 0; k < nt; k++) order[k] = keys[k].idx;

    /* Plan every tensor's type first (the counters need all names), and check up front
     * that each conversion is possible, so a bad input fails before any work. */
    mix_state ms = {.ftype = ftype, .default_type = fr->dtype, .tied = true};
    read_hparams(g, &ms);
    for (int64_t k = 0; k < nt; k++) {
        const category c = category_of(smoe_gguf_tensor_name(g, order[k]));
        if (c == CAT_OUTPUT) ms.tied = false;
        if (is_attn_v_like(c)) ms.n_attn_v++;
        if (c == CAT_FFN_DOWN) ms.n_ffn++;
    }
    if (ms.n_layer > 0) ms.n_ffn = ms.n_layer; /* llama.cpp counts layers, not tensors */
    for (int64_t k = 0; k < nt; k++) {
        const int64_t i = order[k];
        const char *name = smoe_gguf_tensor_name(g, i);
        const int cur = smoe_gguf_tensor_dtype(g, i);
        const int64_t ne0 = smoe_gguf_tensor_ne(g, i, 0);
        types[k] = choose_type(&ms, name, cur, n_dims(g, i), ne0);
        if (types[k] == cur) continue;
        if (!smoe_dtype_can_dequantize(cur)) {
            const char *tn = smoe_dtype_name(cur);
            st = smoe_err(SMOE_ERR_UNSUPPORTED, "tensor '%s' has type %s, which smoe cannot convert", name,
                          tn ? tn : "?");
            goto out;
        }
        if (ne0 <= 0 || ne0 % smoe_dtype_block_size(cur) != 0) {
            st = smoe_err(SMOE_ERR_FORMAT, "tensor '%s': row length %lld does not fit type %s", name,
                          (long long)ne0, smoe_dtype_name(cur));
            goto out;
        }
    }

    st = smoe_gguf_writer_init(&w);
    if (st) goto out;
    for (int64_t i = 0; i < smoe_gguf_n_kv(g); i++) {
        const char *key = smoe_gguf_key(g, i);
        if (strncmp(key, "split.", 6) == 0) continue; /* the output is one file */
        /* set again below, last, where llama-quantize puts them: same bytes as its files */
        if (!strcmp(key, "general.quantization_version") || !strcmp(key, "general.file_type")) continue;
        if ((st = smoe_gguf_writer_copy_kv(w, g, i))) goto out;
    }
    if ((st = smoe_gguf_writer_set_u32(w, "general.quantization_version", 2))) goto out;
    if ((st = smoe_gguf_writer_set_u32(w, "general.file_type", (uint32_t)ftype))) goto out;

    /* Tensors are converted while the file is written (fill callback), one at a time, so
     * the output never has to fit in memory: a 47B-parameter model converts in a few GB. */
    fill_ctx fc = {g, order, types, nt, n_threads, progress, user};
    for (int64_t k = 0; k < nt; k++) {
        const int64_t i = order[k];
        int64_t ne[SMOE_MAX_DIMS];
        for (int d = 0; d < SMOE_MAX_DIMS; d++) ne[d] = smoe_gguf_tensor_ne(g, i, d);
        st = smoe_gguf_writer_add_tensor_fill(w, smoe_gguf_tensor_name(g, i), types[k], smoe_gguf_tensor_ndim(g, i), ne,
                                              fill_tensor, &fc);
        if (st) goto out;
    }
    st = smoe_gguf_writer_write(w, out_path);
    if (!st && progress) progress(user, nt, nt, NULL);

out:
    free(keys);
    free(order);
    free(types);
    smoe_gguf_writer_free(w);
    smoe_gguf_free(g);
    return st;
}
