//! The CLI's commands: each turns arguments into library calls and prints.

use aha_kernels::DType;
use aha_runtime::convert::{convert as convert_checkpoint, ConvertOptions};
use aha_runtime::load::ModelBytes;
use aha_runtime::tokenizer::Tokenizer;
use aha_runtime::{GenerateOptions, Generator, KvType, Model, Phase, Sampler, SamplerConfig, Session, Template};
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn dtype(name: &str) -> Result<DType> {
    DType::from_name(name).ok_or_else(|| anyhow!("unknown dtype `{name}` (f32, f16, bf16, q8_0, q4_0)"))
}

pub fn convert(hf_dir: &Path, out: &Path, weights: &str, output: Option<&str>, allow_non_finite: bool) -> Result<()> {
    let mut opts = ConvertOptions::new(dtype(weights)?);
    opts.output_dtype = output.map(dtype).transpose()?;
    opts.allow_non_finite = allow_non_finite;
    let start = Instant::now();
    let report = convert_checkpoint(hf_dir, out, &opts).with_context(|| format!("converting {}", hf_dir.display()))?;
    for f in &report.fallbacks {
        eprintln!("note: {f}");
    }
    for f in &report.non_finite {
        eprintln!("warning: stored anyway (--allow-non-finite): {f}");
    }
    if !report.skipped.is_empty() {
        eprintln!("note: {} unused checkpoint tensors skipped ({})", report.skipped.len(), report.skipped.join(", "));
    }
    if !report.tokenizer {
        eprintln!("note: no tokenizer.json in {}; the model file has no tokenizer", hf_dir.display());
    }
    eprintln!(
        "wrote {} ({} tensors, {:.1} MB of weights, {}) in {:.1}s",
        out.display(),
        report.tensors,
        report.weight_bytes as f64 / 1e6,
        weights,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn open_model(path: &Path) -> Result<ModelBytes> {
    // The path is in the error's own message.
    Ok(ModelBytes::open(path)?)
}

/// Parses a model file and, unless `verify` is off, checks every tensor's
/// CRC-32 first (one pass over the weights with crc32fast), so that a
/// corrupted file is refused by tensor name instead of run.
fn parse_model<'a>(path: &Path, bytes: &'a ModelBytes, verify: bool) -> Result<Model<'a>> {
    let model = Model::from_bytes(bytes.bytes()).with_context(|| format!("reading {}", path.display()))?;
    if verify {
        model.file.verify().with_context(|| format!("reading {} (--no-verify skips this check, at your own risk)", path.display()))?;
    }
    Ok(model)
}

/// The most threads `--threads` accepts.
pub const MAX_THREADS: usize = 1024;

/// `--threads`: a count from 1 to [`MAX_THREADS`] (clap value parser).
pub fn parse_threads(text: &str) -> std::result::Result<usize, String> {
    let n: usize = text.trim().parse().map_err(|_| format!("`{text}` is not a thread count"))?;
    if n == 0 || n > MAX_THREADS {
        return Err(format!("{n} threads: give between 1 and {MAX_THREADS}"));
    }
    Ok(n)
}

/// Prompt tokens fed together (each weight row read once per batch).
const PROMPT_BATCH: usize = 32;

#[derive(Args)]
pub struct RunArgs {
    pub model: PathBuf,
    #[arg(long)]
    pub prompt: String,
    #[arg(long, default_value_t = 256)]
    pub max_tokens: usize,
    /// 0 = greedy. The default follows DeepSeek's advice for R1 students.
    #[arg(long, default_value_t = 0.6)]
    pub temperature: f32,
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    #[arg(long, default_value_t = 0.0)]
    pub min_p: f32,
    #[arg(long, default_value_t = 1.0)]
    pub repetition_penalty: f32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value_t = 1, value_parser = parse_threads)]
    pub threads: usize,
    /// Context length (prompt + generation), at most the model's positions;
    /// default: prompt + max-tokens, at least 4096, at most the model's positions.
    #[arg(long)]
    pub context: Option<usize>,
    /// Skip checking every tensor's CRC-32 when loading (a corrupted file then runs on wrong weights).
    #[arg(long)]
    pub no_verify: bool,
    /// Keep the KV cache in f16 (half the memory).
    #[arg(long)]
    pub kv_f16: bool,
    /// Print only the answer, not the text inside <think>…</think>.
    #[arg(long)]
    pub hide_thinking: bool,
    /// Prompt template: auto (from the tokenizer's special tokens), raw, r1-zero, chatml, r1-distill.
    #[arg(long, default_value = "auto")]
    pub template: String,
    /// Force </think> after this many thinking tokens.
    #[arg(long)]
    pub think_budget: Option<usize>,
}

pub fn run(a: &RunArgs) -> Result<()> {
    let bytes = open_model(&a.model)?;
    let model = parse_model(&a.model, &bytes, !a.no_verify)?;
    let tokenizer =
        model.tokenizer().with_context(|| format!("{}: this command needs a model file with a tokenizer", a.model.display()))?;
    let template = match a.template.as_str() {
        "auto" => Template::detect(&tokenizer),
        name => Template::from_name(name).ok_or_else(|| anyhow!("unknown template `{name}` (auto, {})", Template::NAMES.join(", ")))?,
    };
    let mut text = String::new();
    template.render(&a.prompt, &mut text)?;
    let mut prompt = tokenizer.encode_to_vec(&text).map_err(|e| anyhow!("encoding the prompt: {e}"))?;
    if let (true, Some(bos)) = (tokenizer.add_bos(), tokenizer.bos()) {
        if prompt.first() != Some(&bos) {
            prompt.insert(0, bos);
        }
    }
    if prompt.is_empty() {
        bail!("the prompt encodes to no tokens");
    }
    let positions = model.config.max_position as usize;
    if prompt.len() >= positions {
        bail!(
            "the prompt is {} tokens but the model has {positions} positions (max_position_embeddings), one of which the answer needs: shorten it by at least {} tokens",
            prompt.len(),
            prompt.len() + 1 - positions
        );
    }
    let context = match a.context {
        Some(context) => {
            model.check_context(context).context("--context")?;
            if context <= prompt.len() {
                bail!(
                    "--context {context} leaves no room for an answer: the prompt alone is {} tokens (give at least {})",
                    prompt.len(),
                    prompt.len() + 1
                );
            }
            context
        }
        None => prompt.len().saturating_add(a.max_tokens).max(4096).min(positions),
    };
    let kv = if a.kv_f16 { KvType::F16 } else { KvType::F32 };
    let plan = model.checked_plan(context, kv, PROMPT_BATCH.min(context))?;
    let mut buf = plan.try_allocate()?;
    let mut session = Session::with_plan(&model, &mut buf, &plan, aha_kernels::best())?;
    session.set_threads(a.threads);
    let sampler = Sampler::new(SamplerConfig {
        temperature: a.temperature,
        top_k: a.top_k,
        top_p: a.top_p,
        min_p: a.min_p,
        repetition_penalty: a.repetition_penalty,
        seed: a.seed,
    })?;
    let options = GenerateOptions { max_tokens: a.max_tokens, think_budget: a.think_budget, ..Default::default() };
    let mut generator = Generator::new(&mut session, &tokenizer, sampler, options);

    let t0 = Instant::now();
    generator.prompt(&prompt)?;
    let prompt_time = t0.elapsed();
    let t1 = Instant::now();
    let mut out = std::io::stdout().lock();
    let mut thinking_hidden = false;
    while let Some(event) = generator.next()? {
        if a.hide_thinking && event.phase == Phase::Thinking {
            thinking_hidden = true;
            continue;
        }
        out.write_all(event.text.as_bytes())?;
        out.flush()?;
    }
    let gen_time = t1.elapsed();
    writeln!(out)?;
    let produced = generator.produced();
    let thinking = generator.thinking_tokens();
    let finish = generator.finish();
    drop(generator);
    eprintln!(
        "\n[{} prompt tokens at {:.1} tok/s; {} generated at {:.1} tok/s ({} thinking{}); finished: {:?}; {} thread(s), {} kernels]",
        prompt.len(),
        prompt.len() as f64 / prompt_time.as_secs_f64(),
        produced,
        produced as f64 / gen_time.as_secs_f64(),
        thinking,
        if thinking_hidden { ", hidden" } else { "" },
        finish,
        a.threads,
        session.kernels().name,
    );
    Ok(())
}

pub fn logits(path: &Path, tokens: &[u32], all: bool, threads: usize, verify: bool) -> Result<()> {
    let bytes = open_model(path)?;
    let model = parse_model(path, &bytes, verify)?;
    let plan = model.checked_plan(tokens.len(), KvType::F32, 1).with_context(|| format!("--tokens gives {} tokens", tokens.len()))?;
    let mut buf = plan.try_allocate()?;
    let mut session = Session::new(&model, &mut buf, tokens.len(), KvType::F32)?;
    session.set_threads(threads);
    let mut rows = Vec::new();
    if all {
        for &t in tokens {
            rows.push(session.step(t)?.to_vec());
        }
    } else {
        rows.push(session.feed(tokens)?.to_vec());
    }
    let json = if all { serde_json::to_string(&rows)? } else { serde_json::to_string(&rows[0])? };
    writeln!(std::io::stdout().lock(), "{json}")?;
    Ok(())
}

/// A tokenizer from an .aha file or a tokenizer.json; the closure gets it.
fn with_tokenizer<T>(path: &Path, f: impl FnOnce(&Tokenizer) -> Result<T>) -> Result<T> {
    if path.extension().is_some_and(|e| e == "json") {
        let blob = aha_runtime::tokenizer::load_json(path).with_context(|| format!("reading {}", path.display()))?;
        let tokenizer = Tokenizer::parse(&blob).map_err(|e| anyhow!("{}: {e}", path.display()))?;
        f(&tokenizer)
    } else {
        let bytes = open_model(path)?;
        let file = aha_runtime::ModelFile::parse(bytes.bytes()).with_context(|| format!("reading {}", path.display()))?;
        let blob = file.header.tokenizer.ok_or_else(|| anyhow!("{}: the model file has no tokenizer", path.display()))?;
        let tokenizer = Tokenizer::parse(blob).map_err(|e| anyhow!("{}: {e}", path.display()))?;
        f(&tokenizer)
    }
}

/// Where `aha tokenize` reads its text.
pub enum TextSource {
    Arg(String),
    Stdin,
    File(PathBuf),
}

impl TextSource {
    fn read(&self) -> Result<String> {
        match self {
            TextSource::Arg(text) => Ok(text.clone()),
            TextSource::Stdin => {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin().lock(), &mut text)
                    .context("reading the text from standard input (it must be UTF-8)")?;
                Ok(text)
            }
            TextSource::File(path) => {
                std::fs::read_to_string(path).with_context(|| format!("reading the text from {} (it must be UTF-8)", path.display()))
            }
        }
    }
}

pub fn tokenize(path: &Path, text: &TextSource) -> Result<()> {
    let text = text.read()?;
    with_tokenizer(path, |t| {
        let ids = t.encode_to_vec(&text).map_err(|e| anyhow!("{e}"))?;
        writeln!(std::io::stdout().lock(), "{}", serde_json::to_string(&ids)?)?;
        Ok(())
    })
}

pub fn detokenize(path: &Path, ids: &[u32]) -> Result<()> {
    with_tokenizer(path, |t| {
        let text = t.decode_to_string(ids).map_err(|e| anyhow!("{e}"))?;
        writeln!(std::io::stdout().lock(), "{text}")?;
        Ok(())
    })
}

pub fn inspect(path: &Path, context: usize, verify: bool, target: Option<&str>) -> Result<()> {
    let board = target.map(target_board).transpose()?;
    let bytes = open_model(path)?;
    // The table is shown even for a corrupted file; `--verify` then names the tensor.
    let model = parse_model(path, &bytes, false)?;
    let out = &mut std::io::stdout().lock();
    let c = &model.config;
    let file = &model.file;
    let p = &file.header.provenance;
    writeln!(out, "file        {} ({:.1} MB, format v{})", path.display(), bytes.bytes().len() as f64 / 1e6, file.version)?;
    writeln!(out, "source      {} (by {}, {})", p.source, p.converter, p.quantization)?;
    writeln!(
        out,
        "arch        {}: {} layers, hidden {}, intermediate {}, {} heads / {} kv heads × {}, vocab {}",
        c.arch.name(),
        c.num_layers,
        c.hidden_size,
        c.intermediate_size,
        c.num_heads,
        c.num_kv_heads,
        c.head_dim,
        c.vocab_size
    )?;
    writeln!(
        out,
        "            rope θ {} ({:?}), rms eps {:e}, max positions {}, tied embeddings {}, qkv bias {}",
        c.rope_theta, c.rope_scaling, c.rms_norm_eps, c.max_position, c.tie_embeddings, c.attention_bias
    )?;
    match model.tokenizer() {
        Ok(t) => writeln!(out, "tokenizer   byte-level BPE, {} tokens", t.vocab_size())?,
        Err(aha_runtime::Error::NoTokenizer) => writeln!(out, "tokenizer   none")?,
        Err(e) => writeln!(out, "tokenizer   unusable: {e}")?,
    }
    writeln!(out, "tensors     {} ({:.2} MB of weights)", file.header.tensor_count, model.weight_bytes() as f64 / 1e6)?;
    for info in file.tensors() {
        let info = info?;
        let (r, cols) = info.rows_cols();
        let shape = if info.rank == 1 { format!("[{cols}]") } else { format!("[{r}, {cols}]") };
        writeln!(out, "  {:<52} {:>5} {:>14} {:>12} B", info.name, info.dtype()?.name(), shape, info.len)?;
    }
    for kv in [KvType::F32, KvType::F16] {
        let plan = model.memory_plan(context, kv);
        writeln!(
            out,
            "memory      context {context}, {:?} KV cache: {:.2} MB KV + {:.2} MB scratch = {:.2} MB",
            kv,
            plan.kv_bytes as f64 / 1e6,
            plan.scratch_bytes as f64 / 1e6,
            plan.total() as f64 / 1e6
        )?;
    }
    if let Some(board) = board {
        inspect_target(out, &model, bytes.bytes().len(), context, board)?;
    }
    if verify {
        file.verify().with_context(|| format!("verifying {}", path.display()))?;
        writeln!(out, "verify      every tensor's checksum matches")?;
    }
    Ok(())
}

/// The board `inspect --target` names.
fn target_board(name: &str) -> Result<&'static aha_runtime::footprint::Board> {
    use aha_runtime::footprint::{board, BOARDS};
    board(name).ok_or_else(|| {
        let names: Vec<String> =
            BOARDS.iter().map(|b| std::iter::once(b.name).chain(b.aliases.iter().copied()).collect::<Vec<_>>().join(" = ")).collect();
        anyhow!("unknown target `{name}`; known boards: {}", names.join(", "))
    })
}

/// `inspect --target`: flash and RAM the model needs on a microcontroller
/// running firmware/cortex-m, per KV cache type, and which boards it fits.
fn inspect_target(
    out: &mut impl Write,
    model: &Model,
    file_bytes: usize,
    context: usize,
    board: &aha_runtime::footprint::Board,
) -> Result<()> {
    use aha_runtime::footprint::{Board, Footprint, BOARDS};
    let kib = |n: u64| {
        if n >= 1 << 20 {
            format!("{:.2} MiB", n as f64 / (1u64 << 20) as f64)
        } else {
            format!("{:.1} KiB", n as f64 / 1024.0)
        }
    };
    let verdict = |f: &Footprint, b: &Board| {
        let fit = f.fit(b);
        let mut short = Vec::new();
        if !fit.flash {
            short.push(format!("flash short by {}", kib(f.flash() - b.flash)));
        }
        if !fit.ram {
            short.push(format!("RAM short by {}", kib(f.ram() - b.ram)));
        }
        if !fit.arena {
            short.push(format!("arena larger than the largest RAM region ({})", kib(b.ram_block)));
        }
        if short.is_empty() {
            format!(
                "fits ({:.0}% of flash, {:.0}% of RAM)",
                100.0 * f.flash() as f64 / b.flash as f64,
                100.0 * f.ram() as f64 / b.ram as f64
            )
        } else {
            format!("does not fit: {}", short.join(", "))
        }
    };
    writeln!(
        out,
        "target      {} ({}, {}): {} flash, {} RAM ({} contiguous){}",
        board.name,
        board.core,
        board.rust_target,
        kib(board.flash),
        kib(board.ram),
        kib(board.ram_block),
        if board.note.is_empty() { String::new() } else { format!("; {}", board.note) }
    )?;
    for kv in [KvType::F16, KvType::F32] {
        let f = Footprint::new(file_bytes, &model.memory_plan(context, kv));
        writeln!(
            out,
            "  {kv:?} KV   flash {} = model file {} + program {}; RAM {} = arena {} (KV + scratch) + prompt buffers {} + stack {}: {}",
            kib(f.flash()),
            kib(f.model_file),
            kib(f.program),
            kib(f.ram()),
            kib(f.arena),
            kib(f.prompt_buffers),
            kib(f.stack),
            verdict(&f, board)
        )?;
    }
    let f16 = Footprint::new(file_bytes, &model.memory_plan(context, KvType::F16));
    let (fits, not): (Vec<&Board>, Vec<&Board>) = BOARDS.iter().filter(|b| b.name != board.name).partition(|b| f16.fit(b).fits());
    let names = |v: &[&Board]| if v.is_empty() { "none".to_string() } else { v.iter().map(|b| b.name).collect::<Vec<_>>().join(", ") };
    writeln!(out, "  other boards (F16 KV, context {context}): fit: {}; too small: {}", names(&fits), names(&not))?;
    Ok(())
}

#[derive(Args)]
pub struct BenchArgs {
    /// The model file; omit it and pass --random to bench a random 122M Qwen2.
    pub model: Option<PathBuf>,
    /// Bench a random 122M Qwen2 at this weight format (f32, f16, bf16, q8_0, q4_0).
    #[arg(long)]
    pub random: Option<String>,
    #[arg(long, default_value = "1")]
    pub threads: String,
    /// Prompt tokens (fed in batches of 32), then this many decoded tokens.
    #[arg(long, default_value_t = 64)]
    pub prompt: usize,
    #[arg(long, default_value_t = 128)]
    pub tokens: usize,
    /// Skip checking every tensor's CRC-32 when loading.
    #[arg(long)]
    pub no_verify: bool,
    /// Also decode this many sequences at once (e.g. 1,8,64) and report the
    /// aggregate tokens/s of the batch session.
    #[arg(long)]
    pub batch: Option<String>,
}

pub fn bench(a: &BenchArgs) -> Result<()> {
    let tmp;
    let path = match (&a.model, &a.random) {
        (Some(p), None) => p.clone(),
        (None, Some(d)) => {
            tmp = std::env::temp_dir().join(format!("aha-bench-qwen2-122m-{d}-{}.aha", std::process::id()));
            aha_runtime::writer::write_random_model(&tmp, &aha_runtime::Config::qwen2_122m(), dtype(d)?, None, 42)?;
            tmp.clone()
        }
        _ => bail!("give a model file or --random DTYPE (not both)"),
    };
    let result = bench_file(&path, a);
    if a.random.is_some() {
        let _ = std::fs::remove_file(&path);
    }
    result
}

fn bench_file(path: &Path, a: &BenchArgs) -> Result<()> {
    let bytes = open_model(path)?;
    let model = parse_model(path, &bytes, !a.no_verify)?;
    let thread_counts =
        a.threads.split(',').map(parse_threads).collect::<std::result::Result<Vec<_>, _>>().map_err(|e| anyhow!("--threads: {e}"))?;
    if a.prompt == 0 {
        bail!("--prompt 0: the bench needs at least one prompt token");
    }
    let context = a.prompt.saturating_add(a.tokens).saturating_add(1);
    model
        .check_context(context)
        .with_context(|| format!("--prompt {} + --tokens {} + 1 (the first decoded token's input)", a.prompt, a.tokens))?;
    let vocab = model.config.vocab_size;
    let prompt: Vec<u32> = (0..a.prompt as u32).map(|i| (i * 7919 + 13) % vocab).collect();
    let out = &mut std::io::stdout().lock();
    // Weights read per decoded token: every matrix once, one embedding row.
    let embed = model.embed();
    let per_token = model.weight_bytes() - embed.data.len() as u64 + embed.row_bytes() as u64;
    writeln!(
        out,
        "{}: {} layers × {} wide, {:.1} MB of weights read per token, {} kernels",
        path.display(),
        model.config.num_layers,
        model.config.hidden_size,
        per_token as f64 / 1e6,
        aha_kernels::best().name
    )?;
    writeln!(out, "{:>7}  {:>12}  {:>12}  {:>10}", "threads", "prompt tok/s", "decode tok/s", "decode GB/s")?;
    for threads in thread_counts {
        let plan = model.checked_plan(context, KvType::F32, PROMPT_BATCH.min(context))?;
        let mut buf = plan.try_allocate()?;
        let mut session = Session::with_plan(&model, &mut buf, &plan, aha_kernels::best())?;
        session.set_threads(threads);
        let t0 = Instant::now();
        let mut next = aha_runtime::sampler::argmax(session.feed(&prompt)?);
        let prompt_s = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        for _ in 0..a.tokens {
            next = aha_runtime::sampler::argmax(session.step(next)?);
        }
        let decode_s = t1.elapsed().as_secs_f64();
        let tps = a.tokens as f64 / decode_s;
        writeln!(out, "{:>7}  {:>12.1}  {:>12.1}  {:>10.2}", threads, a.prompt as f64 / prompt_s, tps, tps * per_token as f64 / 1e9)?;
    }
    if let Some(batch) = &a.batch {
        bench_batch(&model, &prompt, a, batch)?;
    }
    Ok(())
}

/// Aggregate tokens/s of `B` sequences decoded together, each from a prompt
/// of its own: decode steps alone, and with the prompts' prefill counted in
/// (as Hugging Face `generate` is timed).
fn bench_batch(model: &Model, prompt: &[u32], a: &BenchArgs, batch: &str) -> Result<()> {
    println!("{:>7}  {:>9}  {:>18}  {:>22}", "threads", "sequences", "decode tok/s (all)", "with prefill tok/s (all)");
    let context = prompt.len() + a.tokens + 1;
    let vocab = model.config.vocab_size;
    for threads in a.threads.split(',') {
        let threads: usize = threads.trim().parse().with_context(|| format!("`{threads}` is not a thread count"))?;
        for b in batch.split(',') {
            let b: usize = b.trim().parse().ok().filter(|&b| b > 0).with_context(|| format!("`{b}` is not a number of sequences"))?;
            let plan = model.memory_plan_sequences(context, KvType::F32, b, b.max(PROMPT_BATCH));
            let mut buf = plan.try_allocate()?;
            let mut session = aha_runtime::BatchSession::new(model, &mut buf, &plan, aha_kernels::best())?;
            session.set_threads(threads);
            let t0 = Instant::now();
            // Every prompt prefilled in one call, as the rollout engine does.
            let owners: Vec<usize> = (0..b).flat_map(|s| std::iter::repeat_n(s, prompt.len())).collect();
            let own: Vec<u32> = owners.iter().zip(prompt.iter().cycle()).map(|(&s, &t)| (t + 101 * s as u32) % vocab).collect();
            session.step(&owners, &own)?;
            let seqs: Vec<usize> = (0..b).collect();
            let mut next: Vec<u32> = seqs.iter().map(|&s| session.logits(s).map(aha_runtime::sampler::argmax)).collect::<Result<_, _>>()?;
            let t1 = Instant::now();
            for _ in 0..a.tokens {
                session.step(&seqs, &next)?;
                for (s, n) in next.iter_mut().enumerate() {
                    *n = aha_runtime::sampler::argmax(session.logits(s)?);
                }
            }
            let (all, decode) = (t0.elapsed().as_secs_f64(), t1.elapsed().as_secs_f64());
            let tokens = (b * a.tokens) as f64;
            println!("{:>7}  {:>9}  {:>18.1}  {:>22.1}", threads, b, tokens / decode, tokens / all);
        }
    }
    Ok(())
}
