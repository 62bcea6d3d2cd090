/*
 * cmd_synth.c - `smoe synth`: write a random-weight model of given dimensions and weight
 * type in llama.cpp's Mixtral layout (src/synth.c does the work), for benchmarks against
 * llama.cpp and for tests. Prints progress to stderr.
 *
 * What it does not do: no quantization of real weights (`smoe quantize`), no training;
 * the text such a model generates is noise.
 */
#include "cli.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *SYNTH_HELP =
    "usage: smoe synth -o FILE [--preset NAME] [--type TYPE] [options]\n"
    "\n"
    "Write a random-weight model in llama.cpp's Mixtral layout (general.architecture =\n"
    "llama, 3-D ffn_*_exps experts, F32 router and norms) with a real vocabulary, for\n"
    "benchmarks: llama.cpp and smoe can both run it. Weights are seeded random blocks\n"
    "scaled so activations stay O(1); the output is noise. Same options and seed give the\n"
    "same bytes.\n"
    "\n"
    "options:\n"
    "  -o, --output FILE       GGUF file to write (required)\n"
    "      --preset NAME       bench-m (default): D 1024, 8 layers, 16/4 heads, F 3584,\n"
    "                          8 experts top-2; mixtral-8x7b: D 4096, 32 layers, 32/8\n"
    "                          heads, F 14336, 8 experts top-2, ctx 32768 (Q2_K ~15 GB)\n"
    "      --type TYPE         F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K Q4_K Q5_K\n"
    "                          Q6_K (every matrix that type) or the llama.cpp mixes\n"
    "                          Q3_K_M Q4_K_M Q5_K_M (default Q4_K_M)\n"
    "      --seed S            random seed (default 0)\n"
    "      --n-embd N          override the preset's embedding size\n"
    "      --n-layer N         ... layer count\n"
    "      --n-head N          ... attention heads\n"
    "      --n-head-kv N       ... key/value heads\n"
    "      --n-ff N            ... expert hidden size\n"
    "      --n-expert N        ... experts (0 = dense FFN)\n"
    "      --n-expert-used N   ... experts per token\n"
    "      --n-ctx N           ... training context length (metadata)\n"
    "      --rope-base F       ... RoPE frequency base\n"
    "      --vocab FILE        GGUF whose tokenizer.ggml.* keys are copied (default: $SMOE_VOCAB,\n"
    "                          else tests/data/tokenizer/ggml-vocab-mistral-v1.gguf of this\n"
    "                          source tree, 32000 tokens)\n"
    "      --vocab-n N         keep only the first N tokens (small test models)\n"
    "      --name NAME         general.name (default smoe-synth)\n"
    "      --no-space-check    write even if free disk space looks too small\n"
    "  -q, --quiet             no progress output\n"
    "  -h, --help              show this help\n";

static const char *VOCAB_REL = "tests/data/tokenizer/ggml-vocab-mistral-v1.gguf";

/* The default vocabulary: $SMOE_VOCAB, else the source tree's copy, found next to the
 * binary (./smoe at the root, build/san/smoe two levels down) or from the cwd. */
static const char *default_vocab(char *buf, size_t cap) {
    const char *env = getenv("SMOE_VOCAB");
    if (env && env[0]) return env;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) *slash = 0;
        static const char *const UP[] = {"", "/..", "/../.."};
        for (int i = 0; i < 3; i++) {
            if (snprintf(buf, cap, "%s%s/%s", exe, UP[i], VOCAB_REL) < (int)cap && access(buf, R_OK) == 0) return buf;
        }
    }
    return VOCAB_REL;
}

typedef struct progress {
    bool tty;
    int last_pct;
    double t0;
} progress;

static void on_progress(void *user, int64_t tensor, int64_t n_tensors, uint64_t done, uint64_t total, const char *name) {
    progress *pr = user;
    int pct = total ? (int)(done * 100 / total) : 100;
    if (pr->tty) {
        fprintf(stderr, "\r%s: [%3d%%] %7.2f / %.2f GB  %-36s", g_cmd, pct, done / 1e9, total / 1e9, name);
        if (tensor + 1 == n_tensors) fputc('\n', stderr);
    } else if (pct / 10 != pr->last_pct / 10 || tensor + 1 == n_tensors) {
        fprintf(stderr, "%s: %3d%%  %.2f / %.2f GB  (%.0f s)\n", g_cmd, pct, done / 1e9, total / 1e9, now_s() - pr->t0);
    }
    pr->last_pct = pct;
}

int cmd_synth(int argc, char **argv) {
    const char *out = NULL, *preset = "bench-m";
    long dims[9];
    for (int k = 0; k < 9; k++) dims[k] = -1; /* -1: keep the preset's value */
    float rope = -1;
    bool quiet = false;
    char vbuf[PATH_MAX + 64];
    smoe_synth_params p = smoe_synth_default_params();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (is_help(a)) { fputs(SYNTH_HELP, stdout); return 0; }
        else if (!strcmp(a, "-o") || !strcmp(a, "--output")) out = opt_value(argc, argv, &i);
        else if (!strcmp(a, "--preset")) preset = opt_value(argc, argv, &i);
        else if (!strcmp(a, "--type")) p.type = opt_value(argc, argv, &i);
        else if (!strcmp(a, "--seed")) p.seed = parse_u64(a, opt_value(argc, argv, &i));
        else if (!strcmp(a, "--n-embd")) dims[0] = parse_long(a, opt_value(argc, argv, &i), 1, 1 << 20);
        else if (!strcmp(a, "--n-layer")) dims[1] = parse_long(a, opt_value(argc, argv, &i), 1, 4096);
        else if (!strcmp(a, "--n-head")) dims[2] = parse_long(a, opt_value(argc, argv, &i), 1, 4096);
        else if (!strcmp(a, "--n-head-kv")) dims[3] = parse_long(a, opt_value(argc, argv, &i), 1, 4096);
        else if (!strcmp(a, "--n-ff")) dims[4] = parse_long(a, opt_value(argc, argv, &i), 1, 1 << 20);
        else if (!strcmp(a, "--n-expert")) dims[5] = parse_long(a, opt_value(argc, argv, &i), 0, 4096);
        else if (!strcmp(a, "--n-expert-used")) dims[6] = parse_long(a, opt_value(argc, argv, &i), 0, 4096);
        else if (!strcmp(a, "--n-ctx")) dims[7] = parse_long(a, opt_value(argc, argv, &i), 1, 1 << 24);
        else if (!strcmp(a, "--vocab-n")) dims[8] = parse_long(a, opt_value(argc, argv, &i), 1, INT32_MAX);
        else if (!strcmp(a, "--rope-base")) rope = parse_float(a, opt_value(argc, argv, &i), 1e-3, 1e12);
        else if (!strcmp(a, "--vocab")) p.vocab_path = opt_value(argc, argv, &i);
        else if (!strcmp(a, "--name")) p.name = opt_value(argc, argv, &i);
        else if (!strcmp(a, "--no-space-check")) p.check_space = false;
        else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) quiet = true;
        else die_usage("unknown option '%s'", a);
    }
    if (!out) die_usage("missing -o FILE");
    if (smoe_synth_preset(preset, &p)) die_usage("%s", smoe_last_error());
    int32_t *fields[9] = {&p.n_embd, &p.n_layer, &p.n_head, &p.n_head_kv, &p.n_ff,
                          &p.n_expert, &p.n_expert_used, &p.n_ctx, &p.vocab_n};
    for (int k = 0; k < 9; k++)
        if (dims[k] >= 0) *fields[k] = (int32_t)dims[k];
    if (dims[5] == 0 && dims[6] < 0) p.n_expert_used = 0; /* --n-expert 0 alone means dense */
    if (rope > 0) p.rope_freq_base = rope;
    if (!p.vocab_path) p.vocab_path = default_vocab(vbuf, sizeof vbuf);

    /* Bad dimensions or an unknown type are usage errors: check before any I/O. */
    if (smoe_synth_tensor_type(&p, "blk.0.attn_q.weight", p.n_embd) < 0) die_usage("%s", smoe_last_error());
    uint64_t bytes = 0;
    if (smoe_synth_size(&p, &bytes)) return fail("cannot synthesise");
    progress pr = {isatty(2) == 1, -1, now_s()};
    if (!quiet) {
        fprintf(stderr, "%s: %s, type %s: D %d, %d layers, heads %d/%d, F %d, experts %d (top-%d), ctx %d, seed %llu\n",
                g_cmd, preset, p.type, p.n_embd, p.n_layer, p.n_head, p.n_head_kv, p.n_ff, p.n_expert, p.n_expert_used,
                p.n_ctx, (unsigned long long)p.seed);
        fprintf(stderr, "%s: vocabulary %s%s, %.3f GB of weights -> %s\n", g_cmd, p.vocab_path,
                p.vocab_n ? " (cut)" : "", bytes / 1e9, out);
        p.progress = on_progress;
        p.progress_user = &pr;
    }
    if (smoe_synth_model(&p, out)) {
        if (pr.tty && !quiet && pr.last_pct >= 0) fputc('\n', stderr);
        return fail("cannot synthesise");
    }
    double dt = now_s() - pr.t0;
    if (!quiet) fprintf(stderr, "%s: wrote %s in %.1f s (%.0f MB/s)\n", g_cmd, out, dt, bytes / 1e6 / (dt > 0 ? dt : 1e-9));
    return 0;
}
