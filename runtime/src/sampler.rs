//! Choosing the next token from logits: greedy, temperature, top-k, top-p
//! (nucleus), min-p and the repetition penalty, with a seedable RNG so the
//! same seed gives the same output on every target. No allocation: the caller
//! passes an index buffer as long as the vocabulary (the session has one).
//!
//! Order, as Hugging Face's logits processors apply them: repetition penalty,
//! temperature, top-k, top-p, min-p, then a draw from what is left.

use crate::error::{Error, Result};

/// PCG-XSH-RR 32 (O'Neill 2014): small, fast, and the same on every target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng {
    state: u64,
    inc: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let mut rng = Rng { state: 0, inc: (seed << 1) | 1 };
        rng.next_u32();
        rng.state = rng.state.wrapping_add(seed ^ 0x853c_49e6_748f_ea9b);
        rng.next_u32();
        rng
    }

    pub fn next_u32(&mut self) -> u32 {
        let old = self.state;
        self.state = old.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(self.inc);
        let xorshifted = (((old >> 18) ^ old) >> 27) as u32;
        xorshifted.rotate_right((old >> 59) as u32)
    }

    /// Uniform in [0, 1).
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u32() >> 8) as f32 * (1.0 / (1u32 << 24) as f32)
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplerConfig {
    /// 0 means greedy (argmax).
    pub temperature: f32,
    /// Keep the k most likely tokens; 0 = off.
    pub top_k: usize,
    /// Keep the smallest set whose probability reaches p; 1 = off.
    pub top_p: f32,
    /// Drop tokens less likely than min_p × the most likely; 0 = off.
    pub min_p: f32,
    /// CTRL's penalty (Keskar et al. 2019) on tokens already in the context; 1 = off.
    pub repetition_penalty: f32,
    pub seed: u64,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig { temperature: 0.0, top_k: 0, top_p: 1.0, min_p: 0.0, repetition_penalty: 1.0, seed: 0 }
    }
}

impl SamplerConfig {
    pub fn greedy() -> Self {
        Self::default()
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |what| Err(Error::BadSampler { what });
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return bad("temperature must be a finite number >= 0");
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("top_p must be in (0, 1]");
        }
        if !(self.min_p >= 0.0 && self.min_p < 1.0) {
            return bad("min_p must be in [0, 1)");
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return bad("repetition_penalty must be a finite number > 0");
        }
        Ok(())
    }
}

#[derive(Clone, Debug)]
pub struct Sampler {
    pub config: SamplerConfig,
    rng: Rng,
}

impl Sampler {
    pub fn new(config: SamplerConfig) -> Result<Sampler> {
        config.validate()?;
        Ok(Sampler { config, rng: Rng::new(config.seed) })
    }

    /// Picks a token. `logits` is overwritten; `idx` must be at least as long
    /// as `logits`; `history` is the context so far (for the repetition penalty).
    pub fn sample(&mut self, logits: &mut [f32], idx: &mut [u32], history: &[u32]) -> u32 {
        let n = logits.len();
        let idx = &mut idx[..n];
        let c = self.config;
        if c.repetition_penalty != 1.0 {
            // Each distinct token once: idx marks the ones already penalised.
            idx.fill(0);
            for &t in history {
                let t = t as usize;
                if t < n && idx[t] == 0 {
                    idx[t] = 1;
                    let l = &mut logits[t];
                    *l = if *l > 0.0 { *l / c.repetition_penalty } else { *l * c.repetition_penalty };
                }
            }
        }
        if c.temperature == 0.0 || n == 1 {
            return argmax(logits);
        }
        // Softmax at temperature T.
        let max = max_of(logits);
        let inv_t = 1.0 / c.temperature;
        for l in logits.iter_mut() {
            *l = exp((*l - max) * inv_t);
        }
        let inv = 1.0 / sum(logits);
        for l in logits.iter_mut() {
            *l *= inv;
        }
        let probs: &[f32] = logits;

        let filtering = (c.top_k > 0 && c.top_k < n) || c.top_p < 1.0 || c.min_p > 0.0;
        if !filtering {
            return draw(probs, 0..n as u32, 1.0, self.rng.next_f32());
        }

        // Candidates, most likely first.
        let by_prob = |a: &u32, b: &u32| probs[*b as usize].total_cmp(&probs[*a as usize]).then(a.cmp(b));
        let mut m = 0;
        if c.top_k > 0 && c.top_k < n {
            for (i, slot) in idx.iter_mut().enumerate() {
                *slot = i as u32;
            }
            idx.select_nth_unstable_by(c.top_k - 1, by_prob);
            m = c.top_k;
        } else {
            // Nucleus without a full sort (llama2.c's trick): a token less
            // likely than (1 − p)/(n − 1) cannot be in the smallest set reaching p.
            let cutoff = if c.top_p < 1.0 { (1.0 - c.top_p) / (n - 1) as f32 } else { 0.0 };
            for (i, &p) in probs.iter().enumerate() {
                if p >= cutoff {
                    idx[m] = i as u32;
                    m += 1;
                }
            }
        }
        let cand = &mut idx[..m];
        cand.sort_unstable_by(by_prob);

        // Top-p over the candidates' renormalised mass.
        let mass: f32 = cand.iter().map(|&i| probs[i as usize]).sum();
        let mut keep = m;
        if c.top_p < 1.0 {
            let mut acc = 0.0;
            for (j, &i) in cand.iter().enumerate() {
                acc += probs[i as usize] / mass;
                if acc >= c.top_p {
                    keep = j + 1;
                    break;
                }
            }
        }
        // Min-p: relative to the most likely token, so renormalisation does not matter.
        if c.min_p > 0.0 {
            let floor = c.min_p * probs[cand[0] as usize];
            keep = cand[..keep].iter().take_while(|&&i| probs[i as usize] >= floor).count().max(1);
        }
        let kept = &cand[..keep];
        let total: f32 = kept.iter().map(|&i| probs[i as usize]).sum();
        draw(probs, kept.iter().copied(), total, self.rng.next_f32())
    }
}

/// `log softmax(logits / temperature)[token]`, temperature 0 read as 1: the
/// log-probability of the whole temperature-scaled distribution, whatever
/// top-k / top-p / min-p then cut from it (what a sampled token's recorded
/// log-probability means).
pub fn logprob(logits: &[f32], token: u32, temperature: f32) -> f32 {
    let inv_t = if temperature > 0.0 { 1.0 / temperature } else { 1.0 };
    let max = max_of(logits);
    let total = fold8(logits, 0.0, |a, l| a + exp((l - max) * inv_t), |a, b| a + b);
    (logits[token as usize] - max) * inv_t - libm::logf(total)
}

/// Folds `x` with `step` in eight lanes, then the lanes and the remainder
/// with `merge`: a loop that vectorizes, in an order fixed by the length
/// alone (every target gives the same bits).
#[inline(always)]
fn fold8(x: &[f32], init: f32, step: impl Fn(f32, f32) -> f32, merge: impl Fn(f32, f32) -> f32) -> f32 {
    let mut lanes = [init; 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for (a, &v) in lanes.iter_mut().zip(c) {
            *a = step(*a, v);
        }
    }
    let rest = chunks.remainder().iter().fold(init, |a, &v| step(a, v));
    lanes.iter().fold(rest, |a, &v| merge(a, v))
}

/// The largest value (`-inf` for none; NaNs are skipped).
fn max_of(x: &[f32]) -> f32 {
    let max = |m: f32, v: f32| if v > m { v } else { m };
    fold8(x, f32::NEG_INFINITY, max, max)
}

/// Σx.
fn sum(x: &[f32]) -> f32 {
    fold8(x, 0.0, |a, v| a + v, |a, b| a + b)
}

/// e^x, within 2 ulp of `libm::expf` for x in [-87.3, 88.7] and 0 below,
/// in plain f32 arithmetic (no FMA, no table, no call) so that a loop of it
/// vectorizes on every target and every target gives the same bits: the
/// sampler's softmax over a whole vocabulary is one such loop per token.
/// x = k·ln2 + r (Cody–Waite, |r| <= ln2/2), e^r by Cephes' degree-6 fit,
/// 2^k built in the exponent field. NaN in, NaN out.
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LO: f32 = -87.336_55;
    const HI: f32 = 88.722_84;
    // 1.5·2^23: adding and subtracting it rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let xc = if x > HI {
        HI
    } else if x < LO {
        LO
    } else {
        x
    };
    let k = (xc * core::f32::consts::LOG2_E + ROUND) - ROUND;
    let r = xc - k * 0.693_359_4;
    let r = r - k * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e = p * (r * r) + r + 1.0;
    // 2^k as two factors, so k = 128 does not overflow the exponent field.
    let ki = k as i32;
    let k1 = ki >> 1;
    let two = |k: i32| f32::from_bits(((k + 127) as u32) << 23);
    let y = e * two(k1) * two(ki - k1);
    if x < LO {
        0.0
    } else if x.is_nan() {
        x
    } else {
        y
    }
}

/// The first index of the largest value (as `torch.argmax`).
pub fn argmax(x: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best as u32
}

fn draw(probs: &[f32], cand: impl Iterator<Item = u32> + Clone, total: f32, r: f32) -> u32 {
    let target = r * total;
    let mut acc = 0.0;
    // If rounding leaves `acc` short of `target` after every candidate, the
    // last token that can be drawn at all wins, never one of probability 0
    // (a masked or -inf logit).
    let mut last = None;
    for i in cand.clone() {
        let p = probs[i as usize];
        acc += p;
        if p > 0.0 {
            last = Some(i);
        }
        if acc > target && p > 0.0 {
            return i;
        }
    }
    // Rounding left the target just above the sum; all-zero mass (NaN
    // logits) falls back to the first candidate.
    last.or_else(|| cand.clone().next()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(cfg: SamplerConfig, logits: &[f32], draws: usize) -> [usize; 8] {
        let mut s = Sampler::new(cfg).unwrap();
        let mut counts = [0usize; 8];
        let mut idx = [0u32; 8];
        for _ in 0..draws {
            let mut l = [0f32; 8];
            l[..logits.len()].copy_from_slice(logits);
            counts[s.sample(&mut l[..logits.len()], &mut idx, &[]) as usize] += 1;
        }
        counts
    }

    const LOGITS: [f32; 5] = [2.0, 1.0, 0.5, 0.0, -1.0];

    /// A draw at the very top of [0, 1) whose cumulative sum rounds short of
    /// it must not land on a token of probability 0 (a masked logit).
    #[test]
    fn rounding_never_draws_a_token_of_probability_zero() {
        let probs = [0.3f32, 0.3, 0.3999999, 0.0];
        assert_eq!(draw(&probs, 0..4, 1.0, 0.99999994), 2);
        assert_eq!(draw(&[0.0f32, 0.0], 0..2, 1.0, 0.5), 0);
    }

    #[test]
    fn exp_matches_libm_and_zeroes_below_the_range() {
        let mut x = -90.0f32;
        while x < 88.7 {
            let (got, want) = (exp(x), libm::expf(x));
            if want >= f32::MIN_POSITIVE {
                assert!((got - want).abs() <= 2.5e-7 * want, "exp({x}) = {got}, libm {want}");
            }
            x += 0.0137;
        }
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(f32::NAN).is_nan());
        assert!(exp(88.72).is_finite() && exp(88.72) > 3.3e38);
    }

    #[test]
    fn logprob_is_log_softmax_at_the_temperature() {
        let logits = [2.0f32, 1.0, -0.5, 0.0, 0.25, -3.0, 1.5, 0.0, 0.75, -1.0, f32::NEG_INFINITY];
        let lse = |scale: f64| logits.iter().map(|&l| (l as f64 * scale).exp()).sum::<f64>().ln();
        assert!((logprob(&logits, 1, 0.5) as f64 - (1.0 / 0.5 - lse(2.0))).abs() < 1e-6);
        assert!((logprob(&logits, 0, 0.0) as f64 - (2.0 - lse(1.0))).abs() < 1e-6);
        assert_eq!(logprob(&logits, 10, 1.0), f32::NEG_INFINITY);
    }

    #[test]
    fn greedy_takes_the_first_maximum() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, -1.0]), 1);
        let c = run(SamplerConfig::greedy(), &LOGITS, 10);
        assert_eq!(c[0], 10);
    }

    #[test]
    fn same_seed_same_tokens_other_seed_other_tokens() {
        let cfg = SamplerConfig { temperature: 1.0, seed: 7, ..Default::default() };
        let seq = |cfg| {
            let mut s = Sampler::new(cfg).unwrap();
            let mut idx = [0u32; 5];
            (0..64).map(|_| s.sample(&mut LOGITS.clone(), &mut idx, &[])).collect::<heapless::Vec<u32, 64>>()
        };
        assert_eq!(seq(cfg), seq(cfg));
        assert_ne!(seq(cfg), seq(SamplerConfig { seed: 8, ..cfg }));
    }

    #[test]
    fn temperature_one_follows_the_softmax() {
        let c = run(SamplerConfig { temperature: 1.0, seed: 1, ..Default::default() }, &LOGITS, 20000);
        let z: f32 = LOGITS.iter().map(|l| l.exp()).sum();
        for (i, l) in LOGITS.iter().enumerate() {
            let p = l.exp() / z;
            let f = c[i] as f32 / 20000.0;
            assert!((f - p).abs() < 0.015, "token {i}: frequency {f}, probability {p}");
        }
    }

    #[test]
    fn top_k_keeps_only_the_k_most_likely() {
        let c = run(SamplerConfig { temperature: 1.0, top_k: 2, seed: 3, ..Default::default() }, &LOGITS, 2000);
        assert_eq!(c[2] + c[3] + c[4], 0);
        assert!(c[0] > c[1] && c[1] > 0);
    }

    #[test]
    fn top_p_keeps_the_smallest_set_reaching_p() {
        // Probabilities ≈ 0.53, 0.20, 0.12, 0.07, 0.03: p = 0.7 needs the first two.
        let c = run(SamplerConfig { temperature: 1.0, top_p: 0.7, seed: 4, ..Default::default() }, &LOGITS, 2000);
        assert_eq!(c[2] + c[3] + c[4], 0);
        assert!(c[1] > 0);
        let c = run(SamplerConfig { temperature: 1.0, top_p: 0.8, seed: 4, ..Default::default() }, &LOGITS, 2000);
        assert!(c[2] > 0 && c[3] + c[4] == 0);
    }

    #[test]
    fn min_p_drops_tokens_below_the_fraction_of_the_best() {
        // p1/p0 = e^-1 ≈ 0.37, p2/p0 ≈ 0.22.
        let c = run(SamplerConfig { temperature: 1.0, min_p: 0.3, seed: 5, ..Default::default() }, &LOGITS, 2000);
        assert!(c[1] > 0);
        assert_eq!(c[2] + c[3] + c[4], 0);
    }

    #[test]
    fn repetition_penalty_discourages_seen_tokens() {
        let mut s = Sampler::new(SamplerConfig { repetition_penalty: 3.0, ..Default::default() }).unwrap();
        let mut idx = [0u32; 5];
        // 2.0 / 3 < 1.0: token 1 wins once token 0 has been seen (and is penalised once).
        assert_eq!(s.sample(&mut LOGITS.clone(), &mut idx, &[0, 0, 0]), 1);
        let mut neg = [-1.0f32, -1.2, -5.0];
        assert_eq!(s.sample(&mut neg, &mut idx, &[0]), 1, "negative logits are multiplied");
    }

    #[test]
    fn bad_settings_are_errors() {
        for cfg in [
            SamplerConfig { temperature: -1.0, ..Default::default() },
            SamplerConfig { top_p: 0.0, ..Default::default() },
            SamplerConfig { min_p: 1.0, ..Default::default() },
            SamplerConfig { repetition_penalty: 0.0, ..Default::default() },
            SamplerConfig { temperature: f32::NAN, ..Default::default() },
        ] {
            assert!(Sampler::new(cfg).is_err(), "{cfg:?}");
        }
    }
}
