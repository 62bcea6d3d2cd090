/*
 * ops_ref.c - reference implementations of the ops in ops.h: clear scalar code that
 * every later fast kernel is tested against. Accumulates in double where it is cheap,
 * so these are at least as accurate as the float32 peers they are compared with.
 */
#include "ops.h"
#include "quant/quant.h"

#include <math.h>
#include <string.h>

void smoe_op_rmsnorm(float *y, const float *x, const float *w, int64_t T, int64_t D, float eps) {
    for (int64_t t = 0; t < T; t++) {
        const float *xr = x + t * D;
        float *yr = y + t * D;
        double ss = 0;
        for (int64_t i = 0; i < D; i++) ss += (double)xr[i] * xr[i];
        float scale = (float)(1.0 / sqrt(ss / (double)D + (double)eps));
        for (int64_t i = 0; i < D; i++) yr[i] = xr[i] * scale * w[i];
    }
}

void smoe_op_get_row(float *out, const smoe_tensor *W, int64_t row) {
    const uint8_t *src = W->data + (size_t)row * W->row_bytes;
    if (W->dtype == SMOE_DTYPE_F32) {
        memcpy(out, src, sizeof(float) * (size_t)W->cols);
    } else {
        /* dtype was checked to be dequantizable when the model was loaded */
        smoe_type_traits_get(W->dtype)->to_float(src, out, W->cols);
    }
}

void smoe_op_matmul_rows(float *y, const float *x, const smoe_tensor *W, int64_t T, int64_t r0, int64_t r1,
                         float *scratch) {
    const int64_t n = W->cols, m = W->rows;
    for (int64_t r = r0; r < r1; r++) {
        const float *w;
        if (W->dtype == SMOE_DTYPE_F32 && ((uintptr_t)(W->data + (size_t)r * W->row_bytes) % sizeof(float)) == 0) {
            w = (const float *)(const void *)(W->data + (size_t)r * W->row_bytes);
        } else {
            smoe_op_get_row(scratch, W, r);
            w = scratch;
        }
        for (int64_t t = 0; t < T; t++) {
            const float *xr = x + t * n;
            double acc = 0;
            for (int64_t i = 0; i < n; i++) acc += (double)w[i] * xr[i];
            y[t * m + r] = (float)acc;
        }
    }
}

/* RoPE's angle for pair i at position pos, and the rotation of pair i of every head. */
static inline void rope_angle(int i, int rope_dim, int32_t pos, float base, float *c, float *s) {
    double theta = (double)pos * pow((double)base, -2.0 * i / rope_dim);
    *c = (float)cos(theta), *s = (float)sin(theta);
}

static inline void rope_rotate(float *x, int n_heads, int head_dim, int i, float c, float s) {
    for (int h = 0; h < n_heads; h++) {
        float *p = x + (int64_t)h * head_dim + 2 * i;
        float a = p[0], b = p[1];
        p[0] = a * c - b * s;
        p[1] = a * s + b * c;
    }
}

void smoe_op_rope(float *x, int n_heads, int head_dim, int rope_dim, int32_t pos, float base) {
    for (int i = 0; i < rope_dim / 2; i++) {
        float c, s;
        rope_angle(i, rope_dim, pos, base, &c, &s);
        rope_rotate(x, n_heads, head_dim, i, c, s);
    }
}

void smoe_op_rope_cs(float *cs, int rope_dim, int32_t pos, float base) {
    for (int i = 0; i < rope_dim / 2; i++) rope_angle(i, rope_dim, pos, base, &cs[2 * i], &cs[2 * i + 1]);
}

void smoe_op_rope_apply(float *x, int n_heads, int head_dim, int rope_dim, const float *cs) {
    for (int i = 0; i < rope_dim / 2; i++) rope_rotate(x, n_heads, head_dim, i, cs[2 * i], cs[2 * i + 1]);
}

void smoe_op_softmax(float *x, int64_t n) {
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; i++) x[i] *= inv;
}

void smoe_op_attend(float *out, const float *q, const float *kc, const float *vc, int64_t kv_stride, int32_t n_kv,
                    int head_dim, float *scores) {
    const double scale = 1.0 / sqrt((double)head_dim);
    for (int32_t s = 0; s < n_kv; s++) {
        const float *k = kc + s * kv_stride;
        double acc = 0;
        for (int d = 0; d < head_dim; d++) acc += (double)q[d] * k[d];
        scores[s] = (float)(acc * scale);
    }
    smoe_op_softmax(scores, n_kv);
    for (int d = 0; d < head_dim; d++) out[d] = 0;
    for (int32_t s = 0; s < n_kv; s++) {
        const float *v = vc + s * kv_stride;
        const float p = scores[s];
        for (int d = 0; d < head_dim; d++) out[d] += p * v[d];
    }
}

void smoe_op_swiglu(float *g, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}
