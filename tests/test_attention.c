/*
 * test_attention.c - the grouped-query attention kernels (cpu/attn.h) against the fp64
 * reference smoe_op_attend (one head at a time) on random data: head sizes 8..128 and
 * ones that are not a multiple of 8, groups of 1..8 heads, 1..700 cached positions, K/V
 * rows strided as in the cache, large-magnitude scores (softmax stability).
 */
#include "cpu/attn.h"
#include "cpu/kernels.h"
#include "ops.h"
#include "testhelp.h"

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
    static const int dims[] = {8, 24, 32, 64, 128, 36};
    static const int groups[] = {1, 2, 4, 8, 3};
    static const int32_t nkv[] = {1, 2, 7, 64, 333, 700};
    unsigned long long rng = 1234;
    for (int f = 0; f < 2; f++) {
        double worst = 0;
        for (size_t a = 0; a < sizeof dims / sizeof *dims; a++)
            for (size_t b = 0; b < sizeof groups / sizeof *groups; b++)
                for (size_t c = 0; c < sizeof nkv / sizeof *nkv; c++)
                    run_case(fns[f].fn, fns[f].name, dims[a], groups[b], nkv[c], c % 2 ? 4.0f : 0.5f, &rng, &worst);
        printf("  %-10s max |err| vs fp64 reference: %.3g\n", fns[f].name, worst);
    }
    return TEST_REPORT();
}
