/*
 * test_quant.c - tests of the tensor type table and the reference dequantizers:
 *   - every pair in tests/data/dequant (raw ggml blocks cut from real GGUF files, and
 *     the f32 values ggml/gguf-py made from them) must dequantize bit-identically;
 *   - the f16 conversions: all 65536 half patterns round-trip, hand-picked f32 -> f16
 *     rounding cases (ties to even, subnormals, overflow, NaN);
 *   - bf16 rounding ties and NaN;
 *   - traits of every type id, unknown ids and bad counts fail cleanly;
 *   - unaligned source buffers decode like aligned ones.
 */
#include "smoe.h"
#include "quant/quant.h"
#include "testhelp.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint32_t f2u(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float u2f(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static int dtype_by_name(const char *name) {
    for (int t = 0; t < SMOE_DTYPE_COUNT; t++) {
        const char *s = smoe_dtype_name(t);
        if (s && strcmp(s, name) == 0) return t;
    }
    return -1;
}

/* Copy the JSON string value following `key` (e.g. "\"raw_file\"") in [p, end) into
 * out; returns 0 when absent. index.json is machine-written and flat, so this is
 * enough. */
static int json_str(const char *p, const char *end, const char *key, char *out, size_t cap) {
    const char *k = strstr(p, key);
    if (!k || k >= end) return 0;
    const char *q = strchr(k + strlen(key), ':');
    if (!q) return 0;
    q = strchr(q, '"');
    if (!q) return 0;
    q++;
    const char *e = strchr(q, '"');
    if (!e || (size_t)(e - q) >= cap) return 0;
    memcpy(out, q, (size_t)(e - q));
    out[e - q] = 0;
    return 1;
}

static long json_int(const char *p, const char *end, const char *key) {
    const char *k = strstr(p, key);
    if (!k || k >= end) return -1;
    const char *q = strchr(k + strlen(key), ':');
    return q ? strtol(q + 1, NULL, 10) : -1;
}

static void test_fixtures(void) {
    size_t isz;
    char *index = th_read_file(th_data("dequant/index.json"), &isz);
    CHECK(index != NULL, "tests/data/dequant/index.json missing");
    if (!index) return;
    int pairs = 0;
    int seen[SMOE_DTYPE_COUNT] = {0};
    const char *p = index;
    while ((p = strstr(p, "\"ggml_type\"")) != NULL) {
        const char *next = strstr(p + 1, "\"ggml_type\"");
        const char *end = next ? next : index + isz;
        char tname[32], f32_file[256], raw_file[256], path[300];
        int ok = json_str(p, end, "\"ggml_type\"", tname, sizeof tname) &&
                 json_str(p, end, "\"f32_file\"", f32_file, sizeof f32_file) &&
                 json_str(p, end, "\"raw_file\"", raw_file, sizeof raw_file);
        long rows = json_int(p, end, "\"rows\""), row_len = json_int(p, end, "\"row_len\"");
        p = end;
        CHECK(ok && rows > 0 && row_len > 0, "malformed entry in index.json");
        if (!ok || rows <= 0 || row_len <= 0) continue;

        const int t = dtype_by_name(tname);
        CHECK(t >= 0, "fixture type %s unknown to smoe_dtype_name", tname);
        if (t < 0) continue;
        seen[t] = 1;

        size_t raw_sz = 0, f32_sz = 0;
        snprintf(path, sizeof path, "dequant/%s", raw_file);
        unsigned char *raw = th_read_file(th_data(path), &raw_sz);
        snprintf(path, sizeof path, "dequant/%s", f32_file);
        unsigned char *want = th_read_file(th_data(path), &f32_sz);
        CHECK(raw && want, "cannot read %s / %s", raw_file, f32_file);
        if (raw && want) {
            const int64_t n = (int64_t)rows * row_len;
            const int64_t bs = smoe_dtype_block_size(t);
            CHECK((int64_t)f32_sz == n * 4, "%s: %zu bytes, want %lld", f32_file, f32_sz,
                  (long long)(n * 4));
            CHECK((int64_t)raw_sz == n / bs * (int64_t)smoe_dtype_block_bytes(t),
                  "%s: %zu bytes does not match %lld values of %s", raw_file, raw_sz,
                  (long long)n, tname);
            float *got = malloc((size_t)n * sizeof *got);
            CHECK_OK(smoe_dequantize(t, raw, got, n));
            int64_t bad = -1;
            for (int64_t i = 0; i < n && bad < 0; i++)
                if (memcmp(&got[i], want + 4 * i, 4) != 0) bad = i;
            CHECK(bad < 0, "%s: first mismatch at value %lld (row %lld col %lld)", raw_file,
                  (long long)bad, (long long)(bad / row_len), (long long)(bad % row_len));
            if (bad >= 0) {
                float w;
                memcpy(&w, want + 4 * bad, 4);
                fprintf(stderr, "  got %.9g (0x%08x) want %.9g (0x%08x)\n", got[bad],
                        f2u(got[bad]), w, f2u(w));
            }

            /* Same bytes at an odd address: the decoders must not assume alignment
             * (UBSan would flag a misaligned load) and must give the same values. */
            unsigned char *odd = malloc(raw_sz + 1);
            float *got2 = malloc((size_t)n * sizeof *got2);
            memcpy(odd + 1, raw, raw_sz);
            CHECK_OK(smoe_dequantize(t, odd + 1, got2, n));
            CHECK(memcmp(got, got2, (size_t)n * sizeof *got) == 0, "%s: unaligned differs",
                  raw_file);
            free(odd);
            free(got2);
            free(got);
            pairs++;
        }
        free(raw);
        free(want);
    }
    CHECK(pairs == 24, "%d fixture pairs, expected 24", pairs);
    /* Every type that must be computable (all but F32, which is a copy) has to be covered
     * by real data, so a lost fixture cannot silently drop a type from the test. */
    const int required[] = {SMOE_DTYPE_F16,  SMOE_DTYPE_BF16, SMOE_DTYPE_Q4_0, SMOE_DTYPE_Q4_1,
                            SMOE_DTYPE_Q5_0, SMOE_DTYPE_Q5_1, SMOE_DTYPE_Q8_0, SMOE_DTYPE_Q2_K,
                            SMOE_DTYPE_Q3_K, SMOE_DTYPE_Q4_K, SMOE_DTYPE_Q5_K, SMOE_DTYPE_Q6_K};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
        CHECK(seen[required[i]], "no fixture for %s", smoe_dtype_name(required[i]));
    free(index);
}

static void test_traits(void) {
    static const struct {
        int id;
        const char *name;
        int64_t bs;
        size_t bb;
        bool deq;
    } want[] = {
        {0, "F32", 1, 4, true},        {1, "F16", 1, 2, true},
        {2, "Q4_0", 32, 18, true},     {3, "Q4_1", 32, 20, true},
        {6, "Q5_0", 32, 22, true},     {7, "Q5_1", 32, 24, true},
        {8, "Q8_0", 32, 34, true},     {9, "Q8_1", 32, 36, true},
        {10, "Q2_K", 256, 84, true},   {11, "Q3_K", 256, 110, true},
        {12, "Q4_K", 256, 144, true},  {13, "Q5_K", 256, 176, true},
        {14, "Q6_K", 256, 210, true},  {15, "Q8_K", 256, 292, true},
        {16, "IQ2_XXS", 256, 66, false}, {17, "IQ2_XS", 256, 74, false},
        {18, "IQ3_XXS", 256, 98, false}, {19, "IQ1_S", 256, 50, false},
        {20, "IQ4_NL", 32, 18, false}, {21, "IQ3_S", 256, 110, false},
        {22, "IQ2_S", 256, 82, false}, {23, "IQ4_XS", 256, 136, false},
        {24, "I8", 1, 1, true},        {25, "I16", 1, 2, true},
        {26, "I32", 1, 4, true},       {27, "I64", 1, 8, true},
        {28, "F64", 1, 8, true},       {29, "IQ1_M", 256, 56, false},
        {30, "BF16", 1, 2, true},      {34, "TQ1_0", 256, 54, false},
        {35, "TQ2_0", 256, 66, false}, {39, "MXFP4", 32, 17, false},
    };
    int known = 0;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const int t = want[i].id;
        const char *nm = smoe_dtype_name(t);
        CHECK(nm && strcmp(nm, want[i].name) == 0, "name of %d: %s", t, nm ? nm : "(null)");
        CHECK(smoe_dtype_block_size(t) == want[i].bs, "block size of %s", want[i].name);
        CHECK(smoe_dtype_block_bytes(t) == want[i].bb, "block bytes of %s", want[i].name);
        CHECK(smoe_dtype_can_dequantize(t) == want[i].deq, "can_dequantize(%s)", want[i].name);
        const smoe_type_traits *tr = smoe_type_traits_get(t);
        CHECK(tr && tr->block_size == want[i].bs && (tr->to_float != NULL) == want[i].deq,
              "traits row of %s", want[i].name);
    }
    for (int t = -5; t < SMOE_DTYPE_COUNT + 5; t++) known += smoe_dtype_name(t) != NULL;
    CHECK(known == (int)(sizeof want / sizeof want[0]), "%d known ids, want %zu", known,
          sizeof want / sizeof want[0]);

    /* unknown ids */
    const int unknown[] = {4, 5, 31, 33, 40, 63, 64, -1, 1000};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        const int t = unknown[i];
        CHECK(smoe_dtype_name(t) == NULL, "id %d should be unknown", t);
        CHECK(smoe_dtype_block_size(t) == 0 && smoe_dtype_block_bytes(t) == 0, "size of %d", t);
        CHECK(!smoe_dtype_can_dequantize(t), "can_dequantize(%d)", t);
        CHECK(smoe_type_traits_get(t) == NULL, "traits of %d", t);
    }
    unsigned char buf[64] = {0};
    float out[64];
    smoe_status st = smoe_dequantize(5, buf, out, 32);
    CHECK(st == SMOE_ERR_INVALID_ARG, "type 5 -> %s", smoe_status_name(st));
    CHECK(strlen(smoe_last_error()) > 0, "no message for type 5");
    st = smoe_dequantize(-1, buf, out, 1);
    CHECK(st == SMOE_ERR_INVALID_ARG, "type -1 -> %s", smoe_status_name(st));
    st = smoe_dequantize(SMOE_DTYPE_COUNT, buf, out, 1);
    CHECK(st == SMOE_ERR_INVALID_ARG, "type 64 -> %s", smoe_status_name(st));
    /* known, but no dequantizer */
    st = smoe_dequantize(20, buf, out, 32);
    CHECK(st == SMOE_ERR_UNSUPPORTED, "IQ4_NL -> %s", smoe_status_name(st));

    /* n not a multiple of the block size, negative n, NULL buffers; dst untouched */
    for (int i = 0; i < 64; i++) out[i] = 12345.0f;
    st = smoe_dequantize(SMOE_DTYPE_Q4_0, buf, out, 33);
    CHECK(st == SMOE_ERR_INVALID_ARG, "Q4_0 n=33 -> %s", smoe_status_name(st));
    st = smoe_dequantize(SMOE_DTYPE_Q4_K, buf, out, 32);
    CHECK(st == SMOE_ERR_INVALID_ARG, "Q4_K n=32 -> %s", smoe_status_name(st));
    st = smoe_dequantize(SMOE_DTYPE_F16, buf, out, -2);
    CHECK(st == SMOE_ERR_INVALID_ARG, "F16 n=-2 -> %s", smoe_status_name(st));
    st = smoe_dequantize(SMOE_DTYPE_F16, NULL, out, 2);
    CHECK(st == SMOE_ERR_INVALID_ARG, "NULL src -> %s", smoe_status_name(st));
    st = smoe_dequantize(SMOE_DTYPE_F16, buf, NULL, 2);
    CHECK(st == SMOE_ERR_INVALID_ARG, "NULL dst -> %s", smoe_status_name(st));
    int untouched = 1;
    for (int i = 0; i < 64; i++) untouched &= out[i] == 12345.0f;
    CHECK(untouched, "failed calls wrote to dst");
    CHECK_OK(smoe_dequantize(SMOE_DTYPE_Q4_0, NULL, NULL, 0));
}

static void test_f16(void) {
    /* every half pattern: f16 -> f32 -> f16 is the identity; NaNs stay NaN (payload of
     * quiet NaNs survives too, signalling ones come back quiet) */
    int bad = 0, badnan = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        const float f = smoe_f16_to_f32((uint16_t)h);
        const uint16_t back = smoe_f32_to_f16(f);
        const int is_nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
        if (is_nan) {
            badnan += !(f != f) || (back & 0x7c00) != 0x7c00 || !(back & 0x3ff) ||
                      (back & 0x8000) != (h & 0x8000);
            if ((h & 0x200) && back != h) badnan++;
        } else {
            bad += back != h;
        }
    }
    CHECK(bad == 0, "%d half patterns do not round-trip", bad);
    CHECK(badnan == 0, "%d NaN patterns mishandled", badnan);

    /* known values */
    CHECK(smoe_f16_to_f32(0x3c00) == 1.0f, "1.0");
    CHECK(smoe_f16_to_f32(0xc000) == -2.0f, "-2.0");
    CHECK(smoe_f16_to_f32(0x7bff) == 65504.0f, "max half");
    CHECK(smoe_f16_to_f32(0x0400) == 0x1p-14f, "min normal");
    CHECK(smoe_f16_to_f32(0x0001) == 0x1p-24f, "min subnormal");
    CHECK(smoe_f16_to_f32(0x03ff) == 0x3ffp-24f, "max subnormal");
    CHECK(f2u(smoe_f16_to_f32(0x8000)) == 0x80000000u, "-0");
    CHECK(f2u(smoe_f16_to_f32(0x7c00)) == 0x7f800000u, "+inf");
    CHECK(f2u(smoe_f16_to_f32(0xfc00)) == 0xff800000u, "-inf");
    CHECK(smoe_f16_to_f32(0x3555) == 0x1.554p-2f, "1/3-ish");

    /* f32 -> f16 rounding, hand-picked: {f32 bits, expected half} */
    static const struct {
        uint32_t f;
        uint16_t h;
        const char *what;
    } r[] = {
        {0x3f800000u, 0x3c00, "1.0 exact"},
        /* 1 + 2^-11 is halfway between 1 and 1+2^-10: tie to even (1.0) */
        {0x3f801000u, 0x3c00, "tie down to even"},
        /* 1 + 3*2^-11 is halfway between 1+2^-10 (odd) and 1+2^-9 (even): up */
        {0x3f803000u, 0x3c02, "tie up to even"},
        {0x3f801001u, 0x3c01, "just above tie"},
        {0x3f800fffu, 0x3c00, "just below tie"},
        {0xbf801000u, 0xbc00, "negative tie to even"},
        {0xbf803000u, 0xbc02, "negative tie up"},
        /* mantissa carry into the exponent: 2 - 2^-11 (tie, odd) -> 2.0 */
        {0x3ffff000u, 0x4000, "carry into exponent"},
        {0x477fe000u, 0x7bff, "65504 max"},
        {0x477fefffu, 0x7bff, "just below 65520"},
        {0x477ff000u, 0x7c00, "65520 tie -> inf"},
        {0x47800000u, 0x7c00, "65536 -> inf"},
        {0x7f7fffffu, 0x7c00, "FLT_MAX -> inf"},
        {0x7f800000u, 0x7c00, "+inf"},
        {0xff800000u, 0xfc00, "-inf"},
        {0x00000000u, 0x0000, "+0"},
        {0x80000000u, 0x8000, "-0"},
        {0x38800000u, 0x0400, "2^-14 min normal"},
        /* largest subnormal + half an ulp: (0x3ff + 0.5) * 2^-24, tie, odd -> 0x400 */
        {0x387fe000u, 0x0400, "subnormal tie rounds up into normal"},
        {0x387fc000u, 0x03ff, "max subnormal exact"},
        {0x33800000u, 0x0001, "2^-24 min subnormal"},
        {0x33000000u, 0x0000, "2^-25 tie -> 0"},
        {0x33000001u, 0x0001, "just above 2^-25 -> min subnormal"},
        {0xb3000001u, 0x8001, "negative just above 2^-25"},
        {0x33c00000u, 0x0002, "1.5 * 2^-24 tie -> 2 (even)"},
        {0x34200000u, 0x0002, "2.5 * 2^-24 tie -> 2 (even)"},
        {0x34300000u, 0x0003, "2.75 * 2^-24 -> 3"},
        {0x32000000u, 0x0000, "2^-27 -> 0"},
        {0x00000001u, 0x0000, "f32 subnormal -> 0"},
        {0x80000001u, 0x8000, "negative f32 subnormal -> -0"},
        {0x3eaaaaabu, 0x3555, "1/3"},
        {0x7fc00000u, 0x7e00, "quiet NaN"},
        {0xffc00000u, 0xfe00, "negative quiet NaN"},
        {0x7f800001u, 0x7e00, "signalling NaN, low payload -> quiet NaN"},
    };
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++) {
        const uint16_t h = smoe_f32_to_f16(u2f(r[i].f));
        CHECK(h == r[i].h, "f32 0x%08x (%s) -> 0x%04x, want 0x%04x", r[i].f, r[i].what, h,
              r[i].h);
    }

    /* Random f32 values against a slow but obvious reference: pick the nearer of the
     * two neighbouring halves (by exact double arithmetic), ties to the even one. */
    unsigned long long rng = 42;
    int mism = 0;
    for (int i = 0; i < 200000; i++) {
        /* spread over the half range and around the subnormal boundary */
        const uint32_t u = (uint32_t)th_rng_next(&rng);
        const uint32_t e = 100u + (uint32_t)(th_rng_next(&rng) % 45u); /* 2^-27 .. 2^17 */
        const uint32_t bits = (u & 0x807fffffu) | (e << 23);
        const float f = u2f(bits);
        const double a = fabs((double)f);
        uint16_t best = 0x7c00;
        if (a < 65520.0) {
            /* halves are monotone in their bit pattern: bisect for the last <= a */
            uint16_t lo = 0, hi = 0x7bff;
            while (lo < hi) {
                const uint16_t mid = (uint16_t)((lo + hi + 1) / 2);
                if ((double)smoe_f16_to_f32(mid) <= a) lo = mid;
                else hi = (uint16_t)(mid - 1);
            }
            const double below = smoe_f16_to_f32(lo);
            const double above =
                lo == 0x7bff ? 65536.0 : (double)smoe_f16_to_f32((uint16_t)(lo + 1));
            if (a - below < above - a) best = lo;
            else if (a - below > above - a) best = (uint16_t)(lo + 1);
            else best = (lo & 1) ? (uint16_t)(lo + 1) : lo;
        }
        best |= (uint16_t)((bits >> 16) & 0x8000u);
        mism += smoe_f32_to_f16(f) != best;
    }
    CHECK(mism == 0, "%d random f32 -> f16 conversions differ from the reference", mism);
}

static void test_bf16(void) {
    static const struct {
        uint32_t f;
        uint16_t h;
        const char *what;
    } r[] = {
        {0x3f800000u, 0x3f80, "1.0"},
        {0x3f808000u, 0x3f80, "tie, even stays"},
        {0x3f818000u, 0x3f82, "tie, odd rounds up"},
        {0x3f808001u, 0x3f81, "just above tie"},
        {0x3f807fffu, 0x3f80, "just below tie"},
        {0xbf818000u, 0xbf82, "negative tie up"},
        {0x3fff8000u, 0x4000, "carry into exponent"},
        {0x7f7fffffu, 0x7f80, "FLT_MAX rounds to inf"},
        {0x7f7f7fffu, 0x7f7f, "below the overflow tie"},
        {0x7f800000u, 0x7f80, "+inf"},
        {0xff800000u, 0xff80, "-inf"},
        {0x00000000u, 0x0000, "+0"},
        {0x80000000u, 0x8000, "-0"},
        {0x00008000u, 0x0000, "subnormal tie to even 0"},
        {0x00018000u, 0x0002, "subnormal tie to even 2"},
        {0x7fc00000u, 0x7fc0, "quiet NaN"},
        {0x7f800001u, 0x7fc0, "signalling NaN with low payload stays NaN"},
        {0xff800001u, 0xffc0, "negative signalling NaN"},
        {0x7fffffffu, 0x7fff, "NaN with full payload"},
    };
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++) {
        const uint16_t h = smoe_f32_to_bf16(u2f(r[i].f));
        CHECK(h == r[i].h, "f32 0x%08x (%s) -> bf16 0x%04x, want 0x%04x", r[i].f, r[i].what,
              h, r[i].h);
    }
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        const float f = smoe_bf16_to_f32((uint16_t)h);
        bad += f2u(f) != h << 16;
        const int is_nan = (h & 0x7f80) == 0x7f80 && (h & 0x7f);
        if (!is_nan) bad += smoe_f32_to_bf16(f) != h;
        else bad += (smoe_f32_to_bf16(f) & 0x7fc0) != 0x7fc0;
    }
    CHECK(bad == 0, "%d bf16 patterns do not round-trip", bad);
}

/* Synthetic blocks whose values are known by construction, so that a layout mistake
 * shows which value is wrong even without fixtures. */
static void test_synthetic(void) {
    float out[256];

    /* Q8_0: d = 0.5, q = j - 16 */
    unsigned char q8[34];
    q8[0] = 0x00, q8[1] = 0x38; /* 0.5 */
    for (int j = 0; j < 32; j++) q8[2 + j] = (unsigned char)(int8_t)(j - 16);
    CHECK_OK(smoe_dequantize(SMOE_DTYPE_Q8_0, q8, out, 32));
    int bad = 0;
    for (int j = 0; j < 32; j++) bad += out[j] != 0.5f * (float)(j - 16);
    CHECK(bad == 0, "Q8_0 synthetic block: %d wrong", bad);

    /* Q4_0: d = 1, byte j = j (low nibble, value j) | (15 - j) << 4 (value j + 16) */
    unsigned char q4[18];
    q4[0] = 0x00, q4[1] = 0x3c;
    for (int j = 0; j < 16; j++) q4[2 + j] = (unsigned char)(j | ((15 - j) << 4));
    CHECK_OK(smoe_dequantize(SMOE_DTYPE_Q4_0, q4, out, 32));
    bad = 0;
    for (int j = 0; j < 16; j++) bad += out[j] != (float)(j - 8) || out[16 + j] != (float)(7 - j);
    CHECK(bad == 0, "Q4_0 synthetic block: %d wrong", bad);

    /* Q5_0: nibbles 0, fifth bit set for values 0, 3, 16, 31 only */
    unsigned char q5[22] = {0x00, 0x3c};
    const uint32_t qh = (1u << 0) | (1u << 3) | (1u << 16) | (1u << 31);
    for (int k = 0; k < 4; k++) q5[2 + k] = (unsigned char)(qh >> (8 * k));
    CHECK_OK(smoe_dequantize(SMOE_DTYPE_Q5_0, q5, out, 32));
    bad = 0;
    for (int j = 0; j < 32; j++) bad += out[j] != (((qh >> j) & 1) ? 0.0f : -16.0f);
    CHECK(bad == 0, "Q5_0 synthetic block: %d wrong", bad);

    /* F16/BF16/F32/I* rows */
    const unsigned char h16[4] = {0x00, 0x3c, 0x00, 0xc0}; /* 1, -2 */
    CHECK_OK(smoe_dequantize(SMOE_DTYPE_F16, h16, out, 2));
    CHECK(out[0] == 1.0f && out[1] == -2.0f, "F16 row");
    const unsigned char b16[4] = {0x80, 0x3f, 0x40, 0xc0}; /* 1, -3 */
    CHECK_OK(smoe_dequantize(SMOE_DTYPE_BF16, b16, out, 2));
    CHECK(out[0] == 1.0f && out[1] == -3.0f, "BF16 row");
    const unsigned char i16[4] = {0xff, 0xff, 0x00, 0x80}; /* -1, -32768 */
    CHECK_OK(smoe_dequantize(SMOE_DTYPE_I16, i16, out, 2));
    CHECK(out[0] == -1.0f && out[1] == -32768.0f, "I16 row");
    const unsigned char i32[8] = {0xfe, 0xff, 0xff, 0xff, 0x40, 0x42, 0x0f, 0x00};
    CHECK_OK(smoe_dequantize(SMOE_DTYPE_I32, i32, out, 2));
    CHECK(out[0] == -2.0f && out[1] == 1000000.0f, "I32 row");
    const unsigned char i64[8] = {0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    CHECK_OK(smoe_dequantize(SMOE_DTYPE_I64, i64, out, 1));
    CHECK(out[0] == -3.0f, "I64 row");
    const signed char i8[2] = {-128, 127};
    CHECK_OK(smoe_dequantize(SMOE_DTYPE_I8, i8, out, 2));
    CHECK(out[0] == -128.0f && out[1] == 127.0f, "I8 row");
    const double dv[2] = {0.1, -1e300};
    CHECK_OK(smoe_dequantize(SMOE_DTYPE_F64, dv, out, 2));
    CHECK(out[0] == 0.1f && out[1] == -INFINITY, "F64 row");
    const float fv[3] = {1.5f, -0.0f, 3.25f};
    unsigned char fodd[13];
    memcpy(fodd + 1, fv, sizeof fv);
    CHECK_OK(smoe_dequantize(SMOE_DTYPE_F32, fodd + 1, out, 3));
    CHECK(memcmp(out, fv, sizeof fv) == 0, "F32 row from an odd address");

    /* Q8_K: d = 0.25 as f32, q = j - 128 */
    static unsigned char q8k[292];
    const float dk = 0.25f;
    memcpy(q8k, &dk, 4);
    for (int j = 0; j < 256; j++) q8k[4 + j] = (unsigned char)(int8_t)(j - 128);
    CHECK_OK(smoe_dequantize(SMOE_DTYPE_Q8_K, q8k, out, 256));
    bad = 0;
    for (int j = 0; j < 256; j++) bad += out[j] != 0.25f * (float)(j - 128);
    CHECK(bad == 0, "Q8_K synthetic block: %d wrong", bad);
}

int main(void) {
    test_traits();
    test_f16();
    test_bf16();
    test_synthetic();
    test_fixtures();
    return TEST_REPORT();
}
