/*
 * routes_report.h - the analysis behind `smoe routes`: an accumulator of per-token expert
 * routing (every MoE layer, grouped into named domains), the statistics computed from it
 * (expert shares, Mixtral's consecutive-token repeat rates with their random-routing
 * baselines, load balance), and the two reports: routes.json and a self-contained
 * index.html. The formulas are in docs/routes.md.
 *
 * What it does not do: run the model (tools/cmd_routes.c feeds it), print messages, or
 * exit; the writers return 0 or -1 and the caller reports the error.
 */
#ifndef SMOE_ROUTES_REPORT_H
#define SMOE_ROUTES_REPORT_H

#include "smoe.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* One domain: the tokens of one or more inputs given the same label. */
typedef struct routes_domain {
    char *label;
    char **sources;       /* the input files, in order */
    int32_t n_sources;
    int64_t tokens;       /* tokens counted (BOS excluded) */
    int64_t windows;      /* context windows they were run in */
    int64_t pairs;        /* consecutive (t, t+1) pairs inside one window */
    int64_t *count;       /* [L][E] assignments (each token gives K) */
    int64_t *first;       /* [L][E] first choices (each token gives 1) */
    int64_t *same_first;  /* [L] pairs with the same first-choice expert */
    int64_t *overlap;     /* [L] pairs whose top-K sets share an expert */
    int32_t n_sample;     /* tokens kept for the HTML sample (the domain's first ones) */
    int32_t *sample_tok;  /* [S] token ids */
    int32_t *sample_ids;  /* [S][L][K] experts, highest first */
    float *sample_w;      /* [S][L][K] gate weights */
} routes_domain;

typedef struct routes_acc {
    int32_t n_layer;      /* L */
    int32_t n_expert;     /* E */
    int32_t k;            /* K */
    int32_t sample_cap;   /* S: tokens per domain kept for the HTML sample */
    int32_t n_domain, cap_domain;
    routes_domain *dom;
} routes_acc;

/* NULL when out of memory. */
routes_acc *routes_acc_new(int32_t n_layer, int32_t n_expert, int32_t k, int32_t sample_cap);
void routes_acc_free(routes_acc *a);
/* The index of the domain named label, created if new; source (a file name, may be NULL)
 * is added to its sources. -1 when out of memory. */
int32_t routes_acc_domain(routes_acc *a, const char *label, const char *source);
/* Count one window's n consecutive tokens (tok[n]) into domain dom. Layer l's routing of
 * token t is ids[l * layer_stride + t * K + j] and w[...] (j = 0..K-1, highest first).
 * Consecutive pairs are counted inside this call only: windows never pair up. */
void routes_acc_add(routes_acc *a, int32_t dom, const int32_t *tok, int32_t n, const int32_t *ids, const float *w,
                    size_t layer_stride);

/* Statistics of one layer over one domain (dom >= 0) or all of them (dom = -1).
 * Rates are NAN without pairs; the balance measures are NAN without tokens. */
typedef struct routes_stats {
    int64_t tokens, pairs, same_first, overlap;
    double same_first_rate;  /* same_first / pairs */
    double overlap_rate;     /* overlap / pairs */
    double max_over_mean;    /* max_e count / mean_e count */
    double cv;               /* population std of the counts / their mean */
    double entropy;          /* -sum share ln share, nats */
    double entropy_norm;     /* entropy / ln E */
    int32_t n_unused;        /* experts with no assignment */
} routes_stats;

/* Fills st, and count[E] / first[E] (the assignments and first choices per expert). */
void routes_stats_of(const routes_acc *a, int32_t dom, int32_t layer, routes_stats *st, int64_t *count,
                     int64_t *first);
/* Random routing (each token's K experts a uniform K-subset, independently; the first
 * choice uniform): P(same first) = 1/E, P(top-K sets meet) = 1 - C(E-K,K)/C(E,K). */
double routes_baseline_first(int32_t n_expert);
double routes_baseline_overlap(int32_t n_expert, int32_t k);

/* What the reports say about the run. */
typedef struct routes_meta {
    const char *model;            /* model path */
    int32_t window;               /* context window in tokens */
    bool bos;                     /* BOS fed first in each window of text (not counted) */
    const int32_t *sample_layers; /* layers shown token-coloured in index.html */
    int32_t n_sample_layers;
} routes_meta;

/* Write routes.json / index.html to f. 0, or -1 when a write failed (errno set). */
int routes_write_json(const routes_acc *a, const routes_meta *m, FILE *f);
int routes_write_html(const routes_acc *a, const routes_meta *m, const smoe_tokenizer *tok, FILE *f);

/* UTF-8 helpers shared by the writers. Length of the well-formed sequence at s[0..n):
 * 1-4, 0 if s[0] starts no valid sequence, -1 if it is a valid but truncated prefix. */
int routes_utf8_seq(const unsigned char *s, size_t n);
/* s[0..n) as the contents of a JSON string (quotes not included); invalid UTF-8 becomes
 * U+FFFD. */
void routes_json_str(FILE *f, const char *s, size_t n);

#endif /* SMOE_ROUTES_REPORT_H */
