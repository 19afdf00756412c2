//! `ringdet demo`: the project's main job in one offline command. In a work folder it writes
//! the demo config (and the PaddleDetection files it builds on, compiled into the binary),
//! makes the synthetic shapes dataset when it is absent, trains PP-YOLOE-s on 2 CPU ranks (on a
//! GPU with `-o use_gpu=true`) through `ringdet launch` with `--eval`, and reports the mAP it
//! reached, the curves and a few validation pictures with their detections drawn.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use ringdet_coco::synth::{ShapesConfig, instances_path, write_shapes_dataset};

/// The demo config and every file its `_BASE_` chain reads, as they are in `configs/`.
const CONFIG_FILES: [(&str, &str); 7] = [
    (
        "configs/demo/ppyoloe_shapes_demo.yml",
        include_str!("../../../../configs/demo/ppyoloe_shapes_demo.yml"),
    ),
    (
        "configs/ppyoloe/ppyoloe_crn_s_300e_coco.yml",
        include_str!("../../../../configs/ppyoloe/ppyoloe_crn_s_300e_coco.yml"),
    ),
    (
        "configs/ppyoloe/_base_/optimizer_300e.yml",
        include_str!("../../../../configs/ppyoloe/_base_/optimizer_300e.yml"),
    ),
    (
        "configs/ppyoloe/_base_/ppyoloe_crn.yml",
        include_str!("../../../../configs/ppyoloe/_base_/ppyoloe_crn.yml"),
    ),
    (
        "configs/ppyoloe/_base_/ppyoloe_reader.yml",
        include_str!("../../../../configs/ppyoloe/_base_/ppyoloe_reader.yml"),
    ),
    (
        "configs/datasets/coco_detection.yml",
        include_str!("../../../../configs/datasets/coco_detection.yml"),
    ),
    (
        "configs/runtime.yml",
        include_str!("../../../../configs/runtime.yml"),
    ),
];

/// The demo config, relative to the work folder.
const DEMO_CONFIG: &str = "configs/demo/ppyoloe_shapes_demo.yml";
/// Where the demo config reads its dataset, relative to the work folder.
const DATASET_DIR: &str = "dataset/shapes";
/// The demo dataset's smallest object (px in images of about 160 px): objects from 12 px to 70%
/// of the short side, so that a small model trained for minutes on a CPU can tell the seven
/// shapes apart (the default dataset draws them from 6 px, where a circle and a square differ by a
/// few pixels).
const DEMO_MIN_OBJECT: f64 = 12.0;
/// Validation pictures drawn after training.
const PICTURES: usize = 8;
/// The demo's goal on the shapes validation set.
const GOAL_MAP50: f64 = 0.9;

/// `ringdet demo [--workdir DIR]`.
#[derive(clap::Args)]
pub struct Args {
    /// Work folder: configs, dataset, logs and `output/` go here (created if missing).
    #[arg(long, default_value = "ringdet-demo")]
    workdir: PathBuf,
    /// Ranks to train on (processes on this machine).
    #[arg(long = "nproc_per_node", alias = "nproc-per-node", default_value_t = 2)]
    nproc_per_node: usize,
    /// Training images in the shapes dataset made when it is absent.
    #[arg(long = "train_images", alias = "train-images", default_value_t = 2000)]
    train_images: usize,
    /// Validation images in the shapes dataset made when it is absent.
    #[arg(long = "val_images", alias = "val-images", default_value_t = 200)]
    val_images: usize,
    /// First port of the job (the launcher's `--start_port`; default: its own choice).
    #[arg(long = "start_port", alias = "start-port")]
    start_port: Option<u16>,
    /// Extra `-o key=value` overrides for the demo config (e.g. `-o epoch=1` for a quick look).
    #[arg(short = 'o', long = "opt", num_args = 1.., value_name = "KEY=VALUE")]
    overrides: Vec<String>,
}

/// Runs the demo; fails when training fails (the launcher has printed why).
pub fn run(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    if args.nproc_per_node == 0 {
        bail!("--nproc_per_node must be at least 1");
    }
    let dir = &args.workdir;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the work folder {}", dir.display()))?;
    let written = write_configs(dir)?;
    if written > 0 {
        println!(
            "demo: wrote {written} config file(s) under {}",
            dir.join("configs").display()
        );
    }
    make_dataset(dir, &args)?;

    let exe = std::env::current_exe().context("cannot find this program's path")?;
    let mut cmd = Command::new(&exe);
    cmd.current_dir(dir)
        .arg("launch")
        .args(["--nproc_per_node", &args.nproc_per_node.to_string()])
        .args(["--log_dir", "log"]);
    if let Some(port) = args.start_port {
        cmd.args(["--start_port", &port.to_string()]);
    }
    cmd.args(["train", "-c", DEMO_CONFIG, "--eval"]);
    let mut overrides = args.overrides.clone();
    // The demo trains on the CPU, the reference path, unless asked for the GPU: the config's
    // runtime.yml says `use_gpu: true`, as PaddleDetection's does.
    if !overrides
        .iter()
        .any(|o| o.trim_start().starts_with("use_gpu="))
    {
        overrides.push("use_gpu=false".into());
    }
    cmd.arg("-o").args(&overrides);
    println!(
        "demo: training on {} rank(s), {}: (cd {} && ringdet launch --nproc_per_node {} --log_dir log train -c {DEMO_CONFIG} --eval -o {})",
        args.nproc_per_node,
        if overrides.iter().any(|o| o.trim() == "use_gpu=true") {
            "each on a GPU where one is visible (-o use_gpu=true)"
        } else {
            "CPU (-o use_gpu=true for a GPU)"
        },
        dir.display(),
        args.nproc_per_node,
        overrides.join(" ")
    );
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {}", exe.display()))?;
    if !status.success() {
        bail!(
            "training failed ({status}); the worker logs are in {}",
            dir.join("log").display()
        );
    }
    let out = dir.join("output").join("ppyoloe_shapes_demo");
    let stats = last_eval(&out.join("metrics.jsonl"))?;
    let pictures = draw_pictures(dir, &out, &args.overrides)?;
    let seconds = started.elapsed().as_secs_f64();
    let map50 = stats[1];
    println!(
        "demo: bbox mAP {:.3}, mAP50 {map50:.3} on {} validation images in {:.0} s ({}); \
         weights and metrics in {}",
        stats[0],
        args.val_images,
        seconds,
        if map50 >= GOAL_MAP50 {
            format!("goal mAP50 >= {GOAL_MAP50} reached")
        } else {
            format!("below the goal mAP50 >= {GOAL_MAP50}")
        },
        out.display()
    );
    println!(
        "demo: curves in {}; {} validation pictures with their detections in {}",
        out.join("curves.png").display(),
        pictures.0,
        pictures.1.display()
    );
    Ok(())
}

/// Validation pictures drawn with the detections of `best_model` (the EMA weights of the best
/// evaluation), into `out/pictures`; returns how many and where.
fn draw_pictures(dir: &Path, out: &Path, overrides: &[String]) -> anyhow::Result<(usize, PathBuf)> {
    let mut config = ringdet_train::config::Config::load(&dir.join(DEMO_CONFIG))?;
    config.apply_overrides(overrides)?;
    let mut model = ringdet_train::infer::InferModel::from_config(
        &config,
        &out.join("best_model.safetensors"),
    )?;
    model.use_annotations(
        &dir.join(DATASET_DIR)
            .join("annotations/instances_val2017.json"),
    )?;
    let mut images =
        ringdet_train::infer::image_files(None, Some(&dir.join(DATASET_DIR).join("val2017")))?;
    images.truncate(PICTURES);
    let pictures = out.join("pictures");
    let report = ringdet_train::infer::infer(
        &model,
        &images,
        &ringdet_train::infer::InferOptions::new(&pictures),
    )?;
    Ok((report.pictures.len(), pictures))
}

/// Writes the config files that are not in `dir` yet (a file already there is the user's and is
/// kept); returns how many were written.
fn write_configs(dir: &Path) -> anyhow::Result<usize> {
    let mut written = 0;
    for (rel, text) in CONFIG_FILES {
        let path = dir.join(rel);
        if path.exists() {
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        written += 1;
    }
    Ok(written)
}

/// Makes the shapes dataset unless both annotation files are already there.
fn make_dataset(dir: &Path, args: &Args) -> anyhow::Result<()> {
    let out = dir.join(DATASET_DIR);
    let config = ShapesConfig {
        out: out.clone(),
        train: args.train_images,
        val: args.val_images,
        seed: 0,
        size: 160,
        quality: 90,
        min_object: DEMO_MIN_OBJECT,
    };
    let present = ["train2017", "val2017"]
        .iter()
        .all(|split| instances_path(&out, split).is_file());
    if present {
        println!("demo: using the shapes dataset in {}", out.display());
        return Ok(());
    }
    let summary = write_shapes_dataset(&config)
        .with_context(|| format!("cannot write the shapes dataset in {}", out.display()))?;
    println!(
        "demo: wrote the shapes dataset: {} train and {} val images in {}",
        summary.images[0],
        summary.images[1],
        out.display()
    );
    Ok(())
}

/// The 12 COCO stats of the last `eval` row of a `metrics.jsonl`.
fn last_eval(path: &Path) -> anyhow::Result<Vec<f64>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut last = None;
    for (i, line) in text.lines().enumerate() {
        let row: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not JSON", path.display(), i + 1))?;
        if row["kind"] == "eval" {
            let stats: Vec<f64> = serde_json::from_value(row["stats"].clone())
                .with_context(|| format!("{}:{}: stats", path.display(), i + 1))?;
            if stats.len() != 12 {
                bail!(
                    "{}:{}: {} stats, expected 12",
                    path.display(),
                    i + 1,
                    stats.len()
                );
            }
            last = Some(stats);
        }
    }
    last.with_context(|| format!("{} has no eval row", path.display()))
}
