/*
 * bench_attention.c - micro-benchmark of the grouped-query attention kernels
 * (src/cpu/attn.h): one thread, one KV head of a cache laid out as cpu_ops.c lays it out
 * (rows of n_kv_heads * head_dim floats, here 4 KV heads), the group's n_group query heads.
 * For each (head_dim, n_group, n_kv) it reports the best time per call over repeated
 * calls as ns per (cached position x query head), for the generic and the dispatched
 * (AVX2 on x86) kernels. The "causal" rows time a whole prefill of n_kv tokens instead
 * (calls with 1, 2, ..., n_kv positions, as cpu_ops.c's attn_kernel makes them), per
 * (position x head) summed over the calls.
 *
 * Not part of the test suite (tests/test_attention.c checks the results). Build and run
 * from the repository root, after `make` has built build/libsmoe.a:
 *
 *   cc -std=c11 -D_GNU_SOURCE -O2 -Iinclude -Isrc bench/bench_attention.c build/libsmoe.a \
 *      -lm -pthread -o build/bench_attention && ./build/bench_attention
 *
 * BENCH_SECONDS=x in the environment for longer runs (default 0.3 s per row and kernel);
 * --no-generic to skip the portable kernel.
 */
#include "cpu/attn.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float rnd(unsigned long long *s) {
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((*s >> 40) & 0xffffff) / (float)0x1000000 * 2.0f - 1.0f;
}

static volatile float sink;

/* Best ns per (position x head) over passes for about `secs` seconds. */
static double time_kernel(smoe_attn_group_fn fn, int Dh, int G, int32_t n_kv, int causal, double secs) {
    const int n_kv_heads = 4;
    const int64_t stride = (int64_t)n_kv_heads * Dh;
    const int32_t n_tok = causal ? n_kv : 1;
    float *kc = malloc(sizeof(float) * (size_t)(stride * n_kv)), *vc = malloc(sizeof(float) * (size_t)(stride * n_kv));
    float *q = malloc(sizeof(float) * (size_t)(G * Dh)), *out = malloc(sizeof(float) * (size_t)(G * Dh));
    float *scores = malloc(sizeof(float) * (size_t)G * (size_t)n_kv);
    unsigned long long r = 42;
    for (int64_t i = 0; i < stride * n_kv; i++) kc[i] = rnd(&r), vc[i] = rnd(&r);
    for (int i = 0; i < G * Dh; i++) q[i] = rnd(&r);
    const int hk = 1;
    double work = 0; /* positions x heads per pass */
    for (int32_t t = 0; t < n_tok; t++) work += (double)(causal ? t + 1 : n_kv) * G;
    double best = 1e30, t_end = now_s() + secs;
    int passes = 0;
    do {
        const double t0 = now_s();
        for (int32_t t = 0; t < n_tok; t++)
            fn(out, q, kc + hk * Dh, vc + hk * Dh, stride, causal ? t + 1 : n_kv, G, Dh, scores);
        const double dt = now_s() - t0;
        if (dt < best) best = dt;
        passes++;
    } while (now_s() < t_end || passes < 3);
    sink = out[0];
    free(kc), free(vc), free(q), free(out), free(scores);
    return best * 1e9 / work;
}

int main(int argc, char **argv) {
    const char *e = getenv("BENCH_SECONDS");
    const double secs = e ? atof(e) : 0.3;
    const int gen = !(argc > 1 && !strcmp(argv[1], "--no-generic"));
    static const int dims[] = {64, 128}, groups[] = {4, 8};
    static const int32_t nkv[] = {512, 4096};
    printf("ns per (position x head), best pass, one thread\n");
    printf("%-6s %-6s %-12s %10s %10s\n", "Dh", "group", "n_kv", gen ? "generic" : "", "dispatched");
    for (size_t a = 0; a < 2; a++)
        for (size_t b = 0; b < 2; b++)
            for (size_t c = 0; c < 3; c++) {
                const int causal = c == 2;
                const int32_t n = causal ? 512 : nkv[c];
                char lab[32];
                snprintf(lab, sizeof lab, causal ? "causal %d" : "%d", (int)n);
                const double tg = gen ? time_kernel(smoe_attn_group_generic, dims[a], groups[b], n, causal, secs) : 0;
                const double td = time_kernel(smoe_attn_group_get(), dims[a], groups[b], n, causal, secs);
                printf("%-6d %-6d %-12s %10.3f %10.3f\n", dims[a], groups[b], lab, tg, td);
                fflush(stdout);
            }
    return 0;
}
