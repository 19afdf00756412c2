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
    /// CUDA device 0 (`CUDA_VISIBLE_DEVICES` picks it).
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
    /// With `--device cuda`: bf16 tensor-core convolutions (tolerances widen to bf16's).
    #[arg(long)]
    amp: bool,
    /// What the device is compared with: `golden` (PaddleDetection's tensors in the directory)
    /// or `cpu` (this machine's CPU on the directory's weights and inputs; reads only
    /// golden_meta.json, inputs.safetensors and weights.safetensors).
    #[arg(long, value_enum, default_value_t = Reference::Golden)]
    reference: Reference,
}

/// The reference of a parity run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Reference {
    /// PaddleDetection's golden tensors.
    Golden,
    /// The host kernels on the same weights and inputs.
    Cpu,
}

/// Every comparison of the golden directory `dir`.
pub(crate) fn run_dir(dir: &std::path::Path) -> anyhow::Result<Vec<golden::ParityRow>> {
    golden::run(dir).with_context(|| format!("parity on {}", dir.display()))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.amp && args.device == DeviceArg::Cpu {
        bail!("--amp needs --device cuda: the CPU path is f32 (the numerical reference)");
    }
    if args.reference == Reference::Cpu && args.device == DeviceArg::Cpu {
        bail!("--reference cpu compares a device with the CPU: give --device cuda");
    }
    let start = std::time::Instant::now();
    let (rows, device) = match args.device {
        DeviceArg::Cpu => (run_dir(&args.golden)?, "cpu".to_string()),
        DeviceArg::Cuda => {
            let be = super::perf_detect::cuda_backend(0, args.amp)?;
            let name = be.runtime.device_name().unwrap_or_else(|_| "cuda".into());
            let rows = match args.reference {
                Reference::Golden => golden::run_on(&args.golden, golden::On::Cuda(&be)),
                Reference::Cpu => golden::run_vs_host(&args.golden, &be),
            }
            .with_context(|| format!("parity on {}", args.golden.display()))?;
            let math = if args.amp { "bf16 convs" } else { "f32" };
            (rows, format!("{name}, {math}"))
        }
    };
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
        "{} compared, {} passed, {failed} failed ({:.1} s, {device})",
        rows.len(),
        rows.len() - failed,
        start.elapsed().as_secs_f64()
    );
    if failed > 0 {
        bail!("{failed} of {} comparisons failed", rows.len());
    }
    Ok(())
}
