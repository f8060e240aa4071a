//! The Cortex-M4F firmware (`firmware/cortex-m`) under QEMU's mps2-an386
//! gives the host runtime's greedy tokens for the same model file and
//! prompt, at Q8_0 and at Q4_0, and stays within `aha inspect --target`'s
//! flash and RAM estimate; its DSP kernels are bit-identical to the scalar
//! reference on the emulated core (`firmware/cortex-m/src/bin/kernel-test.rs`).
//!
//! Needs `qemu-system-arm` (Debian: `apt-get install qemu-system-arm`) and
//! the `thumbv7em-none-eabihf` Rust target; without them it says so and
//! passes (unless `AHA_REQUIRE_QEMU` is set). `.ci/run` installs both and
//! runs it (`scripts/emulated-tests.sh cortex-m`). It builds the firmware with cargo (~2 minutes the first time,
//! ~30 s after) and prints the emulator's instruction counts.

// It drives a host program (QEMU), which WebAssembly cannot start: under
// wasm32-wasip1 (scripts/emulated-tests.sh wasm) the file holds no test.
#![cfg(not(target_family = "wasm"))]

use aha_kernels::{DType, Kernels};
use aha_runtime::convert::{convert, ConvertOptions};
use aha_runtime::footprint::{board, Footprint};
use aha_runtime::{GenerateOptions, Generator, KvType, Model, Sampler, SamplerConfig, Session, Template};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MAX_TOKENS: usize = 32;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Why the test cannot run here, if it cannot.
fn missing_tools() -> Option<String> {
    if Command::new("qemu-system-arm").arg("--version").output().is_err() {
        return Some("qemu-system-arm is not installed (apt-get install qemu-system-arm)".into());
    }
    let targets = Command::new("rustup").args(["target", "list", "--installed"]).output();
    match targets {
        Ok(out) if !String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim() == "thumbv7em-none-eabihf") => {
            Some("the thumbv7em-none-eabihf target is not installed (rustup target add thumbv7em-none-eabihf)".into())
        }
        _ => None,
    }
}

/// What the firmware printed, by its `[aha] key: value` lines.
struct Run {
    stdout: String,
}

impl Run {
    fn field(&self, key: &str) -> &str {
        let prefix = format!("[aha] {key}: ");
        self.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("the firmware printed no `{prefix}` line:\n{}", self.stdout))
    }

    fn ids(&self, key: &str) -> Vec<u32> {
        self.field(key).split(',').filter(|s| !s.is_empty()).map(|s| s.trim().parse().unwrap()).collect()
    }

    /// The number after `word` in line `key`.
    fn number(&self, key: &str, word: &str) -> u64 {
        let line = self.field(key);
        let at = line.find(word).unwrap_or_else(|| panic!("no `{word}` in `{line}`")) + word.len();
        line[at..].trim_start().split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
    }
}

/// Builds the firmware around `model` and `prompt`; returns the target folder its ELFs are in.
fn build_firmware(model: &Path, prompt: &str) -> PathBuf {
    let dir = repo().join("firmware/cortex-m");
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("firmware-target");
    let t = Instant::now();
    let status = Command::new(env!("CARGO"))
        // With the boot-time CRC check, so CI exercises it on the device.
        .args(["build", "--release", "--quiet", "--bins", "--features", "verify-crc"])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("AHA_MODEL", model)
        .env("AHA_PROMPT", prompt)
        .env("AHA_MAX_TOKENS", MAX_TOKENS.to_string())
        .env_remove("AHA_TEMPLATE")
        .env_remove("AHA_CONTEXT")
        .env_remove("AHA_KV")
        .status()
        .expect("running cargo");
    assert!(status.success(), "building firmware/cortex-m failed");
    eprintln!("firmware built in {:.0?}", t.elapsed());
    target_dir.join("thumbv7em-none-eabihf/release")
}

/// Runs an ELF on QEMU's mps2-an386 until it exits; its output must end in status 0.
fn qemu(elf: &Path) -> Run {
    // `-icount shift=0`: one instruction = 1 ns of virtual time, so the
    // firmware's SysTick (25 MHz on this board) counts 40 instructions a tick.
    let t = Instant::now();
    let mut child = Command::new("qemu-system-arm")
        .args(["-cpu", "cortex-m4", "-machine", "mps2-an386", "-nographic"])
        .args(["-semihosting-config", "enable=on,target=native", "-icount", "shift=0", "-kernel"])
        .arg(elf)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting qemu-system-arm");
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if t.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("{} did not exit within 120 s", elf.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("QEMU ran {} in {:.1?}:\n{stdout}{}", elf.display(), t.elapsed(), String::from_utf8_lossy(&out.stderr));
    assert!(status.success(), "{} exited with {status}", elf.display());
    Run { stdout }
}

/// The host runtime on the same model, prompt and settings as the firmware:
/// prompt ids (template, bos) and generated tokens (greedy, stop token included).
fn host(model_bytes: &[u8], prompt: &str, kernels: &'static Kernels) -> (Vec<u32>, Vec<u32>) {
    let model = Model::from_bytes(model_bytes).unwrap();
    let tokenizer = model.tokenizer().unwrap();
    let mut text = String::new();
    Template::detect(&tokenizer).render(prompt, &mut text).unwrap();
    let mut ids = tokenizer.encode_to_vec(&text).unwrap();
    if let (true, Some(bos)) = (tokenizer.add_bos(), tokenizer.bos()) {
        if ids.first() != Some(&bos) {
            ids.insert(0, bos);
        }
    }
    // The firmware's defaults: f16 KV cache, context = prompt + bos slot + max tokens.
    let plan = model.memory_plan(ids.len() + 1 + MAX_TOKENS, KvType::F16);
    let mut buf = plan.allocate();
    let mut session = Session::with_plan(&model, &mut buf, &plan, kernels).unwrap();
    let options = GenerateOptions { max_tokens: MAX_TOKENS, ..Default::default() };
    let mut generator = Generator::new(&mut session, &tokenizer, Sampler::new(SamplerConfig::greedy()).unwrap(), options);
    generator.prompt(&ids).unwrap();
    let mut tokens = Vec::new();
    while let Some(event) = generator.next().unwrap() {
        tokens.push(event.token);
    }
    (ids, tokens)
}

#[test]
fn cortex_m_firmware_in_qemu_gives_the_host_runtime_tokens() {
    if let Some(why) = missing_tools() {
        // CI sets AHA_REQUIRE_QEMU so that a missing emulator fails instead.
        assert!(std::env::var_os("AHA_REQUIRE_QEMU").is_none(), "AHA_REQUIRE_QEMU is set but {why}");
        eprintln!("SKIPPED: the Cortex-M firmware test needs QEMU: {why}");
        return;
    }
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("firmware-models");
    std::fs::create_dir_all(&work).unwrap();
    let fixture = repo().join("tests/fixtures/qwen2-tokenizer");
    let cases = [(DType::Q8_0, "Compute 7 * 3 + 5"), (DType::Q4_0, "Wait, that's an aha moment: 12 + 30 = 42 (café, 四十二)")];
    for (dtype, prompt) in cases {
        // Rewritten only when different, so an unchanged model does not rebuild the firmware.
        let path = work.join(format!("{dtype}.aha"));
        let tmp = work.join(format!("{dtype}.new.aha"));
        convert(&fixture, &tmp, &ConvertOptions::new(dtype)).unwrap();
        let bytes = std::fs::read(&tmp).unwrap();
        if std::fs::read(&path).ok().as_deref() != Some(&bytes[..]) {
            std::fs::rename(&tmp, &path).unwrap();
        }

        let elfs = build_firmware(&path, prompt);
        // The DSP kernels against the scalar reference on the emulated core.
        let kernels = qemu(&elfs.join("kernel-test"));
        assert!(kernels.field("kernel test").ends_with("bit-identical"), "{}", kernels.stdout);

        let run = qemu(&elfs.join("aha-firmware-cortex-m"));
        assert!(run.field("model").ends_with("kernels dsp"), "the firmware should run the DSP kernels");
        assert_eq!(run.field("verify"), "every tensor's CRC-32 matches", "built with verify-crc");
        let device = (run.ids("prompt tokens"), run.ids("tokens"));
        assert!(device.1.len() == MAX_TOKENS || run.field("finish") == "stop token", "{}", run.stdout);

        // The firmware's DSP kernels are bit-identical to the scalar ones
        // (checked just above), so its arithmetic is the host scalar backend's.
        let scalar = host(&bytes, prompt, aha_kernels::scalar());
        assert_eq!(device, scalar, "{dtype}: firmware (left) vs host scalar kernels (right), prompt {prompt:?}");
        // And the host's fastest kernels, as `aha run` uses them.
        let best = host(&bytes, prompt, aha_kernels::best());
        assert_eq!(device, best, "{dtype}: firmware (left) vs host {} kernels (right)", aha_kernels::best().name);

        let per_token = run.number("ticks", "tokens,") * 40;
        eprintln!("{dtype}: {per_token} instructions per generated token (QEMU -icount)");

        // The estimate `aha inspect --target cortex-m4` prints covers what the firmware uses.
        let model = Model::from_bytes(&bytes).unwrap();
        let context = run.number("ram", "at context") as usize;
        let estimate = Footprint::new(bytes.len(), &model.memory_plan(context, KvType::F16));
        let (flash, ram) = (run.number("flash", ""), run.number("ram", ""));
        eprintln!("{dtype}: flash {flash} B used, {} B estimated; RAM {ram} B used, {} B estimated", estimate.flash(), estimate.ram());
        assert!(flash <= estimate.flash(), "flash: {flash} B used > {} B estimated", estimate.flash());
        assert!(ram <= estimate.ram(), "RAM: {ram} B used > {} B estimated", estimate.ram());
        assert!(estimate.fit(board("cortex-m4").unwrap()).fits());
    }
}
