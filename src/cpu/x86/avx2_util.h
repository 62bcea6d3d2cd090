/*
 * avx2_util.h - small AVX2 helpers shared by the x86 kernel files (dot_avx2.c,
 * dot4_avx2.c, dot2x4_avx2.c): unaligned loads, horizontal sums, little-endian field
 * reads, and the unpacking of bit planes, nibbles and K-quant scales. Include only from
 * files built with -mavx2 -mfma -mf16c (the Makefile gives *_avx2.c those flags).
 */
#ifndef SMOE_AVX2_UTIL_H
#define SMOE_AVX2_UTIL_H

#include "quant/blocks.h"

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

/* Unrolled loop over the 4 tokens of a 4-token kernel, and row j of a strided array. */
#define FOR4(j) _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++)
#define ROW(T, a, as, j) ((const T *)((const uint8_t *)(a) + (size_t)(j) * (as)))

/* Decode streams each weight row from memory once. The four-row kernels (vec_dot_4x1,
 * dot_avx2.c) and the few-token ones of batched decode (vec_dot_few, dot4_avx2.c) ask,
 * at every block step, for the bytes DECODE_PF ahead of the block: prefetches spread
 * evenly through the compute keep the memory stream going, where a burst per row
 * (several KB at once) would fill the miss queues and then leave memory idle while the
 * rows are computed (measured on Q4_K rows streamed by 2 threads: 27 -> 30-32 GB/s). F16
 * and BF16, with little compute per byte, stream best with a short distance FLOAT_PF
 * (bench-m F16 tg128, 2 threads: 57-58 tokens/s at 8 KB, 60-61 at 2 KB, 62-65 at 1 KB,
 * 60-62 at 256-512 bytes; the quantized types showed no difference between 2 and 8 KB).
 * A prefetch never faults, so reading ahead past the last row is harmless. */
#define DECODE_PF 8192
#define FLOAT_PF 1024
static inline __attribute__((always_inline)) void pf_ahead(const void *p, size_t bytes) {
    for (size_t o = 0; o < bytes; o += 64) _mm_prefetch((const char *)p + DECODE_PF + o, _MM_HINT_T0);
}
static inline void pf_ahead_float(const void *p) { _mm_prefetch((const char *)p + FLOAT_PF, _MM_HINT_T0); }

static inline __m256i loadu256(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }
static inline __m128i loadu128(const void *p) { return _mm_loadu_si128((const __m128i *)p); }
static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
static inline float hsum128(__m128 s) {
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
/* hsum256 of a, b, c, d at once: {hsum256(a), hsum256(b), hsum256(c), hsum256(d)}, the
 * same tree (lo + hi, then lanes 0 + 2 and 1 + 3, then 0 + 1; float addition is
 * commutative, so each lane gets hsum256's bits): one transposing reduction for the four
 * rows of a multi-row kernel. */
static inline __m128 hsum4(__m256 a, __m256 b, __m256 c, __m256 d) {
    /* lo + hi of each: [a | b] and [c | d], lanes i = v[i] + v[i + 4] */
    const __m256 ab = _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x20), _mm256_permute2f128_ps(a, b, 0x31));
    const __m256 cd = _mm256_add_ps(_mm256_permute2f128_ps(c, d, 0x20), _mm256_permute2f128_ps(c, d, 0x31));
    /* lanes 0 + 2 and 1 + 3: [a0 a1 c0 c1 | b0 b1 d0 d1] */
    const __m256 u = _mm256_add_ps(_mm256_shuffle_ps(ab, cd, _MM_SHUFFLE(1, 0, 1, 0)),
                                   _mm256_shuffle_ps(ab, cd, _MM_SHUFFLE(3, 2, 3, 2)));
    /* lane 0 + 1: [a c a c | b d b d] */
    const __m256 s = _mm256_add_ps(_mm256_shuffle_ps(u, u, _MM_SHUFFLE(2, 0, 2, 0)),
                                   _mm256_shuffle_ps(u, u, _MM_SHUFFLE(3, 1, 3, 1)));
    return _mm_unpacklo_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
}
/* An fp16 field (x86 is little-endian, so a memcpy'd u16 is the value). */
static inline float rd_f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, sizeof h);
    return _cvtsh_ss(h);
}
static inline float rd_f32(const uint8_t *p) {
    float f;
    memcpy(&f, p, sizeof f);
    return f;
}
static inline uint64_t u16_at(const uint8_t *p) {
    uint16_t u;
    memcpy(&u, p, 2);
    return u;
}
/* Sum of 16 int16 pairs into 8 int32 lanes. */
static inline __m256i sum_pairs(__m256i p) { return _mm256_madd_epi16(p, _mm256_set1_epi16(1)); }
/* 16 packed nibbles -> 32 bytes: low nibbles (values 0..15) in the low lane, high
 * nibbles (values 16..31) in the high lane: the legacy block order. */
static inline __m256i nibbles32(const uint8_t *qs) {
    /* the 16 bytes in both lanes (a broadcast load, no shuffle), the high lane >> 4 */
    const __m256i v = _mm256_broadcastsi128_si256(loadu128(qs));
    const __m256i sh = _mm256_srlv_epi32(v, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4));
    return _mm256_and_si256(sh, _mm256_set1_epi8(0x0f));
}
/* A 32-bit little-endian word -> 32 bytes, byte j = 0xff if bit j is set, else 0. */
static inline __m256i bits32(const uint8_t *p) {
    uint32_t u;
    memcpy(&u, p, sizeof u);
    /* byte j takes byte j/8 of the word (the shuffle is per 128-bit lane; the broadcast
     * puts the word in both lanes) */
    const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2,
                                          2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)u), shuf);
    /* set every bit but bit j%8 of byte j: all ones iff bit j%8 was set */
    v = _mm256_or_si256(v, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfeLL));
    return _mm256_cmpeq_epi8(v, _mm256_set1_epi64x(-1));
}
/* Q4_K/Q5_K scales and mins (6 bits each, layout of k_scale_min in q_k.c) as 8 int16
 * each: words a = bytes 0-3, b = 4-7, c = 8-11; scales 0-3 = a & 63, mins 0-3 = b & 63,
 * scales 4-7 = c low nibbles | a's top 2 bits, mins 4-7 = c high nibbles | b's top 2.
 * In vector registers (a scalar version cost a quarter of a block's instructions, and
 * its chain into the shuffles every block): bytes [a c b c] (c's high nibbles taken in
 * the last four) masked, or'ed with [0 a 0 b]'s top 2 bits moved to bits 4-5; the 16-bit
 * shifts move no kept bit across a byte. s must have 16 readable bytes (in a block, the
 * scales are followed by the quants). */
static inline void k45_scales(const uint8_t *s, __m256i *scales, __m128i *mins) {
    const __m128i v = loadu128(s);
    const __m128i acbc = _mm_shuffle_epi8(v, _mm_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11));
    const __m128i low = _mm_and_si128(_mm_blend_epi16(acbc, _mm_srli_epi16(acbc, 4), 0xc0),
                                      _mm_setr_epi32(0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f));
    const __m128i top = _mm_shuffle_epi8(v, _mm_setr_epi8(-1, -1, -1, -1, 0, 1, 2, 3, -1, -1, -1, -1, 4, 5, 6, 7));
    const __m128i u = _mm_or_si128(low, _mm_and_si128(_mm_srli_epi16(top, 2), _mm_set1_epi8(0x30)));
    *scales = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(u));
    *mins = _mm_cvtepu8_epi16(_mm_srli_si128(u, 8));
}
/* Q3_K's sixteen 6-bit scales from 12 bytes, unbiased to -32..31, one per byte. The
 * layout (see q3_scale in q_k.c) packed as 32-bit words a = bytes 0-3, b = 4-7, c = 8-11:
 * scales 0-3 = a low nibbles | c bits 0-1, 4-7 = b low | c bits 2-3, 8-11 = a high
 * nibbles | c bits 4-5, 12-15 = b high | c bits 6-7 (top 2 bits go to bits 4-5). */
static inline __m128i q3_scales(const uint8_t *s) {
    uint32_t w[3];
    memcpy(w, s, 12);
    const uint32_t a = w[0], b = w[1], c = w[2];
    const uint32_t lo = 0x0f0f0f0fu, hi = 0x30303030u;
    const uint32_t s0 = (a & lo) | ((c << 4) & hi);
    const uint32_t s1 = (b & lo) | ((c << 2) & hi);
    const uint32_t s2 = ((a >> 4) & lo) | (c & hi);
    const uint32_t s3 = ((b >> 4) & lo) | ((c >> 2) & hi);
    return _mm_sub_epi8(_mm_setr_epi32((int)s0, (int)s1, (int)s2, (int)s3), _mm_set1_epi8(32));
}
/* Q3_K's scales as int16, the even sub-blocks' in the low lane and the odd ones' in the
 * high lane: group (h, k) takes element 4h+k of each lane (one pshufb, bcast16). */
static inline __m256i q3_scales_eo(const uint8_t *s) {
    const __m128i eo = _mm_shuffle_epi8(q3_scales(s), _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15));
    return _mm256_cvtepi8_epi16(eo);
}
/* BF16 -> f32 is a 16-bit shift: interleaving zeros below 16 bf16 values gives them as
 * two vectors of 8 floats, in a lane order that does not matter for a dot product as
 * long as both rows get the same one. */
static inline __m256 bf16_lo(__m256i v) { return _mm256_castsi256_ps(_mm256_unpacklo_epi16(_mm256_setzero_si256(), v)); }
static inline __m256 bf16_hi(__m256i v) { return _mm256_castsi256_ps(_mm256_unpackhi_epi16(_mm256_setzero_si256(), v)); }

/* The four Q8_K activation rows of a 4-token kernel. */
typedef struct rows4 {
    const smoe_block_q8_K *y[4];
} rows4;

static inline rows4 rows4_of(const void *a, size_t as) {
    rows4 r;
    FOR4(j) r.y[j] = ROW(smoe_block_q8_K, a, as, j);
    return r;
}

#endif /* SMOE_AVX2_UTIL_H */
