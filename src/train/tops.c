/*
 * tops.c - training operations (see tops.h). The matmuls go through the GEMM of
 * tgemm.h; the rest is plain C that the compiler vectorises, in a fixed order. Threads
 * split the rows of the output a function writes, so no two threads add into the same
 * element.
 */
#include "train/tops.h"
#include "train/tgemm.h"
#include "train/tkern.h"
#include "train/tred.h"
#include "cpu/vexp.h"
#include "smoe_internal.h"

#include <math.h>
#include <string.h>

/* ------------------------------------------------------------------ parallel for */

typedef struct range_task {
    int64_t n;
    tops_range_fn fn;
    void *arg;
} range_task;

static void range_kernel(void *arg, int ith, int nth) {
    const range_task *r = arg;
    int64_t i0, i1;
    smoe_split(r->n, ith, nth, &i0, &i1);
    if (i0 < i1) r->fn(r->arg, i0, i1);
}

void tops_parallel(const tops_ctx *ctx, int64_t n, tops_range_fn fn, void *arg) {
    range_task r = {n, fn, arg};
    if (n <= 0) return;
    smoe_pool_run(ctx->pool, range_kernel, &r);
}

typedef struct slot_task {
    float *out;
    const float *rows, *w;
    const int32_t *pos;
    int64_t S, D;
} slot_task;

static void slot_rows(void *arg, int64_t n0, int64_t n1) {
    const slot_task *t = arg;
    for (int64_t n = n0; n < n1; n++) {
        float *o = t->out + n * t->D;
        memset(o, 0, sizeof(float) * (size_t)t->D);
        for (int64_t s = 0; s < t->S; s++) {
            const int32_t p = t->pos[n * t->S + s];
            if (p < 0) continue;
            const float *r = t->rows + (int64_t)p * t->D;
            if (t->w) {
                const float wgt = t->w[n * t->S + s];
                for (int64_t d = 0; d < t->D; d++) o[d] += wgt * r[d];
            } else {
                for (int64_t d = 0; d < t->D; d++) o[d] += r[d];
            }
        }
    }
}

void tops_slot_sum(const tops_ctx *ctx, float *out, const float *rows, const int32_t *pos, const float *w, int64_t N,
                   int64_t S, int64_t D) {
    slot_task t = {out, rows, w, pos, S, D};
    tops_parallel(ctx, N, slot_rows, &t);
}

/* ------------------------------------------------------------------ matmuls */

/* The three products of a linear layer through the GEMM of tgemm.h: each output is one
 * fmaf chain in k order, whatever the blocking and the thread count. */
void tops_matmul(const tops_ctx *x, float *y, const float *in, const float *W, int64_t N, int64_t I, int64_t O) {
    tgemm(x->pool, x->ws, x->ws_bytes, false, N, O, I, in, I, false, W, I, true, y, O);
}

void tops_matmul_bwd_x(const tops_ctx *x, float *dx, const float *dy, const float *W, int64_t N, int64_t I, int64_t O,
                       bool accumulate) {
    tgemm(x->pool, x->ws, x->ws_bytes, accumulate, N, I, O, dy, O, false, W, I, false, dx, I);
}

void tops_matmul_bwd_w(const tops_ctx *x, float *dW, const float *dy, const float *in, int64_t N, int64_t I, int64_t O,
                       bool accumulate) {
    tgemm(x->pool, x->ws, x->ws_bytes, accumulate, O, I, N, dy, O, true, in, I, false, dW, I);
}

/* ------------------------------------------------------------------ RMSNorm */

typedef struct norm_task {
    float *y, *rs, *dx, *dw;
    const float *x, *w, *dy, *rsc;
    int64_t D;
    float eps;
    bool acc; /* backward: add into dx */
} norm_task;

static void rmsnorm_rows(void *arg, int64_t n0, int64_t n1) {
    const norm_task *t = arg;
    const int64_t D = t->D;
    for (int64_t n = n0; n < n1; n++) {
        const float *xr = t->x + n * D;
        const double ss = tred_dot(xr, xr, D);
        const float r = (float)(1.0 / sqrt(ss / (double)D + (double)t->eps));
        t->rs[n] = r;
        for (int64_t d = 0; d < D; d++) t->y[n * D + d] = xr[d] * r * t->w[d];
    }
}

void tops_rmsnorm(const tops_ctx *ctx, float *y, float *rs, const float *x, const float *w, int64_t N, int64_t D,
                  float eps) {
    norm_task t = {.y = y, .rs = rs, .x = x, .w = w, .D = D, .eps = eps};
    tops_parallel(ctx, N, rmsnorm_rows, &t);
}

/* y = x r w with r = (mean x^2 + eps)^(-1/2): with g = dy w, dx = r g - r^3 x (g . x) / D
 * (threads split the tokens) and dw = sum_n dy x r (threads split the columns, each
 * column summed over the tokens in order: the same bits for any thread count). */
static void rmsnorm_bwd_rows(void *arg, int64_t n0, int64_t n1) {
    const norm_task *t = arg;
    const int64_t D = t->D;
    for (int64_t n = n0; n < n1; n++) {
        const float *xr = t->x + n * D, *dyr = t->dy + n * D;
        const float r = t->rsc[n];
        const double gx = tred_dot3(dyr, t->w, xr, D);
        const float c = (float)(gx * r * r * r / (double)D);
        float *dxr = t->dx + n * D;
        if (t->acc)
            for (int64_t d = 0; d < D; d++) dxr[d] += r * dyr[d] * t->w[d] - c * xr[d];
        else
            for (int64_t d = 0; d < D; d++) dxr[d] = r * dyr[d] * t->w[d] - c * xr[d];
    }
}

typedef struct normw_task {
    const norm_task *t;
    int64_t N;
} normw_task;

static void rmsnorm_bwd_cols(void *arg, int64_t d0, int64_t d1) {
    const normw_task *u = arg;
    const norm_task *t = u->t;
    for (int64_t n = 0; n < u->N; n++) {
        const float *xr = t->x + n * t->D, *dyr = t->dy + n * t->D;
        const float r = t->rsc[n];
        for (int64_t d = d0; d < d1; d++) t->dw[d] += dyr[d] * xr[d] * r;
    }
}

void tops_rmsnorm_bwd(const tops_ctx *ctx, float *dx, float *dw, const float *dy, const float *x, const float *rs,
                      const float *w, int64_t N, int64_t D, bool accumulate_dx) {
    norm_task t = {.dx = dx, .dw = dw, .x = x, .w = w, .dy = dy, .rsc = rs, .D = D, .acc = accumulate_dx};
    normw_task u = {&t, N};
    tops_parallel(ctx, N, rmsnorm_bwd_rows, &t);
    tops_parallel(ctx, D, rmsnorm_bwd_cols, &u);
}

/* ------------------------------------------------------------------ RoPE */

void tops_rope_table(float *table, int32_t T, int32_t Dh, float base) {
    for (int32_t t = 0; t < T; t++)
        for (int32_t i = 0; i < Dh / 2; i++) {
            const double theta = (double)t * pow((double)base, -2.0 * i / Dh);
            table[((size_t)t * (Dh / 2) + i) * 2] = (float)cos(theta);
            table[((size_t)t * (Dh / 2) + i) * 2 + 1] = (float)sin(theta);
        }
}

typedef struct rope_task {
    float *x, *y;
    const float *table, *a, *b;
    int32_t T, nh, Dh;
    bool inverse;
} rope_task;

static void rope_rows(void *arg, int64_t n0, int64_t n1) {
    const rope_task *r = arg;
    const int32_t Dh = r->Dh;
    for (int64_t n = n0; n < n1; n++) {
        const float *cs = r->table + (size_t)(n % r->T) * (size_t)Dh;
        for (int32_t h = 0; h < r->nh; h++) {
            float *v = r->x + (n * r->nh + h) * Dh;
            for (int32_t i = 0; i < Dh / 2; i++) {
                const float c = cs[2 * i], s = r->inverse ? -cs[2 * i + 1] : cs[2 * i + 1];
                const float a = v[2 * i], b = v[2 * i + 1];
                v[2 * i] = a * c - b * s;
                v[2 * i + 1] = a * s + b * c;
            }
        }
    }
}

void tops_rope(const tops_ctx *ctx, float *x, const float *table, int64_t N, int32_t T, int32_t nh, int32_t Dh,
               bool inverse) {
    rope_task r = {.x = x, .table = table, .T = T, .nh = nh, .Dh = Dh, .inverse = inverse};
    tops_parallel(ctx, N, rope_rows, &r);
}

static void add_rows(void *arg, int64_t i0, int64_t i1) {
    const rope_task *r = arg;
    for (int64_t i = i0; i < i1; i++) r->y[i] = r->a[i] + r->b[i];
}

void tops_add(const tops_ctx *ctx, float *y, const float *a, const float *b, int64_t count) {
    rope_task r = {.y = y, .a = a, .b = b};
    tops_parallel(ctx, count, add_rows, &r);
}

/* ------------------------------------------------------------------ attention */

typedef struct attn_task {
    const tops_ctx *ctx;
    float *out, *P, *dq, *dk, *dv;
    const float *dout, *Pc, *q, *k, *v;
    int32_t B, T, H, Hkv, Dh;
} attn_task;

/* One work item = (sequence b, kv head g) with its group of query heads, so that in the
 * backward pass only this item adds into dk and dv of head g; each item runs its matrix
 * products on its own thread (tgemm without a pool, the thread's workspace). The products
 * run over blocks of ATTN_BT query rows and stop at the causal edge of their block; the
 * future inside a block is masked to probability 0, which the products then add exactly
 * (fma(0, v, s) = s), so the block size does not change a bit of the result. */
#ifndef ATTN_BT
#define ATTN_BT 64
#endif
#define ATTN_ITEM_SETUP                                                                          \
    const int64_t b = w / Hkv, g = w % Hkv, ldq = (int64_t)H * Dh, ldk = (int64_t)Hkv * Dh;    \
    const float *K = a->k + b * T * ldk + g * Dh, *V = a->v + b * T * ldk + g * Dh;            \
    void *ws = (char *)x->ws1 + (size_t)ith * x->ws1_bytes;                                     \
    const size_t wsb = x->ws1_bytes

static void attn_fwd_kernel(void *arg, int ith, int nth) {
    const attn_task *a = arg;
    const tops_ctx *x = a->ctx;
    const int32_t T = a->T, H = a->H, Hkv = a->Hkv, Dh = a->Dh, group = H / Hkv;
    const float scale = 1.0f / sqrtf((float)Dh);
    const tkern *tk = tkern_best();
    for (int64_t w = ith; w < (int64_t)a->B * Hkv; w += nth) {
        ATTN_ITEM_SETUP;
        for (int32_t hh = 0; hh < group; hh++) {
            const int64_t h = g * group + hh;
            const float *Q = a->q + b * T * ldq + h * Dh;
            float *P = a->P + (b * H + h) * (int64_t)T * T, *O = a->out + b * T * ldq + h * Dh;
            for (int64_t r0 = 0; r0 < T; r0 += ATTN_BT) {
                const int64_t r1 = SMOE_MIN(r0 + ATTN_BT, (int64_t)T);
                tgemm(NULL, ws, wsb, false, r1 - r0, r1, Dh, Q + r0 * ldq, ldq, false, K, ldk, true, P + r0 * T, T);
                for (int64_t t = r0; t < r1; t++) {                                     /* S = Q K^T -> softmax */
                    float *row = P + t * T, mx;
                    const float inv = (float)(1.0 / tk->exp_sum(t + 1, row, scale, &mx));
                    for (int64_t j = 0; j <= t; j++) row[j] *= inv;
                    for (int64_t j = t + 1; j < r1; j++) row[j] = 0.0f; /* up to the block's edge */
                }
                tgemm(NULL, ws, wsb, false, r1 - r0, Dh, r1, P + r0 * T, T, false, V, ldk, false, O + r0 * ldq,
                      ldq);                                                              /* O = P V */
            }
        }
    }
}

void tops_attention(const tops_ctx *x, float *out, float *P, const float *q, const float *k, const float *v, int32_t B,
                    int32_t T, int32_t H, int32_t Hkv, int32_t Dh) {
    attn_task a = {.ctx = x, .out = out, .P = P, .q = q, .k = k, .v = v, .B = B, .T = T, .H = H, .Hkv = Hkv, .Dh = Dh};
    smoe_pool_run(x->pool, attn_fwd_kernel, &a);
}

/* O = P V with P = softmax(scale Q K^T): dP = dO V^T, dV += P^T dO,
 * dS = P * (dP - rowsum(P * dP)) * scale, dQ = dS K, dK += dS^T Q. dK and dV of key
 * block [c0, c1) take the query rows from c0 on (the rows before it see none of it); the
 * group's first head writes them, the others add. */
static void attn_bwd_kernel(void *arg, int ith, int nth) {
    const attn_task *a = arg;
    const tops_ctx *x = a->ctx;
    const int32_t T = a->T, H = a->H, Hkv = a->Hkv, Dh = a->Dh, group = H / Hkv;
    const float scale = 1.0f / sqrtf((float)Dh);
    float *dS = x->attn_scratch + (size_t)ith * x->attn_scratch_floats;
    for (int64_t w = ith; w < (int64_t)a->B * Hkv; w += nth) {
        ATTN_ITEM_SETUP;
        float *dK = a->dk + b * T * ldk + g * Dh, *dV = a->dv + b * T * ldk + g * Dh;
        for (int32_t hh = 0; hh < group; hh++) {
            const int64_t h = g * group + hh;
            const float *Q = a->q + b * T * ldq + h * Dh, *dO = a->dout + b * T * ldq + h * Dh;
            const float *P = a->Pc + (b * H + h) * (int64_t)T * T;
            float *dQ = a->dq + b * T * ldq + h * Dh;
            for (int64_t r0 = 0; r0 < T; r0 += ATTN_BT) {
                const int64_t r1 = SMOE_MIN(r0 + ATTN_BT, (int64_t)T);
                tgemm(NULL, ws, wsb, false, r1 - r0, r1, Dh, dO + r0 * ldq, ldq, false, V, ldk, true, dS + r0 * T,
                      T);                                                                /* dP */
                for (int64_t t = r0; t < r1; t++) {
                    const float *pr = P + t * T;
                    float *row = dS + t * T;
                    const double pdp = tred_dot(pr, row, t + 1);
                    for (int64_t j = 0; j <= t; j++) row[j] = pr[j] * (row[j] - (float)pdp) * scale;
                    for (int64_t j = t + 1; j < r1; j++) row[j] = 0.0f;
                }
                tgemm(NULL, ws, wsb, false, r1 - r0, Dh, r1, dS + r0 * T, T, false, K, ldk, false, dQ + r0 * ldq,
                      ldq);                                                              /* dQ = dS K */
            }
            for (int64_t c0 = 0; c0 < T; c0 += ATTN_BT) {
                const int64_t c1 = SMOE_MIN(c0 + ATTN_BT, (int64_t)T);
                tgemm(NULL, ws, wsb, hh > 0, c1 - c0, Dh, T - c0, dS + c0 * T + c0, T, true, Q + c0 * ldq, ldq,
                      false, dK + c0 * ldk, ldk);                                        /* dK (+)= dS^T Q */
                tgemm(NULL, ws, wsb, hh > 0, c1 - c0, Dh, T - c0, P + c0 * T + c0, T, true, dO + c0 * ldq, ldq,
                      false, dV + c0 * ldk, ldk);                                        /* dV (+)= P^T dO */
            }
        }
    }
}

void tops_attention_bwd(const tops_ctx *x, float *dq, float *dk, float *dv, const float *dout, const float *P,
                        const float *q, const float *k, const float *v, int32_t B, int32_t T, int32_t H, int32_t Hkv,
                        int32_t Dh) {
    SMOE_ASSERT(x->attn_scratch_floats >= (size_t)T * (size_t)T);
    attn_task a = {.ctx = x, .dq = dq, .dk = dk, .dv = dv, .dout = dout, .Pc = P, .q = q, .k = k, .v = v,
                   .B = B, .T = T, .H = H, .Hkv = Hkv, .Dh = Dh};
    smoe_pool_run(x->pool, attn_bwd_kernel, &a);
}

/* ------------------------------------------------------------------ cross-entropy */

typedef struct ce_task {
    float *logits;
    const int32_t *targets;
    int64_t N, V, Ntotal;
    double *loss; /* [N] */
} ce_task;

static void ce_kernel(void *arg, int ith, int nth) {
    const ce_task *c = arg;
    int64_t n0, n1;
    smoe_split(c->N, ith, nth, &n0, &n1);
    const tkern *tk = tkern_best();
    for (int64_t n = n0; n < n1; n++) {
        float *l = c->logits + n * c->V, mx;
        const int32_t y = c->targets[n];
        const float ly = l[y];
        const double sum = tk->exp_sum(c->V, l, 1.0f, &mx);
        c->loss[n] = log(sum) + mx - ly;
        const float inv = (float)(1.0 / sum), invN = 1.0f / (float)c->Ntotal;
        for (int64_t v = 0; v < c->V; v++) l[v] = l[v] * inv * invN;
        l[y] -= invN;
    }
}

double tops_cross_entropy(const tops_ctx *x, float *logits, const int32_t *targets, int64_t N, int64_t V) {
    double loss[1024];
    double total = 0;
    for (int64_t n0 = 0; n0 < N; n0 += 1024) { /* bounded scratch on the stack */
        const int64_t m = SMOE_MIN((int64_t)1024, N - n0);
        ce_task c = {logits + n0 * V, targets + n0, m, V, N, loss};
        smoe_pool_run(x->pool, ce_kernel, &c);
        for (int64_t n = 0; n < m; n++) total += loss[n];
    }
    return total / (double)N;
}
