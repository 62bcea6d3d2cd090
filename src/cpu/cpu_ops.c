/*
 * cpu_ops.c - parallel execution of the forward pass's heavy ops (see cpu_ops.h).
 *
 * Fast matmul: the input rows are quantized once into the weight's vec_dot_type (Q8_0,
 * Q8_1, Q8_K, F16, BF16 or F32, as llama.cpp does), then every output is one vec_dot of a
 * weight row with an activation row. Threads split the output rows; each weight row is
 * loaded once and dotted with all T tokens while it sits in L1.
 *
 * Prefill-sized blocks (see gemm_pays) of the types whose kernel row has a
 * gemm_tile take the f32 GEMM of gemm.h instead: the input is packed into 16-token
 * panels (in the same parallel job that quantizes for the other weights), and each
 * thread runs its output rows through smoe_gemm_rows.
 */
#include "cpu/cpu_ops.h"
#include "cpu/gemm.h"
#include "cpu/vexp.h"
#include "ops.h"

#include <math.h>
#include <string.h>

/* ------------------------------------------------------------------ reference path */

typedef struct ref_task {
    float *y;
    const float *x;
    const smoe_tensor *W;
    int64_t T;
    smoe_ctx *c;
} ref_task;

static void ref_kernel(void *arg, int ith, int nth) {
    ref_task *a = arg;
    int64_t r0, r1;
    smoe_split(a->W->rows, ith, nth, &r0, &r1);
    smoe_op_matmul_rows(a->y, a->x, a->W, a->T, r0, r1, a->c->dq + (size_t)ith * (size_t)a->c->model->max_cols);
}

/* ------------------------------------------------------------------ fast path */

/* smoe_op_swiglu (g = silu(g) * u in place) with the exponentials through cpu/vexp.h,
 * a chunk at a time: libm's scalar expf was most of the op. */
static void swiglu_fast(float *g, const float *u, int64_t n) {
    float e[256];
    for (int64_t i0 = 0; i0 < n; i0 += 256) {
        const int64_t k = SMOE_MIN(256, n - i0);
        for (int64_t j = 0; j < k; j++) e[j] = -g[i0 + j];
        smoe_vexp(e, e, k);
        for (int64_t j = 0; j < k; j++) g[i0 + j] = g[i0 + j] / (1.0f + e[j]) * u[i0 + j];
    }
}

typedef struct mmq_task {
    smoe_ctx *c;
    const float *x;
    int64_t T, n_in;
    int nw;
    const smoe_tensor *W[3];
    float *y[3];
    const uint8_t *xq[3];  /* input rows of weight i in its vec_dot_type (slots shared by type) */
    size_t qstride[3];     /* bytes between those rows */
    int n_quant;           /* slots c->xq[0..n_quant-1] to fill, each by its kernel */
    const smoe_kernel *quant_kern[3];
    size_t slot_stride[3];
    int64_t rows_total;
    bool gemm[3];          /* weight i goes through the f32 GEMM from the packed panels */
    bool pack;             /* some weight does: pack x into c->gemm_a */
} mmq_task;

/* Whether a matmul of a gemm_tile type over T tokens takes the GEMM: at least 16 tokens
 * (one full panel) and at most 20% padding in the last panel. On Zen 3 the integer
 * Q8_0 path does ~60 GFLOP/s per thread and the GEMM ~82 x the panels' fill
 * (bench/bench_kernels.c --gemm), so they break even near 80% fill. */
static bool gemm_pays(int64_t T) { return T >= SMOE_GEMM_MT && 5 * T >= 4 * SMOE_GEMM_MT * smoe_gemm_panels(T); }

static size_t row_bytes(int dtype, int64_t n) {
    return (size_t)(n / smoe_dtype_block_size(dtype)) * smoe_dtype_block_bytes(dtype);
}

static void quant_kernel(void *arg, int ith, int nth) {
    mmq_task *a = arg;
    int64_t t0, t1;
    smoe_split(a->T, ith, nth, &t0, &t1);
    for (int s = 0; s < a->n_quant; s++)
        for (int64_t t = t0; t < t1; t++)
            a->quant_kern[s]->act_quant(a->x + t * a->n_in, a->c->xq[s] + (size_t)t * a->slot_stride[s], a->n_in);
    if (a->pack) {
        int64_t p0, p1;
        smoe_split(smoe_gemm_panels(a->T), ith, nth, &p0, &p1);
        smoe_gemm_pack(a->x, a->T, a->n_in, p0, p1, a->c->gemm_a);
    }
}

/* y[r] = W row r . x for r in [r0, r1), one activation row. Decode reads each weight
 * byte once, so the loop asks for the bytes PREFETCH_BYTES ahead in this thread's row
 * stream (never past row `end`) before the hardware prefetcher would; measured on
 * bench-m, it lifts generation speed by 10-25%. A type with a vec_dot_4xn (F32) takes its
 * rows four at a time through it; the quantized types take theirs through vec_dot_4x1,
 * which prefetches block by block itself (spread through the compute, not in a burst
 * per row: bench-m tg128 Q4_K_M 158 -> 175-190 tokens/s, Q8_0 102 -> 132, 2 threads).
 * Both give vec_dot's bits. */
#define PREFETCH_BYTES 8192
static inline void prefetch_rows(const smoe_tensor *W, int64_t r, int64_t nr, const uint8_t *stop) {
    const uint8_t *pf = W->data + (size_t)r * W->row_bytes + PREFETCH_BYTES;
    for (size_t b = 0; b < (size_t)nr * W->row_bytes && pf + b < stop; b += 64) __builtin_prefetch(pf + b, 0, 3);
}

static inline void dot_rows(const smoe_tensor *W, int64_t r0, int64_t r1, int64_t end, const uint8_t *x, float *y) {
    const smoe_vec_dot_fn dot = W->kern->vec_dot;
    const smoe_vec_dot_4xn_fn d4n = W->kern->vec_dot_4xn;
    const smoe_vec_dot_4x1_fn d41 = W->kern->vec_dot_4x1;
    const uint8_t *stop = W->data + (size_t)end * W->row_bytes;
    int64_t r = r0;
    if (d4n)
        for (; r + 4 <= r1; r += 4) {
            prefetch_rows(W, r, 4, stop);
            d4n(W->cols, W->data + (size_t)r * W->row_bytes, W->row_bytes, x, 0, 1, y + r, 0);
        }
    else if (d41) /* it prefetches as it goes */
        for (; r + 4 <= r1; r += 4) d41(W->cols, W->data + (size_t)r * W->row_bytes, W->row_bytes, x, y + r);
    for (; r < r1; r++) {
        prefetch_rows(W, r, 1, stop);
        y[r] = dot(W->cols, W->data + (size_t)r * W->row_bytes, x);
    }
}

/* y[t][r] = W row r . x[t] for rows [rb, re) and tokens [t0, t1) (activation rows qs bytes
 * apart, output rows M floats apart). A type with a vec_dot_4xn (F32) runs 4-row x
 * 3-token tiles (the rows left over one by one); the others take four tokens at a time
 * through vec_dot4 (each weight row unpacked once for the four; vec_dot_2x4 also shares
 * each activation block between two rows; the first sweep prefetches up to row `end`),
 * then the last 1-3 tokens row by row (vec_dot_few where the type has one). All of these
 * give vec_dot's bits, so the grouping does not change a result. */
static void block_dot(const smoe_tensor *W, int64_t rb, int64_t re, int64_t end, const uint8_t *xq, size_t qs, int64_t t0,
                      int64_t t1, float *y, int64_t M) {
    const smoe_vec_dot_4xn_fn d4n = W->kern->vec_dot_4xn;
    if (d4n) {
        for (int64_t t = t0; t < t1; t += 3) {
            const int nt = (int)SMOE_MIN(3, t1 - t);
            const uint8_t *xt = xq + (size_t)t * qs;
            int64_t r = rb;
            for (; r + 4 <= re; r += 4)
                d4n(W->cols, W->data + (size_t)r * W->row_bytes, W->row_bytes, xt, qs, nt, y + t * M + r, (size_t)M);
            for (; r < re; r++)
                for (int j = 0; j < nt; j++)
                    y[(t + j) * M + r] = W->kern->vec_dot(W->cols, W->data + (size_t)r * W->row_bytes, xt + (size_t)j * qs);
        }
        return;
    }
    const smoe_vec_dot4_fn dot4 = W->kern->vec_dot4;
    const smoe_vec_dot_2x4_fn dot2x4 = dot4 ? W->kern->vec_dot_2x4 : NULL;
    const int64_t t4 = dot4 ? t0 + (t1 - t0) / 4 * 4 : t0;
    const uint8_t *stop = W->data + (size_t)end * W->row_bytes;
    for (int64_t t = t0; t < t4; t += 4) {
        const uint8_t *x4 = xq + (size_t)t * qs;
        const bool first = t == t0; /* the sweep that reads the block from memory prefetches */
        int64_t r = rb;
        if (dot2x4)
            for (; r + 2 <= re; r += 2) {
                float o[8];
                if (first) prefetch_rows(W, r, 2, stop);
                dot2x4(W->cols, W->data + (size_t)r * W->row_bytes, W->row_bytes, x4, qs, o);
                for (int j = 0; j < 4; j++) y[(t + j) * M + r] = o[j], y[(t + j) * M + r + 1] = o[4 + j];
            }
        for (; r < re; r++) {
            float o[4];
            if (first) prefetch_rows(W, r, 1, stop);
            dot4(W->cols, W->data + (size_t)r * W->row_bytes, x4, qs, o);
            for (int j = 0; j < 4; j++) y[(t + j) * M + r] = o[j];
        }
    }
    if (t1 == t4) return;
    if (t1 - t4 == 1) {
        dot_rows(W, rb, re, end, xq + (size_t)t4 * qs, y + t4 * M);
        return;
    }
    /* 2-3 tokens left: row by row, each row (in L1 after the first token) dotted with all
     * of them while the prefetches keep the memory stream going, rather than one sweep
     * per token, during which the block's later sweeps would leave memory idle */
    const smoe_vec_dot_fn dot = W->kern->vec_dot;
    const smoe_vec_dot_few_fn few = W->kern->vec_dot_few; /* each block unpacked once for them */
    for (int64_t r = rb; r < re; r++) {
        if (!few) prefetch_rows(W, r, 1, stop); /* vec_dot_few prefetches block by block */
        const uint8_t *wr = W->data + (size_t)r * W->row_bytes;
        if (few) {
            float o[3];
            few(W->cols, wr, xq + (size_t)t4 * qs, qs, (int)(t1 - t4), o);
            for (int64_t t = t4; t < t1; t++) y[t * M + r] = o[t - t4];
        } else {
            for (int64_t t = t4; t < t1; t++) y[t * M + r] = dot(W->cols, wr, xq + (size_t)t * qs);
        }
    }
}

/* Rows [r0, r1) of weight i for all T tokens. Tiled: a block of ROW_BLOCK weight rows
 * (~10-20 KB) is swept over the tokens four at a time, so the weight block stays in L1
 * while each group of four activation rows is reused ROW_BLOCK times. */
#define ROW_BLOCK 64
static void rows_dot(const mmq_task *a, int i, int64_t r0, int64_t r1, int ith) {
    const smoe_tensor *W = a->W[i];
    if (a->gemm[i]) {
        smoe_gemm_rows(W, a->c->gemm_a, a->T, r0, r1, a->y[i], W->rows, a->c->gemm_ws + (size_t)ith * a->c->gemm_ws_floats);
        return;
    }
    for (int64_t rb = r0; rb < r1; rb += ROW_BLOCK)
        block_dot(W, rb, SMOE_MIN(rb + ROW_BLOCK, r1), r1, a->xq[i], a->qstride[i], 0, a->T, a->y[i], W->rows);
}

/* All weights' rows, concatenated, split evenly over the threads. */
static void mmq_kernel(void *arg, int ith, int nth) {
    const mmq_task *a = arg;
    int64_t g0, g1, base = 0;
    smoe_split(a->rows_total, ith, nth, &g0, &g1);
    for (int i = 0; i < a->nw; i++) {
        const int64_t r0 = SMOE_MAX(g0 - base, 0), r1 = SMOE_MIN(g1 - base, a->W[i]->rows);
        base += a->W[i]->rows;
        if (r0 < r1) rows_dot(a, i, r0, r1, ith);
    }
}

/* Gate and up rows [r0, r1) together, then SwiGLU on them in place: the thread that
 * computed both halves of an element applies the activation, so no serial pass is left. */
static void gate_up_kernel(void *arg, int ith, int nth) {
    const mmq_task *a = arg;
    const int64_t F = a->W[0]->rows;
    int64_t r0, r1;
    smoe_split(F, ith, nth, &r0, &r1);
    if (r0 >= r1) return;
    rows_dot(a, 0, r0, r1, ith);
    rows_dot(a, 1, r0, r1, ith);
    for (int64_t t = 0; t < a->T; t++) swiglu_fast(a->y[0] + t * F + r0, a->y[1] + t * F + r0, r1 - r0);
}

/* Fill the task and quantize the input once per distinct vec_dot type. */
#define GEMM_MIN_ROWS 64
static void mmq_prepare(smoe_ctx *c, mmq_task *a, const float *x, int64_t T, int n, const smoe_tensor *const *W,
                        float *const *y) {
    *a = (mmq_task){.c = c, .x = x, .T = T, .n_in = W[0]->cols, .nw = n};
    /* The GEMM only when every weight of the call takes it and has GEMM_MIN_ROWS rows:
     * - packing the input costs as much as a GEMM of a few rows (the router's E rows stay
     *   on vec_dot);
     * - in a mixed call (Q4_K_M's Q4_K attn_q with Q8_0 attn_k/attn_v) the input is
     *   quantized anyway, and the integer path keeps such files computing what llama.cpp
     *   computes (on the test model, Q4_K_M's logits move from 0.057 to 0.23 of
     *   llama.cpp's own when its attn_k/attn_v take the GEMM). */
    bool gemm = gemm_pays(T);
    for (int i = 0; i < n; i++) gemm &= W[i]->kern->gemm_tile && W[i]->kern->to_f32 && W[i]->rows >= GEMM_MIN_ROWS;
    for (int i = 0; i < n; i++) {
        SMOE_ASSERT(W[i]->cols == a->n_in);
        const smoe_kernel *k = W[i]->kern;
        a->W[i] = W[i];
        a->y[i] = y[i];
        a->rows_total += W[i]->rows;
        if (gemm) { /* f32 GEMM from the packed panels */
            a->gemm[i] = a->pack = true;
            continue;
        }
        if (k->vec_dot_type == SMOE_DTYPE_F32) { /* the input is already in that type */
            a->xq[i] = (const uint8_t *)x;
            a->qstride[i] = sizeof(float) * (size_t)a->n_in;
            continue;
        }
        int s = 0;
        while (s < a->n_quant && a->quant_kern[s]->vec_dot_type != k->vec_dot_type) s++;
        if (s == a->n_quant) { /* first weight wanting this activation type: quantize into slot s */
            a->quant_kern[s] = k;
            a->slot_stride[s] = row_bytes(k->vec_dot_type, a->n_in);
            a->n_quant++;
        }
        a->xq[i] = c->xq[s];
        a->qstride[i] = a->slot_stride[s];
    }
    if (a->n_quant || a->pack) {
        if (T == 1) quant_kernel(a, 0, 1); /* one row: not worth waking the pool */
        else smoe_pool_run(c->pool, quant_kernel, a);
    }
}

static bool use_fast(const smoe_ctx *c, int n, const smoe_tensor *const *W) {
    bool fast = !c->reference;
    for (int i = 0; i < n; i++) fast &= W[i]->kern != NULL;
    return fast;
}

void smoe_cpu_matmul_n(smoe_ctx *c, const float *x, int64_t T, int n, const smoe_tensor *const *W, float *const *y) {
    SMOE_ASSERT(n >= 1 && n <= 3);
    if (!use_fast(c, n, W)) {
        for (int i = 0; i < n; i++) {
            ref_task a = {y[i], x, W[i], T, c};
            smoe_pool_run(c->pool, ref_kernel, &a);
        }
        return;
    }
    mmq_task a;
    mmq_prepare(c, &a, x, T, n, W, y);
    smoe_pool_run(c->pool, mmq_kernel, &a);
}

void smoe_cpu_gate_up(smoe_ctx *c, const float *x, int64_t T, const smoe_tensor *Wg, const smoe_tensor *Wu, float *g,
                      float *u) {
    const smoe_tensor *W[2] = {Wg, Wu};
    float *y[2] = {g, u};
    SMOE_ASSERT(Wg->rows == Wu->rows);
    if (!use_fast(c, 2, W)) {
        smoe_cpu_matmul_n(c, x, T, 2, W, y);
        smoe_op_swiglu(g, u, T * Wg->rows);
        return;
    }
    mmq_task a;
    mmq_prepare(c, &a, x, T, 2, W, y);
    smoe_pool_run(c->pool, gate_up_kernel, &a);
}

void smoe_cpu_matmul(smoe_ctx *c, float *y, const float *x, const smoe_tensor *W, int64_t T) {
    smoe_cpu_matmul_n(c, x, T, 1, &W, &y);
}

/* ------------------------------------------------------------------ attention */

typedef struct attn_task {
    smoe_ctx *c;
    int il;
    int32_t T;
    bool multi; /* tokens of several sequences: caches and lengths per token (c->tok_*) */
} attn_task;

/* Layer il's caches and the number of positions token t attends to. */
static inline void attn_source(const attn_task *a, int64_t t, const float **kc, const float **vc, int32_t *n_kv) {
    const smoe_ctx *c = a->c;
    if (a->multi) {
        *kc = c->tok_kc[t], *vc = c->tok_vc[t], *n_kv = c->tok_nkv[t];
        return;
    }
    const int64_t Dkv = (int64_t)c->model->info.n_head_kv * c->model->info.head_dim;
    *kc = c->k_cache + (size_t)a->il * c->n_ctx * Dkv;
    *vc = c->v_cache + (size_t)a->il * c->n_ctx * Dkv;
    *n_kv = c->n_past + (int32_t)t + 1;
}

static void attn_kernel(void *arg, int ith, int nth) {
    attn_task *a = arg;
    smoe_ctx *c = a->c;
    const smoe_model_info *inf = &c->model->info;
    const int H = inf->n_head, Hkv = inf->n_head_kv, Dh = inf->head_dim, group = H / Hkv;
    const int64_t Dkv = (int64_t)Hkv * Dh;
    float *scores = c->scores + (size_t)ith * c->n_ctx * (size_t)group;
    const float *kc, *vc;
    int32_t n_kv;
    if (c->reference) { /* one query head at a time, fp64 accumulation */
        int64_t w0, w1;
        smoe_split((int64_t)a->T * H, ith, nth, &w0, &w1);
        for (int64_t w = w0; w < w1; w++) {
            const int64_t t = w / H, hq = w % H, hk = hq / group; /* query head hq reads kv head hq / (H/Hkv) */
            attn_source(a, t, &kc, &vc, &n_kv);
            smoe_op_attend(c->att + t * H * Dh + hq * Dh, c->q + t * H * Dh + hq * Dh, kc + hk * Dh, vc + hk * Dh, Dkv,
                           n_kv, Dh, scores);
        }
        return;
    }
    /* the query heads hk*group .. hk*group+group-1 share kv head hk and sit next to each
     * other. Work items are dealt round-robin: causal rows grow with t, so contiguous
     * ranges would give the last thread the longest rows. */
    for (int64_t w = ith; w < (int64_t)a->T * Hkv; w += nth) {
        const int64_t t = w / Hkv, hk = w % Hkv, off = t * H * Dh + hk * group * Dh;
        attn_source(a, t, &kc, &vc, &n_kv);
        c->attn_fn(c->att + off, c->q + off, kc + hk * Dh, vc + hk * Dh, Dkv, n_kv, group, Dh, scores);
    }
}

void smoe_cpu_attention(smoe_ctx *c, int il, int32_t T) {
    attn_task a = {c, il, T, false};
    smoe_pool_run(c->pool, attn_kernel, &a);
}

void smoe_cpu_attention_multi(smoe_ctx *c, int32_t T) {
    attn_task a = {c, 0, T, true};
    smoe_pool_run(c->pool, attn_kernel, &a);
}

/* ------------------------------------------------------------------ experts of one layer */

#define MAX_ACTIVE 64 /* experts with work in one fused job; more go through the per-expert path */

typedef struct grp_task {
    const smoe_tensor *Wa, *Wb;  /* per-expert views; Wb NULL for a single matmul */
    int32_t n_act;
    int32_t act[MAX_ACTIVE];     /* expert of each active group */
    int64_t off[MAX_ACTIVE + 1]; /* its rows in x / y */
    const uint8_t *xq;
    size_t qs;
    float *ya, *yb;
    int64_t M;                   /* output rows of each expert matrix */
} grp_task;

/* Rows of the concatenated (active expert, output row) space, split evenly; with Wb the
 * pair is computed row by row and finished with SwiGLU, as in gate_up_kernel. An expert
 * with several tokens (batched decode) runs them over blocks of ROW_BLOCK rows, so its
 * weights are read from memory once, not once per token. */
/* The threads' shares of the (active expert, row) space, weighted by what a row costs: a
 * row of an expert with t tokens counts ROW_COST_MEM + t (reading it, then a dot per
 * token), so that a thread given the experts with many tokens does not finish last. Where
 * share boundary `part` of `parts` falls, as (expert, row): every thread computes the same
 * boundaries, so the shares tile the space. */
#define ROW_COST_MEM 2
static void grp_bound(const grp_task *a, int part, int parts, int32_t *ie, int64_t *ir) {
    int64_t total = 0;
    for (int32_t i = 0; i < a->n_act; i++) total += (ROW_COST_MEM + a->off[i + 1] - a->off[i]) * a->M;
    int64_t p = total * part / parts;
    for (int32_t i = 0; i < a->n_act; i++) {
        const int64_t c = ROW_COST_MEM + a->off[i + 1] - a->off[i];
        if (p < c * a->M) {
            *ie = i, *ir = p / c;
            return;
        }
        p -= c * a->M;
    }
    *ie = a->n_act, *ir = 0;
}

static void grp_kernel(void *arg, int ith, int nth) {
    const grp_task *a = arg;
    int32_t e0, e1;
    int64_t q0, q1;
    grp_bound(a, ith, nth, &e0, &q0);
    grp_bound(a, ith + 1, nth, &e1, &q1);
    const int64_t g0 = (int64_t)e0 * a->M + q0, g1 = (int64_t)e1 * a->M + q1; /* in the unweighted space */
    for (int32_t i = e0; i < a->n_act && (int64_t)i * a->M < g1; i++) {
        const int64_t r0 = SMOE_MAX(g0 - i * a->M, 0), r1 = SMOE_MIN(g1 - i * a->M, a->M);
        if (r0 >= r1) continue;
        const smoe_tensor *Wa = &a->Wa[a->act[i]], *Wb = a->Wb ? &a->Wb[a->act[i]] : NULL;
        const int64_t t0 = a->off[i], t1 = a->off[i + 1];
        if (t1 - t0 == 1) { /* one token: one pass over the rows, prefetching ahead */
            dot_rows(Wa, r0, r1, r1, a->xq + (size_t)t0 * a->qs, a->ya + t0 * a->M);
            if (Wb) {
                dot_rows(Wb, r0, r1, r1, a->xq + (size_t)t0 * a->qs, a->yb + t0 * a->M);
                swiglu_fast(a->ya + t0 * a->M + r0, a->yb + t0 * a->M + r0, r1 - r0);
            }
            continue;
        }
        for (int64_t rb = r0; rb < r1; rb += ROW_BLOCK) {
            const int64_t re = SMOE_MIN(rb + ROW_BLOCK, r1);
            block_dot(Wa, rb, re, r1, a->xq, a->qs, t0, t1, a->ya, a->M);
            if (!Wb) continue;
            block_dot(Wb, rb, re, r1, a->xq, a->qs, t0, t1, a->yb, a->M);
            for (int64_t t = t0; t < t1; t++) swiglu_fast(a->ya + t * a->M + rb, a->yb + t * a->M + rb, re - rb);
        }
    }
}

/* Quantize rows [0, n) of x into buffer q for kernel k; returns the row stride. */
static size_t quantize_all(smoe_ctx *c, const smoe_kernel *k, const float *x, int64_t n, int64_t cols, uint8_t *q) {
    const size_t qs = row_bytes(k->vec_dot_type, cols);
    mmq_task a = {.c = c, .x = x, .T = n, .n_in = cols, .n_quant = 1};
    a.quant_kern[0] = k;
    a.slot_stride[0] = qs;
    if (k->vec_dot_type == SMOE_DTYPE_F32) {
        memcpy(q, x, sizeof(float) * (size_t)(n * cols));
        return qs;
    }
    SMOE_ASSERT(q == c->xq[0]); /* quant_kernel writes slot 0 */
    if (n <= 2) quant_kernel(&a, 0, 1);
    else smoe_pool_run(c->pool, quant_kernel, &a);
    return qs;
}

void smoe_cpu_experts(smoe_ctx *c, const smoe_tensor *Wg, const smoe_tensor *Wu, const smoe_tensor *Wd, int32_t E,
                      const int32_t *off, int64_t n, const float *x, float *h, float *u, float *y) {
    grp_task a = {.n_act = 0};
    bool fused = !c->reference && n <= c->n_batch;
    for (int32_t e = 0; e < E && fused; e++) {
        if (off[e + 1] == off[e]) continue;
        /* one job needs one activation type per matrix kind across the experts */
        fused = a.n_act < MAX_ACTIVE && Wg[e].kern && Wu[e].kern && Wd[e].kern &&
                Wg[e].kern->vec_dot_type == Wg[0].kern->vec_dot_type && Wu[e].kern->vec_dot_type == Wg[0].kern->vec_dot_type &&
                Wd[e].kern->vec_dot_type == Wd[0].kern->vec_dot_type;
        a.act[a.n_act] = e;
        a.off[a.n_act++] = off[e];
    }
    const int64_t D = Wd[0].rows, F = Wg[0].rows;
    if (!fused || n > 4 * a.n_act) {
        /* prefill-sized groups: one gate/up and one down job per expert (each large enough
         * to keep the threads busy, and tiled over tokens by rows_dot) */
        for (int32_t e = 0; e < E; e++) {
            const int64_t n_e = off[e + 1] - off[e];
            if (n_e == 0) continue;
            smoe_cpu_gate_up(c, x + off[e] * D, n_e, &Wg[e], &Wu[e], h, u); /* [n_e][F] */
            smoe_cpu_matmul(c, y + off[e] * D, h, &Wd[e], n_e);             /* [n_e][D] */
        }
        return;
    }
    /* decode-sized: every active expert's gate/up as one job, then every down as one job */
    a.off[a.n_act] = n;
    a.Wa = Wg, a.Wb = Wu, a.ya = h, a.yb = u, a.M = F;
    a.xq = c->xq[0];
    a.qs = quantize_all(c, Wg[a.act[0]].kern, x, n, D, c->xq[0]);
    smoe_pool_run(c->pool, grp_kernel, &a);                            /* [n][F] silu(gate) * up */
    a.Wa = Wd, a.Wb = NULL, a.ya = y, a.yb = NULL, a.M = D;
    a.qs = quantize_all(c, Wd[a.act[0]].kern, h, n, F, c->xq[0]);
    smoe_pool_run(c->pool, grp_kernel, &a);                            /* [n][D] */
}
