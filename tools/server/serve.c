/*
 * serve.c - `smoe serve`: an OpenAI-compatible HTTP server on libmicrohttpd.
 *
 * Threads: libmicrohttpd runs one thread per connection (bounded by --max-conns); those
 * threads parse requests, tokenize, submit jobs to the engine (engine.c) and then block
 * waiting for text: a plain answer waits for the whole job, a stream ("stream": true) is a
 * callback response that blocks for each next piece and writes it as a server-sent event.
 * While waiting, a connection thread checks every 200 ms whether its client has gone, and
 * cancels the job if so. The main thread only starts everything and waits for SIGINT or
 * SIGTERM, then stops accepting, ends the running jobs, lets their answers go out and
 * exits 0.
 *
 * Every request gets one log line on stderr (method, path, status, milliseconds) and is
 * counted for /metrics. Errors use OpenAI's {"error": {...}} shape (api.c).
 *
 * Not here: request validation and JSON shapes (api.c), chat templates (chat.c), slots and
 * batching (engine.c).
 */
#include "../cli.h"
#include "api.h"
#include "engine.h"
#include "util.h"

#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define POLL_MS 200 /* how often a waiting connection checks its client */

typedef enum route_id {
    R_HEALTH,
    R_METRICS,
    R_MODELS,
    R_MODEL,
    R_CHAT,
    R_COMPLETIONS,
    R_TOKENIZE,
    R_DETOKENIZE,
    R_OTHER, /* unknown paths share one metrics label */
} route_id;

static const struct route {
    const char *path;
    const char *method;
    bool prefix; /* path is a prefix (/v1/models/ID) */
    bool open;   /* no API key needed */
} ROUTES[R_OTHER] = {
    [R_HEALTH] = {"/health", "GET", false, true},
    [R_METRICS] = {"/metrics", "GET", false, false},
    [R_MODELS] = {"/v1/models", "GET", false, false},
    [R_MODEL] = {"/v1/models/", "GET", true, false},
    [R_CHAT] = {"/v1/chat/completions", "POST", false, false},
    [R_COMPLETIONS] = {"/v1/completions", "POST", false, false},
    [R_TOKENIZE] = {"/tokenize", "POST", false, false},
    [R_DETOKENIZE] = {"/detokenize", "POST", false, false},
};

#define MAX_COUNTERS 128 /* (endpoint, status) pairs counted for /metrics */

typedef struct server {
    api_server api;
    engine *eng;
    struct MHD_Daemon *daemon;
    const char *api_key;
    size_t max_body;
    unsigned timeout_s;
    atomic_bool stopping;
    atomic_int generating; /* generation requests not yet completed (drained at shutdown) */
    double t_start;
    pthread_mutex_t mu;    /* the counters below */
    struct {
        route_id route;
        int status;
        uint64_t n;
    } counters[MAX_COUNTERS];
    int n_counters;
} server;

/* One HTTP request (MHD's per-request pointer). */
typedef struct request {
    double t0;
    char method[16];
    char path[96];     /* printable copy for the log */
    route_id route;
    int status;        /* 0 until a response is queued */
    bool generation;   /* a job was submitted: the idle timeout is off until the request ends */
    bool too_big;
    sbuf body;
} request;

/* A streamed answer: MHD's content-reader state. */
typedef struct stream {
    server *s;
    struct MHD_Connection *conn;
    engine_job *job;
    api_gen g;
    sbuf out;          /* SSE bytes not yet handed to MHD: out.p[off..len) */
    size_t off;
    sbuf text;         /* new text from the job */
    size_t pos;        /* bytes of the job's text received */
    bool role_sent, ended;
} stream;

/* ------------------------------------------------------------------ responses */

/* Queue body (malloc'd, taken; NULL = out of memory) with an optional extra header. */
static enum MHD_Result queue_owned(struct MHD_Connection *c, request *r, int status, const char *ctype, char *body,
                                   const char *hdr, const char *hdr_val) {
    static const char OOM[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\",\"param\":null,"
                              "\"code\":null}}";
    struct MHD_Response *resp;
    if (body) {
        resp = MHD_create_response_from_buffer_with_free_callback(strlen(body), body, free);
    } else {
        status = 500;
        ctype = "application/json";
        hdr = NULL;
        resp = MHD_create_response_from_buffer(sizeof OOM - 1, (void *)OOM, MHD_RESPMEM_PERSISTENT);
    }
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (hdr) MHD_add_response_header(resp, hdr, hdr_val);
    r->status = status;
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result reply_json(struct MHD_Connection *c, request *r, int status, char *json) {
    return queue_owned(c, r, status, "application/json", json, NULL, NULL);
}

static enum MHD_Result reply_error(struct MHD_Connection *c, request *r, const api_error *e) {
    const char *hdr = NULL, *val = NULL;
    if (e->status == 401) hdr = MHD_HTTP_HEADER_WWW_AUTHENTICATE, val = "Bearer";
    if (e->status == 405) hdr = MHD_HTTP_HEADER_ALLOW, val = ROUTES[r->route].method;
    return queue_owned(c, r, e->status, "application/json", api_error_json(e), hdr, val);
}

static enum MHD_Result reply_err(struct MHD_Connection *c, request *r, int status, const char *type, const char *code,
                                 const char *msg) {
    api_error e;
    api_set_error(&e, status, type, code, NULL, "%s", msg);
    return reply_error(c, r, &e);
}

static enum MHD_Result reply_too_big(struct MHD_Connection *c, request *r, size_t max) {
    api_error e;
    api_set_error(&e, 413, "invalid_request_error", "request_too_large", NULL,
                  "the request body is larger than %zu bytes", max);
    return reply_error(c, r, &e);
}

/* True when the client closed its end (or the socket failed). */
static bool client_gone(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return false;
    char b;
    ssize_t n = recv(ci->connect_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* ------------------------------------------------------------------ metrics */

static void count_request(server *s, route_id route, int status) {
    pthread_mutex_lock(&s->mu);
    int i = 0;
    while (i < s->n_counters && !(s->counters[i].route == route && s->counters[i].status == status)) i++;
    if (i == s->n_counters && i < MAX_COUNTERS) {
        s->counters[i].route = route;
        s->counters[i].status = status;
        s->counters[i].n = 0;
        s->n_counters++;
    }
    if (i < s->n_counters) s->counters[i].n++;
    pthread_mutex_unlock(&s->mu);
}

static const char *route_label(route_id r) {
    return r == R_OTHER ? "other" : r == R_MODEL ? "/v1/models/{id}" : ROUTES[r].path;
}

/* Prometheus text exposition format. */
static char *metrics_text(server *s) {
    engine_stats st;
    engine_get_stats(s->eng, &st);
    sbuf b = {0};
    bool ok = sbuf_puts(&b, "# HELP smoe_requests_total HTTP requests by endpoint and status code.\n"
                            "# TYPE smoe_requests_total counter\n");
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < s->n_counters && ok; i++)
        ok = sbuf_printf(&b, "smoe_requests_total{endpoint=\"%s\",status=\"%d\"} %llu\n",
                         route_label(s->counters[i].route), s->counters[i].status,
                         (unsigned long long)s->counters[i].n);
    pthread_mutex_unlock(&s->mu);
#define METRIC(name, type, help, fmt, val) \
    ok = ok && sbuf_printf(&b, "# HELP " name " " help "\n# TYPE " name " " type "\n" name " " fmt "\n", val)
    METRIC("smoe_prompt_tokens_total", "counter", "Prompt tokens processed.", "%llu",
           (unsigned long long)st.prompt_tokens);
    METRIC("smoe_generated_tokens_total", "counter", "Tokens generated.", "%llu", (unsigned long long)st.gen_tokens);
    METRIC("smoe_prompt_seconds_total", "counter", "Engine time spent on prompts.", "%.6f", st.prompt_s);
    METRIC("smoe_generation_seconds_total", "counter", "Engine time spent generating.", "%.6f", st.gen_s);
    METRIC("smoe_prompt_tokens_per_second", "gauge", "Prompt tokens per second of prompt time, since start.", "%.3f",
           st.prompt_s > 0 ? (double)st.prompt_tokens / st.prompt_s : 0.0);
    METRIC("smoe_generation_tokens_per_second", "gauge",
           "Generated tokens per second of generation time (all slots together), since start.", "%.3f",
           st.gen_s > 0 ? (double)st.gen_tokens / st.gen_s : 0.0);
    METRIC("smoe_requests_finished_total", "counter", "Generation jobs that ran to their end.", "%llu",
           (unsigned long long)st.jobs_done);
    METRIC("smoe_requests_cancelled_total", "counter", "Generation jobs cancelled (client gone, or shutdown).", "%llu",
           (unsigned long long)st.jobs_cancelled);
    METRIC("smoe_queue_length", "gauge", "Requests waiting for a slot.", "%d", st.queued);
    METRIC("smoe_slots_active", "gauge", "Slots generating.", "%d", st.active);
    METRIC("smoe_slots_total", "gauge", "Slots (--parallel).", "%d", st.n_slots);
    METRIC("smoe_uptime_seconds", "gauge", "Seconds since the server started.", "%.3f", mono_s() - s->t_start);
#undef METRIC
    if (!ok) sbuf_free(&b);
    return b.p;
}

/* ------------------------------------------------------------------ streaming */

/* Append one server-sent event "data: JSON\n\n" (takes json). */
static bool sse(stream *st, char *json) {
    bool ok = json && sbuf_puts(&st->out, "data: ") && sbuf_puts(&st->out, json) && sbuf_puts(&st->out, "\n\n");
    free(json);
    return ok;
}

/* MHD asks for the next bytes: block until the job has some (or ends), format them. */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    stream *st = cls;
    const api_server *a = &st->s->api;
    while (st->off == st->out.len) {
        if (st->ended) return MHD_CONTENT_READER_END_OF_STREAM;
        st->out.len = st->off = 0;
        if (st->g.kind == API_CHAT && !st->role_sent) { /* OpenAI opens with the role */
            st->role_sent = true;
            if (!sse(st, api_gen_chunk(a, &st->g, true, NULL, ENGINE_RUNNING))) return MHD_CONTENT_READER_END_WITH_ERROR;
            continue;
        }
        engine_update u;
        st->text.len = 0;
        if (!engine_job_poll(st->job, &st->pos, POLL_MS, &st->text, &u)) return MHD_CONTENT_READER_END_WITH_ERROR;
        bool ok = true;
        if (u.len) ok = sse(st, api_gen_chunk(a, &st->g, false, st->text.p, ENGINE_RUNNING));
        if (u.finish == ENGINE_FINISH_ERROR) {
            api_error e;
            api_set_error(&e, 500, "server_error", NULL, NULL, "%s", u.error);
            ok = ok && sse(st, api_error_json(&e));
        } else if (u.finish) {
            ok = ok && sse(st, api_gen_chunk(a, &st->g, false, NULL, u.finish));
            if (st->g.include_usage) ok = ok && sse(st, api_gen_usage_chunk(a, &st->g, u.n_prompt, u.n_gen));
        }
        if (u.finish) {
            ok = ok && sbuf_puts(&st->out, "data: [DONE]\n\n");
            st->ended = true;
        }
        if (!ok) return MHD_CONTENT_READER_END_WITH_ERROR;
        if (!u.len && !u.finish && client_gone(st->conn)) return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = st->out.len - st->off;
    if (n > max) n = max;
    memcpy(buf, st->out.p + st->off, n);
    st->off += n;
    return (ssize_t)n;
}

static void stream_free(void *cls) {
    stream *st = cls;
    engine_job_release(st->s->eng, st->job); /* cancels the job if the client left early */
    api_gen_free(&st->g);
    sbuf_free(&st->out);
    sbuf_free(&st->text);
    free(st);
}

/* ------------------------------------------------------------------ endpoints */

static enum MHD_Result do_generate(server *s, struct MHD_Connection *c, request *r, api_kind kind) {
    api_gen g;
    api_error err;
    if (!api_parse_gen(&s->api, kind, r->body.p ? r->body.p : "", r->body.len, &g, &err)) {
        api_gen_free(&g);
        return reply_error(c, r, &err);
    }
    engine_job *job = NULL;
    engine_submit_result sr = engine_submit(s->eng, g.prompt.v, (int32_t)g.prompt.n, &g.jp, &job);
    if (sr != ENGINE_SUBMITTED) {
        api_gen_free(&g);
        if (sr == ENGINE_QUEUE_FULL)
            return reply_err(c, r, 503, "server_error", "server_overloaded",
                             "every slot is busy and the queue is full; retry later");
        if (sr == ENGINE_SHUTTING_DOWN)
            return reply_err(c, r, 503, "server_error", "shutting_down", "the server is shutting down");
        if (sr == ENGINE_BAD_REQUEST)
            return reply_err(c, r, 400, "invalid_request_error", "invalid_value", "the request cannot be run");
        return reply_err(c, r, 500, "server_error", NULL, "out of memory");
    }
    /* generation may take longer than the idle timeout; the client check guards instead */
    MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
    r->generation = true;
    atomic_fetch_add(&s->generating, 1);

    if (g.stream) {
        stream *st = calloc(1, sizeof *st);
        struct MHD_Response *resp =
            st ? MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_read, st, stream_free) : NULL;
        if (!resp) {
            free(st);
            engine_job_release(s->eng, job);
            api_gen_free(&g);
            return reply_err(c, r, 500, "server_error", NULL, "out of memory");
        }
        st->s = s;
        st->conn = c;
        st->job = job;
        st->g = g; /* the stream owns the request now; freed by stream_free */
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        r->status = 200;
        enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, resp);
        MHD_destroy_response(resp);
        return ret;
    }

    sbuf text = {0};
    size_t pos = 0;
    engine_update u = {0};
    bool ok = sbuf_append(&text, "", 0);
    while (ok) {
        ok = engine_job_poll(job, &pos, POLL_MS, &text, &u);
        if (!ok || u.finish) break;
        if (client_gone(c)) { /* nobody to answer: free the slot now */
            engine_job_release(s->eng, job);
            api_gen_free(&g);
            sbuf_free(&text);
            r->status = 499;
            return MHD_NO;
        }
    }
    engine_job_release(s->eng, job);
    enum MHD_Result ret;
    if (!ok) ret = reply_err(c, r, 500, "server_error", NULL, "out of memory");
    else if (u.finish == ENGINE_FINISH_ERROR && atomic_load(&s->stopping))
        ret = reply_err(c, r, 503, "server_error", "shutting_down", u.error);
    else if (u.finish == ENGINE_FINISH_ERROR) ret = reply_err(c, r, 500, "server_error", NULL, u.error);
    else ret = reply_json(c, r, 200, api_gen_response(&s->api, &g, text.p, u.finish, u.n_prompt, u.n_gen));
    api_gen_free(&g);
    sbuf_free(&text);
    return ret;
}

static enum MHD_Result dispatch(server *s, struct MHD_Connection *c, request *r, const char *url) {
    const char *body = r->body.p ? r->body.p : "";
    api_error err;
    char *json;
    switch (r->route) {
    case R_HEALTH: {
        engine_stats st;
        engine_get_stats(s->eng, &st);
        sbuf b = {0};
        sbuf_printf(&b, "{\"status\":\"ok\",\"slots_idle\":%d,\"slots_processing\":%d,\"queue\":%d}",
                    st.n_slots - st.active, st.active, st.queued);
        return reply_json(c, r, 200, b.p);
    }
    case R_METRICS: return queue_owned(c, r, 200, "text/plain; version=0.0.4", metrics_text(s), NULL, NULL);
    case R_MODELS: return reply_json(c, r, 200, api_models_json(&s->api));
    case R_MODEL: {
        const char *id = url + strlen(ROUTES[R_MODEL].path);
        if (api_model_accepted(&s->api, id)) return reply_json(c, r, 200, api_model_json(&s->api));
        api_set_error(&err, 404, "invalid_request_error", "model_not_found", "model",
                      "The model '%.100s' does not exist", id);
        return reply_error(c, r, &err);
    }
    case R_CHAT: return do_generate(s, c, r, API_CHAT);
    case R_COMPLETIONS: return do_generate(s, c, r, API_COMPLETION);
    case R_TOKENIZE:
        json = api_tokenize(&s->api, body, r->body.len, &err);
        return json ? reply_json(c, r, 200, json) : reply_error(c, r, &err);
    case R_DETOKENIZE:
        json = api_detokenize(&s->api, body, r->body.len, &err);
        return json ? reply_json(c, r, 200, json) : reply_error(c, r, &err);
    default: return reply_err(c, r, 404, "invalid_request_error", "not_found", "no such endpoint");
    }
}

/* Constant-time comparison of the Authorization header with "Bearer KEY". */
static bool authorized(const server *s, struct MHD_Connection *c) {
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) return false;
    h += 7;
    while (*h == ' ') h++;
    size_t a = strlen(h), b = strlen(s->api_key);
    unsigned char diff = a != b;
    for (size_t i = 0; i < b; i++) diff |= (unsigned char)(s->api_key[i] ^ (i < a ? h[i] : 0));
    return diff == 0;
}

static void copy_printable(char *dst, size_t cap, const char *src) {
    size_t i = 0;
    for (; src[i] && i + 1 < cap; i++) dst[i] = (src[i] > 32 && src[i] < 127) ? src[i] : '?';
    dst[i] = '\0';
}

/* The first call of a request: route it and reject what can be rejected from the headers
 * alone (unknown path, wrong method, no key, declared body too large). */
static enum MHD_Result on_headers(server *s, struct MHD_Connection *c, request *r, const char *url, const char *method) {
    bool path_known = false;
    r->route = R_OTHER;
    for (int i = 0; i < R_OTHER; i++) {
        const struct route *rt = &ROUTES[i];
        bool match = rt->prefix ? strncmp(url, rt->path, strlen(rt->path)) == 0 : strcmp(url, rt->path) == 0;
        if (!match) continue;
        path_known = true;
        r->route = (route_id)i;
        if (strcmp(method, rt->method) == 0) break;
    }
    if (!path_known) return reply_err(c, r, 404, "invalid_request_error", "not_found", "no such endpoint");
    if (strcmp(method, ROUTES[r->route].method) != 0) {
        api_error e;
        api_set_error(&e, 405, "invalid_request_error", "method_not_allowed", NULL, "%s %s is not allowed; use %s",
                      r->method, ROUTES[r->route].path, ROUTES[r->route].method);
        return reply_error(c, r, &e);
    }
    if (s->api_key && !ROUTES[r->route].open && !authorized(s, c))
        return reply_err(c, r, 401, "invalid_request_error", "invalid_api_key",
                         "missing or incorrect API key (send 'Authorization: Bearer KEY')");
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && strtoull(cl, NULL, 10) > s->max_body) return reply_too_big(c, r, s->max_body);
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    (void)version;
    server *s = cls;
    request *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r) return MHD_NO;
        *con_cls = r;
        r->t0 = mono_s();
        copy_printable(r->method, sizeof r->method, method);
        copy_printable(r->path, sizeof r->path, url);
        return on_headers(s, c, r, url, method);
    }
    if (r->status) { /* answered from the headers: drop whatever body comes */
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size) { /* a body chunk (chunked bodies have no Content-Length to check first) */
        if (!r->too_big && r->body.len + *upload_size > s->max_body) r->too_big = true;
        if (!r->too_big && !sbuf_append(&r->body, upload, *upload_size)) return MHD_NO;
        *upload_size = 0;
        return MHD_YES;
    }
    if (r->too_big) return reply_too_big(c, r, s->max_body);
    return dispatch(s, c, r, url);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    server *s = cls;
    request *r = *con_cls;
    if (!r) return;
    *con_cls = NULL;
    if (r->generation) {
        MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, s->timeout_s);
        atomic_fetch_sub(&s->generating, 1);
    }
    int status = r->status ? r->status : 499; /* 499: the client went away before an answer */
    count_request(s, r->route, status);
    fprintf(stderr, "%s %s %d %.1f ms%s\n", r->method, r->path, status, (mono_s() - r->t0) * 1e3,
            toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (connection closed early)");
    sbuf_free(&r->body);
    free(r);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = '\0';
    fprintf(stderr, "%s: http: %s\n", g_cmd, msg);
}

/* ------------------------------------------------------------------ command */

static const char *SERVE_HELP =
    "usage: smoe serve -m MODEL [options]\n"
    "\n"
    "Serve a GGUF model over HTTP with an OpenAI-compatible API: POST /v1/chat/completions,\n"
    "POST /v1/completions (both with \"stream\": true), GET /v1/models, GET /health,\n"
    "GET /metrics (Prometheus), POST /tokenize, POST /detokenize. One log line per request\n"
    "goes to stderr. SIGINT or SIGTERM stops it (exit 0). See docs/server.md.\n"
    "\n"
    "options:\n"
    "  -m, --model FILE      GGUF model file (required)\n"
    "      --host ADDR       address to listen on (default 127.0.0.1: this machine only)\n"
    "      --port N          TCP port; 0 = any free port, printed at start (default 8080)\n"
    "  -np, --parallel N     slots: requests generated at the same time (default 4)\n"
    "  -c, --ctx N           context length of each slot (default: min(model's, 4096))\n"
    "  -t, --threads N       worker threads (default: physical cores)\n"
    "      --api-key KEY     require 'Authorization: Bearer KEY' (all but /health)\n"
    "      --alias NAME      model id to serve (default: file name without .gguf)\n"
    "      --queue N         requests that may wait for a slot; more get 503 (default 32)\n"
    "      --max-body N      largest request body in bytes; more gets 413 (default 1048576)\n"
    "      --max-conns N     most open connections; more are closed at once (default 128)\n"
    "      --timeout S       close a connection idle for S seconds (default 30)\n"
    "      --no-batch        one forward pass per slot per step instead of one for all\n"
    "                        slots (the engine before batching; a benchmark baseline)\n"
    "  -h, --help            show this help\n";

int cmd_serve(int argc, char **argv) {
    const char *model_path = NULL, *host = "127.0.0.1", *api_key = NULL, *alias = NULL;
    bool no_batch = false;
    long port = 8080, parallel = 4, n_ctx = 0, threads = smoe_default_threads(), queue = 32, max_conns = 128,
         timeout = 30, max_body = 1 << 20;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (is_help(a)) { fputs(SERVE_HELP, stdout); return 0; }
        else if (!strcmp(a, "-m") || !strcmp(a, "--model")) model_path = opt_value(argc, argv, &i);
        else if (!strcmp(a, "--host")) host = opt_value(argc, argv, &i);
        else if (!strcmp(a, "--port")) port = parse_long(a, opt_value(argc, argv, &i), 0, 65535);
        else if (!strcmp(a, "-np") || !strcmp(a, "--parallel")) parallel = parse_long(a, opt_value(argc, argv, &i), 1, 256);
        else if (!strcmp(a, "-c") || !strcmp(a, "--ctx") || !strcmp(a, "--ctx-size"))
            n_ctx = parse_long(a, opt_value(argc, argv, &i), 0, 1 << 24);
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) threads = parse_long(a, opt_value(argc, argv, &i), 1, 1024);
        else if (!strcmp(a, "--api-key")) api_key = opt_value(argc, argv, &i);
        else if (!strcmp(a, "--alias")) alias = opt_value(argc, argv, &i);
        else if (!strcmp(a, "--queue")) queue = parse_long(a, opt_value(argc, argv, &i), 0, 1 << 20);
        else if (!strcmp(a, "--max-body")) max_body = parse_long(a, opt_value(argc, argv, &i), 1, 1L << 30);
        else if (!strcmp(a, "--max-conns")) max_conns = parse_long(a, opt_value(argc, argv, &i), 1, 1 << 20);
        else if (!strcmp(a, "--timeout")) timeout = parse_long(a, opt_value(argc, argv, &i), 1, 86400);
        else if (!strcmp(a, "--no-batch")) no_batch = true;
        else die_usage("unknown option '%s'", a);
    }
    if (!model_path) die_usage("missing -m MODEL");
    if (api_key && !*api_key) die_usage("--api-key must not be empty");
    if (alias && (!*alias || strlen(alias) >= sizeof ((api_server *)0)->model_id)) die_usage("--alias: bad name");

    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai = NULL;
    char port_s[16];
    snprintf(port_s, sizeof port_s, "%ld", port);
    int gai = getaddrinfo(host, port_s, &hints, &ai);
    if (gai != 0) die_usage("--host '%s': %s", host, gai_strerror(gai));

    /* SIGINT/SIGTERM are taken by sigwait in this thread only: block them before any
     * thread starts (threads inherit the mask). Writes to closed sockets must not kill us. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    server *s = calloc(1, sizeof *s);
    if (!s) {
        freeaddrinfo(ai);
        fprintf(stderr, "%s: out of memory\n", g_cmd);
        return 1;
    }
    pthread_mutex_init(&s->mu, NULL);
    s->t_start = mono_s();
    s->api_key = api_key;
    s->max_body = (size_t)max_body;
    s->timeout_s = (unsigned)timeout;
    int rc = 1;
    engine_params ep = {.model_path = model_path,
                        .n_slots = (int32_t)parallel,
                        .n_ctx = (int32_t)n_ctx,
                        .n_threads = (int32_t)threads,
                        .queue_cap = (int32_t)queue,
                        .unbatched = no_batch};
    if (engine_open(&ep, &s->eng)) {
        rc = fail("cannot load model");
        goto out;
    }
    api_server *a = &s->api;
    a->eng = s->eng;
    a->tok = engine_tokenizer(s->eng);
    a->n_ctx = engine_n_ctx(s->eng);
    a->n_vocab = smoe_tokenizer_n_vocab(a->tok);
    a->created = unix_s();
    chat_template_init(&a->tmpl, engine_model(s->eng), a->tok);
    const char *base = strrchr(model_path, '/');
    base = base ? base + 1 : model_path;
    snprintf(a->file_name, sizeof a->file_name, "%s", base);
    snprintf(a->model_id, sizeof a->model_id, "%s", alias ? alias : base);
    size_t idl = strlen(a->model_id);
    if (!alias && idl > 5 && strcmp(a->model_id + idl - 5, ".gguf") == 0) a->model_id[idl - 5] = '\0';
    if (a->tmpl.format == CHAT_FORMAT_UNKNOWN)
        fprintf(stderr, "%s: warning: the model's chat template is not one smoe knows; /v1/chat/completions will "
                        "fail (use /v1/completions)\n", g_cmd);
    if (engine_start(s->eng)) {
        fprintf(stderr, "%s: cannot start the engine thread\n", g_cmd);
        goto out;
    }
    /* MHD_USE_AUTO picks poll() here: select() would cap file descriptors at FD_SETSIZE */
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    s->daemon = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
                                 NULL, MHD_OPTION_SOCK_ADDR, ai->ai_addr, MHD_OPTION_CONNECTION_TIMEOUT,
                                 (unsigned)timeout, MHD_OPTION_CONNECTION_LIMIT, (unsigned)max_conns,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_END);
    if (!s->daemon) {
        fprintf(stderr, "%s: cannot listen on %s port %ld (in use, or not an address of this machine?)\n", g_cmd, host,
                port);
        goto out;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    fprintf(stderr, "%s: model '%s' (%s chat format%s), %ld slots of %d tokens, %ld threads%s\n", g_cmd,
            a->model_id, chat_format_name(a->tmpl.format), a->tmpl.from_file ? "" : ", default", parallel, a->n_ctx,
            threads, no_batch ? ", unbatched" : "");
    fprintf(stderr, "%s: listening on http://%s%s%s:%u\n", g_cmd, ai->ai_family == AF_INET6 ? "[" : "", host,
            ai->ai_family == AF_INET6 ? "]" : "", di ? (unsigned)di->port : (unsigned)port);

    int sig = 0;
    while (sigwait(&sigs, &sig) != 0) {}
    fprintf(stderr, "%s: %s: shutting down\n", g_cmd, sig == SIGINT ? "SIGINT" : "SIGTERM");
    atomic_store(&s->stopping, true);
    MHD_socket lsock = MHD_quiesce_daemon(s->daemon); /* no new connections */
    engine_shutdown(s->eng);                          /* running jobs end; their waiters answer */
    for (int i = 0; i < 500 && atomic_load(&s->generating) > 0; i++) usleep(10000); /* <= 5 s to send */
    MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
    if (lsock != MHD_INVALID_SOCKET) close(lsock);
    rc = 0;
out:
    if (s->daemon) MHD_stop_daemon(s->daemon);
    engine_free(s->eng);
    pthread_mutex_destroy(&s->mu);
    free(s);
    freeaddrinfo(ai);
    return rc;
}
