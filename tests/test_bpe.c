/*
 * test_bpe.c - tokenizer training (src/train/bpe.c, smoe_tokenizer_train):
 *   - hand-computed merge sequences on tiny corpora (ties, overlapping pairs, the
 *     character-class and special-token rules, the largest-vocabulary error);
 *   - determinism (same corpus -> same bytes, equal to the committed golden file) and the
 *     exact vocabulary size;
 *   - training and encoding agree: smoe's SPM encoder on the written vocabulary gives,
 *     for every training line, the segmentation the trainer ended with (the KJV slice and
 *     random small-alphabet corpora that are full of ambiguous splits);
 *   - byte fallback and decode(encode(s)) == s for valid UTF-8 (the limits: U+2581 reads
 *     as a space, and invalid UTF-8 decodes to U+FFFD, so neither round-trips);
 *   - llama.cpp agreement: ids that llama.cpp's llama-tokenize gave for the committed
 *     vocabulary (tests/data/bpe/README.md records the command:
 *       llama-tokenize -m kjv-head200-1024.gguf -p "$line" --ids --no-bos \
 *           --no-parse-special --no-escape --log-disable
 *     with llama.cpp e95dae18d, one call per line of kjv-head200-1024.inp);
 *   - argument and file errors.
 */
#include "smoe.h"
#include "testhelp.h"
#include "train/bpe.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MIN(a, b) ((a) < (b) ? (a) : (b))

static char g_tmp[256];

static const char *tmp_path(const char *name) {
    static char buf[4][512];
    static int k;
    k = (k + 1) & 3;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_tmp, name);
    return buf[k];
}

static smoe_tokenizer_train_params params(int32_t n) {
    smoe_tokenizer_train_params p = smoe_tokenizer_train_default_params();
    p.vocab_size = n;
    return p;
}

/* Piece text of id as a NUL-terminated string (static buffer). */
static const char *piece(const smoe_bpe *b, int32_t id) {
    static char buf[256];
    size_t n = 0;
    const char *s = smoe_bpe_piece(b, id, &n, NULL, NULL);
    if (!s || n >= sizeof buf) return "?";
    memcpy(buf, s, n);
    buf[n] = 0;
    return buf;
}

/* Write b to a temporary GGUF and load smoe's tokenizer from it. */
static smoe_tokenizer *load_written(const smoe_bpe *b, const char *name) {
    const char *path = tmp_path(name);
    smoe_gguf *g = NULL;
    smoe_tokenizer *t = NULL;
    CHECK_OK(smoe_bpe_write(b, path, NULL));
    CHECK_OK(smoe_gguf_open(path, &g));
    if (g) CHECK_OK(smoe_tokenizer_from_gguf(g, &t));
    smoe_gguf_free(g);
    return t;
}

static smoe_tokenizer *load_gguf(const char *path) {
    smoe_gguf *g = NULL;
    smoe_tokenizer *t = NULL;
    CHECK_OK(smoe_gguf_open(path, &g));
    if (g) CHECK_OK(smoe_tokenizer_from_gguf(g, &t));
    smoe_gguf_free(g);
    return t;
}

/* ------------------------------------------------------------------ hand-computed merges */

static void expect_pieces(const char *corpus, int32_t n_vocab, const char *const *want, int n_want,
                          const int64_t *counts) {
    smoe_tokenizer_train_params p = params(n_vocab);
    smoe_bpe *b = NULL;
    CHECK_OK(smoe_bpe_train_text(&p, corpus, strlen(corpus), &b));
    if (!b) return;
    CHECK(smoe_bpe_n_vocab(b) == n_vocab, "vocab %d", smoe_bpe_n_vocab(b));
    CHECK(smoe_bpe_stats(b)->n_merges == n_want, "%d merges, want %d", smoe_bpe_stats(b)->n_merges, n_want);
    for (int i = 0; i < n_want && i < smoe_bpe_stats(b)->n_merges; i++) {
        float sc = 1;
        int32_t ty = 0;
        const char *s = piece(b, SMOE_BPE_FIRST_PIECE + i);
        smoe_bpe_piece(b, SMOE_BPE_FIRST_PIECE + i, NULL, &sc, &ty);
        CHECK(strcmp(s, want[i]) == 0, "corpus %s: merge %d is '%s', want '%s'", corpus, i, s, want[i]);
        CHECK(sc == -(float)i && ty == 1, "merge %d: score %g type %d", i, sc, ty);
        if (counts) CHECK(smoe_bpe_merge_count(b, i) == counts[i], "merge %d count %lld, want %lld", i,
                          (long long)smoe_bpe_merge_count(b, i), (long long)counts[i]);
    }
    smoe_bpe_free(b);
    /* one more token than the corpus supports: a clear error naming the largest size */
    p.vocab_size = n_vocab + 1;
    CHECK(smoe_bpe_train_text(&p, corpus, strlen(corpus), &b) == SMOE_ERR_INVALID_ARG && !b, "vocab + 1 accepted");
    char want_msg[64];
    snprintf(want_msg, sizeof want_msg, "largest vocabulary it supports is %d", (int)n_vocab);
    CHECK(strstr(smoe_last_error(), want_msg) != NULL, "message: %s", smoe_last_error());
}

static void test_hand(void) {
    /* "▁ab" x3, "▁abc" x1. Base characters by count, ties by code point: a b ▁ (4 each),
     * c (1). Pairs: "ab" 4 and "▁a" 4 tie -> the byte-wise smaller "ab"; then "▁ab" 4
     * (both chunks); then "▁abc" 1. 259 + 4 + 3 = 266 tokens. */
    static const char *const W1[] = {"ab", "\342\226\201ab", "\342\226\201abc"};
    static const int64_t C1[] = {4, 4, 1};
    expect_pieces("ab ab ab\nabc\n", 266, W1, 3, C1);
    smoe_tokenizer_train_params p = params(266);
    smoe_bpe *b = NULL;
    CHECK_OK(smoe_bpe_train_text(&p, "ab ab ab\nabc\n", 13, &b));
    if (b) {
        static const char *const BASE[] = {"a", "b", "\xe2\x96\x81", "c"};
        for (int i = 0; i < 4; i++) {
            float sc;
            const char *s = piece(b, 262 + i);
            smoe_bpe_piece(b, 262 + i, NULL, &sc, NULL);
            CHECK(strcmp(s, BASE[i]) == 0 && sc == -(float)(3 + i), "base %d '%s' score %g", i, s, sc);
        }
        CHECK(strcmp(piece(b, 0), "<unk>") == 0 && strcmp(piece(b, 1), "<s>") == 0 && strcmp(piece(b, 2), "</s>") == 0,
              "specials");
        CHECK(strcmp(piece(b, 3), "<0x00>") == 0 && strcmp(piece(b, 258), "<0xFF>") == 0 &&
                  strcmp(piece(b, 3 + 0x41), "<0x41>") == 0, "byte tokens");
        int32_t ty[4];
        for (int i = 0; i < 3; i++) smoe_bpe_piece(b, i, NULL, NULL, &ty[i]);
        smoe_bpe_piece(b, 100, NULL, NULL, &ty[3]);
        CHECK(ty[0] == 2 && ty[1] == 3 && ty[2] == 3 && ty[3] == 6, "types %d %d %d %d", ty[0], ty[1], ty[2], ty[3]);
        smoe_bpe_free(b);
    }

    /* "▁aaa": "aa" occurs twice (overlapping) and wins with 2; the encoder merges the
     * leftmost: [▁ aa a]; then "aaa" and "▁aa" tie at 1 -> "aaa" (byte-wise smaller);
     * then "▁aaa". */
    static const char *const W2[] = {"aa", "aaa", "\342\226\201aaa"};
    static const int64_t C2[] = {2, 1, 1};
    expect_pieces("aaa\n", 264, W2, 3, C2);

    /* character classes: "▁a1▁a," is cut into "▁a" "1" "▁a" ",": only "▁a" can merge */
    static const char *const W3[] = {"\342\226\201a"};
    static const int64_t C3[] = {2};
    expect_pieces("a1 a,", 264, W3, 1, C3);

    /* special-token guard: "</" is a prefix of "</s>", so "▁</" comes from "▁<" + "/" */
    static const char *const W4[] = {"\342\226\201<", "\342\226\201</"};
    static const int64_t C4[] = {3, 3};
    expect_pieces("</ </ </\n", 264, W4, 2, C4);

    /* ties between whole lines and CRLF: "\r\n" ends a line like "\n" */
    static const char *const W5[] = {"ab", "\342\226\201ab", "\342\226\201abc"};
    expect_pieces("ab ab ab\r\nabc\r\n\r\n", 266, W5, 3, C1);

    /* longest piece: with max_piece_chars 2, "▁aaa" stops at pieces of 2 characters */
    p = params(261 + 1);
    p.max_piece_chars = 2;
    CHECK_OK(smoe_bpe_train_text(&p, "aaa\n", 4, &b));
    if (b) {
        CHECK(strcmp(piece(b, 259), "aa") == 0, "max 2 chars: %s", piece(b, 259));
        smoe_bpe_free(b);
    }
    p.vocab_size = 263;
    CHECK(smoe_bpe_train_text(&p, "aaa\n", 4, &b) == SMOE_ERR_INVALID_ARG, "a 3-character piece was made");

    /* coverage: a b ▁ cover 12/13 >= 0.9, so "c" is left to byte fallback */
    p = params(264);
    p.character_coverage = 0.9;
    CHECK_OK(smoe_bpe_train_text(&p, "ab ab ab\nabc\n", 13, &b));
    if (b) {
        const smoe_tokenizer_train_stats *s = smoe_bpe_stats(b);
        CHECK(s->n_base == 3 && s->n_rare_kinds == 1 && s->n_rare_chars == 1, "base %d rare %d/%lld", s->n_base,
              s->n_rare_kinds, (long long)s->n_rare_chars);
        CHECK(s->n_lines == 2 && s->n_chars == 13 && s->n_chunks == 2, "stats %lld %lld %lld", (long long)s->n_lines,
              (long long)s->n_chars, (long long)s->n_chunks);
        int32_t ids[16];
        int64_t n = 0;
        CHECK_OK(smoe_bpe_segment_line(b, "abc", 3, ids, 16, &n));
        CHECK(n == 2 && ids[0] == 260 && ids[1] == SMOE_BPE_BYTE0 + 'c', "segment of abc: %lld ids", (long long)n);
        smoe_bpe_free(b);
    }
}

/* ------------------------------------------------------------------ determinism and sizes */

static int g_read_calls, g_merge_calls, g_write_calls;
static int64_t g_last_merge_done, g_last_merge_total;

static void on_progress(void *user, const char *stage, int64_t done, int64_t total) {
    (void)user;
    if (!strcmp(stage, "read")) g_read_calls++;
    if (!strcmp(stage, "merge")) {
        g_merge_calls++;
        g_last_merge_done = done;
        g_last_merge_total = total;
    }
    if (!strcmp(stage, "write")) g_write_calls++;
}

static void test_determinism(void) {
    const char *corpus = th_data("bpe/kjv-head200.txt");
    smoe_tokenizer_train_params p = params(1024);
    p.name = "kjv-head200-1024";
    p.progress = on_progress;
    smoe_tokenizer_train_stats s;
    const char *paths[1] = {corpus};
    CHECK_OK(smoe_tokenizer_train(&p, paths, 1, tmp_path("a.gguf"), &s));
    CHECK(g_read_calls >= 1 && g_merge_calls >= 1 && g_write_calls == 1, "progress calls %d %d %d", g_read_calls,
          g_merge_calls, g_write_calls);
    CHECK(g_last_merge_done == g_last_merge_total && g_last_merge_total == s.n_merges, "last merge progress %lld/%lld",
          (long long)g_last_merge_done, (long long)g_last_merge_total);
    CHECK(s.n_lines == 200 && s.n_merges + s.n_base + 259 == 1024, "stats: %lld lines, %d merges, %d base",
          (long long)s.n_lines, s.n_merges, s.n_base);
    p.progress = NULL;
    CHECK_OK(smoe_tokenizer_train(&p, paths, 1, tmp_path("b.gguf"), NULL));
    size_t na = 0, nb = 0, ng = 0;
    char *a = th_read_file(tmp_path("a.gguf"), &na), *b = th_read_file(tmp_path("b.gguf"), &nb);
    char *g = th_read_file(th_data("bpe/kjv-head200-1024.gguf"), &ng);
    CHECK(a && b && na == nb && memcmp(a, b, na) == 0, "two runs differ");
    CHECK(a && g && na == ng && memcmp(a, g, na) == 0,
          "training differs from the committed tests/data/bpe/kjv-head200-1024.gguf (remake the golden files if "
          "the change is intended: tests/data/bpe/README.md)");
    free(a);
    free(b);
    free(g);

    /* the corpus given as two files (and the same text in memory) trains the same */
    size_t nc = 0;
    char *text = th_read_file(corpus, &nc);
    if (text) {
        char *cut = text + nc / 2;
        while (*cut != '\n') cut++;
        FILE *f1 = fopen(tmp_path("part1.txt"), "wb"), *f2 = fopen(tmp_path("part2.txt"), "wb");
        if (f1 && f2) {
            fwrite(text, 1, (size_t)(cut + 1 - text), f1);
            fwrite(cut + 1, 1, nc - (size_t)(cut + 1 - text), f2);
        }
        if (f1) fclose(f1);
        if (f2) fclose(f2);
        const char *two[2] = {tmp_path("part1.txt"), tmp_path("part2.txt")};
        CHECK_OK(smoe_tokenizer_train(&p, two, 2, tmp_path("c.gguf"), NULL));
        smoe_bpe *mb = NULL;
        CHECK_OK(smoe_bpe_train_text(&p, text, nc, &mb));
        if (mb) CHECK_OK(smoe_bpe_write(mb, tmp_path("d.gguf"), p.name));
        smoe_bpe_free(mb);
        size_t n3 = 0, n4 = 0;
        char *c3 = th_read_file(tmp_path("c.gguf"), &n3), *c4 = th_read_file(tmp_path("d.gguf"), &n4);
        char *a2 = th_read_file(tmp_path("a.gguf"), &na);
        CHECK(c3 && a2 && n3 == na && memcmp(c3, a2, na) == 0, "two files train differently from one");
        CHECK(c4 && a2 && n4 == na && memcmp(c4, a2, na) == 0, "memory trains differently from a file");
        free(c3);
        free(c4);
        free(a2);
        free(text);
    }

    /* exact sizes, unique texts, loadable */
    static const int32_t SIZES[] = {260, 300, 512, 1024, 1665};
    for (size_t k = 0; k < sizeof SIZES / sizeof *SIZES; k++) {
        smoe_tokenizer_train_params q = params(SIZES[k]);
        smoe_bpe *mb = NULL;
        CHECK_OK(smoe_bpe_train_files(&q, paths, 1, &mb));
        if (!mb) continue;
        CHECK(smoe_bpe_n_vocab(mb) == SIZES[k], "vocab %d, want %d", smoe_bpe_n_vocab(mb), SIZES[k]);
        smoe_tokenizer *t = load_written(mb, "size.gguf");
        if (t) {
            CHECK(smoe_tokenizer_n_vocab(t) == SIZES[k], "loaded vocab %d", smoe_tokenizer_n_vocab(t));
            CHECK(smoe_tokenizer_bos(t) == 1 && smoe_tokenizer_eos(t) == 2 && smoe_tokenizer_add_bos(t), "bos/eos");
            /* token texts are unique */
            int dup = 0;
            const char **v = malloc(sizeof *v * (size_t)SIZES[k]);
            for (int32_t i = 0; v && i < SIZES[k]; i++) v[i] = smoe_tokenizer_token_text(t, i);
            for (int32_t i = 0; v && i < SIZES[k]; i++)
                for (int32_t j = i + 1; j < SIZES[k]; j++) dup += strcmp(v[i], v[j]) == 0;
            CHECK(dup == 0, "%d duplicate token texts at size %d", dup, SIZES[k]);
            free(v);
        }
        smoe_tokenizer_free(t);
        smoe_bpe_free(mb);
    }
    smoe_tokenizer_train_params q = params(1666);
    smoe_bpe *mb = NULL;
    CHECK(smoe_bpe_train_files(&q, paths, 1, &mb) == SMOE_ERR_INVALID_ARG, "1666 tokens from the slice");
    CHECK(strstr(smoe_last_error(), "is 1665") != NULL, "message: %s", smoe_last_error());
}

/* ------------------------------------------------------------------ training == encoding */

/* For every line of text: the trainer's final segmentation equals smoe's encoder on the
 * written vocabulary. Returns the number of lines that differ. */
static int compare_lines(const smoe_bpe *b, const smoe_tokenizer *t, const char *text, size_t len, int *n_lines) {
    int bad = 0;
    int32_t *x = malloc(sizeof *x * (3 * len + 8)), *y = malloc(sizeof *y * (3 * len + 8));
    for (size_t i = 0; x && y && i < len;) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t e = nl ? (size_t)(nl - text) : len, l = e - i;
        if (l) {
            int64_t nx = 0, ny = 0;
            smoe_status s1 = smoe_bpe_segment_line(b, text + i, l, x, (int64_t)(3 * len + 8), &nx);
            smoe_status s2 = smoe_tokenizer_encode(t, text + i, l, false, y, (int64_t)(3 * len + 8), &ny);
            if (s1 || s2 || nx != ny || memcmp(x, y, sizeof *x * (size_t)nx) != 0) {
                if (bad < 3) {
                    fprintf(stderr, "  line \"%.*s\": trainer", (int)MIN(l, 80), text + i);
                    for (int64_t k = 0; k < nx; k++) fprintf(stderr, " %d", x[k]);
                    fprintf(stderr, " | encoder");
                    for (int64_t k = 0; k < ny; k++) fprintf(stderr, " %d", y[k]);
                    fprintf(stderr, " (%d %d)\n", (int)s1, (int)s2);
                }
                bad++;
            }
            (*n_lines)++;
        }
        i = e + 1;
    }
    free(x);
    free(y);
    return bad;
}

static void test_agreement(void) {
    size_t len = 0;
    char *text = th_read_file(th_data("bpe/kjv-head200.txt"), &len);
    CHECK(text != NULL, "corpus");
    if (!text) return;
    static const int32_t SIZES[] = {300, 1024, 1665};
    for (size_t k = 0; k < sizeof SIZES / sizeof *SIZES; k++) {
        smoe_tokenizer_train_params p = params(SIZES[k]);
        smoe_bpe *b = NULL;
        CHECK_OK(smoe_bpe_train_text(&p, text, len, &b));
        smoe_tokenizer *t = b ? load_written(b, "agree.gguf") : NULL;
        if (t) {
            int n = 0, bad = compare_lines(b, t, text, len, &n);
            CHECK(bad == 0 && n == 200, "vocab %d: %d of %d lines segment differently", SIZES[k], bad, n);
        }
        smoe_tokenizer_free(t);
        smoe_bpe_free(b);
    }
    free(text);

    /* random corpora over a tiny alphabet: every word is a string of a, b, c, with
     * punctuation and digits between; the same strings split many ways */
    unsigned long long rng = 12345;
    int total_bad = 0, total_lines = 0, trained = 0;
    for (int round = 0; round < 40; round++) {
        char buf[4096];
        size_t n = 0;
        int lines = 5 + (int)(th_rng_next(&rng) % 20);
        for (int l = 0; l < lines && n < sizeof buf - 64; l++) {
            int words = 1 + (int)(th_rng_next(&rng) % 8);
            for (int w = 0; w < words && n < sizeof buf - 64; w++) {
                if (w) buf[n++] = ' ';
                int wl = 1 + (int)(th_rng_next(&rng) % 9);
                for (int c = 0; c < wl; c++) {
                    unsigned r = (unsigned)(th_rng_next(&rng) % 16);
                    buf[n++] = r < 6 ? 'a' : r < 10 ? 'b' : r < 13 ? 'c' : r < 14 ? '1' : r < 15 ? ',' : 'a';
                }
            }
            buf[n++] = '\n';
        }
        /* the largest vocabulary this corpus supports, from the error message */
        smoe_tokenizer_train_params p = params(1 << 20);
        p.max_piece_chars = 2 + round % 15;
        smoe_bpe *b = NULL;
        if (smoe_bpe_train_text(&p, buf, n, &b) == SMOE_OK) continue;
        const char *m = strstr(smoe_last_error(), "supports is ");
        if (!m) continue;
        int most = atoi(m + 12);
        p.vocab_size = round % 2 ? most : 259 + (most - 259) / 2 + 1;
        if (p.vocab_size < 260) continue;
        CHECK_OK(smoe_bpe_train_text(&p, buf, n, &b));
        smoe_tokenizer *t = b ? load_written(b, "rand.gguf") : NULL;
        if (t) total_bad += compare_lines(b, t, buf, n, &total_lines), trained++;
        smoe_tokenizer_free(t);
        smoe_bpe_free(b);
    }
    CHECK(trained >= 30 && total_bad == 0, "random corpora: %d trained, %d of %d lines differ", trained, total_bad,
          total_lines);
}

/* ------------------------------------------------------------------ byte fallback, round trip */

static int roundtrip(const smoe_tokenizer *t, const char *s, size_t n, int *n_byte_tokens) {
    int64_t cap = 3 * (int64_t)n + 8, m = 0;
    int32_t *ids = malloc(sizeof *ids * (size_t)cap);
    char *out = malloc(4 * n + 16);
    int ok = 0;
    if (ids && out && smoe_tokenizer_encode(t, s, n, false, ids, cap, &m) == SMOE_OK) {
        for (int64_t i = 0; i < m; i++) *n_byte_tokens += ids[i] >= SMOE_BPE_BYTE0 && ids[i] < SMOE_BPE_FIRST_PIECE;
        int64_t k = smoe_tokenizer_decode(t, ids, m, out, 4 * n + 16);
        ok = k == (int64_t)n && memcmp(out, s, n) == 0;
    }
    free(ids);
    free(out);
    return ok;
}

static size_t put_utf8(uint32_t cp, char *o) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | cp >> 6); o[1] = (char)(0x80 | (cp & 63)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12); o[1] = (char)(0x80 | ((cp >> 6) & 63)); o[2] = (char)(0x80 | (cp & 63));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18); o[1] = (char)(0x80 | ((cp >> 12) & 63));
    o[2] = (char)(0x80 | ((cp >> 6) & 63)); o[3] = (char)(0x80 | (cp & 63));
    return 4;
}

static void test_roundtrip(void) {
    smoe_tokenizer *t = load_gguf(th_data("bpe/kjv-head200-1024.gguf"));
    if (!t) return;
    int nb = 0;
    const char *s = "Der Schneemann \xe2\x98\x83 ist na\xc3\xafv, \xe6\x9d\xb1\xe4\xba\xac! (Q) <s> \xf0\x9f\x98\x80";
    CHECK(roundtrip(t, s, strlen(s), &nb), "round trip of '%s'", s);
    CHECK(nb >= 4 + 3 + 6 + 4, "only %d byte tokens for the characters outside the vocabulary", nb);
    /* a character outside the vocabulary becomes exactly its UTF-8 bytes */
    int32_t ids[16];
    int64_t n = 0;
    CHECK_OK(smoe_tokenizer_encode(t, "\xe2\x98\x83", 3, false, ids, 16, &n));
    CHECK(n == 4 && ids[1] == SMOE_BPE_BYTE0 + 0xE2 && ids[2] == SMOE_BPE_BYTE0 + 0x98 &&
              ids[3] == SMOE_BPE_BYTE0 + 0x83, "snowman: %lld ids", (long long)n);
    static const char *FIXED[] = {"", " ", "  x  ", "a", "\t\r\x01", "In the beginning", " leading", "trailing ",
                                  "x\ny\n", "\xc3\xa9\xc3\xa9\xc3\xa9"};
    for (size_t i = 0; i < sizeof FIXED / sizeof *FIXED; i++)
        CHECK(roundtrip(t, FIXED[i], strlen(FIXED[i]), &nb), "round trip of '%s'", FIXED[i]);
    CHECK(roundtrip(t, "a\0b", 3, &nb), "round trip with a NUL byte");

    /* random valid UTF-8, U+2581 excluded (it decodes as a space) */
    unsigned long long rng = 99;
    int bad = 0;
    for (int r = 0; r < 500; r++) {
        char buf[512];
        size_t k = 0;
        int len = (int)(th_rng_next(&rng) % 40);
        for (int j = 0; j < len; j++) {
            uint64_t x = th_rng_next(&rng);
            uint32_t cp;
            switch (x % 5) {
            case 0: cp = (uint32_t)(x >> 8) % 0x80; break;                /* ASCII, controls included */
            case 1: cp = 0x20 + (uint32_t)(x >> 8) % 0x5F; break;         /* printable ASCII */
            case 2: cp = 0x80 + (uint32_t)(x >> 8) % 0x780; break;        /* 2-byte */
            case 3: cp = 0x800 + (uint32_t)(x >> 8) % 0xF800; break;      /* 3-byte */
            default: cp = 0x10000 + (uint32_t)(x >> 8) % 0x100000; break; /* 4-byte */
            }
            if ((cp >= 0xD800 && cp < 0xE000) || cp == 0x2581) cp = 'z';
            k += put_utf8(cp, buf + k);
        }
        bad += !roundtrip(t, buf, k, &nb);
    }
    CHECK(bad == 0, "%d of 500 random UTF-8 strings do not round-trip", bad);
    /* documented limits: U+2581 comes back as a space, invalid UTF-8 as U+FFFD */
    char out[64];
    CHECK_OK(smoe_tokenizer_encode(t, "a\xe2\x96\x81" "b", 5, false, ids, 16, &n));
    int64_t k = smoe_tokenizer_decode(t, ids, n, out, sizeof out);
    CHECK(k == 3 && memcmp(out, "a b", 3) == 0, "U+2581 decodes to '%.*s'", (int)(k > 0 ? k : 0), out);
    CHECK_OK(smoe_tokenizer_encode(t, "a\xff", 2, false, ids, 16, &n));
    k = smoe_tokenizer_decode(t, ids, n, out, sizeof out);
    CHECK(k == 4 && memcmp(out, "a\xef\xbf\xbd", 4) == 0, "invalid byte decodes to %lld bytes", (long long)k);
    smoe_tokenizer_free(t);
}

/* ------------------------------------------------------------------ llama.cpp golden */

static void test_llama_cpp(void) {
    smoe_tokenizer *t = load_gguf(th_data("bpe/kjv-head200-1024.gguf"));
    size_t ni = 0, no = 0;
    char *inp = th_read_file(th_data("bpe/kjv-head200-1024.inp"), &ni);
    char *outp = th_read_file(th_data("bpe/kjv-head200-1024.out"), &no);
    CHECK(t && inp && outp, "golden files");
    int lines = 0, same = 0;
    char *ip = inp, *op = outp;
    while (t && inp && outp && *ip && *op) {
        char *ie = strchr(ip, '\n'), *oe = strchr(op, '\n');
        if (!ie || !oe) break;
        *oe = 0;
        int want[512];
        int nw = th_parse_ints(op, want, 512);
        int32_t got[512];
        int64_t ng = 0;
        smoe_status st = smoe_tokenizer_encode(t, ip, (size_t)(ie - ip), false, got, 512, &ng);
        bool ok = st == SMOE_OK && ng == nw;
        for (int i = 0; ok && i < nw; i++) ok = got[i] == want[i];
        if (!ok) fprintf(stderr, "  llama.cpp line %d \"%.*s\" differs\n", lines + 1, (int)MIN(ie - ip, 60), ip);
        same += ok;
        int nb = 0; /* U+2581 decodes as a space: that line cannot round-trip */
        *ie = 0;
        CHECK(strstr(ip, "\xe2\x96\x81") || roundtrip(t, ip, (size_t)(ie - ip), &nb),
              "golden line %d does not round-trip", lines + 1);
        lines++;
        ip = ie + 1;
        op = oe + 1;
    }
    CHECK(lines == 18 && same == lines, "llama.cpp ids: %d of %d lines agree", same, lines);
    free(inp);
    free(outp);
    smoe_tokenizer_free(t);
}

/* ------------------------------------------------------------------ errors */

static void test_errors(void) {
    smoe_bpe *b = NULL;
    smoe_tokenizer_train_params p = params(259);
    CHECK(smoe_bpe_train_text(&p, "abc", 3, &b) == SMOE_ERR_INVALID_ARG && !b, "vocab 259");
    p = params(300);
    p.character_coverage = 0;
    CHECK(smoe_bpe_train_text(&p, "abc", 3, &b) == SMOE_ERR_INVALID_ARG, "coverage 0");
    p.character_coverage = 1.5;
    CHECK(smoe_bpe_train_text(&p, "abc", 3, &b) == SMOE_ERR_INVALID_ARG, "coverage 1.5");
    p = params(300);
    p.max_piece_chars = 1;
    CHECK(smoe_bpe_train_text(&p, "abc", 3, &b) == SMOE_ERR_INVALID_ARG, "max piece 1");
    p = params(300);
    CHECK(smoe_bpe_train_text(&p, "\n\r\n\n", 4, &b) == SMOE_ERR_INVALID_ARG && !b, "empty corpus");
    CHECK(strstr(smoe_last_error(), "no text") != NULL, "message: %s", smoe_last_error());
    CHECK(smoe_bpe_train_text(NULL, "abc", 3, &b) == SMOE_ERR_INVALID_ARG, "NULL params");
    const char *missing[1] = {tmp_path("does-not-exist.txt")};
    CHECK(smoe_tokenizer_train(&p, missing, 1, tmp_path("x.gguf"), NULL) == SMOE_ERR_IO, "missing corpus");
    CHECK(strstr(smoe_last_error(), "does-not-exist.txt") != NULL, "message: %s", smoe_last_error());
    CHECK(access(tmp_path("x.gguf"), F_OK) != 0, "an output was written after a failure");
    CHECK(smoe_tokenizer_train(&p, missing, 0, tmp_path("x.gguf"), NULL) == SMOE_ERR_INVALID_ARG, "no paths");
    const char *ok[1] = {th_data("bpe/kjv-head200.txt")};
    CHECK(smoe_tokenizer_train(&p, ok, 1, tmp_path("no/such/dir/x.gguf"), NULL) == SMOE_ERR_IO, "unwritable output");
    /* a line over 4096 bytes without a space is not trained on, but still counted */
    char *big = malloc(5000);
    if (big) {
        memset(big, 'q', 4999);
        big[4999] = '\n';
        p = params(262);
        CHECK(smoe_bpe_train_text(&p, big, 5000, &b) == SMOE_ERR_INVALID_ARG, "long chunk trained");
        free(big);
    }
    p = params(264);
    CHECK_OK(smoe_bpe_train_text(&p, "ab\n", 3, &b));
    if (b) {
        int32_t ids[8];
        int64_t n = 0;
        CHECK(smoe_bpe_segment_line(b, "zz", 2, ids, 8, &n) == SMOE_ERR_NOT_FOUND, "unseen chunk");
        CHECK(smoe_bpe_segment_line(b, "ab", 2, ids, 0, &n) == SMOE_ERR_RANGE && n == 1, "cap 0: %lld", (long long)n);
        CHECK_OK(smoe_bpe_segment_line(b, "ab", 2, ids, 8, &n));
        CHECK(n == 1 && ids[0] == 260, "segment of ab: %lld ids", (long long)n);
        CHECK(smoe_bpe_piece(b, -1, NULL, NULL, NULL) == NULL && smoe_bpe_piece(b, 264, NULL, NULL, NULL) == NULL,
              "piece out of range");
        CHECK(smoe_bpe_merge_count(b, 5) == -1, "merge count out of range");
        smoe_bpe_free(b);
    }
}

int main(void) {
    snprintf(g_tmp, sizeof g_tmp, "/tmp/smoe_test_bpe_XXXXXX");
    if (!mkdtemp(g_tmp)) {
        perror("mkdtemp");
        return 1;
    }
    test_hand();
    test_determinism();
    test_agreement();
    test_roundtrip();
    test_llama_cpp();
    test_errors();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_tmp);
    return TEST_REPORT();
}
