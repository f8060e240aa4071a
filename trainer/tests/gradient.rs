//! Autodiff against finite differences: for every parameter tensor of a tiny
//! model, the directional derivative of the loss along a random direction
//! (central difference) equals the gradient's dot product with it.

use aha_trainer::config::parse_config_toml;
use aha_trainer::model::{CausalLm, Inputs};
use aha_trainer::params::{map_params, take_grads, visit_params};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};

const TINY: &str = r#"
    model_type = "qwen2"
    vocab_size = 48
    hidden_size = 32
    intermediate_size = 40
    num_hidden_layers = 2
    num_attention_heads = 4
    num_key_value_heads = 2
    tie_word_embeddings = false
"#;

fn loss(model: &CausalLm, rows: &[Vec<u32>], device: &Device) -> Tensor<1> {
    let inputs: Vec<Vec<u32>> = rows.iter().map(|r| r[..r.len() - 1].to_vec()).collect();
    let targets: Vec<i64> = rows.iter().flat_map(|r| r[1..].iter().map(|&t| t as i64)).collect();
    let (b, t) = (rows.len(), rows[0].len() - 1);
    let targets = Tensor::<2, Int>::from_data(TensorData::new(targets, [b, t]), device);
    let weights = Tensor::<2>::ones([b, t], device);
    model.nll_sum(&Inputs::causal(&inputs, device), targets, weights) / (b * t) as f64
}

fn value(t: Tensor<1>) -> f64 {
    t.into_data().convert::<f64>().try_to_vec::<f64>().unwrap()[0]
}

#[test]
fn gradients_match_finite_differences_for_every_tensor() {
    let device = Device::flex().autodiff();
    device.seed(7);
    let config = parse_config_toml(TINY).unwrap();
    let mut model = CausalLm::init(&config, &device);
    // Larger weights than the 0.02 init, so every path carries signal.
    model = map_params(model, |_, v, _| Some(v.clone() * 5.0 + v.random_like(Distribution::Normal(0.0, 0.05))));
    let rows: Vec<Vec<u32>> = (0..3).map(|b| (0..9).map(|i| ((i * 7 + b * 5 + 3) % 48) as u32).collect()).collect();

    let l = loss(&model, &rows, &device);
    let mut grads = l.backward();
    let grads = take_grads(&model, &mut grads);
    let mut names = Vec::new();
    visit_params(&model, |name, _, _| names.push(name.to_string()));
    assert_eq!(grads.len(), names.len(), "every parameter gets a gradient");

    let eps = 5e-3;
    let mut worst = (0.0, String::new());
    for name in &names {
        let grad = grads[name].clone();
        // A unit direction, so the step is eps long whatever the tensor's size.
        let direction = grad.random_like(Distribution::Normal(0.0, 1.0));
        let direction = direction.clone() / direction.square().sum().sqrt().unsqueeze();
        let analytic = value((grad * direction.clone()).sum());
        let shifted = |sign: f64| {
            let m = map_params(model.clone(), |n, v, _| (n == name).then(|| v + direction.clone() * (sign * eps)));
            value(loss(&m, &rows, &device))
        };
        let numeric = (shifted(1.0) - shifted(-1.0)) / (2.0 * eps);
        // f32 losses put a ~1e-4 noise floor under the finite difference.
        let err = (analytic - numeric).abs() / analytic.abs().max(numeric.abs()).max(2e-2);
        if err > worst.0 {
            worst = (err, format!("{name}: autodiff {analytic:.6}, finite difference {numeric:.6}"));
        }
    }
    // A wrong gradient (transposed, missing a term, wrong sign) is off by
    // order 1; f32 rounding and curvature leave about 1.5% here.
    assert!(worst.0 < 3e-2, "worst relative error {:.2e} at {}", worst.0, worst.1);
}

#[test]
fn the_loss_projected_at_its_positions_only_equals_the_whole_projection() {
    // nll_sum computes logits only where the weight is not 0; the same loss
    // over every position's logits, weighted, must agree in value and in
    // every parameter's gradient.
    let device = Device::flex().autodiff();
    device.seed(3);
    let config = parse_config_toml(TINY).unwrap();
    let model = CausalLm::init(&config, &device);
    let model = map_params(model, |_, v, _| Some(v.clone() * 5.0));
    let rows: Vec<Vec<u32>> = (0..3).map(|b| (0..9).map(|i| ((i * 5 + b * 11 + 1) % 48) as u32).collect()).collect();
    let inputs: Vec<Vec<u32>> = rows.iter().map(|r| r[..8].to_vec()).collect();
    let targets: Vec<i64> = rows.iter().flat_map(|r| r[1..].iter().map(|&t| t as i64)).collect();
    // A prompt of 3 positions and a padded tail, as in SFT and GRPO rows; one row counts nowhere.
    let weights: Vec<f32> = (0..3).flat_map(|b| (0..8).map(move |t| if b != 1 && (3..8 - b).contains(&t) { 0.5 + t as f32 / 8.0 } else { 0.0 })).collect();
    let inputs = Inputs::causal(&inputs, &device);
    let targets = Tensor::<2, Int>::from_data(TensorData::new(targets, [3, 8]), &device);
    let weights = Tensor::<2>::from_data(TensorData::new(weights, [3, 8]), &device);

    let selected = model.nll_sum(&inputs, targets.clone(), weights.clone());
    let whole = -(model.token_logprobs(&inputs, targets) * weights).sum();
    let (a, b) = (value(selected.clone()), value(whole.clone()));
    assert!((a - b).abs() < 1e-5 * b.abs().max(1.0), "selected {a} vs whole {b}");
    let (ga, gb) = (take_grads(&model, &mut selected.backward()), take_grads(&model, &mut whole.backward()));
    assert_eq!(ga.len(), gb.len());
    for (name, g) in &ga {
        let diff = value((g.clone() - gb[name].clone()).abs().max());
        let scale = value(gb[name].clone().abs().max());
        assert!(diff <= 1e-5 * scale.max(1e-3), "{name}: gradients differ by {diff} (scale {scale})");
    }
}
