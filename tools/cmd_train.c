/*
 * cmd_train.c - `smoe train`: train a Mixtral-style MoE model from scratch on a token
 * file (`smoe prepare-data`), with any router and balancing loss of the library.
 *
 * Writes into --out DIR: log.jsonl (one JSON object per step), checkpoint.gguf (every
 * --save-every steps and at the end, atomically), model.gguf (the final model, for
 * `smoe run`). --resume continues from DIR/checkpoint.gguf exactly: batches are a
 * function of (seed, step), and the checkpoint holds the weights, the optimizer state,
 * the step and the RNG, so the losses are those of an uninterrupted run. Ctrl-C saves
 * a checkpoint and stops.
 *
 * What it does not do: no tokenizer training (`smoe tokenizer-train`), no tokenizing
 * (`smoe prepare-data`).
 */
#include "cli.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *TRAIN_HELP =
    "usage: smoe train --data FILE... --tokenizer TOK.gguf --out DIR [options]\n"
    "\n"
    "Train a Mixtral-style MoE language model from scratch (f32, AdamW, explicit\n"
    "backward pass, all threads). --data is a token file written by `smoe prepare-data`\n"
    "with the same tokenizer, or one or more text files (one sentence per line), which\n"
    "are tokenized once into DIR/data.bin (5 %% of the lines for validation). DIR gets\n"
    "log.jsonl (one JSON object per step), checkpoint.gguf and model.gguf (load it with\n"
    "`smoe run -m DIR/model.gguf`).\n"
    "\n"
    "model:\n"
    "      --dim N             embedding size (default 64)\n"
    "      --layers N          layers (default 2)\n"
    "      --heads N           attention heads (default 4)\n"
    "      --kv-heads N        key/value heads, divides heads (default 2)\n"
    "      --ffn N             hidden size of each expert (default 128)\n"
    "      --experts N         experts per layer (default 4)\n"
    "      --top-k N           experts per token (default 2)\n"
    "      --router NAME       topk (Mixtral, default), switch (top-1, capacity), softmax-topk,\n"
    "                          softmax-topk-norm, noisy-topk, expert-choice, attention (Yuan\n"
    "                          2.0-M32), sigmoid-bias (DeepSeek-V3); see docs/routers.md\n"
    "      --aux-loss C        load-balancing loss coefficient (default 0)\n"
    "      --aux-style S       switch (per layer, 1 at balance; default) or hf (pooled)\n"
    "      --z-loss C          router z-loss coefficient (default 0)\n"
    "      --capacity-factor F expert capacity factor, tokens beyond it dropped (default 0 = off)\n"
    "      --bias-rate G       sigmoid-bias update step (default 0.001)\n"
    "data:\n"
    "      --data FILE...      token file, or text files (repeat --data or list them)\n"
    "      --tokenizer FILE    GGUF with the tokenizer (`smoe tokenizer-train`)\n"
    "training:\n"
    "      --seq N             tokens per sequence (default 64)\n"
    "      --batch N           sequences per step (default 8)\n"
    "      --steps N           optimizer steps (default 1000)\n"
    "      --lr F              peak learning rate (default 1e-3)\n"
    "      --min-lr F          final learning rate of the cosine decay (default lr/10)\n"
    "      --warmup N          linear warm-up steps (default 100)\n"
    "      --weight-decay F    AdamW decoupled weight decay (default 0.1)\n"
    "      --clip F            gradient-norm clip, 0 = off (default 1)\n"
    "      --seed S            seed of the weights, the batches and the router noise (default 1)\n"
    "  -t, --threads N         threads (default: physical cores)\n"
    "      --eval-every N      validation loss every N steps and at the end (default 100)\n"
    "      --eval-batches N    validation batches per evaluation (default 8)\n"
    "      --save-every N      checkpoint every N steps (default: eval-every)\n"
    "      --out DIR           output directory (created; required)\n"
    "      --resume            continue from DIR/checkpoint.gguf (its settings win)\n"
    "      --stop-after N      stop after step N with a checkpoint (train in sessions; --resume\n"
    "                          continues)\n"
    "  -q, --quiet             no progress line\n"
    "  -h, --help              show this help\n";

static volatile sig_atomic_t g_stop;
static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

/* Append one line to the log and flush: a full disk shows up here, not at exit. */
static int log_line(FILE *f, const char *path, const char *line) {
    if (fputs(line, f) == EOF || fflush(f) != 0) {
        fprintf(stderr, "%s: writing %s: %s\n", g_cmd, path, strerror(errno ? errno : EIO));
        return 1;
    }
    return 0;
}

/* Keep the lines of log.jsonl with "step" <= last (a resumed run rewrites the rest). */
static int trim_log(const char *path, int64_t last) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *o = fopen(tmp, "w");
    if (!o) {
        fclose(f);
        fprintf(stderr, "%s: cannot write %s: %s\n", g_cmd, tmp, strerror(errno));
        return 1;
    }
    char line[8192];
    while (fgets(line, sizeof line, f)) {
        long long s;
        if (sscanf(line, "{\"step\": %lld", &s) == 1 && s <= last) fputs(line, o);
    }
    fclose(f);
    if (fclose(o) != 0 || rename(tmp, path) != 0) {
        fprintf(stderr, "%s: rewriting %s: %s\n", g_cmd, path, strerror(errno));
        return 1;
    }
    return 0;
}

static void fmt_eta(char *buf, size_t cap, double s) {
    if (s < 0 || s > 1e7) snprintf(buf, cap, "?");
    else if (s >= 3600) snprintf(buf, cap, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
    else snprintf(buf, cap, "%dm%02ds", (int)(s / 60), (int)s % 60);
}

/* Whether path starts with the token-file magic (else it is taken for text). */
static bool is_token_file(const char *path) {
    char magic[8] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    const bool yes = fread(magic, 1, sizeof magic, f) == sizeof magic && !memcmp(magic, "SMOETOKS", 8);
    fclose(f);
    return yes;
}

/* The token file to train on: data[0] if it is one, else the text files tokenized into
 * out_dir/data.bin (kept there and reused while its tokenizer matches). Checks that the
 * file was made with the tokenizer at tok_path. */
static int open_data(const char **data, int n_data, const char *tok_path, const char *out_dir, bool quiet,
                     smoe_data **out) {
    smoe_gguf *g = NULL;
    smoe_tokenizer *tok = NULL;
    int rc = 0;
    char bin[4200];
    snprintf(bin, sizeof bin, "%s/data.bin", out_dir);
    if (smoe_gguf_open(tok_path, &g) || smoe_tokenizer_from_gguf(g, &tok)) {
        rc = fail(tok_path);
        goto done;
    }
    const char *path = data[0];
    if (n_data > 1 || !is_token_file(data[0])) { /* text */
        for (int i = 0; i < n_data; i++)
            if (is_token_file(data[i])) {
                fprintf(stderr, "%s: %s is a token file; give either one token file or text files\n", g_cmd, data[i]);
                rc = 2;
                goto done;
            }
        smoe_data *old = NULL;
        if (smoe_data_open(bin, &old) == SMOE_OK &&
            smoe_data_get_info(old).tokenizer_fingerprint == smoe_tokenizer_fingerprint(tok)) {
            if (!quiet) fprintf(stderr, "%s: using %s (tokenized before)\n", g_cmd, bin);
        } else {
            smoe_data_prepare_params pp = smoe_data_prepare_default_params();
            if (!quiet) fprintf(stderr, "%s: tokenizing %d file(s) into %s\n", g_cmd, n_data, bin);
            if (smoe_data_prepare(&pp, tok, data, n_data, bin, NULL)) rc = fail("tokenizing the corpus");
        }
        smoe_data_free(old);
        path = bin;
    }
    if (!rc && smoe_data_open(path, out)) rc = fail(path);
    if (!rc && smoe_data_get_info(*out).tokenizer_fingerprint != smoe_tokenizer_fingerprint(tok)) {
        fprintf(stderr, "%s: %s was tokenized with another tokenizer than %s\n", g_cmd, path, tok_path);
        smoe_data_free(*out);
        *out = NULL;
        rc = 1;
    }
done:
    smoe_tokenizer_free(tok);
    smoe_gguf_free(g);
    return rc;
}

int cmd_train(int argc, char **argv) {
    smoe_train_config cfg = smoe_train_default_config();
    const char *tok_path = NULL, *out_dir = NULL;
    const char **data_paths = calloc((size_t)argc, sizeof *data_paths);
    int n_data = 0;
    if (!data_paths) return fail("out of memory");
    int32_t threads = 0;
    long eval_every = 100, eval_batches = 8, save_every = -1;
    bool resume = false, quiet = false, min_lr_set = false;
    long stop_after = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (is_help(a)) {
            fputs(TRAIN_HELP, stdout);
            free(data_paths);
            return 0;
        }
#define OPT(name) (!strcmp(a, name))
        if (OPT("--data")) data_paths[n_data++] = opt_value(argc, argv, &i);
        else if (OPT("--tokenizer")) tok_path = opt_value(argc, argv, &i);
        else if (OPT("--out")) out_dir = opt_value(argc, argv, &i);
        else if (OPT("--dim")) cfg.n_embd = (int32_t)parse_long(a, opt_value(argc, argv, &i), 2, 65536);
        else if (OPT("--layers")) cfg.n_layer = (int32_t)parse_long(a, opt_value(argc, argv, &i), 1, 256);
        else if (OPT("--heads")) cfg.n_head = (int32_t)parse_long(a, opt_value(argc, argv, &i), 1, 4096);
        else if (OPT("--kv-heads")) cfg.n_head_kv = (int32_t)parse_long(a, opt_value(argc, argv, &i), 1, 4096);
        else if (OPT("--ffn")) cfg.n_ff = (int32_t)parse_long(a, opt_value(argc, argv, &i), 1, 1 << 20);
        else if (OPT("--experts")) cfg.n_expert = (int32_t)parse_long(a, opt_value(argc, argv, &i), 1, 4096);
        else if (OPT("--top-k")) cfg.n_expert_used = (int32_t)parse_long(a, opt_value(argc, argv, &i), 1, 4096);
        else if (OPT("--router")) snprintf(cfg.router, sizeof cfg.router, "%s", opt_value(argc, argv, &i));
        else if (OPT("--aux-style")) snprintf(cfg.aux_style, sizeof cfg.aux_style, "%s", opt_value(argc, argv, &i));
        else if (OPT("--aux-loss")) cfg.aux_loss = parse_float(a, opt_value(argc, argv, &i), 0, 1e6);
        else if (OPT("--z-loss")) cfg.z_loss = parse_float(a, opt_value(argc, argv, &i), 0, 1e6);
        else if (OPT("--capacity-factor")) cfg.capacity_factor = parse_float(a, opt_value(argc, argv, &i), 0, 1e6);
        else if (OPT("--bias-rate")) cfg.bias_rate = parse_float(a, opt_value(argc, argv, &i), 0, 1e3);
        else if (OPT("--seq")) cfg.seq_len = (int32_t)parse_long(a, opt_value(argc, argv, &i), 1, 4096);
        else if (OPT("--batch")) cfg.batch = (int32_t)parse_long(a, opt_value(argc, argv, &i), 1, 1 << 20);
        else if (OPT("--steps")) cfg.steps = parse_long(a, opt_value(argc, argv, &i), 1, 1L << 40);
        else if (OPT("--lr")) cfg.lr = parse_float(a, opt_value(argc, argv, &i), 1e-12, 1e3);
        else if (OPT("--min-lr")) cfg.min_lr = parse_float(a, opt_value(argc, argv, &i), 0, 1e3), min_lr_set = true;
        else if (OPT("--warmup")) cfg.warmup = parse_long(a, opt_value(argc, argv, &i), 0, 1L << 40);
        else if (OPT("--weight-decay")) cfg.weight_decay = parse_float(a, opt_value(argc, argv, &i), 0, 1e3);
        else if (OPT("--clip")) cfg.clip = parse_float(a, opt_value(argc, argv, &i), 0, 1e12);
        else if (OPT("--seed")) cfg.seed = parse_u64(a, opt_value(argc, argv, &i));
        else if (OPT("-t") || OPT("--threads")) threads = (int32_t)parse_long(a, opt_value(argc, argv, &i), 1, 1024);
        else if (OPT("--eval-every")) eval_every = parse_long(a, opt_value(argc, argv, &i), 1, 1L << 40);
        else if (OPT("--eval-batches")) eval_batches = parse_long(a, opt_value(argc, argv, &i), 1, 1 << 20);
        else if (OPT("--save-every")) save_every = parse_long(a, opt_value(argc, argv, &i), 1, 1L << 40);
        else if (OPT("--resume")) resume = true;
        else if (OPT("--stop-after")) stop_after = parse_long(a, opt_value(argc, argv, &i), 1, 1L << 40);
        else if (OPT("-q") || OPT("--quiet")) quiet = true;
        else if (a[0] == '-' && a[1]) die_usage("unknown option '%s'", a);
        else if (n_data > 0) data_paths[n_data++] = a; /* more files after --data FILE */
        else die_usage("unexpected argument '%s' (data files go after --data)", a);
#undef OPT
    }
    if (!n_data) die_usage("--data FILE is required (a token file from `smoe prepare-data`, or text files)");
    if (!tok_path) die_usage("--tokenizer TOK.gguf is required");
    if (!out_dir) die_usage("--out DIR is required");
    if (!min_lr_set) cfg.min_lr = cfg.lr / 10;
    if (save_every < 0) save_every = eval_every;

    if (mkdir(out_dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "%s: cannot create %s: %s\n", g_cmd, out_dir, strerror(errno));
        free(data_paths);
        return 1;
    }
    smoe_data *data = NULL;
    int drc = open_data(data_paths, n_data, tok_path, out_dir, quiet, &data);
    const char *data_path = data_paths[0];
    free(data_paths);
    if (drc) return drc;
    smoe_data_info di = smoe_data_get_info(data);
    cfg.n_vocab = (int32_t)di.n_vocab;
    char ckpt[4096], model_path[4096], log_path[4096];
    if (strlen(out_dir) > 4000) die_usage("--out path too long");
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.gguf", out_dir);
    snprintf(model_path, sizeof model_path, "%s/model.gguf", out_dir);
    snprintf(log_path, sizeof log_path, "%s/log.jsonl", out_dir);

    smoe_trainer *tr = NULL;
    if (resume) {
        if (smoe_trainer_load(ckpt, threads, &tr)) {
            smoe_data_free(data);
            return fail("--resume");
        }
        if (smoe_trainer_config(tr)->n_vocab != cfg.n_vocab) {
            fprintf(stderr, "%s: %s has a %d-token vocabulary, the checkpoint %d\n", g_cmd, data_path, cfg.n_vocab,
                    smoe_trainer_config(tr)->n_vocab);
            smoe_trainer_free(tr);
            smoe_data_free(data);
            return 1;
        }
        cfg = *smoe_trainer_config(tr);
        if (trim_log(log_path, smoe_trainer_step_count(tr))) {
            smoe_trainer_free(tr);
            smoe_data_free(data);
            return 1;
        }
    } else if (smoe_trainer_init(&cfg, threads, &tr)) {
        smoe_data_free(data);
        return fail("configuration");
    }
    const int64_t BT = (int64_t)cfg.batch * cfg.seq_len;
    int32_t *tokens = malloc(sizeof(int32_t) * (size_t)BT), *targets = malloc(sizeof(int32_t) * (size_t)BT);
    FILE *logf = fopen(log_path, resume ? "a" : "w");
    int rc = 0;
    if (!tokens || !targets || !logf) {
        fprintf(stderr, "%s: %s\n", g_cmd, !logf ? strerror(errno) : "out of memory");
        rc = 1;
    }
    if (!rc && !quiet)
        fprintf(stderr,
                "%s: %lld parameters, %s router, %d x %d tokens per step, %lld train / %lld validation tokens%s\n",
                g_cmd, (long long)smoe_trainer_n_params(tr), cfg.router, cfg.batch, cfg.seq_len,
                (long long)di.n_train, (long long)di.n_val, resume ? ", resumed" : "");
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    const bool tty = !quiet && isatty(2);
    double t_start = now_s(), last_val = -1;
    const int64_t first = smoe_trainer_step_count(tr);
    while (!rc && smoe_trainer_step_count(tr) < cfg.steps && !g_stop &&
           (stop_after < 0 || smoe_trainer_step_count(tr) < stop_after)) {
        const int64_t step = smoe_trainer_step_count(tr) + 1;
        if (smoe_data_batch(data, false, cfg.seed, step, cfg.batch, cfg.seq_len, tokens, targets)) {
            rc = fail("batch");
            break;
        }
        smoe_train_stats s;
        const double t0 = now_s();
        if (smoe_trainer_step(tr, tokens, targets, &s)) {
            rc = fail("training");
            break;
        }
        const double tps = (double)BT / (now_s() - t0);
        char line[1024];
        int len = snprintf(line, sizeof line,
                           "{\"step\": %lld, \"loss\": %.6f, \"ce\": %.6f, \"aux_loss\": %.6f, \"z_loss\": %.6f, "
                           "\"lr\": %.6g, \"grad_norm\": %.4f, \"load_cv\": %.4f, \"dropped\": %.4f, "
                           "\"tokens_per_s\": %.1f",
                           (long long)step, s.loss, s.ce, s.aux, s.z, s.lr, s.grad_norm, s.load_cv, s.dropped, tps);
        if (step % eval_every == 0 || step == cfg.steps) {
            double sum = 0, ce = 0;
            for (long b = 0; b < eval_batches && !rc; b++) {
                if (smoe_data_batch(data, true, cfg.seed, b, cfg.batch, cfg.seq_len, tokens, targets) ||
                    smoe_trainer_eval(tr, tokens, targets, &ce))
                    rc = fail("evaluation");
                sum += ce;
            }
            last_val = sum / (double)eval_batches;
            len += snprintf(line + len, sizeof line - (size_t)len, ", \"val_loss\": %.6f", last_val);
        }
        snprintf(line + len, sizeof line - (size_t)len, "}\n");
        if (!rc) rc = log_line(logf, log_path, line);
        if (!rc && (step % save_every == 0 || step == cfg.steps) && smoe_trainer_save(tr, ckpt)) rc = fail("checkpoint");
        if (tty) {
            char eta[32], val[32] = "";
            const double per = (now_s() - t_start) / (double)(step - first);
            fmt_eta(eta, sizeof eta, per * (double)(cfg.steps - step));
            if (last_val >= 0) snprintf(val, sizeof val, " val %.4f", last_val);
            fprintf(stderr, "\rstep %lld/%lld  loss %.4f%s  lr %.2e  %.0f tok/s  ETA %s   ", (long long)step,
                    (long long)cfg.steps, s.loss, val, s.lr, tps, eta);
        }
    }
    if (tty) fputc('\n', stderr);
    const bool paused = !rc && !g_stop && smoe_trainer_step_count(tr) < cfg.steps; /* --stop-after */
    if (!rc && (g_stop || paused)) { /* interrupted or paused: keep what was done */
        if (smoe_trainer_save(tr, ckpt)) rc = fail("checkpoint");
        else if (!quiet || g_stop)
            fprintf(stderr, "%s: stopped at step %lld; checkpoint saved, continue with --resume\n", g_cmd,
                    (long long)smoe_trainer_step_count(tr));
        if (!rc && g_stop) rc = 130;
    }
    if (!rc && !paused) {
        if (smoe_trainer_export(tr, tok_path, model_path)) rc = fail("export");
        else if (!quiet)
            fprintf(stderr, "%s: done in %.1f s; model %s, validation loss %.4f\n", g_cmd, now_s() - t_start, model_path,
                    last_val);
    }
    if (logf && fclose(logf) != 0 && !rc) rc = log_line(stderr, log_path, "close failed\n");
    free(tokens);
    free(targets);
    smoe_trainer_free(tr);
    smoe_data_free(data);
    return rc;
}
