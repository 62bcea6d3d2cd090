/*
 * quantize_k.c - reference quantizers f32 -> K-quants (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K),
 * 256-value super-blocks, the layouts of blocks.h / q_k.c.
 *
 * What it does not do: no importance-matrix weighting, no Q8_K (activation type), no
 * attempt at speed beyond keeping the search affordable (50-100 ns a value on one
 * core, gcc -O2 on x86-64).
 *
 * The objective is the plain sum of squared errors of the block, exactly as the
 * dequantizer will reproduce it. Every K-quant is "super-scale(s) in fp16 x small
 * integer scale per sub-block x small integer quant", and for a fixed effective scale
 * (and offset) rounding each value to its nearest level is optimal, so all the work is
 * in choosing the scales. That is done in three steps per super-block:
 *
 *   1. Per sub-block, a continuous fit: a grid of candidate scales around "the extreme
 *      value lands on the extreme level" (and a little past it, which clips outliers),
 *      each followed by the least-squares scale (and offset) for the levels it
 *      produced, then a few rounds of re-rounding with the refitted scale. The error
 *      of each candidate is computed in closed form from running sums.
 *   2. Super-scale candidates from the largest sub-block scale, and for each one the
 *      best integer sub-block scale (and min) in a neighbourhood of the continuous
 *      optimum, judged by the exact error after re-rounding every value.
 *   3. Least-squares refits of the super-scale(s) given the chosen integers, kept only
 *      when the exact error drops.
 *
 * llama.cpp's reference quantizer does a similar search but weights the error by |x|
 * or x^2 (and Q2_K by absolute error), rounds the sub-block scales once and never
 * revisits the super-scale. On the fixture model's tensors this file's blocks have
 * 2-12% lower plain RMSE than llama.cpp's own files, depending on the type
 * (tests/test_quantize.c compares them tensor by tensor).
 *
 * Values are computed with the same float operations as the decoder ((d*sc)*q - dmin*m)
 * so the error that is minimised is the error the decoder produces.
 */
#include "quant/blocks.h"
#include "quant/quant.h"

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

void smoe_quantize_row_q2_K(const float *src, void *dst, int64_t n);
void smoe_quantize_row_q3_K(const float *src, void *dst, int64_t n);
void smoe_quantize_row_q4_K(const float *src, void *dst, int64_t n);
void smoe_quantize_row_q5_K(const float *src, void *dst, int64_t n);
void smoe_quantize_row_q6_K(const float *src, void *dst, int64_t n);

/* ------------------------------------------------------------ small helpers */

/* Nearest integer to v, clamped to [lo, hi]; NaN gives lo. Inside the range the
 * rounding is half-to-even via the 1.5 * 2^23 trick (exact for |v| < 2^22, and the
 * clamp keeps v far inside that), so no float -> int conversion is ever out of range. */
static inline int nearest_clamp(float v, int lo, int hi) {
    if (!(v > (float)lo)) return lo;
    if (v >= (float)hi) return hi;
    const float t = v + 12582912.0f; /* a separate float: rounded even with x87 excess precision */
    return (int)(t - 12582912.0f);
}

/* The same as a float, branch-free (so loops over it vectorise): clamp, then round
 * half-to-even with the 1.5 * 2^23 trick; the comparisons are written so that NaN
 * gives lo. */
static inline float nearest_clampf(float v, float lo, float hi) {
    v = v > lo ? v : lo;
    v = v < hi ? v : hi;
    const float t = v + 12582912.0f;
    return t - 12582912.0f;
}

static inline void put_f16(uint8_t *p, float v) {
    const uint16_t h = smoe_f32_to_f16(v);
    p[0] = (uint8_t)(h & 0xff);
    p[1] = (uint8_t)(h >> 8);
}

/* v as it will be decoded from an fp16 field, clamped to the finite half range. */
static inline float f16_round(float v) {
    if (v > 65504.0f) v = 65504.0f;
    if (v < -65504.0f) v = -65504.0f;
    return smoe_f16_to_f32(smoe_f32_to_f16(v));
}

/* The fp16 value next to v (already fp16-exact) in magnitude: dir = +1 away from zero,
 * -1 towards it (never past zero or the largest finite half). */
static float f16_nudge(float v, int dir) {
    const uint16_t h = smoe_f32_to_f16(v);
    int mag = h & 0x7fff;
    mag += dir;
    if (mag < 0) mag = 0;
    if (mag > 0x7bff) mag = 0x7bff;
    return smoe_f16_to_f32((uint16_t)((h & 0x8000) | mag));
}

/* A super-block's values with NaN replaced by 0 and infinities saturated (see
 * quantize.c): the search below must only ever see finite numbers. Large finite values
 * are also limited so that sums of squares cannot overflow to infinity. */
static const float *block_clean(const float *x, float *tmp) {
    const float lim = 1e15f;
    int ok = 1;
    for (int i = 0; i < SMOE_QK_K; i++) ok &= fabsf(x[i]) <= lim ? 1 : 0; /* false for NaN */
    if (ok) return x;
    for (int i = 0; i < SMOE_QK_K; i++) {
        const float v = x[i];
        tmp[i] = isnan(v) ? 0.0f : v > lim ? lim : v < -lim ? -lim : v;
    }
    return tmp;
}

/* ------------------------------------------------------------ symmetric: s * q */

/* The loops below run over 16 or 32 values in groups of 4 with one accumulator per
 * lane: that lets the compiler vectorise them without re-associating a float sum
 * (which it may not do on its own), and the result does not depend on the ISA. Lanes
 * are separate scalars where gcc vectorises that form (it keeps them in registers in
 * the sanitizer build too) and arrays where it only vectorises those (aff_refit). */

static inline float sym_sq(float x, float s, float is, float qlo, float qhi) {
    const float d = s * nearest_clampf(x * is, qlo, qhi) - x;
    return d * d;
}

/* Exact squared error of x[0..n) on levels s*q, q in [qlo, qhi], each value rounded to
 * its nearest level. n is a multiple of 4. */
static float sym_err(const float *x, int n, float s, float qlo, float qhi) {
    const float is = s != 0.0f ? 1.0f / s : 0.0f;
    float e0 = 0.0f, e1 = 0.0f, e2 = 0.0f, e3 = 0.0f;
    for (int i = 0; i < n; i += 4) {
        e0 += sym_sq(x[i], s, is, qlo, qhi);
        e1 += sym_sq(x[i + 1], s, is, qlo, qhi);
        e2 += sym_sq(x[i + 2], s, is, qlo, qhi);
        e3 += sym_sq(x[i + 3], s, is, qlo, qhi);
    }
    return (e0 + e1) + (e2 + e3);
}

/* The levels sym_err chose, as integers. */
static void sym_levels(const float *x, int n, float s, int qlo, int qhi, int8_t *L) {
    const float is = s != 0.0f ? 1.0f / s : 0.0f;
    for (int i = 0; i < n; i++) L[i] = (int8_t)nearest_clamp(x[i] * is, qlo, qhi);
}

typedef struct sym_sums {
    float xq, qq;
} sym_sums;

static inline void sym_acc(sym_sums *t, float x, float is, float qlo, float qhi) {
    const float q = nearest_clampf(x * is, qlo, qhi);
    t->xq += x * q;
    t->qq += q * q;
}

/* Levels of x for scale s, the least-squares scale for those levels, and its error
 * (closed form: sum x^2 - (sum xq)^2 / sum q^2). Returns the refitted scale. */
static float sym_refit(const float *x, int n, float s, float qlo, float qhi, float sumx2, float *err) {
    const float is = 1.0f / s;
    sym_sums t0 = {0, 0}, t1 = {0, 0}, t2 = {0, 0}, t3 = {0, 0};
    for (int i = 0; i < n; i += 4) {
        sym_acc(&t0, x[i], is, qlo, qhi);
        sym_acc(&t1, x[i + 1], is, qlo, qhi);
        sym_acc(&t2, x[i + 2], is, qlo, qhi);
        sym_acc(&t3, x[i + 3], is, qlo, qhi);
    }
    const float sxq = (t0.xq + t1.xq) + (t2.xq + t3.xq);
    const float sqq = (t0.qq + t1.qq) + (t2.qq + t3.qq);
    if (sqq <= 0.0f) {
        *err = sumx2;
        return 0.0f;
    }
    *err = sumx2 - sxq * sxq / sqq;
    return sxq / sqq;
}

/* Search effort. A grid is the set of starting points of the continuous sub-block fit:
 * extreme level + step*k for k in [klo, khi]. Every start is followed by a
 * least-squares refit, so the grid only has to reach the different rounding patterns;
 * the best steps and ranges differ per type and were tuned on the fixture model's
 * tensors (random weights) by the RMSE against llama.cpp's files, keeping the cost
 * around a hundred flops per value: grids twice as dense gain < 0.3% RMSE. */
typedef struct grid {
    float step;
    int klo, khi;
} grid;
static const grid GRID_Q2 = {0.2f, -4, 5};
static const grid GRID_Q3 = {0.2f, -3, 4};
static const grid GRID_Q4 = {0.5f, -4, 2};
static const grid GRID_Q5 = {0.5f, -4, 4};
static const grid GRID_Q6 = {1.0f, -5, 2};
#define REFIT_ROUNDS 3 /* re-round + refit rounds after the grid */
#define SYM_ND 4       /* super-scale candidates of the symmetric types */

/* Continuous least-squares scale for one sub-block with levels [-nmax, nmax-1]. The
 * sign of the result says which end the largest value uses: a negative scale puts it on
 * the extra level -nmax. */
static float fit_sym(const float *x, int n, int nmax, const grid *g) {
    float amax = 0.0f, max = 0.0f, sumx2 = 0.0f;
    for (int i = 0; i < n; i++) {
        sumx2 += x[i] * x[i];
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    }
    if (amax < 1e-30f) return 0.0f;
    const float qlo = (float)-nmax, qhi = (float)(nmax - 1);
    float best = 0.0f, best_err = sumx2;
    /* max lands near level -nmax (a divisor above nmax clips it), or near +(nmax-1) */
    for (int k = g->klo; k <= g->khi; k++) {
        for (int side = 0; side < 2; side++) {
            const float t = side == 0 ? -((float)nmax + g->step * (float)k) : (qhi + g->step * (float)k);
            if (!(t < 0.0f || t > 0.5f)) continue;
            float err;
            const float s = sym_refit(x, n, max / t, qlo, qhi, sumx2, &err);
            if (s != 0.0f && err < best_err) best_err = err, best = s;
        }
    }
    /* re-round with the refitted scale until it stops helping */
    for (int it = 0; it < REFIT_ROUNDS && best != 0.0f; it++) {
        float err;
        const float s = sym_refit(x, n, best, qlo, qhi, sumx2, &err);
        if (!(s != 0.0f && err < best_err * (1.0f - 1e-6f))) break;
        best_err = err, best = s;
    }
    return best;
}

/* Super-block of nsub sub-blocks of len values, each value (d*sc_j)*q with q in
 * [-nmax, nmax-1] and sc_j in [-scn, scn-1]. Fills sc[], L[] (signed levels) and *d
 * (fp16-exact); returns the exact squared error. */
static float sym_block(const float *x, int nsub, int len, int nmax, int scn, const grid *g, int *sc, int8_t *L,
                       float *d_out) {
    const float qlo = (float)-nmax, qhi = (float)(nmax - 1);
    float s[16];
    float smax = 0.0f;
    for (int j = 0; j < nsub; j++) {
        s[j] = fit_sym(x + j * len, len, nmax, g);
        if (fabsf(s[j]) > fabsf(smax)) smax = s[j];
    }
    float best_err = 0.0f;
    for (int i = 0; i < nsub * len; i++) best_err += x[i] * x[i];
    memset(L, 0, (size_t)(nsub * len));
    for (int j = 0; j < nsub; j++) sc[j] = 0;
    *d_out = 0.0f;
    if (smax == 0.0f) return best_err;

    /* Super-scale candidates: the largest sub-block scale on the extra level -scn (or a
     * little inside it, which rounds the others differently), or on +(scn-1); then the
     * least-squares super-scale of the best integers found, while it helps. */
    float dcand[SYM_ND + 1];
    int nd = 0;
    for (int k = 0; k < SYM_ND; k++) dcand[nd++] = smax / -((float)scn - 0.5f * (float)k);
    dcand[nd++] = smax / (float)(scn - 1);
    int cur_sc[16];
    for (int pass = 0; pass < nd + 2; pass++) {
        float d;
        if (pass < nd) {
            d = f16_round(dcand[pass]);
        } else {
            double num = 0, den = 0;
            for (int j = 0; j < nsub; j++) {
                double sxq = 0, sqq = 0;
                for (int i = 0; i < len; i++) {
                    sxq += (double)x[j * len + i] * L[j * len + i];
                    sqq += L[j * len + i] * L[j * len + i];
                }
                num += sc[j] * sxq;
                den += (double)(sc[j] * sc[j]) * sqq;
            }
            d = den > 0 ? f16_round((float)(num / den)) : 0.0f;
            if (d == *d_out) break;
        }
        if (d == 0.0f) continue;
        float tot = 0.0f;
        for (int j = 0; j < nsub && tot < best_err; j++) {
            const int r = nearest_clamp(s[j] / d, -scn, scn - 1);
            float be = FLT_MAX;
            for (int c = r - 1; c <= r + 1; c++) {
                if (c < -scn || c > scn - 1) continue;
                const float e = sym_err(x + j * len, len, d * (float)c, qlo, qhi);
                if (e < be) be = e, cur_sc[j] = c;
            }
            tot += be;
        }
        if (tot < best_err) {
            best_err = tot;
            *d_out = d;
            for (int j = 0; j < nsub; j++) {
                sc[j] = cur_sc[j];
                sym_levels(x + j * len, len, d * (float)sc[j], -nmax, nmax - 1, L + j * len);
            }
        } else if (pass >= nd) {
            break;
        }
    }
    /* Polish: the neighbouring fp16 super-scales with the same integer scales (the
     * least-squares value above can land one fp16 step off the best one). */
    for (int it = 0; it < 2 && *d_out != 0.0f; it++) {
        bool moved = false;
        for (int dir = -1; dir <= 1; dir += 2) {
            const float d = f16_nudge(*d_out, dir);
            float tot = 0.0f;
            for (int j = 0; j < nsub && tot < best_err; j++) tot += sym_err(x + j * len, len, d * (float)sc[j], qlo, qhi);
            if (tot < best_err) {
                best_err = tot, *d_out = d, moved = true;
                for (int j = 0; j < nsub; j++) sym_levels(x + j * len, len, d * (float)sc[j], -nmax, nmax - 1, L + j * len);
            }
        }
        if (!moved) break;
    }
    return best_err;
}

/* ------------------------------------------------------------ affine: A * q - B */

static inline float aff_sq(float x, float A, float B, float iA, float qmax) {
    const float d = A * nearest_clampf((x + B) * iA, 0.0f, qmax) - B - x;
    return d * d;
}

/* Exact squared error of x[0..n) on levels A*q - B, q in [0, qmax] (n a multiple of 4). */
static float aff_err(const float *x, int n, float A, float B, float qmax) {
    const float iA = A != 0.0f ? 1.0f / A : 0.0f;
    float e0 = 0.0f, e1 = 0.0f, e2 = 0.0f, e3 = 0.0f;
    for (int i = 0; i < n; i += 4) {
        e0 += aff_sq(x[i], A, B, iA, qmax);
        e1 += aff_sq(x[i + 1], A, B, iA, qmax);
        e2 += aff_sq(x[i + 2], A, B, iA, qmax);
        e3 += aff_sq(x[i + 3], A, B, iA, qmax);
    }
    return (e0 + e1) + (e2 + e3);
}

static void aff_levels(const float *x, int n, float A, float B, int qmax, uint8_t *L) {
    const float iA = A != 0.0f ? 1.0f / A : 0.0f;
    for (int i = 0; i < n; i++) L[i] = (uint8_t)nearest_clamp((x[i] + B) * iA, 0, qmax);
}

/* Levels of x on the grid q = round((x - lo) * iscale), then the least-squares (A, B)
 * with B >= 0 (the offset -B never above zero: mins are stored unsigned) and its error
 * in closed form. The sums are taken over y = x - lo, which is of the size of the
 * block's spread: a block far from zero (a large offset, a small spread) would lose
 * its scale to cancellation in sums over x. Returns 0 when the fit is degenerate. */
static int aff_refit(const float *x, int n, float lo, float iscale, float qmax, float *A, float *B, float *err) {
    float al[4] = {0, 0, 0, 0}, all[4] = {0, 0, 0, 0}, ayl[4] = {0, 0, 0, 0};
    float ay[4] = {0, 0, 0, 0}, ayy[4] = {0, 0, 0, 0};
    for (int i = 0; i < n; i += 4)
        for (int k = 0; k < 4; k++) {
            const float y = x[i + k] - lo;
            const float l = nearest_clampf(y * iscale, 0.0f, qmax);
            al[k] += l;
            all[k] += l * l;
            ayl[k] += y * l;
            ay[k] += y;
            ayy[k] += y * y;
        }
    const float sl = (al[0] + al[1]) + (al[2] + al[3]);
    const float sll = (all[0] + all[1]) + (all[2] + all[3]);
    const float syl = (ayl[0] + ayl[1]) + (ayl[2] + ayl[3]);
    const float sy = (ay[0] + ay[1]) + (ay[2] + ay[3]);
    const float syy = (ayy[0] + ayy[1]) + (ayy[2] + ayy[3]);
    const float fn = (float)n;
    const float D = fn * sll - sl * sl;
    if (!(D > 0.0f)) return 0;
    float a = (fn * syl - sy * sl) / D;
    float c = (sll * sy - sl * syl) / D; /* y ~ a*l + c, i.e. x ~ a*l + (c + lo) */
    if (c + lo > 0.0f) {                  /* offset above zero: fit x ~ a*l instead */
        c = -lo;
        a = (syl + lo * sl) / sll;
    }
    if (!(a > 0.0f)) return 0;
    *A = a, *B = -(c + lo);
    *err = syy + a * a * sll + fn * c * c - 2.0f * a * syl - 2.0f * c * sy + 2.0f * a * c * sl;
    return 1;
}

/* Continuous (A, B) for one sub-block, levels [0, qmax]. */
static void fit_affine(const float *x, int n, int qmax, const grid *g, float *A_out, float *B_out) {
    float lo = x[0], hi = x[0];
    for (int i = 0; i < n; i++) {
        if (x[i] < lo) lo = x[i];
        if (x[i] > hi) hi = x[i];
    }
    if (lo > 0.0f) lo = 0.0f;
    if (!(hi > lo)) { /* constant block at lo <= 0 */
        *A_out = 0.0f, *B_out = -lo;
        return;
    }
    const float fq = (float)qmax;
    float bA = (hi - lo) / fq, bB = -lo;
    float best = FLT_MAX;
    for (int k = g->klo; k <= g->khi; k++) {
        const float iscale = (fq + g->step * (float)k) / (hi - lo);
        float A, B, err;
        if (aff_refit(x, n, lo, iscale, fq, &A, &B, &err) && err < best) best = err, bA = A, bB = B;
    }
    for (int it = 0; it < REFIT_ROUNDS && best < FLT_MAX; it++) {
        float A, B, err;
        if (!aff_refit(x, n, -bB, 1.0f / bA, fq, &A, &B, &err) || !(err < best * (1.0f - 1e-6f))) break;
        best = err, bA = A, bB = B;
    }
    *A_out = bA, *B_out = bB;
}

/* Super-block of nsub sub-blocks of len values, each value (d*sc_j)*q - dmin*m_j with
 * q in [0, qmax] and sc_j, m_j in [0, scmax]. Fills sc[], m[], L[], *d, *dmin (fp16-exact);
 * returns the exact squared error. `width` is how far around the rounded continuous
 * scale/min the integer search goes. */
static float aff_block(const float *x, int nsub, int len, int qmax, int scmax, const grid *g, int width, int *sc, int *m,
                       uint8_t *L, float *d_out, float *dmin_out) {
    float A[16], B[16];
    float maxA = 0.0f, maxB = 0.0f;
    for (int j = 0; j < nsub; j++) {
        fit_affine(x + j * len, len, qmax, g, &A[j], &B[j]);
        if (A[j] > maxA) maxA = A[j];
        if (B[j] > maxB) maxB = B[j];
    }
    float best_err = 0.0f;
    for (int i = 0; i < nsub * len; i++) best_err += x[i] * x[i];
    memset(L, 0, (size_t)(nsub * len));
    for (int j = 0; j < nsub; j++) sc[j] = m[j] = 0;
    *d_out = *dmin_out = 0.0f;
    if (maxA == 0.0f && maxB == 0.0f) return best_err;

    const float fq = (float)qmax;
    int cur_sc[16], cur_m[16];
    float dc = maxA / (float)scmax, mc = maxB / (float)scmax;
    for (int pass = 0; pass < 4; pass++) {
        const float d = f16_round(dc), dm = f16_round(mc);
        if (!(d >= 0.0f && dm >= 0.0f)) break;
        float tot = 0.0f;
        for (int j = 0; j < nsub && tot < best_err; j++) {
            const float *xj = x + j * len;
            const int ra = d > 0.0f ? nearest_clamp(A[j] / d, 0, scmax) : 0;
            const int rb = dm > 0.0f ? nearest_clamp(B[j] / dm, 0, scmax) : 0;
            const int ww = pass == 0 ? width : 1; /* later passes only adjust */
            const int wa = d > 0.0f ? ww : 0, wb = dm > 0.0f ? ww : 0;
            float be = FLT_MAX;
            for (int a = ra - wa; a <= ra + wa; a++) {
                if (a < 0 || a > scmax) continue;
                for (int b = rb - wb; b <= rb + wb; b++) {
                    if (b < 0 || b > scmax) continue;
                    const float e = aff_err(xj, len, d * (float)a, dm * (float)b, fq);
                    if (e < be) be = e, cur_sc[j] = a, cur_m[j] = b;
                }
            }
            tot += be;
        }
        if (tot < best_err) {
            best_err = tot;
            *d_out = d, *dmin_out = dm;
            for (int j = 0; j < nsub; j++) {
                sc[j] = cur_sc[j], m[j] = cur_m[j];
                aff_levels(x + j * len, len, d * (float)sc[j], dm * (float)m[j], qmax, L + j * len);
            }
        } else if (pass > 0) {
            break;
        }
        /* least-squares (d, dmin) for the chosen integers: x ~ d*u - dmin*v with
         * u = sc_j*q, v = m_j; a 2x2 normal system over the whole super-block */
        double suu = 0, suv = 0, svv = 0, sxu = 0, sxv = 0; /* double: exact for exact data */
        for (int j = 0; j < nsub; j++) {
            const double v = m[j];
            for (int i = 0; i < len; i++) {
                const double u = sc[j] * L[j * len + i], xv = x[j * len + i];
                suu += u * u, suv += u * v, svv += v * v, sxu += xv * u, sxv += xv * v;
            }
        }
        const double D = suu * svv - suv * suv;
        if (D > 0) {
            dc = (float)((sxu * svv - sxv * suv) / D);
            mc = (float)((sxu * suv - sxv * suu) / D); /* x ~ dc*u - mc*v */
        } else if (suu > 0) {
            dc = (float)(sxu / suu), mc = 0.0f;
        } else {
            break;
        }
        if (mc < 0.0f) { /* no negative dmin: refit d alone */
            mc = 0.0f;
            if (!(suu > 0)) break;
            dc = (float)(sxu / suu);
        }
    }
    /* Polish: neighbouring fp16 values of d and dmin, one at a time, same integers. */
    for (int it = 0; it < 2 && (*d_out != 0.0f || *dmin_out != 0.0f); it++) {
        bool moved = false;
        for (int k = 0; k < 4; k++) {
            const float d = k < 2 ? f16_nudge(*d_out, k == 0 ? -1 : 1) : *d_out;
            const float dm = k >= 2 ? f16_nudge(*dmin_out, k == 2 ? -1 : 1) : *dmin_out;
            float tot = 0.0f;
            for (int j = 0; j < nsub && tot < best_err; j++)
                tot += aff_err(x + j * len, len, d * (float)sc[j], dm * (float)m[j], fq);
            if (tot < best_err) {
                best_err = tot, *d_out = d, *dmin_out = dm, moved = true;
                for (int j = 0; j < nsub; j++)
                    aff_levels(x + j * len, len, d * (float)sc[j], dm * (float)m[j], qmax, L + j * len);
            }
        }
        if (!moved) break;
    }
    return best_err;
}

/* ------------------------------------------------------------ packers */

/* Q2_K/Q3_K 2-bit fields: value 128h + 32k + l goes to bits 2k of qs[32h + l]. */
static void pack_2bit(uint8_t *qs, const uint8_t *L) {
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            const uint8_t *v = L + 128 * h + l;
            qs[32 * h + l] = (uint8_t)((v[0] & 3) | ((v[32] & 3) << 2) | ((v[64] & 3) << 4) | ((v[96] & 3) << 6));
        }
}

/* Q4_K/Q5_K 12-byte scale/min packing (the inverse of q_k.c's k_scale_min). */
static void pack_k_scales(uint8_t *s, const int *sc, const int *m) {
    for (int j = 0; j < 4; j++) {
        s[j] = (uint8_t)((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
        s[j + 4] = (uint8_t)((m[j] & 63) | ((m[j + 4] >> 4) << 6));
        s[j + 8] = (uint8_t)((sc[j + 4] & 15) | ((m[j + 4] & 15) << 4));
    }
}

/* ------------------------------------------------------------ the five types */

void smoe_quantize_row_q2_K(const float *src, void *dst, int64_t n) {
    smoe_block_q2_K *b = dst;
    float tmp[SMOE_QK_K];
    for (int64_t i = 0; i < n / SMOE_QK_K; i++, b++) {
        const float *x = block_clean(src + i * SMOE_QK_K, tmp);
        int sc[16], m[16];
        uint8_t L[SMOE_QK_K];
        float d, dmin;
        aff_block(x, 16, 16, 3, 15, &GRID_Q2, 2, sc, m, L, &d, &dmin); /* 4-bit scales: search +-2 */
        for (int j = 0; j < 16; j++) b->scales[j] = (uint8_t)(sc[j] | (m[j] << 4));
        pack_2bit(b->qs, L);
        put_f16(b->d, d);
        put_f16(b->dmin, dmin);
    }
}

void smoe_quantize_row_q3_K(const float *src, void *dst, int64_t n) {
    smoe_block_q3_K *b = dst;
    float tmp[SMOE_QK_K];
    for (int64_t i = 0; i < n / SMOE_QK_K; i++, b++) {
        const float *x = block_clean(src + i * SMOE_QK_K, tmp);
        int sc[16];
        int8_t Ls[SMOE_QK_K];
        float d;
        sym_block(x, 16, 16, 4, 32, &GRID_Q3, sc, Ls, &d);
        memset(b->scales, 0, sizeof b->scales);
        for (int j = 0; j < 16; j++) {
            const int v = sc[j] + 32; /* 6 bits, biased */
            if (j < 8) b->scales[j] |= (uint8_t)(v & 15);
            else b->scales[j - 8] |= (uint8_t)((v & 15) << 4);
            b->scales[8 + (j & 3)] |= (uint8_t)((v >> 4) << (2 * (j >> 2)));
        }
        uint8_t L[SMOE_QK_K];
        memset(b->hmask, 0, sizeof b->hmask);
        for (int v = 0; v < SMOE_QK_K; v++) {
            const int q = Ls[v] + 4; /* 0..7: bit 2 to hmask, a set bit meaning "no -4" */
            L[v] = (uint8_t)(q & 3);
            if (q & 4) b->hmask[v & 31] |= (uint8_t)(1u << (v >> 5));
        }
        pack_2bit(b->qs, L);
        put_f16(b->d, d);
    }
}

/* Q4_K and Q5_K share everything but the width of the quants. */
static void quantize_q45_K(const float *x, uint8_t *d16, uint8_t *dmin16, uint8_t *scales, uint8_t *L, int qmax,
                           const grid *g) {
    int sc[8], m[8];
    float d, dmin;
    aff_block(x, 8, 32, qmax, 63, g, 1, sc, m, L, &d, &dmin);
    pack_k_scales(scales, sc, m);
    put_f16(d16, d);
    put_f16(dmin16, dmin);
}

void smoe_quantize_row_q4_K(const float *src, void *dst, int64_t n) {
    smoe_block_q4_K *b = dst;
    float tmp[SMOE_QK_K];
    for (int64_t i = 0; i < n / SMOE_QK_K; i++, b++) {
        const float *x = block_clean(src + i * SMOE_QK_K, tmp);
        uint8_t L[SMOE_QK_K];
        quantize_q45_K(x, b->d, b->dmin, b->scales, L, 15, &GRID_Q4);
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++) b->qs[32 * c + l] = (uint8_t)(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
    }
}

void smoe_quantize_row_q5_K(const float *src, void *dst, int64_t n) {
    smoe_block_q5_K *b = dst;
    float tmp[SMOE_QK_K];
    for (int64_t i = 0; i < n / SMOE_QK_K; i++, b++) {
        const float *x = block_clean(src + i * SMOE_QK_K, tmp);
        uint8_t L[SMOE_QK_K];
        quantize_q45_K(x, b->d, b->dmin, b->scales, L, 31, &GRID_Q5);
        memset(b->qh, 0, sizeof b->qh);
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++) {
                const int lo = L[64 * c + l], hi = L[64 * c + 32 + l];
                b->qs[32 * c + l] = (uint8_t)((lo & 15) | ((hi & 15) << 4));
                b->qh[l] |= (uint8_t)(((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1)));
            }
    }
}

void smoe_quantize_row_q6_K(const float *src, void *dst, int64_t n) {
    smoe_block_q6_K *b = dst;
    float tmp[SMOE_QK_K];
    for (int64_t i = 0; i < n / SMOE_QK_K; i++, b++) {
        const float *x = block_clean(src + i * SMOE_QK_K, tmp);
        int sc[16];
        int8_t Ls[SMOE_QK_K];
        float d;
        sym_block(x, 16, 16, 32, 128, &GRID_Q6, sc, Ls, &d);
        for (int j = 0; j < 16; j++) b->scales[j] = (int8_t)sc[j];
        for (int h = 0; h < 2; h++) {
            const int8_t *q = Ls + 128 * h;
            uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
            for (int l = 0; l < 32; l++) {
                const int q0 = q[l] + 32, q1 = q[l + 32] + 32, q2 = q[l + 64] + 32, q3 = q[l + 96] + 32;
                ql[l] = (uint8_t)((q0 & 15) | ((q2 & 15) << 4));
                ql[l + 32] = (uint8_t)((q1 & 15) | ((q3 & 15) << 4));
                qh[l] = (uint8_t)((q0 >> 4) | ((q1 >> 4) << 2) | ((q2 >> 4) << 4) | ((q3 >> 4) << 6));
            }
        }
        put_f16(b->d, d);
    }
}
