/*
 * test_attention.c - the grouped-query attention kernels (cpu/attn.h) against the fp64
 * reference smoe_op_attend (one head at a time) on random data: head sizes 8..128 and
 * ones that are not a multiple of 8, groups of 1..16 heads (the AVX2 kernel splits them
 * into sub-groups of 8, 4, 2, 1), 1..4096 cached positions (including counts that leave
 * partial score tiles), K/V rows strided as in the cache, large-magnitude scores (softmax
 * stability: near one-hot rows, most exponentials underflowing). On x86 with AVX2+FMA,
 * also the AVX2 kernel's vectorised exp against expf (ulp error, underflow, -inf).
 */
#include "cpu/attn.h"
#include "cpu/kernels.h"
#include "ops.h"
#include "testhelp.h"

#include <string.h>

#if defined(__x86_64__)
void smoe_attn_exp_avx2(float *y, const float *x, int64_t n); /* test hook in attn_avx2.c */

static int64_t ulp_diff(float a, float b) {
    int32_t ia, ib;
    memcpy(&ia, &a, 4), memcpy(&ib, &b, 4);
    if (ia < 0) ia = INT32_MIN - ia;
    if (ib < 0) ib = INT32_MIN - ib;
    return ia > ib ? (int64_t)ia - ib : (int64_t)ib - ia;
}

/* exp over [-87, 1] in fine steps, then the underflow region and the special inputs. */
static void test_exp_avx2(void) {
    enum { N = 1 << 20 };
    float *x = malloc(sizeof(float) * N), *y = malloc(sizeof(float) * N);
    for (int i = 0; i < N; i++) x[i] = -87.0f + 88.0f * (float)i / (float)(N - 1);
    x[0] = 0.0f, x[1] = -0.0f, x[2] = 1e-30f, x[3] = -1e-30f, x[4] = -0.34657359f, x[5] = 0.34657359f;
    smoe_attn_exp_avx2(y, x, N - 3); /* odd length: the tail path too */
    smoe_attn_exp_avx2(y + N - 3, x + N - 3, 3);
    int64_t worst = 0;
    float worst_x = 0;
    for (int i = 0; i < N; i++) {
        const int64_t u = ulp_diff(y[i], expf(x[i]));
        if (u > worst) worst = u, worst_x = x[i];
    }
    CHECK(worst <= 2, "exp_avx2: %lld ulp off expf at x=%.9g", (long long)worst, worst_x);
    CHECK(y[0] == 1.0f && y[1] == 1.0f, "exp_avx2(0) = %.9g", y[0]);
    printf("  exp_avx2   max error vs expf on [-87, 1]: %lld ulp\n", (long long)worst);
    /* underflow: below -87.3 the result is 0 or tiny, never negative, NaN or huge */
    static const float lo[] = {-87.3f, -87.5f, -88.0f, -88.7f, -89.0f, -100.0f, -1e4f, -1e30f, -INFINITY};
    float yl[9];
    smoe_attn_exp_avx2(yl, lo, 9);
    for (int i = 0; i < 9; i++)
        CHECK(yl[i] >= 0.0f && yl[i] <= 1.3e-38f, "exp_avx2(%g) = %g: want 0 or tiny", lo[i], yl[i]);
    CHECK(yl[8] == 0.0f, "exp_avx2(-inf) = %g", yl[8]);
    free(x), free(y);
}
#endif

static void run_case(smoe_attn_group_fn fn, const char *name, int head_dim, int group, int32_t n_kv, float mag,
                     unsigned long long *rng, double *worst) {
    const int n_kv_heads = 2;
    const int64_t stride = (int64_t)n_kv_heads * head_dim + 3; /* rows not packed: like the cache, plus padding */
    float *kc = malloc(sizeof(float) * (size_t)(stride * n_kv));
    float *vc = malloc(sizeof(float) * (size_t)(stride * n_kv));
    float *q = malloc(sizeof(float) * (size_t)(group * head_dim));
    float *out = malloc(sizeof(float) * (size_t)(group * head_dim + 1));
    float *ref = malloc(sizeof(float) * (size_t)head_dim);
    float *scores = malloc(sizeof(float) * (size_t)(group * n_kv));
    for (int64_t i = 0; i < stride * n_kv; i++) kc[i] = th_rng_float(rng) * mag, vc[i] = th_rng_float(rng);
    for (int i = 0; i < group * head_dim; i++) q[i] = th_rng_float(rng) * mag;
    out[group * head_dim] = 12345.0f; /* sentinel */
    const int hk = 1;                 /* the second kv head of each row */
    fn(out, q, kc + hk * head_dim, vc + hk * head_dim, stride, n_kv, group, head_dim, scores);
    double err = 0;
    for (int g = 0; g < group; g++) {
        smoe_op_attend(ref, q + g * head_dim, kc + hk * head_dim, vc + hk * head_dim, stride, n_kv, head_dim, scores);
        for (int d = 0; d < head_dim; d++) {
            double e = fabs((double)out[g * head_dim + d] - ref[d]);
            if (!(e <= err)) err = e;
        }
    }
    CHECK(err < 2e-5, "%s Dh=%d group=%d n_kv=%d mag=%g: max err %.3g", name, head_dim, group, n_kv, mag, err);
    CHECK(out[group * head_dim] == 12345.0f, "%s wrote past its output", name);
    if (err > *worst) *worst = err;
    free(kc), free(vc), free(q), free(out), free(ref), free(scores);
}

int main(void) {
    struct {
        smoe_attn_group_fn fn;
        const char *name;
    } fns[2] = {{smoe_attn_group_generic, "generic"}, {smoe_attn_group_get(), "dispatched"}};
    static const int dims[] = {8, 24, 32, 64, 128, 36, 40, 96};
    static const int groups[] = {1, 2, 4, 8, 3, 5, 6, 7, 16};
    static const int32_t nkv[] = {1, 2, 3, 7, 64, 333, 700};
    static const float mags[] = {0.5f, 4.0f, 8.0f};
    unsigned long long rng = 1234;
#if defined(__x86_64__)
    if (smoe_cpu_get_features()->avx2 && smoe_cpu_get_features()->fma) test_exp_avx2();
#endif
    for (int f = 0; f < 2; f++) {
        double worst = 0;
        for (size_t a = 0; a < sizeof dims / sizeof *dims; a++)
            for (size_t b = 0; b < sizeof groups / sizeof *groups; b++)
                for (size_t c = 0; c < sizeof nkv / sizeof *nkv; c++)
                    run_case(fns[f].fn, fns[f].name, dims[a], groups[b], nkv[c], mags[(a + b + c) % 3], &rng, &worst);
        /* long contexts, and large-magnitude scores (|score| in the hundreds: near one-hot rows) */
        static const struct {
            int dim, group;
            int32_t n_kv;
            float mag;
        } big[] = {{64, 4, 2048, 1.0f}, {64, 4, 4096, 0.5f}, {128, 8, 4096, 1.0f}, {64, 8, 2047, 4.0f},
                   {128, 4, 4095, 2.0f}, {32, 2, 4097, 1.0f}, {64, 1, 4096, 1.0f}, {64, 4, 513, 30.0f},
                   {128, 8, 1000, 30.0f}, {64, 6, 300, 60.0f}};
        for (size_t i = 0; i < sizeof big / sizeof *big; i++)
            run_case(fns[f].fn, fns[f].name, big[i].dim, big[i].group, big[i].n_kv, big[i].mag, &rng, &worst);
        printf("  %-10s max |err| vs fp64 reference: %.3g\n", fns[f].name, worst);
    }
    return TEST_REPORT();
}
