//! The trainer: burn models, SFT, GRPO, rewards, tasks, distillation and
//! export into the runtime's `.aha` file.

pub mod checkpoint;
pub mod config;
pub mod data;
pub mod eval;
pub mod device;
pub mod distill;
pub mod error;
pub mod fsutil;
pub mod generate;
pub mod grpo;
pub mod jsonl;
pub mod model;
pub mod optim;
pub mod params;
pub mod pipeline;
pub mod plot;
pub mod recipes;
pub mod report;
pub mod reward_model;
pub mod rewards;
pub mod sample;
pub mod run;
pub mod sandbox;
pub mod score;
pub mod tasks;
pub mod tokenizer;
pub mod train;

pub use error::{Error, Result};
