/*
 * bpe.c - tokenizer training: SentencePiece-style BPE with byte fallback (smoe_tokenizer_train).
 *
 * The vocabulary it writes is for the SPM encoder of tokenizer.c and llama.cpp: text gets
 * a leading "▁" (U+2581), spaces become "▁", the text is split into characters, and the
 * adjacent pair whose concatenation is a piece with the highest score is merged until none
 * is left (ties: leftmost); characters without a piece become byte tokens. Training is
 * built so that this encoder reproduces, for every chunk of the training text, exactly
 * the segmentation training ended with:
 *
 *  1. Read. Every non-empty line (a trailing '\r' dropped) is normalised as the encoder
 *     does (dummy-prefix "▁", spaces to "▁") and cut into chunks: a "▁" starts a new
 *     chunk, and so does a change of character class (letter, number, white space, other:
 *     unicode.h), except right after the "▁". "▁In▁the▁beginning,▁God" gives "▁In",
 *     "▁the", "▁beginning", ",", "▁God". Equal chunks are counted once with a frequency.
 *  2. Base characters: most frequent first (ties: lower code point), taken until they cover
 *     character_coverage of all character occurrences (SentencePiece's rule), at most what
 *     the vocabulary has room for. Invalid UTF-8 and U+0000 are never base characters.
 *     The others are "rare": left to byte fallback, never part of a piece.
 *  3. Merge. A candidate is the string of two adjacent symbols; its count is the sum of
 *     chunk frequencies over its adjacent occurrences (overlaps counted, as in SentencePiece).
 *     Candidates are keyed by their string, not by the pair of halves, because the encoder
 *     merges any two symbols whose concatenation is a piece, however they split it. The
 *     candidate with the highest count wins; ties go to the byte-wise smaller string. It
 *     becomes the next piece (rank r, score -r), and every chunk holding it is segmented
 *     again by the encoder's rule with the vocabulary so far (starting from its current
 *     segmentation, which is the encoder's fixpoint without the new piece: the new piece has
 *     the lowest score, so the encoder reaches that state first), with pair counts updated
 *     by the difference. By induction every chunk's state is the encoder's output.
 *  4. Valid pieces (so no piece spans what the encoder must keep apart): a "▁" only in
 *     first place; the characters after it of one class; at most max_piece_chars
 *     characters; and never the text of a special or byte token ("<s>", "<0x41>", ...) or
 *     a proper prefix or suffix of one of at least two characters, so the encoder can never
 *     put together a control or byte token from pieces (which would decode wrongly).
 *     Because no piece crosses a chunk boundary, encoding a whole line gives the
 *     concatenation of its chunks' segmentations.
 *
 * Data structures: the chunk table (string -> frequency, then each chunk's current symbol
 * ids), the symbols (base characters, then merged pieces), the candidates (string, count,
 * the chunks that may hold it: a list appended to whenever a chunk gains an occurrence, so
 * it may hold stale entries), a map (left id, right id) -> candidate and a map string ->
 * candidate, and a lazy max-heap of (count, candidate): an entry may overestimate; a popped
 * stale entry is pushed again with the true count. Work per merge is proportional to the
 * chunks that hold the merged pair, so the 4.3 MB King James Bible trains in well under a
 * second.
 *
 * Not done here: Unicode normalisation (NFKC), splitting by script within letters,
 * sampling of sentences, the unigram model, user-defined symbols.
 */
#include "train/bpe.h"
#include "train/corpus.h"

#include "smoe_internal.h"
#include "unicode.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WS_CP 0x2581u /* "▁" */
#define N_CP 0x110000u
enum { CLS_NONE = 4 }; /* the class of a piece that is only "▁" */

/* tokenizer.ggml.token_type values */
enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_BYTE = 6 };

/* ------------------------------------------------------------------ small containers */

typedef struct arena {
    char *p;
    size_t n, cap;
} arena;

/* Make room for n more bytes; -1 when out of memory. */
static int arena_reserve(arena *a, size_t n) {
    if (a->n + n <= a->cap) return 0;
    size_t nc = a->cap ? a->cap : 4096;
    while (nc < a->n + n) nc *= 2;
    char *np = realloc(a->p, nc);
    if (!np) return -1;
    a->p = np;
    a->cap = nc;
    return 0;
}

/* Grow *v (elements of es bytes) to hold at least need; -1 when out of memory. */
static int grow(void **v, size_t *cap, size_t need, size_t es) {
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap : 16;
    while (nc < need) nc *= 2;
    void *np = realloc(*v, nc * es);
    if (!np) return -1;
    *v = np;
    *cap = nc;
    return 0;
}

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a, then a final mix for the low bits */
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 0x100000001b3ull;
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ull;
    return h ^ (h >> 32);
}

static uint64_t hash_u64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

/* Open-addressing table from a 64-bit hash to an item index; slot = index + 1 (0 =
 * empty). The caller compares keys through its own items. Kept at most half full. */
typedef struct imap {
    uint64_t *hash;
    int32_t *slot;
    size_t mask, n;
} imap;

static int imap_init(imap *m) {
    m->hash = malloc(64 * sizeof *m->hash);
    m->slot = calloc(64, sizeof *m->slot);
    m->mask = 63;
    m->n = 0;
    return m->hash && m->slot ? 0 : -1;
}

static void imap_free(imap *m) {
    free(m->hash);
    free(m->slot);
}

/* Put item idx (hash h) in empty slot i, then grow when half full; -1 when out of memory. */
static int imap_insert(imap *m, size_t i, uint64_t h, int32_t idx) {
    m->slot[i] = idx + 1;
    m->hash[i] = h;
    if (2 * ++m->n <= m->mask + 1) return 0;
    size_t nc = 2 * (m->mask + 1);
    uint64_t *nh = malloc(nc * sizeof *nh);
    int32_t *ns = calloc(nc, sizeof *ns);
    if (!nh || !ns) {
        free(nh);
        free(ns);
        return -1;
    }
    for (size_t k = 0; k <= m->mask; k++) {
        if (!m->slot[k]) continue;
        size_t j = m->hash[k] & (nc - 1);
        while (ns[j]) j = (j + 1) & (nc - 1);
        ns[j] = m->slot[k];
        nh[j] = m->hash[k];
    }
    free(m->hash);
    free(m->slot);
    m->hash = nh;
    m->slot = ns;
    m->mask = nc - 1;
    return 0;
}

/* ------------------------------------------------------------------ the trainer state */

typedef struct bsym {
    size_t off;        /* text in b->text */
    uint32_t len;      /* bytes */
    uint16_t nchars;
    uint8_t lead_ws;   /* starts with "▁" */
    uint8_t cls;       /* class of the characters after a leading "▁" (CLS_NONE: none) */
    int32_t rank;      /* merge rank; -1 for a base character */
} bsym;

typedef struct bcand {
    size_t off;        /* the concatenated text in b->text */
    uint32_t len;
    uint16_t nchars;
    uint8_t lead_ws, cls, valid;
    int32_t piece;     /* symbol id once merged, else -1 */
    int64_t count;
    int32_t *post;     /* chunks that may hold it (may repeat or be stale) */
    uint32_t npost, cpost;
} bcand;

typedef struct bchunk {
    size_t off;        /* text in b->ctext */
    uint32_t len;      /* bytes */
    uint32_t n;        /* current symbols */
    size_t seq;        /* its symbols in b->seq (room for its character count) */
    int64_t freq;
} bchunk;

typedef struct heap_ent {
    int64_t count;
    int32_t cand;
} heap_ent;

struct smoe_bpe {
    smoe_tokenizer_train_params p;
    smoe_tokenizer_train_stats st;
    bool oom;

    /* reading */
    int64_t *char_count;  /* [N_CP] while reading */
    arena ctext;          /* chunk texts */
    bchunk *chunk;
    size_t n_chunk, c_chunk;
    imap chunk_map;       /* chunk text -> chunk */
    char *norm;           /* normalised line */
    size_t norm_cap;

    /* symbols: base characters 0..n_base-1 (most frequent first), then merged pieces */
    arena text;           /* symbol and candidate texts */
    bsym *sym;
    size_t n_sym, c_sym;
    int32_t n_base;
    int32_t *seq;         /* every chunk's current symbol ids (-1: a rare character) */

    /* candidates */
    bcand *cand;
    size_t n_cand, c_cand;
    uint64_t *pkey;       /* pair table: (left << 32 | right) per slot, UINT64_MAX = empty */
    int32_t *pval;        /* ... and the candidate */
    size_t pmask, pn;
    imap cand_map;        /* candidate text -> candidate */
    heap_ent *heap;
    size_t n_heap, c_heap;

    /* scratch of a chunk update */
    int32_t *old_pairs, *new_pairs;
    size_t c_old, c_new;
    int32_t *seen;        /* [n_chunk]: last merge (rank + 1) that visited the chunk */

    /* result */
    int32_t n_merges;
    int32_t *rank_sym;    /* [n_merges] */
    int64_t *merge_count; /* [n_merges] */
    char byte_text[256][7];
};

static uint8_t cls_of(uint32_t cp) {
    return cp == SMOE_UTF8_INVALID ? (uint8_t)SMOE_UCLS_OTHER : (uint8_t)smoe_ucls_of(cp);
}

static void progress(const smoe_bpe *b, const char *stage, int64_t done, int64_t total) {
    if (b->p.progress) b->p.progress(b->p.progress_user, stage, done, total);
}

/* ------------------------------------------------------------------ reading */

static int32_t chunk_find(const smoe_bpe *b, const char *s, size_t n, uint64_t h, size_t *slot) {
    const imap *m = &b->chunk_map;
    size_t i = h & m->mask;
    for (; m->slot[i]; i = (i + 1) & m->mask) {
        if (m->hash[i] != h) continue;
        const bchunk *c = &b->chunk[m->slot[i] - 1];
        if (c->len == n && memcmp(b->ctext.p + c->off, s, n) == 0) return m->slot[i] - 1;
    }
    if (slot) *slot = i;
    return -1;
}

static void chunk_add(smoe_bpe *b, const char *s, size_t n) {
    if (n > SMOE_BPE_MAX_CHUNK_BYTES) {
        b->st.n_long_chunks++;
        return;
    }
    uint64_t h = hash_bytes(s, n);
    size_t slot = 0;
    int32_t k = chunk_find(b, s, n, h, &slot);
    if (k >= 0) {
        b->chunk[k].freq++;
        return;
    }
    if (b->n_chunk >= INT32_MAX - 1 || grow((void **)&b->chunk, &b->c_chunk, b->n_chunk + 1, sizeof *b->chunk) ||
        arena_reserve(&b->ctext, n)) {
        b->oom = true;
        return;
    }
    memcpy(b->ctext.p + b->ctext.n, s, n);
    b->chunk[b->n_chunk] = (bchunk){b->ctext.n, (uint32_t)n, 0, 0, 1};
    b->ctext.n += n;
    if (imap_insert(&b->chunk_map, slot, h, (int32_t)b->n_chunk++)) b->oom = true;
}

/* Normalise as the encoder does: "▁" first, every space as "▁". Returns the length in
 * *out (a buffer of *cap bytes, grown as needed), or SIZE_MAX when out of memory. */
static size_t normalise(const char *line, size_t len, char **out, size_t *cap) {
    if (grow((void **)out, cap, 3 * len + 3, 1)) return SIZE_MAX;
    char *o = *out;
    memcpy(o, "\xe2\x96\x81", 3);
    size_t m = 3;
    for (size_t i = 0; i < len; i++) {
        if (line[i] == ' ') {
            memcpy(o + m, "\xe2\x96\x81", 3);
            m += 3;
        } else {
            o[m++] = line[i];
        }
    }
    return m;
}

/* Cut normalised text into chunks (rule 1) and call emit for each. With counter set,
 * also count its characters there. */
typedef void (*emit_fn)(void *user, const char *s, size_t n);

static void split_chunks(const char *s, size_t n, smoe_bpe *counter, emit_fn emit, void *user) {
    size_t start = 0;
    int cur = -1; /* class of the open chunk; CLS_NONE after a lone "▁"; -1: none open */
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int l = smoe_utf8_decode((const uint8_t *)s + i, n - i, &cp);
        if (counter) {
            counter->st.n_chars++;
            if (cp == SMOE_UTF8_INVALID) counter->st.n_rare_chars++;
            else counter->char_count[cp]++;
        }
        if (cp == WS_CP) {
            if (cur >= 0) emit(user, s + start, i - start);
            start = i;
            cur = CLS_NONE;
        } else {
            int c = cls_of(cp);
            if (cur >= 0 && cur != CLS_NONE && c != cur) {
                emit(user, s + start, i - start);
                start = i;
            }
            cur = c;
        }
        i += (size_t)l;
    }
    if (cur >= 0) emit(user, s + start, n - start);
}

static void emit_count(void *user, const char *s, size_t n) { chunk_add(user, s, n); }

static void add_line(smoe_bpe *b, const char *line, size_t len) {
    if (len && line[len - 1] == '\r') len--;
    if (!len || b->oom) return;
    b->st.n_lines++;
    size_t m = normalise(line, len, &b->norm, &b->norm_cap);
    if (m == SIZE_MAX) {
        b->oom = true;
        return;
    }
    split_chunks(b->norm, m, b, emit_count, b);
}

/* ------------------------------------------------------------------ base characters */

typedef struct cp_count {
    uint32_t cp;
    int64_t n;
} cp_count;

static int by_count(const void *x, const void *y) {
    const cp_count *a = x, *b = y;
    if (a->n != b->n) return a->n > b->n ? -1 : 1;
    return a->cp < b->cp ? -1 : a->cp > b->cp;
}

static int32_t add_sym(smoe_bpe *b, size_t off, uint32_t len, uint16_t nchars, uint8_t lead_ws, uint8_t cls,
                       int32_t rank) {
    if (grow((void **)&b->sym, &b->c_sym, b->n_sym + 1, sizeof *b->sym)) return -1;
    b->sym[b->n_sym] = (bsym){off, len, nchars, lead_ws, cls, rank};
    return (int32_t)b->n_sym++;
}

/* Rule 2: choose the base characters, then give every chunk its character symbols. */
static smoe_status make_base(smoe_bpe *b) {
    size_t n = 0;
    for (uint32_t cp = 1; cp < N_CP; cp++) n += b->char_count[cp] > 0;
    cp_count *v = malloc((n ? n : 1) * sizeof *v);
    int32_t *cp_sym = malloc(N_CP * sizeof *cp_sym);
    if (!v || !cp_sym) {
        free(v);
        free(cp_sym);
        return smoe_err(SMOE_ERR_NOMEM, "tokenizer training: out of memory");
    }
    n = 0;
    for (uint32_t cp = 1; cp < N_CP; cp++)
        if (b->char_count[cp] > 0) v[n++] = (cp_count){cp, b->char_count[cp]};
    b->st.n_rare_chars += b->char_count[0]; /* U+0000 is never a piece */
    if (b->char_count[0] > 0) b->st.n_rare_kinds++;
    qsort(v, n, sizeof *v, by_count);
    memset(cp_sym, 0xff, N_CP * sizeof *cp_sym);
    const int64_t room = (int64_t)b->p.vocab_size - SMOE_BPE_FIRST_PIECE;
    int64_t acc = 0;
    for (size_t i = 0; i < n; i++) {
        bool take = (double)acc < b->p.character_coverage * (double)b->st.n_chars && b->n_base < room;
        if (!take) {
            b->st.n_rare_kinds++;
            b->st.n_rare_chars += v[i].n;
            continue;
        }
        char buf[4];
        int l = smoe_utf8_encode(v[i].cp, buf);
        if (arena_reserve(&b->text, (size_t)l)) goto nomem;
        memcpy(b->text.p + b->text.n, buf, (size_t)l);
        bool ws = v[i].cp == WS_CP;
        int32_t id = add_sym(b, b->text.n, (uint32_t)l, 1, ws, ws ? CLS_NONE : cls_of(v[i].cp), -1);
        if (id < 0) goto nomem;
        b->text.n += (size_t)l;
        cp_sym[v[i].cp] = id;
        b->n_base++;
        acc += v[i].n;
    }
    free(v);
    v = NULL;
    free(b->char_count);
    b->char_count = NULL;

    /* every chunk as its characters */
    size_t total = 0;
    for (size_t k = 0; k < b->n_chunk; k++) {
        const char *s = b->ctext.p + b->chunk[k].off;
        size_t len = b->chunk[k].len, nc = 0;
        for (size_t i = 0; i < len; nc++) {
            uint32_t cp;
            i += (size_t)smoe_utf8_decode((const uint8_t *)s + i, len - i, &cp);
        }
        b->chunk[k].seq = total;
        b->chunk[k].n = (uint32_t)nc;
        total += nc;
    }
    b->seq = malloc((total ? total : 1) * sizeof *b->seq);
    if (!b->seq) goto nomem;
    for (size_t k = 0; k < b->n_chunk; k++) {
        const char *s = b->ctext.p + b->chunk[k].off;
        size_t len = b->chunk[k].len;
        int32_t *q = b->seq + b->chunk[k].seq;
        for (size_t i = 0; i < len;) {
            uint32_t cp;
            i += (size_t)smoe_utf8_decode((const uint8_t *)s + i, len - i, &cp);
            *q++ = cp == SMOE_UTF8_INVALID ? -1 : cp_sym[cp];
        }
    }
    free(cp_sym);
    return SMOE_OK;
nomem:
    free(v);
    free(cp_sym);
    return smoe_err(SMOE_ERR_NOMEM, "tokenizer training: out of memory");
}

/* ------------------------------------------------------------------ candidates */

/* Does s (n bytes) match pattern pat from position pos? 'H' is an upper-case hex digit. */
static bool pat_match(const char *pat, size_t pos, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        char want = pat[pos + i], c = s[i];
        if (want == 'H' ? !((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F')) : c != want) return false;
    }
    return true;
}

/* Rule 4's guard: s is the text of <unk>, <s>, </s> or a byte token <0xHH>, or a prefix
 * or suffix of one with at least 2 bytes. */
static bool clashes_with_special(const char *s, size_t n) {
    static const char *const PAT[] = {"<unk>", "<s>", "</s>", "<0xHH>"};
    if (n < 2) return false;
    for (size_t k = 0; k < sizeof PAT / sizeof *PAT; k++) {
        size_t pl = strlen(PAT[k]);
        if (n <= pl && (pat_match(PAT[k], 0, s, n) || pat_match(PAT[k], pl - n, s, n))) return true;
    }
    return false;
}

/* Pair table: double when half full; -1 when out of memory. */
static int pair_grow(smoe_bpe *b) {
    size_t nc = b->pkey ? 2 * (b->pmask + 1) : 1024;
    uint64_t *nk = malloc(nc * sizeof *nk);
    int32_t *nv = malloc(nc * sizeof *nv);
    if (!nk || !nv) {
        free(nk);
        free(nv);
        return -1;
    }
    memset(nk, 0xff, nc * sizeof *nk);
    for (size_t i = 0; b->pkey && i <= b->pmask; i++) {
        if (b->pkey[i] == UINT64_MAX) continue;
        size_t j = hash_u64(b->pkey[i]) & (nc - 1);
        while (nk[j] != UINT64_MAX) j = (j + 1) & (nc - 1);
        nk[j] = b->pkey[i];
        nv[j] = b->pval[i];
    }
    free(b->pkey);
    free(b->pval);
    b->pkey = nk;
    b->pval = nv;
    b->pmask = nc - 1;
    return 0;
}

/* The candidate for adjacent symbols x, y (>= 0), created when new; -1 when out of memory. */
static int32_t get_cand(smoe_bpe *b, int32_t x, int32_t y) {
    const uint64_t key = ((uint64_t)(uint32_t)x << 32) | (uint32_t)y;
    size_t i = hash_u64(key) & b->pmask;
    for (; b->pkey[i] != UINT64_MAX; i = (i + 1) & b->pmask)
        if (b->pkey[i] == key) return b->pval[i];

    /* a new pair: find the candidate with its text, or make one */
    const bsym *X = &b->sym[x], *Y = &b->sym[y];
    const uint32_t len = X->len + Y->len;
    if (arena_reserve(&b->text, len)) return -1;
    char *t = b->text.p + b->text.n;
    memcpy(t, b->text.p + X->off, X->len);
    memcpy(t + X->len, b->text.p + Y->off, Y->len);
    const uint64_t h = hash_bytes(t, len);
    int32_t c = -1;
    size_t slot = h & b->cand_map.mask;
    for (; b->cand_map.slot[slot]; slot = (slot + 1) & b->cand_map.mask) {
        if (b->cand_map.hash[slot] != h) continue;
        const bcand *o = &b->cand[b->cand_map.slot[slot] - 1];
        if (o->len == len && memcmp(b->text.p + o->off, t, len) == 0) {
            c = b->cand_map.slot[slot] - 1;
            break;
        }
    }
    if (c < 0) {
        if (b->n_cand >= INT32_MAX - 1 || grow((void **)&b->cand, &b->c_cand, b->n_cand + 1, sizeof *b->cand)) return -1;
        c = (int32_t)b->n_cand;
        bcand *C = &b->cand[c];
        memset(C, 0, sizeof *C);
        C->off = b->text.n;
        C->len = len;
        C->nchars = (uint16_t)SMOE_MIN(X->nchars + Y->nchars, UINT16_MAX);
        C->lead_ws = X->lead_ws;
        C->cls = X->cls == CLS_NONE ? Y->cls : X->cls;
        C->valid = !Y->lead_ws && (X->cls == CLS_NONE || X->cls == Y->cls) &&
                   X->nchars + Y->nchars <= b->p.max_piece_chars && !clashes_with_special(t, len);
        C->piece = -1;
        b->text.n += len;
        b->n_cand++;
        if (imap_insert(&b->cand_map, slot, h, c)) return -1;
    }
    b->pkey[i] = key;
    b->pval[i] = c;
    if (2 * ++b->pn > b->pmask + 1 && pair_grow(b)) return -1;
    return c;
}

static int post_add(smoe_bpe *b, int32_t c, int32_t w) {
    bcand *C = &b->cand[c];
    if (C->npost && C->post[C->npost - 1] == w) return 0;
    if (C->npost == C->cpost) {
        if (C->cpost >= UINT32_MAX / 2) return -1;
        uint32_t nc = C->cpost ? 2 * C->cpost : 4;
        int32_t *np = realloc(C->post, nc * sizeof *np);
        if (!np) return -1;
        C->post = np;
        C->cpost = nc;
    }
    C->post[C->npost++] = w;
    return 0;
}

/* ------------------------------------------------------------------ the heap */

/* Entry x goes before y: higher count, then the byte-wise smaller text. */
static bool heap_before(const smoe_bpe *b, const heap_ent *x, const heap_ent *y) {
    if (x->count != y->count) return x->count > y->count;
    const bcand *a = &b->cand[x->cand], *c = &b->cand[y->cand];
    int r = memcmp(b->text.p + a->off, b->text.p + c->off, SMOE_MIN(a->len, c->len));
    return r < 0 || (r == 0 && a->len < c->len);
}

static int heap_push(smoe_bpe *b, int32_t cand, int64_t count) {
    if (grow((void **)&b->heap, &b->c_heap, b->n_heap + 1, sizeof *b->heap)) return -1;
    heap_ent e = {count, cand};
    size_t i = b->n_heap++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!heap_before(b, &e, &b->heap[parent])) break;
        b->heap[i] = b->heap[parent];
        i = parent;
    }
    b->heap[i] = e;
    return 0;
}

static heap_ent heap_pop(smoe_bpe *b) {
    heap_ent top = b->heap[0], last = b->heap[--b->n_heap];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= b->n_heap) break;
        if (c + 1 < b->n_heap && heap_before(b, &b->heap[c + 1], &b->heap[c])) c++;
        if (!heap_before(b, &b->heap[c], &last)) break;
        b->heap[i] = b->heap[c];
        i = c;
    }
    if (b->n_heap) b->heap[i] = last;
    return top;
}

/* The best candidate now (-1: none left; -2: out of memory). Entries may overestimate a
 * count (pushed before it fell): such a one goes back in with the true count. */
static int32_t heap_best(smoe_bpe *b) {
    while (b->n_heap) {
        heap_ent e = heap_pop(b);
        const bcand *C = &b->cand[e.cand];
        if (C->piece >= 0 || !C->valid || C->count <= 0) continue;
        if (C->count == e.count) return e.cand;
        if (C->count < e.count && heap_push(b, e.cand, C->count)) return -2;
    }
    return -1;
}

/* ------------------------------------------------------------------ merging */

static int cmp_i32(const void *x, const void *y) {
    int32_t a = *(const int32_t *)x, b = *(const int32_t *)y;
    return (a > b) - (a < b);
}

/* Candidates of the valid adjacent pairs of s[0..n) into out; count, or -1 (out of memory). */
static int64_t list_pairs(smoe_bpe *b, const int32_t *s, uint32_t n, int32_t *out) {
    int64_t k = 0;
    for (uint32_t i = 0; i + 1 < n; i++) {
        if (s[i] < 0 || s[i + 1] < 0) continue;
        int32_t c = get_cand(b, s[i], s[i + 1]);
        if (c < 0) return -1;
        if (b->cand[c].valid) out[k++] = c;
    }
    return k;
}

/* Chunk w may hold the piece of candidate c: segment it again with the encoder's rule
 * from its current state, then move the pair counts by the difference. -1: out of memory. */
static int update_chunk(smoe_bpe *b, int32_t w, int32_t c) {
    bchunk *ch = &b->chunk[w];
    int32_t *s = b->seq + ch->seq;
    uint32_t n = ch->n;
    bool holds = false;
    for (uint32_t i = 0; i + 1 < n && !holds; i++) {
        if (s[i] < 0 || s[i + 1] < 0) continue;
        int32_t k = get_cand(b, s[i], s[i + 1]);
        if (k < 0) return -1;
        holds = k == c;
    }
    if (!holds) return 0; /* a stale entry of the posting list */
    if (grow((void **)&b->old_pairs, &b->c_old, n, sizeof *b->old_pairs) ||
        grow((void **)&b->new_pairs, &b->c_new, n, sizeof *b->new_pairs))
        return -1;
    int64_t n_old = list_pairs(b, s, n, b->old_pairs);
    if (n_old < 0) return -1;

    /* the encoder: merge the adjacent pair whose piece has the best (lowest) rank,
     * leftmost on ties, until no adjacent pair forms a piece */
    for (;;) {
        int32_t best = -1, best_rank = INT32_MAX, best_piece = -1;
        for (uint32_t i = 0; i + 1 < n; i++) {
            if (s[i] < 0 || s[i + 1] < 0) continue;
            int32_t k = get_cand(b, s[i], s[i + 1]);
            if (k < 0) return -1;
            int32_t pc = b->cand[k].piece;
            if (pc >= 0 && b->sym[pc].rank < best_rank) {
                best = (int32_t)i;
                best_rank = b->sym[pc].rank;
                best_piece = pc;
            }
        }
        if (best < 0) break;
        s[best] = best_piece;
        memmove(s + best + 1, s + best + 2, (n - (uint32_t)best - 2) * sizeof *s);
        n--;
    }
    ch->n = n;
    int64_t n_new = list_pairs(b, s, n, b->new_pairs);
    if (n_new < 0) return -1;

    /* apply the difference: sorted lists, walked together */
    qsort(b->old_pairs, (size_t)n_old, sizeof *b->old_pairs, cmp_i32);
    qsort(b->new_pairs, (size_t)n_new, sizeof *b->new_pairs, cmp_i32);
    int64_t i = 0, j = 0;
    while (i < n_old || j < n_new) {
        int32_t k = i < n_old && (j >= n_new || b->old_pairs[i] <= b->new_pairs[j]) ? b->old_pairs[i] : b->new_pairs[j];
        int64_t d = 0;
        while (i < n_old && b->old_pairs[i] == k) d--, i++;
        while (j < n_new && b->new_pairs[j] == k) d++, j++;
        if (d == 0) continue;
        b->cand[k].count += d * ch->freq;
        if (d > 0 && (heap_push(b, k, b->cand[k].count) || post_add(b, k, w))) return -1;
    }
    return 0;
}

static smoe_status merge_all(smoe_bpe *b) {
    if (pair_grow(b) || imap_init(&b->cand_map)) goto nomem;
    for (size_t w = 0; w < b->n_chunk; w++) {
        const bchunk *ch = &b->chunk[w];
        const int32_t *s = b->seq + ch->seq;
        for (uint32_t i = 0; i + 1 < ch->n; i++) {
            if (s[i] < 0 || s[i + 1] < 0) continue;
            int32_t c = get_cand(b, s[i], s[i + 1]);
            if (c < 0) goto nomem;
            if (!b->cand[c].valid) continue;
            b->cand[c].count += ch->freq;
            if (post_add(b, c, (int32_t)w)) goto nomem;
        }
    }
    for (size_t c = 0; c < b->n_cand; c++)
        if (b->cand[c].valid && b->cand[c].count > 0 && heap_push(b, (int32_t)c, b->cand[c].count)) goto nomem;

    const int32_t target = b->p.vocab_size - SMOE_BPE_FIRST_PIECE - b->n_base;
    b->rank_sym = malloc((size_t)SMOE_MAX(target, 1) * sizeof *b->rank_sym);
    b->merge_count = malloc((size_t)SMOE_MAX(target, 1) * sizeof *b->merge_count);
    b->seen = calloc(b->n_chunk ? b->n_chunk : 1, sizeof *b->seen);
    if (!b->rank_sym || !b->merge_count || !b->seen) goto nomem;
    const int32_t every = SMOE_MAX(1, target / 256);
    for (int32_t r = 0; r < target; r++) {
        int32_t c = heap_best(b);
        if (c == -2) goto nomem;
        if (c < 0) {
            int32_t most = SMOE_BPE_FIRST_PIECE + b->n_base + r;
            return smoe_err(SMOE_ERR_INVALID_ARG,
                            "tokenizer training: the corpus has only %d distinct merges over %d base characters, so "
                            "the largest vocabulary it supports is %d (asked for %d)",
                            (int)r, (int)b->n_base, (int)most, (int)b->p.vocab_size);
        }
        bcand *C = &b->cand[c];
        int32_t p = add_sym(b, C->off, C->len, C->nchars, C->lead_ws, C->cls, r);
        if (p < 0) goto nomem;
        b->cand[c].piece = p;
        b->rank_sym[r] = p;
        b->merge_count[r] = b->cand[c].count;
        b->n_merges = r + 1;
        for (uint32_t j = 0; j < b->cand[c].npost; j++) {
            int32_t w = b->cand[c].post[j]; /* c's list does not grow while it is walked */
            if (b->seen[w] == r + 1) continue;
            b->seen[w] = r + 1;
            if (update_chunk(b, w, c)) goto nomem;
        }
        free(b->cand[c].post);
        b->cand[c].post = NULL;
        b->cand[c].npost = b->cand[c].cpost = 0;
        if ((r + 1) % every == 0 || r + 1 == target) progress(b, "merge", r + 1, target);
    }
    return SMOE_OK;
nomem:
    return smoe_err(SMOE_ERR_NOMEM, "tokenizer training: out of memory");
}

/* ------------------------------------------------------------------ driver */

smoe_tokenizer_train_params smoe_tokenizer_train_default_params(void) {
    smoe_tokenizer_train_params p;
    memset(&p, 0, sizeof p);
    p.vocab_size = 4096;
    p.character_coverage = 0.9995;
    p.max_piece_chars = 16;
    return p;
}

static smoe_status begin(const smoe_tokenizer_train_params *p, smoe_bpe **out) {
    *out = NULL;
    if (!p) return smoe_err(SMOE_ERR_INVALID_ARG, "tokenizer training: params is NULL");
    if (p->vocab_size < SMOE_BPE_FIRST_PIECE + 1 || p->vocab_size > (1 << 24))
        return smoe_err(SMOE_ERR_INVALID_ARG, "tokenizer training: vocabulary size %d is not in [%d, %d]",
                        (int)p->vocab_size, SMOE_BPE_FIRST_PIECE + 1, 1 << 24);
    if (!(p->character_coverage > 0 && p->character_coverage <= 1))
        return smoe_err(SMOE_ERR_INVALID_ARG, "tokenizer training: character coverage %g is not in (0, 1]",
                        p->character_coverage);
    if (p->max_piece_chars < 2 || p->max_piece_chars > 64)
        return smoe_err(SMOE_ERR_INVALID_ARG, "tokenizer training: longest piece %d is not in [2, 64]",
                        (int)p->max_piece_chars);
    smoe_bpe *b = calloc(1, sizeof *b);
    if (!b) return smoe_err(SMOE_ERR_NOMEM, "tokenizer training: out of memory");
    b->p = *p;
    b->char_count = calloc(N_CP, sizeof *b->char_count);
    if (!b->char_count || imap_init(&b->chunk_map)) {
        smoe_bpe_free(b);
        return smoe_err(SMOE_ERR_NOMEM, "tokenizer training: out of memory");
    }
    for (int i = 0; i < 256; i++) snprintf(b->byte_text[i], sizeof b->byte_text[i], "<0x%02X>", i);
    *out = b;
    return SMOE_OK;
}

/* After reading: base characters, merges. Frees b on failure. */
static smoe_status finish(smoe_bpe *b, smoe_bpe **out) {
    smoe_status st = SMOE_OK;
    if (b->oom) st = smoe_err(SMOE_ERR_NOMEM, "tokenizer training: out of memory while reading");
    else if (b->st.n_lines == 0) st = smoe_err(SMOE_ERR_INVALID_ARG, "tokenizer training: the corpus has no text (no non-empty lines)");
    if (!st) st = make_base(b);
    if (!st) st = merge_all(b);
    free(b->norm);
    b->norm = NULL;
    free(b->old_pairs);
    free(b->new_pairs);
    b->old_pairs = b->new_pairs = NULL;
    free(b->heap);
    b->heap = NULL;
    free(b->seen);
    b->seen = NULL;
    for (size_t c = 0; c < b->n_cand; c++) free(b->cand[c].post);
    free(b->cand);
    b->cand = NULL;
    b->n_cand = 0;
    free(b->pkey);
    free(b->pval);
    b->pkey = NULL;
    b->pval = NULL;
    imap_free(&b->cand_map);
    memset(&b->cand_map, 0, sizeof b->cand_map);
    if (st) {
        smoe_bpe_free(b);
        return st;
    }
    b->st.n_chunks = (int64_t)b->n_chunk;
    b->st.n_base = b->n_base;
    b->st.n_merges = b->n_merges;
    *out = b;
    return SMOE_OK;
}

smoe_status smoe_bpe_train_text(const smoe_tokenizer_train_params *p, const char *text, size_t len, smoe_bpe **out) {
    if (out) *out = NULL;
    if (!out || (!text && len)) return smoe_err(SMOE_ERR_INVALID_ARG, "smoe_bpe_train_text: bad arguments");
    smoe_bpe *b;
    smoe_status st = begin(p, &b);
    if (st) return st;
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t e = nl ? (size_t)(nl - text) : len;
        add_line(b, text + i, e - i);
        b->st.n_bytes += (int64_t)(e - i + (nl != NULL));
        i = e + 1;
    }
    return finish(b, out);
}

smoe_status smoe_bpe_train_files(const smoe_tokenizer_train_params *p, const char *const *paths, int n_paths,
                                 smoe_bpe **out) {
    if (out) *out = NULL;
    if (!out || n_paths < 1 || !paths) return smoe_err(SMOE_ERR_INVALID_ARG, "tokenizer training: no corpus files given");
    for (int i = 0; i < n_paths; i++)
        if (!paths[i]) return smoe_err(SMOE_ERR_INVALID_ARG, "tokenizer training: corpus path %d is NULL", i);
    smoe_bpe *b;
    smoe_status st = begin(p, &b);
    if (st) return st;
    const int64_t total = smoe_corpus_bytes(paths, n_paths);
    char *line = NULL;
    size_t cap = 0;
    int64_t next_report = 0;
    for (int i = 0; i < n_paths && !st; i++) {
        FILE *f;
        if ((st = smoe_corpus_open(paths[i], &f))) break;
        ssize_t n;
        while ((n = getline(&line, &cap, f)) > 0 && !b->oom) {
            b->st.n_bytes += n;
            add_line(b, line, line[n - 1] == '\n' ? (size_t)n - 1 : (size_t)n);
            if (b->st.n_bytes >= next_report) {
                progress(b, "read", b->st.n_bytes, total);
                next_report = b->st.n_bytes + (1 << 20);
            }
        }
        st = smoe_corpus_close(paths[i], f);
    }
    free(line);
    if (st) {
        smoe_bpe_free(b);
        return st;
    }
    progress(b, "read", b->st.n_bytes, total);
    return finish(b, out);
}

void smoe_bpe_free(smoe_bpe *b) {
    if (!b) return;
    free(b->char_count);
    free(b->ctext.p);
    free(b->chunk);
    imap_free(&b->chunk_map);
    free(b->norm);
    free(b->text.p);
    free(b->sym);
    free(b->seq);
    for (size_t c = 0; c < b->n_cand; c++) free(b->cand[c].post);
    free(b->cand);
    free(b->pkey);
    free(b->pval);
    imap_free(&b->cand_map);
    free(b->heap);
    free(b->old_pairs);
    free(b->new_pairs);
    free(b->seen);
    free(b->rank_sym);
    free(b->merge_count);
    free(b);
}

/* ------------------------------------------------------------------ the result */

const smoe_tokenizer_train_stats *smoe_bpe_stats(const smoe_bpe *b) { return b ? &b->st : NULL; }

int32_t smoe_bpe_n_vocab(const smoe_bpe *b) { return b ? SMOE_BPE_FIRST_PIECE + b->n_merges + b->n_base : 0; }

int64_t smoe_bpe_merge_count(const smoe_bpe *b, int32_t rank) {
    return b && rank >= 0 && rank < b->n_merges ? b->merge_count[rank] : -1;
}

/* Vocabulary id of symbol s. */
static int32_t sym_id(const smoe_bpe *b, int32_t s) {
    return s < b->n_base ? SMOE_BPE_FIRST_PIECE + b->n_merges + s : SMOE_BPE_FIRST_PIECE + b->sym[s].rank;
}

const char *smoe_bpe_piece(const smoe_bpe *b, int32_t id, size_t *len, float *score, int32_t *type) {
    static const char *const SPECIAL[3] = {"<unk>", "<s>", "</s>"};
    if (!b || id < 0 || id >= smoe_bpe_n_vocab(b)) return NULL;
    const char *s;
    size_t n;
    float sc = 0.0f;
    int32_t ty;
    if (id < SMOE_BPE_BYTE0) {
        s = SPECIAL[id];
        n = strlen(s);
        ty = id == SMOE_BPE_UNK ? TT_UNKNOWN : TT_CONTROL;
    } else if (id < SMOE_BPE_FIRST_PIECE) {
        s = b->byte_text[id - SMOE_BPE_BYTE0];
        n = 6;
        ty = TT_BYTE;
    } else {
        int32_t k = id - SMOE_BPE_FIRST_PIECE; /* merges first, then base characters */
        const bsym *y = &b->sym[k < b->n_merges ? b->rank_sym[k] : k - b->n_merges];
        s = b->text.p + y->off;
        n = y->len;
        sc = k == 0 ? 0.0f : -(float)k;
        ty = TT_NORMAL;
    }
    if (len) *len = n;
    if (score) *score = sc;
    if (type) *type = ty;
    return s;
}

smoe_status smoe_bpe_write(const smoe_bpe *b, const char *path, const char *name) {
    if (!b || !path) return smoe_err(SMOE_ERR_INVALID_ARG, "smoe_bpe_write: bad arguments");
    const int32_t n = smoe_bpe_n_vocab(b);
    const char **strs = malloc((size_t)n * sizeof *strs);
    uint64_t *lens = malloc((size_t)n * sizeof *lens);
    float *scores = malloc((size_t)n * sizeof *scores);
    int32_t *types = malloc((size_t)n * sizeof *types);
    smoe_gguf_writer *w = NULL;
    smoe_status st = SMOE_OK;
    if (!strs || !lens || !scores || !types) {
        st = smoe_err(SMOE_ERR_NOMEM, "tokenizer training: out of memory");
        goto out;
    }
    for (int32_t i = 0; i < n; i++) {
        size_t l;
        strs[i] = smoe_bpe_piece(b, i, &l, &scores[i], &types[i]);
        lens[i] = l;
    }
    char desc[160];
    snprintf(desc, sizeof desc, "SentencePiece-style BPE vocabulary (%d merges, %d characters) by smoe tokenizer-train",
             (int)b->n_merges, (int)b->n_base);
    if ((st = smoe_gguf_writer_init(&w)) || (st = smoe_gguf_writer_set_str(w, "general.architecture", "llama")) ||
        (st = smoe_gguf_writer_set_str(w, "general.name", name ? name : "smoe-bpe")) ||
        (st = smoe_gguf_writer_set_str(w, "general.description", desc)) ||
        (st = smoe_gguf_writer_set_u32(w, "llama.vocab_size", (uint32_t)n)) ||
        (st = smoe_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama")) ||
        (st = smoe_gguf_writer_set_str(w, "tokenizer.ggml.pre", "default")) ||
        (st = smoe_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", strs, lens, (uint64_t)n)) ||
        (st = smoe_gguf_writer_set_arr(w, "tokenizer.ggml.scores", SMOE_GGUF_FLOAT32, scores, (uint64_t)n)) ||
        (st = smoe_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", SMOE_GGUF_INT32, types, (uint64_t)n)) ||
        (st = smoe_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", SMOE_BPE_BOS)) ||
        (st = smoe_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", SMOE_BPE_EOS)) ||
        (st = smoe_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", SMOE_BPE_UNK)) ||
        (st = smoe_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true)) ||
        (st = smoe_gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", false)) ||
        (st = smoe_gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix", true)))
        goto out;
    st = smoe_gguf_writer_write(w, path);
out:
    smoe_gguf_writer_free(w);
    free(strs);
    free(lens);
    free(scores);
    free(types);
    return st;
}

smoe_status smoe_tokenizer_train(const smoe_tokenizer_train_params *p, const char *const *paths, int n_paths,
                                 const char *out_path, smoe_tokenizer_train_stats *stats) {
    if (stats) memset(stats, 0, sizeof *stats);
    if (!out_path) return smoe_err(SMOE_ERR_INVALID_ARG, "tokenizer training: no output path");
    smoe_bpe *b = NULL;
    smoe_status st = smoe_bpe_train_files(p, paths, n_paths, &b);
    if (st) return st;
    progress(b, "write", 0, 0);
    st = smoe_bpe_write(b, out_path, p->name);
    if (!st && stats) *stats = b->st;
    smoe_bpe_free(b);
    return st;
}

/* ------------------------------------------------------------------ training segmentation */

typedef struct seg_ctx {
    const smoe_bpe *b;
    int32_t *ids;
    int64_t cap, n;
    smoe_status st;
} seg_ctx;

static void seg_put(seg_ctx *x, int32_t id) {
    if (x->n < x->cap) x->ids[x->n] = id;
    x->n++;
}

static void emit_segment(void *user, const char *s, size_t n) {
    seg_ctx *x = user;
    const smoe_bpe *b = x->b;
    if (x->st) return;
    int32_t k = n > SMOE_BPE_MAX_CHUNK_BYTES ? -1 : chunk_find(b, s, n, hash_bytes(s, n), NULL);
    if (k < 0) {
        x->st = smoe_err(SMOE_ERR_NOT_FOUND, "chunk \"%.*s\" was not in the training text", (int)SMOE_MIN(n, 64), s);
        return;
    }
    const bchunk *ch = &b->chunk[k];
    size_t pos = 0;
    for (uint32_t i = 0; i < ch->n; i++) {
        int32_t y = b->seq[ch->seq + i];
        if (y >= 0) {
            seg_put(x, sym_id(b, y));
            pos += b->sym[y].len;
        } else { /* a rare character: its bytes */
            uint32_t cp;
            int l = smoe_utf8_decode((const uint8_t *)s + pos, n - pos, &cp);
            for (int j = 0; j < l; j++) seg_put(x, SMOE_BPE_BYTE0 + (uint8_t)s[pos + (size_t)j]);
            pos += (size_t)l;
        }
    }
}

smoe_status smoe_bpe_segment_line(const smoe_bpe *b, const char *line, size_t len, int32_t *ids, int64_t cap,
                                  int64_t *n_out) {
    if (n_out) *n_out = 0;
    if (!b || !n_out || (!line && len) || cap < 0 || (!ids && cap > 0))
        return smoe_err(SMOE_ERR_INVALID_ARG, "smoe_bpe_segment_line: bad arguments");
    if (len == 0) return SMOE_OK;
    char *norm = NULL;
    size_t ncap = 0, m = normalise(line, len, &norm, &ncap);
    if (m == SIZE_MAX) return smoe_err(SMOE_ERR_NOMEM, "tokenizer training: out of memory");
    seg_ctx x = {b, ids, cap, 0, SMOE_OK};
    split_chunks(norm, m, NULL, emit_segment, &x);
    free(norm);
    *n_out = x.n;
    if (!x.st && x.n > cap) x.st = smoe_err(SMOE_ERR_RANGE, "smoe_bpe_segment_line: %lld ids do not fit in %lld",
                                            (long long)x.n, (long long)cap);
    return x.st;
}
