/*
 * engine.c - slots, the job queue and the engine thread of `smoe serve` (see engine.h).
 *
 * One mutex (engine.mu) guards the queue, the slot <-> job links, every job's published
 * text and status, and the statistics. The engine thread holds it only to admit, retire and
 * publish; the forward pass, sampling, detokenization and stop-string search run unlocked
 * on state that only the engine thread touches (the slot structs and their contexts).
 *
 * A step: retire cancelled jobs, admit queued jobs into free slots, plan every active
 * slot's input (the token sampled last step, or a prompt chunk) within the step's token
 * budget (engine_plan), run all of them through the model in one batched pass
 * (engine_forward_step: smoe_ctx_decode_multi, the experts' weights shared across the
 * requests), then for each slot whose prompt is done sample the next token from its row of
 * the shared logits, detokenize it, look for stop strings, and publish the text that is
 * safe to send.
 *
 * The batched pass runs on one fixed runner, slot 0's context: its buffers and its thread
 * pool (the requested thread count). The other slots' contexts only hold a KV cache and a
 * position, so they are made with one thread (a pool of one starts no threads) and a
 * one-token batch (their activation buffers are never used).
 */
#include "engine.h"

#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROMPT_CHUNK 256 /* most prompt tokens a slot feeds per step, so others keep streaming */
#define STEP_BATCH 256   /* n_batch of the runner: most tokens of all slots in one step */

typedef enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_DONE } job_state;

struct engine_job {
    engine *e;
    int refs;              /* the submitter's + the engine's while not done */
    pthread_cond_t cond;   /* new text or the end */
    /* input, immutable after submit */
    int32_t *prompt;       /* [n_prompt] */
    int32_t n_prompt;
    engine_job_params p;   /* p.stop[] point into stop_store */
    char *stop_store;
    size_t stop_max;       /* longest stop string */
    /* output, under e->mu */
    job_state state;
    bool cancelled;
    sbuf text;             /* published text */
    engine_finish finish;
    int32_t n_gen;
    char error[160];
};

typedef struct slot {
    smoe_ctx *ctx;
    float *logits;         /* [V] after the last fed token: this step's row of engine.logits */
    smoe_sampler *smp;     /* per job (seeded from the request) */
    smoe_detok dt;
    engine_job *job;       /* NULL = free */
    int32_t n_fed;         /* prompt tokens already in the KV cache */
    int32_t next;          /* token sampled last step, fed this step */
    const int32_t *in;     /* this step's input: n_in ids (0 = sits this step out) */
    int32_t n_in;
    bool in_prompt;        /* this step feeds prompt tokens */
    bool forward_ok;
    sbuf gen;              /* all text generated so far (stop strings are searched here) */
    size_t published;      /* bytes of gen handed to the job */
    int32_t n_gen;
    engine_finish finish;  /* set when the job ends this step */
    char error[160];
} slot;

struct engine {
    smoe_model *model;
    smoe_tokenizer *tok;
    int32_t n_vocab, n_ctx, eos;
    slot *slots;
    int32_t n_slots;
    bool unbatched;        /* one smoe_ctx_decode per slot (engine_params.unbatched) */
    int32_t budget;        /* most tokens of all slots per step (unbatched: no limit) */
    uint32_t rr;           /* step counter: where the round-robin of engine_plan starts */
    /* engine thread only, sized at open */
    slot **active;         /* [n_slots] this step's active slots */
    slot **order;          /* [n_slots] scratch of engine_plan */
    float *logits;         /* [n_slots][V] each sequence's logits of this step */
    smoe_ctx **seq_ctx;    /* [n_slots] the contexts of this step's pass */
    int32_t *seq_n;        /* [n_slots] their token counts */
    int32_t *ids;          /* [budget] their tokens, one sequence after another */
    engine_job **queue;    /* FIFO, [queue_cap + n_slots] */
    int32_t queue_cap, n_queued;
    pthread_mutex_t mu;
    pthread_cond_t wake;   /* work arrived, or shutdown */
    pthread_t thread;
    bool started, stopping;
    engine_stats st;
};

static void job_free(engine_job *j) {
    pthread_cond_destroy(&j->cond);
    free(j->prompt);
    free(j->stop_store);
    sbuf_free(&j->text);
    free(j);
}

/* Drop one reference (under e->mu). */
static void job_unref(engine_job *j) {
    if (--j->refs == 0) job_free(j);
}

/* Mark a job ended and wake its waiter (under e->mu). */
static void job_end(engine_job *j, engine_finish f, const char *msg) {
    j->state = JOB_DONE;
    j->finish = f;
    if (msg) snprintf(j->error, sizeof j->error, "%s", msg);
    pthread_cond_broadcast(&j->cond);
}

static void cond_init_monotonic(pthread_cond_t *c) {
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(c, &ca);
    pthread_condattr_destroy(&ca);
}

/* ------------------------------------------------------------------ open / close */

smoe_status engine_open(const engine_params *p, engine **out) {
    *out = NULL;
    if (p->n_slots < 1 || p->n_threads < 1 || p->queue_cap < 0) return SMOE_ERR_INVALID_ARG;
    engine *e = calloc(1, sizeof *e);
    if (!e) return SMOE_ERR_NOMEM;
    pthread_mutex_init(&e->mu, NULL);
    cond_init_monotonic(&e->wake);
    smoe_status st = smoe_model_load(p->model_path, NULL, &e->model);
    if (!st) st = smoe_tokenizer_from_gguf(smoe_model_gguf(e->model), &e->tok);
    if (st) goto fail;
    e->n_vocab = smoe_model_get_info(e->model)->n_vocab;
    e->eos = smoe_tokenizer_eos(e->tok);
    e->queue_cap = p->queue_cap;
    e->unbatched = p->unbatched;
    const size_t ns = (size_t)p->n_slots;
    e->slots = calloc(ns, sizeof *e->slots);
    e->active = calloc(ns, sizeof *e->active);
    e->order = calloc(ns, sizeof *e->order);
    e->seq_ctx = calloc(ns, sizeof *e->seq_ctx);
    e->seq_n = calloc(ns, sizeof *e->seq_n);
    e->logits = malloc(sizeof(float) * ns * (size_t)e->n_vocab);
    e->queue = calloc((size_t)p->queue_cap + ns, sizeof *e->queue);
    if (!e->slots || !e->active || !e->order || !e->seq_ctx || !e->seq_n || !e->logits || !e->queue) {
        st = SMOE_ERR_NOMEM;
        goto fail;
    }
    e->n_slots = p->n_slots;
    /* slot 0 is the runner (batched) and gets the threads; unbatched, every slot runs
     * itself as before and gets them too */
    smoe_ctx_params cp = smoe_ctx_default_params();
    cp.n_ctx = p->n_ctx;
    cp.n_batch = STEP_BATCH;
    cp.n_threads = p->n_threads;
    smoe_ctx_params kv_only = cp;
    kv_only.n_batch = 1;
    kv_only.n_threads = 1;
    for (int32_t i = 0; i < p->n_slots; i++)
        if ((st = smoe_ctx_init(e->model, i == 0 || e->unbatched ? &cp : &kv_only, &e->slots[i].ctx))) goto fail;
    e->n_ctx = smoe_ctx_n_ctx(e->slots[0].ctx);
    /* the runner's n_batch is STEP_BATCH, or less if the library caps it at the context */
    e->budget = e->unbatched ? INT32_MAX : e->n_ctx < STEP_BATCH ? e->n_ctx : STEP_BATCH;
    if (!e->unbatched && !(e->ids = malloc(sizeof(int32_t) * (size_t)e->budget))) {
        st = SMOE_ERR_NOMEM;
        goto fail;
    }
    e->st.n_slots = e->n_slots;
    *out = e;
    return SMOE_OK;
fail:
    engine_free(e);
    return st;
}

void engine_free(engine *e) {
    if (!e) return;
    engine_shutdown(e);
    for (int32_t i = 0; i < e->n_slots; i++) {
        smoe_ctx_free(e->slots[i].ctx);
        smoe_sampler_free(e->slots[i].smp);
        sbuf_free(&e->slots[i].gen);
    }
    free(e->slots);
    free(e->active);
    free(e->order);
    free(e->logits);
    free(e->seq_ctx);
    free(e->seq_n);
    free(e->ids);
    free(e->queue);
    smoe_tokenizer_free(e->tok);
    smoe_model_free(e->model);
    pthread_cond_destroy(&e->wake);
    pthread_mutex_destroy(&e->mu);
    free(e);
}

const smoe_model *engine_model(const engine *e) { return e->model; }
const smoe_tokenizer *engine_tokenizer(const engine *e) { return e->tok; }
int32_t engine_n_ctx(const engine *e) { return e->n_ctx; }
int32_t engine_n_slots(const engine *e) { return e->n_slots; }

/* ------------------------------------------------------------------ slots */

/* Put job j into the free slot s (under e->mu). */
static void slot_admit(engine *e, slot *s, engine_job *j) {
    smoe_sampler_free(s->smp);
    s->smp = NULL;
    smoe_ctx_reset(s->ctx);
    smoe_detok_init(&s->dt, e->tok);
    s->dt.at_start = j->p.trim_first_space;
    s->job = j;
    s->n_fed = 0;
    s->next = -1;
    s->n_in = 0;
    s->in_prompt = false;
    s->gen.len = 0;
    s->published = 0;
    s->n_gen = 0;
    s->finish = ENGINE_RUNNING;
    s->error[0] = '\0';
    j->state = JOB_RUNNING;
    if (smoe_sampler_init(&j->p.sampling, e->n_vocab, &s->smp)) {
        s->finish = ENGINE_FINISH_ERROR;
        snprintf(s->error, sizeof s->error, "bad sampling parameters: %s", smoe_last_error());
    }
}

/* Free slot s and end its job with the slot's finish (under e->mu). */
static void slot_retire(engine *e, slot *s) {
    engine_job *j = s->job;
    if (j->cancelled) e->st.jobs_cancelled++;
    else e->st.jobs_done++;
    j->n_gen = s->n_gen;
    job_end(j, s->finish, s->error);
    s->job = NULL;
    smoe_sampler_free(s->smp);
    s->smp = NULL;
    job_unref(j);
}

/* Append detokenized bytes to the slot's text (NUL bytes dropped: JSON strings here are
 * C strings) and end the job if a stop string now appears. Returns false when it stopped. */
static bool slot_add_text(slot *s, const char *buf, int64_t nb) {
    const engine_job *j = s->job;
    size_t old = s->gen.len;
    for (int64_t i = 0; i < nb; i++)
        if (buf[i] != '\0' && !sbuf_append(&s->gen, buf + i, 1)) {
            s->finish = ENGINE_FINISH_ERROR;
            snprintf(s->error, sizeof s->error, "out of memory");
            return false;
        }
    if (j->p.n_stop == 0 || s->gen.len == old) return true;
    size_t from = old >= j->stop_max ? old - (j->stop_max - 1) : 0, best = SIZE_MAX;
    for (int k = 0; k < j->p.n_stop; k++) {
        const char *hit = memmem(s->gen.p + from, s->gen.len - from, j->p.stop[k], strlen(j->p.stop[k]));
        if (hit && (size_t)(hit - s->gen.p) < best) best = (size_t)(hit - s->gen.p);
    }
    if (best == SIZE_MAX) return true;
    s->gen.len = best; /* the stop string is not part of the answer */
    s->gen.p[best] = '\0';
    s->finish = ENGINE_FINISH_STOP;
    return false;
}

/* End the job with finish f after flushing the detokenizer's held-back bytes. */
static void slot_finish(slot *s, engine_finish f) {
    char buf[64];
    int64_t nb = smoe_detok_flush(&s->dt, buf, sizeof buf);
    if (nb > 0 && !slot_add_text(s, buf, nb)) return; /* a stop string (or OOM) decided */
    s->finish = f;
}

/* The input an active slot wants this step: the rest of its prompt (at most PROMPT_CHUNK
 * tokens), or the token sampled last step. A slot whose context cannot take the token ends
 * with "length" and has no input. engine_plan may then cut the input to the step's budget. */
static void slot_prepare(engine *e, slot *s) {
    const engine_job *j = s->job;
    s->forward_ok = false;
    if (s->n_fed < j->n_prompt) {
        int32_t n = j->n_prompt - s->n_fed;
        s->in = j->prompt + s->n_fed;
        s->n_in = n < PROMPT_CHUNK ? n : PROMPT_CHUNK;
        s->in_prompt = true;
    } else {
        s->in = &s->next;
        s->n_in = 1;
        s->in_prompt = false;
    }
    int32_t room = e->n_ctx - smoe_ctx_n_past(s->ctx); /* submit checked that the prompt fits */
    if (s->n_in > room) s->n_in = room;
    if (s->n_in < 1) {
        s->n_in = 0;
        slot_finish(s, ENGINE_FINISH_LENGTH);
    }
}

/* Fit this step's inputs into the runner's batch (e->budget tokens). Decoding slots come
 * first, one token each; what is left is shared among the slots still feeding a prompt by
 * water-filling: taken in order of need, smallest first, each gets at most an equal share
 * of what remains, so a short prompt's unused share goes to the longer ones, and each gets
 * at least one token while any is left. Slots that get nothing sit the step out (n_in = 0)
 * and keep their place. Ties, and which decoding slots are left out in the rare step where
 * not all of them fit (more slots than the budget: a context shorter than STEP_BATCH and
 * than --parallel), rotate with the step counter, so it is not always the same slots. */
static void engine_plan(engine *e, slot **act, int n) {
    int64_t left = e->budget;
    const int start = (int)(e->rr++ % (uint32_t)n);
    int np = 0;
    for (int k = 0; k < n; k++) {
        slot *s = act[(start + k) % n];
        if (s->n_in == 0) continue;
        if (s->in_prompt) {
            int at = np++; /* insertion sort by need, stable in the rotated order */
            while (at > 0 && e->order[at - 1]->n_in > s->n_in) e->order[at] = e->order[at - 1], at--;
            e->order[at] = s;
        } else if (left > 0) {
            left--;
        } else {
            s->n_in = 0;
        }
    }
    for (int i = 0; i < np; i++) {
        slot *s = e->order[i];
        int64_t share = left / (np - i);
        if (share < 1) share = left > 0;
        if (s->n_in > share) s->n_in = (int32_t)share;
        left -= s->n_in;
    }
}

/* ================================================================== THE FORWARD STEP
 * Run every planned slot's input (s->in[0..n_in), at the slot's own position) and point
 * s->logits at the logits after its last token; s->forward_ok says whether it worked.
 *
 * Batched (the default): one smoe_ctx_decode_multi over all of them on the runner, the
 * tokens of every slot sharing each matmul and each expert's weights; each sequence's
 * logits land in its row of e->logits. engine_plan kept the tokens within the runner's
 * batch and every slot's context has room, so the call should not fail; if it does
 * anyway, nothing has changed (it validates before it runs), and each slot is tried on
 * its own so that only the slot at fault ends with the error.
 *
 * Unbatched (engine_params.unbatched, the previous engine, kept as a baseline): one
 * smoe_ctx_decode per slot, each on its own context and thread pool. */
static void engine_forward_step(engine *e, slot **act, int n) {
    int32_t n_seq = 0, n_ids = 0;
    for (int i = 0; i < n; i++) {
        slot *s = act[i];
        if (s->n_in == 0) continue;
        s->logits = e->logits + (size_t)n_seq * (size_t)e->n_vocab;
        e->order[n_seq] = s;
        e->seq_ctx[n_seq] = s->ctx;
        e->seq_n[n_seq++] = s->n_in;
        if (!e->unbatched) memcpy(e->ids + n_ids, s->in, sizeof(int32_t) * (size_t)s->n_in);
        n_ids += s->n_in;
    }
    if (n_seq == 0) return;
    smoe_ctx *runner = e->slots[0].ctx;
    if (!e->unbatched && smoe_ctx_decode_multi(runner, e->seq_ctx, n_seq, e->ids, e->seq_n, e->logits) == SMOE_OK) {
        for (int32_t i = 0; i < n_seq; i++) e->order[i]->forward_ok = true;
        return;
    }
    for (int32_t i = 0, off = 0; i < n_seq; off += e->seq_n[i++]) {
        slot *s = e->order[i];
        smoe_status st = e->unbatched ? smoe_ctx_decode(s->ctx, s->in, s->n_in, s->logits, false)
                                      : smoe_ctx_decode_multi(runner, &s->ctx, 1, e->ids + off, &s->n_in, s->logits);
        s->forward_ok = st == SMOE_OK;
        if (st) snprintf(s->error, sizeof s->error, "forward pass failed: %s", smoe_last_error());
    }
}

/* After the forward pass: finish the prompt or sample, detokenize and check the ends. */
static void slot_advance(engine *e, slot *s) {
    engine_job *j = s->job;
    if (s->finish || s->n_in == 0) return;
    if (!s->forward_ok) {
        s->finish = ENGINE_FINISH_ERROR;
        return;
    }
    if (s->in_prompt) {
        s->n_fed += s->n_in;
        if (s->n_fed < j->n_prompt) return;
        for (int32_t i = 0; i < j->n_prompt; i++) smoe_sampler_accept(s->smp, j->prompt[i]);
    }
    int32_t id;
    if (smoe_sampler_sample(s->smp, s->logits, &id)) {
        s->finish = ENGINE_FINISH_ERROR;
        snprintf(s->error, sizeof s->error, "sampling failed: %s", smoe_last_error());
        return;
    }
    if (!j->p.ignore_eos && (id == e->eos || id == j->p.eot)) {
        slot_finish(s, ENGINE_FINISH_STOP);
        return;
    }
    smoe_sampler_accept(s->smp, id);
    s->n_gen++;
    char buf[1024];
    int64_t nb = smoe_detok_push(&s->dt, id, buf, sizeof buf);
    if (nb < 0) {
        s->finish = ENGINE_FINISH_ERROR;
        snprintf(s->error, sizeof s->error, "cannot detokenize token %d", id);
        return;
    }
    if (!slot_add_text(s, buf, nb)) return;
    if (j->p.max_tokens >= 0 && s->n_gen >= j->p.max_tokens) {
        slot_finish(s, ENGINE_FINISH_LENGTH);
        return;
    }
    s->next = id;
}

/* How much of the slot's text is safe to send: all of it once the job ended; else all but
 * a tail that could still grow into a stop string, backed off to a UTF-8 boundary. */
static size_t slot_commit_point(const slot *s) {
    const engine_job *j = s->job;
    size_t len = s->gen.len;
    if (s->finish || j->p.n_stop == 0) return len;
    size_t hold = 0;
    for (int k = 0; k < j->p.n_stop; k++) {
        size_t n = strlen(j->p.stop[k]);
        for (size_t m = n - 1 < len ? n - 1 : len; m > hold; m--)
            if (memcmp(s->gen.p + len - m, j->p.stop[k], m) == 0) {
                hold = m;
                break;
            }
    }
    size_t c = len - hold;
    while (c > s->published && c < len && ((unsigned char)s->gen.p[c] & 0xC0) == 0x80) c--;
    return c;
}

/* Hand new text and the end (if any) to the job and wake its waiter (under e->mu). */
static void slot_publish(engine *e, slot *s) {
    engine_job *j = s->job;
    size_t c = slot_commit_point(s);
    bool changed = false;
    if (c > s->published) {
        if (!sbuf_append(&j->text, s->gen.p + s->published, c - s->published)) {
            s->finish = ENGINE_FINISH_ERROR;
            snprintf(s->error, sizeof s->error, "out of memory");
        }
        s->published = c;
        changed = true;
    }
    if (j->n_gen != s->n_gen) changed = true;
    j->n_gen = s->n_gen;
    if (s->finish) slot_retire(e, s);
    else if (changed) pthread_cond_broadcast(&j->cond);
}

static void *engine_main(void *arg) {
    engine *e = arg;
    pthread_mutex_lock(&e->mu);
    for (;;) {
        for (int32_t i = 0; i < e->n_slots; i++) {
            slot *s = &e->slots[i];
            if (s->job && s->job->cancelled) {
                s->finish = ENGINE_FINISH_ERROR;
                snprintf(s->error, sizeof s->error, "%s", e->stopping ? "the server is shutting down" : "cancelled");
                slot_retire(e, s);
            }
        }
        int n = 0;
        for (int32_t i = 0; i < e->n_slots; i++) {
            slot *s = &e->slots[i];
            if (!s->job && e->n_queued > 0) {
                engine_job *j = e->queue[0];
                memmove(e->queue, e->queue + 1, sizeof *e->queue * (size_t)--e->n_queued);
                slot_admit(e, s, j);
            }
            if (s->job) e->active[n++] = s;
        }
        e->st.active = n;
        e->st.queued = e->n_queued;
        if (n == 0) {
            if (e->stopping) break;
            pthread_cond_wait(&e->wake, &e->mu);
            continue;
        }
        pthread_mutex_unlock(&e->mu);

        for (int i = 0; i < n; i++) {
            slot *s = e->active[i];
            if (s->finish) s->n_in = 0; /* failed at admission */
            else slot_prepare(e, s);
        }
        engine_plan(e, e->active, n);
        int64_t fed_prompt = 0, fed_gen = 0;
        for (int i = 0; i < n; i++) {
            const slot *s = e->active[i];
            if (s->in_prompt) fed_prompt += s->n_in;
            else fed_gen += s->n_in;
        }
        double t0 = mono_s();
        engine_forward_step(e, e->active, n);
        double dt = mono_s() - t0;
        uint64_t prompt_done = 0, gen_before = 0, gen_after = 0;
        for (int i = 0; i < n; i++) {
            slot *s = e->active[i];
            bool was_prompt = s->in_prompt && s->n_in > 0;
            gen_before += (uint64_t)s->n_gen;
            slot_advance(e, s);
            gen_after += (uint64_t)s->n_gen;
            if (was_prompt && s->n_fed == s->job->n_prompt) prompt_done += (uint64_t)s->job->n_prompt;
        }

        pthread_mutex_lock(&e->mu);
        int64_t fed = fed_prompt + fed_gen;
        if (fed > 0) {
            e->st.prompt_s += dt * (double)fed_prompt / (double)fed;
            e->st.gen_s += dt * (double)fed_gen / (double)fed;
        }
        e->st.prompt_tokens += prompt_done;
        e->st.gen_tokens += gen_after - gen_before;
        for (int i = 0; i < n; i++) slot_publish(e, e->active[i]);
    }
    e->st.active = 0;
    e->st.queued = 0;
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

smoe_status engine_start(engine *e) {
    if (pthread_create(&e->thread, NULL, engine_main, e) != 0) return SMOE_ERR_NOMEM;
    e->started = true;
    return SMOE_OK;
}

void engine_shutdown(engine *e) {
    pthread_mutex_lock(&e->mu);
    e->stopping = true;
    for (int32_t i = 0; i < e->n_queued; i++) {
        job_end(e->queue[i], ENGINE_FINISH_ERROR, "the server is shutting down");
        job_unref(e->queue[i]);
    }
    e->n_queued = 0;
    for (int32_t i = 0; i < e->n_slots; i++)
        if (e->slots[i].job) e->slots[i].job->cancelled = true;
    pthread_cond_broadcast(&e->wake);
    pthread_mutex_unlock(&e->mu);
    if (e->started) pthread_join(e->thread, NULL);
    e->started = false;
}

/* ------------------------------------------------------------------ jobs */

engine_submit_result engine_submit(engine *e, const int32_t *prompt, int32_t n_prompt, const engine_job_params *p,
                                   engine_job **out) {
    *out = NULL;
    if (n_prompt < 1 || n_prompt >= e->n_ctx || p->n_stop < 0 || p->n_stop > ENGINE_MAX_STOP)
        return ENGINE_BAD_REQUEST;
    size_t stop_bytes = 1;
    for (int k = 0; k < p->n_stop; k++) {
        size_t n = strlen(p->stop[k]);
        if (n == 0 || n > ENGINE_MAX_STOP_LEN) return ENGINE_BAD_REQUEST;
        stop_bytes += n + 1;
    }
    engine_job *j = calloc(1, sizeof *j);
    if (!j) return ENGINE_NO_MEMORY;
    j->prompt = malloc(sizeof(int32_t) * (size_t)n_prompt);
    j->stop_store = malloc(stop_bytes);
    if (!j->prompt || !j->stop_store) {
        free(j->prompt);
        free(j->stop_store);
        free(j);
        return ENGINE_NO_MEMORY;
    }
    memcpy(j->prompt, prompt, sizeof(int32_t) * (size_t)n_prompt);
    j->n_prompt = n_prompt;
    j->p = *p;
    char *w = j->stop_store;
    for (int k = 0; k < p->n_stop; k++) {
        size_t n = strlen(p->stop[k]);
        memcpy(w, p->stop[k], n + 1);
        j->p.stop[k] = w;
        w += n + 1;
        if (n > j->stop_max) j->stop_max = n;
    }
    j->e = e;
    cond_init_monotonic(&j->cond);
    j->state = JOB_QUEUED;
    j->refs = 2;

    pthread_mutex_lock(&e->mu);
    engine_submit_result r = ENGINE_SUBMITTED;
    int32_t free_slots = 0;
    for (int32_t i = 0; i < e->n_slots; i++) free_slots += e->slots[i].job == NULL;
    if (e->stopping) r = ENGINE_SHUTTING_DOWN;
    else if (e->n_queued >= e->queue_cap + free_slots) r = ENGINE_QUEUE_FULL;
    else {
        e->queue[e->n_queued++] = j;
        e->st.queued = e->n_queued;
        pthread_cond_signal(&e->wake);
    }
    pthread_mutex_unlock(&e->mu);
    if (r != ENGINE_SUBMITTED) {
        job_free(j);
        return r;
    }
    *out = j;
    return r;
}

bool engine_job_poll(engine_job *j, size_t *pos, int timeout_ms, sbuf *out, engine_update *u) {
    engine *e = j->e;
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) dl.tv_sec++, dl.tv_nsec -= 1000000000L;
    bool ok = true;
    pthread_mutex_lock(&e->mu);
    while (j->text.len <= *pos && j->state != JOB_DONE)
        if (pthread_cond_timedwait(&j->cond, &e->mu, &dl) == ETIMEDOUT) break;
    u->len = 0;
    if (j->text.len > *pos) {
        ok = sbuf_append(out, j->text.p + *pos, j->text.len - *pos);
        if (ok) {
            u->len = j->text.len - *pos;
            *pos = j->text.len;
        }
    }
    u->finish = j->state == JOB_DONE ? j->finish : ENGINE_RUNNING;
    u->n_prompt = j->n_prompt;
    u->n_gen = j->n_gen;
    snprintf(u->error, sizeof u->error, "%s", j->error);
    pthread_mutex_unlock(&e->mu);
    return ok;
}

void engine_job_release(engine *e, engine_job *j) {
    if (!j) return;
    pthread_mutex_lock(&e->mu);
    if (j->state == JOB_QUEUED) {
        for (int32_t i = 0; i < e->n_queued; i++)
            if (e->queue[i] == j) {
                memmove(e->queue + i, e->queue + i + 1, sizeof *e->queue * (size_t)(e->n_queued - i - 1));
                e->n_queued--;
                break;
            }
        e->st.queued = e->n_queued;
        e->st.jobs_cancelled++;
        job_end(j, ENGINE_FINISH_ERROR, "cancelled");
        j->refs--; /* the engine's reference (the caller still holds one) */
    } else if (j->state == JOB_RUNNING) {
        j->cancelled = true; /* the engine retires it at the start of its next step */
    }
    job_unref(j);
    pthread_mutex_unlock(&e->mu);
}

void engine_get_stats(engine *e, engine_stats *st) {
    pthread_mutex_lock(&e->mu);
    *st = e->st;
    pthread_mutex_unlock(&e->mu);
}
