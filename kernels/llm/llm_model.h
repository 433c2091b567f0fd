/* llm_model.h — model kind `llm`: Llama-family decoders (RMSNorm, RoPE with
 * the model's theta and scaling, grouped-query attention, SwiGLU, tied or
 * separate output head) loaded from a GGUF file (quantized weights used in
 * place from the mapping) or a Hugging Face directory (config.json,
 * model.safetensors in F32/F16/BF16, tokenizer.json, tokenizer_config.json,
 * generation_config.json). Holds the weights as typed matrices, the BPE
 * tokenizer and the chat template; the generative seam of kinfer_model.h
 * (tokenize, token bytes, gen info) is answered here, the forward pass
 * over the paged KV pool by the backends (llm_cpu.c; a CUDA twin can
 * follow the same structure: llm_weight is the unit it uploads). */
#ifndef KINFER_LLM_MODEL_H
#define KINFER_LLM_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "formats/gguf.h"
#include "formats/safetensors.h"
#include "kinfer/kinfer_model.h"
#include "model_registry.h"
#include "ops/llm_ops.h"
#include "ops/paged_kv.h"
#include "ops/quant.h"
#include "tokenizer/bpe.h"
#include "tokenizer/chat_template.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Sanity bounds on file values: far above any model this kind targets,
 * low enough that sizes computed from them cannot overflow. */
#define LLM_MAX_LAYERS 512
#define LLM_MAX_DIM 65536
#define LLM_MAX_HEADS 1024
#define LLM_MAX_VOCAB (1u << 22)
#define LLM_MAX_CONTEXT (1u << 22)
/* Defaults of the kind's options. */
#define LLM_DEFAULT_KV_BLOCK_TOKENS 16

/* One weight matrix [rows, cols] (y = x . W^T takes x [., cols] to
 * [., rows]), rows packed back to back in `type`, as GGUF stores {cols,
 * rows} and safetensors [rows, cols]. Data is borrowed from the mapped
 * file, or from llm_model.owned. */
typedef struct llm_weight {
    const void *data;
    kinfer_qtype type;
    uint32_t rows, cols;
    size_t row_bytes;
    const char *name; /* the file's tensor name, for messages */
} llm_weight;

typedef struct llm_layer {
    const float *attn_norm, *ffn_norm; /* [d_model] FP32 */
    llm_weight wq, wk, wv, wo;         /* [n_head*hd, d], [n_kv*hd, d] x2, [d, n_head*hd] */
    llm_weight gate, up, down;         /* [n_ff, d] x2, [d, n_ff] */
} llm_layer;

typedef struct llm_config {
    uint32_t n_layer, d_model, n_ff, n_head, n_head_kv, head_dim, n_rot, vocab;
    uint32_t ctx_train; /* the model's own context length (0 = unknown) */
    float rms_eps;
    kinfer_rope_params rope;
    kinfer_rope_mode rope_mode; /* NORM for GGUF weights, NEOX for HF ones */
    bool tied;                  /* output head = token embedding */
} llm_config;

typedef struct llm_model {
    char *path;
    bool gguf_file; /* else an HF directory */
    llm_config cfg;
    /* options, resolved */
    uint32_t context_length;  /* min(option, ctx_train) */
    uint32_t kv_block_tokens; /* T */
    int cpu_threads;
    char precision[8];
    /* weights */
    llm_weight tok_embd; /* [vocab, d] */
    llm_weight output;   /* [vocab, d]: tok_embd when tied */
    const float *output_norm;
    llm_layer *layers;
    const char *file_type; /* "Q4_1" style summary of the matrices, for describe() */
    kinfer_gguf *gguf;
    kinfer_safetensors *st;
    void **owned; /* converted or re-aligned tensors */
    size_t nowned, cap_owned;
    /* text */
    kinfer_bpe *tok;
    kinfer_chat_template *tmpl; /* NULL: the model has no chat template */
    char *bos_text, *eos_text;  /* template variables (NULL = undefined) */
    kinfer_gen_info info;
    kinfer_kv_layout kv; /* what a CPU replica's pool holds */
} llm_model;

/* llm_model.c */
kinfer_err llm_model_load(const kinfer_model_options *opts, llm_model **out, kinfer_error *err);
void llm_model_destroy(llm_model *m);
/* "llm llama 30L d576 9/3 heads q4_1 ctx 8192 vocab 49152" */
void llm_model_describe(const llm_model *m, char *buf, size_t buflen);
/* Keeps a malloc'd buffer until the model is destroyed. */
kinfer_err llm_model_own(llm_model *m, void *p, kinfer_error *err);
/* Checks the config (bounds, divisibility) and every weight's shape; fills
 * info and kv. Errors name the file. */
kinfer_err llm_model_finish(llm_model *m, kinfer_error *err);

/* llm_gguf.c: config, weights, tokenizer and template from a GGUF file. */
kinfer_err llm_gguf_load(llm_model *m, kinfer_error *err);
/* llm_hf.c: the same from a Hugging Face directory. */
kinfer_err llm_hf_load(llm_model *m, kinfer_error *err);

/* llm_request.c: the request contract.
 * check_request inputs: one STRING tensor "prompt" with one element, or
 * two STRING tensors "role" and "content" of equal length n >= 1 (chat
 * messages, rendered by the template). Parameters are the engine's
 * (generation options) and ignored here. cost: rows 1, tokens = max_len =
 * prompt tokens. Errors: INVALID_REQUEST naming the problem. */
kinfer_err llm_check_request(const llm_model *m, const kinfer_tensor *inputs, size_t ninputs,
                             const kinfer_param *params, size_t nparams, kinfer_request_cost *cost,
                             kinfer_error *err);
/* kinfer_model_gen_tokenize of kind llm. */
kinfer_err llm_tokenize(const llm_model *m, kinfer_str prompt, const kinfer_chat_message *messages,
                        size_t nmessages, int32_t **ids, size_t *nids, kinfer_error *err);

/* llm_cpu.c: the CPU replica. The model must outlive it. max_rows = most
 * tokens per step. */
kinfer_err llm_cpu_replica_new(const llm_model *m, uint32_t max_rows, kinfer_replica_impl **out,
                               kinfer_error *err);

extern const kinfer_model_kind_ops llm_kind_ops;

#ifdef __cplusplus
}
#endif
#endif
