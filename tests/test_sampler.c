/*
 * test_sampler.c - tests for smoe_sampler (src/sampler.c): greedy and its tie rule,
 * seeding and reproducibility (including a pinned sequence computed independently from
 * the xoshiro256** and splitmix64 definitions), the drawn histogram against softmax, and
 * what temperature, top-k, top-p, min-p and the repetition penalty do to the support and
 * the probabilities; NaN / +-inf logits, n_vocab 1, and invalid parameters. Histogram
 * checks allow 5 standard errors, so with fixed seeds they are deterministic and would
 * only fail for a real bias.
 */
#include "smoe.h"
#include "testhelp.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parameters with every filter off: plain softmax sampling at temperature t. */
static smoe_sampler_params plain(float t, uint64_t seed) {
    smoe_sampler_params p = smoe_sampler_default_params();
    p.temperature = t;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.repeat_penalty = 1.0f;
    p.seed = seed;
    return p;
}

static smoe_sampler *make(const smoe_sampler_params *p, int32_t n_vocab) {
    smoe_sampler *s = NULL;
    CHECK_OK(smoe_sampler_init(p, n_vocab, &s));
    return s;
}

static int32_t draw(smoe_sampler *s, const float *logits) {
    int32_t id = -1;
    smoe_status st = smoe_sampler_sample(s, logits, &id);
    if (st != SMOE_OK) {
        CHECK(st == SMOE_OK, "sample: %s", smoe_last_error());
        return -1;
    }
    return id;
}

/* Reference softmax of logits / t in double. */
static void softmax(const float *l, int n, double t, double *p) {
    double m = -INFINITY, sum = 0;
    for (int i = 0; i < n; i++) m = l[i] > m ? l[i] : m;
    for (int i = 0; i < n; i++) sum += p[i] = exp((l[i] - m) / t);
    for (int i = 0; i < n; i++) p[i] /= sum;
}

/* Draw `draws` tokens and check each count against draws*p[i] within 5 standard errors
 * (a token with p == 0 must never appear). */
static void check_hist(smoe_sampler *s, const float *logits, int n, const double *p, int draws,
                       const char *what) {
    long cnt[64] = {0};
    int bad = 0;
    for (int k = 0; k < draws; k++) {
        int32_t id = draw(s, logits);
        if (id < 0 || id >= n) {
            bad++;
            continue;
        }
        cnt[id]++;
    }
    CHECK(bad == 0, "%s: %d draws out of range", what, bad);
    for (int i = 0; i < n; i++) {
        double e = draws * p[i];
        if (p[i] == 0) {
            CHECK(cnt[i] == 0, "%s: token %d has p=0 but drawn %ld times", what, i, cnt[i]);
            continue;
        }
        double sd = sqrt(draws * p[i] * (1 - p[i]));
        CHECK(fabs(cnt[i] - e) <= 5 * sd + 1, "%s: token %d count %ld, expected %.1f (sd %.1f)",
              what, i, cnt[i], e, sd);
    }
}

static void test_greedy(void) {
    smoe_sampler_params p = plain(0.0f, 1);
    smoe_sampler *s = make(&p, 6);
    const float l1[6] = {0.5f, 3.0f, -2.0f, 3.0f, 1.0f, 3.0f};
    CHECK(draw(s, l1) == 1, "greedy tie -> lowest id");
    const float l2[6] = {-5.0f, -4.0f, -3.0f, -2.0f, -1.0f, -1.5f};
    CHECK(draw(s, l2) == 4, "greedy all negative");
    const float l3[6] = {-INFINITY, -INFINITY, -7.0f, -INFINITY, -INFINITY, -INFINITY};
    CHECK(draw(s, l3) == 2, "greedy with -inf");
    const float l4[6] = {1.0f, INFINITY, 2.0f, INFINITY, 0.0f, 0.0f};
    CHECK(draw(s, l4) == 1, "greedy with +inf ties");
    smoe_sampler_free(s);

    /* negative temperature is greedy too, and random vocabularies agree with argmax */
    p.temperature = -1.0f;
    s = make(&p, 1000);
    unsigned long long rs = 7;
    float l[1000];
    int ok = 1;
    for (int trial = 0; trial < 50; trial++) {
        for (int i = 0; i < 1000; i++) l[i] = (float)(int)(th_rng_float(&rs) * 20.0f); /* many ties */
        int best = 0;
        for (int i = 1; i < 1000; i++) best = l[i] > l[best] ? i : best;
        if (draw(s, l) != best) ok = 0;
    }
    CHECK(ok, "greedy == argmax (lowest id) on 50 random vocabularies");
    smoe_sampler_free(s);
}

static void test_seed(void) {
    enum { N = 1000, V = 1000 };
    static float zeros[V]; /* uniform distribution: the draw is floor(u * V) */
    static int32_t a[N], b[N], c[N];
    smoe_sampler_params p = plain(1.0f, 42);
    smoe_sampler *s1 = make(&p, V), *s2 = make(&p, V);
    p.seed = 43;
    smoe_sampler *s3 = make(&p, V);
    for (int i = 0; i < N; i++) {
        a[i] = draw(s1, zeros);
        b[i] = draw(s2, zeros);
        c[i] = draw(s3, zeros);
    }
    CHECK(memcmp(a, b, sizeof a) == 0, "same seed -> same 1000 draws");
    int same = 0;
    for (int i = 0; i < N; i++) same += a[i] == c[i];
    CHECK(same < 20, "different seed -> different draws (%d of 1000 equal)", same);

    /* Pinned: computed in Python from the reference xoshiro256** + splitmix64, so the
     * stream is the same on every platform and does not change by accident. */
    const int32_t want42[10] = {83, 378, 680, 924, 991, 769, 719, 850, 761, 583};
    CHECK(memcmp(a, want42, sizeof want42) == 0, "seed 42 golden sequence (got %d %d %d ...)",
          a[0], a[1], a[2]);

    /* reset re-seeds: the run repeats exactly */
    smoe_sampler_reset(s1);
    int rep = 1;
    for (int i = 0; i < N; i++) rep &= draw(s1, zeros) == a[i];
    CHECK(rep, "reset -> same sequence again");
    smoe_sampler_free(s1);
    smoe_sampler_free(s2);
    smoe_sampler_free(s3);

    /* seed 0 is an ordinary fixed seed */
    p = plain(1.0f, 0);
    s1 = make(&p, V);
    const int32_t want0[10] = {601, 747, 103, 416, 732, 999, 422, 535, 855, 918};
    int ok = 1;
    for (int i = 0; i < 10; i++) ok &= draw(s1, zeros) == want0[i];
    CHECK(ok, "seed 0 golden sequence");
    smoe_sampler_free(s1);
}

static void test_histogram(void) {
    enum { V = 6, D = 200000 };
    const float l[V] = {1.0f, 2.0f, 0.5f, -1.0f, 3.0f, 2.0f};
    double pr[V];
    const float temps[3] = {1.0f, 2.0f, 0.5f};
    for (int t = 0; t < 3; t++) {
        smoe_sampler_params p = plain(temps[t], 1234 + (uint64_t)t);
        smoe_sampler *s = make(&p, V);
        softmax(l, V, temps[t], pr);
        char what[64];
        snprintf(what, sizeof what, "softmax histogram T=%g", (double)temps[t]);
        check_hist(s, l, V, pr, D, what);
        smoe_sampler_free(s);
    }
    /* temperature moves mass the expected way: hotter -> flatter */
    double p1[V], p2[V], ph[V];
    softmax(l, V, 1.0, p1);
    softmax(l, V, 2.0, p2);
    softmax(l, V, 0.5, ph);
    CHECK(p2[4] < p1[4] && p1[4] < ph[4] && p2[3] > p1[3] && p1[3] > ph[3],
          "reference: temperature flattens/sharpens");
    /* and the sampler agrees: empirical frequency of the top token orders the same */
    long top[3] = {0};
    for (int t = 0; t < 3; t++) {
        smoe_sampler_params p = plain(temps[t], 99);
        smoe_sampler *s = make(&p, V);
        for (int k = 0; k < 20000; k++) top[t] += draw(s, l) == 4;
        smoe_sampler_free(s);
    }
    CHECK(top[1] < top[0] && top[0] < top[2], "top-token frequency T=2 %ld < T=1 %ld < T=0.5 %ld",
          top[1], top[0], top[2]);
}

static void test_top_k(void) {
    /* top-k 1 is greedy, ties included */
    smoe_sampler_params p = plain(1.0f, 5);
    p.top_k = 1;
    smoe_sampler *s = make(&p, 1000);
    smoe_sampler_params pg = plain(0.0f, 5);
    smoe_sampler *g = make(&pg, 1000);
    unsigned long long rs = 11;
    float l[1000];
    int ok = 1;
    for (int trial = 0; trial < 100; trial++) {
        for (int i = 0; i < 1000; i++) l[i] = (float)(int)(th_rng_float(&rs) * 8.0f);
        if (draw(s, l) != draw(g, l)) ok = 0;
    }
    CHECK(ok, "top_k=1 == greedy on 100 random vocabularies");
    smoe_sampler_free(s);
    smoe_sampler_free(g);

    /* top-k 3 over 10 tokens: exactly the 3 largest, with softmax renormalised among them */
    enum { V = 10 };
    const float lk[V] = {0.1f, 0.9f, -0.3f, 0.8f, 0.2f, 0.85f, 0.0f, 0.5f, -1.0f, 0.4f};
    p = plain(1.0f, 77);
    p.top_k = 3;
    s = make(&p, V);
    float sub[V];
    for (int i = 0; i < V; i++) sub[i] = (i == 1 || i == 3 || i == 5) ? lk[i] : -INFINITY;
    double pr[V];
    softmax(sub, V, 1.0, pr);
    check_hist(s, lk, V, pr, 100000, "top_k=3 histogram");
    smoe_sampler_free(s);

    /* ties at the cut: all equal, k=3 -> ids 0,1,2 only, uniformly */
    const float eq[V] = {0};
    s = make(&p, V);
    for (int i = 0; i < V; i++) pr[i] = i < 3 ? 1.0 / 3 : 0.0;
    check_hist(s, eq, V, pr, 30000, "top_k=3 ties -> lowest ids");
    smoe_sampler_free(s);

    /* a big vocabulary through the heap path: every draw is among the reference top 40 */
    enum { BV = 150000 };
    float *bl = malloc(BV * sizeof *bl);
    for (int i = 0; i < BV; i++) bl[i] = th_rng_float(&rs) * 4.0f;
    float thr40; /* 40th largest value */
    {
        float *cp = malloc(BV * sizeof *cp);
        memcpy(cp, bl, BV * sizeof *cp);
        for (int k = 0; k < 40; k++) { /* 40 rounds of selection: fine for a test */
            int m = k;
            for (int i = k + 1; i < BV; i++) m = cp[i] > cp[m] ? i : m;
            float t = cp[k];
            cp[k] = cp[m];
            cp[m] = t;
        }
        thr40 = cp[39];
        free(cp);
    }
    p = plain(5.0f, 3);
    p.top_k = 40;
    s = make(&p, BV);
    int in = 1, distinct = 0;
    static unsigned char seen[BV];
    for (int k = 0; k < 2000; k++) {
        int32_t id = draw(s, bl);
        if (id < 0 || bl[id] < thr40) in = 0;
        else if (!seen[id]++) distinct++;
    }
    CHECK(in, "top_k=40 on 150000 tokens: draws within the top 40");
    CHECK(distinct == 40, "top_k=40 at T=5 reaches all 40 (%d)", distinct);
    smoe_sampler_free(s);
    free(bl);
}

/* Logits whose softmax (T=1) is exactly the given probabilities, up to float rounding. */
static void logits_of(const double *prob, int n, float *l) {
    for (int i = 0; i < n; i++) l[i] = prob[i] > 0 ? (float)log(prob[i]) : -INFINITY;
}

static void test_top_p_min_p(void) {
    enum { V = 5 };
    /* ids shuffled relative to rank so ordering is really exercised */
    const double prob[V] = {0.15, 0.05, 0.5, 0.3, 0.0};
    float l[V];
    logits_of(prob, V, l);
    struct {
        float top_p, min_p;
        double expect[V];
        const char *what;
    } cases[] = {
        {0.75f, 0.0f, {0, 0, 0.5 / 0.8, 0.3 / 0.8, 0}, "top_p=0.75 keeps {0.5,0.3}"},
        {0.45f, 0.0f, {0, 0, 1, 0, 0}, "top_p=0.45 keeps the top only"},
        {0.0f, 0.0f, {0, 0, 1, 0, 0}, "top_p=0 keeps one"},
        {0.9f, 0.0f, {0.15 / 0.95, 0, 0.5 / 0.95, 0.3 / 0.95, 0}, "top_p=0.9 keeps three"},
        {1.0f, 0.2f, {0.15 / 0.95, 0, 0.5 / 0.95, 0.3 / 0.95, 0}, "min_p=0.2 drops 0.05"},
        {1.0f, 0.4f, {0, 0, 0.5 / 0.8, 0.3 / 0.8, 0}, "min_p=0.4 keeps {0.5,0.3}"},
        {1.0f, 5.0f, {0, 0, 1, 0, 0}, "min_p>1 keeps the top"},
        {0.75f, 0.7f, {0, 0, 1, 0, 0}, "top_p=0.75 then min_p=0.7 -> top only"},
        {0.99f, 0.2f, {0.15 / 0.95, 0, 0.5 / 0.95, 0.3 / 0.95, 0}, "top_p=0.99 + min_p=0.2"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        smoe_sampler_params p = plain(1.0f, 500 + c);
        p.top_p = cases[c].top_p;
        p.min_p = cases[c].min_p;
        smoe_sampler *s = make(&p, V);
        check_hist(s, l, V, cases[c].expect, 40000, cases[c].what);
        smoe_sampler_free(s);
    }

    /* top-p with top-k off over a real-sized vocabulary (the full-sort path), with and
     * without the min-p pre-filter: every draw lies in the reference set. */
    enum { BV = 32000 };
    float *bl = malloc(BV * sizeof *bl);
    double *bp = malloc(BV * sizeof *bp);
    int *order = malloc(BV * sizeof *order);
    unsigned long long rs = 2024;
    for (int i = 0; i < BV; i++) bl[i] = (float)(int)(th_rng_float(&rs) * 60.0f) * 0.25f;
    softmax(bl, BV, 1.0, bp);
    /* reference rank: insertion into a sorted order would be slow; sort by (p desc, id asc) */
    for (int i = 0; i < BV; i++) order[i] = i;
    {
        /* simple shell sort, total order identical to the sampler's */
        for (int gap = BV / 2; gap > 0; gap /= 2)
            for (int i = gap; i < BV; i++) {
                int t = order[i], j = i;
                while (j >= gap && (bl[order[j - gap]] < bl[t] ||
                                    (bl[order[j - gap]] == bl[t] && order[j - gap] > t))) {
                    order[j] = order[j - gap];
                    j -= gap;
                }
                order[j] = t;
            }
    }
    static unsigned char allowed[BV], allowed2[BV];
    double cum = 0, pmax = bp[order[0]];
    for (int i = 0; i < BV; i++) {
        cum += bp[order[i]];
        allowed[order[i]] = 1;
        if (bp[order[i]] >= 0.05 * pmax) allowed2[order[i]] = 1;
        if (cum >= 0.9) break;
    }
    for (int variant = 0; variant < 2; variant++) {
        smoe_sampler_params p = plain(1.0f, 8 + (uint64_t)variant);
        p.top_p = 0.9f;
        p.min_p = variant ? 0.05f : 0.0f;
        smoe_sampler *s = make(&p, BV);
        const unsigned char *al = variant ? allowed2 : allowed;
        int in = 1;
        for (int k = 0; k < 500; k++) {
            int32_t id = draw(s, bl);
            if (id < 0 || !al[id]) in = 0;
        }
        CHECK(in, "32000-token top_p=0.9%s: draws within the reference prefix",
              variant ? " + min_p=0.05" : "");
        smoe_sampler_free(s);
    }
    free(bl);
    free(bp);
    free(order);
}

static void test_penalty(void) {
    smoe_sampler_params p = plain(0.0f, 1);
    p.repeat_penalty = 2.0f;
    p.repeat_last_n = 2;
    smoe_sampler *s = make(&p, 3);
    const float l[3] = {3.0f, 2.0f, 0.0f};
    CHECK(draw(s, l) == 0, "no history: argmax");
    smoe_sampler_accept(s, 0);
    CHECK(draw(s, l) == 1, "token 0 penalised 3 -> 1.5 < 2");
    smoe_sampler_accept(s, 2);
    smoe_sampler_accept(s, 2);
    CHECK(draw(s, l) == 0, "token 0 fell out of the last-2 window");
    smoe_sampler_accept(s, 0);
    smoe_sampler_reset(s);
    CHECK(draw(s, l) == 0, "reset clears the history");
    smoe_sampler_accept(s, -1);
    smoe_sampler_accept(s, 3); /* out of range: ignored */
    CHECK(draw(s, l) == 0, "out-of-range accept ignored");
    smoe_sampler_free(s);

    /* each distinct token once: 3 -> 1.5 (> 1), not 0.75 */
    p.repeat_last_n = 64;
    s = make(&p, 2);
    const float l2[2] = {3.0f, 1.0f};
    smoe_sampler_accept(s, 0);
    smoe_sampler_accept(s, 0);
    smoe_sampler_accept(s, 0);
    CHECK(draw(s, l2) == 0, "repeated token penalised once");
    smoe_sampler_free(s);

    /* negative logits are multiplied: -1 -> -2 < -1.5 */
    s = make(&p, 2);
    const float l3[2] = {-1.0f, -1.5f};
    smoe_sampler_accept(s, 0);
    CHECK(draw(s, l3) == 1, "negative logit penalised by multiplying");
    smoe_sampler_free(s);

    /* penalty 1 or last_n 0: off */
    p.repeat_penalty = 1.0f;
    s = make(&p, 3);
    smoe_sampler_accept(s, 0);
    CHECK(draw(s, l) == 0, "penalty 1.0 is off");
    smoe_sampler_free(s);
    p.repeat_penalty = 2.0f;
    p.repeat_last_n = 0;
    s = make(&p, 3);
    smoe_sampler_accept(s, 0);
    CHECK(draw(s, l) == 0, "repeat_last_n 0 is off");
    smoe_sampler_free(s);

    /* sampled: the histogram matches softmax of the penalised logits */
    enum { V = 4 };
    const float lh[V] = {2.0f, 2.0f, -1.0f, -1.0f};
    const float pen[V] = {1.0f, 2.0f, -2.0f, -1.0f};
    double pr[V];
    softmax(pen, V, 1.0, pr);
    p = plain(1.0f, 31);
    p.repeat_penalty = 2.0f;
    p.repeat_last_n = 8;
    s = make(&p, V);
    smoe_sampler_accept(s, 0);
    smoe_sampler_accept(s, 2);
    check_hist(s, lh, V, pr, 100000, "penalised histogram");
    smoe_sampler_free(s);
}

static void test_special_values(void) {
    smoe_sampler_params p = plain(1.0f, 9);
    smoe_sampler *s = make(&p, 4);
    float l[4] = {0.0f, NAN, 1.0f, 2.0f};
    int32_t id = 123;
    CHECK(smoe_sampler_sample(s, l, &id) == SMOE_ERR_INVALID_ARG, "NaN rejected");
    CHECK(strstr(smoe_last_error(), "NaN") != NULL, "message names NaN: %s", smoe_last_error());
    smoe_sampler_free(s);
    p.temperature = 0.0f;
    s = make(&p, 4);
    CHECK(smoe_sampler_sample(s, l, &id) == SMOE_ERR_INVALID_ARG, "NaN rejected in greedy mode");
    CHECK(smoe_sampler_sample(s, NULL, &id) == SMOE_ERR_INVALID_ARG, "NULL logits rejected");
    CHECK(smoe_sampler_sample(NULL, l, &id) == SMOE_ERR_INVALID_ARG, "NULL sampler rejected");
    const float ok[4] = {0, 1, 2, 3};
    CHECK(smoe_sampler_sample(s, ok, NULL) == SMOE_ERR_INVALID_ARG, "NULL out rejected");
    smoe_sampler_free(s);

    /* -inf is never drawn */
    p = plain(1.0f, 10);
    s = make(&p, 4);
    const float ni[4] = {-INFINITY, 0.0f, -INFINITY, 0.0f};
    double pr[4] = {0, 0.5, 0, 0.5};
    check_hist(s, ni, 4, pr, 20000, "-inf never drawn");
    /* +inf: only the +inf tokens, equally */
    const float pi[4] = {5.0f, INFINITY, 1e30f, INFINITY};
    check_hist(s, pi, 4, pr, 20000, "+inf tokens share everything");
    /* weights that underflow (e^-200) are 0 and never drawn, wherever they sit */
    const float uf[4] = {-200.0f, 0.0f, -200.0f, 0.0f};
    check_hist(s, uf, 4, pr, 20000, "underflowed weights never drawn");
    /* all -inf: nothing possible */
    const float all[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    CHECK(smoe_sampler_sample(s, all, &id) == SMOE_ERR_INVALID_ARG, "all -inf rejected");
    /* huge finite spread and tiny temperature stay finite */
    const float big[4] = {-3e38f, 3e38f, 0.0f, 3e38f};
    double pb[4] = {0, 0.5, 0, 0.5};
    check_hist(s, big, 4, pb, 20000, "extreme finite logits");
    smoe_sampler_free(s);
    p.temperature = 1e-30f;
    s = make(&p, 4);
    const float close[4] = {1.0f, 1.0f + 1e-6f, 0.5f, 1.0f};
    int okc = 1;
    for (int k = 0; k < 100; k++) okc &= draw(s, close) == 1;
    CHECK(okc, "T=1e-30 behaves like greedy");
    smoe_sampler_free(s);
}

static void test_tiny_and_invalid(void) {
    smoe_sampler_params d = smoe_sampler_default_params();
    CHECK(d.temperature == 0.8f && d.top_k == 40 && d.top_p == 0.95f && d.min_p == 0.05f &&
              d.repeat_penalty == 1.0f && d.repeat_last_n == 64 && d.seed == 0,
          "default params");

    const float one[1] = {-3.5f};
    const float temps[2] = {0.0f, 0.8f};
    for (int t = 0; t < 2; t++) {
        d.temperature = temps[t];
        smoe_sampler *s = make(&d, 1);
        int ok = 1;
        for (int k = 0; k < 100; k++) ok &= draw(s, one) == 0;
        CHECK(ok, "n_vocab 1 always gives 0 (T=%g)", (double)temps[t]);
        smoe_sampler_free(s);
    }
    /* defaults on a small vocabulary: top_k > n_vocab is just "all" */
    d = smoe_sampler_default_params();
    smoe_sampler *s = make(&d, 3);
    const float l3[3] = {0.0f, 0.1f, 0.2f};
    int32_t id = draw(s, l3);
    CHECK(id >= 0 && id < 3, "defaults with n_vocab 3 -> %d", id);
    smoe_sampler_free(s);
    s = make(NULL, 3); /* NULL params: defaults */
    id = draw(s, l3);
    CHECK(id >= 0 && id < 3, "NULL params -> defaults");
    smoe_sampler_free(s);
    smoe_sampler_free(NULL);
    smoe_sampler_reset(NULL);
    smoe_sampler_accept(NULL, 0);

    d = smoe_sampler_default_params();
    s = (smoe_sampler *)&d; /* any non-NULL value: init must overwrite it with NULL */
    CHECK(smoe_sampler_init(&d, 0, &s) == SMOE_ERR_INVALID_ARG && s == NULL, "n_vocab 0 rejected");
    CHECK(smoe_sampler_init(&d, -5, &s) == SMOE_ERR_INVALID_ARG, "n_vocab < 0 rejected");
    CHECK(smoe_sampler_init(&d, 10, NULL) == SMOE_ERR_INVALID_ARG, "NULL out rejected");
    struct {
        smoe_sampler_params p;
        const char *what;
    } bad[5];
    for (int i = 0; i < 5; i++) bad[i].p = smoe_sampler_default_params();
    bad[0].p.temperature = NAN, bad[0].what = "temperature NaN";
    bad[1].p.top_p = NAN, bad[1].what = "top_p NaN";
    bad[2].p.repeat_penalty = 0.0f, bad[2].what = "repeat_penalty 0";
    bad[3].p.repeat_penalty = INFINITY, bad[3].what = "repeat_penalty inf";
    bad[4].p.repeat_last_n = -1, bad[4].what = "repeat_last_n < 0";
    for (int i = 0; i < 5; i++) {
        s = NULL;
        CHECK(smoe_sampler_init(&bad[i].p, 10, &s) == SMOE_ERR_INVALID_ARG && s == NULL, "%s rejected",
              bad[i].what);
        smoe_sampler_free(s);
    }
}

int main(void) {
    test_greedy();
    test_seed();
    test_histogram();
    test_top_k();
    test_top_p_min_p();
    test_penalty();
    test_special_values();
    test_tiny_and_invalid();
    return TEST_REPORT();
}
