/*
 * test_moe.c - properties of the MoE layer and of the model loader's layouts, checked by
 * rewriting the tiny model with the GGUF writer and comparing logits:
 *   - permuting the experts together with the router rows leaves the logits unchanged;
 *   - the older one-tensor-per-expert layout gives the same bits as the 3-D layout;
 *   - with every expert identical, the MoE layer equals that one FFN (the gate weights
 *     sum to 1), so the MoE model equals a dense model built from it (this also tests
 *     the dense path against the MoE path);
 *   - K = E loads and runs (every expert used) and changes the model.
 */
#include "smoe.h"
#include "testhelp.h"

#include <unistd.h>

#define V 1024
#define D 256
#define F 256
#define E 8

static const char *SRC = "model/mixtral-tiny-F32.gguf";
static char g_tmp[4][512];

typedef enum { VAR_PERMUTE, VAR_SPLIT, VAR_SAME_EXPERTS, VAR_DENSE, VAR_K8 } variant;
static const int PERM[E] = {3, 0, 7, 1, 6, 2, 5, 4};

/* Write a transformed copy of the tiny F32 model. */
static int write_variant(const char *dst, variant var) {
    smoe_gguf *g = NULL;
    smoe_gguf_writer *w = NULL;
    int ok = 0;
    float *buf = NULL;
    if (smoe_gguf_open(th_data(SRC), &g) || smoe_gguf_writer_init(&w)) goto done;
    for (int64_t i = 0; i < smoe_gguf_n_kv(g); i++) {
        const char *k = smoe_gguf_key(g, i);
        if (var == VAR_DENSE && (!strcmp(k, "llama.expert_count") || !strcmp(k, "llama.expert_used_count"))) continue;
        if (smoe_gguf_writer_copy_kv(w, g, i)) goto done;
    }
    if (var == VAR_K8 && smoe_gguf_writer_set_u32(w, "llama.expert_used_count", E)) goto done;
    buf = malloc(sizeof(float) * E * D * F);
    if (!buf) goto done;
    for (int64_t i = 0; i < smoe_gguf_n_tensors(g); i++) {
        const char *name = smoe_gguf_tensor_name(g, i);
        int nd = smoe_gguf_tensor_ndim(g, i);
        int64_t ne[4], nel = 1;
        for (int d = 0; d < 4; d++) nel *= (ne[d] = smoe_gguf_tensor_ne(g, i, d));
        const float *x = smoe_gguf_tensor_data(g, i);
        const bool exps = strstr(name, "_exps.") != NULL, router = strstr(name, "ffn_gate_inp") != NULL;
        const int64_t per = exps ? nel / E : 0; /* floats per expert */
        smoe_status st = SMOE_OK;
        if (var == VAR_PERMUTE && (exps || router)) {
            const int64_t row = router ? D : per; /* router row e <-> expert e */
            for (int e = 0; e < E; e++) memcpy(buf + e * row, x + PERM[e] * row, sizeof(float) * (size_t)row);
            st = smoe_gguf_writer_add_tensor(w, name, SMOE_DTYPE_F32, nd, ne, buf, (size_t)nel * 4);
        } else if (var == VAR_SPLIT && exps) {
            /* blk.L.ffn_gate_exps.weight -> blk.L.ffn_gate.E.weight */
            char base[128];
            snprintf(base, sizeof base, "%.*s", (int)(strstr(name, "_exps.") - name), name);
            for (int e = 0; e < E && !st; e++) {
                char nm[160];
                snprintf(nm, sizeof nm, "%s.%d.weight", base, e);
                st = smoe_gguf_writer_add_tensor(w, nm, SMOE_DTYPE_F32, 2, ne, x + e * per, (size_t)per * 4);
            }
        } else if ((var == VAR_SAME_EXPERTS || var == VAR_DENSE) && exps) {
            if (var == VAR_SAME_EXPERTS) {
                for (int e = 0; e < E; e++) memcpy(buf + e * per, x + 5 * per, sizeof(float) * (size_t)per);
                st = smoe_gguf_writer_add_tensor(w, name, SMOE_DTYPE_F32, nd, ne, buf, (size_t)nel * 4);
            } else { /* expert 5 alone, as the dense FFN */
                char nm[128];
                snprintf(nm, sizeof nm, "%.*s.weight", (int)(strstr(name, "_exps.") - name), name);
                st = smoe_gguf_writer_add_tensor(w, nm, SMOE_DTYPE_F32, 2, ne, x + 5 * per, (size_t)per * 4);
            }
        } else if (var == VAR_DENSE && router) {
            continue;
        } else {
            st = smoe_gguf_writer_add_tensor(w, name, smoe_gguf_tensor_dtype(g, i), nd, ne, x, smoe_gguf_tensor_nbytes(g, i));
        }
        if (st) goto done;
    }
    ok = smoe_gguf_writer_write(w, dst) == SMOE_OK;
done:
    if (!ok) fprintf(stderr, "write_variant %d: %s\n", (int)var, smoe_last_error());
    free(buf);
    smoe_gguf_writer_free(w);
    smoe_gguf_free(g);
    return ok;
}

static float *logits_of(const char *path, const int32_t *ids, int n) {
    smoe_model *m = NULL;
    smoe_ctx *c = NULL;
    float *lg = malloc(sizeof(float) * (size_t)n * V);
    smoe_ctx_params cp = smoe_ctx_default_params();
    cp.n_ctx = 64;
    cp.n_threads = 2;
    if (!lg || smoe_model_load(path, NULL, &m) || smoe_ctx_init(m, &cp, &c) || smoe_ctx_decode(c, ids, n, lg, true)) {
        fprintf(stderr, "logits_of %s: %s\n", path, smoe_last_error());
        free(lg);
        lg = NULL;
    }
    smoe_ctx_free(c);
    smoe_model_free(m);
    return lg;
}

static double maxdiff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= m)) m = d;
    }
    return m;
}

int main(void) {
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    for (int i = 0; i < 4; i++) snprintf(g_tmp[i], sizeof g_tmp[i], "%s/smoe-moe-%d-%d.gguf", tmp, (int)getpid(), i);
    int32_t ids[32];
    unsigned long long rng = 7;
    for (int i = 0; i < 32; i++) ids[i] = 3 + (int32_t)(th_rng_next(&rng) % (V - 3));
    const size_t n = 32 * V;
    float *base = logits_of(th_data(SRC), ids, 32);
    CHECK(base != NULL, "base model");
    if (!base) return TEST_REPORT();

    /* permutation of experts + router rows */
    CHECK(write_variant(g_tmp[0], VAR_PERMUTE), "write permuted");
    float *lp = logits_of(g_tmp[0], ids, 32);
    CHECK(lp && maxdiff(lp, base, n) < 1e-5, "permuted experts change logits by %.3g", lp ? maxdiff(lp, base, n) : -1);
    free(lp);

    /* older per-expert tensor layout: identical bits */
    CHECK(write_variant(g_tmp[1], VAR_SPLIT), "write split");
    float *ls = logits_of(g_tmp[1], ids, 32);
    CHECK(ls && memcmp(ls, base, n * sizeof(float)) == 0, "per-expert layout differs from the 3-D layout");
    free(ls);

    /* identical experts == one dense FFN (weights sum to 1) */
    CHECK(write_variant(g_tmp[2], VAR_SAME_EXPERTS), "write same-experts");
    CHECK(write_variant(g_tmp[3], VAR_DENSE), "write dense");
    float *la = logits_of(g_tmp[2], ids, 32), *ld = logits_of(g_tmp[3], ids, 32);
    CHECK(la && ld && maxdiff(la, ld, n) < 1e-5, "MoE of identical experts vs dense: %.3g", la && ld ? maxdiff(la, ld, n) : -1);
    CHECK(la && maxdiff(la, base, n) > 0.1, "identical experts should change the model");
    free(la);
    free(ld);

    /* K = E: changes the model (all experts used), and is still batch == decode */
    CHECK(write_variant(g_tmp[0], VAR_K8), "write K=8");
    float *lk = logits_of(g_tmp[0], ids, 32);
    CHECK(lk && maxdiff(lk, base, n) > 0.1, "K = E should differ from K = 2");
    free(lk);

    smoe_model *m = NULL;
    CHECK_OK(smoe_model_load(g_tmp[3], NULL, &m));
    if (m) {
        const smoe_model_info *inf = smoe_model_get_info(m);
        CHECK(inf->n_expert == 0 && inf->n_params == inf->n_params_active, "dense model info");
        smoe_model_free(m);
    }
    for (int i = 0; i < 4; i++) remove(g_tmp[i]);
    free(base);
    return TEST_REPORT();
}
