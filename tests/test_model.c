/*
 * test_model.c - the model against its peers: logits of mixtral-tiny (F32 and every
 * quantized type) against llama.cpp's goldens and the Mistral reference on dequantized
 * weights, the KV-cache decode path against the batch path, thread-count invariance,
 * routing decisions against the reference, and hostile token ids / context overflow.
 *
 * Goldens (tests/data/model, copied from the project's peer fixtures; see its README):
 *   logits-F32-n{8,64,200}.f32   llama.cpp, whole sequence in one batch, [n][1024]
 *   logits-deqref-<T>-n64.f32    Mistral reference on the dequantized weights of file <T>
 *   routing-F32-n64.json         experts and gate weights per layer and position
 */
#include "smoe.h"
#include "testhelp.h"

#include <unistd.h>

#define V 1024
#define TOL 1e-4

static int load_ids(const char *name, int32_t *ids, int cap) {
    char *txt = th_read_file(th_data(name), NULL);
    if (!txt) return 0;
    int tmp[512];
    int n = th_parse_ints(txt, tmp, cap < 512 ? cap : 512);
    for (int i = 0; i < n; i++) ids[i] = tmp[i];
    free(txt);
    return n;
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m)) m = d; /* NaN propagates as a failure */
    }
    return m;
}

static bool g_reference; /* run() uses the reference kernels */

/* Run ids through a model; batch (one call) or decode (one token at a time). */
static float *run(smoe_model *m, const int32_t *ids, int n, bool decode, int threads) {
    smoe_ctx_params cp = smoe_ctx_default_params();
    cp.n_ctx = 512;
    cp.n_batch = 512;
    cp.n_threads = threads;
    cp.reference = g_reference;
    smoe_ctx *c = NULL;
    float *lg = malloc(sizeof(float) * (size_t)n * V);
    if (smoe_ctx_init(m, &cp, &c) != SMOE_OK || !lg) {
        fprintf(stderr, "ctx init: %s\n", smoe_last_error());
        free(lg);
        return NULL;
    }
    smoe_status st = SMOE_OK;
    if (!decode) {
        st = smoe_ctx_decode(c, ids, n, lg, true);
    } else {
        for (int i = 0; i < n && !st; i++) st = smoe_ctx_decode(c, ids + i, 1, lg + (size_t)i * V, false);
    }
    if (st) {
        fprintf(stderr, "decode: %s\n", smoe_last_error());
        free(lg);
        lg = NULL;
    }
    smoe_ctx_free(c);
    return lg;
}

static void check_golden(smoe_model *m, const char *ids_file, const char *golden, bool decode, int threads,
                         double tol, const char *label) {
    int32_t ids[512];
    int n = load_ids(ids_file, ids, 512);
    size_t gsz = 0;
    float *ref = th_read_file(th_data(golden), &gsz);
    CHECK(n > 0 && ref && gsz == sizeof(float) * (size_t)n * V, "%s: fixture %s / %s", label, ids_file, golden);
    if (!ref || n <= 0 || gsz != sizeof(float) * (size_t)n * V) {
        free(ref);
        return;
    }
    float *lg = run(m, ids, n, decode, threads);
    CHECK(lg != NULL, "%s: forward failed", label);
    if (lg) {
        double d = max_abs_diff(lg, ref, (size_t)n * V);
        CHECK(d <= tol, "%s: max |diff| %.3g > %.1g", label, d, tol);
        printf("  %-44s max|diff| %.3g\n", label, d);
    }
    free(lg);
    free(ref);
}

/* ------------------------------------------------------------------ routing */

typedef struct route_log {
    int32_t ids[2][64][2];
    float w[2][64][2];
    int calls;
} route_log;

static void on_route(void *user, int32_t layer, int32_t pos0, int32_t n, int32_t k, const int32_t *ids,
                     const float *weights, const float *router_logits, int32_t n_expert) {
    (void)router_logits, (void)n_expert;
    route_log *r = user;
    r->calls++;
    for (int32_t t = 0; t < n && pos0 + t < 64 && layer < 2 && k == 2; t++)
        for (int j = 0; j < 2; j++) {
            r->ids[layer][pos0 + t][j] = ids[t * k + j];
            r->w[layer][pos0 + t][j] = weights[t * k + j];
        }
}

/* Parse "experts": [[a, b], ...] and "weights": [[x, y], ...] of each layer, in order. */
static int parse_routing(const char *txt, int32_t ids[2][64][2], float w[2][64][2]) {
    const char *p = txt;
    for (int l = 0; l < 2; l++) {
        p = strstr(p, "\"experts\"");
        if (!p) return 0;
        for (int i = 0; i < 128; i++) {
            while (*p && !(*p >= '0' && *p <= '9')) p++;
            ids[l][i / 2][i % 2] = (int32_t)strtol(p, (char **)&p, 10);
        }
        p = strstr(p, "\"weights\"");
        if (!p) return 0;
        for (int i = 0; i < 128; i++) {
            while (*p && !(*p >= '0' && *p <= '9')) p++;
            w[l][i / 2][i % 2] = strtof(p, (char **)&p);
        }
    }
    return 1;
}

static void test_routing(smoe_model *m) {
    int32_t ids[64];
    int n = load_ids("model/ids-n64.json", ids, 64);
    char *txt = th_read_file(th_data("model/routing-F32-n64.json"), NULL);
    static int32_t want_ids[2][64][2];
    static float want_w[2][64][2];
    CHECK(n == 64 && txt && parse_routing(txt, want_ids, want_w), "routing fixture");
    free(txt);
    smoe_ctx *c = NULL;
    smoe_ctx_params cp = smoe_ctx_default_params();
    cp.n_ctx = 64;
    CHECK_OK(smoe_ctx_init(m, &cp, &c));
    if (!c) return;
    static route_log log;
    smoe_ctx_set_route_observer(c, on_route, &log);
    CHECK_OK(smoe_ctx_decode(c, ids, 64, NULL, false));
    int id_bad = 0;
    double wmax = 0;
    for (int l = 0; l < 2; l++)
        for (int t = 0; t < 64; t++)
            for (int j = 0; j < 2; j++) {
                id_bad += log.ids[l][t][j] != want_ids[l][t][j];
                double d = fabs(log.w[l][t][j] - want_w[l][t][j]);
                wmax = d > wmax ? d : wmax;
            }
    CHECK(log.calls == 2, "observer called %d times, want 2 (one per layer)", log.calls);
    CHECK(id_bad == 0, "%d of 256 expert choices differ from the reference", id_bad);
    CHECK(wmax < 2e-6, "gate weights differ by %.3g", wmax);
    printf("  routing n64: %d/256 expert ids differ, max |gate weight diff| %.3g\n", id_bad, wmax);
    smoe_ctx_free(c);
}

/* ------------------------------------------------------------------ hostile input */

static void test_bad_input(smoe_model *m) {
    smoe_ctx *c = NULL;
    smoe_ctx_params cp = smoe_ctx_default_params();
    cp.n_ctx = 8;
    CHECK_OK(smoe_ctx_init(m, &cp, &c));
    if (!c) return;
    int32_t bad[2] = {5, V};
    CHECK(smoe_ctx_decode(c, bad, 2, NULL, false) == SMOE_ERR_RANGE, "token id V accepted");
    CHECK(strstr(smoe_last_error(), "out of range") != NULL, "message: %s", smoe_last_error());
    bad[1] = -1;
    CHECK(smoe_ctx_decode(c, bad, 2, NULL, false) == SMOE_ERR_RANGE, "token id -1 accepted");
    CHECK(smoe_ctx_n_past(c) == 0, "a rejected decode moved the position");
    int32_t ids[9] = {10, 11, 12, 13, 14, 15, 16, 17, 18};
    CHECK(smoe_ctx_decode(c, ids, 9, NULL, false) == SMOE_ERR_RANGE, "9 tokens fit an 8-token context");
    CHECK_OK(smoe_ctx_decode(c, ids, 8, NULL, false));
    CHECK(smoe_ctx_decode(c, ids, 1, NULL, false) == SMOE_ERR_RANGE, "full context accepted a token");
    CHECK(strstr(smoe_last_error(), "context full") != NULL, "message: %s", smoe_last_error());
    smoe_ctx_reset(c);
    CHECK_OK(smoe_ctx_decode(c, ids, 1, NULL, false));
    smoe_ctx_free(c);
}

/* Expert choices of every layer and position of ids (n <= 64) with the given kernels. */
static int routes_of(smoe_model *m, const int32_t *ids, int n, bool reference, route_log *log) {
    smoe_ctx *c = NULL;
    smoe_ctx_params cp = smoe_ctx_default_params();
    cp.n_ctx = 64;
    cp.n_threads = 2;
    cp.reference = reference;
    memset(log, 0, sizeof *log);
    if (smoe_ctx_init(m, &cp, &c)) return 0;
    smoe_ctx_set_route_observer(c, on_route, log);
    int ok = smoe_ctx_decode(c, ids, n, NULL, false) == SMOE_OK;
    smoe_ctx_free(c);
    return ok;
}

/* max and rms of |a - b| */
static void diff_stats(const float *a, const float *b, size_t n, double *mx, double *rms) {
    double m = 0, ss = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= m)) m = d;
        ss += d * d;
    }
    *mx = m;
    *rms = sqrt(ss / (double)n);
}

/* One weight type: the reference path against the Mistral reference on the dequantized
 * weights (1e-4), and the fast path (quantized activations, as llama.cpp) against
 * llama.cpp's own logits for the file (0.25 max, 0.04 rms) with the same expert choices
 * as the reference path. */
static void test_type(const char *file_type, const char *path) {
    smoe_model *m = NULL;
    char label[96], golden[96];
    smoe_status st = smoe_model_load(path, NULL, &m);
    CHECK(st == SMOE_OK, "load %s: %s", path, smoe_last_error());
    if (st) return;
    snprintf(label, sizeof label, "%s reference vs deq-ref n64", file_type);
    snprintf(golden, sizeof golden, "model/logits-deqref-%s-n64.f32", file_type);
    g_reference = true;
    check_golden(m, "model/ids-n64.json", golden, false, 2, TOL, label);
    g_reference = false;

    int32_t ids[64];
    int n = load_ids("model/ids-n64.json", ids, 64);
    snprintf(golden, sizeof golden, "model/logits-%s-n64.f32", file_type);
    size_t gsz = 0;
    float *ref = th_read_file(th_data(golden), &gsz), *lg = run(m, ids, n, false, 2);
    CHECK(ref && lg && gsz == sizeof(float) * 64 * V, "%s: fast path / golden", file_type);
    if (ref && lg && gsz == sizeof(float) * 64 * V) {
        double mx, rms;
        diff_stats(lg, ref, (size_t)64 * V, &mx, &rms);
        CHECK(mx <= 0.25 && rms <= 0.04, "%s fast vs llama.cpp: max %.3g rms %.3g", file_type, mx, rms);
        printf("  %-44s max|diff| %.3g  rms %.3g\n", file_type, mx, rms);
    }
    free(ref);
    free(lg);
    static route_log fast, slow;
    CHECK(routes_of(m, ids, n, false, &fast) && routes_of(m, ids, n, true, &slow), "routing runs");
    /* the same set of experts per (layer, token); their order may flip on a near-tie of the
     * top two logits, which changes nothing in the output */
    int differ = 0;
    for (int l = 0; l < 2; l++)
        for (int t = 0; t < 64; t++) {
            const int32_t *a = fast.ids[l][t], *b = slow.ids[l][t];
            differ += !((a[0] == b[0] && a[1] == b[1]) || (a[0] == b[1] && a[1] == b[0]));
        }
    CHECK(differ == 0, "%s: the fast path picks other experts at %d of 128 (layer, token)", file_type, differ);
    smoe_model_free(m);
}

int main(void) {
    smoe_model *m = NULL;
    CHECK_OK(smoe_model_load(th_data("model/mixtral-tiny-F32.gguf"), NULL, &m));
    if (!m) return TEST_REPORT();
    const smoe_model_info *inf = smoe_model_get_info(m);
    CHECK(inf->n_vocab == V && inf->n_embd == 256 && inf->n_layer == 2 && inf->n_head == 8 && inf->n_head_kv == 2 &&
              inf->n_expert == 8 && inf->n_expert_used == 2 && inf->n_ff == 256 && inf->rope_freq_base == 1e6f,
          "hyper-parameters");

    for (int pass = 0; pass < 2; pass++) {
        g_reference = pass == 1;
        printf("F32 against llama.cpp, %s kernels:\n", g_reference ? "reference" : "fast");
        check_golden(m, "model/ids-n8.json", "model/logits-F32-n8.f32", false, 1, TOL, "F32 n8 batch");
        check_golden(m, "model/ids-n64.json", "model/logits-F32-n64.f32", false, 2, TOL, "F32 n64 batch");
        check_golden(m, "model/ids-n200.json", "model/logits-F32-n200.f32", false, 2, TOL, "F32 n200 batch");
        check_golden(m, "model/ids-n64.json", "model/logits-F32-n64-seq.f32", true, 1, TOL, "F32 n64 decode vs llama.cpp seq");
        check_golden(m, "model/ids-n64.json", "model/logits-F32-n64.f32", true, 2, TOL, "F32 n64 decode vs batch golden");
    }
    g_reference = false;

    /* our own decode path against our own batch path, and thread-count invariance */
    int32_t ids[64];
    int n = load_ids("model/ids-n64.json", ids, 64);
    float *b1 = run(m, ids, n, false, 1), *b3 = run(m, ids, n, false, 3), *d1 = run(m, ids, n, true, 1);
    CHECK(b1 && b3 && d1, "forward");
    if (b1 && b3 && d1) {
        CHECK(memcmp(b1, b3, sizeof(float) * (size_t)n * V) == 0, "1 and 3 threads give different bits");
        double d = max_abs_diff(b1, d1, (size_t)n * V);
        CHECK(d <= TOL, "decode vs batch %.3g", d);
        printf("  %-44s max|diff| %.3g\n", "F32 n64 decode vs our batch", d);
    }
    free(b1), free(b3), free(d1);

    test_routing(m);
    test_bad_input(m);
    smoe_model_free(m);

    printf("each type: reference path vs the Mistral reference on its dequantized weights, then the\n"
           "fast path (quantized activations) vs llama.cpp's logits for the same file:\n");
    static const char *types[] = {"Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K_M", "Q4_K_M", "Q5_K_M", "Q6_K"};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        char path[128];
        snprintf(path, sizeof path, "model/mixtral-tiny-%s.gguf", types[i]);
        test_type(types[i], th_data(path));
    }
    const char *tmpdir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char f16[512], bf16[512];
    snprintf(f16, sizeof f16, "%s/smoe-test-%d-F16.gguf", tmpdir, (int)getpid());
    snprintf(bf16, sizeof bf16, "%s/smoe-test-%d-BF16.gguf", tmpdir, (int)getpid());
    /* F16/BF16 files written as llama-quantize writes them (byte-identical: tests/cli.sh) */
    CHECK_OK(smoe_model_quantize(th_data("model/mixtral-tiny-F32.gguf"), f16, SMOE_FTYPE_F16, 2, NULL, NULL));
    CHECK_OK(smoe_model_quantize(th_data("model/mixtral-tiny-F32.gguf"), bf16, SMOE_FTYPE_BF16, 2, NULL, NULL));
    test_type("F16", f16);
    test_type("BF16", bf16);
    remove(f16);
    remove(bf16);
    return TEST_REPORT();
}
