/*
 * unicode.c - strict UTF-8 decoding/validation and code point classes (letter, number,
 * White_Space, other) for the tokenizer's pre-tokenizers.
 *
 * Letters and numbers come from the generated table src/unicode_tables.h (see
 * tools/gen_unicode.py for its Unicode version). White_Space is a short fixed list copied
 * from the Unicode property definition (PropList.txt), which has not changed since
 * Unicode 6. Does not do normalisation, case mapping or anything finer than these classes.
 */
#include "unicode.h"

#include "unicode_tables.h"

int smoe_utf8_check(const uint8_t *s, size_t n) {
    uint8_t b = s[0];
    if (b < 0x80) return 1;
    int need;
    uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (b >= 0xC2 && b <= 0xDF) {
        need = 1;
    } else if (b >= 0xE0 && b <= 0xEF) {
        need = 2;
        if (b == 0xE0) lo = 0xA0;      /* no overlongs */
        else if (b == 0xED) hi = 0x9F; /* no UTF-16 surrogates */
    } else if (b >= 0xF0 && b <= 0xF4) {
        need = 3;
        if (b == 0xF0) lo = 0x90;      /* no overlongs */
        else if (b == 0xF4) hi = 0x8F; /* nothing above U+10FFFF */
    } else {
        return -1; /* stray continuation byte, C0/C1 overlong lead, or F5..FF */
    }
    for (int i = 1; i <= need; i++) {
        if ((size_t)i >= n) return 0;
        uint8_t c = s[i];
        if (c < lo || c > hi) return -i;
        lo = 0x80;
        hi = 0xBF;
    }
    return need + 1;
}

int smoe_utf8_decode(const uint8_t *s, size_t n, uint32_t *cp) {
    int r = smoe_utf8_check(s, n);
    if (r <= 0) {
        *cp = SMOE_UTF8_INVALID;
        return 1;
    }
    uint32_t v;
    switch (r) {
    case 1: v = s[0]; break;
    case 2: v = ((uint32_t)(s[0] & 0x1F) << 6) | (s[1] & 0x3F); break;
    case 3: v = ((uint32_t)(s[0] & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F); break;
    default:
        v = ((uint32_t)(s[0] & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
            ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
        break;
    }
    *cp = v;
    return r;
}

int smoe_utf8_encode(uint32_t cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static int is_white_space(uint32_t cp) {
    if (cp <= 0x20) return cp == 0x20 || (cp >= 0x09 && cp <= 0x0D);
    if (cp < 0x85) return 0;
    switch (cp) {
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F:
    case 0x3000:
        return 1;
    default:
        return cp >= 0x2000 && cp <= 0x200A;
    }
}

enum smoe_ucls smoe_ucls_of(uint32_t cp) {
    if (cp < 0x80) { /* ASCII fast path: most text is mostly ASCII */
        if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return SMOE_UCLS_LETTER;
        if (cp >= '0' && cp <= '9') return SMOE_UCLS_NUMBER;
        return is_white_space(cp) ? SMOE_UCLS_SPACE : SMOE_UCLS_OTHER;
    }
    if (cp == SMOE_UTF8_INVALID) return SMOE_UCLS_OTHER;
    if (is_white_space(cp)) return SMOE_UCLS_SPACE;
    size_t lo = 0, hi = sizeof smoe_ucat_ranges / sizeof smoe_ucat_ranges[0];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp < smoe_ucat_ranges[mid].lo) hi = mid;
        else if (cp > smoe_ucat_ranges[mid].hi) lo = mid + 1;
        else return (enum smoe_ucls)smoe_ucat_ranges[mid].cls;
    }
    return SMOE_UCLS_OTHER;
}

const char *smoe_unicode_version(void) { return SMOE_UNICODE_VERSION; }
