//! `ringdet eval -c CONFIG -o weights=PATH [-o key=value ...]`: COCO bbox evaluation of a
//! model (`.pdparams` or safetensors weights) on the config's `EvalDataset`, as PaddleDetection's `tools/eval.py`. Alone it
//! evaluates every image; under `ringdet launch` each rank evaluates its shard and rank 0 the
//! gathered detections (the work is `ringdet_train::eval`). Rank 0 prints the summary (stdout;
//! stderr with `--json`, whose one stdout line is `{"stats":[12 numbers]}`), the timing
//! (stderr), and writes `bbox.json` to `--output_eval` (default: the working directory).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use ringdet_collective::{Communicator, worker_env};
use ringdet_detect::arch::Arch;
use ringdet_detect::state::ModelState;
use ringdet_train::eval::{EvalDataset, EvalSettings, evaluate};
use ringdet_train::{Config, TrainRecipe};

/// Arguments of `ringdet eval`.
#[derive(clap::Args)]
pub struct Args {
    /// A PaddleDetection config file (its `_BASE_` includes are read too).
    #[arg(short = 'c', long = "config")]
    config: PathBuf,
    /// Overrides, `key=value` with dotted keys; `weights=PATH` names the weights (`.pdparams` or
    /// safetensors).
    #[arg(short = 'o', long = "opt", num_args = 1..)]
    overrides: Vec<String>,
    /// Print exactly one line `{"stats":[12 numbers]}` on stdout (the summary goes to stderr).
    #[arg(long)]
    json: bool,
    /// Also print the per-category AP table.
    #[arg(long)]
    classwise: bool,
    /// Folder for `bbox.json` (created if missing; default: the working directory).
    #[arg(long = "output_eval", alias = "output-eval", value_name = "DIR")]
    output_eval: Option<PathBuf>,
}

/// The weights file `weights` names: the path itself, else `<path>.pdparams` or
/// `<path>.safetensors` (as PaddleDetection appends `.pdparams`); a folder or a missing file is
/// an error naming it. `.pdparams` / `.pdema` files are read directly, other names as
/// safetensors.
fn weights_file(weights: &str, origin: &str) -> anyhow::Result<PathBuf> {
    let path = PathBuf::from(weights);
    if path.is_dir() {
        bail!(
            "weights {} ({origin}) is a directory; give a .pdparams or safetensors file",
            path.display()
        );
    }
    if path.is_file() {
        return Ok(path);
    }
    if path
        .extension()
        .is_some_and(|e| e == "safetensors" || e == "pdparams" || e == "pdema")
    {
        bail!("weights {} ({origin}) does not exist", path.display());
    }
    let candidates = ["pdparams", "safetensors"].map(|e| PathBuf::from(format!("{weights}.{e}")));
    if let Some(found) = candidates.iter().find(|c| c.is_file()) {
        return Ok(found.clone());
    }
    bail!(
        "weights {} ({origin}) does not exist (nor {} or {})",
        path.display(),
        candidates[0].display(),
        candidates[1].display()
    )
}

/// Joins the job when a launcher started this process with more than one rank.
fn communicator() -> anyhow::Result<Option<Communicator>> {
    match worker_env::from_env().context("reading the rank variables")? {
        Some(env) if env.world_size > 1 => Ok(Some(
            Communicator::from_env().context("joining the evaluation job")?,
        )),
        _ => Ok(None),
    }
}

fn write_bbox_json(
    dir: &Path,
    detections: &[ringdet_coco::DetectionRecord],
) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("bbox.json");
    // Atomic: an earlier bbox.json is replaced whole or left as it was.
    ringdet_tensor::safetensors::atomic_write(&path, |out| {
        ringdet_coco::json::write_detections(out, detections)
    })?;
    Ok(path)
}

/// Evaluates and prints the outcome on rank 0.
pub fn run(args: Args) -> anyhow::Result<()> {
    let mut config = Config::load(&args.config)?;
    config.apply_overrides(&args.overrides)?;
    let weights = config
        .string("weights")
        .context("no weights to evaluate: pass -o weights=PATH")?;
    let weights = weights_file(&weights, &config.origin("weights"))?;
    let recipe = TrainRecipe::from_config(&config)?;
    let mut settings = EvalSettings::from_config(&config, &recipe)?;
    settings.progress_bar = true;
    let dataset = EvalDataset::from_config(&config)?;
    let arch = Arch::new(recipe.model.clone())?;
    let mut state = ModelState::zeros(&arch)?;
    // The loader's errors name the file.
    ringdet_detect::checkpoint::load(&mut state, &weights).context("loading the weights")?;
    let mut comm = communicator()?;
    let report = evaluate(
        &arch,
        &state,
        &dataset,
        &settings,
        comm.as_mut()
            .map(|c| c as &mut dyn ringdet_train::eval::EvalComm),
    )?;
    if report.rank != 0 {
        return Ok(());
    }
    let dir = args.output_eval.unwrap_or_else(|| PathBuf::from("."));
    let bbox = write_bbox_json(&dir, &report.detections)?;
    eprintln!(
        "eval: {} detections written to {}",
        report.detections.len(),
        bbox.display()
    );
    let mut text = report.summary().unwrap_or_default();
    if args.classwise {
        text.push_str(&report.classwise_table().unwrap_or_default());
    }
    eprintln!("{}", report.timing_line());
    if args.json {
        eprint!("{text}");
        let line = serde_json::json!({ "stats": report.stats });
        println!("{line}");
    } else {
        print!("{text}");
    }
    std::io::stdout().flush()?;
    Ok(())
}
