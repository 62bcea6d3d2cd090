/*
 * test_kernels.c - tests of the CPU dot-product kernels and activation quantizers
 * (src/cpu/kernels.h): for every weight type, every ISA variant this CPU runs
 * (smoe_kernels_all) and row lengths of 1, 3, 7 blocks, 4096 and 14336 values (plus odd
 * lengths for the float types), on random weights (random quant bytes with sane fp16
 * scales, and all-ones / all-zeros bytes for saturation) and normal-ish activations of
 * several magnitudes:
 *   - each variant's vec_dot vs the scalar reference on the same inputs, within f32
 *     accumulation error (they compute the same integer block sums);
 *   - the reference vec_dot vs a double dot of the dequantized rows (smoe_dequantize),
 *     which proves the reference right;
 *   - each variant's activation quantizer bit-identical to the scalar one, its
 *     dequantized output within the rounding bound of the format, no write past the end
 *     (sentinel bytes), no NaN/Inf;
 *   - dispatch: NULL for types without a dot product, SMOE_ISA caps the choice (checked
 *     in forked children, before this process reads the table);
 *   - vec_dot4 (1 weight row x 4 activation rows) of every variant: each output
 *     bit-identical to the same variant's vec_dot, over strides and misalignments;
 *     vec_dot_few (2 or 3 activation rows; Q4_K, Q6_K) on the same rows likewise;
 *   - vec_dot_2x4 (2 weight rows x 4 activation rows; Q8_0, Q4_K, Q6_K) likewise;
 *   - vec_dot_4xn (4 weight rows x 1-3 activation rows; F32) likewise, also checking
 *     that only the 4 x nt outputs are written (the gaps of the output stride stay);
 *   - vec_dot_4x1 (4 weight rows x 1 activation row; every type but F32) likewise.
 * Prints one line per type with the largest errors seen.
 */
#include "smoe.h"
#include "cpu/kernels.h"
#include "quant/blocks.h"
#include "quant/quant.h"
#include "testhelp.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define SENT 64                    /* sentinel bytes after every output buffer */
#define U (1.0 / 16777216.0)       /* f32 unit roundoff, 2^-24 */

static const int k_types[] = {
    SMOE_DTYPE_Q4_0, SMOE_DTYPE_Q4_1, SMOE_DTYPE_Q5_0, SMOE_DTYPE_Q5_1, SMOE_DTYPE_Q8_0,
    SMOE_DTYPE_Q2_K, SMOE_DTYPE_Q3_K, SMOE_DTYPE_Q4_K, SMOE_DTYPE_Q5_K, SMOE_DTYPE_Q6_K,
    SMOE_DTYPE_F16,  SMOE_DTYPE_BF16, SMOE_DTYPE_F32,
};
#define NTYPES ((int)(sizeof k_types / sizeof k_types[0]))

static unsigned long long g_rng = 0x5eedf00dull;

/* Sum of four uniforms: bell-shaped, unit-ish variance, bounded. */
static float rnd_normal(void) {
    float s = 0;
    for (int i = 0; i < 4; i++) s += th_rng_float(&g_rng);
    return s * 0.866f;
}

/* Random fp16 of magnitude log-uniform in [lo, hi], random sign. */
static uint16_t rnd_scale(float lo, float hi) {
    const float t = 0.5f * (th_rng_float(&g_rng) + 1.0f);
    float v = lo * powf(hi / lo, t);
    if (th_rng_next(&g_rng) & 1) v = -v;
    return smoe_f32_to_f16(v);
}

static void put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

/* Byte offsets of the fp16 scale fields of a block type: "d" and, for types with a
 * min, "m"/"dmin" (-1 if none); and the quant byte ranges to clear to get the min-only
 * row (see min_part). */
typedef struct layout {
    int d, m;
    int q0, q1; /* quant bytes [q0, q1) of a block */
} layout;

static layout layout_of(int t) {
    switch (t) {
    case SMOE_DTYPE_Q4_0: return (layout){offsetof(smoe_block_q4_0, d), -1, 2, 18};
    case SMOE_DTYPE_Q4_1: return (layout){offsetof(smoe_block_q4_1, d), offsetof(smoe_block_q4_1, m), 4, 20};
    case SMOE_DTYPE_Q5_0: return (layout){offsetof(smoe_block_q5_0, d), -1, 2, 22};
    case SMOE_DTYPE_Q5_1: return (layout){offsetof(smoe_block_q5_1, d), offsetof(smoe_block_q5_1, m), 4, 24};
    case SMOE_DTYPE_Q8_0: return (layout){offsetof(smoe_block_q8_0, d), -1, 2, 34};
    case SMOE_DTYPE_Q2_K:
        return (layout){offsetof(smoe_block_q2_K, d), offsetof(smoe_block_q2_K, dmin),
                        offsetof(smoe_block_q2_K, qs), offsetof(smoe_block_q2_K, d)};
    case SMOE_DTYPE_Q3_K: return (layout){offsetof(smoe_block_q3_K, d), -1, 0, 0};
    case SMOE_DTYPE_Q4_K:
        return (layout){offsetof(smoe_block_q4_K, d), offsetof(smoe_block_q4_K, dmin),
                        offsetof(smoe_block_q4_K, qs), sizeof(smoe_block_q4_K)};
    case SMOE_DTYPE_Q5_K:
        return (layout){offsetof(smoe_block_q5_K, d), offsetof(smoe_block_q5_K, dmin),
                        offsetof(smoe_block_q5_K, qh), sizeof(smoe_block_q5_K)};
    case SMOE_DTYPE_Q6_K: return (layout){offsetof(smoe_block_q6_K, d), -1, 0, 0};
    default: return (layout){-1, -1, 0, 0};
    }
}

/* Weight row of n values of type t. fill: 0 random bytes, 1 all 0xff, 2 all 0x00 (the
 * scale fields are random in every case). Float types: normal values times mag. */
static void make_weights(int t, uint8_t *w, int64_t n, int fill, float mag) {
    const int64_t bs = smoe_dtype_block_size(t);
    const size_t bb = smoe_dtype_block_bytes(t);
    const size_t bytes = (size_t)(n / bs) * bb;
    if (t == SMOE_DTYPE_F32) {
        for (int64_t i = 0; i < n; i++) {
            const float v = rnd_normal() * mag;
            memcpy(w + 4 * i, &v, 4);
        }
        return;
    }
    if (t == SMOE_DTYPE_F16 || t == SMOE_DTYPE_BF16) {
        for (int64_t i = 0; i < n; i++) {
            const float v = rnd_normal() * mag;
            put16(w + 2 * i, t == SMOE_DTYPE_F16 ? smoe_f32_to_f16(v) : smoe_f32_to_bf16(v));
        }
        return;
    }
    for (size_t i = 0; i < bytes; i++)
        w[i] = fill == 1 ? 0xff : fill == 2 ? 0 : (uint8_t)th_rng_next(&g_rng);
    const layout L = layout_of(t);
    const int kquant = bs == SMOE_QK_K;
    for (int64_t b = 0; b < n / bs; b++) {
        uint8_t *blk = w + (size_t)b * bb;
        put16(blk + L.d, kquant ? rnd_scale(1e-4f, 1e-2f) : rnd_scale(1e-3f, 1e-1f));
        if (L.m >= 0) put16(blk + L.m, kquant ? rnd_scale(1e-4f, 1e-2f) : rnd_scale(1e-3f, 1e-1f));
    }
}

/* The "min" part of each weight (quant bits cleared, scales kept) for types with a min,
 * so that the test knows the size of the two terms that the kernels subtract. */
static void min_part(int t, const uint8_t *w, int64_t n, float *out) {
    const layout L = layout_of(t);
    const int64_t bs = smoe_dtype_block_size(t);
    const size_t bb = smoe_dtype_block_bytes(t);
    const size_t bytes = (size_t)(n / bs) * bb;
    if (L.m < 0) {
        for (int64_t i = 0; i < n; i++) out[i] = 0;
        return;
    }
    uint8_t *c = malloc(bytes);
    memcpy(c, w, bytes);
    for (int64_t b = 0; b < n / bs; b++) memset(c + (size_t)b * bb + L.q0, 0, (size_t)(L.q1 - L.q0));
    CHECK_OK(smoe_dequantize(t, c, out, n));
    free(c);
}

/* Activations: mode 0..2 normal-ish with magnitude 1, 1e-3, 30 (+ outliers); mode 3
 * constant -mag (every quant at -127: worst case for saturation); mode 4 normal with
 * a block of zeros at the start and, in every 256-block, both +5 and -5 (the largest
 * |x| twice with opposite signs: Q8_K must keep the first one's sign); mode 5 exact
 * rounding ties: one element of each 32 is +-127*2^e, the others are half-integers
 * times 2^e, so x/d lands exactly on .5 (roundf and nearest-even differ there). */
static void make_acts(float *x, int64_t n, int mode) {
    static const float mags[] = {1.0f, 1e-3f, 30.0f, 1.0f, 1.0f, 0.25f};
    const float mag = mags[mode];
    for (int64_t i = 0; i < n; i++) {
        if (mode == 3) {
            x[i] = -mag;
        } else if (mode == 5) {
            const int k = (int)(th_rng_next(&g_rng) % 254) - 127; /* -127 .. 126 */
            x[i] = (i % 32 == 7) ? ((i / 32) & 1 ? -127.0f : 127.0f) * mag : ((float)k + 0.5f) * mag;
        } else {
            x[i] = rnd_normal() * mag;
            if (mode == 2 && (th_rng_next(&g_rng) % 97) == 0) x[i] *= 20.0f;
            if (mode == 4 && i < 256) x[i] = 0.0f;
        }
    }
    if (mode == 4)
        for (int64_t b = 256; b + 256 <= n; b += 256) {
            const int64_t j0 = b + (int64_t)(th_rng_next(&g_rng) % 128);
            const int64_t j1 = b + 128 + (int64_t)(th_rng_next(&g_rng) % 128);
            const float s = (b / 256) & 1 ? 1.0f : -1.0f;
            x[j0] = 5.0f * s;
            x[j1] = -5.0f * s;
        }
}

static int sentinels_ok(const uint8_t *p) {
    for (int i = 0; i < SENT; i++)
        if (p[i] != 0xa5) return 0;
    return 1;
}

/* Max error of dequantize(quantize(x)) relative to the format's bound (<= 1 passes),
 * for an activation row of type vt; also checks the block fields against ggml's rules. */
static double act_error(int vt, const float *x, const uint8_t *a, const float *af, int64_t n) {
    double worst = 0;
    if (vt == SMOE_DTYPE_Q8_0 || vt == SMOE_DTYPE_Q8_1) {
        const size_t bb = smoe_dtype_block_bytes(vt);
        for (int64_t b = 0; b < n / 32; b++) {
            const uint8_t *blk = a + (size_t)b * bb;
            float amax = 0;
            for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[32 * b + j]));
            const double d = amax / 127.0f; /* the quantizer's f32 d */
            const double d16 = smoe_rd_f16(blk);
            /* |x - q*d| <= d/2 (up to 1/d's rounding), and the fp16 d adds |q|*|d16 - d| */
            const double bound = 0.5 * d * (1 + 1e-6) + 127.0 * fabs(d16 - d) + 1e-30;
            int qsum = 0;
            for (int j = 0; j < 32; j++) {
                const double e = fabs((double)x[32 * b + j] - af[32 * b + j]);
                if (e / bound > worst) worst = e / bound;
                qsum += ((const int8_t *)blk + (vt == SMOE_DTYPE_Q8_1 ? 4 : 2))[j];
            }
            if (vt == SMOE_DTYPE_Q8_1) {
                const double s = smoe_rd_f16(blk + 2), want = d * qsum;
                CHECK(fabs(s - want) <= fabs(want) * 1e-3 + 1e-7, "Q8_1 s %g vs d*sum %g", s, want);
            }
        }
    } else if (vt == SMOE_DTYPE_Q8_K) {
        for (int64_t b = 0; b < n / 256; b++) {
            const smoe_block_q8_K *blk = (const smoe_block_q8_K *)(a + (size_t)b * sizeof(smoe_block_q8_K));
            const float d = smoe_bits_to_f32(smoe_rd_u32(blk->d));
            /* ggml: the first element of largest |x| maps to -127 */
            float amax = 0;
            int jm = 0;
            for (int j = 0; j < 256; j++)
                if (fabsf(x[256 * b + j]) > amax) amax = fabsf(x[256 * b + j]), jm = j;
            if (amax > 0) CHECK(blk->qs[jm] == -127, "Q8_K: q of the max element %d", blk->qs[jm]);
            for (int g = 0; g < 16; g++) {
                int s = 0;
                for (int j = 0; j < 16; j++) s += blk->qs[16 * g + j];
                const int bsum = (int)(int16_t)smoe_rd_u16(blk->bsums[g]);
                CHECK(bsum == s, "Q8_K bsums[%d] %d vs %d", g, bsum, s);
            }
            for (int j = 0; j < 256; j++) {
                const double xv = x[256 * b + j];
                const double bound = 0.5 * fabs(d) * (1 + 1e-5) + 2 * U * fabs(xv) + 1e-30;
                const double e = fabs(xv - af[256 * b + j]);
                if (e / bound > worst) worst = e / bound;
            }
        }
    } else {
        /* F16: half an ulp of 11 bits (2^-11 relative) or 2^-25 absolute in the
         * subnormal range; BF16: 2^-8 relative; F32: exact */
        const double rel = vt == SMOE_DTYPE_F16 ? 1.0 / 2048 : vt == SMOE_DTYPE_BF16 ? 1.0 / 256 : 0;
        const double abs_ = vt == SMOE_DTYPE_F16 ? ldexp(1, -25) : vt == SMOE_DTYPE_BF16 ? 1e-38 : 0;
        for (int64_t i = 0; i < n; i++) {
            const double e = fabs((double)x[i] - af[i]), bound = rel * fabs(x[i]) + abs_;
            if (e > 0) {
                if (bound == 0)
                    worst = INFINITY;
                else if (e / bound > worst)
                    worst = e / bound;
            }
        }
    }
    return worst;
}

/* Q8_1's s field is fp16(d * sum(q)) with the f32 d, while the dequantized activations
 * use the fp16 d: the dot products (ggml's too) inherit, per block, |m| times the
 * rounding of s (2^-11 relative, 2^-25 absolute below fp16's normal range) and
 * |sum(q)| * |d - fp16(d)| (same two cases). */
static double q8_1_s_error(int t, const uint8_t *w, const uint8_t *a, int64_t n) {
    if (t != SMOE_DTYPE_Q4_1 && t != SMOE_DTYPE_Q5_1) return 0;
    const layout L = layout_of(t);
    const size_t bb = smoe_dtype_block_bytes(t);
    double e = 0;
    for (int64_t b = 0; b < n / 32; b++) {
        const double m = smoe_rd_f16(w + (size_t)b * bb + L.m);
        const uint8_t *ab = a + (size_t)b * sizeof(smoe_block_q8_1);
        const double d16 = smoe_rd_f16(ab), s = smoe_rd_f16(ab + 2);
        int qsum = 0;
        for (int j = 0; j < 32; j++) qsum += ((const int8_t *)ab + 4)[j];
        const double dd = fmax(fabs(d16) * ldexp(1, -11), ldexp(1, -25));
        e += fabs(m) * (fabs(s) * ldexp(1, -10) + ldexp(1, -24) + abs(qsum) * dd) * (1 + 1e-6);
    }
    return e;
}

typedef struct stats {
    double isa_err, ref_err, act_err; /* worst error / bound (<= 1 passes) */
    double isa_rel, ref_rel;          /* worst |diff| / sum|w*a| */
    int act_mismatch, cases;
} stats;

static void run_case(int t, int64_t n, int fill, int mode, int misalign, stats *st) {
    const smoe_kernel *R = smoe_kernels_ref(t);
    CHECK(R != NULL, "no reference kernel for %s", smoe_dtype_name(t));
    if (!R) return;
    const int vt = R->vec_dot_type;
    const int64_t bs = smoe_dtype_block_size(t);
    const size_t wbytes = (size_t)(n / bs) * smoe_dtype_block_bytes(t);
    const size_t abytes = (size_t)(n / smoe_dtype_block_size(vt)) * smoe_dtype_block_bytes(vt);

    uint8_t *wbuf = malloc(wbytes + 1);
    uint8_t *w = wbuf + misalign; /* odd addresses too: kernels must use unaligned loads */
    float *x = malloc((size_t)n * sizeof *x);
    float *wf = malloc((size_t)n * sizeof *wf);
    float *w0 = malloc((size_t)n * sizeof *w0);
    float *af = malloc((size_t)n * sizeof *af);
    uint8_t *abuf = malloc(abytes + SENT + 1);
    uint8_t *aref = abuf + misalign;
    uint8_t *vbuf = malloc(abytes + SENT + 1);
    uint8_t *av = vbuf + misalign;

    make_weights(t, w, n, fill, mode == 1 ? 1e-2f : 1.0f);
    make_acts(x, n, mode);
    memset(abuf, 0xa5, abytes + SENT + 1);
    R->act_quant(x, aref, n);
    CHECK(sentinels_ok(aref + abytes), "%s: reference act_quant wrote past the end", smoe_dtype_name(t));

    CHECK_OK(smoe_dequantize(t, w, wf, n));
    CHECK_OK(smoe_dequantize(vt, aref, af, n));
    min_part(t, w, n, w0);
    double exact = 0, absdot = 0, mag = 0;
    for (int64_t i = 0; i < n; i++) {
        exact += (double)wf[i] * af[i];
        absdot += fabs((double)wf[i] * af[i]);
        /* bound on |quant part| + |min part| of each weight: |w| + 2|w0| */
        mag += (fabs((double)wf[i]) + 2 * fabs((double)w0[i])) * fabs((double)af[i]);
    }
    int finite = 1;
    for (int64_t i = 0; i < n; i++) finite &= isfinite(af[i]) && isfinite(wf[i]);
    CHECK(finite, "%s n=%lld: non-finite dequantized values", smoe_dtype_name(t), (long long)n);

    /* activation quantizer accuracy */
    const double ae = act_error(vt, x, aref, af, n);
    CHECK(ae <= 1.0, "%s n=%lld mode %d: act_quant error %.3f x bound", smoe_dtype_name(vt), (long long)n, mode, ae);
    if (ae > st->act_err) st->act_err = ae;

    /* reference dot vs double dot of the dequantized rows: per-block products and f32
     * sums over nb blocks (or n/1 values) each round by <= u relative to `mag` */
    const int64_t nb = bs == 1 ? n : n / bs;
    const float ref = R->vec_dot(n, w, aref);
    const double eps = bs == 1 ? (2 * U + n * ldexp(1, -52)) * absdot + 2 * U * fabs(exact)
                               : (double)(nb + 16) * 2 * U * mag + q8_1_s_error(t, w, aref, n);
    const double rerr = fabs(ref - exact);
    CHECK(isfinite(ref) && rerr <= eps + 1e-30, "%s n=%lld fill %d mode %d: ref %.9g vs f64 %.9g (err %.3g, bound %.3g)",
          smoe_dtype_name(t), (long long)n, fill, mode, ref, exact, rerr, eps);
    if (rerr / (eps + 1e-30) > st->ref_err) st->ref_err = rerr / (eps + 1e-30);
    if (absdot > 0 && rerr / absdot > st->ref_rel) st->ref_rel = rerr / absdot;

    smoe_kernel v[8];
    const int nv = smoe_kernels_all(t, v, 8);
    CHECK(nv >= 1 && strcmp(v[0].isa, "scalar") == 0 && v[0].vec_dot == R->vec_dot, "%s: all()[0] is not the reference",
          smoe_dtype_name(t));
    for (int k = 1; k < nv; k++) {
        CHECK(v[k].vec_dot_type == vt, "%s/%s: vec_dot_type", smoe_dtype_name(t), v[k].isa);
        memset(vbuf, 0xa5, abytes + SENT + 1);
        v[k].act_quant(x, av, n);
        CHECK(sentinels_ok(av + abytes), "%s/%s: act_quant wrote past the end", smoe_dtype_name(t), v[k].isa);
        if (memcmp(av, aref, abytes) != 0) {
            st->act_mismatch++;
            size_t j = 0;
            while (av[j] == aref[j]) j++;
            CHECK(0, "%s/%s n=%lld mode %d: act_quant differs from the reference at byte %zu (%02x vs %02x)",
                  smoe_dtype_name(vt), v[k].isa, (long long)n, mode, j, av[j], aref[j]);
        }
        /* the ISA dot on the reference's activation row: same integer math, other f32
         * summation order (f32 types: 32 lanes of n/32 terms, vs the double reference) */
        const float got = v[k].vec_dot(n, w, aref);
        const double ieps = bs == 1 ? (double)(n / 32 + 16) * 2 * U * absdot + 2 * U * fabs(ref)
                                    : (double)(nb + 16) * 2 * U * mag;
        const double ierr = fabs((double)got - ref);
        CHECK(isfinite(got) && ierr <= ieps + 1e-30, "%s/%s n=%lld fill %d mode %d: %.9g vs ref %.9g (err %.3g, bound %.3g)",
              smoe_dtype_name(t), v[k].isa, (long long)n, fill, mode, got, ref, ierr, ieps);
        if (ierr / (ieps + 1e-30) > st->isa_err) st->isa_err = ierr / (ieps + 1e-30);
        if (absdot > 0 && ierr / absdot > st->isa_rel) st->isa_rel = ierr / absdot;
    }
    st->cases++;
    free(wbuf), free(x), free(wf), free(w0), free(af), free(abuf), free(vbuf);
}

static void test_type(int t) {
    static const int64_t sizes32[] = {32, 96, 224, 4096, 14336};
    static const int64_t sizes256[] = {256, 768, 1792, 4096, 14336};
    static const int64_t sizes1[] = {1, 3, 7, 31, 33, 100, 4096, 14336};
    const int64_t bs = smoe_dtype_block_size(t);
    const int64_t *sizes = bs == 1 ? sizes1 : bs == 32 ? sizes32 : sizes256;
    const int nsizes = bs == 1 ? 8 : 5;
    stats st = {0};
    for (int s = 0; s < nsizes; s++) {
        const int64_t n = sizes[s];
        for (int mode = 0; mode < 6; mode++) {
            if (mode == 4 && n < 512) continue;
            run_case(t, n, 0, mode, mode & 1, &st);
        }
        if (bs > 1) { /* extreme quant bytes: saturation would show here */
            run_case(t, n, 1, 3, 0, &st);
            run_case(t, n, 1, 0, 1, &st);
            run_case(t, n, 2, 3, 1, &st);
        }
    }
    smoe_kernel v[8];
    const int nv = smoe_kernels_all(t, v, 8);
    char isas[64] = "";
    for (int k = 0; k < nv; k++) {
        strncat(isas, v[k].isa, sizeof isas - strlen(isas) - 2);
        if (k + 1 < nv) strcat(isas, ",");
    }
    printf("%-5s [%-11s] %3d cases: isa-ref %.2e (%.3f of bound)  ref-f64 %.2e (%.3f of bound)  "
           "act %s err %.3f of bound, %d mismatches\n",
           smoe_dtype_name(t), isas, st.cases, st.isa_rel, st.isa_err, st.ref_rel, st.ref_err,
           smoe_dtype_name(smoe_kernels_ref(t)->vec_dot_type), st.act_err, st.act_mismatch);
}

/* Rounding and special values, against values worked out by hand (ggml's rules) and
 * across every variant (bit-identical). */
static void test_special(void) {
    /* Q8_0/Q8_1: d = 127/127 = 1, q = roundf(x): ties away from zero */
    float x[256];
    for (int j = 0; j < 32; j++) x[j] = 0;
    x[0] = 127.0f, x[1] = 2.5f, x[2] = -2.5f, x[3] = 0.5f, x[4] = -0.5f, x[5] = 126.5f, x[6] = -3.49999976f;
    static const int8_t want0[7] = {127, 3, -3, 1, -1, 127, -3};
    smoe_kernel v[8];
    int nv = smoe_kernels_all(SMOE_DTYPE_Q8_0, v, 8);
    for (int k = 0; k < nv; k++) {
        smoe_block_q8_0 b;
        v[k].act_quant(x, &b, 32);
        CHECK(smoe_rd_f16(b.d) == 1.0f, "%s Q8_0 d %g", v[k].isa, smoe_rd_f16(b.d));
        for (int j = 0; j < 7; j++) CHECK(b.qs[j] == want0[j], "%s Q8_0 q[%d] = %d, want %d", v[k].isa, j, b.qs[j], want0[j]);
    }
    nv = smoe_kernels_all(SMOE_DTYPE_Q4_1, v, 8);
    for (int k = 0; k < nv; k++) {
        smoe_block_q8_1 b;
        v[k].act_quant(x, &b, 32);
        /* s = d * sum(q) = 127 + 3 - 3 + 1 - 1 + 127 - 3 */
        CHECK(smoe_rd_f16(b.s) == 251.0f, "%s Q8_1 s %g", v[k].isa, smoe_rd_f16(b.s));
        for (int j = 0; j < 7; j++) CHECK(b.qs[j] == want0[j], "%s Q8_1 q[%d] = %d", v[k].isa, j, b.qs[j]);
    }
    /* Q8_K: the first largest |x| is +127 -> iscale = -1, d = -1; nearest-even ties */
    for (int j = 0; j < 256; j++) x[j] = 0;
    x[0] = 1.0f, x[9] = 127.0f, x[10] = -127.0f, x[1] = 2.5f, x[2] = -2.5f, x[3] = 3.5f, x[4] = 0.5f, x[17] = -1.5f;
    static const int8_t wantk[5] = {-1, -2, 2, -4, 0};
    nv = smoe_kernels_all(SMOE_DTYPE_Q4_K, v, 8);
    for (int k = 0; k < nv; k++) {
        smoe_block_q8_K b;
        v[k].act_quant(x, &b, 256);
        CHECK(smoe_bits_to_f32(smoe_rd_u32(b.d)) == -1.0f, "%s Q8_K d", v[k].isa);
        for (int j = 0; j < 5; j++) CHECK(b.qs[j] == wantk[j], "%s Q8_K q[%d] = %d, want %d", v[k].isa, j, b.qs[j], wantk[j]);
        CHECK(b.qs[9] == -127 && b.qs[10] == 127 && b.qs[17] == 2, "%s Q8_K q", v[k].isa);
        CHECK((int16_t)smoe_rd_u16(b.bsums[0]) == -1 - 2 + 2 - 4 - 127 + 127, "%s Q8_K bsums[0]", v[k].isa);
        CHECK((int16_t)smoe_rd_u16(b.bsums[1]) == 2, "%s Q8_K bsums[1]", v[k].isa);
    }
    /* all-zero blocks: d = 0 and zero quants, no NaN */
    for (int j = 0; j < 256; j++) x[j] = 0;
    for (int k = 0; k < nv; k++) {
        smoe_block_q8_K b;
        memset(&b, 0x5a, sizeof b);
        v[k].act_quant(x, &b, 256);
        int zero = 1;
        for (size_t j = 0; j < sizeof b; j++) zero &= ((uint8_t *)&b)[j] == 0;
        CHECK(zero, "%s Q8_K of zeros is not all zero", v[k].isa);
    }
    /* F16/BF16: ties to even, subnormals, overflow, infinities, NaN, -0 - compared byte
     * for byte across variants (the reference converters are tested in test_quant) */
    const float inf = INFINITY;
    const float sp[] = {1.0f + 0x1p-11f, 1.0f + 0x3p-11f, -1.0f - 0x1p-11f, 0x1p-25f, 0x1.8p-25f, 0x1p-24f,
                        65504.0f, 65519.0f, 65520.0f, 1e10f, -1e10f, inf, -inf, NAN, -NAN, -0.0f,
                        1.0f + 0x1p-8f, 1.0f + 0x3p-8f, 0x1.fffffep127f, 1e-40f, -1e-45f, 3.14159265f, 6.1e-5f, 1e-8f,
                        0.1f, -0.2f, 0.3f, 100.5f, 2049.0f, 2051.0f, 4097.0f, -4099.0f, 1.5f, 7.0f, 1e-3f, -1e-3f, 0.0f};
    const int nsp = (int)(sizeof sp / sizeof sp[0]);
    for (int t = 0; t < 2; t++) {
        const int dt = t ? SMOE_DTYPE_BF16 : SMOE_DTYPE_F16;
        nv = smoe_kernels_all(dt, v, 8);
        uint8_t ref[2 * 64], got[2 * 64 + SENT];
        for (int n = 1; n <= nsp; n += (n < 17 ? 1 : 7)) {
            v[0].act_quant(sp, ref, n);
            for (int j = 0; j < n; j++) {
                const uint16_t h = smoe_rd_u16(ref + 2 * j);
                const uint16_t want = t ? smoe_f32_to_bf16(sp[j]) : smoe_f32_to_f16(sp[j]);
                CHECK(h == want, "%s ref of %a: %04x vs %04x", smoe_dtype_name(dt), sp[j], h, want);
            }
            for (int k = 1; k < nv; k++) {
                memset(got, 0xa5, sizeof got);
                v[k].act_quant(sp, got, n);
                CHECK(memcmp(got, ref, 2 * (size_t)n) == 0, "%s/%s special values n=%d differ", smoe_dtype_name(dt),
                      v[k].isa, n);
                CHECK(sentinels_ok(got + 2 * n), "%s/%s wrote past the end", smoe_dtype_name(dt), v[k].isa);
            }
        }
    }
}

/* In a child process (so that this process's table is not yet built): with SMOE_ISA set
 * to isa, does smoe_kernels_get pick `want` (or scalar if the CPU lacks it)? */
static void test_cap(const char *isa) {
    fflush(stdout);
    fflush(stderr);
    const pid_t pid = fork();
    if (pid == 0) {
        setenv("SMOE_ISA", isa, 1);
        smoe_kernel v[8];
        const int nv = smoe_kernels_all(SMOE_DTYPE_Q4_K, v, 8);
        const char *want = "scalar";
        for (int k = 0; k < nv; k++)
            if (strcmp(v[k].isa, isa) == 0) want = isa;
        if (strcmp(isa, "bogus") == 0) want = v[nv - 1].isa; /* unknown value: no cap */
        const smoe_kernel *g = smoe_kernels_get(SMOE_DTYPE_Q4_K);
        _exit(g && strcmp(g->isa, want) == 0 ? 0 : 1);
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid, "fork/wait");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "SMOE_ISA=%s not honoured", isa);
}

static void test_dispatch(void) {
    CHECK(smoe_kernels_get(-1) == NULL, "negative id");
    CHECK(smoe_kernels_get(SMOE_DTYPE_COUNT) == NULL, "id past the table");
    CHECK(smoe_kernels_get(1000) == NULL, "large id");
    CHECK(smoe_kernels_get(SMOE_DTYPE_Q8_K) == NULL, "Q8_K is not a weight type");
    CHECK(smoe_kernels_get(SMOE_DTYPE_Q8_1) == NULL, "Q8_1 is not a weight type");
    CHECK(smoe_kernels_get(SMOE_DTYPE_I8) == NULL, "I8 has no dot product");
    smoe_kernel v[8];
    CHECK(smoe_kernels_all(SMOE_DTYPE_I8, v, 8) == 0, "I8 has no variants");
    CHECK(smoe_kernels_all(SMOE_DTYPE_Q4_0, v, 1) == 1, "cap respected");
    static const int vdt[][2] = {
        {SMOE_DTYPE_Q4_0, SMOE_DTYPE_Q8_0}, {SMOE_DTYPE_Q4_1, SMOE_DTYPE_Q8_1}, {SMOE_DTYPE_Q5_0, SMOE_DTYPE_Q8_0},
        {SMOE_DTYPE_Q5_1, SMOE_DTYPE_Q8_1}, {SMOE_DTYPE_Q8_0, SMOE_DTYPE_Q8_0}, {SMOE_DTYPE_Q2_K, SMOE_DTYPE_Q8_K},
        {SMOE_DTYPE_Q3_K, SMOE_DTYPE_Q8_K}, {SMOE_DTYPE_Q4_K, SMOE_DTYPE_Q8_K}, {SMOE_DTYPE_Q5_K, SMOE_DTYPE_Q8_K},
        {SMOE_DTYPE_Q6_K, SMOE_DTYPE_Q8_K}, {SMOE_DTYPE_F16, SMOE_DTYPE_F16},   {SMOE_DTYPE_BF16, SMOE_DTYPE_BF16},
        {SMOE_DTYPE_F32, SMOE_DTYPE_F32},
    };
    for (size_t i = 0; i < sizeof vdt / sizeof vdt[0]; i++) {
        const smoe_kernel *g = smoe_kernels_get(vdt[i][0]), *r = smoe_kernels_ref(vdt[i][0]);
        CHECK(g && r && g->vec_dot_type == vdt[i][1] && r->vec_dot_type == vdt[i][1], "%s vec_dot_type",
              smoe_dtype_name(vdt[i][0]));
        CHECK(r && strcmp(r->isa, "scalar") == 0, "%s ref isa", smoe_dtype_name(vdt[i][0]));
        /* with no SMOE_ISA cap, get() is the last (best) variant */
        const int nv = smoe_kernels_all(vdt[i][0], v, 8);
        if (!getenv("SMOE_ISA") && g && nv > 0)
            CHECK(g->vec_dot == v[nv - 1].vec_dot, "%s: get() is not the best variant", smoe_dtype_name(vdt[i][0]));
    }
    const smoe_cpu_features *f = smoe_cpu_get_features();
    CHECK(f != NULL, "features");
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    CHECK(f->avx2 == !!__builtin_cpu_supports("avx2"), "avx2 detection disagrees with the compiler's");
    CHECK(f->fma == !!__builtin_cpu_supports("fma"), "fma detection disagrees with the compiler's");
    CHECK(f->avx512f == !!__builtin_cpu_supports("avx512f"), "avx512f detection disagrees");
#endif
    printf("cpu: avx2 %d fma %d f16c %d avx512f %d bw %d vl %d vnni %d bf16 %d neon %d dotprod %d\n", f->avx2, f->fma,
           f->f16c, f->avx512f, f->avx512bw, f->avx512vl, f->avx512vnni, f->avx512bf16, f->neon, f->dotprod);
}

/* ------------------------------------------------------------ vec_dot4 */

/* The ISA variants of type t that have a multi-row/multi-token kernel, "scalar,avx2". */
typedef enum { HAS_DOT4, HAS_FEW, HAS_2X4, HAS_4XN, HAS_4X1 } multi_kernel;
static void isas_having(int t, multi_kernel which, char *out, size_t cap) {
    smoe_kernel v[8];
    const int nv = smoe_kernels_all(t, v, 8);
    out[0] = 0;
    for (int k = 0; k < nv; k++) {
        const bool has = which == HAS_DOT4  ? v[k].vec_dot4 != NULL
                         : which == HAS_FEW ? v[k].vec_dot_few != NULL
                         : which == HAS_2X4 ? v[k].vec_dot_2x4 != NULL
                         : which == HAS_4XN ? v[k].vec_dot_4xn != NULL
                                            : v[k].vec_dot_4x1 != NULL;
        if (!has) continue;
        if (out[0]) strncat(out, ",", cap - strlen(out) - 1);
        strncat(out, v[k].isa, cap - strlen(out) - 1);
    }
}

/* vec_dot4 (one weight row x 4 activation rows a + j*stride) of every variant that has
 * one, against four vec_dot calls of the same variant: bit-identical (the property the
 * kernels document; it makes a token's result independent of how the matmul groups the
 * tokens), and in any case within 1e-6 of sum|w*a|. The 4 rows get different activation
 * modes (magnitudes 1e-3 .. 600, ties, zeros); strides are the row size, the row size +
 * 64 and the row size + 7 (odd); weight and activation pointers are misaligned by 0, 1
 * or 3 bytes; nothing is written past out[3]. */
typedef struct stats4 {
    int cases, outputs, identical;
    int few_outputs, few_identical; /* vec_dot_few's (2 and 3 of the same rows) */
    double rel; /* worst |dot4 - dot| / sum|w*a| */
} stats4;

static void run_dot4_case(int t, int64_t n, int fill, int mode0, size_t extra, int misalign, stats4 *st) {
    const smoe_kernel *R = smoe_kernels_ref(t);
    const int vt = R->vec_dot_type;
    const int64_t bs = smoe_dtype_block_size(t);
    const size_t wbytes = (size_t)(n / bs) * smoe_dtype_block_bytes(t);
    const size_t abytes = (size_t)(n / smoe_dtype_block_size(vt)) * smoe_dtype_block_bytes(vt);
    const size_t stride = abytes + extra;
    uint8_t *wbuf = malloc(wbytes + 3), *abuf = malloc(4 * stride + 3);
    uint8_t *w = wbuf + misalign, *a = abuf + (misalign ? 4 - misalign : 0);
    float *x = malloc((size_t)n * sizeof *x), *wf = malloc((size_t)n * sizeof *wf), *af = malloc((size_t)n * sizeof *af);
    double absdot[4];
    make_weights(t, w, n, fill, mode0 == 1 ? 1e-2f : 1.0f);
    CHECK_OK(smoe_dequantize(t, w, wf, n));
    memset(abuf, 0x5a, 4 * stride + 3); /* the gaps between rows hold junk */
    for (int j = 0; j < 4; j++) {
        make_acts(x, n, (mode0 + j) % 6);
        R->act_quant(x, a + (size_t)j * stride, n);
        CHECK_OK(smoe_dequantize(vt, a + (size_t)j * stride, af, n));
        absdot[j] = 0;
        for (int64_t i = 0; i < n; i++) absdot[j] += fabs((double)wf[i] * af[i]);
    }
    smoe_kernel v[8];
    const int nv = smoe_kernels_all(t, v, 8);
    for (int k = 0; k < nv; k++) {
        if (!v[k].vec_dot4) continue;
        float out[5];
        out[4] = -12345.0f; /* sentinel */
        v[k].vec_dot4(n, w, a, stride, out);
        CHECK(out[4] == -12345.0f, "%s/%s vec_dot4 wrote past out[3]", smoe_dtype_name(t), v[k].isa);
        for (int j = 0; j < 4; j++) {
            const float want = v[k].vec_dot(n, w, a + (size_t)j * stride);
            const double diff = fabs((double)out[j] - want);
            const int same = memcmp(&out[j], &want, sizeof want) == 0;
            CHECK(same, "%s/%s n=%lld fill %d mode %d stride +%zu misalign %d token %d: vec_dot4 %.9g (%08x) vs vec_dot "
                  "%.9g (%08x)",
                  smoe_dtype_name(t), v[k].isa, (long long)n, fill, (mode0 + j) % 6, extra, misalign, j, out[j],
                  smoe_f32_to_bits(out[j]), want, smoe_f32_to_bits(want));
            CHECK(isfinite(out[j]) && diff <= 1e-6 * absdot[j], "%s/%s n=%lld token %d: |vec_dot4 - vec_dot| %.3g > 1e-6 * %.3g",
                  smoe_dtype_name(t), v[k].isa, (long long)n, j, diff, absdot[j]);
            st->outputs++;
            st->identical += same;
            if (absdot[j] > 0 && diff / absdot[j] > st->rel) st->rel = diff / absdot[j];
        }
        for (int nt = 2; nt <= 3 && v[k].vec_dot_few; nt++) { /* the first nt of the rows */
            float of[4];
            of[nt] = -12345.0f;
            v[k].vec_dot_few(n, w, a, stride, nt, of);
            CHECK(of[nt] == -12345.0f, "%s/%s vec_dot_few nt=%d wrote past out[%d]", smoe_dtype_name(t), v[k].isa, nt, nt - 1);
            for (int j = 0; j < nt; j++) {
                const float want = v[k].vec_dot(n, w, a + (size_t)j * stride);
                const int same = memcmp(&of[j], &want, sizeof want) == 0;
                CHECK(same, "%s/%s n=%lld fill %d stride +%zu misalign %d nt=%d token %d: vec_dot_few %.9g (%08x) vs vec_dot "
                      "%.9g (%08x)",
                      smoe_dtype_name(t), v[k].isa, (long long)n, fill, extra, misalign, nt, j, of[j],
                      smoe_f32_to_bits(of[j]), want, smoe_f32_to_bits(want));
                st->few_outputs++;
                st->few_identical += same;
            }
        }
    }
    st->cases++;
    free(wbuf), free(abuf), free(x), free(wf), free(af);
}

static void test_dot4_type(int t) {
    /* float rows: tails of 1..31 values, 8- and 16-value steps, several 512-byte segments
     * (the AVX2 kernel's unit) whole or cut; legacy rows: tails of 1..3 blocks, several
     * 32-block segments whole or cut */
    static const int64_t sizes1[] = {1, 3, 7, 8, 16, 31, 33, 56, 100, 120, 1000, 2088, 4096, 14336};
    static const int64_t blocks32[] = {1, 2, 3, 4, 5, 6, 7, 9, 45, 128, 448}; /* 128, 448: 4096, 14336 values */
    static const int64_t blocks256[] = {1, 2, 3, 7, 16, 56};
    static const size_t extras[] = {0, 64, 7};
    const int64_t bs = smoe_dtype_block_size(t);
    const int64_t *sizes = bs == 1 ? sizes1 : bs == 32 ? blocks32 : blocks256;
    const int nsizes = bs == 1 ? 14 : bs == 32 ? 11 : 6;
    stats4 st = {0};
    for (int s = 0; s < nsizes; s++) {
        const int64_t n = bs == 1 ? sizes[s] : sizes[s] * bs;
        for (int e = 0; e < 3; e++) {
            run_dot4_case(t, n, 0, 2 * e, extras[e], e, &st);
            run_dot4_case(t, n, 0, 2 * e + 1, extras[(e + 1) % 3], (e + 1) % 3, &st);
            if (bs > 1) run_dot4_case(t, n, 1 + (e & 1), e, extras[e], e, &st); /* all-ones / all-zero quants */
        }
    }
    smoe_kernel v[8];
    const int nv = smoe_kernels_all(t, v, 8);
    char isas[64];
    isas_having(t, HAS_DOT4, isas, sizeof isas);
    CHECK(nv == 0 || v[nv - 1].vec_dot4 != NULL || strcmp(v[nv - 1].isa, "scalar") != 0, "%s: scalar row without vec_dot4",
          smoe_dtype_name(t));
    printf("%-5s vec_dot4 [%-11s] %3d cases: %d of %d outputs bit-identical to vec_dot, worst diff %.2e of sum|w*a|\n",
           smoe_dtype_name(t), isas, st.cases, st.identical, st.outputs, st.rel);
    if (st.few_outputs) {
        isas_having(t, HAS_FEW, isas, sizeof isas);
        printf("%-5s vec_dot_few [%-11s]: %d of %d outputs (2 and 3 tokens) bit-identical to vec_dot\n", smoe_dtype_name(t),
               isas, st.few_identical, st.few_outputs);
    }
    /* the table: Q4_K and Q6_K have a reference vec_dot_few, other types none */
    const bool few_type = t == SMOE_DTYPE_Q4_K || t == SMOE_DTYPE_Q6_K;
    CHECK((smoe_kernels_ref(t)->vec_dot_few != NULL) == few_type, "%s: reference vec_dot_few %s", smoe_dtype_name(t),
          few_type ? "missing" : "unexpected");
    for (int k = 1; k < nv; k++)
        CHECK(v[k].vec_dot_few == NULL || v[k].vec_dot_few != smoe_kernels_ref(t)->vec_dot_few,
              "%s/%s inherits the scalar vec_dot_few", smoe_dtype_name(t), v[k].isa);
}

/* The table: the scalar rows all have a vec_dot4; a level that overrides vec_dot without
 * a vec_dot4 of its own has none (never its parent's, which would be slower). */
static void test_dot4_table(void) {
    for (int i = 0; i < NTYPES; i++) {
        const int t = k_types[i];
        const smoe_kernel *r = smoe_kernels_ref(t);
        CHECK(r && r->vec_dot4 != NULL, "%s: no reference vec_dot4", smoe_dtype_name(t));
        smoe_kernel v[8];
        const int nv = smoe_kernels_all(t, v, 8);
        for (int k = 1; k < nv; k++)
            CHECK(v[k].vec_dot4 != r->vec_dot4, "%s/%s inherits the scalar vec_dot4", smoe_dtype_name(t), v[k].isa);
    }
}

/* ------------------------------------------------------------ vec_dot_2x4 */

/* vec_dot_2x4 (weight rows w, w + w_stride x activation rows a + j*a_stride) of every
 * variant that has one, against eight vec_dot calls of the same variant: bit-identical,
 * and in any case within 1e-6 of sum|w*a|. The two weight rows get different fills and
 * magnitudes, the 4 activation rows different modes; both strides are the row size, the
 * row size + 64 or the row size + 7 (odd), the pointers misaligned by 0, 1 or 3 bytes;
 * nothing is written past out[7]. */
static const int k_types_2x4[] = {SMOE_DTYPE_Q8_0, SMOE_DTYPE_Q4_K, SMOE_DTYPE_Q6_K};
#define NTYPES_2X4 ((int)(sizeof k_types_2x4 / sizeof k_types_2x4[0]))

static void run_2x4_case(int t, int64_t n, int fill, int mode0, size_t wextra, size_t aextra, int misalign, stats4 *st) {
    const smoe_kernel *R = smoe_kernels_ref(t);
    const int vt = R->vec_dot_type;
    const int64_t bs = smoe_dtype_block_size(t);
    const size_t wbytes = (size_t)(n / bs) * smoe_dtype_block_bytes(t);
    const size_t abytes = (size_t)(n / smoe_dtype_block_size(vt)) * smoe_dtype_block_bytes(vt);
    const size_t wstride = wbytes + wextra, astride = abytes + aextra;
    uint8_t *wbuf = malloc(2 * wstride + 3), *abuf = malloc(4 * astride + 3);
    uint8_t *w = wbuf + misalign, *a = abuf + (misalign ? 4 - misalign : 0);
    float *x = malloc((size_t)n * sizeof *x), *wf = malloc((size_t)n * sizeof *wf), *af = malloc((size_t)n * sizeof *af);
    float *wf1 = malloc((size_t)n * sizeof *wf1);
    double absdot[8];
    memset(wbuf, 0x3c, 2 * wstride + 3); /* junk between the weight rows */
    make_weights(t, w, n, fill, mode0 == 1 ? 1e-2f : 1.0f);
    make_weights(t, w + wstride, n, fill ? 3 - fill : 0, mode0 == 2 ? 1e-2f : 1.0f); /* the other saturating fill */
    CHECK_OK(smoe_dequantize(t, w, wf, n));
    CHECK_OK(smoe_dequantize(t, w + wstride, wf1, n));
    memset(abuf, 0x5a, 4 * astride + 3);
    for (int j = 0; j < 4; j++) {
        make_acts(x, n, (mode0 + j) % 6);
        R->act_quant(x, a + (size_t)j * astride, n);
        CHECK_OK(smoe_dequantize(vt, a + (size_t)j * astride, af, n));
        absdot[j] = absdot[4 + j] = 0;
        for (int64_t i = 0; i < n; i++) {
            absdot[j] += fabs((double)wf[i] * af[i]);
            absdot[4 + j] += fabs((double)wf1[i] * af[i]);
        }
    }
    smoe_kernel v[8];
    const int nv = smoe_kernels_all(t, v, 8);
    for (int k = 0; k < nv; k++) {
        if (!v[k].vec_dot_2x4) continue;
        float out[9];
        out[8] = -12345.0f; /* sentinel */
        v[k].vec_dot_2x4(n, w, wstride, a, astride, out);
        CHECK(out[8] == -12345.0f, "%s/%s vec_dot_2x4 wrote past out[7]", smoe_dtype_name(t), v[k].isa);
        for (int o = 0; o < 8; o++) {
            const int r = o / 4, j = o % 4;
            const float want = v[k].vec_dot(n, w + (size_t)r * wstride, a + (size_t)j * astride);
            const double diff = fabs((double)out[o] - want);
            const int same = memcmp(&out[o], &want, sizeof want) == 0;
            CHECK(same, "%s/%s n=%lld fill %d mode %d strides +%zu +%zu misalign %d row %d token %d: vec_dot_2x4 %.9g "
                  "(%08x) vs vec_dot %.9g (%08x)",
                  smoe_dtype_name(t), v[k].isa, (long long)n, fill, (mode0 + j) % 6, wextra, aextra, misalign, r, j,
                  out[o], smoe_f32_to_bits(out[o]), want, smoe_f32_to_bits(want));
            CHECK(isfinite(out[o]) && diff <= 1e-6 * absdot[o],
                  "%s/%s n=%lld row %d token %d: |vec_dot_2x4 - vec_dot| %.3g > 1e-6 * %.3g", smoe_dtype_name(t),
                  v[k].isa, (long long)n, r, j, diff, absdot[o]);
            st->outputs++;
            st->identical += same;
            if (absdot[o] > 0 && diff / absdot[o] > st->rel) st->rel = diff / absdot[o];
        }
    }
    st->cases++;
    free(wbuf), free(abuf), free(x), free(wf), free(wf1), free(af);
}

static void test_2x4_type(int t) {
    /* Q8_0: tails of 1..3 blocks, several 64-block segments whole or cut (the AVX2
     * kernel's unit), 4096 and 14336 values; K-quants: 1..56 blocks */
    static const int64_t blocks32[] = {1, 2, 3, 4, 5, 6, 7, 9, 45, 64, 67, 128, 133, 448};
    static const int64_t blocks256[] = {1, 2, 3, 7, 16, 56};
    static const size_t extras[] = {0, 64, 7};
    const int64_t bs = smoe_dtype_block_size(t);
    const int64_t *sizes = bs == 32 ? blocks32 : blocks256;
    const int nsizes = bs == 32 ? 14 : 6;
    stats4 st = {0};
    for (int s = 0; s < nsizes; s++) {
        const int64_t n = sizes[s] * bs;
        for (int e = 0; e < 3; e++) {
            run_2x4_case(t, n, 0, 2 * e, extras[e], extras[(e + 1) % 3], e, &st);
            run_2x4_case(t, n, 0, 2 * e + 1, extras[(e + 2) % 3], extras[e], (e + 1) % 3, &st);
            run_2x4_case(t, n, 1 + (e & 1), e, extras[e], extras[e], e, &st); /* all-ones / all-zero quants */
        }
    }
    char isas[64];
    isas_having(t, HAS_2X4, isas, sizeof isas);
    printf("%-5s vec_dot_2x4 [%-11s] %3d cases: %d of %d outputs bit-identical to vec_dot, worst diff %.2e of sum|w*a|\n",
           smoe_dtype_name(t), isas, st.cases, st.identical, st.outputs, st.rel);
}

/* The table: the scalar rows of Q8_0/Q4_K/Q6_K have a vec_dot_2x4; a level never keeps
 * its parent's when it overrides vec_dot (it has its own or none); on an x86 CPU with
 * AVX2 the avx2 rows of those types have their own. */
static void test_2x4_table(void) {
    for (int i = 0; i < NTYPES_2X4; i++) {
        const int t = k_types_2x4[i];
        const smoe_kernel *r = smoe_kernels_ref(t);
        CHECK(r && r->vec_dot_2x4 != NULL, "%s: no reference vec_dot_2x4", smoe_dtype_name(t));
    }
    for (int i = 0; i < NTYPES; i++) {
        const int t = k_types[i];
        const smoe_kernel *r = smoe_kernels_ref(t);
        smoe_kernel v[8];
        const int nv = smoe_kernels_all(t, v, 8);
        for (int k = 1; k < nv; k++)
            CHECK(v[k].vec_dot_2x4 == NULL || v[k].vec_dot_2x4 != r->vec_dot_2x4, "%s/%s inherits the scalar vec_dot_2x4",
                  smoe_dtype_name(t), v[k].isa);
    }
}

/* ------------------------------------------------------------ vec_dot_4xn */

/* vec_dot_4xn (F32: weight rows w + r*w_stride, r < 4, x activation rows a + j*a_stride,
 * j < nt) of every variant that has one, against the same variant's vec_dot: each of the
 * 4 x nt outputs bit-identical (and within 1e-6 of sum|w*a|); the output stride leaves
 * gaps and the buffer ends in sentinels that must stay untouched. Row lengths 1..4099
 * (every tail of the 8-value blocks), strides of the row size or more (odd extras too),
 * pointers misaligned by 0, 4 or 8 bytes (a float row is never misaligned by less). */
static void run_4xn_case(int64_t n, int nt, size_t wextra, size_t aextra, size_t ostride, int misalign, int mode0,
                         stats4 *st) {
    const int t = SMOE_DTYPE_F32;
    const size_t wstride = 4 * (size_t)n + 4 * wextra, astride = 4 * (size_t)n + 4 * aextra;
    uint8_t *wbuf = malloc(4 * wstride + 8), *abuf = malloc(3 * astride + 8);
    uint8_t *w = wbuf + 4 * (size_t)misalign, *a = abuf + 4 * (size_t)(2 - misalign);
    float *x = malloc((size_t)n * sizeof *x);
    memset(wbuf, 0x3c, 4 * wstride + 8);
    memset(abuf, 0x5a, 3 * astride + 8);
    for (int r = 0; r < 4; r++) make_weights(t, w + (size_t)r * wstride, n, 0, r == 1 ? 1e-2f : 1.0f);
    for (int j = 0; j < nt; j++) {
        make_acts(x, n, (mode0 + j) % 6);
        memcpy(a + (size_t)j * astride, x, 4 * (size_t)n);
    }
    const size_t nout = (size_t)(nt - 1) * ostride + 4 + 8; /* + 8 sentinels */
    float *out = malloc(nout * sizeof *out);
    smoe_kernel v[8];
    const int nv = smoe_kernels_all(t, v, 8);
    for (int k = 0; k < nv; k++) {
        if (!v[k].vec_dot_4xn) continue;
        for (size_t i = 0; i < nout; i++) out[i] = -12345.0f;
        v[k].vec_dot_4xn(n, w, wstride, a, astride, nt, out, ostride);
        for (size_t i = 0; i < nout; i++) {
            const bool written = i / ostride < (size_t)nt && i % ostride < 4 && i < (size_t)(nt - 1) * ostride + 4;
            if (!written) CHECK(out[i] == -12345.0f, "F32/%s vec_dot_4xn nt=%d os=%zu wrote out[%zu]", v[k].isa, nt, ostride, i);
        }
        for (int j = 0; j < nt; j++)
            for (int r = 0; r < 4; r++) {
                const uint8_t *wr = w + (size_t)r * wstride, *ar = a + (size_t)j * astride;
                const float got = out[(size_t)j * ostride + (size_t)r];
                const float want = v[k].vec_dot(n, wr, ar);
                double absdot = 0;
                for (int64_t i = 0; i < n; i++) {
                    float u, z;
                    memcpy(&u, wr + 4 * i, 4);
                    memcpy(&z, ar + 4 * i, 4);
                    absdot += fabs((double)u * z);
                }
                const double diff = fabs((double)got - want);
                const int same = memcmp(&got, &want, sizeof want) == 0;
                CHECK(same, "F32/%s n=%lld nt=%d strides +%zu +%zu misalign %d row %d token %d: vec_dot_4xn %.9g (%08x) vs "
                      "vec_dot %.9g (%08x)",
                      v[k].isa, (long long)n, nt, wextra, aextra, misalign, r, j, got, smoe_f32_to_bits(got), want,
                      smoe_f32_to_bits(want));
                CHECK(isfinite(got) && diff <= 1e-6 * absdot, "F32/%s n=%lld row %d token %d: |vec_dot_4xn - vec_dot| %.3g > 1e-6 * %.3g",
                      v[k].isa, (long long)n, r, j, diff, absdot);
                st->outputs++;
                st->identical += same;
                if (absdot > 0 && diff / absdot > st->rel) st->rel = diff / absdot;
            }
    }
    st->cases++;
    free(wbuf), free(abuf), free(x), free(out);
}

static void test_4xn(void) {
    static const int64_t sizes[] = {1, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 100, 128, 256, 1000, 4099};
    static const size_t extras[] = {0, 16, 7};
    stats4 st = {0};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int nt = 1; nt <= 3; nt++)
            for (int e = 0; e < 3; e++)
                run_4xn_case(sizes[s], nt, extras[e], extras[(e + 1) % 3], 4 + (size_t)e * 5, e, (int)s + e, &st);
    char isas[64];
    isas_having(SMOE_DTYPE_F32, HAS_4XN, isas, sizeof isas);
    smoe_kernel v[8];
    printf("F32   vec_dot_4xn [%-11s] %3d cases: %d of %d outputs bit-identical to vec_dot, worst diff %.2e of sum|w*a|\n",
           isas, st.cases, st.identical, st.outputs, st.rel);
    /* the table: the scalar F32 row has one; no other type and no inherited one */
    CHECK(smoe_kernels_ref(SMOE_DTYPE_F32)->vec_dot_4xn != NULL, "F32: no reference vec_dot_4xn");
    for (int i = 0; i < NTYPES; i++) {
        const int t = k_types[i];
        const smoe_kernel *r = smoe_kernels_ref(t);
        const int n = smoe_kernels_all(t, v, 8);
        for (int k = 0; k < n; k++) {
            if (t != SMOE_DTYPE_F32) CHECK(v[k].vec_dot_4xn == NULL, "%s/%s has a vec_dot_4xn", smoe_dtype_name(t), v[k].isa);
            if (k > 0) CHECK(v[k].vec_dot_4xn == NULL || v[k].vec_dot_4xn != r->vec_dot_4xn, "%s/%s inherits the scalar vec_dot_4xn",
                             smoe_dtype_name(t), v[k].isa);
        }
    }
}

/* ------------------------------------------------------------ vec_dot_4x1 */

/* vec_dot_4x1 (weight rows w + r*w_stride, r < 4, x one activation row) of every variant
 * that has one, against the same variant's vec_dot: each of the 4 outputs bit-identical
 * (and within 1e-6 of sum|w*a|), out[4] untouched. The rows get different fills and
 * magnitudes; the stride is the row size, the row size + 64 or + 7 (odd), the pointers
 * misaligned by 0, 1 or 3 bytes. */
static void run_4x1_case(int t, int64_t n, int fill, int mode, size_t wextra, int misalign, stats4 *st) {
    const smoe_kernel *R = smoe_kernels_ref(t);
    const int vt = R->vec_dot_type;
    const size_t wbytes = (size_t)(n / smoe_dtype_block_size(t)) * smoe_dtype_block_bytes(t);
    const size_t abytes = (size_t)(n / smoe_dtype_block_size(vt)) * smoe_dtype_block_bytes(vt);
    const size_t wstride = wbytes + wextra;
    uint8_t *wbuf = malloc(4 * wstride + 3), *abuf = malloc(abytes + 3);
    uint8_t *w = wbuf + misalign, *a = abuf + (misalign ? 4 - misalign : 0);
    float *x = malloc((size_t)n * sizeof *x), *wf = malloc((size_t)n * sizeof *wf), *af = malloc((size_t)n * sizeof *af);
    memset(wbuf, 0x3c, 4 * wstride + 3); /* junk between the weight rows */
    for (int r = 0; r < 4; r++)
        make_weights(t, w + (size_t)r * wstride, n, r == 3 ? fill : 0, r == 1 ? 1e-2f : r == 2 ? 30.0f : 1.0f);
    make_acts(x, n, mode);
    R->act_quant(x, a, n);
    CHECK_OK(smoe_dequantize(vt, a, af, n));
    smoe_kernel v[8];
    const int nv = smoe_kernels_all(t, v, 8);
    for (int k = 0; k < nv; k++) {
        if (!v[k].vec_dot_4x1) continue;
        float out[5];
        out[4] = -12345.0f; /* sentinel */
        v[k].vec_dot_4x1(n, w, wstride, a, out);
        CHECK(out[4] == -12345.0f, "%s/%s vec_dot_4x1 wrote past out[3]", smoe_dtype_name(t), v[k].isa);
        for (int r = 0; r < 4; r++) {
            const uint8_t *wr = w + (size_t)r * wstride;
            const float want = v[k].vec_dot(n, wr, a);
            CHECK_OK(smoe_dequantize(t, wr, wf, n));
            double absdot = 0;
            for (int64_t i = 0; i < n; i++) absdot += fabs((double)wf[i] * af[i]);
            const double diff = fabs((double)out[r] - want);
            const int same = memcmp(&out[r], &want, sizeof want) == 0;
            CHECK(same, "%s/%s n=%lld fill %d mode %d stride +%zu misalign %d row %d: vec_dot_4x1 %.9g (%08x) vs vec_dot %.9g (%08x)",
                  smoe_dtype_name(t), v[k].isa, (long long)n, fill, mode, wextra, misalign, r, out[r],
                  smoe_f32_to_bits(out[r]), want, smoe_f32_to_bits(want));
            CHECK(isfinite(out[r]) && diff <= 1e-6 * absdot, "%s/%s n=%lld row %d: |vec_dot_4x1 - vec_dot| %.3g > 1e-6 * %.3g",
                  smoe_dtype_name(t), v[k].isa, (long long)n, r, diff, absdot);
            st->outputs++;
            st->identical += same;
            if (absdot > 0 && diff / absdot > st->rel) st->rel = diff / absdot;
        }
    }
    st->cases++;
    free(wbuf), free(abuf), free(x), free(wf), free(af);
}

static void test_4x1_type(int t) {
    /* 32-value types: tails of 1..3 blocks around the legacy kernels' 4-block step, up to
     * 14336 values; K-quants: 1..56 blocks; the float types: odd lengths too */
    static const int64_t blocks32[] = {1, 2, 3, 4, 5, 6, 7, 9, 32, 45, 112, 448};
    static const int64_t blocks256[] = {1, 2, 3, 4, 7, 14, 56};
    static const int64_t lens_float[] = {1, 7, 31, 32, 33, 63, 100, 1024, 3584, 4099};
    static const size_t extras[] = {0, 64, 7};
    const int64_t bs = smoe_dtype_block_size(t);
    const bool flt = t == SMOE_DTYPE_F16 || t == SMOE_DTYPE_BF16;
    const int64_t *sizes = flt ? lens_float : bs == 32 ? blocks32 : blocks256;
    const int nsizes = flt ? 10 : bs == 32 ? 12 : 7;
    stats4 st = {0};
    for (int s = 0; s < nsizes; s++) {
        const int64_t n = flt ? sizes[s] : sizes[s] * bs;
        for (int e = 0; e < 3; e++) {
            run_4x1_case(t, n, 0, (s + 2 * e) % 6, extras[e], e, &st);
            if (!flt) run_4x1_case(t, n, 1 + (e & 1), (s + e) % 6, extras[(e + 1) % 3], (e + 1) % 3, &st);
        }
    }
    char isas[64];
    isas_having(t, HAS_4X1, isas, sizeof isas);
    printf("%-5s vec_dot_4x1 [%-11s] %3d cases: %d of %d outputs bit-identical to vec_dot, worst diff %.2e of sum|w*a|\n",
           smoe_dtype_name(t), isas, st.cases, st.identical, st.outputs, st.rel);
}

/* The table: every scalar row but F32's has a vec_dot_4x1 (F32 has its 4xn); a level
 * never keeps its parent's when it overrides vec_dot; with AVX2 the avx2 rows have their
 * own. */
static void test_4x1_table(void) {
    for (int i = 0; i < NTYPES; i++) {
        const int t = k_types[i];
        const smoe_kernel *r = smoe_kernels_ref(t);
        if (!r) continue;
        CHECK((r->vec_dot_4x1 != NULL) == (t != SMOE_DTYPE_F32), "%s: reference vec_dot_4x1 %s", smoe_dtype_name(t),
              r->vec_dot_4x1 ? "present" : "missing");
        smoe_kernel v[8];
        const int nv = smoe_kernels_all(t, v, 8);
        for (int k = 1; k < nv; k++) {
            CHECK(v[k].vec_dot_4x1 == NULL || v[k].vec_dot_4x1 != r->vec_dot_4x1, "%s/%s inherits the scalar vec_dot_4x1",
                  smoe_dtype_name(t), v[k].isa);
            if (strcmp(v[k].isa, "avx2") == 0)
                CHECK((v[k].vec_dot_4x1 != NULL) == (t != SMOE_DTYPE_F32), "%s/avx2: vec_dot_4x1 %s", smoe_dtype_name(t),
                      v[k].vec_dot_4x1 ? "present" : "missing");
        }
    }
}

int main(void) {
    /* before anything builds the table in this process */
    test_cap("scalar");
    test_cap("avx2");
    test_cap("neon");
    test_cap("bogus");
    test_dispatch();
    test_special();
    for (int i = 0; i < NTYPES; i++) test_type(k_types[i]);
    test_dot4_table();
    for (int i = 0; i < NTYPES; i++) test_dot4_type(k_types[i]);
    test_2x4_table();
    for (int i = 0; i < NTYPES_2X4; i++) test_2x4_type(k_types_2x4[i]);
    test_4xn();
    test_4x1_table();
    for (int i = 0; i < NTYPES; i++)
        if (k_types[i] != SMOE_DTYPE_F32) test_4x1_type(k_types[i]);
    return TEST_REPORT();
}
