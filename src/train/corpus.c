/*
 * corpus.c - see corpus.h.
 */
#include "train/corpus.h"
#include "smoe_internal.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

static int is_stdin(const char *path) { return strcmp(path, "-") == 0; }

int64_t smoe_corpus_bytes(const char *const *paths, int n_paths) {
    int64_t total = 0;
    for (int i = 0; i < n_paths; i++) {
        struct stat sb;
        if (!is_stdin(paths[i]) && stat(paths[i], &sb) == 0 && S_ISREG(sb.st_mode)) total += (int64_t)sb.st_size;
    }
    return total;
}

smoe_status smoe_corpus_open(const char *path, FILE **f) {
    *f = is_stdin(path) ? stdin : fopen(path, "rb");
    if (!*f) return smoe_err(SMOE_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    return SMOE_OK;
}

smoe_status smoe_corpus_close(const char *path, FILE *f) {
    smoe_status st = SMOE_OK;
    if (ferror(f)) st = smoe_err(SMOE_ERR_IO, "cannot read '%s': %s", path, strerror(errno ? errno : EIO));
    if (!is_stdin(path)) fclose(f);
    return st;
}
