/* codec_tool.c — kinfer_codec_tool: a thin CLI over the codec so Python tests
 * can cross-check it against fastavro. Not part of the product.
 *
 *   decode-request  [--ids N,N..] [--no-bare] [--writer FILE]...
 *                   stdin: framed bytes -> stdout: JSON; each --writer is a
 *                   writer schema single-object framing may name
 *                   (kinfer_codec_decoder_add_writer)
 *   decode-response                            stdin: framed bytes -> stdout: JSON
 *   encode-request  FRAMING                    stdin: JSON -> stdout: framed bytes
 *   encode-response FRAMING                    stdin: JSON -> stdout: framed bytes
 *   canonical request|response|-               (- = schema JSON on stdin) -> form
 *   fingerprint request|response|-             -> CRC-64-AVRO as unsigned decimal
 *   utf8-repair         stdin: one hex string per line -> "VALID HEX" per line:
 *                       VALID 1/0 (kinfer_codec_utf8_valid), HEX the repaired bytes
 * FRAMING: bare | single-object | confluent:ID. Tensor data travels as hex in
 * JSON ("data_hex"). Decode errors print {"ok":false,"code":..,"error":..}, exit 1. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec_tool_gen.h"
#include "kinfer/kinfer_codec.h"

static uint8_t *read_all(FILE *f, size_t *len) {
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
        if (n == cap) {
            uint8_t *p = realloc(buf, cap * 2);
            if (!p) {
                free(buf);
                return NULL;
            }
            buf = p;
            cap *= 2;
        }
    }
    *len = n;
    return buf;
}

static json_t *jstr(kinfer_str s) {
    json_t *j = json_stringn(s.ptr ? s.ptr : "", s.len);
    return j ? j : json_string("<invalid utf-8>");
}

static json_t *jopt(bool has, kinfer_str s) {
    return has ? jstr(s) : json_null();
}

static json_t *jhex(const void *data, size_t n) {
    static const char digits[] = "0123456789abcdef";
    char *h = malloc(2 * n + 1);
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++) {
        h[2 * i] = digits[p[i] >> 4];
        h[2 * i + 1] = digits[p[i] & 15];
    }
    h[2 * n] = '\0';
    json_t *j = json_string(h);
    free(h);
    return j;
}

static json_t *jtensors(const kinfer_tensor *ts, size_t n) {
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        const kinfer_tensor *t = &ts[i];
        json_t *shape = json_array(), *strs = json_array();
        for (int d = 0; d < t->ndim; d++)
            json_array_append_new(shape, json_integer(t->shape[d]));
        for (size_t k = 0; k < t->nstrings; k++)
            json_array_append_new(strs, jstr(t->strings[k]));
        json_array_append_new(arr,
                              json_pack("{s:o,s:s,s:o,s:o,s:o}", "name", jstr(t->name), "dtype",
                                        kinfer_dtype_name(t->dtype), "shape", shape, "data_hex",
                                        jhex(t->data, t->nbytes), "strings", strs));
    }
    return arr;
}

static json_t *jframe(const kinfer_codec_frame *f) {
    char fp[32];
    snprintf(fp, sizeof(fp), "%llu", (unsigned long long)f->fingerprint);
    return json_pack("{s:s,s:I,s:s}", "framing", kinfer_codec_framing_name(f->framing), "schema_id",
                     (json_int_t)f->schema_id, "fingerprint", fp);
}

static int print_error(const kinfer_error *err) {
    json_t *j =
        json_pack("{s:b,s:s,s:s}", "ok", 0, "code", kinfer_err2name(err->code), "error", err->msg);
    json_dumpf(j, stdout, JSON_COMPACT);
    putchar('\n');
    json_decref(j);
    return 1;
}

static int emit(json_t *j) {
    json_dumpf(j, stdout, JSON_COMPACT);
    putchar('\n');
    json_decref(j);
    return 0;
}

static int cmd_decode_request(int argc, char **argv) {
    kinfer_codec_frame_policy pol;
    kinfer_codec_frame_policy_default(&pol);
    uint32_t ids[16];
    const char *writers[8];
    int nwriters = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--no-bare") == 0)
            pol.allow_bare = false;
        else if (strcmp(argv[i], "--writer") == 0 && i + 1 < argc && nwriters < 8)
            writers[nwriters++] = argv[++i];
        else if (strcmp(argv[i], "--ids") == 0 && i + 1 < argc) {
            char *s = argv[++i];
            while (*s && pol.n_confluent_ids < 16) {
                ids[pol.n_confluent_ids++] = (uint32_t)strtoul(s, &s, 10);
                if (*s == ',')
                    s++;
            }
            pol.confluent_ids = ids;
        }
    }
    size_t len;
    uint8_t *msg = read_all(stdin, &len);
    kinfer_codec_decoder *dec;
    kinfer_error err;
    if (!msg || kinfer_codec_decoder_new(NULL, &pol, &dec, &err) != KINFER_OK) {
        free(msg);
        fprintf(stderr, "kinfer_codec_tool: setup failed\n");
        return 2;
    }
    for (int i = 0; i < nwriters; i++) {
        FILE *f = fopen(writers[i], "rb");
        size_t n;
        uint8_t *json = f ? read_all(f, &n) : NULL;
        if (f)
            fclose(f);
        char *text = json ? realloc(json, n + 1) : NULL;
        if (!text) {
            free(json);
            fprintf(stderr, "kinfer_codec_tool: cannot read %s\n", writers[i]);
            return 2;
        }
        text[n] = '\0';
        kinfer_err wrc =
            kinfer_codec_decoder_add_writer(dec, KINFER_CODEC_SCHEMA_REQUEST, text, &err);
        free(text);
        if (wrc != KINFER_OK) {
            int prc = print_error(&err);
            kinfer_codec_decoder_destroy(dec);
            free(msg);
            return prc;
        }
    }
    kinfer_codec_request req;
    int rc;
    if (kinfer_codec_request_decode(dec, msg, len, &req, &err) != KINFER_OK) {
        rc = print_error(&err);
    } else {
        json_t *params = json_object();
        for (size_t i = 0; i < req.nparams; i++) {
            char key[512];
            snprintf(key, sizeof(key), "%.*s", (int)req.params[i].key.len,
                     req.params[i].key.ptr ? req.params[i].key.ptr : "");
            json_object_set_new(params, key, jstr(req.params[i].value));
        }
        json_t *obj = json_pack("{s:b,s:o,s:o,s:o,s:o,s:o,s:o,s:i,s:o,s:o}", "ok", 1, "frame",
                                jframe(&req.frame), "id", jstr(req.id), "model", jstr(req.model),
                                "model_version", jopt(req.has_model_version, req.model_version),
                                "inputs", jtensors(req.inputs, req.ninputs), "deadline_ms",
                                req.has_deadline ? json_integer(req.deadline_ms) : json_null(),
                                "priority", req.priority, "reply_to",
                                jopt(req.has_reply_to, req.reply_to), "parameters", params);
        tool_gen_request_json(obj, &req);
        rc = emit(obj);
    }
    kinfer_codec_decoder_destroy(dec);
    free(msg);
    return rc;
}

static int cmd_decode_response(void) {
    size_t len;
    uint8_t *msg = read_all(stdin, &len);
    kinfer_codec_decoder *dec;
    kinfer_error err;
    if (!msg || kinfer_codec_decoder_new(NULL, NULL, &dec, &err) != KINFER_OK) {
        free(msg);
        return 2;
    }
    kinfer_codec_response resp;
    int rc;
    if (kinfer_codec_response_decode(dec, msg, len, &resp, &err) != KINFER_OK) {
        rc = print_error(&err);
    } else {
        const kinfer_codec_timing *tm = &resp.timing;
        json_t *obj = json_pack(
            "{s:b,s:o,s:o,s:o,s:o,s:i,s:o,s:o,s:{s:I,s:I,s:i,s:o,s:o},s:{s:o,s:i,s:I}}", "ok", 1,
            "frame", jframe(&resp.frame), "id", jstr(resp.id), "model", jstr(resp.model),
            "model_version", jopt(resp.has_model_version, resp.model_version), "status",
            resp.status, "error", jopt(resp.has_error, resp.error), "outputs",
            jtensors(resp.outputs, resp.noutputs), "timing", "queue_us", (json_int_t)tm->queue_us,
            "compute_us", (json_int_t)tm->compute_us, "batch_size", tm->batch_size, "worker",
            jstr(tm->worker), "device", jstr(tm->device), "source", "topic",
            jstr(resp.source.topic), "partition", resp.source.partition, "offset",
            (json_int_t)resp.source.offset);
        tool_gen_response_json(obj, &resp);
        rc = emit(obj);
    }
    kinfer_codec_decoder_destroy(dec);
    free(msg);
    return rc;
}

/* ---- JSON -> structs (for the encoders) ----------------------------------- */

typedef struct arena {
    void *blocks[1024];
    int n;
} arena;

static void *arena_alloc(arena *a, size_t n) {
    if (a->n >= 1024)
        return NULL;
    return a->blocks[a->n++] = calloc(1, n ? n : 1);
}

static void *tool_arena_alloc(void *a, size_t n) {
    return arena_alloc(a, n);
}

static kinfer_str sget(json_t *obj, const char *key) {
    json_t *v = json_object_get(obj, key);
    return (kinfer_str){json_string_value(v), json_string_length(v)};
}

static bool sopt(json_t *obj, const char *key, kinfer_str *out) {
    json_t *v = json_object_get(obj, key);
    if (!json_is_string(v))
        return false;
    *out = (kinfer_str){json_string_value(v), json_string_length(v)};
    return true;
}

static int hexval(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static kinfer_tensor *parse_tensors(json_t *arr, size_t *n, arena *a) {
    *n = json_array_size(arr);
    kinfer_tensor *ts = arena_alloc(a, *n * sizeof(*ts));
    size_t i;
    json_t *jt;
    json_array_foreach(arr, i, jt) {
        kinfer_tensor *t = &ts[i];
        t->name = sget(jt, "name");
        kinfer_dtype_from_name(json_string_value(json_object_get(jt, "dtype")), &t->dtype);
        json_t *shape = json_object_get(jt, "shape");
        t->ndim = (int)json_array_size(shape);
        for (int d = 0; d < t->ndim && d < KINFER_MAX_DIMS; d++)
            t->shape[d] = json_integer_value(json_array_get(shape, (size_t)d));
        const char *hex = json_string_value(json_object_get(jt, "data_hex"));
        size_t hl = hex ? strlen(hex) / 2 : 0;
        uint8_t *data = arena_alloc(a, hl);
        for (size_t k = 0; k < hl; k++)
            data[k] = (uint8_t)(hexval(hex[2 * k]) << 4 | hexval(hex[2 * k + 1]));
        t->data = hl ? data : NULL;
        t->nbytes = hl;
        json_t *strs = json_object_get(jt, "strings");
        t->nstrings = json_array_size(strs);
        kinfer_str *ss = arena_alloc(a, t->nstrings * sizeof(*ss));
        for (size_t k = 0; k < t->nstrings; k++) {
            json_t *s = json_array_get(strs, k);
            ss[k] = (kinfer_str){json_string_value(s), json_string_length(s)};
        }
        t->strings = t->nstrings ? ss : NULL;
    }
    return ts;
}

static bool parse_framing(const char *s, kinfer_codec_frame *f) {
    *f = (kinfer_codec_frame){0};
    if (strcmp(s, "bare") == 0)
        f->framing = KINFER_CODEC_FRAMING_BARE;
    else if (strcmp(s, "single-object") == 0)
        f->framing = KINFER_CODEC_FRAMING_SINGLE_OBJECT;
    else if (strncmp(s, "confluent:", 10) == 0) {
        f->framing = KINFER_CODEC_FRAMING_CONFLUENT;
        f->schema_id = (uint32_t)strtoul(s + 10, NULL, 10);
    } else
        return false;
    return true;
}

static int cmd_encode(bool response, const char *framing) {
    kinfer_codec_frame frame;
    if (!parse_framing(framing, &frame)) {
        fprintf(stderr, "kinfer_codec_tool: bad framing '%s'\n", framing);
        return 2;
    }
    json_error_t jerr;
    json_t *j = json_loadf(stdin, 0, &jerr);
    if (!j) {
        fprintf(stderr, "kinfer_codec_tool: bad JSON: %s\n", jerr.text);
        return 2;
    }
    arena a = {0};
    kinfer_codec_encoder *enc;
    kinfer_error err;
    kinfer_codec_encoder_new(&enc, &err);
    const uint8_t *out = NULL;
    size_t out_len = 0;
    kinfer_err rc;
    if (response) {
        kinfer_codec_response r = {0};
        r.id = sget(j, "id");
        r.model = sget(j, "model");
        r.has_model_version = sopt(j, "model_version", &r.model_version);
        r.status = (int)json_integer_value(json_object_get(j, "status"));
        r.has_error = sopt(j, "error", &r.error);
        r.outputs = parse_tensors(json_object_get(j, "outputs"), &r.noutputs, &a);
        json_t *tm = json_object_get(j, "timing"), *src = json_object_get(j, "source");
        r.timing.queue_us = json_integer_value(json_object_get(tm, "queue_us"));
        r.timing.compute_us = json_integer_value(json_object_get(tm, "compute_us"));
        r.timing.batch_size = (int32_t)json_integer_value(json_object_get(tm, "batch_size"));
        r.timing.worker = sget(tm, "worker");
        r.timing.device = sget(tm, "device");
        r.source.topic = sget(src, "topic");
        r.source.partition = (int32_t)json_integer_value(json_object_get(src, "partition"));
        r.source.offset = json_integer_value(json_object_get(src, "offset"));
        tool_gen_response_parse(j, &r, tool_arena_alloc, &a);
        rc = kinfer_codec_response_encode(enc, &r, &frame, &out, &out_len, &err);
    } else {
        kinfer_codec_request q = {0};
        q.id = sget(j, "id");
        q.model = sget(j, "model");
        q.has_model_version = sopt(j, "model_version", &q.model_version);
        q.inputs = parse_tensors(json_object_get(j, "inputs"), &q.ninputs, &a);
        json_t *dl = json_object_get(j, "deadline_ms");
        q.has_deadline = json_is_integer(dl);
        q.deadline_ms = json_integer_value(dl);
        q.priority = (int32_t)json_integer_value(json_object_get(j, "priority"));
        q.has_reply_to = sopt(j, "reply_to", &q.reply_to);
        json_t *params = json_object_get(j, "parameters");
        q.nparams = json_object_size(params);
        kinfer_param *ps = arena_alloc(&a, q.nparams * sizeof(*ps));
        const char *key;
        json_t *val;
        size_t i = 0;
        json_object_foreach(params, key, val) {
            ps[i].key = (kinfer_str){key, strlen(key)};
            ps[i].value = (kinfer_str){json_string_value(val), json_string_length(val)};
            i++;
        }
        q.params = ps;
        tool_gen_request_parse(j, &q, tool_arena_alloc, &a);
        rc = kinfer_codec_request_encode(enc, &q, &frame, &out, &out_len, &err);
    }
    int status = 0;
    if (rc != KINFER_OK) {
        fprintf(stderr, "kinfer_codec_tool: %s: %s\n", kinfer_err2name(rc), err.msg);
        status = 1;
    } else {
        fwrite(out, 1, out_len, stdout);
    }
    kinfer_codec_encoder_destroy(enc);
    for (int i = 0; i < a.n; i++)
        free(a.blocks[i]);
    json_decref(j);
    return status;
}

static int cmd_schema(bool fingerprint, const char *which) {
    if (strcmp(which, "request") == 0 || strcmp(which, "response") == 0) {
        kinfer_codec_schema s =
            which[2] == 'q' ? KINFER_CODEC_SCHEMA_REQUEST : KINFER_CODEC_SCHEMA_RESPONSE;
        if (fingerprint)
            printf("%llu\n", (unsigned long long)kinfer_codec_schema_fingerprint(s));
        else
            printf("%s\n", kinfer_codec_schema_canonical(s));
        return 0;
    }
    size_t len;
    uint8_t *text = read_all(stdin, &len);
    char *z = text ? realloc(text, len + 1) : NULL;
    if (!z) {
        free(text);
        return 2;
    }
    z[len] = '\0';
    char *form;
    kinfer_error err;
    int rc = 0;
    if (kinfer_codec_canonical_form(z, &form, &err) != KINFER_OK) {
        fprintf(stderr, "kinfer_codec_tool: %s\n", err.msg);
        rc = 1;
    } else {
        if (fingerprint)
            printf("%llu\n", (unsigned long long)kinfer_codec_crc64_avro(form, strlen(form)));
        else
            printf("%s\n", form);
        free(form);
    }
    free(z);
    return rc;
}

/* Lines of hex in, "VALID REPAIRED-HEX" lines out: the repair rule against
 * Python's bytes.decode("utf-8", "replace") in test_codec_fastavro.py. */
static int cmd_utf8_repair(void) {
    char line[1 << 14];
    while (fgets(line, sizeof line, stdin)) {
        size_t n = strcspn(line, "\r\n"), len = n / 2;
        char in[sizeof line / 2], out[3 * sizeof line / 2];
        for (size_t i = 0; i < len; i++) {
            int hi = hexval(line[2 * i]), lo = hexval(line[2 * i + 1]);
            if (hi < 0 || lo < 0) {
                fprintf(stderr, "utf8-repair: bad hex\n");
                return 2;
            }
            in[i] = (char)(hi << 4 | lo);
        }
        size_t m = kinfer_codec_utf8_repair(in, len, out, sizeof out);
        printf("%d ", kinfer_codec_utf8_valid(in, len, NULL) ? 1 : 0);
        for (size_t i = 0; i < m; i++)
            printf("%02x", (unsigned char)out[i]);
        printf("\n");
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "decode-request") == 0)
        return cmd_decode_request(argc - 2, argv + 2);
    if (argc == 2 && strcmp(argv[1], "decode-response") == 0)
        return cmd_decode_response();
    if (argc == 3 && strcmp(argv[1], "encode-request") == 0)
        return cmd_encode(false, argv[2]);
    if (argc == 3 && strcmp(argv[1], "encode-response") == 0)
        return cmd_encode(true, argv[2]);
    if (argc == 3 && strcmp(argv[1], "canonical") == 0)
        return cmd_schema(false, argv[2]);
    if (argc == 3 && strcmp(argv[1], "fingerprint") == 0)
        return cmd_schema(true, argv[2]);
    if (argc == 2 && strcmp(argv[1], "utf8-repair") == 0)
        return cmd_utf8_repair();
    fprintf(stderr,
            "usage: kinfer_codec_tool decode-request [--ids N,..] [--no-bare] | "
            "decode-response | encode-request FRAMING | encode-response FRAMING | "
            "canonical request|response|- | fingerprint request|response|- | utf8-repair\n");
    return 2;
}
