/*
 * routes_report.c - the routing accumulator of `smoe routes`, its statistics and
 * routes.json (the HTML page is routes_html.c). Definitions (docs/routes.md):
 *
 *   share_e        = count_e / (K * tokens)            assignments, sums to 1 over e
 *   first_share_e  = first_e / tokens                   first choices, sums to 1
 *   same_first     = pairs (t, t+1) with ids[t][0] == ids[t+1][0]   (Mixtral, Table 5,
 *                    "first choice"); random routing: 1/E
 *   overlap        = pairs whose top-K sets share an expert ("first or second choice");
 *                    random routing: 1 - C(E-K,K)/C(E,K) (46.4 % for E 8, K 2)
 *   max_over_mean  = max_e count_e / mean_e count_e
 *   cv             = sqrt(mean_e (count_e - mean)^2) / mean
 *   entropy        = -sum_e share_e ln share_e (0 ln 0 = 0), and / ln E
 *
 * What it does not do: run the model or print; writers return -1 on a failed write.
 */
#include "routes_report.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ accumulator */

routes_acc *routes_acc_new(int32_t n_layer, int32_t n_expert, int32_t k, int32_t sample_cap) {
    if (n_layer <= 0 || n_expert <= 0 || k <= 0 || k > n_expert || sample_cap < 0) return NULL;
    routes_acc *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->n_layer = n_layer;
    a->n_expert = n_expert;
    a->k = k;
    a->sample_cap = sample_cap;
    return a;
}

static void domain_free(routes_domain *d) {
    free(d->label);
    for (int32_t i = 0; i < d->n_sources; i++) free(d->sources[i]);
    free(d->sources);
    free(d->count);
    free(d->first);
    free(d->same_first);
    free(d->overlap);
    free(d->sample_tok);
    free(d->sample_ids);
    free(d->sample_w);
}

void routes_acc_free(routes_acc *a) {
    if (!a) return;
    for (int32_t i = 0; i < a->n_domain; i++) domain_free(&a->dom[i]);
    free(a->dom);
    free(a);
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

static int add_source(routes_domain *d, const char *source) {
    if (!source) return 0;
    char **s = realloc(d->sources, sizeof(char *) * (size_t)(d->n_sources + 1));
    if (!s) return -1;
    d->sources = s;
    if (!(s[d->n_sources] = dup_str(source))) return -1;
    d->n_sources++;
    return 0;
}

int32_t routes_acc_domain(routes_acc *a, const char *label, const char *source) {
    for (int32_t i = 0; i < a->n_domain; i++)
        if (!strcmp(a->dom[i].label, label)) return add_source(&a->dom[i], source) ? -1 : i;
    if (a->n_domain == a->cap_domain) {
        int32_t cap = a->cap_domain ? 2 * a->cap_domain : 4;
        routes_domain *nd = realloc(a->dom, sizeof *nd * (size_t)cap);
        if (!nd) return -1;
        a->dom = nd;
        a->cap_domain = cap;
    }
    routes_domain *d = &a->dom[a->n_domain];
    memset(d, 0, sizeof *d);
    const size_t L = (size_t)a->n_layer, E = (size_t)a->n_expert, K = (size_t)a->k, S = (size_t)a->sample_cap;
    d->label = dup_str(label);
    d->count = calloc(L * E, sizeof(int64_t));
    d->first = calloc(L * E, sizeof(int64_t));
    d->same_first = calloc(L, sizeof(int64_t));
    d->overlap = calloc(L, sizeof(int64_t));
    d->sample_tok = malloc(sizeof(int32_t) * (S ? S : 1));
    d->sample_ids = malloc(sizeof(int32_t) * (S ? S * L * K : 1));
    d->sample_w = malloc(sizeof(float) * (S ? S * L * K : 1));
    if (!d->label || !d->count || !d->first || !d->same_first || !d->overlap || !d->sample_tok || !d->sample_ids ||
        !d->sample_w || add_source(d, source)) {
        domain_free(d);
        return -1;
    }
    return a->n_domain++;
}

/* Do the K-sets x[K] and y[K] share an expert? (K is small: a plain double loop.) */
static int sets_meet(const int32_t *x, const int32_t *y, int32_t K) {
    for (int32_t i = 0; i < K; i++)
        for (int32_t j = 0; j < K; j++)
            if (x[i] == y[j]) return 1;
    return 0;
}

void routes_acc_add(routes_acc *a, int32_t dom, const int32_t *tok, int32_t n, const int32_t *ids, const float *w,
                    size_t layer_stride) {
    routes_domain *d = &a->dom[dom];
    const int32_t L = a->n_layer, E = a->n_expert, K = a->k;
    for (int32_t l = 0; l < L; l++) {
        const int32_t *li = ids + (size_t)l * layer_stride;
        int64_t *cnt = d->count + (size_t)l * (size_t)E, *fst = d->first + (size_t)l * (size_t)E;
        for (int32_t t = 0; t < n; t++) {
            const int32_t *r = li + (size_t)t * (size_t)K;
            for (int32_t j = 0; j < K; j++) cnt[r[j]]++;
            fst[r[0]]++;
            if (t + 1 < n) {
                d->same_first[l] += r[0] == r[K];
                d->overlap[l] += sets_meet(r, r + K, K);
            }
        }
    }
    /* the sample: the domain's first sample_cap tokens, with every layer's routing */
    for (int32_t t = 0; t < n && d->n_sample < a->sample_cap; t++, d->n_sample++) {
        const size_t s = (size_t)d->n_sample;
        d->sample_tok[s] = tok[t];
        for (int32_t l = 0; l < L; l++) {
            const size_t src = (size_t)l * layer_stride + (size_t)t * (size_t)K;
            const size_t dst = (s * (size_t)L + (size_t)l) * (size_t)K;
            memcpy(d->sample_ids + dst, ids + src, sizeof(int32_t) * (size_t)K);
            memcpy(d->sample_w + dst, w + src, sizeof(float) * (size_t)K);
        }
    }
    d->tokens += n;
    d->pairs += n > 0 ? n - 1 : 0;
    d->windows++;
}

/* ------------------------------------------------------------------ statistics */

void routes_stats_of(const routes_acc *a, int32_t dom, int32_t layer, routes_stats *st, int64_t *count,
                     int64_t *first) {
    const int32_t E = a->n_expert, K = a->k;
    const int32_t d0 = dom < 0 ? 0 : dom, d1 = dom < 0 ? a->n_domain : dom + 1;
    memset(st, 0, sizeof *st);
    memset(count, 0, sizeof(int64_t) * (size_t)E);
    memset(first, 0, sizeof(int64_t) * (size_t)E);
    for (int32_t d = d0; d < d1; d++) {
        const routes_domain *dm = &a->dom[d];
        st->tokens += dm->tokens;
        st->pairs += dm->pairs;
        st->same_first += dm->same_first[layer];
        st->overlap += dm->overlap[layer];
        for (int32_t e = 0; e < E; e++) {
            count[e] += dm->count[(size_t)layer * (size_t)E + (size_t)e];
            first[e] += dm->first[(size_t)layer * (size_t)E + (size_t)e];
        }
    }
    st->same_first_rate = st->pairs ? (double)st->same_first / (double)st->pairs : NAN;
    st->overlap_rate = st->pairs ? (double)st->overlap / (double)st->pairs : NAN;
    if (st->tokens > 0) {
        const double total = (double)K * (double)st->tokens, mean = total / E;
        double mx = 0, var = 0, h = 0;
        for (int32_t e = 0; e < E; e++) {
            const double x = (double)count[e], p = x / total;
            if (x > mx) mx = x;
            var += (x - mean) * (x - mean);
            if (p > 0) h -= p * log(p);
            st->n_unused += count[e] == 0;
        }
        st->max_over_mean = mx / mean;
        st->cv = sqrt(var / E) / mean;
        st->entropy = h;
        st->entropy_norm = E > 1 ? h / log((double)E) : NAN;
    } else {
        st->max_over_mean = st->cv = st->entropy = st->entropy_norm = NAN;
        st->n_unused = E;
    }
}

double routes_baseline_first(int32_t n_expert) { return 1.0 / n_expert; }

double routes_baseline_overlap(int32_t n_expert, int32_t k) {
    /* C(E-K,K)/C(E,K) = prod_{i<K} (E-K-i)/(E-i); zero once E-K-i reaches 0 (2K > E) */
    double miss = 1;
    for (int32_t i = 0; i < k; i++) {
        const int32_t num = n_expert - k - i;
        if (num <= 0) return 1.0;
        miss *= (double)num / (double)(n_expert - i);
    }
    return 1 - miss;
}

/* ------------------------------------------------------------------ UTF-8 and JSON */

int routes_utf8_seq(const unsigned char *s, size_t n) {
    const unsigned c = s[0];
    if (c < 0x80) return 1;
    int need;
    unsigned lo = 0x80, hi = 0xBF; /* range of the second byte (RFC 3629: no overlongs, surrogates, > U+10FFFF) */
    if (c < 0xC2) return 0;
    else if (c < 0xE0) need = 2;
    else if (c < 0xF0) need = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c < 0xF5) need = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    else return 0;
    for (int i = 1; i < need; i++) {
        if ((size_t)i >= n) return -1;
        const unsigned b = s[i];
        if (b < (i == 1 ? lo : 0x80) || b > (i == 1 ? hi : 0xBF)) return 0;
    }
    return need;
}

void routes_json_str(FILE *f, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        const int len = routes_utf8_seq(u + i, n - i);
        if (len <= 0) { fputs("\\ufffd", f); i++; continue; }
        if (len == 1) {
            const unsigned char c = u[i];
            if (c == '"' || c == '\\') fputc('\\', f), fputc(c, f);
            else if (c == '\n') fputs("\\n", f);
            else if (c == '\t') fputs("\\t", f);
            else if (c < 0x20 || c == 0x7f) fprintf(f, "\\u%04x", c);
            else fputc(c, f);
        } else {
            fwrite(u + i, 1, (size_t)len, f);
        }
        i += (size_t)len;
    }
}

static void jstr(FILE *f, const char *s) {
    fputc('"', f);
    routes_json_str(f, s, strlen(s));
    fputc('"', f);
}

/* A number, or null when it is not finite (rates without pairs). */
static void jnum(FILE *f, double x) {
    if (isfinite(x)) fprintf(f, "%.12g", x);
    else fputs("null", f);
}

static void jints(FILE *f, const int64_t *x, int32_t n) {
    fputc('[', f);
    for (int32_t i = 0; i < n; i++) fprintf(f, i ? ", %lld" : "%lld", (long long)x[i]);
    fputc(']', f);
}

/* One stats object: layer l over domain dom (-1 = all), scratch[2E]. */
static void json_stats(FILE *f, const routes_acc *a, int32_t dom, int32_t l, int64_t *scratch) {
    const int32_t E = a->n_expert;
    int64_t *cnt = scratch, *fst = scratch + E;
    routes_stats st;
    routes_stats_of(a, dom, l, &st, cnt, fst);
    const double assign = (double)a->k * (double)st.tokens, toks = (double)st.tokens;
    fputc('{', f);
    if (dom >= 0) fputs("\"label\": ", f), jstr(f, a->dom[dom].label), fputs(", ", f);
    fprintf(f, "\"tokens\": %lld, \"counts\": ", (long long)st.tokens);
    jints(f, cnt, E);
    fputs(", \"share\": [", f);
    for (int32_t e = 0; e < E; e++) fputs(e ? ", " : "", f), jnum(f, assign > 0 ? (double)cnt[e] / assign : NAN);
    fputs("], \"first_counts\": ", f);
    jints(f, fst, E);
    fputs(", \"first_share\": [", f);
    for (int32_t e = 0; e < E; e++) fputs(e ? ", " : "", f), jnum(f, toks > 0 ? (double)fst[e] / toks : NAN);
    fprintf(f, "],\n      \"pairs\": %lld, \"same_first\": %lld, \"same_first_rate\": ", (long long)st.pairs,
            (long long)st.same_first);
    jnum(f, st.same_first_rate);
    fprintf(f, ", \"topk_overlap\": %lld, \"topk_overlap_rate\": ", (long long)st.overlap);
    jnum(f, st.overlap_rate);
    fputs(",\n      \"max_over_mean\": ", f);
    jnum(f, st.max_over_mean);
    fputs(", \"cv\": ", f);
    jnum(f, st.cv);
    fputs(", \"entropy\": ", f);
    jnum(f, st.entropy);
    fputs(", \"entropy_norm\": ", f);
    jnum(f, st.entropy_norm);
    fputs(", \"unused\": [", f);
    for (int32_t e = 0, n = 0; e < E; e++)
        if (cnt[e] == 0) fprintf(f, n++ ? ", %d" : "%d", e);
    fputs("]}", f);
}

int routes_write_json(const routes_acc *a, const routes_meta *m, FILE *f) {
    const int32_t L = a->n_layer, E = a->n_expert, K = a->k;
    int64_t *scratch = malloc(sizeof(int64_t) * 2 * (size_t)E);
    if (!scratch) {
        errno = ENOMEM;
        return -1;
    }
    fputs("{\n  \"model\": ", f);
    jstr(f, m->model);
    fprintf(f, ",\n  \"n_layer\": %d, \"n_expert\": %d, \"k\": %d, \"window\": %d, \"bos\": %s,\n", L, E, K, m->window,
            m->bos ? "true" : "false");
    fputs("  \"random_baseline\": {\"same_first\": ", f);
    jnum(f, routes_baseline_first(E));
    fputs(", \"topk_overlap\": ", f);
    jnum(f, routes_baseline_overlap(E, K));
    fputs("},\n  \"domains\": [", f);
    for (int32_t d = 0; d < a->n_domain; d++) {
        const routes_domain *dm = &a->dom[d];
        fputs(d ? ",\n    {\"label\": " : "\n    {\"label\": ", f);
        jstr(f, dm->label);
        fputs(", \"sources\": [", f);
        for (int32_t i = 0; i < dm->n_sources; i++) fputs(i ? ", " : "", f), jstr(f, dm->sources[i]);
        fprintf(f, "], \"tokens\": %lld, \"windows\": %lld, \"pairs\": %lld}", (long long)dm->tokens,
                (long long)dm->windows, (long long)dm->pairs);
    }
    fputs("\n  ],\n  \"layers\": [", f);
    for (int32_t l = 0; l < L; l++) {
        fprintf(f, "%s\n    {\"layer\": %d,\n     \"all\": ", l ? "," : "", l);
        json_stats(f, a, -1, l, scratch);
        fputs(",\n     \"domains\": [", f);
        for (int32_t d = 0; d < a->n_domain; d++) {
            fputs(d ? ",\n      " : "\n      ", f);
            json_stats(f, a, d, l, scratch);
        }
        fputs("]}", f);
    }
    fputs("\n  ]\n}\n", f);
    free(scratch);
    return fflush(f) != 0 || ferror(f) ? -1 : 0;
}
