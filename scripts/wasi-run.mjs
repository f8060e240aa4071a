#!/usr/bin/env node
// Cargo's runner for wasm32-wasip1 (see .cargo/config.toml): runs a WASI
// binary (a test harness, an example) in Node.js's `node:wasi`, with the host
// filesystem visible at the same paths (tests read fixtures by absolute path)
// and the environment passed through. Exits with the program's status.
//
//   node scripts/wasi-run.mjs program.wasm [args...]
import { readFile } from "node:fs/promises";
import process from "node:process";

// Node 20 calls `node:wasi` experimental and says so on stderr at every run.
process.removeAllListeners("warning");
const { WASI } = await import("node:wasi");

const [program, ...args] = process.argv.slice(2);
if (!program) {
  console.error("usage: wasi-run.mjs program.wasm [args...]");
  process.exit(2);
}

// The host filesystem at the same paths: tests find fixtures by absolute
// path (CARGO_MANIFEST_DIR). WASI has no working directory, so relative
// paths resolve against "/".
const wasi = new WASI({
  version: "preview1",
  args: [program, ...args],
  env: { ...process.env, TMPDIR: process.env.TMPDIR ?? "/tmp" },
  preopens: { "/": "/" },
  returnOnExit: true,
});

const module = await WebAssembly.compile(await readFile(program));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
process.exitCode = wasi.start(instance);
