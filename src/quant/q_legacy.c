/*
 * q_legacy.c - reference dequantization of the legacy 32-value block types Q4_0, Q4_1,
 * Q5_0, Q5_1, Q8_0 and Q8_1, bit-exact with ggml.
 *
 * What it does not do: quantize, compute dot products, or try to be fast (the ISA
 * kernels are separate and are tested against these functions).
 *
 * Bit-exactness: every value is computed with the float operations ggml uses, in its
 * order (one multiply for "type-0", multiply then add for "type-1"). The scales are
 * fp16 (11 significant bits) and the quants at most 8 bits (|q| <= 128), so every
 * product is exact in f32 and the only rounding is the final add: an FMA or a different
 * association gives the same bits. The pragma keeps clang from contracting anyway, so
 * the code stays exact by construction if a type with a wider scale is added here.
 */
#include "quant/blocks.h"

#include <stdint.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

void smoe_row_q4_0(const void *src, float *dst, int64_t n) {
    const smoe_block_q4_0 *b = src;
    for (int64_t i = 0; i < n / SMOE_QK; i++, b++, dst += SMOE_QK) {
        const float d = smoe_rd_f16(b->d);
        for (int j = 0; j < SMOE_QK / 2; j++) {
            const int lo = (b->qs[j] & 0x0f) - 8;
            const int hi = (b->qs[j] >> 4) - 8;
            dst[j] = (float)lo * d;
            dst[j + SMOE_QK / 2] = (float)hi * d;
        }
    }
}

void smoe_row_q4_1(const void *src, float *dst, int64_t n) {
    const smoe_block_q4_1 *b = src;
    for (int64_t i = 0; i < n / SMOE_QK; i++, b++, dst += SMOE_QK) {
        const float d = smoe_rd_f16(b->d);
        const float m = smoe_rd_f16(b->m);
        for (int j = 0; j < SMOE_QK / 2; j++) {
            const int lo = b->qs[j] & 0x0f;
            const int hi = b->qs[j] >> 4;
            dst[j] = (float)lo * d + m;
            dst[j + SMOE_QK / 2] = (float)hi * d + m;
        }
    }
}

void smoe_row_q5_0(const void *src, float *dst, int64_t n) {
    const smoe_block_q5_0 *b = src;
    for (int64_t i = 0; i < n / SMOE_QK; i++, b++, dst += SMOE_QK) {
        const float d = smoe_rd_f16(b->d);
        const uint32_t qh = smoe_rd_u32(b->qh);
        for (int j = 0; j < SMOE_QK / 2; j++) {
            /* bit j of qh belongs to value j, bit j+16 to value j+16 */
            const int lo = (int)((b->qs[j] & 0x0f) | (((qh >> j) & 1u) << 4)) - 16;
            const int hi = (int)((b->qs[j] >> 4) | (((qh >> (j + 16)) & 1u) << 4)) - 16;
            dst[j] = (float)lo * d;
            dst[j + SMOE_QK / 2] = (float)hi * d;
        }
    }
}

void smoe_row_q5_1(const void *src, float *dst, int64_t n) {
    const smoe_block_q5_1 *b = src;
    for (int64_t i = 0; i < n / SMOE_QK; i++, b++, dst += SMOE_QK) {
        const float d = smoe_rd_f16(b->d);
        const float m = smoe_rd_f16(b->m);
        const uint32_t qh = smoe_rd_u32(b->qh);
        for (int j = 0; j < SMOE_QK / 2; j++) {
            const int lo = (int)((b->qs[j] & 0x0f) | (((qh >> j) & 1u) << 4));
            const int hi = (int)((b->qs[j] >> 4) | (((qh >> (j + 16)) & 1u) << 4));
            dst[j] = (float)lo * d + m;
            dst[j + SMOE_QK / 2] = (float)hi * d + m;
        }
    }
}

void smoe_row_q8_0(const void *src, float *dst, int64_t n) {
    const smoe_block_q8_0 *b = src;
    for (int64_t i = 0; i < n / SMOE_QK; i++, b++, dst += SMOE_QK) {
        const float d = smoe_rd_f16(b->d);
        for (int j = 0; j < SMOE_QK; j++) dst[j] = (float)b->qs[j] * d;
    }
}

/* The s field (d * sum of qs) only serves dot products; the values are d * q. */
void smoe_row_q8_1(const void *src, float *dst, int64_t n) {
    const smoe_block_q8_1 *b = src;
    for (int64_t i = 0; i < n / SMOE_QK; i++, b++, dst += SMOE_QK) {
        const float d = smoe_rd_f16(b->d);
        for (int j = 0; j < SMOE_QK; j++) dst[j] = (float)b->qs[j] * d;
    }
}
