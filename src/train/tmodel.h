/*
 * tmodel.h - the model as training sees it: every parameter in one f32 block (so the
 * optimizer, checkpoints and gradient clipping treat it as one vector), named views into
 * that block in GGUF order, the saved activations of one batch, and the forward
 * (tforward.c) and backward (backward.c) passes over a batch of B sequences of T tokens.
 *
 * Shape letters as in docs/architecture.md; N = B*T tokens of the batch; R = rows of the
 * router weight (troute.h); S = assignment slots per token. Matrices are row-major
 * (out, in), as in GGUF: W[o][i] with y = W x.
 *
 * Not here: data loading (data.h), the optimizer (optim.h), the training loop and
 * checkpoints (trainer.c).
 */
#ifndef SMOE_TMODEL_H
#define SMOE_TMODEL_H

#include "cpu/threadpool.h"
#include "smoe_internal.h"
#include "train/troute.h"

typedef struct smoe_tconfig {
    int32_t n_vocab;       /* V */
    int32_t n_embd;        /* D */
    int32_t n_layer;       /* L */
    int32_t n_head;        /* H */
    int32_t n_head_kv;     /* Hkv */
    int32_t head_dim;      /* Dh */
    int32_t n_ff;          /* F (per expert) */
    float rope_base;
    float norm_eps;
    smoe_troute_cfg router; /* E = router.n_expert, K = router.k */
} smoe_tconfig;

/* Views of one layer's parameters (or of their gradients) inside a block. */
typedef struct smoe_tlayer {
    float *attn_norm;      /* [D] */
    float *wq;             /* [H*Dh][D] */
    float *wk;             /* [Hkv*Dh][D] */
    float *wv;             /* [Hkv*Dh][D] */
    float *wo;             /* [D][H*Dh] */
    float *ffn_norm;       /* [D] */
    float *router;         /* [R][D] */
    float *exp_gate;       /* [E][F][D] w1 */
    float *exp_up;         /* [E][F][D] w3 */
    float *exp_down;       /* [E][D][F] w2 */
} smoe_tlayer;

#define SMOE_TLAYER_MAX 256

typedef struct smoe_tweights {
    float *base;           /* the block: n_params floats */
    float *tok_embd;       /* [V][D] */
    smoe_tlayer layers[SMOE_TLAYER_MAX];
    float *output_norm;    /* [D] */
    float *output;         /* [V][D] */
} smoe_tweights;

/* One tensor of the block, for GGUF import/export: GGUF name, ne (innermost first, as
 * GGUF writes it), offset in floats. */
typedef struct smoe_tparam {
    char name[64];
    int ndim;
    int64_t ne[3];
    int64_t n;             /* floats */
    size_t offset;         /* floats from the block start */
    bool is_norm;          /* a norm gain (initialised to 1) */
} smoe_tparam;

/* The saved activations of one batch; sized for B x T once (smoe_tacts_init). */
typedef struct smoe_tacts {
    int32_t B, T, S;
    int64_t N;             /* B*T */
    float *h;              /* [L+1][N][D] residual stream entering layer l (h[L]: final) */
    float *xn1;            /* [L][N][D] RMSNorm(h) * attn_norm */
    float *rs1;            /* [L][N] 1/rms of that norm */
    float *q;              /* [L][N][H*Dh] after RoPE */
    float *k;              /* [L][N][Hkv*Dh] after RoPE */
    float *v;              /* [L][N][Hkv*Dh] */
    float *att;            /* [L][B][H][T][T] attention probabilities (lower triangle) */
    float *ao;             /* [L][N][H*Dh] attention output before Wo */
    float *hm;             /* [L][N][D] h + attention */
    float *xn2;            /* [L][N][D] RMSNorm(hm) * ffn_norm */
    float *rs2;            /* [L][N] */
    float *rz;             /* [L][N][R] router pre-logits W_r xn2 */
    float *rstate;         /* [L][state floats] troute forward state */
    int32_t *ids;          /* [L][N][S] chosen expert per slot (-1: none) */
    float *gw;             /* [L][N][S] gate weight per slot */
    int32_t *ex_off;       /* [L][E+1] start of each expert's assignments in ex_slot */
    int32_t *ex_slot;      /* [L][N*S] assignments grouped by expert: token*S + slot */
    int32_t *ex_pos;       /* [L][N*S] the inverse: grouped index of slot token*S + s, -1 if none */
    float *eg;             /* [L][N*S][F] gate pre-activation of each assignment (grouped order) */
    float *eu;             /* [L][N*S][F] up pre-activation */
    float *es;             /* [L][N*S][F] sigmoid of the gate pre-activation */
    float *eo;             /* [L][N*S][D] expert output (before the gate weight) */
    float *xf;             /* [N][D] RMSNorm(h[L]) * output_norm */
    float *rsf;            /* [N] */
    float *logits;         /* [N][V]; after the loss (targets given): dCE/dlogits */
    smoe_troute_stats rstats[SMOE_TLAYER_MAX];
    size_t state_floats;   /* per layer */
    /* scratch of the backward pass */
    float *dh;             /* [N][D] gradient of the residual stream */
    float *dx;             /* [N][D] gradient of a normed input */
    float *dbuf;           /* [N][max(H*Dh, D)] */
    float *dq, *dk, *dv;   /* [N][H*Dh], [N][Hkv*Dh] x2 */
    float *dgw;            /* [N][S] */
    float *drz;            /* [N][R] */
    float *xg;             /* [N*S][D] gathered expert inputs (forward and backward) */
    float *ga;             /* [N*S][F] silu(g) * u, then its gradient */
    float *dg;             /* [N*S][F] */
    float *du;             /* [N*S][F] */
    float *dyo;            /* [N*S][D] */
    float *rope;           /* [T][Dh/2][2] cos, sin */
    float *hf_F;           /* [E] pooled F of the HF aux loss */
    void *ws;              /* GEMM workspace (train/tgemm.h) for up to ws_threads threads */
    size_t ws_bytes;
    int ws_threads;
    void *ws1;             /* [ws_threads][ws1_bytes] single-thread GEMM workspaces */
    size_t ws1_bytes;
    float *attn_scratch;   /* [ws_threads][T*T] */
} smoe_tacts;

/* The parameter table in GGUF order; *count entries (at most cap). Returns the total
 * float count. */
int64_t smoe_tmodel_layout(const smoe_tconfig *cfg, smoe_tparam *table, int cap, int *count);
/* Views of block base laid out as smoe_tmodel_layout says. */
void smoe_tmodel_views(const smoe_tconfig *cfg, float *base, smoe_tweights *w);
/* Check a configuration (sizes, head split, router). */
smoe_status smoe_tconfig_check(const smoe_tconfig *cfg);

/* Hyper-parameters from GGUF metadata (llama arch keys; router = TOPK, coefficients 0). */
smoe_status smoe_tconfig_from_gguf(const smoe_gguf *g, smoe_tconfig *c);
/* Copy every parameter of the layout from F32 tensors of g (names and shapes checked). */
smoe_status smoe_tmodel_read_gguf(const smoe_gguf *g, const smoe_tconfig *c, float *base);

/* Buffers for a B x T batch, run on pools of up to n_threads threads. */
smoe_status smoe_tacts_init(smoe_tacts *a, const smoe_tconfig *cfg, int32_t B, int32_t T, int n_threads);
void smoe_tacts_free(smoe_tacts *a);

/* Forward over tokens [B][T] with targets [B][T]: fills acts and returns the mean
 * cross-entropy in *ce (a->logits then hold dCE/dlogits for the backward pass);
 * aux_total = sum over layers of the load-balancing loss (value without coefficient),
 * z_total likewise. targets may be NULL (a->logits keep the logits). bias: [L][E]
 * (SIGMOID_BIAS) or NULL; rng: noise state. The pool may have at most the threads the
 * activations were made for (smoe_tacts_init). */
smoe_status smoe_tforward(const smoe_tconfig *cfg, const smoe_tweights *w, smoe_tacts *a, smoe_pool *pool,
                          const int32_t *tokens, const int32_t *targets, const float *bias, uint64_t *rng, double *ce,
                          double *aux_total, double *z_total);

/* Backward of mean CE + aux_coef * aux + z_coef * z (the coefficients in cfg->router):
 * g (same layout as w) += the gradients. Needs the forward just run with targets. */
void smoe_tbackward(const smoe_tconfig *cfg, const smoe_tweights *w, smoe_tweights *g, smoe_tacts *a, smoe_pool *pool,
                    const int32_t *tokens, const int32_t *targets);

#endif /* SMOE_TMODEL_H */
