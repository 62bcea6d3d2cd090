/*
 * sampler.c - picks the next token from a vector of logits: greedy, or temperature /
 * top-k / top-p / min-p sampling with an optional repetition penalty, driven by an
 * explicit, seeded PRNG.
 *
 * What it does, in this order, for one call of smoe_sampler_sample():
 *   1. Reject logits containing NaN (SMOE_ERR_INVALID_ARG). -inf marks an impossible
 *      token and is never picked; if every logit is -inf there is nothing to pick and the
 *      call fails with SMOE_ERR_INVALID_ARG. +inf marks a certain token: when any logit
 *      is +inf only the +inf tokens remain, with equal weight (the limit of softmax).
 *   2. Repetition penalty (repeat_penalty != 1): every DISTINCT token among the last
 *      repeat_last_n accepted tokens is penalised once, CTRL-style:
 *      logit > 0 ? logit / penalty : logit * penalty (so penalty > 1 always lowers it).
 *      The penalty also applies in greedy mode: a caller asking for --temp 0 together
 *      with a repetition penalty expects the penalty to matter.
 *   3. temperature <= 0: greedy, the argmax of the penalised logits; ties go to the
 *      lowest id. Nothing below is done and the RNG is not advanced.
 *   4. Divide by the temperature (done as (logit - max) / T in double, so a tiny T cannot
 *      overflow to inf).
 *   5. top-k (k > 0 and k < candidates): keep the k largest logits, ties broken in favour
 *      of the lower id, so the kept set is deterministic.
 *   6. Softmax weights e^((logit - max) / T), max subtracted first: the exponent in
 *      double, rounded to float, e^x by cpu/vexp.h (vectorised, within 2 ulp, the same
 *      bits on every ISA); weights under e^-87 (float's range) count as 0. Sums in
 *      double.
 *   7. top-p (top_p < 1): sort by probability (descending, ties by lower id) and keep the
 *      smallest prefix whose mass is >= top_p; at least one token (top_p <= 0 keeps one).
 *   8. min-p (min_p > 0): drop tokens whose probability is < min_p * the largest
 *      probability (min_p > 1 is treated as 1, so the most likely token always stays).
 *      top-p's mass is measured against the distribution BEFORE min-p, as the order
 *      above says; min-p is just applied early when that changes nothing, to shorten
 *      the sort.
 *   9. Renormalise the survivors and draw one with the RNG: the first token, in candidate
 *      order, whose running sum of weights exceeds u * (their total), found by bisection
 *      over the running sums (never a token of weight 0).
 *
 * Defaults (smoe_sampler_default_params): temperature 0.8, top_k 40, top_p 0.95,
 * min_p 0.05, repeat_penalty 1.0 (off), repeat_last_n 64, seed 0. The seed is used as
 * given; 0 is an ordinary fixed seed (not "random"), so runs are reproducible unless the
 * caller passes a seed of its own (e.g. from the clock).
 *
 * RNG: xoshiro256** seeded through splitmix64, integer-only, so the same seed gives the
 * same random stream on every platform, and the exponentials are our own (cpu/vexp.h),
 * so the same seed draws the same tokens everywhere.
 *
 * Speed: the path of the OpenAI defaults (T only, no top-k/top-p/min-p) over a vocabulary
 * of 4096 takes about 8 us (it was 49 us with libm's exp and a linear draw): the copy and
 * checks, the maximum and the exponents are branch-free loops over the vocabulary; what
 * remains is the running sum, one double add after another.
 *
 * Sampler state: the RNG and a ring of the last repeat_last_n accepted tokens (only kept
 * when the penalty is on). smoe_sampler_accept() appends to the ring (ids outside
 * [0, n_vocab) are ignored); smoe_sampler_reset() clears it AND re-seeds the RNG, so a
 * reset sampler repeats its first run exactly.
 *
 * Memory: all scratch (n_vocab floats x2, ids, doubles x2 and mark bytes) is allocated in
 * init; sample() does not allocate. top-k uses a bounded heap (O(n log k)). top-p
 * without top-k needs a sort, but only of the tokens that can still be in its prefix:
 * a linear pass over power-of-two weight buckets (and min-p, when set) rules out the
 * long tail first, and a heapsort orders the rest.
 *
 * What it does not do: no I/O, no threads (a sampler belongs to one thread at a time),
 * no frequency/presence penalties, no grammar or logit-bias masks (callers can set
 * logits to -inf themselves), no mirostat / typical / tail-free sampling.
 */
#include "smoe_internal.h"
#include "cpu/vexp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct smoe_sampler {
    smoe_sampler_params p;
    int32_t n_vocab;
    uint64_t rng[4];     /* xoshiro256** state */
    /* recent accepted tokens, a ring buffer; NULL when the penalty is off */
    int32_t *hist;
    int32_t hist_cap, hist_len, hist_pos;
    /* scratch, n_vocab entries each */
    float *work;         /* penalised logits */
    int32_t *cand;       /* candidate ids */
    double *wt;          /* unnormalised probability, indexed by token id */
    float *ex;           /* the exponents, then the exponentials, in candidate order */
    double *cum;         /* running sums of the weights, in candidate order */
    uint8_t *mark;       /* "already penalised" flags, all zero between calls */
};

/* ---------------------------------------------------------------- RNG */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void rng_seed(uint64_t st[4], uint64_t seed) {
    /* splitmix64 spreads any seed (0 included) over the whole state and never yields
     * the all-zero state xoshiro cannot leave. */
    for (int i = 0; i < 4; i++) st[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(uint64_t s[4]) {
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform in [0, 1) with 53 random bits: exact in a double. */
static double rng_uniform(uint64_t s[4]) { return (double)(rng_next(s) >> 11) * 0x1.0p-53; }

/* ---------------------------------------------------------------- params */

smoe_sampler_params smoe_sampler_default_params(void) {
    smoe_sampler_params p;
    memset(&p, 0, sizeof p);
    p.temperature = 0.8f;
    p.top_k = 40;
    p.top_p = 0.95f;
    p.min_p = 0.05f;
    p.repeat_penalty = 1.0f;
    p.repeat_last_n = 64;
    p.seed = 0;
    return p;
}

static bool penalty_on(const smoe_sampler_params *p) {
    return p->repeat_penalty != 1.0f && p->repeat_last_n > 0;
}

void smoe_sampler_free(smoe_sampler *s) {
    if (!s) return;
    free(s->hist);
    smoe_free_aligned(s->work);
    smoe_free_aligned(s->cand);
    smoe_free_aligned(s->wt);
    smoe_free_aligned(s->ex);
    smoe_free_aligned(s->cum);
    smoe_free_aligned(s->mark);
    free(s);
}

smoe_status smoe_sampler_init(const smoe_sampler_params *p, int32_t n_vocab, smoe_sampler **out) {
    if (!out) return smoe_err(SMOE_ERR_INVALID_ARG, "sampler: out is NULL");
    *out = NULL;
    smoe_sampler_params def = smoe_sampler_default_params();
    if (!p) p = &def; /* NULL params: the defaults */
    if (n_vocab <= 0) return smoe_err(SMOE_ERR_INVALID_ARG, "sampler: n_vocab %d <= 0", (int)n_vocab);
    /* NaN would make every comparison false and silently change the meaning of a knob. */
    if (isnan(p->temperature)) return smoe_err(SMOE_ERR_INVALID_ARG, "sampler: temperature is NaN");
    if (isnan(p->top_p)) return smoe_err(SMOE_ERR_INVALID_ARG, "sampler: top_p is NaN");
    if (isnan(p->min_p)) return smoe_err(SMOE_ERR_INVALID_ARG, "sampler: min_p is NaN");
    if (!(p->repeat_penalty > 0.0f) || isinf(p->repeat_penalty))
        return smoe_err(SMOE_ERR_INVALID_ARG, "sampler: repeat_penalty %g must be finite and > 0",
                        (double)p->repeat_penalty);
    if (p->repeat_last_n < 0)
        return smoe_err(SMOE_ERR_INVALID_ARG, "sampler: repeat_last_n %d < 0", (int)p->repeat_last_n);

    smoe_sampler *s = calloc(1, sizeof *s);
    if (!s) return smoe_err(SMOE_ERR_NOMEM, "sampler: out of memory");
    s->p = *p;
    s->n_vocab = n_vocab;
    size_t n = (size_t)n_vocab;
    s->work = smoe_alloc_aligned(n, sizeof *s->work);
    s->cand = smoe_alloc_aligned(n, sizeof *s->cand);
    s->wt = smoe_alloc_aligned(n, sizeof *s->wt);
    s->ex = smoe_alloc_aligned(n, sizeof *s->ex);
    s->cum = smoe_alloc_aligned(n, sizeof *s->cum);
    s->mark = smoe_alloc_aligned(n, sizeof *s->mark);
    if (penalty_on(p)) {
        s->hist_cap = p->repeat_last_n;
        s->hist = malloc((size_t)s->hist_cap * sizeof *s->hist);
    }
    if (!s->work || !s->cand || !s->wt || !s->ex || !s->cum || !s->mark || (penalty_on(p) && !s->hist)) {
        smoe_sampler_free(s);
        return smoe_err(SMOE_ERR_NOMEM, "sampler: out of memory for n_vocab %d", (int)n_vocab);
    }
    rng_seed(s->rng, p->seed);
    *out = s;
    return SMOE_OK;
}

void smoe_sampler_reset(smoe_sampler *s) {
    if (!s) return;
    s->hist_len = 0;
    s->hist_pos = 0;
    rng_seed(s->rng, s->p.seed);
}

void smoe_sampler_accept(smoe_sampler *s, int32_t id) {
    if (!s || !s->hist || id < 0 || id >= s->n_vocab) return;
    s->hist[s->hist_pos] = id;
    s->hist_pos = (s->hist_pos + 1) % s->hist_cap;
    if (s->hist_len < s->hist_cap) s->hist_len++;
}

/* ---------------------------------------------------------------- selection */

/* The total order every ranking uses: larger logit first, then lower id. Being total
 * (ids are distinct) makes top-k and top-p results independent of the algorithm. */
static inline bool better(const float *v, int32_t a, int32_t b) {
    return v[a] > v[b] || (v[a] == v[b] && a < b);
}

/* Heap with the WORST element at the root (so it can be evicted in O(log k)). */
static void sift_down(const float *v, int32_t *h, int32_t n, int32_t i) {
    for (;;) {
        /* 64-bit child indices: 2i+1 cannot overflow even for absurd vocabularies */
        int64_t w = i, l = 2 * (int64_t)i + 1, r = l + 1;
        if (l < n && better(v, h[w], h[l])) w = l;
        if (r < n && better(v, h[w], h[r])) w = r;
        if (w == i) return;
        int32_t t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = (int32_t)w;
    }
}

/* Reorder c[0..n) so that c[0..k) holds the k best ids, best first. k == n is a full
 * heapsort (O(n log n), no recursion, no allocation). */
static void select_top(const float *v, int32_t *c, int32_t n, int32_t k) {
    for (int32_t i = k / 2 - 1; i >= 0; i--) sift_down(v, c, k, i);
    for (int32_t j = k; j < n; j++) {
        if (better(v, c[j], c[0])) {
            c[0] = c[j];
            sift_down(v, c, k, 0);
        }
    }
    /* Pop the worst to the back repeatedly: leaves c[0..k) sorted best first. */
    for (int32_t end = k - 1; end > 0; end--) {
        int32_t t = c[0];
        c[0] = c[end];
        c[end] = t;
        sift_down(v, c, end, 0);
    }
}

/* ---------------------------------------------------------------- sample */

/* Bucket of a weight in (0, 1] by its binary exponent: 0 for exactly 1, 1 for
 * [0.5, 1), 2 for [0.25, 0.5), ...; 0 and anything tinier share the last bucket. Larger
 * weights get lower buckets, so bucket order is a coarse version of the sorted order. */
enum { N_BUCKETS = 64 };
static inline int weight_bucket(double w) {
    if (!(w > 0.0)) return N_BUCKETS - 1;
    int e;
    frexp(w, &e); /* w = f * 2^e, f in [0.5, 1): e <= 1 */
    int b = 1 - e;
    return b < N_BUCKETS - 1 ? b : N_BUCKETS - 1;
}

/* Before top-p's sort, drop whole buckets of small weights that cannot reach the
 * prefix: if the buckets 0..B together already hold >= target, the sorted prefix ends
 * inside them, so everything in later buckets ranks after the cut. O(n), and it turns a
 * sort of the whole vocabulary into a sort of a few hundred tokens on real logits. */
static int32_t top_p_prefilter(const double *wt, int32_t *c, int32_t n, double target) {
    double mass[N_BUCKETS] = {0};
    for (int32_t i = 0; i < n; i++) mass[weight_bucket(wt[c[i]])] += wt[c[i]];
    int last = N_BUCKETS - 1;
    double cum = 0.0;
    for (int b = 0; b < N_BUCKETS; b++) {
        cum += mass[b];
        if (cum >= target) {
            last = b;
            break;
        }
    }
    if (last == N_BUCKETS - 1) return n;
    int32_t m = 0;
    for (int32_t i = 0; i < n; i++) {
        if (weight_bucket(wt[c[i]]) <= last) c[m++] = c[i];
    }
    return m;
}

static void apply_penalty(smoe_sampler *s) {
    const float pen = s->p.repeat_penalty;
    for (int32_t i = 0; i < s->hist_len; i++) {
        int32_t id = s->hist[i];
        if (s->mark[id]) continue; /* each distinct token once, however often it occurred */
        s->mark[id] = 1;
        float x = s->work[id];
        s->work[id] = x > 0.0f ? x / pen : x * pen;
    }
    for (int32_t i = 0; i < s->hist_len; i++) s->mark[s->hist[i]] = 0;
}

smoe_status smoe_sampler_sample(smoe_sampler *s, const float *logits, int32_t *out_id) {
    if (out_id) *out_id = -1;
    if (!s || !logits || !out_id) return smoe_err(SMOE_ERR_INVALID_ARG, "sampler: NULL argument");
    const int32_t nv = s->n_vocab;
    float *v = s->work;
    int32_t *c = s->cand;
    double *wt = s->wt;

    /* Copy, and count NaN and +inf without branching (vectorizes); find a NaN only if any. */
    int32_t n_nan = 0, n_posinf = 0, n_neginf = 0;
    for (int32_t i = 0; i < nv; i++) {
        const float x = logits[i];
        v[i] = x;
        n_nan += x != x;
        n_posinf += x == INFINITY;
        n_neginf += x == -INFINITY;
    }
    if (n_nan > 0)
        for (int32_t i = 0; i < nv; i++)
            if (isnan(logits[i])) return smoe_err(SMOE_ERR_INVALID_ARG, "sampler: logit %d is NaN", (int)i);
    if (s->hist) {
        apply_penalty(s);
        n_posinf = n_neginf = 0; /* a penalty keeps +-inf as they are, but count again rather than assume */
        for (int32_t i = 0; i < nv; i++) n_posinf += v[i] == INFINITY, n_neginf += v[i] == -INFINITY;
    }

    /* Candidates: every possible token; if some are certain (+inf), only those, tied. */
    int32_t n = 0;
    if (n_posinf > 0) {
        for (int32_t i = 0; i < nv; i++) {
            if (v[i] == INFINITY) c[n++] = i;
        }
        for (int32_t i = 0; i < n; i++) v[c[i]] = 0.0f;
    } else if (n_neginf == 0) { /* the common case: every token */
        for (int32_t i = 0; i < nv; i++) c[i] = i;
        n = nv;
    } else {
        for (int32_t i = 0; i < nv; i++) { /* branch-free compaction */
            c[n] = i;
            n += v[i] != -INFINITY;
        }
    }
    if (n == 0) return smoe_err(SMOE_ERR_INVALID_ARG, "sampler: every logit is -inf");

    /* Greedy: ascending scan with a strict '>' keeps the lowest id among ties. */
    if (!(s->p.temperature > 0.0f)) {
        int32_t best = c[0];
        for (int32_t i = 1; i < n; i++) {
            if (v[c[i]] > v[best]) best = c[i];
        }
        *out_id = best;
        return SMOE_OK;
    }

    bool sorted = false;
    if (s->p.top_k > 0 && s->p.top_k < n) {
        select_top(v, c, n, s->p.top_k);
        n = s->p.top_k;
        sorted = true;
    }

    /* Softmax weights relative to the maximum: the best token weighs exactly 1, so the
     * sum is >= 1 and nothing overflows; the division by T happens after subtracting
     * the max, in double, so even T = 1e-30 stays finite. */
    float vmax = v[c[0]];
    if (!sorted && n == nv) { /* every token a candidate: eight running maxima (vectorizes), exact */
        float m8[8];
        for (int j = 0; j < 8; j++) m8[j] = vmax;
        int32_t i = 0;
        for (; i + 8 <= n; i += 8)
            for (int j = 0; j < 8; j++) m8[j] = v[i + j] > m8[j] ? v[i + j] : m8[j];
        for (; i < n; i++) vmax = v[i] > vmax ? v[i] : vmax;
        for (int j = 0; j < 8; j++) vmax = m8[j] > vmax ? m8[j] : vmax;
    } else if (!sorted) {
        for (int32_t i = 1; i < n; i++) vmax = v[c[i]] > vmax ? v[c[i]] : vmax;
    }
    const double inv_t = 1.0 / (double)s->p.temperature;
    float *ex = s->ex;
    if (n == nv) /* every token a candidate (c[i] == i): a plain loop, which vectorizes */
        for (int32_t i = 0; i < n; i++) ex[i] = (float)(((double)v[i] - (double)vmax) * inv_t);
    else
        for (int32_t i = 0; i < n; i++) ex[i] = (float)(((double)v[c[i]] - (double)vmax) * inv_t);
    smoe_vexp(ex, ex, n);
    double total = 0.0, *cum = s->cum;
    for (int32_t i = 0; i < n; i++) {
        /* under e^-87 (float's normal range ends at e^-87.3, where vexp clamps) it counts as 0 */
        const double w = ex[i] < 1.6e-38f ? 0.0 : (double)ex[i];
        wt[c[i]] = w;
        total += w;
        cum[i] = total; /* the running sums, for the draw when nothing is filtered out */
    }
    const int32_t n_all = n;

    /* min-p threshold relative to the top weight (1.0); clamped so the top token stays. */
    const bool use_min_p = s->p.min_p > 0.0f;
    const double thr = use_min_p ? (s->p.min_p < 1.0f ? (double)s->p.min_p : 1.0) : 0.0;

    if (s->p.top_p < 1.0f) {
        if (!sorted) {
            /* Tokens below the min-p threshold rank after every token above it, so
             * dropping them before the sort changes neither top-p's prefix (its mass is
             * still measured against `total`) nor the final set; it only makes the sort
             * shorter. */
            if (use_min_p) {
                int32_t m = 0;
                for (int32_t i = 0; i < n; i++) {
                    if (wt[c[i]] >= thr) c[m++] = c[i];
                }
                n = m;
            }
            n = top_p_prefilter(wt, c, n, (double)s->p.top_p * total);
            select_top(v, c, n, n);
        }
        const double target = (double)s->p.top_p * total;
        double mass = 0.0;
        for (int32_t i = 0; i < n; i++) {
            mass += wt[c[i]];
            if (mass >= target) {
                n = i + 1;
                break;
            }
        }
    }

    if (use_min_p) {
        int32_t m = 0;
        for (int32_t i = 0; i < n; i++) {
            if (wt[c[i]] >= thr) c[m++] = c[i];
        }
        n = m;
    }
    /* n >= 1 here: the top token (weight 1.0 >= thr) survives top-p and min-p. */
    SMOE_ASSERT(n >= 1);

    /* The running sums of the kept weights in candidate order: the total pass's when top-p
     * and min-p removed nothing (the same adds in the same order), else summed again. */
    if (n != n_all || s->p.top_p < 1.0f) {
        double acc = 0.0;
        for (int32_t i = 0; i < n; i++) cum[i] = acc += wt[c[i]];
    }
    const double u = rng_uniform(s->rng) * cum[n - 1];
    /* The first candidate whose running sum exceeds u, by bisection over the
     * non-decreasing sums: what a linear scan finds, and never a weight of 0 (its sum
     * equals the one before it). */
    int32_t lo = 0, hi = n;
    while (lo < hi) {
        const int32_t mid = lo + (hi - lo) / 2;
        if (u < cum[mid]) hi = mid;
        else lo = mid + 1;
    }
    if (lo == n) { /* only through rounding at the very top of the range: the last possible token */
        lo = n - 1;
        while (lo > 0 && wt[c[lo]] <= 0.0) lo--;
    }
    *out_id = c[lo];
    return SMOE_OK;
}
