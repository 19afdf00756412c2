//! `ringdet infer -c CONFIG -o weights=PATH (--infer_img F | --infer_dir D) [--output_dir output]
//! [--draw_threshold 0.5] [--save_results]`, or `ringdet infer --model_dir DIR ...` for a model
//! `ringdet export` wrote: PaddleDetection's `tools/infer.py` flags. Each input gets a picture
//! with its detections drawn under the output folder with the input's file name; `--save_results`
//! writes `bbox.json` (COCO results). The work is `ringdet_train::infer`. Under `ringdet launch`
//! with several ranks, rank r takes inputs r, r + W, …, and writes `bbox.rank<r>.json`.

use std::path::PathBuf;

use anyhow::{Context, bail};
use ringdet_collective::worker_env;
use ringdet_train::Config;
use ringdet_train::infer::{InferModel, InferOptions, image_files, infer, weights_file};

/// Arguments of `ringdet infer`.
#[derive(clap::Args)]
pub struct Args {
    /// A PaddleDetection config file (its `_BASE_` includes are read too); not with --model_dir.
    #[arg(short = 'c', long = "config", required_unless_present = "model_dir")]
    config: Option<PathBuf>,
    /// Overrides, `key=value` with dotted keys; `weights=PATH` names the safetensors weights.
    #[arg(short = 'o', long = "opt", num_args = 1..)]
    overrides: Vec<String>,
    /// A folder `ringdet export` wrote (infer_cfg.yml + fused weights), instead of -c.
    #[arg(long = "model_dir", alias = "model-dir", conflicts_with = "config")]
    model_dir: Option<PathBuf>,
    /// One image file (JPEG or PNG).
    #[arg(
        long = "infer_img",
        alias = "infer-img",
        required_unless_present = "infer_dir"
    )]
    infer_img: Option<PathBuf>,
    /// A folder of images (its .jpg, .jpeg and .png files, sorted by name).
    #[arg(long = "infer_dir", alias = "infer-dir", conflicts_with = "infer_img")]
    infer_dir: Option<PathBuf>,
    /// Folder of the drawn pictures and bbox.json (created if missing).
    #[arg(long = "output_dir", alias = "output-dir", default_value = "output")]
    output_dir: PathBuf,
    /// Detections scoring below this are not drawn.
    #[arg(
        long = "draw_threshold",
        alias = "draw-threshold",
        default_value_t = 0.5
    )]
    draw_threshold: f32,
    /// Draw and write the pictures (PaddleDetection's `--visualize`; `False` writes only bbox.json).
    #[arg(long, value_name = "BOOL", default_value = "True", value_parser = parse_bool, action = clap::ArgAction::Set)]
    visualize: bool,
    /// A COCO instances file whose image ids (by file name) and category ids bbox.json uses
    /// (default: TestDataset.anno_path of the config; with --model_dir: the input's index).
    #[arg(long = "anno_path", alias = "anno-path", value_name = "FILE")]
    anno_path: Option<PathBuf>,
    /// Also write every detection to OUTPUT_DIR/bbox.json (COCO results format).
    #[arg(long = "save_results", alias = "save-results")]
    save_results: bool,
}

/// `True`/`False` as PaddleDetection's `ast.literal_eval` flags take them (any case, or 1/0).
fn parse_bool(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(format!("{s:?} is not True or False")),
    }
}

/// Loads the model, runs it on the inputs and prints the throughput.
pub fn run(args: Args) -> anyhow::Result<()> {
    let mut model = match (&args.model_dir, &args.config) {
        (Some(dir), _) => InferModel::from_model_dir(dir)?,
        (None, Some(path)) => {
            let mut config = Config::load(path)?;
            config.apply_overrides(&args.overrides)?;
            let weights = config
                .string("weights")
                .context("no weights to run: pass -o weights=PATH")?;
            let weights = weights_file(&weights)
                .with_context(|| format!("weights set in {}", config.origin("weights")))?;
            InferModel::from_config(&config, &weights)?
        }
        (None, None) => bail!("give -c CONFIG -o weights=PATH or --model_dir DIR"),
    };
    if let Some(anno) = &args.anno_path {
        model.use_annotations(anno)?;
    }
    if !(0.0..=1.0).contains(&args.draw_threshold) {
        bail!(
            "--draw_threshold {} is not a score in 0..=1",
            args.draw_threshold
        );
    }
    let mut images = image_files(args.infer_img.as_deref(), args.infer_dir.as_deref())?;
    let env = worker_env::from_env().context("reading the rank variables")?;
    let (rank, world_size) = env.map_or((0, 1), |e| (e.rank, e.world_size.max(1)));
    if world_size > 1 {
        images = images.into_iter().skip(rank).step_by(world_size).collect();
    }
    tracing::info!(
        images = images.len(),
        labels = %model.labels_from,
        fused = model.fused.is_some(),
        "inferring"
    );
    let mut options = InferOptions::new(&args.output_dir);
    options.draw_threshold = args.draw_threshold;
    options.save_results = args.save_results;
    options.draw = args.visualize;
    if !args.visualize && !args.save_results {
        bail!("--visualize False without --save_results would write nothing");
    }
    if world_size > 1 {
        // Each rank its own file: ranks sharing the folder never write the same name.
        options.results_name = format!("bbox.rank{rank}.json");
    }
    let report = infer(&model, &images, &options)?;
    if let Some(bbox) = &report.bbox_json {
        eprintln!(
            "infer: {} detections written to {}",
            report.detections.len(),
            bbox.display()
        );
    }
    eprintln!(
        "infer: {} pictures written to {}",
        report.pictures.len(),
        args.output_dir.display()
    );
    println!("{}", report.timing_line());
    Ok(())
}
