/*
 * optim.h - AdamW (decoupled weight decay, as torch.optim.AdamW), global-norm gradient
 * clipping and the learning-rate schedule (linear warm-up, then cosine decay), over the
 * parameter block as one vector. The element-wise work runs on the pool (NULL: the
 * calling thread); results do not depend on the thread count.
 */
#ifndef SMOE_OPTIM_H
#define SMOE_OPTIM_H

#include "cpu/threadpool.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct smoe_adamw {
    float lr;              /* peak learning rate */
    float beta1, beta2;    /* torch defaults 0.9, 0.999; LLM practice 0.9, 0.95 */
    float eps;             /* added after the bias-corrected sqrt(v) (torch) */
    float weight_decay;    /* decoupled: theta *= 1 - lr * wd before the update */
} smoe_adamw;

/* One AdamW step s (1-based) at learning rate lr over n parameters with gradient
 * gscale * g (gradient clipping folded in; 1 = none): m, v are the moment vectors (zero
 * before step 1). clear_g: g is zeroed on the way (for the next step's gradients, without
 * another pass over memory). */
void smoe_adamw_step(smoe_pool *pool, const smoe_adamw *o, float lr, int64_t s, float gscale, float *theta, float *g,
                     bool clear_g, float *m, float *v, int64_t n);

/* L2 norm of g: double sums of fixed chunks of SMOE_NORM_CHUNK values, added in order
 * (so the bits do not depend on the thread count). */
#define SMOE_NORM_CHUNK 65536
double smoe_grad_norm(smoe_pool *pool, const float *g, int64_t n);
/* The factor that brings a gradient of this norm down to max_norm (1 when max_norm <= 0
 * or the norm is already smaller). */
float smoe_clip_scale(double norm, double max_norm);

/* Learning rate at step s (1-based) of total: linear warm-up over `warmup` steps from
 * lr/warmup to lr, then cosine decay to min_lr at step total. */
float smoe_lr_at(float lr, float min_lr, int64_t s, int64_t warmup, int64_t total);

#endif /* SMOE_OPTIM_H */
