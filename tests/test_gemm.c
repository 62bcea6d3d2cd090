/*
 * test_gemm.c - tests of the f32 GEMM path of prefill (src/cpu/gemm.h), for every ISA
 * variant this CPU runs that has one (smoe_kernels_all) and every type it serves:
 *   - the micro-kernel bit-identical to smoe_gemm_tile_ref over k lengths 1..600, fresh
 *     and accumulating;
 *   - each to_f32 dequantizer bit-identical to the reference one (quant.h), on random
 *     quant bytes with sane scales, for 1, 3 and 37 blocks (odd lengths for F16/BF16/F32);
 *   - the driver (pack + rows) bit-identical to a plain loop of fmaf over the reference
 *     dequantization, for awkward token counts (1, 5, 16, 17, 45), row counts (1, 5, 6,
 *     7, 50, 101) and row lengths (32 to 1056: one k block, several, a short last one),
 *     with the rows split as 1, 2 and 3 threads would (contiguous ranges) and run on a
 *     real 2-thread pool;
 *   - no write past the output (sentinels) and the padding of the last panel zeroed.
 */
#include "cpu/gemm.h"
#include "cpu/kernels.h"
#include "cpu/threadpool.h"
#include "model.h"
#include "quant/blocks.h"
#include "quant/quant.h"
#include "smoe.h"
#include "testhelp.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static unsigned long long g_rng = 0x6e6d6d5eedull;

static float rnd_normal(void) {
    float s = 0;
    for (int i = 0; i < 4; i++) s += th_rng_float(&g_rng);
    return s * 0.866f;
}

static void put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

/* A random fp16 scale of magnitude in [1e-3, 1e-1], random sign. */
static uint16_t rnd_scale(void) {
    float v = 1e-3f * powf(100.0f, 0.5f * (th_rng_float(&g_rng) + 1.0f));
    if (th_rng_next(&g_rng) & 1) v = -v;
    return smoe_f32_to_f16(v);
}

/* rows x n values of type t: random quant bytes with sane scales; float types normal. */
static void make_rows(int t, uint8_t *w, int64_t rows, int64_t n) {
    const int64_t bs = smoe_dtype_block_size(t);
    const size_t bb = smoe_dtype_block_bytes(t), bytes = (size_t)(rows * (n / bs)) * bb;
    if (t == SMOE_DTYPE_F32 || t == SMOE_DTYPE_F16 || t == SMOE_DTYPE_BF16) {
        for (int64_t i = 0; i < rows * n; i++) {
            const float v = rnd_normal() * 0.05f;
            if (t == SMOE_DTYPE_F32) memcpy(w + 4 * i, &v, 4);
            else put16(w + 2 * i, t == SMOE_DTYPE_F16 ? smoe_f32_to_f16(v) : smoe_f32_to_bf16(v));
        }
        return;
    }
    for (size_t i = 0; i < bytes; i++) w[i] = (uint8_t)th_rng_next(&g_rng);
    const bool has_m = t == SMOE_DTYPE_Q4_1 || t == SMOE_DTYPE_Q5_1;
    for (size_t b = 0; b < bytes / bb; b++) {
        put16(w + b * bb, rnd_scale()); /* d is the first field of every legacy block */
        if (has_m) put16(w + b * bb + 2, rnd_scale());
    }
}

static const int k_types[] = {SMOE_DTYPE_Q4_0, SMOE_DTYPE_Q4_1, SMOE_DTYPE_Q5_0, SMOE_DTYPE_Q5_1,
                              SMOE_DTYPE_Q8_0, SMOE_DTYPE_F16,  SMOE_DTYPE_BF16, SMOE_DTYPE_F32};
#define NTYPES ((int)(sizeof k_types / sizeof k_types[0]))

/* ------------------------------------------------------------ micro-kernel */

static void test_tile(const smoe_kernel *k) {
    enum { KMAX = 600 };
    float *a = smoe_alloc_aligned((size_t)KMAX * SMOE_GEMM_MT, sizeof(float));
    float *wbuf = malloc(sizeof(float) * SMOE_GEMM_NR * KMAX);
    for (size_t i = 0; i < (size_t)KMAX * SMOE_GEMM_MT; i++) a[i] = rnd_normal();
    for (int i = 0; i < SMOE_GEMM_NR * KMAX; i++) wbuf[i] = rnd_normal();
    const float *w[SMOE_GEMM_NR];
    for (int j = 0; j < SMOE_GEMM_NR; j++) w[j] = wbuf + (size_t)j * KMAX;
    static const int64_t ks[] = {1, 2, 3, 7, 8, 33, 256, 511, 600};
    int bad = 0;
    for (size_t i = 0; i < sizeof ks / sizeof *ks; i++)
        for (int init = 0; init < 2; init++) {
            float acc0[SMOE_GEMM_NR * SMOE_GEMM_MT], acc1[SMOE_GEMM_NR * SMOE_GEMM_MT];
            for (int q = 0; q < SMOE_GEMM_NR * SMOE_GEMM_MT; q++) acc0[q] = acc1[q] = rnd_normal();
            smoe_gemm_tile_ref(ks[i], a, w, acc0, init);
            k->gemm_tile(ks[i], a, w, acc1, init);
            const bool same = memcmp(acc0, acc1, sizeof acc0) == 0;
            bad += !same;
            CHECK(same, "%s tile kc %lld init %d differs from the reference", k->isa, (long long)ks[i], init);
        }
    printf("  %-6s micro-kernel 6x16: %s\n", k->isa, bad ? "DIFFERS" : "bit-identical to the reference");
    smoe_free_aligned(a);
    free(wbuf);
}

/* ------------------------------------------------------------ dequantizers */

static void test_to_f32(int t, const smoe_kernel *k) {
    const smoe_type_traits *tr = smoe_type_traits_get(t);
    const int64_t bs = smoe_dtype_block_size(t);
    static const int64_t nbs[] = {1, 3, 37};
    for (size_t i = 0; i < sizeof nbs / sizeof *nbs; i++)
        for (int odd = 0; odd < (bs == 1 ? 2 : 1); odd++) {
            const int64_t n = nbs[i] * (bs == 1 ? 32 : bs) + odd * 5;
            uint8_t *w = malloc((size_t)(n / bs) * smoe_dtype_block_bytes(t));
            float *r = malloc(sizeof(float) * (size_t)n), *f = malloc(sizeof(float) * (size_t)(n + 8));
            make_rows(t, w, 1, n);
            for (int s = 0; s < 8; s++) f[n + s] = 1234.5f;
            tr->to_float(w, r, n);
            k->to_f32(w, f, n);
            CHECK(memcmp(r, f, sizeof(float) * (size_t)n) == 0, "%s %s to_f32 of %lld values differs", k->isa,
                  smoe_dtype_name(t), (long long)n);
            bool sent = true;
            for (int s = 0; s < 8; s++) sent &= f[n + s] == 1234.5f;
            CHECK(sent, "%s %s to_f32 wrote past %lld values", k->isa, smoe_dtype_name(t), (long long)n);
            free(w), free(r), free(f);
        }
}

/* ------------------------------------------------------------ driver */

typedef struct pool_job {
    const smoe_tensor *W;
    const float *a;
    int64_t T;
    float *y, *ws;
    size_t ws_floats;
} pool_job;

static void pool_rows(void *arg, int ith, int nth) {
    const pool_job *j = arg;
    int64_t r0, r1;
    smoe_split(j->W->rows, ith, nth, &r0, &r1);
    if (r0 < r1) smoe_gemm_rows(j->W, j->a, j->T, r0, r1, j->y, j->W->rows, j->ws + (size_t)ith * j->ws_floats);
}

/* Returns the number of mismatching outputs over every split. */
static int check_driver(int t, const smoe_kernel *k, smoe_pool *pool, int64_t T, int64_t R, int64_t K) {
    const smoe_type_traits *tr = smoe_type_traits_get(t);
    const size_t rb = (size_t)(K / smoe_dtype_block_size(t)) * smoe_dtype_block_bytes(t);
    uint8_t *wq = malloc(rb * (size_t)R);
    float *wd = malloc(sizeof(float) * (size_t)(R * K)), *x = malloc(sizeof(float) * (size_t)(T * K));
    float *want = malloc(sizeof(float) * (size_t)(T * R));
    const size_t ny = (size_t)(T * R) + 16;
    float *y = malloc(sizeof(float) * ny);
    float *a = smoe_alloc_aligned(smoe_gemm_pack_floats(T, K), sizeof(float));
    const size_t wsf = smoe_gemm_ws_floats(T);
    float *ws = smoe_alloc_aligned(2 * wsf, sizeof(float));
    make_rows(t, wq, R, K);
    for (int64_t r = 0; r < R; r++) tr->to_float(wq + (size_t)r * rb, wd + r * K, K);
    for (int64_t i = 0; i < T * K; i++) x[i] = rnd_normal();
    for (int64_t tt = 0; tt < T; tt++)
        for (int64_t r = 0; r < R; r++) {
            float c = 0.0f;
            for (int64_t q = 0; q < K; q++) c = fmaf(wd[r * K + q], x[tt * K + q], c);
            want[tt * R + r] = c;
        }
    const smoe_tensor W = {.dtype = t, .cols = K, .rows = R, .row_bytes = rb, .data = wq, .kern = k};
    /* pack in two halves (as two threads would), with garbage in the buffer first */
    const int64_t P = smoe_gemm_panels(T);
    for (size_t i = 0; i < smoe_gemm_pack_floats(T, K); i++) a[i] = NAN;
    smoe_gemm_pack(x, T, K, 0, P / 2, a);
    smoe_gemm_pack(x, T, K, P / 2, P, a);
    bool pad = true;
    for (int64_t q = 0; q < K; q++)
        for (int64_t tt = T; tt < P * SMOE_GEMM_MT; tt++)
            pad &= a[((size_t)(tt / SMOE_GEMM_MT) * (size_t)K + (size_t)q) * SMOE_GEMM_MT + (size_t)(tt % SMOE_GEMM_MT)] == 0.0f;
    CHECK(pad, "%s: padding of the last panel not zeroed (T %lld)", smoe_dtype_name(t), (long long)T);
    int bad = 0;
    for (int split = 1; split <= 4; split++) {
        for (size_t i = 0; i < ny; i++) y[i] = -777.0f;
        if (split <= 3) {
            for (int s = 0; s < split; s++) {
                int64_t r0, r1;
                smoe_split(R, s, split, &r0, &r1);
                if (r0 < r1) smoe_gemm_rows(&W, a, T, r0, r1, y, R, ws);
            }
        } else { /* a real pool */
            pool_job j = {&W, a, T, y, ws, wsf};
            smoe_pool_run(pool, pool_rows, &j);
        }
        int diff = 0;
        for (int64_t i = 0; i < T * R; i++) diff += memcmp(&y[i], &want[i], sizeof(float)) != 0;
        bool sent = true;
        for (size_t i = (size_t)(T * R); i < ny; i++) sent &= y[i] == -777.0f;
        CHECK(diff == 0, "%s %s gemm T %lld R %lld K %lld split %d: %d outputs differ", k->isa, smoe_dtype_name(t),
              (long long)T, (long long)R, (long long)K, split, diff);
        CHECK(sent, "%s gemm wrote past the output", smoe_dtype_name(t));
        bad += diff;
    }
    free(wq), free(wd), free(x), free(want), free(y);
    smoe_free_aligned(a);
    smoe_free_aligned(ws);
    return bad;
}

int main(void) {
    smoe_pool *pool = NULL;
    CHECK_OK(smoe_pool_init(2, &pool));
    if (!pool) return TEST_REPORT();
    int variants = 0;
    for (int ti = 0; ti < NTYPES; ti++) {
        const int t = k_types[ti];
        smoe_kernel v[8];
        const int nv = smoe_kernels_all(t, v, 8);
        for (int i = 0; i < nv; i++) {
            if (!v[i].gemm_tile) continue;
            CHECK(v[i].to_f32 != NULL, "%s %s: gemm_tile without to_f32", v[i].isa, smoe_dtype_name(t));
            if (!v[i].to_f32) continue;
            variants++;
            if (ti == 0 || t == SMOE_DTYPE_F32) test_tile(&v[i]);
            test_to_f32(t, &v[i]);
            static const int64_t Ts[] = {1, 5, 16, 17, 45};
            static const int64_t Rs[] = {1, 5, 6, 7, 50, 101};
            const int64_t Ks[] = {32, 96, 544, t == SMOE_DTYPE_F32 ? 1056 : 1024 + 32};
            int bad = 0, runs = 0;
            for (size_t a = 0; a < sizeof Ts / sizeof *Ts; a++)
                for (size_t b = 0; b < sizeof Rs / sizeof *Rs; b++)
                    for (size_t c = 0; c < sizeof Ks / sizeof *Ks; c++) {
                        if (Rs[b] * Ks[c] * Ts[a] > 3000000) continue; /* keep the test quick */
                        bad += check_driver(t, &v[i], pool, Ts[a], Rs[b], Ks[c]);
                        runs++;
                    }
            printf("  %-6s %-5s to_f32 exact; gemm: %d shapes x 4 splits, %d outputs differ from fmaf loops\n",
                   v[i].isa, smoe_dtype_name(t), runs, bad);
        }
    }
    if (variants == 0) printf("  (no ISA variant with a GEMM path on this CPU: nothing to compare)\n");
    smoe_pool_free(pool);
    return TEST_REPORT();
}
