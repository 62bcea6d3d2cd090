/*
 * test_tgemm.c - tests of the training GEMM (src/train/tgemm.h):
 *   - the micro-kernel of every ISA this CPU runs bit-identical to the scalar one over k
 *     lengths 1..300, fresh and accumulating, for A in place (cs = 1) and packed (cs = 6);
 *   - tgemm (dispatched kernels, and the scalar kernels through the same driver) bit-
 *     identical to tgemm_ref for all four transposition pairs x {=, +=}, awkward M, N, K
 *     (1 .. 130, and past the 256-k, 96-row and 1024-column blocks), leading dimensions
 *     larger than the rows, on pools of 1, 2 and 3 threads (products big enough to be
 *     split over rows and over columns);
 *   - sentinels before, after and between the rows of C untouched; with '=' C starts as
 *     NaN, so a kernel that read it would show;
 *   - tgemm_ref within a loose bound of a double-precision product.
 */
#include "train/tgemm.h"
#include "cpu/threadpool.h"
#include "smoe.h"
#include "testhelp.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static unsigned long long g_rng = 0x7467656d6dull;

static float rnd(void) {
    float v = th_rng_float(&g_rng);
    return v == 0.0f ? 0.5f : v; /* uniform(-1, 1), never zero */
}

static uint32_t bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

#define GUARD 37                      /* floats of sentinel before and after C */
static const uint32_t SENTINEL = 0x7fa5a5a5u; /* a signalling-NaN pattern nobody writes */

static smoe_pool *g_pool[4]; /* sizes 1, 2, 3 */
static void *g_ws;
static size_t g_ws_bytes;

/* ------------------------------------------------------------ micro-kernel */

static void test_tiles(void) {
    const tgemm_kernels *best = tgemm_kernels_best(), *ref = tgemm_kernels_scalar();
    printf("tgemm kernels: %s\n", best->isa);
    if (best == ref || best->tile == ref->tile) return;
    enum { KMAX = 300, LDC = 21 };
    float *arow = malloc(sizeof(float) * 6 * KMAX), *apk = malloc(sizeof(float) * 6 * KMAX);
    float *b = aligned_alloc(64, sizeof(float) * 16 * KMAX);
    float c0[6 * LDC], c1[6 * LDC], c2[6 * LDC];
    int bad = 0;
    for (int i = 0; i < 6 * KMAX; i++) arow[i] = rnd(), apk[i] = rnd();
    for (int i = 0; i < 16 * KMAX; i++) b[i] = rnd();
    for (int64_t kc = 1; kc <= KMAX; kc += kc < 40 ? 1 : 13)
        for (int packed = 0; packed < 2; packed++)
            for (int init = 0; init < 2; init++) {
                const float *a[6];
                for (int r = 0; r < 6; r++) a[r] = packed ? apk + r : arow + r * KMAX;
                for (int i = 0; i < 6 * LDC; i++) c0[i] = rnd();
                memcpy(c1, c0, sizeof c0), memcpy(c2, c0, sizeof c0);
                ref->tile(kc, a, packed ? 6 : 1, b, c1, LDC, init);
                best->tile(kc, a, packed ? 6 : 1, b, c2, LDC, init);
                bad += memcmp(c1, c2, sizeof c1) != 0;
            }
    CHECK(bad == 0, "%s tile differs from scalar in %d cases", best->isa, bad);
    free(arow), free(apk), free(b);
}

/* ------------------------------------------------------------ tgemm vs tgemm_ref */

typedef struct gcase {
    int64_t M, N, K, lda, ldb, ldc;
    bool ta, tb, acc;
} gcase;

/* C with guards: GUARD sentinels, M rows of ldc (N values, then sentinels), GUARD more. */
static size_t c_floats(const gcase *g) { return (size_t)(2 * GUARD + g->M * g->ldc); }

static void c_init(const gcase *g, float *cb, const float *vals) {
    for (size_t i = 0; i < c_floats(g); i++) cb[i] = from_bits(SENTINEL);
    for (int64_t i = 0; i < g->M; i++)
        for (int64_t j = 0; j < g->N; j++) cb[GUARD + i * g->ldc + j] = vals[i * g->N + j];
}

/* Sentinels intact? */
static bool c_guards_ok(const gcase *g, const float *cb) {
    for (size_t i = 0; i < c_floats(g); i++) {
        const int64_t o = (int64_t)i - GUARD;
        const bool inside = o >= 0 && o < g->M * g->ldc && o % g->ldc < g->N;
        if (!inside && bits(cb[i]) != SENTINEL) return false;
    }
    return true;
}

static const char *name(const gcase *g) {
    static char s[160];
    snprintf(s, sizeof s, "M %lld N %lld K %lld lda %lld ldb %lld ldc %lld %s%s %s", (long long)g->M,
             (long long)g->N, (long long)g->K, (long long)g->lda, (long long)g->ldb, (long long)g->ldc,
             g->ta ? "At" : "A", g->tb ? "Bt" : "B", g->acc ? "+=" : "=");
    return s;
}

static int g_cases, g_fail;

/* One case: ref once, then each kernel set x thread count against it. full: also the
 * scalar kernels through the driver and the fp64 check (slow for big cases). */
static void run_case(const gcase *g, bool full) {
    const int64_t arows = g->ta ? g->K : g->M, acols = g->ta ? g->M : g->K;
    const int64_t brows = g->tb ? g->N : g->K, bcols = g->tb ? g->K : g->N;
    float *A = malloc(sizeof(float) * (size_t)(arows * g->lda));
    float *B = malloc(sizeof(float) * (size_t)(brows * g->ldb));
    float *c0 = malloc(sizeof(float) * (size_t)(g->M * g->N));
    float *cref = malloc(sizeof(float) * c_floats(g)), *cout = malloc(sizeof(float) * c_floats(g));
    /* padding of A and B holds NaN: a kernel that read it would poison the result */
    for (int64_t i = 0; i < arows * g->lda; i++) A[i] = i % g->lda < acols ? rnd() : NAN;
    for (int64_t i = 0; i < brows * g->ldb; i++) B[i] = i % g->ldb < bcols ? rnd() : NAN;
    for (int64_t i = 0; i < g->M * g->N; i++) c0[i] = g->acc ? rnd() : NAN;
    g_cases++;
    int fails = 0;

    c_init(g, cref, c0);
    tgemm_ref(g->acc, g->M, g->N, g->K, A, g->lda, g->ta, B, g->ldb, g->tb, cref + GUARD, g->ldc);
    bool ok = c_guards_ok(g, cref);
    CHECK(ok, "ref wrote outside C: %s", name(g));
    fails += !ok;

    const tgemm_kernels *ks[2] = {tgemm_kernels_best(), tgemm_kernels_scalar()};
    const int nk = full && ks[0] != ks[1] ? 2 : 1;
    for (int ki = 0; ki < nk; ki++)
        for (int t = 1; t <= 3; t++) {
            if (ki == 1 && t == 2) continue; /* the scalar kernels: 1 and 3 threads */
            const size_t need = tgemm_ws_bytes(g->M, g->N, g->K, t);
            ok = need <= g_ws_bytes && need <= tgemm_ws_bytes_max(t);
            CHECK(ok, "workspace %zu > max: %s", need, name(g));
            c_init(g, cout, c0);
            /* the workspace at an odd address: tgemm aligns it itself */
            tgemm_with(ks[ki], g_pool[t], (char *)g_ws + 4, need, g->acc, g->M, g->N, g->K, A, g->lda, g->ta, B,
                       g->ldb, g->tb, cout + GUARD, g->ldc);
            bool same = true;
            for (int64_t i = 0; i < g->M && same; i++)
                same = memcmp(cout + GUARD + i * g->ldc, cref + GUARD + i * g->ldc, sizeof(float) * (size_t)g->N) == 0;
            CHECK(same, "%s kernels, %d threads: not bit-identical to tgemm_ref: %s", ks[ki]->isa, t, name(g));
            CHECK(c_guards_ok(g, cout), "%s kernels, %d threads: wrote outside C: %s", ks[ki]->isa, t, name(g));
            fails += !same;
        }

    if (full) {
        /* the twin against fp64: |err| <= K * 2^-23 * sum |a b| (+ |c0|), loose */
        double worst = 0;
        for (int64_t i = 0; i < g->M; i++)
            for (int64_t j = 0; j < g->N; j++) {
                double s = g->acc ? c0[i * g->N + j] : 0.0, mag = fabs(s);
                for (int64_t k = 0; k < g->K; k++) {
                    const double a = g->ta ? A[k * g->lda + i] : A[i * g->lda + k];
                    const double b = g->tb ? B[j * g->ldb + k] : B[k * g->ldb + j];
                    s += a * b, mag += fabs(a * b);
                }
                const double err = fabs((double)cref[GUARD + i * g->ldc + j] - s) / (mag + 1e-30);
                if (!(err <= worst)) worst = err; /* NaN sticks */
            }
        ok = worst <= (double)(g->K + 1) * 0x1p-23;
        CHECK(ok, "ref vs fp64: relative error %g: %s", worst, name(g));
        fails += !ok;
    }
    g_fail += fails > 0;
    free(A), free(B), free(c0), free(cref), free(cout);
}

static gcase make(int64_t M, int64_t N, int64_t K, bool ta, bool tb, bool acc, int pad) {
    gcase g = {M, N, K, 0, 0, 0, ta, tb, acc};
    static const int pads[] = {0, 1, 3, 17};
    g.lda = (ta ? M : K) + pads[pad % 4];
    g.ldb = (tb ? K : N) + pads[(pad + 1) % 4];
    g.ldc = N + pads[(pad + 2) % 4];
    return g;
}

static void test_awkward(void) {
    static const int64_t sz[] = {1, 2, 3, 5, 7, 15, 16, 17, 31, 33, 63, 65, 130};
    const int n = (int)(sizeof sz / sizeof *sz);
    int idx = 0;
    for (int combo = 0; combo < 8; combo++) {
        const bool ta = combo & 1, tb = combo & 2, acc = combo & 4;
        for (int im = 0; im < n; im++)
            for (int in = 0; in < n; in++, idx++) {
                const int64_t K = sz[(im * 5 + in * 3 + combo) % n];
                gcase g = make(sz[im], sz[in], K, ta, tb, acc, idx);
                run_case(&g, true);
            }
    }
}

/* Past the block sizes (k 256, rows 96, columns 1024), and big enough to be threaded
 * both ways: tall (split over rows) and wide (split over columns). */
static void test_blocks(void) {
    static const int64_t shapes[][3] = {
        {97, 45, 257},  {200, 33, 513}, {7, 1041, 300}, {13, 130, 600}, {130, 17, 611},
        {65, 65, 65},   {5, 2100, 31},  {301, 64, 256}, {12, 16, 9000}, {193, 1030, 40},
    };
    int idx = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int combo = 0; combo < 8; combo++, idx++) {
            gcase g = make(shapes[s][0], shapes[s][1], shapes[s][2], combo & 1, combo & 2, combo & 4, idx);
            run_case(&g, shapes[s][0] * shapes[s][1] * shapes[s][2] < 3000000);
        }
}

/* K = 0: '=' gives zeros, '+=' leaves C; M or N = 0: nothing. */
static void test_empty(void) {
    float C[6] = {1, 2, 3, 4, 5, 6}, A[1] = {1}, B[1] = {1};
    tgemm(g_pool[2], g_ws, g_ws_bytes, true, 2, 3, 0, A, 1, false, B, 3, false, C, 3);
    CHECK(C[0] == 1 && C[5] == 6, "K = 0 += changed C");
    tgemm(g_pool[2], g_ws, g_ws_bytes, false, 2, 3, 0, A, 1, false, B, 3, false, C, 3);
    CHECK(C[0] == 0 && C[5] == 0 && !signbit(C[3]), "K = 0 = did not zero C");
    C[0] = 7;
    tgemm(g_pool[2], g_ws, g_ws_bytes, false, 0, 3, 4, A, 4, false, B, 3, false, C, 3);
    tgemm(g_pool[2], g_ws, g_ws_bytes, false, 2, 0, 4, A, 4, false, B, 3, false, C, 3);
    CHECK(C[0] == 7, "M or N = 0 changed C");
    CHECK(tgemm_ws_bytes(0, 5, 5, 2) == 0, "no workspace for an empty product");
}

int main(void) {
    for (int t = 1; t <= 3; t++) CHECK_OK(smoe_pool_init(t, &g_pool[t]));
    g_ws_bytes = tgemm_ws_bytes_max(3) + 4;
    g_ws = malloc(g_ws_bytes);
    test_tiles();
    test_empty();
    test_awkward();
    test_blocks();
    printf("tgemm: %d products, %d failed\n", g_cases, g_fail);
    free(g_ws);
    for (int t = 1; t <= 3; t++) smoe_pool_free(g_pool[t]);
    return TEST_REPORT();
}
