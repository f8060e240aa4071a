//! The web page (`web/`: the runtime as WebAssembly with simd128, in a Web
//! Worker) loads a `.aha` file in headless Chromium, streams a greedy answer,
//! and its tokens and text equal the host runtime's.
//!
//! Serves `web/` and the model from a small HTTP server here, opens the page
//! with `?model=…&autorun=1&report=/report`, and waits for the page to POST
//! its result. Needs Chromium (Debian: `apt-get install chromium`; or set
//! `AHA_CHROMIUM` to a browser binary) and the `wasm32-unknown-unknown` Rust
//! target; without them it says so and passes (unless `AHA_REQUIRE_CHROMIUM`
//! is set). Builds `web/` with cargo (~40 s the first time).

// It drives a host program (Chromium), which WebAssembly cannot start: under
// wasm32-wasip1 (scripts/emulated-tests.sh wasm) the file holds no test.
#![cfg(not(target_family = "wasm"))]

use aha_kernels::DType;
use aha_runtime::convert::{convert, ConvertOptions};
use aha_runtime::{GenerateOptions, Generator, KvType, Model, Sampler, SamplerConfig, Session, Template};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const MAX_TOKENS: usize = 40;
const PROMPT: &str = "Compute 7 * 3 + 5, s'il vous plaît";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn chromium() -> Option<String> {
    let candidates = std::env::var("AHA_CHROMIUM").into_iter().chain(["chromium", "chromium-browser", "google-chrome"].map(String::from));
    candidates.into_iter().find(|c| Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()))
}

fn wasm_target_installed() -> bool {
    Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().any(|l| l.trim() == "wasm32-unknown-unknown"))
        .unwrap_or(true)
}

/// One HTTP request: method, path (query dropped) and body.
fn read_request(stream: &mut TcpStream) -> Option<(String, String, Vec<u8>)> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        if header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let path = target.split('?').next().unwrap_or("/").to_string();
    Some((method, path, body))
}

fn respond(stream: &mut TcpStream, status: &str, content_type: &str, body: &[u8]) {
    let head = format!("HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
}

/// Serves the page, the worker, the module and the model; sends each POSTed report down `reports`.
fn serve(listener: TcpListener, files: Vec<(&'static str, &'static str, PathBuf)>, reports: mpsc::Sender<Vec<u8>>) {
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let Some((method, path, body)) = read_request(&mut stream) else { continue };
        if method == "POST" && path == "/report" {
            respond(&mut stream, "200 OK", "text/plain", b"ok");
            let _ = reports.send(body);
            continue;
        }
        match files.iter().find(|(p, _, _)| *p == path) {
            Some((_, content_type, file)) => match std::fs::read(file) {
                Ok(bytes) => respond(&mut stream, "200 OK", content_type, &bytes),
                Err(_) => respond(&mut stream, "500 Internal Server Error", "text/plain", b"unreadable"),
            },
            None => respond(&mut stream, "404 Not Found", "text/plain", b"not found"),
        }
    }
}

/// The host runtime's greedy tokens for the page's settings (template auto, f32 KV cache).
fn host_tokens(bytes: &[u8]) -> (usize, Vec<u32>, String) {
    let model = Model::from_bytes(bytes).unwrap();
    let tokenizer = model.tokenizer().unwrap();
    let mut text = String::new();
    Template::detect(&tokenizer).render(PROMPT, &mut text).unwrap();
    let ids = tokenizer.encode_to_vec(&text).unwrap();
    let context = ids.len() + MAX_TOKENS;
    let mut buf = model.memory_plan(context, KvType::F32).allocate();
    let mut session = Session::new(&model, &mut buf, context, KvType::F32).unwrap();
    let options = GenerateOptions { max_tokens: MAX_TOKENS, ..Default::default() };
    let mut generator = Generator::new(&mut session, &tokenizer, Sampler::new(SamplerConfig::greedy()).unwrap(), options);
    generator.prompt(&ids).unwrap();
    let (mut tokens, mut out) = (Vec::new(), String::new());
    while let Some(event) = generator.next().unwrap() {
        tokens.push(event.token);
        out.push_str(event.text);
    }
    (ids.len(), tokens, out)
}

#[test]
fn web_page_streams_the_host_runtime_answer_in_headless_chromium() {
    let Some(browser) = chromium().filter(|_| wasm_target_installed()) else {
        let why = "needs Chromium (apt-get install chromium, or AHA_CHROMIUM=path) and the wasm32-unknown-unknown target";
        assert!(std::env::var_os("AHA_REQUIRE_CHROMIUM").is_none(), "AHA_REQUIRE_CHROMIUM is set but the browser test {why}");
        eprintln!("SKIPPED: the browser test {why}");
        return;
    };

    // The module.
    let web = repo().join("web");
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-target");
    let t = Instant::now();
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet"])
        .current_dir(&web)
        .env("CARGO_TARGET_DIR", &target_dir)
        .status()
        .expect("running cargo");
    assert!(status.success(), "building web/ failed");
    eprintln!("web/ built in {:.0?}", t.elapsed());
    let wasm = target_dir.join("wasm32-unknown-unknown/release/aha_web.wasm");

    // The model: the tokenizer fixture at Q8_0.
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&work).unwrap();
    let model = work.join("model.aha");
    convert(&repo().join("tests/fixtures/qwen2-tokenizer"), &model, &ConvertOptions::new(DType::Q8_0)).unwrap();
    let bytes = std::fs::read(&model).unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let files = vec![
        ("/index.html", "text/html; charset=utf-8", web.join("index.html")),
        ("/worker.js", "text/javascript", web.join("worker.js")),
        ("/aha_web.wasm", "application/wasm", wasm),
        ("/model.aha", "application/octet-stream", model),
    ];
    let (tx, reports) = mpsc::channel();
    std::thread::spawn(move || serve(listener, files, tx));

    let query: String =
        PROMPT.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect();
    let url = format!(
        "http://127.0.0.1:{port}/index.html?model=model.aha&prompt={query}&max={MAX_TOKENS}&temperature=0&autorun=1&report=/report"
    );
    let profile = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let t = Instant::now();
    // Flags as the machine notes advise for a closed network: no background
    // connections, no sandbox (root), a fresh profile.
    let mut chrome = Command::new(&browser)
        .args(["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"])
        .args(["--disable-background-networking", "--disable-component-update", "--disable-sync"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(&url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting Chromium");
    let report = reports.recv_timeout(Duration::from_secs(120));
    let _ = chrome.kill();
    let _ = chrome.wait();
    let report = report.expect("the page reported nothing within 120 s");
    let got: serde_json::Value = serde_json::from_slice(&report).unwrap();
    eprintln!("Chromium: {got} in {:.1?}", t.elapsed());
    assert!(got.get("error").is_none(), "the page failed: {got}");

    let (prompt_tokens, tokens, text) = host_tokens(&bytes);
    let page_tokens: Vec<u32> = got["tokens"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    assert_eq!(got["kernels"], "simd128", "the page should run the simd128 kernels");
    assert_eq!(got["promptTokens"].as_u64(), Some(prompt_tokens as u64));
    assert_eq!(page_tokens, tokens, "page (left) vs host (right) greedy tokens");
    assert_eq!(got["text"].as_str(), Some(text.as_str()), "streamed text");
}
