/*
 * cmd_quantize.c - `smoe quantize`: convert a GGUF model to another weight type mix
 * (llama-quantize's names and per-tensor rules) with smoe_model_quantize, showing
 * progress on stderr and a size/time summary at the end.
 *
 * What it does not do: no importance matrix, no per-tensor overrides, no dry run.
 */
#include "smoe.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

static const char *QUANTIZE_HELP =
    "usage: smoe quantize [options] IN OUT TYPE\n"
    "\n"
    "Convert the GGUF model IN to the weight type mix TYPE and write it to OUT (atomically:\n"
    "OUT appears only when complete). Any model smoe can read works as input, quantized\n"
    "ones included. Per-tensor types follow llama.cpp's llama-quantize for the same mix:\n"
    "norms and the MoE router stay F32, output.weight becomes Q6_K, and the _M/_S/_L mixes\n"
    "give attn_v, attn_output and some ffn_down layers more bits (Q8_0 attn_k/attn_v for\n"
    "8-expert models).\n"
    "\n"
    "TYPE: F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q4_K_M\n"
    "      Q5_K_S Q5_K_M Q6_K (Q3_K, Q4_K, Q5_K mean the _M mix; case does not matter)\n"
    "\n"
    "options:\n"
    "  -t, --threads N   worker threads (default: all CPUs)\n"
    "  -q, --quiet       no progress lines\n"
    "  -h, --help        show this help\n";

typedef struct progress_state {
    bool quiet;
    double t0;
} progress_state;

static void on_progress(void *user, int64_t done, int64_t total, const char *tensor) {
    const progress_state *p = user;
    if (p->quiet) return;
    if (tensor)
        fprintf(stderr, "[%4" PRId64 "/%4" PRId64 "] %s\n", done + 1, total, tensor);
    else
        fprintf(stderr, "writing the file (%.1f s so far)\n", now_s() - p->t0);
}

/* Bytes of tensor data and element count of a GGUF file (0 if it cannot be opened). */
static void weight_stats(const char *path, double *bytes, double *elems) {
    smoe_gguf *g = NULL;
    *bytes = *elems = 0;
    if (smoe_gguf_open(path, &g) != SMOE_OK) return;
    for (int64_t i = 0; i < smoe_gguf_n_tensors(g); i++) {
        double n = 1;
        for (int d = 0; d < smoe_gguf_tensor_ndim(g, i); d++) n *= (double)smoe_gguf_tensor_ne(g, i, d);
        *elems += n;
        *bytes += (double)smoe_gguf_tensor_nbytes(g, i);
    }
    smoe_gguf_free(g);
}

int cmd_quantize(int argc, char **argv) {
    const char *pos[3];
    int npos = 0;
    long threads = 0;
    progress_state ps = {false, 0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (is_help(a)) { fputs(QUANTIZE_HELP, stdout); return 0; }
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) threads = parse_long(a, opt_value(argc, argv, &i), 1, 1024);
        else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) ps.quiet = true;
        else if (a[0] == '-' && a[1]) die_usage("unknown option '%s'", a);
        else if (npos == 3) die_usage("too many arguments ('%s'): want IN OUT TYPE", a);
        else pos[npos++] = a;
    }
    if (npos < 3) die_usage("missing %s", npos == 0 ? "IN OUT TYPE" : npos == 1 ? "OUT TYPE" : "TYPE");
    const char *in = pos[0], *out = pos[1];
    smoe_ftype ft;
    if (smoe_ftype_from_name(pos[2], &ft) != SMOE_OK) die_usage("%s", smoe_last_error());

    ps.t0 = now_s();
    if (smoe_model_quantize(in, out, ft, (int)threads, on_progress, &ps) != SMOE_OK) return fail("cannot quantize");
    const double dt = now_s() - ps.t0;
    /* the atomic writer creates its temporary file private (0600); a model file is
     * normally readable like any other new file: apply the umask as open() would */
    const mode_t mask = umask(0);
    umask(mask);
    chmod(out, 0666 & ~mask);

    double b_in, n_in, b_out, n_out;
    weight_stats(in, &b_in, &n_in);
    weight_stats(out, &b_out, &n_out);
    fprintf(stderr, "%s -> %s (%s): %.2f MiB -> %.2f MiB of weights (%.2f -> %.2f bits/weight) in %.2f s\n", in, out,
            smoe_ftype_name(ft), b_in / 1048576.0, b_out / 1048576.0, n_in > 0 ? 8 * b_in / n_in : 0.0,
            n_out > 0 ? 8 * b_out / n_out : 0.0, dt);
    if (n_in > 0 && 8 * b_in / n_in < 15.5)
        fprintf(stderr, "note: %s was already quantized; converting it again adds to its error\n", in);
    return 0;
}
