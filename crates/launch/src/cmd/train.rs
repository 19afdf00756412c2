//! `ringdet train -c CONFIG [-o key=value ...]`: PaddleDetection's `tools/train.py` flags; the
//! loop is `ringdet_train::trainer` (checkpoints, `-r`, `--eval`). Flags that change nothing in this build say so in one line.

use std::path::PathBuf;

use ringdet_train::trainer::{TrainOptions, train};

/// Arguments of `ringdet train` (PaddleDetection's `tools/train.py`).
#[derive(clap::Args)]
pub struct Args {
    /// A PaddleDetection config file (its `_BASE_` includes are read too).
    #[arg(short = 'c', long = "config")]
    config: PathBuf,
    /// Overrides, `key=value` with dotted keys (`-o epoch=2 TrainReader.batch_size=4`).
    #[arg(short = 'o', long = "opt", num_args = 1..)]
    overrides: Vec<String>,
    /// Evaluate with the EMA weights at every snapshot epoch and after the last; keeps
    /// `best_model`.
    #[arg(long)]
    eval: bool,
    /// Resume from a checkpoint: `output/<config name>/<name>` (`0`, `model_final`, …), ringdet's
    /// own or PaddleDetection's (`<name>.pdparams` + `.pdopt` [+ `.pdema`]).
    #[arg(short = 'r', long = "resume")]
    resume: Option<PathBuf>,
    /// Mixed precision (the CPU trainer runs in f32).
    #[arg(long)]
    amp: bool,
    /// Per-class AP during evaluation.
    #[arg(long)]
    classwise: bool,
    /// VisualDL logging.
    #[arg(long = "use_vdl", alias = "use-vdl", num_args = 0..=1, default_missing_value = "true")]
    use_vdl: Option<String>,
    /// VisualDL log directory.
    #[arg(long = "vdl_log_dir", alias = "vdl-log-dir")]
    vdl_log_dir: Option<PathBuf>,
    /// Fleet (collective) mode: ranks come from the worker environment whatever this says.
    #[arg(long)]
    fleet: bool,
    /// Continuous-evaluation mode.
    #[arg(long = "enable_ce", alias = "enable-ce", num_args = 0..=1, default_missing_value = "true")]
    enable_ce: Option<String>,
    /// Save only predictions during evaluation.
    #[arg(long = "save_prediction_only", alias = "save-prediction-only")]
    save_prediction_only: bool,
    /// Use the linear-scaling LR (global batch / (8 × batch_size) × base_lr).
    #[arg(long = "scale_lr", alias = "scale-lr")]
    scale_lr: bool,
    /// Every N steps compare a hash of each rank's weights, BN statistics and optimizer state
    /// across the ranks; on a difference every rank stops, naming the rank and the step.
    #[arg(long = "check_replicas", alias = "check-replicas", value_name = "N")]
    check_replicas: Option<usize>,
}

/// Trains.
pub fn run(args: Args) -> anyhow::Result<()> {
    let rank0 = ringdet_collective::worker_env::from_env()
        .ok()
        .flatten()
        .is_none_or(|e| e.rank == 0);
    let mut notes = Vec::new();
    if args.classwise && !args.eval {
        notes.push("--classwise applies to evaluation during training (--eval); ignored");
    }
    if args.save_prediction_only {
        notes.push(
            "--save_prediction_only: evaluation during training writes no predictions; ignored",
        );
    }
    if args.use_vdl.is_some() || args.vdl_log_dir.is_some() {
        notes.push("--use_vdl / --vdl_log_dir: no VisualDL here; metrics go to metrics.jsonl in the output folder");
    }
    if args.fleet {
        notes.push(
            "--fleet: ranks come from the worker environment (ringdet launch); nothing to switch",
        );
    }
    if args.enable_ce.is_some() {
        notes.push("--enable_ce: ignored");
    }
    if rank0 {
        for n in notes {
            println!("{n}");
        }
    }
    train(&TrainOptions {
        config: args.config,
        overrides: args.overrides,
        scale_lr: args.scale_lr,
        resume: args.resume,
        eval: args.eval,
        classwise: args.classwise,
        amp: args.amp,
        check_replicas: args.check_replicas,
    })?;
    Ok(())
}
