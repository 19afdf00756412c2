//! `ringdet perf-detect --device cuda[:N] [--amp]`: the same training step (forward, assigner,
//! loss, backward, SGD) with the network, its backward and SGD on a CUDA device, the assigner
//! and losses on the host (logits down, their gradients up, once a step); and the evaluation
//! forward up to the logits on the host. Times are wall-clock with the stream drained after
//! every iteration; memory is the device's used bytes (`cuMemGetInfo`) at the end.

use std::time::Instant;

use anyhow::{Context, anyhow};
use ringdet_detect::arch::Arch;
use ringdet_detect::cross_replica::SingleReplica;
use ringdet_detect::detector::eval_logits_on;
use ringdet_detect::model::Feat;
use ringdet_detect::state::ModelState;
use ringdet_detect::step::{StepBuffers, StepLinks, TrainSettings, forward_backward_on};
use ringdet_detect::synthetic::SyntheticBatch;
use ringdet_detect::train::sgd::Sgd;
use ringdet_kernels::Cuda;
use ringdet_kernels::backend::{Buffers, OptimOps};
use ringdet_kernels::conv::cuda::ConvMath;
use ringdet_kernels::optimizer::SgdParams;
use ringdet_kernels::runtime::KernelRuntime;
use serde_json::{Value, json};

use super::median;

/// The device backend of `--device cuda:N`, with bf16 tensor-core convs under `--amp`; a clear
/// error (naming the flag and the cause) where there is no usable GPU.
pub fn backend(ordinal: usize, amp: bool) -> anyhow::Result<Cuda> {
    let rt = KernelRuntime::get(ordinal)
        .map_err(|e| anyhow!("--device cuda:{ordinal}: no usable CUDA device: {e}"))?;
    let math = if amp {
        ConvMath::Bf16TensorCore
    } else {
        ConvMath::F32
    };
    Ok(Cuda::new(rt).with_conv_math(math))
}

fn k(what: &'static str) -> impl Fn(ringdet_kernels::KernelError) -> anyhow::Error {
    move |e| anyhow!("{what}: {e}")
}

/// What the device run measured, as the JSON `perf-detect --json` prints.
pub struct DeviceRun<'a> {
    pub arch: &'a Arch,
    pub state: &'a ModelState,
    pub data: &'a SyntheticBatch,
    pub eval_image: Option<&'a Feat>,
    pub epoch: usize,
    pub warmup: usize,
    pub iters: usize,
}

/// Times `iters` training steps (after `warmup`) and as many eval forwards on `be`.
pub fn run(be: &Cuda, r: &DeviceRun) -> anyhow::Result<Value> {
    let layout = &r.state.layout;
    let mut params = be.upload(&r.state.params).map_err(k("upload parameters"))?;
    let mut stats = be.upload(&r.state.stats).map_err(k("upload statistics"))?;
    let mut grads = be.zeros(r.state.grads.len()).map_err(k("gradients"))?;
    let sgd = Sgd::ppyoloe(layout);
    let mut velocity = be.zeros(sgd.velocity.len()).map_err(k("velocity"))?;
    let mask = be.upload_mask(&sgd.decay_mask).map_err(k("decay mask"))?;
    let i = &r.data.image;
    let settings = TrainSettings::default();
    let mut times = Vec::new();
    let mut first = None;
    for it in 0..r.warmup + r.iters {
        let t = Instant::now();
        // The loader's batch goes up every step, as in training.
        let image = i.upload_to(be)?;
        be.fill_zero(&mut grads).map_err(k("zero gradients"))?;
        let batch = r.data.train_batch().with_image(&image);
        let bufs = StepBuffers {
            layout,
            params: &params,
            stats: &mut stats,
            grads: &mut grads,
        };
        let links = StepLinks {
            bn: &SingleReplica,
            normalizer: &SingleReplica,
            grads: None,
        };
        let out = forward_backward_on(be, r.arch, bufs, &batch, r.epoch, &settings, links)
            .context("training step on the device")?;
        be.sgd_momentum_step(
            Cuda::view_mut(&mut params),
            Cuda::view_mut(&mut velocity),
            Cuda::view(&grads),
            &mask,
            &SgdParams::ppyoloe(1e-4),
        )
        .map_err(k("SGD step"))?;
        be.synchronize().map_err(k("synchronize"))?;
        if it >= r.warmup {
            times.push(t.elapsed().as_secs_f64());
        }
        if it == 0 {
            first = Some((out.losses.loss, out.losses.num_pos));
        }
    }
    let (m, lo, hi) = median(times);
    let n = i.n as f64;
    let mut report = json!({
        "median_s": m, "min_s": lo, "max_s": hi, "images_per_s": n / m,
    });
    if let Some((loss, pos)) = first {
        report["first_loss"] = json!(loss);
        report["first_positives"] = json!(pos);
    }
    let mut out = json!({ "train": report });
    if let Some(img) = r.eval_image {
        let image = img.upload_to(be)?;
        let mut times = Vec::new();
        for it in 0..r.warmup + r.iters {
            let t = Instant::now();
            let logits = eval_logits_on(be, r.arch, layout, &params, &stats, &image)?;
            for lv in &logits {
                be.download(&lv.cls.data).map_err(k("download logits"))?;
                be.download(&lv.reg.data).map_err(k("download logits"))?;
            }
            if it >= r.warmup {
                times.push(t.elapsed().as_secs_f64());
            }
        }
        let (m, lo, hi) = median(times);
        out["eval"] = json!({
            "input": img.h, "median_s": m, "min_s": lo, "max_s": hi,
            "note": "forward to the logits and their download; decode and NMS on the host are not timed",
        });
    }
    let (free, total) = be.memory_info().map_err(k("memory info"))?;
    out["device_memory_used_mib"] = json!((total - free) as f64 / (1 << 20) as f64);
    out["device_memory_total_mib"] = json!(total as f64 / (1 << 20) as f64);
    out["device"] = json!(be.runtime.device_name().unwrap_or_default());
    Ok(out)
}
