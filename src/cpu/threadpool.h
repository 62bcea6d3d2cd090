/*
 * threadpool.h - one pool of worker threads that run a kernel as (ith, nth) slices.
 * The calling thread takes part as ith = 0, so a pool of 1 starts no threads. Work is
 * split statically by the kernels themselves, so a given thread count gives the same bits.
 */
#ifndef SMOE_THREADPOOL_H
#define SMOE_THREADPOOL_H

#include "smoe.h"

typedef struct smoe_pool smoe_pool;
typedef void (*smoe_task_fn)(void *arg, int ith, int nth);

smoe_status smoe_pool_init(int n_threads, smoe_pool **out);
void smoe_pool_free(smoe_pool *p);
int smoe_pool_size(const smoe_pool *p);
/* Run fn(arg, ith, nth) for ith = 0..nth-1 and wait for all of them. */
void smoe_pool_run(smoe_pool *p, smoe_task_fn fn, void *arg);

/* Rows [*r0, *r1) of n for slice ith of nth (contiguous, balanced). */
static inline void smoe_split(int64_t n, int ith, int nth, int64_t *r0, int64_t *r1) {
    *r0 = n * ith / nth;
    *r1 = n * (ith + 1) / nth;
}

#endif /* SMOE_THREADPOOL_H */
