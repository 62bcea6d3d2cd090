/*
 * cmd_tokenizer_train.c - `smoe tokenizer-train`: learn a SentencePiece-style BPE
 * vocabulary with byte fallback from text files and write it as a metadata-only GGUF
 * (src/train/bpe.c does the work). Prints progress and a summary to stderr.
 *
 * What it does not do: no unigram model, no normalisation, no user-defined symbols.
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *TOKTRAIN_HELP =
    "usage: smoe tokenizer-train --vocab N -o TOK.gguf [options] CORPUS...\n"
    "\n"
    "Learn a SentencePiece-style BPE vocabulary of exactly N tokens from text files (UTF-8,\n"
    "one sentence or document per line; '-' reads stdin) and write it as a GGUF file with\n"
    "only tokenizer metadata, loadable by `smoe tokenize -m` and llama.cpp. Tokens: <unk>,\n"
    "<s>, </s>, the 256 byte tokens <0x00>..<0xFF> (byte fallback), the merged pieces in\n"
    "merge order, then the single characters covering the corpus. Each line gets a leading\n"
    "space (\"▁\"), as the encoder adds one. Same corpus and options give the same file.\n"
    "\n"
    "options:\n"
    "      --vocab N            vocabulary size, >= 260 (default 4096)\n"
    "  -o, --output FILE        GGUF file to write (required)\n"
    "      --coverage F         fraction of character occurrences that single-character\n"
    "                           pieces cover, most frequent first; rarer characters use\n"
    "                           byte tokens (default 0.9995)\n"
    "      --max-piece-chars N  longest piece in characters, 2..64 (default 16)\n"
    "      --name NAME          general.name (default smoe-bpe)\n"
    "  -q, --quiet              no progress or summary\n"
    "  -h, --help               show this help\n";

typedef struct progress {
    bool tty;
    double t0, last;
    const char *stage;
} progress;

static void on_progress(void *user, const char *stage, int64_t done, int64_t total) {
    progress *pr = user;
    double t = now_s();
    bool last = total > 0 && done >= total;
    if (pr->tty) {
        if (!last && t - pr->last < 0.1 && pr->stage == stage) return;
        if (!strcmp(stage, "read"))
            fprintf(stderr, "\r%s: reading %.1f / %.1f MB   ", g_cmd, done / 1e6, total / 1e6);
        else if (!strcmp(stage, "merge"))
            fprintf(stderr, "\r%s: merging %lld / %lld       ", g_cmd, (long long)done, (long long)total);
        else
            fprintf(stderr, "\r%s: writing                        ", g_cmd);
    } else if (pr->stage != stage && strcmp(stage, "write") != 0) {
        fprintf(stderr, "%s: %s (%.1f s)\n", g_cmd, !strcmp(stage, "read") ? "reading" : "merging", t - pr->t0);
    }
    pr->stage = stage;
    pr->last = t;
}

int cmd_tokenizer_train(int argc, char **argv) {
    smoe_tokenizer_train_params p = smoe_tokenizer_train_default_params();
    const char *out = NULL;
    bool quiet = false;
    const char **paths = calloc((size_t)argc, sizeof *paths);
    int n_paths = 0;
    if (!paths) return fail("out of memory");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (is_help(a)) { fputs(TOKTRAIN_HELP, stdout); free(paths); return 0; }
        else if (!strcmp(a, "--vocab")) p.vocab_size = (int32_t)parse_long(a, opt_value(argc, argv, &i), 260, 1 << 24);
        else if (!strcmp(a, "-o") || !strcmp(a, "--output")) out = opt_value(argc, argv, &i);
        else if (!strcmp(a, "--coverage")) p.character_coverage = parse_float(a, opt_value(argc, argv, &i), 1e-6, 1);
        else if (!strcmp(a, "--max-piece-chars")) p.max_piece_chars = (int32_t)parse_long(a, opt_value(argc, argv, &i), 2, 64);
        else if (!strcmp(a, "--name")) p.name = opt_value(argc, argv, &i);
        else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) quiet = true;
        else if (a[0] == '-' && a[1]) die_usage("unknown option '%s'", a);
        else paths[n_paths++] = a;
    }
    if (!out) die_usage("missing -o TOK.gguf");
    if (n_paths == 0) die_usage("missing CORPUS (one or more text files, '-' = stdin)");
    progress pr = {isatty(2) == 1, now_s(), 0, NULL};
    if (!quiet) {
        p.progress = on_progress;
        p.progress_user = &pr;
    }
    smoe_tokenizer_train_stats s;
    smoe_status st = smoe_tokenizer_train(&p, paths, n_paths, out, &s);
    free(paths);
    if (pr.tty && pr.stage) fputc('\n', stderr);
    if (st) return fail("cannot train the tokenizer");
    if (!quiet) {
        fprintf(stderr, "%s: %lld lines, %.2f MB, %lld characters, %lld distinct words\n", g_cmd,
                (long long)s.n_lines, s.n_bytes / 1e6, (long long)s.n_chars, (long long)s.n_chunks);
        fprintf(stderr, "%s: %d single characters, %d rare ones (%lld occurrences) left to byte fallback\n", g_cmd,
                s.n_base, s.n_rare_kinds, (long long)s.n_rare_chars);
        if (s.n_long_chunks)
            fprintf(stderr, "%s: %lld words over 4096 bytes were not trained on\n", g_cmd, (long long)s.n_long_chunks);
        fprintf(stderr, "%s: %d merges -> %d tokens in %s (%.2f s)\n", g_cmd, s.n_merges, p.vocab_size, out,
                now_s() - pr.t0);
    }
    return 0;
}
