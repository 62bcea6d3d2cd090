/*
 * vexp_avx2.c - e^x, 8 lanes at a time (see ../vexp.h); the tail goes through the same
 * arithmetic on a padded vector, so every element gets the same bits as the scalar twin.
 */
#include "cpu/vexp.h"
#include "cpu/x86/vexp_avx2.h"

#include <immintrin.h>
#include <string.h>

void smoe_vexp_avx2(float *y, const float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, smoe_exp8_avx2(_mm256_loadu_ps(x + i)));
    if (i < n) {
        float buf[8] = {0};
        memcpy(buf, x + i, sizeof(float) * (size_t)(n - i));
        _mm256_storeu_ps(buf, smoe_exp8_avx2(_mm256_loadu_ps(buf)));
        memcpy(y + i, buf, sizeof(float) * (size_t)(n - i));
    }
}
