/*
 * tops.c - training operations (see tops.h). Plain C that the compiler vectorises:
 * inner loops are axpy-style (no float reductions) except the dot products of the
 * forward matmul and of attention, which keep a fixed order. Threads split the rows of
 * the output a function writes, so no two threads add into the same element.
 */
#include "train/tops.h"
#include "smoe_internal.h"

#include <math.h>
#include <string.h>

/* ------------------------------------------------------------------ matmuls */

typedef struct mm_task {
    float *y;
    const float *a, *b;
    int64_t N, I, O;
} mm_task;

/* 8 accumulators of one dot product, summed pairwise at the end: a fixed order that
 * the compiler turns into one vector accumulator chain per lane group. */
static inline float dot(const float *restrict x, const float *restrict y, int64_t n) {
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += x[i + j] * y[i + j];
    for (; i < n; i++) acc[0] += x[i] * y[i];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

static inline void axpy(float *restrict y, float a, const float *restrict x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

/* y = x W^T: thread ith computes columns [o0, o1) of y for all rows, 64 weight rows at a
 * time so that they stay in L1/L2 while every token passes. */
static void mm_fwd_kernel(void *arg, int ith, int nth) {
    const mm_task *t = arg;
    int64_t o0, o1;
    smoe_split(t->O, ith, nth, &o0, &o1);
    for (int64_t ob = o0; ob < o1; ob += 64) {
        const int64_t oe = SMOE_MIN(ob + 64, o1);
        for (int64_t n = 0; n < t->N; n++) {
            const float *x = t->a + n * t->I;
            float *y = t->y + n * t->O;
            for (int64_t o = ob; o < oe; o++) y[o] = dot(x, t->b + o * t->I, t->I);
        }
    }
}

void tops_matmul(smoe_pool *p, float *y, const float *x, const float *W, int64_t N, int64_t I, int64_t O) {
    mm_task t = {y, x, W, N, I, O};
    smoe_pool_run(p, mm_fwd_kernel, &t);
}

/* dx[n] += sum_o dy[n][o] W[o]: threads split the tokens. */
static void mm_bwd_x_kernel(void *arg, int ith, int nth) {
    const mm_task *t = arg;
    int64_t n0, n1;
    smoe_split(t->N, ith, nth, &n0, &n1);
    for (int64_t n = n0; n < n1; n++) {
        const float *dy = t->a + n * t->O;
        float *dx = t->y + n * t->I;
        for (int64_t o = 0; o < t->O; o++)
            if (dy[o] != 0.0f) axpy(dx, dy[o], t->b + o * t->I, t->I);
    }
}

void tops_matmul_bwd_x(smoe_pool *p, float *dx, const float *dy, const float *W, int64_t N, int64_t I, int64_t O) {
    mm_task t = {dx, dy, W, N, I, O};
    smoe_pool_run(p, mm_bwd_x_kernel, &t);
}

/* dW[o] += sum_n dy[n][o] x[n]: threads split the rows of dW. */
static void mm_bwd_w_kernel(void *arg, int ith, int nth) {
    const mm_task *t = arg;
    int64_t o0, o1;
    smoe_split(t->O, ith, nth, &o0, &o1);
    for (int64_t ob = o0; ob < o1; ob += 16) {
        const int64_t oe = SMOE_MIN(ob + 16, o1);
        for (int64_t n = 0; n < t->N; n++) {
            const float *dy = t->a + n * t->O, *x = t->b + n * t->I;
            for (int64_t o = ob; o < oe; o++)
                if (dy[o] != 0.0f) axpy(t->y + o * t->I, dy[o], x, t->I);
        }
    }
}

void tops_matmul_bwd_w(smoe_pool *p, float *dW, const float *dy, const float *x, int64_t N, int64_t I, int64_t O) {
    mm_task t = {dW, dy, x, N, I, O};
    smoe_pool_run(p, mm_bwd_w_kernel, &t);
}

/* ------------------------------------------------------------------ RMSNorm */

void tops_rmsnorm(float *y, float *rs, const float *x, const float *w, int64_t N, int64_t D, float eps) {
    for (int64_t n = 0; n < N; n++) {
        const float *xr = x + n * D;
        double ss = 0;
        for (int64_t d = 0; d < D; d++) ss += (double)xr[d] * xr[d];
        const float r = (float)(1.0 / sqrt(ss / (double)D + (double)eps));
        rs[n] = r;
        for (int64_t d = 0; d < D; d++) y[n * D + d] = xr[d] * r * w[d];
    }
}

/* y = x r w with r = (mean x^2 + eps)^(-1/2): dw += dy x r; with g = dy w,
 * dx = r g - r^3 x (g . x) / D. */
void tops_rmsnorm_bwd(float *dx, float *dw, const float *dy, const float *x, const float *rs, const float *w, int64_t N,
                      int64_t D) {
    for (int64_t n = 0; n < N; n++) {
        const float *xr = x + n * D, *dyr = dy + n * D;
        const float r = rs[n];
        double gx = 0;
        for (int64_t d = 0; d < D; d++) {
            gx += (double)dyr[d] * w[d] * xr[d];
            dw[d] += dyr[d] * xr[d] * r;
        }
        const float c = (float)(gx * r * r * r / (double)D);
        for (int64_t d = 0; d < D; d++) dx[n * D + d] += r * dyr[d] * w[d] - c * xr[d];
    }
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

void tops_rope(float *x, const float *table, int64_t N, int32_t T, int32_t nh, int32_t Dh, bool inverse) {
    for (int64_t n = 0; n < N; n++) {
        const float *cs = table + (size_t)(n % T) * (size_t)Dh;
        for (int32_t h = 0; h < nh; h++) {
            float *v = x + (n * nh + h) * Dh;
            for (int32_t i = 0; i < Dh / 2; i++) {
                const float c = cs[2 * i], s = inverse ? -cs[2 * i + 1] : cs[2 * i + 1];
                const float a = v[2 * i], b = v[2 * i + 1];
                v[2 * i] = a * c - b * s;
                v[2 * i + 1] = a * s + b * c;
            }
        }
    }
}

/* ------------------------------------------------------------------ attention */

typedef struct attn_task {
    float *out, *P, *dq, *dk, *dv;
    const float *dout, *Pc, *q, *k, *v;
    int32_t B, T, H, Hkv, Dh;
} attn_task;

/* One work item = (sequence b, kv head g): its group of query heads, so that in the
 * backward pass only this item adds into dk and dv of head g. */
static void attn_fwd_kernel(void *arg, int ith, int nth) {
    const attn_task *a = arg;
    const int32_t T = a->T, H = a->H, Hkv = a->Hkv, Dh = a->Dh, group = H / Hkv;
    const float scale = 1.0f / sqrtf((float)Dh);
    for (int64_t w = ith; w < (int64_t)a->B * Hkv; w += nth) {
        const int64_t b = w / Hkv, g = w % Hkv;
        for (int32_t hh = 0; hh < group; hh++) {
            const int64_t h = g * group + hh;
            for (int32_t t = 0; t < T; t++) {
                const int64_t n = b * T + t;
                const float *q = a->q + (n * H + h) * Dh;
                float *P = a->P + (((b * H + h) * T) + t) * (int64_t)T;
                float mx = -INFINITY;
                for (int32_t s = 0; s <= t; s++) {
                    P[s] = dot(q, a->k + ((b * T + s) * Hkv + g) * Dh, Dh) * scale;
                    mx = P[s] > mx ? P[s] : mx;
                }
                double sum = 0;
                for (int32_t s = 0; s <= t; s++) sum += (P[s] = expf(P[s] - mx));
                const float inv = (float)(1.0 / sum);
                float *o = a->out + (n * H + h) * Dh;
                memset(o, 0, sizeof(float) * (size_t)Dh);
                for (int32_t s = 0; s <= t; s++) {
                    P[s] *= inv;
                    axpy(o, P[s], a->v + ((b * T + s) * Hkv + g) * Dh, Dh);
                }
            }
        }
    }
}

void tops_attention(smoe_pool *p, float *out, float *P, const float *q, const float *k, const float *v, int32_t B,
                    int32_t T, int32_t H, int32_t Hkv, int32_t Dh) {
    attn_task a = {.out = out, .P = P, .q = q, .k = k, .v = v, .B = B, .T = T, .H = H, .Hkv = Hkv, .Dh = Dh};
    smoe_pool_run(p, attn_fwd_kernel, &a);
}

/* o = sum_s P_s v_s, P = softmax(scale q.k_s): dP_s = do.v_s, dv_s += P_s do,
 * dS_s = P_s (dP_s - sum_r P_r dP_r), dq += scale sum_s dS_s k_s, dk_s += scale dS_s q. */
static void attn_bwd_kernel(void *arg, int ith, int nth) {
    const attn_task *a = arg;
    const int32_t T = a->T, H = a->H, Hkv = a->Hkv, Dh = a->Dh, group = H / Hkv;
    const float scale = 1.0f / sqrtf((float)Dh);
    float dS[4096];
    for (int64_t w = ith; w < (int64_t)a->B * Hkv; w += nth) {
        const int64_t b = w / Hkv, g = w % Hkv;
        for (int32_t hh = 0; hh < group; hh++) {
            const int64_t h = g * group + hh;
            for (int32_t t = 0; t < T; t++) {
                const int64_t n = b * T + t;
                const float *q = a->q + (n * H + h) * Dh, *dout = a->dout + (n * H + h) * Dh;
                const float *P = a->Pc + (((b * H + h) * T) + t) * (int64_t)T;
                float *dq = a->dq + (n * H + h) * Dh;
                double pdp = 0;
                for (int32_t s = 0; s <= t; s++) {
                    const int64_t kv = ((b * T + s) * Hkv + g) * Dh;
                    dS[s] = dot(dout, a->v + kv, Dh);
                    pdp += (double)P[s] * dS[s];
                    axpy(a->dv + kv, P[s], dout, Dh);
                }
                for (int32_t s = 0; s <= t; s++) {
                    const int64_t kv = ((b * T + s) * Hkv + g) * Dh;
                    const float ds = P[s] * (dS[s] - (float)pdp) * scale;
                    axpy(dq, ds, a->k + kv, Dh);
                    axpy(a->dk + kv, ds, q, Dh);
                }
            }
        }
    }
}

void tops_attention_bwd(smoe_pool *p, float *dq, float *dk, float *dv, const float *dout, const float *P, const float *q,
                        const float *k, const float *v, int32_t B, int32_t T, int32_t H, int32_t Hkv, int32_t Dh) {
    SMOE_ASSERT(T <= 4096);
    attn_task a = {.dq = dq, .dk = dk, .dv = dv, .dout = dout, .Pc = P, .q = q, .k = k, .v = v,
                   .B = B, .T = T, .H = H, .Hkv = Hkv, .Dh = Dh};
    smoe_pool_run(p, attn_bwd_kernel, &a);
}

/* ------------------------------------------------------------------ cross-entropy */

typedef struct ce_task {
    float *logits;
    const int32_t *targets;
    int64_t N, V;
    double *loss; /* [N] */
} ce_task;

static void ce_kernel(void *arg, int ith, int nth) {
    const ce_task *c = arg;
    int64_t n0, n1;
    smoe_split(c->N, ith, nth, &n0, &n1);
    for (int64_t n = n0; n < n1; n++) {
        float *l = c->logits + n * c->V;
        float mx = -INFINITY;
        for (int64_t v = 0; v < c->V; v++) mx = l[v] > mx ? l[v] : mx;
        double sum = 0;
        for (int64_t v = 0; v < c->V; v++) sum += exp((double)l[v] - mx);
        const int32_t y = c->targets[n];
        c->loss[n] = log(sum) + mx - l[y];
        const double inv = 1.0 / sum;
        for (int64_t v = 0; v < c->V; v++) l[v] = (float)(exp((double)l[v] - mx) * inv);
    }
}

double tops_cross_entropy(smoe_pool *p, float *logits, const int32_t *targets, int64_t N, int64_t V) {
    double loss[1024];
    double total = 0;
    for (int64_t n0 = 0; n0 < N; n0 += 1024) { /* bounded scratch on the stack */
        const int64_t m = SMOE_MIN((int64_t)1024, N - n0);
        ce_task c = {logits + n0 * V, targets + n0, m, V, loss};
        smoe_pool_run(p, ce_kernel, &c);
        for (int64_t n = 0; n < m; n++) total += loss[n];
    }
    return total / (double)N;
}
