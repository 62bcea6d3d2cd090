/*
 * test_multi.c - smoe_ctx_decode_multi (several sequences in one forward pass) against
 * one smoe_ctx_decode per sequence on the mixtral-tiny models (F32 and quantized): the
 * same logits for a mix of prompt chunks and single tokens, over several steps, with 1
 * and 3 threads, run on one of the sequences or on a context outside the batch; each sequence's route observer sees its own rows; bad calls fail before
 * anything changes.
 */
#include "smoe.h"
#include "testhelp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NSEQ 4

/* CHECK_OK as an expression: true when the call succeeded */
static bool ok_(smoe_status st, const char *what) {
    CHECK(st == SMOE_OK, "%s -> %s: %s", what, smoe_status_name(st), smoe_last_error());
    return st == SMOE_OK;
}
#define OK(expr) ok_((expr), #expr)

static uint32_t rng = 7;
static int32_t rand_id(int32_t V) {
    rng = rng * 1664525u + 1013904223u;
    return (int32_t)((rng >> 8) % (uint32_t)V);
}

/* max |a - b| / max |b| */
static double rel_diff(const float *a, const float *b, int64_t n) {
    double d = 0, m = 0;
    for (int64_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i])), m = fmax(m, fabs((double)b[i]));
    return d / (m > 0 ? m : 1);
}

typedef struct seen {
    int32_t calls, rows, pos0_sum;
    int32_t ids[64 * 2];
} seen;

static void observe(void *user, int32_t layer, int32_t pos0, int32_t n, int32_t k, const int32_t *ids, const float *w,
                    const float *logits, int32_t n_expert) {
    (void)w, (void)logits, (void)n_expert;
    seen *s = user;
    s->calls++;
    if (layer == 0) {
        s->pos0_sum += pos0;
        for (int32_t i = 0; i < n * k && s->rows * k + i < 128; i++) s->ids[s->rows * k + i] = ids[i];
        s->rows += n;
    }
}

static void test_model(const char *file, int threads, double tol) {
    smoe_model *m = NULL;
    if (!OK(smoe_model_load(th_data(file), NULL, &m))) return;
    const int32_t V = smoe_model_get_info(m)->n_vocab;
    smoe_ctx_params p = smoe_ctx_default_params();
    p.n_ctx = 64, p.n_batch = 32, p.n_threads = threads;
    smoe_ctx *multi[NSEQ], *single[NSEQ], *runner = NULL; /* odd steps run on a context outside the batch */
    CHECK_OK(smoe_ctx_init(m, &p, &runner));
    for (int s = 0; s < NSEQ; s++) {
        CHECK_OK(smoe_ctx_init(m, &p, &multi[s]));
        CHECK_OK(smoe_ctx_init(m, &p, &single[s]));
    }
    float *lm = malloc(sizeof(float) * NSEQ * (size_t)V), *ls = malloc(sizeof(float) * (size_t)V);
    /* step 0: prompts of 5, 1, 9, 3 tokens; then 6 steps of one token each, sequence 2
     * sitting out steps 2 and 3 (a slot that joins and leaves the batch) */
    const int32_t prompt[NSEQ] = {5, 1, 9, 3};
    double worst = 0;
    for (int step = 0; step < 7; step++) {
        smoe_ctx *cs[NSEQ];
        int32_t n_tok[NSEQ], ids[32], n_seq = 0, total = 0, which[NSEQ];
        for (int s = 0; s < NSEQ; s++) {
            if (step >= 2 && step <= 3 && s == 2) continue;
            const int32_t n = step == 0 ? prompt[s] : 1;
            for (int32_t i = 0; i < n; i++) ids[total + i] = rand_id(V);
            cs[n_seq] = multi[s], n_tok[n_seq] = n, which[n_seq++] = s;
            total += n;
        }
        if (!OK(smoe_ctx_decode_multi(step % 2 ? runner : cs[0], cs, n_seq, ids, n_tok, lm))) break;
        for (int32_t i = 0, r = 0; i < n_seq; r += n_tok[i++]) {
            const int s = which[i];
            if (!OK(smoe_ctx_decode(single[s], ids + r, n_tok[i], ls, false))) break;
            worst = fmax(worst, rel_diff(lm + (size_t)i * V, ls, V));
            CHECK(smoe_ctx_n_past(multi[s]) == smoe_ctx_n_past(single[s]), "%s: sequence %d at position %d", file, s,
                  smoe_ctx_n_past(multi[s]));
        }
    }
    CHECK(worst <= tol, "%s, %d threads: multi-sequence logits = one decode per sequence (max rel diff %.2g, tol %.1g)",
          file, threads, worst, tol);
    for (int s = 0; s < NSEQ; s++) smoe_ctx_free(multi[s]), smoe_ctx_free(single[s]);
    smoe_ctx_free(runner);
    free(lm), free(ls);
    smoe_model_free(m);
}

/* Observers see their own sequence's rows and positions; errors change nothing. */
static void test_observers_and_errors(void) {
    smoe_model *m = NULL;
    if (!OK(smoe_model_load(th_data("model/mixtral-tiny-F32.gguf"), NULL, &m))) return;
    const smoe_model_info *inf = smoe_model_get_info(m);
    const int32_t V = inf->n_vocab, L = inf->n_layer, K = inf->n_expert_used;
    smoe_ctx_params p = smoe_ctx_default_params();
    p.n_ctx = 16, p.n_batch = 8;
    smoe_ctx *a, *b, *solo;
    CHECK_OK(smoe_ctx_init(m, &p, &a));
    CHECK_OK(smoe_ctx_init(m, &p, &b));
    CHECK_OK(smoe_ctx_init(m, &p, &solo));
    seen sa = {0}, sb = {0}, ss = {0};
    smoe_ctx_set_route_observer(a, observe, &sa);
    smoe_ctx_set_route_observer(b, observe, &sb);
    smoe_ctx_set_route_observer(solo, observe, &ss);
    const int32_t ids[5] = {1, 17, 300, 42, 999};
    CHECK_OK(smoe_ctx_decode(a, ids, 1, NULL, false)); /* a at position 1, b at 0 */
    CHECK_OK(smoe_ctx_decode(solo, ids + 2, 3, NULL, false)); /* what b gets below */
    sa = (seen){0};
    smoe_ctx *cs[2] = {a, b};
    const int32_t n_tok[2] = {1, 3};
    CHECK_OK(smoe_ctx_decode_multi(solo, cs, 2, ids + 1, n_tok, NULL));
    CHECK(sa.calls == L && sb.calls == L, "each observer called once per layer (%d, %d of %d)", sa.calls, sb.calls, L);
    CHECK(sa.rows == 1 && sa.pos0_sum == 1 && sb.rows == 3 && sb.pos0_sum == 0, "observers get their rows and positions");
    CHECK(!memcmp(sb.ids, ss.ids, sizeof(int32_t) * 3 * (size_t)K), "b's experts = the same tokens decoded alone");

    /* failures: nothing runs, positions stay */
    const int32_t one[2] = {1, 1}, bad_ids[2] = {5, V}, many[2] = {5, 4};
    smoe_ctx *dup[2] = {a, a};
    CHECK(smoe_ctx_decode_multi(a, dup, 2, ids, one, NULL) == SMOE_ERR_INVALID_ARG, "a context given twice is refused");
    CHECK(smoe_ctx_decode_multi(a, cs, 2, bad_ids, one, NULL) == SMOE_ERR_RANGE, "an id out of range is refused");
    CHECK(smoe_ctx_decode_multi(a, cs, 2, ids, many, NULL) == SMOE_ERR_INVALID_ARG, "more tokens than n_batch are refused");
    const int32_t zero[2] = {1, 0};
    CHECK(smoe_ctx_decode_multi(a, cs, 2, ids, zero, NULL) == SMOE_ERR_INVALID_ARG, "a sequence without tokens is refused");
    CHECK(smoe_ctx_decode_multi(a, cs, 0, ids, one, NULL) == SMOE_ERR_INVALID_ARG, "no sequences is refused");
    int32_t fill[8] = {0};
    CHECK_OK(smoe_ctx_decode(b, fill, 8, NULL, false));
    CHECK_OK(smoe_ctx_decode(b, fill, 4, NULL, false)); /* b: 3 + 12 = 15 of 16 */
    const int32_t two[2] = {1, 2};
    CHECK(smoe_ctx_decode_multi(a, cs, 2, ids, two, NULL) == SMOE_ERR_RANGE, "a full context is refused");
    CHECK(smoe_ctx_n_past(a) == 2 && smoe_ctx_n_past(b) == 15, "failed calls leave the positions (%d, %d)",
          smoe_ctx_n_past(a), smoe_ctx_n_past(b));
    smoe_model *m2 = NULL;
    smoe_ctx *other = NULL;
    if (OK(smoe_model_load(th_data("model/mixtral-tiny-Q8_0.gguf"), NULL, &m2)) &&
        OK(smoe_ctx_init(m2, &p, &other))) {
        smoe_ctx *mixed[2] = {a, other};
        CHECK(smoe_ctx_decode_multi(a, mixed, 2, ids, one, NULL) == SMOE_ERR_INVALID_ARG, "contexts of two models are refused");
    }
    smoe_ctx_free(other);
    smoe_model_free(m2);
    smoe_ctx_free(a), smoe_ctx_free(b), smoe_ctx_free(solo);
    smoe_model_free(m);
}

int main(void) {
    test_model("model/mixtral-tiny-F32.gguf", 1, 1e-5);
    test_model("model/mixtral-tiny-F32.gguf", 3, 1e-5);
    test_model("model/mixtral-tiny-Q4_K_M.gguf", 2, 1e-4);
    test_model("model/mixtral-tiny-Q8_0.gguf", 2, 1e-4);
    test_observers_and_errors();
    return TEST_REPORT();
}
