//! `ringdet config -c FILE [-o key=value ...]`: the merged config as the trainer will see it,
//! with `--origins` to show which file set each value.

use ringdet_train::{Config, TrainRecipe};
use std::io::Write;
use std::path::PathBuf;

/// Arguments of `ringdet config`.
#[derive(clap::Args)]
pub struct Args {
    /// A PaddleDetection config file (its `_BASE_` includes are read too).
    #[arg(short = 'c', long = "config")]
    config: PathBuf,
    /// Overrides, `key=value` with dotted keys (`-o epoch=2 TrainReader.batch_size=4`).
    #[arg(short = 'o', long = "opt", num_args = 1..)]
    overrides: Vec<String>,
    /// Print every leaf key with the file or override that set it, instead of the YAML.
    #[arg(long)]
    origins: bool,
    /// Also check that the training recipe can be read from it, and print it.
    #[arg(long)]
    recipe: bool,
}

/// Prints the merged config (or its origins, or its recipe).
pub fn run(args: Args) -> anyhow::Result<()> {
    let mut cfg = Config::load(&args.config)?;
    cfg.apply_overrides(&args.overrides)?;
    let mut text = String::new();
    if args.origins {
        for (key, origin) in cfg.origins() {
            text.push_str(&format!("{key}\t{origin}\n"));
        }
    } else {
        text.push_str(&cfg.to_yaml());
    }
    if args.recipe {
        text.push_str(&format!(
            "# recipe: {:#?}\n",
            TrainRecipe::from_config(&cfg)?
        ));
    }
    // A reader that stops early (`| head`) is not an error.
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
