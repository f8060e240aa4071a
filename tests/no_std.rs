//! The runtime and its kernels build with no allocator and no std, for a
//! Cortex-M4F microcontroller and for bare wasm32 (the targets `.ci/run`
//! installs). A build failure here means a std or alloc dependency crept in.

use std::process::Command;

fn build(target: &str, extra_rustflags: &str) {
    let installed = Command::new("rustup").args(["target", "list", "--installed"]).output();
    if let Ok(out) = &installed {
        let list = String::from_utf8_lossy(&out.stdout);
        assert!(list.lines().any(|l| l.trim() == target), "target {target} is not installed: run `rustup target add {target}`");
    }
    let target_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/no_std");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "-p", "aha-kernels", "-p", "aha-runtime", "--no-default-features", "--target", target])
        .env("CARGO_TARGET_DIR", target_dir)
        .env("RUSTFLAGS", extra_rustflags)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("running cargo");
    assert!(status.success(), "aha-kernels + aha-runtime do not build without std/alloc for {target}");
}

#[test]
fn builds_for_cortex_m4f_without_std_or_alloc() {
    build("thumbv7em-none-eabihf", "");
}

#[test]
fn builds_for_bare_wasm32_with_simd128() {
    build("wasm32-unknown-unknown", "-C target-feature=+simd128");
}
