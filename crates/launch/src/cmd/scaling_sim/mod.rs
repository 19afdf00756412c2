//! `ringdet scaling-sim`: replays the trainer's gradient communication of one PP-YOLOE step with
//! compute replaced by timed waits, across the hosts of a job (`ringdet launch --ips`, e.g. the
//! namespace hosts of `scripts/netns-cluster.sh`), each host standing for an 8-GPU machine.
//! The schedule is [`schedule`]'s (the trainer's buckets, released as backward finishes them);
//! [`replay`] runs it over the async communicator the trainer uses. `--plot` draws the
//! efficiency figure from a results file instead. docs/scaling.md describes the model.

pub mod plot;
pub mod replay;
pub mod schedule;

use anyhow::{Context, Result, bail};
use std::path::PathBuf;

/// Arguments of `ringdet scaling-sim`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Model width multiplier (PP-YOLOE-s: 0.5).
    #[arg(long, default_value_t = 0.5)]
    pub width: f64,
    /// Model depth multiplier (PP-YOLOE-s: 0.33).
    #[arg(long, default_value_t = 0.33)]
    pub depth: f64,
    /// Classes of the head.
    #[arg(long, default_value_t = 80)]
    pub classes: usize,
    /// Training input size in pixels per side (for the step trace's FLOPs per layer).
    #[arg(long, default_value_t = 640)]
    pub input: usize,
    /// Bucket size in MiB (the trainer's `bucket_mb`).
    #[arg(long, default_value_t = 25.0)]
    pub bucket_mb: f64,
    /// First bucket's size in MiB (the trainer's `first_bucket_mb`).
    #[arg(long, default_value_t = 1.0)]
    pub first_bucket_mb: f64,
    /// Compute time of one step in seconds, forward + backward (V100, 8 images per GPU: 0.26;
    /// H100-speed: 0.26/6).
    #[arg(long, default_value_t = 0.26)]
    pub step_s: f64,
    /// Forward's share of the step's compute (backward gets the rest).
    #[arg(long, default_value_t = 1.0 / 3.0)]
    pub forward_share: f64,
    /// GPUs each host stands for.
    #[arg(long, default_value_t = 8)]
    pub gpus: usize,
    /// Intra-host reduction bandwidth in GB/s (NVLink-class: 100).
    #[arg(long, default_value_t = 100.0)]
    pub intra_gbs: f64,
    /// Multiplies every compute and intra-host wait; the links must be shaped to the nominal
    /// rate divided by the same factor (scripts/scaling-sim.sh does), so every ratio is kept.
    #[arg(long, default_value_t = 1.0)]
    pub slowdown: f64,
    /// The nominal link rate in Gbit/s these hosts stand for (recorded in the results; the
    /// shaped rate is this divided by --slowdown).
    #[arg(long, default_value_t = 10.0)]
    pub link_gbit: f64,
    /// Gradient types to run, comma-separated: f32, bf16.
    #[arg(long, default_value = "f32,bf16")]
    pub dtypes: String,
    /// Overlap modes to run, comma-separated: on (buckets queued as backward finishes them),
    /// off (queued after backward).
    #[arg(long, default_value = "on,off")]
    pub overlap: String,
    /// Measured steps per case.
    #[arg(long, default_value_t = 3)]
    pub steps: usize,
    /// Unmeasured steps before them.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// A label recorded with each result (e.g. v100, h100).
    #[arg(long, default_value = "v100")]
    pub label: String,
    /// Rank 0 appends one JSON line per case to this file (always also printed).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the schedule (buckets, bytes, release fractions) and exit; needs no job.
    #[arg(long)]
    pub show_schedule: bool,
    /// Draw docs/scaling's figure from this results file (JSON lines) instead of running.
    #[arg(long, value_name = "RESULTS")]
    pub plot: Option<PathBuf>,
    /// Where --plot writes the PNG.
    #[arg(long, default_value = "docs/scaling/efficiency.png")]
    pub plot_out: PathBuf,
}

/// Runs the simulation as one rank of the job in the environment, or prints the schedule, or
/// draws the plot.
pub fn run(args: Args) -> Result<()> {
    if let Some(results) = &args.plot {
        plot::draw(results, &args.plot_out)?;
        println!("wrote {}", args.plot_out.display());
        return Ok(());
    }
    let sim = replay::Sim::from_args(&args)?;
    if args.show_schedule {
        println!("{}", serde_json::to_string_pretty(&sim.describe())?);
        return Ok(());
    }
    if !(args.slowdown >= 1.0 && args.slowdown.is_finite()) {
        bail!("--slowdown {}: must be at least 1", args.slowdown);
    }
    let rows = sim.run_job().context("scaling-sim")?;
    if let Some(out) = &args.out {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(out)
            .with_context(|| format!("--out {}", out.display()))?;
        for row in &rows {
            writeln!(f, "{row}").with_context(|| format!("--out {}", out.display()))?;
        }
    }
    Ok(())
}
