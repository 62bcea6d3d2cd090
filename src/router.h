/*
 * router.h - MoE routers behind one signature: router logits in, chosen experts and gate
 * weights out. Definitions and known answers: docs/routers.md (from the project's router
 * spec). Auxiliary losses and the training-time routers (noisy top-k, expert choice,
 * capacity) belong to train/.
 */
#ifndef SMOE_ROUTER_H
#define SMOE_ROUTER_H

#include "smoe.h"

typedef struct smoe_router_cfg {
    smoe_router_kind kind;
    int32_t n_expert;     /* E */
    int32_t k;            /* K experts per token, 1 <= K <= E */
    const float *bias;    /* [E] selection-only bias (SIGMOID_BIAS); NULL = zeros */
    int32_t n_group;      /* SIGMOID_BIAS: experts in n_group equal groups; 0 or 1 = off */
    int32_t topk_group;   /* SIGMOID_BIAS: groups kept (by the sum of their top-2 scores) */
    float scale;          /* gate weights are multiplied by this (DeepSeek route_scale); 1 = off */
} smoe_router_cfg;

/* Route T tokens: logits[T][E] -> ids[T][K] (best first by selection score; equal scores
 * go to the lower expert index) and weights[T][K].
 *   TOPK_SOFTMAX       (Mixtral)  S = top-K logits; w = softmax over the K selected logits.
 *   SOFTMAX_TOPK       (Switch, Qwen, OLMoE)  p = softmax(all); S = top-K p; w = p_S.
 *   SOFTMAX_TOPK_NORM  as above, then w = p_S / sum(p_S).
 *   SIGMOID_BIAS       (DeepSeek-V3) s = sigmoid(l); select top-K of s + bias (within the
 *                      kept groups); w = s_S / sum(s_S) * scale.
 *   ATTENTION          as TOPK_SOFTMAX, on logits from smoe_router_attention_logits.
 * scratch: 2*E floats. Returns SMOE_ERR_INVALID_ARG for a bad configuration. */
/* Yuan 2.0-M32's attention router for one token: qkv = [q; k; v] (3E values, the router
 * matmul's output), r_i = sum_j softmax_j(q_i k_j) v_j (no scaling, max-subtracted, in
 * double) -> r [E], the logits that ATTENTION then routes like TOPK_SOFTMAX. Training
 * (train/troute.c) uses the same function. */
void smoe_router_attention_logits(const float *qkv, int32_t E, float *r);

/* The router kind named by the "smoe.router" GGUF key ("topk", "softmax-topk",
 * "softmax-topk-norm", "sigmoid-bias", "attention"); SMOE_ERR_UNSUPPORTED otherwise. */
smoe_status smoe_router_from_name(const char *name, size_t len, smoe_router_kind *out);

smoe_status smoe_route(const smoe_router_cfg *cfg, const float *logits, int64_t T, int32_t *ids, float *weights,
                       float *scratch);

#endif /* SMOE_ROUTER_H */
