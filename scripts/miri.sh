#!/usr/bin/env bash
# The kernels' unsafe code under Miri (undefined behaviour, out-of-bounds
# and misaligned accesses, data races in the thread pool):
#
#   scripts/miri.sh [SECONDS]      (default 900: the whole run is cut off there)
#
# `cargo +nightly miri test -p aha-kernels` on the default target (x86_64
# with SSE2, which is what Miri detects): the scalar kernels (the
# specification), the block formats, the dispatch table and the thread
# pool's unsafe hand-off between threads (data races included).
# Miri cannot run any of the SIMD backends: AVX2 needs F16C (`vcvtph2ps` /
# `vcvtps2ph`, for every f16 scale and weight), which Miri does not
# implement (tried: `-C target-feature=+avx2,+fma,+f16c` stops at
# `llvm.x86.vcvtps2ph.128`), AVX-512 likewise, and NEON/dotprod (aarch64),
# simd128 (wasm32) and the Cortex-M DSP inline assembly are other targets.
# Those are checked against the scalar kernels on the real CPU
# (kernels/tests/backends.rs) and under emulation (scripts/emulated-tests.sh).
# Needs the nightly toolchain with the miri and rust-src components (added
# here if missing). Under CI a missing Miri fails; locally it skips.
set -uo pipefail
cd "$(dirname "$0")/.."
budget=${1:-900}

skip() {
    echo "SKIPPED: $1"
    [ -n "${CI:-}" ] && exit 1
    exit 0
}
rustup toolchain list | grep -q '^nightly' || skip "Miri needs the nightly toolchain"
if ! cargo +nightly miri --version >/dev/null 2>&1; then
    rustup component add --toolchain nightly miri rust-src >/dev/null 2>&1 || skip "cannot install Miri (rustup component add miri)"
fi

deadline=$(( $(date +%s) + budget ))
left() { echo $(( deadline - $(date +%s) )); }
start=$(date +%s)
timeout "$(left)" cargo +nightly miri setup >/dev/null 2>&1

status=0
log=$(mktemp)
timeout "$(left)" cargo +nightly miri test -p aha-kernels 2>&1 | grep -v 'Miri does not support optimizations' >"$log"
rc=${PIPESTATUS[0]}
grep -E '^test result|Undefined Behavior|unsupported operation' "$log" | head -20
if [ "$rc" -eq 124 ]; then
    echo "miri: did not finish within the ${budget} s budget"
    status=1
elif [ "$rc" -ne 0 ]; then
    tail -n 60 "$log"
    echo "miri: FAILED"
    status=1
fi
rm -f "$log"
echo "miri: done in $(( $(date +%s) - start )) s"
exit $status
