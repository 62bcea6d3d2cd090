/*
 * optim.c - AdamW, clipping and the learning-rate schedule (see optim.h). The update
 * follows torch.optim.AdamW term by term, so a run can be compared with PyTorch's
 * (tests/test_train.c checks a 3-step trajectory against the train-tiny goldens):
 *
 *   theta *= 1 - lr wd;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
 *   theta -= lr (m / (1 - b1^s)) / (sqrt(v) / sqrt(1 - b2^s) + eps)
 */
#include "train/optim.h"
#include "train/tkern.h"
#include "train/tred.h"

#include <math.h>

typedef struct adam_task {
    float *theta, *m, *v, *g;
    const float *gc;
    int64_t n;
    bool clear_g;
    tk_adamw_par par;
    double *partial; /* [chunks] of the norm */
} adam_task;

static void adam_kernel(void *arg, int ith, int nth) {
    const adam_task *a = arg;
    int64_t i0, i1;
    smoe_split(a->n, ith, nth, &i0, &i1);
    tkern_best()->adamw(i1 - i0, a->theta + i0, a->m + i0, a->v + i0, a->g + i0, a->clear_g, &a->par);
}

static void run(smoe_pool *pool, smoe_task_fn fn, adam_task *a) {
    if (pool) smoe_pool_run(pool, fn, a);
    else fn(a, 0, 1);
}

void smoe_adamw_step(smoe_pool *pool, const smoe_adamw *o, float lr, int64_t s, float gscale, float *theta, float *g,
                     bool clear_g, float *m, float *v, int64_t n) {
    const double bc1 = 1.0 - pow(o->beta1, (double)s), bc2 = 1.0 - pow(o->beta2, (double)s);
    adam_task a = {.theta = theta, .m = m, .v = v, .g = g, .n = n, .clear_g = clear_g,
                   .par = {.scale = gscale, .decay = 1.0f - lr * o->weight_decay, .b1 = o->beta1, .b2 = o->beta2,
                           .step = (float)(lr / bc1), .inv_sbc2 = (float)(1.0 / sqrt(bc2)), .eps = o->eps}};
    run(pool, adam_kernel, &a);
}

/* Chunk c's sum of squares into partial[c], for the chunks of this thread's slice. */
static void norm_kernel(void *arg, int ith, int nth) {
    const adam_task *a = arg;
    const int64_t chunks = (a->n + SMOE_NORM_CHUNK - 1) / SMOE_NORM_CHUNK;
    int64_t c0, c1;
    smoe_split(chunks, ith, nth, &c0, &c1);
    for (int64_t c = c0; c < c1; c++) {
        const int64_t e = c * SMOE_NORM_CHUNK + SMOE_NORM_CHUNK < a->n ? c * SMOE_NORM_CHUNK + SMOE_NORM_CHUNK : a->n;
        const float *x = a->gc + c * SMOE_NORM_CHUNK;
        a->partial[c] = tred_dot(x, x, e - c * SMOE_NORM_CHUNK);
    }
}

double smoe_grad_norm(smoe_pool *pool, const float *g, int64_t n) {
    double partial[256], total = 0;
    /* in rounds of 256 chunks: bounded stack, and the same order of additions */
    for (int64_t base = 0; base < n; base += 256 * (int64_t)SMOE_NORM_CHUNK) {
        const int64_t len = n - base < 256 * (int64_t)SMOE_NORM_CHUNK ? n - base : 256 * (int64_t)SMOE_NORM_CHUNK;
        adam_task a = {.gc = g + base, .n = len, .partial = partial};
        run(pool, norm_kernel, &a);
        for (int64_t c = 0; c < (len + SMOE_NORM_CHUNK - 1) / SMOE_NORM_CHUNK; c++) total += partial[c];
    }
    return sqrt(total);
}

float smoe_clip_scale(double norm, double max_norm) {
    return max_norm > 0 && norm > max_norm ? (float)(max_norm / norm) : 1.0f;
}

float smoe_lr_at(float lr, float min_lr, int64_t s, int64_t warmup, int64_t total) {
    if (warmup > 0 && s <= warmup) return lr * (float)s / (float)warmup;
    if (total <= warmup) return lr;
    double t = (double)(s - warmup) / (double)(total - warmup);
    if (t > 1) t = 1;
    return (float)(min_lr + 0.5 * (lr - min_lr) * (1.0 + cos(M_PI * t)));
}
