/*
 * q_k.c - reference dequantization of the K-quants (256-value super-blocks): Q2_K,
 * Q3_K, Q4_K, Q5_K, Q6_K and Q8_K, bit-exact with ggml.
 *
 * What it does not do: quantize, compute dot products, or try to be fast (the ISA
 * kernels are separate and are tested against these functions).
 *
 * Bit-exactness: each value is computed with the float operations ggml uses, in its
 * order: the sub-block scale is formed as a float (fp16 super-scale times the small
 * integer scale), multiplied by the quant, then the min (if any) is subtracted. The
 * fp16 super-scale has 11 significant bits, scale and quant together at most 12 (Q6_K:
 * |sc| <= 128 and |q| <= 32), so every product fits the 24-bit f32 mantissa exactly and
 * only the final subtraction rounds; FMA contraction or re-association cannot change
 * the result. Q8_K (f32 scale) has a single multiply. The pragma is belt and braces.
 */
#include "quant/blocks.h"

#include <stdint.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* Q4_K/Q5_K pack eight 6-bit scales and eight 6-bit mins into 12 bytes: bytes 0-3 hold
 * scales 0-3 and bytes 4-7 mins 0-3 in their low 6 bits; sub-blocks 4-7 take their low
 * 4 bits from the nibbles of bytes 8-11 (scale low, min high) and their top 2 bits from
 * the spare top bits of bytes 0-3 (scales) and 4-7 (mins). */
static void k_scale_min(const uint8_t *s, int j, int *sc, int *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

/* Q3_K packs sixteen 6-bit scales into 12 bytes: the low 4 bits of scale i are the low
 * (i < 8) or high (i >= 8) nibble of byte i % 8, the top 2 bits are 2-bit field i / 4 of
 * byte 8 + i % 4. Stored with a +32 bias. */
static int q3_scale(const uint8_t *s, int i) {
    const int lo = i < 8 ? (s[i] & 0x0f) : (s[i - 8] >> 4);
    const int hi = (s[8 + (i & 3)] >> (2 * (i >> 2))) & 3;
    return (lo | (hi << 4)) - 32;
}

/* Within each half (128 values) of a Q2_K/Q3_K super-block, byte l of the 32-byte quant
 * group feeds four values 32 apart: 2-bit field k (bits 2k..2k+1) is value 32k + l.
 * Sub-blocks are 16 values, so value 32k + l uses scale 2k + l / 16 of that half. */
void smoe_row_q2_K(const void *src, float *dst, int64_t n) {
    const smoe_block_q2_K *b = src;
    for (int64_t i = 0; i < n / SMOE_QK_K; i++, b++) {
        const float d = smoe_rd_f16(b->d);
        const float dmin = smoe_rd_f16(b->dmin);
        for (int half = 0; half < 2; half++) {
            const uint8_t *q = b->qs + 32 * half;
            for (int k = 0; k < 4; k++) {
                for (int sub = 0; sub < 2; sub++) {
                    const uint8_t sc = b->scales[8 * half + 2 * k + sub];
                    const float dl = d * (float)(sc & 0x0f);
                    const float ml = dmin * (float)(sc >> 4);
                    for (int l = 16 * sub; l < 16 * sub + 16; l++) {
                        const int v = (q[l] >> (2 * k)) & 3;
                        dst[32 * k + l] = dl * (float)v - ml;
                    }
                }
            }
            dst += 128;
        }
    }
}

/* Q3_K: same 2-bit layout as Q2_K; the third bit of value 128*half + 32k + l is bit
 * (4*half + k) of hmask[l], and a clear bit means "subtract 4" (signed range -4..3). */
void smoe_row_q3_K(const void *src, float *dst, int64_t n) {
    const smoe_block_q3_K *b = src;
    for (int64_t i = 0; i < n / SMOE_QK_K; i++, b++) {
        const float d = smoe_rd_f16(b->d);
        for (int half = 0; half < 2; half++) {
            const uint8_t *q = b->qs + 32 * half;
            for (int k = 0; k < 4; k++) {
                const uint8_t hbit = (uint8_t)(1u << (4 * half + k));
                for (int sub = 0; sub < 2; sub++) {
                    const float dl = d * (float)q3_scale(b->scales, 8 * half + 2 * k + sub);
                    for (int l = 16 * sub; l < 16 * sub + 16; l++) {
                        const int v = ((q[l] >> (2 * k)) & 3) - ((b->hmask[l] & hbit) ? 0 : 4);
                        dst[32 * k + l] = dl * (float)v;
                    }
                }
            }
            dst += 128;
        }
    }
}

/* Q4_K: the super-block is four 64-value chunks; chunk c uses qs[32c .. 32c+31], low
 * nibbles for its first 32 values (sub-block 2c), high nibbles for the next 32 (2c+1). */
void smoe_row_q4_K(const void *src, float *dst, int64_t n) {
    const smoe_block_q4_K *b = src;
    for (int64_t i = 0; i < n / SMOE_QK_K; i++, b++) {
        const float d = smoe_rd_f16(b->d);
        const float dmin = smoe_rd_f16(b->dmin);
        for (int c = 0; c < 4; c++) {
            const uint8_t *q = b->qs + 32 * c;
            int sc, m;
            k_scale_min(b->scales, 2 * c, &sc, &m);
            const float d1 = d * (float)sc, m1 = dmin * (float)m;
            k_scale_min(b->scales, 2 * c + 1, &sc, &m);
            const float d2 = d * (float)sc, m2 = dmin * (float)m;
            for (int l = 0; l < 32; l++) dst[l] = d1 * (float)(q[l] & 0x0f) - m1;
            for (int l = 0; l < 32; l++) dst[32 + l] = d2 * (float)(q[l] >> 4) - m2;
            dst += 64;
        }
    }
}

/* Q5_K: Q4_K plus a fifth bit: for chunk c, bit 2c of qh[l] extends value l of the
 * chunk's first half and bit 2c+1 value l of its second half. */
void smoe_row_q5_K(const void *src, float *dst, int64_t n) {
    const smoe_block_q5_K *b = src;
    for (int64_t i = 0; i < n / SMOE_QK_K; i++, b++) {
        const float d = smoe_rd_f16(b->d);
        const float dmin = smoe_rd_f16(b->dmin);
        for (int c = 0; c < 4; c++) {
            const uint8_t *q = b->qs + 32 * c;
            int sc, m;
            k_scale_min(b->scales, 2 * c, &sc, &m);
            const float d1 = d * (float)sc, m1 = dmin * (float)m;
            k_scale_min(b->scales, 2 * c + 1, &sc, &m);
            const float d2 = d * (float)sc, m2 = dmin * (float)m;
            for (int l = 0; l < 32; l++) {
                const int v = (q[l] & 0x0f) | (((b->qh[l] >> (2 * c)) & 1) << 4);
                dst[l] = d1 * (float)v - m1;
            }
            for (int l = 0; l < 32; l++) {
                const int v = (q[l] >> 4) | (((b->qh[l] >> (2 * c + 1)) & 1) << 4);
                dst[32 + l] = d2 * (float)v - m2;
            }
            dst += 64;
        }
    }
}

/* Q6_K: each 128-value half uses 64 bytes of ql, 32 of qh and 8 scales. For l < 32,
 * ql[l] gives the low 4 bits of values l (low nibble) and l+64 (high nibble), ql[l+32]
 * those of values l+32 and l+96; 2-bit field k of qh[l] gives the top bits of value
 * l + 32k. Sub-blocks are 16 values, so value v of the half uses scale v / 16. */
void smoe_row_q6_K(const void *src, float *dst, int64_t n) {
    const smoe_block_q6_K *b = src;
    for (int64_t i = 0; i < n / SMOE_QK_K; i++, b++) {
        const float d = smoe_rd_f16(b->d);
        for (int half = 0; half < 2; half++) {
            const uint8_t *ql = b->ql + 64 * half;
            const uint8_t *qh = b->qh + 32 * half;
            const int8_t *sc = b->scales + 8 * half;
            for (int l = 0; l < 32; l++) {
                const int q[4] = {
                    ((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4)) - 32,
                    ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32,
                    ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32,
                    ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32,
                };
                for (int k = 0; k < 4; k++) {
                    /* (d * scale) first, then times q: ggml's association */
                    const float ds = d * (float)sc[l / 16 + 2 * k];
                    dst[32 * k + l] = ds * (float)q[k];
                }
            }
            dst += 128;
        }
    }
}

/* Q8_K: d is a full f32 (little-endian); bsums are not needed to dequantize. */
void smoe_row_q8_K(const void *src, float *dst, int64_t n) {
    const smoe_block_q8_K *b = src;
    for (int64_t i = 0; i < n / SMOE_QK_K; i++, b++, dst += SMOE_QK_K) {
        const float d = smoe_bits_to_f32(smoe_rd_u32(b->d));
        for (int j = 0; j < SMOE_QK_K; j++) dst[j] = d * (float)b->qs[j];
    }
}
