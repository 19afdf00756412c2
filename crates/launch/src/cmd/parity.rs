//! `ringdet parity --golden DIR`: run evaluation and both training paths of PP-YOLOE on a directory
//! laid out like `reference/ppyoloe-golden/` and print one row per compared tensor; any FAIL makes the
//! command exit non-zero. Everything (sizes, batch, epochs, classes, NMS settings) comes from the files.

use std::path::PathBuf;

use anyhow::{Context, bail};

mod golden;

/// Where to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceArg {
    /// The CPU kernels.
    Cpu,
    /// CUDA (not available for the detector yet).
    Cuda,
}

/// Arguments of `ringdet parity`.
#[derive(clap::Args)]
pub struct Args {
    /// Directory with weights/inputs/eval/train safetensors and golden_meta.json.
    #[arg(long)]
    golden: PathBuf,
    /// Device to run on.
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    device: DeviceArg,
}

/// Every comparison of the golden directory `dir`.
pub(crate) fn run_dir(dir: &std::path::Path) -> anyhow::Result<Vec<golden::ParityRow>> {
    golden::run(dir).with_context(|| format!("parity on {}", dir.display()))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.device == DeviceArg::Cuda {
        bail!("--device cuda: the detector has no CUDA path yet; run with --device cpu");
    }
    let start = std::time::Instant::now();
    let rows = run_dir(&args.golden)?;
    println!(
        "{:<48} {:>12} {:>10}  {:<14} result",
        "tensor", "error", "tolerance", "metric"
    );
    let mut failed = 0;
    for r in &rows {
        let verdict = if r.pass() { "PASS" } else { "FAIL" };
        failed += usize::from(!r.pass());
        println!(
            "{:<48} {:>12.3e} {:>10.0e}  {:<14} {verdict}",
            r.name, r.error, r.tolerance, r.metric
        );
    }
    println!(
        "{} compared, {} passed, {failed} failed ({:.1} s, cpu)",
        rows.len(),
        rows.len() - failed,
        start.elapsed().as_secs_f64()
    );
    if failed > 0 {
        bail!("{failed} of {} comparisons failed", rows.len());
    }
    Ok(())
}
