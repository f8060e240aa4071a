#!/usr/bin/env bash
# The trainer on a GPU against the CPU (flex): the same pre-training steps on
# --device vulkan and on flex, losses compared step by step; greedy samples
# and their log-probs compared (a logits check); both timed; then bf16 on the
# GPU at a larger size for speed.
#
#   scripts/gpu-check.sh [path/to/aha] [out-dir]
#
# The binary must be built with burn's GPU backends:
#   cargo build --release --features gpu
#
# Needs a Vulkan driver (on the project's H200 machines: carry the loader and
# set VK_DRIVER_FILES, see the device tool's README). Prints a summary and
# exits non-zero if the GPU's losses or log-probs disagree with flex.
set -euo pipefail
AHA=${1:-target/release/aha}
OUT=${2:-$(mktemp -d)}
mkdir -p "$OUT"
here=$(cd "$(dirname "$0")" && pwd)

cat >"$OUT/tiny.toml" <<'TOML'
model_type = "qwen2"
vocab_size = 512
hidden_size = 128
intermediate_size = 384
num_hidden_layers = 4
num_attention_heads = 4
num_key_value_heads = 2
max_position_embeddings = 1024
tie_word_embeddings = true
TOML

common=(--task arith --examples 3000 --config "$OUT/tiny.toml" --max-steps 40 --batch-size 16 --seq-len 128
        --lr 3e-3 --warmup-steps 5 --save-steps 40 --seed 7)
for dev in flex vulkan; do
  start=$(date +%s.%N)
  "$AHA" pretrain "${common[@]}" --device "$dev" --precision f32 --out "$OUT/f32-$dev"
  end=$(date +%s.%N)
  echo "pretrain f32 on $dev: $(echo "$end - $start" | bc) s"
done

for dev in flex vulkan; do
  "$AHA" generate --init "$OUT/f32-flex" --prompts arith --examples 16 -n 4 --temperature 0 \
    --max-new-tokens 48 --device "$dev" --precision f32 --out "$OUT/greedy-$dev.jsonl"
done

start=$(date +%s.%N)
"$AHA" pretrain "${common[@]}" --device vulkan --precision bf16 --out "$OUT/bf16-vulkan"
end=$(date +%s.%N)
echo "pretrain bf16 on vulkan: $(echo "$end - $start" | bc) s"

python3 "$here/gpu_compare.py" "$OUT"
