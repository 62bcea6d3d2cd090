/*
 * engine.h - the generation engine of `smoe serve`: owns the model, the tokenizer and N
 * slots (one sequence each), and runs them from one engine thread in steps (continuous
 * batching). Each step advances every active slot in one batched forward pass: a slot
 * first feeds its prompt (in chunks that share the step's token budget), then produces one
 * token per step. Requests that find no free slot wait in a bounded FIFO queue and join
 * the running batch at the next step that has room.
 *
 * Jobs are shared between the HTTP thread that submitted them and the engine thread, with
 * a reference count: the HTTP side polls a job for new text and releases it when the
 * response is done or the client has gone (which cancels the job and frees its slot at the
 * next step). Text is published only up to the point that can no longer turn into a stop
 * string, and never splits a UTF-8 character.
 *
 * Not here: HTTP, JSON, chat templates (serve.c, api.c, chat.c). The engine never prints.
 */
#ifndef SMOE_SERVER_ENGINE_H
#define SMOE_SERVER_ENGINE_H

#include "smoe.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ENGINE_MAX_STOP 4       /* stop strings per request (OpenAI's limit) */
#define ENGINE_MAX_STOP_LEN 256 /* bytes per stop string */

typedef struct engine engine;
typedef struct engine_job engine_job;

typedef struct engine_params {
    const char *model_path;
    int32_t n_slots;   /* sequences generated concurrently, >= 1 */
    int32_t n_ctx;     /* context length of each slot; 0 = min(model's, 4096) */
    int32_t n_threads; /* worker threads of the forward pass, >= 1 */
    int32_t queue_cap; /* requests that may wait for a slot, >= 0 */
    bool unbatched;    /* one smoe_ctx_decode per slot per step, each slot with its own
                          n_threads pool (the engine before batching; a baseline for
                          benchmarks). Default false: one smoe_ctx_decode_multi per step. */
} engine_params;

/* Load the model and tokenizer and allocate every slot. On failure returns the status and
 * smoe_last_error() names the problem (in the calling thread). */
smoe_status engine_open(const engine_params *p, engine **out);
/* Start the engine thread. */
smoe_status engine_start(engine *e);
/* Stop taking jobs, end every queued and running job with an error ("the server is shutting
 * down"), wake their waiters and join the engine thread. Safe to call twice. */
void engine_shutdown(engine *e);
/* Free everything (after engine_shutdown, and after every job has been released). */
void engine_free(engine *e);

const smoe_model *engine_model(const engine *e);
const smoe_tokenizer *engine_tokenizer(const engine *e);
int32_t engine_n_ctx(const engine *e);
int32_t engine_n_slots(const engine *e);

typedef struct engine_job_params {
    int32_t max_tokens;           /* >= 1; < 0 = until the context is full */
    smoe_sampler_params sampling;
    const char *stop[ENGINE_MAX_STOP]; /* stop strings (copied at submit), n_stop of them */
    int n_stop;
    bool ignore_eos;              /* keep going past the end-of-text token */
    int32_t eot;                  /* a second end-of-turn id (ChatML <|im_end|>), -1 = none */
    bool trim_first_space;        /* drop the SentencePiece space before the first piece (chat
                                     answers); completions keep it, as the text continues */
} engine_job_params;

typedef enum engine_submit_result {
    ENGINE_SUBMITTED = 0,
    ENGINE_QUEUE_FULL,   /* every slot busy and the queue is full */
    ENGINE_SHUTTING_DOWN,
    ENGINE_NO_MEMORY,
    ENGINE_BAD_REQUEST,  /* empty prompt, or longer than the context allows */
} engine_submit_result;

/* Queue a job for the prompt ids (copied). On ENGINE_SUBMITTED *out is a job the caller
 * must release with engine_job_release. */
engine_submit_result engine_submit(engine *e, const int32_t *prompt, int32_t n_prompt, const engine_job_params *p,
                                   engine_job **out);

typedef enum engine_finish {
    ENGINE_RUNNING = 0,
    ENGINE_FINISH_STOP,   /* end-of-text / end-of-turn token or a stop string */
    ENGINE_FINISH_LENGTH, /* max_tokens reached or the context is full */
    ENGINE_FINISH_ERROR,  /* failed or cancelled; error holds the reason */
} engine_finish;

typedef struct engine_update {
    size_t len;            /* new text appended to the caller's buffer */
    engine_finish finish;  /* ENGINE_RUNNING while the job goes on */
    int32_t n_prompt;      /* prompt tokens */
    int32_t n_gen;         /* tokens generated so far */
    char error[160];       /* for ENGINE_FINISH_ERROR */
} engine_update;

struct sbuf;
/* Wait up to timeout_ms for text past *pos or for the end, append the new text to out, and
 * advance *pos. Returns false only when out cannot grow (out of memory). */
bool engine_job_poll(engine_job *j, size_t *pos, int timeout_ms, struct sbuf *out, engine_update *u);
/* Drop the caller's reference; a job still running is cancelled and its slot freed at the
 * next step. */
void engine_job_release(engine *e, engine_job *j);

typedef struct engine_stats {
    int32_t n_slots, active, queued;
    uint64_t prompt_tokens, gen_tokens;    /* totals since start */
    double prompt_s, gen_s;                /* engine time spent on each (a step's time is split
                                              by its token counts) */
    uint64_t jobs_done, jobs_cancelled;
} engine_stats;

void engine_get_stats(engine *e, engine_stats *st);

#endif /* SMOE_SERVER_ENGINE_H */
