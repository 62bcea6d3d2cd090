/*
 * model.h - private model structures: the hyper-parameters read from GGUF metadata, the
 * weights as typed views into the mapped file, and the run state of a context.
 *
 * Shape letters (docs/architecture.md): T tokens in a step, D embedding, H query heads,
 * Hkv key/value heads, Dh head size, F expert (or dense FFN) hidden size, E experts,
 * K experts used per token, V vocabulary, L layers, C context length. Matrices are
 * row-major (out, in): a weight W with ne = {in, out} maps x[in] to y[out] = W x.
 */
#ifndef SMOE_MODEL_H
#define SMOE_MODEL_H

#include "smoe_internal.h"
#include "cpu/attn.h"
#include "cpu/kernels.h"
#include "cpu/threadpool.h"

/* A 2-D view of weights: `rows` rows of `cols` values of type dtype, rows `row_bytes` apart. */
typedef struct smoe_tensor {
    int dtype;              /* smoe_dtype */
    int64_t cols;           /* values per row (the "in" size) */
    int64_t rows;           /* rows (the "out" size) */
    size_t row_bytes;
    const uint8_t *data;    /* mapped file memory */
    const smoe_kernel *kern;/* fast dot product for this dtype (NULL: reference path only) */
} smoe_tensor;

typedef struct smoe_layer {
    float *attn_norm;             /* [D] f32 copy */
    smoe_tensor wq;               /* (H*Dh, D) */
    smoe_tensor wk;               /* (Hkv*Dh, D) */
    smoe_tensor wv;               /* (Hkv*Dh, D) */
    smoe_tensor wo;               /* (D, H*Dh) */
    float *ffn_norm;              /* [D] f32 copy */
    /* MoE (n_expert > 0) */
    smoe_tensor router;           /* (E, D) ffn_gate_inp; (3E, D) for the attention router (q, k, v rows) */
    float *router_bias;           /* [E] selection bias of sigmoid-bias (exp_probs_b), else NULL */
    smoe_tensor *exp_gate;        /* [E] of (F, D)  w1 */
    smoe_tensor *exp_up;          /* [E] of (F, D)  w3 */
    smoe_tensor *exp_down;        /* [E] of (D, F)  w2 */
    /* dense (n_expert == 0) */
    smoe_tensor ffn_gate;         /* (F, D) */
    smoe_tensor ffn_up;           /* (F, D) */
    smoe_tensor ffn_down;         /* (D, F) */
} smoe_layer;

struct smoe_model {
    smoe_model_info info;
    smoe_gguf *gguf;
    bool vocab_only;
    smoe_tensor tok_embd;         /* (V, D) */
    float *output_norm;           /* [D] f32 copy */
    smoe_tensor output;           /* (V, D); token_embd when tied */
    smoe_layer *layers;           /* [L] */
    smoe_tensor *expert_views;    /* storage for the per-expert views of all layers */
    int64_t max_cols;             /* longest row of any matrix (dequantization scratch) */
};

/* Run state of one sequence. Every buffer is allocated once in smoe_ctx_init. */
struct smoe_ctx {
    const smoe_model *model;
    int32_t n_ctx, n_batch, n_threads, n_past;
    bool reference;               /* reference kernels only (dequantize + f32 math) */
    smoe_pool *pool;
    float *k_cache;               /* [L][C][Hkv*Dh] */
    float *v_cache;               /* [L][C][Hkv*Dh] */
    float *h;                     /* [T][D] residual stream */
    float *xn;                    /* [T][D] normalised input of a sublayer */
    float *q;                     /* [T][H*Dh] */
    float *att;                   /* [T][H*Dh] attention output before Wo */
    float *tmp;                   /* [T][D] sublayer output */
    float *rlogits;               /* [T][E] router logits ([T][3E] q, k, v of the attention router first) */
    int32_t *rids;                /* [T][K] chosen experts, best first */
    float *rw;                    /* [T][K] their gate weights */
    int32_t *ex_tok;              /* [T*K] token index of each (expert, slot) assignment, grouped */
    float *ex_w;                  /* [T*K] gate weight of that assignment */
    int32_t *ex_off;              /* [E+1] start of each expert's group in ex_tok */
    float *xg;                    /* [T*K][D] routed inputs, grouped by expert */
    float *hg;                    /* [T][F] gate activations */
    float *hu;                    /* [T][F] up activations */
    float *yg;                    /* [T*K][D] expert outputs, same order */
    float *scores;                /* [nthreads][H/Hkv][C] attention scores */
    smoe_attn_group_fn attn_fn;   /* grouped-query attention kernel for this CPU */
    float *dq;                    /* [nthreads][max_cols] dequantization scratch */
    float *out_rows;              /* [T][D] final normed rows for the logits */
    float *rscratch;              /* [2E] router scratch */
    float *gemm_a;                /* [panels(n_batch) * 16][max_cols] packed f32 input of the GEMM path */
    float *gemm_ws;               /* [nthreads][gemm_ws_floats] GEMM scratch */
    size_t gemm_ws_floats;
    uint8_t *xq[3];               /* [T][row bytes] activations in a vec_dot_type, one per weight of a fused matmul */
    smoe_route_fn route_fn;
    void *route_user;
    /* several sequences in one pass (smoe_ctx_decode_multi): this context's buffers and
     * pool run the batch, each token attends over its own sequence's cache */
    float *k_new, *v_new;         /* [T][Hkv*Dh] keys and values of the batch before they go to their caches */
    const float **tok_kc;         /* [T] this layer's key cache of token t's sequence (set per layer) */
    const float **tok_vc;         /* [T] its value cache */
    int32_t *tok_nkv;             /* [T] positions token t attends to (its position + 1) */
    float *rope_cs;               /* [T][rope_dim] (cos, sin) pairs of token t's position, shared by every layer */
};

/* forward.c: run T tokens (T <= n_batch) at positions n_past..; logits_out gets
 * n_out rows (all T, or the last one only). */
smoe_status smoe_forward(smoe_ctx *c, const int32_t *ids, int32_t T, float *logits_out, bool all_logits);

/* forward.c: one pass over the tokens of n_seq sequences (seqs[i] gets n_tok[i] of ids,
 * in order, at its own positions; sum n_tok <= c->n_batch), run on c's buffers and pool
 * (c need not be one of seqs); logits_out [n_seq][V]: each sequence's last token. */
smoe_status smoe_forward_multi(smoe_ctx *c, smoe_ctx *const *seqs, int32_t n_seq, const int32_t *ids,
                               const int32_t *n_tok, float *logits_out);

#endif /* SMOE_MODEL_H */
