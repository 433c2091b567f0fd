/* bert_model.h — model kind `bert`: BERT-family encoders loaded from an
 * unmodified Hugging Face directory (config.json, model.safetensors,
 * tokenizer files, optional sentence-transformers modules). Weights are
 * FP32 host arrays (converted from F16/BF16 at load). Also the request
 * contract and the per-batch sequence packing shared by every bert backend.
 * Not a backend: the forward pass lives in bert_cpu.c. */
#ifndef KINFER_BERT_MODEL_H
#define KINFER_BERT_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "kinfer/kinfer_model.h"
#include "model_registry.h"
#include "ops/bert_ops.h"
#include "tokenizer/tokenizer_wordpiece.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Sanity bounds on config values (file input). */
#define BERT_MAX_HIDDEN 8192
#define BERT_MAX_LAYERS 128
#define BERT_MAX_POSITIONS 8192
#define BERT_MAX_LABELS 4096

typedef struct bert_layer {
    float *qkv_w; /* [3H, H]: query, key, value rows stacked */
    float *qkv_b; /* [3H] */
    float *out_w; /* [H, H] attention output */
    float *out_b;
    float *ln1_g, *ln1_b; /* attention LayerNorm [H] */
    float *ffn1_w;        /* [I, H] intermediate */
    float *ffn1_b;        /* [I] */
    float *ffn2_w;        /* [H, I] output */
    float *ffn2_b;        /* [H] */
    float *ln2_g, *ln2_b; /* output LayerNorm [H] */
} bert_layer;

typedef struct bert_model {
    char *dir;
    /* config.json */
    uint32_t hidden, layers, heads, intermediate, vocab, max_positions, type_vocab;
    float ln_eps;
    bool classifier; /* BertForSequenceClassification */
    uint32_t num_labels;
    char **labels; /* [num_labels] from id2label ("LABEL_i" when absent) */
    kinfer_str *label_strs;
    /* sentence-transformers (defaults for a plain HF directory) */
    uint32_t max_seq_len;
    unsigned pooling; /* BERT_POOL_* bits */
    uint32_t out_dim; /* hidden x number of pooling modes */
    bool normalize;   /* Normalize module present: default of the parameter */
    /* weights, FP32, owned */
    float *word_emb; /* [vocab, H] */
    float *pos_emb;  /* [max_positions, H] */
    float *type_emb; /* [type_vocab, H] */
    float *emb_ln_g, *emb_ln_b;
    bert_layer *layer;
    float *pooler_w, *pooler_b; /* [H, H], [H]: classifiers only */
    float *cls_w, *cls_b;       /* [labels, H], [labels] */
    kinfer_dtype file_dtype;
    int cpu_threads;
    kinfer_tokenizer *tok;
    char precision[8]; /* "fp32" | "fp16" | "bf16" | "int8" (kinfer_device.h) */
} bert_model;

/* bert_config.c: config.json and the sentence-transformers files into the
 * scalar fields of m (not the weights). Unsupported architectures, model
 * types, activations, position embeddings and modules are
 * KINFER_ERR_UNSUPPORTED naming them. */
kinfer_err bert_config_load(bert_model *m, kinfer_error *err);

/* bert_weights.c: model.safetensors into the weight fields (names with or
 * without the "bert." prefix; F32/F16/BF16). Errors name tensor and shape. */
kinfer_err bert_weights_load(bert_model *m, kinfer_error *err);
void bert_weights_free(bert_model *m);

kinfer_err bert_model_load(const kinfer_model_options *opts, bert_model **out, kinfer_error *err);
void bert_model_destroy(bert_model *m);
void bert_model_describe(const bert_model *m, char *buf, size_t buflen);

/* --- the request contract (bert_request.c) ---------------------------------
 * Inputs, either:
 *   one STRING tensor [n] (any name) of UTF-8 texts, n >= 1; or
 *   INT64 `input_ids` [n, seq] with optional INT64 `attention_mask` (0/1) and
 *   `token_type_ids` [n, seq]; seq <= max_position_embeddings.
 * Parameters: normalize=true|false (default: the model's Normalize module),
 *   truncate=true|false (default true: cut texts at max_seq_length; false:
 *   INVALID_REQUEST for longer texts).
 * Outputs: `embedding` FP32 [n, out_dim]; classifiers add `logits` FP32
 *   [n, labels] and `label` STRING [n] (argmax through id2label).
 * cost: rows = n, max_len = longest sequence, tokens = n x max_len. */
kinfer_err bert_check_request(const bert_model *m, const kinfer_tensor *inputs, size_t ninputs,
                              const kinfer_param *params, size_t nparams, kinfer_request_cost *cost,
                              kinfer_error *err);

/* A batch packed without padding: sequence s owns tokens
 * [seq_start[s], seq_start[s+1]). Grown on demand, never shrunk, so a
 * replica allocates only when a batch is larger than any before it. */
typedef struct bert_packed {
    int32_t *ids, *pos, *types; /* [cap_tokens] */
    uint32_t *seq_start;        /* [cap_seqs + 1] */
    uint32_t *seq_item;         /* [cap_seqs]: index of the batch item */
    bool *item_normalize;       /* [cap_items] */
    uint32_t *item_first;       /* [cap_items]: first sequence of the item */
    uint32_t ntokens, nseqs, max_len;
    size_t cap_tokens, cap_seqs, cap_items;
    int32_t *scratch; /* [max_seq_len]: tokenizer output */
} bert_packed;

void bert_packed_free(bert_packed *p);
/* Re-reads every item (tokenizing texts), packs the good ones; an item that
 * fails gets status INVALID_REQUEST and contributes no sequence. Returns
 * NOMEM/INVALID_ARG only for whole-batch failures. */
kinfer_err bert_batch_pack(const bert_model *m, kinfer_batch_item *items, size_t nitems,
                           bert_packed *p, kinfer_error *err);
/* Points each good item's outputs at rows of the replica-owned `pooled`
 * [nseqs, out_dim], `logits` [nseqs, labels] and `labels` [nseqs]. */
void bert_batch_set_outputs(const bert_model *m, kinfer_batch_item *items, size_t nitems,
                            const bert_packed *p, const float *pooled, const float *logits,
                            const kinfer_str *labels);

/* CPU backend (bert_cpu.c). The model must outlive the replica. */
kinfer_err bert_cpu_replica_new(const bert_model *m, uint32_t max_rows, kinfer_replica_impl **out,
                                kinfer_error *err);

extern const kinfer_model_kind_ops bert_kind_ops;

#ifdef __cplusplus
}
#endif
#endif
