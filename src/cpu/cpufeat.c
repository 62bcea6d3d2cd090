/*
 * cpufeat.c - CPU feature detection and the kernel dispatch table of cpu/kernels.h.
 *
 * On the first call (pthread_once) it asks the CPU what it can run (cpuid + xgetbv on
 * x86-64, so that an OS that does not save the AVX/AVX-512 registers disables them;
 * getauxval(AT_HWCAP) on aarch64 Linux), builds one table of kernel rows per ISA level
 * compiled into this binary - scalar, then avx2 on top of it (x86-64 with AVX2+FMA+F16C),
 * neon on top of scalar (little-endian AArch64), each level overriding the rows it has
 * faster versions of - and picks the best level the CPU runs, capped by the SMOE_ISA
 * environment variable. After that, every lookup is a plain array read.
 *
 * What it does not do: no kernels (dot_ref.c, x86/dot_avx2.c, x86/dot4_avx2.c,
 * x86/dot2x4_avx2.c, arm/dot_neon.c), no runtime switching after the first call
 * (SMOE_ISA is read once), no detection on other OSes/arches (they get the scalar rows).
 * The avx512 level is reserved (detected, named, ordered above avx2) but no AVX-512
 * kernels exist yet: this machine cannot run them.
 */
#include "cpu/kernels.h"
#include "smoe.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif

/* One fill function per ISA file (defined there, prototypes repeated here since the
 * kernel files share no private header): each writes the rows it implements. */
void smoe_kernels_fill_scalar(smoe_kernel *rows, int count);
#if defined(__x86_64__)
void smoe_kernels_fill_avx2(smoe_kernel *rows, int count);
void smoe_kernels_fill_avx2_dot4(smoe_kernel *rows, int count); /* x86/dot4_avx2.c: vec_dot4 */
void smoe_kernels_fill_avx2_2x4(smoe_kernel *rows, int count);  /* x86/dot2x4_avx2.c: vec_dot_2x4 */
void smoe_kernels_fill_avx2_gemm(smoe_kernel *rows, int count); /* x86/gemm_avx2.c: gemm_tile, to_f32 */
void smoe_kernels_fill_avx2_4xn(smoe_kernel *rows, int count);  /* x86/dot4xn_avx2.c: vec_dot_4xn */
#endif
/* The NEON file assumes little-endian lanes; big-endian AArch64 keeps the scalar rows. */
#if defined(__aarch64__) && defined(__ARM_NEON) && defined(__BYTE_ORDER__) && \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define SMOE_HAVE_NEON 1
void smoe_kernels_fill_neon(smoe_kernel *rows, int count);
void smoe_kernels_fill_neon_gemm(smoe_kernel *rows, int count); /* arm/gemm_neon.c: gemm_tile, to_f32 */
#endif

enum { ISA_SCALAR, ISA_AVX2, ISA_AVX512, ISA_NEON, ISA_COUNT };

static const char *const g_isa_name[ISA_COUNT] = {"scalar", "avx2", "avx512", "neon"};
/* The level each one builds on (-1: none). SMOE_ISA=x allows x and its ancestors only,
 * so a cap naming the other architecture's ISA (neon on x86) leaves the scalar rows. */
static const int g_isa_parent[ISA_COUNT] = {-1, ISA_SCALAR, ISA_AVX2, ISA_SCALAR};

static smoe_kernel g_rows[ISA_COUNT][SMOE_DTYPE_COUNT];
static bool g_runnable[ISA_COUNT]; /* compiled in and supported by this CPU */
static int g_best;                 /* the level smoe_kernels_get serves */
static smoe_cpu_features g_feat;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

/* ------------------------------------------------------------ detection */

#if defined(__x86_64__)
static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    /* the raw instruction: _xgetbv would need -mxsave on this file */
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static void detect_x86(smoe_cpu_features *f) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    const bool osxsave = c & (1u << 27), avx = c & (1u << 28);
    const bool fma = c & (1u << 12), f16c = c & (1u << 29);
    const uint64_t xcr0 = osxsave ? xgetbv0() : 0;
    const bool ymm = avx && (xcr0 & 0x6) == 0x6;    /* XMM and YMM state saved by the OS */
    const bool zmm = ymm && (xcr0 & 0xe0) == 0xe0;  /* opmask, ZMM0-15 upper, ZMM16-31 */
    f->fma = ymm && fma;
    f->f16c = ymm && f16c;
    if (__get_cpuid_max(0, NULL) < 7) return;
    __cpuid_count(7, 0, a, b, c, d);
    f->avx2 = ymm && (b & (1u << 5));
    f->avx512f = zmm && (b & (1u << 16));
    f->avx512bw = zmm && (b & (1u << 30));
    f->avx512vl = zmm && (b & (1u << 31));
    f->avx512vnni = zmm && (c & (1u << 11));
    if (a >= 1) { /* leaf 7 sub-leaf 1 exists */
        unsigned a1, b1, c1, d1;
        __cpuid_count(7, 1, a1, b1, c1, d1);
        f->avx512bf16 = zmm && (a1 & (1u << 5));
    }
}
#endif

#if defined(__aarch64__)
static void detect_arm(smoe_cpu_features *f) {
    f->neon = true; /* Advanced SIMD is mandatory on AArch64 */
#if defined(__linux__)
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1ul << 20)
#endif
    f->dotprod = (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#endif
}
#endif

/* ------------------------------------------------------------ tables */

static int isa_by_name(const char *s) {
    for (int i = 0; i < ISA_COUNT; i++)
        if (strcmp(s, g_isa_name[i]) == 0) return i;
    return -1;
}

#if defined(__x86_64__) || defined(SMOE_HAVE_NEON)
/* A level that overrides a type's vec_dot but not its vec_dot4 (vec_dot_few, vec_dot_2x4, vec_dot_4xn, vec_dot_4x1) must not
 * keep the parent's (several of the parent's slower dots): it gets NULL, so that callers
 * use its own vec_dot four times (its own vec_dot4). */
static void drop_inherited_dot4(smoe_kernel *rows, const smoe_kernel *parent) {
    for (int t = 0; t < SMOE_DTYPE_COUNT; t++) {
        if (rows[t].vec_dot == parent[t].vec_dot) continue;
        if (rows[t].vec_dot4 == parent[t].vec_dot4) rows[t].vec_dot4 = NULL;
        if (rows[t].vec_dot_few == parent[t].vec_dot_few) rows[t].vec_dot_few = NULL;
        if (rows[t].vec_dot_2x4 == parent[t].vec_dot_2x4) rows[t].vec_dot_2x4 = NULL;
        if (rows[t].vec_dot_4xn == parent[t].vec_dot_4xn) rows[t].vec_dot_4xn = NULL;
        if (rows[t].vec_dot_4x1 == parent[t].vec_dot_4x1) rows[t].vec_dot_4x1 = NULL;
    }
}
#endif

static bool is_ancestor_or_self(int level, int of) {
    for (int i = of; i >= 0; i = g_isa_parent[i])
        if (i == level) return true;
    return false;
}

static void init(void) {
#if defined(__x86_64__)
    detect_x86(&g_feat);
#elif defined(__aarch64__)
    detect_arm(&g_feat);
#endif
    smoe_kernels_fill_scalar(g_rows[ISA_SCALAR], SMOE_DTYPE_COUNT);
    g_runnable[ISA_SCALAR] = true;

#if defined(__x86_64__)
    /* The avx2 file is built with -mavx2 -mfma -mf16c and uses all three. */
    if (g_feat.avx2 && g_feat.fma && g_feat.f16c) {
        memcpy(g_rows[ISA_AVX2], g_rows[ISA_SCALAR], sizeof g_rows[ISA_AVX2]);
        smoe_kernels_fill_avx2(g_rows[ISA_AVX2], SMOE_DTYPE_COUNT);
        smoe_kernels_fill_avx2_dot4(g_rows[ISA_AVX2], SMOE_DTYPE_COUNT);
        smoe_kernels_fill_avx2_2x4(g_rows[ISA_AVX2], SMOE_DTYPE_COUNT);
        smoe_kernels_fill_avx2_gemm(g_rows[ISA_AVX2], SMOE_DTYPE_COUNT);
        smoe_kernels_fill_avx2_4xn(g_rows[ISA_AVX2], SMOE_DTYPE_COUNT);
        drop_inherited_dot4(g_rows[ISA_AVX2], g_rows[ISA_SCALAR]);
        g_runnable[ISA_AVX2] = true;
    }
#endif

#if defined(SMOE_HAVE_NEON)
    if (g_feat.neon) {
        memcpy(g_rows[ISA_NEON], g_rows[ISA_SCALAR], sizeof g_rows[ISA_NEON]);
        smoe_kernels_fill_neon(g_rows[ISA_NEON], SMOE_DTYPE_COUNT);
        smoe_kernels_fill_neon_gemm(g_rows[ISA_NEON], SMOE_DTYPE_COUNT);
        drop_inherited_dot4(g_rows[ISA_NEON], g_rows[ISA_SCALAR]);
        g_runnable[ISA_NEON] = true;
    }
#endif

    /* The deepest runnable level the cap allows (levels are listed parents first, so
     * the last allowed one wins); an unknown or empty SMOE_ISA means no cap. */
    const char *env = getenv("SMOE_ISA");
    const int cap = env ? isa_by_name(env) : -1;
    g_best = ISA_SCALAR;
    for (int i = 0; i < ISA_COUNT; i++)
        if (g_runnable[i] && (cap < 0 || is_ancestor_or_self(i, cap))) g_best = i;
}

static void ensure_init(void) { pthread_once(&g_once, init); }

static const smoe_kernel *row_of(int isa, int dtype) {
    if (dtype < 0 || dtype >= SMOE_DTYPE_COUNT) return NULL;
    const smoe_kernel *k = &g_rows[isa][dtype];
    return k->vec_dot ? k : NULL;
}

const smoe_kernel *smoe_kernels_get(int dtype) {
    ensure_init();
    return row_of(g_best, dtype);
}

const smoe_kernel *smoe_kernels_ref(int dtype) {
    ensure_init();
    return row_of(ISA_SCALAR, dtype);
}

int smoe_kernels_all(int dtype, smoe_kernel *out, int cap) {
    ensure_init();
    int n = 0;
    for (int i = 0; i < ISA_COUNT && n < cap; i++) {
        if (!g_runnable[i]) continue;
        const smoe_kernel *k = row_of(i, dtype);
        if (!k) continue;
        /* a level without its own version of this type inherits its parent's row:
         * list each distinct row once */
        bool dup = false;
        for (int j = 0; j < n; j++)
            dup |= out[j].vec_dot == k->vec_dot && out[j].act_quant == k->act_quant && out[j].vec_dot4 == k->vec_dot4 &&
                   out[j].vec_dot_2x4 == k->vec_dot_2x4 && out[j].vec_dot_4x1 == k->vec_dot_4x1;
        if (!dup) out[n++] = *k;
    }
    return n;
}

bool smoe_cpu_isa_allowed(const char *isa) {
    ensure_init();
    const int i = isa ? isa_by_name(isa) : -1;
    return i >= 0 && g_runnable[i] && is_ancestor_or_self(i, g_best);
}

const smoe_cpu_features *smoe_cpu_get_features(void) {
    ensure_init();
    return &g_feat;
}
