/*
 * data.c - token files: a corpus tokenized once (smoe_data_prepare), read back through
 * mmap with every byte validated (smoe_data_open), and random training batches drawn by a
 * counter-based RNG (smoe_data_batch), so a resumed run sees the same batches.
 *
 * Format (little-endian, docs/training.md):
 *   0  8  magic "SMOETOKS"             32  8  n_train: tokens [0, n_train) train, the rest validation
 *   8  4  version (1)                  40  8  checksum: FNV-1a 64 of the token bytes as stored
 *  12  4  bytes per token: 2 or 4      48  8  tokenizer fingerprint (smoe_tokenizer_fingerprint)
 *  16  4  vocabulary size              56  8  split seed
 *  20  4  flags (bit 0 BOS per line, bit 1 EOS per line)
 *  24  8  n_tokens
 *  64  ...  n_tokens tokens, uint16 when 2 bytes per token (vocabularies up to 65536), else uint32
 *
 * The split is by line: a line goes to validation when mix64(FNV-1a 64 of its bytes ^ seed),
 * as a 53-bit fraction, is below val_fraction; so equal lines share a split and the choice
 * does not depend on file order. Training lines come first in the file, then validation
 * lines, each group in corpus order.
 *
 * Not done here: documents spanning several lines (every line is a document), shuffling,
 * several tokenizers, streaming files larger than the address space.
 */
#include "train/data.h"
#include "train/corpus.h"

#include "smoe_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct smoe_data {
    smoe_data_info info;
    const uint8_t *tok;  /* n_tokens * token_bytes bytes */
    void *map;           /* the mapping (NULL over a caller's buffer) */
    size_t map_size;
};

/* ------------------------------------------------------------------ hashing and the RNG */

uint64_t smoe_fnv1a(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

uint64_t smoe_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

smoe_data_rng smoe_data_rng_init(uint64_t seed, uint64_t step, bool val) {
    smoe_data_rng r = {smoe_mix64(seed ^ smoe_mix64(2 * step + (val ? 1 : 0)))};
    return r;
}

uint64_t smoe_data_rng_next(smoe_data_rng *r) {
    r->state += 0x9E3779B97F4A7C15ull;
    return smoe_mix64(r->state);
}

uint64_t smoe_data_rng_below(smoe_data_rng *r, uint64_t n) {
    const uint64_t threshold = (0 - n) % n; /* 2^64 mod n */
    for (;;) {
        uint64_t x = smoe_data_rng_next(r);
        if (x >= threshold) return x % n;
    }
}

uint64_t smoe_tokenizer_fingerprint(const smoe_tokenizer *t) {
    uint64_t h = SMOE_FNV1A_INIT;
    const int32_t n = smoe_tokenizer_n_vocab(t);
    static const char zero = 0;
    for (int32_t i = 0; i < n; i++) {
        const char *s = smoe_tokenizer_token_text(t, i);
        h = smoe_fnv1a(h, s, strlen(s));
        h = smoe_fnv1a(h, &zero, 1);
    }
    return h;
}

/* ------------------------------------------------------------------ little-endian fields */

static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

static void wr32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void wr64(uint8_t *p, uint64_t v) {
    wr32(p, (uint32_t)v);
    wr32(p + 4, (uint32_t)(v >> 32));
}

static void header_encode(uint8_t h[SMOE_DATA_HEADER_BYTES], const smoe_data_info *in) {
    memset(h, 0, SMOE_DATA_HEADER_BYTES);
    memcpy(h, SMOE_DATA_MAGIC, 8);
    wr32(h + 8, in->version);
    wr32(h + 12, in->token_bytes);
    wr32(h + 16, (uint32_t)in->n_vocab);
    wr32(h + 20, in->flags);
    wr64(h + 24, in->n_tokens);
    wr64(h + 32, in->n_train);
    wr64(h + 40, in->checksum);
    wr64(h + 48, in->tokenizer_fingerprint);
    wr64(h + 56, in->split_seed);
}

/* ------------------------------------------------------------------ reading */

static inline uint32_t token_at(const uint8_t *tok, uint32_t tb, uint64_t i) {
    const uint8_t *p = tok + i * tb;
    return tb == 2 ? (uint32_t)p[0] | (uint32_t)p[1] << 8 : rd32(p);
}

/* Validate buf (size bytes) as a token file and fill d. */
static smoe_status parse(smoe_data *d, const uint8_t *buf, size_t size) {
    smoe_data_info *in = &d->info;
    if (size < SMOE_DATA_HEADER_BYTES)
        return smoe_err(SMOE_ERR_FORMAT, "file of %zu bytes is shorter than the %u-byte header (truncated?)", size,
                        SMOE_DATA_HEADER_BYTES);
    if (memcmp(buf, SMOE_DATA_MAGIC, 8) != 0)
        return smoe_err(SMOE_ERR_FORMAT, "bad magic: not a smoe token file (expected \"%s\")", SMOE_DATA_MAGIC);
    in->version = rd32(buf + 8);
    in->token_bytes = rd32(buf + 12);
    uint32_t nv = rd32(buf + 16);
    in->flags = rd32(buf + 20);
    in->n_tokens = rd64(buf + 24);
    in->n_train = rd64(buf + 32);
    in->checksum = rd64(buf + 40);
    in->tokenizer_fingerprint = rd64(buf + 48);
    in->split_seed = rd64(buf + 56);
    if (in->version != SMOE_DATA_VERSION)
        return smoe_err(SMOE_ERR_UNSUPPORTED, "token file version %u (this smoe reads version %u)", in->version,
                        SMOE_DATA_VERSION);
    if (in->token_bytes != 2 && in->token_bytes != 4)
        return smoe_err(SMOE_ERR_FORMAT, "%u bytes per token (must be 2 or 4)", in->token_bytes);
    if (nv == 0 || nv > INT32_MAX) return smoe_err(SMOE_ERR_FORMAT, "vocabulary size %u is out of range", nv);
    if (in->token_bytes == 2 && nv > 65536)
        return smoe_err(SMOE_ERR_FORMAT, "vocabulary size %u does not fit 2-byte tokens", nv);
    in->n_vocab = (int32_t)nv;
    if (in->flags & ~(SMOE_DATA_FLAG_BOS | SMOE_DATA_FLAG_EOS))
        return smoe_err(SMOE_ERR_FORMAT, "unknown flags 0x%x", in->flags);
    const uint64_t body = size - SMOE_DATA_HEADER_BYTES;
    if (in->n_tokens > body / in->token_bytes || in->n_tokens * in->token_bytes != body)
        return smoe_err(SMOE_ERR_FORMAT,
                        "the header says %llu tokens of %u bytes but the file holds %llu bytes of tokens (truncated "
                        "or damaged)",
                        (unsigned long long)in->n_tokens, in->token_bytes, (unsigned long long)body);
    if (in->n_train > in->n_tokens)
        return smoe_err(SMOE_ERR_FORMAT, "training count %llu exceeds the token count %llu",
                        (unsigned long long)in->n_train, (unsigned long long)in->n_tokens);
    in->n_val = in->n_tokens - in->n_train;
    d->tok = buf + SMOE_DATA_HEADER_BYTES;
    uint64_t sum = smoe_fnv1a(SMOE_FNV1A_INIT, d->tok, (size_t)body);
    if (sum != in->checksum)
        return smoe_err(SMOE_ERR_FORMAT, "checksum mismatch (file %016llx, tokens %016llx): the tokens are damaged",
                        (unsigned long long)in->checksum, (unsigned long long)sum);
    for (uint64_t i = 0; i < in->n_tokens; i++) {
        uint32_t id = token_at(d->tok, in->token_bytes, i);
        if (id >= nv)
            return smoe_err(SMOE_ERR_FORMAT, "token %llu is id %u, not below the vocabulary size %u",
                            (unsigned long long)i, id, nv);
    }
    return SMOE_OK;
}

smoe_status smoe_data_open_memory(const void *buf, size_t size, smoe_data **out) {
    if (!out) return smoe_err(SMOE_ERR_INVALID_ARG, "smoe_data_open_memory: out is NULL");
    *out = NULL;
    if (!buf && size) return smoe_err(SMOE_ERR_INVALID_ARG, "smoe_data_open_memory: buffer is NULL");
    smoe_data *d = calloc(1, sizeof *d);
    if (!d) return smoe_err(SMOE_ERR_NOMEM, "out of memory");
    smoe_status st = parse(d, buf, size);
    if (st) {
        free(d);
        return smoe_err_prefix(st, "token file");
    }
    *out = d;
    return SMOE_OK;
}

smoe_status smoe_data_open(const char *path, smoe_data **out) {
    if (!out) return smoe_err(SMOE_ERR_INVALID_ARG, "smoe_data_open: out is NULL");
    *out = NULL;
    if (!path) return smoe_err(SMOE_ERR_INVALID_ARG, "smoe_data_open: path is NULL");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return smoe_err(SMOE_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return smoe_err(SMOE_ERR_IO, "cannot stat '%s': %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return smoe_err(SMOE_ERR_IO, "'%s' is not a regular file", path);
    }
    size_t size = (size_t)sb.st_size;
    if (size < SMOE_DATA_HEADER_BYTES) {
        close(fd);
        return smoe_err(SMOE_ERR_FORMAT, "%s: file of %zu bytes is shorter than the %u-byte header (truncated?)",
                        path, size, SMOE_DATA_HEADER_BYTES);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED) return smoe_err(SMOE_ERR_IO, "cannot map '%s': %s", path, strerror(e));
    smoe_data *d = calloc(1, sizeof *d);
    if (!d) {
        munmap(map, size);
        return smoe_err(SMOE_ERR_NOMEM, "out of memory");
    }
    d->map = map;
    d->map_size = size;
    smoe_status st = parse(d, map, size);
    if (st) {
        smoe_data_free(d);
        return smoe_err_prefix(st, "%s", path);
    }
    *out = d;
    return SMOE_OK;
}

void smoe_data_free(smoe_data *d) {
    if (!d) return;
    if (d->map) munmap(d->map, d->map_size);
    free(d);
}

smoe_data_info smoe_data_get_info(const smoe_data *d) {
    smoe_data_info z;
    memset(&z, 0, sizeof z);
    return d ? d->info : z;
}

int32_t smoe_data_token(const smoe_data *d, uint64_t i) {
    SMOE_ASSERT(d && i < d->info.n_tokens);
    return (int32_t)token_at(d->tok, d->info.token_bytes, i);
}

smoe_status smoe_data_read(const smoe_data *d, bool val, uint64_t start, uint64_t n, int32_t *out) {
    if (!d || (!out && n)) return smoe_err(SMOE_ERR_INVALID_ARG, "smoe_data_read: bad arguments");
    const uint64_t base = val ? d->info.n_train : 0, len = val ? d->info.n_val : d->info.n_train;
    if (start > len || n > len - start)
        return smoe_err(SMOE_ERR_RANGE, "smoe_data_read: tokens %llu..%llu are past the end of the %s split (%llu)",
                        (unsigned long long)start, (unsigned long long)(start + n), val ? "validation" : "training",
                        (unsigned long long)len);
    for (uint64_t i = 0; i < n; i++) out[i] = (int32_t)token_at(d->tok, d->info.token_bytes, base + start + i);
    return SMOE_OK;
}

/* ------------------------------------------------------------------ batches */

/* Check a batch request; *span gets the number of possible window starts. */
static smoe_status batch_check(const smoe_data *d, bool val, int32_t batch, int32_t seq_len, uint64_t *span) {
    if (!d || batch < 1 || seq_len < 1)
        return smoe_err(SMOE_ERR_INVALID_ARG, "smoe_data_batch: bad arguments (batch %d, seq_len %d)", (int)batch,
                        (int)seq_len);
    const uint64_t len = val ? d->info.n_val : d->info.n_train;
    if (len < (uint64_t)seq_len + 1)
        return smoe_err(SMOE_ERR_RANGE, "the %s split has %llu tokens, fewer than a window of seq_len + 1 = %lld",
                        val ? "validation" : "training", (unsigned long long)len, (long long)seq_len + 1);
    *span = len - (uint64_t)seq_len;
    return SMOE_OK;
}

smoe_status smoe_data_batch_starts(const smoe_data *d, bool val, uint64_t seed, uint64_t step, int32_t batch,
                                   int32_t seq_len, uint64_t *starts) {
    uint64_t span;
    smoe_status st = batch_check(d, val, batch, seq_len, &span);
    if (st) return st;
    if (!starts) return smoe_err(SMOE_ERR_INVALID_ARG, "smoe_data_batch_starts: starts is NULL");
    smoe_data_rng r = smoe_data_rng_init(seed, step, val);
    for (int32_t b = 0; b < batch; b++) starts[b] = smoe_data_rng_below(&r, span);
    return SMOE_OK;
}

smoe_status smoe_data_batch(const smoe_data *d, bool val, uint64_t seed, uint64_t step, int32_t batch,
                            int32_t seq_len, int32_t *tokens, int32_t *targets) {
    uint64_t span;
    smoe_status st = batch_check(d, val, batch, seq_len, &span);
    if (st) return st;
    if (!tokens || !targets) return smoe_err(SMOE_ERR_INVALID_ARG, "smoe_data_batch: NULL output");
    const uint64_t base = val ? d->info.n_train : 0;
    const uint32_t tb = d->info.token_bytes;
    smoe_data_rng r = smoe_data_rng_init(seed, step, val);
    for (int32_t b = 0; b < batch; b++) {
        const uint64_t s = base + smoe_data_rng_below(&r, span);
        int32_t *x = tokens + (size_t)b * (size_t)seq_len, *y = targets + (size_t)b * (size_t)seq_len;
        for (int32_t t = 0; t < seq_len; t++) {
            x[t] = (int32_t)token_at(d->tok, tb, s + (uint64_t)t);
            y[t] = (int32_t)token_at(d->tok, tb, s + (uint64_t)t + 1);
        }
    }
    return SMOE_OK;
}

/* ------------------------------------------------------------------ writing */

smoe_data_prepare_params smoe_data_prepare_default_params(void) {
    smoe_data_prepare_params p;
    memset(&p, 0, sizeof p);
    p.val_fraction = 0.05;
    p.add_bos = true;
    p.add_eos = true;
    return p;
}

/* One output stream: buffered tokens, counted and hashed. */
typedef struct tok_out {
    FILE *f;
    uint64_t n;
    uint64_t sum;
    uint32_t tb;
    int err; /* errno of the first failure */
} tok_out;

static void out_tokens(tok_out *o, const int32_t *ids, int64_t n) {
    uint8_t buf[4096];
    size_t k = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t v = (uint32_t)ids[i];
        for (uint32_t j = 0; j < o->tb; j++) buf[k++] = (uint8_t)(v >> (8 * j));
        if (k + 4 > sizeof buf || i + 1 == n) {
            o->sum = smoe_fnv1a(o->sum, buf, k);
            if (!o->err && fwrite(buf, 1, k, o->f) != k) o->err = errno ? errno : EIO;
            k = 0;
        }
    }
    o->n += (uint64_t)n;
}

/* A temporary file next to path (mkstemp); its name in *name (caller frees). */
static FILE *temp_next_to(const char *path, const char *tag, char **name) {
    size_t len = strlen(path) + strlen(tag) + 16;
    char *t = malloc(len);
    if (!t) return NULL;
    snprintf(t, len, "%s%s.XXXXXX", path, tag);
    int fd = mkstemp(t);
    if (fd < 0) {
        free(t);
        return NULL;
    }
    mode_t um = umask(0);
    umask(um);
    (void)fchmod(fd, 0666 & ~um);
    FILE *f = fdopen(fd, "w+b");
    if (!f) {
        close(fd);
        unlink(t);
        free(t);
        return NULL;
    }
    *name = t;
    return f;
}

/* Lines are read in blocks of about BLOCK_BYTES and encoded by n_threads workers, each
 * taking a contiguous share of the block's lines; the main thread then writes them in
 * order, so the output does not depend on the thread count. */
#define BLOCK_BYTES (8u << 20)

typedef struct prep_line {
    size_t off, len;   /* text in the block */
    size_t first;      /* ids in the worker's buffer */
    int64_t n;
    bool val;
} prep_line;

typedef struct prep_work {
    const smoe_data_prepare_params *p;
    const smoe_tokenizer *tok;
    const char *text;
    prep_line *lines;
    size_t lo, hi;     /* lines [lo, hi) */
    int32_t *ids;
    size_t n_ids, cap_ids;
    smoe_status st;
    char err[256];
} prep_work;

static void *prep_encode(void *arg) {
    prep_work *w = arg;
    const int32_t eos = smoe_tokenizer_eos(w->tok);
    w->n_ids = 0;
    for (size_t i = w->lo; i < w->hi && !w->st; i++) {
        prep_line *l = &w->lines[i];
        /* at most 3 tokens per byte (a space is "▁": 3 byte tokens without a piece), the
         * prefix "▁", BOS and EOS */
        size_t need = w->n_ids + 3 * l->len + 8;
        if (need > w->cap_ids) {
            size_t nc = SMOE_MAX(need, 2 * w->cap_ids);
            int32_t *ni = realloc(w->ids, nc * sizeof *ni);
            if (!ni) {
                w->st = smoe_err(SMOE_ERR_NOMEM, "prepare data: out of memory");
                break;
            }
            w->ids = ni;
            w->cap_ids = nc;
        }
        int64_t n = 0;
        w->st = smoe_tokenizer_encode(w->tok, w->text + l->off, l->len, w->p->add_bos, w->ids + w->n_ids,
                                      (int64_t)(w->cap_ids - w->n_ids - 1), &n);
        if (w->st) break;
        if (w->p->add_eos) w->ids[w->n_ids + (size_t)n++] = eos;
        l->first = w->n_ids;
        l->n = n;
        w->n_ids += (size_t)n;
        uint64_t h = smoe_fnv1a(SMOE_FNV1A_INIT, w->text + l->off, l->len);
        l->val = (double)(smoe_mix64(h ^ w->p->split_seed) >> 11) * (1.0 / 9007199254740992.0) < w->p->val_fraction;
    }
    if (w->st) snprintf(w->err, sizeof w->err, "%s", smoe_last_error());
    return NULL;
}

/* Encode lines [0, n) of a block on n_threads threads and write them out in order. */
static smoe_status prep_block(const smoe_data_prepare_params *p, const smoe_tokenizer *tok, const char *text,
                              prep_line *lines, size_t n, prep_work *work, int n_threads, tok_out *tr, tok_out *va) {
    int nt = (size_t)n_threads > n ? (int)(n ? n : 1) : n_threads;
    pthread_t th[64];
    bool started[64] = {false};
    for (int t = 0; t < nt; t++) {
        work[t].p = p;
        work[t].tok = tok;
        work[t].text = text;
        work[t].lines = lines;
        work[t].lo = n * (size_t)t / (size_t)nt;
        work[t].hi = n * (size_t)(t + 1) / (size_t)nt;
        work[t].st = SMOE_OK;
        if (t > 0) started[t] = pthread_create(&th[t], NULL, prep_encode, &work[t]) == 0;
    }
    prep_encode(&work[0]);
    for (int t = 1; t < nt; t++) {
        if (started[t]) pthread_join(th[t], NULL);
        else prep_encode(&work[t]); /* no thread: do its share here */
    }
    for (int t = 0; t < nt; t++)
        if (work[t].st) return smoe_err(work[t].st, "%s", work[t].err);
    for (int t = 0; t < nt; t++)
        for (size_t i = work[t].lo; i < work[t].hi; i++)
            out_tokens(lines[i].val ? va : tr, work[t].ids + lines[i].first, lines[i].n);
    return SMOE_OK;
}

smoe_status smoe_data_prepare(const smoe_data_prepare_params *p, const smoe_tokenizer *tok, const char *const *paths,
                              int n_paths, const char *out_path, smoe_data_info *info) {
    if (info) memset(info, 0, sizeof *info);
    if (!p || !tok || !paths || n_paths < 1 || !out_path)
        return smoe_err(SMOE_ERR_INVALID_ARG, "prepare data: %s",
                        !tok ? "no tokenizer" : !out_path ? "no output path" : "no corpus files given");
    if (!(p->val_fraction >= 0 && p->val_fraction < 1))
        return smoe_err(SMOE_ERR_INVALID_ARG, "prepare data: validation fraction %g is not in [0, 1)", p->val_fraction);
    for (int i = 0; i < n_paths; i++)
        if (!paths[i]) return smoe_err(SMOE_ERR_INVALID_ARG, "prepare data: corpus path %d is NULL", i);
    const int32_t nv = smoe_tokenizer_n_vocab(tok), bos = smoe_tokenizer_bos(tok), eos = smoe_tokenizer_eos(tok);
    if (p->add_bos && bos < 0) return smoe_err(SMOE_ERR_INVALID_ARG, "prepare data: the tokenizer has no BOS token");
    if (p->add_eos && eos < 0) return smoe_err(SMOE_ERR_INVALID_ARG, "prepare data: the tokenizer has no EOS token");
    const int n_threads = SMOE_MIN(64, p->n_threads > 0 ? p->n_threads : smoe_default_threads());

    smoe_data_info in;
    memset(&in, 0, sizeof in);
    in.version = SMOE_DATA_VERSION;
    in.token_bytes = nv <= 65536 ? 2 : 4;
    in.n_vocab = nv;
    in.flags = (p->add_bos ? SMOE_DATA_FLAG_BOS : 0) | (p->add_eos ? SMOE_DATA_FLAG_EOS : 0);
    in.tokenizer_fingerprint = smoe_tokenizer_fingerprint(tok);
    in.split_seed = p->split_seed;

    /* the validation tokens go to an unlinked scratch file, appended at the end */
    char *tmp = NULL, *vtmp = NULL;
    tok_out tr = {NULL, 0, SMOE_FNV1A_INIT, in.token_bytes, 0}, va = {NULL, 0, 0, in.token_bytes, 0};
    prep_work work[64];
    memset(work, 0, sizeof work);
    char *text = NULL, *line = NULL;
    prep_line *lines = NULL;
    size_t text_n = 0, text_cap = 0, n_block = 0, lines_cap = 0, lcap = 0;
    tr.f = temp_next_to(out_path, ".tmp", &tmp);
    if (!tr.f) return smoe_err(SMOE_ERR_IO, "cannot create a temporary file next to '%s': %s", out_path, strerror(errno));
    va.f = temp_next_to(out_path, ".val.tmp", &vtmp);
    smoe_status st = SMOE_OK;
    if (!va.f) {
        st = smoe_err(SMOE_ERR_IO, "cannot create a temporary file next to '%s': %s", out_path, strerror(errno));
        goto fail;
    }
    unlink(vtmp);
    uint8_t head[SMOE_DATA_HEADER_BYTES] = {0};
    if (fwrite(head, 1, sizeof head, tr.f) != sizeof head) tr.err = errno ? errno : EIO;

    const int64_t total = smoe_corpus_bytes(paths, n_paths);
    int64_t done = 0, next_report = 0, n_lines = 0;
    for (int i = 0; i < n_paths && !st; i++) {
        FILE *f;
        if ((st = smoe_corpus_open(paths[i], &f))) break;
        ssize_t got;
        for (;;) {
            got = getline(&line, &lcap, f);
            if (got > 0) {
                done += got;
                size_t len = (size_t)got;
                if (line[len - 1] == '\n') len--;
                if (len && line[len - 1] == '\r') len--;
                if (len) {
                    if (text_n + len > text_cap) {
                        size_t nc = SMOE_MAX(text_n + len, SMOE_MAX((size_t)BLOCK_BYTES, 2 * text_cap));
                        char *nt = realloc(text, nc);
                        if (!nt) {
                            st = smoe_err(SMOE_ERR_NOMEM, "prepare data: out of memory");
                            break;
                        }
                        text = nt;
                        text_cap = nc;
                    }
                    if (n_block == lines_cap) {
                        size_t nc = lines_cap ? 2 * lines_cap : 4096;
                        prep_line *nl = realloc(lines, nc * sizeof *nl);
                        if (!nl) {
                            st = smoe_err(SMOE_ERR_NOMEM, "prepare data: out of memory");
                            break;
                        }
                        lines = nl;
                        lines_cap = nc;
                    }
                    memcpy(text + text_n, line, len);
                    lines[n_block++] = (prep_line){text_n, len, 0, 0, false};
                    text_n += len;
                    n_lines++;
                }
            }
            /* a full block, or the end of the last file: encode and write */
            bool last = got <= 0 && i == n_paths - 1;
            if (n_block && (text_n >= BLOCK_BYTES || last)) {
                if ((st = prep_block(p, tok, text, lines, n_block, work, n_threads, &tr, &va))) break;
                n_block = 0;
                text_n = 0;
            }
            if (got <= 0) break;
            if (done >= next_report) {
                if (p->progress) p->progress(p->progress_user, "read", done, total);
                next_report = done + (1 << 20);
            }
        }
        const smoe_status cst = smoe_corpus_close(paths[i], f);
        if (!st) st = cst;
    }
    free(line);
    line = NULL;
    if (st) goto fail;
    if (p->progress) p->progress(p->progress_user, "read", done, total);
    if (n_lines == 0) {
        st = smoe_err(SMOE_ERR_INVALID_ARG, "prepare data: the corpus has no text (no non-empty lines)");
        goto fail;
    }

    /* append the validation tokens, then the header */
    in.n_train = tr.n;
    in.n_val = va.n;
    in.n_tokens = tr.n + va.n;
    if (!va.err && (fflush(va.f) != 0 || fseek(va.f, 0, SEEK_SET) != 0)) va.err = errno ? errno : EIO;
    uint8_t buf[1 << 16];
    uint64_t copied = 0;
    while (!va.err && !tr.err) {
        size_t k = fread(buf, 1, sizeof buf, va.f);
        if (k == 0) {
            if (ferror(va.f)) va.err = errno ? errno : EIO;
            break;
        }
        tr.sum = smoe_fnv1a(tr.sum, buf, k);
        if (fwrite(buf, 1, k, tr.f) != k) tr.err = errno ? errno : EIO;
        copied += k;
    }
    if (!va.err && copied != va.n * in.token_bytes) va.err = EIO;
    in.checksum = tr.sum;
    header_encode(head, &in);
    if (!tr.err && (fseek(tr.f, 0, SEEK_SET) != 0 || fwrite(head, 1, sizeof head, tr.f) != sizeof head))
        tr.err = errno ? errno : EIO;
    if (!tr.err && fflush(tr.f) != 0) tr.err = errno ? errno : EIO;
    if (!tr.err && fsync(fileno(tr.f)) != 0) tr.err = errno ? errno : EIO;
    if (va.err || tr.err) {
        st = smoe_err(SMOE_ERR_IO, "cannot write '%s': %s", out_path, strerror(va.err ? va.err : tr.err));
        goto fail;
    }
    fclose(va.f);
    va.f = NULL;
    int ce = fclose(tr.f) != 0 ? (errno ? errno : EIO) : 0;
    tr.f = NULL;
    if (ce || rename(tmp, out_path) != 0) {
        st = smoe_err(SMOE_ERR_IO, "cannot write '%s': %s", out_path, strerror(ce ? ce : errno));
        goto fail;
    }
    if (p->progress)
        p->progress(p->progress_user, "write", (int64_t)(in.n_tokens * in.token_bytes),
                    (int64_t)(in.n_tokens * in.token_bytes));
    if (info) *info = in;
fail:
    if (va.f) fclose(va.f);
    if (tr.f) fclose(tr.f);
    if (st && tmp) unlink(tmp);
    free(tmp);
    free(vtmp);
    free(line);
    free(text);
    free(lines);
    for (int t = 0; t < 64; t++) free(work[t].ids);
    return st;
}
