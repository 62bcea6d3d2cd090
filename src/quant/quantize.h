/*
 * quantize.h - reference quantizers: f32 rows to each weight type, as `smoe quantize` and
 * the model writer use them. Quality matters more than speed here: the K-quants search
 * scales and mins per sub-block to minimise the weighted squared error, as llama.cpp's
 * quantizer does (its per-tensor RMSE is the bar).
 */
#ifndef SMOE_QUANTIZE_H
#define SMOE_QUANTIZE_H

#include <stddef.h>
#include <stdint.h>

/* Quantize n floats (a multiple of the block size) into dst; the reference quantizer of
 * a weight type, or NULL if smoe cannot produce that type. */
typedef void (*smoe_quantize_fn)(const float *src, void *dst, int64_t n);
smoe_quantize_fn smoe_quantizer_get(int dtype);

#endif /* SMOE_QUANTIZE_H */
