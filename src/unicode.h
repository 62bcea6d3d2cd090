/*
 * unicode.h - the small amount of Unicode the tokenizer needs: strict UTF-8 decoding and
 * validation, and a code point's class for pre-tokenizer regexes (letter \p{L}, number
 * \p{N}, White_Space \s, or other). Private to the library.
 *
 * Not here: normalisation (NFC/NFKC), case mapping, grapheme or word segmentation, or any
 * category finer than L / N / whitespace.
 */
#ifndef SMOE_UNICODE_H
#define SMOE_UNICODE_H

#include <stddef.h>
#include <stdint.h>

/* Code point returned for a byte that does not start a valid UTF-8 sequence. */
#define SMOE_UTF8_INVALID 0xFFFFFFFFu

/* Decode one character at s (n > 0 bytes available). Returns the bytes it spans (1..4)
 * and the code point in *cp. A malformed, overlong, surrogate or truncated sequence
 * yields length 1 and SMOE_UTF8_INVALID, so every input byte belongs to exactly one
 * "character" and byte ranges always round-trip. */
int smoe_utf8_decode(const uint8_t *s, size_t n, uint32_t *cp);

/* Classify the start of s (n > 0 bytes) for a streaming decoder:
 *   > 0  a complete valid sequence of that many bytes;
 *   = 0  a valid but incomplete prefix (all n bytes so far are fine, more are needed);
 *   < 0  invalid: the first -r bytes are the maximal ill-formed subpart to replace with
 *        one U+FFFD (Unicode's "maximal subpart" practice). */
int smoe_utf8_check(const uint8_t *s, size_t n);

/* Encode cp (<= 0x10FFFF) into out (room for 4); returns the byte count. */
int smoe_utf8_encode(uint32_t cp, char *out);

enum smoe_ucls {
    SMOE_UCLS_OTHER = 0, /* punctuation, symbols, marks, controls, unassigned, invalid */
    SMOE_UCLS_LETTER = 1,
    SMOE_UCLS_NUMBER = 2,
    SMOE_UCLS_SPACE = 3, /* the Unicode White_Space property */
};
enum smoe_ucls smoe_ucls_of(uint32_t cp);

/* The Unicode version of the category table (e.g. "14.0.0"). */
const char *smoe_unicode_version(void);

#endif /* SMOE_UNICODE_H */
