//! `ringdet config -c FILE [-o key=value ...]`: the merged config as the trainer will see it,
//! with `--origins` to show which file set each value.

use crate::config::{Config, TrainRecipe};
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

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut cfg = Config::load(&args.config)?;
    cfg.apply_overrides(&args.overrides)?;
    if args.origins {
        for (key, origin) in cfg.origins() {
            println!("{key}\t{origin}");
        }
    } else {
        print!("{}", cfg.to_yaml());
    }
    if args.recipe {
        println!("# recipe: {:#?}", TrainRecipe::from_config(&cfg)?);
    }
    Ok(())
}
