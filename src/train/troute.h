/*
 * troute.h - the routers and auxiliary losses of training, with their backward passes.
 *
 * One MoE layer sees n tokens. Its router weight W_r has R rows (R = smoe_troute_width:
 * E for most routers, 2E for noisy top-k (clean rows, then noise rows), 3E for Yuan's
 * attention router (query rows, key rows, value rows, as Yuan's fused query_key_value).
 * The trainer computes z = W_r x ([n][R], a plain matmul it also differentiates); this
 * module does everything from z on:
 *
 *   forward:  z -> selection logits l [n][E] (identity; noisy: l + N(0,1) softplus(noise);
 *             attention: Yuan's r) -> the assignments of every token: ids [n][S] and gate
 *             weights w [n][S] (S = smoe_troute_slots: K, 1 for switch, E for expert
 *             choice; unused and dropped slots have id -1 and weight 0), plus the
 *             auxiliary losses' values and the load statistics.
 *   backward: dL/dw [n][S] (the trainer's dot(dy_t, expert_out)) -> dL/dz [n][R],
 *             including the gradients of the auxiliary losses times their coefficients.
 *             The selection itself is piecewise constant: no gradient flows through it.
 *
 * Definitions, sources and known answers: the project's router spec, copied into
 * docs/routers.md; Yuan's router: docs/yuan-router.md (section 11 of docs/routers.md says
 * exactly what smoe implements). This module never allocates or prints; the caller passes a
 * state buffer of smoe_troute_state_floats floats that forward fills and backward reads.
 *
 * Conventions shared by every router: equal scores go to the lower index (experts within a
 * token, tokens within an expert for expert choice), NaN ranks as -infinity, ids of a token
 * are best first. The auxiliary losses and the z-loss are taken on the selection logits l
 * (noisy: after the noise; attention: r); the balance probabilities p are softmax(l), except
 * for SIGMOID_BIAS where they are DeepSeek's normalised scores sigmoid(l) / sum sigmoid(l).
 */
#ifndef SMOE_TROUTE_H
#define SMOE_TROUTE_H

#include "smoe.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum smoe_troute_kind {
    SMOE_TROUTE_TOPK = 0,          /* Mixtral: top-K logits, softmax over the K */
    SMOE_TROUTE_SWITCH,            /* top-1 of softmax(all), gate = p_max; capacity + dropping */
    SMOE_TROUTE_SOFTMAX_TOPK,      /* softmax(all), top-K, w = p_S (Qwen/OLMoE, no renorm) */
    SMOE_TROUTE_SOFTMAX_TOPK_NORM, /* softmax(all), top-K, w = p_S / sum p_S */
    SMOE_TROUTE_NOISY_TOPK,        /* Shazeer 2017: noise in training only, then as TOPK */
    SMOE_TROUTE_EXPERT_CHOICE,     /* Zhou 2022: each expert takes its top-k tokens of n */
    SMOE_TROUTE_ATTENTION,         /* Yuan 2.0-M32 attention router, then as TOPK */
    SMOE_TROUTE_SIGMOID_BIAS,      /* DeepSeek-V3: sigmoid, bias for selection only */
    SMOE_TROUTE_KIND_COUNT
} smoe_troute_kind;

typedef enum smoe_aux_style {
    SMOE_AUX_SWITCH = 0, /* per layer E * sum_i f_i P_i, f over the top-K assignments / (K n); summed over layers */
    SMOE_AUX_HF,         /* HF load_balancing_loss_func: F and P pooled over all layers, value K at balance */
} smoe_aux_style;

typedef struct smoe_troute_cfg {
    smoe_troute_kind kind;
    int32_t n_expert;        /* E */
    int32_t k;               /* K experts per token (token-choice routers), 1 <= K <= E;
                                SWITCH: must be 1; EXPERT_CHOICE: K of its causal inference rule */
    float capacity_factor;   /* > 0: expert capacity ceil(cf * n * K / E), later tokens dropped
                                (token order; for K > 1 all first choices, then all second
                                choices, ...); 0 = no capacity. Applies to every token-choice
                                router, training only. Expert choice: its c (0 = 2), each expert
                                takes round(n c / E) tokens, at least 1, at most n. */
    float aux_coef;          /* load-balancing loss coefficient (0 = off) */
    smoe_aux_style aux_style;
    float z_coef;            /* router z-loss coefficient (0 = off) */
    float bias_rate;         /* SIGMOID_BIAS: gamma of the bias update (DeepSeek-V3 0.001) */
    bool training;           /* noise (noisy top-k) and capacity dropping only when true */
} smoe_troute_cfg;

/* Per call (one layer, n tokens): what the trainer logs. */
typedef struct smoe_troute_stats {
    double aux;              /* the load-balancing loss value, without its coefficient */
    double z;                /* the z-loss value, without its coefficient */
    double dropped;          /* assignments dropped by capacity / (K n) */
    double load_cv;          /* coefficient of variation (population std / mean) of the
                                assignments per expert after capacity; 0 when there are none */
} smoe_troute_stats;

/* R: rows of the router weight (0 for an unusable kind or E). */
int32_t smoe_troute_width(const smoe_troute_cfg *cfg);
/* S: assignment slots per token (0 for an unusable kind or E). */
int32_t smoe_troute_slots(const smoe_troute_cfg *cfg);
/* Floats of state that forward saves for backward, for n tokens (0 when the configuration
 * fails smoe_troute_check or n < 0). */
size_t smoe_troute_state_floats(const smoe_troute_cfg *cfg, int64_t n);
/* Check a configuration; SMOE_ERR_INVALID_ARG with a message when it is not usable. */
smoe_status smoe_troute_check(const smoe_troute_cfg *cfg);

/* Forward for n tokens (n >= 0, n * S <= 2^24). bias [E] (SIGMOID_BIAS only, NULL = zeros;
 * ignored by the others) is read, not updated. rng: state of the caller's generator, a
 * splitmix64 state that noisy top-k advances in training (two draws per pair of N(0,1)
 * values, Box-Muller, token-major order) and that the others leave alone; it may be NULL
 * unless noisy top-k trains. Writes ids [n][S], w [n][S], state, *stats (stats may be NULL).
 * SMOE_ERR_INVALID_ARG for a bad configuration or argument. */
smoe_status smoe_troute_forward(const smoe_troute_cfg *cfg, int64_t n, const float *z, const float *bias, uint64_t *rng,
                                int32_t *ids, float *w, float *state, smoe_troute_stats *stats);

/* Backward: dz [n][R] = dL/dz given dw [n][S] = dL/dw, plus aux_coef * d aux / dz and
 * z_coef * d zloss / dz. z, ids and state as forward left them (dw of dropped and unused
 * slots is ignored). dz is overwritten, not accumulated. For SMOE_AUX_HF with aux_coef > 0
 * the pooled F of all layers comes in hf_F [E] (smoe_troute_hf_pool), else NULL. */
void smoe_troute_backward(const smoe_troute_cfg *cfg, int64_t n, const float *z, const int32_t *ids, const float *state,
                          const float *dw, const float *hf_F, float *dz);

/* SMOE_AUX_HF: the pooled loss over L layers, from each layer's forward state (all layers
 * called with the same n); returns the value (K at perfect balance) and writes hf_F [E] for
 * backward: the pooled F_i = (assignments to i over all layers) / (L n), divided by L, so that
 * each layer's backward gets its share of d loss / dP without knowing L. Returns 0 and zeros
 * hf_F when L < 1 or n < 1. */
double smoe_troute_hf_pool(const smoe_troute_cfg *cfg, int32_t L, int64_t n, const float *const *states, float *hf_F);

/* SIGMOID_BIAS: after an optimizer step, b_i -= rate if expert i got more than the mean
 * load in the step's batch, += rate if less, unchanged if equal (loads [E] summed over the
 * step, e.g. by smoe_troute_add_loads). */
void smoe_troute_update_bias(const smoe_troute_cfg *cfg, const double *loads, float *bias);

/* The selection logits l [n][E] that forward saved in state: z itself for most routers,
 * z_clean + eps softplus(z_noise) for noisy top-k, Yuan's r for the attention router. */
const float *smoe_troute_logits(const smoe_troute_cfg *cfg, const float *state);

/* Add the call's assignments per expert, counted before capacity dropping, to loads [E]. */
void smoe_troute_add_loads(const smoe_troute_cfg *cfg, const float *state, double *loads);

/* The most tokens one expert takes in a call of n tokens: ceil(cf n K / E) for a token-choice
 * router with capacity (training, cf > 0), Expert Choice's round(n c / E) in training, else n. */
int64_t smoe_troute_capacity(const smoe_troute_cfg *cfg, int64_t n);

#endif /* SMOE_TROUTE_H */
