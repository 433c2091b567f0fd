"""llm_corpus.py — the inputs of the `llm` references (scripts/make_llm_reference.py):
the hard tokenizer corpus, the chat-template message lists and the logit prompts.

Kept apart from the script so the inputs can be read (and extended) without
the reference tools; the generated files under tests/data/llm/ carry them too.
"""

# ---------------------------------------------------------------------------
# Tokenizer corpus: (category, name, text) or (category, name, bytes) for input
# that is not valid UTF-8 (JSON cannot hold it; the data file stores hex).
# ---------------------------------------------------------------------------
_CODE = {
    "python": 'def fib(n: int) -> int:\n    """Return the n-th Fibonacci number."""\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n\nprint(f"{fib(30)=}")\n',
    "c": '#include <stdio.h>\n\nint main(int argc, char **argv) {\n\tfor (int i = 0; i < argc; ++i)\n\t\tprintf("%d: %s\\n", i, argv[i]);\n\treturn 0;\n}\n',
    "rust": 'fn main() {\n    let v: Vec<u32> = (1..=10).map(|x| x * x).collect();\n    println!("{:?}", v.iter().sum::<u32>());\n}\n',
    "javascript": "const add = (a, b) => a + b;\nexport default async function go() {\n  await fetch('/api?q=1&r=2');\n  return [...new Set([1, 1, 2])];\n}\n",
    "go": 'package main\n\nimport "fmt"\n\nfunc main() {\n\tch := make(chan int, 3)\n\tgo func() { ch <- 42 }()\n\tfmt.Println(<-ch)\n}\n',
    "sql": "SELECT u.id, COUNT(*) AS n\nFROM users u LEFT JOIN orders o ON o.user_id = u.id\nWHERE u.created_at >= '2024-01-01'\nGROUP BY u.id HAVING n > 3;",
    "html": '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Hi &amp; bye</title></head>\n<body><p class="x">Hello, <b>world</b>!</p></body></html>',
    "json": '{"name": "kinfer", "version": [0, 1, 2], "nested": {"ok": true, "pi": 3.14159, "none": null}}',
    "shell": "#!/bin/sh\nset -eu\nfor f in *.txt; do\n  wc -l \"$f\" | awk '{print $1}' >> out.log 2>&1\ndone\n",
    "haskell": "main :: IO ()\nmain = mapM_ print $ takeWhile (< 100) [x^2 | x <- [1..], odd x]\n",
    "lisp": "(defun fact (n)\n  (if (<= n 1) 1 (* n (fact (- n 1)))))\n",
    "latex": "\\begin{equation}\n  e^{i\\pi} + 1 = 0, \\quad \\sum_{k=1}^{\\infty} \\frac{1}{k^2} = \\frac{\\pi^2}{6}\n\\end{equation}",
    "makefile": "all: main.o util.o\n\t$(CC) $(CFLAGS) -o app $^\n\n%.o: %.c\n\t$(CC) -c $< -o $@\n",
    "regex": r"^(?:[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*)@(?:[a-z0-9-]+\.)+[a-z]{2,}$",
    "yaml": "services:\n  kafka:\n    image: apache/kafka:3.7.0\n    ports: [\"9092:9092\"]\n    environment:\n      - KAFKA_NODE_ID=1\n",
    "cpp_template": "template <typename T, std::size_t N>\nconstexpr auto sum(const std::array<T, N>& a) -> T { return std::accumulate(a.begin(), a.end(), T{}); }",
    "java": 'public final class Hello {\n    public static void main(String[] args) {\n        System.out.println("Hello, " + args.length);\n    }\n}',
    "deep_indent": "        if (x) {\n                return y;\n        }\n",
    "tabs_and_spaces": "\t  \tmixed\t \tindent\n \t \n",
    "diff": "--- a/file.c\n+++ b/file.c\n@@ -1,3 +1,4 @@\n-int x = 1;\n+int x = 2;\n+int y = 3;\n",
}

_CJK = {
    "chinese": "今天天气很好，我们去公园散步吧。",
    "chinese_trad": "臺灣的夜市非常熱鬧。",
    "japanese_mixed": "東京タワーは、とても高いです。カタカナとひらがな。",
    "japanese_halfwidth_kana": "ｶﾀｶﾅ ﾊﾝｶｸ",
    "korean": "안녕하세요, 세계! 반갑습니다.",
    "korean_jamo_decomposed": "\u1100\u1161\u11a8 \u1112\u1161\u11ab",
    "cjk_with_ascii": "Python 3.12 的新特性：更好的错误信息。",
    "cjk_punct": "「こんにちは」『世界』【注意】〜",
    "fullwidth_latin": "ＡＢＣ ａｂｃ！？",
    "cjk_ext_b": "\U00020000\U0002a6d6\U0002b734",
}

_EMOJI = {
    "simple": "😀",
    "run": "😀😃😄😁😆",
    "thumbs_skin_tones": "👍👍🏻👍🏼👍🏽👍🏾👍🏿",
    "zwj_family": "👨\u200d👩\u200d👧\u200d👦",
    "zwj_astronaut_dark": "🧑🏿\u200d🚀",
    "rainbow_flag": "🏳\ufe0f\u200d🌈",
    "country_flags": "🇺🇸🇯🇵🇩🇪",
    "keycap": "1\ufe0f\u20e3 #\ufe0f\u20e3",
    "heart_vs16": "❤\ufe0f ❤",
    "emoji_in_text": "I love 🍕 and 🍣!",
    "emoji_no_space": "ok👌ok",
    "couple_kiss": "👩\u200d❤\ufe0f\u200d💋\u200d👨",
    "emoji_numbers": "🔟 💯 1️⃣2️⃣",
}

_COMBINING = {
    "e_acute_precomposed": "caf\u00e9",
    "e_acute_decomposed": "cafe\u0301",
    "stacked_marks": "a\u0308\u0304\u0301",
    "zalgo": "Z\u0351\u036b\u0343\u036a\u0302a\u0346l\u0313g\u0310o\u0364",
    "hindi": "नमस्ते दुनिया",
    "thai": "สวัสดีชาวโลก",
    "vietnamese": "Tiếng Việt có dấu",
    "devanagari_conjuncts": "क्षत्रिय ज्ञान",
    "lone_combining": "\u0301",
    "combining_after_space": " \u0301x",
    "tamil": "வணக்கம் உலகம்",
}

_RTL = {
    "arabic": "مرحبا بالعالم",
    "hebrew": "שלום עולם",
    "arabic_with_numbers": "السعر ١٢٣ دولار و 456 سنت",
    "mixed_direction": "The word שלום means peace.",
    "rlm_lrm_marks": "abc\u200fdef\u200eghi",
    "persian": "سلام دنیا، حالت چطوره؟",
    "hebrew_niqqud": "שָׁלוֹם",
}

_SCRIPTS = {
    "cyrillic": "Привет, мир! Ёжик в тумане.",
    "greek": "Γειά σου Κόσμε· αβγδε",
    "georgian": "გამარჯობა მსოფლიო",
    "armenian": "Բարեւ աշխարհ",
    "amharic": "ሰላም ልዑል",
    "math_symbols": "∀x∈ℝ: x²≥0 ⇒ √(x²)=|x|",
    "math_alnum_astral": "𝐀𝐁𝐂 𝑥𝑦𝑧 𝟘𝟙𝟚",
    "musical_symbol": "𝄞𝄢",
    "box_drawing": "┌──┬──┐\n│a │b │\n└──┴──┘",
    "braille": "⠓⠑⠇⠇⠕",
    "ligature": "ﬁnance ﬂow",
    "currency": "$5 €10 £20 ¥30 ₹40 ₿1",
    "turkish_dotted": "İstanbul ıi",
    "german_sharp_s": "Straße STRASSE ẞ",
}

_CONTRACTIONS = {
    "lower": "I'm sure you're right, they've said we'll go, he'd know, it's fine, don't.",
    "upper": "I'M SURE YOU'RE RIGHT, THEY'VE SAID WE'LL GO, HE'D KNOW, IT'S FINE, DON'T.",
    "mixed": "It'S yOu'Re They'Ve we'LL He'D i'M",
    "bare": "'s 't 're 've 'm 'll 'd",
    "bare_upper": "'S 'T 'RE 'VE 'M 'LL 'D",
    "curly_apostrophe": "it\u2019s you\u2019re don\u2019t",
    "double_quote": "''s ''t",
    "rock_n_roll": "rock'n'roll o'clock y'all ma'am",
    "possessive_digits": "the 90's and '80s",
    "apostrophe_space": "it' s you 're",
    "quote_start": "'hello' \"world\"",
}

_PUNCT = {
    "bangs": "!!!",
    "interrobang": "?!?!?!",
    "ellipsis_ascii": "Wait...",
    "ellipsis_unicode": "Wait\u2026\u2026",
    "dashes": "--- \u2013 \u2014 ===",
    "brackets": "<<>> [[]] {{}} (())",
    "symbols": "@#$%^&*()_+-=[]{}|;:,./<>?`~",
    "smart_quotes": "\u201cquoted\u201d \u2018single\u2019",
    "guillemets": "\u00abbonjour\u00bb \u2039x\u203a",
    "space_before_punct": "a !b ?c .d",
    "punct_runs_spaced": "!!! !!! ??? ...",
    "arrows": "-> => <- <= != == ===",
    "url": "https://example.com/path/to/page?query=1&b=two#frag",
    "email": "first.last+tag@sub.example.co.uk",
    "path": "C:\\Users\\me\\file.txt /usr/local/bin/",
    "markdown": "# Title\n\n* item **bold** _it_ `code`\n> quote\n",
}

_SPECIAL_LITERALS = {
    "im_start": "<|im_start|>",
    "im_end": "<|im_end|>",
    "endoftext": "<|endoftext|>",
    "chatml_turn": "<|im_start|>user\nhi<|im_end|>\n",
    "repo_name": "<repo_name>kinfer<file_sep>main.c",
    "jupyter": "<jupyter_code>print(1)<jupyter_output>1<empty_output>",
    "partial": "<|im_start <|im_end| |im_start|>",
    "adjacent": "<|im_start|><|im_end|><|endoftext|>",
    "spaced": " <|endoftext|> ",
    "in_sentence": "The token <|im_end|> ends a turn.",
    "gh_stars": "<gh_stars>100",
}

_LONG = {
    "aaaa_200": "a" * 200,
    "ab_100": "ab" * 100,
    "supercali": "supercalifragilisticexpialidocious",
    "pneumono": "pneumonoultramicroscopicsilicovolcanoconiosis",
    "german_compound": "Donaudampfschifffahrtsgesellschaftskapitän",
    "base64_blob": "U29tZSBsb25nIGJhc2U2NCBlbmNvZGVkIHRleHQgd2l0aCBwYWRkaW5nPT0=" * 3,
    "hex_hash": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "camel_case": "ThisIsAVeryLongCamelCaseIdentifierNameForTesting",
    "snake_case": "this_is_a_very_long_snake_case_identifier_name",
    "long_cjk": "的" * 64,
    "long_emoji": "🙂" * 40,
    "long_url": "https://example.com/" + "/".join(["segment"] * 20),
    "lorem_paragraph": (
        "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et "
        "dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip "
        "ex ea commodo consequat."
    ),
}

_CONTROL = {
    "nul": "\x00",
    "nul_inside": "a\x00b",
    "c0_controls": "\x01\x02\x03\x1b[0m",
    "del": "\x7f",
    "nel": "a\u0085b",
    "line_separator": "a\u2028b\u2029c",
    "bom": "\ufeffhello",
    "zwsp": "zero\u200bwidth\u200cnon\u200djoiner",
    "soft_hyphen": "hy\u00adphen",
    "private_use": "\ue000\U000f0000",
    "noncharacter": "\ufffe\uffff",
    "replacement_char": "\ufffd",
    "max_codepoint": "\U0010ffff",
}

_PROSE = {
    "hello": "Hello world",
    "hello_space": " Hello world",
    "sentence": "The quick brown fox jumps over the lazy dog.",
    "question": "What is the capital of France?",
    "multiline": "Line one.\nLine two.\n\nParagraph two.",
    "capitals": "NASA and the FBI met at IBM in the USA.",
    "mixed_case": "hElLo WoRlD",
    "single_letter": "a",
    "single_space_letter": " a",
    "kafka": "Kafka topics are split into partitions; consumers in a group share them.",
    "french": "Où est la bibliothèque? Je ne sais pas.",
    "spanish": "¿Dónde está el baño? ¡Gracias!",
    "polish": "Zażółć gęślą jaźń",
    "chat_like": "User: hi\nAssistant: Hello! How can I help?",
}


def _digits():
    out = {}
    for n in range(1, 13):
        out[f"run_{n}"] = "1234567890123"[:n]
    out.update({
        "pi": "3.14159265358979",
        "thousands": "1,000,000",
        "version": "v1.2.3-rc.10",
        "date": "2024-01-01T12:34:56Z",
        "space_number": " 42",
        "letters_digits": "a1b2c3d4",
        "hex_literal": "0x1F 0xDEADBEEF",
        "negative_exp": "-1.5e-10",
        "phone": "+1 (555) 123-4567",
        "fullwidth": "\uff11\uff12\uff13",
        "arabic_indic": "\u0663\u0664\u0665",
        "devanagari": "\u0967\u0968\u0969",
        "superscripts": "x\u00b2 y\u00b3 \u00b9",
        "fraction": "\u00bd \u00bc \u2153",
        "roman_numeral": "\u216b \u2160\u2161",
        "circled": "\u2460\u2461\u2462",
        "digits_then_letters": "123abc",
        "space_digits_spaces": "1 2  3   4",
        "long_number": "31415926535897932384626433832795028841971",
        "money": "$1,234.56",
        "ip": "192.168.0.1:8080",
    })
    return out


def _whitespace():
    out = {}
    for n in (1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 33):
        out[f"spaces_{n}"] = " " * n
    for n in (1, 2, 3, 8):
        out[f"tabs_{n}"] = "\t" * n
    for n in (1, 2, 3, 5):
        out[f"newlines_{n}"] = "\n" * n
    out.update({
        "crlf": "\r\n",
        "crlf_2": "\r\n\r\n",
        "cr": "\r",
        "a_crlf_b": "a\r\nb",
        "vt_ff": "a\x0bb\x0cc",
        "nbsp": "a\u00a0b",
        "em_space": "a\u2003b",
        "ideographic_space": "a\u3000b",
        "thin_space": "a\u2009b",
        "word_2sp_word": "a  b",
        "word_3sp_word": "a   b",
        "word_8sp_word": "a        b",
        "trailing_spaces": "hello   ",
        "leading_spaces": "   hello",
        "leading_tab": "\thello",
        "space_newline": " \n",
        "newline_space": "\n ",
        "newline_space_newline": "\n \n",
        "mixed_ws": " \t\n \r\n\t ",
        "ws_before_punct": "a   !",
        "ws_before_digit": "a   1",
        "ws_before_cjk": "a   \u4e2d",
        "ws_before_emoji": "a   \U0001f600",
        "newlines_between_words": "hello\n\n\nworld",
        "spaces_around_newline": "a  \n  b",
        "tab_before_word": "a\tb",
        "tab_space_word": "a\t b",
        "space_tab_word": "a \tb",
        "only_ws_mixed": "\t \t \n",
    })
    return out


def _invalid_utf8():
    return {
        "lone_ff": b"\xff",
        "lone_lead_c3": b"\xc3",
        "lead_then_ascii": b"\xc3(",
        "truncated_3byte": b"\xe2\x82",
        "truncated_then_text": b"ab\xe2\x82cd",
        "encoded_surrogate": b"\xed\xa0\x80",
        "five_byte": b"\xf8\x88\x80\x80\x80",
        "stray_continuation": b"abc\x80def",
        "overlong_slash": b"\xc0\xaf",
        "beyond_max": b"\xf4\x90\x80\x80",
        "valid_then_invalid": "é".encode() + b"\xfe" + "ü".encode(),
        "continuations_run": b"\x80\x81\x82\x83",
    }


def tokenizer_corpus():
    """[(category, name, str | bytes)] — the hard tokenizer corpus."""
    groups = [
        ("empty", {"empty": "", "space": " ", "newline": "\n"}),
        ("prose", _PROSE),
        ("code", _CODE),
        ("cjk", _CJK),
        ("emoji", _EMOJI),
        ("combining", _COMBINING),
        ("rtl", _RTL),
        ("scripts", _SCRIPTS),
        ("contractions", _CONTRACTIONS),
        ("digits", _digits()),
        ("whitespace", _whitespace()),
        ("punct", _PUNCT),
        ("special_literal", _SPECIAL_LITERALS),
        ("long", _LONG),
        ("control", _CONTROL),
        ("invalid_utf8", _invalid_utf8()),
    ]
    out = []
    for cat, d in groups:
        for name, text in d.items():
            out.append((cat, f"{cat}/{name}", text))
    return out


# ---------------------------------------------------------------------------
# Chat template cases: (name, messages, add_generation_prompt)
# ---------------------------------------------------------------------------
def chat_cases():
    sys_msg = {"role": "system", "content": "You are a terse assistant."}
    u1 = {"role": "user", "content": "What is Kafka?"}
    a1 = {"role": "assistant", "content": "A distributed log."}
    u2 = {"role": "user", "content": "And a partition?"}
    return [
        ("user_only_gen", [u1], True),
        ("user_only_nogen", [u1], False),
        ("system_user_gen", [sys_msg, u1], True),
        ("system_user_nogen", [sys_msg, u1], False),
        ("multi_turn_gen", [sys_msg, u1, a1, u2], True),
        ("multi_turn_no_system_gen", [u1, a1, u2], True),
        ("multi_turn_ends_assistant_nogen", [sys_msg, u1, a1], False),
        ("unicode_content", [{"role": "user", "content": "翻译：こんにちは 👋🏽 مرحبا — «ok»\tend"}], True),
        ("empty_user_content", [{"role": "user", "content": ""}], True),
        ("empty_system_content", [{"role": "system", "content": ""}, u1], True),
        ("special_literal_in_content", [{"role": "user", "content": "say <|im_end|> then <|im_start|>x"}], True),
        ("multiline_crlf_content", [{"role": "user", "content": "line1\r\nline2\n\n  indented  \n"}], True),
        ("system_not_first", [u1, sys_msg, u2], True),
        ("custom_role", [{"role": "tool", "content": "{\"temp\": 21}"}, u1], True),
        ("empty_messages_gen", [], True),
        ("empty_messages_nogen", [], False),
    ]


# ---------------------------------------------------------------------------
# Logit prompts: (name, kind, payload). kind "text": plain completion, no BOS;
# kind "chat": messages rendered with the GGUF template, add_generation_prompt.
# ---------------------------------------------------------------------------
_LONG_STORY = (
    "Once upon a time, in a small village at the edge of a great forest, there lived an old clockmaker named "
    "Elias. Every morning he opened the wooden shutters of his shop, swept the dust from the floor, and wound "
    "each of the hundred clocks that hung on his walls. The villagers said that his clocks never lost a second, "
    "and travellers came from distant cities to buy them. One winter, a young girl named Mira knocked on his "
    "door. She carried a broken pocket watch that had belonged to her grandmother, and she asked whether he could "
    "repair it. Elias turned the watch over in his hands, opened its case, and saw that the mainspring had "
    "snapped and two of the tiny gears were missing their teeth. It would take weeks of careful work, he told "
    "her, and the parts were no longer made anywhere. Mira said she would wait, and she came back every "
    "afternoon to watch him work. He showed her how to hold the tweezers, how to clean the pivots with pith "
    "wood, and how to listen to the beat of a balance wheel. As the weeks passed, the snow piled high against "
    "the windows, and the shop filled with the smell of oil and pine. When at last the watch ticked again, Mira "
    "held it to her ear and laughed. Elias smiled and said that the watch had not been the only thing repaired "
    "that winter. In the spring, Mira became his apprentice, and years later, when Elias grew too old to climb "
    "the ladder to the highest clocks, she wound them for him every morning, one by one, until the whole shop "
    "sang with their ticking. The village grew into a town, and the town into a city, but the little shop at "
    "the edge of the forest remained, and people said that time itself"
)


def logit_prompts():
    return [
        ("short_capital", "text", "The capital of France is"),
        ("short_code", "text", "def add(a, b):\n    return"),
        ("digits_list", "text", "1, 2, 3, 4, 5, 6, 7,"),
        ("unicode_mixed", "text", "Translate to English: 今天天气很好。 Answer:"),
        ("chat_simple", "chat", [{"role": "user", "content": "What is the capital of France?"}]),
        ("chat_system_multi", "chat", [
            {"role": "system", "content": "You are a helpful assistant who answers briefly."},
            {"role": "user", "content": "Name three primary colors."},
            {"role": "assistant", "content": "Red, yellow and blue."},
            {"role": "user", "content": "And the secondary colors?"},
        ]),
        ("medium_paragraph", "text", _LONG_STORY[:620]),
        ("chat_long_context", "chat", [
            {"role": "user", "content": "Summarize this story in one sentence:\n\n" + _LONG_STORY[:1500]},
        ]),
        # the story twice: ~700 positions, and the second copy is predictable
        # only through attention to the first (RoPE at distance ~350)
        ("long_story", "text", _LONG_STORY + "\n\n" + _LONG_STORY),
    ]
