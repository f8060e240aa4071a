//! Distillation, reward-model training, evaluation with think budgets and
//! rejection sampling, end to end on flex, with the tiny arithmetic base of
//! the GRPO tests as teacher.

use std::path::{Path, PathBuf};

use aha_trainer::checkpoint::read_weights_dir;
use aha_trainer::distill::{distill, DistillConfig, DistillJob, DistillMode};
use aha_trainer::eval::{evaluate, EvalConfig, EvalSet};
use aha_trainer::generate::GenerateConfig;
use aha_trainer::recipes::{sft, Init, SftJob, Source};
use aha_trainer::reward_model::{train_reward_model, PreferencePair, RewardModelConfig, RewardModelJob};
use aha_trainer::run::{read_metric_lines, Metrics, RunControl};
use aha_trainer::sample::{rejection_sample, Filters, RejectionConfig, SamplingModel};
use aha_trainer::tasks::Task;
use aha_trainer::train::TrainConfig;

mod common;
use common::{base, easy, prompts};

/// The student: half the teacher's width, same depth and vocabulary.
const HALF: &str = r#"
model_type = "qwen2"
vocab_size = 1024
hidden_size = 32
intermediate_size = 64
num_hidden_layers = 2
num_attention_heads = 4
num_key_value_heads = 2
max_position_embeddings = 256
tie_word_embeddings = true
"#;

fn student_config(dir: &Path) -> PathBuf {
    let path = dir.join("student.toml");
    std::fs::write(&path, HALF).unwrap();
    path
}

fn distill_config(mode: DistillMode, steps: u64) -> DistillConfig {
    let mut train = TrainConfig { max_steps: steps, per_device_train_batch_size: 16, max_seq_length: 192, save_steps: 1000, ..TrainConfig::default() };
    train.optim.learning_rate = 3e-3;
    train.optim.warmup_steps = 5;
    DistillConfig {
        train,
        mode,
        max_new_tokens: 40,
        teacher_samples: 4,
        filters: Filters { verified: true, format: true, ..Filters::default() },
        eval_steps: steps,
        eval_prompts: 64,
        eval_samples: 4,
        eval_temperature: 1.0,
        eval_top_p: 1.0,
        beta: 0.0,
        lmbda: 0.25,
        ..DistillConfig::default()
    }
}

fn distill_job(dir: &Path, config: DistillConfig, control: RunControl) -> DistillJob {
    DistillJob {
        teacher: base(),
        student: Init::Config(student_config(dir)),
        prompts: Source::File(prompts(dir, "train.jsonl", 400, 21)),
        eval: Some(prompts(dir, "test.jsonl", 64, 22)),
        data: Default::default(),
        out: dir.join("student"),
        config,
        control,
    }
}

fn get(m: &Option<Metrics>, key: &str) -> f64 {
    m.as_ref().and_then(|m| m.get(key).copied()).unwrap_or(f64::NAN)
}

/// Both modes: the student's held-out KL to the teacher falls by at least
/// a third, and its held-out accuracy rises above the untrained student's.
#[test]
fn distillation_brings_the_student_to_the_teacher_in_both_modes() {
    for (mode, steps) in [(DistillMode::Seq, 500), (DistillMode::Kd, 300)] {
        let dir = tempfile::tempdir().unwrap();
        let began = std::time::Instant::now();
        let r = distill(&distill_job(dir.path(), distill_config(mode, steps), RunControl::default())).unwrap();
        let (kl0, kl1) = (get(&r.first_eval, "kl_forward"), get(&r.last_eval, "kl_forward"));
        let (acc0, acc1) = (get(&r.first_eval, "pass_at_1"), get(&r.last_eval, "pass_at_1"));
        eprintln!(
            "{mode:?}: {steps} steps in {:.0}s; KL(t||s) {kl0:.3} -> {kl1:.3}, KL(s||t) {:.3} -> {:.3}; pass@1 {acc0:.3} -> {acc1:.3}",
            began.elapsed().as_secs_f64(),
            get(&r.first_eval, "kl_reverse"),
            get(&r.last_eval, "kl_reverse")
        );
        assert!(kl1 < kl0 * 0.67, "{mode:?}: held-out KL {kl0} -> {kl1}");
        assert!(acc1 >= acc0 + 0.01, "{mode:?}: held-out pass@1 {acc0} -> {acc1}");
        // The metrics files say what the report says.
        let evals = read_metric_lines(&dir.path().join("student/eval.jsonl")).unwrap();
        assert_eq!(evals.first().unwrap()["kl_forward"], kl0);
        assert_eq!(evals.last().unwrap()["pass_at_1"], acc1);
        if mode == DistillMode::Seq {
            assert!(std::fs::read_to_string(dir.path().join("student/traces.jsonl")).unwrap().lines().count() > 50);
        }
    }
}

#[test]
fn a_resumed_distillation_continues_exactly() {
    for mode in [DistillMode::Kd, DistillMode::Seq] {
        let mut c = distill_config(mode, 6);
        c.train.save_steps = 2;
        c.eval_steps = 0;
        let whole = tempfile::tempdir().unwrap();
        distill(&distill_job(whole.path(), c.clone(), RunControl::default())).unwrap();
        let split = tempfile::tempdir().unwrap();
        distill(&distill_job(split.path(), c.clone(), RunControl { stop_after: Some(3), ..RunControl::default() })).unwrap();
        let r = distill(&distill_job(split.path(), c.clone(), RunControl { resume: true, ..RunControl::default() })).unwrap();
        assert_eq!(r.resumed_from, Some(2));
        let losses = |d: &Path| {
            read_metric_lines(&d.join("student/metrics.jsonl")).unwrap().iter().map(|m| (m["step"], m["loss"], m["grad_norm"])).collect::<Vec<_>>()
        };
        assert_eq!(losses(whole.path()), losses(split.path()), "{mode:?}");
        assert_eq!(read_weights_dir(&whole.path().join("student")).unwrap(), read_weights_dir(&split.path().join("student")).unwrap());
    }
}

#[test]
fn a_student_with_another_vocabulary_is_refused_naming_both_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small-vocab.toml");
    std::fs::write(&path, HALF.replace("vocab_size = 1024", "vocab_size = 512")).unwrap();
    let mut job = distill_job(dir.path(), distill_config(DistillMode::Kd, 1), RunControl::default());
    job.student = Init::Config(path);
    let err = distill(&job).unwrap_err().to_string();
    assert!(err.contains("512") && err.contains("1024"), "{err}");
}

/// Pairs whose chosen reply closes its answer in `<answer>` tags and whose
/// rejected one in `<result>` tags: a preference planted in one token.
/// With `flip`, the other way round (`<result>` preferred).
fn planted_pairs(n: usize, seed: u64, flip: bool) -> Vec<PreferencePair> {
    let mut rng = aha_runtime::sampler::Rng::new(seed);
    (0..n)
        .map(|_| {
            let p = easy().problem(&mut rng);
            let mut chosen = aha_trainer::tasks::r1_completion(&p);
            let mut rejected = chosen.replace("answer>", "result>");
            if flip {
                std::mem::swap(&mut chosen, &mut rejected);
            }
            PreferencePair { prompt: p.question, chosen, rejected, margin: 0.0 }
        })
        .collect()
}

fn write_pairs(path: &Path, pairs: &[PreferencePair]) -> PathBuf {
    aha_trainer::sample::write_jsonl(path, pairs).unwrap();
    path.to_path_buf()
}

fn rm_job(dir: &Path, steps: u64, flip: bool, control: RunControl) -> RewardModelJob {
    let mut train = TrainConfig { max_steps: steps, per_device_train_batch_size: 16, max_seq_length: 192, save_steps: 2, ..TrainConfig::default() };
    train.optim.learning_rate = 1e-3;
    RewardModelJob {
        init: base(),
        pairs: Source::File(write_pairs(&dir.join("pairs.jsonl"), &planted_pairs(300, 31, flip))),
        eval: Some(write_pairs(&dir.join("held.jsonl"), &planted_pairs(100, 32, flip))),
        out: dir.join("rm"),
        config: RewardModelConfig { train, eval_steps: steps, ..RewardModelConfig::default() },
        control,
    }
}

#[test]
fn a_reward_model_learns_a_planted_preference() {
    // Plant the preference the untrained head does not already have (which
    // one it leans to depends on its initialisation), so that it is learnt,
    // not found: one step's run reports the accuracy before training.
    let probe = tempfile::tempdir().unwrap();
    let leaning = get(&train_reward_model(&rm_job(probe.path(), 1, false, RunControl::default())).unwrap().first_eval, "accuracy");
    let flip = leaning >= 0.5;
    let dir = tempfile::tempdir().unwrap();
    let r = train_reward_model(&rm_job(dir.path(), 60, flip, RunControl::default())).unwrap();
    let (before, after) = (get(&r.first_eval, "accuracy"), get(&r.last_eval, "accuracy"));
    eprintln!("reward model: held-out pair accuracy {before:.3} -> {after:.3} (untrained: {leaning:.3} the other way; flipped: {flip})");
    assert!(before < 0.5, "held-out accuracy before training {before}");
    assert!(after >= 0.9, "held-out accuracy {before} -> {after}");
    // The run folder is a reward model `--reward rm:` reads, and it scores
    // the held-out chosen replies above the rejected ones.
    use aha_trainer::rewards::{Reference, Reward, Sample};
    let rm = aha_trainer::reward_model::RewardModelReward::load(&dir.path().join("rm"), &aha_trainer::device::DeviceChoice::Flex.device())
        .unwrap();
    let pairs = planted_pairs(20, 33, flip);
    let reference = Reference::default();
    let samples = |f: &dyn Fn(&PreferencePair) -> &str| -> Vec<f32> {
        let s: Vec<Sample> = pairs.iter().map(|p| Sample { prompt: &p.prompt, completion: f(p), reference: &reference }).collect();
        rm.score(&s).unwrap()
    };
    let (chosen, rejected) = (samples(&|p| &p.chosen), samples(&|p| &p.rejected));
    let right = chosen.iter().zip(&rejected).filter(|(c, r)| c > r).count();
    assert!(right >= 18, "{right} of 20");
}

#[test]
fn a_resumed_reward_model_run_continues_exactly() {
    let whole = tempfile::tempdir().unwrap();
    train_reward_model(&rm_job(whole.path(), 5, false, RunControl::default())).unwrap();
    let split = tempfile::tempdir().unwrap();
    train_reward_model(&rm_job(split.path(), 5, false, RunControl { stop_after: Some(3), ..RunControl::default() })).unwrap();
    train_reward_model(&rm_job(split.path(), 5, false, RunControl { resume: true, ..RunControl::default() })).unwrap();
    let losses = |d: &Path| read_metric_lines(&d.join("rm/metrics.jsonl")).unwrap().iter().map(|m| (m["loss"], m["grad_norm"])).collect::<Vec<_>>();
    assert_eq!(losses(whole.path()), losses(split.path()));
    assert_eq!(read_weights_dir(&whole.path().join("rm")).unwrap(), read_weights_dir(&split.path().join("rm")).unwrap());
}

fn eval_set(model: &SamplingModel, dir: &Path) -> EvalSet {
    let records = aha_trainer::data::read_prompts_jsonl(prompts(dir, "eval.jsonl", 48, 41)).unwrap();
    let format = aha_trainer::data::PromptFormat::R1Zero;
    EvalSet::new(records, &model.tokenizer, &format, 256).unwrap()
}

#[test]
fn think_budgets_cap_thinking_and_min_think_suppresses_an_early_close() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = SamplingModel::open(&base(), "flex", "", "auto").unwrap();
    let set = eval_set(&model, dir.path());
    let close = model.tokenizer.token_id("</think>").unwrap();
    let free = EvalConfig {
        samples: 2,
        generation: GenerateConfig { max_new_tokens: 60, temperature: 1.0, top_p: 1.0, seed: 3, ..GenerateConfig::default() },
        ..EvalConfig::default()
    };
    let unforced = evaluate(&mut model.engine, model.model.as_ref(), &model.tokenizer, &set, &free).unwrap();
    let natural = unforced.report.think_length;
    assert!(natural > 4.0, "the base thinks {natural} tokens");
    for budget in [1, 2, 4] {
        let config = EvalConfig { generation: GenerateConfig { think_budget: Some(budget), ..free.generation.clone() }, ..free.clone() };
        let e = evaluate(&mut model.engine, model.model.as_ref(), &model.tokenizer, &set, &config).unwrap();
        for c in &e.completions {
            assert!(c.thinking <= budget, "budget {budget}: {} thinking tokens in {:?}", c.thinking, c.text);
            if c.text.contains("<think>") {
                // The engine closed the thought, and the model went on to answer.
                let closed = c.ids.iter().position(|&t| t == close).unwrap_or_else(|| panic!("no </think> in {:?}", c.text));
                assert!(closed + 1 < c.ids.len(), "nothing after </think> in {:?}", c.text);
            }
        }
        let answered = e.completions.iter().filter(|c| c.text.contains("answer>") || c.text.contains("result>")).count();
        assert!(answered * 10 >= e.completions.len() * 8, "budget {budget}: {answered} of {} answered", e.completions.len());
        assert!(e.report.think_length <= budget as f64);
    }
    // min_think beyond what the model thinks on its own: every sample that
    // closes its thought does so after at least that many thinking tokens,
    // having been told to wait.
    let min = (natural.ceil() as usize) + 6;
    let config = EvalConfig {
        generation: GenerateConfig { min_think: min, max_new_tokens: 120, ..free.generation.clone() },
        ..free.clone()
    };
    let e = evaluate(&mut model.engine, model.model.as_ref(), &model.tokenizer, &set, &config).unwrap();
    let mut waited = 0;
    for c in &e.completions {
        if let Some(at) = c.ids.iter().position(|&t| t == close) {
            assert!(c.thinking >= min, "closed after {} < {min} thinking tokens: {:?}", c.thinking, c.text);
            assert!(at > 0);
        }
        waited += c.text.contains("Wait") as usize;
    }
    assert!(waited * 2 >= e.completions.len(), "only {waited} of {} samples were told to wait", e.completions.len());
}

#[test]
fn a_q8_0_model_file_scores_as_its_checkpoint_within_noise() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("base-q8.aha");
    aha_runtime::convert::convert(&base(), &file, &aha_runtime::convert::ConvertOptions::new(aha_kernels::DType::Q8_0)).unwrap();
    let config = EvalConfig {
        samples: 4,
        generation: GenerateConfig { max_new_tokens: 40, temperature: 1.0, top_p: 1.0, seed: 9, ..GenerateConfig::default() },
        ..EvalConfig::default()
    };
    let mut checkpoint = SamplingModel::open(&base(), "flex", "", "auto").unwrap();
    let mut quantized = SamplingModel::open(&file, "flex", "", "auto").unwrap();
    assert!(quantized.model.is_none());
    let set = eval_set(&checkpoint, dir.path());
    let a = evaluate(&mut checkpoint.engine, checkpoint.model.as_ref(), &checkpoint.tokenizer, &set, &config).unwrap().report;
    let set = eval_set(&quantized, dir.path());
    let b = evaluate(&mut quantized.engine, None, &quantized.tokenizer, &set, &config).unwrap().report;
    eprintln!("pass@1 f32 checkpoint {:.3} vs Q8_0 file {:.3}; format {:.3} vs {:.3}", a.pass_at_1, b.pass_at_1, a.format_rate, b.format_rate);
    // 192 samples each at p ~ 0.25: one standard error of the difference of
    // two independent estimates is ~0.045; the same seeds make the samples
    // largely coincide, so 0.1 (over 2 s.e.) is generous.
    assert!((a.pass_at_1 - b.pass_at_1).abs() <= 0.1, "{} vs {}", a.pass_at_1, b.pass_at_1);
    assert!((a.format_rate - b.format_rate).abs() <= 0.1);
}

#[test]
fn rejection_sampling_then_sft_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = SamplingModel::open(&base(), "flex", "", "auto").unwrap();
    let records = aha_trainer::data::read_prompts_jsonl(prompts(dir.path(), "p.jsonl", 40, 51)).unwrap();
    let config = RejectionConfig {
        samples: 4,
        generation: GenerateConfig { max_new_tokens: 40, temperature: 1.0, top_p: 1.0, ..GenerateConfig::default() },
        ..RejectionConfig::default()
    };
    let out = dir.path().join("sft.jsonl");
    let (kept, counts) = rejection_sample(&mut model, &records, "r1-zero", 256, &config, None, &out).unwrap();
    assert!(!kept.is_empty() && kept.len() < counts.samples, "kept {} of {}", kept.len(), counts.samples);
    for k in &kept {
        // The conversation as given (system turn included), not the rendered template.
        assert_eq!(k.prompt[1]["content"].as_str().unwrap(), records[k.prompt_index].question(), "{k:?}");
        assert!(k.response.contains("<answer>"), "{k:?}");
    }
    let mut train = TrainConfig { max_steps: 3, per_device_train_batch_size: 4, max_seq_length: 192, ..TrainConfig::default() };
    train.optim.learning_rate = 1e-4;
    let job = SftJob {
        init: base(),
        data: Source::File(out),
        data_options: Default::default(),
        template: "r1-zero".into(),
        out: dir.path().join("sft"),
        train,
        control: RunControl::default(),
    };
    let report = sft(&job).unwrap().train;
    assert_eq!(report.steps, 3);
    assert!(report.final_loss.is_finite());
}
