//! `aha pipeline`: the R1 recipe in one command (trainer/src/pipeline.rs).

use std::path::PathBuf;

use aha_trainer::pipeline::{self, Outcome, PipelineConfig, PipelineJob};
use anyhow::{bail, Result};
use clap::Args;

#[derive(Args, Debug)]
pub struct PipelineArgs {
    /// TOML with any PipelineConfig names (sections: task, base, student, zero, cold_start,
    /// reasoning, sft, reward_model, rl_all, distill_seq, distill_kd, student_rl, eval, export,
    /// device_check); missing names take the built-in default.
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(long, default_value = "runs/r1")]
    pub out: PathBuf,
    /// Rerun from this stage on (data, base, student-base, zero, cold-start, reasoning, sft,
    /// reward-model, rl-all, distill-seq, distill-kd, student-rl, export, eval, device, report).
    #[arg(long)]
    pub from: Option<String>,
    /// Run only this stage and the stages it needs (`--until zero`: data, base, zero).
    #[arg(long)]
    pub until: Option<String>,
    /// flex (CPU), wgpu or vulkan, for every training stage.
    #[arg(long)]
    pub device: Option<String>,
    #[arg(long)]
    pub precision: Option<String>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print the resolved settings as TOML and stop.
    #[arg(long)]
    pub print_config: bool,
}

pub fn pipeline(a: &PipelineArgs) -> Result<()> {
    let mut config = match &a.config {
        Some(path) => PipelineConfig::from_toml_file(path)?,
        None => PipelineConfig::default(),
    };
    if let Some(d) = &a.device {
        config.device = d.clone();
    }
    if let Some(p) = &a.precision {
        config.precision = p.clone();
    }
    if let Some(s) = a.seed {
        config.seed = s;
    }
    if a.print_config {
        print!("{}", toml::to_string(&config)?);
        return Ok(());
    }
    // A test hook: stop a stage after N steps, as a kill would (`STAGE:N`).
    let stop = match std::env::var("AHA_PIPELINE_STOP") {
        Ok(v) => match v.split_once(':').and_then(|(s, n)| Some((s.to_string(), n.parse().ok()?))) {
            Some(stop) => Some(stop),
            None => bail!("AHA_PIPELINE_STOP={v}: expected STAGE:STEPS"),
        },
        Err(_) => None,
    };
    let job = PipelineJob { config, out: a.out.clone(), from: a.from.clone(), until: a.until.clone(), stop, progress: true };
    let outcomes = pipeline::pipeline(&job)?;
    let count = |o: Outcome| outcomes.iter().filter(|(_, x)| *x == o).count();
    let report = match a.until.as_deref() {
        Some(stage) if stage != "report" => format!("stopped after {stage} (--until)"),
        _ => format!("report in {}", a.out.join("report/report.md").display()),
    };
    eprintln!(
        "pipeline: {} stages ran, {} resumed, {} up to date; {report}",
        count(Outcome::Ran),
        count(Outcome::Resumed),
        count(Outcome::Skipped),
    );
    Ok(())
}
