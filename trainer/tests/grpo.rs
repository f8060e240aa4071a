//! GRPO end to end on flex: a base model pre-trained on easy arithmetic
//! gets better at it from rewards alone; a resumed run continues exactly;
//! both rollout engines sample the same; the reward-model interface works.

use std::path::Path;
use std::time::Instant;

use aha_trainer::checkpoint::{load_model, read_weights_dir};
use aha_trainer::config::read_config;
use aha_trainer::data::Message;
use aha_trainer::generate::GenerateConfig;
use aha_trainer::grpo::rollout::Engine;
use aha_trainer::grpo::{grpo, GrpoConfig, GrpoJob};
use aha_trainer::recipes::Source;
use aha_trainer::reward_model::{RewardModel, RewardModelReward};
use aha_trainer::rewards::{Reference, Reward, Sample};
use aha_trainer::data::PromptFormat;
use aha_trainer::tokenizer::TextTokenizer;
use aha_trainer::train::RunControl;
use burn::tensor::Device;

mod common;
use common::{base, prompts};

fn config() -> GrpoConfig {
    let mut c = GrpoConfig {
        max_steps: 60,
        prompts_per_step: 16,
        num_generations: 8,
        max_completion_length: 40,
        eval_steps: 20,
        eval_prompts: 64,
        eval_samples: 4,
        eval_temperature: 1.0,
        eval_top_p: 1.0,
        save_steps: 1000,
        beta: 0.0,
        rewards: vec!["accuracy".into()],
        ..GrpoConfig::default()
    };
    c.optim.learning_rate = 1e-4;
    c
}

fn job(dir: &Path, config: GrpoConfig, control: RunControl) -> GrpoJob {
    GrpoJob {
        data: Default::default(),
        init: base(),
        task: Source::File(prompts(dir, "train.jsonl", 400, 11)),
        eval: Some(prompts(dir, "test.jsonl", 64, 12)),
        out: dir.join("run"),
        config,
        control,
    }
}

#[test]
fn grpo_raises_held_out_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let report = grpo(&job(dir.path(), config(), RunControl::default())).unwrap();
    let (before, after) = (report.first_eval.unwrap(), report.last_eval.unwrap());
    let metrics = std::fs::read_to_string(dir.path().join("run/metrics.jsonl")).unwrap();
    for line in metrics.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        eprintln!(
            "step {:>3} reward {:.3} acc {:.3} len {:.1} kl {:.4} entropy {:.3}",
            v["step"],
            v["reward"].as_f64().unwrap_or(f64::NAN),
            v["accuracy"].as_f64().unwrap_or(f64::NAN),
            v["completion_length"].as_f64().unwrap_or(f64::NAN),
            v["kl"].as_f64().unwrap_or(f64::NAN),
            v["entropy"].as_f64().unwrap_or(f64::NAN)
        );
    }
    eprintln!("held-out pass@1 {before:.3} -> {after:.3} in {:.1}s", started.elapsed().as_secs_f64());
    assert!(after >= before + 0.1, "pass@1 went from {before:.3} to {after:.3}");
    for file in ["config.toml", "metrics.jsonl", "eval.jsonl", "model.safetensors", "tokenizer.json"] {
        assert!(dir.path().join("run").join(file).exists(), "{file}");
    }
}

#[test]
fn a_resumed_run_continues_exactly() {
    let mut c = config();
    c.max_steps = 4;
    c.save_steps = 2;
    c.eval_steps = 0;
    c.beta = 0.01;
    c.ref_reset_every = 3;
    c.num_iterations = 2;
    c.rollout_engine = "trainer".into();
    let whole = tempfile::tempdir().unwrap();
    grpo(&job(whole.path(), c.clone(), RunControl::default())).unwrap();
    let split = tempfile::tempdir().unwrap();
    grpo(&job(split.path(), c.clone(), RunControl { stop_after: Some(3), ..RunControl::default() })).unwrap();
    grpo(&job(split.path(), c.clone(), RunControl { resume: true, ..RunControl::default() })).unwrap();
    let read = |dir: &Path| -> Vec<serde_json::Value> {
        std::fs::read_to_string(dir.join("run/metrics.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    let (a, b) = (read(whole.path()), read(split.path()));
    assert_eq!(a.len(), 4);
    assert_eq!(b.len(), 4);
    for (x, y) in a.iter().zip(&b) {
        for key in ["reward", "loss", "grad_norm", "kl", "completion_length"] {
            assert_eq!(x[key], y[key], "step {} {key}", x["step"]);
        }
    }
    assert_eq!(read_weights_dir(&whole.path().join("run")).unwrap(), read_weights_dir(&split.path().join("run")).unwrap());
    // Other settings are refused on resume.
    c.beta = 0.02;
    let err = grpo(&job(split.path(), c, RunControl { resume: true, ..RunControl::default() })).err().unwrap();
    assert!(err.to_string().contains("different settings"), "{err}");
}

#[test]
fn runtime_and_trainer_rollouts_agree() {
    let dir = base();
    let model = load_model(&dir, &Device::flex()).unwrap();
    let tokenizer = TextTokenizer::from_dir(&dir).unwrap();
    let prompts: Vec<Vec<u32>> = ["Compute 3 + 4", "Compute 7 * 8", "Compute 9 + 9"]
        .iter()
        .map(|q| {
            let text = PromptFormat::R1Zero.render_prompt(&[Message::system(""), Message::user(*q)]).unwrap();
            tokenizer.encode(&text).unwrap()
        })
        .collect();
    let mut trainer = Engine::new(false);
    let mut runtime = Engine::runtime_with_threads(2);
    runtime.refresh(&model, &tokenizer).unwrap();
    // Greedy: identical tokens.
    let greedy = GenerateConfig { temperature: 0.0, max_new_tokens: 30, ..GenerateConfig::default() };
    let a = trainer.generate(Some(&model), &tokenizer, &prompts, 2, &greedy).unwrap();
    let b = runtime.generate(Some(&model), &tokenizer, &prompts, 2, &greedy).unwrap();
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.ids, y.ids, "{} vs {}", x.text, y.text);
        assert_eq!((x.prompt_index, x.sample_index, &x.finish), (y.prompt_index, y.sample_index, &y.finish));
        for (p, q) in x.logprobs.iter().zip(&y.logprobs) {
            assert!((p - q).abs() < 1e-3, "{p} vs {q}");
        }
    }
    // Sampled: the same seeded draws over near-identical logits.
    let sampled = GenerateConfig { temperature: 1.0, max_new_tokens: 30, seed: 5, ..GenerateConfig::default() };
    let a = trainer.generate(Some(&model), &tokenizer, &prompts, 4, &sampled).unwrap();
    let b = runtime.generate(Some(&model), &tokenizer, &prompts, 4, &sampled).unwrap();
    let same = a.iter().zip(&b).filter(|(x, y)| x.ids == y.ids).count();
    assert!(same >= a.len() - 1, "only {same} of {} samples agree", a.len());
}

#[test]
fn a_reward_model_scores_through_the_reward_interface() {
    let dir = tempfile::tempdir().unwrap();
    let policy = base();
    let config = read_config(&policy).unwrap();
    let device = Device::flex();
    device.seed(3);
    let rm = RewardModel::init(&config, &device);
    let tokenizer = TextTokenizer::from_dir(&policy).unwrap();
    rm.save(dir.path(), &tokenizer).unwrap();
    let saved: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(saved["architectures"][0], "Qwen2ForSequenceClassification");
    assert_eq!(read_weights_dir(dir.path()).unwrap()["score.weight"].shape, vec![1, 64]);

    let reward = RewardModelReward::load(dir.path(), &device).unwrap();
    let r = Reference::default();
    let texts = ["<think> 3 + 4 = 7. </think> <answer> 7 </answer>", "<answer> 8 </answer>", "no idea"];
    let samples: Vec<Sample> = texts.iter().map(|t| Sample { prompt: "Compute 3 + 4", completion: t, reference: &r }).collect();
    let batch = reward.score(&samples).unwrap();
    assert!(batch.iter().all(|s| s.is_finite()));
    assert!(batch[0] != batch[1] && batch[1] != batch[2], "{batch:?}");
    for (i, s) in samples.iter().enumerate() {
        let alone = reward.score(std::slice::from_ref(s)).unwrap()[0];
        assert!((alone - batch[i]).abs() < 1e-4, "padding changed a score: {alone} vs {}", batch[i]);
    }
    // A policy checkpoint is not a reward model: the error names the head.
    let err = RewardModelReward::load(&policy, &device).err().unwrap();
    assert!(err.to_string().contains("score.weight"), "{err}");
}

#[test]
fn settings_come_from_toml_with_named_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grpo.toml");
    std::fs::write(
        &path,
        "num_generations = 4\nloss_type = \"dr_grpo\"\nscale_rewards = \"none\"\nlearning_rate = 1e-4\nepsilon_high = 0.28\n",
    )
    .unwrap();
    let c = GrpoConfig::from_toml_file(&path).unwrap();
    assert_eq!(c.num_generations, 4);
    assert_eq!(c.loss_type, aha_trainer::grpo::objective::LossType::DrGrpo);
    assert_eq!(c.epsilon_high, Some(0.28));
    assert_eq!(c.optim.learning_rate, 1e-4);
    assert_eq!(c.beta, 0.001);
    c.validate().unwrap();
    // The resolved config round-trips.
    let back: GrpoConfig = toml::from_str(&toml::to_string(&c).unwrap()).unwrap();
    assert_eq!(back, c);
    std::fs::write(&path, "num_generation = 4\n").unwrap();
    let err = GrpoConfig::from_toml_file(&path).unwrap_err().to_string();
    assert!(err.contains("num_generation"), "{err}");
    let bad = GrpoConfig { num_generations: 1, ..GrpoConfig::default() };
    assert!(bad.validate().unwrap_err().to_string().contains("num_generations"));
    let bad = GrpoConfig { delta: Some(1.1), ..GrpoConfig::default() };
    assert!(bad.validate().unwrap_err().to_string().contains("delta"));
}

/// The variants run end to end: DAPO's token-level loss, clip-higher and
/// dynamic sampling, batch scaling, the dual clip, truncation masking, μ = 2.
#[test]
fn every_variant_runs_and_logs_finite_metrics() {
    use aha_trainer::grpo::objective::{LossType, ScaleRewards};
    let variants = [
        (LossType::Dapo, ScaleRewards::Batch, true, true),
        (LossType::DrGrpo, ScaleRewards::None, false, true),
        (LossType::Grpo, ScaleRewards::Group, true, false),
    ];
    for (loss_type, scale_rewards, dynamic_sampling, mask_truncated) in variants {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config();
        c.max_steps = 2;
        c.eval_steps = 0;
        c.prompts_per_step = 4;
        c.max_completion_length = 12; // some outputs are cut
        c.loss_type = loss_type;
        c.scale_rewards = scale_rewards;
        c.dynamic_sampling = dynamic_sampling;
        c.mask_truncated = mask_truncated;
        c.epsilon_high = Some(0.28);
        c.delta = Some(2.0);
        c.num_iterations = 2;
        c.beta = 0.01;
        grpo(&job(dir.path(), c, RunControl::default())).unwrap();
        let text = std::fs::read_to_string(dir.path().join("run/metrics.jsonl")).unwrap();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert!(v["groups"].as_f64().unwrap() <= 4.0, "{line}");
            for key in ["reward", "zero_variance_groups", "truncated", "completion_length"] {
                assert!(v[key].as_f64().is_some_and(f64::is_finite), "{loss_type:?}: {key} in {line}");
            }
        }
    }
}
