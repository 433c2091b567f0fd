/* fuzz_kernels_bert.c — libFuzzer target for the request contract of kind
 * `bert` (bert_request.c) and, for requests it accepts, one CPU batch of the
 * committed tiny classifier (tests/data/minilm/tiny_cls, found next to this
 * file). Input bytes pick the input form, shapes, values and parameters;
 * the checks are: no crash, accepted requests execute with status OK and
 * finite outputs of the promised shapes, refused ones say why. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinfer/kinfer_model.h"

static kinfer_model *g_model;
static kinfer_replica *g_replica;
#define MAX_ROWS 8

static void init(void) {
    if (g_model)
        return;
    /* __FILE__ is .../tests/fuzz/fuzz_kernels_bert.c in this build. */
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", __FILE__);
    char *slash = strrchr(dir, '/');
    if (!slash)
        abort();
    snprintf(slash, sizeof(dir) - (size_t)(slash - dir), "/../data/minilm/tiny_cls");
    kinfer_model_options o = {.name = "fuzz", .kind = "bert", .path = dir, .cpu_threads = 1};
    kinfer_error err;
    if (kinfer_model_load(&o, &g_model, &err) != KINFER_OK ||
        kinfer_replica_new(g_model, "cpu", MAX_ROWS, &g_replica, &err) != KINFER_OK) {
        fprintf(stderr, "fuzz_kernels_bert: %s\n", err.msg);
        abort();
    }
}

typedef struct reader {
    const uint8_t *p;
    size_t n;
} reader;

static uint8_t take(reader *r) {
    if (r->n == 0)
        return 0;
    r->n--;
    return *r->p++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    init();
    reader r = {data, size};
    uint8_t mode = take(&r);
    kinfer_tensor t[3];
    memset(t, 0, sizeof(t));
    size_t nt = 0;
    kinfer_str strs[MAX_ROWS + 2];
    int64_t ints[3][(MAX_ROWS + 2) * 70];
    kinfer_param params[2];
    size_t np = 0;
    if (mode & 0x40) {
        static const char *const vals[] = {"true", "false", "1", "maybe"};
        params[np++] = (kinfer_param){{"normalize", 9}, {vals[take(&r) & 3], 4}};
        params[np - 1].value.len = strlen(params[np - 1].value.ptr);
    }
    if (mode & 0x80) {
        static const char *const vals[] = {"true", "false", "0", ""};
        params[np++] = (kinfer_param){{"truncate", 8}, {vals[take(&r) & 3], 0}};
        params[np - 1].value.len = strlen(params[np - 1].value.ptr);
    }
    if ((mode & 1) == 0) {
        /* Texts: count, then each text's length and bytes (any bytes). */
        size_t n = take(&r) % (MAX_ROWS + 2);
        for (size_t i = 0; i < n; i++) {
            size_t len = take(&r);
            len = len < r.n ? len : r.n;
            strs[i] = (kinfer_str){(const char *)r.p, len};
            r.p += len;
            r.n -= len;
        }
        t[0].name = (kinfer_str){"text", 4};
        t[0].dtype =
            (mode & 2) ? KINFER_DTYPE_STRING : (kinfer_dtype)(take(&r) % KINFER_DTYPE_COUNT);
        t[0].ndim = (mode & 4) ? 2 : 1;
        t[0].shape[0] = (int64_t)n;
        t[0].shape[1] = 1;
        t[0].strings = strs;
        t[0].nstrings = n;
        nt = 1;
    } else {
        /* Pre-tokenized: rows, seq, then which tensors and their values. */
        int64_t rows = take(&r) % (MAX_ROWS + 2), seq = take(&r) % 70;
        static const char *const names[] = {"input_ids", "attention_mask", "token_type_ids"};
        for (int k = 0; k < 3; k++) {
            if (k > 0 && !(mode & (2 << k)))
                continue;
            for (int64_t i = 0; i < rows * seq; i++) {
                uint8_t b = take(&r);
                ints[k][i] = k == 0 ? (int64_t)b * 8 : (b & 0x80) ? (int64_t)(b & 3) : 1;
                if (k == 0 && b == 0xff)
                    ints[k][i] = -1;
            }
            kinfer_tensor *x = &t[nt++];
            x->name = (kinfer_str){names[k], strlen(names[k])};
            x->dtype = (mode & 2) ? KINFER_DTYPE_INT32 : KINFER_DTYPE_INT64;
            x->ndim = 2;
            x->shape[0] = rows;
            x->shape[1] = (k == 2 && (mode & 0x20)) ? seq + 1 : seq;
            x->data = ints[k];
            x->nbytes = (size_t)(rows * seq) * 8;
        }
    }
    kinfer_batch_item it;
    memset(&it, 0, sizeof(it));
    it.inputs = t;
    it.ninputs = nt;
    it.params = params;
    it.nparams = np;
    kinfer_error err;
    kinfer_err rc = kinfer_model_check_request(g_model, t, nt, params, np, &it.cost, &err);
    if (rc != KINFER_OK) {
        if (rc != KINFER_ERR_INVALID_REQUEST || err.msg[0] == '\0')
            abort();
        return 0;
    }
    if (it.cost.rows == 0 || it.cost.rows > MAX_ROWS + 1 || it.cost.max_len == 0 ||
        it.cost.tokens != it.cost.rows * it.cost.max_len)
        abort();
    if (it.cost.rows > MAX_ROWS)
        return 0; /* the scheduler would not batch it on this replica */
    if (kinfer_replica_execute(g_replica, &it, 1, &err) != KINFER_OK || it.status != KINFER_OK ||
        it.noutputs != 3)
        abort();
    const kinfer_tensor *e = &it.outputs[0];
    if (e->shape[0] != (int64_t)it.cost.rows || e->shape[1] != 32)
        abort();
    for (size_t i = 0; i < it.cost.rows * 32; i++)
        if (!isfinite(((const float *)e->data)[i]))
            abort();
    return 0;
}
