/*
 * tgemm.c - the driver of the training GEMM (see tgemm.h): cache blocking, packing,
 * the thread split, kernel dispatch, and the scalar twins (tgemm_ref, the fmaf micro-
 * kernel and the packers).
 *
 * Blocking (GotoBLAS/BLIS order, per thread over its own block of C):
 *   for each TGEMM_NC columns:             jc
 *     for each TGEMM_KC values of k:       pc   pack op(B)[pc..][jc..] into [kc][16] panels
 *       for each TGEMM_MC rows:            ic   (A^T only) pack op(A) into [kc][6] panels
 *         for each 16-column panel:        jr   the B panel stays in L1 ...
 *           for each 6-row tile:           ir   ... while the A rows stream from L2
 *             micro-kernel over kc, from +0 on the first k block unless accumulating,
 *             else from C (the chain is stored and reloaded: exact).
 * A that is not transposed is read in place: its six rows are six sequential streams
 * (as in cpu/gemm.c), so only A^T needs packing, a copy of six floats per k. B is always
 * packed: in place its k rows would be ldb apart and a power-of-two ldb folds them onto a
 * few L1 sets. A tile that sticks out of C (M % 6, N % 16) runs on a 6x16 copy; short row
 * groups repeat their last row (the extra outputs are dropped), packed panels are zero-
 * padded. The next tile's rows of C are prefetched: with '+=', or past the first k block,
 * the kernel's first instructions load them, and C is often too big for L2.
 *
 * Threads: whole 6-row tiles or 16-column panels per thread, whichever split leaves the
 * largest share smaller; small products run on fewer threads. Any split gives the same
 * bits, so this is only about speed.
 *
 * What it does not do: allocate (the caller's workspace holds the panels), or take the
 * SIMD kernels' code (cpu/x86/tgemm_avx2.c, cpu/arm/tgemm_neon.c).
 */
#include "train/tgemm.h"
#include "cpu/kernels.h"
#include "smoe_internal.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Block sizes (floats). KC x 16 of B is 16 KiB (half of L1d); MC x KC of A (96 KiB)
 * stays in L2 across the panels of B; NC bounds the packed B block (1 MiB, L2/L3). */
#ifndef TGEMM_KC
#define TGEMM_KC 256
#endif
#ifndef TGEMM_MC
#define TGEMM_MC 96
#endif
#ifndef TGEMM_NC
#define TGEMM_NC 1024
#endif
/* Fewest multiply-adds per thread before another thread is worth waking. */
#define TGEMM_MIN_WORK (1 << 17)

_Static_assert(TGEMM_MC % TGEMM_MR == 0 && TGEMM_NC % TGEMM_NR == 0, "blocks hold whole tiles");

/* ------------------------------------------------------------ reference */

void tgemm_ref(bool accumulate, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, bool transA,
               const float *B, int64_t ldb, bool transB, float *C, int64_t ldc) {
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            float c = accumulate ? C[i * ldc + j] : 0.0f;
            for (int64_t k = 0; k < K; k++) {
                const float a = transA ? A[k * lda + i] : A[i * lda + k];
                const float b = transB ? B[j * ldb + k] : B[k * ldb + j];
                c = fmaf(a, b, c);
            }
            C[i * ldc + j] = c;
        }
}

/* ------------------------------------------------------------ scalar kernels */

static void tile_scalar(int64_t kc, const float *const *a, int64_t cs, const float *b, float *c, int64_t ldc,
                        int init) {
    for (int i = 0; i < TGEMM_MR; i++)
        for (int j = 0; j < TGEMM_NR; j++) {
            float s = init ? 0.0f : c[i * ldc + j];
            for (int64_t k = 0; k < kc; k++) s = fmaf(a[i][k * cs], b[k * TGEMM_NR + j], s);
            c[i * ldc + j] = s;
        }
}

static void pack_bt_scalar(const float *b, int64_t ldb, int64_t kc, int64_t nc, float *bp) {
    for (int64_t j0 = 0; j0 < nc; j0 += TGEMM_NR, bp += kc * TGEMM_NR) {
        const int64_t nj = SMOE_MIN(TGEMM_NR, nc - j0);
        for (int64_t j = 0; j < TGEMM_NR; j++)
            for (int64_t k = 0; k < kc; k++) bp[k * TGEMM_NR + j] = j < nj ? b[(j0 + j) * ldb + k] : 0.0f;
    }
}

/* Panels of `width` (16 for B, 6 for A) from a matrix whose rows along k hold the panel
 * values contiguously (B not transposed, A transposed): n values of each of kc rows into
 * ceil(n/width) panels [kc][width], the last one zero-padded. In groups of 8 rows, panel
 * by panel: the reads are 8 sequential streams and each panel gets 8 * width contiguous
 * floats. Inlined with a constant width at each use. */
static inline __attribute__((always_inline)) void pack_rows(const float *src, int64_t ld, int64_t kc, int64_t n,
                                                           int64_t width, float *dst) {
    const int64_t full = n / width, rest = n - full * width;
    for (int64_t k0 = 0; k0 < kc; k0 += 8) {
        const int64_t k1 = SMOE_MIN(k0 + 8, kc);
        for (int64_t p = 0; p < full; p++)
            for (int64_t k = k0; k < k1; k++)
                memcpy(dst + (p * kc + k) * width, src + k * ld + p * width, sizeof(float) * (size_t)width);
        if (rest)
            for (int64_t k = k0; k < k1; k++) {
                float *d = dst + (full * kc + k) * width;
                memcpy(d, src + k * ld + full * width, sizeof(float) * (size_t)rest);
                memset(d + rest, 0, sizeof(float) * (size_t)(width - rest));
            }
    }
}

/* B not transposed: nc columns into panels of 16. */
static void pack_bn(const float *b, int64_t ldb, int64_t kc, int64_t nc, float *bp) {
    pack_rows(b, ldb, kc, nc, TGEMM_NR, bp);
}

/* A transposed (given as [K][M]): mc rows of op(A) into panels of 6. */
static void pack_at(const float *a, int64_t lda, int64_t kc, int64_t mc, float *ap) {
    pack_rows(a, lda, kc, mc, TGEMM_MR, ap);
}

/* ------------------------------------------------------------ dispatch */

static const tgemm_kernels g_scalar = {"scalar", tile_scalar, pack_bt_scalar};
static tgemm_kernels g_best;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void pick(void) {
    g_best = g_scalar;
#if defined(__x86_64__)
    if (smoe_cpu_isa_allowed("avx2")) g_best = (tgemm_kernels){"avx2", tgemm_tile_avx2, tgemm_pack_bt_avx2};
#elif defined(__aarch64__) && defined(__ARM_NEON) && defined(__BYTE_ORDER__) && \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (smoe_cpu_isa_allowed("neon")) g_best = (tgemm_kernels){"neon", tgemm_tile_neon, pack_bt_scalar};
#endif
}

const tgemm_kernels *tgemm_kernels_best(void) {
    pthread_once(&g_once, pick);
    return &g_best;
}

const tgemm_kernels *tgemm_kernels_scalar(void) { return &g_scalar; }

/* ------------------------------------------------------------ workspace */

static int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

/* Floats of one thread's slot: the B block, then the A^T block, each rounded to 64 B. */
static int64_t slot_floats(int64_t M, int64_t N, int64_t K) {
    const int64_t kc = SMOE_MIN(K, TGEMM_KC), nc = SMOE_MIN(round_up(N, TGEMM_NR), TGEMM_NC);
    const int64_t mc = SMOE_MIN(round_up(M, TGEMM_MR), TGEMM_MC);
    return round_up(kc * nc, 16) + round_up(mc * kc, 16);
}

size_t tgemm_ws_bytes(int64_t M, int64_t N, int64_t K, int nth) {
    if (M <= 0 || N <= 0 || K <= 0) return 0;
    return 64 + sizeof(float) * (size_t)slot_floats(M, N, K) * (size_t)(nth < 1 ? 1 : nth);
}

size_t tgemm_ws_bytes_max(int nth) { return tgemm_ws_bytes(TGEMM_MC, TGEMM_NC, TGEMM_KC, nth); }

/* ------------------------------------------------------------ driver */

typedef struct tg_job {
    const tgemm_kernels *kern;
    const float *A, *B;
    float *C;
    int64_t M, N, K, lda, ldb, ldc;
    bool acc, ta, tb, split_n;
    int nth;             /* threads that get work (<= pool size) */
    float *ws;           /* nth slots of slot floats */
    int64_t slot;
} tg_job;

/* C[m0..m1)[n0..n1) over all of k; m0 and n0 are tile-aligned. */
static void run_block(const tg_job *j, float *ws, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    const int64_t kcmax = SMOE_MIN(j->K, TGEMM_KC), ncmax = SMOE_MIN(round_up(j->N, TGEMM_NR), TGEMM_NC);
    float *bp = ws, *ap = ws + round_up(kcmax * ncmax, 16);
    _Alignas(64) float tmp[TGEMM_MR * TGEMM_NR];
    memset(tmp, 0, sizeof tmp); /* the lanes an edge tile does not own stay finite */
    const tgemm_tile_fn tile = j->kern->tile;
    for (int64_t jc = n0; jc < n1; jc += TGEMM_NC) {
        const int64_t nc = SMOE_MIN(TGEMM_NC, n1 - jc);
        for (int64_t pc = 0; pc < j->K; pc += TGEMM_KC) {
            const int64_t kc = SMOE_MIN(TGEMM_KC, j->K - pc);
            const int init = !j->acc && pc == 0;
            if (j->tb) j->kern->pack_bt(j->B + jc * j->ldb + pc, j->ldb, kc, nc, bp);
            else pack_bn(j->B + pc * j->ldb + jc, j->ldb, kc, nc, bp);
            for (int64_t ic = m0; ic < m1; ic += TGEMM_MC) {
                const int64_t mc = SMOE_MIN(TGEMM_MC, m1 - ic);
                if (j->ta) pack_at(j->A + pc * j->lda + ic, j->lda, kc, mc, ap);
                for (int64_t jr = 0; jr < nc; jr += TGEMM_NR) {
                    const float *b = bp + jr * kc;
                    const int64_t nj = SMOE_MIN(TGEMM_NR, nc - jr);
                    for (int64_t ir = 0; ir < mc; ir += TGEMM_MR) {
                        const int64_t ni = SMOE_MIN(TGEMM_MR, mc - ir);
                        const float *a[TGEMM_MR];
                        int64_t cs;
                        if (j->ta) {
                            for (int r = 0; r < TGEMM_MR; r++) a[r] = ap + ir * kc + r;
                            cs = TGEMM_MR;
                        } else {
                            for (int r = 0; r < TGEMM_MR; r++)
                                a[r] = j->A + (ic + ir + SMOE_MIN(r, ni - 1)) * j->lda + pc;
                            cs = 1;
                        }
                        float *c = j->C + (ic + ir) * j->ldc + jc + jr;
                        /* the next tile's C: it is read (+=) or written next, from L3 or memory */
                        if (ir + TGEMM_MR < mc) {
                            const int64_t nn = SMOE_MIN(TGEMM_MR, mc - ir - TGEMM_MR);
                            for (int64_t i = 0; i < nn; i++) {
                                const float *q = c + (TGEMM_MR + i) * j->ldc;
                                __builtin_prefetch(q, 1, 3);
                                __builtin_prefetch(q + nj - 1, 1, 3);
                            }
                        }
                        if (ni == TGEMM_MR && nj == TGEMM_NR) {
                            tile(kc, a, cs, b, c, j->ldc, init);
                            continue;
                        }
                        /* an edge tile: through a full-size copy, only its part written */
                        if (!init)
                            for (int64_t i = 0; i < ni; i++) memcpy(tmp + i * TGEMM_NR, c + i * j->ldc, sizeof(float) * (size_t)nj);
                        tile(kc, a, cs, b, tmp, TGEMM_NR, init);
                        for (int64_t i = 0; i < ni; i++) memcpy(c + i * j->ldc, tmp + i * TGEMM_NR, sizeof(float) * (size_t)nj);
                    }
                }
            }
        }
    }
}

static void tg_task(void *arg, int ith, int nth) {
    (void)nth;
    const tg_job *j = arg;
    if (ith >= j->nth) return;
    int64_t t0, t1;
    float *ws = j->ws + ith * j->slot;
    if (j->split_n) {
        smoe_split((j->N + TGEMM_NR - 1) / TGEMM_NR, ith, j->nth, &t0, &t1);
        if (t0 < t1) run_block(j, ws, 0, j->M, t0 * TGEMM_NR, SMOE_MIN(t1 * TGEMM_NR, j->N));
    } else {
        smoe_split((j->M + TGEMM_MR - 1) / TGEMM_MR, ith, j->nth, &t0, &t1);
        if (t0 < t1) run_block(j, ws, t0 * TGEMM_MR, SMOE_MIN(t1 * TGEMM_MR, j->M), 0, j->N);
    }
}

void tgemm_with(const tgemm_kernels *kern, smoe_pool *p, void *ws, size_t ws_bytes, bool accumulate, int64_t M,
                int64_t N, int64_t K, const float *A, int64_t lda, bool transA, const float *B, int64_t ldb,
                bool transB, float *C, int64_t ldc) {
    SMOE_ASSERT(M >= 0 && N >= 0 && K >= 0);
    if (M == 0 || N == 0) return;
    SMOE_ASSERT(ldc >= N && lda >= (transA ? M : K) && ldb >= (transB ? K : N));
    if (K == 0) {
        if (!accumulate)
            for (int64_t i = 0; i < M; i++) memset(C + i * ldc, 0, sizeof(float) * (size_t)N);
        return;
    }
    const int pool_n = p ? smoe_pool_size(p) : 1;
    SMOE_ASSERT(ws && ws_bytes >= tgemm_ws_bytes(M, N, K, pool_n));

    /* threads: enough work each, and at most one per tile of the split dimension; split
     * the dimension whose largest share is the smaller part of C (ties: rows) */
    const int64_t tm = (M + TGEMM_MR - 1) / TGEMM_MR, tn = (N + TGEMM_NR - 1) / TGEMM_NR;
    const double work = (double)M * (double)N * (double)K;
    int nth = pool_n;
    if ((double)nth * TGEMM_MIN_WORK > work) nth = (int)(work / TGEMM_MIN_WORK);
    if (nth > SMOE_MAX(tm, tn)) nth = (int)SMOE_MAX(tm, tn);
    if (nth < 1) nth = 1;
    const int64_t share_m = (tm + nth - 1) / nth * tn, share_n = (tn + nth - 1) / nth * tm; /* in tiles */

    const uintptr_t base = ((uintptr_t)ws + 63) & ~(uintptr_t)63;
    tg_job j = {kern, A, B, C, M, N, K, lda, ldb, ldc, accumulate, transA, transB, share_n < share_m, nth,
                (float *)base, slot_floats(M, N, K)};
    if (nth == 1 || !p) tg_task(&j, 0, 1);
    else smoe_pool_run(p, tg_task, &j);
}

void tgemm(smoe_pool *p, void *ws, size_t ws_bytes, bool accumulate, int64_t M, int64_t N, int64_t K,
           const float *A, int64_t lda, bool transA, const float *B, int64_t ldb, bool transB, float *C, int64_t ldc) {
    tgemm_with(tgemm_kernels_best(), p, ws, ws_bytes, accumulate, M, N, K, A, lda, transA, B, ldb, transB, C, ldc);
}
