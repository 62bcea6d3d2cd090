/*
 * api.h - the OpenAI-compatible request and response JSON of `smoe serve`, with cJSON:
 * validating /v1/chat/completions and /v1/completions bodies into prompt ids plus engine
 * parameters, and building the responses, stream chunks, model lists, tokenize/detokenize
 * answers and error objects in OpenAI's shapes.
 *
 * Request rules (docs/server.md): unknown fields are ignored, as OpenAI does; a known field
 * with the wrong type or an out-of-range value is a 400 naming the field ("param"); n must
 * be 1. Every builder returns a malloc'd NUL-terminated string (NULL when out of memory).
 *
 * Not here: HTTP (serve.c) and generation (engine.c).
 */
#ifndef SMOE_SERVER_API_H
#define SMOE_SERVER_API_H

#include "chat.h"
#include "engine.h"
#include "util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct api_server {
    engine *eng;
    const smoe_tokenizer *tok;
    chat_template tmpl;
    char model_id[256];   /* served id: --alias, else the file name without .gguf */
    char file_name[256];  /* the model file's base name */
    long long created;    /* start time, as the models' "created" */
    int32_t n_ctx, n_vocab;
} api_server;

typedef struct api_error {
    int status;           /* HTTP status */
    const char *type;     /* "invalid_request_error", "server_error", ... */
    const char *code;     /* NULL = null */
    const char *param;    /* NULL = null */
    char message[320];
} api_error;

void api_set_error(api_error *e, int status, const char *type, const char *code, const char *param, const char *fmt,
                   ...) __attribute__((format(printf, 6, 7)));
/* {"error":{"message":...,"type":...,"param":...,"code":...}} */
char *api_error_json(const api_error *e);

typedef enum api_kind { API_CHAT, API_COMPLETION } api_kind;

/* A validated generation request. */
typedef struct api_gen {
    api_kind kind;
    bool stream, include_usage;
    idbuf prompt;
    engine_job_params jp;
    char *stop[ENGINE_MAX_STOP]; /* owned copies; jp.stop points at them */
    char id[48];                 /* "chatcmpl-..." / "cmpl-..." */
    long long created;
} api_gen;

/* Parse and validate a request body; on failure fills err and returns false. Always call
 * api_gen_free afterwards. */
bool api_parse_gen(const api_server *s, api_kind kind, const char *body, size_t len, api_gen *g, api_error *err);
void api_gen_free(api_gen *g);

const char *api_finish_name(engine_finish f); /* "stop", "length", NULL */

/* The whole (non-streaming) answer. */
char *api_gen_response(const api_server *s, const api_gen *g, const char *text, engine_finish f, int32_t n_prompt,
                       int32_t n_gen);
/* One stream chunk: the assistant role (chat, first chunk), a text piece (NULL = none) and/or
 * the finish reason (ENGINE_RUNNING = null). */
char *api_gen_chunk(const api_server *s, const api_gen *g, bool role, const char *text, engine_finish f);
/* The closing usage-only chunk (stream_options.include_usage): empty choices + usage. */
char *api_gen_usage_chunk(const api_server *s, const api_gen *g, int32_t n_prompt, int32_t n_gen);

/* True when a request may name this model: the served id or the file name. */
bool api_model_accepted(const api_server *s, const char *name);
char *api_models_json(const api_server *s);
char *api_model_json(const api_server *s);

/* POST /tokenize {"content": "...", "add_special": false} -> {"tokens": [...]} */
char *api_tokenize(const api_server *s, const char *body, size_t len, api_error *err);
/* POST /detokenize {"tokens": [...]} -> {"content": "..."} */
char *api_detokenize(const api_server *s, const char *body, size_t len, api_error *err);

#endif /* SMOE_SERVER_API_H */
