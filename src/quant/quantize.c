/*
 * quantize.c - reference quantizers f32 -> F32/F16/BF16 and the legacy 32-value block
 * types Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, and smoe_quantizer_get() over all of them (the
 * K-quants live in quantize_k.c).
 *
 * What it does not do: no Q8_1/Q8_K (activation-only types, never stored in model
 * files), no importance-matrix weighting, no tensor or model logic (see convert.c).
 *
 * The legacy types are produced bit-exactly as llama.cpp's reference quantizer does:
 * their rule is fixed by the format's history (the scale comes from the value of
 * largest magnitude, kept with its sign for the symmetric types so that it lands on
 * the extra negative level; min/max for the offset types) and a model file that is
 * byte-identical to llama-quantize's is the easiest one to trust. To get the same bits
 * every step uses the same f32 operations: the scale is not rounded to fp16 before the
 * values are divided by it, the reciprocal is taken once, and the rounding is
 * "add a half, truncate" (Q8_0: round half away from zero). The pragma keeps clang
 * from fusing x*id + 8.5 into an FMA, which could move a value across a rounding
 * boundary (gcc does not contract in ISO C mode).
 *
 * Robustness: a NaN input value is quantized as 0 and infinities saturate, so no input
 * leads to undefined float -> int conversions; a scale too large for fp16 is clamped
 * to the largest finite half. Neither case changes the result for finite inputs of
 * ordinary magnitude, which is what the bit-exactness claim is about.
 */
#include "quant/quantize.h"

#include "quant/blocks.h"
#include "quant/quant.h"
#include "smoe.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* The K-quant row quantizers (quantize_k.c). */
void smoe_quantize_row_q2_K(const float *src, void *dst, int64_t n);
void smoe_quantize_row_q3_K(const float *src, void *dst, int64_t n);
void smoe_quantize_row_q4_K(const float *src, void *dst, int64_t n);
void smoe_quantize_row_q5_K(const float *src, void *dst, int64_t n);
void smoe_quantize_row_q6_K(const float *src, void *dst, int64_t n);

/* ------------------------------------------------------------ helpers */

static inline void wr_u16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v & 0xff);
    p[1] = (uint8_t)(v >> 8);
}

static inline void wr_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* A block's values with NaN replaced by 0 (infinities are kept: they saturate to the
 * largest finite float below). Returns x itself when every value is finite, which is
 * the only case that matters for speed. */
static const float *block_clean(const float *x, int n, float *tmp) {
    int ok = 1;
    for (int i = 0; i < n; i++) ok &= isfinite(x[i]) ? 1 : 0;
    if (ok) return x;
    for (int i = 0; i < n; i++) {
        float v = x[i];
        tmp[i] = isnan(v) ? 0.0f : v > FLT_MAX ? FLT_MAX : v < -FLT_MAX ? -FLT_MAX : v;
    }
    return tmp;
}

/* fp16 bits of a scale, never infinite: |d| beyond the half range becomes +-65504. */
static uint16_t scale_to_f16(float d) {
    if (d > 65504.0f) d = 65504.0f;
    if (d < -65504.0f) d = -65504.0f;
    return smoe_f32_to_f16(d);
}

/* (int)t for t in [lo, hi], saturating outside (and lo for NaN). For t inside the range
 * this is C's truncating conversion, as ggml's (int8_t)/(uint8_t) casts do. */
static inline int trunc_clamp(float t, int lo, int hi) {
    if (!(t > (float)lo)) return lo;
    if (t >= (float)hi) return hi;
    return (int)t;
}

/* The value of largest magnitude with its sign (the first one on ties): the symmetric
 * types divide it by minus their lowest level, so that it lands exactly there. */
static float signed_absmax(const float *x, int n) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++) {
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    return max;
}

/* d as the decoder will see it, and the reciprocal the values are scaled with. The
 * reciprocal uses the unrounded d, as ggml does; only when d had to be clamped to the
 * half range is it recomputed from the stored value (values then saturate). */
static void scale_pair(float d, uint8_t *dst, float *id) {
    const uint16_t h = scale_to_f16(d);
    wr_u16(dst, h);
    if (fabsf(d) > 65504.0f) d = smoe_f16_to_f32(h);
    *id = d != 0.0f ? 1.0f / d : 0.0f;
}

/* Store the offset m of Q4_1/Q5_1 and return the one to quantize against: the block's
 * min itself, as ggml does, unless it had to be clamped to the half range. */
static float offset_pair(float min, uint8_t *dst) {
    const uint16_t h = scale_to_f16(min);
    wr_u16(dst, h);
    return fabsf(min) > 65504.0f ? smoe_f16_to_f32(h) : min;
}

/* ------------------------------------------------------------ plain types */

static void quantize_f32(const float *src, void *dst, int64_t n) {
    memcpy(dst, src, (size_t)n * sizeof(float));
}

static void quantize_f16(const float *src, void *dst, int64_t n) {
    uint8_t *o = dst;
    for (int64_t i = 0; i < n; i++) wr_u16(o + 2 * i, smoe_f32_to_f16(src[i]));
}

static void quantize_bf16(const float *src, void *dst, int64_t n) {
    uint8_t *o = dst;
    for (int64_t i = 0; i < n; i++) wr_u16(o + 2 * i, smoe_f32_to_bf16(src[i]));
}

/* ------------------------------------------------------------ legacy blocks */

/* The legacy types share two steps: levels q[j] = trunc((x[j] - sub) * id + add) clamped
 * to [0, maxq] (sub = 0 and a centring add for Q4_0/Q5_0, sub = the block minimum and a
 * rounding add for Q4_1/Q5_1), and the packing of values j and j + 16 into one byte,
 * with the fifth bits of the 5-bit types in qh (bit j = value j). */
static void legacy_levels(const float *x, float sub, float id, float add, int maxq, int *q) {
    for (int j = 0; j < SMOE_QK; j++) q[j] = trunc_clamp((x[j] - sub) * id + add, 0, maxq);
}

static void pack_nibbles(const int *q, uint8_t *qs) {
    for (int j = 0; j < SMOE_QK / 2; j++) qs[j] = (uint8_t)((q[j] & 15) | ((q[j + SMOE_QK / 2] & 15) << 4));
}

static void pack_fifth_bits(const int *q, uint8_t *qh) {
    uint32_t bits = 0;
    for (int j = 0; j < SMOE_QK; j++) bits |= (uint32_t)(q[j] >> 4) << j;
    wr_u32(qh, bits);
}

static void block_min_max(const float *x, float *min, float *max) {
    *min = FLT_MAX, *max = -FLT_MAX;
    for (int j = 0; j < SMOE_QK; j++) {
        if (x[j] < *min) *min = x[j];
        if (x[j] > *max) *max = x[j];
    }
}

/* Q4_0: 16 levels d*(q-8); the largest magnitude becomes q = 0 (d = max / -8), so the
 * grid reaches one step further on that value's side. */
static void quantize_q4_0(const float *src, void *dst, int64_t n) {
    smoe_block_q4_0 *b = dst;
    float tmp[SMOE_QK], id;
    int q[SMOE_QK];
    for (int64_t i = 0; i < n / SMOE_QK; i++, b++) {
        const float *x = block_clean(src + i * SMOE_QK, SMOE_QK, tmp);
        scale_pair(signed_absmax(x, SMOE_QK) / -8.0f, b->d, &id);
        legacy_levels(x, 0.0f, id, 8.5f, 15, q);
        pack_nibbles(q, b->qs);
    }
}

/* Q4_1: 16 levels d*q + m spanning [min, max] of the block. */
static void quantize_q4_1(const float *src, void *dst, int64_t n) {
    smoe_block_q4_1 *b = dst;
    float tmp[SMOE_QK], id, min, max;
    int q[SMOE_QK];
    for (int64_t i = 0; i < n / SMOE_QK; i++, b++) {
        const float *x = block_clean(src + i * SMOE_QK, SMOE_QK, tmp);
        block_min_max(x, &min, &max);
        scale_pair((max - min) / 15.0f, b->d, &id);
        legacy_levels(x, offset_pair(min, b->m), id, 0.5f, 15, q);
        pack_nibbles(q, b->qs);
    }
}

/* Q5_0: as Q4_0 with 32 levels d*(q-16). */
static void quantize_q5_0(const float *src, void *dst, int64_t n) {
    smoe_block_q5_0 *b = dst;
    float tmp[SMOE_QK], id;
    int q[SMOE_QK];
    for (int64_t i = 0; i < n / SMOE_QK; i++, b++) {
        const float *x = block_clean(src + i * SMOE_QK, SMOE_QK, tmp);
        scale_pair(signed_absmax(x, SMOE_QK) / -16.0f, b->d, &id);
        legacy_levels(x, 0.0f, id, 16.5f, 31, q);
        pack_nibbles(q, b->qs);
        pack_fifth_bits(q, b->qh);
    }
}

/* Q5_1: as Q4_1 with 32 levels. */
static void quantize_q5_1(const float *src, void *dst, int64_t n) {
    smoe_block_q5_1 *b = dst;
    float tmp[SMOE_QK], id, min, max;
    int q[SMOE_QK];
    for (int64_t i = 0; i < n / SMOE_QK; i++, b++) {
        const float *x = block_clean(src + i * SMOE_QK, SMOE_QK, tmp);
        block_min_max(x, &min, &max);
        scale_pair((max - min) / 31.0f, b->d, &id);
        legacy_levels(x, offset_pair(min, b->m), id, 0.5f, 31, q);
        pack_nibbles(q, b->qs);
        pack_fifth_bits(q, b->qh);
    }
}

/* Q8_0: d = max|x| / 127, q = round(x / d) half away from zero. */
static void quantize_q8_0(const float *src, void *dst, int64_t n) {
    smoe_block_q8_0 *b = dst;
    float tmp[SMOE_QK];
    for (int64_t i = 0; i < n / SMOE_QK; i++, b++) {
        const float *x = block_clean(src + i * SMOE_QK, SMOE_QK, tmp);
        float amax = 0.0f;
        for (int j = 0; j < SMOE_QK; j++) amax = fmaxf(amax, fabsf(x[j]));
        float id;
        scale_pair(amax / 127.0f, b->d, &id);
        for (int j = 0; j < SMOE_QK; j++) {
            const float r = roundf(x[j] * id);
            b->qs[j] = (int8_t)(r >= 127.0f ? 127 : r > -127.0f ? (int)r : -127);
        }
    }
}

/* ------------------------------------------------------------ dispatch */

smoe_quantize_fn smoe_quantizer_get(int dtype) {
    switch (dtype) {
    case SMOE_DTYPE_F32: return quantize_f32;
    case SMOE_DTYPE_F16: return quantize_f16;
    case SMOE_DTYPE_BF16: return quantize_bf16;
    case SMOE_DTYPE_Q4_0: return quantize_q4_0;
    case SMOE_DTYPE_Q4_1: return quantize_q4_1;
    case SMOE_DTYPE_Q5_0: return quantize_q5_0;
    case SMOE_DTYPE_Q5_1: return quantize_q5_1;
    case SMOE_DTYPE_Q8_0: return quantize_q8_0;
    case SMOE_DTYPE_Q2_K: return smoe_quantize_row_q2_K;
    case SMOE_DTYPE_Q3_K: return smoe_quantize_row_q3_K;
    case SMOE_DTYPE_Q4_K: return smoe_quantize_row_q4_K;
    case SMOE_DTYPE_Q5_K: return smoe_quantize_row_q5_K;
    case SMOE_DTYPE_Q6_K: return smoe_quantize_row_q6_K;
    default: return NULL;
    }
}
