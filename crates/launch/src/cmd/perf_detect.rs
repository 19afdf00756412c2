//! `ringdet perf-detect`: wall-clock of one PP-YOLOE training step (forward, assigner, loss,
//! backward, SGD) and of one evaluation forward on the CPU, median of several iterations, plus the
//! process's peak resident memory — the figures set beside PaddlePaddle's `time_paddle_cpu.py`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use ringdet_detect::arch::{Arch, ModelConfig};
use ringdet_detect::cross_replica::SingleReplica;
use ringdet_detect::detector::{eval_forward, postprocess};
use ringdet_detect::init::{SeededNormal, initialize};
use ringdet_detect::nms::NmsParams;
use ringdet_detect::state::ModelState;
use ringdet_detect::step::{TrainBatch, TrainSettings, train_step};
use ringdet_detect::synthetic;
use ringdet_detect::train::sgd::Sgd;

/// Arguments of `ringdet perf-detect`.
#[derive(clap::Args)]
pub struct Args {
    /// Model size: s, m, l or x.
    #[arg(long, default_value = "s")]
    size: String,
    /// Training batch.
    #[arg(long, default_value_t = 2)]
    batch: usize,
    /// Training input side (square), a multiple of 32.
    #[arg(long, default_value_t = 320)]
    input: usize,
    /// Evaluation input side (batch 1), a multiple of 32; 0 skips the eval figure.
    #[arg(long, default_value_t = 640)]
    eval_input: usize,
    /// Epoch (below 100: ATSS, else TAL; Paddle's script times TAL).
    #[arg(long, default_value_t = 100)]
    epoch: usize,
    /// Untimed iterations first.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Timed iterations.
    #[arg(long, default_value_t = 10)]
    iters: usize,
    /// Optional weights (safetensors with PaddleDetection names); default: PaddleDetection init.
    #[arg(long)]
    weights: Option<PathBuf>,
}

fn median(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    let m = if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    };
    (
        m,
        v.first().copied().unwrap_or(f64::NAN),
        v.last().copied().unwrap_or(f64::NAN),
    )
}

fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// PP-YOLOE's largest stride: input sides must be multiples of it.
const STRIDE: usize = 32;

/// Refuses what the step cannot run, naming the flag, before any model is built.
fn check(a: &Args) -> anyhow::Result<()> {
    if a.input == 0 || !a.input.is_multiple_of(STRIDE) {
        bail!(
            "--input {}: PP-YOLOE needs a positive multiple of {STRIDE} (e.g. 320, 416, 640)",
            a.input
        );
    }
    if !a.eval_input.is_multiple_of(STRIDE) {
        bail!(
            "--eval-input {}: PP-YOLOE needs a multiple of {STRIDE} (e.g. 640), or 0 to skip the eval figure",
            a.eval_input
        );
    }
    if a.batch == 0 {
        bail!("--batch 0: at least one image per step");
    }
    if a.iters == 0 {
        bail!("--iters 0: at least one timed iteration");
    }
    if let Some(p) = &a.weights
        && p.is_dir()
    {
        bail!(
            "--weights {}: is a directory; give a safetensors file",
            p.display()
        );
    }
    Ok(())
}

pub fn run(a: Args) -> anyhow::Result<()> {
    check(&a)?;
    let arch = Arch::new(ModelConfig::by_name(&a.size)?)?;
    let mut state = ModelState::zeros(&arch)?;
    match &a.weights {
        // The library's error names the file.
        Some(p) => ringdet_detect::checkpoint::load(&mut state, p).context("--weights")?,
        None => initialize(&mut state, &mut SeededNormal::new(0)),
    }
    let classes = arch.head.num_classes;
    let data = synthetic::batch(a.batch, a.input, a.input, 3, classes, 2024);
    let batch = TrainBatch {
        image: &data.image,
        gt_boxes: &data.gt_boxes,
        gt_labels: &data.gt_labels,
        pad_mask: &data.pad_mask,
        max_boxes: data.max_boxes,
    };
    let mut sgd = Sgd::ppyoloe(&state.layout);
    let settings = TrainSettings::default();
    let threads = rayon_threads();
    let mut times = Vec::new();
    for i in 0..a.warmup + a.iters {
        let t = Instant::now();
        let out = train_step(
            &arch,
            &mut state,
            &mut sgd,
            &batch,
            a.epoch,
            1e-4,
            &settings,
            &SingleReplica,
        )?;
        let dt = t.elapsed().as_secs_f64();
        if i >= a.warmup {
            times.push(dt);
        }
        if i == 0 {
            println!(
                "first step: loss {:.4} ({} positives)",
                out.losses.loss, out.losses.num_pos
            );
        }
    }
    let (m, lo, hi) = median(times);
    println!(
        "train step  PP-YOLOE-{} batch {} {}x{}: median {m:.3} s (min {lo:.3}, max {hi:.3}), {:.2} images/s, {threads} threads",
        a.size,
        a.batch,
        a.input,
        a.input,
        a.batch as f64 / m
    );
    if a.eval_input > 0 {
        let img = synthetic::batch(1, a.eval_input, a.eval_input, 1, classes, 7).image;
        let mut times = Vec::new();
        let mut nms_times = Vec::new();
        for i in 0..a.warmup + a.iters {
            let t = Instant::now();
            let out = eval_forward(&arch, &state, &img)?;
            let dt = t.elapsed().as_secs_f64();
            let t2 = Instant::now();
            postprocess(&out, classes, &[[1.0, 1.0]], &NmsParams::default())?;
            if i >= a.warmup {
                times.push(dt);
                nms_times.push(t2.elapsed().as_secs_f64());
            }
        }
        let (m, lo, hi) = median(times);
        let (n, _, _) = median(nms_times);
        println!(
            "eval forward batch 1 {}x{}: median {m:.3} s (min {lo:.3}, max {hi:.3}) without NMS; NMS + rescale {n:.4} s",
            a.eval_input, a.eval_input
        );
    }
    if let Some(mib) = peak_rss_mib() {
        println!("peak RSS {mib:.0} MiB");
    }
    Ok(())
}

fn rayon_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
