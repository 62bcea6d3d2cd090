/*
 * kernels.h - the CPU compute kernels behind the fast matmul: for each weight type, a dot
 * product of one weight row with one activation row that has been quantized to the type's
 * vec_dot_type (as llama.cpp does: Q4_0/Q5_0/Q8_0 -> Q8_0, Q4_1/Q5_1 -> Q8_1, K-quants ->
 * Q8_K, F16 -> F16, BF16 -> BF16, F32 -> F32), plus the activation quantizers.
 *
 * Every kernel has a scalar reference twin (the *_ref functions, exact integer arithmetic
 * per block) that builds everywhere; ISA versions (x86 AVX2/AVX-512, ARM NEON) have the
 * same signatures and are tested against it. smoe_kernels_get picks the best version for
 * this CPU once (cpufeat.c), so hot loops never test CPU features.
 */
#ifndef SMOE_KERNELS_H
#define SMOE_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Quantize n floats (a multiple of the block size) into row dst of the type. */
typedef void (*smoe_from_float_fn)(const float *src, void *dst, int64_t n);
/* Dot product of n values: w is a weight row of the kernel's type, a an activation row of
 * its vec_dot_type (both n values long). */
typedef float (*smoe_vec_dot_fn)(int64_t n, const void *w, const void *a);

/* Four dot products of one weight row with four activation rows a, a + a_stride,
 * a + 2*a_stride, a + 3*a_stride (bytes): out[j] = vec_dot(n, w, a + j*a_stride). Each
 * weight block is unpacked once for the four tokens, which is what makes prefill fast.
 * Results must equal four vec_dot calls to float rounding. */
typedef void (*smoe_vec_dot4_fn)(int64_t n, const void *w, const void *a, size_t a_stride, float *out);

/* nt (2 or 3) dot products of one weight row with activation rows a + j*a_stride:
 * out[j] = vec_dot(n, w, a + j*a_stride), j < nt: vec_dot4 for the few tokens an expert
 * gets in a batched decode step. Results must equal the vec_dot calls to float rounding
 * (the AVX2 versions are bit-identical to the AVX2 vec_dot). */
typedef void (*smoe_vec_dot_few_fn)(int64_t n, const void *w, const void *a, size_t a_stride, int nt, float *out);
/* Eight dot products of two weight rows (w, w + w_stride) with four activation rows
 * (a + j*a_stride), bytes: out[r*4 + j] = vec_dot(n, w + r*w_stride, a + j*a_stride) for
 * r < 2, j < 4. Each weight block is unpacked once for the 4 tokens and each activation
 * block loaded once for the 2 rows. Results must equal the eight vec_dot calls to float
 * rounding (the AVX2 versions are bit-identical to the AVX2 vec_dot). */
typedef void (*smoe_vec_dot_2x4_fn)(int64_t n, const void *w, size_t w_stride, const void *a, size_t a_stride,
                                    float *out);

/* nt (1..3) dot products of each of four weight rows (w + r*w_stride, bytes) with each of
 * nt activation rows (a + j*a_stride, bytes), written to out[j*o_stride + r] (o_stride in
 * floats): out[j*o_stride + r] = vec_dot(n, w + r*w_stride, a + j*a_stride). The tile of
 * F32 decode, single and batched: each weight vector is loaded once for the nt tokens and
 * each activation vector once for the 4 rows. Results must equal the vec_dot calls to
 * float rounding (the AVX2 version is bit-identical to the AVX2 vec_dot). */
typedef void (*smoe_vec_dot_4xn_fn)(int64_t n, const void *w, size_t w_stride, const void *a, size_t a_stride, int nt,
                                    float *out, size_t o_stride);
/* Four dot products of four weight rows (w + r*w_stride, bytes) with one activation row:
 * out[r] = vec_dot(n, w + r*w_stride, a), r < 4. Single-token decode's kernel for the
 * quantized types, F16 and BF16: one call per four rows, and the ISA versions prefetch
 * the weight stream ahead block by block as they go. Results must equal the vec_dot
 * calls to float rounding (the AVX2 versions are bit-identical to the AVX2 vec_dot). */
typedef void (*smoe_vec_dot_4x1_fn)(int64_t n, const void *w, size_t w_stride, const void *a, float *out);
/* Dequantize n values (a multiple of the block size) of a weight row to f32, bit-exact
 * with the reference dequantizer (quant.h's to_float). */
typedef void (*smoe_to_f32_fn)(const void *w, float *out, int64_t n);

/* The f32 GEMM micro-kernel of cpu/gemm.h (same type as smoe_gemm_tile_fn). */
typedef void (*smoe_gemm_tile_kfn)(int64_t kc, const float *a, const float *const *w, float *acc, int init);

typedef struct smoe_kernel {
    const char *isa;               /* "scalar", "avx2", "avx512", "neon": of vec_dot */
    int vec_dot_type;              /* smoe_dtype of the activation rows */
    smoe_vec_dot_fn vec_dot;       /* best version for this CPU */
    smoe_from_float_fn act_quant;  /* f32 -> vec_dot_type, best version for this CPU */
    smoe_vec_dot4_fn vec_dot4;     /* 1 row x 4 tokens; NULL: callers use vec_dot 4 times */
    smoe_vec_dot_few_fn vec_dot_few; /* 1 row x 2-3 tokens (Q4_K, Q6_K); NULL: absent */
    smoe_vec_dot_2x4_fn vec_dot_2x4; /* 2 rows x 4 tokens; NULL: absent (callers use vec_dot4) */
    smoe_vec_dot_4xn_fn vec_dot_4xn; /* 4 rows x 1-3 tokens (F32); NULL: absent */
    smoe_vec_dot_4x1_fn vec_dot_4x1; /* 4 rows x 1 token (quantized types); NULL: absent */
    /* Prefill through the f32 GEMM (cpu/gemm.h) instead of vec_dot4: set by the ISA files
     * for the types where it is faster (both set, or both NULL: the type keeps vec_dot4). */
    smoe_gemm_tile_kfn gemm_tile;
    smoe_to_f32_fn to_f32;
} smoe_kernel;

/* The kernel row for a weight type, or NULL if the type has no dot product. Thread-safe;
 * the first call detects the CPU. Setting SMOE_ISA=scalar (or avx2...) in the environment
 * caps the ISA, for tests and benchmarks. */
const smoe_kernel *smoe_kernels_get(int dtype);

/* The reference (scalar) row for a weight type, whatever the CPU. */
const smoe_kernel *smoe_kernels_ref(int dtype);

/* Every ISA version compiled into this binary that the CPU can run, for tests:
 * fills at most cap rows for dtype and returns the count (the scalar one first). */
int smoe_kernels_all(int dtype, smoe_kernel *out, int cap);

/* CPU features, detected once. */
typedef struct smoe_cpu_features {
    bool avx2, fma, f16c, avx512f, avx512bw, avx512vl, avx512vnni, avx512bf16, neon, dotprod;
} smoe_cpu_features;
const smoe_cpu_features *smoe_cpu_get_features(void);

/* Whether code built for ISA level `isa` ("avx2", "avx512", "neon") may run: the CPU has
 * it and SMOE_ISA does not cap below it. For the dispatchers outside the kernel table
 * (cpu/vexp.c, train/tgemm.c, train/tkern.c), so that one rule picks every level. */
bool smoe_cpu_isa_allowed(const char *isa);

#endif /* SMOE_KERNELS_H */
