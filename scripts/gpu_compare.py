"""Compares gpu-check.sh's runs: per-step losses of flex and vulkan (f32),
greedy samples and log-probs, and the throughput of each. Exits 1 on a
disagreement beyond tolerance."""
import json
import sys
from pathlib import Path

out = Path(sys.argv[1])


def metrics(run):
    return [json.loads(l) for l in (out / run / "metrics.jsonl").read_text().splitlines() if l.strip()]


ok = True
cpu, gpu = metrics("f32-flex"), metrics("f32-vulkan")
worst = max(abs(a["loss"] - b["loss"]) / abs(a["loss"]) for a, b in zip(cpu, gpu))
print(f"f32 losses, {len(cpu)} steps: flex {cpu[0]['loss']:.4f} -> {cpu[-1]['loss']:.4f}, "
      f"vulkan {gpu[0]['loss']:.4f} -> {gpu[-1]['loss']:.4f}, worst relative difference {worst:.2e}")
ok &= worst < 2e-2
for name, run in [("flex f32", cpu), ("vulkan f32", gpu), ("vulkan bf16", metrics("bf16-vulkan"))]:
    rates = sorted(m["tokens_per_s"] for m in run[5:])
    print(f"{name}: median {rates[len(rates) // 2]:.0f} target tokens/s per step")
bf16 = metrics("bf16-vulkan")
print(f"bf16 loss {bf16[0]['loss']:.4f} -> {bf16[-1]['loss']:.4f} (f32: {gpu[-1]['loss']:.4f})")


def samples(dev):
    return [json.loads(l) for l in (out / f"greedy-{dev}.jsonl").read_text().splitlines()]


a, b = samples("flex"), samples("vulkan")
same = sum(x["token_ids"] == y["token_ids"] for x, y in zip(a, b))
diffs = [abs(p - q) for x, y in zip(a, b) if x["token_ids"] == y["token_ids"] for p, q in zip(x["logprobs"], y["logprobs"])]
print(f"greedy: {same}/{len(a)} samples identical; log-prob max difference {max(diffs, default=0):.2e}")
for dev in ["flex", "vulkan"]:
    m = json.loads((out / f"greedy-{dev}.jsonl.metrics.jsonl").read_text().splitlines()[0])
    print(f"generate on {dev}: {m['tokens_per_s']:.0f} tokens/s ({m['sequences']} sequences)")
ok &= same >= len(a) * 0.9 and max(diffs, default=0) < 1e-2
sys.exit(0 if ok else 1)
