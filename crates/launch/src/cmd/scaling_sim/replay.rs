//! The replay: every rank sleeps through forward, releases the schedule's buckets at their
//! times during a backward of timed waits, and all-reduces them over the job's communicator on
//! the trainer's communication thread ([`AsyncCommunicator`]), each after a timed wait for the
//! modelled intra-host reduction. Rank 0 reports each case as a JSON line.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ringdet_collective::{AsyncCommunicator, Communicator, Element, ReduceOp, bf16};
use ringdet_detect::arch::{Arch, ModelConfig};
use serde_json::{Value, json};

use super::Args;
use super::schedule::{Schedule, StepTimes, Timing, ideal_step};

const MIB: f64 = 1024.0 * 1024.0;

/// Everything one run needs.
pub struct Sim {
    schedule: Schedule,
    timing: Timing,
    dtypes: Vec<String>,
    overlaps: Vec<bool>,
    steps: usize,
    warmup: usize,
    label: String,
    link_gbit: f64,
    model: String,
}

fn list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

impl Sim {
    /// Builds the schedule and checks the arguments.
    pub fn from_args(a: &Args) -> Result<Sim> {
        let arch = Arch::new(ModelConfig::new(a.width, a.depth).with_classes(a.classes))
            .context("the model")?;
        let mb = |v: f64, name: &str| -> Result<usize> {
            if !(v.is_finite() && v > 0.0) {
                bail!("--{name} {v}: a positive size in MiB");
            }
            Ok((v * MIB) as usize)
        };
        let schedule = Schedule::new(
            &arch,
            a.input,
            mb(a.first_bucket_mb, "first-bucket-mb")?,
            mb(a.bucket_mb, "bucket-mb")?,
        )?;
        if !(a.step_s > 0.0 && (0.0..1.0).contains(&a.forward_share)) {
            bail!("--step-s must be positive and --forward-share in [0, 1)");
        }
        let dtypes = list(&a.dtypes);
        if let Some(bad) = dtypes.iter().find(|d| *d != "f32" && *d != "bf16") {
            bail!("--dtypes: {bad:?} is not f32 or bf16");
        }
        let mut overlaps = Vec::new();
        for o in list(&a.overlap) {
            overlaps.push(match o.as_str() {
                "on" => true,
                "off" => false,
                other => bail!("--overlap: {other:?} is not on or off"),
            });
        }
        if dtypes.is_empty() || overlaps.is_empty() || a.steps == 0 {
            bail!("need at least one dtype, one overlap mode and one step");
        }
        Ok(Sim {
            schedule,
            timing: Timing {
                step: a.step_s,
                forward_share: a.forward_share,
                gpus: a.gpus,
                intra_bandwidth: a.intra_gbs * 1e9,
                slowdown: a.slowdown,
            },
            dtypes,
            overlaps,
            steps: a.steps,
            warmup: a.warmup,
            label: a.label.clone(),
            link_gbit: a.link_gbit,
            model: format!("PP-YOLOE w{} d{} {} classes", a.width, a.depth, a.classes),
        })
    }

    /// The schedule as JSON (for `--show-schedule` and the docs).
    pub fn describe(&self) -> Value {
        let t = StepTimes::new(
            &self.schedule,
            &Timing {
                slowdown: 1.0,
                ..self.timing.clone()
            },
            4,
        );
        json!({
            "model": self.model,
            "params": self.schedule.num_params,
            "f32_mib": self.schedule.num_params as f64 * 4.0 / MIB,
            "buckets": self.schedule.buckets.iter().zip(self.schedule.bytes(4)).zip(&t.intra)
                .map(|((b, bytes), intra)| json!({
                    "elements": [b.range.start, b.range.end],
                    "f32_mib": bytes as f64 / MIB,
                    "release_fraction_of_backward": b.release,
                    "intra_host_s_f32": intra,
                })).collect::<Vec<_>>(),
            "forward_s": t.forward,
            "backward_s": t.backward,
        })
    }

    /// Joins the job in the environment and runs every case; rank 0 returns (and prints) one
    /// JSON line per case, the other ranks nothing.
    pub fn run_job(&self) -> Result<Vec<String>> {
        let comm =
            Communicator::from_env().context("joining the job (run under ringdet launch)")?;
        let comm = comm.into_async();
        let mut rows = Vec::new();
        for dtype in &self.dtypes {
            for &overlap in &self.overlaps {
                let row = match dtype.as_str() {
                    "bf16" => self.case::<bf16>(&comm, overlap, 2, bf16::from_f32(0.5))?,
                    _ => self.case::<f32>(&comm, overlap, 4, 0.5f32)?,
                };
                if comm.rank() == 0 {
                    let line = row.to_string();
                    println!("{line}");
                    rows.push(line);
                }
            }
        }
        Ok(rows)
    }

    fn case<T: Element>(
        &self,
        comm: &AsyncCommunicator,
        overlap: bool,
        elem: usize,
        fill: T,
    ) -> Result<Value> {
        let times = StepTimes::new(&self.schedule, &self.timing, elem);
        let mut buffers: Vec<Option<Vec<T>>> = self
            .schedule
            .buckets
            .iter()
            .map(|b| Some(vec![fill; b.range.len()]))
            .collect();
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let load1: Option<f64> = load.split_whitespace().next().and_then(|v| v.parse().ok());
        // Start every rank's case together.
        comm.run(|c| c.barrier()).wait()?;
        let mut step_s = Vec::new();
        let mut exposed_s = Vec::new();
        for step in 0..self.warmup + self.steps {
            let t0 = Instant::now();
            sleep_until(t0 + secs(times.forward));
            let b0 = t0 + secs(times.forward);
            let mut handles = Vec::with_capacity(buffers.len());
            let mut submit = |j: usize, buffers: &mut Vec<Option<Vec<T>>>| -> Result<()> {
                let bucket = buffers[j].take().context("bucket buffer in flight")?;
                let intra = secs(times.intra[j]);
                handles.push(comm.run(move |c| {
                    std::thread::sleep(intra);
                    let mut b = bucket;
                    c.all_reduce(&mut b, ReduceOp::Avg)?;
                    Ok(b)
                }));
                Ok(())
            };
            for j in 0..buffers.len() {
                if overlap {
                    sleep_until(b0 + secs(times.releases[j]));
                    submit(j, &mut buffers)?;
                }
            }
            let backward_end = b0 + secs(times.backward);
            sleep_until(backward_end);
            if !overlap {
                for j in 0..buffers.len() {
                    submit(j, &mut buffers)?;
                }
            }
            for (j, h) in handles.into_iter().enumerate() {
                buffers[j] = Some(h.wait()?);
            }
            let end = Instant::now();
            if step >= self.warmup {
                step_s.push((end - t0).as_secs_f64());
                exposed_s.push(end.saturating_duration_since(backward_end).as_secs_f64());
            }
        }
        let k = self.timing.slowdown;
        let compute = times.forward + times.backward;
        let mut sorted = step_s.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        let exposed = exposed_s.iter().sum::<f64>() / exposed_s.len() as f64;
        let bytes: usize = self.schedule.bytes(elem).iter().sum();
        let model = ideal_step(
            &times,
            &self.schedule.bytes(elem),
            comm.world_size(),
            self.link_gbit * 1e9 / 8.0 / k,
            overlap,
        );
        Ok(json!({
            "kind": "scaling-sim",
            "label": self.label,
            "model": self.model,
            "hosts": comm.world_size(),
            "gpus_per_host": self.timing.gpus,
            "link_gbit": self.link_gbit,
            "shaped_gbit": self.link_gbit / k,
            "slowdown": k,
            "dtype": if elem == 2 { "bf16" } else { "f32" },
            "overlap": overlap,
            "buckets": self.schedule.buckets.len(),
            "grad_mib": bytes as f64 / MIB,
            "compute_s": compute / k,
            "step_s": median / k,
            "exposed_s": exposed / k,
            "efficiency": compute / median,
            "model_step_s": model / k,
            "model_efficiency": compute / model,
            "steps_s": step_s.iter().map(|s| s / k).collect::<Vec<_>>(),
            "load1": load1,
        }))
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}
