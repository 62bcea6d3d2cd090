/*
 * tokenizer.c - text <-> token ids from the tokenizer.ggml.* metadata of a GGUF file.
 *
 * Two models, chosen by tokenizer.ggml.model:
 *   "llama"  SentencePiece-style BPE: spaces become U+2581 ("▁"), one "▁" is prepended
 *            to non-empty text (tokenizer.ggml.add_space_prefix, default on), the text is
 *            split into UTF-8 characters, and the adjacent pair whose concatenation is a
 *            vocabulary entry with the highest score is merged until none is left (ties:
 *            leftmost). A piece that is still not in the vocabulary falls back to byte
 *            tokens "<0xXX>" (or to the unknown token).
 *   "gpt2"   byte-level BPE: the GPT-2 pre-tokenizer regex splits the text into words,
 *            each word's bytes are mapped to GPT-2's printable byte alphabet, and
 *            tokenizer.ggml.merges are applied lowest rank first (ties: leftmost).
 * Both match llama.cpp's tokenizer (test-tokenizer-0 vectors) with special-token text not
 * parsed. Decoding maps pieces back to bytes; the streaming detokenizer holds back an
 * incomplete UTF-8 sequence until its remaining bytes arrive.
 *
 * Not done here: parsing special-token text inside the input ("<s>" is encoded as plain
 * text), pre-tokenizers other than GPT-2's (llama3, qwen2, deepseek ... are refused with
 * SMOE_ERR_UNSUPPORTED), the WordPiece/Unigram/RWKV models, text normalisation (NFKC),
 * and adding EOS. The whole vocabulary is copied, so the GGUF may be closed afterwards.
 */
#include "smoe_internal.h"
#include "unicode.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* tokenizer.ggml.token_type values (llama.cpp's llama_token_type). */
enum {
    TT_UNDEFINED = 0,
    TT_NORMAL = 1,
    TT_UNKNOWN = 2,
    TT_CONTROL = 3,
    TT_USER_DEFINED = 4,
    TT_UNUSED = 5,
    TT_BYTE = 6,
};

/* Pre-tokenizers (only GPT-2's so far; the enum is where others would go). */
enum pre_kind { PRE_GPT2 = 0 };

/* One BPE merge, keyed by the token ids of its two halves. */
typedef struct merge_slot {
    int32_t left, right; /* left < 0: empty slot */
    int32_t rank, result;
} merge_slot;

struct smoe_tokenizer {
    smoe_tokenizer_kind kind;
    enum pre_kind pre;
    int32_t n_vocab;
    int32_t bos, eos, unk; /* -1 if none */
    bool add_bos, add_space_prefix;

    /* Raw token texts, each NUL-terminated in one arena. */
    char *text;
    uint32_t *text_off, *text_len;
    /* Decoded bytes of each token (what token_bytes returns), also one arena. */
    char *piece;
    uint32_t *piece_off, *piece_len;
    float *score;
    uint8_t *type;

    /* text -> id, open addressing with linear probing; -1 marks an empty slot. */
    int32_t *map;
    uint32_t map_mask;

    /* SPM: token for each byte when a character is not in the vocabulary (-1: none).
     * BPE: token of each byte's GPT-2 alphabet character (-1: not in the vocabulary). */
    int32_t byte_tok[256];

    /* BPE merges: (left id, right id) -> rank and merged id. */
    merge_slot *merges;
    uint64_t merge_mask;
};

/* ------------------------------------------------------------------ small helpers */

static uint64_t hash_bytes(const char *s, size_t n) {
    /* FNV-1a: tokens are short, so a simple byte hash is fast enough and spreads well. */
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 0x100000001b3ull;
    }
    return h ^ (h >> 29);
}

static uint64_t hash_pair(int32_t a, int32_t b) {
    uint64_t h = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 33);
}

static int32_t lookup(const smoe_tokenizer *t, const char *s, size_t n) {
    uint32_t i = (uint32_t)hash_bytes(s, n) & t->map_mask;
    for (;;) {
        int32_t id = t->map[i];
        if (id < 0) return -1;
        if (t->text_len[id] == n && memcmp(t->text + t->text_off[id], s, n) == 0) return id;
        i = (i + 1) & t->map_mask;
    }
}

static const merge_slot *find_merge(const smoe_tokenizer *t, int32_t a, int32_t b) {
    uint64_t i = hash_pair(a, b) & t->merge_mask;
    for (;;) {
        const merge_slot *m = &t->merges[i];
        if (m->left < 0) return NULL;
        if (m->left == a && m->right == b) return m;
        i = (i + 1) & t->merge_mask;
    }
}

/* GPT-2's byte alphabet: printable Latin-1 bytes stand for themselves, the other 68
 * bytes (controls, space, DEL, NBSP, soft hyphen, ...) are shifted to U+0100.. in byte
 * order, so every byte has a visible, non-space character. fwd[b] is b's code point;
 * inv[cp] (cp < 256 + 68) is the byte, or -1 for a code point outside the alphabet. */
#define GPT2_ALPHABET_END (256 + 68)
static void gpt2_alphabet(uint16_t fwd[256], int16_t inv[GPT2_ALPHABET_END]) {
    uint16_t shifted = 256;
    for (int i = 0; i < GPT2_ALPHABET_END; i++) inv[i] = -1;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        fwd[b] = printable ? (uint16_t)b : shifted++;
        inv[fwd[b]] = (int16_t)b;
    }
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* "<0xAB>" -> 0xAB; -1 if the text is not of that form. */
static int parse_byte_token(const char *s, size_t n) {
    if (n != 6 || s[0] != '<' || s[1] != '0' || s[2] != 'x' || s[5] != '>') return -1;
    int hi = hexval(s[3]), lo = hexval(s[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

/* ------------------------------------------------------------------ loading */

void smoe_tokenizer_free(smoe_tokenizer *t) {
    if (!t) return;
    free(t->text);
    free(t->text_off);
    free(t->text_len);
    free(t->piece);
    free(t->piece_off);
    free(t->piece_len);
    free(t->score);
    free(t->type);
    free(t->map);
    free(t->merges);
    free(t);
}

/* Look up an array key: must exist (when required), be an array of elem_type and, when
 * n_expect >= 0, have exactly n_expect elements. Returns the key index, -1 if absent
 * and optional, or -2 after recording an error. */
static int64_t find_array(const smoe_gguf *g, const char *key, smoe_gguf_type elem_type, bool required,
                          int64_t n_expect, smoe_status *st) {
    int64_t k = smoe_gguf_find_key(g, key);
    if (k < 0) {
        if (!required) return -1;
        *st = smoe_err(SMOE_ERR_FORMAT, "tokenizer: missing key %s", key);
        return -2;
    }
    if (smoe_gguf_kv_type(g, k) != SMOE_GGUF_ARRAY || smoe_gguf_arr_type(g, k) != elem_type) {
        const char *want = elem_type == SMOE_GGUF_STRING ? "strings" : elem_type == SMOE_GGUF_FLOAT32 ? "float32" : "int32";
        *st = smoe_err(SMOE_ERR_FORMAT, "tokenizer: %s is not an array of %s", key, want);
        return -2;
    }
    if (n_expect >= 0 && smoe_gguf_arr_n(g, k) != (uint64_t)n_expect) {
        *st = smoe_err(SMOE_ERR_FORMAT, "tokenizer: %s has %llu elements, expected %lld", key,
                       (unsigned long long)smoe_gguf_arr_n(g, k), (long long)n_expect);
        return -2;
    }
    return k;
}

/* Optional token-id key: *id = -1 when absent or when it holds the "none" value -1
 * (some converters write 0xFFFFFFFF); any other value must be a valid id. */
static smoe_status read_id(const smoe_gguf *g, const char *key, int32_t n_vocab, int32_t *id) {
    *id = -1;
    if (smoe_gguf_find_key(g, key) < 0) return SMOE_OK;
    int64_t v;
    if (smoe_gguf_get_i64(g, key, &v) != SMOE_OK)
        return smoe_err(SMOE_ERR_FORMAT, "tokenizer: %s is not an integer token id", key);
    if (v == -1 || v == (int64_t)UINT32_MAX) return SMOE_OK;
    if (v < 0 || v >= n_vocab)
        return smoe_err(SMOE_ERR_FORMAT, "tokenizer: %s = %lld is out of range (vocabulary of %d)", key,
                        (long long)v, (int)n_vocab);
    *id = (int32_t)v;
    return SMOE_OK;
}

static smoe_status read_bool(const smoe_gguf *g, const char *key, bool dflt, bool *out) {
    *out = dflt;
    if (smoe_gguf_find_key(g, key) < 0) return SMOE_OK;
    if (smoe_gguf_get_bool(g, key, out) != SMOE_OK)
        return smoe_err(SMOE_ERR_FORMAT, "tokenizer: %s is not a bool", key);
    return SMOE_OK;
}

static bool str_is(const char *s, uint64_t n, const char *lit) {
    return n == strlen(lit) && memcmp(s, lit, n) == 0;
}

/* Decoded bytes of token id into out (room for 3 * text length + 3); returns the count.
 * inv is the GPT-2 alphabet's inverse (byte-level BPE only). */
static size_t make_piece(const smoe_tokenizer *t, int32_t id, const int16_t *inv, char *out) {
    const char *s = t->text + t->text_off[id];
    size_t n = t->text_len[id], o = 0;
    int ty = t->type[id];
    if (ty == TT_CONTROL || ty == TT_UNUSED) return 0;
    if (t->kind == SMOE_TOKENIZER_SPM) {
        if (ty == TT_UNKNOWN) { /* llama.cpp shows an unknown token as U+2585 */
            memcpy(out, "\xe2\x96\x85", 3);
            return 3;
        }
        if (ty == TT_BYTE) {
            out[0] = (char)parse_byte_token(s, n); /* validated when loading */
            return 1;
        }
        for (size_t i = 0; i < n;) {
            if (i + 3 <= n && memcmp(s + i, "\xe2\x96\x81", 3) == 0) {
                out[o++] = ' ';
                i += 3;
            } else {
                out[o++] = s[i++];
            }
        }
        return o;
    }
    /* byte-level BPE */
    if (ty == TT_UNKNOWN) return 0;
    if (ty == TT_USER_DEFINED) { /* added tokens are stored as plain text, not in the byte alphabet */
        memcpy(out, s, n);
        return n;
    }
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int l = smoe_utf8_decode((const uint8_t *)s + i, n - i, &cp);
        int b = cp < GPT2_ALPHABET_END ? inv[cp] : -1;
        if (b >= 0) {
            out[o++] = (char)b;
        } else { /* outside the byte alphabet: keep the character as it is */
            memcpy(out + o, s + i, (size_t)l);
            o += (size_t)l;
        }
        i += (size_t)l;
    }
    return o;
}

static smoe_status load_merges(smoe_tokenizer *t, const smoe_gguf *g, int64_t km) {
    uint64_t n = smoe_gguf_arr_n(g, km);
    if (n > (uint64_t)INT32_MAX / 4) return smoe_err(SMOE_ERR_FORMAT, "tokenizer: too many merges (%llu)", (unsigned long long)n);
    uint64_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    t->merges = malloc(cap * sizeof *t->merges);
    if (!t->merges) return smoe_err(SMOE_ERR_NOMEM, "tokenizer: out of memory for %llu merges", (unsigned long long)n);
    for (uint64_t i = 0; i < cap; i++) t->merges[i].left = -1;
    t->merge_mask = cap - 1;

    char *tmp = NULL;
    size_t tmp_cap = 0;
    for (uint64_t r = 0; r < n; r++) {
        uint64_t len;
        const char *s = smoe_gguf_arr_str(g, km, r, &len);
        if (!s) {
            free(tmp);
            return smoe_err(SMOE_ERR_FORMAT, "tokenizer: merge %llu cannot be read", (unsigned long long)r);
        }
        /* Split at the first space after the first byte, so a half may itself be " ". */
        const char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
        if (!sp || sp + 1 == s + len) {
            free(tmp);
            return smoe_err(SMOE_ERR_FORMAT, "tokenizer: merge %llu (\"%.*s\") is not \"left right\"",
                            (unsigned long long)r, (int)SMOE_MIN(len, 64), s);
        }
        size_t nl = (size_t)(sp - s), nr = (size_t)len - nl - 1;
        int32_t a = lookup(t, s, nl), b = lookup(t, sp + 1, nr);
        if (nl + nr > tmp_cap) {
            char *p = realloc(tmp, nl + nr);
            if (!p) {
                free(tmp);
                return smoe_err(SMOE_ERR_NOMEM, "tokenizer: out of memory");
            }
            tmp = p;
            tmp_cap = nl + nr;
        }
        memcpy(tmp, s, nl);
        memcpy(tmp + nl, sp + 1, nr);
        int32_t c = lookup(t, tmp, nl + nr);
        if (a < 0 || b < 0 || c < 0) {
            free(tmp);
            return smoe_err(SMOE_ERR_FORMAT, "tokenizer: merge %llu (\"%.*s\") names a %s that is not in the vocabulary",
                            (unsigned long long)r, (int)SMOE_MIN(len, 64), s,
                            a < 0 ? "left token" : b < 0 ? "right token" : "merged token");
        }
        uint64_t j = hash_pair(a, b) & t->merge_mask;
        while (t->merges[j].left >= 0 && !(t->merges[j].left == a && t->merges[j].right == b))
            j = (j + 1) & t->merge_mask;
        if (t->merges[j].left < 0) { /* a repeated pair keeps its first (lowest) rank */
            t->merges[j] = (merge_slot){a, b, (int32_t)r, c};
        }
    }
    free(tmp);
    return SMOE_OK;
}

static smoe_status build(smoe_tokenizer *t, const smoe_gguf *g) {
    smoe_status st = SMOE_OK;
    const char *model;
    uint64_t model_len;
    int64_t km = smoe_gguf_find_key(g, "tokenizer.ggml.model");
    if (km < 0) return smoe_err(SMOE_ERR_FORMAT, "tokenizer: missing key tokenizer.ggml.model");
    if (smoe_gguf_kv_type(g, km) != SMOE_GGUF_STRING ||
        smoe_gguf_get_str(g, "tokenizer.ggml.model", &model, &model_len) != SMOE_OK)
        return smoe_err(SMOE_ERR_FORMAT, "tokenizer: tokenizer.ggml.model is not a string");
    if (str_is(model, model_len, "llama")) {
        t->kind = SMOE_TOKENIZER_SPM;
    } else if (str_is(model, model_len, "gpt2")) {
        t->kind = SMOE_TOKENIZER_BPE;
    } else {
        return smoe_err(SMOE_ERR_UNSUPPORTED, "tokenizer: model \"%.*s\" is not supported (only llama and gpt2)",
                        (int)SMOE_MIN(model_len, 64), model);
    }

    if (t->kind == SMOE_TOKENIZER_BPE) {
        /* Pre-tokenizers known to use GPT-2's regex. "default"/absent is taken as GPT-2 too,
         * which is what the original byte-level BPE did. */
        const char *pre = "default";
        uint64_t pre_len = 7;
        int64_t kp = smoe_gguf_find_key(g, "tokenizer.ggml.pre");
        if (kp >= 0 && (smoe_gguf_kv_type(g, kp) != SMOE_GGUF_STRING ||
                        smoe_gguf_get_str(g, "tokenizer.ggml.pre", &pre, &pre_len) != SMOE_OK))
            return smoe_err(SMOE_ERR_FORMAT, "tokenizer: tokenizer.ggml.pre is not a string");
        if (str_is(pre, pre_len, "default") || str_is(pre, pre_len, "gpt-2") || str_is(pre, pre_len, "gpt2") ||
            str_is(pre, pre_len, "olmo") || str_is(pre, pre_len, "mpt")) {
            t->pre = PRE_GPT2;
        } else {
            return smoe_err(SMOE_ERR_UNSUPPORTED, "tokenizer: pre-tokenizer \"%.*s\" is not supported (only gpt-2)",
                            (int)SMOE_MIN(pre_len, 64), pre);
        }
    }

    int64_t kt = find_array(g, "tokenizer.ggml.tokens", SMOE_GGUF_STRING, true, -1, &st);
    if (kt < 0) return st;
    uint64_t n = smoe_gguf_arr_n(g, kt);
    if (n == 0 || n > (uint64_t)INT32_MAX / 4)
        return smoe_err(SMOE_ERR_FORMAT, "tokenizer: vocabulary of %llu tokens", (unsigned long long)n);
    t->n_vocab = (int32_t)n;
    int64_t ks = find_array(g, "tokenizer.ggml.scores", SMOE_GGUF_FLOAT32, false, (int64_t)n, &st);
    if (ks == -2) return st;
    int64_t ky = find_array(g, "tokenizer.ggml.token_type", SMOE_GGUF_INT32, false, (int64_t)n, &st);
    if (ky == -2) return st;

    /* Token texts into one arena. */
    uint64_t total = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t len;
        if (!smoe_gguf_arr_str(g, kt, i, &len))
            return smoe_err(SMOE_ERR_FORMAT, "tokenizer: token %llu cannot be read", (unsigned long long)i);
        total += len + 1;
        if (total > UINT32_MAX / 4) return smoe_err(SMOE_ERR_FORMAT, "tokenizer: token texts too large");
    }
    t->text = malloc(total);
    t->text_off = malloc(n * sizeof *t->text_off);
    t->text_len = malloc(n * sizeof *t->text_len);
    t->score = malloc(n * sizeof *t->score);
    t->type = malloc(n);
    t->piece_off = malloc(n * sizeof *t->piece_off);
    t->piece_len = malloc(n * sizeof *t->piece_len);
    uint64_t map_cap = 16;
    while (map_cap < 2 * n) map_cap *= 2;
    t->map = malloc(map_cap * sizeof *t->map);
    if (!t->text || !t->text_off || !t->text_len || !t->score || !t->type || !t->piece_off || !t->piece_len || !t->map)
        return smoe_err(SMOE_ERR_NOMEM, "tokenizer: out of memory for %llu tokens", (unsigned long long)n);
    t->map_mask = (uint32_t)(map_cap - 1);
    memset(t->map, 0xff, map_cap * sizeof *t->map);

    const uint8_t *scores = ks >= 0 ? smoe_gguf_arr_data(g, ks) : NULL;
    const uint8_t *types = ky >= 0 ? smoe_gguf_arr_data(g, ky) : NULL;
    if ((ks >= 0 && !scores) || (ky >= 0 && !types))
        return smoe_err(SMOE_ERR_FORMAT, "tokenizer: scores or token types cannot be read");
    uint64_t off = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t len;
        const char *s = smoe_gguf_arr_str(g, kt, i, &len);
        memcpy(t->text + off, s, len);
        t->text[off + len] = 0;
        t->text_off[i] = (uint32_t)off;
        t->text_len[i] = (uint32_t)len;
        off += len + 1;

        float sc = 0.0f;
        if (scores) memcpy(&sc, scores + 4 * i, 4); /* little-endian file, may be unaligned */
        if (isnan(sc)) return smoe_err(SMOE_ERR_FORMAT, "tokenizer: score of token %llu is NaN", (unsigned long long)i);
        t->score[i] = sc == 0.0f ? 0.0f : sc; /* -0 == +0 for the merge order */

        int32_t ty = TT_NORMAL;
        if (types) memcpy(&ty, types + 4 * i, 4);
        if (ty < TT_UNDEFINED || ty > TT_BYTE)
            return smoe_err(SMOE_ERR_FORMAT, "tokenizer: token %llu has unknown type %d", (unsigned long long)i, (int)ty);
        if (t->kind == SMOE_TOKENIZER_SPM && ty == TT_BYTE && parse_byte_token(s, len) < 0)
            return smoe_err(SMOE_ERR_FORMAT, "tokenizer: byte token %llu is \"%.*s\", not <0xXX>", (unsigned long long)i,
                            (int)SMOE_MIN(len, 64), s);
        t->type[i] = (uint8_t)ty;

        /* A text that appears twice maps to its last id, as in llama.cpp. */
        uint32_t j = (uint32_t)hash_bytes(s, len) & t->map_mask;
        while (t->map[j] >= 0 && !(t->text_len[t->map[j]] == len && memcmp(t->text + t->text_off[t->map[j]], s, len) == 0))
            j = (j + 1) & t->map_mask;
        t->map[j] = (int32_t)i;
    }

    /* Decoded pieces. */
    uint16_t fwd[256];
    int16_t inv[GPT2_ALPHABET_END];
    gpt2_alphabet(fwd, inv);
    uint64_t ptotal = 0;
    for (uint64_t i = 0; i < n; i++) ptotal += 3 * (uint64_t)t->text_len[i] + 4;
    t->piece = malloc(ptotal);
    if (!t->piece) return smoe_err(SMOE_ERR_NOMEM, "tokenizer: out of memory");
    off = 0;
    for (uint64_t i = 0; i < n; i++) {
        size_t pl = make_piece(t, (int32_t)i, inv, t->piece + off);
        t->piece_off[i] = (uint32_t)off;
        t->piece_len[i] = (uint32_t)pl;
        off += pl;
    }

    if ((st = read_id(g, "tokenizer.ggml.bos_token_id", t->n_vocab, &t->bos)) != SMOE_OK) return st;
    if ((st = read_id(g, "tokenizer.ggml.eos_token_id", t->n_vocab, &t->eos)) != SMOE_OK) return st;
    if ((st = read_id(g, "tokenizer.ggml.unknown_token_id", t->n_vocab, &t->unk)) != SMOE_OK) return st;
    if (t->unk < 0 && smoe_gguf_find_key(g, "tokenizer.ggml.unknown_token_id") < 0) {
        /* Without the key, the vocabulary's own unknown-type token (if any) serves. */
        for (int32_t i = 0; i < t->n_vocab && t->unk < 0; i++)
            if (t->type[i] == TT_UNKNOWN) t->unk = i;
    }
    bool spm = t->kind == SMOE_TOKENIZER_SPM;
    if ((st = read_bool(g, "tokenizer.ggml.add_bos_token", spm, &t->add_bos)) != SMOE_OK) return st;
    if ((st = read_bool(g, "tokenizer.ggml.add_space_prefix", spm, &t->add_space_prefix)) != SMOE_OK) return st;

    for (int b = 0; b < 256; b++) {
        char buf[8];
        int32_t id;
        if (spm) {
            snprintf(buf, sizeof buf, "<0x%02X>", b);
            id = lookup(t, buf, 6);
            if (id < 0) { /* a vocabulary without byte fallback may still hold the byte itself */
                buf[0] = (char)b;
                id = b < 0x80 ? lookup(t, buf, 1) : -1;
            }
        } else {
            int l = smoe_utf8_encode(fwd[b], buf);
            id = lookup(t, buf, (size_t)l);
        }
        t->byte_tok[b] = id;
    }

    if (!spm) {
        int64_t kmg = find_array(g, "tokenizer.ggml.merges", SMOE_GGUF_STRING, true, -1, &st);
        if (kmg < 0) return st;
        if ((st = load_merges(t, g, kmg)) != SMOE_OK) return st;
    }
    return SMOE_OK;
}

smoe_status smoe_tokenizer_from_gguf(const smoe_gguf *g, smoe_tokenizer **out) {
    if (!out) return smoe_err(SMOE_ERR_INVALID_ARG, "smoe_tokenizer_from_gguf: out is NULL");
    *out = NULL;
    if (!g) return smoe_err(SMOE_ERR_INVALID_ARG, "smoe_tokenizer_from_gguf: gguf is NULL");
    smoe_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return smoe_err(SMOE_ERR_NOMEM, "tokenizer: out of memory");
    smoe_status st = build(t, g);
    if (st != SMOE_OK) {
        smoe_tokenizer_free(t);
        return st;
    }
    *out = t;
    return SMOE_OK;
}

smoe_tokenizer_kind smoe_tokenizer_get_kind(const smoe_tokenizer *t) { return t ? t->kind : SMOE_TOKENIZER_SPM; }
int32_t smoe_tokenizer_n_vocab(const smoe_tokenizer *t) { return t ? t->n_vocab : 0; }
int32_t smoe_tokenizer_bos(const smoe_tokenizer *t) { return t ? t->bos : -1; }
int32_t smoe_tokenizer_eos(const smoe_tokenizer *t) { return t ? t->eos : -1; }
bool smoe_tokenizer_add_bos(const smoe_tokenizer *t) { return t && t->add_bos && t->bos >= 0; }

const char *smoe_tokenizer_token_text(const smoe_tokenizer *t, int32_t id) {
    if (!t || id < 0 || id >= t->n_vocab) return NULL;
    return t->text + t->text_off[id];
}

int64_t smoe_tokenizer_token_bytes(const smoe_tokenizer *t, int32_t id, char *buf, size_t cap) {
    if (!t || id < 0 || id >= t->n_vocab) return -1;
    size_t n = t->piece_len[id];
    if (buf && cap) memcpy(buf, t->piece + t->piece_off[id], SMOE_MIN(n, cap));
    return (int64_t)n;
}

/* ------------------------------------------------------------------ BPE merge engine */

/* Both models merge adjacent symbols of a doubly linked list, best pair first, through a
 * binary max-heap. Entries are never removed early; a popped entry whose symbols have
 * changed since it was pushed is stale and skipped. */
typedef struct sym {
    int32_t prev, next;
    uint32_t start, len; /* bytes of the (normalised) text; len 0 = merged away */
    int32_t id;          /* BPE: current token id (-1: byte without a token) */
} sym;

typedef struct pair {
    uint32_t key;        /* larger = merge first */
    int32_t left, right; /* symbol indices; ties go to the smaller left */
    int32_t a, b;        /* SPM: merged length; BPE: ids of the halves when pushed */
} pair;

typedef struct heap {
    pair *v;
    size_t n, cap;
} heap;

static bool pair_before(const pair *x, const pair *y) {
    return x->key > y->key || (x->key == y->key && x->left < y->left);
}

static int heap_push(heap *h, pair p) {
    if (h->n == h->cap) {
        size_t nc = h->cap ? 2 * h->cap : 64;
        pair *nv = realloc(h->v, nc * sizeof *nv);
        if (!nv) return -1;
        h->v = nv;
        h->cap = nc;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!pair_before(&p, &h->v[parent])) break;
        h->v[i] = h->v[parent];
        i = parent;
    }
    h->v[i] = p;
    return 0;
}

static pair heap_pop(heap *h) {
    pair top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && pair_before(&h->v[c + 1], &h->v[c])) c++;
        if (!pair_before(&h->v[c], &last)) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n) h->v[i] = last;
    return top;
}

/* Order-preserving map of a float score to an unsigned key. */
static uint32_t score_key(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

/* Growable output of ids. */
typedef struct idvec {
    int32_t *v;
    size_t n, cap;
} idvec;

static int idvec_push(idvec *o, int32_t id) {
    if (o->n == o->cap) {
        size_t nc = o->cap ? 2 * o->cap : 64;
        int32_t *nv = realloc(o->v, nc * sizeof *nv);
        if (!nv) return -1;
        o->v = nv;
        o->cap = nc;
    }
    o->v[o->n++] = id;
    return 0;
}

/* ------------------------------------------------------------------ SentencePiece BPE */

static int spm_try_pair(const smoe_tokenizer *t, const char *s, const sym *sy, heap *h, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return 0;
    uint32_t len = sy[l].len + sy[r].len;
    int32_t id = lookup(t, s + sy[l].start, len);
    if (id < 0) return 0;
    return heap_push(h, (pair){score_key(t->score[id]), l, r, (int32_t)len, 0});
}

static smoe_status encode_spm(const smoe_tokenizer *t, const char *text, size_t len, idvec *out) {
    if (len == 0) return SMOE_OK;
    /* Normalise: optional leading "▁", every space becomes "▁". */
    char *s = malloc(3 * len + 3);
    sym *sy = malloc((3 * len + 3) * sizeof *sy);
    heap h = {0};
    smoe_status st = SMOE_OK;
    if (!s || !sy) {
        st = smoe_err(SMOE_ERR_NOMEM, "tokenizer: out of memory");
        goto done;
    }
    size_t m = 0;
    if (t->add_space_prefix) {
        memcpy(s, "\xe2\x96\x81", 3);
        m = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(s + m, "\xe2\x96\x81", 3);
            m += 3;
        } else {
            s[m++] = text[i];
        }
    }
    /* One symbol per UTF-8 character (an invalid byte is a character of its own). */
    int32_t ns = 0;
    for (size_t i = 0; i < m;) {
        uint32_t cp;
        int l = smoe_utf8_decode((const uint8_t *)s + i, m - i, &cp);
        sy[ns] = (sym){ns - 1, ns + 1, (uint32_t)i, (uint32_t)l, -1};
        ns++;
        i += (size_t)l;
    }
    sy[ns - 1].next = -1;
    for (int32_t i = 0; i + 1 < ns; i++)
        if (spm_try_pair(t, s, sy, &h, i, i + 1)) goto oom;
    while (h.n) {
        pair p = heap_pop(&h);
        sym *L = &sy[p.left], *R = &sy[p.right];
        if (L->len == 0 || R->len == 0 || L->next != p.right || L->len + R->len != (uint32_t)p.a) continue;
        L->len += R->len;
        R->len = 0;
        L->next = R->next;
        if (R->next >= 0) sy[R->next].prev = p.left;
        if (spm_try_pair(t, s, sy, &h, L->prev, p.left) || spm_try_pair(t, s, sy, &h, p.left, L->next)) goto oom;
    }
    for (int32_t i = 0; i >= 0; i = sy[i].next) {
        int32_t id = lookup(t, s + sy[i].start, sy[i].len);
        if (id >= 0) {
            if (idvec_push(out, id)) goto oom;
            continue;
        }
        /* Not in the vocabulary: its bytes as byte tokens, or else one unknown token. */
        bool all_bytes = true;
        for (uint32_t k = 0; k < sy[i].len; k++) all_bytes &= t->byte_tok[(uint8_t)s[sy[i].start + k]] >= 0;
        if (all_bytes) {
            for (uint32_t k = 0; k < sy[i].len; k++)
                if (idvec_push(out, t->byte_tok[(uint8_t)s[sy[i].start + k]])) goto oom;
        } else if (t->unk >= 0) {
            if (idvec_push(out, t->unk)) goto oom;
        } else {
            st = smoe_err(SMOE_ERR_UNSUPPORTED, "tokenizer: character at byte %u has no token, no byte token and no unknown token",
                          (unsigned)sy[i].start);
            goto done;
        }
    }
    goto done;
oom:
    st = smoe_err(SMOE_ERR_NOMEM, "tokenizer: out of memory");
done:
    free(s);
    free(sy);
    free(h.v);
    return st;
}

/* ------------------------------------------------------------------ byte-level BPE */

/* End of the word that starts at pos, by the GPT-2 pre-tokenizer regex
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * evaluated as a backtracking regex engine would: alternatives in order, each greedy. */
static size_t gpt2_word_end(const uint8_t *s, size_t n, size_t pos) {
    uint32_t c;
    int l = smoe_utf8_decode(s + pos, n - pos, &c);
    if (c == '\'' && pos + 1 < n) { /* contractions, case-sensitive as in GPT-2 */
        uint8_t a = s[pos + 1];
        if (a == 's' || a == 't' || a == 'm' || a == 'd') return pos + 2;
        if (pos + 2 < n) {
            uint8_t b = s[pos + 2];
            if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return pos + 3;
        }
    }
    /* " ?X+" for X = letters, numbers, other: an optional leading space (U+0020 only). */
    size_t p = pos;
    enum smoe_ucls cls = SMOE_UCLS_SPACE;
    int ll = l;
    if (c == ' ') {
        if (pos + 1 < n) {
            uint32_t c2;
            p = pos + 1;
            ll = smoe_utf8_decode(s + p, n - p, &c2);
            cls = smoe_ucls_of(c2);
        }
    } else {
        cls = smoe_ucls_of(c);
    }
    if (cls != SMOE_UCLS_SPACE) {
        size_t q = p + (size_t)ll;
        while (q < n) {
            uint32_t c3;
            int l3 = smoe_utf8_decode(s + q, n - q, &c3);
            if (smoe_ucls_of(c3) != cls) break;
            q += (size_t)l3;
        }
        return q;
    }
    /* Whitespace run: "\s+(?!\S)" leaves the last space to prefix the next word when one
     * follows; a lone space before a non-space falls to "\s+". */
    size_t q = pos, last = 0;
    while (q < n) {
        uint32_t c4;
        int l4 = smoe_utf8_decode(s + q, n - q, &c4);
        if (smoe_ucls_of(c4) != SMOE_UCLS_SPACE) break;
        last = (size_t)l4;
        q += (size_t)l4;
    }
    if (q == n || q - pos == last) return q;
    return q - last;
}

static int bpe_try_pair(const smoe_tokenizer *t, const sym *sy, heap *h, int32_t l, int32_t r) {
    if (l < 0 || r < 0 || sy[l].id < 0 || sy[r].id < 0) return 0;
    const merge_slot *m = find_merge(t, sy[l].id, sy[r].id);
    if (!m) return 0;
    return heap_push(h, (pair){UINT32_MAX - (uint32_t)m->rank, l, r, sy[l].id, sy[r].id});
}

static smoe_status encode_bpe(const smoe_tokenizer *t, const char *text, size_t len, idvec *out) {
    if (len == 0) return SMOE_OK;
    const uint8_t *s = (const uint8_t *)text;
    sym *sy = malloc(len * sizeof *sy);
    heap h = {0};
    smoe_status st = SMOE_OK;
    if (!sy) return smoe_err(SMOE_ERR_NOMEM, "tokenizer: out of memory");
    for (size_t w0 = 0; w0 < len;) {
        size_t w1 = gpt2_word_end(s, len, w0);
        int32_t ns = (int32_t)(w1 - w0);
        for (int32_t i = 0; i < ns; i++) sy[i] = (sym){i - 1, i + 1, (uint32_t)(w0 + (size_t)i), 1, t->byte_tok[s[w0 + (size_t)i]]};
        sy[ns - 1].next = -1;
        h.n = 0;
        for (int32_t i = 0; i + 1 < ns; i++)
            if (bpe_try_pair(t, sy, &h, i, i + 1)) goto oom;
        while (h.n) {
            pair p = heap_pop(&h);
            sym *L = &sy[p.left], *R = &sy[p.right];
            if (L->len == 0 || R->len == 0 || L->next != p.right || L->id != p.a || R->id != p.b) continue;
            L->id = find_merge(t, p.a, p.b)->result;
            L->len += R->len;
            R->len = 0;
            L->next = R->next;
            if (R->next >= 0) sy[R->next].prev = p.left;
            if (bpe_try_pair(t, sy, &h, L->prev, p.left) || bpe_try_pair(t, sy, &h, p.left, L->next)) goto oom;
        }
        for (int32_t i = 0; i >= 0; i = sy[i].next) {
            int32_t id = sy[i].id;
            if (id < 0) id = t->unk; /* a byte whose alphabet character is not a token */
            if (id < 0) {
                st = smoe_err(SMOE_ERR_UNSUPPORTED, "tokenizer: byte 0x%02X has no token and there is no unknown token",
                              s[sy[i].start]);
                goto done;
            }
            if (idvec_push(out, id)) goto oom;
        }
        w0 = w1;
    }
    goto done;
oom:
    st = smoe_err(SMOE_ERR_NOMEM, "tokenizer: out of memory");
done:
    free(sy);
    free(h.v);
    return st;
}

smoe_status smoe_tokenizer_encode(const smoe_tokenizer *t, const char *text, size_t len, bool add_bos,
                                  int32_t *ids, int64_t cap, int64_t *n_out) {
    if (n_out) *n_out = 0;
    if (!t || !n_out || (!text && len) || cap < 0 || (!ids && cap > 0))
        return smoe_err(SMOE_ERR_INVALID_ARG, "smoe_tokenizer_encode: bad arguments");
    if (len > (size_t)INT32_MAX / 8) return smoe_err(SMOE_ERR_RANGE, "smoe_tokenizer_encode: text of %zu bytes is too long", len);
    if (add_bos && t->bos < 0) return smoe_err(SMOE_ERR_INVALID_ARG, "smoe_tokenizer_encode: the vocabulary has no BOS token");
    idvec out = {0};
    smoe_status st = SMOE_OK;
    if (add_bos && idvec_push(&out, t->bos)) {
        st = smoe_err(SMOE_ERR_NOMEM, "tokenizer: out of memory");
    } else {
        st = t->kind == SMOE_TOKENIZER_SPM ? encode_spm(t, text, len, &out) : encode_bpe(t, text, len, &out);
    }
    if (st == SMOE_OK) {
        if (out.n && cap > 0) memcpy(ids, out.v, (size_t)SMOE_MIN((int64_t)out.n, cap) * sizeof *ids);
        *n_out = (int64_t)out.n;
        if ((int64_t)out.n > cap)
            st = smoe_err(SMOE_ERR_RANGE, "smoe_tokenizer_encode: %zu tokens do not fit in %lld", out.n, (long long)cap);
    }
    free(out.v);
    return st;
}

/* ------------------------------------------------------------------ decoding */

void smoe_detok_init(smoe_detok *d, const smoe_tokenizer *t) {
    memset(d, 0, sizeof *d);
    d->tok = t;
    d->at_start = true;
}

static const char REPLACEMENT[3] = {(char)0xEF, (char)0xBF, (char)0xBD}; /* U+FFFD */

int64_t smoe_detok_push(smoe_detok *d, int32_t id, char *buf, size_t cap) {
    if (!d || !d->tok || !buf || cap == 0) return -1;
    const smoe_tokenizer *t = d->tok;
    if (id < 0 || id >= t->n_vocab) {
        smoe_err(SMOE_ERR_RANGE, "detokenizer: token id %d out of range [0, %d)", (int)id, (int)t->n_vocab);
        return -1;
    }
    const char *p = t->piece + t->piece_off[id];
    size_t pl = t->piece_len[id];
    bool at_start = d->at_start;
    int ty = t->type[id];
    if (ty != TT_CONTROL && ty != TT_UNUSED) {
        /* SentencePiece drops the space its encoder prepended: the first text piece's
         * leading space. BOS and other control tokens before it do not count. */
        if (at_start && t->kind == SMOE_TOKENIZER_SPM && t->add_space_prefix && ty != TT_BYTE && ty != TT_UNKNOWN &&
            pl > 0 && p[0] == ' ') {
            p++;
            pl--;
        }
        at_start = false;
    }
    /* Walk the held-back bytes followed by the piece, emitting complete characters,
     * U+FFFD for ill-formed bytes, and keeping an incomplete tail. Nothing in *d changes
     * until the output is known to fit, so a -1 for a small buffer can be retried. */
    size_t np = (size_t)d->n_pending, total = np + pl, i = 0, o = 0;
    char keep[8];
    size_t nkeep = 0;
    while (i < total) {
        uint8_t w[4];
        size_t k = SMOE_MIN((size_t)4, total - i);
        for (size_t j = 0; j < k; j++) w[j] = (uint8_t)(i + j < np ? d->pending[i + j] : p[i + j - np]);
        int r = smoe_utf8_check(w, k);
        if (r == 0) { /* valid so far, needs bytes from a later token */
            memcpy(keep, w, k);
            nkeep = k;
            break;
        }
        const char *src = r > 0 ? (const char *)w : REPLACEMENT;
        size_t len = r > 0 ? (size_t)r : 3;
        if (o + len + 1 > cap) {
            smoe_err(SMOE_ERR_RANGE, "detokenizer: output buffer of %zu bytes is too small", cap);
            return -1;
        }
        memcpy(buf + o, src, len);
        o += len;
        i += r > 0 ? (size_t)r : (size_t)-r;
    }
    buf[o] = 0;
    memcpy(d->pending, keep, nkeep);
    d->n_pending = (int32_t)nkeep;
    d->at_start = at_start;
    return (int64_t)o;
}

int64_t smoe_detok_flush(smoe_detok *d, char *buf, size_t cap) {
    if (!d || !buf || cap == 0) return -1;
    size_t o = 0;
    if (d->n_pending > 0) { /* a valid prefix cut short: one U+FFFD for all of it */
        if (cap < 4) return -1;
        memcpy(buf, REPLACEMENT, 3);
        o = 3;
        d->n_pending = 0;
    }
    buf[o] = 0;
    return (int64_t)o;
}

int64_t smoe_tokenizer_decode(const smoe_tokenizer *t, const int32_t *ids, int64_t n, char *buf, size_t cap) {
    if (!t || (n > 0 && !ids) || n < 0 || !buf || cap == 0) return -1;
    smoe_detok d;
    smoe_detok_init(&d, t);
    size_t o = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t r = smoe_detok_push(&d, ids[i], buf + o, cap - o);
        if (r < 0) return -1;
        o += (size_t)r;
    }
    int64_t r = smoe_detok_flush(&d, buf + o, cap - o);
    if (r < 0) return -1;
    return (int64_t)(o + (size_t)r);
}
