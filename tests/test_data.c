/*
 * test_data.c - token files (src/train/data.c): smoe_data_prepare against an independent
 * reading of the format and split rule of docs/training.md, determinism (thread counts,
 * repeated runs, file order), the batch sampler (same seed and step -> same batch across
 * handles, as a resumed run; windows and targets match the file; known answers of the
 * RNG; uniform starts), hostile files (every truncation, bad fields, damaged tokens, ids
 * out of range, random corruption: clean errors, never a crash) and preparation errors.
 */
#include "smoe.h"
#include "testhelp.h"
#include "train/data.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char g_tmp[256];
static smoe_tokenizer *g_tok;

static const char *tmp_path(const char *name) {
    static char buf[4][512];
    static int k;
    k = (k + 1) & 3;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_tmp, name);
    return buf[k];
}

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL, "cannot create %s", path);
    if (!f) return;
    CHECK(fwrite(data, 1, n, f) == n, "short write");
    fclose(f);
}

/* ------------------------------------------------------------------ an independent reading of the spec */

static uint64_t spec_fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h;
}

static uint64_t spec_mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static bool spec_is_val(const char *line, size_t len, uint64_t seed, double frac) {
    uint64_t u = spec_mix(spec_fnv(14695981039346656037ull, line, len) ^ seed) >> 11;
    return (double)u / 9007199254740992.0 < frac;
}

static uint64_t rd64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static uint32_t rd32(const unsigned char *p) { return (uint32_t)rd64((const unsigned char[8]){p[0], p[1], p[2], p[3]}); }

static void wr32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> 8 * i);
}

static void wr64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> 8 * i);
}

/* A token file made by hand: n ids of tb bytes. */
static unsigned char *craft(uint32_t tb, uint32_t vocab, uint32_t flags, const uint32_t *ids, uint64_t n,
                            uint64_t n_train, size_t *size) {
    *size = 64 + (size_t)n * tb;
    unsigned char *b = calloc(1, *size);
    memcpy(b, "SMOETOKS", 8);
    wr32(b + 8, 1);
    wr32(b + 12, tb);
    wr32(b + 16, vocab);
    wr32(b + 20, flags);
    wr64(b + 24, n);
    wr64(b + 32, n_train);
    for (uint64_t i = 0; i < n; i++)
        for (uint32_t j = 0; j < tb; j++) b[64 + i * tb + j] = (unsigned char)(ids[i] >> 8 * j);
    wr64(b + 40, spec_fnv(14695981039346656037ull, b + 64, (size_t)n * tb));
    wr64(b + 48, 0x1234);
    wr64(b + 56, 99);
    return b;
}

/* Fix the checksum of a file whose tokens were edited. */
static void reseal(unsigned char *b, size_t size) {
    wr64(b + 40, spec_fnv(14695981039346656037ull, b + 64, size - 64));
}

/* ------------------------------------------------------------------ preparing */

typedef struct stream {
    int32_t *v;
    size_t n, cap;
} stream;

static void push(stream *s, int32_t id) {
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 1024;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
    }
    s->v[s->n++] = id;
}

/* The expected train and validation streams of a corpus under the spec. */
static void expect_streams(const char *text, size_t len, uint64_t seed, double frac, bool bos, bool eos, stream *tr,
                           stream *va) {
    int32_t ids[4096];
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t e = nl ? (size_t)(nl - text) : len, l = e - i;
        if (l && text[i + l - 1] == '\r') l--;
        if (l) {
            int64_t n = 0;
            CHECK_OK(smoe_tokenizer_encode(g_tok, text + i, l, bos, ids, 4096, &n));
            stream *s = spec_is_val(text + i, l, seed, frac) ? va : tr;
            for (int64_t k = 0; k < n; k++) push(s, ids[k]);
            if (eos) push(s, 2);
        }
        i = e + 1;
    }
}

static smoe_status prepare(const char *corpus_path, const char *out, uint64_t seed, double frac, bool bos, bool eos,
                           int threads, smoe_data_info *info) {
    smoe_data_prepare_params p = smoe_data_prepare_default_params();
    p.split_seed = seed;
    p.val_fraction = frac;
    p.add_bos = bos;
    p.add_eos = eos;
    p.n_threads = threads;
    const char *paths[1] = {corpus_path};
    return smoe_data_prepare(&p, g_tok, paths, 1, out, info);
}

static char *g_corpus; /* the test corpus text */
static size_t g_corpus_len;

static void test_prepare(void) {
    /* the KJV slice plus awkward lines: blank, CRLF, repeated, no final newline */
    size_t n = 0;
    char *kjv = th_read_file(th_data("bpe/kjv-head200.txt"), &n);
    CHECK(kjv != NULL, "corpus");
    if (!kjv) return;
    const char *extra = "\n\nAnd it was so.\r\nAnd it was so.\nAnd it was so.\n  \n\xe2\x98\x83 snow\nlast line";
    g_corpus_len = n + strlen(extra);
    g_corpus = malloc(g_corpus_len + 1);
    memcpy(g_corpus, kjv, n);
    memcpy(g_corpus + n, extra, strlen(extra) + 1);
    free(kjv);
    write_file(tmp_path("corpus.txt"), g_corpus, g_corpus_len);

    smoe_data_info in;
    CHECK_OK(prepare(tmp_path("corpus.txt"), tmp_path("a.bin"), 7, 0.2, true, true, 3, &in));
    stream tr = {0}, va = {0};
    expect_streams(g_corpus, g_corpus_len, 7, 0.2, true, true, &tr, &va);
    CHECK(in.n_train == tr.n && in.n_val == va.n && in.n_tokens == tr.n + va.n, "counts %llu/%llu, want %zu/%zu",
          (unsigned long long)in.n_train, (unsigned long long)in.n_val, tr.n, va.n);
    CHECK(va.n > 0 && va.n < tr.n, "validation share %zu of %zu", va.n, tr.n + va.n);
    CHECK(in.version == 1 && in.token_bytes == 2 && in.n_vocab == 1024 && in.flags == 3 && in.split_seed == 7,
          "info fields");
    uint64_t fp = 14695981039346656037ull;
    for (int32_t i = 0; i < smoe_tokenizer_n_vocab(g_tok); i++) {
        const char *s = smoe_tokenizer_token_text(g_tok, i);
        fp = spec_fnv(fp, s, strlen(s) + 1);
    }
    CHECK(in.tokenizer_fingerprint == fp && smoe_tokenizer_fingerprint(g_tok) == fp, "fingerprint");

    /* the raw bytes, read as the spec says */
    size_t size = 0;
    unsigned char *raw = th_read_file(tmp_path("a.bin"), &size);
    CHECK(raw && size == 64 + 2 * (tr.n + va.n), "file size %zu", size);
    if (raw && size == 64 + 2 * (tr.n + va.n)) {
        CHECK(memcmp(raw, "SMOETOKS", 8) == 0 && rd32(raw + 8) == 1 && rd32(raw + 12) == 2 && rd32(raw + 16) == 1024 &&
                  rd32(raw + 20) == 3 && rd64(raw + 24) == tr.n + va.n && rd64(raw + 32) == tr.n &&
                  rd64(raw + 48) == fp && rd64(raw + 56) == 7,
              "header bytes");
        CHECK(rd64(raw + 40) == spec_fnv(14695981039346656037ull, raw + 64, size - 64) && rd64(raw + 40) == in.checksum,
              "checksum");
        size_t bad = 0;
        for (size_t i = 0; i < tr.n + va.n; i++) {
            int32_t want = i < tr.n ? tr.v[i] : va.v[i - tr.n];
            bad += (raw[64 + 2 * i] | raw[65 + 2 * i] << 8) != want;
        }
        CHECK(bad == 0, "%zu tokens differ from the expected streams", bad);
    }
    free(raw);

    /* read back through the API */
    smoe_data *d = NULL;
    CHECK_OK(smoe_data_open(tmp_path("a.bin"), &d));
    if (d) {
        smoe_data_info g = smoe_data_get_info(d);
        CHECK(memcmp(&g, &in, sizeof g) == 0, "info from open differs from prepare's");
        int32_t *x = malloc(sizeof *x * (tr.n + va.n + 1));
        CHECK_OK(smoe_data_read(d, false, 0, tr.n, x));
        CHECK(memcmp(x, tr.v, tr.n * sizeof *x) == 0, "train range");
        CHECK_OK(smoe_data_read(d, true, 0, va.n, x));
        CHECK(memcmp(x, va.v, va.n * sizeof *x) == 0, "validation range");
        CHECK(smoe_data_read(d, true, 1, va.n, x) == SMOE_ERR_RANGE, "read past the end");
        CHECK(smoe_data_token(d, tr.n) == va.v[0] && smoe_data_token(d, 0) == 1, "smoe_data_token");
        free(x);
        smoe_data_free(d);
    }

    /* deterministic: 1 thread, and again */
    CHECK_OK(prepare(tmp_path("corpus.txt"), tmp_path("b.bin"), 7, 0.2, true, true, 1, NULL));
    size_t na = 0, nb = 0;
    char *a = th_read_file(tmp_path("a.bin"), &na), *b = th_read_file(tmp_path("b.bin"), &nb);
    CHECK(a && b && na == nb && memcmp(a, b, na) == 0, "1 and 3 threads differ");
    free(a);
    free(b);

    /* the split is by line content: reversed line order keeps the validation count */
    char *rev = malloc(g_corpus_len + 2);
    size_t o = 0, e = g_corpus_len;
    while (e > 0) {
        size_t s = e;
        while (s > 0 && g_corpus[s - 1] != '\n') s--;
        memcpy(rev + o, g_corpus + s, e - s);
        o += e - s;
        rev[o++] = '\n';
        e = s ? s - 1 : 0;
    }
    write_file(tmp_path("rev.txt"), rev, o);
    free(rev);
    smoe_data_info ri;
    CHECK_OK(prepare(tmp_path("rev.txt"), tmp_path("r.bin"), 7, 0.2, true, true, 2, &ri));
    CHECK(ri.n_val == in.n_val && ri.n_train == in.n_train, "reversed corpus: %llu val, want %llu",
          (unsigned long long)ri.n_val, (unsigned long long)in.n_val);

    /* other seeds split differently; fraction 0 keeps everything for training; flags */
    smoe_data_info i2;
    CHECK_OK(prepare(tmp_path("corpus.txt"), tmp_path("c.bin"), 8, 0.2, true, true, 2, &i2));
    CHECK(i2.n_tokens == in.n_tokens && i2.n_val != in.n_val, "seed 8 gives the same split");
    CHECK_OK(prepare(tmp_path("corpus.txt"), tmp_path("c.bin"), 7, 0, false, false, 2, &i2));
    stream t0 = {0}, v0 = {0};
    expect_streams(g_corpus, g_corpus_len, 7, 0, false, false, &t0, &v0);
    CHECK(i2.n_val == 0 && i2.n_train == t0.n && i2.flags == 0, "no split, no BOS/EOS: %llu tokens, want %zu",
          (unsigned long long)i2.n_train, t0.n);
    free(t0.v);
    free(v0.v);
    free(tr.v);
    free(va.v);

    /* a 2-line corpus from stdin-like path use: several files concatenate */
    write_file(tmp_path("p1.txt"), "In the beginning\n", 17);
    write_file(tmp_path("p2.txt"), "God created", 11);
    smoe_data_prepare_params p = smoe_data_prepare_default_params();
    p.val_fraction = 0;
    const char *two[2] = {tmp_path("p1.txt"), tmp_path("p2.txt")};
    CHECK_OK(smoe_data_prepare(&p, g_tok, two, 2, tmp_path("two.bin"), &i2));
    int32_t ids[64];
    int64_t n1 = 0, n2 = 0;
    CHECK_OK(smoe_tokenizer_encode(g_tok, "In the beginning", 16, true, ids, 64, &n1));
    CHECK_OK(smoe_tokenizer_encode(g_tok, "God created", 11, true, ids, 64, &n2));
    CHECK(i2.n_tokens == (uint64_t)(n1 + n2 + 2), "two files: %llu tokens", (unsigned long long)i2.n_tokens);
}

/* ------------------------------------------------------------------ batches */

static void test_batches(void) {
    /* known answers of the RNG (splitmix64; computed independently from the spec) */
    smoe_data_rng r = smoe_data_rng_init(0, 0, false);
    CHECK(smoe_data_rng_next(&r) == 0xe220a8397b1dcdafull && smoe_data_rng_next(&r) == 0x6e789e6aa1b965f4ull &&
              smoe_data_rng_next(&r) == 0x06c45d188009454full, "rng(0, 0, train)");
    r = smoe_data_rng_init(42, 7, true);
    CHECK(smoe_data_rng_next(&r) == 0xab76f6b0a38eac25ull && smoe_data_rng_next(&r) == 0x3b2e512f1b15b268ull &&
              smoe_data_rng_next(&r) == 0xd59aca52eb0f93b4ull, "rng(42, 7, val)");
    r = smoe_data_rng_init(UINT64_MAX, UINT64_MAX, false);
    CHECK(smoe_data_rng_next(&r) == 0x7233d08b1bee1320ull, "rng(max, max, train)");
    int hist[10] = {0};
    r = smoe_data_rng_init(1, 2, false);
    for (int i = 0; i < 100000; i++) hist[smoe_data_rng_below(&r, 10)]++;
    int lo = 100000, hi = 0;
    for (int i = 0; i < 10; i++) lo = hist[i] < lo ? hist[i] : lo, hi = hist[i] > hi ? hist[i] : hi;
    CHECK(lo > 9500 && hi < 10500, "below(10) histogram %d..%d", lo, hi);
    CHECK(smoe_data_rng_below(&r, 1) == 0, "below(1)");

    smoe_data *d = NULL, *d2 = NULL;
    CHECK_OK(smoe_data_open(tmp_path("a.bin"), &d));
    CHECK_OK(smoe_data_open(tmp_path("a.bin"), &d2));
    if (!d || !d2) return;
    const smoe_data_info in = smoe_data_get_info(d);
    enum { B = 4, T = 32 };
    int32_t x1[B * T], y1[B * T], x2[B * T], y2[B * T], w[T + 1];
    uint64_t st[B];
    int bad_target = 0, bad_window = 0, same_steps = 0;
    for (uint64_t step = 0; step < 50; step++) {
        for (int v = 0; v < 2; v++) {
            CHECK_OK(smoe_data_batch(d, v, 1234, step, B, T, x1, y1));
            CHECK_OK(smoe_data_batch(d2, v, 1234, step, B, T, x2, y2)); /* a "resumed" run, another handle */
            CHECK(memcmp(x1, x2, sizeof x1) == 0 && memcmp(y1, y2, sizeof y1) == 0, "step %llu differs on resume",
                  (unsigned long long)step);
            CHECK_OK(smoe_data_batch_starts(d, v, 1234, step, B, T, st));
            for (int b = 0; b < B; b++) {
                CHECK(st[b] + T + 1 <= (v ? in.n_val : in.n_train), "start %llu out of range", (unsigned long long)st[b]);
                smoe_data_read(d, v, st[b], T + 1, w);
                bad_window += memcmp(w, x1 + b * T, T * sizeof *w) != 0 || memcmp(w + 1, y1 + b * T, T * sizeof *w) != 0;
                for (int t = 0; t + 1 < T; t++) bad_target += y1[b * T + t] != x1[b * T + t + 1];
            }
        }
        CHECK_OK(smoe_data_batch(d, false, 1234, step + 1, B, T, x2, y2));
        CHECK_OK(smoe_data_batch(d, false, 1234, step, B, T, x1, y1));
        same_steps += memcmp(x1, x2, sizeof x1) == 0;
    }
    CHECK(bad_window == 0 && bad_target == 0, "%d windows and %d targets disagree with the file", bad_window,
          bad_target);
    CHECK(same_steps == 0, "%d consecutive steps drew the same batch", same_steps);
    CHECK_OK(smoe_data_batch(d, false, 1, 5, B, T, x1, y1));
    CHECK_OK(smoe_data_batch(d, false, 2, 5, B, T, x2, y2));
    CHECK(memcmp(x1, x2, sizeof x1) != 0, "seeds 1 and 2 drew the same batch");
    CHECK_OK(smoe_data_batch(d, true, 1, 5, B, T, x2, y2));
    CHECK(memcmp(x1, x2, sizeof x1) != 0, "train and validation drew the same batch");

    /* starts are uniform over the whole range */
    const uint64_t span = in.n_train - T;
    double sum = 0;
    uint64_t mn = UINT64_MAX, mx = 0;
    for (uint64_t step = 0; step < 2000; step++) {
        smoe_data_batch_starts(d, false, 9, step, B, T, st);
        for (int b = 0; b < B; b++) {
            sum += (double)st[b];
            mn = st[b] < mn ? st[b] : mn;
            mx = st[b] > mx ? st[b] : mx;
        }
    }
    double mean = sum / 8000.0;
    CHECK(mean > 0.47 * (double)span && mean < 0.53 * (double)span && mn < span / 100 && mx > span - span / 100 &&
              mx < span, "starts: mean %.0f of %llu, min %llu, max %llu", mean, (unsigned long long)span,
          (unsigned long long)mn, (unsigned long long)mx);

    /* errors */
    CHECK(smoe_data_batch(d, true, 0, 0, 1, (int32_t)in.n_val, x1, y1) == SMOE_ERR_RANGE, "window longer than the split");
    CHECK(strstr(smoe_last_error(), "validation split") != NULL, "message: %s", smoe_last_error());
    CHECK_OK(smoe_data_batch_starts(d, true, 0, 0, 1, (int32_t)in.n_val - 1, st));
    CHECK(st[0] == 0, "the only window starts at 0");
    CHECK(smoe_data_batch(d, false, 0, 0, 0, T, x1, y1) == SMOE_ERR_INVALID_ARG, "batch 0");
    CHECK(smoe_data_batch(d, false, 0, 0, 1, 0, x1, y1) == SMOE_ERR_INVALID_ARG, "seq_len 0");
    CHECK(smoe_data_batch(d, false, 0, 0, 1, T, NULL, y1) == SMOE_ERR_INVALID_ARG, "NULL tokens");
    CHECK(smoe_data_batch(NULL, false, 0, 0, 1, T, x1, y1) == SMOE_ERR_INVALID_ARG, "NULL data");
    smoe_data_info z = smoe_data_get_info(NULL);
    CHECK(z.n_tokens == 0 && z.n_vocab == 0, "info of NULL");
    smoe_data_free(d);
    smoe_data_free(d2);
    smoe_data_free(NULL);
}

/* ------------------------------------------------------------------ hostile files */

static smoe_status open_mem(const unsigned char *b, size_t n) {
    smoe_data *d = (smoe_data *)&n; /* must come back NULL on failure */
    smoe_status st = smoe_data_open_memory(b, n, &d);
    if (st) {
        CHECK(d == NULL && smoe_last_error()[0], "failed open left a handle or no message");
    } else {
        smoe_data_info in = smoe_data_get_info(d);
        CHECK(in.n_train + in.n_val == in.n_tokens && 64 + in.n_tokens * in.token_bytes == n, "accepted info");
        smoe_data_free(d);
    }
    return st;
}

static void test_hostile(void) {
    static const uint32_t IDS[] = {1, 5, 900, 2, 1, 1023, 0, 2, 1, 77, 2};
    size_t n = 0;
    unsigned char *b = craft(2, 1024, 3, IDS, 11, 8, &n);
    CHECK(open_mem(b, n) == SMOE_OK, "crafted file: %s", smoe_last_error());
    /* every truncation, and one byte too many */
    int bad = 0;
    for (size_t k = 0; k < n; k++) bad += open_mem(b, k) != SMOE_ERR_FORMAT;
    CHECK(bad == 0, "%d truncations not refused as format errors", bad);
    CHECK(open_mem(b, 0) == SMOE_ERR_FORMAT && strstr(smoe_last_error(), "shorter than"), "empty: %s",
          smoe_last_error());
    CHECK(open_mem(b, n - 1) == SMOE_ERR_FORMAT && strstr(smoe_last_error(), "truncated"), "truncated: %s",
          smoe_last_error());
    unsigned char *big = calloc(1, n + 1);
    memcpy(big, b, n);
    CHECK(open_mem(big, n + 1) == SMOE_ERR_FORMAT, "a trailing byte accepted");
    free(big);
    /* truncated files on disk */
    for (size_t k = 0; k < n; k += 7) {
        write_file(tmp_path("t.bin"), b, k);
        smoe_data *d = NULL;
        CHECK(smoe_data_open(tmp_path("t.bin"), &d) == SMOE_ERR_FORMAT && !d, "truncated to %zu on disk", k);
        CHECK(strstr(smoe_last_error(), "t.bin") != NULL, "message without the path: %s", smoe_last_error());
    }

    /* bad fields, one at a time */
    struct {
        size_t off, len;
        uint64_t v;
        smoe_status want;
        const char *msg;
    } CASES[] = {
        {0, 1, 'X', SMOE_ERR_FORMAT, "bad magic"},
        {8, 4, 2, SMOE_ERR_UNSUPPORTED, "version 2"},
        {8, 4, 0, SMOE_ERR_UNSUPPORTED, "version 0"},
        {12, 4, 3, SMOE_ERR_FORMAT, "bytes per token"},
        {12, 4, 4, SMOE_ERR_FORMAT, "holds"},
        {16, 4, 0, SMOE_ERR_FORMAT, "vocabulary size 0"},
        {16, 4, 65537, SMOE_ERR_FORMAT, "does not fit 2-byte"},
        {16, 4, 0x80000000u, SMOE_ERR_FORMAT, "out of range"},
        {20, 4, 4, SMOE_ERR_FORMAT, "unknown flags"},
        {24, 8, 12, SMOE_ERR_FORMAT, "truncated"},
        {24, 8, 10, SMOE_ERR_FORMAT, "truncated"},
        {24, 8, UINT64_MAX / 2 + 1, SMOE_ERR_FORMAT, "truncated"},
        {24, 8, UINT64_MAX, SMOE_ERR_FORMAT, "truncated"},
        {32, 8, 12, SMOE_ERR_FORMAT, "exceeds"},
        {40, 8, 1, SMOE_ERR_FORMAT, "checksum"},
        {16, 4, 1000, SMOE_ERR_FORMAT, "not below the vocabulary size 1000"},
    };
    for (size_t c = 0; c < sizeof CASES / sizeof *CASES; c++) {
        unsigned char *m = malloc(n);
        memcpy(m, b, n);
        if (CASES[c].len == 1) m[CASES[c].off] = (unsigned char)CASES[c].v;
        else if (CASES[c].len == 4) wr32(m + CASES[c].off, (uint32_t)CASES[c].v);
        else wr64(m + CASES[c].off, CASES[c].v);
        smoe_status st = open_mem(m, n);
        CHECK(st == CASES[c].want && strstr(smoe_last_error(), CASES[c].msg), "case %zu: %s: %s", c,
              smoe_status_name(st), smoe_last_error());
        free(m);
    }
    /* a damaged token; an id out of range behind a good checksum */
    unsigned char *m = malloc(n);
    memcpy(m, b, n);
    m[64 + 2 * 3] ^= 1;
    CHECK(open_mem(m, n) == SMOE_ERR_FORMAT && strstr(smoe_last_error(), "checksum"), "flipped token: %s",
          smoe_last_error());
    memcpy(m, b, n);
    m[64 + 2 * 5] = 0x00;
    m[64 + 2 * 5 + 1] = 0x04; /* 1024 */
    reseal(m, n);
    CHECK(open_mem(m, n) == SMOE_ERR_FORMAT && strstr(smoe_last_error(), "token 5 is id 1024"), "id 1024: %s",
          smoe_last_error());
    free(m);

    /* random corruption: never a crash, and an accepted file is consistent */
    unsigned long long rng = 5;
    int accepted = 0;
    for (int r = 0; r < 4000; r++) {
        m = malloc(n);
        memcpy(m, b, n);
        int flips = 1 + (int)(th_rng_next(&rng) % 3);
        for (int f = 0; f < flips; f++) m[th_rng_next(&rng) % n] ^= (unsigned char)(1 + th_rng_next(&rng) % 255);
        if (th_rng_next(&rng) % 2) reseal(m, n);
        accepted += open_mem(m, n) == SMOE_OK;
        free(m);
    }
    CHECK(accepted > 0 && accepted < 4000, "%d of 4000 corrupted files accepted", accepted);
    free(b);

    /* 4-byte tokens: a vocabulary over 65536 */
    static const uint32_t BIG[] = {1, 70000, 65536, 2};
    b = craft(4, 70001, 0, BIG, 4, 2, &n);
    smoe_data *d = NULL;
    CHECK_OK(smoe_data_open_memory(b, n, &d));
    if (d) {
        int32_t x[2], y[2];
        CHECK_OK(smoe_data_batch(d, false, 0, 0, 1, 1, x, y));
        CHECK(x[0] == 1 && y[0] == 70000, "4-byte tokens read %d %d", x[0], y[0]);
        CHECK_OK(smoe_data_batch(d, true, 0, 0, 1, 1, x, y));
        CHECK(x[0] == 65536 && y[0] == 2, "4-byte validation tokens read %d %d", x[0], y[0]);
        smoe_data_free(d);
    }
    wr32(b + 16, 65536);
    reseal(b, n);
    CHECK(open_mem(b, n) == SMOE_ERR_FORMAT && strstr(smoe_last_error(), "not below"), "70000 >= 65536");
    free(b);
    /* an empty token range is a valid file; batches then fail cleanly */
    b = craft(2, 10, 0, IDS, 0, 0, &n);
    d = NULL;
    CHECK_OK(smoe_data_open_memory(b, n, &d));
    int32_t x[4], y[4];
    if (d) CHECK(smoe_data_batch(d, false, 0, 0, 1, 1, x, y) == SMOE_ERR_RANGE, "batch from no tokens");
    smoe_data_free(d);
    free(b);

    /* paths */
    d = NULL;
    CHECK(smoe_data_open(tmp_path("missing.bin"), &d) == SMOE_ERR_IO && !d, "missing file");
    CHECK(smoe_data_open(g_tmp, &d) == SMOE_ERR_IO && !d, "a directory");
    CHECK(smoe_data_open(NULL, &d) == SMOE_ERR_INVALID_ARG, "NULL path");
    CHECK(smoe_data_open_memory(NULL, 5, &d) == SMOE_ERR_INVALID_ARG, "NULL buffer");
}

/* ------------------------------------------------------------------ preparation errors */

static int temp_files_left(void) {
    DIR *dir = opendir(g_tmp);
    int n = 0;
    struct dirent *e;
    while (dir && (e = readdir(dir))) n += strstr(e->d_name, ".tmp") != NULL;
    if (dir) closedir(dir);
    return n;
}

static void test_prepare_errors(void) {
    smoe_data_info in;
    write_file(tmp_path("empty.txt"), "\n\r\n\n", 4);
    CHECK(prepare(tmp_path("empty.txt"), tmp_path("e.bin"), 0, 0.1, true, true, 2, &in) == SMOE_ERR_INVALID_ARG,
          "empty corpus");
    CHECK(strstr(smoe_last_error(), "no text") != NULL, "message: %s", smoe_last_error());
    CHECK(access(tmp_path("e.bin"), F_OK) != 0, "output written for an empty corpus");
    CHECK(prepare(tmp_path("nope.txt"), tmp_path("e.bin"), 0, 0.1, true, true, 2, &in) == SMOE_ERR_IO, "missing corpus");
    CHECK(strstr(smoe_last_error(), "nope.txt") != NULL, "message: %s", smoe_last_error());
    CHECK(prepare(tmp_path("corpus.txt"), tmp_path("e.bin"), 0, 1.0, true, true, 2, &in) == SMOE_ERR_INVALID_ARG,
          "fraction 1");
    CHECK(prepare(tmp_path("corpus.txt"), tmp_path("e.bin"), 0, -0.5, true, true, 2, &in) == SMOE_ERR_INVALID_ARG,
          "fraction -0.5");
    CHECK(prepare(tmp_path("corpus.txt"), tmp_path("no/dir/e.bin"), 0, 0.1, true, true, 2, &in) == SMOE_ERR_IO,
          "output in a missing directory");
    smoe_data_prepare_params p = smoe_data_prepare_default_params();
    const char *paths[1] = {tmp_path("corpus.txt")};
    CHECK(smoe_data_prepare(&p, NULL, paths, 1, tmp_path("e.bin"), &in) == SMOE_ERR_INVALID_ARG, "no tokenizer");
    CHECK(smoe_data_prepare(&p, g_tok, paths, 0, tmp_path("e.bin"), &in) == SMOE_ERR_INVALID_ARG, "no paths");
    CHECK(temp_files_left() == 0, "temporary files left behind");
    /* an existing output is replaced only by a complete file */
    write_file(tmp_path("keep.bin"), "old", 3);
    CHECK(prepare(tmp_path("empty.txt"), tmp_path("keep.bin"), 0, 0.1, true, true, 2, &in) != SMOE_OK, "empty");
    size_t k = 0;
    char *old = th_read_file(tmp_path("keep.bin"), &k);
    CHECK(old && k == 3 && memcmp(old, "old", 3) == 0, "a failed run touched the existing output");
    free(old);
}

int main(void) {
    snprintf(g_tmp, sizeof g_tmp, "/tmp/smoe_test_data_XXXXXX");
    if (!mkdtemp(g_tmp)) {
        perror("mkdtemp");
        return 1;
    }
    smoe_gguf *g = NULL;
    CHECK_OK(smoe_gguf_open(th_data("bpe/kjv-head200-1024.gguf"), &g));
    if (g) CHECK_OK(smoe_tokenizer_from_gguf(g, &g_tok));
    smoe_gguf_free(g);
    if (g_tok) {
        test_prepare();
        test_batches();
        test_hostile();
        test_prepare_errors();
    }
    smoe_tokenizer_free(g_tok);
    free(g_corpus);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_tmp);
    return TEST_REPORT();
}
