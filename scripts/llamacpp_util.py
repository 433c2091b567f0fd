"""llamacpp_util.py — a thin wrapper over llama-cpp-python's low-level API
(requirements-reference.txt), shared by scripts/make_llm_reference.py and
bench/llamacpp_bench.py.

Low level on purpose: the high-level Llama class keeps no logits unless
logits_all is set (0.3.36), and it cannot turn off llama.cpp's "extra buffer
types". Those must be off here: on this machine (Sapphire Rapids, AMX flags in
/proc/cpuinfo) a native build of ggml uses AMX tile instructions for
quantized matmuls, and the VM kills the process with SIGILL at the first
`tilezero` (gdb: ggml_backend_amx_mul_mat). With use_extra_bufts = false the
weights stay in the plain CPU buffer and ggml's AVX-512 kernels run.
"""
import ctypes

import numpy as np

import llama_cpp
import llama_cpp.llama_cpp as L

_backend_ready = False


def _backend():
    global _backend_ready
    if not _backend_ready:
        L.llama_backend_init()
        L.llama_log_set(_quiet_log, ctypes.c_void_p(0))
        _backend_ready = True


@L.llama_log_callback
def _quiet_log(level, text, user_data):  # llama.cpp logs to stderr otherwise
    return None


class LlamaCpp:
    def __init__(self, path, n_ctx=2048, n_threads=2, n_batch=512, n_seq_max=1, vocab_only=False, kv_unified=False):
        _backend()
        mp = L.llama_model_default_params()
        mp.use_extra_bufts = False
        mp.n_gpu_layers = 0
        mp.vocab_only = vocab_only
        self.model = L.llama_model_load_from_file(path.encode(), mp)
        if not self.model:
            raise RuntimeError(f"llama.cpp could not load {path}")
        self.vocab = L.llama_model_get_vocab(self.model)
        self.n_vocab = L.llama_vocab_n_tokens(self.vocab)
        self.ctx = None
        self.n_batch = n_batch
        if not vocab_only:
            cp = L.llama_context_default_params()
            cp.n_ctx = n_ctx
            cp.n_batch = n_batch
            cp.n_ubatch = n_batch
            cp.n_seq_max = n_seq_max
            cp.n_threads = n_threads
            cp.n_threads_batch = n_threads
            cp.kv_unified = kv_unified
            self.ctx = L.llama_init_from_model(self.model, cp)
            if not self.ctx:
                raise RuntimeError("llama.cpp could not create a context")
            self.batch = L.llama_batch_init(n_batch, 0, max(1, n_seq_max))

    def close(self):
        if self.ctx:
            L.llama_batch_free(self.batch)
            L.llama_free(self.ctx)
            self.ctx = None
        if self.model:
            L.llama_model_free(self.model)
            self.model = None

    # -- tokenizer ----------------------------------------------------------
    def tokenize(self, data, parse_special=False, add_special=False):
        if isinstance(data, str):
            data = data.encode("utf-8")
        cap = len(data) + 8
        buf = (L.llama_token * cap)()
        n = L.llama_tokenize(self.vocab, data, len(data), buf, cap, add_special, parse_special)
        if n < 0:
            cap = -n
            buf = (L.llama_token * cap)()
            n = L.llama_tokenize(self.vocab, data, len(data), buf, cap, add_special, parse_special)
        if n < 0:
            raise RuntimeError("llama_tokenize failed")
        return list(buf[:n])

    def piece(self, token, special=False):
        buf = ctypes.create_string_buffer(256)
        n = L.llama_token_to_piece(self.vocab, token, buf, 256, 0, special)
        if n < 0:
            raise RuntimeError("llama_token_to_piece failed")
        return buf.raw[:n]

    def detokenize(self, ids, remove_special=False, unparse_special=False):
        arr = (L.llama_token * max(1, len(ids)))(*ids)
        cap = 64 + 32 * len(ids)
        buf = ctypes.create_string_buffer(cap)
        n = L.llama_detokenize(self.vocab, arr, len(ids), buf, cap, remove_special, unparse_special)
        if n < 0:
            cap = -n
            buf = ctypes.create_string_buffer(cap)
            n = L.llama_detokenize(self.vocab, arr, len(ids), buf, cap, remove_special, unparse_special)
        return buf.raw[:n]

    def chat_template(self):
        t = L.llama_model_chat_template(self.model, None)
        return t.decode() if t else None

    def apply_builtin_template(self, messages, add_ass):
        """llama.cpp's own (C++, not Jinja) rendering of the model's template."""
        tmpl = L.llama_model_chat_template(self.model, None)
        keep = [(m["role"].encode(), m["content"].encode()) for m in messages]
        arr = (L.llama_chat_message * max(1, len(keep)))()
        for i, (r, c) in enumerate(keep):
            arr[i].role = r
            arr[i].content = c
        cap = 256 + sum(len(r) + len(c) + 32 for r, c in keep)
        buf = ctypes.create_string_buffer(cap)
        n = L.llama_chat_apply_template(tmpl, arr, len(keep), add_ass, buf, cap)
        if n < 0:
            return None
        if n > cap:
            buf = ctypes.create_string_buffer(n)
            n = L.llama_chat_apply_template(tmpl, arr, len(keep), add_ass, buf, n)
        return buf.raw[:n].decode("utf-8")

    # -- inference ----------------------------------------------------------
    def clear(self):
        L.llama_memory_clear(L.llama_get_memory(self.ctx), True)

    def seq_rm(self, seq, p0=-1, p1=-1):
        L.llama_memory_seq_rm(L.llama_get_memory(self.ctx), seq, p0, p1)

    def decode_entries(self, entries):
        """entries: [(token, pos, seq_id, want_logits)], at most n_batch.
        Returns the batch indices whose logits were asked for."""
        b = self.batch
        if len(entries) > self.n_batch:
            raise ValueError("batch larger than n_batch")
        out = []
        for i, (tok, pos, seq, want) in enumerate(entries):
            b.token[i] = tok
            b.pos[i] = pos
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = seq
            b.logits[i] = 1 if want else 0
            if want:
                out.append(i)
        b.n_tokens = len(entries)
        rc = L.llama_decode(self.ctx, b)
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc}")
        return out

    def all_logits(self, n):
        """The n output rows of the last decode, (n, vocab), in batch order."""
        p = L.llama_get_logits(self.ctx)
        return np.ctypeslib.as_array(p, shape=(n, self.n_vocab))

    def logits(self, i):
        p = L.llama_get_logits_ith(self.ctx, i)
        return np.ctypeslib.as_array(p, shape=(self.n_vocab,)).copy()

    def eval(self, tokens, pos0, seq=0):
        """Feed tokens at positions pos0.. of seq; logits of the last one."""
        last = None
        for s in range(0, len(tokens), self.n_batch):
            chunk = tokens[s : s + self.n_batch]
            ent = [(t, pos0 + s + j, seq, s + j == len(tokens) - 1) for j, t in enumerate(chunk)]
            idx = self.decode_entries(ent)
            if idx:
                last = self.logits(idx[-1])
        return last

    def is_eog(self, token):
        return bool(L.llama_vocab_is_eog(self.vocab, token))

    def is_control(self, token):
        return bool(L.llama_vocab_is_control(self.vocab, token))


def version():
    return llama_cpp.__version__
