/*
 * test_bundled.c - the bundled model (models/kjv-moe.gguf, trained by `smoe train`; see
 * models/README.md) is a standard llama.cpp Mixtral-style file: llama.cpp's logits of it
 * (tests/data/bundled/, made with llama.cpp's libllama, see the README there) agree with
 * smoe's, on the fast path and on the reference path, with the same top token everywhere.
 */
#include "smoe.h"
#include "testhelp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MODEL "models/kjv-moe.gguf"
#define DIR TEST_DATA_DIR "/bundled/"

int main(void) {
    size_t sz = 0;
    char *ids_txt = th_read_file(DIR "ids.txt", &sz);
    float *ref = th_read_file(DIR "llama-logits.f32", &sz);
    CHECK(ids_txt && ref, "golden files present");
    smoe_model *m = NULL;
    CHECK_OK(smoe_model_load(MODEL, NULL, &m));
    if (!m || !ids_txt || !ref) return TEST_REPORT();
    const smoe_model_info *inf = smoe_model_get_info(m);
    int32_t ids[256];
    int n = 0;
    for (char *p = ids_txt, *end; n < 256; p = end) {
        long v = strtol(p, &end, 10);
        if (end == p) break;
        ids[n++] = (int32_t)v;
    }
    const int V = inf->n_vocab;
    CHECK(sz == sizeof(float) * (size_t)n * (size_t)V, "golden shape %d x %d", n, V);
    CHECK(inf->n_expert == 8 && inf->n_expert_used == 2 && inf->router == SMOE_ROUTER_TOPK_SOFTMAX,
          "a Mixtral-style top-2 of 8 model");
    float *got = malloc(sizeof(float) * (size_t)n * (size_t)V);
    for (int pass = 0; pass < 2; pass++) { /* the fast path, then the reference path */
        smoe_ctx_params cp = smoe_ctx_default_params();
        cp.n_ctx = n, cp.n_batch = n, cp.n_threads = 2, cp.reference = pass == 1;
        smoe_ctx *c = NULL;
        CHECK_OK(smoe_ctx_init(m, &cp, &c));
        if (!c) continue;
        CHECK_OK(smoe_ctx_decode(c, ids, n, got, true));
        double worst = 0, scale = 0;
        int same_argmax = 0;
        for (int t = 0; t < n; t++) {
            int a = 0, b = 0;
            for (int v = 0; v < V; v++) {
                const size_t i = (size_t)t * V + v;
                worst = fmax(worst, fabs(got[i] - ref[i]));
                scale = fmax(scale, fabs(ref[i]));
                if (got[i] > got[(size_t)t * V + a]) a = v;
                if (ref[i] > ref[(size_t)t * V + b]) b = v;
            }
            same_argmax += a == b;
        }
        printf("  bundled model vs llama.cpp (%s path): max abs %.2e (logits up to %.1f), argmax %d/%d\n",
               pass ? "reference" : "fast", worst, scale, same_argmax, n);
        CHECK(worst < 1e-4, "%s path: max abs difference %.3g", pass ? "reference" : "fast", worst);
        CHECK(same_argmax == n, "%s path: same top token at every position", pass ? "reference" : "fast");
        smoe_ctx_free(c);
    }
    free(got);
    free(ref);
    free(ids_txt);
    smoe_model_free(m);
    return TEST_REPORT();
}
