/* bench_kernels_bert_tokenizer.c — WordPiece tokenizer throughput on a
 * JSONL corpus (default tests/data/minilm/corpus.jsonl) with a model
 * directory's tokenizer files, one thread:
 *
 *   bench_kernels_bert_tokenizer MODEL_DIR [TEXTS.jsonl] [--seconds S]
 *
 * Prints one JSON line: texts/s, MB/s of UTF-8 input, tokens/s. Not a test. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinfer/kinfer_clock.h"
#include "tokenizer/tokenizer_wordpiece.h"

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL_DIR [TEXTS.jsonl] [--seconds S]\n", argv[0]);
        return 2;
    }
    const char *corpus = KINFER_SOURCE_DIR "/tests/data/minilm/corpus.jsonl";
    double seconds = 3.0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
            seconds = atof(argv[++i]);
        else
            corpus = argv[i];
    }
    kinfer_tokenizer *tok;
    kinfer_error err;
    if (kinfer_tokenizer_load_dir(argv[1], &tok, &err) != KINFER_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    FILE *f = fopen(corpus, "r");
    if (!f) {
        perror(corpus);
        return 1;
    }
    size_t n = 0, cap = 0, bytes = 0;
    char **texts = NULL;
    size_t *lens = NULL;
    char *line = NULL;
    size_t lcap = 0;
    while (getline(&line, &lcap, f) > 0) {
        json_error_t jerr;
        json_t *o = json_loads(line, JSON_ALLOW_NUL, &jerr);
        json_t *t = json_object_get(o, "text");
        if (t) {
            if (n == cap) {
                cap = cap ? cap * 2 : 256;
                texts = realloc(texts, cap * sizeof(*texts));
                lens = realloc(lens, cap * sizeof(*lens));
            }
            lens[n] = json_string_length(t);
            texts[n] = malloc(lens[n] + 1);
            memcpy(texts[n], json_string_value(t), lens[n] + 1);
            bytes += lens[n];
            n++;
        }
        json_decref(o);
    }
    free(line);
    fclose(f);
    int32_t ids[512];
    uint64_t done = 0, tokens = 0, in_bytes = 0;
    int64_t t0 = kinfer_mono_us(), t1 = t0;
    while (t1 - t0 < (int64_t)(seconds * 1e6)) {
        for (size_t i = 0; i < n; i++) {
            uint32_t got = 0;
            if (kinfer_tokenizer_encode(tok, texts[i], lens[i], 512, true, ids, &got, NULL, &err) !=
                KINFER_OK) {
                fprintf(stderr, "text %zu: %s\n", i, err.msg);
                return 1;
            }
            tokens += got;
        }
        done += n;
        in_bytes += bytes;
        t1 = kinfer_mono_us();
    }
    double s = (double)(t1 - t0) / 1e6;
    printf("{\"texts_per_s\": %.0f, \"mb_per_s\": %.1f, \"tokens_per_s\": %.0f}\n",
           (double)done / s, (double)in_bytes / s / 1e6, (double)tokens / s);
    for (size_t i = 0; i < n; i++)
        free(texts[i]);
    free(texts);
    free(lens);
    kinfer_tokenizer_destroy(tok);
    return 0;
}
