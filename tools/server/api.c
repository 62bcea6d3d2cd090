/*
 * api.c - OpenAI request validation and response building with cJSON (see api.h).
 */
#include "api.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static atomic_ullong g_seq; /* request ids and default seeds */

void api_set_error(api_error *e, int status, const char *type, const char *code, const char *param, const char *fmt,
                   ...) {
    e->status = status;
    e->type = type;
    e->code = code;
    e->param = param;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
}

/* A JSON string or null. */
static cJSON *str_or_null(const char *s) { return s ? cJSON_CreateString(s) : cJSON_CreateNull(); }

/* Print and free the object (NULL stays NULL). */
static char *finish_json(cJSON *o) {
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return s;
}

char *api_error_json(const api_error *e) {
    cJSON *o = cJSON_CreateObject(), *er = cJSON_AddObjectToObject(o, "error");
    if (!er) {
        cJSON_Delete(o);
        return NULL;
    }
    cJSON_AddStringToObject(er, "message", e->message);
    cJSON_AddStringToObject(er, "type", e->type ? e->type : "invalid_request_error");
    cJSON_AddItemToObject(er, "param", str_or_null(e->param));
    cJSON_AddItemToObject(er, "code", str_or_null(e->code));
    return finish_json(o);
}

static void bad_param(api_error *err, const char *param, const char *what) {
    api_set_error(err, 400, "invalid_request_error", "invalid_value", param, "'%s' must be %s", param, what);
}

static void out_of_memory(api_error *err) { api_set_error(err, 500, "server_error", NULL, NULL, "out of memory"); }

/* Field readers: 0 = absent or null, 1 = read into *out, -1 = wrong type or range (err set). */
static int get_number(const cJSON *o, const char *name, double lo, double hi, double *out, api_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi)) {
        char what[96];
        snprintf(what, sizeof what, "a number in [%g, %g]", lo, hi);
        bad_param(err, name, what);
        return -1;
    }
    *out = v->valuedouble;
    return 1;
}

static int get_int(const cJSON *o, const char *name, double lo, double hi, long long *out, api_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi) || v->valuedouble != floor(v->valuedouble)) {
        char what[96];
        snprintf(what, sizeof what, "an integer in [%.0f, %.0f]", lo, hi);
        bad_param(err, name, what);
        return -1;
    }
    *out = (long long)v->valuedouble;
    return 1;
}

static int get_bool(const cJSON *o, const char *name, bool *out, api_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsBool(v)) {
        bad_param(err, name, "true or false");
        return -1;
    }
    *out = cJSON_IsTrue(v);
    return 1;
}

/* True when v is an integer token id in [0, n_vocab). */
static bool is_token_id(const cJSON *v, int32_t n_vocab) {
    return cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble) && v->valuedouble >= 0 &&
           v->valuedouble < n_vocab;
}

/* Parse a body that must be a JSON object. */
static cJSON *parse_object(const char *body, size_t len, api_error *err) {
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (!root) {
        api_set_error(err, 400, "invalid_request_error", "invalid_json", NULL, "the request body is not valid JSON");
        return NULL;
    }
    if (!cJSON_IsObject(root)) {
        api_set_error(err, 400, "invalid_request_error", "invalid_json", NULL, "the request body must be a JSON object");
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

bool api_model_accepted(const api_server *s, const char *name) {
    return strcmp(name, s->model_id) == 0 || strcmp(name, s->file_name) == 0;
}

/* ------------------------------------------------------------------ generation requests */

void api_gen_free(api_gen *g) {
    idbuf_free(&g->prompt);
    for (int k = 0; k < ENGINE_MAX_STOP; k++) free(g->stop[k]);
    memset(g, 0, sizeof *g);
}

/* "stop": null, a string, or an array of at most 4 strings; empty strings are ignored. */
static bool parse_stop(const cJSON *root, api_gen *g, api_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "stop");
    if (!v || cJSON_IsNull(v)) return true;
    const cJSON *items[ENGINE_MAX_STOP];
    int n = 0;
    bool good = true;
    if (cJSON_IsString(v)) items[n++] = v;
    else if (cJSON_IsArray(v) && cJSON_GetArraySize(v) <= ENGINE_MAX_STOP) {
        const cJSON *it;
        cJSON_ArrayForEach(it, v) {
            if (!cJSON_IsString(it)) {
                good = false;
                break;
            }
            items[n++] = it;
        }
    } else good = false;
    if (!good) {
        bad_param(err, "stop", "a string or an array of at most 4 strings");
        return false;
    }
    for (int k = 0; k < n; k++) {
        size_t len = strlen(items[k]->valuestring);
        if (len == 0) continue;
        if (len > ENGINE_MAX_STOP_LEN) {
            bad_param(err, "stop", "made of strings of at most 256 bytes");
            return false;
        }
        char *c = strdup(items[k]->valuestring);
        if (!c) {
            out_of_memory(err);
            return false;
        }
        g->stop[g->jp.n_stop] = c;
        g->jp.stop[g->jp.n_stop++] = c;
    }
    return true;
}

/* Text of a message's "content": a string, or an array of {"type":"text","text":...} parts
 * (joined); null or absent counts as "" for assistant messages. */
static bool content_text(const cJSON *msg, bool is_assistant, sbuf *out, api_error *err) {
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(msg, "content");
    bool ok = true;
    if (cJSON_IsString(c)) ok = sbuf_puts(out, c->valuestring);
    else if (cJSON_IsArray(c)) {
        const cJSON *part;
        cJSON_ArrayForEach(part, c) {
            const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
            const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
            if (!cJSON_IsString(type) || strcmp(type->valuestring, "text") != 0 || !cJSON_IsString(text)) {
                bad_param(err, "messages", "a list of messages whose content is a string or a list of text parts");
                return false;
            }
            ok = ok && sbuf_puts(out, text->valuestring);
        }
    } else if (!(is_assistant && (!c || cJSON_IsNull(c)))) {
        bad_param(err, "messages", "a list of messages whose content is a string or a list of text parts");
        return false;
    }
    ok = ok && sbuf_append(out, "", 0);
    if (!ok) out_of_memory(err);
    return ok;
}

static bool parse_messages(const api_server *s, const cJSON *root, api_gen *g, api_error *err) {
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(root, "messages");
    if (!ms) {
        api_set_error(err, 400, "invalid_request_error", "missing_required_parameter", "messages",
                      "'messages' is required");
        return false;
    }
    int n = cJSON_IsArray(ms) ? cJSON_GetArraySize(ms) : 0;
    if (n < 1) {
        bad_param(err, "messages", "a non-empty array of messages");
        return false;
    }
    if (s->tmpl.format == CHAT_FORMAT_UNKNOWN) {
        api_set_error(err, 500, "server_error", "unsupported_chat_template", NULL,
                      "the model's chat template (tokenizer.chat_template) is not one smoe knows (Mixtral [INST] "
                      "or ChatML <|im_start|>); use /v1/completions with your own prompt");
        return false;
    }
    chat_msg *msgs = calloc((size_t)n, sizeof *msgs);
    sbuf *texts = calloc((size_t)n, sizeof *texts);
    bool ok = msgs && texts;
    if (!ok) out_of_memory(err);
    int i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, ms) {
        if (!ok) break;
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        const char *r = cJSON_IsString(role) ? role->valuestring : "";
        if (!strcmp(r, "system") || !strcmp(r, "developer")) msgs[i].role = CHAT_ROLE_SYSTEM;
        else if (!strcmp(r, "user")) msgs[i].role = CHAT_ROLE_USER;
        else if (!strcmp(r, "assistant")) msgs[i].role = CHAT_ROLE_ASSISTANT;
        else {
            bad_param(err, "messages", "a list of objects whose role is system, developer, user or assistant");
            ok = false;
            break;
        }
        ok = content_text(m, msgs[i].role == CHAT_ROLE_ASSISTANT, &texts[i], err);
        msgs[i].content = texts[i].p;
        i++;
    }
    char msg[256];
    if (ok && !chat_render(&s->tmpl, s->tok, msgs, n, &g->prompt, msg, sizeof msg)) {
        api_set_error(err, 500, "server_error", NULL, NULL, "%s", msg);
        ok = false;
    }
    for (int k = 0; texts && k < n; k++) sbuf_free(&texts[k]);
    free(texts);
    free(msgs);
    return ok;
}

/* "prompt": a string, an array holding one string, or an array of token ids. */
static bool parse_prompt(const api_server *s, const cJSON *root, api_gen *g, api_error *err) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "prompt");
    if (!p) {
        api_set_error(err, 400, "invalid_request_error", "missing_required_parameter", "prompt", "'prompt' is required");
        return false;
    }
    if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == 1 && cJSON_IsString(cJSON_GetArrayItem(p, 0)))
        p = cJSON_GetArrayItem(p, 0);
    bool ok = true;
    if (cJSON_IsString(p)) {
        if (smoe_tokenizer_add_bos(s->tok) && smoe_tokenizer_bos(s->tok) >= 0)
            ok = idbuf_push(&g->prompt, smoe_tokenizer_bos(s->tok));
        ok = ok && chat_encode(s->tok, p->valuestring, strlen(p->valuestring), &g->prompt);
    } else if (cJSON_IsArray(p) && cJSON_GetArraySize(p) > 0) {
        const cJSON *it;
        cJSON_ArrayForEach(it, p) {
            if (!is_token_id(it, s->n_vocab)) {
                char what[96];
                snprintf(what, sizeof what, "a string or an array of token ids in [0, %d)", s->n_vocab);
                bad_param(err, "prompt", what);
                return false;
            }
            ok = ok && idbuf_push(&g->prompt, (int32_t)it->valuedouble);
        }
    } else {
        bad_param(err, "prompt", "a string, an array of one string, or an array of token ids");
        return false;
    }
    if (!ok) api_set_error(err, 500, "server_error", NULL, NULL, "cannot tokenize the prompt: %s", smoe_last_error());
    return ok;
}

bool api_parse_gen(const api_server *s, api_kind kind, const char *body, size_t len, api_gen *g, api_error *err) {
    memset(g, 0, sizeof *g);
    g->kind = kind;
    g->jp.sampling = smoe_sampler_default_params();
    g->jp.sampling.temperature = 1.0f; /* OpenAI's defaults: plain sampling at T = 1 */
    g->jp.sampling.top_k = 0;
    g->jp.sampling.top_p = 1.0f;
    g->jp.sampling.min_p = 0.0f;
    g->jp.max_tokens = kind == API_COMPLETION ? 16 : -1;
    g->jp.eot = kind == API_CHAT && s->tmpl.format == CHAT_FORMAT_CHATML ? s->tmpl.im_end : -1;
    g->jp.trim_first_space = kind == API_CHAT;
    unsigned long long seq = atomic_fetch_add(&g_seq, 1) + 1;
    g->created = (long long)time(NULL);
    snprintf(g->id, sizeof g->id, "%s-%010llx%06llx", kind == API_CHAT ? "chatcmpl" : "cmpl", g->created,
             seq & 0xffffff);

    cJSON *root = parse_object(body, len, err);
    if (!root) return false;
    bool ok = false, b;
    double d;
    long long ll;
    int r;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (model && !cJSON_IsNull(model) && !cJSON_IsString(model)) {
        bad_param(err, "model", "a string");
        goto out;
    }
    if (cJSON_IsString(model) && !api_model_accepted(s, model->valuestring)) {
        api_set_error(err, 404, "invalid_request_error", "model_not_found", "model",
                      "The model '%.100s' does not exist; this server serves '%.100s'", model->valuestring, s->model_id);
        goto out;
    }
    if ((r = get_bool(root, "stream", &b, err)) < 0) goto out;
    if (r) g->stream = b;
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(root, "stream_options");
    if (so && !cJSON_IsNull(so)) {
        if (!cJSON_IsObject(so)) {
            bad_param(err, "stream_options", "an object");
            goto out;
        }
        if ((r = get_bool(so, "include_usage", &b, err)) < 0) goto out;
        if (r) g->include_usage = b;
    }
    if ((r = get_int(root, "max_tokens", 1, 1 << 30, &ll, err)) < 0) goto out;
    if (r) g->jp.max_tokens = (int32_t)ll;
    if ((r = get_int(root, "max_completion_tokens", 1, 1 << 30, &ll, err)) < 0) goto out;
    if (r) g->jp.max_tokens = (int32_t)ll;
    if ((r = get_number(root, "temperature", 0, 2, &d, err)) < 0) goto out;
    if (r) g->jp.sampling.temperature = (float)d;
    if ((r = get_number(root, "top_p", 0, 1, &d, err)) < 0) goto out;
    if (r) {
        if (d <= 0) g->jp.sampling.temperature = 0; /* only the most likely token is left */
        else g->jp.sampling.top_p = (float)d;
    }
    if ((r = get_int(root, "top_k", 0, 1 << 30, &ll, err)) < 0) goto out; /* extension */
    if (r) g->jp.sampling.top_k = (int32_t)ll;
    if ((r = get_number(root, "min_p", 0, 1, &d, err)) < 0) goto out; /* extension */
    if (r) g->jp.sampling.min_p = (float)d;
    if ((r = get_int(root, "seed", -9007199254740992.0, 9007199254740992.0, &ll, err)) < 0) goto out;
    if (r) g->jp.sampling.seed = (uint64_t)ll;
    else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t z = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ (seq * 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull; /* splitmix64 finaliser */
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        g->jp.sampling.seed = z ^ (z >> 31);
    }
    if ((r = get_int(root, "n", -1e9, 1e9, &ll, err)) < 0) goto out;
    if (r && ll != 1) {
        bad_param(err, "n", "1 (one choice per request)");
        goto out;
    }
    if ((r = get_bool(root, "ignore_eos", &b, err)) < 0) goto out; /* extension */
    if (r) g->jp.ignore_eos = b;
    if (!parse_stop(root, g, err)) goto out;
    if (!(kind == API_CHAT ? parse_messages(s, root, g, err) : parse_prompt(s, root, g, err))) goto out;
    if (g->prompt.n == 0) {
        api_set_error(err, 400, "invalid_request_error", "invalid_value", kind == API_CHAT ? "messages" : "prompt",
                      "the prompt is empty");
        goto out;
    }
    if (g->prompt.n >= s->n_ctx) {
        api_set_error(err, 400, "invalid_request_error", "context_length_exceeded",
                      kind == API_CHAT ? "messages" : "prompt",
                      "This model's maximum context length is %d tokens, and the prompt is %lld tokens (at least one "
                      "token must be left for the answer)",
                      s->n_ctx, (long long)g->prompt.n);
        goto out;
    }
    ok = true;
out:
    cJSON_Delete(root);
    return ok;
}

const char *api_finish_name(engine_finish f) {
    switch (f) {
    case ENGINE_FINISH_STOP: return "stop";
    case ENGINE_FINISH_LENGTH: return "length";
    default: return NULL;
    }
}

static cJSON *usage_object(int32_t n_prompt, int32_t n_gen) {
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", n_prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", n_gen);
    cJSON_AddNumberToObject(u, "total_tokens", (double)n_prompt + n_gen);
    return u;
}

/* id, object, created, model and an empty choices array. */
static cJSON *gen_head(const api_server *s, const api_gen *g, const char *object, cJSON **choices) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", g->id);
    cJSON_AddStringToObject(o, "object", object);
    cJSON_AddNumberToObject(o, "created", (double)g->created);
    cJSON_AddStringToObject(o, "model", s->model_id);
    *choices = cJSON_AddArrayToObject(o, "choices");
    return o;
}

char *api_gen_response(const api_server *s, const api_gen *g, const char *text, engine_finish f, int32_t n_prompt,
                       int32_t n_gen) {
    cJSON *choices, *o = gen_head(s, g, g->kind == API_CHAT ? "chat.completion" : "text_completion", &choices);
    cJSON *c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "index", 0);
    if (g->kind == API_CHAT) {
        cJSON *m = cJSON_AddObjectToObject(c, "message");
        cJSON_AddStringToObject(m, "role", "assistant");
        cJSON_AddStringToObject(m, "content", text);
    } else {
        cJSON_AddStringToObject(c, "text", text);
    }
    cJSON_AddNullToObject(c, "logprobs");
    cJSON_AddItemToObject(c, "finish_reason", str_or_null(api_finish_name(f)));
    cJSON_AddItemToArray(choices, c);
    cJSON_AddItemToObject(o, "usage", usage_object(n_prompt, n_gen));
    return finish_json(o);
}

char *api_gen_chunk(const api_server *s, const api_gen *g, bool role, const char *text, engine_finish f) {
    cJSON *choices, *o = gen_head(s, g, g->kind == API_CHAT ? "chat.completion.chunk" : "text_completion", &choices);
    cJSON *c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "index", 0);
    if (g->kind == API_CHAT) {
        cJSON *d = cJSON_AddObjectToObject(c, "delta");
        if (role) cJSON_AddStringToObject(d, "role", "assistant");
        if (text || role) cJSON_AddStringToObject(d, "content", text ? text : "");
    } else {
        cJSON_AddStringToObject(c, "text", text ? text : "");
    }
    cJSON_AddNullToObject(c, "logprobs");
    cJSON_AddItemToObject(c, "finish_reason", str_or_null(api_finish_name(f)));
    cJSON_AddItemToArray(choices, c);
    if (g->include_usage) cJSON_AddNullToObject(o, "usage");
    return finish_json(o);
}

char *api_gen_usage_chunk(const api_server *s, const api_gen *g, int32_t n_prompt, int32_t n_gen) {
    cJSON *choices, *o = gen_head(s, g, g->kind == API_CHAT ? "chat.completion.chunk" : "text_completion", &choices);
    cJSON_AddItemToObject(o, "usage", usage_object(n_prompt, n_gen));
    return finish_json(o);
}

/* ------------------------------------------------------------------ models */

static cJSON *model_object(const api_server *s) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", s->model_id);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)s->created);
    cJSON_AddStringToObject(m, "owned_by", "smoe");
    cJSON *meta = cJSON_AddObjectToObject(m, "meta"); /* llama.cpp's server puts extras here too */
    cJSON_AddStringToObject(meta, "file", s->file_name);
    cJSON_AddNumberToObject(meta, "n_ctx", s->n_ctx);
    cJSON_AddNumberToObject(meta, "n_vocab", s->n_vocab);
    cJSON_AddStringToObject(meta, "chat_format", chat_format_name(s->tmpl.format));
    return m;
}

char *api_models_json(const api_server *s) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON *d = cJSON_AddArrayToObject(o, "data");
    cJSON_AddItemToArray(d, model_object(s));
    return finish_json(o);
}

char *api_model_json(const api_server *s) { return finish_json(model_object(s)); }

/* ------------------------------------------------------------------ tokenize */

char *api_tokenize(const api_server *s, const char *body, size_t len, api_error *err) {
    cJSON *root = parse_object(body, len, err);
    if (!root) return NULL;
    char *res = NULL;
    idbuf ids = {0};
    bool special = false, ok = true;
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(root, "content");
    if (!cJSON_IsString(c)) {
        bad_param(err, "content", "a string");
        goto out;
    }
    if (get_bool(root, "add_special", &special, err) < 0) goto out;
    if (special && smoe_tokenizer_bos(s->tok) >= 0) ok = idbuf_push(&ids, smoe_tokenizer_bos(s->tok));
    if (!ok || !chat_encode(s->tok, c->valuestring, strlen(c->valuestring), &ids)) {
        api_set_error(err, 500, "server_error", NULL, NULL, "cannot tokenize: %s", smoe_last_error());
        goto out;
    }
    cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "tokens");
    for (int64_t i = 0; i < ids.n; i++) cJSON_AddItemToArray(arr, cJSON_CreateNumber(ids.v[i]));
    res = finish_json(o);
    if (!res) out_of_memory(err);
out:
    idbuf_free(&ids);
    cJSON_Delete(root);
    return res;
}

/* Append detokenizer output, dropping NUL bytes (JSON strings here are C strings). */
static bool append_piece(sbuf *text, const char *buf, int64_t nb) {
    bool ok = true;
    for (int64_t i = 0; i < nb; i++)
        if (buf[i]) ok = ok && sbuf_append(text, buf + i, 1);
    return ok;
}

char *api_detokenize(const api_server *s, const char *body, size_t len, api_error *err) {
    cJSON *root = parse_object(body, len, err);
    if (!root) return NULL;
    char *res = NULL;
    sbuf text = {0};
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "tokens"), *it;
    char what[96];
    snprintf(what, sizeof what, "an array of token ids in [0, %d)", s->n_vocab);
    bool ok = cJSON_IsArray(t);
    cJSON_ArrayForEach(it, t) ok = ok && is_token_id(it, s->n_vocab);
    if (!ok) {
        bad_param(err, "tokens", what);
        goto out;
    }
    smoe_detok dt;
    smoe_detok_init(&dt, s->tok);
    char buf[1024];
    ok = sbuf_append(&text, "", 0);
    cJSON_ArrayForEach(it, t) {
        int64_t nb = smoe_detok_push(&dt, (int32_t)it->valuedouble, buf, sizeof buf);
        ok = ok && nb >= 0 && append_piece(&text, buf, nb);
    }
    int64_t nb = smoe_detok_flush(&dt, buf, sizeof buf);
    ok = ok && nb >= 0 && append_piece(&text, buf, nb);
    if (!ok) {
        out_of_memory(err);
        goto out;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "content", text.p);
    res = finish_json(o);
    if (!res) out_of_memory(err);
out:
    sbuf_free(&text);
    cJSON_Delete(root);
    return res;
}
