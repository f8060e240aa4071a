//! The runtime rollout engine decodes many sequences in one batch session:
//! each (prompt, sample) still draws from its own seeded sampler, so the G
//! samples of a prompt drawn together equal, token for token, the same seeds
//! drawn one at a time, whatever the batch size and thread count.

use aha_trainer::checkpoint::load_model;
use aha_trainer::device::DeviceChoice;
use aha_trainer::generate::GenerateConfig;
use aha_trainer::grpo::rollout::Engine;
use aha_trainer::tokenizer::TextTokenizer;
use burn::tensor::Device;
use std::path::Path;

#[test]
fn samples_drawn_together_equal_samples_drawn_one_at_a_time() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/qwen2-tokenizer");
    let model = load_model(&dir, &Device::flex()).unwrap();
    let tokenizer = TextTokenizer::from_dir(&dir).unwrap();
    let prompts: Vec<Vec<u32>> = ["Compute 3 + 4 =", "The capital of", "Once upon"].iter().map(|t| tokenizer.encode(t).unwrap()).collect();
    let draw = |batch_size: usize, threads: usize| {
        let mut engine = Engine::runtime_with_threads(threads);
        engine.refresh(&model, &tokenizer).unwrap();
        let config = GenerateConfig { temperature: 1.0, top_p: 0.95, max_new_tokens: 12, seed: 9, batch_size, ..GenerateConfig::default() };
        engine.generate(Some(&model), &tokenizer, &prompts, 4, &config).unwrap()
    };
    let together = draw(12, 2);
    assert_eq!(together.len(), 12);
    for (other, what) in [(draw(1, 1), "one at a time"), (draw(5, 1), "in batches of 5"), (draw(64, 3), "on 3 threads")] {
        for (a, b) in together.iter().zip(&other) {
            assert_eq!((a.prompt_index, a.sample_index), (b.prompt_index, b.sample_index));
            assert_eq!(a.ids, b.ids, "prompt {} sample {} {what}", a.prompt_index, a.sample_index);
            assert_eq!(a.logprobs, b.logprobs, "prompt {} sample {} {what}", a.prompt_index, a.sample_index);
            assert_eq!(a.finish, b.finish);
        }
    }
    // The samples of a prompt differ from one another (their seeds do).
    assert!(together[..4].iter().any(|c| c.ids != together[0].ids));
    assert!(Engine::named("auto", DeviceChoice::Flex).unwrap().is_runtime());
    #[cfg(feature = "gpu")]
    assert!(!Engine::named("auto", DeviceChoice::Vulkan).unwrap().is_runtime());
    assert!(Engine::named("gpu", DeviceChoice::Flex).is_err());
}
