/*
 * blocks.h - the byte layouts of the ggml block-quantized tensor types (one struct per
 * block type, its size pinned by _Static_assert) and small inline helpers to read their
 * little-endian fields. Shared by the reference dequantizers and later by ISA kernels.
 *
 * What it does not do: no dequantization math (see q_legacy.c, q_k.c), no quantization.
 *
 * Every field is declared as bytes (uint8_t / int8_t arrays), never as uint16_t/float:
 * GGUF only promises 32-byte alignment of a tensor's start, blocks of 18 or 110 bytes
 * follow each other with no padding, and callers may hand us any pointer. With byte
 * fields each struct has alignment 1 and no padding, so a cast of any pointer to a block
 * pointer is valid C (UBSan-clean) and the layout is exactly the on-disk one on every
 * ABI. Multi-byte fields are read with the helpers below, which are also independent of
 * the host's byte order.
 *
 * The fp16 fields ("d", "dmin", ...) are IEEE binary16 bit patterns, little-endian.
 */
#ifndef SMOE_QUANT_BLOCKS_H
#define SMOE_QUANT_BLOCKS_H

#include <stdint.h>
#include <string.h>

#define SMOE_QK 32      /* values per block of the legacy types (Q4_0 .. Q8_1) */
#define SMOE_QK_K 256   /* values per super-block of the K-quants */

/* ------------------------------------------------------------ field readers */

static inline uint16_t smoe_rd_u16(const uint8_t *p) {
    return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t smoe_rd_u32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static inline float smoe_bits_to_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f); /* the only well-defined type pun in C */
    return f;
}

static inline uint32_t smoe_f32_to_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* IEEE binary16 -> binary32, exact for every input (the widening never rounds).
 * Inline here so that the block decoders do not pay a call per scale; quant.h's
 * smoe_f16_to_f32 is this same function. NaNs keep sign and payload (shifted up). */
static inline float smoe_f16_decode(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13); /* inf or NaN */
    } else if (exp != 0) {
        /* normal: rebias the exponent from 15 to 127 */
        bits = sign | ((exp + 112u) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign; /* +-0 */
    } else {
        /* half subnormal (man * 2^-24) is a normal float: shift the mantissa until the
         * implicit bit (0x400) appears, lowering the exponent once per shift. */
        uint32_t e = 113; /* biased f32 exponent of 2^-14, the half subnormal scale */
        while (!(man & 0x400u)) {
            man <<= 1;
            e--;
        }
        bits = sign | (e << 23) | ((man & 0x3ffu) << 13);
    }
    return smoe_bits_to_f32(bits);
}

/* An fp16 field of a block as f32. */
static inline float smoe_rd_f16(const uint8_t *p) { return smoe_f16_decode(smoe_rd_u16(p)); }

/* ------------------------------------------------------------ legacy blocks (32 values) */

/* Q4_0: value = d * (q - 8), q a nibble. Byte j of qs holds value j (low nibble) and
 * value j+16 (high nibble). */
typedef struct smoe_block_q4_0 {
    uint8_t d[2];
    uint8_t qs[SMOE_QK / 2];
} smoe_block_q4_0;
_Static_assert(sizeof(smoe_block_q4_0) == 18, "Q4_0 block is 18 bytes");

/* Q4_1: value = d * q + m, nibbles laid out as in Q4_0. */
typedef struct smoe_block_q4_1 {
    uint8_t d[2];
    uint8_t m[2];
    uint8_t qs[SMOE_QK / 2];
} smoe_block_q4_1;
_Static_assert(sizeof(smoe_block_q4_1) == 20, "Q4_1 block is 20 bytes");

/* Q5_0: value = d * (q - 16), q = nibble | (bit of qh) << 4. qh is a little-endian
 * 32-bit word whose bit j is the fifth bit of value j. */
typedef struct smoe_block_q5_0 {
    uint8_t d[2];
    uint8_t qh[4];
    uint8_t qs[SMOE_QK / 2];
} smoe_block_q5_0;
_Static_assert(sizeof(smoe_block_q5_0) == 22, "Q5_0 block is 22 bytes");

/* Q5_1: value = d * q + m, q as in Q5_0 (no offset). */
typedef struct smoe_block_q5_1 {
    uint8_t d[2];
    uint8_t m[2];
    uint8_t qh[4];
    uint8_t qs[SMOE_QK / 2];
} smoe_block_q5_1;
_Static_assert(sizeof(smoe_block_q5_1) == 24, "Q5_1 block is 24 bytes");

/* Q8_0: value = d * q, q a signed byte. */
typedef struct smoe_block_q8_0 {
    uint8_t d[2];
    int8_t qs[SMOE_QK];
} smoe_block_q8_0;
_Static_assert(sizeof(smoe_block_q8_0) == 34, "Q8_0 block is 34 bytes");

/* Q8_1: as Q8_0 plus s = d * sum(q), used by dot products, not by dequantization. */
typedef struct smoe_block_q8_1 {
    uint8_t d[2];
    uint8_t s[2];
    int8_t qs[SMOE_QK];
} smoe_block_q8_1;
_Static_assert(sizeof(smoe_block_q8_1) == 36, "Q8_1 block is 36 bytes");

/* ------------------------------------------------------------ K-quants (256 values) */

/* Q2_K: 16 sub-blocks of 16 values; value = d*(sc&15)*q - dmin*(sc>>4), q 2-bit.
 * qs byte l of each 32-byte group holds four values, one per 2-bit field. */
typedef struct smoe_block_q2_K {
    uint8_t scales[SMOE_QK_K / 16]; /* low nibble: scale, high nibble: min */
    uint8_t qs[SMOE_QK_K / 4];
    uint8_t d[2];
    uint8_t dmin[2];
} smoe_block_q2_K;
_Static_assert(sizeof(smoe_block_q2_K) == 84, "Q2_K block is 84 bytes");

/* Q3_K: 16 sub-blocks of 16 values; value = d*(sc-32)*(q - (hbit ? 0 : 4)), q the low
 * 2 bits from qs and the third bit from hmask; sc 6-bit packed into 12 bytes. */
typedef struct smoe_block_q3_K {
    uint8_t hmask[SMOE_QK_K / 8];
    uint8_t qs[SMOE_QK_K / 4];
    uint8_t scales[12];
    uint8_t d[2];
} smoe_block_q3_K;
_Static_assert(sizeof(smoe_block_q3_K) == 110, "Q3_K block is 110 bytes");

/* Q4_K: 8 sub-blocks of 32 values; value = d*sc*q - dmin*m, q a nibble, sc and m 6-bit
 * packed into 12 bytes (see smoe_k_scale_min in q_k.c). */
typedef struct smoe_block_q4_K {
    uint8_t d[2];
    uint8_t dmin[2];
    uint8_t scales[12];
    uint8_t qs[SMOE_QK_K / 2];
} smoe_block_q4_K;
_Static_assert(sizeof(smoe_block_q4_K) == 144, "Q4_K block is 144 bytes");

/* Q5_K: Q4_K plus a fifth bit per value in qh. */
typedef struct smoe_block_q5_K {
    uint8_t d[2];
    uint8_t dmin[2];
    uint8_t scales[12];
    uint8_t qh[SMOE_QK_K / 8];
    uint8_t qs[SMOE_QK_K / 2];
} smoe_block_q5_K;
_Static_assert(sizeof(smoe_block_q5_K) == 176, "Q5_K block is 176 bytes");

/* Q6_K: 16 sub-blocks of 16 values; value = d*sc*(q-32), q = 4 low bits from ql and
 * 2 high bits from qh, sc a signed byte. */
typedef struct smoe_block_q6_K {
    uint8_t ql[SMOE_QK_K / 2];
    uint8_t qh[SMOE_QK_K / 4];
    int8_t scales[SMOE_QK_K / 16];
    uint8_t d[2];
} smoe_block_q6_K;
_Static_assert(sizeof(smoe_block_q6_K) == 210, "Q6_K block is 210 bytes");

/* Q8_K: value = d * q with d an f32 (not f16); bsums are per-16 sums for dot products. */
typedef struct smoe_block_q8_K {
    uint8_t d[4];
    int8_t qs[SMOE_QK_K];
    uint8_t bsums[SMOE_QK_K / 16][2]; /* int16 little-endian */
} smoe_block_q8_K;
_Static_assert(sizeof(smoe_block_q8_K) == 292, "Q8_K block is 292 bytes");

/* ------------------------------------------------------------ reference decoders */

/* Row decoders behind the traits table (quant.c): each turns n values (n a multiple of
 * the block size, checked by the caller) at src into f32 at dst. They are the scalar
 * reference, bit-exact with ggml's dequantize_row_* and gguf-py's numpy dequantizers;
 * src may have any alignment. Defined in f16.c, q_legacy.c and q_k.c. */
void smoe_row_f32(const void *src, float *dst, int64_t n);
void smoe_row_f16(const void *src, float *dst, int64_t n);
void smoe_row_bf16(const void *src, float *dst, int64_t n);
void smoe_row_f64(const void *src, float *dst, int64_t n);
void smoe_row_i8(const void *src, float *dst, int64_t n);
void smoe_row_i16(const void *src, float *dst, int64_t n);
void smoe_row_i32(const void *src, float *dst, int64_t n);
void smoe_row_i64(const void *src, float *dst, int64_t n);

void smoe_row_q4_0(const void *src, float *dst, int64_t n);
void smoe_row_q4_1(const void *src, float *dst, int64_t n);
void smoe_row_q5_0(const void *src, float *dst, int64_t n);
void smoe_row_q5_1(const void *src, float *dst, int64_t n);
void smoe_row_q8_0(const void *src, float *dst, int64_t n);
void smoe_row_q8_1(const void *src, float *dst, int64_t n);

void smoe_row_q2_K(const void *src, float *dst, int64_t n);
void smoe_row_q3_K(const void *src, float *dst, int64_t n);
void smoe_row_q4_K(const void *src, float *dst, int64_t n);
void smoe_row_q5_K(const void *src, float *dst, int64_t n);
void smoe_row_q6_K(const void *src, float *dst, int64_t n);
void smoe_row_q8_K(const void *src, float *dst, int64_t n);

#endif /* SMOE_QUANT_BLOCKS_H */
