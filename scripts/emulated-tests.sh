#!/usr/bin/env bash
# The Arm and WebAssembly paths, tested under emulation on an x86_64 host:
#
#   aarch64   kernels + runtime tests for aarch64-unknown-linux-gnu under
#             qemu-aarch64 (-cpu max: NEON and dotprod backends both run)
#   wasm      kernels + runtime tests for wasm32-wasip1 (+simd128) in Node.js
#   cortex-m  the firmware (firmware/cortex-m) in qemu-system-arm's mps2-an386,
#             its greedy tokens against the host runtime's (runtime/tests/firmware.rs)
#   browser   the web page (web/) streaming an answer in headless Chromium,
#             its tokens against the host runtime's (runtime/tests/browser.rs)
#
# Runners and linkers come from .cargo/config.toml. Needs (Debian 12):
#   apt-get install qemu-user-static gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-system-arm chromium
#   rustup target add aarch64-unknown-linux-gnu wasm32-wasip1 wasm32-unknown-unknown thumbv7em-none-eabihf
# and Node.js >= 18.
#
# usage: scripts/emulated-tests.sh [aarch64] [wasm] [cortex-m] [browser]   (none = all)
set -euo pipefail
cd "$(dirname "$0")/.."

aarch64() {
    # The firmware and browser tests drive host programs (QEMU, Chromium): they
    # run in their own steps, on the host.
    cargo test -p aha-kernels -p aha-runtime --target aarch64-unknown-linux-gnu -- \
        --skip cortex_m_firmware --skip web_page
}

wasm() {
    cargo test -p aha-kernels -p aha-runtime --target wasm32-wasip1
}

cortex_m() {
    AHA_REQUIRE_QEMU=1 cargo test -p aha-runtime --test firmware -- --nocapture
}

browser() {
    AHA_REQUIRE_CHROMIUM=1 cargo test -p aha-runtime --test browser -- --nocapture
}

steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(aarch64 wasm cortex-m browser)
for step in "${steps[@]}"; do
    start=$SECONDS
    echo "=== emulated tests: $step"
    case "$step" in
        aarch64) aarch64 ;;
        wasm) wasm ;;
        cortex-m) cortex_m ;;
        browser) browser ;;
        *) echo "unknown step $step (aarch64, wasm, cortex-m, browser)" >&2; exit 2 ;;
    esac
    echo "=== emulated tests: $step passed in $((SECONDS - start)) s"
done
