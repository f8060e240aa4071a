//! The GRPO objective of docs/method.md, GRPO, and its variants.
//!
//! For each question q, G outputs o_1..o_G are sampled from π_old and scored
//! r_1..r_G. Then, per token t of output i:
//!
//! ```text
//! A_i     = (r_i - mean(r)) / (std(r) + eps)                  advantages()
//! ρ_{i,t} = π_θ(o_{i,t} | q, o_{i,<t}) / π_old(…)             ratio
//! D_{i,t} = π_ref/π_θ - log(π_ref/π_θ) - 1                    k3
//! L_{i,t} = min(ρ A_i, clip(ρ, 1-ε, 1+ε) A_i) - β D_{i,t}     per_token
//! J       = 1/G Σ_i 1/|o_i| Σ_t L_{i,t}                        (loss_type grpo)
//! ```
//!
//! and the loss minimised is -J. [`loss`] computes exactly these lines on a
//! micro-batch; the [`Normalizer`] holds the counts of the *whole* step's
//! batch, so summing the micro-batches' losses (gradient accumulation) gives
//! the loss of the whole batch.

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How per-token terms are aggregated into J.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossType {
    /// Mean over each output's tokens, then mean over outputs (DeepSeekMath,
    /// the paper). Long outputs weigh less per token.
    #[default]
    Grpo,
    /// Sum over every token of the batch divided by their number (DAPO):
    /// each token weighs the same.
    Dapo,
    /// Sum divided by outputs × `max_completion_length`, a constant (Dr. GRPO):
    /// removes the length bias of the per-output mean.
    DrGrpo,
}

/// What the reward differences are divided by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScaleRewards {
    /// The group's standard deviation (the paper).
    #[default]
    Group,
    /// The standard deviation over the whole batch.
    Batch,
    /// Nothing: A_i = r_i - mean (Dr. GRPO).
    None,
}

impl std::str::FromStr for LossType {
    type Err = Error;
    fn from_str(s: &str) -> Result<LossType> {
        match s {
            "grpo" => Ok(LossType::Grpo),
            "dapo" => Ok(LossType::Dapo),
            "dr_grpo" | "dr-grpo" => Ok(LossType::DrGrpo),
            _ => Err(Error::Config(format!("loss_type `{s}`: expected grpo, dapo or dr_grpo"))),
        }
    }
}

impl std::str::FromStr for ScaleRewards {
    type Err = Error;
    fn from_str(s: &str) -> Result<ScaleRewards> {
        match s {
            "group" => Ok(ScaleRewards::Group),
            "batch" => Ok(ScaleRewards::Batch),
            "none" => Ok(ScaleRewards::None),
            _ => Err(Error::Config(format!("scale_rewards `{s}`: expected group, batch or none"))),
        }
    }
}

/// Standard deviation with Bessel's correction (as `torch.std`, which TRL
/// uses); 0 for fewer than two values.
fn std_dev(values: &[f32]) -> f32 {
    let n = values.len();
    if n < 2 {
        return 0.0;
    }
    let mean = values.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
    let var = values.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    var.sqrt() as f32
}

/// Group-relative advantages: `rewards` holds the groups one after another,
/// `group` samples each. Every sample of a group whose rewards all agree gets
/// 0, whatever the scaling.
pub fn advantages(rewards: &[f32], group: usize, scale: ScaleRewards, eps: f32) -> Vec<f32> {
    let group = group.max(1);
    let batch_std = std_dev(rewards);
    let mut out = Vec::with_capacity(rewards.len());
    for g in rewards.chunks(group) {
        let mean = g.iter().map(|&v| v as f64).sum::<f64>() / g.len() as f64;
        let denom = match scale {
            ScaleRewards::Group => std_dev(g) + eps,
            ScaleRewards::Batch => batch_std + eps,
            ScaleRewards::None => 1.0,
        };
        out.extend(g.iter().map(|&r| ((r as f64 - mean) as f32) / denom));
    }
    out
}

/// Whether a group's rewards all agree (it then carries no learning signal).
pub fn zero_variance(group: &[f32]) -> bool {
    group.windows(2).all(|w| w[0] == w[1])
}

/// The objective's constants.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    /// Lower clip: ρ ≥ 1 - epsilon.
    pub epsilon: f64,
    /// Upper clip: ρ ≤ 1 + epsilon_high ("clip-higher", DAPO); = epsilon for
    /// the symmetric clip.
    pub epsilon_high: f64,
    /// Dual clip: caps ρ at delta in the unclipped term, which bounds the
    /// loss of tokens with negative advantage whose ratio ran away (> 1 + ε).
    pub delta: Option<f64>,
    /// KL weight; 0 drops the term (and the reference model).
    pub beta: f64,
    pub loss_type: LossType,
}

/// The counts of the whole step's batch that the aggregation divides by.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalizer {
    /// Outputs in the step's batch (G × prompts).
    pub sequences: usize,
    /// Tokens that count (mask = 1) in the step's batch.
    pub tokens: usize,
    /// Dr. GRPO's constant length.
    pub max_completion_length: usize,
}

/// The per-token inputs of one micro-batch, each `[rows, len]`, except
/// `advantages`, `[rows, 1]`.
pub struct Terms {
    /// log π_θ of each token, carrying the gradient.
    pub logp: Tensor<2>,
    /// log π_old (no gradient).
    pub old_logp: Tensor<2>,
    /// log π_ref (no gradient); None when β = 0.
    pub ref_logp: Option<Tensor<2>>,
    pub advantages: Tensor<2>,
    /// 1 for tokens of the outputs that count, 0 for prompt, padding and
    /// masked (e.g. truncated) outputs.
    pub mask: Tensor<2>,
}

/// The loss and the per-token values the metrics are made of (detached).
pub struct Output {
    /// -J's share from this micro-batch.
    pub loss: Tensor<1>,
    /// ρ per token.
    pub ratio: Tensor<2>,
    /// k3 per token (zeros when β = 0).
    pub kl: Option<Tensor<2>>,
}

/// -J for a micro-batch, line by line as docs/method.md, GRPO writes it.
pub fn loss(terms: Terms, s: &Settings, n: &Normalizer) -> Output {
    let Terms { logp, old_logp, ref_logp, advantages: a, mask } = terms;
    // ρ_{i,t} = π_θ / π_old
    let ratio = (logp.clone() - old_logp).exp();
    // min(ρ A, clip(ρ, 1-ε, 1+ε_high) A), with ρ capped at δ in the first term (dual clip)
    let capped = match s.delta {
        Some(delta) => ratio.clone().clamp_max(delta),
        None => ratio.clone(),
    };
    let unclipped = capped * a.clone();
    let clipped = ratio.clone().clamp(1.0 - s.epsilon, 1.0 + s.epsilon_high) * a;
    let surrogate = unclipped.min_pair(clipped);
    // D_{i,t} = π_ref/π_θ - log(π_ref/π_θ) - 1;  L_{i,t} = surrogate - β D
    let (per_token, kl) = match ref_logp {
        Some(ref_logp) if s.beta != 0.0 => {
            let log_q = ref_logp - logp;
            let kl = log_q.clone().exp() - log_q - 1.0;
            (surrogate - kl.clone() * s.beta, Some(kl.detach()))
        }
        _ => (surrogate, None),
    };
    let masked = per_token * mask.clone();
    // J, over the whole step's batch
    let j = match s.loss_type {
        // 1/G Σ_i 1/|o_i| Σ_t L_{i,t}
        LossType::Grpo => (masked.sum_dim(1) / mask.sum_dim(1).clamp_min(1.0)).sum() / n.sequences.max(1) as f64,
        // Σ_{i,t} L_{i,t} / Σ_i |o_i|
        LossType::Dapo => masked.sum() / n.tokens.max(1) as f64,
        // Σ_{i,t} L_{i,t} / (G × max length)
        LossType::DrGrpo => masked.sum() / (n.sequences.max(1) * n.max_completion_length.max(1)) as f64,
    };
    Output { loss: -j, ratio: ratio.detach(), kl }
}

/// Token statistics of one micro-batch, summed (the caller divides by the
/// batch's token count).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TokenStats {
    pub tokens: f64,
    pub kl: f64,
    /// Tokens with A < 0 whose ratio fell below 1 - ε (TRL's clip_ratio/low).
    pub clip_low: f64,
    /// Tokens with A > 0 whose ratio rose above 1 + ε_high.
    pub clip_high: f64,
}

impl TokenStats {
    /// From host copies of ratio, kl, mask (`[rows × len]`) and each row's advantage.
    pub fn measure(ratio: &[f32], kl: Option<&[f32]>, mask: &[f32], advantages: &[f32], s: &Settings) -> TokenStats {
        let len = if advantages.is_empty() { 0 } else { mask.len() / advantages.len() };
        let mut out = TokenStats::default();
        for (i, &m) in mask.iter().enumerate() {
            if m == 0.0 {
                continue;
            }
            let a = advantages[i / len.max(1)];
            let r = ratio[i] as f64;
            out.tokens += 1.0;
            out.kl += kl.map_or(0.0, |k| k[i] as f64);
            if a < 0.0 && r < 1.0 - s.epsilon {
                out.clip_low += 1.0;
            }
            if a > 0.0 && r > 1.0 + s.epsilon_high {
                out.clip_high += 1.0;
            }
        }
        out
    }

    pub fn add(&mut self, other: TokenStats) {
        self.tokens += other.tokens;
        self.kl += other.kl;
        self.clip_low += other.clip_low;
        self.clip_high += other.clip_high;
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, TensorData};

    use super::*;

    fn device() -> Device {
        Device::flex().autodiff()
    }

    fn t2(rows: usize, cols: usize, v: &[f32], device: &Device) -> Tensor<2> {
        Tensor::from_data(TensorData::new(v.to_vec(), [rows, cols]), device)
    }

    fn host(t: Tensor<2>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
    }

    fn value(t: Tensor<1>) -> f64 {
        t.into_data().convert::<f64>().try_to_vec::<f64>().unwrap()[0]
    }

    fn settings(loss_type: LossType, beta: f64) -> Settings {
        Settings { epsilon: 0.2, epsilon_high: 0.2, delta: None, beta, loss_type }
    }

    /// Two outputs of one group: output 0 (A = +1) has two tokens, output 1
    /// (A = -1) one (its second position is padding).
    ///   ρ: exp(0.1) = 1.105171 (inside the clip), exp(0.3) = 1.349859 (above
    ///      1.2), exp(-0.5) = 0.606531 (below 0.8)
    ///   L_clip: min(1.105171, 1.105171) = 1.105171; min(1.349859, 1.2) = 1.2;
    ///           min(-0.606531, -0.8) = -0.8
    ///   k3 where log(π_ref/π_θ) = ln 2: 2 - ln 2 - 1 = 0.306853, else 0;
    ///   with β = 0.1: L = 1.105171 - 0.030685 = 1.074486, 1.2, -0.8
    fn hand_case(loss_type: LossType) -> f64 {
        let d = device();
        let logp = [-1.0f32, -2.0, -0.5, -9.0];
        let old = [-1.1f32, -2.3, 0.0, -9.0];
        let reference = [-1.0 + std::f32::consts::LN_2, -2.0, -0.5, -9.0];
        let terms = Terms {
            logp: t2(2, 2, &logp, &d),
            old_logp: t2(2, 2, &old, &d),
            ref_logp: Some(t2(2, 2, &reference, &d)),
            advantages: t2(2, 1, &[1.0, -1.0], &d),
            mask: t2(2, 2, &[1.0, 1.0, 1.0, 0.0], &d),
        };
        let n = Normalizer { sequences: 2, tokens: 3, max_completion_length: 4 };
        value(loss(terms, &settings(loss_type, 0.1), &n).loss)
    }

    #[test]
    fn loss_equals_the_hand_computation_for_each_aggregation() {
        // grpo: 1/2 [ (1.074486 + 1.2) / 2 + (-0.8) / 1 ] = 0.168622
        assert!((hand_case(LossType::Grpo) - -0.168622).abs() < 1e-5, "{}", hand_case(LossType::Grpo));
        // dapo: (1.074486 + 1.2 - 0.8) / 3 tokens = 0.491495
        assert!((hand_case(LossType::Dapo) - -0.491495).abs() < 1e-5, "{}", hand_case(LossType::Dapo));
        // dr_grpo: (1.074486 + 1.2 - 0.8) / (2 outputs × 4) = 0.184311
        assert!((hand_case(LossType::DrGrpo) - -0.184311).abs() < 1e-5, "{}", hand_case(LossType::DrGrpo));
    }

    /// With μ = 1 (π_old = π_θ, detached) and β = 0 the gradient with respect
    /// to each token's log-prob is the policy gradient's -A_i / (G |o_i|).
    #[test]
    fn with_one_iteration_and_no_kl_the_gradient_is_the_policy_gradient() {
        let d = device();
        let (rows, len) = (4, 3);
        let logp_values: Vec<f32> = (0..rows * len).map(|i| -0.3 - 0.17 * i as f32).collect();
        let mask = [1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0];
        let rewards = [1.0, 0.0, 0.5, 0.0];
        let a = advantages(&rewards, 4, ScaleRewards::Group, 1e-4);
        for loss_type in [LossType::Grpo, LossType::Dapo, LossType::DrGrpo] {
            let logp = t2(rows, len, &logp_values, &d).require_grad();
            let terms = Terms {
                logp: logp.clone(),
                old_logp: logp.clone().detach(),
                ref_logp: None,
                advantages: t2(rows, 1, &a, &d),
                mask: t2(rows, len, &mask, &d),
            };
            let n = Normalizer { sequences: rows, tokens: 8, max_completion_length: 5 };
            let out = loss(terms, &settings(loss_type, 0.0), &n);
            let grads = out.loss.backward();
            let got = host(logp.grad(&grads).unwrap());
            for i in 0..rows {
                let length: f32 = mask[i * len..(i + 1) * len].iter().sum();
                let scale = match loss_type {
                    LossType::Grpo => rows as f32 * length,
                    LossType::Dapo => 8.0,
                    LossType::DrGrpo => rows as f32 * 5.0,
                };
                for t in 0..len {
                    let want = -a[i] * mask[i * len + t] / scale;
                    assert!((got[i * len + t] - want).abs() < 1e-6, "{loss_type:?} [{i},{t}]: {} vs {want}", got[i * len + t]);
                }
            }
        }
    }

    #[test]
    fn a_group_whose_rewards_agree_gives_no_gradient() {
        let d = device();
        // Group 0 all equal, group 1 not.
        let rewards = [0.7, 0.7, 0.7, 1.0, 0.0, 0.0];
        for scale in [ScaleRewards::Group, ScaleRewards::Batch, ScaleRewards::None] {
            let a = advantages(&rewards, 3, scale, 1e-4);
            assert_eq!(&a[..3], &[0.0, 0.0, 0.0], "{scale:?}");
            let values: Vec<f32> = (0..12).map(|i| -0.1 * i as f32).collect();
            let logp = t2(6, 2, &values, &d).require_grad();
            let old: Vec<f32> = values.iter().map(|v| v + 0.05).collect();
            let terms = Terms {
                logp: logp.clone(),
                old_logp: t2(6, 2, &old, &d),
                ref_logp: None,
                advantages: t2(6, 1, &a, &d),
                mask: t2(6, 2, &[1.0; 12], &d),
            };
            let n = Normalizer { sequences: 6, tokens: 12, max_completion_length: 2 };
            let grads = loss(terms, &settings(LossType::Grpo, 0.0), &n).loss.backward();
            let g = host(logp.grad(&grads).unwrap());
            assert!(g[..6].iter().all(|&v| v == 0.0), "{scale:?}: {g:?}");
            assert!(g[6..].iter().any(|&v| v != 0.0), "{scale:?}: {g:?}");
        }
    }

    #[test]
    fn k3_is_never_negative_and_zero_at_the_reference() {
        let d = device();
        let logp: Vec<f32> = (0..20).map(|i| -0.05 - 0.4 * i as f32).collect();
        let reference: Vec<f32> = (0..20).map(|i| -0.05 - 0.4 * ((i * 7) % 20) as f32).collect();
        let run = |reference: &[f32]| {
            let terms = Terms {
                logp: t2(4, 5, &logp, &d),
                old_logp: t2(4, 5, &logp, &d),
                ref_logp: Some(t2(4, 5, reference, &d)),
                advantages: t2(4, 1, &[0.0; 4], &d),
                mask: t2(4, 5, &[1.0; 20], &d),
            };
            let n = Normalizer { sequences: 4, tokens: 20, max_completion_length: 5 };
            host(loss(terms, &settings(LossType::Grpo, 1.0), &n).kl.unwrap())
        };
        let kl = run(&reference);
        assert!(kl.iter().all(|&k| k >= 0.0), "{kl:?}");
        assert!(kl.iter().any(|&k| k > 0.1));
        assert!(run(&logp).iter().all(|&k| k == 0.0));
    }

    /// A token whose ratio left the clip range on the side its advantage
    /// pushes towards gets no gradient; on the other side it still does.
    #[test]
    fn clipped_tokens_carry_no_gradient_on_the_clipped_side() {
        let d = device();
        // ρ per row: 1.5 (A>0: clipped), 0.5 (A<0: clipped), 0.5 (A>0: not
        // clipped, min picks ρA), 1.5 (A<0: not clipped), 3.0 with δ = 2 (A<0: capped).
        let ratios = [1.5f32, 0.5, 0.5, 1.5, 3.0];
        let a = [1.0f32, -1.0, 1.0, -1.0, -1.0];
        let old = [0.0f32; 5];
        let logp: Vec<f32> = ratios.iter().map(|r| r.ln()).collect();
        let x = t2(5, 1, &logp, &d).require_grad();
        let terms = Terms {
            logp: x.clone(),
            old_logp: t2(5, 1, &old, &d),
            ref_logp: None,
            advantages: t2(5, 1, &a, &d),
            mask: t2(5, 1, &[1.0; 5], &d),
        };
        let s = Settings { delta: Some(2.0), ..settings(LossType::Dapo, 0.0) };
        let n = Normalizer { sequences: 5, tokens: 5, max_completion_length: 1 };
        let out = loss(terms, &s, &n);
        let ratio = host(out.ratio.clone().inner());
        let g = host(x.grad(&out.loss.backward()).unwrap());
        assert_eq!(g[0], 0.0);
        assert_eq!(g[1], 0.0);
        // d(-ρA/5)/dlogp = -ρA/5
        assert!((g[2] - -0.5 / 5.0).abs() < 1e-6, "{g:?}");
        assert!((g[3] - 1.5 / 5.0).abs() < 1e-6, "{g:?}");
        assert_eq!(g[4], 0.0);
        let stats = TokenStats::measure(&ratio, None, &[1.0; 5], &a, &s);
        assert_eq!((stats.clip_high, stats.clip_low, stats.tokens), (1.0, 1.0, 5.0));
    }

    #[test]
    fn advantages_of_a_group_sum_to_zero() {
        let rewards: Vec<f32> = (0..24).map(|i| ((i * 37) % 11) as f32 / 7.0).collect();
        for scale in [ScaleRewards::Group, ScaleRewards::Batch, ScaleRewards::None] {
            let a = advantages(&rewards, 8, scale, 1e-4);
            for g in a.chunks(8) {
                assert!(g.iter().sum::<f32>().abs() < 1e-5, "{scale:?}: {g:?}");
            }
        }
        // Group scaling: unit (Bessel) standard deviation within a group.
        let a = advantages(&[0.0, 1.0, 0.0, 1.0], 4, ScaleRewards::Group, 0.0);
        let s = 1.0 / (1.0f32 / 3.0).sqrt();
        assert!((a[1] - 0.5 * s).abs() < 1e-5 && (a[0] + 0.5 * s).abs() < 1e-5, "{a:?}");
        assert_eq!(advantages(&[0.0, 1.0, 0.0, 1.0], 4, ScaleRewards::None, 1e-4), vec![-0.5, 0.5, -0.5, 0.5]);
        assert!(zero_variance(&[0.3, 0.3, 0.3]) && !zero_variance(&[0.3, 0.31]));
    }
}
