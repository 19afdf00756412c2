//! `ringdet perf-detect`: wall-clock of one PP-YOLOE training step (forward, assigner, loss,
//! backward, SGD) and of one evaluation forward on the CPU, median of several iterations, plus the
//! process's peak resident memory — the figures set beside PaddlePaddle's `time_paddle_cpu.py`.
//! With `--profile`, also where the time goes: exclusive wall time per op family (conv passes by
//! kernel size, BN, activations, head host work, assigner, losses, SGD, allocation, …) from
//! [`ringdet_kernels::profile`], per step and per eval forward; `--json` prints it for scripts.
//! `--device cuda[:N]` runs the step on a GPU instead ([`cuda`]), `--amp` with bf16 convs.

mod cuda;

pub(crate) use cuda::backend as cuda_backend;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use ringdet_detect::arch::{Arch, ModelConfig};
use ringdet_detect::cross_replica::SingleReplica;
use ringdet_detect::detector::{eval_forward, postprocess};
use ringdet_detect::init::{SeededNormal, initialize};
use ringdet_detect::nms::NmsParams;
use ringdet_detect::state::ModelState;
use ringdet_detect::step::{TrainSettings, train_step};
use ringdet_detect::synthetic;
use ringdet_detect::train::sgd::Sgd;
use ringdet_kernels::profile::{self, FamilyTotals};
use serde_json::{Value, json};

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
    /// Also print time per op family (conv, BN, activations, head, assigner, losses, SGD, …)
    /// over the timed iterations of the step and of the eval forward.
    #[arg(long)]
    profile: bool,
    /// Print one JSON object (medians, and the profile with `--profile`) instead of text.
    #[arg(long)]
    json: bool,
    /// Where the step runs: `cpu` (the numerical reference) or `cuda` / `cuda:N` (GPU N).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// bf16 tensor-core convolutions with f32 accumulation (needs `--device cuda`); BN, losses
    /// and the weights stay f32.
    #[arg(long)]
    amp: bool,
}

/// Where `--device` says the step runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Device {
    Cpu,
    Cuda(usize),
}

fn parse_device(s: &str) -> anyhow::Result<Device> {
    match s {
        "cpu" => Ok(Device::Cpu),
        "cuda" | "gpu" => Ok(Device::Cuda(0)),
        _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => Ok(Device::Cuda(n)),
            _ => bail!("--device {s}: expected cpu, cuda or cuda:N (N a GPU number)"),
        },
    }
}

/// One row of the profile table.
struct Row {
    key: &'static str,
    ms_per_iter: f64,
    percent: f64,
    calls_per_iter: f64,
    gflops: Option<f64>,
}

/// Per-family rows over `iters` iterations that took `wall_ns` in all, plus the unattributed
/// remainder as the last row (`other`).
fn profile_rows(totals: &[FamilyTotals], wall_ns: u64, iters: usize) -> Vec<Row> {
    let it = iters.max(1) as f64;
    let wall = wall_ns.max(1) as f64;
    let mut rows: Vec<Row> = totals
        .iter()
        .filter(|t| t.calls > 0)
        .map(|t| Row {
            key: t.family.key(),
            ms_per_iter: t.nanos as f64 / it / 1e6,
            percent: 100.0 * t.nanos as f64 / wall,
            calls_per_iter: t.calls as f64 / it,
            gflops: (t.flops > 0 && t.nanos > 0).then(|| t.flops as f64 / t.nanos as f64),
        })
        .collect();
    let attributed: u64 = totals.iter().map(|t| t.nanos).sum();
    let other = wall_ns.saturating_sub(attributed);
    rows.push(Row {
        key: "other",
        ms_per_iter: other as f64 / it / 1e6,
        percent: 100.0 * other as f64 / wall,
        calls_per_iter: 0.0,
        gflops: None,
    });
    rows
}

fn print_rows(title: &str, rows: &[Row], wall_ns: u64, iters: usize) {
    println!(
        "{title}: {:.1} ms per iteration over {iters} iterations",
        wall_ns as f64 / iters.max(1) as f64 / 1e6
    );
    println!(
        "  {:<22} {:>10} {:>7} {:>8} {:>9}",
        "family", "ms/iter", "%", "calls", "GFLOP/s"
    );
    for r in rows {
        let g = r
            .gflops
            .map_or_else(|| "-".to_string(), |g| format!("{g:.1}"));
        println!(
            "  {:<22} {:>10.2} {:>6.1}% {:>8.1} {:>9}",
            r.key, r.ms_per_iter, r.percent, r.calls_per_iter, g
        );
    }
}

fn rows_json(rows: &[Row], wall_ns: u64, iters: usize) -> Value {
    let families: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "family": r.key,
                "ms_per_iter": r.ms_per_iter,
                "percent": r.percent,
                "calls_per_iter": r.calls_per_iter,
                "gflops": r.gflops,
            })
        })
        .collect();
    json!({
        "iters": iters,
        "ms_per_iter": wall_ns as f64 / iters.max(1) as f64 / 1e6,
        "families": families,
    })
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
    let device = parse_device(&a.device)?;
    if a.amp && device == Device::Cpu {
        bail!("--amp needs --device cuda: the CPU step is f32 (the numerical reference)");
    }
    if a.profile && device != Device::Cpu {
        bail!(
            "--profile times op families on the host; on a GPU use nsys (docs/gpu.md), or drop --profile"
        );
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
    let batch = data.train_batch();
    if let Device::Cuda(ordinal) = parse_device(&a.device)? {
        return run_cuda(&a, ordinal, &arch, &state, &data);
    }
    let mut sgd = Sgd::ppyoloe(&state.layout);
    let settings = TrainSettings::default();
    let threads = rayon_threads();
    let mut times = Vec::new();
    let mut first_loss = None;
    for i in 0..a.warmup + a.iters {
        if i == a.warmup && a.profile {
            profile::reset();
            profile::set_enabled(true);
        }
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
            first_loss = Some((out.losses.loss, out.losses.num_pos));
            if !a.json {
                println!(
                    "first step: loss {:.4} ({} positives)",
                    out.losses.loss, out.losses.num_pos
                );
            }
        }
    }
    profile::set_enabled(false);
    let train_total = secs_to_ns(times.iter().sum());
    let train_profile = a
        .profile
        .then(|| profile_rows(&profile::snapshot(), train_total, a.iters));
    let (m, lo, hi) = median(times);
    let mut report = json!({
        "size": a.size,
        "batch": a.batch,
        "input": a.input,
        "threads": threads,
        "train": {"median_s": m, "min_s": lo, "max_s": hi, "images_per_s": a.batch as f64 / m},
    });
    if let Some((loss, pos)) = first_loss {
        report["train"]["first_loss"] = json!(loss);
        report["train"]["first_positives"] = json!(pos);
    }
    if let Some(rows) = &train_profile {
        report["train"]["profile"] = rows_json(rows, train_total, a.iters);
    }
    if !a.json {
        println!(
            "train step  PP-YOLOE-{} batch {} {}x{}: median {m:.3} s (min {lo:.3}, max {hi:.3}), {:.2} images/s, {threads} threads",
            a.size,
            a.batch,
            a.input,
            a.input,
            a.batch as f64 / m
        );
        if let Some(rows) = &train_profile {
            print_rows("train step profile", rows, train_total, a.iters);
        }
    }
    if a.eval_input > 0 {
        let img = synthetic::batch(1, a.eval_input, a.eval_input, 1, classes, 7).image;
        let mut times = Vec::new();
        let mut nms_times = Vec::new();
        for i in 0..a.warmup + a.iters {
            if i == a.warmup && a.profile {
                profile::reset();
                profile::set_enabled(true);
            }
            let t = Instant::now();
            let out = eval_forward(&arch, &state, &img)?;
            let dt = t.elapsed().as_secs_f64();
            // NMS is outside the profiled (and timed) forward.
            profile::set_enabled(false);
            let t2 = Instant::now();
            postprocess(&out, classes, &[[1.0, 1.0]], &NmsParams::default())?;
            if i >= a.warmup {
                times.push(dt);
                nms_times.push(t2.elapsed().as_secs_f64());
            }
            profile::set_enabled(a.profile && i + 1 >= a.warmup);
        }
        profile::set_enabled(false);
        let eval_total = secs_to_ns(times.iter().sum());
        let eval_profile = a
            .profile
            .then(|| profile_rows(&profile::snapshot(), eval_total, a.iters));
        let (m, lo, hi) = median(times);
        let (n, _, _) = median(nms_times);
        report["eval"] = json!({
            "input": a.eval_input,
            "median_s": m, "min_s": lo, "max_s": hi, "nms_median_s": n,
        });
        if let Some(rows) = &eval_profile {
            report["eval"]["profile"] = rows_json(rows, eval_total, a.iters);
        }
        if !a.json {
            println!(
                "eval forward batch 1 {}x{}: median {m:.3} s (min {lo:.3}, max {hi:.3}) without NMS; NMS + rescale {n:.4} s",
                a.eval_input, a.eval_input
            );
            if let Some(rows) = &eval_profile {
                print_rows("eval forward profile", rows, eval_total, a.iters);
            }
        }
    }
    let rss = peak_rss_mib();
    if a.json {
        report["peak_rss_mib"] = json!(rss);
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if let Some(mib) = rss {
        println!("peak RSS {mib:.0} MiB");
    }
    Ok(())
}

/// `perf-detect --device cuda:N`: the step (and the eval forward) on the GPU.
fn run_cuda(
    a: &Args,
    ordinal: usize,
    arch: &Arch,
    state: &ModelState,
    data: &synthetic::SyntheticBatch,
) -> anyhow::Result<()> {
    let be = cuda::backend(ordinal, a.amp)?;
    let classes = arch.head.num_classes;
    let eval_image = (a.eval_input > 0)
        .then(|| synthetic::batch(1, a.eval_input, a.eval_input, 1, classes, 7).image);
    let run = cuda::DeviceRun {
        arch,
        state,
        data,
        eval_image: eval_image.as_ref(),
        epoch: a.epoch,
        warmup: a.warmup,
        iters: a.iters,
    };
    let mut report = cuda::run(&be, &run)?;
    report["size"] = json!(a.size);
    report["batch"] = json!(a.batch);
    report["input"] = json!(a.input);
    report["amp"] = json!(a.amp);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let t = &report["train"];
    println!(
        "train step  PP-YOLOE-{} batch {} {}x{} on {} ({}): median {:.4} s (min {:.4}, max {:.4}), {:.1} images/s",
        a.size,
        a.batch,
        a.input,
        a.input,
        report["device"].as_str().unwrap_or("cuda"),
        if a.amp { "bf16 convs" } else { "f32" },
        t["median_s"].as_f64().unwrap_or(f64::NAN),
        t["min_s"].as_f64().unwrap_or(f64::NAN),
        t["max_s"].as_f64().unwrap_or(f64::NAN),
        t["images_per_s"].as_f64().unwrap_or(f64::NAN),
    );
    if let Some(e) = report.get("eval") {
        println!(
            "eval forward batch 1 {}x{} (to the logits): median {:.4} s",
            a.eval_input,
            a.eval_input,
            e["median_s"].as_f64().unwrap_or(f64::NAN)
        );
    }
    println!(
        "device memory used {:.0} MiB of {:.0} MiB",
        report["device_memory_used_mib"]
            .as_f64()
            .unwrap_or(f64::NAN),
        report["device_memory_total_mib"]
            .as_f64()
            .unwrap_or(f64::NAN)
    );
    Ok(())
}

fn secs_to_ns(s: f64) -> u64 {
    (s * 1e9).round() as u64
}

fn rayon_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
