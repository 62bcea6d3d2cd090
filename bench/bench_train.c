/*
 * bench_train.c - training speed of smoe on a given model shape with random tokens:
 * tokens/s of full optimizer steps (forward, backward, AdamW), median of R runs after a
 * warm-up step (and the fastest step, steadier on a busy machine), and peak resident memory. The "train-s" shape is the default;
 * bench/train_peer.py measures PyTorch on the same shape for the ratio.
 *
 * usage: bench_train [-t threads] [-r runs] [--vocab V --dim D --layers L --heads H
 *                    --kv-heads Hkv --ffn F --experts E --top-k K --seq T --batch B]
 */
#include "smoe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    smoe_train_config c = smoe_train_default_config();
    c.n_vocab = 4096, c.n_embd = 256, c.n_layer = 4, c.n_head = 8, c.n_head_kv = 2, c.n_ff = 512;
    c.n_expert = 8, c.n_expert_used = 2, c.seq_len = 256, c.batch = 8;
    int threads = 2, runs = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i];
        long v = atol(argv[i + 1]);
        if (!strcmp(a, "-t")) threads = (int)v;
        else if (!strcmp(a, "-r")) runs = (int)v;
        else if (!strcmp(a, "--vocab")) c.n_vocab = (int32_t)v;
        else if (!strcmp(a, "--dim")) c.n_embd = (int32_t)v;
        else if (!strcmp(a, "--layers")) c.n_layer = (int32_t)v;
        else if (!strcmp(a, "--heads")) c.n_head = (int32_t)v;
        else if (!strcmp(a, "--kv-heads")) c.n_head_kv = (int32_t)v;
        else if (!strcmp(a, "--ffn")) c.n_ff = (int32_t)v;
        else if (!strcmp(a, "--experts")) c.n_expert = (int32_t)v;
        else if (!strcmp(a, "--top-k")) c.n_expert_used = (int32_t)v;
        else if (!strcmp(a, "--seq")) c.seq_len = (int32_t)v;
        else if (!strcmp(a, "--batch")) c.batch = (int32_t)v;
        else if (!strcmp(a, "--router")) snprintf(c.router, sizeof c.router, "%s", argv[i + 1]);
        else {
            fprintf(stderr, "bench_train: unknown option %s\n", a);
            return 2;
        }
    }
    if (runs < 1 || runs > 1000) runs = 5;
    smoe_trainer *t = NULL;
    if (smoe_trainer_init(&c, threads, &t)) {
        fprintf(stderr, "bench_train: %s\n", smoe_last_error());
        return 1;
    }
    const int64_t BT = (int64_t)c.batch * c.seq_len;
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)(BT + 1));
    uint64_t s = 42;
    for (int64_t i = 0; i <= BT; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        tok[i] = (int32_t)((s >> 33) % (uint64_t)c.n_vocab);
    }
    double times[1000];
    smoe_train_stats st;
    for (int r = -1; r < runs; r++) {
        const double t0 = now();
        if (smoe_trainer_step(t, tok, tok + 1, &st)) {
            fprintf(stderr, "bench_train: %s\n", smoe_last_error());
            return 1;
        }
        if (r >= 0) times[r] = now() - t0;
    }
    qsort(times, (size_t)runs, sizeof *times, cmp);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"params\": %lld, \"threads\": %d, \"tokens_per_step\": %lld, \"step_s\": %.4f, \"step_s_min\": %.4f, \"tokens_per_s\": %.1f, "
           "\"peak_rss_mib\": %.1f, \"loss\": %.4f}\n",
           (long long)smoe_trainer_n_params(t), threads, (long long)BT, times[runs / 2], times[0], (double)BT / times[runs / 2],
           ru.ru_maxrss / 1024.0, st.loss);
    smoe_trainer_free(t);
    free(tok);
    return 0;
}
