//! Writes the seed corpora, `fuzz/corpus/<target>/seed-*`, from the
//! repository's fixtures and a few hand-written inputs. The seeds are checked
//! in; run this again when a format changes:
//! `cargo run --manifest-path fuzz/Cargo.toml --bin make_seeds`.

use aha_kernels::DType;
use aha_runtime::format::{Arch, Config, RopeScaling};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = repo().join("fuzz/corpus").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
}

fn join(a: &[u8], b: &[u8]) -> Vec<u8> {
    [a, &[0xFF], b].concat()
}

/// A small model file (a few KB to tens of KB), so the fuzzer stays fast.
fn tiny_model(dtype: DType, layers: u32, vocab: u32, tokenizer: Option<Vec<u8>>, tied: bool) -> Vec<u8> {
    let config = Config {
        arch: if tied { Arch::Llama } else { Arch::Qwen2 },
        vocab_size: vocab,
        hidden_size: 32,
        intermediate_size: 64,
        num_layers: layers,
        num_heads: 2,
        num_kv_heads: 1,
        head_dim: 16,
        rope_theta: 10000.0,
        rope_scaling: RopeScaling::None,
        rms_norm_eps: 1e-6,
        max_position: 64,
        tie_embeddings: tied,
        attention_bias: !tied,
    };
    let path = std::env::temp_dir().join(format!("aha-seed-{}.aha", std::process::id()));
    aha_runtime::writer::write_random_model(&path, &config, dtype, tokenizer, 7).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    bytes
}

fn main() {
    let tokenizer_json = read("tests/fixtures/qwen2-tokenizer/tokenizer.json");
    let tokenizer_config = read("tests/fixtures/qwen2-tokenizer/tokenizer_config.json");
    let blob = aha_runtime::tokenizer::load_json(repo().join("tests/fixtures/qwen2-tokenizer/tokenizer.json")).unwrap();

    write("aha_file", "q8_0-2-layers", &tiny_model(DType::Q8_0, 2, 32, None, false));
    write("aha_file", "f32-1-layer-tied", &tiny_model(DType::F32, 1, 32, None, true));
    write("aha_file", "q4_0-tokenizer", &tiny_model(DType::Q4_0, 1, 448, Some(blob.clone()), false));

    write("tokenizer_json", "qwen2-with-config", &join(&tokenizer_json, &tokenizer_config));
    write("tokenizer_json", "bpe-alone", &tokenizer_json);
    let minimal = br#"{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]},
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
        "decoder": {"type": "ByteLevel"}, "added_tokens": [{"id": 3, "content": "<s>", "special": true}]}"#;
    write("tokenizer_json", "minimal", minimal);

    write("tokenizer_blob", "qwen2", &join("Compute 7 * 3 + 5 <think> ok </think> <|im_end|> é 😀".as_bytes(), &blob));

    for (name, dir) in [("qwen2", "tests/fixtures/qwen2-tokenizer"), ("llama-sharded", "tests/fixtures/llama-gqa4-bf16-sharded")] {
        let config = read(&format!("{dir}/config.json"));
        let shard = if name == "qwen2" { "model.safetensors" } else { "model-00001-of-00002.safetensors" };
        let st = read(&format!("{dir}/{shard}"));
        let n = u64::from_le_bytes(st[..8].try_into().unwrap()) as usize;
        write("safetensors_config", name, &join(&config, &st[..8 + n]));
    }

    let metrics = concat!(
        "{\"step\": 1, \"loss\": 5.75, \"lr\": 0.003, \"grad_norm\": NaN}\n",
        "\n",
        "{\"step\": 2, \"reward\": 0.5, \"rewards/accuracy\": 0.25, \"kl\": -Infinity}\n",
        "{\"step\": 3, \"lo"
    );
    write("jsonl", "metrics", metrics.as_bytes());
    let sft = "{\"prompt\": \"Compute 2 + 3\", \"response\": \"<think> 5 </think> <answer> 5 </answer>\"}\r\n\
               {\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Hello\"}]}\n\
               {\"question\": \"x\", \"answer\": \"1 + 1 = 2\\n#### 2\"}\n[1, 2]\n";
    write("jsonl", "rows", sft.as_bytes());

    write("toml_config", "tiny", &read("configs/tiny.toml"));
    write("toml_config", "qwen2-100m", &read("configs/qwen2-100m.toml"));
    let llama = "model_type = \"llama\"\nvocab_size = 256\nhidden_size = 64\nintermediate_size = 128\nnum_hidden_layers = 2\n\
                 num_attention_heads = 4\nnum_key_value_heads = 1\nhead_dim = 32\nattention_bias = true\n\
                 [rope_scaling]\nrope_type = \"llama3\"\nfactor = 8.0\nlow_freq_factor = 1.0\nhigh_freq_factor = 4.0\n\
                 original_max_position_embeddings = 8192\n";
    write("toml_config", "llama3-rope", llama.as_bytes());

    for (name, completion, reference) in [
        ("tags", " <think> 7 * 3 = 21, 21 + 5 = 26 </think> <answer> 26 </answer>", "26"),
        ("boxed", r"so \boxed{\frac{1}{2}} and \boxed{0.5}", "1/2"),
        ("gsm8k", "<answer> $1,234.00 </answer>", "Janet sells 1,234 eggs.\n#### 1,234"),
        ("text", "<answer> \\text{New   York}. </answer> <answer>", "new york"),
        ("nested", "<answer> 1 <answer> -4.2e1 </answer> </answer> </think>", "-42"),
    ] {
        write("answer", name, &join(completion.as_bytes(), reference.as_bytes()));
    }

    for (name, program, input) in [
        ("sort-42", "filter(xs, x => x == 42) ++ sort(filter(xs, x => x != 42))", "[3, 42, 1]"),
        ("fold", "let s = fold(xs, 0, (a, x) => a + x * x) in if s % 2 == 1 then [s] else map(range(3), i => xs[-1] - i)", "[1, 2, 3]"),
        ("while", "while(0, n => n < 100, n => n + 1) # a loop\n", "[]"),
        ("self-apply", "(f => f(f))(f => f(f))", "[[1], []]"),
        ("builtins", "[len(xs), sum(xs), min(xs), max(1, 2), head(xs), last(xs)] ++ take(reverse(unique(xs)), 2) ++ [count(xs, x => not (x > 1 and x < 3) or false), abs(-7 / 2), -7 % 2]", "[5, 2, 2, 9]"),
    ] {
        write("sandbox", name, &join(program.as_bytes(), input.as_bytes()));
    }
    println!("wrote the seeds under {}", repo().join("fuzz/corpus").display());
}
