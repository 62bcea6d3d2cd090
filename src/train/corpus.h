/*
 * corpus.h - opening the text files of a corpus, shared by tokenizer training (bpe.c)
 * and token-file preparation (data.c): "-" is stdin, errors carry the file name.
 */
#ifndef SMOE_CORPUS_H
#define SMOE_CORPUS_H

#include "smoe.h"

#include <stdint.h>
#include <stdio.h>

/* Total bytes of the regular files among paths ("-" and others count 0): for progress. */
int64_t smoe_corpus_bytes(const char *const *paths, int n_paths);
/* Open path for reading ("-" = stdin). */
smoe_status smoe_corpus_open(const char *path, FILE **f);
/* Close what smoe_corpus_open opened (stdin stays open); SMOE_ERR_IO if reading failed. */
smoe_status smoe_corpus_close(const char *path, FILE *f);

#endif /* SMOE_CORPUS_H */
