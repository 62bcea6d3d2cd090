/*
 * quant.h - the type traits table: one row per tensor type with its block geometry and
 * its reference (scalar, bit-exact with ggml) dequantizer. Fast ISA kernels come later
 * and are tested against these references.
 */
#ifndef SMOE_QUANT_H
#define SMOE_QUANT_H

#include <stddef.h>
#include <stdint.h>

/* Dequantize n values (a multiple of the block size) from src into dst. */
typedef void (*smoe_to_float_fn)(const void *src, float *dst, int64_t n);

typedef struct smoe_type_traits {
    const char *name;          /* "Q4_K" */
    int64_t block_size;        /* values per block */
    size_t block_bytes;        /* bytes per block */
    smoe_to_float_fn to_float; /* NULL: known type, but smoe cannot compute with it */
} smoe_type_traits;

/* Row of the table for a ggml type id, or NULL for an unknown id. */
const smoe_type_traits *smoe_type_traits_get(int dtype);

/* IEEE half and bfloat16 conversions; f32 -> half/bf16 round to nearest even (as ggml). */
float smoe_f16_to_f32(uint16_t h);
uint16_t smoe_f32_to_f16(float f);
float smoe_bf16_to_f32(uint16_t h);
uint16_t smoe_f32_to_bf16(float f);

#endif /* SMOE_QUANT_H */
