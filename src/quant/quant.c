/*
 * quant.c - the tensor type traits table (name, block geometry, reference dequantizer
 * per ggml type id) and the public smoe_dtype_* / smoe_dequantize entry points.
 *
 * What it does not do: the conversions themselves live in f16.c, q_legacy.c and q_k.c;
 * no quantization, no dot products. Types listed with a NULL to_float are recognised
 * (so `smoe info` can show and size such tensors) but cannot be computed with.
 *
 * The block sizes are those of ggml-common.h / gguf-py's GGML_QUANT_SIZES; ids 4 and 5
 * (the removed Q4_2/Q4_3) and other holes stay unknown.
 */
#include "quant/quant.h"

#include "quant/blocks.h"
#include "smoe_internal.h"

#include <stdbool.h>
#include <stdint.h>

/* Indexed by ggml type id; a row with name == NULL is an unknown id. */
static const smoe_type_traits g_traits[SMOE_DTYPE_COUNT] = {
    [0] = {"F32", 1, 4, smoe_row_f32},
    [1] = {"F16", 1, 2, smoe_row_f16},
    [2] = {"Q4_0", 32, 18, smoe_row_q4_0},
    [3] = {"Q4_1", 32, 20, smoe_row_q4_1},
    [6] = {"Q5_0", 32, 22, smoe_row_q5_0},
    [7] = {"Q5_1", 32, 24, smoe_row_q5_1},
    [8] = {"Q8_0", 32, 34, smoe_row_q8_0},
    [9] = {"Q8_1", 32, 36, smoe_row_q8_1},
    [10] = {"Q2_K", 256, 84, smoe_row_q2_K},
    [11] = {"Q3_K", 256, 110, smoe_row_q3_K},
    [12] = {"Q4_K", 256, 144, smoe_row_q4_K},
    [13] = {"Q5_K", 256, 176, smoe_row_q5_K},
    [14] = {"Q6_K", 256, 210, smoe_row_q6_K},
    [15] = {"Q8_K", 256, 292, smoe_row_q8_K},
    /* importance-matrix and ternary types: known sizes, no dequantizer (yet) */
    [16] = {"IQ2_XXS", 256, 66, NULL},
    [17] = {"IQ2_XS", 256, 74, NULL},
    [18] = {"IQ3_XXS", 256, 98, NULL},
    [19] = {"IQ1_S", 256, 50, NULL},
    [20] = {"IQ4_NL", 32, 18, NULL},
    [21] = {"IQ3_S", 256, 110, NULL},
    [22] = {"IQ2_S", 256, 82, NULL},
    [23] = {"IQ4_XS", 256, 136, NULL},
    [24] = {"I8", 1, 1, smoe_row_i8},
    [25] = {"I16", 1, 2, smoe_row_i16},
    [26] = {"I32", 1, 4, smoe_row_i32},
    [27] = {"I64", 1, 8, smoe_row_i64},
    [28] = {"F64", 1, 8, smoe_row_f64},
    [29] = {"IQ1_M", 256, 56, NULL},
    [30] = {"BF16", 1, 2, smoe_row_bf16},
    [34] = {"TQ1_0", 256, 54, NULL},
    [35] = {"TQ2_0", 256, 66, NULL},
    [39] = {"MXFP4", 32, 17, NULL},
};

/* Sanity of the table against blocks.h, at compile time where C allows it. */
_Static_assert(sizeof(smoe_block_q4_0) == 18 && sizeof(smoe_block_q4_1) == 20 &&
                   sizeof(smoe_block_q5_0) == 22 && sizeof(smoe_block_q5_1) == 24 &&
                   sizeof(smoe_block_q8_0) == 34 && sizeof(smoe_block_q8_1) == 36,
               "legacy block sizes");
_Static_assert(sizeof(smoe_block_q2_K) == 84 && sizeof(smoe_block_q3_K) == 110 &&
                   sizeof(smoe_block_q4_K) == 144 && sizeof(smoe_block_q5_K) == 176 &&
                   sizeof(smoe_block_q6_K) == 210 && sizeof(smoe_block_q8_K) == 292,
               "K-quant block sizes");

const smoe_type_traits *smoe_type_traits_get(int dtype) {
    if (dtype < 0 || dtype >= SMOE_DTYPE_COUNT) return NULL;
    const smoe_type_traits *t = &g_traits[dtype];
    return t->name ? t : NULL;
}

const char *smoe_dtype_name(int dtype) {
    const smoe_type_traits *t = smoe_type_traits_get(dtype);
    return t ? t->name : NULL;
}

int64_t smoe_dtype_block_size(int dtype) {
    const smoe_type_traits *t = smoe_type_traits_get(dtype);
    return t ? t->block_size : 0;
}

size_t smoe_dtype_block_bytes(int dtype) {
    const smoe_type_traits *t = smoe_type_traits_get(dtype);
    return t ? t->block_bytes : 0;
}

bool smoe_dtype_can_dequantize(int dtype) {
    const smoe_type_traits *t = smoe_type_traits_get(dtype);
    return t && t->to_float;
}

smoe_status smoe_dequantize(int dtype, const void *src, float *dst, int64_t n) {
    const smoe_type_traits *t = smoe_type_traits_get(dtype);
    if (!t) return smoe_err(SMOE_ERR_INVALID_ARG, "dequantize: unknown tensor type %d", dtype);
    if (!t->to_float)
        return smoe_err(SMOE_ERR_UNSUPPORTED, "dequantize: type %s cannot be dequantized",
                        t->name);
    if (n < 0 || n % t->block_size != 0)
        return smoe_err(SMOE_ERR_INVALID_ARG,
                        "dequantize: %lld values of type %s: not a multiple of the block "
                        "size %lld",
                        (long long)n, t->name, (long long)t->block_size);
    if (n == 0) return SMOE_OK;
    if (!src || !dst) return smoe_err(SMOE_ERR_INVALID_ARG, "dequantize: NULL buffer");
    /* The byte size of src and dst must be representable, or the caller's buffers
     * cannot be that large either: refuse rather than index past them. */
    uint64_t bytes;
    if (smoe_mul_overflow_u64((uint64_t)(n / t->block_size), t->block_bytes, &bytes) ||
        bytes > SIZE_MAX || (uint64_t)n > SIZE_MAX / sizeof(float))
        return smoe_err(SMOE_ERR_INVALID_ARG, "dequantize: %lld values is too many",
                        (long long)n);
    t->to_float(src, dst, n);
    return SMOE_OK;
}
