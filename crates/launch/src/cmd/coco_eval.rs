//! `ringdet coco-eval GT_JSON DT_JSON`: pycocotools-exact bbox evaluation of a COCO results file.

use anyhow::Context;
use ringdet_coco::eval::STAT_NAMES;
use ringdet_coco::{Instances, UnknownImages, evaluate, load_detections};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `ringdet coco-eval`.
#[derive(clap::Args)]
pub struct Args {
    /// Ground truth: a COCO instances file (e.g. instances_val2017.json).
    pub gt_json: PathBuf,
    /// Detections: a COCO results list `[{"image_id", "category_id", "bbox", "score"}, ...]`.
    pub dt_json: PathBuf,
    /// Print one JSON object `{"stats": [12 numbers], "per_category_ap": {"<id>": AP or -1}}`
    /// instead of the 12-line summary.
    #[arg(long)]
    pub json: bool,
    /// Drop detections on image ids absent from the ground truth (with a warning) instead of failing.
    #[arg(long)]
    pub drop_unknown: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let start = Instant::now();
    // The two files load at the same time; each also parses its large arrays in parallel.
    let (gt, dt) = std::thread::scope(|s| {
        let gt = s.spawn(|| Instances::load(&args.gt_json));
        let dt = load_detections(&args.dt_json);
        let gt = gt
            .join()
            .map_err(|_| anyhow::anyhow!("ground-truth loader panicked"));
        (gt, dt)
    });
    let gt = gt?.context("reading the ground truth")?;
    let dt = dt.context("reading the detections")?;
    eprintln!(
        "coco-eval: loaded {} images, {} annotations, {} categories and {} detections in {:.3} s",
        gt.images.len(),
        gt.annotations.len(),
        gt.categories.len(),
        dt.len(),
        start.elapsed().as_secs_f64()
    );
    let policy = if args.drop_unknown {
        UnknownImages::Drop
    } else {
        UnknownImages::Error
    };
    let eval_start = Instant::now();
    let evaluation = evaluate(&gt, &dt, policy).map_err(|e| {
        anyhow::anyhow!(
            "{}: {e} (pass --drop-unknown to drop them)",
            args.dt_json.display()
        )
    })?;
    if evaluation.dropped_detections() > 0 {
        eprintln!(
            "coco-eval: warning: dropped {} detection(s) on image ids absent from {}",
            evaluation.dropped_detections(),
            args.gt_json.display()
        );
    }
    let stats = evaluation.stats();
    eprintln!(
        "coco-eval: evaluated in {:.3} s (total {:.3} s)",
        eval_start.elapsed().as_secs_f64(),
        start.elapsed().as_secs_f64()
    );
    if args.json {
        let mut out = String::from("{\"stats\": [");
        for (i, v) in stats.iter().enumerate() {
            let sep = if i > 0 { ", " } else { "" };
            write!(out, "{sep}{v}")?;
        }
        out.push_str("], \"per_category_ap\": {");
        for (i, (id, ap)) in evaluation.per_category_ap().iter().enumerate() {
            let sep = if i > 0 { ", " } else { "" };
            write!(out, "{sep}\"{id}\": {ap}")?;
        }
        out.push_str("}}");
        println!("{out}");
    } else {
        print!("{}", evaluation.summary());
        debug_assert_eq!(STAT_NAMES.len(), stats.len());
    }
    Ok(())
}
