/*
 * f16.c - scalar conversions between f32 and IEEE half (F16) / bfloat16 (BF16), and the
 * row converters of the non-block tensor types: F32, F16, BF16, F64, I8, I16, I32, I64.
 *
 * What it does not do: no SIMD, no lookup tables (a 256 KiB table would need a racy
 * lazy init or a generated file; the arithmetic below is exact and fast enough for a
 * reference). Narrowing conversions round to nearest, ties to even, like ggml (and like
 * F16C/NEON hardware); NaNs stay NaN (quiet) with as much payload as fits.
 *
 * Source rows may have any alignment, so every element is read byte-wise / by memcpy.
 * All multi-byte values are little-endian, as in GGUF.
 */
#include "quant/blocks.h"
#include "quant/quant.h"

#include <stdint.h>
#include <string.h>

float smoe_f16_to_f32(uint16_t h) { return smoe_f16_decode(h); }

uint16_t smoe_f32_to_f16(float f) {
    const uint32_t u = smoe_f32_to_bits(f);
    const uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    const uint32_t a = u & 0x7fffffffu; /* |f| as bits: ordered like the values */

    if (a > 0x7f800000u) {
        /* NaN: keep the top 10 payload bits and set the quiet bit, so that the result
         * can never collapse to infinity (payload bits all below bit 13). */
        return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
    }
    if (a >= 0x477ff000u) {
        /* >= 65520 = halfway between 65504 (max half, odd mantissa) and 2^16: rounds
         * to infinity under ties-to-even; covers +-inf itself. */
        return (uint16_t)(sign | 0x7c00u);
    }
    if (a >= 0x38800000u) {
        /* Normal half (|f| >= 2^-14): rebias the exponent (127 -> 15, i.e. subtract
         * 112 << 23) and round the 23-bit mantissa to 10 bits. A carry out of the
         * mantissa correctly bumps the exponent (1.111..1 * 2^e -> 2^(e+1)). */
        const uint32_t r = a - 0x38000000u;
        const uint32_t lsb = (r >> 13) & 1u;
        return (uint16_t)(sign | ((r + 0x0fffu + lsb) >> 13));
    }
    if (a <= 0x33000000u) {
        /* |f| <= 2^-25 = half the smallest subnormal: the tie goes to even (0). */
        return sign;
    }
    /* Half subnormal: the result is round(|f| / 2^-24). |f| = m * 2^(e - 150) with the
     * implicit bit in m, so |f| / 2^-24 = m >> (126 - e); here 102 < e < 113, so the
     * shift is 14..24 and the rounding is done by hand on the bits shifted out. A result
     * of 0x400 (rounded up to 2^-14) is the correct encoding of the smallest normal. */
    const uint32_t e = a >> 23;
    const uint32_t m = (a & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126u - e;
    uint32_t h = m >> shift;
    const uint32_t rest = m & ((1u << shift) - 1u);
    const uint32_t halfway = 1u << (shift - 1u);
    if (rest > halfway || (rest == halfway && (h & 1u))) h++;
    return (uint16_t)(sign | h);
}

/* bfloat16 is the top half of an f32: widening is exact. */
float smoe_bf16_to_f32(uint16_t h) { return smoe_bits_to_f32((uint32_t)h << 16); }

uint16_t smoe_f32_to_bf16(float f) {
    const uint32_t u = smoe_f32_to_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        /* NaN: truncating could leave a zero mantissa (= infinity); forcing the quiet
         * bit keeps it a NaN. */
        return (uint16_t)((u >> 16) | 0x40u);
    }
    /* Round to nearest even on the 16 dropped bits; overflow past the largest finite
     * value carries into the exponent and gives infinity, as it should. Subnormals are
     * rounded the same way (not flushed). */
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* ------------------------------------------------------------ row converters */

void smoe_row_f32(const void *src, float *dst, int64_t n) {
    /* memcpy: src may be unaligned; memmove in case a caller converts in place */
    memmove(dst, src, (size_t)n * sizeof(float));
}

void smoe_row_f16(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++) dst[i] = smoe_f16_decode(smoe_rd_u16(p + 2 * i));
}

void smoe_row_bf16(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++) dst[i] = smoe_bf16_to_f32(smoe_rd_u16(p + 2 * i));
}

static uint64_t rd_u64(const uint8_t *p) {
    return (uint64_t)smoe_rd_u32(p) | ((uint64_t)smoe_rd_u32(p + 4) << 32);
}

/* F64 and the integer types are not weights in practice; converting them lets tools show
 * such tensors. Values round to the nearest float (C conversion rules). */
void smoe_row_f64(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++) {
        const uint64_t u = rd_u64(p + 8 * i);
        double v;
        memcpy(&v, &u, sizeof v);
        dst[i] = (float)v;
    }
}

void smoe_row_i8(const void *src, float *dst, int64_t n) {
    const int8_t *p = src;
    for (int64_t i = 0; i < n; i++) dst[i] = (float)p[i];
}

/* intN_t are two's complement by definition, so copying the bits gives the value. */
void smoe_row_i16(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++) {
        const uint16_t u = smoe_rd_u16(p + 2 * i);
        int16_t v;
        memcpy(&v, &u, sizeof v);
        dst[i] = (float)v;
    }
}

void smoe_row_i32(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++) {
        const uint32_t u = smoe_rd_u32(p + 4 * i);
        int32_t v;
        memcpy(&v, &u, sizeof v);
        dst[i] = (float)v;
    }
}

void smoe_row_i64(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++) {
        const uint64_t u = rd_u64(p + 8 * i);
        int64_t v;
        memcpy(&v, &u, sizeof v);
        dst[i] = (float)v;
    }
}
