/*
 * gguf.c - GGUF (v2/v3) reader over mmap, and an atomic GGUF v3 writer.
 *
 * The reader is hostile-input code: the file is parsed once, front to back, through a
 * cursor that checks every length against the bytes left, every count against what the
 * remaining bytes could possibly hold, every size computation for overflow, and every
 * tensor against the data section (alignment, bounds, overlap). After a successful open
 * all accessors are plain look-ups into validated tables; nothing reads past the map.
 * Keys and tensor names are copied (NUL-terminated); string values and tensor data are
 * pointers into the file.
 *
 * Not here: interpreting metadata (model.c, tokenizer.c), dequantization (quant/).
 * Format facts: the GGUF specification in the ggml repository (docs/gguf.md).
 */
#include "smoe_internal.h"
#include "quant/quant.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_MAGIC 0x46554747u /* "GGUF" little-endian */
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_KEY_LEN 65535u  /* the spec caps key length at 65535 bytes */
#define GGUF_MAX_NAME_LEN 4096u  /* ggml's GGML_MAX_NAME is 64; be lenient but bounded */

typedef struct gguf_kv {
    char *key;
    smoe_gguf_type type;
    smoe_gguf_type arr_type;  /* arrays only */
    uint64_t arr_n;           /* arrays only */
    const uint8_t *val;       /* value bytes (after the type field; arrays: first element) */
    size_t val_len;           /* bytes of the whole value as stored (arrays: incl. type + n) */
    const uint8_t *raw;       /* start of the value as stored (for copying) */
    uint64_t *str_off;        /* string arrays: offset of each element's length field from val */
} gguf_kv;

typedef struct gguf_tensor {
    char *name;
    int dtype;
    int ndim;
    int64_t ne[SMOE_MAX_DIMS];
    uint64_t offset;          /* relative to the data section */
    size_t nbytes;
} gguf_tensor;

struct smoe_gguf {
    const uint8_t *base;
    size_t size;
    int fd;                   /* -1 for memory buffers */
    bool mapped;
    uint32_t version;
    size_t alignment;
    size_t data_offset;       /* absolute offset of the data section */
    int64_t n_kv;
    gguf_kv *kv;
    int64_t n_tensors;
    gguf_tensor *tensors;
    /* keys and tensor names sorted by name, for look-up by binary search */
    struct gguf_ref *kv_index;
    struct gguf_ref *t_index;
};

/* ------------------------------------------------------------------ small helpers */

static size_t type_size(smoe_gguf_type t) {
    switch (t) {
    case SMOE_GGUF_UINT8: case SMOE_GGUF_INT8: case SMOE_GGUF_BOOL: return 1;
    case SMOE_GGUF_UINT16: case SMOE_GGUF_INT16: return 2;
    case SMOE_GGUF_UINT32: case SMOE_GGUF_INT32: case SMOE_GGUF_FLOAT32: return 4;
    case SMOE_GGUF_UINT64: case SMOE_GGUF_INT64: case SMOE_GGUF_FLOAT64: return 8;
    default: return 0; /* string, array: variable */
    }
}

static const char *type_name(smoe_gguf_type t) {
    static const char *names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool",
                                  "str", "arr", "u64", "i64", "f64"};
    return (unsigned)t < SMOE_GGUF_TYPE_COUNT ? names[t] : "?";
}

static uint64_t rd_u64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static uint32_t rd_u32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

/* ------------------------------------------------------------------ parse cursor */

typedef struct cursor {
    const uint8_t *p, *end;
    const uint8_t *base;
} cursor;

static size_t cur_left(const cursor *c) { return (size_t)(c->end - c->p); }
static uint64_t cur_pos(const cursor *c) { return (uint64_t)(c->p - c->base); }

static smoe_status cur_need(cursor *c, size_t n, const char *what) {
    if (cur_left(c) < n)
        return smoe_err(SMOE_ERR_FORMAT, "truncated file: %s at offset %llu needs %zu bytes, %zu left",
                        what, (unsigned long long)cur_pos(c), n, cur_left(c));
    return SMOE_OK;
}

static smoe_status cur_u32(cursor *c, uint32_t *v, const char *what) {
    smoe_status st = cur_need(c, 4, what);
    if (st) return st;
    *v = rd_u32(c->p);
    c->p += 4;
    return SMOE_OK;
}

static smoe_status cur_u64(cursor *c, uint64_t *v, const char *what) {
    smoe_status st = cur_need(c, 8, what);
    if (st) return st;
    *v = rd_u64(c->p);
    c->p += 8;
    return SMOE_OK;
}

/* A string: u64 length + bytes. Returns a pointer to the bytes. */
static smoe_status cur_str(cursor *c, const uint8_t **s, uint64_t *len, const char *what) {
    smoe_status st = cur_u64(c, len, what);
    if (st) return st;
    if (*len > cur_left(c))
        return smoe_err(SMOE_ERR_FORMAT, "%s at offset %llu: string length %llu exceeds the %zu bytes left",
                        what, (unsigned long long)(cur_pos(c) - 8), (unsigned long long)*len, cur_left(c));
    *s = c->p;
    c->p += *len;
    return SMOE_OK;
}

static char *dup_name(const uint8_t *s, uint64_t len) {
    char *r = malloc((size_t)len + 1);
    if (!r) return NULL;
    memcpy(r, s, (size_t)len);
    r[len] = 0;
    return r;
}

/* ------------------------------------------------------------------ name indexes */

/* Keys and tensor names are found through an array sorted by name: O(n log n) to build
 * (duplicates end up adjacent) and O(log n) per look-up whatever the names are. A hash
 * table with linear probing was quadratic on names crafted to collide: 20k such keys,
 * a 480 KB file, took over a second to open, and it grew with the square of the size. */
typedef struct gguf_ref {
    const char *name;
    int64_t i;
} gguf_ref;

static int ref_cmp(const void *a, const void *b) {
    return strcmp(((const gguf_ref *)a)->name, ((const gguf_ref *)b)->name);
}

static smoe_status build_index(gguf_ref **out, int64_t n, const char *(*name_of)(const smoe_gguf *, int64_t),
                               const smoe_gguf *g, const char *what) {
    gguf_ref *r = malloc(sizeof *r * (size_t)(n ? n : 1));
    if (!r) return smoe_err(SMOE_ERR_NOMEM, "out of memory for the %s index", what);
    for (int64_t i = 0; i < n; i++) r[i] = (gguf_ref){name_of(g, i), i};
    if (n > 1) qsort(r, (size_t)n, sizeof *r, ref_cmp);
    *out = r; /* freed with g, also on failure */
    for (int64_t i = 1; i < n; i++)
        if (strcmp(r[i - 1].name, r[i].name) == 0) return smoe_err(SMOE_ERR_FORMAT, "duplicate %s '%s'", what, r[i].name);
    return SMOE_OK;
}

static int64_t index_find(const gguf_ref *r, int64_t n, const char *name) {
    if (!r || !name) return -1;
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(r[mid].name, name);
        if (c == 0) return r[mid].i;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return -1;
}

static const char *kv_name_of(const smoe_gguf *g, int64_t i) { return g->kv[i].key; }
static const char *t_name_of(const smoe_gguf *g, int64_t i) { return g->tensors[i].name; }

/* Tensor data ranges, for the overlap check. */
typedef struct gguf_span {
    uint64_t off;
    int64_t i;
} gguf_span;

static int span_cmp(const void *a, const void *b) {
    const gguf_span *x = a, *y = b;
    if (x->off != y->off) return x->off < y->off ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i); /* same order under every qsort */
}

/* ------------------------------------------------------------------ parsing */

static smoe_status parse_value(cursor *c, gguf_kv *kv) {
    smoe_status st;
    kv->raw = c->p;
    if (kv->type == SMOE_GGUF_STRING) {
        const uint8_t *s;
        uint64_t len;
        if ((st = cur_str(c, &s, &len, "string value"))) return st;
        kv->val = s - 8;
    } else if (kv->type == SMOE_GGUF_ARRAY) {
        uint32_t at;
        if ((st = cur_u32(c, &at, "array type"))) return st;
        if (at >= SMOE_GGUF_TYPE_COUNT) return smoe_err(SMOE_ERR_FORMAT, "unknown array element type %u", at);
        if (at == SMOE_GGUF_ARRAY) return smoe_err(SMOE_ERR_UNSUPPORTED, "nested arrays are not supported");
        kv->arr_type = (smoe_gguf_type)at;
        if ((st = cur_u64(c, &kv->arr_n, "array length"))) return st;
        kv->val = c->p;
        if (at == SMOE_GGUF_STRING) {
            /* each element takes at least its 8-byte length */
            if (kv->arr_n > cur_left(c) / 8)
                return smoe_err(SMOE_ERR_FORMAT, "array of %llu strings cannot fit in the %zu bytes left",
                                (unsigned long long)kv->arr_n, cur_left(c));
            kv->str_off = malloc(sizeof(uint64_t) * (kv->arr_n ? kv->arr_n : 1));
            if (!kv->str_off) return smoe_err(SMOE_ERR_NOMEM, "out of memory for a string array");
            for (uint64_t j = 0; j < kv->arr_n; j++) {
                const uint8_t *s;
                uint64_t len;
                kv->str_off[j] = (uint64_t)(c->p - kv->val);
                if ((st = cur_str(c, &s, &len, "string array element"))) return st;
            }
        } else {
            size_t es = type_size(kv->arr_type);
            if (kv->arr_n > cur_left(c) / es)
                return smoe_err(SMOE_ERR_FORMAT, "array of %llu %s values cannot fit in the %zu bytes left",
                                (unsigned long long)kv->arr_n, type_name(kv->arr_type), cur_left(c));
            if (kv->arr_type == SMOE_GGUF_BOOL)
                for (uint64_t j = 0; j < kv->arr_n; j++)
                    if (c->p[j] > 1) return smoe_err(SMOE_ERR_FORMAT, "bool array element %llu is %u, not 0 or 1",
                                                     (unsigned long long)j, c->p[j]);
            c->p += kv->arr_n * es;
        }
    } else {
        size_t es = type_size(kv->type);
        if ((st = cur_need(c, es, "value"))) return st;
        if (kv->type == SMOE_GGUF_BOOL && c->p[0] > 1)
            return smoe_err(SMOE_ERR_FORMAT, "bool value is %u, not 0 or 1", c->p[0]);
        kv->val = c->p;
        c->p += es;
    }
    kv->val_len = (size_t)(c->p - kv->raw);
    return SMOE_OK;
}

static smoe_status parse(smoe_gguf *g) {
    cursor c = {g->base, g->base + g->size, g->base};
    smoe_status st;
    uint32_t magic;
    uint64_t n_tensors, n_kv;

    if (g->size < 4 || (magic = rd_u32(g->base)) != GGUF_MAGIC) {
        if (g->size < 4) return smoe_err(SMOE_ERR_FORMAT, "not a GGUF file: only %zu bytes", g->size);
        return smoe_err(SMOE_ERR_FORMAT, "not a GGUF file: bad magic %02x %02x %02x %02x (want 'GGUF')",
                        g->base[0], g->base[1], g->base[2], g->base[3]);
    }
    c.p += 4;
    if ((st = cur_u32(&c, &g->version, "version"))) return st;
    if (g->version == 1) return smoe_err(SMOE_ERR_UNSUPPORTED, "GGUF version 1 is not supported (convert to v3)");
    if (g->version != 2 && g->version != 3) {
        if (g->version != 0 && (g->version & 0xffff) == 0)
            return smoe_err(SMOE_ERR_FORMAT, "GGUF version %u looks byte-swapped (big-endian files are not supported)",
                            g->version);
        return smoe_err(SMOE_ERR_FORMAT, "unknown GGUF version %u (supported: 2, 3)", g->version);
    }
    if ((st = cur_u64(&c, &n_tensors, "tensor count"))) return st;
    if ((st = cur_u64(&c, &n_kv, "metadata count"))) return st;
    /* a kv takes at least 8 (key len) + 4 (type) + 1 bytes; a tensor info 8 + 4 + 8 + 4 + 8 */
    if (n_kv > cur_left(&c) / 13)
        return smoe_err(SMOE_ERR_FORMAT, "absurd metadata count %llu for a file of %zu bytes",
                        (unsigned long long)n_kv, g->size);
    if (n_tensors > cur_left(&c) / 32)
        return smoe_err(SMOE_ERR_FORMAT, "absurd tensor count %llu for a file of %zu bytes",
                        (unsigned long long)n_tensors, g->size);

    g->kv = calloc(n_kv ? n_kv : 1, sizeof *g->kv);
    g->tensors = calloc(n_tensors ? n_tensors : 1, sizeof *g->tensors);
    if (!g->kv || !g->tensors) return smoe_err(SMOE_ERR_NOMEM, "out of memory for the GGUF directory");

    for (uint64_t i = 0; i < n_kv; i++) {
        gguf_kv *kv = &g->kv[i];
        const uint8_t *k;
        uint64_t klen;
        uint32_t t;
        if ((st = cur_str(&c, &k, &klen, "metadata key"))) return smoe_err_prefix(st, "metadata entry %llu", (unsigned long long)i);
        if (klen == 0 || klen > GGUF_MAX_KEY_LEN)
            return smoe_err(SMOE_ERR_FORMAT, "metadata entry %llu: key length %llu out of range",
                            (unsigned long long)i, (unsigned long long)klen);
        if (memchr(k, 0, (size_t)klen))
            return smoe_err(SMOE_ERR_FORMAT, "metadata entry %llu: key contains a NUL byte", (unsigned long long)i);
        if (!(kv->key = dup_name(k, klen))) return smoe_err(SMOE_ERR_NOMEM, "out of memory");
        g->n_kv = (int64_t)i + 1;
        if ((st = cur_u32(&c, &t, "metadata type"))) return smoe_err_prefix(st, "key '%s'", kv->key);
        if (t >= SMOE_GGUF_TYPE_COUNT) return smoe_err(SMOE_ERR_FORMAT, "key '%s': unknown value type %u", kv->key, t);
        kv->type = (smoe_gguf_type)t;
        if ((st = parse_value(&c, kv))) return smoe_err_prefix(st, "key '%s'", kv->key);
    }
    if ((st = build_index(&g->kv_index, g->n_kv, kv_name_of, g, "metadata key"))) return st;

    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    int64_t ai = smoe_gguf_find_key(g, "general.alignment");
    if (ai >= 0) {
        const gguf_kv *kv = &g->kv[ai];
        if (kv->type != SMOE_GGUF_UINT32)
            return smoe_err(SMOE_ERR_FORMAT, "general.alignment has type %s, want u32", type_name(kv->type));
        uint32_t a = rd_u32(kv->val);
        if (a == 0 || (a & (a - 1)) || a > (1u << 20))
            return smoe_err(SMOE_ERR_FORMAT, "general.alignment %u is not a power of two in [1, 2^20]", a);
        g->alignment = a;
    }

    for (uint64_t i = 0; i < n_tensors; i++) {
        gguf_tensor *t = &g->tensors[i];
        const uint8_t *nm;
        uint64_t nlen, off;
        uint32_t nd, dt;
        if ((st = cur_str(&c, &nm, &nlen, "tensor name"))) return smoe_err_prefix(st, "tensor %llu", (unsigned long long)i);
        if (nlen == 0 || nlen > GGUF_MAX_NAME_LEN || memchr(nm, 0, (size_t)nlen))
            return smoe_err(SMOE_ERR_FORMAT, "tensor %llu: invalid name (length %llu)", (unsigned long long)i,
                            (unsigned long long)nlen);
        if (!(t->name = dup_name(nm, nlen))) return smoe_err(SMOE_ERR_NOMEM, "out of memory");
        g->n_tensors = (int64_t)i + 1;
        if ((st = cur_u32(&c, &nd, "dimension count"))) return smoe_err_prefix(st, "tensor '%s'", t->name);
        if (nd == 0 || nd > SMOE_MAX_DIMS)
            return smoe_err(SMOE_ERR_FORMAT, "tensor '%s': %u dimensions (supported: 1..%d)", t->name, nd, SMOE_MAX_DIMS);
        t->ndim = (int)nd;
        uint64_t nel = 1;
        for (int d = 0; d < SMOE_MAX_DIMS; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < nd; d++) {
            uint64_t ne;
            if ((st = cur_u64(&c, &ne, "dimension"))) return smoe_err_prefix(st, "tensor '%s'", t->name);
            if (ne > (uint64_t)INT64_MAX || smoe_mul_overflow_u64(nel, ne, &nel) || nel > (uint64_t)INT64_MAX)
                return smoe_err(SMOE_ERR_FORMAT, "tensor '%s': element count overflows", t->name);
            t->ne[d] = (int64_t)ne;
        }
        if ((st = cur_u32(&c, &dt, "tensor type"))) return smoe_err_prefix(st, "tensor '%s'", t->name);
        const smoe_type_traits *tr = smoe_type_traits_get((int)dt);
        if (!tr) return smoe_err(SMOE_ERR_FORMAT, "tensor '%s': unknown tensor type %u", t->name, dt);
        t->dtype = (int)dt;
        if (t->ne[0] % tr->block_size)
            return smoe_err(SMOE_ERR_FORMAT, "tensor '%s': row length %lld is not a multiple of the %s block size %lld",
                            t->name, (long long)t->ne[0], tr->name, (long long)tr->block_size);
        uint64_t nb;
        if (smoe_mul_overflow_u64(nel / (uint64_t)tr->block_size, tr->block_bytes, &nb) || nb > SIZE_MAX)
            return smoe_err(SMOE_ERR_FORMAT, "tensor '%s': byte size overflows", t->name);
        t->nbytes = (size_t)nb;
        if ((st = cur_u64(&c, &off, "tensor offset"))) return smoe_err_prefix(st, "tensor '%s'", t->name);
        if (off % g->alignment)
            return smoe_err(SMOE_ERR_FORMAT, "tensor '%s': offset %llu is not a multiple of the alignment %zu", t->name,
                            (unsigned long long)off, g->alignment);
        t->offset = off;
    }
    if ((st = build_index(&g->t_index, g->n_tensors, t_name_of, g, "tensor name"))) return st;

    /* data section: after the header, padded to the alignment */
    uint64_t hdr = cur_pos(&c);
    uint64_t data = (hdr + g->alignment - 1) / g->alignment * g->alignment;
    if (n_tensors > 0 && data > g->size)
        return smoe_err(SMOE_ERR_FORMAT, "truncated file: the data section would start at %llu, past the end (%zu bytes)",
                        (unsigned long long)data, g->size);
    g->data_offset = (size_t)(data > g->size ? g->size : data);
    uint64_t data_size = g->size - g->data_offset;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        const gguf_tensor *t = &g->tensors[i];
        uint64_t end;
        if (smoe_add_overflow_u64(t->offset, t->nbytes, &end) || end > data_size)
            return smoe_err(SMOE_ERR_FORMAT,
                            "tensor '%s': data [%llu, +%zu) runs past the end of the file (data section holds %llu bytes)",
                            t->name, (unsigned long long)t->offset, t->nbytes, (unsigned long long)data_size);
    }
    /* no two tensors may share bytes: sort the non-empty ones by offset (qsort, so no
     * quadratic worst case) and compare neighbours; empty tensors take no bytes */
    if (g->n_tensors > 1) {
        gguf_span *sp = malloc(sizeof *sp * (size_t)g->n_tensors);
        if (!sp) return smoe_err(SMOE_ERR_NOMEM, "out of memory");
        int64_t m = 0;
        for (int64_t i = 0; i < g->n_tensors; i++)
            if (g->tensors[i].nbytes > 0) sp[m++] = (gguf_span){g->tensors[i].offset, i};
        if (m > 1) qsort(sp, (size_t)m, sizeof *sp, span_cmp);
        for (int64_t k = 1; k < m; k++) {
            const gguf_tensor *a = &g->tensors[sp[k - 1].i], *b = &g->tensors[sp[k].i];
            if (a->offset + a->nbytes > b->offset) {
                smoe_status e = smoe_err(SMOE_ERR_FORMAT, "tensors '%s' and '%s' overlap in the data section", a->name, b->name);
                free(sp);
                return e;
            }
        }
        free(sp);
    }
    return SMOE_OK;
}

static smoe_status open_common(smoe_gguf *g, smoe_gguf **out) {
    smoe_status st = parse(g);
    if (st) {
        smoe_gguf_free(g);
        return st;
    }
    *out = g;
    return SMOE_OK;
}

smoe_status smoe_gguf_open_memory(const void *data, size_t size, smoe_gguf **out) {
    if (!out || (!data && size)) return smoe_err(SMOE_ERR_INVALID_ARG, "smoe_gguf_open_memory: NULL argument");
    *out = NULL;
    smoe_gguf *g = calloc(1, sizeof *g);
    if (!g) return smoe_err(SMOE_ERR_NOMEM, "out of memory");
    g->base = data;
    g->size = size;
    g->fd = -1;
    return open_common(g, out);
}

smoe_status smoe_gguf_open(const char *path, smoe_gguf **out) {
    if (!path || !out) return smoe_err(SMOE_ERR_INVALID_ARG, "smoe_gguf_open: NULL argument");
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return smoe_err(SMOE_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        int e = errno;
        close(fd);
        return smoe_err(SMOE_ERR_IO, "'%s' is not a regular file%s%s", path, e ? ": " : "", e ? strerror(e) : "");
    }
    smoe_gguf *g = calloc(1, sizeof *g);
    if (!g) {
        close(fd);
        return smoe_err(SMOE_ERR_NOMEM, "out of memory");
    }
    g->fd = fd;
    g->size = (size_t)sb.st_size;
    if (g->size > 0) {
        void *p = mmap(NULL, g->size, PROT_READ, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
            smoe_status e = smoe_err(SMOE_ERR_IO, "cannot mmap '%s': %s", path, strerror(errno));
            smoe_gguf_free(g);
            return e;
        }
        g->base = p;
        g->mapped = true;
    } else {
        g->base = (const uint8_t *)"";
    }
    smoe_status st = open_common(g, out);
    if (st) return smoe_err_prefix(st, "%s", path);
    return SMOE_OK;
}

void smoe_gguf_free(smoe_gguf *g) {
    if (!g) return;
    for (int64_t i = 0; i < g->n_kv; i++) {
        free(g->kv[i].key);
        free(g->kv[i].str_off);
    }
    for (int64_t i = 0; i < g->n_tensors; i++) free(g->tensors[i].name);
    free(g->kv);
    free(g->tensors);
    free(g->kv_index);
    free(g->t_index);
    if (g->mapped) munmap((void *)g->base, g->size);
    if (g->fd >= 0) close(g->fd);
    free(g);
}

/* ------------------------------------------------------------------ accessors */

uint32_t smoe_gguf_version(const smoe_gguf *g) { return g->version; }
size_t smoe_gguf_alignment(const smoe_gguf *g) { return g->alignment; }
size_t smoe_gguf_file_size(const smoe_gguf *g) { return g->size; }
int64_t smoe_gguf_n_kv(const smoe_gguf *g) { return g->n_kv; }
int64_t smoe_gguf_n_tensors(const smoe_gguf *g) { return g->n_tensors; }

int64_t smoe_gguf_find_key(const smoe_gguf *g, const char *key) {
    return index_find(g->kv_index, g->n_kv, key);
}
int64_t smoe_gguf_find_tensor(const smoe_gguf *g, const char *name) {
    return index_find(g->t_index, g->n_tensors, name);
}

static const gguf_kv *kv_at(const smoe_gguf *g, int64_t i) { return (i >= 0 && i < g->n_kv) ? &g->kv[i] : NULL; }
static const gguf_tensor *t_at(const smoe_gguf *g, int64_t i) {
    return (i >= 0 && i < g->n_tensors) ? &g->tensors[i] : NULL;
}

const char *smoe_gguf_key(const smoe_gguf *g, int64_t i) { const gguf_kv *kv = kv_at(g, i); return kv ? kv->key : NULL; }
smoe_gguf_type smoe_gguf_kv_type(const smoe_gguf *g, int64_t i) {
    const gguf_kv *kv = kv_at(g, i);
    return kv ? kv->type : SMOE_GGUF_TYPE_COUNT;
}
smoe_gguf_type smoe_gguf_arr_type(const smoe_gguf *g, int64_t i) {
    const gguf_kv *kv = kv_at(g, i);
    return kv && kv->type == SMOE_GGUF_ARRAY ? kv->arr_type : SMOE_GGUF_TYPE_COUNT;
}
uint64_t smoe_gguf_arr_n(const smoe_gguf *g, int64_t i) {
    const gguf_kv *kv = kv_at(g, i);
    return kv && kv->type == SMOE_GGUF_ARRAY ? kv->arr_n : 0;
}
const void *smoe_gguf_arr_data(const smoe_gguf *g, int64_t i) {
    const gguf_kv *kv = kv_at(g, i);
    return kv && kv->type == SMOE_GGUF_ARRAY && kv->arr_type != SMOE_GGUF_STRING ? kv->val : NULL;
}
const char *smoe_gguf_arr_str(const smoe_gguf *g, int64_t i, uint64_t j, uint64_t *len) {
    const gguf_kv *kv = kv_at(g, i);
    if (!kv || kv->type != SMOE_GGUF_ARRAY || kv->arr_type != SMOE_GGUF_STRING || j >= kv->arr_n) return NULL;
    const uint8_t *p = kv->val + kv->str_off[j];
    if (len) *len = rd_u64(p);
    return (const char *)p + 8;
}

/* Read a scalar integer of any integer type as int64 (u64 above INT64_MAX fails). */
static smoe_status kv_int(const gguf_kv *kv, const char *key, int64_t *out) {
    const uint8_t *p = kv->val;
    switch (kv->type) {
    case SMOE_GGUF_UINT8: *out = p[0]; break;
    case SMOE_GGUF_INT8: *out = (int8_t)p[0]; break;
    case SMOE_GGUF_UINT16: { uint16_t v; memcpy(&v, p, 2); *out = v; break; }
    case SMOE_GGUF_INT16: { int16_t v; memcpy(&v, p, 2); *out = v; break; }
    case SMOE_GGUF_UINT32: *out = rd_u32(p); break;
    case SMOE_GGUF_INT32: *out = (int32_t)rd_u32(p); break;
    case SMOE_GGUF_INT64: *out = (int64_t)rd_u64(p); break;
    case SMOE_GGUF_UINT64: {
        uint64_t v = rd_u64(p);
        if (v > (uint64_t)INT64_MAX) return smoe_err(SMOE_ERR_RANGE, "key '%s': value %llu too large", key, (unsigned long long)v);
        *out = (int64_t)v;
        break;
    }
    default: return smoe_err(SMOE_ERR_FORMAT, "key '%s' has type %s, want an integer", key, type_name(kv->type));
    }
    return SMOE_OK;
}

static smoe_status find_kv(const smoe_gguf *g, const char *key, const gguf_kv **kv) {
    int64_t i = smoe_gguf_find_key(g, key);
    if (i < 0) return smoe_err(SMOE_ERR_NOT_FOUND, "key '%s' not found", key);
    *kv = &g->kv[i];
    return SMOE_OK;
}

smoe_status smoe_gguf_get_i64(const smoe_gguf *g, const char *key, int64_t *out) {
    const gguf_kv *kv = NULL;
    smoe_status st = find_kv(g, key, &kv);
    return st ? st : kv_int(kv, key, out);
}

smoe_status smoe_gguf_get_u32(const smoe_gguf *g, const char *key, uint32_t *out) {
    int64_t v;
    smoe_status st = smoe_gguf_get_i64(g, key, &v);
    if (st) return st;
    if (v < 0 || v > UINT32_MAX) return smoe_err(SMOE_ERR_RANGE, "key '%s': value %lld out of range", key, (long long)v);
    *out = (uint32_t)v;
    return SMOE_OK;
}

smoe_status smoe_gguf_get_f32(const smoe_gguf *g, const char *key, float *out) {
    const gguf_kv *kv = NULL;
    smoe_status st = find_kv(g, key, &kv);
    if (st) return st;
    if (kv->type == SMOE_GGUF_FLOAT32) {
        memcpy(out, kv->val, 4);
    } else if (kv->type == SMOE_GGUF_FLOAT64) {
        double d;
        memcpy(&d, kv->val, 8);
        *out = (float)d;
    } else {
        int64_t v;
        if ((st = kv_int(kv, key, &v))) return smoe_err(SMOE_ERR_FORMAT, "key '%s' has type %s, want a number", key, type_name(kv->type));
        *out = (float)v;
    }
    return SMOE_OK;
}

smoe_status smoe_gguf_get_bool(const smoe_gguf *g, const char *key, bool *out) {
    const gguf_kv *kv = NULL;
    smoe_status st = find_kv(g, key, &kv);
    if (st) return st;
    if (kv->type != SMOE_GGUF_BOOL) return smoe_err(SMOE_ERR_FORMAT, "key '%s' has type %s, want bool", key, type_name(kv->type));
    *out = kv->val[0] != 0;
    return SMOE_OK;
}

smoe_status smoe_gguf_get_str(const smoe_gguf *g, const char *key, const char **s, uint64_t *len) {
    const gguf_kv *kv = NULL;
    smoe_status st = find_kv(g, key, &kv);
    if (st) return st;
    if (kv->type != SMOE_GGUF_STRING) return smoe_err(SMOE_ERR_FORMAT, "key '%s' has type %s, want string", key, type_name(kv->type));
    *len = rd_u64(kv->val);
    *s = (const char *)kv->val + 8;
    return SMOE_OK;
}

/* Append a printable rendering of a string (control bytes escaped), at most max bytes of it. */
static size_t fmt_str(char *buf, size_t cap, size_t pos, const char *s, uint64_t len, size_t max) {
    if (pos < cap) pos += (size_t)snprintf(buf + pos, cap - pos, "\"");
    for (uint64_t j = 0; j < len && j < max && pos + 8 < cap; j++) {
        unsigned char ch = (unsigned char)s[j];
        if (ch == '"' || ch == '\\') pos += (size_t)snprintf(buf + pos, cap - pos, "\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f) pos += (size_t)snprintf(buf + pos, cap - pos, "\\x%02x", ch);
        else buf[pos++] = (char)ch, buf[pos] = 0;
    }
    if (len > max && pos + 4 < cap) pos += (size_t)snprintf(buf + pos, cap - pos, "...");
    if (pos + 1 < cap) pos += (size_t)snprintf(buf + pos, cap - pos, "\"");
    return pos;
}

static size_t fmt_scalar(char *buf, size_t cap, size_t pos, smoe_gguf_type t, const uint8_t *p) {
    if (pos >= cap) return pos;
    char *b = buf + pos;
    size_t n = cap - pos;
    int w = 0;
    switch (t) {
    case SMOE_GGUF_UINT8: w = snprintf(b, n, "%u", p[0]); break;
    case SMOE_GGUF_INT8: w = snprintf(b, n, "%d", (int8_t)p[0]); break;
    case SMOE_GGUF_UINT16: { uint16_t v; memcpy(&v, p, 2); w = snprintf(b, n, "%u", v); break; }
    case SMOE_GGUF_INT16: { int16_t v; memcpy(&v, p, 2); w = snprintf(b, n, "%d", v); break; }
    case SMOE_GGUF_UINT32: w = snprintf(b, n, "%u", rd_u32(p)); break;
    case SMOE_GGUF_INT32: w = snprintf(b, n, "%d", (int32_t)rd_u32(p)); break;
    case SMOE_GGUF_UINT64: w = snprintf(b, n, "%llu", (unsigned long long)rd_u64(p)); break;
    case SMOE_GGUF_INT64: w = snprintf(b, n, "%lld", (long long)(int64_t)rd_u64(p)); break;
    case SMOE_GGUF_FLOAT32: { float v; memcpy(&v, p, 4); w = snprintf(b, n, "%.9g", v); break; }
    case SMOE_GGUF_FLOAT64: { double v; memcpy(&v, p, 8); w = snprintf(b, n, "%.17g", v); break; }
    case SMOE_GGUF_BOOL: w = snprintf(b, n, "%s", p[0] ? "true" : "false"); break;
    default: w = snprintf(b, n, "?"); break;
    }
    return pos + (w > 0 ? (size_t)w : 0);
}

void smoe_gguf_kv_format(const smoe_gguf *g, int64_t i, char *buf, size_t cap) {
    const gguf_kv *kv = kv_at(g, i);
    if (!cap) return;
    buf[0] = 0;
    if (!kv) return;
    size_t pos = 0;
    if (kv->type == SMOE_GGUF_STRING) {
        pos = fmt_str(buf, cap, pos, (const char *)kv->val + 8, rd_u64(kv->val), 200);
    } else if (kv->type == SMOE_GGUF_ARRAY) {
        pos += (size_t)snprintf(buf, cap, "[%s x %llu] ", type_name(kv->arr_type), (unsigned long long)kv->arr_n);
        for (uint64_t j = 0; j < kv->arr_n && j < 8 && pos + 16 < cap; j++) {
            if (j) pos += (size_t)snprintf(buf + pos, cap - pos, ", ");
            if (kv->arr_type == SMOE_GGUF_STRING) {
                uint64_t len = 0;
                const char *s = smoe_gguf_arr_str(g, i, j, &len);
                pos = fmt_str(buf, cap, pos, s, len, 40);
            } else {
                pos = fmt_scalar(buf, cap, pos, kv->arr_type, kv->val + j * type_size(kv->arr_type));
            }
        }
        if (kv->arr_n > 8 && pos + 5 < cap) snprintf(buf + pos, cap - pos, ", ...");
    } else {
        fmt_scalar(buf, cap, pos, kv->type, kv->val);
    }
}

const char *smoe_gguf_tensor_name(const smoe_gguf *g, int64_t i) { const gguf_tensor *t = t_at(g, i); return t ? t->name : NULL; }
int smoe_gguf_tensor_dtype(const smoe_gguf *g, int64_t i) { const gguf_tensor *t = t_at(g, i); return t ? t->dtype : -1; }
int smoe_gguf_tensor_ndim(const smoe_gguf *g, int64_t i) { const gguf_tensor *t = t_at(g, i); return t ? t->ndim : 0; }
int64_t smoe_gguf_tensor_ne(const smoe_gguf *g, int64_t i, int dim) {
    const gguf_tensor *t = t_at(g, i);
    return t && dim >= 0 && dim < SMOE_MAX_DIMS ? t->ne[dim] : (t && dim >= SMOE_MAX_DIMS ? 1 : 0);
}
uint64_t smoe_gguf_tensor_offset(const smoe_gguf *g, int64_t i) { const gguf_tensor *t = t_at(g, i); return t ? t->offset : 0; }
size_t smoe_gguf_tensor_nbytes(const smoe_gguf *g, int64_t i) { const gguf_tensor *t = t_at(g, i); return t ? t->nbytes : 0; }
const void *smoe_gguf_tensor_data(const smoe_gguf *g, int64_t i) {
    const gguf_tensor *t = t_at(g, i);
    return t ? g->base + g->data_offset + t->offset : NULL;
}

/* ================================================================== writer */

typedef struct wkv {
    char *key;
    smoe_gguf_type type;
    uint8_t *val;      /* the value exactly as it will be stored after the type field */
    size_t val_len;
} wkv;

typedef struct wtensor {
    char *name;
    int dtype, ndim;
    int64_t ne[SMOE_MAX_DIMS];
    void *data;                /* owned copy, or NULL when fill produces the bytes */
    size_t nbytes;
    smoe_tensor_fill_fn fill;
    void *fill_user;
} wtensor;

struct smoe_gguf_writer {
    wkv *kv;
    int64_t n_kv, cap_kv;
    wtensor *t;
    int64_t n_t, cap_t;
};

smoe_status smoe_gguf_writer_init(smoe_gguf_writer **out) {
    if (!out) return smoe_err(SMOE_ERR_INVALID_ARG, "smoe_gguf_writer_init: NULL argument");
    *out = calloc(1, sizeof **out);
    return *out ? SMOE_OK : smoe_err(SMOE_ERR_NOMEM, "out of memory");
}

void smoe_gguf_writer_free(smoe_gguf_writer *w) {
    if (!w) return;
    for (int64_t i = 0; i < w->n_kv; i++) free(w->kv[i].key), free(w->kv[i].val);
    for (int64_t i = 0; i < w->n_t; i++) free(w->t[i].name), free(w->t[i].data);
    free(w->kv);
    free(w->t);
    free(w);
}

/* Take ownership of val (malloc'd, val_len bytes) for key; replaces an existing value. */
static smoe_status w_set(smoe_gguf_writer *w, const char *key, smoe_gguf_type type, uint8_t *val, size_t val_len) {
    if (!w || !key || !key[0]) {
        free(val);
        return smoe_err(SMOE_ERR_INVALID_ARG, "gguf writer: empty key");
    }
    for (int64_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kv[i].key, key) == 0) {
            free(w->kv[i].val);
            w->kv[i].type = type, w->kv[i].val = val, w->kv[i].val_len = val_len;
            return SMOE_OK;
        }
    }
    if (w->n_kv == w->cap_kv) {
        int64_t nc = w->cap_kv ? w->cap_kv * 2 : 32;
        wkv *nk = realloc(w->kv, sizeof *nk * (size_t)nc);
        if (!nk) { free(val); return smoe_err(SMOE_ERR_NOMEM, "out of memory"); }
        w->kv = nk, w->cap_kv = nc;
    }
    char *k = strdup(key);
    if (!k) { free(val); return smoe_err(SMOE_ERR_NOMEM, "out of memory"); }
    w->kv[w->n_kv++] = (wkv){k, type, val, val_len};
    return SMOE_OK;
}

static smoe_status w_set_bytes(smoe_gguf_writer *w, const char *key, smoe_gguf_type type, const void *p, size_t n) {
    uint8_t *v = malloc(n ? n : 1);
    if (!v) return smoe_err(SMOE_ERR_NOMEM, "out of memory");
    memcpy(v, p, n);
    return w_set(w, key, type, v, n);
}

smoe_status smoe_gguf_writer_set_u32(smoe_gguf_writer *w, const char *key, uint32_t v) { return w_set_bytes(w, key, SMOE_GGUF_UINT32, &v, 4); }
smoe_status smoe_gguf_writer_set_i32(smoe_gguf_writer *w, const char *key, int32_t v) { return w_set_bytes(w, key, SMOE_GGUF_INT32, &v, 4); }
smoe_status smoe_gguf_writer_set_u64(smoe_gguf_writer *w, const char *key, uint64_t v) { return w_set_bytes(w, key, SMOE_GGUF_UINT64, &v, 8); }
smoe_status smoe_gguf_writer_set_f32(smoe_gguf_writer *w, const char *key, float v) { return w_set_bytes(w, key, SMOE_GGUF_FLOAT32, &v, 4); }
smoe_status smoe_gguf_writer_set_bool(smoe_gguf_writer *w, const char *key, bool v) {
    uint8_t b = v ? 1 : 0;
    return w_set_bytes(w, key, SMOE_GGUF_BOOL, &b, 1);
}

smoe_status smoe_gguf_writer_set_str(smoe_gguf_writer *w, const char *key, const char *s) {
    if (!s) return smoe_err(SMOE_ERR_INVALID_ARG, "gguf writer: NULL string for '%s'", key ? key : "?");
    uint64_t len = strlen(s);
    uint8_t *v = malloc(8 + (size_t)len);
    if (!v) return smoe_err(SMOE_ERR_NOMEM, "out of memory");
    memcpy(v, &len, 8);
    memcpy(v + 8, s, (size_t)len);
    return w_set(w, key, SMOE_GGUF_STRING, v, 8 + (size_t)len);
}

smoe_status smoe_gguf_writer_set_arr(smoe_gguf_writer *w, const char *key, smoe_gguf_type et, const void *data, uint64_t n) {
    size_t es = type_size(et);
    if (!es) return smoe_err(SMOE_ERR_INVALID_ARG, "gguf writer: '%s': element type %s is not numeric", key ? key : "?", type_name(et));
    if (n > (SIZE_MAX - 12) / es) return smoe_err(SMOE_ERR_RANGE, "gguf writer: array too large");
    size_t len = 12 + (size_t)n * es;
    uint8_t *v = malloc(len);
    if (!v) return smoe_err(SMOE_ERR_NOMEM, "out of memory");
    uint32_t t32 = (uint32_t)et;
    memcpy(v, &t32, 4);
    memcpy(v + 4, &n, 8);
    if (n) memcpy(v + 12, data, (size_t)n * es);
    return w_set(w, key, SMOE_GGUF_ARRAY, v, len);
}

smoe_status smoe_gguf_writer_set_arr_str(smoe_gguf_writer *w, const char *key, const char *const *strs, const uint64_t *lens,
                                         uint64_t n) {
    size_t len = 12;
    for (uint64_t j = 0; j < n; j++) {
        uint64_t l = lens ? lens[j] : strlen(strs[j]);
        if (l > SIZE_MAX / 2 || len > SIZE_MAX / 2) return smoe_err(SMOE_ERR_RANGE, "gguf writer: array too large");
        len += 8 + (size_t)l;
    }
    uint8_t *v = malloc(len), *p = v;
    if (!v) return smoe_err(SMOE_ERR_NOMEM, "out of memory");
    uint32_t t32 = SMOE_GGUF_STRING;
    memcpy(p, &t32, 4), p += 4;
    memcpy(p, &n, 8), p += 8;
    for (uint64_t j = 0; j < n; j++) {
        uint64_t l = lens ? lens[j] : strlen(strs[j]);
        memcpy(p, &l, 8), p += 8;
        memcpy(p, strs[j], (size_t)l), p += l;
    }
    return w_set(w, key, SMOE_GGUF_ARRAY, v, len);
}

smoe_status smoe_gguf_writer_copy_kv(smoe_gguf_writer *w, const smoe_gguf *g, int64_t i) {
    const gguf_kv *kv = kv_at(g, i);
    if (!kv) return smoe_err(SMOE_ERR_RANGE, "gguf writer: no metadata entry %lld", (long long)i);
    return w_set_bytes(w, kv->key, kv->type, kv->raw, kv->val_len);
}

/* Validate a new tensor and append its entry (data not set yet). */
static smoe_status w_new_tensor(smoe_gguf_writer *w, const char *name, int dtype, int ndim, const int64_t *ne,
                                size_t *nbytes_out, wtensor **out) {
    const smoe_type_traits *tr = smoe_type_traits_get(dtype);
    if (!w || !name || !name[0] || !ne) return smoe_err(SMOE_ERR_INVALID_ARG, "gguf writer: bad tensor arguments");
    if (!tr) return smoe_err(SMOE_ERR_INVALID_ARG, "gguf writer: tensor '%s': unknown type %d", name, dtype);
    if (ndim < 1 || ndim > SMOE_MAX_DIMS) return smoe_err(SMOE_ERR_INVALID_ARG, "gguf writer: tensor '%s': %d dims", name, ndim);
    uint64_t nel = 1, nb;
    for (int d = 0; d < ndim; d++) {
        if (ne[d] < 0 || smoe_mul_overflow_u64(nel, (uint64_t)ne[d], &nel))
            return smoe_err(SMOE_ERR_INVALID_ARG, "gguf writer: tensor '%s': bad shape", name);
    }
    if (ne[0] % tr->block_size || smoe_mul_overflow_u64(nel / (uint64_t)tr->block_size, tr->block_bytes, &nb) ||
        nb > SIZE_MAX)
        return smoe_err(SMOE_ERR_INVALID_ARG, "gguf writer: tensor '%s': shape does not fit type %s", name, tr->name);
    for (int64_t i = 0; i < w->n_t; i++)
        if (strcmp(w->t[i].name, name) == 0) return smoe_err(SMOE_ERR_INVALID_ARG, "gguf writer: duplicate tensor '%s'", name);
    if (w->n_t == w->cap_t) {
        int64_t nc = w->cap_t ? w->cap_t * 2 : 32;
        wtensor *nt = realloc(w->t, sizeof *nt * (size_t)nc);
        if (!nt) return smoe_err(SMOE_ERR_NOMEM, "out of memory");
        w->t = nt, w->cap_t = nc;
    }
    wtensor *t = &w->t[w->n_t];
    memset(t, 0, sizeof *t);
    if (!(t->name = strdup(name))) return smoe_err(SMOE_ERR_NOMEM, "out of memory");
    t->dtype = dtype, t->ndim = ndim, t->nbytes = (size_t)nb;
    for (int d = 0; d < SMOE_MAX_DIMS; d++) t->ne[d] = d < ndim ? ne[d] : 1;
    *nbytes_out = (size_t)nb;
    *out = t;
    return SMOE_OK;
}

smoe_status smoe_gguf_writer_add_tensor(smoe_gguf_writer *w, const char *name, int dtype, int ndim, const int64_t *ne,
                                        const void *data, size_t nbytes) {
    size_t want = 0;
    wtensor *t = NULL;
    smoe_status st = w_new_tensor(w, name, dtype, ndim, ne, &want, &t);
    if (st) return st;
    if (want != nbytes) {
        free(t->name);
        return smoe_err(SMOE_ERR_INVALID_ARG, "gguf writer: tensor '%s': %zu bytes given, the shape and type need %zu",
                        name, nbytes, want);
    }
    if (!(t->data = malloc(nbytes ? nbytes : 1))) {
        free(t->name);
        return smoe_err(SMOE_ERR_NOMEM, "out of memory for tensor '%s' (%zu bytes)", name, nbytes);
    }
    if (nbytes) memcpy(t->data, data, nbytes);
    w->n_t++;
    return SMOE_OK;
}

smoe_status smoe_gguf_writer_add_tensor_fill(smoe_gguf_writer *w, const char *name, int dtype, int ndim,
                                             const int64_t *ne, smoe_tensor_fill_fn fill, void *user) {
    size_t nb = 0;
    wtensor *t = NULL;
    if (!fill) return smoe_err(SMOE_ERR_INVALID_ARG, "gguf writer: tensor '%s': no fill function", name ? name : "?");
    smoe_status st = w_new_tensor(w, name, dtype, ndim, ne, &nb, &t);
    if (st) return st;
    t->fill = fill, t->fill_user = user;
    w->n_t++;
    return SMOE_OK;
}

/* Buffered, error-latching output. */
typedef struct wout {
    FILE *f;
    uint64_t pos;
    int err;
} wout;

static void put(wout *o, const void *p, size_t n) {
    if (o->err || n == 0) return;
    if (fwrite(p, 1, n, o->f) != n) o->err = errno ? errno : EIO;
    o->pos += n;
}
static void put_u32(wout *o, uint32_t v) { put(o, &v, 4); }
static void put_u64(wout *o, uint64_t v) { put(o, &v, 8); }
static void put_pad(wout *o, size_t align) {
    static const uint8_t zeros[64];
    size_t pad = (size_t)((align - o->pos % align) % align);
    while (pad) {
        size_t k = pad < sizeof zeros ? pad : sizeof zeros;
        put(o, zeros, k);
        pad -= k;
    }
}

/* The umask, read without changing it (umask(2) would race with other threads). */
static mode_t process_umask(void) {
    unsigned m = 022;
    FILE *f = fopen("/proc/self/status", "r");
    if (f) {
        char line[128];
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "Umask: %o", &m) == 1) break;
        fclose(f);
    }
    return (mode_t)m;
}

smoe_status smoe_gguf_writer_write(smoe_gguf_writer *w, const char *path) {
    if (!w || !path) return smoe_err(SMOE_ERR_INVALID_ARG, "gguf writer: NULL argument");
    size_t align = GGUF_DEFAULT_ALIGNMENT;
    for (int64_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kv[i].key, "general.alignment") == 0) {
            uint32_t a;
            if (w->kv[i].type != SMOE_GGUF_UINT32) return smoe_err(SMOE_ERR_INVALID_ARG, "gguf writer: general.alignment must be u32");
            memcpy(&a, w->kv[i].val, 4);
            if (a == 0 || (a & (a - 1))) return smoe_err(SMOE_ERR_INVALID_ARG, "gguf writer: alignment %u is not a power of two", a);
            align = a;
        }
    }
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    if (!tmp) return smoe_err(SMOE_ERR_NOMEM, "out of memory");
    snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        smoe_status e = smoe_err(SMOE_ERR_IO, "cannot create a temporary file next to '%s': %s", path, strerror(errno));
        free(tmp);
        return e;
    }
    /* mkstemp creates 0600; give the file the mode open(2) would: 0666 less the umask */
    (void)fchmod(fd, 0666 & ~process_umask());
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        smoe_status e = smoe_err(SMOE_ERR_IO, "fdopen: %s", strerror(errno));
        close(fd), unlink(tmp), free(tmp);
        return e;
    }
    wout o = {f, 0, 0};
    put_u32(&o, GGUF_MAGIC);
    put_u32(&o, 3);
    put_u64(&o, (uint64_t)w->n_t);
    put_u64(&o, (uint64_t)w->n_kv);
    for (int64_t i = 0; i < w->n_kv; i++) {
        uint64_t kl = strlen(w->kv[i].key);
        put_u64(&o, kl);
        put(&o, w->kv[i].key, (size_t)kl);
        put_u32(&o, (uint32_t)w->kv[i].type);
        put(&o, w->kv[i].val, w->kv[i].val_len);
    }
    uint64_t off = 0;
    for (int64_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        uint64_t nl = strlen(t->name);
        put_u64(&o, nl);
        put(&o, t->name, (size_t)nl);
        put_u32(&o, (uint32_t)t->ndim);
        for (int d = 0; d < t->ndim; d++) put_u64(&o, (uint64_t)t->ne[d]);
        put_u32(&o, (uint32_t)t->dtype);
        put_u64(&o, off);
        off += (t->nbytes + align - 1) / align * align;
    }
    put_pad(&o, align);
    smoe_status fill_st = SMOE_OK;
    void *fbuf = NULL;
    size_t fcap = 0;
    for (int64_t i = 0; i < w->n_t && !o.err && !fill_st; i++) {
        const wtensor *t = &w->t[i];
        if (t->fill) { /* produce the bytes now, into a buffer reused across tensors */
            if (fcap < t->nbytes) {
                free(fbuf);
                fcap = t->nbytes;
                if (!(fbuf = malloc(fcap ? fcap : 1))) {
                    fill_st = smoe_err(SMOE_ERR_NOMEM, "gguf writer: out of memory for tensor '%s'", t->name);
                    break;
                }
            }
            if ((fill_st = t->fill(t->fill_user, i, fbuf, t->nbytes))) break;
            put(&o, fbuf, t->nbytes);
        } else {
            put(&o, t->data, t->nbytes);
        }
        put_pad(&o, align);
    }
    free(fbuf);
    if (fill_st) {
        fclose(f);
        unlink(tmp);
        free(tmp);
        return fill_st;
    }
    if (!o.err && fflush(f) != 0) o.err = errno ? errno : EIO;
    if (!o.err && fsync(fileno(f)) != 0) o.err = errno ? errno : EIO;
    if (fclose(f) != 0 && !o.err) o.err = errno ? errno : EIO;
    if (!o.err && rename(tmp, path) != 0) o.err = errno ? errno : EIO;
    smoe_status st = SMOE_OK;
    if (o.err) {
        unlink(tmp);
        st = smoe_err(SMOE_ERR_IO, "cannot write '%s': %s", path, strerror(o.err));
    }
    free(tmp);
    return st;
}
