/*
 * chat.c - Mixtral Instruct and ChatML prompt rendering, straight to token ids (chat.h).
 */
#include "chat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *chat_format_name(chat_format f) {
    switch (f) {
    case CHAT_FORMAT_MIXTRAL: return "mixtral";
    case CHAT_FORMAT_CHATML: return "chatml";
    default: return "unknown";
    }
}

static int32_t find_token(const smoe_tokenizer *tok, const char *text) {
    int32_t n = smoe_tokenizer_n_vocab(tok);
    for (int32_t i = 0; i < n; i++) {
        const char *s = smoe_tokenizer_token_text(tok, i);
        if (s && strcmp(s, text) == 0) return i;
    }
    return -1;
}

/* True when needle occurs in the n bytes at s (s is not NUL-terminated). */
static bool contains(const char *s, uint64_t n, const char *needle) {
    return memmem(s, (size_t)n, needle, strlen(needle)) != NULL;
}

void chat_template_init(chat_template *t, const smoe_model *m, const smoe_tokenizer *tok) {
    *t = (chat_template){.format = CHAT_FORMAT_MIXTRAL, .im_start = -1, .im_end = -1};
    t->bos = smoe_tokenizer_bos(tok);
    t->eos = smoe_tokenizer_eos(tok);
    t->add_bos = smoe_tokenizer_add_bos(tok);
    const char *s;
    uint64_t n;
    if (smoe_gguf_get_str(smoe_model_gguf(m), "tokenizer.chat_template", &s, &n) == SMOE_OK) {
        t->from_file = true;
        if (contains(s, n, "<|im_start|>")) t->format = CHAT_FORMAT_CHATML;
        else if (contains(s, n, "[INST]")) t->format = CHAT_FORMAT_MIXTRAL;
        else t->format = CHAT_FORMAT_UNKNOWN;
    }
    if (t->format == CHAT_FORMAT_CHATML) {
        t->im_start = find_token(tok, "<|im_start|>");
        t->im_end = find_token(tok, "<|im_end|>");
    }
}

bool chat_encode(const smoe_tokenizer *tok, const char *text, size_t len, idbuf *out) {
    int64_t need = (int64_t)len + 2;
    for (int tries = 0; tries < 2; tries++) {
        while (out->cap - out->n < need) {
            int64_t cap = out->cap ? out->cap * 2 : 64;
            int32_t *v = realloc(out->v, sizeof(int32_t) * (size_t)cap);
            if (!v) return false;
            out->v = v;
            out->cap = cap;
        }
        int64_t n = 0;
        smoe_status st = smoe_tokenizer_encode(tok, text, len, false, out->v + out->n, out->cap - out->n, &n);
        if (st == SMOE_OK) {
            out->n += n;
            return true;
        }
        if (st != SMOE_ERR_RANGE) return false;
        need = n;
    }
    return false;
}

static bool push_text(const smoe_tokenizer *tok, const sbuf *b, idbuf *out) {
    return chat_encode(tok, b->p ? b->p : "", b->len, out);
}

static bool render_mixtral(const chat_template *t, const smoe_tokenizer *tok, const chat_msg *msgs, int n, idbuf *out) {
    sbuf sys = {0}, chunk = {0};
    bool ok = true, have_user = false;
    for (int i = 0; i < n && ok; i++)
        if (msgs[i].role == CHAT_ROLE_SYSTEM)
            ok = (sys.len == 0 || sbuf_puts(&sys, "\n\n")) && sbuf_puts(&sys, msgs[i].content);
    for (int i = 0; i < n; i++) have_user |= msgs[i].role == CHAT_ROLE_USER;
    if (ok && t->bos >= 0) ok = idbuf_push(out, t->bos);
    if (ok && !have_user) /* only system text: it is the instruction */
        ok = sbuf_puts(&chunk, "[INST] ") && sbuf_append(&chunk, sys.p ? sys.p : "", sys.len) &&
             sbuf_puts(&chunk, " [/INST]") && push_text(tok, &chunk, out);
    bool first_user = true;
    for (int i = 0; i < n && ok; i++) {
        chunk.len = 0;
        if (msgs[i].role == CHAT_ROLE_USER) {
            ok = sbuf_puts(&chunk, "[INST] ");
            if (ok && first_user && sys.len) ok = sbuf_append(&chunk, sys.p, sys.len) && sbuf_puts(&chunk, "\n\n");
            ok = ok && sbuf_puts(&chunk, msgs[i].content) && sbuf_puts(&chunk, " [/INST]") && push_text(tok, &chunk, out);
            first_user = false;
        } else if (msgs[i].role == CHAT_ROLE_ASSISTANT) {
            ok = sbuf_puts(&chunk, msgs[i].content) && push_text(tok, &chunk, out);
            if (ok && i + 1 < n && t->eos >= 0) ok = idbuf_push(out, t->eos);
        }
    }
    sbuf_free(&sys);
    sbuf_free(&chunk);
    return ok;
}

/* A ChatML marker: its token when the vocabulary has it, else its text. */
static bool push_marker(const smoe_tokenizer *tok, int32_t id, const char *text, idbuf *out) {
    return id >= 0 ? idbuf_push(out, id) : chat_encode(tok, text, strlen(text), out);
}

static bool render_chatml(const chat_template *t, const smoe_tokenizer *tok, const chat_msg *msgs, int n, idbuf *out) {
    static const char *ROLE[] = {"system", "user", "assistant"};
    sbuf chunk = {0};
    bool ok = true;
    if (t->add_bos && t->bos >= 0) ok = idbuf_push(out, t->bos);
    for (int i = 0; i < n && ok; i++) {
        bool open = i + 1 == n && msgs[i].role == CHAT_ROLE_ASSISTANT; /* continue this answer */
        chunk.len = 0;
        ok = push_marker(tok, t->im_start, "<|im_start|>", out) && sbuf_puts(&chunk, ROLE[msgs[i].role]) &&
             sbuf_puts(&chunk, "\n") && sbuf_puts(&chunk, msgs[i].content) && push_text(tok, &chunk, out);
        if (ok && !open) ok = push_marker(tok, t->im_end, "<|im_end|>", out) && chat_encode(tok, "\n", 1, out);
    }
    if (ok && (n == 0 || msgs[n - 1].role != CHAT_ROLE_ASSISTANT))
        ok = push_marker(tok, t->im_start, "<|im_start|>", out) && chat_encode(tok, "assistant\n", 10, out);
    sbuf_free(&chunk);
    return ok;
}

bool chat_render(const chat_template *t, const smoe_tokenizer *tok, const chat_msg *msgs, int n, idbuf *out,
                 char *err, size_t err_cap) {
    bool ok;
    switch (t->format) {
    case CHAT_FORMAT_MIXTRAL: ok = render_mixtral(t, tok, msgs, n, out); break;
    case CHAT_FORMAT_CHATML: ok = render_chatml(t, tok, msgs, n, out); break;
    default:
        snprintf(err, err_cap,
                 "the model's chat template (tokenizer.chat_template) is not one smoe knows (Mixtral [INST] or "
                 "ChatML <|im_start|>); use /v1/completions with your own prompt");
        return false;
    }
    if (!ok)
        snprintf(err, err_cap, "cannot build the prompt: %s", smoe_last_error()[0] ? smoe_last_error() : "out of memory");
    return ok;
}
