/*
 * optim.c - AdamW, clipping and the learning-rate schedule (see optim.h). The update
 * follows torch.optim.AdamW term by term, so a run can be compared with PyTorch's
 * (tests/test_train.c checks a 3-step trajectory against the train-tiny goldens):
 *
 *   theta *= 1 - lr wd;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
 *   theta -= lr (m / (1 - b1^s)) / (sqrt(v) / sqrt(1 - b2^s) + eps)
 */
#include "train/optim.h"

#include <math.h>

void smoe_adamw_step(const smoe_adamw *o, float lr, int64_t s, float *theta, const float *g, float *m, float *v,
                     int64_t n) {
    const double bc1 = 1.0 - pow(o->beta1, (double)s), bc2 = 1.0 - pow(o->beta2, (double)s);
    const float step = (float)(lr / bc1), inv_sbc2 = (float)(1.0 / sqrt(bc2)), decay = 1.0f - lr * o->weight_decay;
    const float b1 = o->beta1, b2 = o->beta2, eps = o->eps;
    for (int64_t i = 0; i < n; i++) {
        const float gi = g[i];
        theta[i] *= decay;
        m[i] = b1 * m[i] + (1.0f - b1) * gi;
        v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
        theta[i] -= step * m[i] / (sqrtf(v[i]) * inv_sbc2 + eps);
    }
}

double smoe_grad_norm(const float *g, int64_t n) {
    double ss = 0;
    for (int64_t i = 0; i < n; i++) ss += (double)g[i] * g[i];
    return sqrt(ss);
}

double smoe_grad_clip(float *g, int64_t n, double max_norm) {
    const double norm = smoe_grad_norm(g, n);
    if (max_norm > 0 && norm > max_norm) {
        const float scale = (float)(max_norm / norm);
        for (int64_t i = 0; i < n; i++) g[i] *= scale;
    }
    return norm;
}

float smoe_lr_at(float lr, float min_lr, int64_t s, int64_t warmup, int64_t total) {
    if (warmup > 0 && s <= warmup) return lr * (float)s / (float)warmup;
    if (total <= warmup) return lr;
    double t = (double)(s - warmup) / (double)(total - warmup);
    if (t > 1) t = 1;
    return (float)(min_lr + 0.5 * (lr - min_lr) * (1.0 + cos(M_PI * t)));
}
