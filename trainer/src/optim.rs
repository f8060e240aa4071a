//! AdamW with warm-up + cosine learning rate and global gradient-norm
//! clipping, as `torch.optim.AdamW` + `clip_grad_norm_` + transformers'
//! cosine schedule compute them.
//!
//! burn has an AdamW, but it clips each parameter's gradient on its own and
//! keys its state by random parameter ids. Training recipes (and GRPO's
//! `max_grad_norm`) mean the norm over all gradients together, and a resumed
//! run must find each moment by the parameter's name, so the state here is
//! kept by name and saved beside the weights in safetensors.

use std::collections::BTreeMap;

use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::params::{map_params, HostTensor};

/// Optimizer and schedule settings; the names are transformers'
/// `TrainingArguments` names.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimConfig {
    pub learning_rate: f64,
    /// The schedule ends at `learning_rate * min_lr_ratio`.
    pub min_lr_ratio: f64,
    pub warmup_steps: u64,
    pub adam_beta1: f64,
    pub adam_beta2: f64,
    pub adam_epsilon: f64,
    /// Applied to matrices only (not to biases or norm weights), as
    /// transformers' Trainer does.
    pub weight_decay: f64,
    /// Global L2 norm the gradients are clipped to; 0 turns clipping off.
    pub max_grad_norm: f64,
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig {
            learning_rate: 1e-3,
            min_lr_ratio: 0.1,
            warmup_steps: 20,
            adam_beta1: 0.9,
            adam_beta2: 0.95,
            adam_epsilon: 1e-8,
            weight_decay: 0.1,
            max_grad_norm: 1.0,
        }
    }
}

impl OptimConfig {
    /// The learning rate of optimizer step `step` (0-based) out of `total`:
    /// linear warm-up from 0, then a cosine down to `min_lr_ratio`.
    pub fn lr_at(&self, step: u64, total: u64) -> f64 {
        let peak = self.learning_rate;
        if step < self.warmup_steps {
            return peak * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let span = total.saturating_sub(self.warmup_steps).max(1) as f64;
        let progress = ((step - self.warmup_steps) as f64 / span).min(1.0);
        let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
        peak * (self.min_lr_ratio + (1.0 - self.min_lr_ratio) * cosine)
    }
}

/// What one optimizer step saw.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepStats {
    /// The global gradient norm before clipping.
    pub grad_norm: f64,
    pub lr: f64,
}

/// AdamW's moments, by parameter name, flattened.
pub struct AdamW {
    pub config: OptimConfig,
    /// Steps taken (for bias correction).
    pub steps: u64,
    moments: BTreeMap<String, (Tensor<1>, Tensor<1>)>,
}

/// Sums gradients over micro-batches (gradient accumulation).
#[derive(Default)]
pub struct GradSum {
    pub grads: BTreeMap<String, Tensor<1>>,
}

impl GradSum {
    pub fn add(&mut self, grads: BTreeMap<String, Tensor<1>>) {
        for (name, grad) in grads {
            let sum = match self.grads.remove(&name) {
                Some(sum) => sum + grad,
                None => grad,
            };
            self.grads.insert(name, sum);
        }
    }
}

/// The L2 norm over all gradients together.
pub fn global_norm(grads: &BTreeMap<String, Tensor<1>>) -> f64 {
    let mut squares: Option<Tensor<1>> = None;
    for grad in grads.values() {
        let s = grad.clone().square().sum();
        squares = Some(match squares {
            Some(acc) => acc + s,
            None => s,
        });
    }
    squares.map_or(0.0, |s| s.into_data().convert::<f64>().try_to_vec::<f64>().map_or(f64::NAN, |v| v[0]).sqrt())
}

impl AdamW {
    pub fn new(config: OptimConfig) -> AdamW {
        AdamW { config, steps: 0, moments: BTreeMap::new() }
    }

    /// One update of every parameter that has a gradient in `grads`, at
    /// learning rate `lr`, after clipping the global norm.
    pub fn step<M: burn::module::Module>(&mut self, module: M, grads: GradSum, lr: f64) -> (M, StepStats) {
        let grads = grads.grads;
        let grad_norm = global_norm(&grads);
        if !grad_norm.is_finite() {
            // A NaN or infinite gradient would poison every weight and both
            // moments: leave them as they were, and let the caller stop.
            return (module, StepStats { grad_norm, lr });
        }
        let max = self.config.max_grad_norm;
        let clip = if max > 0.0 && grad_norm > max { max / (grad_norm + 1e-6) } else { 1.0 };
        self.steps += 1;
        let c = &self.config;
        let (b1, b2) = (c.adam_beta1, c.adam_beta2);
        let correction1 = 1.0 - b1.powi(self.steps as i32);
        let correction2 = 1.0 - b2.powi(self.steps as i32);
        let moments = &mut self.moments;
        let module = map_params(module, |name, value, dims| {
            let mut grad = grads.get(name)?.clone();
            if clip != 1.0 {
                grad = grad * clip;
            }
            let value = value.inner();
            let (m, v) = moments.remove(name).unwrap_or_else(|| (grad.zeros_like(), grad.zeros_like()));
            let m = m * b1 + grad.clone() * (1.0 - b1);
            let v = v * b2 + grad.square() * (1.0 - b2);
            let denom = (v.clone() / correction2).sqrt() + c.adam_epsilon;
            let update = m.clone() / correction1 / denom;
            let decay = if dims.len() >= 2 { 1.0 - lr * c.weight_decay } else { 1.0 };
            moments.insert(name.to_string(), (m, v));
            Some(value * decay - update * lr)
        });
        (module, StepStats { grad_norm, lr })
    }

    /// The moments as `<param>.exp_avg` / `<param>.exp_avg_sq`, PyTorch's names.
    pub fn state_dict(&self) -> BTreeMap<String, HostTensor> {
        let mut out = BTreeMap::new();
        for (name, (m, v)) in &self.moments {
            out.insert(format!("{name}.exp_avg"), HostTensor::from_tensor(m));
            out.insert(format!("{name}.exp_avg_sq"), HostTensor::from_tensor(v));
        }
        out
    }

    /// Restores moments saved by [`AdamW::state_dict`].
    pub fn load_state_dict(&mut self, steps: u64, mut tensors: BTreeMap<String, HostTensor>, device: &Device) -> Result<()> {
        self.steps = steps;
        self.moments.clear();
        let names: Vec<String> = tensors.keys().filter_map(|k| k.strip_suffix(".exp_avg").map(str::to_string)).collect();
        for name in names {
            let take = |tensors: &mut BTreeMap<String, HostTensor>, key: String| {
                let t = tensors.remove(&key).ok_or_else(|| Error::tensor(&key, "missing from the optimizer state"))?;
                let n = t.data.len();
                Ok::<_, Error>(Tensor::<1>::from_data(TensorData::new(t.data, [n]), device))
            };
            let m = take(&mut tensors, format!("{name}.exp_avg"))?;
            let v = take(&mut tensors, format!("{name}.exp_avg_sq"))?;
            self.moments.insert(name, (m, v));
        }
        if let Some(extra) = tensors.keys().next() {
            return Err(Error::tensor(extra, "unexpected in the optimizer state"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays_to_the_floor() {
        let c = OptimConfig { learning_rate: 1.0, warmup_steps: 10, min_lr_ratio: 0.1, ..Default::default() };
        assert!((c.lr_at(0, 100) - 0.1).abs() < 1e-12);
        assert!((c.lr_at(9, 100) - 1.0).abs() < 1e-12);
        assert!((c.lr_at(10, 100) - 1.0).abs() < 1e-12);
        assert!((c.lr_at(55, 100) - 0.55).abs() < 1e-12);
        assert!((c.lr_at(100, 100) - 0.1).abs() < 1e-12);
        assert!((c.lr_at(500, 100) - 0.1).abs() < 1e-12);
    }
}
