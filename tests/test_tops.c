/*
 * test_tops.c - the training ops of src/train/tops.c against naive double-precision
 * twins on random data with awkward sizes (the matmuls: tests/test_tgemm.c): causal
 * grouped-query attention forward and backward (T over several row blocks, not a
 * multiple of the block), RMSNorm forward and backward, cross-entropy; and the same bits
 * with 1, 2 and 3 threads. The element-wise kernels of train/tkern.h (AdamW, SwiGLU):
 * the best version for this CPU gives the scalar twin's bits, and the twin agrees with
 * the formulas in double.
 */
#include "smoe.h"
#include "testhelp.h"
#include "train/tgemm.h"
#include "train/tkern.h"
#include "train/tops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 12345;
static float urand(void) { /* uniform in [-1, 1) */
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng >> 40) * 0x1.0p-24 * 2.0 - 1.0);
}
static float *rand_buf(size_t n) {
    float *p = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) p[i] = urand();
    return p;
}

typedef struct env {
    smoe_pool *pool;
    tops_ctx ctx;
} env;

static void env_init(env *e, int threads, int T) {
    CHECK_OK(smoe_pool_init(threads, &e->pool));
    e->ctx.pool = e->pool;
    e->ctx.ws_bytes = tgemm_ws_bytes_max(threads);
    e->ctx.ws = malloc(e->ctx.ws_bytes);
    e->ctx.ws1_bytes = (tgemm_ws_bytes_max(1) + 63) / 64 * 64;
    e->ctx.ws1 = malloc(e->ctx.ws1_bytes * (size_t)threads);
    e->ctx.attn_scratch_floats = (size_t)T * T;
    e->ctx.attn_scratch = malloc(sizeof(float) * e->ctx.attn_scratch_floats * (size_t)threads);
}

static void env_free(env *e) {
    smoe_pool_free(e->pool);
    free(e->ctx.ws);
    free(e->ctx.ws1);
    free(e->ctx.attn_scratch);
}

static double rel_err(const float *got, const double *ref, size_t n) {
    double dd = 0, rr = 0;
    for (size_t i = 0; i < n; i++) dd += (got[i] - ref[i]) * (got[i] - ref[i]), rr += ref[i] * ref[i];
    return sqrt(dd / (rr > 0 ? rr : 1));
}

/* Naive double attention forward and backward of one configuration. */
static void attention_ref(const float *q, const float *k, const float *v, const float *dout, int B, int T, int H,
                          int Hkv, int Dh, double *out, double *dq, double *dk, double *dv) {
    const int group = H / Hkv;
    const double scale = 1.0 / sqrt((double)Dh);
    double *p = malloc(sizeof(double) * (size_t)T), *dp = malloc(sizeof(double) * (size_t)T);
    memset(dq, 0, sizeof(double) * (size_t)B * T * H * Dh);
    memset(dk, 0, sizeof(double) * (size_t)B * T * Hkv * Dh);
    memset(dv, 0, sizeof(double) * (size_t)B * T * Hkv * Dh);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++) {
                const int g = h / group;
                const float *qr = q + ((size_t)(b * T + t) * H + h) * Dh;
                double mx = -INFINITY, sum = 0;
                for (int s = 0; s <= t; s++) {
                    const float *kr = k + ((size_t)(b * T + s) * Hkv + g) * Dh;
                    double d = 0;
                    for (int i = 0; i < Dh; i++) d += (double)qr[i] * kr[i];
                    p[s] = d * scale;
                    mx = fmax(mx, p[s]);
                }
                for (int s = 0; s <= t; s++) sum += (p[s] = exp(p[s] - mx));
                for (int s = 0; s <= t; s++) p[s] /= sum;
                double *o = out + ((size_t)(b * T + t) * H + h) * Dh;
                const float *dor = dout + ((size_t)(b * T + t) * H + h) * Dh;
                for (int i = 0; i < Dh; i++) o[i] = 0;
                double pdp = 0;
                for (int s = 0; s <= t; s++) {
                    const float *vr = v + ((size_t)(b * T + s) * Hkv + g) * Dh;
                    double d = 0;
                    for (int i = 0; i < Dh; i++) o[i] += p[s] * vr[i], d += (double)dor[i] * vr[i];
                    dp[s] = d;
                    pdp += p[s] * d;
                    double *dvr = dv + ((size_t)(b * T + s) * Hkv + g) * Dh;
                    for (int i = 0; i < Dh; i++) dvr[i] += p[s] * dor[i];
                }
                double *dqr = dq + ((size_t)(b * T + t) * H + h) * Dh;
                for (int s = 0; s <= t; s++) {
                    const double ds = p[s] * (dp[s] - pdp) * scale;
                    const float *kr = k + ((size_t)(b * T + s) * Hkv + g) * Dh;
                    double *dkr = dk + ((size_t)(b * T + s) * Hkv + g) * Dh;
                    for (int i = 0; i < Dh; i++) dqr[i] += ds * kr[i], dkr[i] += ds * qr[i];
                }
            }
    free(p);
    free(dp);
}

static void test_attention(int B, int T, int H, int Hkv, int Dh) {
    const size_t nq = (size_t)B * T * H * Dh, nk = (size_t)B * T * Hkv * Dh;
    float *q = rand_buf(nq), *k = rand_buf(nk), *v = rand_buf(nk), *dout = rand_buf(nq);
    double *out_r = malloc(sizeof(double) * nq), *dq_r = malloc(sizeof(double) * nq);
    double *dk_r = malloc(sizeof(double) * nk), *dv_r = malloc(sizeof(double) * nk);
    attention_ref(q, k, v, dout, B, T, H, Hkv, Dh, out_r, dq_r, dk_r, dv_r);
    float *first[4] = {0};
    for (int threads = 1; threads <= 3; threads++) {
        env e;
        env_init(&e, threads, T);
        float *out = malloc(sizeof(float) * nq), *P = malloc(sizeof(float) * (size_t)B * H * T * T);
        float *dq = rand_buf(nq), *dk = rand_buf(nk), *dv = rand_buf(nk); /* written, whatever they held */
        tops_attention(&e.ctx, out, P, q, k, v, B, T, H, Hkv, Dh);
        tops_attention_bwd(&e.ctx, dq, dk, dv, dout, P, q, k, v, B, T, H, Hkv, Dh);
        const double eo = rel_err(out, out_r, nq), eq = rel_err(dq, dq_r, nq), ek = rel_err(dk, dk_r, nk),
                     ev = rel_err(dv, dv_r, nk);
        CHECK(eo < 1e-5 && eq < 1e-5 && ek < 1e-5 && ev < 1e-5,
              "attention B%d T%d H%d/%d Dh%d, %d threads: rel err out %.2g dq %.2g dk %.2g dv %.2g", B, T, H, Hkv, Dh,
              threads, eo, eq, ek, ev);
        float *res[4] = {out, dq, dk, dv};
        const size_t len[4] = {nq, nq, nk, nk};
        for (int i = 0; i < 4; i++) {
            if (threads == 1) {
                first[i] = res[i];
                continue;
            }
            CHECK(!memcmp(first[i], res[i], sizeof(float) * len[i]), "attention output %d: %d threads = 1 thread", i,
                  threads);
            free(res[i]);
        }
        free(P);
        env_free(&e);
    }
    for (int i = 0; i < 4; i++) free(first[i]);
    free(q), free(k), free(v), free(dout), free(out_r), free(dq_r), free(dk_r), free(dv_r);
}

static void test_rmsnorm_and_ce(int N, int D, int V) {
    float *x = rand_buf((size_t)N * D), *w = rand_buf((size_t)D), *dy = rand_buf((size_t)N * D);
    float *y = malloc(sizeof(float) * (size_t)N * D), *rs = malloc(sizeof(float) * (size_t)N);
    float *dx = rand_buf((size_t)N * D), *dw = calloc((size_t)D, sizeof(float)); /* dx: written, whatever it held */
    double *y_r = malloc(sizeof(double) * (size_t)N * D), *dx_r = malloc(sizeof(double) * (size_t)N * D);
    double *dw_r = calloc((size_t)D, sizeof(double));
    const double eps = 1e-5;
    for (int n = 0; n < N; n++) {
        double ss = 0, gx = 0;
        for (int d = 0; d < D; d++) ss += (double)x[n * D + d] * x[n * D + d];
        const double r = 1.0 / sqrt(ss / D + eps);
        for (int d = 0; d < D; d++) {
            y_r[n * D + d] = x[n * D + d] * r * w[d];
            gx += (double)dy[n * D + d] * w[d] * x[n * D + d];
            dw_r[d] += (double)dy[n * D + d] * x[n * D + d] * r;
        }
        for (int d = 0; d < D; d++) dx_r[n * D + d] = r * dy[n * D + d] * w[d] - gx * r * r * r / D * x[n * D + d];
    }
    env e;
    env_init(&e, 2, 1);
    tops_rmsnorm(&e.ctx, y, rs, x, w, N, D, (float)eps);
    tops_rmsnorm_bwd(&e.ctx, dx, dw, dy, x, rs, w, N, D, false);
    CHECK(rel_err(y, y_r, (size_t)N * D) < 1e-6, "rmsnorm forward N%d D%d", N, D);
    CHECK(rel_err(dx, dx_r, (size_t)N * D) < 1e-5, "rmsnorm backward dx N%d D%d", N, D);
    CHECK(rel_err(dw, dw_r, (size_t)D) < 1e-5, "rmsnorm backward dw N%d D%d", N, D);
    tops_rmsnorm_bwd(&e.ctx, dx, dw, dy, x, rs, w, N, D, true); /* adds: twice each */
    for (size_t i = 0; i < (size_t)N * D; i++) dx_r[i] *= 2;
    for (int d = 0; d < D; d++) dw_r[d] *= 2;
    CHECK(rel_err(dx, dx_r, (size_t)N * D) < 1e-5, "rmsnorm backward dx accumulated N%d D%d", N, D);
    CHECK(rel_err(dw, dw_r, (size_t)D) < 1e-5, "rmsnorm backward dw accumulated N%d D%d", N, D);

    float *logits = rand_buf((size_t)N * V);
    int32_t *tg = malloc(sizeof(int32_t) * (size_t)N);
    double ce_r = 0;
    for (int n = 0; n < N; n++) {
        tg[n] = (int32_t)((n * 7919u) % (unsigned)V);
        double mx = -INFINITY, s = 0;
        for (int j = 0; j < V; j++) mx = fmax(mx, 4.0 * logits[n * V + j]);
        for (int j = 0; j < V; j++) s += exp(4.0 * logits[n * V + j] - mx);
        ce_r += (log(s) + mx - 4.0 * logits[n * V + tg[n]]) / N;
    }
    for (size_t i = 0; i < (size_t)N * V; i++) logits[i] *= 4.0f;
    float *l0 = malloc(sizeof(float) * (size_t)N * V);
    memcpy(l0, logits, sizeof(float) * (size_t)N * V);
    const double ce = tops_cross_entropy(&e.ctx, logits, tg, N, V);
    CHECK(fabs(ce - ce_r) < 1e-6 * fabs(ce_r), "cross-entropy %.9f vs %.9f", ce, ce_r);
    /* the logits now hold dCE/dlogits = (softmax - onehot) / N */
    double worst = 0;
    for (int n = 0; n < N; n++) {
        double mx = -INFINITY, s = 0;
        for (int j = 0; j < V; j++) mx = fmax(mx, (double)l0[n * V + j]);
        for (int j = 0; j < V; j++) s += exp((double)l0[n * V + j] - mx);
        for (int j = 0; j < V; j++) {
            const double g = (exp((double)l0[n * V + j] - mx) / s - (j == tg[n])) / N;
            worst = fmax(worst, fabs(logits[n * V + j] - g) * N);
        }
    }
    CHECK(worst < 1e-6, "cross-entropy gradient (worst %.2g x 1/N)", worst);
    free(l0);
    env_free(&e);
    free(x), free(w), free(dy), free(y), free(rs), free(dx), free(dw), free(y_r), free(dx_r), free(dw_r), free(logits),
        free(tg);
}

/* tkern: best = twin bit for bit; twin = the formulas in double (to float rounding) */
static void test_tkern(int64_t n) {
    const tkern *best = tkern_best(), *ref = tkern_scalar();
    float *g = rand_buf((size_t)n), *u = rand_buf((size_t)n), *th = rand_buf((size_t)n), *m = rand_buf((size_t)n);
    float *v = rand_buf((size_t)n), *out[2][6];
    for (int64_t i = 0; i < n; i++) g[i] *= 12.0f, v[i] = v[i] * v[i] * 1e-3f; /* sigmoids near 0 and 1 */
    const tk_adamw_par par = {.scale = 0.7f, .decay = 0.9999f, .b1 = 0.9f, .b2 = 0.95f, .step = 1.3e-3f,
                              .inv_sbc2 = 1.7f, .eps = 1e-8f};
    for (int k = 0; k < 2; k++) {
        const tkern *t = k ? best : ref;
        for (int j = 0; j < 6; j++) out[k][j] = malloc(sizeof(float) * (size_t)n);
        float *th2 = out[k][0], *m2 = out[k][1], *v2 = out[k][2], *g2 = out[k][3], *s = out[k][4], *a = out[k][5];
        memcpy(th2, th, sizeof(float) * (size_t)n), memcpy(m2, m, sizeof(float) * (size_t)n);
        memcpy(v2, v, sizeof(float) * (size_t)n), memcpy(g2, g, sizeof(float) * (size_t)n);
        t->adamw(n, th2, m2, v2, g2, true, &par);
        int nz = 0;
        for (int64_t i = 0; i < n; i++) nz += g2[i] != 0.0f;
        CHECK(nz == 0, "tkern %s adamw n=%lld clears g", t->isa, (long long)n);
        t->swiglu(n, g, u, s, a);
        memcpy(g2, u, sizeof(float) * (size_t)n); /* da */
        t->swiglu_bwd(n, g, u, s, g2, m2); /* dg over da, du over m */
    }
    int same = 1;
    for (int j = 0; j < 6; j++) same &= !memcmp(out[0][j], out[1][j], sizeof(float) * (size_t)n);
    CHECK(same, "tkern %s = scalar twin bit for bit, n=%lld", best->isa, (long long)n);
    double worst = 0; /* the twin against double formulas: adamw theta, sigmoid, silu*u, dg */
    for (int64_t i = 0; i < n; i++) {
        const double gi = (double)g[i] * par.scale, mi = par.b1 * (double)m[i] + (1 - (double)par.b1) * gi;
        const double vi = par.b2 * (double)v[i] + (1 - (double)par.b2) * gi * gi;
        const double thi = th[i] * (double)par.decay - par.step * mi / (sqrt(vi) * par.inv_sbc2 + par.eps);
        const double si = 1 / (1 + exp(-(double)g[i])), ai = g[i] * si * u[i];
        const double dgi = (double)u[i] * u[i] * si * (1 + g[i] * (1 - si));
        worst = fmax(worst, fabs(out[0][0][i] - thi) / (fabs(thi) + 1e-6));
        worst = fmax(worst, fabs(out[0][4][i] - si) / (si + 1e-30));
        worst = fmax(worst, fabs(out[0][5][i] - ai) / (fabs(ai) + 1e-6));
        worst = fmax(worst, fabs(out[0][3][i] - dgi) / (fabs(dgi) + 1e-6));
    }
    CHECK(worst < 1e-5, "tkern scalar twin against the formulas, n=%lld: worst rel err %.2g", (long long)n, worst);
    /* exp_sum: the same bits (row, max, sum), and the sum of e^(scale x - max) in double */
    float *r[2], mx[2];
    double sum[2];
    for (int k = 0; k < 2; k++) {
        r[k] = malloc(sizeof(float) * (size_t)n);
        memcpy(r[k], g, sizeof(float) * (size_t)n);
        sum[k] = (k ? best : ref)->exp_sum(n, r[k], 0.37f, &mx[k]);
    }
    double mref = -INFINITY, sref = 0;
    for (int64_t i = 0; i < n; i++) mref = fmax(mref, (double)(g[i] * 0.37f));
    for (int64_t i = 0; i < n; i++) sref += exp((double)(g[i] * 0.37f) - mref);
    CHECK(!memcmp(r[0], r[1], sizeof(float) * (size_t)n) && mx[0] == mx[1] && sum[0] == sum[1],
          "tkern %s exp_sum = scalar twin bit for bit, n=%lld", best->isa, (long long)n);
    CHECK(mx[0] == (float)mref && fabs(sum[0] - sref) < 1e-6 * sref, "exp_sum n=%lld: max %g sum %.9g vs %.9g",
          (long long)n, mx[0], sum[0], sref);
    free(r[0]), free(r[1]);
    for (int k = 0; k < 2; k++)
        for (int j = 0; j < 6; j++) free(out[k][j]);
    free(g), free(u), free(th), free(m), free(v);
}

int main(void) {
    const int64_t sizes[] = {1, 7, 8, 9, 255, 256, 257, 1000, 4099};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) test_tkern(sizes[i]);
    test_attention(1, 1, 1, 1, 2);
    test_attention(2, 17, 4, 2, 8);
    test_attention(2, 150, 4, 2, 16); /* three row blocks, the last partial */
    test_attention(1, 64, 6, 3, 32);
    test_attention(1, 129, 2, 1, 10);
    test_rmsnorm_and_ce(37, 65, 103);
    test_rmsnorm_and_ce(1, 8, 2);
    return TEST_REPORT();
}
