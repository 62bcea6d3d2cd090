/*
 * threadpool.c - a persistent pthread pool tuned for many small parallel steps (a decode
 * step of an MoE model runs a few hundred matmuls per token). Workers spin on an atomic
 * generation counter for a short while after each job, so back-to-back jobs start in well
 * under a microsecond; when no job comes for SPIN_NS (200 us: longer than the serial gaps
 * inside a forward pass, shorter than a server's sampling and streaming between passes)
 * they sleep on a condition variable, so an idle pool costs no CPU and a pool waiting
 * between steps does not take cores from the threads that have work.
 *
 * Wake-up protocol (no lost wake-ups): the runner publishes a job by incrementing
 * `generation`, then reads `sleepers`; a worker about to sleep increments `sleepers`, then
 * re-reads `generation` under the mutex. Both pairs are sequentially consistent atomics,
 * so at least one side sees the other.
 */
#include "cpu/threadpool.h"
#include "smoe_internal.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <unistd.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define CPU_RELAX() __asm__ __volatile__("yield")
#else
#define CPU_RELAX() ((void)0)
#endif

#define SPIN_NS 200000L  /* waiting before a worker sleeps */
#define PAUSE_ROUNDS 256 /* pure pause spins before waiters start yielding the CPU */

static inline long long mono_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* One round of waiting: pause while the wait is young, then yield, so that a waiter
 * never keeps a descheduled partner off an oversubscribed core. */
static inline void wait_round(int round) {
    if (round < PAUSE_ROUNDS) CPU_RELAX();
    else sched_yield();
}

struct smoe_pool {
    int n;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    atomic_uint_fast64_t generation;
    atomic_int pending;     /* workers still running the current job */
    atomic_int sleepers;    /* workers blocked (or about to block) on `wake` */
    atomic_bool stop;
    smoe_task_fn fn;        /* written before generation is released */
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
        uint64_t g = atomic_load(&p->generation);
        long long t0 = 0;
        for (int spin = 0; g == seen; spin++) {
            if ((spin & 63) == 0) { /* the clock every 64 rounds: a few ns a round */
                const long long t = mono_ns();
                if (spin == 0) t0 = t;
                else if (t - t0 > SPIN_NS) break;
            }
            wait_round(spin);
            g = atomic_load(&p->generation);
        }
        if (g == seen) {
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->sleepers, 1);
            while ((g = atomic_load(&p->generation)) == seen && !atomic_load(&p->stop)) pthread_cond_wait(&p->wake, &p->mu);
            atomic_fetch_sub(&p->sleepers, 1);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->stop)) return NULL;
        seen = g;
        p->fn(p->arg, wa.ith, p->n);
        atomic_fetch_sub_explicit(&p->pending, 1, memory_order_release);
    }
}

smoe_status smoe_pool_init(int n_threads, smoe_pool **out) {
    if (n_threads < 1 || n_threads > 1024) return smoe_err(SMOE_ERR_INVALID_ARG, "thread count %d out of range [1, 1024]", n_threads);
    smoe_pool *p = calloc(1, sizeof *p);
    if (!p) return smoe_err(SMOE_ERR_NOMEM, "out of memory");
    p->n = 1; /* threads started so far (+ the caller) */
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    atomic_init(&p->generation, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->sleepers, 0);
    atomic_init(&p->stop, false);
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
            smoe_pool_free(p);
            return smoe_err(SMOE_ERR_NOMEM, "cannot start worker thread %d", i);
        }
        p->n = i + 1;
    }
    *out = p;
    return SMOE_OK;
}

void smoe_pool_free(smoe_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, true);
    atomic_fetch_add(&p->generation, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    free(p->threads);
    free(p);
}

int smoe_pool_size(const smoe_pool *p) { return p->n; }

void smoe_pool_run(smoe_pool *p, smoe_task_fn fn, void *arg) {
    if (p->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    atomic_store(&p->pending, p->n - 1);
    atomic_fetch_add(&p->generation, 1); /* seq_cst: publishes fn/arg */
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
    }
    fn(arg, 0, p->n);
    for (int round = 0; atomic_load_explicit(&p->pending, memory_order_acquire) > 0; round++) wait_round(round);
}

/* Count distinct (package, core) pairs among the CPUs in our affinity mask, from sysfs;
 * fall back to the affinity count, then to sysconf. */
int32_t smoe_default_threads(void) {
    cpu_set_t set;
    int n_aff = 0;
    if (sched_getaffinity(0, sizeof set, &set) == 0) n_aff = CPU_COUNT(&set);
    else CPU_ZERO(&set);
    long keys[1024];
    int n_keys = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE && n_aff > 0; cpu++) {
        if (!CPU_ISSET(cpu, &set)) continue;
        char path[128];
        long pkg = 0, core = -1;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/core_id", cpu);
        FILE *f = fopen(path, "r");
        if (!f) return n_aff; /* no topology information: one thread per usable CPU */
        if (fscanf(f, "%ld", &core) != 1) core = cpu;
        fclose(f);
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/physical_package_id", cpu);
        if ((f = fopen(path, "r"))) {
            if (fscanf(f, "%ld", &pkg) != 1) pkg = 0;
            fclose(f);
        }
        long key = pkg * 65536 + core;
        bool seen = false;
        for (int i = 0; i < n_keys && !seen; i++) seen = keys[i] == key;
        if (!seen && n_keys < 1024) keys[n_keys++] = key;
    }
    if (n_keys > 0) return n_keys;
    if (n_aff > 0) return n_aff;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int32_t)n : 1;
}
