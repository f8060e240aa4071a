#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz, libFuzzer, AddressSanitizer) of what
# aha reads from users: the .aha parser and loader, the tokenizer.json
# importer, the tokenizer blob, config.json + safetensors headers, JSONL,
# model TOML, the answer extractors and the list-language sandbox
# (fuzz/fuzz_targets/, seeds in fuzz/corpus/, docs/hardening.md).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]    (default: 10 s each, every target)
#
# Fails on the first crash, panic, failed assertion, leak or timeout; the
# input that did it is in fuzz/artifacts/<target>/ (replay it with
# `fuzz/target/<host>/release/<target> <file>`, or `cargo +nightly fuzz run
# <target> <file>` where cargo-fuzz is installed, then add it as a regression
# test). New inputs found go to a temporary folder: the checked-in seeds do
# not change. Needs the nightly toolchain, not cargo-fuzz: the targets are
# built here with the flags `cargo fuzz build` passes (coverage counters and
# comparison tracing for libFuzzer, AddressSanitizer, `--cfg fuzzing`), plus
# debug assertions so that an arithmetic overflow is a crash too; this saves
# CI the ~3.5 min of compiling cargo-fuzz. Building the targets takes ~4 min
# on 2 cores the first time (fuzz/target/ keeps them).
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-10}
shift || true
if [ $# -gt 0 ]; then
    targets=("$@")
else
    targets=()
    for f in fuzz/fuzz_targets/*.rs; do targets+=("$(basename "$f" .rs)"); done
fi

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "SKIPPED: fuzzing needs the nightly toolchain (rustup toolchain install nightly)"
    [ -n "${CI:-}" ] && exit 1
    exit 0
fi
host=$(rustc +nightly -vV | sed -n 's/^host: //p')
flags=(
    --cfg fuzzing
    -Cpasses=sancov-module
    -Cllvm-args=-sanitizer-coverage-level=4
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters
    -Cllvm-args=-sanitizer-coverage-pc-table
    -Cllvm-args=-sanitizer-coverage-trace-compares
    -Zsanitizer=address
    -Cdebug-assertions
    -Cforce-frame-pointers
)
start=$(date +%s)
# --target keeps build scripts and proc-macros uninstrumented.
RUSTFLAGS="${flags[*]}" cargo +nightly build --release --bins \
    --manifest-path fuzz/Cargo.toml --target "$host" --target-dir fuzz/target
echo "fuzz targets built in $(( $(date +%s) - start )) s"
bin=fuzz/target/$host/release

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for t in "${targets[@]}"; do
    mkdir -p "$work/$t"
    # -timeout: one input taking over 10 s is a hang; -rss_limit_mb: a
    # runaway allocation is a failure, not a swap storm.
    mkdir -p "fuzz/artifacts/$t"
    if ! "$bin/$t" "$work/$t" "fuzz/corpus/$t" -artifact_prefix="fuzz/artifacts/$t/" \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$work/$t.log" 2>&1; then
        tail -n 60 "$work/$t.log"
        echo "fuzz: $t FAILED after at most $secs s; the input is in fuzz/artifacts/$t/"
        exit 1
    fi
    runs=$(grep -m1 -oE 'stat::number_of_executed_units: *[0-9]+' "$work/$t.log" | grep -oE '[0-9]+$' || echo '?')
    cov=$(grep -oE 'cov: [0-9]+' "$work/$t.log" | tail -n 1 || true)
    echo "fuzz: $t ok: $runs inputs in $secs s, no crash ($cov)"
done
echo "fuzz: ${#targets[@]} targets, $secs s each, no crash"
