/*
 * test_tokenizer.c - the tokenizer against llama.cpp's test-tokenizer-0 vectors.
 *
 * For the llama-spm, mistral-v1 (SentencePiece BPE) and gpt-2 (byte-level BPE) vocabularies
 * in tests/data/tokenizer every case of the .inp file must encode to exactly the ids of the
 * .out file (no BOS, special-token text not parsed), decode back to the input, and give
 * the same text through the streaming detokenizer as through a whole decode. Also checked:
 * byte tokens split across pushes, BOS handling, bad ids, a too-small id buffer, invalid
 * UTF-8 input, the tiny model's 1024-token vocabulary, load/encode speed (reported), and
 * clean errors for hostile GGUF metadata built in memory.
 *
 * Not checked here: special-token parsing (not implemented) and pre-tokenizers other than
 * GPT-2's.
 */
#include "smoe.h"
#include "testhelp.h"

#include <stdint.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static smoe_tokenizer *load_tok(const char *path, smoe_gguf **gout) {
    smoe_gguf *g = NULL;
    smoe_tokenizer *t = NULL;
    CHECK_OK(smoe_gguf_open(path, &g));
    if (!g) return NULL;
    double t0 = now_s();
    CHECK_OK(smoe_tokenizer_from_gguf(g, &t));
    double dt = now_s() - t0;
    printf("  %s: loaded %d tokens in %.1f ms\n", path, t ? smoe_tokenizer_n_vocab(t) : 0, dt * 1e3);
    CHECK(dt < 5.0, "loading took %.2f s", dt); /* generous: sanitizer builds are slow */
    if (gout) *gout = g;
    else smoe_gguf_free(g);
    return t;
}

/* Decode ids one at a time through the streaming detokenizer, with a buffer of cap. */
static int64_t stream_decode(const smoe_tokenizer *t, const int32_t *ids, int64_t n, char *out, size_t out_cap) {
    smoe_detok d;
    smoe_detok_init(&d, t);
    char piece[1024];
    size_t o = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t r = smoe_detok_push(&d, ids[i], piece, sizeof piece);
        if (r < 0 || o + (size_t)r >= out_cap) return -1;
        memcpy(out + o, piece, (size_t)r);
        o += (size_t)r;
    }
    int64_t r = smoe_detok_flush(&d, piece, sizeof piece);
    if (r < 0 || o + (size_t)r >= out_cap) return -1;
    memcpy(out + o, piece, (size_t)r);
    o += (size_t)r;
    out[o] = 0;
    return (int64_t)o;
}

static void fmt_ids(char *buf, size_t cap, const int32_t *ids, int64_t n) {
    size_t o = 0;
    buf[0] = 0;
    for (int64_t i = 0; i < n && o + 16 < cap; i++) o += (size_t)snprintf(buf + o, cap - o, " %d", (int)ids[i]);
}

/* All cases of one vocabulary: exact ids, round trip, streaming == whole decode. */
static void run_vocab(const char *name) {
    char rel[256];
    snprintf(rel, sizeof rel, "tokenizer/%s", name);
    smoe_tokenizer *t = load_tok(th_data(rel), NULL);
    if (!t) return;
    snprintf(rel, sizeof rel, "tokenizer/%s.inp", name);
    size_t inp_n = 0, out_n = 0;
    char *inp = th_read_file(th_data(rel), &inp_n);
    snprintf(rel, sizeof rel, "tokenizer/%s.out", name);
    char *outf = th_read_file(th_data(rel), &out_n);
    CHECK(inp && outf, "missing test vectors for %s", name);
    if (!inp || !outf) {
        free(inp);
        free(outf);
        smoe_tokenizer_free(t);
        return;
    }
    static const char SEP[] = "\n__ggml_vocab_test__\n";
    int n_case = 0, n_exact = 0, n_round = 0, n_stream = 0;
    char *ip = inp, *op = outf;
    static int32_t ids[16384], want[16384];
    static char dec[65536], sdec[65536];
    for (;;) {
        char *sep = strstr(ip, SEP);
        if (!sep) break; /* the piece after the last separator is empty */
        size_t len = (size_t)(sep - ip);
        char *eol = strchr(op, '\n');
        if (!eol) eol = op + strlen(op);
        *eol = 0;
        int nw = th_parse_ints(op, want, 16384);
        op = *eol == 0 && eol < outf + out_n ? eol + 1 : eol;

        int64_t n = 0;
        smoe_status st = smoe_tokenizer_encode(t, ip, len, false, ids, 16384, &n);
        bool same = st == SMOE_OK && n == nw && memcmp(ids, want, (size_t)nw * sizeof *ids) == 0;
        if (!same) {
            char got_s[2048], want_s[2048];
            fmt_ids(got_s, sizeof got_s, ids, st == SMOE_OK ? n : 0);
            fmt_ids(want_s, sizeof want_s, want, nw);
            fprintf(stderr, "%s case %d \"%.*s\"\n  got: %s\n want: %s\n", name, n_case, (int)(len < 60 ? len : 60), ip, got_s, want_s);
        }
        CHECK(same, "%s case %d: encode differs from llama.cpp", name, n_case);
        n_exact += same;

        int64_t dn = smoe_tokenizer_decode(t, ids, n, dec, sizeof dec);
        bool round = dn == (int64_t)len && memcmp(dec, ip, len) == 0;
        CHECK(round, "%s case %d: decode gives \"%s\" (%lld bytes), want \"%.*s\"", name, n_case, dn >= 0 ? dec : "",
              (long long)dn, (int)len, ip);
        n_round += round;

        int64_t sn = stream_decode(t, ids, n, sdec, sizeof sdec);
        bool stream = sn == dn && dn >= 0 && memcmp(sdec, dec, (size_t)dn) == 0;
        CHECK(stream, "%s case %d: streaming detok differs from decode", name, n_case);
        n_stream += stream;

        n_case++;
        ip = sep + strlen(SEP);
    }
    CHECK(n_case == 46, "%s: %d cases, expected 46", name, n_case);
    printf("  %s: %d/%d exact, %d/%d round-trip, %d/%d streaming\n", name, n_exact, n_case, n_round, n_case, n_stream, n_case);
    free(inp);
    free(outf);
    smoe_tokenizer_free(t);
}

/* A byte-level character cut across byte tokens is held back until it is complete. */
static void test_streaming_split(void) {
    smoe_tokenizer *t = load_tok(th_data("tokenizer/ggml-vocab-llama-spm.gguf"), NULL);
    if (!t) return;
    const char *text = "a \xf0\x9f\xa6\x99 b"; /* "a 🦙 b": the llama is four <0xXX> tokens */
    int32_t ids[64];
    int64_t n = 0;
    CHECK_OK(smoe_tokenizer_encode(t, text, strlen(text), false, ids, 64, &n));
    smoe_detok d;
    smoe_detok_init(&d, t);
    char buf[64], all[256] = "";
    int held = 0;
    for (int64_t i = 0; i < n; i++) {
        char tb[16];
        int64_t nb = smoe_tokenizer_token_bytes(t, ids[i], tb, sizeof tb);
        int64_t r = smoe_detok_push(&d, ids[i], buf, sizeof buf);
        CHECK(r >= 0, "push %d", (int)ids[i]);
        if (nb == 1 && (unsigned char)tb[0] >= 0xF0) {
            CHECK(r == 0, "lead byte of a 4-byte character must be held back, got %lld bytes", (long long)r);
            held++;
        }
        if (r > 0) strcat(all, buf);
    }
    CHECK(held == 1, "expected the emoji as byte tokens (held %d)", held);
    CHECK(smoe_detok_flush(&d, buf, sizeof buf) == 0, "nothing left to flush");
    CHECK(strcmp(all, text) == 0, "streamed \"%s\"", all);

    /* A lead byte with no continuation: flush gives U+FFFD. */
    int32_t f0 = -1;
    for (int32_t id = 0; id < smoe_tokenizer_n_vocab(t); id++) {
        const char *s = smoe_tokenizer_token_text(t, id);
        if (s && strcmp(s, "<0xF0>") == 0) f0 = id;
    }
    CHECK(f0 >= 0, "no <0xF0> token");
    smoe_detok_init(&d, t);
    CHECK(smoe_detok_push(&d, f0, buf, sizeof buf) == 0, "held");
    CHECK(smoe_detok_flush(&d, buf, sizeof buf) == 3 && strcmp(buf, "\xef\xbf\xbd") == 0, "flush gives U+FFFD");
    /* A lone byte followed by ASCII: U+FFFD then the text, all in the push. */
    int32_t seq[2] = {f0, ids[0]};
    char out[64];
    int64_t dn = smoe_tokenizer_decode(t, seq, 2, out, sizeof out);
    /* ("▁a" keeps its space: the byte token already ended the start of the text.) */
    CHECK(dn == 5 && memcmp(out, "\xef\xbf\xbd" " a", 5) == 0, "decode of <0xF0> \xe2\x96\x81" "a: %lld", (long long)dn);
    /* A too-small buffer fails without losing state. */
    smoe_detok_init(&d, t);
    int32_t hello[8];
    CHECK_OK(smoe_tokenizer_encode(t, "Hello", 5, false, hello, 8, &n));
    CHECK(n == 1 && smoe_detok_push(&d, hello[0], buf, 3) == -1, "small buffer -> -1");
    CHECK(smoe_detok_push(&d, hello[0], buf, sizeof buf) == 5 && strcmp(buf, "Hello") == 0, "retry gives \"%s\"", buf);
    smoe_tokenizer_free(t);
}

static void test_bos_and_errors(const char *name, bool expect_add_bos) {
    char rel[256];
    snprintf(rel, sizeof rel, "tokenizer/%s", name);
    smoe_tokenizer *t = load_tok(th_data(rel), NULL);
    if (!t) return;
    int32_t bos = smoe_tokenizer_bos(t), nv = smoe_tokenizer_n_vocab(t);
    CHECK(bos >= 0 && bos < nv, "%s: bos %d", name, (int)bos);
    CHECK(smoe_tokenizer_eos(t) >= 0, "%s: eos", name);
    CHECK(smoe_tokenizer_add_bos(t) == expect_add_bos, "%s: add_bos", name);
    int32_t ids[64];
    int64_t n = 0, n2 = 0;
    const char *s = "Hello world";
    CHECK_OK(smoe_tokenizer_encode(t, s, strlen(s), true, ids, 64, &n));
    CHECK(n >= 2 && ids[0] == bos, "%s: first id %d, want BOS %d", name, (int)ids[0], (int)bos);
    int32_t ids2[64];
    CHECK_OK(smoe_tokenizer_encode(t, s, strlen(s), false, ids2, 64, &n2));
    CHECK(n2 == n - 1 && memcmp(ids + 1, ids2, (size_t)n2 * sizeof *ids) == 0, "%s: BOS only prepends", name);
    char buf[256];
    int64_t dn = smoe_tokenizer_decode(t, ids, n, buf, sizeof buf);
    CHECK(dn == (int64_t)strlen(s) && strcmp(buf, s) == 0, "%s: decode with BOS gives \"%s\"", name, buf);
    CHECK(smoe_tokenizer_token_bytes(t, bos, buf, sizeof buf) == 0, "%s: BOS decodes to nothing", name);
    CHECK(smoe_tokenizer_token_text(t, bos) && smoe_tokenizer_token_text(t, bos)[0] == '<', "%s: BOS text", name);

    /* Out-of-range ids. */
    int32_t bad[2] = {ids2[0], nv};
    CHECK(smoe_tokenizer_decode(t, bad, 2, buf, sizeof buf) == -1, "%s: id n_vocab -> -1", name);
    bad[1] = -1;
    CHECK(smoe_tokenizer_decode(t, bad, 2, buf, sizeof buf) == -1, "%s: id -1 -> -1", name);
    CHECK(smoe_tokenizer_token_bytes(t, nv, buf, sizeof buf) == -1, "%s: token_bytes out of range", name);
    CHECK(smoe_tokenizer_token_text(t, -5) == NULL, "%s: token_text out of range", name);
    smoe_detok d;
    smoe_detok_init(&d, t);
    CHECK(smoe_detok_push(&d, nv + 7, buf, sizeof buf) == -1, "%s: push out of range", name);
    /* Decode into a too-small buffer. */
    CHECK(smoe_tokenizer_decode(t, ids2, n2, buf, 4) == -1, "%s: small decode buffer -> -1", name);

    /* Too little room for the ids: SMOE_ERR_RANGE with the full count. */
    int64_t nn = 0;
    CHECK(smoe_tokenizer_encode(t, s, strlen(s), false, ids, 1, &nn) == SMOE_ERR_RANGE && nn == n2,
          "%s: cap 1 -> RANGE with n_out %lld", name, (long long)nn);
    CHECK(smoe_tokenizer_encode(t, s, strlen(s), false, NULL, 0, &nn) == SMOE_ERR_RANGE && nn == n2,
          "%s: cap 0 counts", name);
    CHECK_OK(smoe_tokenizer_encode(t, "", 0, false, NULL, 0, &nn));
    CHECK(nn == 0, "%s: empty text gives no ids", name);

    /* Invalid UTF-8 still round-trips byte for byte through token_bytes. */
    const char inv[] = "a\xff\xfe b\xc3 \xe2\x82";
    CHECK_OK(smoe_tokenizer_encode(t, inv, sizeof inv - 1, false, ids, 64, &n));
    size_t o = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t r = smoe_tokenizer_token_bytes(t, ids[i], buf + o, sizeof buf - o);
        if (r > 0) o += (size_t)r;
    }
    if (smoe_tokenizer_get_kind(t) == SMOE_TOKENIZER_SPM && o > 0 && buf[0] == ' ') memmove(buf, buf + 1, --o);
    CHECK(o == sizeof inv - 1 && memcmp(buf, inv, o) == 0, "%s: invalid UTF-8 bytes round-trip", name);
    dn = smoe_tokenizer_decode(t, ids, n, buf, sizeof buf);
    CHECK(dn > 0 && strstr(buf, "\xef\xbf\xbd") != NULL, "%s: invalid bytes decode to U+FFFD", name);

    /* Speed on a long text (reported; a loose bound catches quadratic behaviour). */
    size_t big_n = 200000;
    char *big = malloc(big_n + 1);
    const char *lorem = "The quick brown fox jumps over the lazy dog, 1234567 times; naïve café ü 😀!\n  ";
    for (size_t i = 0; i < big_n; i++) big[i] = lorem[i % strlen(lorem)];
    while (big_n && ((unsigned char)big[big_n - 1] & 0xC0) == 0x80) big_n--; /* whole characters */
    while (big_n && (unsigned char)big[big_n - 1] >= 0xC0) big_n--;
    int32_t *bids = malloc(sizeof *bids * (big_n + 1));
    double t0 = now_s();
    CHECK_OK(smoe_tokenizer_encode(t, big, big_n, false, bids, (int64_t)big_n + 1, &n));
    double dt = now_s() - t0;
    printf("  %s: encoded %zu bytes into %lld tokens in %.1f ms\n", name, big_n, (long long)n, dt * 1e3);
    CHECK(dt < 10.0, "%s: encoding 200 kB took %.2f s", name, dt);
    char *bdec = malloc(big_n + 64);
    dn = smoe_tokenizer_decode(t, bids, n, bdec, big_n + 64);
    CHECK(dn == (int64_t)big_n && memcmp(bdec, big, big_n) == 0, "%s: long text round-trips", name);
    /* One long whitespace run is a single pre-tokenizer word: still fast. */
    memset(big, ' ', big_n);
    t0 = now_s();
    CHECK_OK(smoe_tokenizer_encode(t, big, big_n, false, bids, (int64_t)big_n + 1, &n));
    dt = now_s() - t0;
    printf("  %s: %zu spaces -> %lld tokens in %.1f ms\n", name, big_n, (long long)n, dt * 1e3);
    CHECK(dt < 10.0, "%s: encoding a space run took %.2f s", name, dt);
    free(bdec);
    free(bids);
    free(big);
    smoe_tokenizer_free(t);
}

/* Is s[0..n) valid UTF-8? */
static bool valid_utf8(const char *s, int64_t n) {
    for (int64_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        int k = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
        if (!k || i + k > n) return false;
        for (int j = 1; j < k; j++)
            if (((unsigned char)s[i + j] & 0xC0) != 0x80) return false;
        i += k;
    }
    return true;
}

/* Random byte strings (mostly UTF-8, some garbage) and random id sequences: encoding
 * keeps every byte, decoding always gives valid UTF-8, streaming equals whole decode. */
static void test_random(const char *name) {
    char rel[256];
    snprintf(rel, sizeof rel, "tokenizer/%s", name);
    smoe_tokenizer *t = load_tok(th_data(rel), NULL);
    if (!t) return;
    static const char *const atoms[] = {"a", "Z", " ", "  ", "\n", "\t", "'s", "'", "1", "42", ".", "!!", "\xc3\xa9",
                                        "\xe2\x96\x81", "\xf0\x9f\xa6\x99", "\xe4\xb8\xad", "\xff", "\xc3", "\x80",
                                        "\xed\xa0\x80", "<s>", "\xc2\xa0", "\xe3\x80\x80"};
    unsigned long long rng = 1234;
    int32_t nv = smoe_tokenizer_n_vocab(t);
    int bad_bytes = 0, bad_stream = 0, bad_utf8 = 0;
    for (int iter = 0; iter < 300; iter++) {
        char text[512];
        size_t len = 0; /* at most 39 atoms of 4 bytes */
        int n_atoms = (int)(th_rng_next(&rng) % 40);
        for (int k = 0; k < n_atoms; k++) {
            const char *a = atoms[th_rng_next(&rng) % (sizeof atoms / sizeof atoms[0])];
            memcpy(text + len, a, strlen(a));
            len += strlen(a);
        }
        int32_t ids[1024];
        int64_t n = 0;
        CHECK_OK(smoe_tokenizer_encode(t, text, len, iter & 1, ids, 1024, &n));
        char bytes[2048];
        size_t o = 0;
        for (int64_t i = 0; i < n; i++) {
            int64_t r = smoe_tokenizer_token_bytes(t, ids[i], bytes + o, sizeof bytes - o);
            if (r > 0) o += (size_t)r;
        }
        bool spm = smoe_tokenizer_get_kind(t) == SMOE_TOKENIZER_SPM;
        if (spm && len > 0) memmove(bytes, bytes + 1, --o);
        /* (SentencePiece cannot tell a literal U+2581 from an escaped space.) */
        text[len] = 0;
        if (!spm || !strstr(text, "\xe2\x96\x81")) bad_bytes += !(o == len && memcmp(bytes, text, len) == 0);

        /* Random ids, any type. */
        int m = (int)(th_rng_next(&rng) % 24);
        for (int i = 0; i < m; i++) {
            uint64_t r = th_rng_next(&rng);
            ids[i] = (int32_t)((r >> 8) % ((r & 3) == 0 ? 300u : (uint64_t)nv)); /* often special/byte ids */
        }
        static char dec[8192], sdec[8192];
        int64_t dn = smoe_tokenizer_decode(t, ids, m, dec, sizeof dec);
        int64_t sn = stream_decode(t, ids, m, sdec, sizeof sdec);
        bad_stream += !(dn >= 0 && sn == dn && memcmp(dec, sdec, (size_t)dn) == 0);
        bad_utf8 += !(dn >= 0 && valid_utf8(dec, dn));
    }
    CHECK(bad_bytes == 0, "%s: %d random texts lose bytes", name, bad_bytes);
    CHECK(bad_stream == 0, "%s: %d random id sequences stream differently", name, bad_stream);
    CHECK(bad_utf8 == 0, "%s: %d random id sequences decode to invalid UTF-8", name, bad_utf8);
    smoe_tokenizer_free(t);
}

static void test_tiny_model(void) {
    smoe_tokenizer *t = load_tok(th_data("model/mixtral-tiny-F32.gguf"), NULL);
    if (!t) return;
    CHECK(smoe_tokenizer_n_vocab(t) == 1024, "tiny vocab %d", smoe_tokenizer_n_vocab(t));
    CHECK(smoe_tokenizer_get_kind(t) == SMOE_TOKENIZER_SPM, "tiny vocab is SPM");
    const char *texts[] = {"Hello world", "In the beginning", "Hello\tworld\n the answer is you", "Comment: \xd0\xbf"};
    for (size_t k = 0; k < sizeof texts / sizeof texts[0]; k++) {
        int32_t ids[256];
        int64_t n = 0;
        const char *s = texts[k];
        CHECK_OK(smoe_tokenizer_encode(t, s, strlen(s), smoe_tokenizer_add_bos(t), ids, 256, &n));
        CHECK(n > 0 && ids[0] == smoe_tokenizer_bos(t), "tiny: BOS first");
        char buf[512];
        int64_t dn = smoe_tokenizer_decode(t, ids, n, buf, sizeof buf);
        CHECK(dn == (int64_t)strlen(s) && strcmp(buf, s) == 0, "tiny: \"%s\" decodes to \"%s\"", s, dn >= 0 ? buf : "");
        if (k == 0) {
            char ids_s[512];
            fmt_ids(ids_s, sizeof ids_s, ids, n);
            printf("  tiny model: \"%s\" ->%s\n", s, ids_s);
        }
    }
    /* This 1024-token vocabulary is cut down and has no bare "▁": a space that starts no
     * "▁x" token falls back to the three bytes of U+2581, which decode as "▁", not as a
     * space (byte tokens are not unescaped; llama.cpp does the same). */
    int32_t ids[64];
    int64_t n = 0;
    CHECK_OK(smoe_tokenizer_encode(t, "a  b", 4, false, ids, 64, &n));
    char buf[64];
    int64_t dn = smoe_tokenizer_decode(t, ids, n, buf, sizeof buf);
    CHECK(dn == 6 && strcmp(buf, "a\xe2\x96\x81 b") == 0, "tiny: \"a  b\" decodes to \"%s\"", dn >= 0 ? buf : "");
    smoe_tokenizer_free(t);
}

/* ------------------------------------------------------------------ hostile metadata */

/* A minimal GGUF v3 image in memory: no tensors, only the key/values we add. */
typedef struct gb {
    unsigned char *p;
    size_t n, cap;
    uint64_t n_kv;
} gb;

static void gb_put(gb *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void gb_u32(gb *b, uint32_t v) { gb_put(b, &v, 4); }
static void gb_u64(gb *b, uint64_t v) { gb_put(b, &v, 8); }
static void gb_str(gb *b, const char *s) {
    gb_u64(b, strlen(s));
    gb_put(b, s, strlen(s));
}
static void gb_init(gb *b) {
    memset(b, 0, sizeof *b);
    gb_put(b, "GGUF", 4);
    gb_u32(b, 3);
    gb_u64(b, 0); /* tensors */
    gb_u64(b, 0); /* key/values, patched by gb_finish */
}
static void gb_kv_str(gb *b, const char *k, const char *v) {
    gb_str(b, k);
    gb_u32(b, SMOE_GGUF_STRING);
    gb_str(b, v);
    b->n_kv++;
}
static void gb_kv_u32(gb *b, const char *k, uint32_t v) {
    gb_str(b, k);
    gb_u32(b, SMOE_GGUF_UINT32);
    gb_u32(b, v);
    b->n_kv++;
}
static void gb_kv_strs(gb *b, const char *k, const char *const *v, int n) {
    gb_str(b, k);
    gb_u32(b, SMOE_GGUF_ARRAY);
    gb_u32(b, SMOE_GGUF_STRING);
    gb_u64(b, (uint64_t)n);
    for (int i = 0; i < n; i++) gb_str(b, v[i]);
    b->n_kv++;
}
static void gb_kv_arr(gb *b, const char *k, smoe_gguf_type et, const void *v, int n) {
    gb_str(b, k);
    gb_u32(b, SMOE_GGUF_ARRAY);
    gb_u32(b, et);
    gb_u64(b, (uint64_t)n);
    gb_put(b, v, 4 * (size_t)n);
    b->n_kv++;
}
static void gb_finish(gb *b) {
    memcpy(b->p + 16, &b->n_kv, 8);
    static const unsigned char zero[32];
    gb_put(b, zero, (32 - b->n % 32) % 32);
}

/* Build a tokenizer from the image; returns the status and frees everything. */
static smoe_status try_tok(gb *b, smoe_tokenizer **keep) {
    gb_finish(b);
    smoe_gguf *g = NULL;
    smoe_status st = smoe_gguf_open_memory(b->p, b->n, &g);
    CHECK(st == SMOE_OK, "in-memory GGUF does not open: %s", smoe_last_error());
    smoe_tokenizer *t = NULL;
    if (st == SMOE_OK) st = smoe_tokenizer_from_gguf(g, &t);
    if (st != SMOE_OK) CHECK(t == NULL, "no tokenizer on failure");
    if (keep) *keep = t;
    else smoe_tokenizer_free(t);
    smoe_gguf_free(g);
    free(b->p);
    return st;
}

static const char *const SPM_TOKS[] = {"<unk>", "<s>", "</s>", "<0x41>", "\xe2\x96\x81", "a", "b", "\xe2\x96\x81\x61", "ab", "ba"};
static const float SPM_SCORES[] = {0, 0, 0, 0, -1, -2, -3, -4, -5, -6};
static const int32_t SPM_TYPES[] = {2, 3, 3, 6, 1, 1, 1, 1, 1, 1};
enum { SPM_N = 10 };

static void spm_base(gb *b, bool with_types) {
    gb_init(b);
    gb_kv_str(b, "general.architecture", "llama");
    gb_kv_str(b, "tokenizer.ggml.model", "llama");
    gb_kv_strs(b, "tokenizer.ggml.tokens", SPM_TOKS, SPM_N);
    gb_kv_arr(b, "tokenizer.ggml.scores", SMOE_GGUF_FLOAT32, SPM_SCORES, SPM_N);
    if (with_types) gb_kv_arr(b, "tokenizer.ggml.token_type", SMOE_GGUF_INT32, SPM_TYPES, SPM_N);
}

static void test_hostile(void) {
    gb b;
    smoe_status st;

    gb_init(&b);
    gb_kv_str(&b, "general.architecture", "llama");
    st = try_tok(&b, NULL);
    CHECK(st == SMOE_ERR_FORMAT && strstr(smoe_last_error(), "tokenizer.ggml.model"), "no tokenizer keys: %s (%s)",
          smoe_status_name(st), smoe_last_error());

    gb_init(&b);
    gb_kv_str(&b, "tokenizer.ggml.model", "bert");
    st = try_tok(&b, NULL);
    CHECK(st == SMOE_ERR_UNSUPPORTED, "unknown model: %s", smoe_status_name(st));

    gb_init(&b);
    gb_kv_u32(&b, "tokenizer.ggml.model", 7);
    st = try_tok(&b, NULL);
    CHECK(st == SMOE_ERR_FORMAT, "model not a string: %s", smoe_status_name(st));

    gb_init(&b);
    gb_kv_str(&b, "tokenizer.ggml.model", "llama");
    st = try_tok(&b, NULL);
    CHECK(st == SMOE_ERR_FORMAT && strstr(smoe_last_error(), "tokenizer.ggml.tokens"), "no tokens: %s", smoe_last_error());

    gb_init(&b);
    gb_kv_str(&b, "tokenizer.ggml.model", "llama");
    gb_kv_arr(&b, "tokenizer.ggml.tokens", SMOE_GGUF_INT32, SPM_TYPES, SPM_N);
    st = try_tok(&b, NULL);
    CHECK(st == SMOE_ERR_FORMAT, "tokens of the wrong type: %s", smoe_status_name(st));

    gb_init(&b);
    gb_kv_str(&b, "tokenizer.ggml.model", "llama");
    gb_kv_strs(&b, "tokenizer.ggml.tokens", SPM_TOKS, SPM_N);
    gb_kv_arr(&b, "tokenizer.ggml.scores", SMOE_GGUF_FLOAT32, SPM_SCORES, SPM_N - 1);
    st = try_tok(&b, NULL);
    CHECK(st == SMOE_ERR_FORMAT && strstr(smoe_last_error(), "scores"), "short scores: %s", smoe_last_error());

    spm_base(&b, true);
    gb_kv_u32(&b, "tokenizer.ggml.bos_token_id", SPM_N);
    st = try_tok(&b, NULL);
    CHECK(st == SMOE_ERR_FORMAT && strstr(smoe_last_error(), "bos_token_id"), "bos out of range: %s", smoe_last_error());

    spm_base(&b, false);
    int32_t types[SPM_N];
    memcpy(types, SPM_TYPES, sizeof types);
    types[4] = 6; /* "▁" marked as a byte token */
    gb_kv_arr(&b, "tokenizer.ggml.token_type", SMOE_GGUF_INT32, types, SPM_N);
    st = try_tok(&b, NULL);
    CHECK(st == SMOE_ERR_FORMAT, "malformed byte token: %s", smoe_status_name(st));

    spm_base(&b, false);
    types[4] = 42;
    gb_kv_arr(&b, "tokenizer.ggml.token_type", SMOE_GGUF_INT32, types, SPM_N);
    st = try_tok(&b, NULL);
    CHECK(st == SMOE_ERR_FORMAT, "unknown token type: %s", smoe_status_name(st));

    /* A small valid SPM vocabulary: merges by score, byte fallback, unk. */
    smoe_tokenizer *t = NULL;
    spm_base(&b, true);
    gb_kv_u32(&b, "tokenizer.ggml.bos_token_id", 1);
    gb_kv_u32(&b, "tokenizer.ggml.eos_token_id", 2);
    gb_kv_u32(&b, "tokenizer.ggml.unknown_token_id", 0);
    st = try_tok(&b, &t);
    CHECK(st == SMOE_OK, "small SPM vocab: %s", smoe_last_error());
    if (t) {
        int32_t ids[16];
        int64_t n = 0;
        /* "ab": "▁a" (-4) beats "ab" (-5), then "▁a"+"b" is not a token. */
        CHECK_OK(smoe_tokenizer_encode(t, "ab", 2, false, ids, 16, &n));
        CHECK(n == 2 && ids[0] == 7 && ids[1] == 6, "small SPM \"ab\": n=%lld %d %d", (long long)n, ids[0], ids[1]);
        /* "A" has only a byte token; "c" has none, so it becomes <unk>. */
        CHECK_OK(smoe_tokenizer_encode(t, "Ac", 2, true, ids, 16, &n));
        CHECK(n == 4 && ids[0] == 1 && ids[1] == 4 && ids[2] == 3 && ids[3] == 0, "small SPM \"Ac\": n=%lld", (long long)n);
        char buf[64];
        CHECK(smoe_tokenizer_decode(t, ids, n, buf, sizeof buf) == 4 && strcmp(buf, "A\xe2\x96\x85") == 0,
              "small SPM decode \"%s\"", buf);
        smoe_tokenizer_free(t);
    }

    /* gpt2 vocabularies: merges must name known tokens. */
    static const char *const BPE_TOKS[] = {"a", "b", "ab", "\xc4\xa0", "\xc4\xa0\x61"};
    static const char *const GOOD_MERGES[] = {"a b", "\xc4\xa0 a"};
    static const char *const BAD_MERGES[] = {"a b", "a c"};
    static const char *const BAD_RESULT[] = {"b a"};
    static const char *const NO_SPACE[] = {"ab"};
    const char *const *merge_sets[] = {BAD_MERGES, BAD_RESULT, NO_SPACE};
    int merge_n[] = {2, 1, 1};
    for (int k = 0; k < 3; k++) {
        gb_init(&b);
        gb_kv_str(&b, "tokenizer.ggml.model", "gpt2");
        gb_kv_str(&b, "tokenizer.ggml.pre", "gpt-2");
        gb_kv_strs(&b, "tokenizer.ggml.tokens", BPE_TOKS, 5);
        gb_kv_strs(&b, "tokenizer.ggml.merges", merge_sets[k], merge_n[k]);
        st = try_tok(&b, NULL);
        CHECK(st == SMOE_ERR_FORMAT && strstr(smoe_last_error(), "merge"), "bad merges %d: %s (%s)", k,
              smoe_status_name(st), smoe_last_error());
    }
    gb_init(&b);
    gb_kv_str(&b, "tokenizer.ggml.model", "gpt2");
    gb_kv_strs(&b, "tokenizer.ggml.tokens", BPE_TOKS, 5);
    st = try_tok(&b, NULL);
    CHECK(st == SMOE_ERR_FORMAT && strstr(smoe_last_error(), "merges"), "gpt2 without merges: %s", smoe_last_error());

    gb_init(&b);
    gb_kv_str(&b, "tokenizer.ggml.model", "gpt2");
    gb_kv_str(&b, "tokenizer.ggml.pre", "some-future-regex");
    gb_kv_strs(&b, "tokenizer.ggml.tokens", BPE_TOKS, 5);
    gb_kv_strs(&b, "tokenizer.ggml.merges", GOOD_MERGES, 2);
    st = try_tok(&b, NULL);
    CHECK(st == SMOE_ERR_UNSUPPORTED, "unknown pre-tokenizer: %s", smoe_status_name(st));

    /* A small valid gpt2 vocabulary without most byte tokens: bytes with no token and no
     * unk fail cleanly; known ones merge. */
    gb_init(&b);
    gb_kv_str(&b, "tokenizer.ggml.model", "gpt2");
    gb_kv_strs(&b, "tokenizer.ggml.tokens", BPE_TOKS, 5);
    gb_kv_strs(&b, "tokenizer.ggml.merges", GOOD_MERGES, 2);
    st = try_tok(&b, &t);
    CHECK(st == SMOE_OK, "small gpt2 vocab: %s", smoe_last_error());
    if (t) {
        int32_t ids[16];
        int64_t n = 0;
        CHECK_OK(smoe_tokenizer_encode(t, "ab a", 4, false, ids, 16, &n));
        CHECK(n == 2 && ids[0] == 2 && ids[1] == 4, "small gpt2 \"ab a\": n=%lld", (long long)n);
        CHECK(smoe_tokenizer_encode(t, "ax", 2, false, ids, 16, &n) == SMOE_ERR_UNSUPPORTED, "byte without token");
        CHECK(smoe_tokenizer_bos(t) == -1 && !smoe_tokenizer_add_bos(t), "no BOS");
        CHECK(smoe_tokenizer_encode(t, "a", 1, true, ids, 16, &n) == SMOE_ERR_INVALID_ARG, "add_bos without BOS");
        char buf[16];
        CHECK(smoe_tokenizer_decode(t, ids, 0, buf, sizeof buf) == 0 && buf[0] == 0, "empty decode");
        smoe_tokenizer_free(t);
    }

    CHECK(smoe_tokenizer_from_gguf(NULL, &t) == SMOE_ERR_INVALID_ARG && t == NULL, "NULL gguf");
    smoe_tokenizer_free(NULL);
}

int main(void) {
    run_vocab("ggml-vocab-llama-spm.gguf");
    run_vocab("ggml-vocab-mistral-v1.gguf");
    run_vocab("ggml-vocab-gpt-2.gguf");
    test_streaming_split();
    test_bos_and_errors("ggml-vocab-llama-spm.gguf", true);
    test_bos_and_errors("ggml-vocab-gpt-2.gguf", false);
    test_random("ggml-vocab-llama-spm.gguf");
    test_random("ggml-vocab-gpt-2.gguf");
    test_tiny_model();
    test_hostile();
    return TEST_REPORT();
}
