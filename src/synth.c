/*
 * synth.c - synthetic (random-weight) models in llama.cpp's Mixtral layout, for
 * benchmarks and tests: `smoe synth` and tests/test_synth.c use it.
 *
 * What it does: writes a GGUF with general.architecture = llama, the tensors a converted
 * Mixtral has (token_embd, per layer attn_{norm,q,k,v,output}, ffn_norm, the F32 router
 * ffn_gate_inp and the 3-D ffn_{gate,up,down}_exps, then output_norm and output), the
 * tokenizer.ggml.* keys of a real vocabulary file, and weights of any type smoe computes.
 * Quantized tensors are written as random blocks directly (random code bits, then each
 * block's fp16 scale set so that the dequantized weights have a standard deviation of
 * 1/sqrt(fan_in)): the activations of the model stay O(1), nothing overflows, and no
 * f32 copy of a tensor ever exists. Tensors are produced while the file is written
 * (smoe_gguf_writer_add_tensor_fill), so a 15 GB Mixtral never sits in memory.
 *
 * What it does not do: no quantization of real weights (that is `smoe quantize`), no
 * trained behaviour (the text such a model generates is noise), no IQ types. The mixes
 * (Q3_K_M, Q4_K_M, Q5_K_M) follow llama.cpp's llama_tensor_get_type for the llama
 * architecture as of mid-2026, restated in smoe_synth_tensor_type below; single types
 * are "pure" (every matrix that type, like llama-quantize --pure), which is what a
 * per-type kernel benchmark wants.
 *
 * Determinism: every tensor draws from its own xoshiro256** stream seeded from (seed,
 * tensor index), so the same params give the same bytes on every machine.
 */
#include "smoe_internal.h"
#include "quant/blocks.h"
#include "quant/quant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

/* ------------------------------------------------------------------ types and mixes */

typedef struct synth_type {
    const char *name;
    int base;        /* dtype of an ordinary matrix */
    bool mix;        /* llama.cpp's per-tensor rules apply (the _M mixes) */
    uint32_t ftype;  /* general.file_type (llama_ftype) closest to it, informational */
} synth_type;

/* llama_ftype values: F32 0, F16 1, Q4_0 2, Q4_1 3, Q8_0 7, Q5_0 8, Q5_1 9, Q2_K 10,
 * Q3_K_S 11, Q3_K_M 12, Q4_K_S 14, Q4_K_M 15, Q5_K_S 16, Q5_K_M 17, Q6_K 18, BF16 32. */
static const synth_type TYPES[] = {
    {"F32", SMOE_DTYPE_F32, false, 0},      {"F16", SMOE_DTYPE_F16, false, 1},
    {"BF16", SMOE_DTYPE_BF16, false, 32},   {"Q8_0", SMOE_DTYPE_Q8_0, false, 7},
    {"Q4_0", SMOE_DTYPE_Q4_0, false, 2},    {"Q4_1", SMOE_DTYPE_Q4_1, false, 3},
    {"Q5_0", SMOE_DTYPE_Q5_0, false, 8},    {"Q5_1", SMOE_DTYPE_Q5_1, false, 9},
    {"Q2_K", SMOE_DTYPE_Q2_K, false, 10},   {"Q3_K", SMOE_DTYPE_Q3_K, false, 11},
    {"Q4_K", SMOE_DTYPE_Q4_K, false, 14},   {"Q5_K", SMOE_DTYPE_Q5_K, false, 16},
    {"Q6_K", SMOE_DTYPE_Q6_K, false, 18},   {"Q3_K_M", SMOE_DTYPE_Q3_K, true, 12},
    {"Q4_K_M", SMOE_DTYPE_Q4_K, true, 15},  {"Q5_K_M", SMOE_DTYPE_Q5_K, true, 17},
};
#define N_TYPES ((int)(sizeof TYPES / sizeof TYPES[0]))

const char *smoe_synth_type_name(int i) { return i >= 0 && i < N_TYPES ? TYPES[i].name : NULL; }

static const synth_type *find_type(const char *name) {
    if (!name) return NULL;
    for (int i = 0; i < N_TYPES; i++)
        if (strcmp(TYPES[i].name, name) == 0) return &TYPES[i];
    return NULL;
}

/* ------------------------------------------------------------------ presets */

typedef struct synth_preset {
    const char *name;
    int32_t n_embd, n_layer, n_head, n_head_kv, n_ff, n_expert, n_expert_used, n_ctx;
    float rope_freq_base;
} synth_preset;

static const synth_preset PRESETS[] = {
    /* small enough to benchmark in minutes on reference kernels, Mixtral-shaped (GQA 4,
     * 8 experts top-2, F/D = 3.5) */
    {"bench-m", 1024, 8, 16, 4, 3584, 8, 2, 4096, 1e6f},
    /* Mixtral 8x7B v0.1's hyper-parameters */
    {"mixtral-8x7b", 4096, 32, 32, 8, 14336, 8, 2, 32768, 1e6f},
};
#define N_PRESETS ((int)(sizeof PRESETS / sizeof PRESETS[0]))

const char *smoe_synth_preset_name(int i) { return i >= 0 && i < N_PRESETS ? PRESETS[i].name : NULL; }

static void apply_preset(const synth_preset *pr, smoe_synth_params *p) {
    p->n_embd = pr->n_embd;
    p->n_layer = pr->n_layer;
    p->n_head = pr->n_head;
    p->n_head_kv = pr->n_head_kv;
    p->n_ff = pr->n_ff;
    p->n_expert = pr->n_expert;
    p->n_expert_used = pr->n_expert_used;
    p->n_ctx = pr->n_ctx;
    p->rope_freq_base = pr->rope_freq_base;
    p->norm_eps = 1e-5f;
}

smoe_synth_params smoe_synth_default_params(void) {
    smoe_synth_params p;
    memset(&p, 0, sizeof p);
    apply_preset(&PRESETS[0], &p);
    p.type = "Q4_K_M";
    p.check_space = true;
    return p;
}

smoe_status smoe_synth_preset(const char *name, smoe_synth_params *p) {
    if (!name || !p) return smoe_err(SMOE_ERR_INVALID_ARG, "smoe_synth_preset: NULL argument");
    for (int i = 0; i < N_PRESETS; i++) {
        if (strcmp(PRESETS[i].name, name) == 0) {
            apply_preset(&PRESETS[i], p);
            return SMOE_OK;
        }
    }
    return smoe_err(SMOE_ERR_NOT_FOUND, "unknown preset '%s' (known: bench-m, mixtral-8x7b)", name);
}

/* ------------------------------------------------------------------ validation */

static smoe_status check_params(const smoe_synth_params *p, const synth_type **ty) {
    if (!p) return smoe_err(SMOE_ERR_INVALID_ARG, "synth: NULL params");
    const int32_t lim = 1 << 20; /* the model loader's own bound on D and F */
    if (p->n_embd < 1 || p->n_embd > lim) return smoe_err(SMOE_ERR_INVALID_ARG, "n_embd %d out of range [1, %d]", p->n_embd, lim);
    if (p->n_layer < 1 || p->n_layer > 4096) return smoe_err(SMOE_ERR_INVALID_ARG, "n_layer %d out of range [1, 4096]", p->n_layer);
    if (p->n_head < 1 || p->n_head > 4096 || p->n_embd % p->n_head)
        return smoe_err(SMOE_ERR_INVALID_ARG, "n_head %d must be in [1, 4096] and divide n_embd %d", p->n_head, p->n_embd);
    if ((p->n_embd / p->n_head) % 2)
        return smoe_err(SMOE_ERR_INVALID_ARG, "head size %d (n_embd / n_head) must be even for RoPE", p->n_embd / p->n_head);
    if (p->n_head_kv < 1 || p->n_head % p->n_head_kv)
        return smoe_err(SMOE_ERR_INVALID_ARG, "n_head_kv %d must be >= 1 and divide n_head %d", p->n_head_kv, p->n_head);
    if (p->n_ff < 1 || p->n_ff > lim) return smoe_err(SMOE_ERR_INVALID_ARG, "n_ff %d out of range [1, %d]", p->n_ff, lim);
    if (p->n_expert < 0 || p->n_expert == 1 || p->n_expert > 4096)
        return smoe_err(SMOE_ERR_INVALID_ARG, "n_expert %d must be 0 (dense) or in [2, 4096]", p->n_expert);
    if (p->n_expert > 0 && (p->n_expert_used < 1 || p->n_expert_used > p->n_expert))
        return smoe_err(SMOE_ERR_INVALID_ARG, "n_expert_used %d must be in [1, n_expert = %d]", p->n_expert_used, p->n_expert);
    if (p->n_expert == 0 && p->n_expert_used != 0)
        return smoe_err(SMOE_ERR_INVALID_ARG, "n_expert_used %d without experts (n_expert 0)", p->n_expert_used);
    if (p->n_ctx < 1 || p->n_ctx > (1 << 24)) return smoe_err(SMOE_ERR_INVALID_ARG, "n_ctx %d out of range [1, 2^24]", p->n_ctx);
    if (!(p->rope_freq_base > 0) || !isfinite(p->rope_freq_base))
        return smoe_err(SMOE_ERR_INVALID_ARG, "rope_freq_base %g must be a positive number", p->rope_freq_base);
    if (!(p->norm_eps > 0) || !(p->norm_eps < 1)) return smoe_err(SMOE_ERR_INVALID_ARG, "norm_eps %g must be in (0, 1)", p->norm_eps);
    if (p->vocab_n < 0) return smoe_err(SMOE_ERR_INVALID_ARG, "vocab_n %d is negative", p->vocab_n);
    const synth_type *t = find_type(p->type);
    if (!t) {
        char known[256];
        size_t k = 0;
        known[0] = 0;
        for (int i = 0; i < N_TYPES && k < sizeof known; i++)
            k += (size_t)snprintf(known + k, sizeof known - k, "%s%s", i ? " " : "", TYPES[i].name);
        return smoe_err(SMOE_ERR_INVALID_ARG, "unknown weight type '%s' (known: %s)", p->type ? p->type : "(null)", known);
    }
    if (ty) *ty = t;
    return SMOE_OK;
}

/* ------------------------------------------------------------------ per-tensor type */

/* llama.cpp's use_more_bits: the first and last eighth of the layers and every third
 * layer in between get more bits. */
static bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

/* llama.cpp's tensor_type_fallback: a K-quant on rows that are not a multiple of 256
 * becomes a 32-block type, and F16 when even that does not fit. */
static int fallback(int dtype, int64_t ne0) {
    if (ne0 % smoe_dtype_block_size(dtype) == 0) return dtype;
    switch (dtype) {
    case SMOE_DTYPE_Q2_K:
    case SMOE_DTYPE_Q3_K: dtype = SMOE_DTYPE_Q4_0; break;
    case SMOE_DTYPE_Q4_K: dtype = SMOE_DTYPE_Q5_0; break;
    case SMOE_DTYPE_Q5_K: dtype = SMOE_DTYPE_Q5_1; break;
    case SMOE_DTYPE_Q6_K: dtype = SMOE_DTYPE_Q8_0; break;
    default: break;
    }
    return ne0 % smoe_dtype_block_size(dtype) == 0 ? dtype : SMOE_DTYPE_F16;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* The mixes, for the tensors the llama architecture has (rules of llama.cpp's
 * llama_tensor_get_type_impl that can fire for Q3_K_M / Q4_K_M / Q5_K_M on a llama
 * model; the 70B attn_v bump is left out - it keys on a model size class, not shapes):
 *   output        Q6_K (Q8_0 if its rows do not fit the base type's block)
 *   attn_v        Q3_K_M: Q5_K in layers 0-1, else Q4_K; Q4_K_M/Q5_K_M: Q6_K where
 *                 use_more_bits(layer); with exactly 8 experts: Q8_0 always
 *   attn_k        Q8_0 with exactly 8 experts
 *   attn_output   8 experts: Q5_K for Q3_K_M and Q4_K_M; otherwise Q4_K for Q3_K_M
 *   ffn_down      Q3_K_M: Q5_K in the first 16th of the layers, else Q4_K;
 *                 Q4_K_M and Q5_K_M: Q6_K where use_more_bits(layer)
 *   everything else (token_embd, attn_q, ffn_gate, ffn_up): the base type */
static int mix_type(const smoe_synth_params *p, const synth_type *t, const char *name, int64_t ne0) {
    const int base = t->base;
    const bool q3 = base == SMOE_DTYPE_Q3_K, q4 = base == SMOE_DTYPE_Q4_K;
    const bool e8 = p->n_expert == 8;
    const int n = p->n_layer;
    int il = 0;
    (void)sscanf(name, "blk.%d.", &il);
    if (strcmp(name, "output.weight") == 0)
        return ne0 % smoe_dtype_block_size(base) ? SMOE_DTYPE_Q8_0 : SMOE_DTYPE_Q6_K;
    if (strstr(name, ".attn_v.")) {
        if (e8) return SMOE_DTYPE_Q8_0;
        if (q3) return il < 2 ? SMOE_DTYPE_Q5_K : SMOE_DTYPE_Q4_K;
        return use_more_bits(il, n) ? SMOE_DTYPE_Q6_K : base;
    }
    if (strstr(name, ".attn_k.")) return e8 ? SMOE_DTYPE_Q8_0 : base;
    if (strstr(name, ".attn_output.")) {
        if (e8) return q3 || q4 ? SMOE_DTYPE_Q5_K : base;
        return q3 ? SMOE_DTYPE_Q4_K : base;
    }
    if (strstr(name, ".ffn_down")) {
        if (q3) return il < n / 16 ? SMOE_DTYPE_Q5_K : SMOE_DTYPE_Q4_K;
        return use_more_bits(il, n) ? SMOE_DTYPE_Q6_K : base;
    }
    return base;
}

static int tensor_type(const smoe_synth_params *p, const synth_type *t, const char *name, int64_t ne0) {
    /* never quantized, as in llama.cpp: 1-D norms and the router */
    if (ends_with(name, "_norm.weight") || strstr(name, "ffn_gate_inp")) return SMOE_DTYPE_F32;
    int dt = t->mix ? mix_type(p, t, name, ne0) : t->base;
    return fallback(dt, ne0);
}

int smoe_synth_tensor_type(const smoe_synth_params *p, const char *name, int64_t ne0) {
    const synth_type *t;
    if (check_params(p, &t)) return -1;
    if (!name || ne0 < 1) {
        smoe_err(SMOE_ERR_INVALID_ARG, "smoe_synth_tensor_type: bad name or row length");
        return -1;
    }
    return tensor_type(p, t, name, ne0);
}

/* ------------------------------------------------------------------ the tensor list */

typedef enum synth_kind { K_MATRIX, K_NORM, K_ROUTER } synth_kind;

struct synth_job;

typedef struct synth_tensor {
    char name[64];
    int dtype, ndim;
    int64_t ne[3];
    synth_kind kind;
    uint64_t nbytes;
    struct synth_job *job;
} synth_tensor;

typedef struct synth_job {
    const smoe_synth_params *p;
    synth_tensor *t;
    int64_t n_t;
    uint64_t done, total;
} synth_job;

static smoe_status add(synth_job *j, const synth_type *ty, const char *name, synth_kind kind, int ndim, int64_t ne0,
                       int64_t ne1, int64_t ne2) {
    synth_tensor *t = &j->t[j->n_t];
    if ((size_t)snprintf(t->name, sizeof t->name, "%s", name) >= sizeof t->name)
        return smoe_err(SMOE_ERR_INVALID_ARG, "synth: tensor name '%s' too long", name);
    t->dtype = tensor_type(j->p, ty, name, ne0);
    t->ndim = ndim;
    t->ne[0] = ne0, t->ne[1] = ne1, t->ne[2] = ne2;
    t->kind = kind;
    t->job = j;
    uint64_t nel = (uint64_t)ne0, nb;
    if (smoe_mul_overflow_u64(nel, (uint64_t)ne1, &nel) || smoe_mul_overflow_u64(nel, (uint64_t)ne2, &nel) ||
        smoe_mul_overflow_u64(nel / (uint64_t)smoe_dtype_block_size(t->dtype), smoe_dtype_block_bytes(t->dtype), &nb) ||
        nb > (uint64_t)SIZE_MAX / 2 || smoe_add_overflow_u64(j->total, nb, &j->total))
        return smoe_err(SMOE_ERR_INVALID_ARG, "synth: tensor '%s' is too large", name);
    t->nbytes = nb;
    j->n_t++;
    return SMOE_OK;
}

/* Fill j->t (room for 3 + 10 per layer) in llama.cpp's converter order. */
static smoe_status build_list(synth_job *j, const synth_type *ty, int64_t V) {
    const smoe_synth_params *p = j->p;
    const int64_t D = p->n_embd, F = p->n_ff, E = p->n_expert;
    const int64_t Dkv = (int64_t)p->n_head_kv * (D / p->n_head);
    smoe_status st;
    char nm[64];
#define ADD(kind, nd, a, b, c) if ((st = add(j, ty, nm, kind, nd, a, b, c))) return st
    snprintf(nm, sizeof nm, "token_embd.weight");
    ADD(K_MATRIX, 2, D, V, 1);
    for (int il = 0; il < p->n_layer; il++) {
        snprintf(nm, sizeof nm, "blk.%d.attn_norm.weight", il);
        ADD(K_NORM, 1, D, 1, 1);
        snprintf(nm, sizeof nm, "blk.%d.attn_q.weight", il);
        ADD(K_MATRIX, 2, D, D, 1);
        snprintf(nm, sizeof nm, "blk.%d.attn_k.weight", il);
        ADD(K_MATRIX, 2, D, Dkv, 1);
        snprintf(nm, sizeof nm, "blk.%d.attn_v.weight", il);
        ADD(K_MATRIX, 2, D, Dkv, 1);
        snprintf(nm, sizeof nm, "blk.%d.attn_output.weight", il);
        ADD(K_MATRIX, 2, D, D, 1);
        snprintf(nm, sizeof nm, "blk.%d.ffn_norm.weight", il);
        ADD(K_NORM, 1, D, 1, 1);
        if (E > 0) {
            snprintf(nm, sizeof nm, "blk.%d.ffn_gate_inp.weight", il);
            ADD(K_ROUTER, 2, D, E, 1);
            snprintf(nm, sizeof nm, "blk.%d.ffn_gate_exps.weight", il);
            ADD(K_MATRIX, 3, D, F, E);
            snprintf(nm, sizeof nm, "blk.%d.ffn_down_exps.weight", il);
            ADD(K_MATRIX, 3, F, D, E);
            snprintf(nm, sizeof nm, "blk.%d.ffn_up_exps.weight", il);
            ADD(K_MATRIX, 3, D, F, E);
        } else {
            snprintf(nm, sizeof nm, "blk.%d.ffn_gate.weight", il);
            ADD(K_MATRIX, 2, D, F, 1);
            snprintf(nm, sizeof nm, "blk.%d.ffn_down.weight", il);
            ADD(K_MATRIX, 2, F, D, 1);
            snprintf(nm, sizeof nm, "blk.%d.ffn_up.weight", il);
            ADD(K_MATRIX, 2, D, F, 1);
        }
    }
    snprintf(nm, sizeof nm, "output_norm.weight");
    ADD(K_NORM, 1, D, 1, 1);
    snprintf(nm, sizeof nm, "output.weight");
    ADD(K_MATRIX, 2, D, V, 1);
#undef ADD
    return SMOE_OK;
}

/* ------------------------------------------------------------------ random numbers */

typedef struct rng { uint64_t s[4]; } rng;

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void rng_seed(rng *r, uint64_t seed, uint64_t stream) {
    uint64_t x = seed ^ (stream * 0xD1B54A32D192ED03ull);
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* xoshiro256** (Blackman & Vigna): fast, and its low bits are as good as its high bits,
 * which matters because whole 64-bit outputs become code bits. */
static inline uint64_t rng_next(rng *r) {
    uint64_t *s = r->s;
    const uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0], s[3] ^= s[1], s[1] ^= s[2], s[0] ^= s[3], s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

/* Uniform in [0, 1) with 24 random bits (all a float holds). */
static inline float rng_unit(rng *r) { return (float)(rng_next(r) >> 40) * (1.0f / 16777216.0f); }

static void rng_bytes(rng *r, uint8_t *buf, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x = rng_next(r);
        memcpy(buf + i, &x, 8); /* byte order does not matter for random bits */
    }
    if (i < n) {
        uint64_t x = rng_next(r);
        memcpy(buf + i, &x, n - i);
    }
}

/* ------------------------------------------------------------------ block generators */

/* Root mean square of a block's dequantized values per unit of its scale d, when every
 * code bit (quants, and the 6/8-bit sub-block scales of the K-quants) is uniformly
 * random and the min fields are set to centre the block as below. From the decoding
 * formulas of ggml (blocks.h); tests/test_synth.c checks them against smoe_dequantize:
 *   Q8_0 d*q, q in [-127,127]          sqrt(E q^2)                           = 73.9
 *   Q4_0 d*(q-8), q 0..15              sqrt(21.5)                            = 4.637
 *   Q5_0 d*(q-16), q 0..31             sqrt(85.5)                            = 9.247
 *   Q4_1 d*q+m, m = -7.5d              sqrt((16^2-1)/12)                     = 4.610
 *   Q5_1 d*q+m, m = -15.5d             sqrt((32^2-1)/12)                     = 9.233
 *   Q2_K d*s*q - dmin*m, s,m 4-bit, q 2-bit, dmin = 1.5d: var 144.7 + 2.25*21.25 -> 13.87
 *   Q3_K d*(s-32)*q, s 6-bit, q in [-4,3]:  sqrt(341.5 * 5.5)                = 43.34
 *   Q4_K d*s*q - dmin*m, s,m 6-bit, q 4-bit, dmin = 7.5d: var 47532 + 19195  -> 258.3
 *   Q5_K same, q 5-bit, dmin = 15.5d: var 195666 + 81985                     -> 526.9
 *   Q6_K d*s*(q-32), s int8, q 6-bit:  sqrt(5460.5 * 341.5)                  = 1365.6 */
static double code_rms(int dtype) {
    switch (dtype) {
    case SMOE_DTYPE_Q8_0: return 73.9;
    case SMOE_DTYPE_Q4_0: return 4.637;
    case SMOE_DTYPE_Q5_0: return 9.247;
    case SMOE_DTYPE_Q4_1: return 4.610;
    case SMOE_DTYPE_Q5_1: return 9.233;
    case SMOE_DTYPE_Q2_K: return 13.87;
    case SMOE_DTYPE_Q3_K: return 43.34;
    case SMOE_DTYPE_Q4_K: return 258.3;
    case SMOE_DTYPE_Q5_K: return 526.9;
    case SMOE_DTYPE_Q6_K: return 1365.6;
    default: return 1.0;
    }
}

/* Store v as an fp16 field; returns the value actually stored (so that a min derived
 * from d centres the block around the rounded d, not the exact one). */
static float put_f16(uint8_t *p, float v) {
    uint16_t h = smoe_f32_to_f16(v);
    p[0] = (uint8_t)(h & 0xff), p[1] = (uint8_t)(h >> 8);
    return smoe_f16_decode(h);
}

/* Random blocks of a quantized type with dequantized RMS ~ sigma: random code bytes,
 * then each block's scale fields. Every block's d is jittered by +-25% so that scales
 * vary as they do in real files (one draw gives the jitter and the sign). */
static void gen_quant(rng *r, int dtype, uint8_t *buf, size_t nbytes, float sigma) {
    const size_t bb = smoe_dtype_block_bytes(dtype), nb = nbytes / bb;
    /* the +-25% uniform jitter below raises the mean square by 1 + 0.5^2/12 */
    const double d0 = sigma / code_rms(dtype) / sqrt(1.0 + 1.0 / 48.0);
    rng_bytes(r, buf, nbytes);
    /* Types without a min field take a random sign of d: their code ranges are
     * lopsided (Q4_0's q-8 spans -8..7), so one sign would bias every weight by -d/2;
     * ggml's own quantizers write negative d for about half the blocks as well. */
    const bool signed_d = dtype == SMOE_DTYPE_Q8_0 || dtype == SMOE_DTYPE_Q4_0 || dtype == SMOE_DTYPE_Q5_0 ||
                          dtype == SMOE_DTYPE_Q3_K || dtype == SMOE_DTYPE_Q6_K;
    for (size_t b = 0; b < nb; b++) {
        uint8_t *blk = buf + b * bb;
        const uint64_t u = rng_next(r);
        float d = (float)(d0 * (0.75 + 0.5 * (double)(u >> 40) * (1.0 / 16777216.0)));
        if (signed_d && (u & 1)) d = -d;
        switch (dtype) {
        case SMOE_DTYPE_Q8_0: {
            smoe_block_q8_0 *q = (smoe_block_q8_0 *)blk;
            put_f16(q->d, d);
            /* ggml's quantizer never writes -128 and SIMD kernels rely on it (|q| fits
             * an int8 for the sign trick of maddubs) */
            for (int i = 0; i < SMOE_QK; i++)
                if (q->qs[i] == -128) q->qs[i] = -127;
            break;
        }
        case SMOE_DTYPE_Q4_0: put_f16(((smoe_block_q4_0 *)blk)->d, d); break;
        case SMOE_DTYPE_Q5_0: put_f16(((smoe_block_q5_0 *)blk)->d, d); break;
        case SMOE_DTYPE_Q4_1: {
            smoe_block_q4_1 *q = (smoe_block_q4_1 *)blk;
            put_f16(q->m, -7.5f * put_f16(q->d, d));
            break;
        }
        case SMOE_DTYPE_Q5_1: {
            smoe_block_q5_1 *q = (smoe_block_q5_1 *)blk;
            put_f16(q->m, -15.5f * put_f16(q->d, d));
            break;
        }
        case SMOE_DTYPE_Q2_K: {
            smoe_block_q2_K *q = (smoe_block_q2_K *)blk;
            put_f16(q->dmin, 1.5f * put_f16(q->d, d));
            break;
        }
        case SMOE_DTYPE_Q3_K: put_f16(((smoe_block_q3_K *)blk)->d, d); break;
        case SMOE_DTYPE_Q4_K: {
            smoe_block_q4_K *q = (smoe_block_q4_K *)blk;
            put_f16(q->dmin, 7.5f * put_f16(q->d, d));
            break;
        }
        case SMOE_DTYPE_Q5_K: {
            smoe_block_q5_K *q = (smoe_block_q5_K *)blk;
            put_f16(q->dmin, 15.5f * put_f16(q->d, d));
            break;
        }
        case SMOE_DTYPE_Q6_K: put_f16(((smoe_block_q6_K *)blk)->d, d); break;
        default: SMOE_ASSERT(0 && "gen_quant: not a block type");
        }
    }
}

/* Uniform values in [lo, hi] as F32, F16 or BF16. */
static void gen_float(rng *r, int dtype, uint8_t *buf, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) {
        const float v = lo + (hi - lo) * rng_unit(r);
        if (dtype == SMOE_DTYPE_F32) {
            memcpy(buf + 4 * i, &v, 4);
        } else {
            const uint16_t h = dtype == SMOE_DTYPE_F16 ? smoe_f32_to_f16(v) : smoe_f32_to_bf16(v);
            buf[2 * i] = (uint8_t)(h & 0xff), buf[2 * i + 1] = (uint8_t)(h >> 8);
        }
    }
}

static smoe_status fill_tensor(void *user, int64_t index, void *buf, size_t nbytes) {
    synth_tensor *t = user;
    synth_job *j = t->job;
    (void)index;
    if (nbytes != t->nbytes) return smoe_err(SMOE_ERR_FORMAT, "synth: tensor '%s': size mismatch", t->name);
    rng r;
    rng_seed(&r, j->p->seed, (uint64_t)(t - j->t) + 1);
    const int64_t nel = t->ne[0] * t->ne[1] * t->ne[2];
    /* The fan-in of a matrix is its row length ne[0]; 1/sqrt(fan_in) keeps each output
     * of a matvec at unit variance for unit-RMS inputs (RMSNorm gives those). */
    const float sigma = (float)(1.0 / sqrt((double)t->ne[0]));
    if (t->kind == K_NORM) {
        gen_float(&r, SMOE_DTYPE_F32, buf, (size_t)nel, 0.9f, 1.1f); /* near 1, as trained norms start */
    } else if (t->dtype == SMOE_DTYPE_F32 || t->dtype == SMOE_DTYPE_F16 || t->dtype == SMOE_DTYPE_BF16) {
        const float a = sigma * 1.7320508f; /* uniform on [-a, a] has RMS a/sqrt(3) */
        gen_float(&r, t->dtype, buf, (size_t)nel, -a, a);
    } else {
        gen_quant(&r, t->dtype, buf, nbytes, sigma);
    }
    j->done += nbytes;
    if (j->p->progress) j->p->progress(j->p->progress_user, (int64_t)(t - j->t), j->n_t, j->done, j->total, t->name);
    return SMOE_OK;
}

/* ------------------------------------------------------------------ vocabulary */

static bool is_token_id_key(const char *key) { return ends_with(key, "_token_id"); }

/* Copy every tokenizer.ggml.* key of the vocabulary file; with V < its size, arrays with
 * one entry per token are cut to their first V entries and special-token ids >= V are
 * dropped (so the result stays consistent; meant for SentencePiece vocabularies, whose
 * merges-free layout survives the cut). */
static smoe_status copy_vocab(smoe_gguf_writer *w, const smoe_gguf *g, uint64_t n_full, uint64_t V) {
    smoe_status st = SMOE_OK;
    for (int64_t i = 0; i < smoe_gguf_n_kv(g) && !st; i++) {
        const char *key = smoe_gguf_key(g, i);
        if (strncmp(key, "tokenizer.ggml.", 15) != 0) continue;
        const smoe_gguf_type kt = smoe_gguf_kv_type(g, i);
        if (kt == SMOE_GGUF_ARRAY && V < n_full && smoe_gguf_arr_n(g, i) == n_full) {
            const smoe_gguf_type et = smoe_gguf_arr_type(g, i);
            if (et == SMOE_GGUF_STRING) {
                const char **s = malloc(sizeof *s * V);
                uint64_t *len = malloc(sizeof *len * V);
                if (!s || !len) st = smoe_err(SMOE_ERR_NOMEM, "out of memory");
                for (uint64_t k = 0; k < V && !st; k++) s[k] = smoe_gguf_arr_str(g, i, k, &len[k]);
                if (!st) st = smoe_gguf_writer_set_arr_str(w, key, s, len, V);
                free(s), free(len);
            } else if (et != SMOE_GGUF_ARRAY) {
                st = smoe_gguf_writer_set_arr(w, key, et, smoe_gguf_arr_data(g, i), V);
            }
            continue;
        }
        if (V < n_full && is_token_id_key(key)) {
            int64_t id;
            if (smoe_gguf_get_i64(g, key, &id) == SMOE_OK && (id < 0 || (uint64_t)id >= V)) continue;
            smoe_err_clear();
        }
        st = smoe_gguf_writer_copy_kv(w, g, i);
    }
    return st;
}

/* ------------------------------------------------------------------ the model */

static smoe_status vocab_size(const smoe_synth_params *p, smoe_gguf **g, uint64_t *n_full, int64_t *V) {
    if (!p->vocab_path) return smoe_err(SMOE_ERR_INVALID_ARG, "synth: no vocabulary file given");
    smoe_status st = smoe_gguf_open(p->vocab_path, g);
    if (st) return smoe_err_prefix(st, "vocabulary '%s'", p->vocab_path);
    int64_t k = smoe_gguf_find_key(*g, "tokenizer.ggml.tokens");
    if (k < 0 || smoe_gguf_kv_type(*g, k) != SMOE_GGUF_ARRAY || smoe_gguf_arr_type(*g, k) != SMOE_GGUF_STRING ||
        smoe_gguf_arr_n(*g, k) == 0 || smoe_gguf_arr_n(*g, k) > INT32_MAX)
        return smoe_err(SMOE_ERR_FORMAT, "vocabulary '%s': no usable tokenizer.ggml.tokens array", p->vocab_path);
    *n_full = smoe_gguf_arr_n(*g, k);
    if ((uint64_t)p->vocab_n > *n_full)
        return smoe_err(SMOE_ERR_INVALID_ARG, "synth: vocab_n %d is more than the %llu tokens of '%s'", p->vocab_n,
                        (unsigned long long)*n_full, p->vocab_path);
    *V = p->vocab_n ? p->vocab_n : (int64_t)*n_full;
    return SMOE_OK;
}

smoe_status smoe_synth_size(const smoe_synth_params *p, uint64_t *data_bytes) {
    const synth_type *ty;
    smoe_status st = check_params(p, &ty);
    if (st) return st;
    if (!data_bytes) return smoe_err(SMOE_ERR_INVALID_ARG, "smoe_synth_size: NULL argument");
    smoe_gguf *g = NULL;
    uint64_t n_full;
    int64_t V;
    synth_job j = {p, NULL, 0, 0, 0};
    if (!(st = vocab_size(p, &g, &n_full, &V))) {
        j.t = calloc(3 + 10 * (size_t)p->n_layer, sizeof *j.t);
        st = j.t ? build_list(&j, ty, V) : smoe_err(SMOE_ERR_NOMEM, "out of memory");
    }
    if (!st) *data_bytes = j.total;
    free(j.t);
    smoe_gguf_free(g);
    return st;
}

/* Fail before writing when the file cannot fit: a 15 GB write that dies at 90% wastes
 * minutes and leaves the disk full for everyone else until the temporary file goes. */
static smoe_status check_space(const char *path, uint64_t need) {
    char dir[4096];
    if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir) return SMOE_OK;
    char *slash = strrchr(dir, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == dir) dir[1] = 0;
    else *slash = 0;
    struct statvfs sv;
    if (statvfs(dir, &sv) != 0) return SMOE_OK; /* cannot tell: the write itself reports ENOSPC */
    const uint64_t avail = (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
    if (avail < need)
        return smoe_err(SMOE_ERR_IO, "not enough free space in '%s': the model needs %.2f GB, %.2f GB are free", dir,
                        need / 1e9, avail / 1e9);
    return SMOE_OK;
}

smoe_status smoe_synth_model(const smoe_synth_params *p, const char *path) {
    const synth_type *ty;
    smoe_status st = check_params(p, &ty);
    if (st) return st;
    if (!path || !path[0]) return smoe_err(SMOE_ERR_INVALID_ARG, "synth: no output path");
    smoe_gguf *g = NULL;
    smoe_gguf_writer *w = NULL;
    uint64_t n_full = 0;
    int64_t V = 0;
    synth_job j = {p, NULL, 0, 0, 0};
    if ((st = vocab_size(p, &g, &n_full, &V))) goto out;
    j.t = calloc(3 + 10 * (size_t)p->n_layer, sizeof *j.t);
    if (!j.t) { st = smoe_err(SMOE_ERR_NOMEM, "out of memory"); goto out; }
    if ((st = build_list(&j, ty, V))) goto out;
    /* data + per-tensor alignment padding + header (vocabulary) + 1% slack */
    if (p->check_space &&
        (st = check_space(path, j.total + 32 * (uint64_t)j.n_t + smoe_gguf_file_size(g) + (1u << 20) + j.total / 100)))
        goto out;

    const int32_t D = p->n_embd;
    char desc[256];
    snprintf(desc, sizeof desc, "random weights (smoe synth), type %s%s, seed %llu; not a trained model", ty->name,
             ty->mix ? " (llama.cpp mix)" : " (pure)", (unsigned long long)p->seed);
    if ((st = smoe_gguf_writer_init(&w)) || (st = smoe_gguf_writer_set_str(w, "general.architecture", "llama")) ||
        (st = smoe_gguf_writer_set_str(w, "general.name", p->name ? p->name : "smoe-synth")) ||
        (st = smoe_gguf_writer_set_str(w, "general.description", desc)) ||
        (st = smoe_gguf_writer_set_u32(w, "general.file_type", ty->ftype)) ||
        (st = smoe_gguf_writer_set_u32(w, "general.quantization_version", 2)) ||
        (st = smoe_gguf_writer_set_u32(w, "llama.context_length", (uint32_t)p->n_ctx)) ||
        (st = smoe_gguf_writer_set_u32(w, "llama.embedding_length", (uint32_t)D)) ||
        (st = smoe_gguf_writer_set_u32(w, "llama.block_count", (uint32_t)p->n_layer)) ||
        (st = smoe_gguf_writer_set_u32(w, "llama.feed_forward_length", (uint32_t)p->n_ff)) ||
        (st = smoe_gguf_writer_set_u32(w, "llama.attention.head_count", (uint32_t)p->n_head)) ||
        (st = smoe_gguf_writer_set_u32(w, "llama.attention.head_count_kv", (uint32_t)p->n_head_kv)) ||
        (st = smoe_gguf_writer_set_u32(w, "llama.rope.dimension_count", (uint32_t)(D / p->n_head))) ||
        (st = smoe_gguf_writer_set_f32(w, "llama.rope.freq_base", p->rope_freq_base)) ||
        (st = smoe_gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", p->norm_eps)))
        goto out;
    if (p->n_expert > 0 && ((st = smoe_gguf_writer_set_u32(w, "llama.expert_count", (uint32_t)p->n_expert)) ||
                            (st = smoe_gguf_writer_set_u32(w, "llama.expert_used_count", (uint32_t)p->n_expert_used))))
        goto out;
    if ((st = smoe_gguf_writer_set_u32(w, "llama.vocab_size", (uint32_t)V)) || (st = copy_vocab(w, g, n_full, (uint64_t)V)))
        goto out;
    for (int64_t i = 0; i < j.n_t; i++) {
        synth_tensor *t = &j.t[i];
        if ((st = smoe_gguf_writer_add_tensor_fill(w, t->name, t->dtype, t->ndim, t->ne, fill_tensor, t))) goto out;
    }
    st = smoe_gguf_writer_write(w, path);
out:
    smoe_gguf_writer_free(w);
    free(j.t);
    smoe_gguf_free(g);
    return st;
}
