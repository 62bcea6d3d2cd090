/*
 * router.c - the inference routers of router.h. Selection is a partial selection sort
 * (K is small), which makes "ties go to the lowest index" hold by construction.
 */
#include "router.h"
#include "smoe_internal.h"

#include <math.h>
#include <string.h>

/* Indices of the k largest of v[n] (excluding masked entries), best first. */
static void top_k(const float *v, const unsigned char *masked, int32_t n, int32_t k, int32_t *out) {
    for (int32_t j = 0; j < k; j++) {
        int32_t best = -1;
        for (int32_t i = 0; i < n; i++) {
            if (masked && masked[i]) continue;
            bool taken = false;
            for (int32_t q = 0; q < j; q++) taken |= out[q] == i;
            if (taken) continue;
            if (best < 0 || v[i] > v[best]) best = i;
        }
        out[j] = best;
    }
}

void smoe_router_attention_logits(const float *qkv, int32_t E, float *r) {
    const float *q = qkv, *k = qkv + E, *v = qkv + 2 * E;
    for (int32_t i = 0; i < E; i++) {
        double m = -INFINITY, Z = 0, acc = 0;
        for (int32_t j = 0; j < E; j++) m = fmax(m, (double)q[i] * k[j]);
        for (int32_t j = 0; j < E; j++) {
            const double a = exp((double)q[i] * k[j] - m);
            Z += a;
            acc += a * v[j];
        }
        r[i] = (float)(acc / Z);
    }
}

smoe_status smoe_router_from_name(const char *name, size_t len, smoe_router_kind *out) {
    static const struct {
        const char *name;
        smoe_router_kind kind;
    } NAMES[] = {{"topk", SMOE_ROUTER_TOPK_SOFTMAX},
                 {"softmax-topk", SMOE_ROUTER_SOFTMAX_TOPK},
                 {"softmax-topk-norm", SMOE_ROUTER_SOFTMAX_TOPK_NORM},
                 {"sigmoid-bias", SMOE_ROUTER_SIGMOID_BIAS},
                 {"attention", SMOE_ROUTER_ATTENTION}};
    for (size_t i = 0; i < sizeof NAMES / sizeof *NAMES; i++)
        if (strlen(NAMES[i].name) == len && !memcmp(NAMES[i].name, name, len)) {
            *out = NAMES[i].kind;
            return SMOE_OK;
        }
    return smoe_err(SMOE_ERR_UNSUPPORTED, "router '%.*s' is not supported (topk, softmax-topk, softmax-topk-norm, "
                    "sigmoid-bias, attention)", (int)(len < 64 ? len : 64), name);
}

smoe_status smoe_route(const smoe_router_cfg *cfg, const float *logits, int64_t T, int32_t *ids, float *weights,
                       float *scratch) {
    const int32_t E = cfg->n_expert, K = cfg->k;
    if (E < 1 || K < 1 || K > E || E > 4096)
        return smoe_err(SMOE_ERR_INVALID_ARG, "router: need 1 <= K (%d) <= E (%d) <= 4096", K, E);
    float *p = scratch, *sel = scratch + E;
    unsigned char gmask[4096];
    for (int64_t t = 0; t < T; t++) {
        const float *l = logits + t * E;
        int32_t *id = ids + t * K;
        float *w = weights + t * K;
        switch (cfg->kind) {
        case SMOE_ROUTER_TOPK_SOFTMAX:
        case SMOE_ROUTER_ATTENTION: {
            top_k(l, NULL, E, K, id);
            float mx = l[id[0]];
            double sum = 0;
            for (int32_t j = 0; j < K; j++) sum += (w[j] = expf(l[id[j]] - mx));
            for (int32_t j = 0; j < K; j++) w[j] = (float)(w[j] / sum);
            break;
        }
        case SMOE_ROUTER_SOFTMAX_TOPK:
        case SMOE_ROUTER_SOFTMAX_TOPK_NORM: {
            float mx = -INFINITY;
            for (int32_t i = 0; i < E; i++) mx = l[i] > mx ? l[i] : mx;
            double sum = 0;
            for (int32_t i = 0; i < E; i++) sum += (p[i] = expf(l[i] - mx));
            for (int32_t i = 0; i < E; i++) p[i] = (float)(p[i] / sum);
            top_k(p, NULL, E, K, id);
            double s2 = 0;
            for (int32_t j = 0; j < K; j++) s2 += (w[j] = p[id[j]]);
            if (cfg->kind == SMOE_ROUTER_SOFTMAX_TOPK_NORM)
                for (int32_t j = 0; j < K; j++) w[j] = (float)(w[j] / s2);
            break;
        }
        case SMOE_ROUTER_SIGMOID_BIAS: {
            for (int32_t i = 0; i < E; i++) {
                p[i] = 1.0f / (1.0f + expf(-l[i]));
                sel[i] = p[i] + (cfg->bias ? cfg->bias[i] : 0.0f);
            }
            const unsigned char *mask = NULL;
            int32_t G = cfg->n_group;
            if (G > 1) {
                if (E % G || cfg->topk_group < 1 || cfg->topk_group > G || E / G < 2 || G > 256)
                    return smoe_err(SMOE_ERR_INVALID_ARG, "router: %d experts cannot form %d groups keeping %d", E, G,
                                    cfg->topk_group);
                const int32_t per = E / G;
                float gscore[256];
                int32_t gtop[256], two[2] = {0, 0};
                for (int32_t g = 0; g < G; g++) {
                    top_k(sel + g * per, NULL, per, 2, two);
                    gscore[g] = sel[g * per + two[0]] + sel[g * per + two[1]];
                }
                top_k(gscore, NULL, G, cfg->topk_group, gtop);
                for (int32_t i = 0; i < E; i++) gmask[i] = 1;
                for (int32_t j = 0; j < cfg->topk_group; j++)
                    for (int32_t i = 0; i < per; i++) gmask[gtop[j] * per + i] = 0;
                mask = gmask;
                if (cfg->topk_group * per < K)
                    return smoe_err(SMOE_ERR_INVALID_ARG, "router: %d kept groups hold fewer than K=%d experts",
                                    cfg->topk_group, K);
            }
            top_k(sel, mask, E, K, id);
            double sum = 0;
            for (int32_t j = 0; j < K; j++) sum += (w[j] = p[id[j]]);
            float scale = cfg->scale > 0 ? cfg->scale : 1.0f;
            for (int32_t j = 0; j < K; j++) w[j] = (float)(w[j] / sum * scale);
            break;
        }
        default:
            return smoe_err(SMOE_ERR_INVALID_ARG, "router: unknown kind %d", (int)cfg->kind);
        }
    }
    return SMOE_OK;
}
