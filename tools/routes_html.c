/*
 * routes_html.c - index.html of `smoe routes`: one self-contained page, inline CSS and
 * inline SVG only (no scripts, no fonts, images or styles fetched from anywhere):
 *
 *   1. per layer, a bar chart of the share of assignments per expert, one bar per
 *      domain (Mixtral paper, Figure 7), with the uniform share 1/E dashed;
 *   2. two heat maps, layer x domain, of the consecutive-token repeat rates (same
 *      first choice; top-K sets that meet), with the random-routing rate marked;
 *   3. a load-balance table (max/mean, CV, normalised entropy, unused experts);
 *   4. each domain's first tokens, coloured by their first-choice expert in the chosen
 *      layers (Mixtral paper, Figure 8); hovering a token shows its experts and weights.
 *
 * Token text is HTML-escaped; invalid UTF-8 becomes U+FFFD, and a token that ends in the
 * middle of a UTF-8 character (byte-fallback tokens) is joined with the tokens that
 * complete it into one span, coloured as its first token.
 *
 * What it does not do: compute statistics (routes_report.c) or print messages.
 */
#include "routes_report.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ escaping, colours */

/* s[0..n) as HTML text or attribute value: & < > " ' escaped, invalid UTF-8 and control
 * characters other than tab and newline replaced by U+FFFD, CR dropped. */
static void html_text(FILE *f, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        const int len = routes_utf8_seq(u + i, n - i);
        if (len <= 0) { fputs("\xEF\xBF\xBD", f); i++; continue; }
        if (len == 1) {
            const unsigned char c = u[i];
            if (c == '&') fputs("&amp;", f);
            else if (c == '<') fputs("&lt;", f);
            else if (c == '>') fputs("&gt;", f);
            else if (c == '"') fputs("&quot;", f);
            else if (c == '\'') fputs("&#39;", f);
            else if (c == '\r') {}
            else if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) fputs("\xEF\xBF\xBD", f);
            else fputc(c, f);
        } else {
            fwrite(u + i, 1, (size_t)len, f);
        }
        i += (size_t)len;
    }
}

static void html_str(FILE *f, const char *s) { html_text(f, s, strlen(s)); }

/* Does s[0..n) end inside a UTF-8 character (a valid but truncated sequence)? */
static int ends_mid_char(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        const int len = routes_utf8_seq(u + i, n - i);
        if (len < 0) return 1;
        i += len > 0 ? (size_t)len : 1;
    }
    return 0;
}

/* Bytes of the first max_chars characters of s (an invalid byte counts as one). */
static size_t utf8_prefix(const char *s, size_t max_chars) {
    const size_t len = strlen(s);
    size_t n = 0;
    for (size_t c = 0; n < len && c < max_chars; c++) {
        const int sl = routes_utf8_seq((const unsigned char *)s + n, len - n);
        n += sl > 0 ? (size_t)sl : 1;
    }
    return n;
}

/* Domain colours: ten well-separated hues, then golden-angle hues. */
static void domain_colour(char *buf, size_t cap, int32_t d) {
    static const char *const PAL[] = {"#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2",
                                      "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};
    if (d < 10) snprintf(buf, cap, "%s", PAL[d]);
    else snprintf(buf, cap, "hsl(%.1f, 55%%, 50%%)", fmod(d * 137.508, 360.0));
}

/* Expert e's token background: twelve light qualitative colours (ColorBrewer Set3's
 * values), then golden-angle hues, which keep neighbours apart for any E. */
static void expert_colour(char *buf, size_t cap, int32_t e) {
    static const char *const PAL[] = {"#8dd3c7", "#ffffb3", "#bebada", "#fb8072", "#80b1d3", "#fdb462",
                                      "#b3de69", "#fccde5", "#d9d9d9", "#bc80bd", "#ccebc5", "#ffed6f"};
    if (e < 12) snprintf(buf, cap, "%s", PAL[e]);
    else snprintf(buf, cap, "hsl(%.1f, 80%%, 82%%)", fmod(e * 137.508, 360.0));
}

/* Sequential white -> dark blue scale for v in [0, 1]. */
static void heat_colour(char *buf, size_t cap, double v) {
    if (!isfinite(v)) { snprintf(buf, cap, "#eeeeee"); return; }
    if (v < 0) v = 0;
    if (v > 1) v = 1;
    const double a[3] = {247, 251, 255}, b[3] = {8, 48, 107};
    snprintf(buf, cap, "rgb(%d, %d, %d)", (int)lround(a[0] + (b[0] - a[0]) * v), (int)lround(a[1] + (b[1] - a[1]) * v),
             (int)lround(a[2] + (b[2] - a[2]) * v));
}

static void pct(char *buf, size_t cap, double x) {
    if (isfinite(x)) snprintf(buf, cap, "%.1f %%", 100 * x);
    else snprintf(buf, cap, "n/a");
}

/* ------------------------------------------------------------------ 1. expert shares */

/* The step of the y ticks for shares up to ymax (4 to 7 ticks). */
static double share_tick(double ymax) { return ymax > 0.6 ? 0.2 : ymax > 0.3 ? 0.1 : ymax > 0.12 ? 0.05 : 0.02; }

/* The largest share of any expert in any layer and domain, rounded up to a tick step. */
static double shares_ymax(const routes_acc *a, int64_t *cnt, int64_t *fst) {
    double mx = 1.0 / a->n_expert;
    routes_stats st;
    for (int32_t l = 0; l < a->n_layer; l++)
        for (int32_t d = 0; d < a->n_domain; d++) {
            routes_stats_of(a, d, l, &st, cnt, fst);
            for (int32_t e = 0; e < a->n_expert && st.tokens > 0; e++) {
                const double s = (double)cnt[e] / ((double)a->k * (double)st.tokens);
                if (s > mx) mx = s;
            }
        }
    const double step = share_tick(mx);
    return fmin(1.0, ceil(mx / step - 1e-9) * step);
}

static void shares_chart(FILE *f, const routes_acc *a, int32_t l, double ymax, int64_t *cnt, int64_t *fst) {
    const int32_t E = a->n_expert, D = a->n_domain;
    const int bw = D <= 3 ? 7 : D <= 6 ? 4 : 3, gap = 4, gw = D * bw + gap;
    const int ml = 40, mt = 10, ph = 120, mb = 24, W = ml + E * gw + 10, H = mt + ph + mb;
    const int xstep = E <= 32 ? 1 : (E + 15) / 16;
    char col[48], buf[32];
    fprintf(f, "<figure><svg class=\"shares\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" "
               "aria-label=\"layer %d: share of assignments per expert and domain\">\n", W, H, W, H, l);
    const double tick = share_tick(ymax);
    for (int i = 0; i * tick <= ymax + 1e-9; i++) { /* y grid and labels */
        const double v = i * tick, y = mt + ph - ph * v / ymax;
        fprintf(f, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"/>", ml, W - 6, y, y,
                i ? "#e4e4e4" : "#999");
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.0f%%</text>\n", ml - 4, y + 3.5, 100 * v);
    }
    for (int32_t e = 0; e < E; e++) {
        for (int32_t d = 0; d < D; d++) {
            routes_stats st;
            routes_stats_of(a, d, l, &st, cnt, fst);
            const double s = st.tokens > 0 ? (double)cnt[e] / ((double)a->k * (double)st.tokens) : 0;
            const double h = ph * s / ymax, x = ml + e * gw + gap / 2.0 + d * bw;
            domain_colour(col, sizeof col, d);
            pct(buf, sizeof buf, s);
            fprintf(f, "<rect x=\"%.1f\" y=\"%.2f\" width=\"%d\" height=\"%.2f\" fill=\"%s\"><title>layer %d, expert %d, ",
                    x, mt + ph - h, bw, h, col, l, e);
            html_str(f, a->dom[d].label);
            fprintf(f, ": %s</title></rect>", buf);
        }
        if (e % xstep == 0)
            fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%d</text>", ml + e * gw + gw / 2.0,
                    mt + ph + 13, e);
        fputc('\n', f);
    }
    const double yu = mt + ph - ph * (1.0 / E) / ymax;
    fprintf(f, "<line x1=\"%d\" x2=\"%d\" y1=\"%.2f\" y2=\"%.2f\" stroke=\"#555\" stroke-dasharray=\"4 3\">"
               "<title>uniform share 1/E = %.1f %%</title></line>\n", ml, W - 6, yu, yu, 100.0 / E);
    fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">expert</text>\n", ml + E * gw / 2.0, H - 1);
    fprintf(f, "</svg><figcaption>layer %d</figcaption></figure>\n", l);
}

/* ------------------------------------------------------------------ 2. repeat-rate heat maps */

static void heat_map(FILE *f, const routes_acc *a, int overlap, int64_t *cnt, int64_t *fst) {
    const int32_t L = a->n_layer, C = a->n_domain + 1; /* column 0: all domains */
    const int cw = 78, ch = 20, ml = 64, mt = 24, lg = 50, W = ml + C * cw + 10, H = mt + L * ch + lg;
    const double base = overlap ? routes_baseline_overlap(a->n_expert, a->k) : routes_baseline_first(a->n_expert);
    const char *what = overlap ? "top-k sets share an expert" : "same first-choice expert";
    char col[48], buf[32], bb[32];
    pct(bb, sizeof bb, base);
    fprintf(f, "<figure><svg class=\"heat\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" "
               "aria-label=\"consecutive tokens: %s, by layer and domain\">\n", W, H, W, H, what);
    for (int32_t c = 0; c < C; c++) {
        const char *lab = c ? a->dom[c - 1].label : "all";
        /* long labels: the first 11 characters and an ellipsis (the full label in the title) */
        const size_t len = strlen(lab);
        const bool cut = utf8_prefix(lab, 12) < len;
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">", ml + c * cw + cw / 2.0, mt - 8);
        html_text(f, lab, cut ? utf8_prefix(lab, 11) : len);
        if (cut) fputs("\xE2\x80\xA6", f); /* ... */
        fputs("<title>", f);
        html_str(f, lab);
        fputs("</title></text>\n", f);
    }
    for (int32_t l = 0; l < L; l++) {
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">layer %d</text>", ml - 6, mt + l * ch + ch / 2.0 + 3.5,
                l);
        for (int32_t c = 0; c < C; c++) {
            routes_stats st;
            routes_stats_of(a, c - 1, l, &st, cnt, fst);
            const double v = overlap ? st.overlap_rate : st.same_first_rate;
            heat_colour(col, sizeof col, v);
            pct(buf, sizeof buf, v);
            fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\" stroke=\"#fff\"><title>layer %d, ",
                    ml + c * cw, mt + l * ch, cw, ch, col, l);
            html_str(f, c ? a->dom[c - 1].label : "all domains");
            fprintf(f, ": %lld of %lld pairs = %s (random routing %s)</title></rect>", (long long)(overlap ? st.overlap : st.same_first),
                    (long long)st.pairs, buf, bb);
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" style=\"fill:%s\">%s</text>\n",
                    ml + c * cw + cw / 2.0, mt + l * ch + ch / 2.0 + 3.5, isfinite(v) && v > 0.5 ? "#fff" : "#222", buf);
        }
    }
    /* legend: the 0..1 scale in 20 steps, the random-routing rate marked */
    const int ly = mt + L * ch + 18, lw = 200, lx = ml;
    for (int i = 0; i < 20; i++) {
        heat_colour(col, sizeof col, (i + 0.5) / 20);
        fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"10\" fill=\"%s\"/>", lx + i * lw / 20, ly, lw / 20 + 1,
                col);
    }
    const double bx = lx + base * lw;
    fprintf(f, "\n<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%d\" stroke=\"#d62728\" stroke-width=\"2\"/>", bx, bx,
            ly - 3, ly + 13);
    fprintf(f, "<text x=\"%d\" y=\"%d\">0 %%</text><text x=\"%d\" y=\"%d\" text-anchor=\"end\">100 %%</text>", lx,
            ly + 24, lx + lw, ly + 24);
    fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" style=\"fill:#d62728\">random %s</text>\n", bx,
            ly - 5, bb);
    fprintf(f, "</svg><figcaption>%s (random routing: %s)</figcaption></figure>\n", what, bb);
}

/* ------------------------------------------------------------------ 3. load balance */

static void balance_row(FILE *f, const routes_acc *a, int32_t l, int32_t d, int64_t *cnt, int64_t *fst) {
    routes_stats st;
    routes_stats_of(a, d, l, &st, cnt, fst);
    fprintf(f, "<tr><td>%d</td><td class=\"l\">", l);
    html_str(f, d < 0 ? "all" : a->dom[d].label);
    fprintf(f, "</td><td>%lld</td><td>%.3f</td><td>%.3f</td><td>%.3f</td><td>%.3f</td><td class=\"l\">",
            (long long)st.tokens, st.max_over_mean, st.cv, st.entropy, st.entropy_norm);
    int n = 0;
    for (int32_t e = 0; e < a->n_expert; e++)
        if (cnt[e] == 0) fprintf(f, n++ ? ", %d" : "%d", e);
    if (!n) fputs("none", f);
    fputs("</td></tr>\n", f);
}

/* ------------------------------------------------------------------ 4. token samples */

static void sample_block(FILE *f, const routes_acc *a, const routes_domain *d, int32_t l, const smoe_tokenizer *tok) {
    const int32_t L = a->n_layer, K = a->k;
    char buf[1024];
    fprintf(f, "<div class=\"sample\" data-layer=\"%d\">", l);
    for (int32_t t = 0; t < d->n_sample;) {
        /* one span: token t, plus the tokens that finish a UTF-8 character it starts */
        size_t n = 0;
        int32_t t1 = t;
        do {
            int64_t nb = smoe_tokenizer_token_bytes(tok, d->sample_tok[t1], buf + n, sizeof buf - n);
            if (nb < 0) nb = 0;
            if (nb == 0 && t1 == t) { /* a control token (BOS, ...): show its name */
                const char *txt = smoe_tokenizer_token_text(tok, d->sample_tok[t1]);
                nb = txt ? snprintf(buf, sizeof buf, "%s", txt) : 0;
            }
            n += (size_t)nb < sizeof buf - n ? (size_t)nb : sizeof buf - n;
            t1++;
        } while (t1 < d->n_sample && t1 - t < 4 && n < sizeof buf && ends_mid_char(buf, n));
        const int32_t *r = d->sample_ids + ((size_t)t * (size_t)L + (size_t)l) * (size_t)K;
        const float *w = d->sample_w + ((size_t)t * (size_t)L + (size_t)l) * (size_t)K;
        fprintf(f, "<span class=\"x%d\" title=\"token %d", r[0], d->sample_tok[t]);
        for (int32_t i = t + 1; i < t1; i++) fprintf(f, "+%d", d->sample_tok[i]);
        fputs(", experts", f);
        for (int32_t j = 0; j < K; j++) fprintf(f, "%s %d (%.2f)", j ? "," : "", r[j], w[j]);
        fputs("\">", f);
        html_text(f, buf, n);
        fputs("</span>", f);
        t = t1;
    }
    fputs("</div>\n", f);
}

/* ------------------------------------------------------------------ the page */

static const char *CSS =
    "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;color:#222;background:#fff;"
    "max-width:1280px;margin:20px auto;padding:0 16px}\n"
    "h1{font-size:22px;margin-bottom:4px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}"
    "h3{font-size:15px;margin:18px 0 4px}\n"
    "table{border-collapse:collapse;font-size:13px}td,th{padding:2px 10px;border-bottom:1px solid #eee;"
    "text-align:right}th{background:#f4f4f4}.l{text-align:left}\n"
    ".charts{display:flex;flex-wrap:wrap;gap:14px}figure{margin:0}"
    "figcaption{font-size:12px;color:#555;text-align:center}\n"
    "svg text{font-family:system-ui,sans-serif;font-size:10px;fill:#333}\n"
    ".legend{margin:6px 0}.legend span{display:inline-block;margin-right:14px;white-space:nowrap}"
    ".sw{display:inline-block;width:12px;height:12px;border-radius:2px;vertical-align:-1px;margin-right:4px}\n"
    ".cap{margin:10px 0 2px;font-size:12px;color:#555}\n"
    ".sample{white-space:pre-wrap;word-break:break-word;font:13px/1.9 ui-monospace,'DejaVu Sans Mono',monospace;"
    "border:1px solid #ddd;border-radius:4px;padding:6px 8px;background:#fcfcfc}\n"
    ".sample span{border-radius:2px;padding:1px 0}\n"
    ".note{color:#555;font-size:13px}code{font-size:13px}\n";

int routes_write_html(const routes_acc *a, const routes_meta *m, const smoe_tokenizer *tok, FILE *f) {
    const int32_t L = a->n_layer, E = a->n_expert, K = a->k;
    int64_t *cnt = malloc(sizeof(int64_t) * 2 * (size_t)E);
    if (!cnt) {
        errno = ENOMEM;
        return -1;
    }
    int64_t *fst = cnt + E;
    char col[48], b1[32], b2[32];
    int64_t total = 0;
    for (int32_t d = 0; d < a->n_domain; d++) total += a->dom[d].tokens;

    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>smoe routes: ", f);
    html_str(f, m->model);
    fprintf(f, "</title>\n<style>\n%s", CSS);
    for (int32_t e = 0; e < E; e++) { /* token background and legend swatch of each expert */
        expert_colour(col, sizeof col, e);
        fprintf(f, ".x%d{background:%s}\n", e, col);
    }
    fputs("</style>\n</head>\n<body>\n<h1>Expert routing</h1>\n<p class=\"note\">Model <code>", f);
    html_str(f, m->model);
    fprintf(f, "</code>: %d MoE layers, %d experts, top-%d. %lld tokens in %d domain%s, run in windows of %d tokens%s; "
               "consecutive pairs are counted inside a window only.</p>\n",
            L, E, K, (long long)total, a->n_domain, a->n_domain == 1 ? "" : "s", m->window,
            m->bos ? " (text windows start with BOS, which is not counted)" : "");

    fputs("<table class=\"domains\">\n<tr><th class=\"l\">domain</th><th class=\"l\">sources</th><th>tokens</th>"
          "<th>windows</th><th>pairs</th></tr>\n", f);
    for (int32_t d = 0; d < a->n_domain; d++) {
        const routes_domain *dm = &a->dom[d];
        domain_colour(col, sizeof col, d);
        fprintf(f, "<tr><td class=\"l\"><span class=\"sw\" style=\"background:%s\"></span>", col);
        html_str(f, dm->label);
        fputs("</td><td class=\"l\">", f);
        for (int32_t i = 0; i < dm->n_sources; i++) {
            if (i) fputs(", ", f);
            html_str(f, dm->sources[i]);
        }
        fprintf(f, "</td><td>%lld</td><td>%lld</td><td>%lld</td></tr>\n", (long long)dm->tokens, (long long)dm->windows,
                (long long)dm->pairs);
    }
    fputs("</table>\n", f);

    /* 1 */
    fprintf(f, "<h2>Expert share by domain</h2>\n<p class=\"note\">Share of each expert in the %d assignments per "
               "token, per layer and domain (each domain's bars sum to 100 %%). Dashed: the uniform share 1/%d.</p>\n"
               "<div class=\"legend\">", K, E);
    for (int32_t d = 0; d < a->n_domain; d++) {
        domain_colour(col, sizeof col, d);
        fprintf(f, "<span><span class=\"sw\" style=\"background:%s\"></span>", col);
        html_str(f, a->dom[d].label);
        fputs("</span>", f);
    }
    fputs("</div>\n<div class=\"charts\">\n", f);
    const double ymax = shares_ymax(a, cnt, fst);
    for (int32_t l = 0; l < L; l++) shares_chart(f, a, l, ymax, cnt, fst);
    fputs("</div>\n", f);

    /* 2 */
    pct(b1, sizeof b1, routes_baseline_first(E));
    pct(b2, sizeof b2, routes_baseline_overlap(E, K));
    fprintf(f, "<h2>Consecutive tokens routed alike</h2>\n<p class=\"note\">Share of consecutive token pairs (t, t+1) "
               "whose first-choice expert is the same (left; random routing: 1/E = %s) and whose top-%d expert sets "
               "share at least one expert (right; random routing: 1 &minus; C(E&minus;k,k)/C(E,k) = %s), as in the "
               "Mixtral paper's Table 5.</p>\n<div class=\"charts\">\n", b1, K, b2);
    heat_map(f, a, 0, cnt, fst);
    heat_map(f, a, 1, cnt, fst);
    fputs("</div>\n", f);

    /* 3 */
    fputs("<h2>Load balance</h2>\n<p class=\"note\">Over the assignments of each layer: max/mean load (1 = perfectly "
          "even), coefficient of variation (population std / mean), entropy of the shares in nats and divided by "
          "ln E (1 = uniform), and experts never chosen.</p>\n<table class=\"balance\">\n<tr><th>layer</th>"
          "<th class=\"l\">domain</th><th>tokens</th><th>max/mean</th><th>CV</th><th>entropy</th>"
          "<th>entropy / ln E</th><th class=\"l\">unused</th></tr>\n", f);
    for (int32_t l = 0; l < L; l++) {
        balance_row(f, a, l, -1, cnt, fst);
        if (a->n_domain > 1)
            for (int32_t d = 0; d < a->n_domain; d++) balance_row(f, a, l, d, cnt, fst);
    }
    fputs("</table>\n", f);

    /* 4 */
    fputs("<h2>Tokens by first-choice expert</h2>\n<p class=\"note\">Each token's background is the colour of its "
          "first-choice expert in that layer (the Mixtral paper's Figure 8); hover a token for its experts and gate "
          "weights.</p>\n<div class=\"legend\">", f);
    for (int32_t e = 0; e < E; e++) fprintf(f, "<span><span class=\"sw x%d\"></span>expert %d</span>", e, e);
    fputs("</div>\n", f);
    for (int32_t d = 0; d < a->n_domain; d++) {
        const routes_domain *dm = &a->dom[d];
        fputs("<h3>", f);
        html_str(f, dm->label);
        fprintf(f, " <span class=\"note\">(first %d tokens)</span></h3>\n", dm->n_sample);
        for (int32_t i = 0; i < m->n_sample_layers; i++) {
            fprintf(f, "<p class=\"cap\">layer %d</p>\n", m->sample_layers[i]);
            sample_block(f, a, dm, m->sample_layers[i], tok);
        }
    }
    fputs("<p class=\"note\">Written by <code>smoe routes</code>; the measures are defined in docs/routes.md.</p>\n"
          "</body>\n</html>\n", f);
    free(cnt);
    return fflush(f) != 0 || ferror(f) ? -1 : 0;
}
