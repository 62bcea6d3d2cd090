/*
 * data.h - token files for training (smoe_data_* in include/smoe.h): the format's
 * constants, the batch RNG and direct token access, for the trainer and the tests.
 * Private to the library.
 *
 * The file format and the RNG are specified in docs/training.md ("Tokenizer and data").
 */
#ifndef SMOE_TRAIN_DATA_H
#define SMOE_TRAIN_DATA_H

#include "smoe.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SMOE_DATA_MAGIC "SMOETOKS" /* 8 bytes, no NUL */
#define SMOE_DATA_VERSION 1u
#define SMOE_DATA_HEADER_BYTES 64u

/* FNV-1a 64 of n bytes continuing from h (start with SMOE_FNV1A_INIT). */
#define SMOE_FNV1A_INIT 0xcbf29ce484222325ull
uint64_t smoe_fnv1a(uint64_t h, const void *p, size_t n);
/* splitmix64's output function (a bijective 64-bit mix). */
uint64_t smoe_mix64(uint64_t z);

/* The batch RNG: splitmix64 whose state starts at mix64(seed ^ mix64(2 * step + val)),
 * so every (seed, step, split) has its own stream and nothing needs saving to resume. */
typedef struct smoe_data_rng {
    uint64_t state;
} smoe_data_rng;
smoe_data_rng smoe_data_rng_init(uint64_t seed, uint64_t step, bool val);
/* state += 0x9E3779B97F4A7C15; return mix64(state). */
uint64_t smoe_data_rng_next(smoe_data_rng *r);
/* Uniform in [0, n) for n >= 1, unbiased (draws below 2^64 mod n are rejected). */
uint64_t smoe_data_rng_below(smoe_data_rng *r, uint64_t n);

/* Start of each window of batch `step` (relative to the split's first token), as
 * smoe_data_batch draws them: starts[b] for b < batch. */
smoe_status smoe_data_batch_starts(const smoe_data *d, bool val, uint64_t seed, uint64_t step, int32_t batch,
                                   int32_t seq_len, uint64_t *starts);
/* Token i of the file (i < n_tokens: training range, then validation range). */
int32_t smoe_data_token(const smoe_data *d, uint64_t i);
/* Copy n tokens of a split from start into out; SMOE_ERR_RANGE past its end. */
smoe_status smoe_data_read(const smoe_data *d, bool val, uint64_t start, uint64_t n, int32_t *out);

#endif /* SMOE_TRAIN_DATA_H */
