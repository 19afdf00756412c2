//! `ringdet`: one binary for training, launching, evaluation and performance tools.

mod cmd;

use clap::{Parser, Subcommand};

/// Data-parallel PP-YOLOE training without Python.
#[derive(Parser)]
#[command(name = "ringdet", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show the version, the CPU, CUDA devices and the NVRTC library this binary would use.
    Info(cmd::info::Args),
    /// Compare the PP-YOLOE implementation with a PaddleDetection golden set (one row per tensor).
    Parity(cmd::parity::Args),
    /// Time one PP-YOLOE CPU training step and eval forward, with peak memory.
    PerfDetect(cmd::perf_detect::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Info(args) => cmd::info::run(args),
        Command::Parity(args) => cmd::parity::run(args),
        Command::PerfDetect(args) => cmd::perf_detect::run(args),
    }
}
