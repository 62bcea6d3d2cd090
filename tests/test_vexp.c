/*
 * test_vexp.c - the vector e^x of src/cpu/vexp.h: every ISA version bit-identical to the
 * scalar twin on random inputs over the whole range (and the clamp edges, NaN, +-0,
 * +-inf), every length 0..40 for the tails, in place and out of place; and the twin
 * within 2 ulp of libm's double exp rounded, over [-87.3, 88].
 */
#include "cpu/vexp.h"
#include "testhelp.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 99;
static float uniform(float lo, float hi) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return lo + (hi - lo) * (float)((rng >> 40) * 0x1.0p-24);
}

int main(void) {
    enum { N = 100000 };
    float *x = malloc(sizeof(float) * N), *ref = malloc(sizeof(float) * N), *got = malloc(sizeof(float) * N);
    for (int i = 0; i < N; i++) x[i] = uniform(-100.0f, 100.0f);
    const float edge[] = {0.0f, -0.0f, 1.0f, -1.0f, -87.33654f, 88.02969f, -87.4f, 88.1f, -1e30f, 1e30f,
                          INFINITY, -INFINITY, NAN, 1e-30f, -1e-30f, 0.5f, -0.5f, 80.0f, -80.0f, 2.3e-8f};
    memcpy(x, edge, sizeof edge);
    smoe_vexp_ref(ref, x, N);

    smoe_vexp_fn fns[8];
    const char *names[8];
    const int nf = smoe_vexp_all(fns, names, 8);
    CHECK(nf >= 1, "at least the scalar version");
    for (int f = 0; f < nf; f++) {
        fns[f](got, x, N);
        CHECK(!memcmp(got, ref, sizeof(float) * N), "%s: bit-identical to the scalar twin", names[f]);
        for (int len = 0; len <= 40; len++) { /* tails, and in place */
            float buf[48], out[48];
            for (int i = 0; i < 48; i++) buf[i] = out[i] = uniform(-20, 20);
            const float sentinel = out[len];
            memcpy(out, buf, sizeof buf);
            out[len] = sentinel;
            fns[f](out, out, len);
            float want[48];
            smoe_vexp_ref(want, buf, len);
            CHECK(!memcmp(out, want, sizeof(float) * (size_t)len) && out[len] == sentinel, "%s: length %d in place",
                  names[f], len);
        }
    }
    smoe_vexp(got, x, N);
    CHECK(!memcmp(got, ref, sizeof(float) * N), "dispatched version equals the twin");

    double worst = 0;
    for (int i = 0; i < N; i++) {
        if (!(x[i] >= -87.3f && x[i] <= 88.0f)) continue;
        const float exact = (float)exp((double)x[i]);
        const double ulp = nextafterf(exact, INFINITY) - exact;
        worst = fmax(worst, fabs((double)ref[i] - exact) / ulp);
    }
    printf("  vexp: worst error %.2f ulp over [-87.3, 88]\n", worst);
    CHECK(worst <= 2.0, "within 2 ulp (%.2f)", worst);
    CHECK(isnan(ref[12]), "NaN stays NaN");
    CHECK(ref[0] == 1.0f && ref[1] == 1.0f, "e^0 = 1");
    CHECK(ref[10] > 1e38f && ref[11] < 1.2e-38f && ref[11] >= 0, "inf and -inf clamp to the range ends");
    free(x), free(ref), free(got);
    return TEST_REPORT();
}
