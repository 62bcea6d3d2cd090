/*
 * cmd_bench.c - `smoe bench`: prompt-processing and generation speed of GGUF models, in
 * the manner of llama.cpp's llama-bench so that bench/compare.sh can put both side by
 * side. Uses the public API only.
 *
 *   pp<P>  one forward step of P random tokens from an empty context: tokens/s = P / time
 *   tg<N>  N single-token decodes from an empty context:             tokens/s = N / time
 *
 * One warm-up (a full pp run, and a short tg run - a full one when there is no pp test),
 * then r timed runs; the median and the sample standard deviation of tokens/s are
 * reported. Besides speed: load time, resident memory (VmRSS), the weight bytes one
 * generated token reads (non-expert tensors, one row of token_embd, K/E of the expert
 * tensors), the resulting GB/s at the tg speed, and that as a share of this machine's
 * memory read bandwidth, measured here with the same thread count over a 1 GiB buffer.
 *
 * What it does not do: no sampling or tokenization (ids are random, as in llama-bench),
 * no batch sweeps, no GPU.
 */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *BENCH_HELP =
    "usage: smoe bench -m FILE [-m FILE ...] [options]\n"
    "\n"
    "Measure prompt processing (pp: one step of P tokens) and generation (tg: N one-token\n"
    "steps) speed from an empty context, like llama.cpp's llama-bench: one warm-up, then\n"
    "R runs; median and standard deviation of tokens/s. Also: load time, resident memory,\n"
    "weight bytes read per generated token, the GB/s that makes at the tg speed and its\n"
    "share of the memory bandwidth measured on this machine with the same threads.\n"
    "With --seqs S the tg test decodes S sequences at once, one token each per step, in\n"
    "one batched forward pass (as `smoe serve` batches its requests): test tgNxS, tokens/s\n"
    "counting every sequence's tokens.\n"
    "\n"
    "options:\n"
    "  -m, --model FILE        GGUF model (repeatable)\n"
    "  -p, --n-prompt P        prompt tokens of the pp test; 0 = no pp test (default 512)\n"
    "  -n, --n-gen N           tokens of the tg test; 0 = no tg test (default 128)\n"
    "  -t, --threads N         worker threads (default: physical cores)\n"
    "  -r, --repetitions R     timed runs per test (default 3)\n"
    "  -s, --seqs S            sequences decoded together in the tg test (default 1)\n"
    "      --seed S            seed of the random token ids (default 0)\n"
    "      --json              one JSON object per line and test instead of a table\n"
    "      --no-warmup         skip the warm-up runs\n"
    "      --no-bw             skip the memory bandwidth measurement\n"
    "      --reference         use the plain reference kernels (slow; for comparison)\n"
    "      --bw-mib N          bandwidth buffer size in MiB (default 1024)\n"
    "  -h, --help              show this help\n";

/* ------------------------------------------------------------------ machine facts */

/* VmRSS of this process in bytes (0 if unknown). */
static uint64_t rss_bytes(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    uint64_t kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %" SCNu64 " kB", &kb) == 1) break;
    fclose(f);
    return kb * 1024;
}

/* Memory read bandwidth: each thread sums its slice of a buffer much larger than the
 * caches; the best of a few passes counts (the others suffer from start-up noise). */
typedef uint64_t v2u64 __attribute__((vector_size(16)));

typedef struct bw_task {
    uint8_t *p;
    size_t n;
    bool fill;      /* first pass: write the slice (first touch from the reading thread) */
    uint64_t sum;
} bw_task;

static uint64_t sum_slice(const uint8_t *p, size_t n) {
    /* four independent vector accumulators keep several loads in flight */
    v2u64 a = {0, 0}, b = a, c = a, d = a;
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        v2u64 x, y, z, w;
        memcpy(&x, p + i, 16), memcpy(&y, p + i + 16, 16), memcpy(&z, p + i + 32, 16), memcpy(&w, p + i + 48, 16);
        a += x, b += y, c += z, d += w;
    }
    a += b + c + d;
    uint64_t s = a[0] + a[1];
    for (; i < n; i++) s += p[i];
    return s;
}

static void *bw_worker(void *arg) {
    bw_task *t = arg;
    if (t->fill) memset(t->p, 1, t->n);
    else t->sum += sum_slice(t->p, t->n);
    return NULL;
}

/* Run every slice once on its own thread (slice 0 on this one); threads are started per
 * pass, which costs microseconds against a pass of ~0.1 s, and a thread that cannot be
 * started has its slice run here, so nothing can hang. */
static void bw_pass(bw_task *t, pthread_t *th, bool *live, int nth, bool fill) {
    for (int i = 0; i < nth; i++) t[i].fill = fill;
    for (int i = 1; i < nth; i++) live[i] = pthread_create(&th[i], NULL, bw_worker, &t[i]) == 0;
    bw_worker(&t[0]);
    for (int i = 1; i < nth; i++) {
        if (live[i]) pthread_join(th[i], NULL);
        else bw_worker(&t[i]);
    }
}

/* GB/s (1e9 bytes/s), or 0 on failure. */
static double measure_bandwidth(int nth, size_t bytes) {
    enum { PASSES = 10 }; /* best of many: a pass that loses its CPU to another job is noise */
    uint8_t *buf = NULL;
    if (posix_memalign((void **)&buf, 4096, bytes) != 0) return 0;
    bw_task *t = calloc((size_t)nth, sizeof *t);
    pthread_t *th = calloc((size_t)nth, sizeof *th);
    bool *live = calloc((size_t)nth, sizeof *live);
    double best = 0;
    if (!t || !th || !live) goto out;
    size_t chunk = bytes / (size_t)nth / 64 * 64;
    for (int i = 0; i < nth; i++) {
        t[i].p = buf + (size_t)i * chunk;
        t[i].n = i == nth - 1 ? bytes - (size_t)i * chunk : chunk;
    }
    bw_pass(t, th, live, nth, true);
    for (int k = 0; k < PASSES; k++) {
        double t0 = now_s();
        bw_pass(t, th, live, nth, false);
        double dt = now_s() - t0;
        if (dt > 0 && bytes / dt / 1e9 > best) best = bytes / dt / 1e9;
    }
    /* every byte is 1, so each slice's sum is known (8-byte words of 0x0101..01 and
     * single tail bytes, modulo 2^64): checking it keeps the reads from being optimised
     * away and proves they happened */
    for (int i = 0; i < nth; i++) {
        const uint64_t one = (t[i].n / 64 * 8) * 0x0101010101010101ull + t[i].n % 64;
        if (t[i].sum != one * PASSES) best = 0;
    }
out:
    free(live);
    free(th);
    free(t);
    free(buf);
    return best;
}

/* ------------------------------------------------------------------ model facts */

/* Weight bytes one generated token reads: every tensor, except that token_embd gives one
 * row (a lookup) unless it doubles as the output matrix, and expert tensors give K/E of
 * their bytes (3-D *_exps, or the older one-tensor-per-expert blk.L.ffn_X.E.weight). */
static double bytes_per_token(const smoe_gguf *g, const smoe_model_info *inf) {
    const bool tied = smoe_gguf_find_tensor(g, "output.weight") < 0;
    const double ke = inf->n_expert > 0 ? (double)inf->n_expert_used / inf->n_expert : 1.0;
    double sum = 0;
    for (int64_t i = 0; i < smoe_gguf_n_tensors(g); i++) {
        const char *name = smoe_gguf_tensor_name(g, i);
        double nb = (double)smoe_gguf_tensor_nbytes(g, i);
        int il, ie, nc = 0;
        char kind[16];
        if (!strcmp(name, "token_embd.weight") && !tied && smoe_gguf_tensor_ne(g, i, 1) > 0)
            nb /= (double)smoe_gguf_tensor_ne(g, i, 1);
        else if (strstr(name, "_exps."))
            nb *= ke;
        else if (sscanf(name, "blk.%d.ffn_%15[a-z].%d.weight%n", &il, kind, &ie, &nc) == 3 && name[nc] == 0)
            nb *= ke;
        sum += nb;
    }
    return sum;
}

/* Weight type label: the one type of all matrices ("pure" files), else the name of
 * general.file_type (llama_ftype), else "mixed". Norms and routers (F32) do not count. */
static const char *type_label(const smoe_gguf *g) {
    int only = -1;
    bool mixed = false;
    for (int64_t i = 0; i < smoe_gguf_n_tensors(g); i++) {
        const char *name = smoe_gguf_tensor_name(g, i);
        if (smoe_gguf_tensor_ndim(g, i) < 2 || strstr(name, "ffn_gate_inp")) continue;
        int dt = smoe_gguf_tensor_dtype(g, i);
        if (only < 0) only = dt;
        else if (dt != only) mixed = true;
    }
    if (only >= 0 && !mixed) return smoe_dtype_name(only) ? smoe_dtype_name(only) : "?";
    static const struct { uint32_t id; const char *name; } FT[] = {
        {0, "F32"}, {1, "F16"}, {2, "Q4_0"}, {3, "Q4_1"}, {7, "Q8_0"}, {8, "Q5_0"}, {9, "Q5_1"},
        {10, "Q2_K"}, {11, "Q3_K_S"}, {12, "Q3_K_M"}, {13, "Q3_K_L"}, {14, "Q4_K_S"}, {15, "Q4_K_M"},
        {16, "Q5_K_S"}, {17, "Q5_K_M"}, {18, "Q6_K"}, {32, "BF16"},
    };
    uint32_t ft;
    if (smoe_gguf_get_u32(g, "general.file_type", &ft) == SMOE_OK)
        for (size_t k = 0; k < sizeof FT / sizeof FT[0]; k++)
            if (FT[k].id == ft) return FT[k].name;
    return "mixed";
}

/* ------------------------------------------------------------------ statistics */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct stats { double median, mean, stdev; } stats;

static stats summarise(const double *v, int n) {
    stats s = {0, 0, 0};
    if (n <= 0) return s;
    double *c = malloc(sizeof *c * (size_t)n);
    if (!c) return s;
    memcpy(c, v, sizeof *c * (size_t)n);
    qsort(c, (size_t)n, sizeof *c, cmp_double);
    s.median = n % 2 ? c[n / 2] : 0.5 * (c[n / 2 - 1] + c[n / 2]);
    for (int i = 0; i < n; i++) s.mean += v[i];
    s.mean /= n;
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (v[i] - s.mean) * (v[i] - s.mean);
    s.stdev = n > 1 ? sqrt(ss / (n - 1)) : 0; /* sample stdev, as llama-bench */
    free(c);
    return s;
}

/* ------------------------------------------------------------------ output */

static void json_str(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') printf("\\%c", ch);
        else if (ch < 0x20) printf("\\u%04x", ch);
        else putchar(ch);
    }
    putchar('"');
}

static void json_num(double v) {
    if (isfinite(v)) printf("%.6g", v);
    else fputs("null", stdout);
}

typedef struct model_facts {
    const char *path, *base, *type;
    uint64_t size;
    int64_t n_params;
    double load_s, tok_bytes;
    uint64_t rss;
} model_facts;

typedef struct result {
    char test[32];
    int n_prompt, n_gen, n_seq, reps;
    double *samples;
    stats st;
    double gbs, bw_pct; /* NAN when not meaningful (pp, a batch of sequences) */
} result;

static void print_json(const model_facts *mf, const result *r, int threads, double bw, bool reference) {
    fputs("{\"model\": ", stdout);
    json_str(mf->path);
    fputs(", \"model_name\": ", stdout);
    json_str(mf->base);
    fputs(", \"type\": ", stdout);
    json_str(mf->type);
    printf(", \"size_bytes\": %" PRIu64 ", \"n_params\": %" PRId64 ", \"bytes_per_token\": %.0f", mf->size, mf->n_params,
           mf->tok_bytes);
    printf(", \"load_s\": %.4f, \"rss_bytes\": %" PRIu64 ", \"threads\": %d", mf->load_s, mf->rss, threads);
    fputs(", \"test\": ", stdout);
    json_str(r->test);
    printf(", \"n_prompt\": %d, \"n_gen\": %d, \"n_seq\": %d, \"repetitions\": %d, \"tokens_per_s\": ", r->n_prompt, r->n_gen,
           r->n_seq, r->reps);
    json_num(r->st.median);
    fputs(", \"avg_ts\": ", stdout);
    json_num(r->st.mean);
    fputs(", \"stdev\": ", stdout);
    json_num(r->st.stdev);
    fputs(", \"samples_ts\": [", stdout);
    for (int i = 0; i < r->reps; i++) {
        if (i) fputs(", ", stdout);
        json_num(r->samples[i]);
    }
    fputs("], \"gb_per_s\": ", stdout);
    json_num(r->gbs);
    fputs(", \"bw_gb_per_s\": ", stdout);
    json_num(bw > 0 ? bw : NAN);
    fputs(", \"bw_pct\": ", stdout);
    json_num(r->bw_pct);
    printf(", \"kernels\": \"%s\", \"smoe_version\": \"%s\"}\n", reference ? "reference" : "fast", SMOE_VERSION_STRING);
    fflush(stdout);
}

static void print_row(const model_facts *mf, const result *r, int threads) {
    char gbs[32] = "", pct[32] = "";
    if (isfinite(r->gbs)) snprintf(gbs, sizeof gbs, "%.2f", r->gbs);
    if (isfinite(r->bw_pct)) snprintf(pct, sizeof pct, "%.1f%%", r->bw_pct);
    printf("| %-28s | %-7s | %9.2f MiB | %8.3f B | %7.2f | %9.0f | %7d | %-7s | %9.2f ± %-7.2f | %6s | %6s |\n", mf->base,
           mf->type, mf->size / 1048576.0, mf->n_params / 1e9, mf->load_s, mf->rss / 1048576.0, threads, r->test,
           r->st.median, r->st.stdev, gbs, pct);
    fflush(stdout);
}

/* ------------------------------------------------------------------ the command */

typedef struct bench_opts {
    int n_prompt, n_gen, threads, reps, n_seq;
    uint64_t seed;
    bool json, warmup, reference;
    double bw;
} bench_opts;

/* One test: reps timed runs (after an optional warm-up) of pp (n_prompt > 0) or tg. */
static smoe_status run_test(smoe_ctx *ctx, const int32_t *ids, float *logits, int n_prompt, int n_gen, int warm_n,
                            int reps, double *samples) {
    for (int rep = -1; rep < reps; rep++) {
        if (rep < 0 && warm_n <= 0) continue;
        smoe_ctx_reset(ctx);
        double t0 = now_s();
        smoe_status st;
        if (n_prompt > 0) {
            st = smoe_ctx_decode(ctx, ids, n_prompt, logits, false);
        } else {
            const int n = rep < 0 ? warm_n : n_gen;
            st = SMOE_OK;
            for (int i = 0; i < n && !st; i++) st = smoe_ctx_decode(ctx, ids + i, 1, logits, false);
        }
        if (st) return st;
        double dt = now_s() - t0;
        if (rep >= 0) samples[rep] = (n_prompt > 0 ? n_prompt : n_gen) / (dt > 0 ? dt : 1e-9);
    }
    return SMOE_OK;
}

/* The tg test over n_seq sequences at once: each step one token of every sequence through
 * one smoe_ctx_decode_multi on seqs[0] (sequence s reads its ids from ids + s * n_gen). */
static smoe_status run_test_seqs(smoe_ctx **seqs, int n_seq, const int32_t *ids, float *logits, int n_gen, int warm_n,
                                 int reps, double *samples) {
    int32_t step_ids[256], n_tok[256];
    for (int s = 0; s < n_seq; s++) n_tok[s] = 1;
    for (int rep = -1; rep < reps; rep++) {
        if (rep < 0 && warm_n <= 0) continue;
        for (int s = 0; s < n_seq; s++) smoe_ctx_reset(seqs[s]);
        const int n = rep < 0 ? warm_n : n_gen;
        double t0 = now_s();
        for (int i = 0; i < n; i++) {
            for (int s = 0; s < n_seq; s++) step_ids[s] = ids[(size_t)s * (size_t)n_gen + (size_t)i];
            smoe_status st = smoe_ctx_decode_multi(seqs[0], seqs, n_seq, step_ids, n_tok, logits);
            if (st) return st;
        }
        double dt = now_s() - t0;
        if (rep >= 0) samples[rep] = (double)n_seq * n_gen / (dt > 0 ? dt : 1e-9);
    }
    return SMOE_OK;
}

static int bench_model(const char *path, const bench_opts *o, bool *header_done) {
    smoe_model *m = NULL;
    smoe_ctx *ctx = NULL, *seqs[256] = {NULL};
    int32_t *ids = NULL;
    float *logits = NULL;
    double *samples = NULL;
    int rc = 1;
    model_facts mf = {path, strrchr(path, '/') ? strrchr(path, '/') + 1 : path, NULL, 0, 0, 0, 0, 0};
    double t0 = now_s();
    if (smoe_model_load(path, NULL, &m)) { rc = fail("cannot load model"); goto out; }
    mf.load_s = now_s() - t0;
    const smoe_model_info *inf = smoe_model_get_info(m);
    const smoe_gguf *g = smoe_model_gguf(m);
    mf.type = type_label(g);
    mf.size = inf->weight_bytes;
    mf.n_params = inf->n_params;
    mf.tok_bytes = bytes_per_token(g, inf);

    smoe_ctx_params cp = smoe_ctx_default_params();
    const int need = o->n_prompt > o->n_gen ? o->n_prompt : o->n_gen;
    cp.n_ctx = need > 0 ? need : 1;
    cp.n_batch = o->n_prompt > 0 ? o->n_prompt : 1; /* the whole prompt is one step, as llama-bench's pp512 */
    cp.n_threads = o->threads;
    cp.reference = o->reference;
    if (smoe_ctx_init(m, &cp, &ctx)) { rc = fail("cannot create context"); goto out; }
    if (o->n_seq > 1 && o->n_gen > 0) { /* the batch's sequences: the runner with the threads, the rest 1 each */
        smoe_ctx_params sp = cp;
        sp.n_ctx = o->n_gen;
        sp.n_batch = o->n_seq;
        for (int s = 0; s < o->n_seq; s++) {
            sp.n_threads = s == 0 ? o->threads : 1;
            if (smoe_ctx_init(m, &sp, &seqs[s])) { rc = fail("cannot create the batch's contexts"); goto out; }
        }
    }
    const size_t n_ids = (size_t)cp.n_ctx > (size_t)o->n_seq * (size_t)o->n_gen ? (size_t)cp.n_ctx
                                                                                : (size_t)o->n_seq * (size_t)o->n_gen;
    ids = malloc(sizeof *ids * n_ids);
    logits = malloc(sizeof *logits * (size_t)inf->n_vocab * (size_t)o->n_seq);
    samples = malloc(sizeof *samples * (size_t)o->reps);
    if (!ids || !logits || !samples) { fprintf(stderr, "%s: out of memory\n", g_cmd); goto out; }
    uint64_t x = o->seed;
    for (size_t i = 0; i < n_ids; i++) { /* splitmix64: random ids, as llama-bench feeds */
        uint64_t z = (x += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        ids[i] = (int32_t)((z ^ (z >> 31)) % (uint64_t)inf->n_vocab);
    }

    for (int test = 0; test < 2; test++) {
        const int np = test == 0 ? o->n_prompt : 0, ng = test == 1 ? o->n_gen : 0;
        if (np == 0 && ng == 0) continue;
        /* warm-up: a full pp run touches every weight page; tg then needs only a few
         * tokens to warm its own path, unless there was no pp test */
        int warm = 0;
        if (o->warmup) warm = np > 0 ? 1 : (o->n_prompt > 0 ? (ng < 8 ? ng : 8) : ng);
        const bool batch = ng > 0 && o->n_seq > 1;
        smoe_status st = batch ? run_test_seqs(seqs, o->n_seq, ids, logits, ng, warm, o->reps, samples)
                               : run_test(ctx, ids, logits, np, ng, warm, o->reps, samples);
        if (st) { rc = fail("decode failed"); goto out; }
        mf.rss = rss_bytes();
        result r;
        if (batch) snprintf(r.test, sizeof r.test, "tg%dx%d", ng, o->n_seq);
        else snprintf(r.test, sizeof r.test, np > 0 ? "pp%d" : "tg%d", np > 0 ? np : ng);
        r.n_prompt = np, r.n_gen = ng, r.n_seq = batch ? o->n_seq : 1, r.reps = o->reps, r.samples = samples;
        r.st = summarise(samples, o->reps);
        r.gbs = ng > 0 && !batch ? mf.tok_bytes * r.st.median / 1e9 : NAN; /* a batch shares its reads */
        r.bw_pct = ng > 0 && o->bw > 0 ? 100.0 * r.gbs / o->bw : NAN;
        if (o->json) {
            print_json(&mf, &r, o->threads, o->bw, o->reference);
        } else {
            if (!*header_done) {
                printf("| %-28s | %-7s | %13s | %10s | %7s | %9s | %7s | %-7s | %19s | %6s | %6s |\n", "model", "type", "size",
                       "params", "load s", "RSS MiB", "threads", "test", "t/s", "GB/s", "% bw");
                printf("| %.28s | %.7s | %.13s | %.10s | %.7s | %.9s | %.7s | %.7s | %.19s | %.6s | %.6s |\n",
                       "-----------------------------", "--------", "--------------", "-----------", "--------",
                       "----------", "--------", "--------", "--------------------", "-------", "-------");
                *header_done = true;
            }
            print_row(&mf, &r, o->threads);
        }
    }
    if (!o->json)
        fprintf(stderr, "%s: %s: %.2f MiB of weights read per generated token (non-expert + %d/%d of experts); %s kernels\n",
                g_cmd, mf.base, mf.tok_bytes / 1048576.0, inf->n_expert_used, inf->n_expert, o->reference ? "reference" : "fast");
    rc = 0;
out:
    free(samples);
    free(logits);
    free(ids);
    smoe_ctx_free(ctx);
    for (int s = 0; s < 256; s++) smoe_ctx_free(seqs[s]);
    smoe_model_free(m);
    return rc;
}

int cmd_bench(int argc, char **argv) {
    const char **models = calloc((size_t)argc, sizeof *models);
    int n_models = 0;
    bench_opts o = {512, 128, 0, 3, 1, 0, false, true, false, 0};
    bool bw = true;
    long bw_mib = 1024;
    if (!models) return fail("out of memory");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (is_help(a)) { fputs(BENCH_HELP, stdout); free(models); return 0; }
        else if (!strcmp(a, "-m") || !strcmp(a, "--model")) models[n_models++] = opt_value(argc, argv, &i);
        else if (!strcmp(a, "-p") || !strcmp(a, "--n-prompt")) o.n_prompt = (int)parse_long(a, opt_value(argc, argv, &i), 0, 1 << 20);
        else if (!strcmp(a, "-n") || !strcmp(a, "--n-gen")) o.n_gen = (int)parse_long(a, opt_value(argc, argv, &i), 0, 1 << 20);
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) o.threads = (int)parse_long(a, opt_value(argc, argv, &i), 1, 1024);
        else if (!strcmp(a, "-r") || !strcmp(a, "--repetitions")) o.reps = (int)parse_long(a, opt_value(argc, argv, &i), 1, 1000);
        else if (!strcmp(a, "-s") || !strcmp(a, "--seqs")) o.n_seq = (int)parse_long(a, opt_value(argc, argv, &i), 1, 256);
        else if (!strcmp(a, "--seed")) o.seed = parse_u64(a, opt_value(argc, argv, &i));
        else if (!strcmp(a, "--json")) o.json = true;
        else if (!strcmp(a, "--no-warmup")) o.warmup = false;
        else if (!strcmp(a, "--no-bw")) bw = false;
        else if (!strcmp(a, "--reference")) o.reference = true;
        else if (!strcmp(a, "--bw-mib")) bw_mib = parse_long(a, opt_value(argc, argv, &i), 16, 1 << 20);
        else die_usage("unknown option '%s'", a);
    }
    if (n_models == 0) { free(models); die_usage("missing -m FILE"); }
    if (o.n_prompt == 0 && o.n_gen == 0) { free(models); die_usage("nothing to measure: -p and -n are both 0"); }
    for (int i = 0; i < n_models; i++) /* fail fast, before the bandwidth measurement */
        if (access(models[i], R_OK) != 0) {
            fprintf(stderr, "%s: cannot read '%s': %s\n", g_cmd, models[i], strerror(errno));
            free(models);
            return 1;
        }
    if (o.threads == 0) o.threads = smoe_default_threads(); /* physical cores, as llama.cpp */
    if (bw) {
        o.bw = measure_bandwidth(o.threads, (size_t)bw_mib << 20);
        if (o.bw <= 0) fprintf(stderr, "%s: could not measure the memory bandwidth\n", g_cmd);
        else if (!o.json)
            printf("memory read bandwidth: %.2f GB/s (%d threads, %ld MiB buffer)\n\n", o.bw, o.threads, bw_mib);
    }
    bool header = false;
    int rc = 0;
    for (int i = 0; i < n_models && rc == 0; i++) rc = bench_model(models[i], &o, &header);
    free(models);
    return rc;
}
