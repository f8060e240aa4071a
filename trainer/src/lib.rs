//! The trainer: burn models, SFT, GRPO, rewards, tasks, distillation and
//! export into the runtime's `.aha` file. Filled in by the trainer issue; the
//! crate exists now so the workspace's dependency direction
//! (kernels <- runtime <- trainer <- CLI) is fixed from the start.
