/*
 * cmd_prepare_data.c - `smoe prepare-data`: tokenize a text corpus once into a token file
 * (src/train/data.c) with a training and a validation split, for `smoe train`. Reads the
 * file back afterwards (every check of smoe_data_open) and prints a summary to stderr.
 *
 * What it does not do: no shuffling (batches are drawn at random positions), no
 * multi-line documents (each line is one).
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *PREP_HELP =
    "usage: smoe prepare-data --tokenizer TOK.gguf -o DATA.bin [options] CORPUS...\n"
    "\n"
    "Tokenize every non-empty line of the text files (UTF-8; '-' reads stdin) and write a\n"
    "token file for `smoe train`: a 64-byte header (counts, checksum, tokenizer fingerprint)\n"
    "then uint16 tokens (uint32 for vocabularies over 65536), the training lines first, then\n"
    "the validation lines. Each line is BOS + its tokens + EOS by default. A line goes to\n"
    "validation when a seeded hash of its text falls below the fraction, so the split is\n"
    "deterministic and equal lines land together. The file is written atomically.\n"
    "\n"
    "options:\n"
    "  -m, --tokenizer FILE     GGUF with tokenizer metadata: `smoe tokenizer-train` output\n"
    "                           or a model (required)\n"
    "  -o, --output FILE        token file to write (required)\n"
    "      --val-fraction F     share of lines for validation, in [0, 1) (default 0.05)\n"
    "      --seed S             seed of the split hash (default 0)\n"
    "      --no-bos             no BOS before each line\n"
    "      --no-eos             no EOS after each line\n"
    "  -t, --threads N          encoding threads (default: physical cores; the output\n"
    "                           does not depend on it)\n"
    "  -q, --quiet              no progress or summary\n"
    "  -h, --help               show this help\n";

typedef struct progress {
    bool tty;
    double t0, last;
    bool shown;
} progress;

static void on_progress(void *user, const char *stage, int64_t done, int64_t total) {
    progress *pr = user;
    double t = now_s();
    if (!pr->tty || strcmp(stage, "read") != 0) return;
    if (t - pr->last < 0.1 && !(total > 0 && done >= total)) return;
    fprintf(stderr, "\r%s: tokenizing %.1f / %.1f MB (%.1f s)   ", g_cmd, done / 1e6, total / 1e6, t - pr->t0);
    pr->last = t;
    pr->shown = true;
}

int cmd_prepare_data(int argc, char **argv) {
    smoe_data_prepare_params p = smoe_data_prepare_default_params();
    const char *tok_path = NULL, *out = NULL;
    bool quiet = false;
    const char **paths = calloc((size_t)argc, sizeof *paths);
    int n_paths = 0;
    if (!paths) return fail("out of memory");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (is_help(a)) { fputs(PREP_HELP, stdout); free(paths); return 0; }
        else if (!strcmp(a, "-m") || !strcmp(a, "--tokenizer")) tok_path = opt_value(argc, argv, &i);
        else if (!strcmp(a, "-o") || !strcmp(a, "--output")) out = opt_value(argc, argv, &i);
        else if (!strcmp(a, "--val-fraction")) p.val_fraction = parse_float(a, opt_value(argc, argv, &i), 0, 0.999999);
        else if (!strcmp(a, "--seed")) p.split_seed = parse_u64(a, opt_value(argc, argv, &i));
        else if (!strcmp(a, "--no-bos")) p.add_bos = false;
        else if (!strcmp(a, "--no-eos")) p.add_eos = false;
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) p.n_threads = (int32_t)parse_long(a, opt_value(argc, argv, &i), 1, 64);
        else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) quiet = true;
        else if (a[0] == '-' && a[1]) die_usage("unknown option '%s'", a);
        else paths[n_paths++] = a;
    }
    if (!tok_path) die_usage("missing --tokenizer TOK.gguf");
    if (!out) die_usage("missing -o DATA.bin");
    if (n_paths == 0) die_usage("missing CORPUS (one or more text files, '-' = stdin)");

    smoe_gguf *g = NULL;
    smoe_tokenizer *tok = NULL;
    smoe_data *d = NULL;
    int rc = 1;
    progress pr = {isatty(2) == 1, now_s(), 0, false};
    if (smoe_gguf_open(tok_path, &g)) { rc = fail("cannot open the tokenizer"); goto out; }
    if (smoe_tokenizer_from_gguf(g, &tok)) { rc = fail("cannot load the tokenizer"); goto out; }
    if (!quiet) {
        p.progress = on_progress;
        p.progress_user = &pr;
    }
    smoe_data_info in;
    smoe_status st = smoe_data_prepare(&p, tok, paths, n_paths, out, &in);
    if (pr.shown) fputc('\n', stderr);
    if (st) { rc = fail("cannot prepare the data"); goto out; }
    double t1 = now_s();
    if (smoe_data_open(out, &d)) { rc = fail("the file written does not read back"); goto out; }
    if (!quiet) {
        fprintf(stderr, "%s: %llu tokens (%u bytes each, vocabulary %d): %llu train, %llu validation (%.2f%%)\n",
                g_cmd, (unsigned long long)in.n_tokens, in.token_bytes, in.n_vocab, (unsigned long long)in.n_train,
                (unsigned long long)in.n_val, in.n_tokens ? 100.0 * (double)in.n_val / (double)in.n_tokens : 0.0);
        fprintf(stderr, "%s: wrote %s in %.2f s, read back and checked in %.2f s (checksum %016llx)\n", g_cmd, out,
                t1 - pr.t0, now_s() - t1, (unsigned long long)in.checksum);
    }
    rc = 0;
out:
    free(paths);
    smoe_data_free(d);
    smoe_tokenizer_free(tok);
    smoe_gguf_free(g);
    return rc;
}
