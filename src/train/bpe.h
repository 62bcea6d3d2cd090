/*
 * bpe.h - the tokenizer trainer behind smoe_tokenizer_train (include/smoe.h), with the
 * in-memory result exposed for tests: SentencePiece-style BPE with byte fallback whose
 * vocabulary smoe's and llama.cpp's "llama" (SPM) tokenizers load. Private to the library.
 *
 * The algorithm, its rules and tie-breaks are described in bpe.c and docs/training.md.
 * Nothing here prints; every fallible call returns smoe_status with smoe_err's message.
 */
#ifndef SMOE_TRAIN_BPE_H
#define SMOE_TRAIN_BPE_H

#include "smoe.h"

#include <stddef.h>
#include <stdint.h>

/* Fixed head of every trained vocabulary: <unk>, <s>, </s>, then <0x00>..<0xFF>. */
#define SMOE_BPE_UNK 0
#define SMOE_BPE_BOS 1
#define SMOE_BPE_EOS 2
#define SMOE_BPE_BYTE0 3       /* id of <0x00>; byte b is SMOE_BPE_BYTE0 + b */
#define SMOE_BPE_FIRST_PIECE 259 /* first merged piece (rank 0) */

/* Longest pre-tokenized chunk (bytes) that training counts; longer ones are skipped
 * (their characters still count for the character coverage). */
#define SMOE_BPE_MAX_CHUNK_BYTES 4096

typedef struct smoe_bpe smoe_bpe;

/* Train on text files (one sentence per line; "-" reads stdin). */
smoe_status smoe_bpe_train_files(const smoe_tokenizer_train_params *p, const char *const *paths, int n_paths,
                                 smoe_bpe **out);
/* Train on len bytes of text held in memory (lines separated by '\n'). */
smoe_status smoe_bpe_train_text(const smoe_tokenizer_train_params *p, const char *text, size_t len, smoe_bpe **out);
void smoe_bpe_free(smoe_bpe *b);

const smoe_tokenizer_train_stats *smoe_bpe_stats(const smoe_bpe *b);
int32_t smoe_bpe_n_vocab(const smoe_bpe *b);
/* Vocabulary entry id: its text (not NUL-terminated; *len bytes), score and
 * tokenizer.ggml.token_type. NULL for an id out of range. */
const char *smoe_bpe_piece(const smoe_bpe *b, int32_t id, size_t *len, float *score, int32_t *type);
/* How many adjacent occurrences the merge of the given rank had when it was chosen
 * (-1 for a rank out of range). */
int64_t smoe_bpe_merge_count(const smoe_bpe *b, int32_t rank);

/* Write the vocabulary as a GGUF file holding only metadata (atomically). */
smoe_status smoe_bpe_write(const smoe_bpe *b, const char *path, const char *name);

/* The token ids the trainer's final state holds for one line of training text (no
 * trailing newline): each pre-tokenized chunk as it was segmented when training ended,
 * rare characters as byte tokens. SMOE_ERR_NOT_FOUND when a chunk of the line was not in
 * the training text. *n_out gets the count; more than cap fails with SMOE_ERR_RANGE. */
smoe_status smoe_bpe_segment_line(const smoe_bpe *b, const char *line, size_t len, int32_t *ids, int64_t cap,
                                  int64_t *n_out);

#endif /* SMOE_TRAIN_BPE_H */
