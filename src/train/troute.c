/*
 * troute.c - the training routers and auxiliary losses of troute.h: forward from the router
 * outputs z to each token's experts and gate weights, backward from dL/dw to dL/dz.
 *
 * What it does: eight routers (Mixtral top-k, Switch with capacity, softmax-then-top-k with
 * and without renormalisation, Shazeer's noisy top-k, Zhou's expert choice, Yuan's attention
 * router, DeepSeek-V3's sigmoid with a selection bias), capacity dropping for every
 * token-choice router, the Switch-style and the HF-style load-balancing losses, ST-MoE's
 * z-loss, the load statistics, and the Loss-Free Balancing bias update.
 * What it does not: the matmul z = W_r x and its gradient (the trainer's), the experts,
 * DeepSeek's group- and node-limited routing, Shazeer's importance and load losses, GShard's
 * random second expert, input jitter, padding masks, threads.
 *
 * Numerics: per-token sums and softmaxes run in double (max-subtracted), outputs are float.
 * The selection is piecewise constant and gets no gradient (definitions: docs/routers.md §11).
 *
 * State layout (floats), written by forward, read by backward, hf_pool and the accessors:
 *   cnt  [E]     assignments per expert before capacity (exact small integers)
 *   kept [E]     assignments per expert after capacity
 *   psum [2][E]  sum over tokens of the balance probabilities p (aux loss P = psum / n), as
 *                a double split into two floats (hi, lo) so that it keeps double precision
 *   l    [n][E]  selection logits: z, noisy h, or attention r
 *   eps  [n][E]  noise draws (noisy top-k only; 0 at eval)
 *   sel  [n][S]  ids before capacity dropping, as floats (token-choice routers only)
 */
#include "train/troute.h"

#include "router.h"
#include "smoe_internal.h"

#include <math.h>

/* Float ids and counts in the state are exact below 2^24; larger calls are refused. */
#define MAX_ASSIGN ((int64_t)1 << 24)
#define MAX_EXPERT 65536
#define TWO_PI 6.283185307179586476925

/* ---- configuration and state layout ---- */

static bool is_token_choice(smoe_troute_kind kind) { return kind != SMOE_TROUTE_EXPERT_CHOICE; }

int32_t smoe_troute_width(const smoe_troute_cfg *cfg) {
    const int32_t E = cfg->n_expert;
    if (E < 1 || E > MAX_EXPERT) return 0;
    switch (cfg->kind) {
    case SMOE_TROUTE_NOISY_TOPK: return 2 * E;
    case SMOE_TROUTE_ATTENTION: return 3 * E;
    case SMOE_TROUTE_TOPK:
    case SMOE_TROUTE_SWITCH:
    case SMOE_TROUTE_SOFTMAX_TOPK:
    case SMOE_TROUTE_SOFTMAX_TOPK_NORM:
    case SMOE_TROUTE_EXPERT_CHOICE:
    case SMOE_TROUTE_SIGMOID_BIAS: return E;
    case SMOE_TROUTE_KIND_COUNT: break;
    }
    return 0;
}

int32_t smoe_troute_slots(const smoe_troute_cfg *cfg) {
    if (smoe_troute_width(cfg) == 0) return 0;
    if (cfg->kind == SMOE_TROUTE_SWITCH) return 1;
    if (cfg->kind == SMOE_TROUTE_EXPERT_CHOICE) return cfg->n_expert;
    return cfg->k;
}

static bool finite_nonneg(float x) { return isfinite(x) && x >= 0; }

smoe_status smoe_troute_check(const smoe_troute_cfg *cfg) {
    if (!cfg) return smoe_err(SMOE_ERR_INVALID_ARG, "troute: no configuration");
    if ((int)cfg->kind < 0 || cfg->kind >= SMOE_TROUTE_KIND_COUNT)
        return smoe_err(SMOE_ERR_INVALID_ARG, "troute: unknown router kind %d", (int)cfg->kind);
    const int32_t E = cfg->n_expert, K = cfg->k;
    if (E < 1 || E > MAX_EXPERT)
        return smoe_err(SMOE_ERR_INVALID_ARG, "troute: need 1 <= E <= %d experts, got %d", MAX_EXPERT, E);
    if (K < 1 || K > E) return smoe_err(SMOE_ERR_INVALID_ARG, "troute: need 1 <= K (%d) <= E (%d)", K, E);
    if (cfg->kind == SMOE_TROUTE_SWITCH && K != 1)
        return smoe_err(SMOE_ERR_INVALID_ARG, "troute: the Switch router is top-1, got K = %d", K);
    if (!finite_nonneg(cfg->capacity_factor))
        return smoe_err(SMOE_ERR_INVALID_ARG, "troute: capacity factor must be finite and >= 0, got %g",
                        (double)cfg->capacity_factor);
    if (!finite_nonneg(cfg->aux_coef))
        return smoe_err(SMOE_ERR_INVALID_ARG, "troute: aux coefficient must be finite and >= 0, got %g",
                        (double)cfg->aux_coef);
    if (!finite_nonneg(cfg->z_coef))
        return smoe_err(SMOE_ERR_INVALID_ARG, "troute: z-loss coefficient must be finite and >= 0, got %g",
                        (double)cfg->z_coef);
    if (!finite_nonneg(cfg->bias_rate))
        return smoe_err(SMOE_ERR_INVALID_ARG, "troute: bias rate must be finite and >= 0, got %g",
                        (double)cfg->bias_rate);
    if (cfg->aux_style != SMOE_AUX_SWITCH && cfg->aux_style != SMOE_AUX_HF)
        return smoe_err(SMOE_ERR_INVALID_ARG, "troute: unknown aux loss style %d", (int)cfg->aux_style);
    return SMOE_OK;
}

typedef struct layout {
    size_t cnt, kept, psum, l, eps, sel, total; /* offsets in floats; total = size */
} layout;

static layout layout_of(const smoe_troute_cfg *cfg, int64_t n) {
    const size_t E = (size_t)cfg->n_expert, S = (size_t)smoe_troute_slots(cfg), N = (size_t)n;
    layout L;
    L.cnt = 0;
    L.kept = E;
    L.psum = 2 * E;
    L.l = 4 * E;
    L.eps = L.l + N * E;
    L.sel = L.eps + (cfg->kind == SMOE_TROUTE_NOISY_TOPK ? N * E : 0);
    L.total = L.sel + (is_token_choice(cfg->kind) ? N * S : 0);
    return L;
}

size_t smoe_troute_state_floats(const smoe_troute_cfg *cfg, int64_t n) {
    /* an unusable configuration leaves its message for smoe_last_error */
    smoe_status st = smoe_troute_check(cfg);
    if (st != SMOE_OK || n < 0 || n > MAX_ASSIGN / smoe_troute_slots(cfg)) return 0;
    return layout_of(cfg, n).total;
}

int64_t smoe_troute_capacity(const smoe_troute_cfg *cfg, int64_t n) {
    if (n <= 0) return 0;
    const double E = cfg->n_expert, cf = cfg->capacity_factor;
    if (cfg->kind == SMOE_TROUTE_EXPERT_CHOICE) {
        if (!cfg->training) return n;
        /* Zhou 2022 Eq. 1: k = n c / e, c = 2 by default ("EC-CF2"); at least one token per
         * expert so that a small call still routes, at most every token. */
        double k = round((double)n * (cf > 0 ? cf : 2.0) / E);
        return k < 1 ? 1 : k > (double)n ? n : (int64_t)k;
    }
    if (!cfg->training || cf <= 0) return n;
    double c = ceil(cf * (double)n * (double)cfg->k / E);
    return c > (double)n ? n : (int64_t)c;
}

/* ---- small numerical helpers ---- */

static double sigmoid(double x) {
    if (x >= 0) return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

/* softplus(x) = ln(1 + e^x) without overflow for large x. */
static double softplus(double x) { return (x > 0 ? x : 0) + log1p(exp(-fabs(x))); }

/* The selection score of entry i: v itself, or DeepSeek-V3's sigmoid(v) + bias (bias NULL =
 * zeros, so NULL and a zero bias select alike). NaN ranks as -inf. */
static double select_score(const float *v, int64_t stride, bool sig, const float *bias, int64_t i) {
    double x = v[i * stride];
    if (sig) x = sigmoid(x) + (bias ? bias[i] : 0.0f);
    return isnan(x) ? -INFINITY : x;
}

/* Index of the best entry of v[i * stride] (i < n) by select_score among those ranked after
 * (pv, pi) in the order "larger score first, then lower index"; pi < 0 means nothing ranked
 * yet. Scanning upward with a strict > keeps the lower index among equals, so the tie rule
 * holds by construction; NaN scores rank as -inf, so the result is always valid while entries
 * remain. Calling it k times is a partial selection sort, O(k n): k is small for token
 * choice (expert choice pays O(c n^2) per call, fine for a trainer's batch). */
static int64_t next_best(const float *v, int64_t stride, bool sig, const float *bias, int64_t n, double pv,
                         int64_t pi, double *score) {
    int64_t best = -1;
    double bv = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        double x = select_score(v, stride, sig, bias, i);
        if (pi >= 0 && !(x < pv || (x == pv && i > pi))) continue;
        if (best < 0 || x > bv) {
            best = i;
            bv = x;
        }
    }
    *score = bv;
    return best;
}

/* Max and sum of exp(l - max) of one token's E logits, and the log-sum-exp. */
typedef struct softmax_t {
    double m, sum, lse;
} softmax_t;

static softmax_t softmax_of(const float *l, int32_t E) {
    softmax_t s = {-INFINITY, 0, 0};
    for (int32_t i = 0; i < E; i++)
        if (l[i] > s.m) s.m = l[i];
    for (int32_t i = 0; i < E; i++) s.sum += exp(l[i] - s.m);
    s.lse = s.m + log(s.sum);
    return s;
}

static double sm_p(const softmax_t *s, float li) { return exp(li - s->m) / s->sum; }

/* psum entry i as a double, and adding to it (hi + lo float pair, see the layout above) */
static double psum_get(const float *psum, int32_t E, int32_t i) { return (double)psum[i] + psum[E + i]; }
static void psum_add(float *psum, int32_t E, int32_t i, double x) {
    double d = psum_get(psum, E, i) + x;
    psum[i] = (float)d;
    psum[E + i] = (float)(d - psum[i]);
}

/* splitmix64: the whole generator state is the caller's one uint64_t. */
static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Two independent N(0, 1) values (Box-Muller); u1 in (0, 1] keeps the log finite. */
static void normal_pair(uint64_t *rng, double *a, double *b) {
    double u1 = (double)((splitmix64(rng) >> 11) + 1) * 0x1.0p-53;
    double u2 = (double)(splitmix64(rng) >> 11) * 0x1.0p-53;
    double r = sqrt(-2.0 * log(u1));
    *a = r * cos(TWO_PI * u2);
    *b = r * sin(TWO_PI * u2);
}

/* ---- forward ---- */

/* One token of a token-choice router: the K experts best first (ids and sel) and their gate
 * weights before capacity. l: the token's selection logits; sm: their softmax. */
static void route_token(const smoe_troute_cfg *cfg, const float *l, const softmax_t *sm, const float *bias,
                        int32_t S, int32_t *id, float *wt, float *sel) {
    const int32_t E = cfg->n_expert;
    const bool sig = cfg->kind == SMOE_TROUTE_SIGMOID_BIAS;
    double pv = 0;
    int64_t pi = -1;
    for (int32_t j = 0; j < S; j++) {
        pi = next_best(l, 1, sig, bias, E, pv, pi, &pv);
        id[j] = (int32_t)pi;
        sel[j] = (float)pi;
    }
    double den = 0;
    switch (cfg->kind) {
    case SMOE_TROUTE_SWITCH:
    case SMOE_TROUTE_SOFTMAX_TOPK: /* raw probabilities of the full softmax */
        for (int32_t j = 0; j < S; j++) wt[j] = (float)sm_p(sm, l[id[j]]);
        break;
    case SMOE_TROUTE_SIGMOID_BIAS: /* unbiased scores, normalised over the K */
        for (int32_t j = 0; j < S; j++) den += sigmoid(l[id[j]]);
        for (int32_t j = 0; j < S; j++) wt[j] = (float)(sigmoid(l[id[j]]) / den);
        break;
    default: /* softmax over the K selected logits (= renormalised full softmax) */
        for (int32_t j = 0; j < S; j++) den += exp(l[id[j]] - sm->m);
        for (int32_t j = 0; j < S; j++) wt[j] = (float)(exp(l[id[j]] - sm->m) / den);
        break;
    }
}

smoe_status smoe_troute_forward(const smoe_troute_cfg *cfg, int64_t n, const float *z, const float *bias, uint64_t *rng,
                                int32_t *ids, float *w, float *state, smoe_troute_stats *stats) {
    smoe_status st = smoe_troute_check(cfg);
    if (st != SMOE_OK) return st;
    const int32_t E = cfg->n_expert, R = smoe_troute_width(cfg), S = smoe_troute_slots(cfg);
    if (n < 0 || n > MAX_ASSIGN / S)
        return smoe_err(SMOE_ERR_INVALID_ARG, "troute: %lld tokens of %d slots is outside [0, 2^24] assignments",
                        (long long)n, S);
    if (!state || (n > 0 && (!z || !ids || !w)))
        return smoe_err(SMOE_ERR_INVALID_ARG, "troute: forward needs z, ids, w and state");
    const bool noisy = cfg->kind == SMOE_TROUTE_NOISY_TOPK && cfg->training;
    if (noisy && !rng) return smoe_err(SMOE_ERR_INVALID_ARG, "troute: noisy top-k in training needs an rng");
    const layout L = layout_of(cfg, n);
    float *cnt = state + L.cnt, *kept = state + L.kept, *psum = state + L.psum;
    float *lg = state + L.l, *eps = state + L.eps, *sel = state + L.sel;
    for (size_t i = 0; i < L.l; i++) state[i] = 0;

    /* 1. selection logits l (and the noise) */
    if (noisy) {
        /* pairs over the flat [n][E] array, so the draws do not depend on E's parity */
        for (int64_t x = 0; x < n * E; x += 2) {
            double a, b;
            normal_pair(rng, &a, &b);
            eps[x] = (float)a;
            if (x + 1 < n * E) eps[x + 1] = (float)b;
        }
    } else if (cfg->kind == SMOE_TROUTE_NOISY_TOPK) {
        for (int64_t x = 0; x < n * E; x++) eps[x] = 0;
    }
    for (int64_t t = 0; t < n; t++) {
        const float *zt = z + t * R;
        float *lt = lg + t * E;
        if (cfg->kind == SMOE_TROUTE_ATTENTION) {
            smoe_router_attention_logits(zt, E, lt);
        } else if (cfg->kind == SMOE_TROUTE_NOISY_TOPK) {
            /* Shazeer Eq. 4: H = clean + N(0,1) softplus(noise logits) */
            for (int32_t i = 0; i < E; i++) lt[i] = (float)(zt[i] + (double)eps[t * E + i] * softplus(zt[E + i]));
        } else {
            for (int32_t i = 0; i < E; i++) lt[i] = zt[i];
        }
    }

    /* 2. per token: balance probabilities, z-loss, and (token choice) the K experts */
    double zsum = 0;
    for (int64_t t = 0; t < n; t++) {
        const float *lt = lg + t * E;
        softmax_t sm = softmax_of(lt, E);
        zsum += sm.lse * sm.lse;
        if (cfg->kind == SMOE_TROUTE_SIGMOID_BIAS) {
            double ssum = 0;
            for (int32_t i = 0; i < E; i++) ssum += sigmoid(lt[i]);
            for (int32_t i = 0; i < E; i++) psum_add(psum, E, i, sigmoid(lt[i]) / ssum);
        } else {
            for (int32_t i = 0; i < E; i++) psum_add(psum, E, i, sm_p(&sm, lt[i]));
        }
        int32_t *idt = ids + t * S;
        float *wt = w + t * S;
        if (is_token_choice(cfg->kind)) {
            route_token(cfg, lt, &sm, bias, S, idt, wt, sel + t * S);
            for (int32_t j = 0; j < S; j++) cnt[idt[j]] += 1;
        } else {
            /* expert choice: every slot starts empty and holds the token's score S[t][e]
             * (softmax over experts), which step 3 ranks per expert */
            for (int32_t e = 0; e < E; e++) {
                idt[e] = -1;
                wt[e] = (float)sm_p(&sm, lt[e]);
            }
        }
    }

    /* 3. capacity (token choice) or the experts' choice */
    const int64_t cap = smoe_troute_capacity(cfg, n);
    if (is_token_choice(cfg->kind)) {
        if (cap < n) {
            /* rank-major, then token order: all first choices outrank all second choices
             * (GShard), and within a rank earlier tokens win (Mesh-TF _switch_gating) */
            for (int32_t j = 0; j < S; j++)
                for (int64_t t = 0; t < n; t++) {
                    int32_t e = ids[t * S + j];
                    if (kept[e] < (float)cap) {
                        kept[e] += 1;
                    } else {
                        ids[t * S + j] = -1;
                        w[t * S + j] = 0;
                    }
                }
        } else {
            for (int32_t i = 0; i < E; i++) kept[i] = cnt[i];
        }
    } else if (cfg->training) {
        /* Zhou 2022 Eq. 2: each expert takes its cap best tokens by score (ties: lower token) */
        for (int32_t e = 0; e < E; e++) {
            double pv = 0;
            int64_t pt = -1;
            for (int64_t j = 0; j < cap; j++) {
                pt = next_best(w + e, E, false, NULL, n, pv, pt, &pv);
                ids[pt * E + e] = e;
            }
            cnt[e] = kept[e] = (float)cap;
        }
        for (int64_t x = 0; x < n * E; x++)
            if (ids[x] < 0) w[x] = 0;
    } else {
        /* causal inference rule: each token takes its own top-K experts by the same scores,
         * weights the raw scores, so no token sees another (docs/routers.md §11) */
        for (int64_t t = 0; t < n; t++) {
            double pv = 0;
            int64_t pe = -1;
            for (int32_t j = 0; j < cfg->k; j++) {
                pe = next_best(lg + t * E, 1, false, NULL, E, pv, pe, &pv);
                ids[t * E + pe] = (int32_t)pe;
                cnt[pe] += 1;
            }
            for (int32_t e = 0; e < E; e++)
                if (ids[t * E + e] < 0) w[t * E + e] = 0;
        }
        for (int32_t i = 0; i < E; i++) kept[i] = cnt[i];
    }

    /* 4. statistics */
    if (stats) {
        double total = 0, nkept = 0, fp = 0, hf = 0, var = 0;
        for (int32_t i = 0; i < E; i++) {
            total += cnt[i];
            nkept += kept[i];
        }
        for (int32_t i = 0; n > 0 && i < E; i++) {
            double P = psum_get(psum, E, i) / (double)n;
            fp += cnt[i] / total * P;     /* f_i = count_i / (K n) */
            hf += cnt[i] / (double)n * P; /* HF: f_i = count_i / n, sums to K */
        }
        const double mean = nkept / E;
        for (int32_t i = 0; i < E; i++) var += (kept[i] - mean) * (kept[i] - mean);
        stats->aux = n > 0 ? E * (cfg->aux_style == SMOE_AUX_HF ? hf : fp) : 0;
        stats->z = n > 0 ? zsum / (double)n : 0;
        stats->dropped = total > 0 ? (total - nkept) / total : 0;
        stats->load_cv = mean > 0 ? sqrt(var / E) / mean : 0;
    }
    return SMOE_OK;
}

/* ---- backward ---- */

/* dl [E] += the gate weights' part of dL/dl for one token. dwe(j) = dL/dw of slot j, 0 for a
 * dropped or unused slot: the weight there is the constant 0 whatever l is. */
#define DWE(j) (idt[j] >= 0 ? (double)dwt[j] : 0.0)

static void gate_backward(const smoe_troute_cfg *cfg, const float *lt, const softmax_t *sm, const float *selt,
                          const int32_t *idt, const float *dwt, float *dl) {
    const int32_t E = cfg->n_expert, S = smoe_troute_slots(cfg);
    double g = 0, den = 0;
    switch (cfg->kind) {
    case SMOE_TROUTE_EXPERT_CHOICE:
        /* w_e = p_e where expert e took the token: dl_k = p_k (dwe_k - sum_e dwe_e p_e) */
        for (int32_t e = 0; e < E; e++) g += DWE(e) * sm_p(sm, lt[e]);
        for (int32_t k = 0; k < E; k++) dl[k] += (float)(sm_p(sm, lt[k]) * (DWE(k) - g));
        break;
    case SMOE_TROUTE_SWITCH:
    case SMOE_TROUTE_SOFTMAX_TOPK:
        /* w_j = p_{s_j} of the full softmax: the same, over the selected slots */
        for (int32_t j = 0; j < S; j++) g += DWE(j) * sm_p(sm, lt[(int32_t)selt[j]]);
        for (int32_t k = 0; k < E; k++) dl[k] -= (float)(sm_p(sm, lt[k]) * g);
        for (int32_t j = 0; j < S; j++) {
            int32_t e = (int32_t)selt[j];
            dl[e] += (float)(sm_p(sm, lt[e]) * DWE(j));
        }
        break;
    case SMOE_TROUTE_SIGMOID_BIAS: {
        /* w_j = s_j / sum_S s, s = sigmoid(l); the bias only selects and gets nothing */
        for (int32_t j = 0; j < S; j++) den += sigmoid(lt[(int32_t)selt[j]]);
        for (int32_t j = 0; j < S; j++) g += DWE(j) * sigmoid(lt[(int32_t)selt[j]]) / den;
        for (int32_t j = 0; j < S; j++) {
            int32_t e = (int32_t)selt[j];
            double s = sigmoid(lt[e]);
            dl[e] += (float)(s * (1 - s) * (DWE(j) - g) / den);
        }
        break;
    }
    default:
        /* w = softmax over the K selected logits: dl_j = w_j (dwe_j - sum_S w dwe) */
        for (int32_t j = 0; j < S; j++) den += exp(lt[(int32_t)selt[j]] - sm->m);
        for (int32_t j = 0; j < S; j++) g += DWE(j) * exp(lt[(int32_t)selt[j]] - sm->m) / den;
        for (int32_t j = 0; j < S; j++) {
            int32_t e = (int32_t)selt[j];
            dl[e] += (float)(exp(lt[e] - sm->m) / den * (DWE(j) - g));
        }
        break;
    }
}
#undef DWE

/* dl [E] += coef * d(E sum_i F_i P_i)/dl for one token, P_i = mean_t p_t,i, F constant:
 * softmax p: (coef E / n) p_k (F_k - sum_i F_i p_i); DeepSeek's normalised sigmoid
 * u = s / sum s: (coef E / n) (F_k - sum_i F_i u_i) s_k (1 - s_k) / sum s.
 * F(i) is f_i = count_i / (K n) for the Switch style, the pooled hf_F for HF. */
static void aux_backward(const smoe_troute_cfg *cfg, int64_t n, const float *lt, const softmax_t *sm,
                         const float *cnt, double total, const float *hf_F, float *dl) {
    const int32_t E = cfg->n_expert;
    const double scale = (double)cfg->aux_coef * E / (double)n;
    const bool hf = cfg->aux_style == SMOE_AUX_HF;
#define F(i) (hf ? (double)hf_F[i] : cnt[i] / total)
    double G = 0;
    if (cfg->kind == SMOE_TROUTE_SIGMOID_BIAS) {
        double ssum = 0;
        for (int32_t i = 0; i < E; i++) ssum += sigmoid(lt[i]);
        for (int32_t i = 0; i < E; i++) G += F(i) * sigmoid(lt[i]) / ssum;
        for (int32_t k = 0; k < E; k++) {
            double s = sigmoid(lt[k]);
            dl[k] += (float)(scale * (F(k) - G) * s * (1 - s) / ssum);
        }
    } else {
        for (int32_t i = 0; i < E; i++) G += F(i) * sm_p(sm, lt[i]);
        for (int32_t k = 0; k < E; k++) dl[k] += (float)(scale * sm_p(sm, lt[k]) * (F(k) - G));
    }
#undef F
}

/* Yuan's router, backward for one token: dr = dzt[0:E] in, dq dk dv = dzt[0:3E] out. With
 * A_ij = softmax_j(q_i k_j): dv_j = sum_i A_ij dr_i, dS_ij = A_ij dr_i (v_j - r_i),
 * dq_i = sum_j dS_ij k_j, dk_j = sum_i dS_ij q_i. Row i only needs dr_i, so dq_i can replace
 * dr_i in place once row i is done: no scratch. */
static void attention_backward(const float *zt, int32_t E, float *dzt) {
    const float *q = zt, *k = zt + E, *v = zt + 2 * E;
    float *dk = dzt + E, *dv = dzt + 2 * E;
    for (int32_t i = 0; i < E; i++) {
        double m = -INFINITY, Z = 0, r = 0, dq = 0;
        const double dri = dzt[i], qi = q[i];
        for (int32_t j = 0; j < E; j++) m = fmax(m, qi * k[j]);
        for (int32_t j = 0; j < E; j++) {
            double a = exp(qi * k[j] - m);
            Z += a;
            r += a * v[j];
        }
        r /= Z;
        for (int32_t j = 0; j < E; j++) {
            double a = exp(qi * k[j] - m) / Z, dS = a * dri * (v[j] - r);
            dv[j] += (float)(a * dri);
            dk[j] += (float)(dS * qi);
            dq += dS * k[j];
        }
        dzt[i] = (float)dq;
    }
}

void smoe_troute_backward(const smoe_troute_cfg *cfg, int64_t n, const float *z, const int32_t *ids, const float *state,
                          const float *dw, const float *hf_F, float *dz) {
    SMOE_ASSERT(smoe_troute_check(cfg) == SMOE_OK && n >= 0);
    const int32_t E = cfg->n_expert, R = smoe_troute_width(cfg), S = smoe_troute_slots(cfg);
    const bool aux = cfg->aux_coef > 0, zl = cfg->z_coef > 0;
    SMOE_ASSERT(!aux || cfg->aux_style != SMOE_AUX_HF || hf_F);
    const layout L = layout_of(cfg, n);
    const float *cnt = state + L.cnt, *lg = state + L.l, *eps = state + L.eps, *sel = state + L.sel;
    double total = 0;
    for (int32_t i = 0; i < E; i++) total += cnt[i];
    for (int64_t t = 0; t < n; t++) {
        const float *lt = lg + t * E, *zt = z + t * R;
        float *dzt = dz + t * R, *dl = dzt; /* dL/dl accumulates in dz's first E entries */
        for (int32_t i = 0; i < R; i++) dzt[i] = 0;
        const softmax_t sm = softmax_of(lt, E);
        gate_backward(cfg, lt, &sm, is_token_choice(cfg->kind) ? sel + t * S : NULL, ids + t * S, dw + t * S, dl);
        if (aux) aux_backward(cfg, n, lt, &sm, cnt, total, hf_F, dl);
        if (zl) /* ST-MoE Eq. 5: d (1/n) sum lse^2 / dl = (2/n) lse softmax(l) */
            for (int32_t k = 0; k < E; k++) dl[k] += (float)(cfg->z_coef * 2.0 / (double)n * sm.lse * sm_p(&sm, lt[k]));
        if (cfg->kind == SMOE_TROUTE_NOISY_TOPK) {
            /* h = clean + eps softplus(noise): dclean = dh, dnoise = dh eps sigmoid(noise) */
            for (int32_t i = 0; i < E; i++) dzt[E + i] = (float)(dl[i] * (double)eps[t * E + i] * sigmoid(zt[E + i]));
        } else if (cfg->kind == SMOE_TROUTE_ATTENTION) {
            attention_backward(zt, E, dzt);
        }
    }
}

/* ---- pooling, bias update, accessors ---- */

double smoe_troute_hf_pool(const smoe_troute_cfg *cfg, int32_t L, int64_t n, const float *const *states, float *hf_F) {
    const int32_t E = cfg->n_expert;
    for (int32_t i = 0; i < E; i++) hf_F[i] = 0;
    if (L < 1 || n < 1) return 0;
    const layout lay = layout_of(cfg, n);
    const double rows = (double)L * (double)n;
    double val = 0;
    for (int32_t i = 0; i < E; i++) {
        double c = 0, p = 0;
        for (int32_t l = 0; l < L; l++) {
            c += states[l][lay.cnt + i];
            p += psum_get(states[l] + lay.psum, E, i);
        }
        val += (c / rows) * (p / rows);
        hf_F[i] = (float)(c / rows / L);
    }
    return E * val;
}

void smoe_troute_update_bias(const smoe_troute_cfg *cfg, const double *loads, float *bias) {
    const int32_t E = cfg->n_expert;
    double mean = 0;
    for (int32_t i = 0; i < E; i++) mean += loads[i];
    mean /= E;
    /* Loss-Free Balancing: b_i += rate * sign(mean - load_i) */
    for (int32_t i = 0; i < E; i++) {
        if (loads[i] > mean) bias[i] -= cfg->bias_rate;
        else if (loads[i] < mean) bias[i] += cfg->bias_rate;
    }
}

const float *smoe_troute_logits(const smoe_troute_cfg *cfg, const float *state) {
    return state + layout_of(cfg, 0).l;
}

void smoe_troute_add_loads(const smoe_troute_cfg *cfg, const float *state, double *loads) {
    for (int32_t i = 0; i < cfg->n_expert; i++) loads[i] += state[i];
}
