#!/usr/bin/env bash
# The trainer and batch sampling against PyTorch / Hugging Face on the same
# threads, in one window (docs/kernels.md, "Many sequences and the training
# step"): the 4.2M Qwen2 (256 wide, 4 layers, 4/2 heads, FFN 768, vocab
# 4096, f32), 2 threads, REPS paired rounds of
#   - `aha pretrain` B8 x T128 (AdamW) vs torch_cpu_anchor.py's training step;
#   - 64 prompts x 64 new tokens: `aha generate` (runtime and trainer engines)
#     vs HF `generate`, and `aha bench --batch 64` at f32, Q8_0 and Q4_0.
#
#   scripts/trainer-perf.sh [REPS]      (default 3)
#
# Needs a release build (`cargo build --release`) and a Python with torch and
# transformers: PY (default perf-work/venv/bin/python; see ../shared/perf/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
reps=${1:-3}
aha=${AHA:-$PWD/target/release/aha}
py=${PY:-$PWD/perf-work/venv/bin/python}
anchor=$PWD/../shared/perf/torch_cpu_anchor.py
work=${PERF:-$PWD/perf-work/trainer}
repo=$PWD
mkdir -p "$work" && cd "$work"

cp "$repo/configs/qwen2-4m.toml" m4.toml
# Long documents of random words, so that every training row is full; 64
# prompts of 12 words from them.
python3 - <<'EOF'
import json, random
random.seed(0)
words = ["".join(random.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(random.randint(2, 9))) for _ in range(3000)]
docs = [" ".join(random.choice(words) for _ in range(600)) for _ in range(300)]
open("long.txt", "w").write("\n\n".join(docs))
text = " ".join(docs).split()
with open("p64.jsonl", "w") as f:
    for _ in range(64):
        s = random.randrange(len(text) - 20)
        f.write(json.dumps({"prompt": " ".join(text[s:s + 12])}) + "\n")
EOF

train() {
    rm -rf "$1"
    "$aha" pretrain --config m4.toml --corpus long.txt --out "$1" --max-steps 14 --batch-size 8 --seq-len 128 \
        --lr 1e-6 --warmup-steps 0 --save-steps 1000 >/dev/null 2>&1
}
# A near-initial checkpoint (tiny learning rate): its samples rarely end early.
train m4-train
for t in f32 q8_0 q4_0; do "$aha" convert m4-train -o "m4-$t.aha" --dtype "$t" >/dev/null; done

for rep in $(seq "$reps"); do
    echo "== round $rep"
    train m4-t
    python3 - <<'EOF'
import json
rows = [json.loads(l) for l in open("m4-t/metrics.jsonl")]
timed = rows[4:]  # the first steps warm up
tokens = sum(r["tokens"] for r in timed)
seconds = timed[-1]["elapsed_s"] - rows[3]["elapsed_s"]
print(f"aha train f32 B8 T128: {tokens / seconds:.0f} target tokens/s ({seconds / len(timed) * 1000:.0f} ms/step)")
EOF
    "$py" "$anchor" --hidden 256 --layers 4 --heads 4 --kv 2 --ffn 768 --vocab 4096 --batch 8 --seq 128 --threads 2 \
        --gen-batch 64 --prompt 32 --new 64 2>&1 | grep '^torch'
    for engine in runtime trainer; do
        "$aha" generate --init m4-train --prompts p64.jsonl -n 1 --out g.jsonl --max-new-tokens 64 --template raw \
            --engine "$engine" 2>&1 | tail -1 | sed "s/^/aha generate $engine f32: /"
    done
    for t in f32 q8_0 q4_0; do
        "$aha" bench "m4-$t.aha" --threads 2 --prompt 32 --tokens 64 --batch 64 2>&1 | tail -1 | sed "s/^/aha bench --batch 64 $t (threads, sequences, decode, with prefill): /"
    done
done
