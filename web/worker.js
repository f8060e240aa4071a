// aha's Web Worker: runs aha_web.wasm (the runtime, simd128 kernels) off the
// page's thread and posts each token as it is generated.
//
// In:  { model: ArrayBuffer, prompt, maxTokens, temperature, seed }
// Out: { type: "token", id, phase: "answer" | "thinking", text }   (one per token)
//      { type: "done", promptTokens, generated, finish, kernels } | { type: "error", message }

let exports;
const utf8 = new TextDecoder();
// Read afresh each time: the module's memory may grow (and move) during a call.
const text = (ptr, len) => utf8.decode(new Uint8Array(exports.memory.buffer, ptr, len));

const imports = {
  aha: {
    token: (id, phase, ptr, len) => postMessage({ type: "token", id, phase: phase ? "thinking" : "answer", text: text(ptr, len) }),
    done: (promptTokens, generated, finish, ptr, len) =>
      postMessage({
        type: "done",
        promptTokens,
        generated,
        finish: ["stop token", "max tokens", "context full"][finish],
        kernels: text(ptr, len),
      }),
    error: (ptr, len) => postMessage({ type: "error", message: text(ptr, len) }),
  },
};

async function load() {
  if (!exports) {
    const { instance } = await WebAssembly.instantiateStreaming(fetch("aha_web.wasm"), imports);
    exports = instance.exports;
  }
  return exports;
}

/// Copies bytes into the module's memory; returns the pointer (free it with aha_free).
function copyIn(w, bytes) {
  const ptr = w.aha_alloc(Math.max(bytes.length, 1));
  if (!ptr) throw new Error(`cannot allocate ${bytes.length} bytes in WebAssembly memory`);
  new Uint8Array(w.memory.buffer, ptr, bytes.length).set(bytes);
  return ptr;
}

onmessage = async ({ data }) => {
  try {
    const w = await load();
    const model = new Uint8Array(data.model);
    const prompt = new TextEncoder().encode(data.prompt);
    const m = copyIn(w, model);
    const p = copyIn(w, prompt);
    try {
      w.aha_generate(m, model.length, p, prompt.length, data.maxTokens, data.temperature, data.seed >>> 0);
    } finally {
      w.aha_free(m, Math.max(model.length, 1));
      w.aha_free(p, Math.max(prompt.length, 1));
    }
  } catch (e) {
    postMessage({ type: "error", message: String(e) });
  }
};
