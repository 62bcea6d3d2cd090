/*
 * fuzz_data.c - libFuzzer target for the token-file reader (`make fuzz FUZZ_TARGET=data`).
 *
 * Opens the input with smoe_data_open_memory. A rejected input must leave *out NULL and
 * a message. An accepted one must be consistent (sizes, counts, every token below the
 * vocabulary size) and is walked through the readers: smoe_data_read at the ends of
 * both splits and batches of several window lengths from both, which must succeed
 * exactly when the split holds a window. Each input is also tried with its checksum field
 * recomputed, so mutations get past the checksum. Any broken invariant aborts, so libFuzzer
 * reports it as a crash; memory errors are ASan's. Seeds: tests/fuzz/corpus-data/.
 */
#include "smoe.h"
#include "train/data.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REQUIRE(c)                                                                        \
    do {                                                                                  \
        if (!(c)) {                                                                       \
            fprintf(stderr, "fuzz_data: invariant failed: %s (line %d)\n", #c, __LINE__); \
            abort();                                                                      \
        }                                                                                 \
    } while (0)

/* Open one buffer and check everything the reader promises. */
static void check(const uint8_t *data, size_t size) {
    smoe_data *d = (smoe_data *)&size; /* must be overwritten with NULL on failure */
    smoe_status st = smoe_data_open_memory(data, size, &d);
    if (st != SMOE_OK) {
        REQUIRE(d == NULL);
        REQUIRE(smoe_last_error()[0] != 0);
        return;
    }
    const smoe_data_info in = smoe_data_get_info(d);
    REQUIRE(in.token_bytes == 2 || in.token_bytes == 4);
    REQUIRE(in.n_vocab > 0 && (in.token_bytes == 4 || in.n_vocab <= 65536));
    REQUIRE(in.n_train + in.n_val == in.n_tokens && in.n_train <= in.n_tokens);
    REQUIRE(64 + in.n_tokens * in.token_bytes == size);
    for (uint64_t i = 0; i < in.n_tokens; i++) {
        int32_t id = smoe_data_token(d, i);
        REQUIRE(id >= 0 && id < in.n_vocab);
    }
    int32_t one;
    for (int val = 0; val < 2; val++) {
        const uint64_t len = val ? in.n_val : in.n_train;
        REQUIRE(smoe_data_read(d, val, len, 0, &one) == SMOE_OK);
        REQUIRE(smoe_data_read(d, val, len, 1, &one) == SMOE_ERR_RANGE);
        if (len) REQUIRE(smoe_data_read(d, val, len - 1, 1, &one) == SMOE_OK && one < in.n_vocab);
        static const int32_t T[] = {1, 7, 64};
        for (int k = 0; k < 3; k++) {
            int32_t x[3 * 64], y[3 * 64];
            st = smoe_data_batch(d, val, (uint64_t)size, (uint64_t)k, 3, T[k], x, y);
            REQUIRE(st == (len >= (uint64_t)T[k] + 1 ? SMOE_OK : SMOE_ERR_RANGE));
            for (int i = 0; st == SMOE_OK && i < 3 * T[k]; i++)
                REQUIRE(x[i] >= 0 && x[i] < in.n_vocab && y[i] >= 0 && y[i] < in.n_vocab);
        }
    }
    smoe_data_free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    check(data, size);
    /* again with the checksum made right, so mutations reach the checks behind it */
    if (size >= SMOE_DATA_HEADER_BYTES) {
        uint8_t *copy = malloc(size);
        REQUIRE(copy);
        memcpy(copy, data, size);
        uint64_t h = smoe_fnv1a(SMOE_FNV1A_INIT, copy + SMOE_DATA_HEADER_BYTES, size - SMOE_DATA_HEADER_BYTES);
        for (int i = 0; i < 8; i++) copy[40 + i] = (uint8_t)(h >> (8 * i));
        check(copy, size);
        free(copy);
    }
    return 0;
}
