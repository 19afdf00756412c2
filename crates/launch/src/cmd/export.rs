//! `ringdet export -c CONFIG -o weights=PATH [--output_dir output_inference]`: the model with
//! every RepVGG block fused, as safetensors, and `infer_cfg.yml`, in `OUTPUT_DIR/<config name>/`
//! (PaddleDetection's `tools/export_model.py`; `ringdet launch ... tools/export_model.py` maps
//! here). `ringdet infer --model_dir` runs it. The work is `ringdet_train::infer::export`.

use std::path::PathBuf;

use anyhow::Context;
use ringdet_train::Config;
use ringdet_train::infer::{export, weights_file};

/// Arguments of `ringdet export`.
#[derive(clap::Args)]
pub struct Args {
    /// A PaddleDetection config file (its `_BASE_` includes are read too).
    #[arg(short = 'c', long = "config")]
    config: PathBuf,
    /// Overrides, `key=value` with dotted keys; `weights=PATH` names the safetensors weights.
    #[arg(short = 'o', long = "opt", num_args = 1..)]
    overrides: Vec<String>,
    /// Parent folder of the exported model folder.
    #[arg(
        long = "output_dir",
        alias = "output-dir",
        default_value = "output_inference"
    )]
    output_dir: PathBuf,
}

/// Exports and prints where.
pub fn run(args: Args) -> anyhow::Result<()> {
    let mut config = Config::load(&args.config)?;
    config.apply_overrides(&args.overrides)?;
    let weights = config
        .string("weights")
        .context("no weights to export: pass -o weights=PATH")?;
    let weights = weights_file(&weights)
        .with_context(|| format!("weights set in {}", config.origin("weights")))?;
    let name = args
        .config
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .context("the config path has no file name")?;
    let report = export(&config, &name, &weights, &args.output_dir)?;
    println!(
        "export: {} ({} RepVGG blocks fused, {} tensors) and {} written to {}",
        report.weights.display(),
        report.fused_blocks,
        report.tensors,
        report
            .infer_cfg
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        report.dir.display()
    );
    Ok(())
}
