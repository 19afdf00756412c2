//! `ringdet`: one binary for training, launching, evaluation and performance tools. Each
//! subcommand is a thin layer over a library (`ringdet_launch`, `ringdet_train`, the collective,
//! COCO and detector crates); this file parses the command line, installs the log subscriber and
//! prints a failed command's error: its message and each distinct cause once, never a backtrace
//! (anyhow records one when RUST_BACKTRACE is set; panics keep theirs).

mod cmd;
mod logging;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Data-parallel PP-YOLOE training without Python.
#[derive(Parser)]
#[command(name = "ringdet", version, about, long_about = None)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train PP-YOLOE-s on a synthetic shapes dataset on 2 CPU ranks, offline: the main job in one command.
    Demo(cmd::demo::Args),
    /// Show the version, the CPU, CUDA devices and the NVRTC library this binary would use.
    Info(cmd::info::Args),
    /// Print a PaddleDetection config merged with its _BASE_ files and -o overrides.
    Config(cmd::config::Args),
    /// Train PP-YOLOE from a PaddleDetection config (PaddleDetection's tools/train.py flags).
    Train(cmd::train::Args),
    /// Start one worker per device on this host, in step with the other hosts' launchers.
    Launch(cmd::launch::Args),
    /// All-reduce bandwidth and latency per message size (like nccl-tests' all_reduce_perf).
    AllreducePerf(cmd::allreduce_perf::Args),
    /// Replay the trainer's gradient communication with compute as timed waits (docs/scaling.md).
    ScalingSim(cmd::scaling_sim::Args),
    /// The switch of scripts/netns-cluster.sh for --delay/--loss without netem (TUN relay).
    #[command(hide = true)]
    NetsimRelay(cmd::netsim_relay::Args),
    /// Write a synthetic detection dataset (JPEG images + COCO instances JSON).
    MakeDataset(cmd::make_dataset::Args),
    /// Evaluate COCO bbox detections exactly as pycocotools' COCOeval (12 stats, per-category AP).
    CocoEval(cmd::coco_eval::Args),
    /// Convert weights between Paddle's .pdparams and safetensors (same names, bit for bit).
    Convert(cmd::convert::Args),
    /// Evaluate a model on the config's EvalDataset (COCO bbox), alone or under `ringdet launch`.
    Eval(cmd::eval::Args),
    /// Run a model on image files and draw its detections (PaddleDetection's tools/infer.py flags).
    Infer(cmd::infer::Args),
    /// Export a model with its RepVGG blocks fused, plus infer_cfg.yml (tools/export_model.py).
    #[command(alias = "export_model")]
    Export(cmd::export::Args),
    /// Compare the PP-YOLOE implementation with a PaddleDetection golden set (one row per tensor).
    Parity(cmd::parity::Args),
    /// Time one PP-YOLOE CPU training step and eval forward, with peak memory.
    PerfDetect(cmd::perf_detect::Args),
    /// Draw the curves PNG (losses, learning rate, mAP per eval) from a metrics.jsonl.
    Plot(cmd::plot::Args),
}

fn main() -> ExitCode {
    logging::install();
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ringdet: error: {}", error_chain(&error));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes joined by `: `, leaving out a cause whose text the message before it
/// already carries (errors that format their source into their own message and also chain it).
fn error_chain(error: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if parts
            .last()
            .is_none_or(|previous| !previous.contains(&text))
        {
            parts.push(text);
        }
    }
    parts.join(": ")
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Demo(args) => cmd::demo::run(args),
        Command::Info(args) => cmd::info::run(args),
        Command::Train(args) => cmd::train::run(args),
        Command::Config(args) => cmd::config::run(args),
        Command::Launch(args) => cmd::launch::run(args),
        Command::AllreducePerf(args) => cmd::allreduce_perf::run(args),
        Command::ScalingSim(args) => cmd::scaling_sim::run(args),
        Command::NetsimRelay(args) => cmd::netsim_relay::run(args),
        Command::MakeDataset(args) => cmd::make_dataset::run(args),
        Command::CocoEval(args) => cmd::coco_eval::run(args),
        Command::Convert(args) => cmd::convert::run(args),
        Command::Eval(args) => cmd::eval::run(args),
        Command::Infer(args) => cmd::infer::run(args),
        Command::Export(args) => cmd::export::run(args),
        Command::Parity(args) => cmd::parity::run(args),
        Command::PerfDetect(args) => cmd::perf_detect::run(args),
        Command::Plot(args) => cmd::plot::run(args),
    }
}
