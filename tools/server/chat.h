/*
 * chat.h - chat templates of `smoe serve`: turn a list of messages into prompt token ids.
 *
 * The format is chosen once, from the GGUF's tokenizer.chat_template text:
 *   contains "<|im_start|>"  -> ChatML   <|im_start|>role\ncontent<|im_end|>\n ... <|im_start|>assistant\n
 *   contains "[INST]"        -> Mixtral  <s>[INST] user [/INST] answer</s>[INST] ...
 *   no template at all       -> Mixtral
 *   anything else            -> unknown: chat requests fail with a clear error.
 * Special tokens (BOS, EOS, <|im_start|>, <|im_end|>) go in as ids, never as text to
 * tokenize; the text pieces between them are encoded with the model's tokenizer. The Mixtral
 * rendering follows mistral-common's InstructTokenizerV1 (docs/server.md): one chunk per
 * user turn, "[INST] " + content + " [/INST]", each assistant turn followed by EOS, system
 * messages joined and prepended to the first user message with "\n\n".
 *
 * Not here: Jinja. Templates are recognised by their markers, not executed.
 */
#ifndef SMOE_SERVER_CHAT_H
#define SMOE_SERVER_CHAT_H

#include "smoe.h"
#include "util.h"

#include <stdbool.h>
#include <stddef.h>

typedef enum chat_format { CHAT_FORMAT_MIXTRAL, CHAT_FORMAT_CHATML, CHAT_FORMAT_UNKNOWN } chat_format;

typedef struct chat_template {
    chat_format format;
    bool from_file;      /* the GGUF had tokenizer.chat_template */
    int32_t bos, eos;    /* -1 = none */
    int32_t im_start;    /* ChatML markers when the vocabulary has them as tokens, else -1 */
    int32_t im_end;
    bool add_bos;        /* tokenizer.ggml.add_bos_token */
} chat_template;

typedef enum chat_role { CHAT_ROLE_SYSTEM, CHAT_ROLE_USER, CHAT_ROLE_ASSISTANT } chat_role;

typedef struct chat_msg {
    chat_role role;
    const char *content; /* UTF-8, NUL-terminated */
} chat_msg;

/* Look at the model's template and vocabulary. */
void chat_template_init(chat_template *t, const smoe_model *m, const smoe_tokenizer *tok);
const char *chat_format_name(chat_format f);

/* Append the prompt ids for msgs[0..n) to out, ending where the assistant's answer starts
 * (or, when the last message is the assistant's, inside that answer, to continue it).
 * On failure returns false with a message in err. */
bool chat_render(const chat_template *t, const smoe_tokenizer *tok, const chat_msg *msgs, int n, idbuf *out,
                 char *err, size_t err_cap);

/* Encode len bytes of text (no BOS) and append the ids to out. */
bool chat_encode(const smoe_tokenizer *tok, const char *text, size_t len, idbuf *out);

#endif /* SMOE_SERVER_CHAT_H */
