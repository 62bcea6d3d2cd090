/*
 * smoe.c - the command-line tool. Uses only the public API (include/smoe.h); it is the
 * only place (with the server) that prints or exits.
 *
 *   smoe run       generate text from a prompt, streaming, with speed on stderr
 *   smoe logits    write the logits of every position of an id sequence (raw f32)
 *   smoe tokenize  print the token ids of a text
 *   smoe info      print a GGUF file's metadata and tensor directory
 *   smoe serve     OpenAI-compatible HTTP server (tools/server/)
 *
 * Exit status: 0 success, 1 runtime failure (bad file, out of memory...), 2 usage error.
 */
#include "smoe.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

/* ------------------------------------------------------------------ run */

static const char *RUN_HELP =
    "usage: smoe run -m MODEL -p PROMPT [options]\n"
    "\n"
    "Generate text from PROMPT with a GGUF model, streaming it to stdout. Prompt and\n"
    "generation speed (tokens/s) go to stderr. Stops after N tokens or at end-of-text.\n"
    "\n"
    "options:\n"
    "  -m, --model FILE        GGUF model file (required)\n"
    "  -p, --prompt TEXT       prompt text (required)\n"
    "  -n, --n-predict N       tokens to generate (default 128)\n"
    "  -t, --threads N         worker threads (default: physical cores)\n"
    "  -c, --ctx-size N        context length (default: min(model's, 4096))\n"
    "      --temp T            temperature; 0 = greedy (default 0.8)\n"
    "      --top-k K           keep the K most likely tokens; 0 = off (default 40)\n"
    "      --top-p P           nucleus sampling; 1 = off (default 0.95)\n"
    "      --min-p P           drop tokens below P x the top probability; 0 = off (default 0.05)\n"
    "      --repeat-penalty R  penalise recent tokens; 1 = off (default 1.0)\n"
    "      --repeat-last-n N   how many recent tokens the penalty sees (default 64)\n"
    "      --seed S            random seed (default 0)\n"
    "      --no-bos            do not put the BOS token before the prompt\n"
    "      --no-stats          do not print the speed line\n"
    "  -h, --help              show this help\n";

int cmd_run(int argc, char **argv) {
    const char *model_path = NULL, *prompt = NULL;
    long n_predict = 128, threads = smoe_default_threads(), n_ctx = 0;
    bool no_bos = false, stats = true;
    smoe_sampler_params sp = smoe_sampler_default_params();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (is_help(a)) { fputs(RUN_HELP, stdout); return 0; }
        else if (!strcmp(a, "-m") || !strcmp(a, "--model")) model_path = opt_value(argc, argv, &i);
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) prompt = opt_value(argc, argv, &i);
        else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) n_predict = parse_long(a, opt_value(argc, argv, &i), 0, 1 << 24);
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) threads = parse_long(a, opt_value(argc, argv, &i), 1, 1024);
        else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) n_ctx = parse_long(a, opt_value(argc, argv, &i), 0, 1 << 24);
        else if (!strcmp(a, "--temp")) sp.temperature = parse_float(a, opt_value(argc, argv, &i), 0, 1e6);
        else if (!strcmp(a, "--top-k")) sp.top_k = (int32_t)parse_long(a, opt_value(argc, argv, &i), 0, INT32_MAX);
        else if (!strcmp(a, "--top-p")) sp.top_p = parse_float(a, opt_value(argc, argv, &i), 0, 1);
        else if (!strcmp(a, "--min-p")) sp.min_p = parse_float(a, opt_value(argc, argv, &i), 0, 1);
        else if (!strcmp(a, "--repeat-penalty")) sp.repeat_penalty = parse_float(a, opt_value(argc, argv, &i), 1e-3, 1e3);
        else if (!strcmp(a, "--repeat-last-n")) sp.repeat_last_n = (int32_t)parse_long(a, opt_value(argc, argv, &i), 0, 1 << 20);
        else if (!strcmp(a, "--seed")) sp.seed = parse_u64(a, opt_value(argc, argv, &i));
        else if (!strcmp(a, "--no-bos")) no_bos = true;
        else if (!strcmp(a, "--no-stats")) stats = false;
        else die_usage("unknown option '%s'", a);
    }
    if (!model_path) die_usage("missing -m MODEL");
    if (!prompt) die_usage("missing -p PROMPT");

    smoe_model *model = NULL;
    smoe_tokenizer *tok = NULL;
    smoe_ctx *ctx = NULL;
    smoe_sampler *smp = NULL;
    int32_t *ids = NULL;
    float *logits = NULL;
    int rc = 1;
    if (smoe_model_load(model_path, NULL, &model)) { rc = fail("cannot load model"); goto out; }
    if (smoe_tokenizer_from_gguf(smoe_model_gguf(model), &tok)) { rc = fail("cannot load tokenizer"); goto out; }
    const smoe_model_info *inf = smoe_model_get_info(model);
    smoe_ctx_params cp = smoe_ctx_default_params();
    cp.n_ctx = (int32_t)n_ctx;
    cp.n_threads = (int32_t)threads;
    if (smoe_ctx_init(model, &cp, &ctx)) { rc = fail("cannot create context"); goto out; }
    if (smoe_sampler_init(&sp, inf->n_vocab, &smp)) { rc = fail("bad sampler settings"); goto out; }

    const int32_t C = smoe_ctx_n_ctx(ctx);
    size_t plen = strlen(prompt);
    int64_t n_prompt = 0;
    ids = malloc(sizeof(int32_t) * (size_t)C);
    logits = malloc(sizeof(float) * (size_t)inf->n_vocab);
    if (!ids || !logits) { fprintf(stderr, "%s: out of memory\n", g_cmd); goto out; }
    smoe_status st = smoe_tokenizer_encode(tok, prompt, plen, !no_bos && smoe_tokenizer_add_bos(tok), ids, C, &n_prompt);
    if (st == SMOE_ERR_RANGE) {
        fprintf(stderr, "%s: the prompt is %" PRId64 " tokens, longer than the context (%d); use -c\n", g_cmd, n_prompt, C);
        goto out;
    }
    if (st) { rc = fail("cannot tokenize the prompt"); goto out; }
    if (n_prompt == 0) { fprintf(stderr, "%s: the prompt is empty (and no BOS)\n", g_cmd); rc = 2; goto out; }
    if (n_predict > C - n_prompt) n_predict = C - n_prompt;

    fputs(prompt, stdout);
    fflush(stdout);
    double t0 = now_s();
    if (smoe_ctx_decode(ctx, ids, (int32_t)n_prompt, logits, false)) { rc = fail("prompt evaluation failed"); goto out; }
    for (int64_t i = 0; i < n_prompt; i++) smoe_sampler_accept(smp, ids[i]);
    double t1 = now_s();

    smoe_detok dt;
    smoe_detok_init(&dt, tok);
    dt.at_start = false; /* the prompt is already printed; keep the space of the first piece */
    char buf[1024];
    int64_t n_gen = 0;
    const int32_t eos = smoe_tokenizer_eos(tok);
    for (; n_gen < n_predict; n_gen++) {
        int32_t id;
        if (smoe_sampler_sample(smp, logits, &id)) { rc = fail("sampling failed"); goto out; }
        if (id == eos) break;
        smoe_sampler_accept(smp, id);
        int64_t nb = smoe_detok_push(&dt, id, buf, sizeof buf);
        if (nb > 0) fwrite(buf, 1, (size_t)nb, stdout), fflush(stdout);
        if (n_gen + 1 < n_predict && smoe_ctx_decode(ctx, &id, 1, logits, false)) { rc = fail("decode failed"); goto out; }
    }
    int64_t nb = smoe_detok_flush(&dt, buf, sizeof buf);
    if (nb > 0) fwrite(buf, 1, (size_t)nb, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    double t2 = now_s();
    if (stats)
        fprintf(stderr, "\nprompt: %" PRId64 " tokens in %.3f s (%.2f tok/s) | generation: %" PRId64
                        " tokens in %.3f s (%.2f tok/s) | %d threads\n",
                n_prompt, t1 - t0, n_prompt / (t1 - t0 > 0 ? t1 - t0 : 1e-9), n_gen, t2 - t1,
                n_gen / (t2 - t1 > 0 ? t2 - t1 : 1e-9), (int)threads);
    rc = 0;
out:
    free(ids);
    free(logits);
    smoe_sampler_free(smp);
    smoe_ctx_free(ctx);
    smoe_tokenizer_free(tok);
    smoe_model_free(model);
    return rc;
}

/* ------------------------------------------------------------------ logits */

static const char *LOGITS_HELP =
    "usage: smoe logits -m MODEL --ids \"ID ID ...\" -o OUT [options]\n"
    "\n"
    "Write the logits after every position of the id sequence to OUT as raw little-endian\n"
    "float32, shape [n_tokens, n_vocab]. No BOS is added: exactly the given ids are fed,\n"
    "at positions 0..n-1.\n"
    "\n"
    "options:\n"
    "  -m, --model FILE   GGUF model file (required)\n"
    "      --ids LIST     token ids separated by spaces or commas (required)\n"
    "  -o, --output FILE  output file (required; '-' = stdout)\n"
    "      --decode       one token at a time through the KV cache (default: one batch)\n"
    "  -t, --threads N    worker threads (default: physical cores)\n"
    "  -h, --help         show this help\n";

int cmd_logits(int argc, char **argv) {
    const char *model_path = NULL, *ids_arg = NULL, *out_path = NULL;
    bool decode = false;
    long threads = smoe_default_threads();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (is_help(a)) { fputs(LOGITS_HELP, stdout); return 0; }
        else if (!strcmp(a, "-m") || !strcmp(a, "--model")) model_path = opt_value(argc, argv, &i);
        else if (!strcmp(a, "--ids")) ids_arg = opt_value(argc, argv, &i);
        else if (!strcmp(a, "-o") || !strcmp(a, "--output")) out_path = opt_value(argc, argv, &i);
        else if (!strcmp(a, "--decode")) decode = true;
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) threads = parse_long(a, opt_value(argc, argv, &i), 1, 1024);
        else die_usage("unknown option '%s'", a);
    }
    if (!model_path) die_usage("missing -m MODEL");
    if (!ids_arg) die_usage("missing --ids");
    if (!out_path) die_usage("missing -o OUT");

    /* parse ids: integers separated by spaces, commas or brackets (a JSON array works) */
    size_t cap = strlen(ids_arg) / 2 + 1, n = 0;
    int32_t *ids = malloc(sizeof(int32_t) * cap);
    if (!ids) return fail("out of memory");
    for (const char *p = ids_arg; *p;) {
        if (*p == ' ' || *p == ',' || *p == '\t' || *p == '\n' || *p == '[' || *p == ']') { p++; continue; }
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < INT32_MIN || v > INT32_MAX) {
            free(ids);
            die_usage("--ids: '%.20s' is not a token id", p);
        }
        ids[n++] = (int32_t)v;
        p = end;
    }
    if (n == 0) { free(ids); die_usage("--ids: no token ids given"); }

    smoe_model *model = NULL;
    smoe_ctx *ctx = NULL;
    float *logits = NULL;
    FILE *f = NULL;
    int rc = 1;
    if (smoe_model_load(model_path, NULL, &model)) { rc = fail("cannot load model"); goto out; }
    const int32_t V = smoe_model_get_info(model)->n_vocab;
    smoe_ctx_params cp = smoe_ctx_default_params();
    cp.n_threads = (int32_t)threads;
    if (n > (size_t)(1 << 24)) { fprintf(stderr, "%s: too many ids (%zu)\n", g_cmd, n); goto out; }
    cp.n_ctx = (int32_t)n;               /* exactly the room the sequence needs */
    cp.n_batch = n < 512 ? (int32_t)n : 512;
    if (smoe_ctx_init(model, &cp, &ctx)) { rc = fail("cannot create context"); goto out; }
    logits = malloc(sizeof(float) * n * (size_t)V);
    if (!logits) { fprintf(stderr, "%s: out of memory for %zu x %d logits\n", g_cmd, n, V); goto out; }
    smoe_status st = SMOE_OK;
    if (decode) {
        for (size_t i = 0; i < n && !st; i++) st = smoe_ctx_decode(ctx, ids + i, 1, logits + i * (size_t)V, false);
    } else {
        st = smoe_ctx_decode(ctx, ids, (int32_t)n, logits, true);
    }
    if (st) { rc = fail("forward pass failed"); goto out; }
    f = strcmp(out_path, "-") == 0 ? stdout : fopen(out_path, "wb");
    if (!f) { fprintf(stderr, "%s: cannot open '%s': %s\n", g_cmd, out_path, strerror(errno)); goto out; }
    if (fwrite(logits, sizeof(float), n * (size_t)V, f) != n * (size_t)V || fflush(f) != 0) {
        fprintf(stderr, "%s: cannot write '%s': %s\n", g_cmd, out_path, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (f && f != stdout && fclose(f) != 0 && rc == 0) {
        fprintf(stderr, "%s: cannot write '%s': %s\n", g_cmd, out_path, strerror(errno));
        rc = 1;
    }
    free(ids);
    free(logits);
    smoe_ctx_free(ctx);
    smoe_model_free(model);
    return rc;
}

/* ------------------------------------------------------------------ tokenize */

static const char *TOKENIZE_HELP =
    "usage: smoe tokenize -m MODEL -p TEXT [--bos]\n"
    "\n"
    "Print the token ids of TEXT on one line, separated by spaces. MODEL may be a full\n"
    "model or a vocabulary-only GGUF. Special-token text is not parsed.\n"
    "\n"
    "options:\n"
    "  -m, --model FILE   GGUF file with tokenizer metadata (required)\n"
    "  -p, --prompt TEXT  text to tokenize (required)\n"
    "      --bos          put the BOS token first\n"
    "      --pieces       also print each token's text, one per line, after the ids\n"
    "  -h, --help         show this help\n";

int cmd_tokenize(int argc, char **argv) {
    const char *model_path = NULL, *text = NULL;
    bool bos = false, pieces = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (is_help(a)) { fputs(TOKENIZE_HELP, stdout); return 0; }
        else if (!strcmp(a, "-m") || !strcmp(a, "--model")) model_path = opt_value(argc, argv, &i);
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) text = opt_value(argc, argv, &i);
        else if (!strcmp(a, "--bos")) bos = true;
        else if (!strcmp(a, "--pieces")) pieces = true;
        else die_usage("unknown option '%s'", a);
    }
    if (!model_path) die_usage("missing -m MODEL");
    if (!text) die_usage("missing -p TEXT");
    smoe_gguf *g = NULL;
    smoe_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    int rc = 1;
    if (smoe_gguf_open(model_path, &g)) { rc = fail("cannot open"); goto out; }
    if (smoe_tokenizer_from_gguf(g, &tok)) { rc = fail("cannot load tokenizer"); goto out; }
    size_t len = strlen(text);
    int64_t n = 0, cap = (int64_t)len + 2;
    ids = malloc(sizeof(int32_t) * (size_t)cap);
    if (!ids) { fprintf(stderr, "%s: out of memory\n", g_cmd); goto out; }
    if (smoe_tokenizer_encode(tok, text, len, bos, ids, cap, &n)) { rc = fail("cannot tokenize"); goto out; }
    for (int64_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
    putchar('\n');
    if (pieces)
        for (int64_t i = 0; i < n; i++) printf("%6d  '%s'\n", ids[i], smoe_tokenizer_token_text(tok, ids[i]));
    rc = 0;
out:
    free(ids);
    smoe_tokenizer_free(tok);
    smoe_gguf_free(g);
    return rc;
}

/* ------------------------------------------------------------------ info */

static const char *INFO_HELP =
    "usage: smoe info [--tensors|--no-tensors] FILE\n"
    "\n"
    "Print a GGUF file's header, metadata and tensor directory (name, type, shape in\n"
    "GGUF order, size). For a loadable model, also the hyper-parameters and the total\n"
    "and active (per token) parameter counts.\n"
    "\n"
    "options:\n"
    "      --no-tensors   skip the tensor directory\n"
    "  -h, --help         show this help\n";

int cmd_info(int argc, char **argv) {
    const char *path = NULL;
    bool tensors = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (is_help(a)) { fputs(INFO_HELP, stdout); return 0; }
        else if (!strcmp(a, "--no-tensors")) tensors = false;
        else if (!strcmp(a, "--tensors")) tensors = true;
        else if (a[0] == '-' && a[1]) die_usage("unknown option '%s'", a);
        else if (path) die_usage("more than one file given");
        else path = a;
    }
    if (!path) die_usage("missing FILE");
    smoe_gguf *g = NULL;
    if (smoe_gguf_open(path, &g)) return fail("cannot open");
    printf("file:        %s\n", path);
    printf("GGUF:        version %u, %zu bytes, alignment %zu\n", smoe_gguf_version(g), smoe_gguf_file_size(g),
           smoe_gguf_alignment(g));
    printf("metadata:    %" PRId64 " keys\n", smoe_gguf_n_kv(g));
    char buf[1024];
    for (int64_t i = 0; i < smoe_gguf_n_kv(g); i++) {
        smoe_gguf_kv_format(g, i, buf, sizeof buf);
        printf("  %-44s %s\n", smoe_gguf_key(g, i), buf);
    }
    printf("tensors:     %" PRId64 "\n", smoe_gguf_n_tensors(g));
    if (tensors) {
        for (int64_t i = 0; i < smoe_gguf_n_tensors(g); i++) {
            char shape[96];
            int pos = 0;
            for (int d = 0; d < smoe_gguf_tensor_ndim(g, i); d++)
                pos += snprintf(shape + pos, sizeof shape - (size_t)pos, "%s%" PRId64, d ? ", " : "",
                                smoe_gguf_tensor_ne(g, i, d));
            const char *tn = smoe_dtype_name(smoe_gguf_tensor_dtype(g, i));
            printf("  %-36s %-6s [%s]  %zu bytes\n", smoe_gguf_tensor_name(g, i), tn ? tn : "?", shape,
                   smoe_gguf_tensor_nbytes(g, i));
        }
    }
    smoe_gguf_free(g);

    smoe_model *m = NULL;
    if (smoe_model_load(path, NULL, &m) == SMOE_OK) {
        const smoe_model_info *f = smoe_model_get_info(m);
        printf("model:       %s, %d layers, embedding %d, heads %d (kv %d, head size %d), ffn %d, vocab %d, ctx %d\n",
               f->arch, f->n_layer, f->n_embd, f->n_head, f->n_head_kv, f->head_dim, f->n_ff, f->n_vocab,
               f->n_ctx_train);
        static const char *const ROUTER_DESC[SMOE_ROUTER_KIND_COUNT] = {
            "top-k then softmax", "softmax then top-k", "softmax, top-k, renormalised",
            "sigmoid with selection bias", "Yuan attention router, top-k then softmax"};
        if (f->n_expert > 0)
            printf("experts:     %d, %d used per token (router: %s)\n", f->n_expert, f->n_expert_used,
                   (unsigned)f->router < SMOE_ROUTER_KIND_COUNT ? ROUTER_DESC[f->router] : "?");
        printf("rope:        base %g, %d dims | rms eps %g\n", f->rope_freq_base, f->rope_dim, f->norm_eps);
        printf("parameters:  %.3f M total, %.3f M active per token, %.2f MiB of weights\n", f->n_params / 1e6,
               f->n_params_active / 1e6, f->weight_bytes / 1048576.0);
        smoe_model_free(m);
    } else {
        printf("model:       not loadable: %s\n", smoe_last_error());
    }
    return 0;
}

/* ------------------------------------------------------------------ main */

static const char *MAIN_HELP =
    "usage: smoe COMMAND [options]\n"
    "\n"
    "smoe runs sparse Mixture-of-Experts language models (Mixtral and its kind) from GGUF files.\n"
    "\n"
    "commands:\n"
    "  run        generate text from a prompt\n"
    "  logits     write the logits of a token id sequence (raw float32)\n"
    "  tokenize   print the token ids of a text\n"
    "  info       print a GGUF file's metadata and tensors\n"
    "  quantize   convert a model to another weight type mix (Q4_K_M, Q8_0, ...)\n"
    "  synth      write a random-weight Mixtral-layout model (benchmarks, tests)\n"
    "  bench      measure prompt and generation speed, like llama-bench\n"
    "  serve      OpenAI-compatible HTTP server (chat, completions, streaming)\n"
    "  tokenizer-train  learn a BPE vocabulary (SentencePiece style) from text files\n"
    "  prepare-data     tokenize a corpus into a token file with a train/validation split\n"
    "  train            train an MoE model from scratch on a token file\n"
    "  routes           record expert routing over texts: routes.json and an HTML report\n"
    "\n"
    "'smoe COMMAND --help' describes each command. 'smoe --version' prints the version.\n";

static const struct {
    const char *name;
    int (*fn)(int, char **);
} COMMANDS[] = {
    {"run", cmd_run},
    {"logits", cmd_logits},
    {"tokenize", cmd_tokenize},
    {"info", cmd_info},
    {"quantize", cmd_quantize},
    {"synth", cmd_synth},
    {"bench", cmd_bench},
    {"serve", cmd_serve},
    {"tokenizer-train", cmd_tokenizer_train},
    {"prepare-data", cmd_prepare_data},
    {"train", cmd_train},
    {"routes", cmd_routes},
};

int main(int argc, char **argv) {
    if (argc < 2) {
        fputs(MAIN_HELP, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (is_help(cmd) || !strcmp(cmd, "help")) {
        fputs(MAIN_HELP, stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        printf("smoe %s\n", SMOE_VERSION_STRING);
        return 0;
    }
    static char name[64];
    snprintf(name, sizeof name, "smoe %s", cmd);
    g_cmd = name;
    for (size_t i = 0; i < sizeof COMMANDS / sizeof *COMMANDS; i++)
        if (!strcmp(cmd, COMMANDS[i].name)) return COMMANDS[i].fn(argc - 1, argv + 1);
    g_cmd = "smoe";
    fprintf(stderr, "smoe: unknown command '%s'\n\n", cmd);
    fputs(MAIN_HELP, stderr);
    return 2;
}
