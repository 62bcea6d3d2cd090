/*
 * test_synth.c - synthetic models (src/synth.c, `smoe synth`):
 *   - every weight type and mix gives a file the model loader takes, with the requested
 *     hyper-parameters, whose logits are finite and not flat;
 *   - the random blocks have the intended scale: dequantized weights have an RMS of
 *     1/sqrt(fan_in) within 5% and a mean near 0, for every type;
 *   - the mixes pick, tensor by tensor, the types llama.cpp's llama-quantize picked for
 *     the tiny Mixtral fixtures (tests/data/model/mixtral-tiny-{Q3_K_M,Q4_K_M,Q5_K_M}),
 *     and follow its rules at Mixtral-8x7B depth; K-quants on short rows fall back as in
 *     llama.cpp;
 *   - the same seed gives identical bytes, another seed other bytes;
 *   - bad parameters, a missing vocabulary and a disk too small fail cleanly, with no
 *     file left behind.
 */
#include "smoe.h"
#include "testhelp.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char g_dir[256];
static const char *VOCAB = "tokenizer/ggml-vocab-mistral-v1.gguf";

static const char *tmp_path(const char *name) {
    static char buf[4][512];
    static int k;
    k = (k + 1) & 3;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
    return buf[k];
}

/* A tiny MoE model: D 256 so that the K-quants apply unchanged (256-value blocks). */
static smoe_synth_params tiny(const char *type) {
    smoe_synth_params p = smoe_synth_default_params();
    p.n_embd = 256, p.n_layer = 2, p.n_head = 4, p.n_head_kv = 2, p.n_ff = 256;
    p.n_expert = 4, p.n_expert_used = 2, p.n_ctx = 128;
    p.type = type;
    p.seed = 11;
    p.vocab_path = th_data(VOCAB);
    p.vocab_n = 300; /* control + 256 byte tokens + a few pieces */
    return p;
}

typedef struct prog { int calls; uint64_t last, total; bool monotonic; } prog;

static void on_progress(void *user, int64_t tensor, int64_t n_tensors, uint64_t done, uint64_t total, const char *name) {
    prog *pr = user;
    if (done < pr->last || tensor >= n_tensors || !name || !name[0]) pr->monotonic = false;
    pr->calls++, pr->last = done, pr->total = total;
}

/* Load, check the hyper-parameters, run a few tokens. */
static void check_runs(const smoe_synth_params *p, const char *path, const char *what) {
    smoe_model *m = NULL;
    smoe_ctx *c = NULL;
    CHECK_OK(smoe_model_load(path, NULL, &m));
    if (!m) return;
    const smoe_model_info *f = smoe_model_get_info(m);
    CHECK(!strcmp(f->arch, "llama"), "%s: arch %s", what, f->arch);
    CHECK(f->n_embd == p->n_embd && f->n_layer == p->n_layer && f->n_head == p->n_head && f->n_head_kv == p->n_head_kv &&
              f->n_ff == p->n_ff && f->n_expert == p->n_expert && f->n_expert_used == p->n_expert_used &&
              f->n_ctx_train == p->n_ctx && f->n_vocab == (p->vocab_n ? p->vocab_n : 32000),
          "%s: hyper-parameters differ (D %d L %d H %d/%d F %d E %d/%d C %d V %d)", what, f->n_embd, f->n_layer, f->n_head,
          f->n_head_kv, f->n_ff, f->n_expert, f->n_expert_used, f->n_ctx_train, f->n_vocab);
    CHECK(f->rope_freq_base == p->rope_freq_base && f->head_dim == p->n_embd / p->n_head, "%s: rope %g head %d", what,
          f->rope_freq_base, f->head_dim);
    smoe_ctx_params cp = smoe_ctx_default_params();
    cp.n_ctx = 16, cp.n_batch = 8, cp.n_threads = 2;
    CHECK_OK(smoe_ctx_init(m, &cp, &c));
    const int32_t V = f->n_vocab, ids[5] = {1, 17, 250, 299, 42};
    float *lg = malloc(sizeof(float) * 5 * (size_t)V);
    if (c && lg) {
        CHECK_OK(smoe_ctx_decode(c, ids, 4, lg, true));
        CHECK_OK(smoe_ctx_decode(c, ids + 4, 1, lg + 4 * (size_t)V, false));
        int bad = 0;
        for (int t = 0; t < 5; t++) {
            float lo = INFINITY, hi = -INFINITY;
            double ss = 0;
            for (int32_t v = 0; v < V; v++) {
                float x = lg[(size_t)t * V + v];
                if (!isfinite(x)) bad++;
                lo = fminf(lo, x), hi = fmaxf(hi, x), ss += (double)x * x;
            }
            /* unit-variance weights give logits of RMS ~1: flat or exploding both fail */
            double rms = sqrt(ss / V);
            CHECK(hi - lo > 0.1f && rms > 0.05 && rms < 50, "%s: token %d logits flat or huge (range %g, rms %g)", what, t,
                  (double)(hi - lo), rms);
        }
        CHECK(bad == 0, "%s: %d non-finite logits", what, bad);
    }
    free(lg);
    smoe_ctx_free(c);
    smoe_model_free(m);
}

/* RMS and mean of the dequantized values of one tensor vs 1/sqrt(ne0). */
static void check_scale(const char *path, const char *tensor, const char *what) {
    smoe_gguf *g = NULL;
    CHECK_OK(smoe_gguf_open(path, &g));
    if (!g) return;
    int64_t i = smoe_gguf_find_tensor(g, tensor);
    CHECK(i >= 0, "%s: no %s", what, tensor);
    if (i >= 0) {
        int64_t n = 1;
        for (int d = 0; d < smoe_gguf_tensor_ndim(g, i); d++) n *= smoe_gguf_tensor_ne(g, i, d);
        float *x = malloc(sizeof(float) * (size_t)n);
        if (x) {
            CHECK_OK(smoe_dequantize(smoe_gguf_tensor_dtype(g, i), smoe_gguf_tensor_data(g, i), x, n));
            double s = 0, ss = 0;
            for (int64_t k = 0; k < n; k++) s += x[k], ss += (double)x[k] * x[k];
            const double rms = sqrt(ss / n), mean = s / n, want = 1.0 / sqrt((double)smoe_gguf_tensor_ne(g, i, 0));
            CHECK(fabs(rms / want - 1) < 0.05, "%s %s (%s): rms %g, want %g", what, tensor,
                  smoe_dtype_name(smoe_gguf_tensor_dtype(g, i)), rms, want);
            CHECK(fabs(mean) < 0.1 * want, "%s %s: mean %g vs rms %g", what, tensor, mean, want);
        }
        free(x);
    }
    smoe_gguf_free(g);
}

static void test_types(void) {
    for (int ti = 0; smoe_synth_type_name(ti); ti++) {
        const char *type = smoe_synth_type_name(ti);
        smoe_synth_params p = tiny(type);
        prog pr = {0, 0, 0, true};
        p.progress = on_progress, p.progress_user = &pr;
        const char *path = tmp_path("t.gguf");
        uint64_t size = 0;
        CHECK_OK(smoe_synth_size(&p, &size));
        CHECK_OK(smoe_synth_model(&p, path));
        CHECK(pr.calls == 3 + 10 * 2 && pr.monotonic && pr.last == size && pr.total == size,
              "%s: progress %d calls, last %llu, total %llu, size %llu", type, pr.calls, (unsigned long long)pr.last,
              (unsigned long long)pr.total, (unsigned long long)size);
        check_runs(&p, path, type);
        check_scale(path, "blk.0.ffn_gate_exps.weight", type);
        check_scale(path, "blk.1.ffn_down_exps.weight", type);
        check_scale(path, "output.weight", type);
        /* the truncated vocabulary still makes a tokenizer */
        smoe_gguf *g = NULL;
        smoe_tokenizer *tok = NULL;
        CHECK_OK(smoe_gguf_open(path, &g));
        if (g) {
            CHECK_OK(smoe_tokenizer_from_gguf(g, &tok));
            if (tok) {
                CHECK(smoe_tokenizer_n_vocab(tok) == 300 && smoe_tokenizer_bos(tok) == 1, "%s: vocab %d", type,
                      smoe_tokenizer_n_vocab(tok));
                int32_t ids[64];
                int64_t n = 0;
                CHECK_OK(smoe_tokenizer_encode(tok, "Hi there", 8, true, ids, 64, &n));
                CHECK(n > 1, "%s: encoded %lld ids", type, (long long)n);
            }
            smoe_tokenizer_free(tok);
            smoe_gguf_free(g);
        }
        unlink(path);
    }
}

/* A dense model and one whose rows (64) are too short for the K-quants. */
static void test_shapes(void) {
    smoe_synth_params p = tiny("Q4_K_M");
    p.n_embd = 64, p.n_ff = 96, p.n_head = 4, p.n_head_kv = 1;
    const char *path = tmp_path("short.gguf");
    CHECK_OK(smoe_synth_model(&p, path));
    check_runs(&p, path, "D 64 Q4_K_M");
    smoe_gguf *g = NULL;
    CHECK_OK(smoe_gguf_open(path, &g));
    if (g) {
        /* Q4_K -> Q5_0 and Q6_K -> Q8_0 on 64-value rows, as llama.cpp falls back */
        CHECK(smoe_gguf_tensor_dtype(g, smoe_gguf_find_tensor(g, "blk.0.attn_q.weight")) == SMOE_DTYPE_Q5_0, "fallback q");
        CHECK(smoe_gguf_tensor_dtype(g, smoe_gguf_find_tensor(g, "output.weight")) == SMOE_DTYPE_Q8_0, "fallback output");
        CHECK(smoe_gguf_tensor_dtype(g, smoe_gguf_find_tensor(g, "blk.0.ffn_norm.weight")) == SMOE_DTYPE_F32, "norm F32");
        smoe_gguf_free(g);
    }
    unlink(path);

    p = tiny("Q8_0");
    p.n_expert = 0, p.n_expert_used = 0;
    path = tmp_path("dense.gguf");
    CHECK_OK(smoe_synth_model(&p, path));
    check_runs(&p, path, "dense Q8_0");
    CHECK_OK(smoe_gguf_open(path, &g));
    if (g) {
        CHECK(smoe_gguf_find_tensor(g, "blk.1.ffn_up.weight") >= 0 && smoe_gguf_find_tensor(g, "blk.1.ffn_gate_inp.weight") < 0,
              "dense layout");
        smoe_gguf_free(g);
    }
    unlink(path);
}

/* The mixes against what llama.cpp's llama-quantize wrote for the fixtures. */
static void test_mix_vs_llama_cpp(void) {
    const char *mixes[] = {"Q3_K_M", "Q4_K_M", "Q5_K_M"};
    for (int k = 0; k < 3; k++) {
        char rel[128];
        snprintf(rel, sizeof rel, "model/mixtral-tiny-%s.gguf", mixes[k]);
        smoe_gguf *g = NULL;
        CHECK_OK(smoe_gguf_open(th_data(rel), &g));
        if (!g) continue;
        smoe_synth_params p = smoe_synth_default_params();
        p.n_embd = 256, p.n_layer = 2, p.n_head = 8, p.n_head_kv = 2, p.n_ff = 256, p.n_expert = 8, p.n_expert_used = 2;
        p.type = mixes[k];
        int diff = 0;
        for (int64_t i = 0; i < smoe_gguf_n_tensors(g); i++) {
            const char *name = smoe_gguf_tensor_name(g, i);
            int want = smoe_gguf_tensor_dtype(g, i), got = smoe_synth_tensor_type(&p, name, smoe_gguf_tensor_ne(g, i, 0));
            if (got != want) {
                diff++;
                fprintf(stderr, "  %s %s: llama.cpp %s, synth %s\n", mixes[k], name, smoe_dtype_name(want),
                        got >= 0 ? smoe_dtype_name(got) : "error");
            }
        }
        CHECK(diff == 0, "%s: %d tensors typed unlike llama.cpp", mixes[k], diff);
        smoe_gguf_free(g);
    }

    /* Mixtral depth (32 layers, 8 experts): use_more_bits picks layers 0-3, 6, 9, ..., 27
     * and 28-31 for Q6_K ffn_down in Q4_K_M; attention k/v go Q8_0. */
    smoe_synth_params p = smoe_synth_default_params();
    smoe_synth_preset("mixtral-8x7b", &p);
    p.type = "Q4_K_M";
    static const int more[32] = {1, 1, 1, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1,
                                 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 1, 1, 1, 1};
    int bad = 0;
    for (int il = 0; il < 32; il++) {
        char nm[64];
        snprintf(nm, sizeof nm, "blk.%d.ffn_down_exps.weight", il);
        bad += smoe_synth_tensor_type(&p, nm, 14336) != (more[il] ? SMOE_DTYPE_Q6_K : SMOE_DTYPE_Q4_K);
    }
    CHECK(bad == 0, "Q4_K_M ffn_down at 32 layers: %d wrong", bad);
    CHECK(smoe_synth_tensor_type(&p, "blk.5.attn_v.weight", 4096) == SMOE_DTYPE_Q8_0, "attn_v Q8_0");
    CHECK(smoe_synth_tensor_type(&p, "blk.5.attn_k.weight", 4096) == SMOE_DTYPE_Q8_0, "attn_k Q8_0");
    CHECK(smoe_synth_tensor_type(&p, "blk.5.attn_output.weight", 4096) == SMOE_DTYPE_Q5_K, "attn_output Q5_K");
    CHECK(smoe_synth_tensor_type(&p, "blk.5.ffn_gate_inp.weight", 4096) == SMOE_DTYPE_F32, "router F32");
    CHECK(smoe_synth_tensor_type(&p, "output.weight", 4096) == SMOE_DTYPE_Q6_K, "output Q6_K");
    CHECK(smoe_synth_tensor_type(&p, "token_embd.weight", 4096) == SMOE_DTYPE_Q4_K, "token_embd Q4_K");
    p.type = "Q3_K_M";
    CHECK(smoe_synth_tensor_type(&p, "blk.1.ffn_down_exps.weight", 14336) == SMOE_DTYPE_Q5_K &&
              smoe_synth_tensor_type(&p, "blk.2.ffn_down_exps.weight", 14336) == SMOE_DTYPE_Q4_K,
          "Q3_K_M ffn_down: Q5_K in the first 16th");
    p.type = "Q6_K"; /* pure: every matrix */
    CHECK(smoe_synth_tensor_type(&p, "blk.0.attn_v.weight", 4096) == SMOE_DTYPE_Q6_K, "pure Q6_K attn_v");
    CHECK(smoe_synth_tensor_type(&p, "blk.0.attn_v.weight", 64) == SMOE_DTYPE_Q8_0, "Q6_K fallback");
    p.type = "Q2_K";
    CHECK(smoe_synth_tensor_type(&p, "blk.0.attn_q.weight", 96) == SMOE_DTYPE_Q4_0, "Q2_K fallback");
    CHECK(smoe_synth_tensor_type(&p, "blk.0.attn_q.weight", 48) == SMOE_DTYPE_F16, "fallback of the fallback");
}

static bool same_file(const char *a, const char *b) {
    size_t na = 0, nb = 0;
    char *x = th_read_file(a, &na), *y = th_read_file(b, &nb);
    bool same = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x), free(y);
    return same;
}

static void test_determinism(void) {
    const char *types[] = {"Q4_K_M", "F16"};
    for (int k = 0; k < 2; k++) {
        smoe_synth_params p = tiny(types[k]);
        const char *a = tmp_path("a.gguf"), *b = tmp_path("b.gguf"), *c = tmp_path("c.gguf");
        CHECK_OK(smoe_synth_model(&p, a));
        CHECK_OK(smoe_synth_model(&p, b));
        p.seed++;
        CHECK_OK(smoe_synth_model(&p, c));
        CHECK(same_file(a, b), "%s: same seed, different bytes", types[k]);
        CHECK(!same_file(a, c), "%s: different seeds, same bytes", types[k]);
        unlink(a), unlink(b), unlink(c);
    }
}

static void expect_fail(const smoe_synth_params *p, smoe_status want, const char *what) {
    const char *path = tmp_path("bad.gguf");
    smoe_status st = smoe_synth_model(p, path);
    CHECK(st == want, "%s: got %s (%s), want %s", what, smoe_status_name(st), smoe_last_error(), smoe_status_name(want));
    CHECK(strlen(smoe_last_error()) > 0, "%s: no message", what);
    CHECK(access(path, F_OK) != 0, "%s: a file was left behind", what);
    unlink(path);
}

static void test_hostile(void) {
    smoe_synth_params p;
    p = tiny("Q4_K_M"), p.n_head = 3;
    expect_fail(&p, SMOE_ERR_INVALID_ARG, "n_head not dividing n_embd");
    CHECK(smoe_synth_tensor_type(&p, "blk.0.attn_q.weight", 256) == -1, "tensor_type accepts bad params");
    p = tiny("Q4_K_M"), p.n_head = 256, p.n_head_kv = 1; /* head size 1: RoPE needs pairs */
    expect_fail(&p, SMOE_ERR_INVALID_ARG, "odd head size");
    p = tiny("Q4_K_M"), p.n_head_kv = 3;
    expect_fail(&p, SMOE_ERR_INVALID_ARG, "n_head_kv not dividing n_head");
    p = tiny("Q4_K_M"), p.n_expert_used = 5;
    expect_fail(&p, SMOE_ERR_INVALID_ARG, "n_expert_used > n_expert");
    p = tiny("Q4_K_M"), p.n_expert = 1, p.n_expert_used = 1;
    expect_fail(&p, SMOE_ERR_INVALID_ARG, "one expert");
    p = tiny("Q4_K_M"), p.n_expert_used = 0;
    expect_fail(&p, SMOE_ERR_INVALID_ARG, "no expert used");
    p = tiny("Q4_K_M"), p.n_layer = 0;
    expect_fail(&p, SMOE_ERR_INVALID_ARG, "no layers");
    p = tiny("Q4_K_M"), p.n_embd = -256;
    expect_fail(&p, SMOE_ERR_INVALID_ARG, "negative n_embd");
    p = tiny("Q4_K_M"), p.rope_freq_base = NAN;
    expect_fail(&p, SMOE_ERR_INVALID_ARG, "NaN rope base");
    p = tiny("Q7_K");
    expect_fail(&p, SMOE_ERR_INVALID_ARG, "unknown type");
    p = tiny(NULL);
    expect_fail(&p, SMOE_ERR_INVALID_ARG, "no type");
    p = tiny("Q4_K_M"), p.vocab_path = NULL;
    expect_fail(&p, SMOE_ERR_INVALID_ARG, "no vocabulary");
    p = tiny("Q4_K_M"), p.vocab_path = "/nonexistent/vocab.gguf";
    expect_fail(&p, SMOE_ERR_IO, "missing vocabulary file");
    p = tiny("Q4_K_M"), p.vocab_path = th_data("model/ids-n8.json");
    expect_fail(&p, SMOE_ERR_FORMAT, "vocabulary not a GGUF");
    p = tiny("Q4_K_M"), p.vocab_n = 40000;
    expect_fail(&p, SMOE_ERR_INVALID_ARG, "vocab_n beyond the vocabulary");
    /* ~27 PB of F32 experts: refused by the free-space check before anything is written */
    p = tiny("F32"), p.n_embd = 1 << 16, p.n_head = 256, p.n_head_kv = 256, p.n_ff = 1 << 20, p.n_expert = 4096,
    p.n_layer = 8;
    expect_fail(&p, SMOE_ERR_IO, "disk too small");
    p = tiny("Q4_K_M");
    CHECK(smoe_synth_model(&p, NULL) == SMOE_ERR_INVALID_ARG, "NULL path");
    CHECK(smoe_synth_model(NULL, tmp_path("x.gguf")) == SMOE_ERR_INVALID_ARG, "NULL params");
    CHECK(smoe_synth_model(&p, "/nonexistent-dir/x.gguf") == SMOE_ERR_IO, "unwritable path: %s", smoe_last_error());
    CHECK(smoe_synth_preset("mixtral-8x22b", &p) == SMOE_ERR_NOT_FOUND, "unknown preset");
    CHECK(smoe_synth_preset_name(0) && !strcmp(smoe_synth_preset_name(0), "bench-m") && !smoe_synth_preset_name(2),
          "preset names");
    smoe_synth_params q = smoe_synth_default_params();
    CHECK_OK(smoe_synth_preset("mixtral-8x7b", &q));
    CHECK(q.n_embd == 4096 && q.n_layer == 32 && q.n_ff == 14336 && q.n_ctx == 32768 && q.rope_freq_base == 1e6f &&
              !strcmp(q.type, "Q4_K_M"),
          "mixtral preset");
    /* the size of Mixtral 8x7B at pure Q2_K: 46.7 B parameters at 2.625 bits */
    q.type = "Q2_K", q.vocab_path = th_data(VOCAB);
    uint64_t sz = 0;
    CHECK_OK(smoe_synth_size(&q, &sz));
    CHECK(sz > 15.0e9 && sz < 15.6e9, "mixtral Q2_K size %.3f GB", sz / 1e9);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/smoe-test-synth-XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_types();
    test_shapes();
    test_mix_vs_llama_cpp();
    test_determinism();
    test_hostile();
    rmdir(g_dir);
    return TEST_REPORT();
}
