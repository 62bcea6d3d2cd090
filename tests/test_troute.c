/*
 * test_troute.c - the training routers and auxiliary losses of src/train/troute.h:
 *   1. the known answers of docs/routers.md §1-7 and §9 (Mixtral, Switch capacity, HF and
 *      Switch balance losses, noisy top-k, expert choice, z-loss, DeepSeek-V3 bias);
 *   2. train-tiny's aux_a (per layer) and aux_b (pooled) from its router logits;
 *   3. central finite differences of L = sum dw w + aux_coef aux + z_coef z for every
 *      router x {plain, Switch aux, z-loss, both}, plus the HF loss pooled over two layers;
 *   4. Yuan 2.0-M32's attention router against the peer fixture (the whole MoE layer's
 *      output, dL/dx and expert gradients too; forward, gradients composed
 *      with the router weights, the large-score stress case);
 *   5. hostile configurations.
 * Fixtures: tests/data/troute/ (copies, see its README.md).
 */
#include "smoe.h"
#include "testhelp.h"
#include "train/troute.h"

#include <stdint.h>

/* ---- helpers ---- */

static bool near(double a, double b, double tol) { return fabs(a - b) <= tol; }
static bool near_rel(double a, double b, double rel) { return fabs(a - b) <= rel * fabs(b); }

/* ||a - b|| / ||b|| over n values */
static double rel_norm(const float *a, const float *b, int64_t n) {
    double d = 0, s = 0;
    for (int64_t i = 0; i < n; i++) {
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        s += (double)b[i] * b[i];
    }
    return sqrt(d) / (s > 0 ? sqrt(s) : 1);
}

/* One forward call with exactly sized buffers (so ASan sees any overrun). */
typedef struct fw {
    int64_t n;
    int32_t S, R;
    int32_t *ids;
    float *w, *state;
    smoe_troute_stats st;
    smoe_status rc;
    uint64_t rng; /* the generator state after the call */
} fw;

static fw fw_run(const smoe_troute_cfg *cfg, int64_t n, const float *z, const float *bias, uint64_t seed) {
    fw f = {.n = n, .S = smoe_troute_slots(cfg), .R = smoe_troute_width(cfg), .rng = seed};
    size_t nf = smoe_troute_state_floats(cfg, n);
    f.ids = malloc(sizeof(int32_t) * (size_t)(n * f.S) + 1);
    f.w = malloc(sizeof(float) * (size_t)(n * f.S) + 1);
    f.state = malloc(sizeof(float) * nf + 1);
    f.rc = smoe_troute_forward(cfg, n, z, bias, &f.rng, f.ids, f.w, f.state, &f.st);
    return f;
}

static void fw_free(fw *f) {
    free(f->ids);
    free(f->w);
    free(f->state);
}

/* Experts kept per expert after capacity, counted from the ids. */
static void kept_loads(const fw *f, int32_t E, int *loads) {
    for (int32_t e = 0; e < E; e++) loads[e] = 0;
    for (int64_t x = 0; x < f->n * f->S; x++)
        if (f->ids[x] >= 0) loads[f->ids[x]]++;
}

static float *read_f32(const char *rel, size_t count) {
    size_t size = 0;
    float *p = th_read_file(th_data(rel), &size);
    if (p && size != count * sizeof(float)) {
        fprintf(stderr, "%s: %zu bytes, want %zu\n", rel, size, count * sizeof(float));
        free(p);
        p = NULL;
    }
    CHECK(p != NULL, "fixture %s", rel);
    return p;
}

static smoe_troute_cfg make_cfg(smoe_troute_kind kind, int32_t E, int32_t K) {
    return (smoe_troute_cfg){.kind = kind, .n_expert = E, .k = K, .aux_style = SMOE_AUX_SWITCH, .training = true};
}

/* ---- 1. known answers ---- */

static void test_mixtral(void) {
    const float l[8] = {2, 1, 0.5f, 0, -1, -1, -2, -3};
    smoe_troute_cfg cfg = make_cfg(SMOE_TROUTE_TOPK, 8, 2);
    fw f = fw_run(&cfg, 1, l, NULL, 0);
    CHECK_OK(f.rc);
    CHECK(f.ids[0] == 0 && f.ids[1] == 1, "Mixtral S = {0, 1}, got {%d, %d}", f.ids[0], f.ids[1]);
    CHECK(near(f.w[0], 0.7310586, 1e-6) && near(f.w[1], 0.2689414, 1e-6), "Mixtral w = (%.7f, %.7f)", f.w[0], f.w[1]);

    /* invariances: + constant, and a non-selected logit moving while it stays outside the top 2 */
    float l2[8];
    for (int i = 0; i < 8; i++) l2[i] = l[i] + 3.25f;
    l2[5] = 0.9f + 3.25f;
    fw g = fw_run(&cfg, 1, l2, NULL, 0);
    CHECK(g.ids[0] == 0 && g.ids[1] == 1 && near(g.w[0], f.w[0], 1e-6) && near(g.w[1], f.w[1], 1e-6),
          "Mixtral invariance");
    fw_free(&g);

    /* the HF path (softmax, top-2, renormalise) gives the same; without renormalising, p_S */
    cfg.kind = SMOE_TROUTE_SOFTMAX_TOPK_NORM;
    g = fw_run(&cfg, 1, l, NULL, 0);
    CHECK(g.ids[0] == 0 && g.ids[1] == 1 && near(g.w[0], 0.7310586, 1e-6) && near(g.w[1], 0.2689414, 1e-6),
          "renormalised softmax top-k (%.7f, %.7f)", g.w[0], g.w[1]);
    fw_free(&g);
    cfg.kind = SMOE_TROUTE_SOFTMAX_TOPK;
    g = fw_run(&cfg, 1, l, NULL, 0);
    CHECK(g.ids[0] == 0 && g.ids[1] == 1 && near(g.w[0], 0.540257, 1e-6) && near(g.w[1], 0.198749, 1e-6),
          "softmax top-k p = (%.6f, %.6f)", g.w[0], g.w[1]);
    fw_free(&g);

    /* Switch on the same logits: expert 0 with its raw probability (< 1, not 1) */
    smoe_troute_cfg sw = make_cfg(SMOE_TROUTE_SWITCH, 8, 1);
    g = fw_run(&sw, 1, l, NULL, 0);
    CHECK(g.ids[0] == 0 && near(g.w[0], 0.540257, 1e-6), "Switch gate p_max = %.6f", g.w[0]);
    fw_free(&g);

    /* ties: lower index first, for every token-choice router */
    const float tie[8] = {0, 1, 1, 1, 0, 0, 0, 0};
    const smoe_troute_kind kinds[] = {SMOE_TROUTE_TOPK, SMOE_TROUTE_SOFTMAX_TOPK, SMOE_TROUTE_SOFTMAX_TOPK_NORM,
                                      SMOE_TROUTE_SIGMOID_BIAS};
    for (int i = 0; i < 4; i++) {
        cfg.kind = kinds[i];
        g = fw_run(&cfg, 1, tie, NULL, 0);
        CHECK(g.ids[0] == 1 && g.ids[1] == 2 && near(g.w[0], g.w[1], 1e-7), "kind %d ties: {%d, %d}", (int)kinds[i],
              g.ids[0], g.ids[1]);
        fw_free(&g);
    }

    /* K = E: every expert, best first, weights = the full softmax */
    cfg = make_cfg(SMOE_TROUTE_TOPK, 8, 8);
    g = fw_run(&cfg, 1, l, NULL, 0);
    double sum = 0;
    for (int j = 0; j < 8; j++) sum += g.w[j];
    CHECK(g.ids[0] == 0 && g.ids[4] == 4 && g.ids[5] == 5 && g.ids[7] == 7 && near(sum, 1, 1e-6), "K = E");
    fw_free(&g);
    fw_free(&f);
}

/* logits whose argmax is a[t] with a clear margin */
static void onehot_logits(const int *a, int n, int E, float *z) {
    for (int t = 0; t < n; t++)
        for (int e = 0; e < E; e++) z[t * E + e] = e == a[t] ? 2.0f : 0.0f;
}

static void test_switch_capacity(void) {
    /* §3: T = 6, E = 3, CF 1 -> C = 2; argmax (0,0,0,1,2,2): token 2 dropped */
    const int a[6] = {0, 0, 0, 1, 2, 2};
    float z[18];
    onehot_logits(a, 6, 3, z);
    smoe_troute_cfg cfg = make_cfg(SMOE_TROUTE_SWITCH, 3, 1);
    cfg.capacity_factor = 1.0f;
    CHECK(smoe_troute_capacity(&cfg, 6) == 2, "capacity %lld", (long long)smoe_troute_capacity(&cfg, 6));
    fw f = fw_run(&cfg, 6, z, NULL, 0);
    CHECK_OK(f.rc);
    int loads[3];
    kept_loads(&f, 3, loads);
    CHECK(f.ids[2] == -1 && f.w[2] == 0, "token 2 dropped: id %d w %g", f.ids[2], f.w[2]);
    CHECK(loads[0] == 2 && loads[1] == 1 && loads[2] == 2, "kept loads (%d,%d,%d)", loads[0], loads[1], loads[2]);
    CHECK(near(f.st.dropped, 1.0 / 6, 1e-12), "drop rate %g", f.st.dropped);
    CHECK(near(f.st.load_cv, sqrt(2.0 / 9) / (5.0 / 3), 1e-9), "load cv %g", f.st.load_cv);
    bool kept_ok = true;
    for (int t = 0; t < 6; t++)
        if (t != 2) kept_ok &= f.ids[t] == a[t] && f.w[t] > 0.5f && f.w[t] < 1.0f;
    CHECK(kept_ok, "kept tokens keep their expert with 0.5 < p_max < 1");
    double pre[3] = {0, 0, 0};
    smoe_troute_add_loads(&cfg, f.state, pre);
    CHECK(pre[0] == 3 && pre[1] == 1 && pre[2] == 2, "loads before capacity (%g,%g,%g)", pre[0], pre[1], pre[2]);
    fw_free(&f);

    /* raising CF never increases drops; no dropping outside training */
    double last = 1;
    const float cfs[] = {0.5f, 1.0f, 1.25f, 2.0f};
    for (int i = 0; i < 4; i++) {
        cfg.capacity_factor = cfs[i];
        f = fw_run(&cfg, 6, z, NULL, 0);
        CHECK(f.st.dropped <= last, "CF %g drops %g > %g", (double)cfs[i], f.st.dropped, last);
        last = f.st.dropped;
        fw_free(&f);
    }
    CHECK(last == 0, "CF 2 drops nothing");
    cfg.capacity_factor = 1.0f;
    cfg.training = false;
    f = fw_run(&cfg, 6, z, NULL, 0);
    CHECK(f.ids[2] == 0 && f.st.dropped == 0, "eval: no capacity");
    fw_free(&f);

    /* K = 2 with capacity: all first choices outrank all second choices. E = 3, n = 3, CF 1
     * -> C = 2. t0 (1, 0), t1 (0, 1), t2 (0, 2): first choices fill expert 0 with t1 and t2,
     * so t0's second choice (0) is the one dropped, not t2's first. */
    const float z2[9] = {1, 2, 0, 2, 1, 0, 2, 0, 1};
    smoe_troute_cfg c2 = make_cfg(SMOE_TROUTE_TOPK, 3, 2);
    c2.capacity_factor = 1.0f;
    f = fw_run(&c2, 3, z2, NULL, 0);
    CHECK(f.ids[0] == 1 && f.ids[1] == -1 && f.ids[2] == 0 && f.ids[3] == 1 && f.ids[4] == 0 && f.ids[5] == 2,
          "rank-major capacity: ids (%d %d | %d %d | %d %d)", f.ids[0], f.ids[1], f.ids[2], f.ids[3], f.ids[4],
          f.ids[5]);
    CHECK(near(f.w[0], 0.7310586, 1e-6) && f.w[1] == 0, "a dropped slot does not renormalise the kept one");
    fw_free(&f);
}

/* logits = ln p for rows of probabilities */
static void log_rows(const double *p, int n, float *z) {
    for (int i = 0; i < n; i++) z[i] = (float)log(p[i]);
}

static void test_balance_losses(void) {
    /* §2 HF tests 1 and 2, one layer (pooling one layer changes nothing) */
    const double rows1[16] = {.4, .3, .2, .1, .1, .4, .3, .2, .2, .1, .4, .3, .3, .2, .1, .4};
    const double rows2[16] = {.7, .2, .05, .05, .7, .2, .05, .05, .7, .2, .05, .05, .7, .2, .05, .05};
    const double want_hf[2][2] = {{1.0, 2.0}, {2.8, 3.6}}; /* [rows][k - 1] */
    for (int r = 0; r < 2; r++)
        for (int k = 1; k <= 2; k++) {
            float z[16], F[4];
            log_rows(r == 0 ? rows1 : rows2, 16, z);
            smoe_troute_cfg cfg = make_cfg(SMOE_TROUTE_TOPK, 4, k);
            cfg.aux_style = SMOE_AUX_HF;
            fw f = fw_run(&cfg, 4, z, NULL, 0);
            const float *st[1] = {f.state};
            double pooled = smoe_troute_hf_pool(&cfg, 1, 4, st, F);
            CHECK(near(f.st.aux, want_hf[r][k - 1], 1e-6) && near(pooled, want_hf[r][k - 1], 1e-6),
                  "HF rows %d k %d: %g / pooled %g, want %g", r + 1, k, f.st.aux, pooled, want_hf[r][k - 1]);
            fw_free(&f);
            /* Switch normalisation: balanced rows give exactly 1 for any k */
            if (r == 0) {
                cfg.aux_style = SMOE_AUX_SWITCH;
                f = fw_run(&cfg, 4, z, NULL, 0);
                CHECK(near(f.st.aux, 1.0, 1e-6), "Switch aux balanced, k %d: %g", k, f.st.aux);
                fw_free(&f);
            }
        }

    /* §2 pooling: layer A rows (.9, .1), layer B rows (.1, .9), E = 2, k = 1 */
    float za[6], zb[6], F[2];
    for (int t = 0; t < 3; t++) {
        za[2 * t] = zb[2 * t + 1] = logf(0.9f);
        za[2 * t + 1] = zb[2 * t] = logf(0.1f);
    }
    smoe_troute_cfg cfg = make_cfg(SMOE_TROUTE_TOPK, 2, 1);
    fw a = fw_run(&cfg, 3, za, NULL, 0), b = fw_run(&cfg, 3, zb, NULL, 0);
    CHECK(near(a.st.aux, 1.8, 1e-6) && near(b.st.aux, 1.8, 1e-6), "per-layer Switch %g %g, want 1.8", a.st.aux,
          b.st.aux);
    const float *st[2] = {a.state, b.state};
    cfg.aux_style = SMOE_AUX_HF;
    double pooled = smoe_troute_hf_pool(&cfg, 2, 3, st, F);
    CHECK(near(pooled, 1.0, 1e-6), "pooled HF %g, want 1.0", pooled);
    CHECK(near(F[0], 0.25, 1e-7) && near(F[1], 0.25, 1e-7), "hf_F = F / L = (%g, %g)", F[0], F[1]);
    fw_free(&a);
    fw_free(&b);

    /* §2: the Switch loss can go below 1: N = 3, T = 3 -> 5/6 as the margin d -> 0 */
    const double d = 1e-4, tiny = 1e-9;
    const double r3[9] = {.5 + d, tiny, .5 - d, .5 + d, tiny, .5 - d, tiny, .5 + d, .5 - d};
    float z3[9];
    log_rows(r3, 9, z3);
    smoe_troute_cfg sw = make_cfg(SMOE_TROUTE_SWITCH, 3, 1);
    fw f = fw_run(&sw, 3, z3, NULL, 0);
    CHECK(f.ids[0] == 0 && f.ids[1] == 0 && f.ids[2] == 1 && near(f.st.aux, 5.0 / 6, 1e-3), "Switch 5/6 case: %g",
          f.st.aux);
    fw_free(&f);

    /* §9: E = 4, k = 2, T = 4, counts (4, 2, 1, 1): CV 0.6123724 */
    const float z4[16] = {2, 1, 0, 0, 2, 1, 0, 0, 2, 0, 1, 0, 2, 0, 0, 1};
    smoe_troute_cfg c4 = make_cfg(SMOE_TROUTE_TOPK, 4, 2);
    f = fw_run(&c4, 4, z4, NULL, 0);
    int loads[4];
    kept_loads(&f, 4, loads);
    CHECK(loads[0] == 4 && loads[1] == 2 && loads[2] == 1 && loads[3] == 1, "§9 counts");
    CHECK(near(f.st.load_cv, 0.6123724, 1e-7) && f.st.dropped == 0, "§9 CV %.7f", f.st.load_cv);
    fw_free(&f);
}

static void test_zloss(void) {
    float z0[8] = {0};
    smoe_troute_cfg cfg = make_cfg(SMOE_TROUTE_TOPK, 8, 2);
    fw f = fw_run(&cfg, 1, z0, NULL, 0);
    CHECK(near(f.st.z, 4.3240771, 1e-7), "z-loss zeros, N = 8: %.7f", f.st.z);
    fw_free(&f);
    const float z1[4] = {2, 1, 0, 0};
    cfg.n_expert = 4;
    f = fw_run(&cfg, 1, z1, NULL, 0);
    CHECK(near(f.st.z, 6.2190968, 1e-7), "z-loss (2,1,0,0): %.7f", f.st.z);
    fw_free(&f);
    /* not shift-invariant: all c gives (c + ln N)^2, zero at c = -ln N */
    float z2[8];
    for (int i = 0; i < 8; i++) z2[i] = (float)-log(8.0);
    cfg.n_expert = 8;
    f = fw_run(&cfg, 1, z2, NULL, 0);
    CHECK(f.st.z < 1e-12, "z-loss at c = -ln 8: %g", f.st.z);
    fw_free(&f);
}

static void test_noisy(void) {
    unsigned long long r = 7;
    float z[16 * 8];
    for (int i = 0; i < 16 * 8; i++) z[i] = th_rng_float(&r) * 2;
    smoe_troute_cfg cfg = make_cfg(SMOE_TROUTE_NOISY_TOPK, 4, 2), clean = make_cfg(SMOE_TROUTE_TOPK, 4, 2);
    float zc[16 * 4];
    for (int t = 0; t < 16; t++)
        for (int e = 0; e < 4; e++) zc[t * 4 + e] = z[t * 8 + e];

    /* eval: deterministic, no noise (= top-k of the clean logits), the generator untouched */
    cfg.training = false;
    fw a = fw_run(&cfg, 16, z, NULL, 99), b = fw_run(&cfg, 16, z, NULL, 12345), c = fw_run(&clean, 16, zc, NULL, 0);
    CHECK_OK(a.rc);
    CHECK(memcmp(a.ids, b.ids, sizeof(int32_t) * 32) == 0 && memcmp(a.w, b.w, sizeof(float) * 32) == 0 &&
              memcmp(a.ids, c.ids, sizeof(int32_t) * 32) == 0 && memcmp(a.w, c.w, sizeof(float) * 32) == 0,
          "noisy eval = clean top-k, whatever the generator");
    CHECK(a.rng == 99 && b.rng == 12345, "eval leaves the generator alone");
    fw_free(&a);
    fw_free(&b);
    fw_free(&c);

    /* training: K nonzeros summing to 1; same seed same draws; another seed other draws */
    cfg.training = true;
    a = fw_run(&cfg, 16, z, NULL, 5);
    b = fw_run(&cfg, 16, z, NULL, 5);
    c = fw_run(&cfg, 16, z, NULL, 6);
    CHECK_OK(a.rc);
    int bad = 0;
    for (int t = 0; t < 16; t++) {
        double s = 0;
        for (int j = 0; j < 2; j++) {
            s += a.w[t * 2 + j];
            bad += !(a.w[t * 2 + j] > 0) || a.ids[t * 2 + j] < 0;
        }
        bad += !near(s, 1, 1e-6);
    }
    CHECK(bad == 0, "noisy rows: K nonzeros summing to 1 (%d bad)", bad);
    CHECK(a.rng != 5 && a.rng == b.rng && memcmp(a.w, b.w, sizeof(float) * 32) == 0, "same seed, same routing");
    CHECK(memcmp(a.w, c.w, sizeof(float) * 32) != 0, "another seed, other noise");
    fw_free(&a);
    fw_free(&b);
    fw_free(&c);

    /* the draws are N(0, 1): clean 0 and noise logits ln(e - 1) (softplus 1) make h = eps */
    enum { N = 4000 };
    float *zn = malloc(sizeof(float) * N * 4);
    for (int t = 0; t < N; t++) {
        zn[t * 4] = zn[t * 4 + 1] = 0;
        zn[t * 4 + 2] = zn[t * 4 + 3] = (float)log(exp(1.0) - 1);
    }
    smoe_troute_cfg c2 = make_cfg(SMOE_TROUTE_NOISY_TOPK, 2, 2);
    a = fw_run(&c2, N, zn, NULL, 2024);
    const float *h = smoe_troute_logits(&c2, a.state);
    double m = 0, v = 0, gap2 = 0;
    for (int x = 0; x < 2 * N; x++) m += h[x];
    m /= 2 * N;
    for (int x = 0; x < 2 * N; x++) v += (h[x] - m) * (h[x] - m);
    v /= 2 * N;
    for (int t = 0; t < N; t++) gap2 += pow(log(a.w[2 * t] / a.w[2 * t + 1]), 2); /* (eps_a - eps_b)^2 */
    gap2 /= N;
    CHECK(fabs(m) < 0.05 && fabs(v - 1) < 0.06, "noise mean %g variance %g", m, v);
    CHECK(fabs(gap2 - 2) < 0.15, "E (eps_a - eps_b)^2 = %g, want 2", gap2);
    fw_free(&a);
    free(zn);
}

static void test_expert_choice(void) {
    /* §5: n = 3, e = 3, c = 1 -> k = 1 */
    const double S[9] = {.7, .2, .1, .6, .3, .1, .45, .35, .2};
    float z[9];
    log_rows(S, 9, z);
    smoe_troute_cfg cfg = make_cfg(SMOE_TROUTE_EXPERT_CHOICE, 3, 1);
    cfg.capacity_factor = 1;
    CHECK(smoe_troute_capacity(&cfg, 3) == 1 && smoe_troute_slots(&cfg) == 3, "EC k = 1, S = E");
    fw f = fw_run(&cfg, 3, z, NULL, 0);
    CHECK_OK(f.rc);
    const int32_t want[9] = {0, -1, -1, -1, -1, -1, -1, 1, 2};
    const float wantw[9] = {.7f, 0, 0, 0, 0, 0, 0, .35f, .2f};
    bool ok = true;
    for (int x = 0; x < 9; x++) ok &= f.ids[x] == want[x] && near(f.w[x], wantw[x], 1e-6);
    CHECK(ok, "EC: t0 <- expert 0 (.7), t1 none, t2 <- experts 1 (.35) and 2 (.2)");
    int loads[3];
    kept_loads(&f, 3, loads);
    CHECK(loads[0] == 1 && loads[1] == 1 && loads[2] == 1 && f.st.load_cv == 0 && f.st.dropped == 0,
          "EC loads all k");
    fw_free(&f);

    /* non-causal: changing only the last token changes an earlier token's set */
    const double S2[9] = {.7, .2, .1, .6, .3, .1, .1, .1, .8};
    float z2[9];
    log_rows(S2, 9, z2);
    f = fw_run(&cfg, 3, z2, NULL, 0);
    CHECK(f.ids[4] == 1, "EC: t1 gains expert 1 when t2 changes");
    fw_free(&f);

    /* the causal inference rule: each token its own top-K by the same scores, raw weights,
     * so a token's routing does not depend on the others */
    cfg.training = false;
    fw all = fw_run(&cfg, 3, z, NULL, 0), one = fw_run(&cfg, 1, z, NULL, 0), chg = fw_run(&cfg, 3, z2, NULL, 0);
    CHECK(all.ids[0] == 0 && all.ids[1] == -1 && all.ids[3] == 0 && all.ids[6] == 0 && near(all.w[0], .7, 1e-6) &&
              near(all.w[6], .45, 1e-6),
          "EC eval: top-1 per token");
    CHECK(memcmp(all.ids, one.ids, 3 * sizeof(int32_t)) == 0 && memcmp(all.w, one.w, 3 * sizeof(float)) == 0 &&
              memcmp(all.ids, chg.ids, 6 * sizeof(int32_t)) == 0 && memcmp(all.w, chg.w, 6 * sizeof(float)) == 0,
          "EC eval is causal");
    fw_free(&all);
    fw_free(&one);
    fw_free(&chg);

    /* default c = 2 when the capacity factor is 0; k is at least 1 and at most n */
    cfg.training = true;
    cfg.capacity_factor = 0;
    CHECK(smoe_troute_capacity(&cfg, 9) == 6, "EC default c = 2: k = %lld", (long long)smoe_troute_capacity(&cfg, 9));
    cfg.capacity_factor = 0.1f;
    CHECK(smoe_troute_capacity(&cfg, 3) == 1, "EC k >= 1");
    cfg.capacity_factor = 10;
    CHECK(smoe_troute_capacity(&cfg, 3) == 3, "EC k <= n");
}

static float logit_of(float s) { return logf(s / (1 - s)); }

static void test_deepseek(void) {
    /* §7's scores without groups: K = 2 of s + b; weights s_S / sum s_S (no scale here) */
    const float s[8] = {.9f, .1f, .6f, .5f, .8f, 0.0001f, .3f, .3f};
    float l[8], bias[8] = {0};
    for (int i = 0; i < 8; i++) l[i] = logit_of(s[i]);
    smoe_troute_cfg cfg = make_cfg(SMOE_TROUTE_SIGMOID_BIAS, 8, 2);
    fw a = fw_run(&cfg, 1, l, bias, 0), b = fw_run(&cfg, 1, l, NULL, 0);
    CHECK(a.ids[0] == 0 && a.ids[1] == 4 && near(a.w[0], .9 / 1.7, 1e-6) && near(a.w[1], .8 / 1.7, 1e-6),
          "V3 no bias: {%d, %d} (%g, %g)", a.ids[0], a.ids[1], a.w[0], a.w[1]);
    CHECK(memcmp(a.ids, b.ids, 8) == 0 && memcmp(a.w, b.w, 8) == 0, "NULL bias = zero bias");
    fw_free(&a);
    fw_free(&b);
    bias[0] = -0.5f; /* the bias changes the selection, not the weight values */
    a = fw_run(&cfg, 1, l, bias, 0);
    CHECK(a.ids[0] == 4 && a.ids[1] == 2 && near(a.w[0], 0.5714286, 1e-6) && near(a.w[1], 0.4285714, 1e-6),
          "V3 with bias: {%d, %d} (%.7f, %.7f)", a.ids[0], a.ids[1], a.w[0], a.w[1]);
    fw_free(&a);

    /* Loss-Free Balancing: loads (5, 1, 1, 1) -> (-g, +g, +g, +g); equal loads: unchanged */
    smoe_troute_cfg c4 = make_cfg(SMOE_TROUTE_SIGMOID_BIAS, 4, 1);
    c4.bias_rate = 0.001f;
    float b4[4] = {0};
    const double loads[4] = {5, 1, 1, 1}, flat[4] = {2, 2, 2, 2};
    smoe_troute_update_bias(&c4, loads, b4);
    CHECK(b4[0] == -0.001f && b4[1] == 0.001f && b4[2] == 0.001f && b4[3] == 0.001f, "bias update (%g %g %g %g)",
          b4[0], b4[1], b4[2], b4[3]);
    smoe_troute_update_bias(&c4, flat, b4);
    CHECK(b4[0] == -0.001f && b4[1] == 0.001f, "equal loads leave the bias");

    /* the loop as a trainer runs it: loads from forward, then the update steers them */
    const float zz[8] = {3, 0, 0, 0, 3, 0, 0, 0};
    fw f = fw_run(&c4, 2, zz, b4, 0);
    double got[4] = {0, 0, 0, 0};
    smoe_troute_add_loads(&c4, f.state, got);
    CHECK(got[0] == 2 && got[1] == 0, "loads from forward");
    smoe_troute_update_bias(&c4, got, b4);
    CHECK(b4[0] < -0.001f && b4[3] > 0.001f, "overloaded expert 0 loses bias");
    fw_free(&f);

    /* DeepSeek's aux normalisation: balanced selection and scores give exactly 1 */
    const float zb[16] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1};
    f = fw_run(&c4, 4, zb, NULL, 0);
    CHECK(near(f.st.aux, 1.0, 1e-6), "sigmoid aux balanced %g", f.st.aux);
    fw_free(&f);
}

/* ---- 2. train-tiny ---- */

static void test_train_tiny(void) {
    enum { L = 2, N = 64, E = 4 };
    float *rl = read_f32("troute/train-tiny/router-logits.f32", L * N * E);
    if (!rl) return;
    const double aux_l[L] = {1.1462237160890238, 1.0341960664933565};
    const double counts[L][E] = {{16, 53, 36, 23}, {31, 39, 21, 37}};
    smoe_troute_cfg cfg = make_cfg(SMOE_TROUTE_TOPK, E, 2);
    fw f[L];
    double total = 0;
    for (int l = 0; l < L; l++) {
        f[l] = fw_run(&cfg, N, rl + l * N * E, NULL, 0);
        CHECK_OK(f[l].rc);
        total += f[l].st.aux;
        CHECK(near_rel(f[l].st.aux, aux_l[l], 1e-6), "train-tiny aux_a layer %d: %.14f, want %.14f", l, f[l].st.aux,
              aux_l[l]);
        double c[E] = {0};
        smoe_troute_add_loads(&cfg, f[l].state, c);
        bool ok = true;
        for (int i = 0; i < E; i++) ok &= c[i] == counts[l][i];
        CHECK(ok, "train-tiny counts layer %d: (%g %g %g %g)", l, c[0], c[1], c[2], c[3]);
    }
    CHECK(near_rel(total, 2.18041978258238, 1e-6), "train-tiny aux_a %.14f", total);
    /* aux_b: HF, pooled over the two layers */
    cfg.aux_style = SMOE_AUX_HF;
    const float *st[L] = {f[0].state, f[1].state};
    float F[E];
    double aux_b = smoe_troute_hf_pool(&cfg, L, N, st, F);
    CHECK(near_rel(aux_b, 2.11158342886534, 1e-6), "train-tiny aux_b %.14f", aux_b);
    bool ok = true;
    for (int i = 0; i < E; i++) ok &= F[i] == (float)((counts[0][i] + counts[1][i]) / (L * N) / L);
    CHECK(ok, "pooled F / L");
    for (int l = 0; l < L; l++) fw_free(&f[l]);
    free(rl);
}

/* ---- 3. finite differences ---- */

/* L = sum dw w + aux_coef aux + z_coef z (the forward's own scalar), in double. */
static double loss_at(const smoe_troute_cfg *cfg, int64_t n, const float *z, const float *bias, uint64_t seed,
                      const float *dw, int32_t *ids_out) {
    fw f = fw_run(cfg, n, z, bias, seed);
    double L = cfg->aux_coef * f.st.aux + cfg->z_coef * f.st.z;
    for (int64_t x = 0; x < n * f.S; x++) L += (double)dw[x] * f.w[x];
    memcpy(ids_out, f.ids, sizeof(int32_t) * (size_t)(n * f.S));
    fw_free(&f);
    return L;
}

typedef struct gc_case {
    const char *name;
    smoe_troute_cfg cfg;
    int64_t n;
    float scale, col0; /* z ~ U(-scale, scale), + col0 on expert 0's logit (to force drops) */
    bool want_drops;
} gc_case;

/* Central differences with the step as the floats actually took it; the selection must not
 * flip under any perturbation (inputs are redrawn until it does not). */
static void gradcheck(const gc_case *gc) {
    const smoe_troute_cfg *cfg = &gc->cfg;
    const int64_t n = gc->n;
    const int32_t R = smoe_troute_width(cfg), S = smoe_troute_slots(cfg), E = cfg->n_expert;
    const size_t nz = (size_t)(n * R), nw = (size_t)(n * S);
    float *z = malloc(sizeof(float) * nz), *dz = malloc(sizeof(float) * nz), *fd = malloc(sizeof(float) * nz);
    float *dw = malloc(sizeof(float) * nw), bias[64];
    int32_t *ids0 = malloc(sizeof(int32_t) * nw), *ids = malloc(sizeof(int32_t) * nw);
    const uint64_t seed = 77;
    const float h = 3e-3f; /* outputs are float: rounding noise in L grows as 1/h, truncation as h^2 */
    int flips = 1, tries = 0;
    double err = 0, norm = 0, dropped = 0;
    for (; tries < 20 && flips; tries++) {
        unsigned long long r = 1000 + (unsigned long long)tries * 7919 + (unsigned long long)cfg->kind * 31;
        for (size_t i = 0; i < nz; i++) z[i] = th_rng_float(&r) * gc->scale;
        if (cfg->kind != SMOE_TROUTE_ATTENTION)
            for (int64_t t = 0; t < n; t++) z[t * R] += gc->col0;
        for (size_t i = 0; i < nw; i++) dw[i] = th_rng_float(&r);
        for (int32_t i = 0; i < E; i++) bias[i] = th_rng_float(&r) * 0.3f;
        const float *b = cfg->kind == SMOE_TROUTE_SIGMOID_BIAS ? bias : NULL;
        fw f = fw_run(cfg, n, z, b, seed);
        CHECK_OK(f.rc);
        dropped = f.st.dropped;
        memcpy(ids0, f.ids, sizeof(int32_t) * nw);
        smoe_troute_backward(cfg, n, z, f.ids, f.state, dw, NULL, dz);
        fw_free(&f);
        flips = 0;
        for (size_t i = 0; i < nz && !flips; i++) {
            const float z0 = z[i];
            z[i] = z0 + h;
            const float zp = z[i];
            double Lp = loss_at(cfg, n, z, b, seed, dw, ids);
            flips += memcmp(ids, ids0, sizeof(int32_t) * nw) != 0;
            z[i] = z0 - h;
            const float zm = z[i];
            double Lm = loss_at(cfg, n, z, b, seed, dw, ids);
            flips += memcmp(ids, ids0, sizeof(int32_t) * nw) != 0;
            z[i] = z0;
            fd[i] = (float)((Lp - Lm) / ((double)zp - zm));
        }
    }
    CHECK(flips == 0, "%s: no input with a stable selection in %d tries", gc->name, tries);
    if (!flips) {
        err = rel_norm(dz, fd, (int64_t)nz);
        for (size_t i = 0; i < nz; i++) norm += (double)fd[i] * fd[i];
        CHECK(err < 1e-3 && norm > 1e-6, "%s: |dz - fd| / |fd| = %.3g (|fd| = %.3g)", gc->name, err, sqrt(norm));
        if (gc->want_drops) CHECK(dropped > 0, "%s: the case must drop (%g)", gc->name, dropped);
    }
    free(z);
    free(dz);
    free(fd);
    free(dw);
    free(ids0);
    free(ids);
}

static void test_gradcheck(void) {
    gc_case cases[] = {
        {"topk", make_cfg(SMOE_TROUTE_TOPK, 6, 2), 8, 2, 0, false},
        {"topk+capacity", make_cfg(SMOE_TROUTE_TOPK, 4, 2), 10, 2, 1.5f, true},
        {"switch", make_cfg(SMOE_TROUTE_SWITCH, 4, 1), 10, 2, 0, false},
        {"switch+capacity", make_cfg(SMOE_TROUTE_SWITCH, 4, 1), 12, 2, 1.0f, true},
        {"softmax_topk", make_cfg(SMOE_TROUTE_SOFTMAX_TOPK, 6, 2), 8, 2, 0, false},
        {"softmax_topk_norm", make_cfg(SMOE_TROUTE_SOFTMAX_TOPK_NORM, 6, 3), 8, 2, 0, false},
        {"noisy_topk", make_cfg(SMOE_TROUTE_NOISY_TOPK, 6, 2), 8, 1.5f, 0, false},
        {"noisy_topk eval", make_cfg(SMOE_TROUTE_NOISY_TOPK, 6, 2), 8, 1.5f, 0, false},
        {"expert_choice", make_cfg(SMOE_TROUTE_EXPERT_CHOICE, 4, 2), 8, 2, 0, false},
        {"expert_choice eval", make_cfg(SMOE_TROUTE_EXPERT_CHOICE, 4, 2), 8, 2, 0, false},
        {"attention", make_cfg(SMOE_TROUTE_ATTENTION, 6, 2), 8, 1.5f, 0, false},
        {"sigmoid_bias", make_cfg(SMOE_TROUTE_SIGMOID_BIAS, 6, 2), 8, 2, 0, false},
    };
    cases[1].cfg.capacity_factor = 1.0f;
    cases[3].cfg.capacity_factor = 1.0f;
    cases[7].cfg.training = false;
    cases[8].cfg.capacity_factor = 1.0f;
    cases[9].cfg.training = false;
    const float modes[4][2] = {{0, 0}, {0.7f, 0}, {0, 0.3f}, {0.7f, 0.3f}}; /* aux_coef, z_coef */
    const char *mode_names[4] = {"plain", "aux", "z", "aux+z"};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (int m = 0; m < 4; m++) {
            gc_case gc = cases[c];
            char name[96];
            snprintf(name, sizeof name, "%s/%s", cases[c].name, mode_names[m]);
            gc.name = name;
            gc.cfg.aux_coef = modes[m][0];
            gc.cfg.z_coef = modes[m][1];
            gradcheck(&gc);
        }
}

/* The HF loss pooled over two layers: L = sum_l sum dw_l w_l + coef * hf_pool. */
static double hf_loss(const smoe_troute_cfg *cfg, int64_t n, const float *z, const float *dw, float *dz) {
    const int32_t R = smoe_troute_width(cfg), S = smoe_troute_slots(cfg);
    fw f[2];
    double L = 0;
    for (int l = 0; l < 2; l++) {
        f[l] = fw_run(cfg, n, z + l * n * R, NULL, 0);
        for (int64_t x = 0; x < n * S; x++) L += (double)dw[l * n * S + x] * f[l].w[x];
    }
    const float *st[2] = {f[0].state, f[1].state};
    float F[16];
    L += cfg->aux_coef * smoe_troute_hf_pool(cfg, 2, n, st, F);
    for (int l = 0; dz && l < 2; l++)
        smoe_troute_backward(cfg, n, z + l * n * R, f[l].ids, f[l].state, dw + l * n * S, F, dz + l * n * R);
    for (int l = 0; l < 2; l++) fw_free(&f[l]);
    return L;
}

static void test_gradcheck_hf(void) {
    const smoe_troute_kind kinds[2] = {SMOE_TROUTE_TOPK, SMOE_TROUTE_SIGMOID_BIAS};
    for (int k = 0; k < 2; k++) {
        smoe_troute_cfg cfg = make_cfg(kinds[k], 5, 2);
        cfg.aux_style = SMOE_AUX_HF;
        cfg.aux_coef = 0.9f;
        enum { n = 6, NZ = 2 * n * 5, NW = 2 * n * 2 };
        float z[NZ], dz[NZ], fd[NZ], dw[NW];
        unsigned long long r = 4242 + (unsigned long long)k;
        for (int i = 0; i < NZ; i++) z[i] = th_rng_float(&r) * 2;
        for (int i = 0; i < NW; i++) dw[i] = th_rng_float(&r);
        hf_loss(&cfg, n, z, dw, dz);
        for (int i = 0; i < NZ; i++) {
            const float z0 = z[i];
            z[i] = z0 + 1e-3f;
            const float zp = z[i];
            double Lp = hf_loss(&cfg, n, z, dw, NULL);
            z[i] = z0 - 1e-3f;
            const float zm = z[i];
            double Lm = hf_loss(&cfg, n, z, dw, NULL);
            z[i] = z0;
            fd[i] = (float)((Lp - Lm) / ((double)zp - zm));
        }
        double err = rel_norm(dz, fd, NZ);
        CHECK(err < 1e-3, "HF pooled gradient, kind %d: %.3g", (int)kinds[k], err);
    }
}

/* ---- 4. Yuan 2.0-M32 attention router ---- */

enum { YT = 16, YD = 64, YN = 8, YK = 2 };

static int32_t *read_i32(const char *rel, size_t count) { return (int32_t *)read_f32(rel, count); }

static void test_yuan_main(void) {
    float *x = read_f32("troute/attention-router/main/x.f32", YT * YD);
    float *W = read_f32("troute/attention-router/main/w_qkv_fused.f32", 3 * YN * YD);
    float *q = read_f32("troute/attention-router/main/q.f32", YT * YN);
    float *k = read_f32("troute/attention-router/main/k.f32", YT * YN);
    float *v = read_f32("troute/attention-router/main/v.f32", YT * YN);
    float *r = read_f32("troute/attention-router/main/router_logits.f32", YT * YN);
    int32_t *tid = read_i32("troute/attention-router/main/topk_ids.i32", YT * YK);
    float *gw = read_f32("troute/attention-router/main/gate_weights.f32", YT * YK);
    float *dgw = read_f32("troute/attention-router/grad/dL_dgate_weights.f32", YT * YK);
    float *dr = read_f32("troute/attention-router/grad/dL_drouter_logits.f32", YT * YN);
    float *dWq = read_f32("troute/attention-router/grad/dL_dw_query.f32", YN * YD);
    float *dWk = read_f32("troute/attention-router/grad/dL_dw_key.f32", YN * YD);
    float *dWv = read_f32("troute/attention-router/grad/dL_dw_value.f32", YN * YD);
    if (!x || !W || !q || !k || !v || !r || !tid || !gw || !dgw || !dr || !dWq || !dWk || !dWv) goto out;

    /* z = W_qkv x (the trainer's matmul), which must be the fixture's q | k | v */
    float z[YT * 3 * YN], zf[YT * 3 * YN];
    for (int t = 0; t < YT; t++)
        for (int o = 0; o < 3 * YN; o++) {
            double s = 0;
            for (int d = 0; d < YD; d++) s += (double)W[o * YD + d] * x[t * YD + d];
            z[t * 3 * YN + o] = (float)s;
            const float *src = o < YN ? q : o < 2 * YN ? k : v;
            zf[t * 3 * YN + o] = src[t * YN + o % YN];
        }
    CHECK(rel_norm(z, zf, YT * 3 * YN) < 1e-6, "fused W x = q | k | v: %g", rel_norm(z, zf, YT * 3 * YN));

    smoe_troute_cfg cfg = make_cfg(SMOE_TROUTE_ATTENTION, YN, YK);
    fw f = fw_run(&cfg, YT, zf, NULL, 0);
    CHECK_OK(f.rc);
    const float *lg = smoe_troute_logits(&cfg, f.state);
    CHECK(rel_norm(lg, r, YT * YN) < 1e-5, "Yuan router logits: %g", rel_norm(lg, r, YT * YN));
    CHECK(memcmp(f.ids, tid, sizeof(int32_t) * YT * YK) == 0, "Yuan top-2 ids, in order");
    CHECK(rel_norm(f.w, gw, YT * YK) < 1e-5, "Yuan gate weights: %g", rel_norm(f.w, gw, YT * YK));

    /* backward: dL/dgate -> dq dk dv, composed with x into dL/dW_{query,key,value} */
    float dz[YT * 3 * YN], dW[3][YN * YD];
    smoe_troute_backward(&cfg, YT, zf, f.ids, f.state, dgw, NULL, dz);
    for (int o = 0; o < 3 * YN; o++)
        for (int d = 0; d < YD; d++) {
            double s = 0;
            for (int t = 0; t < YT; t++) s += (double)dz[t * 3 * YN + o] * x[t * YD + d];
            dW[o / YN][(o % YN) * YD + d] = (float)s;
        }
    CHECK(rel_norm(dW[0], dWq, YN * YD) < 1e-5, "dL/dW_query: %g", rel_norm(dW[0], dWq, YN * YD));
    CHECK(rel_norm(dW[1], dWk, YN * YD) < 1e-5, "dL/dW_key: %g", rel_norm(dW[1], dWk, YN * YD));
    CHECK(rel_norm(dW[2], dWv, YN * YD) < 1e-5, "dL/dW_value: %g", rel_norm(dW[2], dWv, YN * YD));

    /* the intermediate dL/dr: the top-k router on r alone (R = E: dz = dL/dr) */
    smoe_troute_cfg tk = make_cfg(SMOE_TROUTE_TOPK, YN, YK);
    fw g = fw_run(&tk, YT, r, NULL, 0);
    float dzr[YT * YN];
    smoe_troute_backward(&tk, YT, r, g.ids, g.state, dgw, NULL, dzr);
    CHECK(memcmp(g.ids, tid, sizeof(int32_t) * YT * YK) == 0, "top-k on the fixture's r");
    CHECK(rel_norm(dzr, dr, YT * YN) < 1e-5, "dL/d router logits: %g", rel_norm(dzr, dr, YT * YN));
    int nz = 0;
    for (int x2 = 0; x2 < YT * YN; x2++) nz += dzr[x2] != 0;
    CHECK(nz == YT * YK, "dL/dr is 0 at the unselected experts (%d nonzeros)", nz);
    fw_free(&g);
    fw_free(&f);
out:
    free(x), free(W), free(q), free(k), free(v), free(r), free(tid), free(gw);
    free(dgw), free(dr), free(dWq), free(dWk), free(dWv);
}

/* The whole MoE layer of the fixture: smoe's attention router (forward and backward) with
 * the experts written out here in double; moe_out, dL/dx (router and experts) and the
 * experts' gradients against Yuan's classes under float64 autograd. */
enum { YF = 32 };
static void test_yuan_layer(void) {
    float *x = read_f32("troute/attention-router/main/x.f32", YT * YD);
    float *W = read_f32("troute/attention-router/main/w_qkv_fused.f32", 3 * YN * YD);
    float *w1 = read_f32("troute/attention-router/main/experts_w1.f32", YN * 2 * YF * YD);
    float *w2 = read_f32("troute/attention-router/main/experts_w2.f32", YN * YD * YF);
    float *out_ref = read_f32("troute/attention-router/main/moe_out.f32", YT * YD);
    float *R = read_f32("troute/attention-router/grad/R.f32", YT * YD);
    float *dx_ref = read_f32("troute/attention-router/grad/dL_dx.f32", YT * YD);
    float *dw1_ref = read_f32("troute/attention-router/grad/dL_dexperts_w1.f32", YN * 2 * YF * YD);
    float *dw2_ref = read_f32("troute/attention-router/grad/dL_dexperts_w2.f32", YN * YD * YF);
    float *out = calloc(YT * YD, sizeof(float)), *dx = calloc(YT * YD, sizeof(float));
    float *dw1 = calloc(YN * 2 * YF * YD, sizeof(float)), *dw2 = calloc(YN * YD * YF, sizeof(float));
    fw f = {0};
    if (!x || !W || !w1 || !w2 || !out_ref || !R || !dx_ref || !dw1_ref || !dw2_ref || !out || !dx || !dw1 || !dw2)
        goto out;

    float z[YT * 3 * YN], dz[YT * 3 * YN], dgw[YT * YK];
    for (int t = 0; t < YT; t++)
        for (int o = 0; o < 3 * YN; o++) {
            double s = 0;
            for (int d = 0; d < YD; d++) s += (double)W[o * YD + d] * x[t * YD + d];
            z[t * 3 * YN + o] = (float)s;
        }
    smoe_troute_cfg cfg = make_cfg(SMOE_TROUTE_ATTENTION, YN, YK);
    f = fw_run(&cfg, YT, z, NULL, 0);
    CHECK_OK(f.rc);
    for (int t = 0; t < YT; t++)
        for (int s = 0; s < YK; s++) { /* expert e on token t: y = w2 (silu(h_g) h_u), h = w1 x */
            const int e = f.ids[t * YK + s];
            const float *A = w1 + (size_t)e * 2 * YF * YD, *B = w2 + (size_t)e * YD * YF, *xt = x + t * YD;
            double h[2 * YF], a[YF], y[YD], da[YF], dh[2 * YF], gsum = 0;
            for (int o = 0; o < 2 * YF; o++) {
                h[o] = 0;
                for (int d = 0; d < YD; d++) h[o] += (double)A[o * YD + d] * xt[d];
            }
            for (int i = 0; i < YF; i++) a[i] = h[i] / (1 + exp(-h[i])) * h[YF + i];
            for (int d = 0; d < YD; d++) {
                y[d] = 0;
                for (int i = 0; i < YF; i++) y[d] += (double)B[d * YF + i] * a[i];
                out[t * YD + d] += (float)(f.w[t * YK + s] * y[d]);
                gsum += y[d] * R[t * YD + d]; /* dL/dgate = R[t] . y */
            }
            dgw[t * YK + s] = (float)gsum;
            const double g = f.w[t * YK + s];
            for (int i = 0; i < YF; i++) {
                da[i] = 0;
                for (int d = 0; d < YD; d++) {
                    da[i] += (double)B[d * YF + i] * g * R[t * YD + d];
                    dw2[(size_t)e * YD * YF + d * YF + i] += (float)(g * R[t * YD + d] * a[i]);
                }
                const double sg = 1 / (1 + exp(-h[i]));
                dh[i] = da[i] * h[YF + i] * sg * (1 + h[i] * (1 - sg));
                dh[YF + i] = da[i] * h[i] * sg;
            }
            for (int o = 0; o < 2 * YF; o++)
                for (int d = 0; d < YD; d++) {
                    dw1[(size_t)e * 2 * YF * YD + o * YD + d] += (float)(dh[o] * xt[d]);
                    dx[t * YD + d] += (float)(dh[o] * A[o * YD + d]);
                }
        }
    CHECK(rel_norm(out, out_ref, YT * YD) < 1e-5, "Yuan MoE output: %g", rel_norm(out, out_ref, YT * YD));
    CHECK(rel_norm(dw1, dw1_ref, YN * 2 * YF * YD) < 1e-5, "Yuan dL/d experts w1: %g",
          rel_norm(dw1, dw1_ref, YN * 2 * YF * YD));
    CHECK(rel_norm(dw2, dw2_ref, YN * YD * YF) < 1e-5, "Yuan dL/d experts w2: %g", rel_norm(dw2, dw2_ref, YN * YD * YF));
    smoe_troute_backward(&cfg, YT, z, f.ids, f.state, dgw, NULL, dz); /* the router's part of dL/dx: dz W */
    for (int t = 0; t < YT; t++)
        for (int d = 0; d < YD; d++) {
            double s = 0;
            for (int o = 0; o < 3 * YN; o++) s += (double)dz[t * 3 * YN + o] * W[o * YD + d];
            dx[t * YD + d] += (float)s;
        }
    CHECK(rel_norm(dx, dx_ref, YT * YD) < 1e-5, "Yuan dL/dx (router + experts): %g", rel_norm(dx, dx_ref, YT * YD));
out:
    fw_free(&f);
    free(x), free(W), free(w1), free(w2), free(out_ref), free(R), free(dx_ref), free(dw1_ref), free(dw2_ref);
    free(out), free(dx), free(dw1), free(dw2);
}

static void test_yuan_stress(void) {
    float *q = read_f32("troute/attention-router/stress_large_scores/q.f32", YT * YN);
    float *k = read_f32("troute/attention-router/stress_large_scores/k.f32", YT * YN);
    float *v = read_f32("troute/attention-router/stress_large_scores/v.f32", YT * YN);
    float *r = read_f32("troute/attention-router/stress_large_scores/router_logits.f32", YT * YN);
    int32_t *tid = read_i32("troute/attention-router/stress_large_scores/topk_ids.i32", YT * YK);
    float *gw = read_f32("troute/attention-router/stress_large_scores/gate_weights.f32", YT * YK);
    if (!q || !k || !v || !r || !tid || !gw) goto out;
    float z[YT * 3 * YN];
    for (int t = 0; t < YT; t++)
        for (int i = 0; i < YN; i++) {
            z[t * 3 * YN + i] = q[t * YN + i];
            z[t * 3 * YN + YN + i] = k[t * YN + i];
            z[t * 3 * YN + 2 * YN + i] = v[t * YN + i];
        }
    smoe_troute_cfg cfg = make_cfg(SMOE_TROUTE_ATTENTION, YN, YK);
    fw f = fw_run(&cfg, YT, z, NULL, 0);
    CHECK_OK(f.rc);
    const float *lg = smoe_troute_logits(&cfg, f.state);
    bool finite = true;
    for (int x = 0; x < YT * YN; x++) finite &= isfinite(lg[x]) != 0;
    CHECK(finite, "stress: finite logits (max-subtracted softmax)");
    CHECK(rel_norm(lg, r, YT * YN) < 1e-5, "stress logits: %g", rel_norm(lg, r, YT * YN));
    int sets = 0, gates = 0, ties = 0, tie_order = 0;
    for (int t = 0; t < YT; t++) {
        const int32_t *a = f.ids + t * YK, *b = tid + t * YK;
        const float *wa = f.w + t * YK, *wb = gw + t * YK;
        bool same = a[0] == b[0] && a[1] == b[1], swapped = a[0] == b[1] && a[1] == b[0];
        sets += same || swapped;
        gates += same ? near(wa[0], wb[0], 1e-5) && near(wa[1], wb[1], 1e-5)
                      : swapped && near(wa[0], wb[1], 1e-5) && near(wa[1], wb[0], 1e-5);
        if (lg[t * YN + a[0]] == lg[t * YN + a[1]]) {
            ties++;
            tie_order += a[0] < a[1] && near(wa[0], 0.5, 0);
        }
    }
    CHECK(sets == YT, "stress: %d of %d id sets match", sets, YT);
    CHECK(gates == YT, "stress: %d of %d (id, gate) pairs match", gates, YT);
    CHECK(ties >= 1 && tie_order == ties, "stress: %d exact ties, %d lower index first at 0.5", ties, tie_order);
    fw_free(&f);
out:
    free(q), free(k), free(v), free(r), free(tid), free(gw);
}

/* ---- 5. hostile configurations ---- */

static void expect_invalid(const smoe_troute_cfg *cfg, const char *what) {
    smoe_status st = smoe_troute_check(cfg);
    CHECK(st == SMOE_ERR_INVALID_ARG && strstr(smoe_last_error(), "troute") != NULL, "%s: check -> %s (%s)", what,
          smoe_status_name(st), smoe_last_error());
    CHECK(smoe_troute_state_floats(cfg, 4) == 0, "%s: state size 0", what);
    float z[64] = {0}, w[64], state[1024];
    int32_t ids[64];
    uint64_t rng = 1;
    smoe_troute_stats stats;
    st = smoe_troute_forward(cfg, 1, z, NULL, &rng, ids, w, state, &stats);
    CHECK(st == SMOE_ERR_INVALID_ARG, "%s: forward -> %s", what, smoe_status_name(st));
}

static void test_hostile(void) {
    const smoe_troute_cfg good = make_cfg(SMOE_TROUTE_TOPK, 4, 2);
    smoe_troute_cfg c;
#define BAD(field, value, what)                                                                                        \
    do {                                                                                                               \
        c = good;                                                                                                      \
        c.field = value;                                                                                               \
        expect_invalid(&c, what);                                                                                      \
    } while (0)
    BAD(k, 5, "K > E");
    BAD(k, 0, "K = 0");
    BAD(k, -2, "K < 0");
    BAD(n_expert, 0, "E = 0");
    BAD(n_expert, -4, "E < 0");
    BAD(n_expert, 1 << 20, "E huge");
    BAD(aux_coef, -0.01f, "negative aux coefficient");
    BAD(aux_coef, NAN, "NaN aux coefficient");
    BAD(z_coef, -1e-3f, "negative z coefficient");
    BAD(z_coef, INFINITY, "infinite z coefficient");
    BAD(capacity_factor, -1.0f, "negative capacity factor");
    BAD(capacity_factor, NAN, "NaN capacity factor");
    BAD(bias_rate, -0.001f, "negative bias rate");
    BAD(kind, SMOE_TROUTE_KIND_COUNT, "kind out of range");
    BAD(kind, (smoe_troute_kind)-1, "negative kind");
    BAD(aux_style, (smoe_aux_style)7, "unknown aux style");
#undef BAD
    c = make_cfg(SMOE_TROUTE_SWITCH, 4, 2);
    expect_invalid(&c, "Switch with K = 2");
    const smoe_troute_cfg no_e = {.n_expert = 0}, no_kind = {.kind = (smoe_troute_kind)42, .n_expert = 4};
    CHECK(smoe_troute_width(&no_e) == 0 && smoe_troute_slots(&no_kind) == 0, "unusable configurations: R = S = 0");
    CHECK(smoe_troute_check(NULL) == SMOE_ERR_INVALID_ARG, "NULL configuration");

    /* bad arguments to a good configuration */
    float z[64] = {0}, w[64], state[1024];
    int32_t ids[64];
    smoe_troute_stats stats = {1, 1, 1, 1};
    CHECK(smoe_troute_forward(&good, -1, z, NULL, NULL, ids, w, state, &stats) == SMOE_ERR_INVALID_ARG, "n < 0");
    CHECK(smoe_troute_forward(&good, (int64_t)1 << 30, z, NULL, NULL, ids, w, state, &stats) == SMOE_ERR_INVALID_ARG,
          "n beyond 2^24 assignments");
    CHECK(smoe_troute_forward(&good, 2, NULL, NULL, NULL, ids, w, state, &stats) == SMOE_ERR_INVALID_ARG, "z NULL");
    CHECK(smoe_troute_forward(&good, 2, z, NULL, NULL, ids, w, NULL, &stats) == SMOE_ERR_INVALID_ARG, "state NULL");
    smoe_troute_cfg noisy = make_cfg(SMOE_TROUTE_NOISY_TOPK, 4, 2);
    CHECK(smoe_troute_forward(&noisy, 2, z, NULL, NULL, ids, w, state, &stats) == SMOE_ERR_INVALID_ARG &&
              strstr(smoe_last_error(), "rng") != NULL,
          "noisy training without a generator: %s", smoe_last_error());
    CHECK(smoe_troute_state_floats(&good, -1) == 0, "state size for n < 0");
    /* n = 0 is a valid, empty call */
    CHECK_OK(smoe_troute_forward(&good, 0, NULL, NULL, NULL, NULL, NULL, state, &stats));
    CHECK(stats.aux == 0 && stats.z == 0 && stats.dropped == 0 && stats.load_cv == 0, "n = 0: zero stats");
    float F[4] = {1, 1, 1, 1};
    const float *st[1] = {state};
    CHECK(smoe_troute_hf_pool(&good, 1, 0, st, F) == 0 && F[0] == 0, "HF pool of nothing");
    CHECK(smoe_troute_hf_pool(&good, 0, 4, st, F) == 0, "HF pool of no layers");
}

int main(void) {
    test_mixtral();
    test_switch_capacity();
    test_balance_losses();
    test_zloss();
    test_noisy();
    test_expert_choice();
    test_deepseek();
    test_train_tiny();
    test_gradcheck();
    test_gradcheck_hf();
    test_yuan_main();
    test_yuan_layer();
    test_yuan_stress();
    test_hostile();
    return TEST_REPORT();
}
