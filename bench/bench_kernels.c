/*
 * bench_kernels.c - micro-benchmark of the dot-product kernels (src/cpu/kernels.h): for
 * every weight type and every ISA variant this CPU runs, the time of a 4096 x 4096
 * matrix-vector product done row by row with vec_dot on one thread, reported as GB/s of
 * weight bytes streamed, plus the activation quantizer's time for one 4096-row.
 *
 * With --x4 first, it benchmarks prefill instead: the same matrix times T = 64 tokens
 * (BENCH_TOKENS=n for another multiple of 4), each weight row dotted with all T
 * activation rows while it sits in L1 (as cpu_ops.c's mmq_kernel does), once with T
 * vec_dot calls per row and once with T/4 vec_dot4 calls, reported as GFLOP/s
 * (2 * 4096 * 4096 * T per pass), weight GB/s-equivalent (the matrix bytes times T per
 * pass: what T one-token matvecs would stream) and the speedup of vec_dot4 (best passes,
 * the two kinds alternating, for twice the budget); "same" says whether all outputs were
 * bit-identical. Only the SIMD variants run there (the scalar vec_dot4 is 4 scalar dots
 * by definition), unless the CPU has none.
 *
 * With --2x4 first, the same prefill matrix with vec_dot4 on each row vs vec_dot_2x4 on
 * each pair of rows (the types that have one), ms per pass and the speedup of 2x4.
 *
 * With --gemm first, a 1024x4096 prefill matmul at 4..128 tokens through the integer
 * path (activation quantization included) and through the f32 GEMM (packing included),
 * GFLOP/s of each, for the types that have a GEMM path: where the two cross is
 * what cpu_ops.c's gemm_pays encodes.
 *
 * What it does not do: threading, tiling, or checking results (tests/test_kernels.c
 * does that). Not part of the test suite. Build and run from the repository root, after
 * `make` has built build/libsmoe.a:
 *
 *   cc -std=c11 -D_GNU_SOURCE -O2 -Iinclude -Isrc bench/bench_kernels.c build/libsmoe.a \
 *      -lm -pthread -o build/bench_kernels && ./build/bench_kernels [--x4|--2x4|--gemm] [type ...]
 *
 * Weights are random quant bytes with sane fp16 scales (the speed of these kernels does
 * not depend on the values). Set BENCH_SECONDS=x in the environment for longer runs.
 */
#include "smoe.h"
#include "cpu/gemm.h"
#include "cpu/kernels.h"
#include "model.h"
#include "quant/quant.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N 4096
#define ROWS 4096

static unsigned long long g_rng = 42;

static unsigned long long rng(void) {
    unsigned long long z = (g_rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static float rndf(void) { return (float)((rng() >> 40) * (1.0 / (1ull << 24)) * 2.0 - 1.0); }

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

/* Random weights: floats for F32/F16/BF16, otherwise random bytes whose fp16 fields
 * (all scales are at offsets 0/2 or at the end of the block) get small finite values. */
static void fill(int t, uint8_t *w, size_t bytes) {
    if (t == SMOE_DTYPE_F32) {
        for (size_t i = 0; i < bytes / 4; i++) {
            const float f = rndf();
            memcpy(w + 4 * i, &f, 4);
        }
        return;
    }
    if (t == SMOE_DTYPE_F16 || t == SMOE_DTYPE_BF16) {
        for (size_t i = 0; i < bytes / 2; i++)
            put16(w + 2 * i, t == SMOE_DTYPE_F16 ? smoe_f32_to_f16(rndf()) : smoe_f32_to_bf16(rndf()));
        return;
    }
    for (size_t i = 0; i < bytes; i++) w[i] = (uint8_t)rng();
    const size_t bb = smoe_dtype_block_bytes(t);
    const uint16_t s = smoe_f32_to_f16(0.01f);
    for (size_t b = 0; b < bytes / bb; b++) {
        uint8_t *p = w + b * bb;
        switch (t) {
        case SMOE_DTYPE_Q2_K: put16(p + bb - 4, s), put16(p + bb - 2, s); break;
        case SMOE_DTYPE_Q3_K:
        case SMOE_DTYPE_Q6_K: put16(p + bb - 2, s); break;
        default: put16(p, s), put16(p + 2, s); break; /* d (and m/dmin, else quants) */
        }
    }
}

/* Whether type t is among the names argv[0..argc-1] (all types when argc is 0). */
static int wanted(int argc, char **argv, int t) {
    int want = argc == 0;
    for (int k = 0; k < argc; k++) want |= strcmp(argv[k], smoe_dtype_name(t)) == 0;
    return want;
}

/* rows random weight rows of N values of type t; *rowbytes gets the row size. */
static uint8_t *make_matrix(int t, int rows, size_t *rowbytes) {
    *rowbytes = (size_t)(N / smoe_dtype_block_size(t)) * smoe_dtype_block_bytes(t);
    uint8_t *w = malloc(*rowbytes * (size_t)rows);
    fill(t, w, *rowbytes * (size_t)rows);
    return w;
}

static int T4 = 64; /* tokens of the --x4 benchmark (BENCH_TOKENS, a multiple of 4) */

/* One pass of the --x4 benchmark: y[t * ROWS + r] for all rows and T4 tokens, with
 * vec_dot4 when use4, else vec_dot. */
static void x4_pass(const smoe_kernel *k, int use4, const uint8_t *w, size_t rowbytes, const uint8_t *a, size_t as,
                    float *y) {
    for (int r = 0; r < ROWS; r++) {
        const uint8_t *wr = w + (size_t)r * rowbytes;
        if (use4) {
            float o[4];
            for (int t = 0; t < T4; t += 4) {
                k->vec_dot4(N, wr, a + (size_t)t * as, as, o);
                for (int j = 0; j < 4; j++) y[(t + j) * ROWS + r] = o[j];
            }
        } else {
            for (int t = 0; t < T4; t++) y[t * ROWS + r] = k->vec_dot(N, wr, a + (size_t)t * as);
        }
    }
}

/* Best times of the --x4 passes without (best[0]) and with (best[1]) vec_dot4, the two
 * alternating (so that a slow spell of a shared machine hits both alike): at least 3
 * of each, then as many as fit the budget. */
static void x4_times(const smoe_kernel *k, const uint8_t *w, size_t rowbytes, const uint8_t *a, size_t as, float *y1,
                     float *y4, double budget, double *best) {
    const int nmode = k->vec_dot4 ? 2 : 1;
    best[0] = best[1] = 1e30;
    const double start = now();
    int passes = 0;
    double t1;
    do {
        for (int m = 0; m < nmode; m++) {
            const double t0 = now();
            x4_pass(k, m, w, rowbytes, a, as, m ? y4 : y1);
            t1 = now();
            if (t1 - t0 < best[m]) best[m] = t1 - t0;
        }
    } while (++passes < 3 || t1 - start < budget);
}

static int bench_x4(int argc, char **argv, const int *types, int ntypes, double budget) {
    const char *tok = getenv("BENCH_TOKENS");
    if (tok && atoi(tok) >= 4) T4 = atoi(tok) / 4 * 4;
    float *x = malloc((size_t)N * T4 * sizeof *x);
    float *y1 = malloc((size_t)ROWS * T4 * sizeof *y1), *y4 = malloc((size_t)ROWS * T4 * sizeof *y4);
    uint8_t *a = malloc((size_t)N * 4 * T4);
    for (size_t i = 0; i < (size_t)N * T4; i++) x[i] = rndf();
    printf("%dx%d weights x %d tokens, one thread, best pass\n", ROWS, N, T4);
    printf("%-5s %-7s %9s %9s %9s %9s %9s %9s %8s %5s\n", "type", "isa", "ms dot", "ms dot4", "GFLOP/s", "GFLOP/s4",
           "GB/s", "GB/s4", "speedup", "same");
    for (int ti = 0; ti < ntypes; ti++) {
        const int t = types[ti];
        if (!wanted(argc, argv, t)) continue;
        size_t rowbytes;
        uint8_t *w = make_matrix(t, ROWS, &rowbytes);
        smoe_kernel v[8];
        const int nv = smoe_kernels_all(t, v, 8);
        for (int k = nv > 1 ? 1 : 0; k < nv; k++) {
            const int vt = v[k].vec_dot_type;
            const size_t as = (size_t)(N / smoe_dtype_block_size(vt)) * smoe_dtype_block_bytes(vt);
            for (int j = 0; j < T4; j++) v[k].act_quant(x + (size_t)j * N, a + (size_t)j * as, N);
            const double flop = 2.0 * N * ROWS * T4, bytes = (double)rowbytes * ROWS * T4;
            double best[2];
            x4_times(&v[k], w, rowbytes, a, as, y1, y4, 2 * budget, best);
            const double t1 = best[0], t4 = best[1];
            if (!v[k].vec_dot4) {
                printf("%-5s %-7s %9.2f %9s %9.2f %9s %9.2f %9s %8s %5s\n", smoe_dtype_name(t), v[k].isa, t1 * 1e3, "-",
                       flop / t1 * 1e-9, "-", bytes / t1 * 1e-9, "-", "-", "-");
                continue;
            }
            const int same = memcmp(y1, y4, (size_t)ROWS * T4 * sizeof *y1) == 0;
            printf("%-5s %-7s %9.2f %9.2f %9.2f %9.2f %9.2f %9.2f %7.2fx %5s\n", smoe_dtype_name(t), v[k].isa, t1 * 1e3,
                   t4 * 1e3, flop / t1 * 1e-9, flop / t4 * 1e-9, bytes / t1 * 1e-9, bytes / t4 * 1e-9, t1 / t4,
                   same ? "yes" : "NO");
        }
        free(w);
    }
    free(x), free(y1), free(y4), free(a);
    return 0;
}

/* One pass of the --2x4 benchmark: y[t * ROWS + r] for all rows and T4 tokens, with
 * vec_dot_2x4 on row pairs when use2x4, else vec_dot4 (rows outer, 4-token groups inner
 * for both, so that the weight rows sit in L1 while the tokens stream). */
static void p2x4_pass(const smoe_kernel *k, int use2x4, const uint8_t *w, size_t rowbytes, const uint8_t *a, size_t as,
                      float *y) {
    for (int r = 0; r < ROWS; r += 2) {
        const uint8_t *wr = w + (size_t)r * rowbytes;
        for (int t = 0; t < T4; t += 4) {
            float o[8];
            if (use2x4) {
                k->vec_dot_2x4(N, wr, rowbytes, a + (size_t)t * as, as, o);
            } else {
                k->vec_dot4(N, wr, a + (size_t)t * as, as, o);
                k->vec_dot4(N, wr + rowbytes, a + (size_t)t * as, as, o + 4);
            }
            for (int q = 0; q < 8; q++) y[(t + q % 4) * ROWS + r + q / 4] = o[q];
        }
    }
}

/* --2x4: vec_dot4 (two rows) vs vec_dot_2x4 on the same matrix and T4 tokens, the two
 * alternating, best passes; "same" says whether all outputs were bit-identical. */
static int bench_2x4(int argc, char **argv, const int *types, int ntypes, double budget) {
    const char *tok = getenv("BENCH_TOKENS");
    if (tok && atoi(tok) >= 4) T4 = atoi(tok) / 4 * 4;
    float *x = malloc((size_t)N * T4 * sizeof *x);
    float *y4 = malloc((size_t)ROWS * T4 * sizeof *y4), *y8 = malloc((size_t)ROWS * T4 * sizeof *y8);
    uint8_t *a = malloc((size_t)N * 4 * T4);
    for (size_t i = 0; i < (size_t)N * T4; i++) x[i] = rndf();
    printf("%dx%d weights x %d tokens, one thread, best pass\n", ROWS, N, T4);
    printf("%-5s %-7s %9s %9s %9s %9s %8s %5s\n", "type", "isa", "ms dot4", "ms 2x4", "GFLOP/s4", "GFLOP/s8", "speedup",
           "same");
    for (int ti = 0; ti < ntypes; ti++) {
        const int t = types[ti];
        if (!wanted(argc, argv, t)) continue;
        size_t rowbytes;
        uint8_t *w = make_matrix(t, ROWS, &rowbytes);
        smoe_kernel v[8];
        const int nv = smoe_kernels_all(t, v, 8);
        for (int k = nv > 1 ? 1 : 0; k < nv; k++) {
            if (!v[k].vec_dot4 || !v[k].vec_dot_2x4) continue;
            const int vt = v[k].vec_dot_type;
            const size_t as = (size_t)(N / smoe_dtype_block_size(vt)) * smoe_dtype_block_bytes(vt);
            for (int j = 0; j < T4; j++) v[k].act_quant(x + (size_t)j * N, a + (size_t)j * as, N);
            const double flop = 2.0 * N * ROWS * T4;
            double best[2] = {1e30, 1e30}, t1;
            const double start = now();
            int passes = 0;
            do {
                for (int m = 0; m < 2; m++) {
                    const double t0 = now();
                    p2x4_pass(&v[k], m, w, rowbytes, a, as, m ? y8 : y4);
                    t1 = now();
                    if (t1 - t0 < best[m]) best[m] = t1 - t0;
                }
            } while (++passes < 3 || t1 - start < 2 * budget);
            const int same = memcmp(y4, y8, (size_t)ROWS * T4 * sizeof *y4) == 0;
            printf("%-5s %-7s %9.2f %9.2f %9.2f %9.2f %7.2fx %5s\n", smoe_dtype_name(t), v[k].isa, best[0] * 1e3,
                   best[1] * 1e3, flop / best[0] * 1e-9, flop / best[1] * 1e-9, best[0] / best[1], same ? "yes" : "NO");
        }
        free(w);
    }
    free(x), free(y4), free(y8), free(a);
    return 0;
}

/* --gemm: the prefill matmul of GR rows x N for T tokens, one thread, the integer path
 * (quantize the T activation rows, then vec_dot_2x4 / vec_dot4 / vec_dot over 4-token
 * groups, weight rows in blocks of 64 as cpu_ops.c's rows_dot) against the f32 GEMM
 * (pack the tokens, smoe_gemm_rows), for the types that have a GEMM path. */
#define GR 1024
static double int_pass(const smoe_kernel *k, const uint8_t *w, size_t rb, const float *x, uint8_t *a, size_t as, int T,
                       float *y) {
    const double t0 = now();
    for (int t = 0; t < T; t++) k->act_quant(x + (size_t)t * N, a + (size_t)t * as, N);
    const int T4 = k->vec_dot4 ? T / 4 * 4 : 0;
    for (int rb0 = 0; rb0 < GR; rb0 += 64) {
        for (int t = 0; t < T4; t += 4) {
            int r = rb0;
            float o[8];
            if (k->vec_dot_2x4)
                for (; r + 2 <= rb0 + 64; r += 2) {
                    k->vec_dot_2x4(N, w + (size_t)r * rb, rb, a + (size_t)t * as, as, o);
                    for (int j = 0; j < 4; j++) y[(t + j) * GR + r] = o[j], y[(t + j) * GR + r + 1] = o[4 + j];
                }
            for (; r < rb0 + 64; r++) {
                k->vec_dot4(N, w + (size_t)r * rb, a + (size_t)t * as, as, o);
                for (int j = 0; j < 4; j++) y[(t + j) * GR + r] = o[j];
            }
        }
        for (int t = T4; t < T; t++)
            for (int r = rb0; r < rb0 + 64; r++) y[t * GR + r] = k->vec_dot(N, w + (size_t)r * rb, a + (size_t)t * as);
    }
    return now() - t0;
}

static int bench_gemm(int argc, char **argv, const int *types, int ntypes, double budget) {
    static const int Ts[] = {4, 8, 12, 16, 24, 32, 64, 128};
    const int TMAX = 128;
    float *x = malloc(sizeof(float) * (size_t)N * TMAX), *y = malloc(sizeof(float) * (size_t)GR * TMAX);
    uint8_t *a = malloc((size_t)N * 4 * TMAX);
    float *pk = smoe_alloc_aligned(smoe_gemm_pack_floats(TMAX, N), sizeof(float));
    float *ws = smoe_alloc_aligned(smoe_gemm_ws_floats(TMAX), sizeof(float));
    for (size_t i = 0; i < (size_t)N * TMAX; i++) x[i] = rndf();
    printf("%dx%d weights, one thread, best pass; GFLOP/s of the integer path and of the f32 GEMM\n", GR, N);
    printf("%-5s %-6s", "type", "isa");
    for (size_t i = 0; i < sizeof Ts / sizeof *Ts; i++) printf("   T=%-3d int/gemm", Ts[i]);
    printf("\n");
    for (int ti = 0; ti < ntypes; ti++) {
        const int t = types[ti];
        if (!wanted(argc, argv, t)) continue;
        size_t rb;
        uint8_t *w = make_matrix(t, GR, &rb);
        smoe_kernel v[8];
        const int nv = smoe_kernels_all(t, v, 8);
        for (int k = 0; k < nv; k++) {
            if (!v[k].gemm_tile) continue;
            const size_t as = (size_t)(N / smoe_dtype_block_size(v[k].vec_dot_type)) * smoe_dtype_block_bytes(v[k].vec_dot_type);
            const smoe_tensor W = {.dtype = t, .cols = N, .rows = GR, .row_bytes = rb, .data = w, .kern = &v[k]};
            printf("%-5s %-6s", smoe_dtype_name(t), v[k].isa);
            for (size_t i = 0; i < sizeof Ts / sizeof *Ts; i++) {
                const int T = Ts[i];
                double best[2] = {1e30, 1e30};
                const double start = now();
                int passes = 0;
                do {
                    const double d0 = int_pass(&v[k], w, rb, x, a, as, T, y);
                    if (d0 < best[0]) best[0] = d0;
                    const double t0 = now();
                    smoe_gemm_pack(x, T, N, 0, smoe_gemm_panels(T), pk);
                    smoe_gemm_rows(&W, pk, T, 0, GR, y, GR, ws);
                    const double d1 = now() - t0;
                    if (d1 < best[1]) best[1] = d1;
                } while (++passes < 3 || now() - start < budget / 4);
                const double flop = 2.0 * N * GR * T;
                printf("   %6.1f/%-6.1f  ", flop / best[0] * 1e-9, flop / best[1] * 1e-9);
            }
            printf("\n");
        }
        free(w);
    }
    free(x), free(y), free(a);
    smoe_free_aligned(pk);
    smoe_free_aligned(ws);
    return 0;
}

int main(int argc, char **argv) {
    static const int types[] = {SMOE_DTYPE_Q4_0, SMOE_DTYPE_Q4_1, SMOE_DTYPE_Q5_0, SMOE_DTYPE_Q5_1,
                                SMOE_DTYPE_Q8_0, SMOE_DTYPE_Q2_K, SMOE_DTYPE_Q3_K, SMOE_DTYPE_Q4_K,
                                SMOE_DTYPE_Q5_K, SMOE_DTYPE_Q6_K, SMOE_DTYPE_F16,  SMOE_DTYPE_BF16,
                                SMOE_DTYPE_F32};
    const char *sec = getenv("BENCH_SECONDS");
    const double budget = sec ? atof(sec) : 0.3;
    if (argc > 1 && strcmp(argv[1], "--x4") == 0)
        return bench_x4(argc - 2, argv + 2, types, (int)(sizeof types / sizeof types[0]), budget);
    if (argc > 1 && strcmp(argv[1], "--2x4") == 0)
        return bench_2x4(argc - 2, argv + 2, types, (int)(sizeof types / sizeof types[0]), budget);
    if (argc > 1 && strcmp(argv[1], "--gemm") == 0)
        return bench_gemm(argc - 2, argv + 2, types, (int)(sizeof types / sizeof types[0]), budget);
    float *x = malloc(N * sizeof *x), *y = malloc(ROWS * sizeof *y);
    uint8_t *a = malloc(N * 4 + 64);
    for (int i = 0; i < N; i++) x[i] = rndf();
    printf("%-5s %-7s %10s %9s %12s\n", "type", "isa", "ms/matvec", "GB/s", "quant us/row");
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const int t = types[ti];
        if (!wanted(argc - 1, argv + 1, t)) continue;
        size_t rowbytes;
        uint8_t *w = make_matrix(t, ROWS, &rowbytes);
        smoe_kernel v[8];
        const int nv = smoe_kernels_all(t, v, 8);
        for (int k = 0; k < nv; k++) {
            /* activation quantizer */
            double qus = 1e30, t0, t1;
            const double qstart = now();
            do {
                t0 = now();
                v[k].act_quant(x, a, N);
                t1 = now();
                if ((t1 - t0) * 1e6 < qus) qus = (t1 - t0) * 1e6;
            } while (t1 - qstart < 0.02);
            /* matvec: one untimed warm-up pass, then as many as fit the budget */
            for (int r = 0; r < ROWS; r++) y[r] = v[k].vec_dot(N, w + (size_t)r * rowbytes, a);
            /* the best pass: other processes on a shared machine only ever slow a pass */
            double per = 1e30;
            const double start = now();
            do {
                t0 = now();
                for (int r = 0; r < ROWS; r++) y[r] = v[k].vec_dot(N, w + (size_t)r * rowbytes, a);
                t1 = now();
                if (t1 - t0 < per) per = t1 - t0;
            } while (t1 - start < budget);
            printf("%-5s %-7s %10.3f %9.2f %12.2f   (y[0] %g)\n", smoe_dtype_name(t), v[k].isa, per * 1e3,
                   (double)rowbytes * ROWS / per * 1e-9, qus, y[0]);
        }
        free(w);
    }
    free(x), free(y), free(a);
    return 0;
}
