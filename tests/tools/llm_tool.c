/* llm_tool.c — kinfer_llm_tool: drives kind llm through the public seam
 * (kinfer_model.h) for the Python parity tests (tests/integration/
 * test_llm_parity.py) and by hand. One JSON request per stdin line, one
 * JSON answer per stdout line:
 *
 *   kinfer_llm_tool MODEL [--threads N] [--block T] [--max-rows R]
 *     {"tokenize": "text"}                      -> {"ids": [...]}
 *     {"tokenize_hex": "c328"}                  -> the same for raw bytes
 *     {"decode": [ids], "special": false}       -> {"text": "..."} (bytes as hex in "hex")
 *     {"chat": [{"role": .., "content": ..}]}   -> {"ids": [...]}
 *     {"generate": [ids], "steps": N, "chunk": C, "out": "file.f32"}
 *         prefill the ids C tokens per step (0 = all at once), then N greedy
 *         decode steps; writes the N logit rows used for the N choices
 *         (float32, [N, vocab]) to "out" -> {"tokens": [...], "vocab": V}
 *         with "force": [N ids] the ids fed are those (teacher forcing), not
 *         the argmax; "tokens" then still reports the argmax of each row
 *     {"describe": true}                        -> {"describe": "...", ...}
 *   errors -> {"error": "...", "code": "INVALID_REQUEST"}
 * Not a product binary: no Kafka, no config file. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinfer/kinfer_model.h"

typedef struct tool {
    kinfer_model *model;
    kinfer_replica *replica;
    kinfer_gen_info info;
    uint32_t max_rows, nblocks;
    uint32_t next_block; /* blocks are handed out afresh per generate call */
} tool;

static void reply(json_t *j) {
    char *s = json_dumps(j, JSON_COMPACT);
    puts(s ? s : "{\"error\":\"json\"}");
    fflush(stdout);
    free(s);
    json_decref(j);
}

static void reply_err(const kinfer_error *err) {
    json_t *j = json_object();
    json_object_set_new(j, "error", json_string(err->msg));
    json_object_set_new(j, "code", json_string(kinfer_err2name(err->code)));
    reply(j);
}

static json_t *ids_json(const int32_t *ids, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_integer(ids[i]));
    return a;
}

static void do_tokenize(tool *t, const json_t *req) {
    kinfer_error err;
    int32_t *ids = NULL;
    size_t n = 0;
    kinfer_err rc;
    const json_t *text = json_object_get(req, "tokenize");
    const json_t *hex = json_object_get(req, "tokenize_hex");
    if (text) {
        kinfer_str p = {json_string_value(text), json_string_length(text)};
        rc = kinfer_model_gen_tokenize(t->model, p, NULL, 0, &ids, &n, &err);
    } else if (hex) {
        size_t hl = json_string_length(hex) / 2;
        char *bytes = malloc(hl + 1);
        const char *h = json_string_value(hex);
        for (size_t i = 0; i < hl; i++) {
            unsigned v = 0;
            sscanf(h + 2 * i, "%2x", &v);
            bytes[i] = (char)v;
        }
        rc = kinfer_model_gen_tokenize(t->model, (kinfer_str){bytes, hl}, NULL, 0, &ids, &n, &err);
        free(bytes);
    } else {
        const json_t *msgs = json_object_get(req, "chat");
        size_t nm = json_array_size(msgs);
        kinfer_chat_message *m = calloc(nm + 1, sizeof(*m));
        for (size_t i = 0; i < nm; i++) {
            const json_t *r = json_object_get(json_array_get(msgs, i), "role");
            const json_t *c = json_object_get(json_array_get(msgs, i), "content");
            m[i].role = (kinfer_str){json_string_value(r), json_string_length(r)};
            m[i].content = (kinfer_str){json_string_value(c), json_string_length(c)};
        }
        rc = kinfer_model_gen_tokenize(t->model, (kinfer_str){NULL, 0}, m, nm, &ids, &n, &err);
        free(m);
    }
    if (rc != KINFER_OK) {
        reply_err(&err);
        return;
    }
    json_t *j = json_object();
    json_object_set_new(j, "ids", ids_json(ids, n));
    free(ids);
    reply(j);
}

static void do_decode(tool *t, const json_t *req) {
    const json_t *jids = json_object_get(req, "decode");
    bool special = json_is_true(json_object_get(req, "special"));
    size_t cap = 1024, len = 0;
    char *buf = malloc(cap);
    for (size_t i = 0; i < json_array_size(jids); i++) {
        int32_t id = (int32_t)json_integer_value(json_array_get(jids, i));
        size_t n = kinfer_model_gen_token_bytes(t->model, id, special, NULL, 0);
        if (len + n + 1 > cap) {
            cap = (len + n + 1) * 2;
            buf = realloc(buf, cap);
        }
        len += kinfer_model_gen_token_bytes(t->model, id, special, buf + len, cap - len);
    }
    json_t *j = json_object();
    char *hx = malloc(2 * len + 1);
    for (size_t i = 0; i < len; i++)
        snprintf(hx + 2 * i, 3, "%02x", (uint8_t)buf[i]);
    hx[2 * len] = '\0';
    json_object_set_new(j, "hex", json_string(hx));
    json_t *txt = json_stringn(buf, len); /* NULL when not valid UTF-8 */
    json_object_set_new(j, "text", txt ? txt : json_null());
    free(hx);
    free(buf);
    reply(j);
}

static size_t argmax(const float *x, size_t n) {
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

static void do_generate(tool *t, const json_t *req) {
    kinfer_error err;
    const json_t *jids = json_object_get(req, "generate");
    size_t np = json_array_size(jids);
    size_t steps = (size_t)json_integer_value(json_object_get(req, "steps"));
    size_t chunk = (size_t)json_integer_value(json_object_get(req, "chunk"));
    const char *out = json_string_value(json_object_get(req, "out"));
    const json_t *force = json_object_get(req, "force");
    if (force && json_array_size(force) < steps) {
        kinfer_error_set(&err, KINFER_ERR_INVALID_REQUEST, "generate: force needs %zu ids", steps);
        reply_err(&err);
        return;
    }
    uint32_t T = t->info.kv_block_tokens, V = t->info.vocab_size;
    size_t total = np + steps;
    size_t need = (total + T - 1) / T;
    if (np == 0 || steps == 0 || need > t->nblocks || total > t->info.context_length) {
        kinfer_error_set(&err, KINFER_ERR_INVALID_REQUEST,
                         "generate: %zu prompt ids + %zu steps do not fit (pool %u blocks of %u)",
                         np, steps, t->nblocks, T);
        reply_err(&err);
        return;
    }
    if (chunk == 0 || chunk > t->max_rows)
        chunk = t->max_rows;
    int32_t *toks = calloc(total, sizeof(*toks));
    uint32_t *blocks = calloc(need, sizeof(*blocks));
    float *logits = malloc((size_t)V * sizeof(float));
    float *rows = malloc(steps * (size_t)V * sizeof(float));
    int32_t *argmaxes = calloc(steps, sizeof(*argmaxes));
    FILE *f = out ? fopen(out, "wb") : NULL;
    if (!toks || !blocks || !logits || !rows || !argmaxes || !f) {
        kinfer_error_set(&err, KINFER_ERR_IO, "generate: no memory or cannot write %s",
                         out ? out : "(no out)");
        goto done;
    }
    for (size_t i = 0; i < np; i++)
        toks[i] = (int32_t)json_integer_value(json_array_get(jids, i));
    /* Blocks in a scattered order (from the top of the pool down), so the
     * block table is exercised, not just a contiguous run. */
    for (size_t b = 0; b < need; b++)
        blocks[b] = t->nblocks - 1 - (uint32_t)((b * 7) % t->nblocks);
    for (size_t b = 0; b < need; b++)
        for (size_t c = 0; c < b; c++)
            if (blocks[c] == blocks[b]) { /* fall back to a plain run on a clash */
                for (size_t k = 0; k < need; k++)
                    blocks[k] = (uint32_t)k;
                b = need;
                break;
            }
    size_t pos = 0;
    while (pos < np) {
        size_t n = np - pos < chunk ? np - pos : chunk;
        kinfer_step_seq s = {toks + pos, (uint32_t)n,    (uint32_t)pos,
                             blocks,     (uint32_t)need, pos + n == np ? logits : NULL};
        if (kinfer_replica_step(t->replica, &s, 1, &err) != KINFER_OK)
            goto done;
        pos += n;
    }
    for (size_t i = 0; i < steps; i++) {
        memcpy(rows + i * V, logits, (size_t)V * sizeof(float));
        toks[np + i] = (int32_t)argmax(logits, V);
        if (i + 1 == steps)
            break;
        int32_t fed = force ? (int32_t)json_integer_value(json_array_get(force, i)) : toks[np + i];
        int32_t chosen = toks[np + i];
        toks[np + i] = fed;
        kinfer_step_seq s = {toks + np + i, 1, (uint32_t)(np + i), blocks, (uint32_t)need, logits};
        if (kinfer_replica_step(t->replica, &s, 1, &err) != KINFER_OK)
            goto done;
        argmaxes[i] = chosen;
    }
    argmaxes[steps - 1] = toks[np + steps - 1];
    if (fwrite(rows, sizeof(float), steps * (size_t)V, f) != steps * (size_t)V) {
        kinfer_error_set(&err, KINFER_ERR_IO, "generate: short write to %s", out);
        goto done;
    }
    fclose(f);
    f = NULL;
    json_t *j = json_object();
    json_object_set_new(j, "tokens", ids_json(argmaxes, steps));
    json_object_set_new(j, "vocab", json_integer(V));
    reply(j);
    err.code = KINFER_OK;
done:
    if (f)
        fclose(f);
    if (err.code != KINFER_OK)
        reply_err(&err);
    free(toks);
    free(blocks);
    free(logits);
    free(rows);
    free(argmaxes);
}

static void do_describe(tool *t) {
    json_t *j = json_object();
    json_object_set_new(j, "describe", json_string(kinfer_model_describe(t->model)));
    json_object_set_new(j, "vocab", json_integer(t->info.vocab_size));
    json_object_set_new(j, "context", json_integer(t->info.context_length));
    json_object_set_new(j, "bos", json_integer(t->info.bos_id));
    json_object_set_new(j, "eog", ids_json(t->info.eog_ids, t->info.neog));
    json_object_set_new(j, "kv_block_bytes", json_integer((json_int_t)t->info.kv_block_bytes));
    reply(j);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL [--threads N] [--block T] [--max-rows R]\n", argv[0]);
        return 2;
    }
    int threads = 2;
    uint32_t block = 0, max_rows = 64, ctx = 0;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--threads") == 0)
            threads = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--block") == 0)
            block = (uint32_t)atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--max-rows") == 0)
            max_rows = (uint32_t)atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--context") == 0)
            ctx = (uint32_t)atoi(argv[i + 1]);
    }
    tool t = {.max_rows = max_rows};
    kinfer_model_options o = {.name = "tool",
                              .kind = "llm",
                              .path = argv[1],
                              .cpu_threads = threads,
                              .context_length = ctx,
                              .kv_block_tokens = block};
    kinfer_error err;
    if (kinfer_model_load(&o, &t.model, &err) != KINFER_OK) {
        reply_err(&err);
        return 1;
    }
    kinfer_model_gen_info(t.model, &t.info);
    /* a pool for one sequence of up to 4096 positions */
    uint32_t span = t.info.context_length < 4096 ? t.info.context_length : 4096;
    t.nblocks = (span + t.info.kv_block_tokens - 1) / t.info.kv_block_tokens;
    if (kinfer_replica_new(t.model, "cpu", max_rows, &t.replica, &err) != KINFER_OK ||
        kinfer_replica_kv_alloc(t.replica, t.nblocks, &err) != KINFER_OK) {
        reply_err(&err);
        kinfer_replica_destroy(t.replica);
        kinfer_model_destroy(t.model);
        return 1;
    }
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, stdin) > 0) {
        json_error_t je;
        json_t *req = json_loads(line, JSON_ALLOW_NUL, &je);
        if (!json_is_object(req)) {
            kinfer_error_set(&err, KINFER_ERR_INVALID_ARG, "bad request line: %s", je.text);
            reply_err(&err);
        } else if (json_object_get(req, "tokenize") || json_object_get(req, "chat") ||
                   json_object_get(req, "tokenize_hex")) {
            do_tokenize(&t, req);
        } else if (json_object_get(req, "decode")) {
            do_decode(&t, req);
        } else if (json_object_get(req, "generate")) {
            do_generate(&t, req);
        } else {
            do_describe(&t);
        }
        json_decref(req);
    }
    free(line);
    kinfer_replica_destroy(t.replica);
    kinfer_model_destroy(t.model);
    return 0;
}
