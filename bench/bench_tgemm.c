/*
 * bench_tgemm.c - speed of the training GEMM (src/train/tgemm.h) on the linear layers of
 * the train-s model (dim 256, 8 heads / 2 kv heads of 32, ffn 512, vocab 4096, 2048
 * tokens per step; an expert sees about 512 of them, here also an awkward 333), in the
 * three forms of a linear layer y = x W^T, W[O][I]:
 *   fwd  y[T][O]   = x[T][I] W^T      (A in place, B^T packed)
 *   dx   dx[T][I] += dy[T][O] W       (A in place, B packed)
 *   dW   dW[O][I] += dy^T x[T][I]     (A^T packed, B packed)
 * GFLOP/s (2*T*I*O per product) at 1 and 2 threads (or the counts given), best of the
 * runs within BENCH_SECONDS (default 0.5) per entry; the thread counts take turns run by
 * run, so that a neighbour's load on this 2-core machine hits them alike.
 *
 * Not part of the test suite. Build and run from the repository root after `make`:
 *
 *   cc -std=c11 -D_GNU_SOURCE -O2 -Iinclude -Isrc bench/bench_tgemm.c build/libsmoe.a \
 *      -lm -pthread -o build/bench_tgemm && ./build/bench_tgemm [threads ...]
 */
#include "cpu/threadpool.h"
#include "smoe.h"
#include "train/tgemm.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

typedef struct shape {
    const char *name;
    int64_t T, I, O;
} shape;

typedef struct bufs {
    float *x, *W, *y, *dx, *dy, *dW;
    void *ws;
    size_t ws_bytes;
} bufs;

/* form 0 fwd, 1 dx, 2 dW */
static void run(smoe_pool *p, const bufs *b, const shape *s, int form) {
    const int64_t T = s->T, I = s->I, O = s->O;
    if (form == 0) tgemm(p, b->ws, b->ws_bytes, false, T, O, I, b->x, I, false, b->W, I, true, b->y, O);
    if (form == 1) tgemm(p, b->ws, b->ws_bytes, true, T, I, O, b->dy, O, false, b->W, I, false, b->dx, I);
    if (form == 2) tgemm(p, b->ws, b->ws_bytes, true, O, I, T, b->dy, O, true, b->x, I, false, b->dW, I);
}

/* Best GFLOP/s of each pool (taking turns) within budget seconds; at least 3 runs each. */
static void gflops(smoe_pool **pools, int np, const bufs *b, const shape *s, int form, double budget,
                   double *out) {
    const double flop = 2.0 * (double)s->T * (double)s->I * (double)s->O;
    double best[8];
    for (int i = 0; i < np; i++) run(pools[i], b, s, form), best[i] = 1e30; /* warm-up */
    const double t_end = now() + budget;
    for (int n = 0; n < 3 || now() < t_end; n++)
        for (int i = 0; i < np; i++) {
            const double t0 = now();
            run(pools[i], b, s, form);
            const double dt = now() - t0;
            if (dt < best[i]) best[i] = dt;
        }
    for (int i = 0; i < np; i++) out[i] = flop / best[i] * 1e-9;
}

static float *randbuf(size_t n) {
    float *v = malloc(sizeof(float) * n);
    unsigned long long st = 0x9e3779b97f4a7c15ull ^ n;
    for (size_t i = 0; i < n; i++) {
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        v[i] = (float)((double)(st >> 40) / (double)(1ull << 24) * 2.0 - 1.0) * 0.1f;
    }
    return v;
}

int main(int argc, char **argv) {
    static const shape shapes[] = {
        {"attn q/o   T2048 256->256", 2048, 256, 256},  {"attn k/v   T2048 256->64", 2048, 256, 64},
        {"head       T2048 256->4096", 2048, 256, 4096}, {"ffn up     T512  256->512", 512, 256, 512},
        {"ffn down   T512  512->256", 512, 512, 256},   {"ffn up     T333  256->512", 333, 256, 512},
        {"ffn down   T333  512->256", 333, 512, 256},   {"ffn up     T64   256->512", 64, 256, 512},
    };
    static const char *const forms[] = {"fwd", "dx", "dW"};
    int threads[8] = {1, 2}, nt = 2, a = 1;
    if (a < argc) {
        nt = 0;
        for (; a < argc && nt < 8; a++) threads[nt++] = atoi(argv[a]);
    }
    const char *env = getenv("BENCH_SECONDS");
    const double budget = env ? atof(env) : 0.5;

    int64_t maxT = 0, maxI = 0, maxO = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        if (shapes[s].T > maxT) maxT = shapes[s].T;
        if (shapes[s].I > maxI) maxI = shapes[s].I;
        if (shapes[s].O > maxO) maxO = shapes[s].O;
    }
    bufs b;
    b.x = randbuf((size_t)(maxT * maxI)), b.dx = randbuf((size_t)(maxT * maxI));
    b.y = randbuf((size_t)(maxT * maxO)), b.dy = randbuf((size_t)(maxT * maxO));
    b.W = randbuf((size_t)(maxO * maxI)), b.dW = randbuf((size_t)(maxO * maxI));
    int maxth = 1;
    smoe_pool *pools[8];
    for (int i = 0; i < nt; i++) {
        maxth = threads[i] > maxth ? threads[i] : maxth;
        if (smoe_pool_init(threads[i], &pools[i]) != SMOE_OK) return 1;
    }
    b.ws_bytes = tgemm_ws_bytes_max(maxth);
    b.ws = malloc(b.ws_bytes);

    printf("tgemm kernels: %s; GFLOP/s, best of %.2f s per entry\n", tgemm_kernels_best()->isa, budget);
    printf("%-28s %-4s", "shape", "form");
    for (int i = 0; i < nt; i++) printf("  tgemm t%d", threads[i]);
    printf("\n");
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int f = 0; f < 3; f++) {
            double g[8];
            printf("%-28s %-4s", shapes[s].name, forms[f]);
            fflush(stdout);
            gflops(pools, nt, &b, &shapes[s], f, budget, g);
            for (int i = 0; i < nt; i++) printf("  %8.1f", g[i]);
            printf("\n");
        }
    for (int i = 0; i < nt; i++) smoe_pool_free(pools[i]);
    free(b.x), free(b.dx), free(b.y), free(b.dy), free(b.W), free(b.dW), free(b.ws);
    return 0;
}
