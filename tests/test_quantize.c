/*
 * test_quantize.c - the quantizers and `smoe_model_quantize` against llama.cpp.
 *
 *   - every weight type: round trip of random rows (several magnitudes, offsets,
 *     outliers, magnitudes changing from block to block) within an RMSE bound per bit
 *     width; rows the type can represent exactly come back exactly; zero rows give
 *     zeros; NaN/Inf inputs give finite blocks;
 *   - the bar: for every quantized tensor of every llama.cpp fixture file
 *     (mixtral-tiny-<TYPE>.gguf), the RMSE of our quantization of the F32 original to
 *     that tensor's type is at most 1.05 x the RMSE of llama.cpp's tensor; the legacy
 *     types are also compared byte for byte;
 *   - smoe_model_quantize on the F32 fixture for each mix: every tensor's type equals
 *     llama-quantize's, the file loads and its logits are finite and close to the F32
 *     model's; F16/BF16 files hold exactly the rounded values;
 *   - the per-tensor rules on synthetic 32-layer 8-expert (Mixtral 8x7B layout) and
 *     8-layer dense models, tied embeddings and rows that fit no K-quant;
 *   - hostile input: unknown type names, missing input, missing output directory, a
 *     file that is not GGUF.
 *
 * The quantized fixture files are llama.cpp's own output (see tests/data/README.md);
 * all temporary files go to $TMPDIR (or /tmp) with the pid in the name.
 */
#include "smoe.h"
#include "quant/quant.h"
#include "quant/quantize.h"
#include "testhelp.h"

#include <stdint.h>
#include <unistd.h>

#define V 1024

static const int ROW_TYPES[] = {
    SMOE_DTYPE_F32,  SMOE_DTYPE_F16,  SMOE_DTYPE_BF16, SMOE_DTYPE_Q8_0, SMOE_DTYPE_Q4_0,
    SMOE_DTYPE_Q4_1, SMOE_DTYPE_Q5_0, SMOE_DTYPE_Q5_1, SMOE_DTYPE_Q2_K, SMOE_DTYPE_Q3_K,
    SMOE_DTYPE_Q4_K, SMOE_DTYPE_Q5_K, SMOE_DTYPE_Q6_K,
};
#define N_ROW_TYPES (int)(sizeof ROW_TYPES / sizeof *ROW_TYPES)

static unsigned long long g_rng = 0x5eed0123456789abull;

static float gauss(void) {
    /* Box-Muller on two uniforms in (0, 1] */
    double u1 = ((th_rng_next(&g_rng) >> 11) + 1) * (1.0 / 9007199254740992.0);
    double u2 = (th_rng_next(&g_rng) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

static int irand(int lo, int hi) { return lo + (int)(th_rng_next(&g_rng) % (unsigned long long)(hi - lo + 1)); }

static size_t qbytes(int dtype, int64_t n) {
    return (size_t)(n / smoe_dtype_block_size(dtype)) * smoe_dtype_block_bytes(dtype);
}

/* quantize -> dequantize of n values; returns a malloc'd buffer */
static float *round_trip(int dtype, const float *x, int64_t n) {
    void *q = malloc(qbytes(dtype, n));
    float *y = malloc(sizeof(float) * (size_t)n);
    smoe_quantizer_get(dtype)(x, q, n);
    smoe_status st = smoe_dequantize(dtype, q, y, n);
    CHECK(st == SMOE_OK, "dequantize %s: %s", smoe_dtype_name(dtype), smoe_last_error());
    free(q);
    return y;
}

static double rmse(const float *a, const float *b, int64_t n) {
    double e = 0;
    for (int64_t i = 0; i < n; i++) e += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return sqrt(e / (double)n);
}

static double rms(const float *a, int64_t n) {
    double e = 0;
    for (int64_t i = 0; i < n; i++) e += (double)a[i] * a[i];
    return sqrt(e / (double)n);
}

/* ------------------------------------------------------------------ random rows */

/* Worst relative RMSE (error rms / value rms over each 256-value stretch) allowed per
 * type: about 1.3x what the quantizers reach on these rows (the block holding a 30x
 * outlier is the worst case for every type), so a regression in the search shows. The
 * symmetric legacy types lose most there: their scale is fixed by the largest value. */
static double row_bound(int dtype) {
    switch (dtype) {
    case SMOE_DTYPE_F32: return 0;
    case SMOE_DTYPE_F16: return 4.5e-4;
    case SMOE_DTYPE_BF16: return 3.2e-3;
    case SMOE_DTYPE_Q8_0: return 0.016;
    case SMOE_DTYPE_Q6_K: return 0.048;
    case SMOE_DTYPE_Q5_1: case SMOE_DTYPE_Q5_K: return 0.08;
    case SMOE_DTYPE_Q5_0: return 0.13;
    case SMOE_DTYPE_Q4_1: case SMOE_DTYPE_Q4_K: return 0.17;
    case SMOE_DTYPE_Q4_0: return 0.23;
    case SMOE_DTYPE_Q3_K: return 0.28;
    case SMOE_DTYPE_Q2_K: return 0.38;
    default: return 0;
    }
}

enum { ROW_N = 4096, N_CASES = 5 };
static const char *const CASE_NAMES[N_CASES] = {"gauss 0.02", "gauss 300", "outliers", "offset", "mixed scales"};

static void make_case(int c, float *x) {
    for (int i = 0; i < ROW_N; i++) {
        switch (c) {
        case 0: x[i] = 0.02f * gauss(); break;
        case 1: x[i] = 300.0f * gauss(); break;
        case 2: x[i] = (th_rng_next(&g_rng) % 100 == 0 ? 30.0f : 1.0f) * gauss(); break;
        case 3: x[i] = 2.0f + 0.1f * gauss(); break;
        default: break;
        }
    }
    if (c == 4) /* every 256 values another magnitude, 1e-2 .. 1e2 */
        for (int b = 0; b < ROW_N / 256; b++) {
            const float s = powf(10.0f, (float)irand(-2, 2));
            for (int i = 0; i < 256; i++) x[b * 256 + i] = s * gauss();
        }
}

static void test_random_rows(void) {
    float *x = malloc(sizeof(float) * ROW_N);
    printf("random rows: worst relative RMSE per 256 values (bound)\n");
    for (int t = 0; t < N_ROW_TYPES; t++) {
        const int dt = ROW_TYPES[t];
        CHECK(smoe_quantizer_get(dt) != NULL, "no quantizer for %s", smoe_dtype_name(dt));
        if (!smoe_quantizer_get(dt)) continue;
        double worst = 0;
        int worst_case = 0;
        for (int c = 0; c < N_CASES; c++) {
            make_case(c, x);
            float *y = round_trip(dt, x, ROW_N);
            for (int b = 0; b < ROW_N / 256; b++) {
                const double r = rmse(x + b * 256, y + b * 256, 256) / rms(x + b * 256, 256);
                if (!(r <= worst)) worst = r, worst_case = c;
            }
            free(y);
        }
        printf("  %-5s %.5f (%.5f)  worst case: %s\n", smoe_dtype_name(dt), worst, row_bound(dt), CASE_NAMES[worst_case]);
        CHECK(worst <= row_bound(dt), "%s: relative RMSE %.5f > %.5f (%s)", smoe_dtype_name(dt), worst,
              row_bound(dt), CASE_NAMES[worst_case]);
    }
    /* the sub-block of largest magnitude decides the super-scale: a single huge value
     * in a block must not wipe out the rest of the row (rest keeps its own blocks) */
    free(x);
}

/* ------------------------------------------------------------------ exact rows */

/* A positive scale with a 4-bit mantissa (exact in fp16, and products with small
 * integers stay exact in f32), 2^lo .. 2^hi. */
static float few_bits(int lo, int hi) { return ldexpf((float)irand(8, 15) / 8.0f, irand(lo, hi)); }

/* Values the type can represent exactly, built with the decoder's float operations.
 * Every block uses its extreme levels, so the scale the quantizer derives from the data
 * is the one used to build it, and every K sub-block also holds a level 1, so that no
 * other (coarser) scale represents it exactly as well: a sub-block holding only the
 * levels 0 and 3 is also exact on the levels 0 and 2 of a scale 3/2 larger. */
static void make_exact(int dt, float *x, int n) {
    const int sub = dt == SMOE_DTYPE_Q4_K || dt == SMOE_DTYPE_Q5_K ? 32 : 16; /* K sub-block */
    switch (dt) {
    case SMOE_DTYPE_F32: for (int i = 0; i < n; i++) x[i] = gauss(); break;
    case SMOE_DTYPE_F16: for (int i = 0; i < n; i++) x[i] = smoe_f16_to_f32(smoe_f32_to_f16(gauss())); break;
    case SMOE_DTYPE_BF16: for (int i = 0; i < n; i++) x[i] = smoe_bf16_to_f32(smoe_f32_to_bf16(gauss())); break;
    case SMOE_DTYPE_Q8_0: case SMOE_DTYPE_Q4_0: case SMOE_DTYPE_Q5_0: {
        const int lo = dt == SMOE_DTYPE_Q8_0 ? -127 : dt == SMOE_DTYPE_Q4_0 ? -8 : -16;
        const int hi = dt == SMOE_DTYPE_Q8_0 ? 127 : -lo - 1;
        for (int b = 0; b < n / 32; b++) {
            const float d = few_bits(-10, 0) * (irand(0, 1) ? 1.0f : -1.0f);
            const int ext = irand(0, 31);
            for (int i = 0; i < 32; i++) {
                const int q = i == ext ? lo : irand(lo == -127 ? -127 : lo + 1, hi);
                x[b * 32 + i] = (float)q * d;
            }
        }
        break;
    }
    case SMOE_DTYPE_Q4_1: case SMOE_DTYPE_Q5_1: {
        const int qmax = dt == SMOE_DTYPE_Q4_1 ? 15 : 31;
        for (int b = 0; b < n / 32; b++) {
            const float d = few_bits(-10, 0);
            const float m = -(float)irand(0, 64) * d / 8.0f;
            const int e0 = irand(0, 15), e1 = irand(16, 31);
            for (int i = 0; i < 32; i++) {
                const int q = i == e0 ? 0 : i == e1 ? qmax : irand(0, qmax);
                x[b * 32 + i] = (float)q * d + m;
            }
        }
        break;
    }
    case SMOE_DTYPE_Q2_K: case SMOE_DTYPE_Q4_K: case SMOE_DTYPE_Q5_K: {
        const int qmax = dt == SMOE_DTYPE_Q2_K ? 3 : dt == SMOE_DTYPE_Q4_K ? 15 : 31;
        const int scmax = dt == SMOE_DTYPE_Q2_K ? 15 : 63;
        const int nsub = 256 / sub;
        for (int b = 0; b < n / 256; b++) {
            const float d = few_bits(-12, -4), dmin = few_bits(-12, -4);
            const int jmax_sc = irand(0, nsub - 1), jmax_m = irand(0, nsub - 1);
            for (int j = 0; j < nsub; j++) {
                const int sc = j == jmax_sc ? scmax : irand(1, scmax);
                const int m = j == jmax_m ? scmax : irand(0, scmax);
                const int e0 = irand(0, sub / 2 - 2), e1 = irand(sub / 2, sub - 1);
                for (int i = 0; i < sub; i++) {
                    const int q = i == e0 ? 0 : i == e0 + 1 ? 1 : i == e1 ? qmax : irand(0, qmax);
                    x[b * 256 + j * sub + i] = (d * (float)sc) * (float)q - dmin * (float)m;
                }
            }
        }
        break;
    }
    case SMOE_DTYPE_Q3_K: case SMOE_DTYPE_Q6_K: {
        const int nmax = dt == SMOE_DTYPE_Q3_K ? 4 : 32, scn = dt == SMOE_DTYPE_Q3_K ? 32 : 128;
        for (int b = 0; b < n / 256; b++) {
            const float d = few_bits(-12, -4);
            const int jmax = irand(0, 15);
            for (int j = 0; j < 16; j++) {
                int sc = j == jmax ? -scn : irand(-scn + 1, scn - 1);
                if (sc == 0) sc = 1;
                const int ext = irand(0, 14);
                for (int i = 0; i < 16; i++) {
                    const int q = i == ext ? -nmax : i == ext + 1 ? 1 : irand(-nmax + 1, nmax - 1);
                    x[b * 256 + j * 16 + i] = (d * (float)sc) * (float)q;
                }
            }
        }
        break;
    }
    default: break;
    }
}

static void test_exact_and_zero(void) {
    enum { N = 2048 };
    float *x = malloc(sizeof(float) * N);
    for (int t = 0; t < N_ROW_TYPES; t++) {
        const int dt = ROW_TYPES[t];
        if (!smoe_quantizer_get(dt)) continue;
        for (int rep = 0; rep < 4; rep++) {
            make_exact(dt, x, N);
            float *y = round_trip(dt, x, N);
            int bad = -1;
            for (int i = 0; i < N && bad < 0; i++)
                if (!(y[i] == x[i])) bad = i;
            CHECK(bad < 0, "%s: representable row not reproduced: [%d] %.9g -> %.9g", smoe_dtype_name(dt), bad,
                  bad >= 0 ? x[bad] : 0.0, bad >= 0 ? y[bad] : 0.0);
            free(y);
        }
        /* zeros stay zeros; NaN and infinities give finite values (no UB on the way:
         * the sanitizer build checks the float -> int conversions) */
        memset(x, 0, sizeof(float) * N);
        float *y = round_trip(dt, x, N);
        int nz = 0;
        for (int i = 0; i < N; i++) nz += y[i] != 0.0f;
        CHECK(nz == 0, "%s: zero row gave %d non-zero values", smoe_dtype_name(dt), nz);
        free(y);
        if (dt != SMOE_DTYPE_F32 && dt != SMOE_DTYPE_F16 && dt != SMOE_DTYPE_BF16) {
            for (int i = 0; i < N; i++) x[i] = gauss();
            x[3] = NAN, x[700] = INFINITY, x[1500] = -INFINITY, x[1501] = 1e38f;
            y = round_trip(dt, x, N);
            int nf = 0;
            for (int i = 0; i < N; i++) nf += !isfinite(y[i]);
            CHECK(nf == 0, "%s: %d non-finite values out of NaN/Inf input", smoe_dtype_name(dt), nf);
            free(y);
            /* magnitudes at the edges of the float range: subnormal values, and values
             * whose scales overflow fp16; finite output, sign kept where it survives */
            const float mags[3] = {1e-42f, 1e-30f, 1e30f};
            for (int k = 0; k < 3; k++) {
                for (int i = 0; i < N; i++) x[i] = mags[k] * gauss();
                y = round_trip(dt, x, N);
                int nf2 = 0, flips = 0;
                for (int i = 0; i < N; i++) nf2 += !isfinite(y[i]), flips += (y[i] > 0 && x[i] < 0) || (y[i] < 0 && x[i] > 0);
                CHECK(nf2 == 0 && flips < N / 8, "%s: magnitude %g: %d non-finite, %d sign flips", smoe_dtype_name(dt),
                      (double)mags[k], nf2, flips);
                free(y);
            }
        }
    }
    free(x);
}

/* ------------------------------------------------------------------ against llama.cpp */

static const char *const MIXES[] = {"Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K_M", "Q4_K_M", "Q5_K_M", "Q6_K"};
#define N_MIXES (int)(sizeof MIXES / sizeof *MIXES)

static char g_tmpdir[512];

static void tmp_path(char *buf, size_t cap, const char *tag) {
    snprintf(buf, cap, "%s/smoe-test-quantize-%ld-%s.gguf", g_tmpdir, (long)getpid(), tag);
}

static int load_ids(int32_t *ids, int cap) {
    char *txt = th_read_file(th_data("model/ids-n8.json"), NULL);
    if (!txt) return 0;
    int tmp[64];
    int n = th_parse_ints(txt, tmp, cap < 64 ? cap : 64);
    for (int i = 0; i < n; i++) ids[i] = tmp[i];
    free(txt);
    return n;
}

/* Logits of all positions of ids through the model at path (NULL on failure). */
static float *model_logits(const char *path, const int32_t *ids, int n) {
    smoe_model *m = NULL;
    smoe_ctx *c = NULL;
    float *lg = NULL;
    smoe_status st = smoe_model_load(path, NULL, &m);
    CHECK(st == SMOE_OK, "load %s: %s", path, smoe_last_error());
    if (st) return NULL;
    smoe_ctx_params cp = smoe_ctx_default_params();
    cp.n_ctx = 64;
    cp.n_threads = 2;
    st = smoe_ctx_init(m, &cp, &c);
    CHECK(st == SMOE_OK, "ctx %s: %s", path, smoe_last_error());
    if (!st) {
        lg = malloc(sizeof(float) * (size_t)n * V);
        st = smoe_ctx_decode(c, ids, n, lg, true);
        CHECK(st == SMOE_OK, "decode %s: %s", path, smoe_last_error());
        if (st) free(lg), lg = NULL;
    }
    smoe_ctx_free(c);
    smoe_model_free(m);
    return lg;
}

typedef struct dtype_stat {
    double worst;
    int n;
} dtype_stat;

static void test_against_llama(void) {
    smoe_gguf *f32 = NULL;
    CHECK_OK(smoe_gguf_open(th_data("model/mixtral-tiny-F32.gguf"), &f32));
    if (!f32) return;
    int32_t ids[8];
    const int n_ids = load_ids(ids, 8);
    CHECK(n_ids == 8, "ids-n8.json");
    float *ref_logits = th_read_file(th_data("model/logits-F32-n8.f32"), NULL);
    CHECK(ref_logits != NULL, "logits-F32-n8.f32");
    dtype_stat by_type[SMOE_DTYPE_COUNT] = {{0, 0}};

    printf("against llama.cpp (ratio = RMSE ours / RMSE llama.cpp per tensor; logits: RMSE vs the F32 model)\n");
    printf("  %-7s %-14s %-10s %-10s %-16s %s\n", "mix", "worst ratio", "mean", "identical", "types match", "logits ours / llama.cpp");
    for (int f = 0; f < N_MIXES; f++) {
        char rel[128], out[600];
        snprintf(rel, sizeof rel, "model/mixtral-tiny-%s.gguf", MIXES[f]);
        tmp_path(out, sizeof out, MIXES[f]);
        smoe_ftype ft;
        CHECK_OK(smoe_ftype_from_name(MIXES[f], &ft));
        CHECK_OK(smoe_model_quantize(th_data("model/mixtral-tiny-F32.gguf"), out, ft, 2, NULL, NULL));
        smoe_gguf *ll = NULL, *ours = NULL;
        CHECK_OK(smoe_gguf_open(th_data(rel), &ll));
        CHECK_OK(smoe_gguf_open(out, &ours));
        if (!ll || !ours) {
            smoe_gguf_free(ll), smoe_gguf_free(ours);
            continue;
        }
        CHECK(smoe_gguf_n_tensors(ours) == smoe_gguf_n_tensors(ll), "%s: tensor count", MIXES[f]);
        uint32_t ftv = 0, qv = 0;
        CHECK(smoe_gguf_get_u32(ours, "general.file_type", &ftv) == SMOE_OK && ftv == (uint32_t)ft,
              "%s: general.file_type %u", MIXES[f], ftv);
        uint32_t llftv = 0;
        CHECK(smoe_gguf_get_u32(ll, "general.file_type", &llftv) == SMOE_OK && llftv == ftv,
              "%s: general.file_type %u, llama.cpp %u", MIXES[f], ftv, llftv);
        CHECK(smoe_gguf_get_u32(ours, "general.quantization_version", &qv) == SMOE_OK && qv == 2,
              "%s: general.quantization_version", MIXES[f]);
        CHECK(smoe_gguf_n_kv(ours) == smoe_gguf_n_kv(ll), "%s: %lld keys, llama.cpp %lld", MIXES[f],
              (long long)smoe_gguf_n_kv(ours), (long long)smoe_gguf_n_kv(ll));

        double worst = 0, sum = 0;
        const char *worst_name = "";
        int n_q = 0, n_ident = 0, n_same_type = 0, n_legacy = 0, n_legacy_ident = 0;
        for (int64_t i = 0; i < smoe_gguf_n_tensors(ll); i++) {
            const char *name = smoe_gguf_tensor_name(ll, i);
            const int lt = smoe_gguf_tensor_dtype(ll, i);
            const int64_t io = smoe_gguf_find_tensor(ours, name), i32 = smoe_gguf_find_tensor(f32, name);
            CHECK(io >= 0 && i32 >= 0, "%s: tensor %s missing", MIXES[f], name);
            if (io < 0 || i32 < 0) continue;
            const int ot = smoe_gguf_tensor_dtype(ours, io);
            CHECK(ot == lt, "%s: %s is %s, llama.cpp chose %s", MIXES[f], name, smoe_dtype_name(ot), smoe_dtype_name(lt));
            n_same_type += ot == lt;
            if (lt == SMOE_DTYPE_F32) continue;
            const int64_t n = (int64_t)(smoe_gguf_tensor_nbytes(f32, i32) / sizeof(float));
            const float *x = smoe_gguf_tensor_data(f32, i32);
            float *yl = malloc(sizeof(float) * (size_t)n), *yo = NULL;
            CHECK_OK(smoe_dequantize(lt, smoe_gguf_tensor_data(ll, i), yl, n));
            const size_t nb = smoe_gguf_tensor_nbytes(ll, i);
            bool ident = false;
            if (ot == lt) { /* our converter's tensor */
                yo = malloc(sizeof(float) * (size_t)n);
                CHECK_OK(smoe_dequantize(ot, smoe_gguf_tensor_data(ours, io), yo, n));
                ident = memcmp(smoe_gguf_tensor_data(ours, io), smoe_gguf_tensor_data(ll, i), nb) == 0;
            } else { /* the types differ (already a failure): still measure the quantizer */
                yo = round_trip(lt, x, n);
            }
            const double el = rmse(x, yl, n), eo = rmse(x, yo, n);
            const double r = el > 0 ? eo / el : (eo > 0 ? INFINITY : 1.0);
            CHECK(r <= 1.05, "%s: %s (%s): RMSE %.6g vs llama.cpp %.6g (ratio %.4f)", MIXES[f], name,
                  smoe_dtype_name(lt), eo, el, r);
            if (!(r <= worst)) worst = r, worst_name = name;
            sum += r;
            n_q++;
            n_ident += ident;
            if (smoe_dtype_block_size(lt) == 32) n_legacy++, n_legacy_ident += ident;
            if (!(r <= by_type[lt].worst)) by_type[lt].worst = r;
            by_type[lt].n++;
            free(yl);
            free(yo);
        }
        /* the legacy types follow llama.cpp's rule exactly: same bytes */
        CHECK(n_legacy_ident == n_legacy, "%s: %d of %d Q4_0..Q8_0 tensors differ from llama.cpp's bytes", MIXES[f],
              n_legacy - n_legacy_ident, n_legacy);

        /* the file is a working model: logits finite and as close to the F32 model's as
         * those of llama.cpp's file (both run through smoe) */
        float *lo = model_logits(out, ids, n_ids), *ll_lg = model_logits(th_data(rel), ids, n_ids);
        double eo = -1, el = -1;
        if (lo && ll_lg && ref_logits) {
            int nf = 0;
            for (int i = 0; i < n_ids * V; i++) nf += !isfinite(lo[i]);
            CHECK(nf == 0, "%s: %d non-finite logits", MIXES[f], nf);
            eo = rmse(lo, ref_logits, (int64_t)n_ids * V);
            el = rmse(ll_lg, ref_logits, (int64_t)n_ids * V);
            CHECK(eo <= 1.25 * el + 1e-4, "%s: logits RMSE vs F32 %.5f, llama.cpp's file %.5f", MIXES[f], eo, el);
        }
        free(lo);
        free(ll_lg);
        char ts[32], id[32];
        snprintf(ts, sizeof ts, "%d/%lld", n_same_type, (long long)smoe_gguf_n_tensors(ll));
        snprintf(id, sizeof id, "%d/%d", n_ident, n_q);
        printf("  %-7s %-14.4f %-10.4f %-10s %-16s %.5f / %.5f   (worst: %s)\n", MIXES[f], worst,
               n_q ? sum / n_q : 0.0, id, ts, eo, el, worst_name);
        smoe_gguf_free(ll);
        smoe_gguf_free(ours);
        unlink(out);
    }
    printf("  per weight type: worst ratio over all files\n");
    for (int t = 0; t < SMOE_DTYPE_COUNT; t++)
        if (by_type[t].n) printf("    %-5s %.4f (%d tensors)\n", smoe_dtype_name(t), by_type[t].worst, by_type[t].n);
    free(ref_logits);
    smoe_gguf_free(f32);
}

/* F16/BF16 mixes: every quantizable weight holds exactly the rounded f32 value. */
static void test_float_mixes(void) {
    smoe_gguf *f32 = NULL;
    CHECK_OK(smoe_gguf_open(th_data("model/mixtral-tiny-F32.gguf"), &f32));
    if (!f32) return;
    const smoe_ftype fts[2] = {SMOE_FTYPE_F16, SMOE_FTYPE_BF16};
    for (int k = 0; k < 2; k++) {
        const int want = k == 0 ? SMOE_DTYPE_F16 : SMOE_DTYPE_BF16;
        char out[600];
        tmp_path(out, sizeof out, smoe_ftype_name(fts[k]));
        CHECK_OK(smoe_model_quantize(th_data("model/mixtral-tiny-F32.gguf"), out, fts[k], 1, NULL, NULL));
        smoe_gguf *g = NULL;
        CHECK_OK(smoe_gguf_open(out, &g));
        if (!g) continue;
        int bad_type = 0, bad_val = 0;
        for (int64_t i = 0; i < smoe_gguf_n_tensors(g); i++) {
            const char *name = smoe_gguf_tensor_name(g, i);
            const int64_t j = smoe_gguf_find_tensor(f32, name);
            const bool keep = smoe_gguf_tensor_ndim(g, i) < 2 || strstr(name, "ffn_gate_inp");
            const int dt = smoe_gguf_tensor_dtype(g, i);
            bad_type += dt != (keep ? SMOE_DTYPE_F32 : want);
            if (keep || dt != want || j < 0) continue;
            const int64_t n = (int64_t)(smoe_gguf_tensor_nbytes(f32, j) / 4);
            const float *x = smoe_gguf_tensor_data(f32, j);
            const uint16_t *h = smoe_gguf_tensor_data(g, i);
            for (int64_t e = 0; e < n; e++) bad_val += h[e] != (k == 0 ? smoe_f32_to_f16(x[e]) : smoe_f32_to_bf16(x[e]));
        }
        CHECK(bad_type == 0 && bad_val == 0, "%s: %d tensors of the wrong type, %d wrong values",
              smoe_ftype_name(fts[k]), bad_type, bad_val);
        smoe_gguf_free(g);
        unlink(out);
    }
    smoe_gguf_free(f32);
}

/* ------------------------------------------------------------------ rules on synthetic models */

/* A model with the tensor names and ranks of a llama/Mixtral GGUF but tiny matrices (two
 * rows; one row per expert, the third dimension keeps them 3-D), enough for the type
 * rules, which look at names, ranks and row lengths only. */
static void write_synthetic(const char *path, int n_layer, int n_expert, bool with_output, bool odd_rows) {
    smoe_gguf_writer *w = NULL;
    CHECK_OK(smoe_gguf_writer_init(&w));
    if (!w) return;
    smoe_gguf_writer_set_str(w, "general.architecture", "llama");
    smoe_gguf_writer_set_u32(w, "llama.block_count", (uint32_t)n_layer);
    smoe_gguf_writer_set_u32(w, "llama.attention.head_count", 32);
    smoe_gguf_writer_set_u32(w, "llama.attention.head_count_kv", 8);
    if (n_expert) smoe_gguf_writer_set_u32(w, "llama.expert_count", (uint32_t)n_expert);
    const int E = n_expert ? n_expert : 1;
    static float data[256 * 2 * 8];
    for (int i = 0; i < 256 * 2 * 8; i++) data[i] = gauss();
    const int64_t vec[1] = {256}, mat[2] = {256, 2}, exps[3] = {256, 1, E};
    smoe_gguf_writer_add_tensor(w, "token_embd.weight", SMOE_DTYPE_F32, 2, mat, data, sizeof(float) * 512);
    if (with_output) smoe_gguf_writer_add_tensor(w, "output.weight", SMOE_DTYPE_F32, 2, mat, data, sizeof(float) * 512);
    smoe_gguf_writer_add_tensor(w, "output_norm.weight", SMOE_DTYPE_F32, 1, vec, data, sizeof(float) * 256);
    /* added in reverse layer order: the converter must sort them itself */
    for (int il = n_layer - 1; il >= 0; il--) {
        char nm[96];
        const char *mats[] = {"attn_q", "attn_k", "attn_v", "attn_output"};
        for (int k = 0; k < 4; k++) {
            snprintf(nm, sizeof nm, "blk.%d.%s.weight", il, mats[k]);
            smoe_gguf_writer_add_tensor(w, nm, SMOE_DTYPE_F32, 2, mat, data, sizeof(float) * 512);
        }
        snprintf(nm, sizeof nm, "blk.%d.attn_norm.weight", il);
        smoe_gguf_writer_add_tensor(w, nm, SMOE_DTYPE_F32, 1, vec, data, sizeof(float) * 256);
        const char *ffn[] = {"gate", "up", "down"};
        for (int k = 0; k < 3; k++) {
            if (n_expert) {
                snprintf(nm, sizeof nm, "blk.%d.ffn_%s_exps.weight", il, ffn[k]);
                smoe_gguf_writer_add_tensor(w, nm, SMOE_DTYPE_F32, n_expert ? 3 : 2, exps, data, sizeof(float) * 256 * (size_t)E);
            } else {
                snprintf(nm, sizeof nm, "blk.%d.ffn_%s.weight", il, ffn[k]);
                smoe_gguf_writer_add_tensor(w, nm, SMOE_DTYPE_F32, 2, mat, data, sizeof(float) * 512);
            }
        }
        if (n_expert) {
            const int64_t gi[2] = {256, n_expert};
            snprintf(nm, sizeof nm, "blk.%d.ffn_gate_inp.weight", il);
            smoe_gguf_writer_add_tensor(w, nm, SMOE_DTYPE_F32, 2, gi, data, sizeof(float) * 256 * (size_t)n_expert);
        }
    }
    if (odd_rows) { /* rows that fit no K-quant (96: the 32-value fallback) or nothing (40: F16) */
        const int64_t r96[2] = {96, 4}, r40[2] = {40, 4};
        smoe_gguf_writer_add_tensor(w, "extra96.weight", SMOE_DTYPE_F32, 2, r96, data, sizeof(float) * 384);
        smoe_gguf_writer_add_tensor(w, "extra40.weight", SMOE_DTYPE_F32, 2, r40, data, sizeof(float) * 160);
    }
    CHECK_OK(smoe_gguf_writer_write(w, path));
    smoe_gguf_writer_free(w);
}

static bool more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

/* Expected type of a tensor under a mix, written out from llama.cpp's rules for the two
 * model shapes used here (8 experts / dense with n_gqa = 4; llama arch). */
static int expected_type(smoe_ftype ft, const char *name, int n_layer, bool moe, bool tied) {
    int il = -1;
    sscanf(name, "blk.%d.", &il);
    const int def = ft == SMOE_FTYPE_Q2_K ? SMOE_DTYPE_Q2_K
                  : ft == SMOE_FTYPE_Q3_K_M || ft == SMOE_FTYPE_Q3_K_S || ft == SMOE_FTYPE_Q3_K_L ? SMOE_DTYPE_Q3_K
                  : ft == SMOE_FTYPE_Q4_K_M || ft == SMOE_FTYPE_Q4_K_S ? SMOE_DTYPE_Q4_K
                  : ft == SMOE_FTYPE_Q5_K_M || ft == SMOE_FTYPE_Q5_K_S ? SMOE_DTYPE_Q5_K
                  : ft == SMOE_FTYPE_Q6_K ? SMOE_DTYPE_Q6_K : SMOE_DTYPE_Q4_0;
    if (strstr(name, "norm") || strstr(name, "gate_inp")) return SMOE_DTYPE_F32;
    if (!strcmp(name, "extra96.weight")) return def == SMOE_DTYPE_Q4_K ? SMOE_DTYPE_Q5_0
                                               : def == SMOE_DTYPE_Q5_K ? SMOE_DTYPE_Q5_1
                                               : def == SMOE_DTYPE_Q6_K ? SMOE_DTYPE_Q8_0 : SMOE_DTYPE_Q4_0;
    if (!strcmp(name, "extra40.weight")) return SMOE_DTYPE_F16;
    if (!strcmp(name, "output.weight") || (tied && !strcmp(name, "token_embd.weight"))) return SMOE_DTYPE_Q6_K;
    if (!strcmp(name, "token_embd.weight")) return def;
    const bool mb = more_bits(il, n_layer);
    if (strstr(name, "attn_v") || strstr(name, "attn_k")) {
        if (moe) return SMOE_DTYPE_Q8_0;
        if (strstr(name, "attn_k")) return def;
        switch (ft) {
        case SMOE_FTYPE_Q2_K: return SMOE_DTYPE_Q4_K; /* n_gqa >= 4 */
        case SMOE_FTYPE_Q3_K_M: return il < 2 ? SMOE_DTYPE_Q5_K : SMOE_DTYPE_Q4_K;
        case SMOE_FTYPE_Q3_K_L: return SMOE_DTYPE_Q5_K;
        case SMOE_FTYPE_Q4_K_M: case SMOE_FTYPE_Q5_K_M: return mb ? SMOE_DTYPE_Q6_K : def;
        case SMOE_FTYPE_Q4_K_S: return il < 4 ? SMOE_DTYPE_Q5_K : def;
        default: return def;
        }
    }
    if (strstr(name, "attn_output")) {
        if (moe) return ft == SMOE_FTYPE_Q2_K || ft == SMOE_FTYPE_Q3_K_S || ft == SMOE_FTYPE_Q3_K_M ||
                                ft == SMOE_FTYPE_Q4_K_S || ft == SMOE_FTYPE_Q4_K_M
                            ? SMOE_DTYPE_Q5_K : def;
        return ft == SMOE_FTYPE_Q2_K ? SMOE_DTYPE_Q3_K : ft == SMOE_FTYPE_Q3_K_M ? SMOE_DTYPE_Q4_K
             : ft == SMOE_FTYPE_Q3_K_L ? SMOE_DTYPE_Q5_K : def;
    }
    if (strstr(name, "ffn_down")) {
        switch (ft) {
        case SMOE_FTYPE_Q2_K: return SMOE_DTYPE_Q3_K;
        case SMOE_FTYPE_Q3_K_M: return il < n_layer / 16 ? SMOE_DTYPE_Q5_K : SMOE_DTYPE_Q4_K;
        case SMOE_FTYPE_Q3_K_L: return SMOE_DTYPE_Q5_K;
        case SMOE_FTYPE_Q4_K_M: case SMOE_FTYPE_Q5_K_M: return mb ? SMOE_DTYPE_Q6_K : def;
        case SMOE_FTYPE_Q4_K_S: return il < n_layer / 8 ? SMOE_DTYPE_Q5_K : def;
        default: return def;
        }
    }
    return def;
}

static void test_rules(void) {
    const smoe_ftype fts[] = {SMOE_FTYPE_Q2_K,   SMOE_FTYPE_Q3_K_S, SMOE_FTYPE_Q3_K_M, SMOE_FTYPE_Q3_K_L, SMOE_FTYPE_Q4_K_S,
                              SMOE_FTYPE_Q4_K_M, SMOE_FTYPE_Q5_K_S, SMOE_FTYPE_Q5_K_M, SMOE_FTYPE_Q6_K,   SMOE_FTYPE_Q4_0};
    const struct {
        int n_layer, n_expert;
        bool output, odd;
        const char *tag;
    } models[] = {{32, 8, true, false, "mixtral-8x7b"}, {8, 0, false, true, "dense8-tied"}};
    for (size_t mi = 0; mi < sizeof models / sizeof *models; mi++) {
        char in[600];
        tmp_path(in, sizeof in, models[mi].tag);
        write_synthetic(in, models[mi].n_layer, models[mi].n_expert, models[mi].output, models[mi].odd);
        int total = 0, bad = 0;
        for (size_t k = 0; k < sizeof fts / sizeof *fts; k++) {
            char out[700];
            snprintf(out, sizeof out, "%s.%s.gguf", in, smoe_ftype_name(fts[k]));
            CHECK_OK(smoe_model_quantize(in, out, fts[k], 2, NULL, NULL));
            smoe_gguf *g = NULL;
            CHECK_OK(smoe_gguf_open(out, &g));
            if (!g) continue;
            int prev_layer = -1;
            for (int64_t i = 0; i < smoe_gguf_n_tensors(g); i++) {
                const char *name = smoe_gguf_tensor_name(g, i);
                const int want = expected_type(fts[k], name, models[mi].n_layer, models[mi].n_expert == 8,
                                               !models[mi].output);
                const int got = smoe_gguf_tensor_dtype(g, i);
                total++;
                if (got != want) {
                    bad++;
                    CHECK(got == want, "%s %s: %s is %s, want %s", models[mi].tag, smoe_ftype_name(fts[k]), name,
                          smoe_dtype_name(got), smoe_dtype_name(want));
                }
                int il = -1; /* llama.cpp's order: non-block tensors, then blocks ascending */
                sscanf(name, "blk.%d.", &il);
                CHECK(il >= prev_layer, "%s: tensor order: %s after layer %d", models[mi].tag, name, prev_layer);
                prev_layer = il > prev_layer ? il : prev_layer;
            }
            smoe_gguf_free(g);
            unlink(out);
        }
        printf("rules on %s (%d layers, %d experts): %d/%d tensor types as expected\n", models[mi].tag,
               models[mi].n_layer, models[mi].n_expert, total - bad, total);
        unlink(in);
    }
}

/* ------------------------------------------------------------------ hostile input */

static int g_progress_calls;
static int64_t g_progress_last;
static void count_progress(void *user, int64_t done, int64_t total, const char *tensor) {
    (void)user;
    g_progress_calls++;
    g_progress_last = done;
    CHECK(done >= 0 && done <= total && (tensor != NULL) == (done < total), "progress %lld/%lld", (long long)done,
          (long long)total);
}

static void test_api_and_hostile(void) {
    smoe_ftype ft;
    const struct {
        const char *name;
        smoe_ftype want;
    } names[] = {{"Q4_K_M", SMOE_FTYPE_Q4_K_M}, {"q4_k_m", SMOE_FTYPE_Q4_K_M}, {"Q4_K", SMOE_FTYPE_Q4_K_M},
                 {"Q3_K", SMOE_FTYPE_Q3_K_M},   {"Q5_K", SMOE_FTYPE_Q5_K_M},   {"Q8_0", SMOE_FTYPE_Q8_0},
                 {"F32", SMOE_FTYPE_F32},       {"BF16", SMOE_FTYPE_BF16},     {"Q6_K", SMOE_FTYPE_Q6_K}};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        CHECK(smoe_ftype_from_name(names[i].name, &ft) == SMOE_OK && ft == names[i].want, "name %s", names[i].name);
        CHECK(smoe_ftype_name(names[i].want) != NULL, "name of %d", (int)names[i].want);
    }
    const char *bad_names[] = {"", "Q4", "Q4_K_X", "IQ2_XXS", "Q8_K", "Q4_0 "};
    for (size_t i = 0; i < sizeof bad_names / sizeof *bad_names; i++) {
        CHECK(smoe_ftype_from_name(bad_names[i], &ft) == SMOE_ERR_INVALID_ARG && smoe_last_error()[0],
              "bad name '%s' accepted", bad_names[i]);
    }
    CHECK(smoe_ftype_from_name(NULL, &ft) == SMOE_ERR_INVALID_ARG, "NULL name");
    CHECK(smoe_ftype_name((smoe_ftype)99) == NULL, "name of 99");

    char out[600], in_bad[600];
    tmp_path(out, sizeof out, "hostile");
    const char *f32 = th_data("model/mixtral-tiny-F32.gguf");
    smoe_status st = smoe_model_quantize(f32, out, (smoe_ftype)99, 1, NULL, NULL);
    CHECK(st == SMOE_ERR_INVALID_ARG, "ftype 99: %s", smoe_status_name(st));
    st = smoe_model_quantize("/nonexistent/dir/model.gguf", out, SMOE_FTYPE_Q8_0, 1, NULL, NULL);
    CHECK(st == SMOE_ERR_IO && strstr(smoe_last_error(), "/nonexistent/dir/model.gguf"), "missing input: %s: %s",
          smoe_status_name(st), smoe_last_error());
    CHECK(access(out, F_OK) != 0, "missing input left an output file");
    st = smoe_model_quantize(f32, "/nonexistent-dir-smoe/x/out.gguf", SMOE_FTYPE_Q8_0, 1, NULL, NULL);
    CHECK(st == SMOE_ERR_IO && strstr(smoe_last_error(), "/nonexistent-dir-smoe/x"), "missing output dir: %s: %s",
          smoe_status_name(st), smoe_last_error());
    CHECK(smoe_model_quantize(NULL, out, SMOE_FTYPE_Q8_0, 1, NULL, NULL) == SMOE_ERR_INVALID_ARG, "NULL input");
    CHECK(smoe_model_quantize(f32, NULL, SMOE_FTYPE_Q8_0, 1, NULL, NULL) == SMOE_ERR_INVALID_ARG, "NULL output");
    /* not a GGUF file */
    tmp_path(in_bad, sizeof in_bad, "notgguf");
    FILE *fp = fopen(in_bad, "wb");
    if (fp) fputs("this is not a model\n", fp), fclose(fp);
    st = smoe_model_quantize(in_bad, out, SMOE_FTYPE_Q8_0, 1, NULL, NULL);
    CHECK(st == SMOE_ERR_FORMAT, "text file as input: %s: %s", smoe_status_name(st), smoe_last_error());
    CHECK(access(out, F_OK) != 0, "bad input left an output file");
    unlink(in_bad);
    /* progress: once per tensor, then (total, total, NULL); n_threads 0 = all CPUs */
    g_progress_calls = 0;
    CHECK_OK(smoe_model_quantize(f32, out, SMOE_FTYPE_Q8_0, 0, count_progress, NULL));
    CHECK(g_progress_calls == 24 && g_progress_last == 23, "progress calls %d, last %lld", g_progress_calls,
          (long long)g_progress_last);
    /* a quantized input requantizes (Q8_0 -> Q4_0 through f32) */
    char out2[600];
    tmp_path(out2, sizeof out2, "requant");
    CHECK_OK(smoe_model_quantize(out, out2, SMOE_FTYPE_Q4_0, 2, NULL, NULL));
    smoe_gguf *g = NULL;
    CHECK_OK(smoe_gguf_open(out2, &g));
    if (g) {
        const int64_t i = smoe_gguf_find_tensor(g, "blk.0.ffn_up_exps.weight");
        CHECK(i >= 0 && smoe_gguf_tensor_dtype(g, i) == SMOE_DTYPE_Q4_0, "requantized type");
        smoe_gguf_free(g);
    }
    unlink(out);
    unlink(out2);
}

int main(void) {
    const char *td = getenv("TMPDIR");
    snprintf(g_tmpdir, sizeof g_tmpdir, "%s", td && td[0] ? td : "/tmp");
    test_random_rows();
    test_exact_and_zero();
    test_against_llama();
    test_float_mixes();
    test_rules();
    test_api_and_hostile();
    return TEST_REPORT();
}
