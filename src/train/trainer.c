/*
 * trainer.c - the training state behind smoe_trainer_* (smoe.h): initial weights, one
 * optimizer step (forward, backward, clipping, AdamW, the router-bias update), evaluation,
 * checkpoints and the export of the trained model as GGUF.
 *
 * Checkpoint = a GGUF file: the config under smoe.train.*, the step and RNG state, the
 * parameters under their model names, and the AdamW moments and router biases as
 * train.* tensors. Writing goes through the GGUF writer (temp file, fsync, rename), so
 * the previous checkpoint stays intact until the new one is complete.
 *
 * Not here: where batches come from (data.c), the loop, logging and the CLI
 * (tools/cmd_train.c).
 */
#include "train/optim.h"
#include "train/tmodel.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct smoe_trainer {
    smoe_train_config p;
    smoe_tconfig cfg;
    smoe_adamw opt;
    int64_t n;                 /* parameters */
    float *w, *g, *m, *v;      /* [n] each: weights, gradients, AdamW moments */
    smoe_tweights W, G;
    float *bias;               /* [L][E] selection bias (sigmoid-bias), else NULL */
    double *loads;             /* [L][E] assignments of the last step */
    smoe_tacts acts;
    smoe_pool *pool;
    int64_t step;
    uint64_t rng;
    bool g_dirty;              /* g may hold non-zeros (AdamW leaves it zeroed) */
};

static const struct {
    const char *name;
    smoe_troute_kind kind;
} ROUTERS[] = {
    {"topk", SMOE_TROUTE_TOPK},
    {"switch", SMOE_TROUTE_SWITCH},
    {"softmax-topk", SMOE_TROUTE_SOFTMAX_TOPK},
    {"softmax-topk-norm", SMOE_TROUTE_SOFTMAX_TOPK_NORM},
    {"noisy-topk", SMOE_TROUTE_NOISY_TOPK},
    {"expert-choice", SMOE_TROUTE_EXPERT_CHOICE},
    {"attention", SMOE_TROUTE_ATTENTION},
    {"sigmoid-bias", SMOE_TROUTE_SIGMOID_BIAS},
};

smoe_train_config smoe_train_default_config(void) {
    smoe_train_config c = {
        .n_embd = 64, .n_layer = 2, .n_head = 4, .n_head_kv = 2, .n_ff = 128, .n_expert = 4, .n_expert_used = 2,
        .seq_len = 64, .batch = 8, .router = "topk", .aux_style = "switch", .bias_rate = 1e-3f,
        .lr = 1e-3f, .min_lr = 1e-4f, .warmup = 100, .steps = 1000, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f,
        .weight_decay = 0.1f, .clip = 1.0f, .init_std = 0.02f, .rope_base = 10000.0f, .norm_eps = 1e-5f, .seed = 1,
    };
    return c;
}

/* smoe_train_config -> the internal config, with every check a user can trip. */
static smoe_status to_tconfig(const smoe_train_config *p, smoe_tconfig *c) {
    memset(c, 0, sizeof *c);
    if (p->n_head < 1 || p->n_embd % p->n_head)
        return smoe_err(SMOE_ERR_INVALID_ARG, "dim %d must be a multiple of heads %d", p->n_embd, p->n_head);
    c->n_vocab = p->n_vocab, c->n_embd = p->n_embd, c->n_layer = p->n_layer, c->n_head = p->n_head;
    c->n_head_kv = p->n_head_kv, c->head_dim = p->n_embd / p->n_head, c->n_ff = p->n_ff;
    c->rope_base = p->rope_base, c->norm_eps = p->norm_eps;
    smoe_troute_cfg *r = &c->router;
    size_t i = 0;
    while (i < sizeof ROUTERS / sizeof *ROUTERS && strcmp(ROUTERS[i].name, p->router)) i++;
    if (i == sizeof ROUTERS / sizeof *ROUTERS)
        return smoe_err(SMOE_ERR_INVALID_ARG,
                        "unknown router '%s' (topk, switch, softmax-topk, softmax-topk-norm, noisy-topk, expert-choice, "
                        "attention, sigmoid-bias)", p->router);
    r->kind = ROUTERS[i].kind;
    r->n_expert = p->n_expert, r->k = p->n_expert_used;
    r->capacity_factor = p->capacity_factor, r->aux_coef = p->aux_loss, r->z_coef = p->z_loss;
    r->bias_rate = p->bias_rate;
    if (!strcmp(p->aux_style, "switch")) r->aux_style = SMOE_AUX_SWITCH;
    else if (!strcmp(p->aux_style, "hf")) r->aux_style = SMOE_AUX_HF;
    else return smoe_err(SMOE_ERR_INVALID_ARG, "unknown aux-loss style '%s' (switch, hf)", p->aux_style);
    r->training = true;
    if (p->seq_len < 1 || p->seq_len > 4096 || p->batch < 1)
        return smoe_err(SMOE_ERR_INVALID_ARG, "sequence length %d must be in [1, 4096] and batch %d >= 1", p->seq_len,
                        p->batch);
    if (!(p->lr > 0) || p->min_lr < 0 || p->warmup < 0 || p->steps < 1 || !(p->beta1 >= 0 && p->beta1 < 1) ||
        !(p->beta2 >= 0 && p->beta2 < 1) || !(p->eps > 0) || p->weight_decay < 0 || p->clip < 0 || !(p->init_std > 0))
        return smoe_err(SMOE_ERR_INVALID_ARG,
                        "optimizer settings out of range (lr > 0, min-lr >= 0, steps >= 1, betas in [0, 1), eps > 0, "
                        "weight decay >= 0, clip >= 0, init std > 0)");
    if (p->aux_loss < 0 || p->z_loss < 0 || p->capacity_factor < 0)
        return smoe_err(SMOE_ERR_INVALID_ARG, "aux-loss, z-loss and capacity factor must be >= 0");
    return smoe_tconfig_check(c);
}

/* splitmix64: the seed stream of the initial weights (documented, so runs are portable). */
static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double normal(uint64_t *s) { /* Box-Muller on two 53-bit uniforms in (0, 1] */
    const double u1 = ((splitmix(s) >> 11) + 1) * 0x1.0p-53, u2 = (splitmix(s) >> 11) * 0x1.0p-53;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

/* Norm gains 1; matrices N(0, std), the projections back into the residual stream
 * (attn_output, ffn_down) N(0, std / sqrt(2L)) as GPT-2 does; noisy top-k's noise rows 0
 * (Shazeer 2017, App. A: the noise starts at softplus(0) = ln 2). */
static void init_weights(smoe_trainer *t) {
    smoe_tparam *tab = smoe_alloc_aligned(4 + 10 * SMOE_TLAYER_MAX, sizeof *tab);
    int count;
    uint64_t s = t->p.seed;
    smoe_tmodel_layout(&t->cfg, tab, 4 + 10 * SMOE_TLAYER_MAX, &count);
    for (int i = 0; i < count; i++) {
        const smoe_tparam *p = &tab[i];
        float *x = t->w + p->offset;
        double std = t->p.init_std;
        if (strstr(p->name, "attn_output") || strstr(p->name, "ffn_down")) std /= sqrt(2.0 * t->cfg.n_layer);
        int64_t n = p->n;
        if (strstr(p->name, "ffn_gate_inp") && t->cfg.router.kind == SMOE_TROUTE_NOISY_TOPK) {
            n = p->n / 2; /* clean rows first, noise rows after */
            memset(x + n, 0, sizeof(float) * (size_t)(p->n - n));
        }
        for (int64_t j = 0; j < n; j++) x[j] = p->is_norm ? 1.0f : (float)(std * normal(&s));
    }
    smoe_free_aligned(tab);
}

static smoe_status create(const smoe_train_config *p, int32_t n_threads, smoe_trainer **out) {
    *out = NULL;
    smoe_tconfig cfg;
    smoe_status st = to_tconfig(p, &cfg);
    if (st) return st;
    smoe_trainer *t = calloc(1, sizeof *t);
    if (!t) return smoe_err(SMOE_ERR_NOMEM, "out of memory");
    t->p = *p;
    t->cfg = cfg;
    t->g_dirty = true; /* not zeroed yet: the first step does it */
    t->opt = (smoe_adamw){.lr = p->lr, .beta1 = p->beta1, .beta2 = p->beta2, .eps = p->eps, .weight_decay = p->weight_decay};
    int count;
    t->n = smoe_tmodel_layout(&cfg, NULL, 0, &count);
    const size_t n = (size_t)t->n, LE = (size_t)cfg.n_layer * (size_t)cfg.router.n_expert;
    t->w = smoe_alloc_aligned(n, sizeof(float));
    t->g = smoe_alloc_aligned(n, sizeof(float));
    t->m = smoe_alloc_aligned(n, sizeof(float));
    t->v = smoe_alloc_aligned(n, sizeof(float));
    t->loads = smoe_alloc_aligned(LE, sizeof(double));
    if (cfg.router.kind == SMOE_TROUTE_SIGMOID_BIAS) t->bias = smoe_alloc_aligned(LE, sizeof(float));
    if (!t->w || !t->g || !t->m || !t->v || !t->loads || (cfg.router.kind == SMOE_TROUTE_SIGMOID_BIAS && !t->bias)) {
        smoe_trainer_free(t);
        return smoe_err(SMOE_ERR_NOMEM, "out of memory for %lld parameters and their optimizer state", (long long)t->n);
    }
    smoe_tmodel_views(&cfg, t->w, &t->W);
    smoe_tmodel_views(&cfg, t->g, &t->G);
    if (n_threads <= 0) n_threads = smoe_default_threads();
    if ((st = smoe_tacts_init(&t->acts, &cfg, p->batch, p->seq_len, n_threads)) ||
        (st = smoe_pool_init(n_threads, &t->pool))) {
        smoe_trainer_free(t);
        return st;
    }
    t->rng = p->seed ^ 0x5DEECE66Dull; /* the router-noise stream, apart from the init stream */
    *out = t;
    return SMOE_OK;
}

smoe_status smoe_trainer_init(const smoe_train_config *p, int32_t n_threads, smoe_trainer **out) {
    smoe_status st = create(p, n_threads, out);
    if (st) return st;
    init_weights(*out);
    return SMOE_OK;
}

void smoe_trainer_free(smoe_trainer *t) {
    if (!t) return;
    smoe_tacts_free(&t->acts);
    smoe_pool_free(t->pool);
    smoe_free_aligned(t->w);
    smoe_free_aligned(t->g);
    smoe_free_aligned(t->m);
    smoe_free_aligned(t->v);
    smoe_free_aligned(t->bias);
    smoe_free_aligned(t->loads);
    free(t);
}

const smoe_train_config *smoe_trainer_config(const smoe_trainer *t) { return &t->p; }
int64_t smoe_trainer_n_params(const smoe_trainer *t) { return t->n; }
int64_t smoe_trainer_step_count(const smoe_trainer *t) { return t->step; }

/* Assignments per expert of every layer in the last forward, counted before capacity
 * dropping (what the sigmoid-bias update balances). */
static void count_loads(smoe_trainer *t) {
    const int32_t E = t->cfg.router.n_expert;
    memset(t->loads, 0, sizeof(double) * (size_t)(t->cfg.n_layer * E));
    for (int l = 0; l < t->cfg.n_layer; l++)
        smoe_troute_add_loads(&t->cfg.router, t->acts.rstate + (size_t)l * t->acts.state_floats, t->loads + l * E);
}

/* g = 0 on all threads (the block is tens of MB: one thread would leave the others idle).
 * Only when a step left it dirty: AdamW zeroes it as it reads it. */
static void zero_kernel(void *arg, int ith, int nth) {
    const smoe_trainer *t = arg;
    int64_t i0, i1;
    smoe_split(t->n, ith, nth, &i0, &i1);
    memset(t->g + i0, 0, sizeof(float) * (size_t)(i1 - i0));
}

smoe_status smoe_trainer_step(smoe_trainer *t, const int32_t *tokens, const int32_t *targets, smoe_train_stats *out) {
    const smoe_troute_cfg *r = &t->cfg.router;
    double ce, aux, z;
    if (t->g_dirty) smoe_pool_run(t->pool, zero_kernel, t);
    t->g_dirty = false;
    smoe_status st = smoe_tforward(&t->cfg, &t->W, &t->acts, t->pool, tokens, targets, t->bias, &t->rng, &ce, &aux, &z);
    if (st) return st;
    const double loss = ce + r->aux_coef * aux + r->z_coef * z;
    if (!isfinite(loss)) return smoe_err(SMOE_ERR_RANGE, "step %lld: the loss is not finite (training diverged; lower --lr)",
                                         (long long)t->step + 1);
    t->g_dirty = true;
    smoe_tbackward(&t->cfg, &t->W, &t->G, &t->acts, t->pool, tokens, targets);
    const double norm = smoe_grad_norm(t->pool, t->g, t->n);
    if (!isfinite(norm)) return smoe_err(SMOE_ERR_RANGE, "step %lld: the gradient is not finite", (long long)t->step + 1);
    const float lr = smoe_lr_at(t->p.lr, t->p.min_lr, t->step + 1, t->p.warmup, t->p.steps);
    smoe_adamw_step(t->pool, &t->opt, lr, t->step + 1, smoe_clip_scale(norm, t->p.clip), t->w, t->g, true, t->m, t->v,
                    t->n);
    t->g_dirty = false;
    count_loads(t);
    if (t->bias)
        for (int l = 0; l < t->cfg.n_layer; l++)
            smoe_troute_update_bias(r, t->loads + l * r->n_expert, t->bias + l * r->n_expert);
    t->step++;
    if (out) {
        *out = (smoe_train_stats){.loss = loss, .ce = ce, .aux = aux, .z = z, .lr = lr, .grad_norm = norm};
        for (int l = 0; l < t->cfg.n_layer; l++) {
            out->load_cv += t->acts.rstats[l].load_cv / t->cfg.n_layer;
            out->dropped += t->acts.rstats[l].dropped / t->cfg.n_layer;
        }
    }
    return SMOE_OK;
}

smoe_status smoe_trainer_eval(smoe_trainer *t, const int32_t *tokens, const int32_t *targets, double *ce) {
    smoe_tconfig cfg = t->cfg;
    cfg.router.training = false;
    uint64_t rng = 0;
    return smoe_tforward(&cfg, &t->W, &t->acts, t->pool, tokens, targets, t->bias, &rng, ce, NULL, NULL);
}

/* ------------------------------------------------------------------ checkpoints */

typedef struct blob {
    const void *data[4 + 10 * SMOE_TLAYER_MAX + 3];
} blob;

static smoe_status fill_from(void *user, int64_t index, void *buf, size_t nbytes) {
    memcpy(buf, ((const blob *)user)->data[index], nbytes);
    return SMOE_OK;
}

/* The config as smoe.train.* keys: one table drives writing and reading. */
#define I32_KEYS(X)                                                                                 \
    X(n_vocab) X(n_embd) X(n_layer) X(n_head) X(n_head_kv) X(n_ff) X(n_expert) X(n_expert_used)    \
    X(seq_len) X(batch)
#define F32_KEYS(X)                                                                                 \
    X(aux_loss) X(z_loss) X(capacity_factor) X(bias_rate) X(lr) X(min_lr) X(beta1) X(beta2) X(eps) \
    X(weight_decay) X(clip) X(init_std) X(rope_base) X(norm_eps)

static smoe_status add_params(smoe_gguf_writer *gw, const smoe_trainer *t, blob *b, int *nt, const float *src) {
    smoe_tparam *tab = smoe_alloc_aligned(4 + 10 * SMOE_TLAYER_MAX, sizeof *tab);
    if (!tab) return smoe_err(SMOE_ERR_NOMEM, "out of memory");
    int count;
    smoe_tmodel_layout(&t->cfg, tab, 4 + 10 * SMOE_TLAYER_MAX, &count);
    smoe_status st = SMOE_OK;
    for (int i = 0; i < count && !st; i++) {
        b->data[(*nt)++] = src + tab[i].offset;
        st = smoe_gguf_writer_add_tensor_fill(gw, tab[i].name, SMOE_DTYPE_F32, tab[i].ndim, tab[i].ne, fill_from, b);
    }
    smoe_free_aligned(tab);
    return st;
}

/* 64-bit generator states as 16 hex digits: GGUF readers' integer getters stop at
 * INT64_MAX. */
static smoe_status set_u64_hex(smoe_gguf_writer *gw, const char *key, uint64_t v) {
    char buf[24];
    snprintf(buf, sizeof buf, "%016llx", (unsigned long long)v);
    return smoe_gguf_writer_set_str(gw, key, buf);
}

static smoe_status get_u64_hex(const smoe_gguf *g, const char *key, uint64_t *v) {
    const char *s;
    uint64_t len;
    smoe_status st = smoe_gguf_get_str(g, key, &s, &len);
    if (st) return st;
    if (len != 16) return smoe_err(SMOE_ERR_FORMAT, "%s: not 16 hex digits", key);
    uint64_t x = 0;
    for (int i = 0; i < 16; i++) {
        const char ch = s[i];
        const int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
        if (d < 0) return smoe_err(SMOE_ERR_FORMAT, "%s: not 16 hex digits", key);
        x = x << 4 | (uint64_t)d;
    }
    *v = x;
    return SMOE_OK;
}

smoe_status smoe_trainer_save(const smoe_trainer *t, const char *path) {
    smoe_gguf_writer *gw = NULL;
    smoe_status st = smoe_gguf_writer_init(&gw);
    if (st) return st;
    blob *b = calloc(1, sizeof *b);
    if (!b) {
        smoe_gguf_writer_free(gw);
        return smoe_err(SMOE_ERR_NOMEM, "out of memory");
    }
    int nt = 0;
    const int64_t n = t->n, LE = (int64_t)t->cfg.n_layer * t->cfg.router.n_expert;
    st = smoe_gguf_writer_set_str(gw, "general.architecture", "llama");
    if (!st) st = smoe_gguf_writer_set_str(gw, "general.type", "smoe-train-checkpoint");
    if (!st) st = smoe_gguf_writer_set_u32(gw, "smoe.train.version", 1);
#define W_I32(f) if (!st) st = smoe_gguf_writer_set_i32(gw, "smoe.train." #f, t->p.f);
#define W_F32(f) if (!st) st = smoe_gguf_writer_set_f32(gw, "smoe.train." #f, t->p.f);
    I32_KEYS(W_I32)
    F32_KEYS(W_F32)
    if (!st) st = smoe_gguf_writer_set_str(gw, "smoe.train.router", t->p.router);
    if (!st) st = smoe_gguf_writer_set_str(gw, "smoe.train.aux_style", t->p.aux_style);
    if (!st) st = smoe_gguf_writer_set_u64(gw, "smoe.train.warmup", (uint64_t)t->p.warmup);
    if (!st) st = smoe_gguf_writer_set_u64(gw, "smoe.train.steps", (uint64_t)t->p.steps);
    if (!st) st = set_u64_hex(gw, "smoe.train.seed", t->p.seed);
    if (!st) st = smoe_gguf_writer_set_u64(gw, "smoe.train.step", (uint64_t)t->step);
    if (!st) st = set_u64_hex(gw, "smoe.train.rng", t->rng);
    if (!st) st = add_params(gw, t, b, &nt, t->w);
    if (!st) {
        b->data[nt++] = t->m;
        st = smoe_gguf_writer_add_tensor_fill(gw, "train.adamw_m", SMOE_DTYPE_F32, 1, &n, fill_from, b);
    }
    if (!st) {
        b->data[nt++] = t->v;
        st = smoe_gguf_writer_add_tensor_fill(gw, "train.adamw_v", SMOE_DTYPE_F32, 1, &n, fill_from, b);
    }
    if (!st && t->bias) {
        b->data[nt++] = t->bias;
        st = smoe_gguf_writer_add_tensor_fill(gw, "train.router_bias", SMOE_DTYPE_F32, 1, &LE, fill_from, b);
    }
    if (!st) st = smoe_gguf_writer_write(gw, path);
    smoe_gguf_writer_free(gw);
    free(b);
    return st ? smoe_err_prefix(st, "writing checkpoint %s: ", path) : SMOE_OK;
}

/* Copy the F32 tensor `name` of exactly n floats into dst. */
static smoe_status read_vec(const smoe_gguf *g, const char *name, float *dst, int64_t n) {
    const int64_t i = smoe_gguf_find_tensor(g, name);
    if (i < 0) return smoe_err(SMOE_ERR_FORMAT, "tensor '%s' missing", name);
    if (smoe_gguf_tensor_dtype(g, i) != SMOE_DTYPE_F32 || smoe_gguf_tensor_nbytes(g, i) != sizeof(float) * (size_t)n)
        return smoe_err(SMOE_ERR_FORMAT, "tensor '%s' is not %lld F32 values", name, (long long)n);
    memcpy(dst, smoe_gguf_tensor_data(g, i), sizeof(float) * (size_t)n);
    return SMOE_OK;
}

smoe_status smoe_trainer_load(const char *path, int32_t n_threads, smoe_trainer **out) {
    *out = NULL;
    smoe_gguf *g = NULL;
    smoe_status st = smoe_gguf_open(path, &g);
    if (st) return st;
    smoe_train_config p = smoe_train_default_config();
    uint32_t version = 0;
    int64_t v64;
    const char *s;
    uint64_t len;
    st = smoe_gguf_get_u32(g, "smoe.train.version", &version);
    if (!st && version != 1) st = smoe_err(SMOE_ERR_UNSUPPORTED, "checkpoint version %u (this smoe reads 1)", version);
#define R_I32(f)                                                                                   \
    if (!st && !(st = smoe_gguf_get_i64(g, "smoe.train." #f, &v64)))                               \
        if (v64 < INT32_MIN || v64 > INT32_MAX) st = smoe_err(SMOE_ERR_FORMAT, "smoe.train." #f " out of range"); \
    if (!st) p.f = (int32_t)v64;
#define R_F32(f) if (!st) st = smoe_gguf_get_f32(g, "smoe.train." #f, &p.f);
    I32_KEYS(R_I32)
    F32_KEYS(R_F32)
#define R_STR(f)                                                                                   \
    if (!st && !(st = smoe_gguf_get_str(g, "smoe.train." #f, &s, &len))) {                         \
        if (len >= sizeof p.f) st = smoe_err(SMOE_ERR_FORMAT, "smoe.train." #f " too long");       \
        else memcpy(p.f, s, len), p.f[len] = 0;                                                    \
    }
    R_STR(router)
    R_STR(aux_style)
    if (!st) st = smoe_gguf_get_i64(g, "smoe.train.warmup", &p.warmup);
    if (!st) st = smoe_gguf_get_i64(g, "smoe.train.steps", &p.steps);
    if (!st) st = get_u64_hex(g, "smoe.train.seed", &p.seed);
    smoe_trainer *t = NULL;
    if (!st) st = create(&p, n_threads, &t);
    if (!st && !(st = smoe_gguf_get_i64(g, "smoe.train.step", &v64))) t->step = v64;
    if (!st) st = get_u64_hex(g, "smoe.train.rng", &t->rng);
    if (!st) st = smoe_tmodel_read_gguf(g, &t->cfg, t->w);
    if (!st) st = read_vec(g, "train.adamw_m", t->m, t->n);
    if (!st) st = read_vec(g, "train.adamw_v", t->v, t->n);
    if (!st && t->bias) st = read_vec(g, "train.router_bias", t->bias, (int64_t)t->cfg.n_layer * t->cfg.router.n_expert);
    smoe_gguf_free(g);
    if (st) {
        smoe_trainer_free(t);
        return smoe_err_prefix(st, "loading checkpoint %s: ", path);
    }
    *out = t;
    return SMOE_OK;
}

/* ------------------------------------------------------------------ export */

/* What inference runs for each training router (docs/training.md, "Export"): the name
 * written as "smoe.router" (NULL: Mixtral's, no key, a standard llama.cpp file) and the
 * experts per token. Noisy top-k without noise is top-k on its clean rows; Switch without
 * capacity is softmax-top-1 with the raw probability as gate; expert choice falls back to
 * each token's top-K of the same softmax (troute's causal rule). */
static const char *inference_router(const smoe_tconfig *c, int32_t *k) {
    *k = c->router.k;
    switch (c->router.kind) {
    case SMOE_TROUTE_TOPK:
    case SMOE_TROUTE_NOISY_TOPK: return NULL;
    case SMOE_TROUTE_SWITCH: *k = 1; return "softmax-topk";
    case SMOE_TROUTE_SOFTMAX_TOPK:
    case SMOE_TROUTE_EXPERT_CHOICE: return "softmax-topk";
    case SMOE_TROUTE_SOFTMAX_TOPK_NORM: return "softmax-topk-norm";
    case SMOE_TROUTE_SIGMOID_BIAS: return "sigmoid-bias";
    case SMOE_TROUTE_ATTENTION: return "attention";
    case SMOE_TROUTE_KIND_COUNT: break;
    }
    return NULL;
}

smoe_status smoe_trainer_export(const smoe_trainer *t, const char *tokenizer_path, const char *path) {
    const smoe_tconfig *c = &t->cfg;
    const int32_t E = c->router.n_expert;
    int32_t k_inf;
    const char *router = inference_router(c, &k_inf);
    smoe_gguf *tok = NULL;
    smoe_status st = smoe_gguf_open(tokenizer_path, &tok);
    if (st) return st;
    smoe_gguf_writer *gw = NULL;
    blob *b = calloc(1, sizeof *b);
    smoe_tparam *tab = smoe_alloc_aligned(4 + 10 * SMOE_TLAYER_MAX, sizeof *tab);
    if (!b || !tab) st = smoe_err(SMOE_ERR_NOMEM, "out of memory");
    if (!st) st = smoe_gguf_writer_init(&gw);
    int nt = 0, count = 0;
    if (!st) st = smoe_gguf_writer_set_str(gw, "general.architecture", "llama");
    if (!st) st = smoe_gguf_writer_set_str(gw, "general.name", "smoe-trained");
    if (!st) st = smoe_gguf_writer_set_u32(gw, "llama.context_length", (uint32_t)t->p.seq_len);
    if (!st) st = smoe_gguf_writer_set_u32(gw, "llama.embedding_length", (uint32_t)c->n_embd);
    if (!st) st = smoe_gguf_writer_set_u32(gw, "llama.block_count", (uint32_t)c->n_layer);
    if (!st) st = smoe_gguf_writer_set_u32(gw, "llama.feed_forward_length", (uint32_t)c->n_ff);
    if (!st) st = smoe_gguf_writer_set_u32(gw, "llama.attention.head_count", (uint32_t)c->n_head);
    if (!st) st = smoe_gguf_writer_set_u32(gw, "llama.attention.head_count_kv", (uint32_t)c->n_head_kv);
    if (!st) st = smoe_gguf_writer_set_u32(gw, "llama.rope.dimension_count", (uint32_t)c->head_dim);
    if (!st) st = smoe_gguf_writer_set_f32(gw, "llama.rope.freq_base", c->rope_base);
    if (!st) st = smoe_gguf_writer_set_f32(gw, "llama.attention.layer_norm_rms_epsilon", c->norm_eps);
    if (!st) st = smoe_gguf_writer_set_u32(gw, "llama.expert_count", (uint32_t)E);
    if (!st) st = smoe_gguf_writer_set_u32(gw, "llama.expert_used_count", (uint32_t)k_inf);
    if (!st) st = smoe_gguf_writer_set_u32(gw, "llama.vocab_size", (uint32_t)c->n_vocab);
    if (!st) st = smoe_gguf_writer_set_u32(gw, "general.file_type", 0);
    if (!st && router) st = smoe_gguf_writer_set_str(gw, "smoe.router", router);
    if (!st) st = smoe_gguf_writer_set_str(gw, "smoe.train.router", t->p.router);
    for (int64_t i = 0; !st && i < smoe_gguf_n_kv(tok); i++)
        if (!strncmp(smoe_gguf_key(tok, i), "tokenizer.", 10)) st = smoe_gguf_writer_copy_kv(gw, tok, i);
    if (!st) {
        int64_t k = smoe_gguf_find_key(tok, "tokenizer.ggml.tokens");
        if (k < 0 || smoe_gguf_arr_n(tok, k) != (uint64_t)c->n_vocab)
            st = smoe_err(SMOE_ERR_INVALID_ARG, "tokenizer %s does not have the model's %d tokens", tokenizer_path,
                          c->n_vocab);
    }
    if (!st) smoe_tmodel_layout(c, tab, 4 + 10 * SMOE_TLAYER_MAX, &count);
    char name[64];
    for (int i = 0; i < count && !st; i++) {
        smoe_tparam p = tab[i];
        if (strstr(p.name, "ffn_gate_inp") && c->router.kind == SMOE_TROUTE_NOISY_TOPK) p.ne[1] = E; /* clean rows */
        b->data[nt++] = t->w + p.offset;
        st = smoe_gguf_writer_add_tensor_fill(gw, p.name, SMOE_DTYPE_F32, p.ndim, p.ne, fill_from, b);
        if (!st && t->bias && strstr(p.name, "ffn_down_exps")) { /* after each layer's experts */
            const int l = atoi(p.name + 4);
            const int64_t ne = E;
            snprintf(name, sizeof name, "blk.%d.exp_probs_b.bias", l);
            b->data[nt++] = t->bias + (int64_t)l * E;
            st = smoe_gguf_writer_add_tensor_fill(gw, name, SMOE_DTYPE_F32, 1, &ne, fill_from, b);
        }
    }
    if (!st) st = smoe_gguf_writer_write(gw, path);
    smoe_gguf_writer_free(gw);
    smoe_gguf_free(tok);
    smoe_free_aligned(tab);
    free(b);
    return st ? smoe_err_prefix(st, "exporting %s: ", path) : SMOE_OK;
}
