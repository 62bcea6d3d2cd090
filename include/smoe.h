/*
 * smoe.h - the one public header of smoe, a C engine for sparse Mixture-of-Experts
 * language models (Mixtral 8x7B and its kind).
 *
 * Overview
 *   smoe_gguf       a GGUF v2/v3 file, read through mmap with zero copies, bounds-checked.
 *   smoe_gguf_writer builds and atomically writes a GGUF v3 file.
 *   smoe_model      weights + hyper-parameters of a model (llama architecture, dense or MoE).
 *   smoe_ctx        the run state of one sequence: KV cache, activations, position.
 *   smoe_tokenizer  SentencePiece-style BPE ("llama") and byte-level BPE ("gpt2") from GGUF.
 *   smoe_sampler    greedy / temperature / top-k / top-p / min-p / repetition penalty.
 *
 * Conventions
 *   - Every fallible call returns enum smoe_status; on failure smoe_last_error() holds a
 *     human-readable message (thread-local) naming what went wrong.
 *   - The library never prints and never exits.
 *   - Every constructor has a matching _free that accepts NULL.
 *   - Sizes in bytes are size_t, counts and offsets int64_t/uint64_t.
 *   - Shapes use ggml order when they describe GGUF tensors: ne[0] is the contiguous
 *     (innermost) dimension, so a weight stored row-major as (out, in) has ne = {in, out}.
 */
#ifndef SMOE_H
#define SMOE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SMOE_VERSION_STRING "0.1.0"

/* ---------------------------------------------------------------- status and errors */

typedef enum smoe_status {
    SMOE_OK = 0,
    SMOE_ERR_INVALID_ARG,  /* caller passed something that cannot be right */
    SMOE_ERR_IO,           /* open/read/write/mmap failed (errno text in the message) */
    SMOE_ERR_FORMAT,       /* a file is corrupt, truncated or inconsistent */
    SMOE_ERR_UNSUPPORTED,  /* valid input that smoe does not handle (yet) */
    SMOE_ERR_NOMEM,        /* an allocation failed */
    SMOE_ERR_RANGE,        /* an index or token id is out of range, or a buffer too small */
    SMOE_ERR_NOT_FOUND,    /* a named key or tensor does not exist */
} smoe_status;

/* Message of the last failure in this thread ("" if none). Valid until the next call. */
const char *smoe_last_error(void);
/* Short fixed name of a status ("ok", "format error", ...). */
const char *smoe_status_name(smoe_status st);

/* ---------------------------------------------------------------- tensor types */

/* Values are the ggml/GGUF type ids, so they can be stored in files as they are. */
typedef enum smoe_dtype {
    SMOE_DTYPE_F32 = 0,
    SMOE_DTYPE_F16 = 1,
    SMOE_DTYPE_Q4_0 = 2,
    SMOE_DTYPE_Q4_1 = 3,
    SMOE_DTYPE_Q5_0 = 6,
    SMOE_DTYPE_Q5_1 = 7,
    SMOE_DTYPE_Q8_0 = 8,
    SMOE_DTYPE_Q8_1 = 9,
    SMOE_DTYPE_Q2_K = 10,
    SMOE_DTYPE_Q3_K = 11,
    SMOE_DTYPE_Q4_K = 12,
    SMOE_DTYPE_Q5_K = 13,
    SMOE_DTYPE_Q6_K = 14,
    SMOE_DTYPE_Q8_K = 15,
    SMOE_DTYPE_I8 = 24,
    SMOE_DTYPE_I16 = 25,
    SMOE_DTYPE_I32 = 26,
    SMOE_DTYPE_I64 = 27,
    SMOE_DTYPE_F64 = 28,
    SMOE_DTYPE_BF16 = 30,
    SMOE_DTYPE_COUNT = 64 /* upper bound of the id space we recognise */
} smoe_dtype;

/* Name ("Q4_K"), or NULL for an id smoe does not know. */
const char *smoe_dtype_name(int dtype);
/* Values per block and bytes per block; 0 for an unknown id. */
int64_t smoe_dtype_block_size(int dtype);
size_t smoe_dtype_block_bytes(int dtype);
/* True when smoe can dequantize (and so compute with) this type. */
bool smoe_dtype_can_dequantize(int dtype);
/* Dequantize n values (n a multiple of the block size) from src to f32. */
smoe_status smoe_dequantize(int dtype, const void *src, float *dst, int64_t n);

/* ---------------------------------------------------------------- GGUF reader */

typedef enum smoe_gguf_type {
    SMOE_GGUF_UINT8 = 0,
    SMOE_GGUF_INT8 = 1,
    SMOE_GGUF_UINT16 = 2,
    SMOE_GGUF_INT16 = 3,
    SMOE_GGUF_UINT32 = 4,
    SMOE_GGUF_INT32 = 5,
    SMOE_GGUF_FLOAT32 = 6,
    SMOE_GGUF_BOOL = 7,
    SMOE_GGUF_STRING = 8,
    SMOE_GGUF_ARRAY = 9,
    SMOE_GGUF_UINT64 = 10,
    SMOE_GGUF_INT64 = 11,
    SMOE_GGUF_FLOAT64 = 12,
    SMOE_GGUF_TYPE_COUNT
} smoe_gguf_type;

typedef struct smoe_gguf smoe_gguf;

/* Open and validate a GGUF file (mmap, read-only). Every offset, size and count is
 * checked; a corrupt file fails with SMOE_ERR_FORMAT and a message naming the problem. */
smoe_status smoe_gguf_open(const char *path, smoe_gguf **out);
/* Same over a caller-owned buffer that must outlive the handle (tests, fuzzing). */
smoe_status smoe_gguf_open_memory(const void *data, size_t size, smoe_gguf **out);
void smoe_gguf_free(smoe_gguf *g);

uint32_t smoe_gguf_version(const smoe_gguf *g);
size_t smoe_gguf_alignment(const smoe_gguf *g);
size_t smoe_gguf_file_size(const smoe_gguf *g);

/* Metadata: keys are indexed 0..n_kv-1. Keys are NUL-terminated. */
int64_t smoe_gguf_n_kv(const smoe_gguf *g);
int64_t smoe_gguf_find_key(const smoe_gguf *g, const char *key); /* -1 if absent */
const char *smoe_gguf_key(const smoe_gguf *g, int64_t i);
smoe_gguf_type smoe_gguf_kv_type(const smoe_gguf *g, int64_t i);
/* Arrays: element type, count, and element access. */
smoe_gguf_type smoe_gguf_arr_type(const smoe_gguf *g, int64_t i);
uint64_t smoe_gguf_arr_n(const smoe_gguf *g, int64_t i);
/* Raw little-endian element data of a numeric array (may be unaligned); NULL for strings. */
const void *smoe_gguf_arr_data(const smoe_gguf *g, int64_t i);
/* Element j of a string array: pointer into the file (not NUL-terminated) and its length. */
const char *smoe_gguf_arr_str(const smoe_gguf *g, int64_t i, uint64_t j, uint64_t *len);
/* Scalar values. Integer getters accept any integer type whose value fits. */
smoe_status smoe_gguf_get_u32(const smoe_gguf *g, const char *key, uint32_t *out);
smoe_status smoe_gguf_get_i64(const smoe_gguf *g, const char *key, int64_t *out);
smoe_status smoe_gguf_get_f32(const smoe_gguf *g, const char *key, float *out);
smoe_status smoe_gguf_get_bool(const smoe_gguf *g, const char *key, bool *out);
/* String value: pointer into the file (not NUL-terminated) and length. */
smoe_status smoe_gguf_get_str(const smoe_gguf *g, const char *key, const char **s, uint64_t *len);
/* Scalar value of key i formatted for display (arrays: type and count, first items). */
void smoe_gguf_kv_format(const smoe_gguf *g, int64_t i, char *buf, size_t cap);

/* Tensor directory. */
#define SMOE_MAX_DIMS 4
int64_t smoe_gguf_n_tensors(const smoe_gguf *g);
int64_t smoe_gguf_find_tensor(const smoe_gguf *g, const char *name); /* -1 if absent */
const char *smoe_gguf_tensor_name(const smoe_gguf *g, int64_t i);
int smoe_gguf_tensor_dtype(const smoe_gguf *g, int64_t i);
int smoe_gguf_tensor_ndim(const smoe_gguf *g, int64_t i);
int64_t smoe_gguf_tensor_ne(const smoe_gguf *g, int64_t i, int dim); /* 1 past ndim */
uint64_t smoe_gguf_tensor_offset(const smoe_gguf *g, int64_t i);  /* from the data section */
size_t smoe_gguf_tensor_nbytes(const smoe_gguf *g, int64_t i);
const void *smoe_gguf_tensor_data(const smoe_gguf *g, int64_t i);

/* ---------------------------------------------------------------- GGUF writer */

typedef struct smoe_gguf_writer smoe_gguf_writer;

smoe_status smoe_gguf_writer_init(smoe_gguf_writer **out);
void smoe_gguf_writer_free(smoe_gguf_writer *w);
/* Setting a key that exists replaces its value (keeping its position). */
smoe_status smoe_gguf_writer_set_u32(smoe_gguf_writer *w, const char *key, uint32_t v);
smoe_status smoe_gguf_writer_set_i32(smoe_gguf_writer *w, const char *key, int32_t v);
smoe_status smoe_gguf_writer_set_u64(smoe_gguf_writer *w, const char *key, uint64_t v);
smoe_status smoe_gguf_writer_set_f32(smoe_gguf_writer *w, const char *key, float v);
smoe_status smoe_gguf_writer_set_bool(smoe_gguf_writer *w, const char *key, bool v);
smoe_status smoe_gguf_writer_set_str(smoe_gguf_writer *w, const char *key, const char *s);
/* Numeric array of n elements of elem_type, data in little-endian element layout. */
smoe_status smoe_gguf_writer_set_arr(smoe_gguf_writer *w, const char *key, smoe_gguf_type elem_type,
                                     const void *data, uint64_t n);
smoe_status smoe_gguf_writer_set_arr_str(smoe_gguf_writer *w, const char *key, const char *const *strs,
                                         const uint64_t *lens, uint64_t n);
/* Copy key i of a reader (any type, arrays included). */
smoe_status smoe_gguf_writer_copy_kv(smoe_gguf_writer *w, const smoe_gguf *g, int64_t i);
/* Add a tensor; the data is copied. ne in ggml order, ndim 1..4. */
smoe_status smoe_gguf_writer_add_tensor(smoe_gguf_writer *w, const char *name, int dtype, int ndim,
                                        const int64_t *ne, const void *data, size_t nbytes);
/* Add a tensor whose bytes are produced at write time: fill(user, index, buf, nbytes) is
 * called once, in order, with a buffer of nbytes to fill (index = this tensor's position
 * among the writer's tensors). For outputs larger than memory (quantizing, synthesising). */
typedef smoe_status (*smoe_tensor_fill_fn)(void *user, int64_t index, void *buf, size_t nbytes);
smoe_status smoe_gguf_writer_add_tensor_fill(smoe_gguf_writer *w, const char *name, int dtype, int ndim,
                                             const int64_t *ne, smoe_tensor_fill_fn fill, void *user);
/* Write the file atomically (temporary file, fsync, rename). Alignment from
 * "general.alignment" if set, else 32. */
smoe_status smoe_gguf_writer_write(smoe_gguf_writer *w, const char *path);

/* ---------------------------------------------------------------- model */

typedef struct smoe_model smoe_model;

typedef enum smoe_router_kind {
    SMOE_ROUTER_TOPK_SOFTMAX = 0,       /* Mixtral: top-k logits, softmax over the k */
    SMOE_ROUTER_SOFTMAX_TOPK = 1,       /* softmax over all, top-k, no renormalisation */
    SMOE_ROUTER_SOFTMAX_TOPK_NORM = 2,  /* softmax over all, top-k, renormalised */
    SMOE_ROUTER_SIGMOID_BIAS = 3,       /* DeepSeek-V3: sigmoid scores, bias for selection */
    SMOE_ROUTER_ATTENTION = 4,          /* Yuan 2.0-M32: router "attention" over the experts, then top-k softmax */
    SMOE_ROUTER_KIND_COUNT
} smoe_router_kind;

typedef struct smoe_model_info {
    char arch[32];          /* general.architecture */
    int32_t n_vocab;        /* V */
    int32_t n_embd;         /* D */
    int32_t n_layer;
    int32_t n_head;         /* H */
    int32_t n_head_kv;      /* Hkv */
    int32_t head_dim;       /* Dh */
    int32_t n_ff;           /* F: hidden size of the dense FFN or of each expert */
    int32_t n_expert;       /* E (0 = dense) */
    int32_t n_expert_used;  /* K */
    int32_t n_ctx_train;
    int32_t rope_dim;
    float rope_freq_base;
    float norm_eps;
    smoe_router_kind router;
    int64_t n_params;       /* all parameters */
    int64_t n_params_active;/* parameters used per token (K of E experts) */
    size_t weight_bytes;    /* bytes of tensor data */
} smoe_model_info;

typedef struct smoe_model_params {
    bool vocab_only;        /* read metadata and tokenizer only, no weights (default false) */
} smoe_model_params;

smoe_model_params smoe_model_default_params(void);
smoe_status smoe_model_load(const char *path, const smoe_model_params *params, smoe_model **out);
void smoe_model_free(smoe_model *m);
const smoe_model_info *smoe_model_get_info(const smoe_model *m);
/* The GGUF file the model was loaded from (owned by the model). */
const smoe_gguf *smoe_model_gguf(const smoe_model *m);

/* ---------------------------------------------------------------- run context */

typedef struct smoe_ctx smoe_ctx;

typedef struct smoe_ctx_params {
    int32_t n_ctx;      /* KV cache length in tokens; 0 = min(n_ctx_train, 4096) */
    int32_t n_batch;    /* most tokens per forward step; longer inputs are split */
    int32_t n_threads;  /* worker threads, >= 1 */
    bool reference;     /* plain reference kernels: dequantize weights, f32 math (slow; for
                         * validation). Default false: SIMD kernels on quantized activations,
                         * as llama.cpp computes. */
} smoe_ctx_params;

smoe_ctx_params smoe_ctx_default_params(void);
/* Physical cores this process may run on (hyper-threads counted once), at least 1: the
 * default thread count, since the matmul kernels saturate a core's vector units. */
int32_t smoe_default_threads(void);
smoe_status smoe_ctx_init(const smoe_model *m, const smoe_ctx_params *params, smoe_ctx **out);
void smoe_ctx_free(smoe_ctx *c);
/* Tokens already in the KV cache (the position of the next token). */
int32_t smoe_ctx_n_past(const smoe_ctx *c);
int32_t smoe_ctx_n_ctx(const smoe_ctx *c);
/* Forget the sequence (position back to 0). */
void smoe_ctx_reset(smoe_ctx *c);

/* Run n tokens at positions n_past.. n_past+n-1 and append them to the KV cache.
 * logits: NULL, or room for n_out * n_vocab floats where n_out = all_logits ? n : 1;
 * with all_logits false only the last position's logits are written.
 * Token ids outside [0, n_vocab) and a full context fail with SMOE_ERR_RANGE
 * and leave the context unchanged. */
smoe_status smoe_ctx_decode(smoe_ctx *c, const int32_t *ids, int32_t n, float *logits, bool all_logits);

/* Several sequences in one forward pass (continuous batching): ctxs[i] gets the next
 * n_tok[i] tokens of ids (the sequences' tokens one after another) at its own positions,
 * and row i of logits ([n_seq][n_vocab], or NULL) gets the logits of its last token. The
 * tokens of all sequences share each matmul and each expert's weights, so this is faster
 * than one smoe_ctx_decode per sequence, and gives the same logits up to rounding (a
 * matmul over more rows may take the GEMM path; tests/test_multi.c).
 * The pass runs on the buffers and threads of `runner`, which may be one of ctxs or not:
 * every context must use runner's model and be no longer than runner, none may appear
 * twice, and the tokens must fit runner's n_batch. A bad argument, an id out of range or
 * a full context fails before anything runs, and no context changes. */
smoe_status smoe_ctx_decode_multi(smoe_ctx *runner, smoe_ctx *const *ctxs, int32_t n_seq, const int32_t *ids,
                                  const int32_t *n_tok, float *logits);

/* Routing observer: called for every MoE layer of every forward step with the chosen
 * experts (ids[t*k + j], highest first) and their gate weights, for the n tokens at
 * positions pos0..pos0+n-1. The pointers are valid during the call only. */
typedef void (*smoe_route_fn)(void *user, int32_t layer, int32_t pos0, int32_t n, int32_t k,
                              const int32_t *ids, const float *weights, const float *router_logits,
                              int32_t n_expert);
void smoe_ctx_set_route_observer(smoe_ctx *c, smoe_route_fn fn, void *user);

/* ---------------------------------------------------------------- tokenizer */

typedef struct smoe_tokenizer smoe_tokenizer;

typedef enum smoe_tokenizer_kind {
    SMOE_TOKENIZER_SPM = 0,   /* tokenizer.ggml.model = "llama" */
    SMOE_TOKENIZER_BPE = 1,   /* tokenizer.ggml.model = "gpt2" */
} smoe_tokenizer_kind;

/* Build from the tokenizer.ggml.* metadata of a GGUF file (copies what it needs). */
smoe_status smoe_tokenizer_from_gguf(const smoe_gguf *g, smoe_tokenizer **out);
void smoe_tokenizer_free(smoe_tokenizer *t);
smoe_tokenizer_kind smoe_tokenizer_get_kind(const smoe_tokenizer *t);
int32_t smoe_tokenizer_n_vocab(const smoe_tokenizer *t);
int32_t smoe_tokenizer_bos(const smoe_tokenizer *t);  /* -1 if none */
int32_t smoe_tokenizer_eos(const smoe_tokenizer *t);  /* -1 if none */
bool smoe_tokenizer_add_bos(const smoe_tokenizer *t); /* tokenizer.ggml.add_bos_token */

/* Encode len bytes of UTF-8 text. Special-token text is not parsed. With add_bos the BOS
 * id is put first. Writes at most cap ids; *n_out gets the full count, and when it is
 * larger than cap the call fails with SMOE_ERR_RANGE (call again with more room). */
smoe_status smoe_tokenizer_encode(const smoe_tokenizer *t, const char *text, size_t len, bool add_bos,
                                  int32_t *ids, int64_t cap, int64_t *n_out);

/* The bytes token id stands for, as it would appear in decoded text (byte-fallback
 * tokens give their byte, SentencePiece's U+2581 becomes a space, byte-level BPE is
 * mapped back to bytes; control tokens give ""). Returns the byte count, or -1 for an
 * id out of range. Writes at most cap bytes. */
int64_t smoe_tokenizer_token_bytes(const smoe_tokenizer *t, int32_t id, char *buf, size_t cap);
/* Raw vocabulary text of a token (as stored in the GGUF), NUL-terminated. NULL if out of range. */
const char *smoe_tokenizer_token_text(const smoe_tokenizer *t, int32_t id);

/* Streaming detokenizer: feed ids one at a time; it returns only complete UTF-8
 * sequences and holds back a partial one until its remaining bytes arrive. The
 * leading space of the first piece after BOS is dropped for SentencePiece, as
 * SentencePiece decoding does. */
typedef struct smoe_detok {
    const smoe_tokenizer *tok;
    char pending[8];        /* bytes of an incomplete UTF-8 sequence */
    int32_t n_pending;
    bool at_start;          /* nothing emitted yet */
} smoe_detok;
void smoe_detok_init(smoe_detok *d, const smoe_tokenizer *t);
/* Appends the text that is complete after id to buf (NUL-terminated); returns bytes
 * written (excluding NUL), or -1 on a bad id or too small a buffer (the state is then
 * unchanged, so the call can be repeated with more room). The worst case is about
 * 3 x (longest token + 3) + 1 bytes (invalid bytes become U+FFFD); 1024 fits every
 * common vocabulary. */
int64_t smoe_detok_push(smoe_detok *d, int32_t id, char *buf, size_t cap);
/* Flushes held-back bytes (invalid UTF-8 comes out as U+FFFD). */
int64_t smoe_detok_flush(smoe_detok *d, char *buf, size_t cap);
/* Decode a whole id sequence into buf; returns bytes (excluding NUL), -1 on error or too small. */
int64_t smoe_tokenizer_decode(const smoe_tokenizer *t, const int32_t *ids, int64_t n, char *buf, size_t cap);

/* ---------------------------------------------------------------- sampler */

typedef struct smoe_sampler smoe_sampler;

typedef struct smoe_sampler_params {
    float temperature;      /* <= 0: greedy (argmax; ties go to the lowest id) */
    int32_t top_k;          /* <= 0: off */
    float top_p;            /* >= 1: off */
    float min_p;            /* <= 0: off */
    float repeat_penalty;   /* 1: off; CTRL-style: logit/p if > 0 else logit*p */
    int32_t repeat_last_n;  /* how many recent tokens the penalty looks at */
    uint64_t seed;
} smoe_sampler_params;

smoe_sampler_params smoe_sampler_default_params(void);
smoe_status smoe_sampler_init(const smoe_sampler_params *p, int32_t n_vocab, smoe_sampler **out);
void smoe_sampler_free(smoe_sampler *s);
/* Pick a token from logits[n_vocab] (not modified). Order: repetition penalty,
 * temperature, top-k, top-p, min-p, then a draw from the seeded RNG. */
smoe_status smoe_sampler_sample(smoe_sampler *s, const float *logits, int32_t *out_id);
/* Tell the sampler a token was emitted (for the repetition penalty). */
void smoe_sampler_accept(smoe_sampler *s, int32_t id);
void smoe_sampler_reset(smoe_sampler *s);

/* ---------------------------------------------------------------- synthetic models */

/* Random-weight models in llama.cpp's Mixtral layout, for benchmarks and tests: the
 * same tensors, shapes and weight types a converted + quantized Mixtral has, filled with
 * seeded random blocks whose scales keep activations O(1). Not a trained model. */

/* Progress of smoe_synth_model: called after each tensor is produced (before it is
 * written), with the tensor's name, and byte counts of tensor data. */
typedef void (*smoe_synth_progress_fn)(void *user, int64_t tensor, int64_t n_tensors, uint64_t bytes_done,
                                       uint64_t bytes_total, const char *name);

typedef struct smoe_synth_params {
    int32_t n_embd;         /* D */
    int32_t n_layer;
    int32_t n_head;         /* H; must divide n_embd, head size even */
    int32_t n_head_kv;      /* Hkv; must divide n_head */
    int32_t n_ff;           /* F: hidden size of each expert (or of the dense FFN) */
    int32_t n_expert;       /* E; 0 = dense FFN, else >= 2 */
    int32_t n_expert_used;  /* K, 1..E */
    int32_t n_ctx;          /* llama.context_length */
    float rope_freq_base;
    float norm_eps;
    const char *type;       /* "F32" "F16" "BF16" "Q8_0" "Q4_0" "Q4_1" "Q5_0" "Q5_1" "Q2_K" "Q3_K"
                               "Q4_K" "Q5_K" "Q6_K" (every matrix that type, like llama-quantize
                               --pure) or the mixes "Q3_K_M" "Q4_K_M" "Q5_K_M" (llama.cpp's
                               per-tensor choice); see smoe_synth_tensor_type */
    uint64_t seed;          /* same params + seed -> identical file bytes */
    const char *vocab_path; /* GGUF whose tokenizer.ggml.* keys are copied (required) */
    int32_t vocab_n;        /* 0 = the whole vocabulary; N = only its first N tokens (tests) */
    const char *name;       /* general.name; NULL = "smoe-synth" */
    bool check_space;       /* fail with SMOE_ERR_IO before writing if the disk is short */
    smoe_synth_progress_fn progress; /* NULL = none */
    void *progress_user;
} smoe_synth_params;

/* Defaults: the bench-m preset, type Q4_K_M, seed 0, check_space on, no vocabulary path. */
smoe_synth_params smoe_synth_default_params(void);
/* Set the dimensions of a named preset, keeping type/seed/vocabulary/callbacks:
 *   bench-m       D 1024, 8 layers, 16/4 heads, F 3584, 8 experts top-2, ctx 4096, rope 1e6
 *   mixtral-8x7b  D 4096, 32 layers, 32/8 heads, F 14336, 8 experts top-2, ctx 32768, rope 1e6
 * SMOE_ERR_NOT_FOUND for another name. */
smoe_status smoe_synth_preset(const char *name, smoe_synth_params *p);
/* Name of preset i (0..), NULL past the last. */
const char *smoe_synth_preset_name(int i);
/* Name of weight type / mix i (0..), NULL past the last. */
const char *smoe_synth_type_name(int i);
/* The dtype the tensor `name` (e.g. "blk.3.ffn_down_exps.weight", ne0 = its row length)
 * gets under p->type, or -1 with an error for bad params. Norms and routers are F32. */
int smoe_synth_tensor_type(const smoe_synth_params *p, const char *name, int64_t ne0);
/* Validate p and compute the bytes of tensor data the file will hold (the file is that
 * plus a header of about the vocabulary's size). */
smoe_status smoe_synth_size(const smoe_synth_params *p, uint64_t *data_bytes);
/* Write the model to path (atomically; tensors are produced while writing, so memory use
 * is one tensor, not the file). */
smoe_status smoe_synth_model(const smoe_synth_params *p, const char *path);

/* ---------------------------------------------------------------- quantize */

/* Model file types ("mixes"): one default weight type plus llama.cpp's per-tensor rules
 * (output Q6_K, more bits for attn_v/attn_output/some ffn_down layers, attn_k/attn_v
 * Q8_0 with 8 experts). Values are llama.cpp's LLAMA_FTYPE numbers, stored as
 * general.file_type. */
typedef enum smoe_ftype {
    SMOE_FTYPE_F32 = 0,
    SMOE_FTYPE_F16 = 1,
    SMOE_FTYPE_Q4_0 = 2,
    SMOE_FTYPE_Q4_1 = 3,
    SMOE_FTYPE_Q8_0 = 7,
    SMOE_FTYPE_Q5_0 = 8,
    SMOE_FTYPE_Q5_1 = 9,
    SMOE_FTYPE_Q2_K = 10,
    SMOE_FTYPE_Q3_K_S = 11,
    SMOE_FTYPE_Q3_K_M = 12,
    SMOE_FTYPE_Q3_K_L = 13,
    SMOE_FTYPE_Q4_K_S = 14,
    SMOE_FTYPE_Q4_K_M = 15,
    SMOE_FTYPE_Q5_K_S = 16,
    SMOE_FTYPE_Q5_K_M = 17,
    SMOE_FTYPE_Q6_K = 18,
    SMOE_FTYPE_BF16 = 32,
} smoe_ftype;

/* "Q4_K_M" -> SMOE_FTYPE_Q4_K_M, case-insensitive; "Q3_K"/"Q4_K"/"Q5_K" mean the _M mix.
 * Unknown names fail with SMOE_ERR_INVALID_ARG (the message lists the known ones). */
smoe_status smoe_ftype_from_name(const char *name, smoe_ftype *out);
/* Canonical name ("Q4_K_M"), or NULL for a value that is not a smoe_ftype. */
const char *smoe_ftype_name(smoe_ftype ftype);

/* Progress of smoe_model_quantize: called before each tensor with done = tensors finished
 * so far, total = tensor count and its name, and once more with done == total and
 * tensor == NULL before the file is written. Runs on the calling thread. */
typedef void (*smoe_progress_fn)(void *user, int64_t done, int64_t total, const char *tensor);

/* Convert the GGUF model at in_path (any tensor types smoe can dequantize) to the mix
 * ftype and write it atomically to out_path: metadata copied, general.file_type and
 * general.quantization_version (2) set, tensors in llama.cpp's order. Norms, 1-D tensors
 * and the MoE router keep their type. n_threads <= 0 uses every online CPU. The output is
 * built in memory (about its final size) before it is written. progress may be NULL. */
smoe_status smoe_model_quantize(const char *in_path, const char *out_path, smoe_ftype ftype, int n_threads,
                                smoe_progress_fn progress, void *user);

/* ---------------------------------------------------------------- training
 *
 * A trainer holds a Mixtral-style model in f32 (every parameter trainable), its AdamW
 * state and the activations of one batch. The caller supplies the batches (token ids
 * and next-token targets, B sequences of T tokens each) and decides when to evaluate,
 * checkpoint and export; `smoe train` (tools/cmd_train.c) is such a caller. Routers,
 * losses and the checkpoint format: docs/training.md. */

typedef struct smoe_train_config {
    int32_t n_vocab;         /* V (from the tokenizer) */
    int32_t n_embd;          /* D */
    int32_t n_layer;
    int32_t n_head;          /* H */
    int32_t n_head_kv;       /* Hkv, divides H */
    int32_t n_ff;            /* F of each expert */
    int32_t n_expert;        /* E */
    int32_t n_expert_used;   /* K */
    int32_t seq_len;         /* T tokens per sequence */
    int32_t batch;           /* B sequences per step */
    char router[32];         /* "topk" "switch" "softmax-topk" "softmax-topk-norm" "noisy-topk"
                                "expert-choice" "attention" "sigmoid-bias" */
    char aux_style[16];      /* "switch" (per layer E sum f P, summed) or "hf" (pooled, HF) */
    float aux_loss;          /* load-balancing coefficient; 0 = off */
    float z_loss;            /* router z-loss coefficient; 0 = off */
    float capacity_factor;   /* > 0: expert capacity with token dropping (training) */
    float bias_rate;         /* sigmoid-bias: step of the bias update */
    float lr, min_lr;        /* peak and final learning rate (cosine) */
    int64_t warmup;          /* linear warm-up steps */
    int64_t steps;           /* total steps (the schedule's length) */
    float beta1, beta2, eps, weight_decay;
    float clip;              /* global gradient-norm clip; 0 = off */
    float init_std;          /* std of the initial weights (output projections / sqrt(2L)) */
    float rope_base, norm_eps;
    uint64_t seed;           /* initial weights and router noise */
} smoe_train_config;

/* Defaults: a tiny model (D 64, 2 layers, 4/2 heads, F 128, 4 experts top-2, T 64, B 8),
 * router topk, no auxiliary losses, lr 1e-3 -> 1e-4 with 100 warm-up steps of 1000,
 * betas 0.9/0.95, eps 1e-8, weight decay 0.1, clip 1, init std 0.02, rope base 1e4,
 * norm eps 1e-5, seed 1. n_vocab must be set. */
smoe_train_config smoe_train_default_config(void);

typedef struct smoe_trainer smoe_trainer;

typedef struct smoe_train_stats {
    double loss;             /* ce + aux_loss * aux + z_loss * z */
    double ce;               /* mean cross-entropy */
    double aux;              /* load-balancing loss summed over layers (no coefficient) */
    double z;                /* z-loss summed over layers (no coefficient) */
    double lr;               /* learning rate of the step */
    double grad_norm;        /* before clipping */
    double load_cv;          /* mean over layers of the expert-load coefficient of variation */
    double dropped;          /* mean over layers of the share of assignments dropped */
} smoe_train_stats;

/* A new trainer with initial weights from cfg->seed; n_threads <= 0: physical cores. */
smoe_status smoe_trainer_init(const smoe_train_config *cfg, int32_t n_threads, smoe_trainer **out);
/* A trainer from a checkpoint written by smoe_trainer_save (weights, AdamW moments, step,
 * RNG, router biases, config). */
smoe_status smoe_trainer_load(const char *path, int32_t n_threads, smoe_trainer **out);
void smoe_trainer_free(smoe_trainer *t);
const smoe_train_config *smoe_trainer_config(const smoe_trainer *t);
int64_t smoe_trainer_n_params(const smoe_trainer *t);
/* Optimizer steps taken so far. */
int64_t smoe_trainer_step_count(const smoe_trainer *t);

/* One optimizer step on tokens/targets [B][T] (ids in [0, V)). A non-finite loss fails
 * with SMOE_ERR_RANGE and leaves the weights unchanged. stats may be NULL. */
smoe_status smoe_trainer_step(smoe_trainer *t, const int32_t *tokens, const int32_t *targets, smoe_train_stats *stats);
/* Mean cross-entropy of a batch [B][T] without training (no router noise, no dropping). */
smoe_status smoe_trainer_eval(smoe_trainer *t, const int32_t *tokens, const int32_t *targets, double *ce);

/* Checkpoint: everything to continue exactly, written atomically (temp file, fsync,
 * rename), so a crash or a full disk never leaves a corrupt file in its place. */
smoe_status smoe_trainer_save(const smoe_trainer *t, const char *path);
/* The model as a GGUF file that `smoe run` loads, with the tokenizer metadata of the
 * GGUF at tokenizer_path; for the topk router a standard llama.cpp Mixtral-style file. */
smoe_status smoe_trainer_export(const smoe_trainer *t, const char *tokenizer_path, const char *path);

/* ---------------------------------------------------------------- training: tokenizer and data */

/* Progress of a long training-side job: stage is "read", "merge", "write" (fixed
 * strings); done out of total units (bytes for "read" and "write", merges for "merge";
 * total 0 = unknown). Called on the calling thread, often: throttle in the callback. */
typedef void (*smoe_train_progress_fn)(void *user, const char *stage, int64_t done, int64_t total);

/* Train a SentencePiece-style BPE vocabulary with byte fallback on text files (one
 * sentence per line, UTF-8) and write it as a GGUF file holding only tokenizer metadata
 * (general.architecture "llama", tokenizer.ggml.model "llama"), which smoe_tokenizer_*
 * and llama.cpp load. Vocabulary: <unk> 0, <s> 1, </s> 2, the byte tokens <0x00>..<0xFF>
 * 3..258, the merged pieces in merge order (score -rank), then the single characters
 * that cover character_coverage of the corpus (rarer ones are left to byte fallback).
 * Same input and params give the same file. Rules and tie-breaks: docs/training.md. */
typedef struct smoe_tokenizer_train_params {
    int32_t vocab_size;          /* exact size of the vocabulary, >= 260 (default 4096) */
    double character_coverage;   /* in (0, 1]: fraction of character occurrences the base
                                    pieces cover, most frequent first (default 0.9995) */
    int32_t max_piece_chars;     /* longest piece in characters, 2..64 (default 16) */
    const char *name;            /* general.name; NULL = "smoe-bpe" */
    smoe_train_progress_fn progress; /* NULL = none */
    void *progress_user;
} smoe_tokenizer_train_params;

typedef struct smoe_tokenizer_train_stats {
    int64_t n_lines;         /* non-empty lines read */
    int64_t n_bytes;         /* bytes read */
    int64_t n_chars;         /* characters, dummy-prefix "▁" included */
    int64_t n_chunks;        /* distinct pre-tokenized chunks (words) trained on */
    int64_t n_long_chunks;   /* chunk occurrences over 4096 bytes, not trained on */
    int32_t n_base;          /* single-character pieces */
    int32_t n_merges;        /* merged pieces */
    int32_t n_rare_kinds;    /* distinct characters left to byte fallback */
    int64_t n_rare_chars;    /* their occurrences (invalid UTF-8 bytes included) */
} smoe_tokenizer_train_stats;

smoe_tokenizer_train_params smoe_tokenizer_train_default_params(void);
/* Train on n_paths files ("-" = stdin) and write out_path atomically. stats may be NULL.
 * A corpus with too few distinct pairs for vocab_size fails with SMOE_ERR_INVALID_ARG and
 * a message giving the largest size it supports. */
smoe_status smoe_tokenizer_train(const smoe_tokenizer_train_params *p, const char *const *paths, int n_paths,
                                 const char *out_path, smoe_tokenizer_train_stats *stats);
/* FNV-1a 64 of the vocabulary's token texts, each followed by a 0 byte: identifies the
 * tokenizer a token file was made with. */
uint64_t smoe_tokenizer_fingerprint(const smoe_tokenizer *t);

/* Token files: a corpus tokenized once, split into a training and a validation range.
 * Format (little-endian; docs/training.md): a 64-byte header (magic "SMOETOKS", version,
 * bytes per token 2 or 4, vocabulary size, flags, token count, training count, FNV-1a 64
 * checksum of the token bytes, tokenizer fingerprint, split seed), then the tokens: the
 * training range first, then the validation range. */
typedef struct smoe_data smoe_data;

typedef struct smoe_data_info {
    uint32_t version;
    uint32_t token_bytes;    /* 2 (uint16, vocabularies of <= 65536) or 4 (uint32) */
    int32_t n_vocab;
    uint32_t flags;          /* SMOE_DATA_FLAG_* */
    uint64_t n_tokens;       /* n_train + n_val */
    uint64_t n_train;        /* tokens [0, n_train) */
    uint64_t n_val;          /* tokens [n_train, n_tokens) */
    uint64_t checksum;       /* FNV-1a 64 of the token bytes as stored */
    uint64_t tokenizer_fingerprint; /* smoe_tokenizer_fingerprint of the tokenizer used */
    uint64_t split_seed;
} smoe_data_info;

#define SMOE_DATA_FLAG_BOS 1u /* each line starts with BOS */
#define SMOE_DATA_FLAG_EOS 2u /* each line ends with EOS */

typedef struct smoe_data_prepare_params {
    double val_fraction;     /* in [0, 1): a line goes to validation with this probability,
                                decided by a seeded hash of its bytes (default 0.05) */
    uint64_t split_seed;     /* default 0 */
    bool add_bos;            /* BOS before each line (default true) */
    bool add_eos;            /* EOS after each line (default true) */
    int32_t n_threads;       /* encoding threads; <= 0: smoe_default_threads() (the file
                                does not depend on it) */
    smoe_train_progress_fn progress; /* NULL = none */
    void *progress_user;
} smoe_data_prepare_params;

smoe_data_prepare_params smoe_data_prepare_default_params(void);
/* Tokenize every non-empty line of n_paths text files ("-" = stdin; a trailing '\r' is
 * dropped) with tok and write the token file out_path atomically (temporary file, fsync,
 * rename). info (may be NULL) gets the header written. */
smoe_status smoe_data_prepare(const smoe_data_prepare_params *p, const smoe_tokenizer *tok, const char *const *paths,
                              int n_paths, const char *out_path, smoe_data_info *info);
/* Open a token file (mmap, read-only) and validate all of it: header, size, checksum and
 * every token id < n_vocab. Bad files fail with SMOE_ERR_FORMAT and a message. */
smoe_status smoe_data_open(const char *path, smoe_data **out);
/* Same over a caller-owned buffer that must outlive the handle (tests, fuzzing). */
smoe_status smoe_data_open_memory(const void *buf, size_t size, smoe_data **out);
void smoe_data_free(smoe_data *d);
/* The header of an open token file (all zero for NULL). */
smoe_data_info smoe_data_get_info(const smoe_data *d);
/* Batch `step` of a run with `seed`: batch windows of seq_len + 1 tokens, each starting at
 * a position drawn uniformly from the training range (val false) or the validation range
 * (val true) by a counter-based RNG of (seed, step, val) (docs/training.md), so the same
 * arguments always give the same batch and a resumed run needs no saved RNG state.
 * Window b fills tokens[b*seq_len ..] with its first seq_len tokens and targets[b*seq_len ..]
 * with its last seq_len (the next token of each). SMOE_ERR_RANGE when the range holds
 * fewer than seq_len + 1 tokens. */
smoe_status smoe_data_batch(const smoe_data *d, bool val, uint64_t seed, uint64_t step, int32_t batch,
                            int32_t seq_len, int32_t *tokens, int32_t *targets);

#ifdef __cplusplus
}
#endif
#endif /* SMOE_H */
