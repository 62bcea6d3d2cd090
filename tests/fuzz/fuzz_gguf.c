/*
 * fuzz_gguf.c - libFuzzer target for the GGUF reader (`make fuzz`).
 *
 * Opens the input with smoe_gguf_open_memory. A rejected input must leave *out NULL and
 * a message. An accepted one is walked through every accessor: each key (type, display
 * formatting into roomy and tiny buffers, scalar getters, every array element and
 * string byte range), each tensor (name, look-up, dims, byte size against its type,
 * first and last byte of its data), copy_kv of every key into a writer, and finally
 * smoe_tokenizer_from_gguf with a short encode/decode when it succeeds. Any broken
 * invariant aborts, so libFuzzer reports it as a crash; memory errors are ASan's.
 */
#include "smoe.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REQUIRE(c)                                                                        \
    do {                                                                                  \
        if (!(c)) {                                                                       \
            fprintf(stderr, "fuzz_gguf: invariant failed: %s (line %d)\n", #c, __LINE__); \
            abort();                                                                      \
        }                                                                                 \
    } while (0)

static volatile uint8_t g_sink; /* keeps the byte reads from being optimised away */

static void touch(const void *p, size_t n) {
    if (!n) return;
    const volatile uint8_t *b = p;
    g_sink ^= b[0];
    g_sink ^= b[n - 1];
}

static size_t elem_size(smoe_gguf_type t) {
    switch (t) {
    case SMOE_GGUF_UINT8: case SMOE_GGUF_INT8: case SMOE_GGUF_BOOL: return 1;
    case SMOE_GGUF_UINT16: case SMOE_GGUF_INT16: return 2;
    case SMOE_GGUF_UINT32: case SMOE_GGUF_INT32: case SMOE_GGUF_FLOAT32: return 4;
    case SMOE_GGUF_UINT64: case SMOE_GGUF_INT64: case SMOE_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

/* Format key i into an exactly-sized heap buffer of each small capacity. */
static void format_all_caps(const smoe_gguf *g, int64_t i) {
    static const size_t caps[] = {1, 2, 7, 17, 33};
    for (size_t k = 0; k < sizeof caps / sizeof caps[0]; k++) {
        char *b = malloc(caps[k]);
        REQUIRE(b);
        smoe_gguf_kv_format(g, i, b, caps[k]);
        REQUIRE(strnlen(b, caps[k]) < caps[k]);
        free(b);
    }
}

static void walk_kv(const smoe_gguf *g, const uint8_t *data, size_t size) {
    int64_t n = smoe_gguf_n_kv(g);
    char buf[512];
    for (int64_t i = 0; i < n; i++) {
        const char *key = smoe_gguf_key(g, i);
        REQUIRE(key && key[0]);
        REQUIRE(smoe_gguf_find_key(g, key) == i); /* keys are unique */
        smoe_gguf_type t = smoe_gguf_kv_type(g, i);
        REQUIRE((unsigned)t < SMOE_GGUF_TYPE_COUNT);
        smoe_gguf_kv_format(g, i, buf, sizeof buf);
        REQUIRE(strlen(buf) < sizeof buf);
        format_all_caps(g, i);

        int64_t v;
        uint32_t u;
        float f;
        bool b;
        const char *s;
        uint64_t len;
        (void)smoe_gguf_get_i64(g, key, &v);
        (void)smoe_gguf_get_u32(g, key, &u);
        (void)smoe_gguf_get_f32(g, key, &f);
        (void)smoe_gguf_get_bool(g, key, &b);
        if (smoe_gguf_get_str(g, key, &s, &len) == SMOE_OK) {
            REQUIRE(t == SMOE_GGUF_STRING);
            REQUIRE((const uint8_t *)s >= data && len <= size && (size_t)((const uint8_t *)s - data) <= size - len);
            touch(s, (size_t)len);
        }
        if (t != SMOE_GGUF_ARRAY) continue;

        smoe_gguf_type et = smoe_gguf_arr_type(g, i);
        uint64_t an = smoe_gguf_arr_n(g, i);
        REQUIRE((unsigned)et < SMOE_GGUF_TYPE_COUNT && et != SMOE_GGUF_ARRAY);
        if (et == SMOE_GGUF_STRING) {
            REQUIRE(smoe_gguf_arr_data(g, i) == NULL);
            REQUIRE(an <= size / 8);
            for (uint64_t j = 0; j < an; j++) {
                s = smoe_gguf_arr_str(g, i, j, &len);
                REQUIRE(s && (const uint8_t *)s >= data && len <= size &&
                        (size_t)((const uint8_t *)s - data) <= size - len);
                touch(s, (size_t)len);
            }
            REQUIRE(smoe_gguf_arr_str(g, i, an, &len) == NULL);
        } else {
            const uint8_t *d = smoe_gguf_arr_data(g, i);
            size_t es = elem_size(et);
            REQUIRE(d && es && an <= size / es);
            REQUIRE(d >= data && (size_t)(d - data) <= size - an * es);
            touch(d, (size_t)an * es);
            if (et == SMOE_GGUF_BOOL)
                for (uint64_t j = 0; j < an; j++) REQUIRE(d[j] <= 1);
            REQUIRE(smoe_gguf_arr_str(g, i, 0, &len) == NULL);
        }
    }
    REQUIRE(smoe_gguf_key(g, n) == NULL && smoe_gguf_key(g, -1) == NULL);
    smoe_gguf_kv_format(g, n, buf, sizeof buf);
    REQUIRE(buf[0] == 0);
}

static void walk_tensors(const smoe_gguf *g, const uint8_t *data, size_t size) {
    int64_t n = smoe_gguf_n_tensors(g);
    size_t align = smoe_gguf_alignment(g);
    for (int64_t i = 0; i < n; i++) {
        const char *name = smoe_gguf_tensor_name(g, i);
        REQUIRE(name && name[0]);
        REQUIRE(smoe_gguf_find_tensor(g, name) == i);
        int dt = smoe_gguf_tensor_dtype(g, i);
        int nd = smoe_gguf_tensor_ndim(g, i);
        REQUIRE(smoe_dtype_name(dt) != NULL);
        REQUIRE(nd >= 1 && nd <= SMOE_MAX_DIMS);
        uint64_t nel = 1;
        for (int d = 0; d <= SMOE_MAX_DIMS; d++) {
            int64_t ne = smoe_gguf_tensor_ne(g, i, d);
            REQUIRE(ne >= 0 && (d < nd || ne == 1));
            if (d < SMOE_MAX_DIMS) REQUIRE(!__builtin_mul_overflow(nel, (uint64_t)ne, &nel));
        }
        int64_t bs = smoe_dtype_block_size(dt);
        REQUIRE(bs > 0 && smoe_gguf_tensor_ne(g, i, 0) % bs == 0);
        size_t nb = smoe_gguf_tensor_nbytes(g, i);
        REQUIRE(nb == nel / (uint64_t)bs * smoe_dtype_block_bytes(dt));
        REQUIRE(smoe_gguf_tensor_offset(g, i) % align == 0);
        const uint8_t *p = smoe_gguf_tensor_data(g, i);
        REQUIRE(p && p >= data && nb <= size && (size_t)(p - data) <= size - nb);
        REQUIRE((size_t)(p - data - (ptrdiff_t)smoe_gguf_tensor_offset(g, i)) % align == 0);
        touch(p, nb);
    }
    REQUIRE(smoe_gguf_tensor_name(g, n) == NULL && smoe_gguf_tensor_data(g, -1) == NULL);
}

static void try_writer(const smoe_gguf *g) {
    smoe_gguf_writer *w = NULL;
    if (smoe_gguf_writer_init(&w) != SMOE_OK) return;
    for (int64_t i = 0; i < smoe_gguf_n_kv(g); i++) REQUIRE(smoe_gguf_writer_copy_kv(w, g, i) == SMOE_OK);
    smoe_gguf_writer_free(w);
}

static void try_tokenizer(const smoe_gguf *g) {
    smoe_tokenizer *t = NULL;
    if (smoe_tokenizer_from_gguf(g, &t) != SMOE_OK) {
        REQUIRE(t == NULL);
        return;
    }
    int32_t nv = smoe_tokenizer_n_vocab(t);
    REQUIRE(nv > 0);
    int32_t ids[64];
    int64_t n_ids = 0;
    static const char text[] = "Hello world! abc \xce\xb4\xe2\x96\x81 <s> 123\n\xff";
    if (smoe_tokenizer_encode(t, text, sizeof text - 1, true, ids, 64, &n_ids) == SMOE_OK) {
        REQUIRE(n_ids >= 0 && n_ids <= 64);
        for (int64_t j = 0; j < n_ids; j++) REQUIRE(ids[j] >= 0 && ids[j] < nv);
        char out[1024];
        (void)smoe_tokenizer_decode(t, ids, n_ids, out, sizeof out);
    }
    char piece[16];
    for (int32_t id = 0; id < nv && id < 256; id++) {
        const char *s = smoe_tokenizer_token_text(t, id);
        REQUIRE(s);
        g_sink ^= (uint8_t)s[0];
        (void)smoe_tokenizer_token_bytes(t, id, piece, sizeof piece);
    }
    smoe_tokenizer_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    smoe_gguf *g = NULL;
    smoe_status st = smoe_gguf_open_memory(data, size, &g);
    if (st != SMOE_OK) {
        REQUIRE(g == NULL && smoe_last_error()[0] != 0);
        return 0;
    }
    REQUIRE(g != NULL);
    REQUIRE(smoe_gguf_version(g) == 2 || smoe_gguf_version(g) == 3);
    size_t a = smoe_gguf_alignment(g);
    REQUIRE(a && (a & (a - 1)) == 0);
    REQUIRE(smoe_gguf_file_size(g) == size);
    walk_kv(g, data, size);
    walk_tensors(g, data, size);
    try_writer(g);
    try_tokenizer(g);
    smoe_gguf_free(g);
    return 0;
}
