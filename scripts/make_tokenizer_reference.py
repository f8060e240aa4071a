#!/usr/bin/env python3
"""Writes runtime/tests/data/tokenizer/: three small byte-level BPE tokenizers
(Qwen2-, Llama 3- and GPT-2-style) and the ids, decoded text and pre-token
splits Hugging Face `tokenizers` gives for tricky and random strings. The
runtime's tests compare against these files; they never run Python.

    pip install tokenizers==0.21.1
    python3 scripts/make_tokenizer_reference.py

Deterministic: the training corpus and the random strings come from this file
and a fixed seed.
"""
import json
import os
import random
import unicodedata

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "runtime", "tests", "data", "tokenizer")

QWEN2 = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
LLAMA3 = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
GPT2 = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>", "<answer>", "</answer>"]

CORPUS = """
Wait, wait. Wait. That's an aha moment I can flag here. Let me re-check the sum: 12 + 30 = 42.
I'm sure they'll say we've got 3141592 digits, but you'd better check; it's what we'd do.
The quick brown fox jumps over the lazy dog. THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG!
def sort_and_prepend(a):
    return [42] + sorted(a)

class Tokenizer:
    def __init__(self, vocab, merges):
        self.vocab = vocab  # a dict from token to id
        self.merges = {pair: rank for rank, pair in enumerate(merges)}

    def encode(self, text: str) -> list[int]:
        if not text:
            return []
        return [self.vocab[t] for t in text.split()]

for (int i = 0; i < n; ++i) { sum += x[i] * y[i]; }
<think>First, compute 17 * 25 = 425. Then subtract 7: 418.</think><answer>418</answer>
<|im_start|>user
What is 2+2?<|im_end|>
<|im_start|>assistant
<think>2 + 2 = 4</think>The answer is 4.<|im_end|>
计算 17 加 25 等于 42。我们先把两个数相加，然后检查结果是否正确。
こんにちは、世界。今日はいい天気ですね。カタカナとひらがな。
안녕하세요 세계. 한국어 문장도 조금 넣어 봅니다.
Émile's café — naïve résumé, coöperate, façade, São Paulo, Zürich, Kraków, İstanbul.
Привет, мир! Это проверка кириллицы. Ελληνικά γράμματα: αβγδε.
مرحبا بالعالم ١٢٣ ٤٥٦ — नमस्ते दुनिया, हिन्दी पाठ।
Emoji: 😀 😃 👍🏽 👩‍💻 🇺🇸 ❤️ — numbers: ½ ¾ Ⅻ ² ³ ①.
    indented    lines	with	tabs  and   spaces

double newlines above; trailing spaces here   
JSON: {"key": "value", "list": [1, 2, 3], "nested": {"a": null}}
https://example.com/path?query=1&other=two#frag  mail@example.org
"""


def train_base():
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(QWEN2), behavior="isolated"), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1200,
        min_frequency=2,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([CORPUS] * 3, trainer=trainer)
    return json.loads(tok.to_str())


def qwen2(base):
    return base


def llama3(base):
    t = json.loads(json.dumps(base))
    t["normalizer"] = None
    t["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = LLAMA3
    t["model"]["ignore_merges"] = True
    # Tokens no merge sequence builds: only ignore_merges can emit them.
    vocab = t["model"]["vocab"]
    for extra in ["Ġwonderful", "Ġaha", "Wait", "123", "ĠĠĠĠĠĠĠĠ"]:
        if extra not in vocab:
            vocab[extra] = max(vocab.values()) + 1
    bos = "<|endoftext|>"
    t["post_processor"] = {
        "type": "Sequence",
        "processors": [
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
            {
                "type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [
                    {"SpecialToken": {"id": bos, "type_id": 0}},
                    {"Sequence": {"id": "A", "type_id": 0}},
                    {"SpecialToken": {"id": bos, "type_id": 1}},
                    {"Sequence": {"id": "B", "type_id": 1}},
                ],
                "special_tokens": {bos: {"id": bos, "ids": [vocab[bos]], "tokens": [bos]}},
            },
        ],
    }
    return t


def gpt2(base):
    t = json.loads(json.dumps(base))
    t["normalizer"] = None
    t["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
    # Added tokens with HF's matching options.
    vocab = t["model"]["vocab"]
    next_id = max(max(vocab.values()), max(a["id"] for a in t["added_tokens"])) + 1
    for content, opts in [
        ("<mask>", dict(lstrip=True, special=True)),
        ("[SEP]", dict(rstrip=True, special=True)),
        ("hello world", dict(special=False, normalized=False)),
        ("cat", dict(single_word=True, special=False, normalized=False)),
        ("é", dict(special=False, normalized=False)),
    ]:
        tok = dict(id=next_id, content=content, single_word=False, lstrip=False, rstrip=False, normalized=False, special=False)
        tok.update(opts)
        t["added_tokens"].append(tok)
        next_id += 1
    return t


FIXED = [
    "",
    " ",
    "Hello world",
    "Hello  world",
    "  leading and trailing  ",
    "x \n\n y  \n z   ",
    " \t\n \t x",
    "a\u00a0\u00a0b\u3000\u3000c",
    "line1\r\nline2\rline3\n",
    "\n\n\n",
    "tabs\t\tand\t",
    "I'm sure they'll say we've 3141592 digits",
    "DON'T YOU'LL WE'VE I'D IT'S THEY'RE I'M",
    "a'ſb 'ſ 'S 's 'sa '' ''' 'x",
    "rock'n'roll o'clock y'all 'tis",
    "12345678901234567890",
    "3.14159 2,718 1e10 0x1F -42",
    "١٢٣٤٥ ½¾ Ⅻ ² ①②",
    "Émile's café — naïve 😀 emoji",
    "e\u0301 a\u0300 n\u0303 A\u030a",  # NFD input
    "\u1100\u1161\u11a8 \u212b \u2126 \u0958",  # jamo, singletons, exclusion
    "q\u0307\u0323 \u1e0b\u0323",  # reordering
    "计算 17 加 25 等于 42。",
    "こんにちは、世界。",
    "안녕하세요 세계",
    "👩‍💻👍🏽🇺🇸❤️",
    "<think>12 + 30 = 42</think><answer>42</answer>",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "<think><think></think>",
    "<|im_end|><|im_end|>text<|endoftext|>",
    "<thin <think <|im_start|",
    "a <mask> b <mask>c  <mask>",
    "[SEP] x [SEP]   y",
    "say hello world!hello world",
    "cat concat cat_ cats cat.",
    "é café é",
    "$$$ !!! ??? ... --- ___ ***",
    "(a):\n\n  [b]\n",
    "def f(x):\n    return x  # comment\n\n\n",
    "    \n    \n",
    "https://example.com/path?query=1&other=two#frag",
    "\u2028\u2029\u0085\u000b\u000c",
    "\ufeffBOM and zero\u200bwidth",
    "wonderful Wait aha 123 1234",
    "        eight spaces",
]

POOLS = [
    (6, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"),
    (3, "0123456789"),
    (3, "          \t\n"),
    (1, "\r\u00a0\u3000\u2028\u000b"),
    (3, "'''''sStTrRvVmMlLdDeEſ"),
    (2, "!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~"),
    (2, "计算加等于我们先把两个数相加然后检查结果是否正确"),
    (1, "こんにちは世界カタカナ"),
    (1, "안녕하세요세계\u1100\u1161\u11a8"),
    (1, "éèêëñçüöäåøœßÉÀ"),
    (2, "\u0300\u0301\u0302\u0308\u0323\u0327\u0345\u05b0\u0903\u093c"),
    (1, "١٢٣½¾Ⅻ²①"),
    (1, "😀👍🏽\u200d❤\ufe0f🇺🇸"),
    (1, "абвгдΑΒΓαβγ"),
    (1, "मनहिंद"),
]


def random_text(rng):
    weights = [w for w, _ in POOLS]
    n = rng.randint(1, 40)
    chars = []
    for _ in range(n):
        r = rng.random()
        if r < 0.04:
            chars.append(rng.choice(SPECIALS))
        elif r < 0.07:
            chars.append(random_assigned_char(rng))
        else:
            pool = rng.choices(POOLS, weights=weights)[0][1]
            chars.append(rng.choice(pool))
    return "".join(chars)


def random_assigned_char(rng):
    # Characters assigned in Python's own (older) Unicode data, so that the
    # regex engine inside `tokenizers` knows them too.
    while True:
        cp = rng.randrange(0x20, 0x30000)
        c = chr(cp)
        if 0xD800 <= cp < 0xE000:
            continue
        if unicodedata.category(c) not in ("Cn", "Cs", "Co"):
            return c


def encode_all(tok_json, texts):
    tok = Tokenizer.from_str(json.dumps(tok_json))
    out = []
    for text in texts:
        ids = tok.encode(text, add_special_tokens=False).ids
        out.append((ids, tok.decode(ids, skip_special_tokens=False)))
    return out


def split_lengths(pattern, text):
    """Pre-token lengths in code points, as HF's Split(Regex, "isolated") cuts."""
    split = pre_tokenizers.Split(Regex(pattern), behavior="isolated")
    return [len(p) for p, _ in split.pre_tokenize_str(text)]


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = random.Random(20240601)
    texts = FIXED + [random_text(rng) for _ in range(300)]
    base = train_base()
    encoded = {}
    for name, make in [("qwen2", qwen2), ("llama3", llama3), ("gpt2", gpt2)]:
        t = make(base)
        with open(os.path.join(OUT, f"{name}.tokenizer.json"), "w") as f:
            json.dump(t, f, ensure_ascii=False, separators=(",", ":"))
        encoded[name] = encode_all(t, texts)
    # One row per text: ids per tokenizer, the decoded text where it is not
    # the input itself, and the pre-token lengths per split pattern.
    rows = []
    for i, text in enumerate(texts):
        row = {"text": text, "ids": {}, "decoded": {}, "split": {}}
        for name in encoded:
            ids, decoded = encoded[name][i]
            row["ids"][name] = ids
            if decoded != text:
                row["decoded"][name] = decoded
        for name, pattern in [("qwen2", QWEN2), ("llama3", LLAMA3), ("gpt2", GPT2)]:
            row["split"][name] = split_lengths(pattern, text)
        rows.append(row)
    with open(os.path.join(OUT, "reference.json"), "w") as f:
        f.write('{"generator": "scripts/make_tokenizer_reference.py",\n"cases": [\n')
        f.write(",\n".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) for r in rows))
        f.write("\n]}\n")
    total = sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT))
    print(f"{len(texts)} texts; {total} bytes in {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
