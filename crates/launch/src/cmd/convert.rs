//! `ringdet convert IN OUT [--to safetensors|pdparams]`: weights between Paddle's `.pdparams`
//! (also `.pdema`, `.pdopt`) and safetensors, tensor for tensor under the same names, so that
//! PaddleDetection's released weights load anywhere safetensors do and a model trained here can
//! be evaluated by PaddleDetection. The direction follows `--to`, else OUT's extension, else
//! the opposite of IN's format. Entries of a Paddle file that are not tensors (scheduler
//! state, name tables) are listed and not written; tensors nested in a Paddle file's
//! containers keep their `outer/inner` names.
//!
//! `ringdet convert output/<cfg>/<name> OUT --to paddle-checkpoint -c CONFIG --paddle_names REF`
//! turns a whole ringdet checkpoint into a PaddleDetection one (`OUT.pdparams`, `OUT.pdema`,
//! `OUT.pdopt`) that PaddleDetection's `-r OUT` continues from; REF is any file `paddle.save`
//! wrote for the same model (it supplies Paddle's parameter names for the velocities).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use ringdet_tensor::{PdParams, SafeTensors, Tensor, pdparams};

/// A weights file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// safetensors.
    Safetensors,
    /// Paddle's pickled state dict (`paddle.load` reads it).
    Pdparams,
    /// A whole ringdet checkpoint (IN = `output/<cfg>/<name>`) as a PaddleDetection checkpoint
    /// (OUT.pdparams, OUT.pdema with EMA, OUT.pdopt); needs `-c` and `--paddle_names`.
    PaddleCheckpoint,
}

impl Format {
    fn of(path: &Path) -> Option<Format> {
        if pdparams::is_paddle_path(path) {
            Some(Format::Pdparams)
        } else if path.extension().is_some_and(|e| e == "safetensors") {
            Some(Format::Safetensors)
        } else {
            None
        }
    }
    fn name(self) -> &'static str {
        match self {
            Format::Safetensors => "safetensors",
            Format::Pdparams => "pdparams",
            Format::PaddleCheckpoint => "paddle-checkpoint",
        }
    }
}

/// Arguments of `ringdet convert`.
#[derive(clap::Args)]
pub struct Args {
    /// The weights to read: `.pdparams` / `.pdema` / `.pdopt`, or safetensors (any other name).
    input: PathBuf,
    /// The file to write (atomically).
    output: PathBuf,
    /// Output format; default: from OUT's extension, else the other format than IN's.
    #[arg(long)]
    to: Option<Format>,
    /// With `--to paddle-checkpoint`: the config the checkpoint was trained with.
    #[arg(short = 'c', long = "config")]
    config: Option<PathBuf>,
    /// With `--to paddle-checkpoint`: config overrides `key=value`.
    #[arg(short = 'o', long = "opt", num_args = 1..)]
    overrides: Vec<String>,
    /// With `--to paddle-checkpoint`: a file `paddle.save` wrote for the same model (a
    /// PaddleDetection checkpoint's `.pdparams`, released weights) whose
    /// `StructuredToParameterName@@` table names the velocities as Paddle does.
    #[arg(long = "paddle_names")]
    paddle_names: Option<PathBuf>,
}

fn to_paddle_checkpoint(args: &Args) -> anyhow::Result<()> {
    use ringdet_train::checkpoint::{Checkpoint, paddle};
    let config = args
        .config
        .as_ref()
        .context("--to paddle-checkpoint needs -c CONFIG (the checkpoint's model)")?;
    let names = args.paddle_names.as_ref().context(
        "--to paddle-checkpoint needs --paddle_names REF.pdparams (Paddle's parameter names)",
    )?;
    let mut cfg = ringdet_train::Config::load(config)?;
    cfg.apply_overrides(&args.overrides)?;
    let recipe = ringdet_train::TrainRecipe::from_config(&cfg)?;
    let arch = ringdet_detect::arch::Arch::new(recipe.model.clone())?;
    let ckpt = Checkpoint::from_resume_arg(&args.input)?;
    let names = PdParams::open(names)?;
    let saved = paddle::save_paddle(&ckpt, &arch, &names, &args.output)?;
    println!(
        "convert: checkpoint {} (epoch {}, step {}) -> PaddleDetection checkpoint {}: {}; {} velocities",
        args.input.display(),
        saved.epoch,
        saved.step,
        args.output.display(),
        saved
            .files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        saved.velocities
    );
    Ok(())
}

type Read = (Vec<(String, Tensor)>, Vec<pdparams::Skipped>, String);

fn read(path: &Path) -> anyhow::Result<Read> {
    if pdparams::is_paddle_path(path) {
        let file = PdParams::open(path)?;
        let what = format!("pdparams, pickle protocol {}", file.protocol());
        let skipped = file.skipped().to_vec();
        Ok((file.into_tensors(), skipped, what))
    } else {
        let file = SafeTensors::open(path)?;
        let tensors = file
            .names()
            .map(|n| Ok((n.to_string(), file.tensor(n)?)))
            .collect::<ringdet_tensor::Result<Vec<_>>>()?;
        Ok((tensors, Vec::new(), "safetensors".into()))
    }
}

/// Converts and prints what was converted (stdout) and what was left out (stderr).
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.to == Some(Format::PaddleCheckpoint) {
        return to_paddle_checkpoint(&args);
    }
    let from = Format::of(&args.input).unwrap_or(Format::Safetensors);
    let to = match (args.to, Format::of(&args.output)) {
        (Some(t), Some(o)) if t != o => bail!(
            "--to {} contradicts the extension of {}",
            t.name(),
            args.output.display()
        ),
        (Some(t), _) | (None, Some(t)) => t,
        (None, None) => match from {
            Format::Safetensors => Format::Pdparams,
            Format::Pdparams | Format::PaddleCheckpoint => Format::Safetensors,
        },
    };
    let (tensors, skipped, what) = read(&args.input)?;
    let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    match to {
        Format::Safetensors => ringdet_tensor::save(&args.output, &refs, &BTreeMap::new()),
        Format::Pdparams => pdparams::save(&args.output, &refs),
        Format::PaddleCheckpoint => bail!("--to paddle-checkpoint takes a checkpoint, not a file"),
    }
    .with_context(|| format!("writing {}", args.output.display()))?;
    let bytes: usize = tensors
        .iter()
        .map(|(_, t)| t.numel() * t.dtype().size())
        .sum();
    println!(
        "convert: {} tensors, {bytes} bytes: {} ({what}) -> {} ({})",
        tensors.len(),
        args.input.display(),
        args.output.display(),
        to.name()
    );
    if !skipped.is_empty() {
        eprintln!(
            "convert: {} entries of {} are not tensors and were not written:",
            skipped.len(),
            args.input.display()
        );
        for s in &skipped {
            eprintln!("  {}: {}", s.key, s.what);
        }
    }
    Ok(())
}
