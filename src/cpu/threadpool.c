/*
 * threadpool.c - a persistent pthread pool: workers sleep on a condition variable and
 * wake for each smoe_pool_run generation. Simple and correct first; a spinning barrier
 * for lower latency per op belongs to the speed work, measured by bench/.
 */
#include "cpu/threadpool.h"
#include "smoe_internal.h"

#include <pthread.h>
#include <stdlib.h>

struct smoe_pool {
    int n;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    uint64_t generation;
    int pending;
    bool stop;
    smoe_task_fn fn;
    void *arg;
};

typedef struct worker_arg {
    smoe_pool *p;
    int ith;
} worker_arg;

static void *worker(void *a) {
    worker_arg wa = *(worker_arg *)a;
    free(a);
    smoe_pool *p = wa.p;
    uint64_t seen = 0;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->stop && p->generation == seen) pthread_cond_wait(&p->wake, &p->mu);
        if (p->stop) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        seen = p->generation;
        smoe_task_fn fn = p->fn;
        void *arg = p->arg;
        pthread_mutex_unlock(&p->mu);
        fn(arg, wa.ith, p->n);
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0) pthread_cond_signal(&p->done);
        pthread_mutex_unlock(&p->mu);
    }
}

smoe_status smoe_pool_init(int n_threads, smoe_pool **out) {
    if (n_threads < 1 || n_threads > 1024) return smoe_err(SMOE_ERR_INVALID_ARG, "thread count %d out of range [1, 1024]", n_threads);
    smoe_pool *p = calloc(1, sizeof *p);
    if (!p) return smoe_err(SMOE_ERR_NOMEM, "out of memory");
    p->n = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    p->threads = calloc((size_t)n_threads, sizeof *p->threads);
    if (!p->threads) {
        smoe_pool_free(p);
        return smoe_err(SMOE_ERR_NOMEM, "out of memory");
    }
    for (int i = 1; i < n_threads; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (wa) *wa = (worker_arg){p, i};
        if (!wa || pthread_create(&p->threads[i], NULL, worker, wa) != 0) {
            free(wa);
            p->n = i; /* only join the ones that started */
            smoe_pool_free(p);
            return smoe_err(SMOE_ERR_NOMEM, "cannot start worker thread %d", i);
        }
    }
    *out = p;
    return SMOE_OK;
}

void smoe_pool_free(smoe_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++)
        if (p->threads) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    free(p->threads);
    free(p);
}

int smoe_pool_size(const smoe_pool *p) { return p->n; }

void smoe_pool_run(smoe_pool *p, smoe_task_fn fn, void *arg) {
    if (p->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    p->pending = p->n - 1;
    p->generation++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    fn(arg, 0, p->n);
    pthread_mutex_lock(&p->mu);
    while (p->pending > 0) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
