/*
 * cmd_routes.c - `smoe routes`: run texts (or token-id files) through an MoE model,
 * record every token's routing (experts and gate weights, every layer) through the
 * context's route observer, and write DIR/routes.json and DIR/index.html
 * (tools/routes_report.c, tools/routes_html.c); --dump writes the raw routing as JSON
 * lines, one token a line, so that a test can recompute every statistic on its own.
 *
 * Texts longer than the context run in windows: the context is reset for each window,
 * a text window is BOS + up to n_ctx - 1 tokens (BOS not counted), an id window is up
 * to n_ctx of the given ids, and consecutive-token pairs never straddle two windows.
 *
 * What it does not do: generate, or look at the logits (only the routing is kept).
 */
#include "cli.h"
#include "routes_report.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *ROUTES_HELP =
    "usage: smoe routes -m MODEL [--label NAME] --text FILE ... -o DIR [options]\n"
    "\n"
    "Run texts through an MoE model and record every token's routing (experts and gate\n"
    "weights, every layer). Writes DIR/routes.json (per layer and domain: the share of\n"
    "assignments per expert; the rates of consecutive tokens with the same first-choice\n"
    "expert and with overlapping top-k sets, next to random routing's; load balance) and\n"
    "DIR/index.html (one self-contained page: share bar charts, repeat-rate heat maps, a\n"
    "text sample coloured by expert). Texts longer than the context run in windows (the\n"
    "context is reset for each; pairs of tokens never straddle two). See docs/routes.md.\n"
    "\n"
    "options:\n"
    "  -m, --model FILE        GGUF MoE model (required)\n"
    "      --text FILE         a UTF-8 text file; repeat for more ('-' = stdin)\n"
    "      --ids FILE          token ids (JSON array, or separated by spaces/commas), fed\n"
    "                          exactly as given (no BOS); repeat for more\n"
    "      --label NAME        domain of the next --text/--ids (default: the file's name);\n"
    "                          inputs with the same label form one domain\n"
    "  -o, --out DIR           output directory (created)\n"
    "  -c, --ctx N             window length in tokens (default: the model's context, at\n"
    "                          most 4096); a text window is BOS + N-1 tokens\n"
    "      --no-bos            do not start text windows with BOS\n"
    "      --max-tokens N      use at most the first N tokens of each input (default: all)\n"
    "      --sample N          tokens of each domain shown coloured in index.html (default 300)\n"
    "      --sample-layers L   comma-separated layers to colour (default: first, middle, last)\n"
    "      --dump FILE         also write every token's routing as JSON lines (see docs)\n"
    "  -t, --threads N         worker threads (default: physical cores)\n"
    "  -q, --quiet             no summary on stderr\n"
    "  -h, --help              show this help\n";

typedef struct input {
    const char *path;
    const char *label;
    bool ids; /* a token-id file, not text */
} input;

/* What the route observer fills: one window's routing, [L][W][K]. */
typedef struct window_buf {
    int32_t L, W, K;
    int32_t *ids;
    float *w;
    bool bad; /* the observer saw a call outside the window or layers */
} window_buf;

static void on_route(void *user, int32_t layer, int32_t pos0, int32_t n, int32_t k, const int32_t *ids,
                     const float *weights, const float *router_logits, int32_t n_expert) {
    (void)router_logits;
    (void)n_expert;
    window_buf *b = user;
    if (layer < 0 || layer >= b->L || k != b->K || pos0 < 0 || n < 0 || pos0 + n > b->W) {
        b->bad = true;
        return;
    }
    const size_t at = ((size_t)layer * (size_t)b->W + (size_t)pos0) * (size_t)k;
    memcpy(b->ids + at, ids, sizeof(int32_t) * (size_t)n * (size_t)k);
    memcpy(b->w + at, weights, sizeof(float) * (size_t)n * (size_t)k);
}

/* Read a whole file ('-' = stdin) into a malloc'd buffer. NULL with a message on failure. */
static char *read_all(const char *path, size_t *len) {
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) {
        fprintf(stderr, "%s: cannot open '%s': %s\n", g_cmd, path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        char *nb = cap < ((size_t)1 << 40) ? realloc(buf, 2 * cap + 1) : NULL;
        if (!nb) free(buf);
        buf = nb;
        cap *= 2;
    }
    const bool err = !buf || ferror(f);
    const int e = errno;
    if (f != stdin) fclose(f);
    if (err) {
        fprintf(stderr, "%s: cannot read '%s': %s\n", g_cmd, path, buf ? strerror(e) : "out of memory");
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

/* Tokenize a text file (no BOS). 0, or 1 with a message. */
static int load_text(const smoe_tokenizer *tok, const char *path, int32_t **out, int64_t *n_out) {
    size_t len;
    char *text = read_all(path, &len);
    if (!text) return 1;
    int64_t cap = (int64_t)len + 16, n = 0;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)cap);
    smoe_status st = ids ? smoe_tokenizer_encode(tok, text, len, false, ids, cap, &n) : SMOE_ERR_NOMEM;
    if (st == SMOE_ERR_RANGE) { /* more tokens than bytes: possible with some vocabularies */
        int32_t *more = realloc(ids, sizeof(int32_t) * (size_t)n);
        if (more) ids = more, cap = n, st = smoe_tokenizer_encode(tok, text, len, false, ids, cap, &n);
        else st = SMOE_ERR_NOMEM;
    }
    free(text);
    if (st) {
        free(ids);
        fprintf(stderr, "%s: cannot tokenize '%s': %s\n", g_cmd, path, smoe_last_error());
        return 1;
    }
    *out = ids;
    *n_out = n;
    return 0;
}

/* Read a token-id file: integers separated by spaces, commas, newlines or brackets. */
static int load_ids(const char *path, int32_t n_vocab, int32_t **out, int64_t *n_out) {
    size_t len;
    char *text = read_all(path, &len);
    if (!text) return 1;
    int32_t *ids = malloc(sizeof(int32_t) * (len / 2 + 1));
    int64_t n = 0;
    if (!ids) {
        free(text);
        fprintf(stderr, "%s: out of memory\n", g_cmd);
        return 1;
    }
    for (const char *p = text; *p;) {
        if (strchr(" ,\t\r\n[]", *p)) { p++; continue; }
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v >= n_vocab) {
            if (end == p || errno) fprintf(stderr, "%s: %s: '%.20s' is not a token id\n", g_cmd, path, p);
            else fprintf(stderr, "%s: %s: token id %ld is out of range [0, %d)\n", g_cmd, path, v, n_vocab);
            free(text);
            free(ids);
            return 1;
        }
        ids[n++] = (int32_t)v;
        p = end;
    }
    free(text);
    *out = ids;
    *n_out = n;
    return 0;
}

/* Parse "0,2,5" into layers[] (each in [0, L)); the count, or -1 with a message. */
static int parse_layers(const char *s, int32_t L, int32_t *layers, int cap) {
    int n = 0;
    for (const char *p = s; *p;) {
        if (*p == ',' || *p == ' ') { p++; continue; }
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v >= L || n == cap) {
            fprintf(stderr, "%s: --sample-layers: '%s' is not a list of layers in [0, %d)\nTry '%s --help'.\n", g_cmd,
                    s, L, g_cmd);
            return -1;
        }
        layers[n++] = (int32_t)v;
        p = end;
    }
    if (!n) fprintf(stderr, "%s: --sample-layers: no layers given\nTry '%s --help'.\n", g_cmd, g_cmd);
    return n ? n : -1;
}

/* The default label of an input: the file's name without its directories. */
static const char *base_name(const char *path) {
    if (!strcmp(path, "-")) return "stdin";
    const char *s = strrchr(path, '/');
    return s && s[1] ? s + 1 : path;
}

/* Write one report through a temporary file and rename, so DIR never holds half a file. */
static int write_report(const char *dir, const char *name, const routes_acc *acc, const routes_meta *meta,
                        const smoe_tokenizer *tok) {
    char path[4200], tmp[4210];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "%s: cannot write '%s': %s\n", g_cmd, tmp, strerror(errno));
        return 1;
    }
    int r = tok ? routes_write_html(acc, meta, tok, f) : routes_write_json(acc, meta, f);
    const int e = errno;
    if (fclose(f) != 0 && !r) r = -1;
    if (r || rename(tmp, path) != 0) {
        fprintf(stderr, "%s: cannot write '%s': %s\n", g_cmd, path, strerror(r ? e : errno));
        remove(tmp);
        return 1;
    }
    return 0;
}

/* One token's routing as a JSON line of the --dump file. */
static void dump_token(FILE *f, int32_t dom, int64_t window, int32_t pos, int32_t id, const window_buf *b) {
    fprintf(f, "{\"domain\": %d, \"window\": %lld, \"pos\": %d, \"token\": %d, \"experts\": [", dom, (long long)window,
            pos, id);
    for (int32_t l = 0; l < b->L; l++) {
        const int32_t *r = b->ids + ((size_t)l * (size_t)b->W + (size_t)pos) * (size_t)b->K;
        fputs(l ? ", [" : "[", f);
        for (int32_t j = 0; j < b->K; j++) fprintf(f, j ? ", %d" : "%d", r[j]);
        fputc(']', f);
    }
    fputs("], \"weights\": [", f);
    for (int32_t l = 0; l < b->L; l++) {
        const float *w = b->w + ((size_t)l * (size_t)b->W + (size_t)pos) * (size_t)b->K;
        fputs(l ? ", [" : "[", f);
        for (int32_t j = 0; j < b->K; j++) fprintf(f, j ? ", %.9g" : "%.9g", w[j]);
        fputc(']', f);
    }
    fputs("]}\n", f);
}

int cmd_routes(int argc, char **argv) {
    const char *model_path = NULL, *out_dir = NULL, *dump_path = NULL, *layers_arg = NULL, *label = NULL;
    long threads = smoe_default_threads(), n_ctx = 0, sample = 300, max_tokens = 0;
    bool no_bos = false, quiet = false;
    input *in = calloc((size_t)argc, sizeof *in);
    int n_in = 0;
    if (!in) return fail("out of memory");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (is_help(a)) { fputs(ROUTES_HELP, stdout); free(in); return 0; }
        else if (!strcmp(a, "-m") || !strcmp(a, "--model")) model_path = opt_value(argc, argv, &i);
        else if (!strcmp(a, "--text") || !strcmp(a, "--ids")) {
            in[n_in].path = opt_value(argc, argv, &i);
            in[n_in].label = label ? label : base_name(in[n_in].path);
            in[n_in++].ids = !strcmp(a, "--ids");
            label = NULL;
        }
        else if (!strcmp(a, "--label")) {
            label = opt_value(argc, argv, &i);
            if (!*label) die_usage("--label: empty name");
        }
        else if (!strcmp(a, "-o") || !strcmp(a, "--out")) out_dir = opt_value(argc, argv, &i);
        else if (!strcmp(a, "-c") || !strcmp(a, "--ctx")) n_ctx = parse_long(a, opt_value(argc, argv, &i), 1, 1 << 20);
        else if (!strcmp(a, "--no-bos")) no_bos = true;
        else if (!strcmp(a, "--max-tokens")) max_tokens = parse_long(a, opt_value(argc, argv, &i), 1, 1L << 40);
        else if (!strcmp(a, "--sample")) sample = parse_long(a, opt_value(argc, argv, &i), 0, 100000);
        else if (!strcmp(a, "--sample-layers")) layers_arg = opt_value(argc, argv, &i);
        else if (!strcmp(a, "--dump")) dump_path = opt_value(argc, argv, &i);
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) threads = parse_long(a, opt_value(argc, argv, &i), 1, 1024);
        else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) quiet = true;
        else die_usage("unknown option '%s'", a);
    }
    if (!model_path) die_usage("missing -m MODEL");
    if (!n_in) die_usage("missing --text FILE (or --ids FILE)");
    if (label) die_usage("--label %s: no --text or --ids follows it", label);
    if (!out_dir) die_usage("missing -o DIR");
    if (strlen(out_dir) > 4000) die_usage("-o: path too long");

    smoe_model *model = NULL;
    smoe_tokenizer *tok = NULL;
    smoe_ctx *ctx = NULL;
    routes_acc *acc = NULL;
    window_buf wb = {0};
    int32_t *ids = NULL, *win = NULL, sel[64];
    FILE *dump = NULL;
    int rc = 1, n_sel = 0;
    if (smoe_model_load(model_path, NULL, &model)) { rc = fail("cannot load model"); goto out; }
    const smoe_model_info *inf = smoe_model_get_info(model);
    if (inf->n_expert <= 0) {
        fprintf(stderr, "%s: '%s' is a dense model (no experts): there is no routing to record\n", g_cmd, model_path);
        goto out;
    }
    if (smoe_tokenizer_from_gguf(smoe_model_gguf(model), &tok)) { rc = fail("cannot load tokenizer"); goto out; }
    const int32_t L = inf->n_layer, E = inf->n_expert, K = inf->n_expert_used;
    if (layers_arg) {
        if ((n_sel = parse_layers(layers_arg, L, sel, 64)) < 0) { rc = 2; goto out; }
    } else { /* first, middle, last; fewer when the model has fewer layers */
        const int32_t cand[3] = {0, L / 2, L - 1};
        for (int i = 0; i < 3; i++)
            if (!n_sel || cand[i] != sel[n_sel - 1]) sel[n_sel++] = cand[i];
    }
    smoe_ctx_params cp = smoe_ctx_default_params();
    cp.n_ctx = (int32_t)n_ctx;
    cp.n_threads = (int32_t)threads;
    cp.n_batch = 512;
    if (smoe_ctx_init(model, &cp, &ctx)) { rc = fail("cannot create context"); goto out; }
    const int32_t W = smoe_ctx_n_ctx(ctx);
    const int32_t bos_id = smoe_tokenizer_bos(tok);
    const bool bos = !no_bos && bos_id >= 0 && bos_id < inf->n_vocab;
    if (bos && W < 2) {
        fprintf(stderr, "%s: a window of %d token has no room after BOS; use --ctx 2 or more, or --no-bos\n", g_cmd, W);
        rc = 2;
        goto out;
    }
    bool any_text = false; /* "bos" in the reports: whether text windows started with BOS */
    for (int i = 0; i < n_in; i++) any_text |= !in[i].ids;
    const bool bos_used = bos && any_text;
    wb = (window_buf){.L = L, .W = W, .K = K};
    wb.ids = malloc(sizeof(int32_t) * (size_t)L * (size_t)W * (size_t)K);
    wb.w = malloc(sizeof(float) * (size_t)L * (size_t)W * (size_t)K);
    win = malloc(sizeof(int32_t) * (size_t)W);
    acc = routes_acc_new(L, E, K, (int32_t)sample);
    if (!wb.ids || !wb.w || !win || !acc) { fprintf(stderr, "%s: out of memory\n", g_cmd); goto out; }
    smoe_ctx_set_route_observer(ctx, on_route, &wb);
    for (int i = 0; i < n_in; i++) /* domains in the order of their first input */
        if (routes_acc_domain(acc, in[i].label, in[i].path) < 0) { fprintf(stderr, "%s: out of memory\n", g_cmd); goto out; }
    if (dump_path) {
        if (!(dump = fopen(dump_path, "w"))) {
            fprintf(stderr, "%s: cannot write '%s': %s\n", g_cmd, dump_path, strerror(errno));
            goto out;
        }
        fprintf(dump, "{\"model\": \"");
        routes_json_str(dump, model_path, strlen(model_path));
        fprintf(dump, "\", \"n_layer\": %d, \"n_expert\": %d, \"k\": %d, \"window\": %d, \"bos\": %s, \"domains\": [",
                L, E, K, W, bos_used ? "true" : "false");
        for (int32_t d = 0; d < acc->n_domain; d++) {
            fputs(d ? ", \"" : "\"", dump);
            routes_json_str(dump, acc->dom[d].label, strlen(acc->dom[d].label));
            fputc('"', dump);
        }
        fputs("]}\n", dump);
    }

    const double t0 = now_s();
    int64_t n_windows = 0, n_tokens = 0;
    for (int i = 0; i < n_in; i++) {
        int64_t n = 0;
        free(ids);
        ids = NULL;
        if (in[i].ids ? load_ids(in[i].path, inf->n_vocab, &ids, &n) : load_text(tok, in[i].path, &ids, &n)) goto out;
        if (n == 0) {
            fprintf(stderr, "%s: '%s' is empty: no tokens to route\n", g_cmd, in[i].path);
            goto out;
        }
        if (max_tokens > 0 && n > max_tokens) n = max_tokens;
        const int32_t dom = routes_acc_domain(acc, in[i].label, NULL);
        const int32_t p0 = in[i].ids ? 0 : bos, per = W - p0; /* counted tokens start at position p0 */
        for (int64_t off = 0; off < n; off += per, n_windows++) {
            const int32_t m = (int32_t)(n - off < per ? n - off : per);
            if (p0) win[0] = bos_id;
            memcpy(win + p0, ids + off, sizeof(int32_t) * (size_t)m);
            smoe_ctx_reset(ctx);
            if (smoe_ctx_decode(ctx, win, p0 + m, NULL, false)) {
                fprintf(stderr, "%s: %s: forward pass failed: %s\n", g_cmd, in[i].path, smoe_last_error());
                goto out;
            }
            if (wb.bad) { fprintf(stderr, "%s: unexpected routing callback\n", g_cmd); goto out; }
            routes_acc_add(acc, dom, ids + off, m, wb.ids + (size_t)p0 * (size_t)K, wb.w + (size_t)p0 * (size_t)K,
                           (size_t)W * (size_t)K);
            for (int32_t t = 0; dump && t < m; t++) dump_token(dump, dom, n_windows, p0 + t, ids[off + t], &wb);
            n_tokens += m;
        }
    }
    if (dump) {
        const int bad = fclose(dump) != 0;
        dump = NULL;
        if (bad) { fprintf(stderr, "%s: cannot write '%s': %s\n", g_cmd, dump_path, strerror(errno)); goto out; }
    }
    if (mkdir(out_dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "%s: cannot create '%s': %s\n", g_cmd, out_dir, strerror(errno));
        goto out;
    }
    const routes_meta meta = {
        .model = model_path, .window = W, .bos = bos_used, .sample_layers = sel, .n_sample_layers = n_sel};
    if (write_report(out_dir, "routes.json", acc, &meta, NULL) || write_report(out_dir, "index.html", acc, &meta, tok))
        goto out;
    if (!quiet)
        fprintf(stderr, "%s: %lld tokens in %d domain%s, %lld window%s of up to %d, %.2f s; wrote %s/routes.json and "
                        "%s/index.html\n", g_cmd, (long long)n_tokens, acc->n_domain, acc->n_domain == 1 ? "" : "s",
                (long long)n_windows, n_windows == 1 ? "" : "s", W, now_s() - t0, out_dir, out_dir);
    rc = 0;
out:
    if (dump) fclose(dump);
    free(in);
    free(ids);
    free(win);
    free(wb.ids);
    free(wb.w);
    routes_acc_free(acc);
    smoe_ctx_free(ctx);
    smoe_tokenizer_free(tok);
    smoe_model_free(model);
    return rc;
}
