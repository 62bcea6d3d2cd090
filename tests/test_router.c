/*
 * test_router.c - the routers of src/router.h against the known answers of the project's
 * router spec (Mixtral §1, DeepSeek-V3 §7), plus their invariances: adding a constant to
 * every logit, or moving a non-selected logit that stays outside the top-k, changes
 * nothing for Mixtral; ties go to the lower expert index; K = E keeps every expert.
 */
#include "router.h"
#include "smoe.h"
#include "testhelp.h"

static bool near(float a, float b, float tol) { return fabsf(a - b) <= tol; }

static void route1(smoe_router_cfg *cfg, const float *l, int32_t *ids, float *w) {
    float scratch[64];
    CHECK_OK(smoe_route(cfg, l, 1, ids, w, scratch));
}

static void test_mixtral(void) {
    smoe_router_cfg cfg = {.kind = SMOE_ROUTER_TOPK_SOFTMAX, .n_expert = 8, .k = 2, .scale = 1};
    const float l[8] = {2, 1, 0.5f, 0, -1, -1, -2, -3};
    int32_t ids[2];
    float w[2];
    route1(&cfg, l, ids, w);
    CHECK(ids[0] == 0 && ids[1] == 1, "S = {0, 1}, got {%d, %d}", ids[0], ids[1]);
    CHECK(near(w[0], 0.7310586f, 1e-6f) && near(w[1], 0.2689414f, 1e-6f), "w = (%.7f, %.7f)", w[0], w[1]);

    /* invariances: + constant; a non-selected logit moving below the top 2 */
    float l2[8];
    int32_t ids2[2];
    float w2[2];
    for (int i = 0; i < 8; i++) l2[i] = l[i] + 3.25f;
    l2[5] = 0.9f + 3.25f;
    route1(&cfg, l2, ids2, w2);
    CHECK(ids2[0] == 0 && ids2[1] == 1 && near(w2[0], w[0], 1e-6f) && near(w2[1], w[1], 1e-6f), "invariance");

    /* SOFTMAX_TOPK_NORM gives the same weights; SOFTMAX_TOPK does not renormalise */
    cfg.kind = SMOE_ROUTER_SOFTMAX_TOPK_NORM;
    route1(&cfg, l, ids2, w2);
    CHECK(ids2[0] == 0 && ids2[1] == 1 && near(w2[0], 0.7310586f, 1e-6f), "renormalised softmax-top-k");
    cfg.kind = SMOE_ROUTER_SOFTMAX_TOPK;
    route1(&cfg, l, ids2, w2);
    CHECK(near(w2[0], 0.540257f, 1e-6f) && near(w2[1], 0.198749f, 1e-6f), "full softmax p = (%.6f, %.6f)", w2[0], w2[1]);

    /* ties go to the lowest index */
    const float tie[8] = {0, 1, 1, 1, 0, 0, 0, 0};
    cfg.kind = SMOE_ROUTER_TOPK_SOFTMAX;
    route1(&cfg, tie, ids, w);
    CHECK(ids[0] == 1 && ids[1] == 2 && near(w[0], 0.5f, 1e-7f), "ties: {%d, %d}", ids[0], ids[1]);

    /* K = E: every expert, weights = full softmax, best first */
    cfg.k = 8;
    int32_t all[8];
    float wa[8], sum = 0;
    route1(&cfg, l, all, wa);
    for (int j = 0; j < 8; j++) sum += wa[j];
    CHECK(all[0] == 0 && all[7] == 7 && near(sum, 1.0f, 1e-6f), "K = E");

    /* bad configurations are errors, not crashes */
    float scratch[64];
    cfg.k = 9;
    CHECK(smoe_route(&cfg, l, 1, all, wa, scratch) == SMOE_ERR_INVALID_ARG, "K > E accepted");
    cfg.k = 0;
    CHECK(smoe_route(&cfg, l, 1, all, wa, scratch) == SMOE_ERR_INVALID_ARG, "K = 0 accepted");
}

/* logit whose sigmoid is s */
static float logit(float s) { return logf(s / (1 - s)); }

static void test_deepseek_v3(void) {
    /* 8 experts in 4 groups of 2, keep 2 groups, K = 2, scale 2.5 */
    const float s[8] = {.9f, .1f, .6f, .5f, .8f, 0.0001f, .3f, .3f};
    float l[8];
    for (int i = 0; i < 8; i++) l[i] = logit(s[i]);
    float bias[8] = {0};
    smoe_router_cfg cfg = {.kind = SMOE_ROUTER_SIGMOID_BIAS, .n_expert = 8, .k = 2, .bias = bias,
                           .n_group = 4, .topk_group = 2, .scale = 2.5f};
    int32_t ids[2];
    float w[2];
    route1(&cfg, l, ids, w);
    CHECK(ids[0] == 0 && ids[1] == 2, "V3: experts {%d, %d}, want {0, 2}", ids[0], ids[1]);
    CHECK(near(w[0], 1.5f, 1e-5f) && near(w[1], 1.0f, 1e-5f), "V3 weights (%.6f, %.6f)", w[0], w[1]);
    bias[0] = -0.5f; /* the bias changes the selection, not the weight values */
    route1(&cfg, l, ids, w);
    CHECK(ids[0] == 4 && ids[1] == 2, "V3 with bias: {%d, %d}, want {4, 2}", ids[0], ids[1]);
    CHECK(near(w[0], 1.4285714f, 1e-5f) && near(w[1], 1.0714286f, 1e-5f), "V3 bias weights (%.6f, %.6f)", w[0], w[1]);
}

static void test_batch(void) {
    /* T tokens at once equal T single calls */
    unsigned long long rng = 42;
    float l[37 * 8], scratch[64];
    for (int i = 0; i < 37 * 8; i++) l[i] = th_rng_float(&rng) * 4;
    smoe_router_cfg cfg = {.kind = SMOE_ROUTER_TOPK_SOFTMAX, .n_expert = 8, .k = 2, .scale = 1};
    int32_t ids[37 * 2], id1[2];
    float w[37 * 2], w1[2];
    CHECK_OK(smoe_route(&cfg, l, 37, ids, w, scratch));
    int bad = 0;
    for (int t = 0; t < 37; t++) {
        smoe_route(&cfg, l + t * 8, 1, id1, w1, scratch);
        bad += id1[0] != ids[2 * t] || id1[1] != ids[2 * t + 1] || w1[0] != w[2 * t] || w1[1] != w[2 * t + 1];
        bad += !(l[t * 8 + ids[2 * t]] >= l[t * 8 + ids[2 * t + 1]]);
    }
    CHECK(bad == 0, "%d tokens differ between batch and single routing", bad);
}

int main(void) {
    test_mixtral();
    test_deepseek_v3();
    test_batch();
    return TEST_REPORT();
}
