/*
 * test_gguf.c - the GGUF reader and writer against honest and hostile files.
 *
 *   1. Round trip: a file holding every metadata value type (u8..f64, bool, string,
 *      numeric/bool/string arrays, empty array, empty string) and tensors of several
 *      types and shapes is written with smoe_gguf_writer_*, read back, and every value,
 *      tensor and alignment checked (default 32 and general.alignment = 64). Also: a key
 *      set twice is replaced in place, copy_kv of every key of a real model reproduces
 *      it, writer argument checks, and failed writes leave no temporary file behind.
 *   2. Corrupt files: a small valid file is written, read into memory and mutated one
 *      field at a time (and cut at every length); each variant is opened from an
 *      exactly-sized heap copy (so ASan sees any over-read) and must fail with the right
 *      status and a message naming the problem. The number of kinds is printed.
 *   3. smoe_model_load on copies of the tiny model with one thing dropped or changed.
 *
 * Set SMOE_GGUF_SEED_DIR=dir to also write the fuzzing seeds (tests/fuzz/corpus) there.
 */
#include "smoe.h"
#include "testhelp.h"

#include <dirent.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ helpers */

static char g_tmp[512]; /* "<TMPDIR>/smoe-test-gguf-<pid>" */

static const char *tmp_path(const char *tag) {
    static char buf[8][640];
    static int k;
    k = (k + 1) & 7;
    snprintf(buf[k], sizeof buf[k], "%s-%s", g_tmp, tag);
    return buf[k];
}

static void put32(uint8_t *b, size_t off, uint32_t v) { memcpy(b + off, &v, 4); }
static void put64(uint8_t *b, size_t off, uint64_t v) { memcpy(b + off, &v, 8); }
static uint32_t get32(const uint8_t *b, size_t off) { uint32_t v; memcpy(&v, b + off, 4); return v; }
static uint64_t get64(const uint8_t *b, size_t off) { uint64_t v; memcpy(&v, b + off, 8); return v; }

static void fill(uint8_t *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(i * 31u + seed * 7u + (i >> 8));
}

static bool write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fwrite(p, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

/* Temporary files "<base of path>.tmp.*" left next to path by a failed write. */
static int tmp_leftovers(const char *path) {
    const char *slash = strrchr(path, '/');
    char parent[640];
    snprintf(parent, sizeof parent, "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
    const char *base = slash ? slash + 1 : path;
    int n = 0;
    DIR *dh = opendir(parent);
    for (struct dirent *de; dh && (de = readdir(dh));)
        n += strncmp(de->d_name, base, strlen(base)) == 0 && strncmp(de->d_name + strlen(base), ".tmp.", 5) == 0;
    if (dh) closedir(dh);
    return n;
}

/* A growable byte buffer, for files written by hand (types the writer has no setter for). */
typedef struct bytes {
    uint8_t *p;
    size_t n, cap;
} bytes;

static void bb_put(bytes *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void bb_u32(bytes *b, uint32_t v) { bb_put(b, &v, 4); }
static void bb_u64(bytes *b, uint64_t v) { bb_put(b, &v, 8); }
static void bb_key(bytes *b, const char *k, smoe_gguf_type t) {
    bb_u64(b, strlen(k));
    bb_put(b, k, strlen(k));
    bb_u32(b, (uint32_t)t);
}

/* Byte positions of the fields of a valid file (the layout the writer produces). */
#define LAY_MAX 64
typedef struct layout {
    int n_kv, n_t;
    size_t kv_key[LAY_MAX], kv_type[LAY_MAX], kv_val[LAY_MAX];
    size_t t_name[LAY_MAX], t_nd[LAY_MAX], t_dim[LAY_MAX], t_type[LAY_MAX], t_off[LAY_MAX];
    size_t hdr_end;
} layout;

static size_t scalar_size(uint32_t t) {
    static const size_t sz[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return t < 13 ? sz[t] : 0;
}

static void get_layout(const uint8_t *b, layout *L) {
    memset(L, 0, sizeof *L);
    uint64_t nt = get64(b, 8), nk = get64(b, 16);
    size_t p = 24;
    for (uint64_t i = 0; i < nk && i < LAY_MAX; i++) {
        L->kv_key[i] = p;
        p += 8 + get64(b, p);
        L->kv_type[i] = p;
        uint32_t t = get32(b, p);
        p += 4;
        L->kv_val[i] = p;
        if (t == SMOE_GGUF_STRING) {
            p += 8 + get64(b, p);
        } else if (t == SMOE_GGUF_ARRAY) {
            uint32_t et = get32(b, p);
            uint64_t n = get64(b, p + 4);
            p += 12;
            for (uint64_t j = 0; j < n; j++) p += et == SMOE_GGUF_STRING ? 8 + get64(b, p) : scalar_size(et);
        } else {
            p += scalar_size(t);
        }
        L->n_kv++;
    }
    for (uint64_t i = 0; i < nt && i < LAY_MAX; i++) {
        L->t_name[i] = p;
        p += 8 + get64(b, p);
        L->t_nd[i] = p;
        uint32_t nd = get32(b, p);
        p += 4;
        L->t_dim[i] = p;
        p += 8 * (size_t)nd;
        L->t_type[i] = p;
        p += 4;
        L->t_off[i] = p;
        p += 8;
        L->n_t++;
    }
    L->hdr_end = p;
}

/* ------------------------------------------------------------------ corrupt-file harness */

static int g_kinds, g_variants, g_kind_fail0;
static const char *g_kind;

static void kind_end(void) {
    if (g_kind && th_failed == g_kind_fail0) g_kinds++;
    g_kind = NULL;
}
static void kind(const char *name) {
    kind_end();
    g_kind = name;
    g_kind_fail0 = th_failed;
}

/* Open an exactly-sized heap copy of buf[0..n); it must fail with want and a message
 * containing phrase (one of several phrases separated by '|'), and leave *out NULL. */
static void reject(const uint8_t *buf, size_t n, smoe_status want, const char *phrase) {
    static int sentinel;
    uint8_t *copy = malloc(n ? n : 1);
    if (n) memcpy(copy, buf, n);
    smoe_gguf *g = (smoe_gguf *)(void *)&sentinel;
    smoe_status st = smoe_gguf_open_memory(copy, n, &g);
    const char *msg = smoe_last_error();
    bool found = false;
    char alts[256];
    snprintf(alts, sizeof alts, "%s", phrase);
    for (char *sv = NULL, *tok = strtok_r(alts, "|", &sv); tok && !found; tok = strtok_r(NULL, "|", &sv))
        found = strstr(msg, tok) != NULL;
    CHECK(st == want && found && g == NULL, "%s (%zu bytes): got %s \"%s\", want %s with \"%s\"", g_kind, n,
          smoe_status_name(st), msg, smoe_status_name(want), phrase);
    if (st == SMOE_OK && g != (smoe_gguf *)(void *)&sentinel) smoe_gguf_free(g);
    free(copy);
    g_variants++;
}

/* The opposite: an exactly-sized copy that must open. Returns the handle over *copy. */
static smoe_gguf *accept(const uint8_t *buf, size_t n, uint8_t **copy) {
    *copy = malloc(n ? n : 1);
    if (n) memcpy(*copy, buf, n);
    smoe_gguf *g = NULL;
    smoe_status st = smoe_gguf_open_memory(*copy, n, &g);
    CHECK(st == SMOE_OK && g, "%s (%zu bytes): %s", g_kind ? g_kind : "accept", n, smoe_last_error());
    return g;
}

/* ------------------------------------------------------------------ the small base file */

enum { K_U32, K_STR, K_BOOL, K_ARR, K_SARR, K_BARR, K_ALIGN, K_N };
enum { T_F32, T_NIL, T_Q40, T_Q80, T_N };

/* A small valid file: 7 keys (one of each kind of value) and 4 tensors, one of them
 * empty. Returns the bytes (malloc'd) and writes them to path. */
static uint8_t *make_base(const char *path, size_t *n) {
    smoe_gguf_writer *w = NULL;
    CHECK_OK(smoe_gguf_writer_init(&w));
    if (!w) return NULL;
    int32_t arr[3] = {1, 2, 3};
    uint8_t barr[2] = {1, 0};
    const char *sarr[2] = {"x", "yz"};
    CHECK_OK(smoe_gguf_writer_set_u32(w, "a.u32", 7));
    CHECK_OK(smoe_gguf_writer_set_str(w, "a.str", "hello"));
    CHECK_OK(smoe_gguf_writer_set_bool(w, "a.bool", true));
    CHECK_OK(smoe_gguf_writer_set_arr(w, "a.arr", SMOE_GGUF_INT32, arr, 3));
    CHECK_OK(smoe_gguf_writer_set_arr_str(w, "a.sarr", sarr, NULL, 2));
    CHECK_OK(smoe_gguf_writer_set_arr(w, "a.barr", SMOE_GGUF_BOOL, barr, 2));
    CHECK_OK(smoe_gguf_writer_set_u32(w, "general.alignment", 32));
    uint8_t data[128];
    fill(data, sizeof data, 1);
    int64_t ne_f32[2] = {8, 2}, ne_nil[1] = {0}, ne_q40[2] = {32, 2}, ne_q80[1] = {32};
    CHECK_OK(smoe_gguf_writer_add_tensor(w, "t.f32", SMOE_DTYPE_F32, 2, ne_f32, data, 64));
    CHECK_OK(smoe_gguf_writer_add_tensor(w, "t.nil", SMOE_DTYPE_F32, 1, ne_nil, data, 0));
    CHECK_OK(smoe_gguf_writer_add_tensor(w, "t.q40", SMOE_DTYPE_Q4_0, 2, ne_q40, data, 36));
    CHECK_OK(smoe_gguf_writer_add_tensor(w, "t.q80", SMOE_DTYPE_Q8_0, 1, ne_q80, data, 34));
    CHECK_OK(smoe_gguf_writer_write(w, path));
    smoe_gguf_writer_free(w);
    return th_read_file(path, n);
}

static void test_corrupt(void) {
    const char *path = tmp_path("base.gguf");
    size_t n = 0;
    uint8_t *base = make_base(path, &n);
    CHECK(base && n > 0, "cannot build the base file");
    if (!base) return;
    unlink(path);
    layout L;
    get_layout(base, &L);
    CHECK(L.n_kv == K_N && L.n_t == T_N, "layout: %d keys, %d tensors", L.n_kv, L.n_t);
    uint8_t *w = malloc(n);
    uint8_t *copy = NULL;
#define RESET() memcpy(w, base, n)

    /* the unmodified file opens, and so does a v2 header */
    smoe_gguf *g = accept(base, n, &copy);
    size_t data_start = 0, data_end = 0;
    if (g) {
        data_start = (size_t)((const uint8_t *)smoe_gguf_tensor_data(g, T_F32) - copy);
        data_end = data_start + smoe_gguf_tensor_offset(g, T_Q80) + smoe_gguf_tensor_nbytes(g, T_Q80);
        CHECK(data_start % 32 == 0 && data_start > L.hdr_end, "data section at %zu, header ends %zu", data_start,
              L.hdr_end);
        CHECK(L.hdr_end % 32 != 0, "the base header should not end on the alignment (%zu)", L.hdr_end);
        smoe_gguf_free(g);
    }
    free(copy);
    RESET();
    put32(w, 4, 2);
    g = accept(w, n, &copy);
    if (g) CHECK(smoe_gguf_version(g) == 2, "version %u", smoe_gguf_version(g));
    smoe_gguf_free(g);
    free(copy);

    kind("empty file");
    reject(w, 0, SMOE_ERR_FORMAT, "only 0 bytes");
    kind("3 bytes");
    reject(base, 3, SMOE_ERR_FORMAT, "only 3 bytes");
    kind("wrong magic");
    RESET(), w[0] = 'g';
    reject(w, n, SMOE_ERR_FORMAT, "bad magic");
    RESET(), memcpy(w, "GGML", 4);
    reject(w, n, SMOE_ERR_FORMAT, "bad magic");
    kind("version 1");
    RESET(), put32(w, 4, 1);
    reject(w, n, SMOE_ERR_UNSUPPORTED, "version 1 is not supported");
    kind("version 4 / 0 / 2^31");
    RESET(), put32(w, 4, 4);
    reject(w, n, SMOE_ERR_FORMAT, "unknown GGUF version 4");
    put32(w, 4, 0);
    reject(w, n, SMOE_ERR_FORMAT, "unknown GGUF version 0");
    put32(w, 4, 0x80000001u);
    reject(w, n, SMOE_ERR_FORMAT, "unknown GGUF version 2147483649");
    kind("byte-swapped version");
    RESET(), put32(w, 4, 0x03000000u);
    reject(w, n, SMOE_ERR_FORMAT, "byte-swapped");
    put32(w, 4, 0x02000000u);
    reject(w, n, SMOE_ERR_FORMAT, "byte-swapped");

    kind("truncated at every length");
    {
        int ok = 0, bad = 0;
        for (size_t len = 0; len < n; len++) {
            if (len >= data_end && data_end > 0) { /* the last tensor's bytes are all there */
                g = accept(base, len, &copy);
                ok += g != NULL;
                smoe_gguf_free(g);
                free(copy);
            } else {
                int f0 = th_failed;
                reject(base, len, SMOE_ERR_FORMAT,
                       "only|truncated|exceeds|cannot fit|absurd|runs past the end|data section would start");
                bad += th_failed == f0;
            }
        }
        CHECK(bad == (int)data_end && ok == (int)(n - data_end), "prefixes: %d rejected, %d accepted of %zu", bad, ok, n);
    }

    kind("absurd tensor count");
    RESET(), put64(w, 8, 1ull << 40);
    reject(w, n, SMOE_ERR_FORMAT, "absurd tensor count");
    put64(w, 8, UINT64_MAX);
    reject(w, n, SMOE_ERR_FORMAT, "absurd tensor count");
    kind("absurd kv count");
    RESET(), put64(w, 16, 1ull << 40);
    reject(w, n, SMOE_ERR_FORMAT, "absurd metadata count");
    put64(w, 16, UINT64_MAX / 2);
    reject(w, n, SMOE_ERR_FORMAT, "absurd metadata count");
    kind("more keys than the file holds");
    RESET(), put64(w, 16, K_N + 3);
    reject(w, n, SMOE_ERR_FORMAT, "unknown value type|exceeds|truncated|out of range|cannot fit|NUL byte");
    kind("key length past the end");
    RESET(), put64(w, L.kv_key[K_BOOL], 1ull << 40);
    reject(w, n, SMOE_ERR_FORMAT, "metadata key at offset");
    put64(w, L.kv_key[K_BOOL], UINT64_MAX);
    reject(w, n, SMOE_ERR_FORMAT, "string length 18446744073709551615 exceeds");
    kind("key length 0");
    RESET(), put64(w, L.kv_key[K_STR], 0);
    reject(w, n, SMOE_ERR_FORMAT, "key length 0 out of range");
    kind("key with a NUL byte");
    RESET(), w[L.kv_key[K_STR] + 9] = 0;
    reject(w, n, SMOE_ERR_FORMAT, "key contains a NUL byte");
    kind("string value length past the end");
    RESET(), put64(w, L.kv_val[K_STR], n);
    reject(w, n, SMOE_ERR_FORMAT, "string value at offset");
    kind("string value length 2^64-1");
    RESET(), put64(w, L.kv_val[K_STR], UINT64_MAX);
    reject(w, n, SMOE_ERR_FORMAT, "string length 18446744073709551615 exceeds");
    put64(w, L.kv_val[K_STR], UINT64_MAX - 7);
    reject(w, n, SMOE_ERR_FORMAT, "exceeds");
    kind("unknown value type");
    RESET(), put32(w, L.kv_type[K_U32], 13);
    reject(w, n, SMOE_ERR_FORMAT, "unknown value type 13");
    put32(w, L.kv_type[K_U32], 0xffffffffu);
    reject(w, n, SMOE_ERR_FORMAT, "unknown value type 4294967295");
    kind("unknown array element type");
    RESET(), put32(w, L.kv_val[K_ARR], 200);
    reject(w, n, SMOE_ERR_FORMAT, "unknown array element type 200");
    put32(w, L.kv_val[K_ARR], 13);
    reject(w, n, SMOE_ERR_FORMAT, "unknown array element type 13");
    kind("nested array");
    RESET(), put32(w, L.kv_val[K_ARR], SMOE_GGUF_ARRAY);
    reject(w, n, SMOE_ERR_UNSUPPORTED, "nested arrays");
    kind("numeric array count 2^62");
    RESET(), put64(w, L.kv_val[K_ARR] + 4, 1ull << 62);
    reject(w, n, SMOE_ERR_FORMAT, "array of 4611686018427387904 i32 values cannot fit");
    put64(w, L.kv_val[K_ARR] + 4, UINT64_MAX);
    reject(w, n, SMOE_ERR_FORMAT, "cannot fit");
    kind("string array count 2^62");
    RESET(), put64(w, L.kv_val[K_SARR] + 4, 1ull << 62);
    reject(w, n, SMOE_ERR_FORMAT, "array of 4611686018427387904 strings cannot fit");
    put64(w, L.kv_val[K_SARR] + 4, 40); /* fits the 8-bytes-each bound, not the real bytes */
    reject(w, n, SMOE_ERR_FORMAT, "string array element|truncated");
    kind("string array element length past the end");
    RESET(), put64(w, L.kv_val[K_SARR] + 12, 1ull << 50);
    reject(w, n, SMOE_ERR_FORMAT, "string array element at offset");
    put64(w, L.kv_val[K_SARR] + 12, UINT64_MAX);
    reject(w, n, SMOE_ERR_FORMAT, "string array element at offset");
    kind("bool value 2");
    RESET(), w[L.kv_val[K_BOOL]] = 2;
    reject(w, n, SMOE_ERR_FORMAT, "bool value is 2");
    w[L.kv_val[K_BOOL]] = 0xff;
    reject(w, n, SMOE_ERR_FORMAT, "bool value is 255");
    kind("bool array element 2");
    RESET(), w[L.kv_val[K_BARR] + 12 + 1] = 2;
    reject(w, n, SMOE_ERR_FORMAT, "bool array element 1 is 2");
    kind("duplicate key");
    RESET(), memcpy(w + L.kv_key[K_STR] + 8, "a.u32", 5);
    reject(w, n, SMOE_ERR_FORMAT, "duplicate metadata key 'a.u32'");
    kind("duplicate tensor name");
    RESET(), memcpy(w + L.t_name[T_Q80] + 8, "t.f32", 5);
    reject(w, n, SMOE_ERR_FORMAT, "duplicate tensor name 't.f32'");
    kind("tensor name length 0");
    RESET(), put64(w, L.t_name[T_Q40], 0);
    reject(w, n, SMOE_ERR_FORMAT, "invalid name (length 0)");
    RESET(), put64(w, L.t_name[T_Q40], UINT64_MAX);
    reject(w, n, SMOE_ERR_FORMAT, "tensor name at offset");
    kind("n_dims 0 and 5");
    RESET(), put32(w, L.t_nd[T_F32], 0);
    reject(w, n, SMOE_ERR_FORMAT, "'t.f32': 0 dimensions");
    put32(w, L.t_nd[T_F32], 5);
    reject(w, n, SMOE_ERR_FORMAT, "'t.f32': 5 dimensions");
    put32(w, L.t_nd[T_F32], 0xffffffffu);
    reject(w, n, SMOE_ERR_FORMAT, "4294967295 dimensions");
    kind("dimension 2^63");
    RESET(), put64(w, L.t_dim[T_F32] + 8, 1ull << 63);
    reject(w, n, SMOE_ERR_FORMAT, "'t.f32': element count overflows");
    put64(w, L.t_dim[T_F32], UINT64_MAX);
    reject(w, n, SMOE_ERR_FORMAT, "element count overflows");
    kind("element count product overflow");
    RESET(), put64(w, L.t_dim[T_F32], 1ull << 32), put64(w, L.t_dim[T_F32] + 8, 1ull << 32);
    reject(w, n, SMOE_ERR_FORMAT, "element count overflows");
    put64(w, L.t_dim[T_F32] + 8, 1ull << 31); /* 2^63: fits uint64, not int64 */
    reject(w, n, SMOE_ERR_FORMAT, "element count overflows");
    kind("byte size overflow");
    RESET(), put64(w, L.t_dim[T_F32], 1ull << 31), put64(w, L.t_dim[T_F32] + 8, 1ull << 31); /* 2^62 f32 */
    reject(w, n, SMOE_ERR_FORMAT, "'t.f32': byte size overflows");
    kind("unknown tensor type");
    RESET(), put32(w, L.t_type[T_F32], 5);
    reject(w, n, SMOE_ERR_FORMAT, "'t.f32': unknown tensor type 5");
    put32(w, L.t_type[T_F32], 200);
    reject(w, n, SMOE_ERR_FORMAT, "unknown tensor type 200");
    put32(w, L.t_type[T_F32], 0x80000000u);
    reject(w, n, SMOE_ERR_FORMAT, "unknown tensor type 2147483648");
    kind("row length not a multiple of the block size");
    RESET(), put64(w, L.t_dim[T_Q40], 31);
    reject(w, n, SMOE_ERR_FORMAT, "'t.q40': row length 31 is not a multiple of the Q4_0 block size 32");
    RESET(), put32(w, L.t_type[T_F32], SMOE_DTYPE_Q4_K); /* ne0 = 8 */
    reject(w, n, SMOE_ERR_FORMAT, "not a multiple of the Q4_K block size 256");
    kind("tensor offset not aligned");
    RESET(), put64(w, L.t_off[T_Q40], get64(base, L.t_off[T_Q40]) + 1);
    reject(w, n, SMOE_ERR_FORMAT, "'t.q40': offset 65 is not a multiple of the alignment 32");
    RESET(), put64(w, L.t_off[T_Q80], UINT64_MAX);
    reject(w, n, SMOE_ERR_FORMAT, "is not a multiple of the alignment");
    kind("tensor data past the end of the file");
    RESET(), put64(w, L.t_off[T_Q80], 4096);
    reject(w, n, SMOE_ERR_FORMAT, "'t.q80': data [4096, +34) runs past the end");
    RESET(), put64(w, L.t_off[T_Q80], n - data_start - 32); /* starts inside, ends outside */
    reject(w, n, SMOE_ERR_FORMAT, "runs past the end");
    RESET(), put64(w, L.t_dim[T_F32] + 8, 1ull << 40); /* huge but representable size */
    reject(w, n, SMOE_ERR_FORMAT, "'t.f32': data [0, +");
    kind("tensor offset + size overflows uint64");
    RESET(), put64(w, L.t_off[T_Q80], UINT64_MAX - 31);
    reject(w, n, SMOE_ERR_FORMAT, "'t.q80': data [18446744073709551584, +34) runs past the end");
    kind("overlapping tensors");
    RESET(), put64(w, L.t_off[T_Q40], 32);
    reject(w, n, SMOE_ERR_FORMAT, "'t.f32' and 't.q40' overlap");
    RESET(), put64(w, L.t_off[T_Q80], get64(base, L.t_off[T_Q40]));
    reject(w, n, SMOE_ERR_FORMAT, "overlap");
    RESET(), put64(w, L.t_off[T_F32], get64(base, L.t_off[T_Q80])); /* out of order, same start */
    reject(w, n, SMOE_ERR_FORMAT, "overlap");
    /* an empty tensor sorted between the two overlapping ones must not hide the overlap */
    RESET(), put64(w, L.t_off[T_NIL], 32), put64(w, L.t_off[T_Q40], 32);
    reject(w, n, SMOE_ERR_FORMAT, "'t.f32' and 't.q40' overlap");
    kind("general.alignment 0, 3, 2^21");
    RESET(), put32(w, L.kv_val[K_ALIGN], 0);
    reject(w, n, SMOE_ERR_FORMAT, "general.alignment 0 is not a power of two");
    put32(w, L.kv_val[K_ALIGN], 3);
    reject(w, n, SMOE_ERR_FORMAT, "general.alignment 3 is not a power of two");
    put32(w, L.kv_val[K_ALIGN], 1u << 21);
    reject(w, n, SMOE_ERR_FORMAT, "general.alignment 2097152 is not a power of two");
    kind("general.alignment of the wrong type");
    RESET(), put32(w, L.kv_type[K_ALIGN], SMOE_GGUF_INT32);
    reject(w, n, SMOE_ERR_FORMAT, "general.alignment has type i32, want u32");
    put32(w, L.kv_type[K_ALIGN], SMOE_GGUF_FLOAT32);
    reject(w, n, SMOE_ERR_FORMAT, "general.alignment has type f32, want u32");
    kind("data section start past EOF");
    reject(base, L.hdr_end, SMOE_ERR_FORMAT, "the data section would start at");
    reject(base, data_start - 1, SMOE_ERR_FORMAT, "the data section would start at");
    kind_end();

    /* a key longer than the spec's 65535 bytes: the writer takes it, the reader must not */
    {
        smoe_gguf_writer *wr = NULL;
        CHECK_OK(smoe_gguf_writer_init(&wr));
        char *key = malloc(70001);
        memset(key, 'k', 70000);
        key[70000] = 0;
        CHECK_OK(smoe_gguf_writer_set_u32(wr, key, 1));
        const char *p2 = tmp_path("longkey.gguf");
        CHECK_OK(smoe_gguf_writer_write(wr, p2));
        smoe_gguf_writer_free(wr);
        free(key);
        size_t n2 = 0;
        uint8_t *b2 = th_read_file(p2, &n2);
        unlink(p2);
        kind("key longer than 65535 bytes");
        if (b2) reject(b2, n2, SMOE_ERR_FORMAT, "key length 70000 out of range");
        kind_end();
        free(b2);
    }
    free(w);
    free(base);
#undef RESET
}

/* A real model cut short, through smoe_gguf_open: the message names the file. */
static void test_truncated_model(void) {
    size_t n = 0;
    uint8_t *b = th_read_file(th_data("model/mixtral-tiny-Q4_K_M.gguf"), &n);
    CHECK(b != NULL, "cannot read the Q4_K_M model");
    if (!b) return;
    const char *path = tmp_path("cut.gguf");
    kind("real model truncated at 50% and at len-1");
    size_t cuts[2] = {n / 2, n - 1};
    for (int k = 0; k < 2; k++) {
        CHECK(write_bytes(path, b, cuts[k]), "cannot write %s", path);
        smoe_gguf *g = NULL;
        smoe_status st = smoe_gguf_open(path, &g);
        CHECK(st == SMOE_ERR_FORMAT && !g && strstr(smoe_last_error(), path) &&
                  strstr(smoe_last_error(), "runs past the end"),
              "cut at %zu: %s: %s", cuts[k], smoe_status_name(st), smoe_last_error());
        smoe_gguf_free(g);
        g_variants++;
    }
    kind_end();
    unlink(path);
    free(b);

    smoe_gguf *g = NULL;
    const char *missing = tmp_path("does-not-exist.gguf");
    smoe_status st = smoe_gguf_open(missing, &g);
    CHECK(st == SMOE_ERR_IO && !g && strstr(smoe_last_error(), missing), "missing file: %s: %s", smoe_status_name(st),
          smoe_last_error());
    st = smoe_gguf_open(TEST_DATA_DIR, &g);
    CHECK(st == SMOE_ERR_IO && !g && strstr(smoe_last_error(), "not a regular file"), "directory: %s: %s",
          smoe_status_name(st), smoe_last_error());
    CHECK(smoe_gguf_open(NULL, &g) == SMOE_ERR_INVALID_ARG, "NULL path");
    CHECK(smoe_gguf_open_memory(NULL, 4, &g) == SMOE_ERR_INVALID_ARG, "NULL buffer");
    CHECK(smoe_gguf_open_memory("GGUF", 4, NULL) == SMOE_ERR_INVALID_ARG, "NULL out");
    smoe_gguf_free(NULL);
}

/* ------------------------------------------------------------------ round trip */

/* Scalars the writer has no setter for, written by hand, read, then copy_kv'd. */
static uint8_t *hand_scalars(size_t *n) {
    bytes b = {0};
    bb_u32(&b, 0x46554747u);
    bb_u32(&b, 3);
    bb_u64(&b, 0);
    bb_u64(&b, 7);
    uint8_t u8 = 200;
    int8_t i8 = -100;
    uint16_t u16 = 60000;
    int16_t i16 = -30000;
    int64_t i64 = -1099511627776ll;
    double f64 = 3.141592653589793;
    uint64_t u64 = (1ull << 63) + 5;
    bb_key(&b, "s.u8", SMOE_GGUF_UINT8), bb_put(&b, &u8, 1);
    bb_key(&b, "s.i8", SMOE_GGUF_INT8), bb_put(&b, &i8, 1);
    bb_key(&b, "s.u16", SMOE_GGUF_UINT16), bb_put(&b, &u16, 2);
    bb_key(&b, "s.i16", SMOE_GGUF_INT16), bb_put(&b, &i16, 2);
    bb_key(&b, "s.i64", SMOE_GGUF_INT64), bb_put(&b, &i64, 8);
    bb_key(&b, "s.f64", SMOE_GGUF_FLOAT64), bb_put(&b, &f64, 8);
    bb_key(&b, "s.u64big", SMOE_GGUF_UINT64), bb_put(&b, &u64, 8);
    *n = b.n;
    return b.p;
}

typedef struct tspec {
    const char *name;
    int dtype, ndim;
    int64_t ne[4];
    size_t nbytes;
} tspec;

static const tspec k_tensors[] = {
    {"w.f32", SMOE_DTYPE_F32, 2, {4, 3, 1, 1}, 48},
    {"w.f16", SMOE_DTYPE_F16, 1, {8, 1, 1, 1}, 16},
    {"w.q8_0", SMOE_DTYPE_Q8_0, 2, {64, 2, 1, 1}, 2 * 2 * 34},
    {"w.q4_K", SMOE_DTYPE_Q4_K, 3, {256, 2, 3, 1}, 6 * 144},
    {"w.4d", SMOE_DTYPE_F32, 4, {2, 3, 2, 2}, 96},
    {"w.i8", SMOE_DTYPE_I8, 1, {5, 1, 1, 1}, 5},
    {"w.bf16", SMOE_DTYPE_BF16, 2, {3, 3, 1, 1}, 18},
};
#define N_TENSORS ((int)(sizeof k_tensors / sizeof k_tensors[0]))

static const uint8_t a_u8[] = {1, 2, 255};
static const int8_t a_i8[] = {-128, 0, 127};
static const uint16_t a_u16[] = {0, 65535};
static const int16_t a_i16[] = {-32768, 32767, -1};
static const uint32_t a_u32[] = {0, 4000000000u};
static const int32_t a_i32[] = {1, -2, 3};
static const float a_f32[] = {0.5f, -1e30f, 3.25f};
static const uint64_t a_u64[] = {UINT64_MAX, 1};
static const int64_t a_i64[] = {INT64_MIN, INT64_MAX};
static const double a_f64[] = {1e-300, -2.5};
static const uint8_t a_bool[] = {1, 0, 1};
static const struct { const char *key; smoe_gguf_type t; const void *d; uint64_t n; size_t es; } k_arrays[] = {
    {"a.u8", SMOE_GGUF_UINT8, a_u8, 3, 1},     {"a.i8", SMOE_GGUF_INT8, a_i8, 3, 1},
    {"a.u16", SMOE_GGUF_UINT16, a_u16, 2, 2},  {"a.i16", SMOE_GGUF_INT16, a_i16, 3, 2},
    {"a.u32", SMOE_GGUF_UINT32, a_u32, 2, 4},  {"a.i32", SMOE_GGUF_INT32, a_i32, 3, 4},
    {"a.f32", SMOE_GGUF_FLOAT32, a_f32, 3, 4}, {"a.u64", SMOE_GGUF_UINT64, a_u64, 2, 8},
    {"a.i64", SMOE_GGUF_INT64, a_i64, 2, 8},   {"a.f64", SMOE_GGUF_FLOAT64, a_f64, 2, 8},
    {"a.bool", SMOE_GGUF_BOOL, a_bool, 3, 1},  {"a.empty", SMOE_GGUF_INT32, a_i32, 0, 4},
};
#define N_ARRAYS ((int)(sizeof k_arrays / sizeof k_arrays[0]))
static const char *const k_strs[] = {"alpha", "", "a\0b", "gamma \xce\xb4"};
static const uint64_t k_str_lens[] = {5, 0, 3, 8};

static smoe_gguf_writer *make_roundtrip_writer(uint8_t **tensor_data) {
    smoe_gguf_writer *w = NULL;
    CHECK_OK(smoe_gguf_writer_init(&w));
    if (!w) return NULL;
    /* hand-written scalars first, through copy_kv */
    size_t hn = 0;
    uint8_t *hb = hand_scalars(&hn);
    smoe_gguf *h = NULL;
    CHECK_OK(smoe_gguf_open_memory(hb, hn, &h));
    for (int64_t i = 0; h && i < smoe_gguf_n_kv(h); i++) CHECK_OK(smoe_gguf_writer_copy_kv(w, h, i));
    smoe_gguf_free(h);
    free(hb);
    CHECK_OK(smoe_gguf_writer_set_u32(w, "dup", 1)); /* replaced below, keeps its position */
    CHECK_OK(smoe_gguf_writer_set_u32(w, "v.u32", 4000000000u));
    CHECK_OK(smoe_gguf_writer_set_i32(w, "v.i32", -5));
    CHECK_OK(smoe_gguf_writer_set_u64(w, "v.u64", (1ull << 40) + 3));
    CHECK_OK(smoe_gguf_writer_set_f32(w, "v.f32", 1.5f));
    CHECK_OK(smoe_gguf_writer_set_bool(w, "v.true", true));
    CHECK_OK(smoe_gguf_writer_set_bool(w, "v.false", false));
    CHECK_OK(smoe_gguf_writer_set_str(w, "v.str", "hello \"gguf\"\n"));
    CHECK_OK(smoe_gguf_writer_set_str(w, "v.empty", ""));
    for (int k = 0; k < N_ARRAYS; k++)
        CHECK_OK(smoe_gguf_writer_set_arr(w, k_arrays[k].key, k_arrays[k].t, k_arrays[k].d, k_arrays[k].n));
    CHECK_OK(smoe_gguf_writer_set_arr_str(w, "a.str", k_strs, k_str_lens, 4));
    CHECK_OK(smoe_gguf_writer_set_arr_str(w, "a.estr", k_strs, NULL, 0));
    CHECK_OK(smoe_gguf_writer_set_str(w, "dup", "replaced"));
    *tensor_data = malloc(4096);
    fill(*tensor_data, 4096, 9);
    for (int k = 0; k < N_TENSORS; k++)
        CHECK_OK(smoe_gguf_writer_add_tensor(w, k_tensors[k].name, k_tensors[k].dtype, k_tensors[k].ndim,
                                             k_tensors[k].ne, *tensor_data + 100 * k, k_tensors[k].nbytes));
    return w;
}

static void check_fmt(const smoe_gguf *g, const char *key, const char *want) {
    char buf[512];
    int64_t i = smoe_gguf_find_key(g, key);
    smoe_gguf_kv_format(g, i, buf, sizeof buf);
    CHECK(i >= 0 && strcmp(buf, want) == 0, "format %s: got '%s', want '%s'", key, buf, want);
}

/* Every value and tensor of a file made by make_roundtrip_writer; mem is the buffer it
 * was opened from (NULL for a mapped file). */
static void check_roundtrip(const smoe_gguf *g, const uint8_t *tdata, size_t align, const uint8_t *mem) {
    CHECK(smoe_gguf_version(g) == 3, "version %u", smoe_gguf_version(g));
    CHECK(smoe_gguf_alignment(g) == align, "alignment %zu, want %zu", smoe_gguf_alignment(g), align);
    int64_t want_kv = 7 + 1 + 8 + N_ARRAYS + 2 + (align != 32);
    CHECK(smoe_gguf_n_kv(g) == want_kv, "n_kv %lld, want %lld", (long long)smoe_gguf_n_kv(g), (long long)want_kv);
    CHECK(smoe_gguf_n_tensors(g) == N_TENSORS, "n_tensors %lld", (long long)smoe_gguf_n_tensors(g));

    /* scalars */
    int64_t v;
    uint32_t u;
    float f;
    bool b;
    CHECK(smoe_gguf_get_i64(g, "s.u8", &v) == SMOE_OK && v == 200, "s.u8");
    CHECK(smoe_gguf_get_i64(g, "s.i8", &v) == SMOE_OK && v == -100, "s.i8");
    CHECK(smoe_gguf_get_i64(g, "s.u16", &v) == SMOE_OK && v == 60000, "s.u16");
    CHECK(smoe_gguf_get_i64(g, "s.i16", &v) == SMOE_OK && v == -30000, "s.i16");
    CHECK(smoe_gguf_get_i64(g, "s.i64", &v) == SMOE_OK && v == -1099511627776ll, "s.i64");
    CHECK(smoe_gguf_get_f32(g, "s.f64", &f) == SMOE_OK && f == 3.14159265f, "s.f64 %g", f);
    CHECK(smoe_gguf_get_i64(g, "s.u64big", &v) == SMOE_ERR_RANGE, "u64 above INT64_MAX must not fit an i64");
    CHECK(smoe_gguf_get_u32(g, "s.i8", &u) == SMOE_ERR_RANGE, "negative into u32");
    CHECK(smoe_gguf_get_u32(g, "v.u32", &u) == SMOE_OK && u == 4000000000u, "v.u32");
    CHECK(smoe_gguf_get_i64(g, "v.i32", &v) == SMOE_OK && v == -5, "v.i32");
    CHECK(smoe_gguf_get_i64(g, "v.u64", &v) == SMOE_OK && v == (1ll << 40) + 3, "v.u64");
    CHECK(smoe_gguf_get_u32(g, "v.u64", &u) == SMOE_ERR_RANGE, "u64 into u32");
    CHECK(smoe_gguf_get_f32(g, "v.f32", &f) == SMOE_OK && f == 1.5f, "v.f32");
    CHECK(smoe_gguf_get_f32(g, "v.i32", &f) == SMOE_OK && f == -5.0f, "f32 from an integer");
    CHECK(smoe_gguf_get_bool(g, "v.true", &b) == SMOE_OK && b, "v.true");
    CHECK(smoe_gguf_get_bool(g, "v.false", &b) == SMOE_OK && !b, "v.false");
    CHECK(smoe_gguf_get_bool(g, "v.u32", &b) == SMOE_ERR_FORMAT && strstr(smoe_last_error(), "want bool"), "bool type");
    CHECK(smoe_gguf_get_f32(g, "v.str", &f) == SMOE_ERR_FORMAT, "f32 from a string");
    CHECK(smoe_gguf_get_i64(g, "a.i32", &v) == SMOE_ERR_FORMAT, "i64 from an array");
    CHECK(smoe_gguf_get_u32(g, "nope", &u) == SMOE_ERR_NOT_FOUND && strstr(smoe_last_error(), "'nope'"), "missing key");
    const char *s;
    uint64_t len;
    CHECK(smoe_gguf_get_str(g, "v.str", &s, &len) == SMOE_OK && len == 13 && memcmp(s, "hello \"gguf\"\n", 13) == 0,
          "v.str");
    CHECK(smoe_gguf_get_str(g, "v.empty", &s, &len) == SMOE_OK && len == 0, "v.empty");
    CHECK(smoe_gguf_get_str(g, "dup", &s, &len) == SMOE_OK && len == 8 && memcmp(s, "replaced", 8) == 0, "dup");
    CHECK(smoe_gguf_get_str(g, "v.u32", &s, &len) == SMOE_ERR_FORMAT, "str type");
    /* a key set twice is stored once, where it was first set */
    CHECK(smoe_gguf_find_key(g, "dup") == 7 && smoe_gguf_kv_type(g, 7) == SMOE_GGUF_STRING, "dup at %lld",
          (long long)smoe_gguf_find_key(g, "dup"));
    int dups = 0;
    for (int64_t i = 0; i < smoe_gguf_n_kv(g); i++) dups += strcmp(smoe_gguf_key(g, i), "dup") == 0;
    CHECK(dups == 1, "'dup' stored %d times", dups);
    CHECK(smoe_gguf_kv_type(g, smoe_gguf_find_key(g, "s.u8")) == SMOE_GGUF_UINT8 &&
              smoe_gguf_kv_type(g, smoe_gguf_find_key(g, "s.i16")) == SMOE_GGUF_INT16 &&
              smoe_gguf_kv_type(g, smoe_gguf_find_key(g, "s.f64")) == SMOE_GGUF_FLOAT64 &&
              smoe_gguf_kv_type(g, smoe_gguf_find_key(g, "v.true")) == SMOE_GGUF_BOOL,
          "scalar types");

    /* arrays */
    for (int k = 0; k < N_ARRAYS; k++) {
        int64_t i = smoe_gguf_find_key(g, k_arrays[k].key);
        const void *d = smoe_gguf_arr_data(g, i);
        CHECK(i >= 0 && smoe_gguf_kv_type(g, i) == SMOE_GGUF_ARRAY && smoe_gguf_arr_type(g, i) == k_arrays[k].t &&
                  smoe_gguf_arr_n(g, i) == k_arrays[k].n && d &&
                  memcmp(d, k_arrays[k].d, (size_t)k_arrays[k].n * k_arrays[k].es) == 0,
              "array %s", k_arrays[k].key);
    }
    int64_t si = smoe_gguf_find_key(g, "a.str");
    CHECK(smoe_gguf_arr_type(g, si) == SMOE_GGUF_STRING && smoe_gguf_arr_n(g, si) == 4 && !smoe_gguf_arr_data(g, si),
          "a.str");
    for (uint64_t j = 0; j < 4; j++) {
        s = smoe_gguf_arr_str(g, si, j, &len);
        CHECK(s && len == k_str_lens[j] && memcmp(s, k_strs[j], (size_t)len) == 0, "a.str[%llu]", (unsigned long long)j);
    }
    CHECK(!smoe_gguf_arr_str(g, si, 4, &len) && !smoe_gguf_arr_str(g, si, UINT64_MAX, &len), "a.str out of range");
    int64_t ei = smoe_gguf_find_key(g, "a.estr");
    CHECK(smoe_gguf_arr_type(g, ei) == SMOE_GGUF_STRING && smoe_gguf_arr_n(g, ei) == 0 && !smoe_gguf_arr_str(g, ei, 0, &len),
          "a.estr");
    CHECK(!smoe_gguf_arr_str(g, smoe_gguf_find_key(g, "a.i32"), 0, &len), "arr_str on a numeric array");
    CHECK(smoe_gguf_arr_n(g, smoe_gguf_find_key(g, "v.u32")) == 0 &&
              smoe_gguf_arr_type(g, smoe_gguf_find_key(g, "v.u32")) == SMOE_GGUF_TYPE_COUNT &&
              !smoe_gguf_arr_data(g, smoe_gguf_find_key(g, "v.u32")),
          "array accessors on a scalar");

    /* display formatting */
    check_fmt(g, "s.u8", "200");
    check_fmt(g, "s.i8", "-100");
    check_fmt(g, "s.u16", "60000");
    check_fmt(g, "s.i16", "-30000");
    check_fmt(g, "s.i64", "-1099511627776");
    check_fmt(g, "s.f64", "3.1415926535897931");
    check_fmt(g, "s.u64big", "9223372036854775813");
    check_fmt(g, "v.u32", "4000000000");
    check_fmt(g, "v.f32", "1.5");
    check_fmt(g, "v.true", "true");
    check_fmt(g, "v.str", "\"hello \\\"gguf\\\"\\x0a\"");
    check_fmt(g, "v.empty", "\"\"");
    check_fmt(g, "a.i32", "[i32 x 3] 1, -2, 3");
    check_fmt(g, "a.bool", "[bool x 3] true, false, true");
    check_fmt(g, "a.empty", "[i32 x 0] ");
    check_fmt(g, "a.str", "[str x 4] \"alpha\", \"\", \"a\\x00b\", \"gamma \xce\xb4\"");
    /* every key into every small buffer size: always NUL-terminated, never past cap */
    for (int64_t i = 0; i < smoe_gguf_n_kv(g); i++) {
        for (size_t cap = 0; cap <= 48; cap++) {
            char *buf = malloc(cap ? cap : 1);
            if (cap) memset(buf, 'Z', cap);
            smoe_gguf_kv_format(g, i, buf, cap);
            CHECK(cap == 0 || strnlen(buf, cap) < cap, "format key %lld cap %zu not terminated", (long long)i, cap);
            free(buf);
        }
    }

    /* indices out of range */
    int64_t nk = smoe_gguf_n_kv(g), nt = smoe_gguf_n_tensors(g);
    char fb[8] = "x";
    smoe_gguf_kv_format(g, nk, fb, sizeof fb);
    CHECK(!smoe_gguf_key(g, -1) && !smoe_gguf_key(g, nk) && smoe_gguf_kv_type(g, nk) == SMOE_GGUF_TYPE_COUNT &&
              fb[0] == 0 && smoe_gguf_find_key(g, "") == -1 && smoe_gguf_find_key(g, NULL) == -1 &&
              !smoe_gguf_tensor_name(g, -1) && !smoe_gguf_tensor_name(g, nt) && !smoe_gguf_tensor_data(g, nt) &&
              smoe_gguf_tensor_dtype(g, nt) == -1 && smoe_gguf_tensor_nbytes(g, -1) == 0 &&
              smoe_gguf_find_tensor(g, "nope") == -1 && smoe_gguf_find_tensor(g, NULL) == -1,
          "out-of-range accessors");

    /* tensors */
    for (int k = 0; k < N_TENSORS; k++) {
        const tspec *ts = &k_tensors[k];
        int64_t i = smoe_gguf_find_tensor(g, ts->name);
        CHECK(i == k, "tensor %s at %lld", ts->name, (long long)i);
        if (i < 0) continue;
        CHECK(strcmp(smoe_gguf_tensor_name(g, i), ts->name) == 0 && smoe_gguf_tensor_dtype(g, i) == ts->dtype &&
                  smoe_gguf_tensor_ndim(g, i) == ts->ndim && smoe_gguf_tensor_nbytes(g, i) == ts->nbytes,
              "tensor %s: dtype %d ndim %d nbytes %zu", ts->name, smoe_gguf_tensor_dtype(g, i), smoe_gguf_tensor_ndim(g, i),
              smoe_gguf_tensor_nbytes(g, i));
        for (int d = 0; d < 4; d++)
            CHECK(smoe_gguf_tensor_ne(g, i, d) == ts->ne[d], "%s ne[%d] = %lld", ts->name, d,
                  (long long)smoe_gguf_tensor_ne(g, i, d));
        CHECK(smoe_gguf_tensor_ne(g, i, 4) == 1 && smoe_gguf_tensor_ne(g, i, -1) == 0, "%s ne past ndim", ts->name);
        const uint8_t *d = smoe_gguf_tensor_data(g, i);
        CHECK(d && memcmp(d, tdata + 100 * k, ts->nbytes) == 0, "%s data differs", ts->name);
        CHECK(smoe_gguf_tensor_offset(g, i) % align == 0, "%s offset %llu not aligned to %zu", ts->name,
              (unsigned long long)smoe_gguf_tensor_offset(g, i), align);
        if (mem) {
            size_t abs = (size_t)(d - mem);
            CHECK(abs % align == 0 && abs + ts->nbytes <= smoe_gguf_file_size(g), "%s at file offset %zu", ts->name, abs);
        } else {
            CHECK((uintptr_t)d % align == 0, "%s mapped at %p, not aligned to %zu", ts->name, (const void *)d, align);
        }
    }
}

static void test_roundtrip(void) {
    uint8_t *tdata = NULL;
    smoe_gguf_writer *w = make_roundtrip_writer(&tdata);
    if (!w) return;
    const char *p32 = tmp_path("rt32.gguf"), *p64 = tmp_path("rt64.gguf");
    CHECK_OK(smoe_gguf_writer_write(w, p32));
    smoe_gguf *g = NULL;
    CHECK_OK(smoe_gguf_open(p32, &g));
    if (g) check_roundtrip(g, tdata, 32, NULL);
    smoe_gguf_free(g);

    CHECK_OK(smoe_gguf_writer_set_u32(w, "general.alignment", 64));
    CHECK_OK(smoe_gguf_writer_write(w, p64));
    g = NULL;
    CHECK_OK(smoe_gguf_open(p64, &g));
    if (g) check_roundtrip(g, tdata, 64, NULL);
    smoe_gguf_free(g);
    size_t n = 0;
    uint8_t *mem = th_read_file(p64, &n);
    g = NULL;
    if (mem) CHECK_OK(smoe_gguf_open_memory(mem, n, &g));
    if (g) check_roundtrip(g, tdata, 64, mem);
    smoe_gguf_free(g);

    /* every prefix of the round-trip file fails cleanly up to its last tensor byte */
    kind("round-trip file truncated at every length");
    if (mem) {
        size_t last = 0;
        g = NULL;
        CHECK_OK(smoe_gguf_open_memory(mem, n, &g));
        for (int64_t i = 0; g && i < smoe_gguf_n_tensors(g); i++) {
            size_t e = (size_t)((const uint8_t *)smoe_gguf_tensor_data(g, i) - mem) + smoe_gguf_tensor_nbytes(g, i);
            if (e > last) last = e;
        }
        smoe_gguf_free(g);
        for (size_t len = 0; len < last; len++)
            reject(mem, len, SMOE_ERR_FORMAT,
                   "only|truncated|exceeds|cannot fit|absurd|runs past the end|data section would start");
    }
    kind_end();
    free(mem);

    /* writer argument checks */
    int64_t ne[4] = {32, 2, 1, 1}, ne31[1] = {31}, neg[1] = {-1};
    uint8_t d[64] = {0};
    CHECK(smoe_gguf_writer_add_tensor(w, "x", SMOE_DTYPE_Q4_0, 2, ne, d, 35) == SMOE_ERR_INVALID_ARG, "wrong nbytes");
    CHECK(smoe_gguf_writer_add_tensor(w, "x", SMOE_DTYPE_Q4_0, 1, ne31, d, 18) == SMOE_ERR_INVALID_ARG, "ne0 31");
    CHECK(smoe_gguf_writer_add_tensor(w, "x", SMOE_DTYPE_F32, 1, neg, d, 0) == SMOE_ERR_INVALID_ARG, "negative ne");
    CHECK(smoe_gguf_writer_add_tensor(w, "x", SMOE_DTYPE_F32, 0, ne, d, 4) == SMOE_ERR_INVALID_ARG, "ndim 0");
    CHECK(smoe_gguf_writer_add_tensor(w, "x", SMOE_DTYPE_F32, 5, ne, d, 4) == SMOE_ERR_INVALID_ARG, "ndim 5");
    CHECK(smoe_gguf_writer_add_tensor(w, "x", 5, 1, ne, d, 18) == SMOE_ERR_INVALID_ARG, "unknown dtype");
    CHECK(smoe_gguf_writer_add_tensor(w, "x", 200, 1, ne, d, 18) == SMOE_ERR_INVALID_ARG, "dtype 200");
    CHECK(smoe_gguf_writer_add_tensor(w, "", SMOE_DTYPE_F32, 1, ne, d, 128) == SMOE_ERR_INVALID_ARG, "empty name");
    CHECK(smoe_gguf_writer_add_tensor(w, "w.f32", SMOE_DTYPE_F32, 2, k_tensors[0].ne, d, 48) == SMOE_ERR_INVALID_ARG &&
              strstr(smoe_last_error(), "duplicate tensor 'w.f32'"),
          "duplicate tensor: %s", smoe_last_error());
    CHECK(smoe_gguf_writer_set_arr(w, "x", SMOE_GGUF_STRING, d, 1) == SMOE_ERR_INVALID_ARG, "string as numeric array");
    CHECK(smoe_gguf_writer_set_arr(w, "x", SMOE_GGUF_ARRAY, d, 1) == SMOE_ERR_INVALID_ARG, "nested array");
    CHECK(smoe_gguf_writer_set_u32(w, "", 1) == SMOE_ERR_INVALID_ARG, "empty key");
    CHECK(smoe_gguf_writer_set_str(w, "x", NULL) == SMOE_ERR_INVALID_ARG, "NULL string");

    /* a failed write reports IO and leaves no temporary file: a missing directory, and a
     * path that is a directory (rename fails after the temporary file was written) */
    char missing[700];
    snprintf(missing, sizeof missing, "%s-no-such-dir/x.gguf", g_tmp);
    smoe_status st = smoe_gguf_writer_write(w, missing);
    CHECK(st == SMOE_ERR_IO && strstr(smoe_last_error(), missing), "write into a missing dir: %s: %s",
          smoe_status_name(st), smoe_last_error());
    struct stat sb;
    CHECK(stat(missing, &sb) != 0, "%s exists", missing);
    const char *dir = tmp_path("isdir");
    CHECK(mkdir(dir, 0700) == 0, "mkdir %s", dir);
    st = smoe_gguf_writer_write(w, dir);
    CHECK(st == SMOE_ERR_IO && strstr(smoe_last_error(), dir), "write onto a directory: %s: %s", smoe_status_name(st),
          smoe_last_error());
    int leftovers = tmp_leftovers(dir);
    CHECK(leftovers == 0, "%d temporary files left next to %s", leftovers, dir);
    rmdir(dir);

    smoe_gguf_writer_free(w);
    smoe_gguf_writer_free(NULL);
    unlink(p32);
    unlink(p64);
    free(tdata);
}

/* Tensors produced at write time: called once each, in order, with the right size;
 * a failing fill aborts the write with its status and leaves nothing behind. */
typedef struct fill_ctx {
    int calls;
    int64_t last, fail_at;
} fill_ctx;

static smoe_status fill_cb(void *user, int64_t index, void *buf, size_t nbytes) {
    fill_ctx *c = user;
    CHECK(index > c->last, "fill called for %lld after %lld", (long long)index, (long long)c->last);
    c->last = index;
    c->calls++;
    if (index == c->fail_at) return SMOE_ERR_IO; /* a caller cannot set the message (smoe_err is internal) */
    if (nbytes) fill(buf, nbytes, (unsigned)index);
    return SMOE_OK;
}

static void test_fill(void) {
    const char *path = tmp_path("fill.gguf");
    for (int fail = 0; fail < 2; fail++) {
        smoe_gguf_writer *w = NULL;
        CHECK_OK(smoe_gguf_writer_init(&w));
        if (!w) return;
        fill_ctx c = {0, -1, fail ? 3 : -1};
        uint8_t a[32];
        fill(a, sizeof a, 0);
        int64_t ne_a[1] = {8}, ne_b[2] = {64, 3}, ne_c[1] = {0}, ne_d[1] = {16}, ne31[1] = {31};
        CHECK_OK(smoe_gguf_writer_add_tensor(w, "a", SMOE_DTYPE_F32, 1, ne_a, a, 32));
        CHECK_OK(smoe_gguf_writer_add_tensor_fill(w, "b", SMOE_DTYPE_Q8_0, 2, ne_b, fill_cb, &c));
        CHECK_OK(smoe_gguf_writer_add_tensor_fill(w, "c", SMOE_DTYPE_F32, 1, ne_c, fill_cb, &c));
        CHECK_OK(smoe_gguf_writer_add_tensor_fill(w, "d", SMOE_DTYPE_F16, 1, ne_d, fill_cb, &c));
        CHECK(smoe_gguf_writer_add_tensor_fill(w, "e", SMOE_DTYPE_F32, 1, ne_a, NULL, &c) == SMOE_ERR_INVALID_ARG,
              "NULL fill");
        CHECK(smoe_gguf_writer_add_tensor_fill(w, "e", SMOE_DTYPE_Q8_0, 1, ne31, fill_cb, &c) == SMOE_ERR_INVALID_ARG,
              "fill with a bad shape");
        CHECK(smoe_gguf_writer_add_tensor_fill(w, "b", SMOE_DTYPE_F32, 1, ne_a, fill_cb, &c) == SMOE_ERR_INVALID_ARG,
              "fill with a duplicate name");
        smoe_status st = smoe_gguf_writer_write(w, path);
        smoe_gguf_writer_free(w);
        CHECK(c.calls == 3, "fill called %d times", c.calls);
        if (fail) {
            struct stat sb;
            CHECK(st == SMOE_ERR_IO, "failing fill: %s: %s", smoe_status_name(st), smoe_last_error());
            CHECK(stat(path, &sb) != 0 && tmp_leftovers(path) == 0, "a failed fill left %s or a temporary file", path);
            continue;
        }
        CHECK_OK(st);
        smoe_gguf *g = NULL;
        CHECK_OK(smoe_gguf_open(path, &g));
        if (!g) continue;
        uint8_t want[384];
        fill(want, 384, 1);
        CHECK(smoe_gguf_n_tensors(g) == 4 && smoe_gguf_tensor_nbytes(g, 1) == 3 * 2 * 34 &&
                  memcmp(smoe_gguf_tensor_data(g, 0), a, 32) == 0 &&
                  memcmp(smoe_gguf_tensor_data(g, 1), want, 3 * 2 * 34) == 0 && smoe_gguf_tensor_nbytes(g, 2) == 0,
              "filled tensors a, b, c");
        fill(want, 32, 3);
        CHECK(smoe_gguf_tensor_nbytes(g, 3) == 32 && memcmp(smoe_gguf_tensor_data(g, 3), want, 32) == 0, "filled d");
        smoe_gguf_free(g);
        unlink(path);
    }
}

/* copy_kv of every key of a real model gives back identical keys, types and values. */
static void test_copy_real(void) {
    smoe_gguf *src = NULL;
    CHECK_OK(smoe_gguf_open(th_data("model/mixtral-tiny-Q4_K_M.gguf"), &src));
    if (!src) return;
    smoe_gguf_writer *w = NULL;
    CHECK_OK(smoe_gguf_writer_init(&w));
    for (int64_t i = 0; i < smoe_gguf_n_kv(src); i++) CHECK_OK(smoe_gguf_writer_copy_kv(w, src, i));
    CHECK(smoe_gguf_writer_copy_kv(w, src, smoe_gguf_n_kv(src)) == SMOE_ERR_RANGE, "copy_kv past the end");
    const char *path = tmp_path("copy.gguf");
    CHECK_OK(smoe_gguf_writer_write(w, path));
    smoe_gguf_writer_free(w);
    smoe_gguf *dst = NULL;
    CHECK_OK(smoe_gguf_open(path, &dst));
    unlink(path);
    if (!dst) {
        smoe_gguf_free(src);
        return;
    }
    CHECK(smoe_gguf_n_kv(dst) == smoe_gguf_n_kv(src) && smoe_gguf_n_tensors(dst) == 0, "copy has %lld keys, want %lld",
          (long long)smoe_gguf_n_kv(dst), (long long)smoe_gguf_n_kv(src));
    int same = 0;
    for (int64_t i = 0; i < smoe_gguf_n_kv(src) && i < smoe_gguf_n_kv(dst); i++) {
        const char *k = smoe_gguf_key(src, i);
        smoe_gguf_type t = smoe_gguf_kv_type(src, i);
        bool ok = strcmp(k, smoe_gguf_key(dst, i)) == 0 && smoe_gguf_kv_type(dst, i) == t;
        char a[512], b[512];
        smoe_gguf_kv_format(src, i, a, sizeof a);
        smoe_gguf_kv_format(dst, i, b, sizeof b);
        ok = ok && strcmp(a, b) == 0;
        if (ok && t == SMOE_GGUF_STRING) {
            const char *s1, *s2;
            uint64_t l1, l2;
            ok = smoe_gguf_get_str(src, k, &s1, &l1) == SMOE_OK && smoe_gguf_get_str(dst, k, &s2, &l2) == SMOE_OK &&
                 l1 == l2 && memcmp(s1, s2, (size_t)l1) == 0;
        } else if (ok && t == SMOE_GGUF_ARRAY) {
            smoe_gguf_type et = smoe_gguf_arr_type(src, i);
            uint64_t n = smoe_gguf_arr_n(src, i);
            ok = smoe_gguf_arr_type(dst, i) == et && smoe_gguf_arr_n(dst, i) == n;
            if (ok && et == SMOE_GGUF_STRING) {
                for (uint64_t j = 0; ok && j < n; j++) {
                    uint64_t l1, l2;
                    const char *s1 = smoe_gguf_arr_str(src, i, j, &l1), *s2 = smoe_gguf_arr_str(dst, i, j, &l2);
                    ok = s1 && s2 && l1 == l2 && memcmp(s1, s2, (size_t)l1) == 0;
                }
            } else if (ok) {
                static const size_t es[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
                ok = memcmp(smoe_gguf_arr_data(src, i), smoe_gguf_arr_data(dst, i), (size_t)n * es[et]) == 0;
            }
        }
        CHECK(ok, "copied key %lld '%s' differs: '%s' vs '%s'", (long long)i, k, a, b);
        same += ok;
    }
    CHECK(same == 27, "%d keys identical", same);
    smoe_gguf_free(dst);
    smoe_gguf_free(src);
}

/* ------------------------------------------------------------------ hostile scale */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void hex_name(char *out, char prefix, uint64_t v, int digits) {
    out[0] = prefix;
    for (int d = digits; d >= 1; d--, v >>= 4) out[d] = "0123456789abcdef"[v & 15];
    out[digits + 1] = 0;
}

/* Valid files built to hit worst cases of the directory code, which must stay fast:
 * 32768 keys whose FNV-1a hashes all fall in 256 slots of a 65536-slot table (linear
 * probing went quadratic: ~3 s), and 131072 empty tensors with offsets 32, 0, 32, 0...
 * (the worst case of a Shell sort with halving gaps: ~4 s). Both take milliseconds now. */
static void test_hostile_scale(void) {
    const uint64_t nk = 32768, cap = 65536;
    bytes b = {0};
    bb_u32(&b, 0x46554747u), bb_u32(&b, 3), bb_u64(&b, 0), bb_u64(&b, nk);
    char key[16], first[16] = "", last[16] = "";
    for (uint64_t c = 0, found = 0; found < nk; c++) {
        hex_name(key, 'k', c, 10);
        uint64_t h = 1469598103934665603ull;
        for (const char *p = key; *p; p++) h = (h ^ (uint8_t)*p) * 1099511628211ull;
        if ((h & (cap - 1)) >= 256) continue;
        bb_key(&b, key, SMOE_GGUF_UINT8);
        bb_put(&b, "\1", 1);
        if (!found) memcpy(first, key, sizeof key);
        memcpy(last, key, sizeof key);
        found++;
    }
    smoe_gguf *g = NULL;
    double t0 = now_s();
    smoe_status st = smoe_gguf_open_memory(b.p, b.n, &g);
    double dt = now_s() - t0;
    CHECK(st == SMOE_OK && dt < 1.5, "%llu colliding keys: %s in %.3f s", (unsigned long long)nk, smoe_last_error(), dt);
    if (g) {
        CHECK(smoe_gguf_find_key(g, first) == 0 && smoe_gguf_find_key(g, last) == (int64_t)nk - 1 &&
                  smoe_gguf_find_key(g, "k0000000000x") == -1,
              "look-ups among colliding keys");
        smoe_gguf_free(g);
    }
    free(b.p);

    const uint64_t nt = 131072;
    bytes t = {0};
    bb_u32(&t, 0x46554747u), bb_u32(&t, 3), bb_u64(&t, nt), bb_u64(&t, 0);
    for (uint64_t i = 0; i < nt; i++) {
        hex_name(key, 't', i, 7);
        bb_u64(&t, 8), bb_put(&t, key, 8);
        bb_u32(&t, 1), bb_u64(&t, 0), bb_u32(&t, SMOE_DTYPE_F32), bb_u64(&t, i % 2 ? 0 : 32);
    }
    uint8_t pad[64] = {0};
    bb_put(&t, pad, sizeof pad);
    g = NULL;
    t0 = now_s();
    st = smoe_gguf_open_memory(t.p, t.n, &g);
    dt = now_s() - t0;
    CHECK(st == SMOE_OK && dt < 1.5, "%llu alternating empty tensors: %s in %.3f s", (unsigned long long)nt,
          smoe_last_error(), dt);
    if (g) CHECK(smoe_gguf_find_tensor(g, "t001ffff") == 131071, "find_tensor among many");
    smoe_gguf_free(g);
    free(t.p);
}

/* ------------------------------------------------------------------ model loading */

typedef struct model_edit {
    const char *drop_key, *drop_tensor, *halve_tensor, *arch;
} model_edit;

static bool write_model_copy(const smoe_gguf *src, const char *path, const model_edit *e) {
    smoe_gguf_writer *w = NULL;
    if (smoe_gguf_writer_init(&w)) return false;
    bool ok = true;
    for (int64_t i = 0; ok && i < smoe_gguf_n_kv(src); i++)
        if (!e->drop_key || strcmp(smoe_gguf_key(src, i), e->drop_key) != 0)
            ok = smoe_gguf_writer_copy_kv(w, src, i) == SMOE_OK;
    if (ok && e->arch) ok = smoe_gguf_writer_set_str(w, "general.architecture", e->arch) == SMOE_OK;
    for (int64_t i = 0; ok && i < smoe_gguf_n_tensors(src); i++) {
        const char *name = smoe_gguf_tensor_name(src, i);
        if (e->drop_tensor && strcmp(name, e->drop_tensor) == 0) continue;
        int64_t ne[4];
        for (int d = 0; d < 4; d++) ne[d] = smoe_gguf_tensor_ne(src, i, d);
        size_t nb = smoe_gguf_tensor_nbytes(src, i);
        if (e->halve_tensor && strcmp(name, e->halve_tensor) == 0) ne[0] /= 2, nb /= 2;
        ok = smoe_gguf_writer_add_tensor(w, name, smoe_gguf_tensor_dtype(src, i), smoe_gguf_tensor_ndim(src, i), ne,
                                         smoe_gguf_tensor_data(src, i), nb) == SMOE_OK;
    }
    ok = ok && smoe_gguf_writer_write(w, path) == SMOE_OK;
    if (!ok) fprintf(stderr, "model copy: %s\n", smoe_last_error());
    smoe_gguf_writer_free(w);
    return ok;
}

static void test_model_load(void) {
    smoe_model *m = NULL;
    const char *orig = th_data("model/mixtral-tiny-Q4_0.gguf");
    CHECK_OK(smoe_model_load(orig, NULL, &m));
    if (m) {
        const smoe_model_info *inf = smoe_model_get_info(m);
        CHECK(inf->n_embd == 256 && inf->n_layer == 2 && inf->n_expert == 8 && inf->n_expert_used == 2 &&
                  inf->n_vocab == 1024,
              "model info");
    }
    smoe_model_free(m);
    smoe_gguf *src = NULL;
    CHECK_OK(smoe_gguf_open(orig, &src));
    if (!src) return;
    const char *path = tmp_path("model.gguf");
    static const struct {
        model_edit e;
        smoe_status want, want2;
        const char *phrase;
    } cases[] = {
        {{NULL, NULL, NULL, NULL}, SMOE_OK, SMOE_OK, ""},
        {{NULL, "blk.1.attn_q.weight", NULL, NULL}, SMOE_ERR_FORMAT, SMOE_ERR_FORMAT, "tensor 'blk.1.attn_q.weight' is missing"},
        {{NULL, "blk.0.ffn_up_exps.weight", NULL, NULL}, SMOE_ERR_FORMAT, SMOE_ERR_FORMAT,
         "blk.0.ffn_up"},
        {{NULL, "token_embd.weight", NULL, NULL}, SMOE_ERR_FORMAT, SMOE_ERR_FORMAT, "'token_embd.weight' is missing"},
        {{NULL, NULL, "blk.0.attn_norm.weight", NULL}, SMOE_ERR_FORMAT, SMOE_ERR_FORMAT,
         "tensor 'blk.0.attn_norm.weight' has shape [128, 1, 1, 1], expected [256, 1, 1, 1]"},
        {{NULL, NULL, "blk.1.ffn_gate_inp.weight", NULL}, SMOE_ERR_FORMAT, SMOE_ERR_FORMAT,
         "tensor 'blk.1.ffn_gate_inp.weight' has shape [128, 8, 1, 1]"},
        {{NULL, NULL, NULL, "gpt2"}, SMOE_ERR_UNSUPPORTED, SMOE_ERR_UNSUPPORTED, "architecture 'gpt2' is not supported"},
        /* model.c passes on the reader's NOT_FOUND for a missing required key */
        {{"llama.embedding_length", NULL, NULL, NULL}, SMOE_ERR_FORMAT, SMOE_ERR_NOT_FOUND, "llama.embedding_length"},
        {{"llama.block_count", NULL, NULL, NULL}, SMOE_ERR_FORMAT, SMOE_ERR_NOT_FOUND, "llama.block_count"},
        {{"general.architecture", NULL, NULL, NULL}, SMOE_ERR_FORMAT, SMOE_ERR_NOT_FOUND, "general.architecture"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        if (!write_model_copy(src, path, &cases[k].e)) {
            CHECK(0, "cannot write model copy %zu", k);
            continue;
        }
        m = NULL;
        smoe_status st = smoe_model_load(path, NULL, &m);
        const char *msg = smoe_last_error();
        CHECK((st == cases[k].want || st == cases[k].want2) && (st == SMOE_OK) == (m != NULL) &&
                  strstr(msg, cases[k].phrase) && (st == SMOE_OK || strstr(msg, path)),
              "model case %zu: %s: %s (want %s: %s)", k, smoe_status_name(st), msg, smoe_status_name(cases[k].want),
              cases[k].phrase);
        smoe_model_free(m);
    }
    unlink(path);
    smoe_gguf_free(src);
}

/* ------------------------------------------------------------------ fuzzing seeds */

/* Small files for tests/fuzz/corpus, written when SMOE_GGUF_SEED_DIR is set. */
static void write_seeds(const char *dir) {
    char p[1024];
    snprintf(p, sizeof p, "%s/base.gguf", dir);
    size_t n;
    free(make_base(p, &n));
    uint8_t *tdata = NULL;
    smoe_gguf_writer *w = make_roundtrip_writer(&tdata);
    snprintf(p, sizeof p, "%s/roundtrip.gguf", dir);
    CHECK_OK(smoe_gguf_writer_write(w, p));
    smoe_gguf_writer_free(w);
    free(tdata);
    /* the tiny model's metadata (a 1024-token llama vocabulary), no tensors */
    smoe_gguf *src = NULL;
    CHECK_OK(smoe_gguf_open(th_data("model/mixtral-tiny-Q4_0.gguf"), &src));
    CHECK_OK(smoe_gguf_writer_init(&w));
    for (int64_t i = 0; src && i < smoe_gguf_n_kv(src); i++) CHECK_OK(smoe_gguf_writer_copy_kv(w, src, i));
    snprintf(p, sizeof p, "%s/tiny-vocab-llama.gguf", dir);
    CHECK_OK(smoe_gguf_writer_write(w, p));
    smoe_gguf_writer_free(w);
    smoe_gguf_free(src);
    /* a minimal byte-level BPE vocabulary with merges */
    static const char *const toks[] = {"!", "a", "b", "c", "\xc4\xa0", "ab", "abc", "\xc4\xa0\x61", "<|endoftext|>"};
    static const char *const merges[] = {"a b", "ab c", "\xc4\xa0 a"};
    int32_t types[9] = {1, 1, 1, 1, 1, 1, 1, 1, 3};
    CHECK_OK(smoe_gguf_writer_init(&w));
    CHECK_OK(smoe_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2"));
    CHECK_OK(smoe_gguf_writer_set_str(w, "tokenizer.ggml.pre", "gpt-2"));
    CHECK_OK(smoe_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, 9));
    CHECK_OK(smoe_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", SMOE_GGUF_INT32, types, 9));
    CHECK_OK(smoe_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, NULL, 3));
    CHECK_OK(smoe_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 8));
    CHECK_OK(smoe_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 8));
    snprintf(p, sizeof p, "%s/tiny-vocab-gpt2.gguf", dir);
    CHECK_OK(smoe_gguf_writer_write(w, p));
    smoe_gguf_writer_free(w);
}

int main(void) {
    const char *td = getenv("TMPDIR");
    snprintf(g_tmp, sizeof g_tmp, "%s/smoe-test-gguf-%d", td && *td ? td : "/tmp", (int)getpid());

    test_roundtrip();
    test_fill();
    test_copy_real();
    test_corrupt();
    test_truncated_model();
    test_hostile_scale();
    test_model_load();
    printf("rejected %d kinds of corrupt file (%d corrupt variants, each with the expected status and message)\n",
           g_kinds, g_variants);
    CHECK(g_kinds >= 20, "only %d kinds", g_kinds);

    const char *seeds = getenv("SMOE_GGUF_SEED_DIR");
    if (seeds && *seeds) write_seeds(seeds);
    return TEST_REPORT();
}
