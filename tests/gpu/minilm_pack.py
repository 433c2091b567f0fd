#!/usr/bin/env python3
"""minilm_pack.py — carries all-MiniLM-L6-v2 to the lent GPU machine inside
the device tool's 64 MiB limit (the FP32 weights alone are 87 MB).

    minilm_pack.py pack MODEL_DIR OUT_DIR IDS.jsonl CORPUS.jsonl
    minilm_pack.py unpack PACK_DIR MODEL_DIR

pack: copies the small files as they are and splits model.safetensors into
the bytes before and after the word-embedding table plus only the table's
rows for token ids the GPU check can meet: every id in the committed
reference ids (tests/data/minilm/ids.jsonl), the special tokens, and the
ids of every vocab entry that is a lower-case word of the corpus (the
benchmark's texts are built from those words). unpack: rebuilds
model.safetensors byte for byte, with zeros for the other rows. Every
tensor the GPU tests and benchmark read is therefore bit-identical to the
pip package's; only vocabulary rows no text there uses are zero. Standard
library only (the device machine has Python, nothing else is assumed).
"""
import json
import os
import re
import shutil
import struct
import sys

SMALL = ["config.json", "config_sentence_transformers.json", "modules.json",
         "sentence_bert_config.json", "special_tokens_map.json", "tokenizer.json",
         "tokenizer_config.json", "vocab.txt", "1_Pooling/config.json"]
TABLE = "embeddings.word_embeddings.weight"


def header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return n, json.loads(f.read(n))


def pack(mdir, out, ids_path, corpus_path):
    keep = set(range(0, 1000))  # [PAD], [unused*], [UNK], [CLS], [SEP], [MASK]
    with open(ids_path) as f:
        for line in f:
            keep.update(json.loads(line))
    vocab = {}
    with open(os.path.join(mdir, "vocab.txt"), encoding="utf-8") as f:
        for i, w in enumerate(f):
            vocab[w.rstrip("\n")] = i
    with open(corpus_path, encoding="utf-8") as f:
        for line in f:
            for w in re.findall(r"[a-z]+", json.loads(line)["text"].lower()):
                if w in vocab:
                    keep.add(vocab[w])
    os.makedirs(os.path.join(out, "1_Pooling"), exist_ok=True)
    for name in SMALL:
        src = os.path.join(mdir, name)
        if os.path.exists(src):
            shutil.copyfile(src, os.path.join(out, name))
    src = os.path.join(mdir, "model.safetensors")
    hlen, hdr = header(src)
    key = next(k for k in hdr if k.endswith(TABLE))
    info = hdr[key]
    assert info["dtype"] == "F32", info
    rows, width = info["shape"]
    begin, end = info["data_offsets"]
    row_bytes = width * 4
    base = 8 + hlen
    keep = sorted(i for i in keep if i < rows)
    with open(src, "rb") as f:
        data = f.read()
    with open(os.path.join(out, "model.pack"), "wb") as f:
        meta = json.dumps({"rows": rows, "row_bytes": row_bytes, "start": base + begin,
                           "end": base + end, "total": len(data), "keep": keep}).encode()
        f.write(struct.pack("<Q", len(meta)) + meta)
        f.write(data[:base + begin])
        for i in keep:
            f.write(data[base + begin + i * row_bytes:base + begin + (i + 1) * row_bytes])
        f.write(data[base + end:])
    print(f"minilm_pack: {len(keep)} of {rows} vocabulary rows kept; "
          f"{os.path.getsize(os.path.join(out, 'model.pack')) >> 20} MiB")


def unpack(pdir, mdir):
    os.makedirs(os.path.join(mdir, "1_Pooling"), exist_ok=True)
    for name in SMALL:
        src = os.path.join(pdir, name)
        if os.path.exists(src):
            shutil.copyfile(src, os.path.join(mdir, name))
    with open(os.path.join(pdir, "model.pack"), "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        meta = json.loads(f.read(n))
        rb = meta["row_bytes"]
        head = f.read(meta["start"])
        table = bytearray(meta["rows"] * rb)
        for i in meta["keep"]:
            table[i * rb:(i + 1) * rb] = f.read(rb)
        tail = f.read()
    dst = os.path.join(mdir, "model.safetensors")
    with open(dst + ".tmp", "wb") as f:
        f.write(head)
        f.write(table)
        f.write(tail)
    assert os.path.getsize(dst + ".tmp") == meta["total"], "size mismatch"
    os.replace(dst + ".tmp", dst)


def main():
    if len(sys.argv) == 6 and sys.argv[1] == "pack":
        pack(*sys.argv[2:])
    elif len(sys.argv) == 4 and sys.argv[1] == "unpack":
        unpack(*sys.argv[2:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
