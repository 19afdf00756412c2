//! `ringdet plot output/<config name>/metrics.jsonl [-o out.png]`: redraws the curves PNG that
//! training writes at each snapshot (losses, learning rate, mAP per eval) from a metrics file,
//! e.g. while a run is going or after copying its file elsewhere; the drawing is
//! `ringdet_train::trainer::plots`.

use std::path::PathBuf;

use ringdet_train::trainer::plots::{CURVES_FILE, plot_metrics};

/// Arguments of `ringdet plot`.
#[derive(clap::Args)]
pub struct Args {
    /// A `metrics.jsonl` written by `ringdet train`.
    metrics: PathBuf,
    /// The PNG to write (default: `curves.png` beside the metrics file).
    #[arg(short = 'o', long = "output", value_name = "PNG")]
    output: Option<PathBuf>,
}

/// Draws the curves.
pub fn run(args: Args) -> anyhow::Result<()> {
    let out = args.output.unwrap_or_else(|| {
        args.metrics
            .parent()
            .map_or_else(|| PathBuf::from(CURVES_FILE), |d| d.join(CURVES_FILE))
    });
    let curves = plot_metrics(&args.metrics, &out)?;
    println!(
        "{}: {} training steps, {} evaluations",
        out.display(),
        curves.train_rows(),
        curves.eval_rows()
    );
    Ok(())
}
