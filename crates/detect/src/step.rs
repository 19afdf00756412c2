//! One training forward and backward: network with batch-statistic BN (SyncBN through
//! [`CrossReplica`]), ATSS before `static_assigner_epoch` then TAL, the head loss with its
//! normaliser through the same trait, and the backward into the flat gradient buffer.
//!
//! The network runs on any [`Backend`]: the host [`Cpu`] one ([`forward_backward`]) or a
//! device's ([`forward_backward_on`], buffers of that device). The assigners and losses run on
//! the host: the head's logits come down once per step and their gradients go back up once.

use std::borrow::Cow;

use rayon::prelude::*;

use ringdet_kernels::Cpu;
use ringdet_kernels::arena::Pooled;
use ringdet_kernels::backend::{ActivationOps, Backend, Buffers};
use ringdet_kernels::profile::{Family, OpTimer};

use crate::anchors::Anchors;
use crate::arch::Arch;
use crate::assign::{Assignment, AtssParams, GroundTruth, TalParams, atss_assign, tal_assign};
use crate::boxes::Box4;
use crate::cross_replica::{CrossReplica, loss_normalizer};
use crate::decode::{DflShape, boxes_grid, dfl_level};
use crate::detector::check_image;
use crate::error::{DetectError, Result, kernel_error};
use crate::grad_sink::GradSink;
use crate::layout::ParamLayout;
use crate::loss::{LossValues, LossWeights, Predictions, head_loss};
use crate::model::{Bwd, Feat, Fwd, LevelLogits, backbone, head, neck};
use crate::state::ModelState;

/// A padded training batch (PaddleDetection's `PadGT` layout); the images on the backend the
/// step runs on (the host unless asked otherwise), the boxes on the host.
#[derive(Debug)]
pub struct TrainBatch<'a, B: Buffers<f32> = Cpu> {
    /// Normalised images `[n, 3, h, w]`.
    pub image: &'a Feat<f32, B>,
    /// `[n × max_boxes]` boxes in input pixels.
    pub gt_boxes: &'a [Box4],
    /// `[n × max_boxes]` classes.
    pub gt_labels: &'a [usize],
    /// `[n × max_boxes]` 1 real / 0 padding.
    pub pad_mask: &'a [f32],
    /// Boxes per image after padding.
    pub max_boxes: usize,
}

impl<'a> TrainBatch<'a> {
    /// The same boxes with `image`, these images on another backend.
    pub fn with_image<'b, B: Buffers<f32>>(&self, image: &'b Feat<f32, B>) -> TrainBatch<'b, B>
    where
        'a: 'b,
    {
        TrainBatch {
            image,
            gt_boxes: self.gt_boxes,
            gt_labels: self.gt_labels,
            pad_mask: self.pad_mask,
            max_boxes: self.max_boxes,
        }
    }
}

impl<B: Buffers<f32>> Clone for TrainBatch<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<B: Buffers<f32>> Copy for TrainBatch<'_, B> {}

/// Assigner and loss settings of the recipe.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainSettings {
    /// Epochs below this use ATSS, the others TAL (100 for 300e).
    pub static_assigner_epoch: usize,
    /// ATSS candidates per level.
    pub atss_topk: usize,
    /// TAL candidates.
    pub tal_topk: usize,
    /// TAL score exponent.
    pub tal_alpha: f32,
    /// TAL IoU exponent.
    pub tal_beta: f32,
    /// Loss weights.
    pub weights: LossWeights,
}

impl Default for TrainSettings {
    fn default() -> Self {
        Self {
            static_assigner_epoch: 100,
            atss_topk: 9,
            tal_topk: 13,
            tal_alpha: 1.0,
            tal_beta: 6.0,
            weights: LossWeights::default(),
        }
    }
}

/// What a training step produced besides the gradients (maps on the step's backend).
#[derive(Debug)]
pub struct StepOutputs<B: Buffers<f32> = Cpu> {
    /// Loss values.
    pub losses: LossValues,
    /// Whether ATSS (true) or TAL ran.
    pub used_atss: bool,
    /// Per-image assignments.
    pub assignments: Vec<Assignment>,
    /// Train-mode backbone features.
    pub backbone: Vec<Feat<f32, B>>,
    /// Train-mode neck features.
    pub neck: Vec<Feat<f32, B>>,
    /// Train-mode head logits.
    pub logits: Vec<LevelLogits<f32, B>>,
}

impl Clone for StepOutputs<Cpu> {
    fn clone(&self) -> Self {
        Self {
            losses: self.losses,
            used_atss: self.used_atss,
            assignments: self.assignments.clone(),
            backbone: self.backbone.clone(),
            neck: self.neck.clone(),
            logits: self.logits.clone(),
        }
    }
}

fn check_batch<B: Buffers<f32>>(b: &TrainBatch<B>) -> Result<()> {
    check_image(b.image)?;
    let want = b.image.n * b.max_boxes;
    if b.gt_boxes.len() != want || b.gt_labels.len() != want || b.pad_mask.len() != want {
        return Err(DetectError::Input(format!(
            "batch of {} images × {} boxes has {} boxes, {} labels, {} mask entries",
            b.image.n,
            b.max_boxes,
            b.gt_boxes.len(),
            b.gt_labels.len(),
            b.pad_mask.len()
        )));
    }
    Ok(())
}

/// How one step reaches the other ranks, and who hears of its gradients as they become final.
pub struct StepLinks<'a> {
    /// BN batch statistics: summed across the ranks (SyncBN) or [`SingleReplica`] (each rank's
    /// own BN).
    ///
    /// [`SingleReplica`]: crate::cross_replica::SingleReplica
    pub bn: &'a dyn CrossReplica,
    /// The loss normaliser (PP-YOLOE averages it across the ranks).
    pub normalizer: &'a dyn CrossReplica,
    /// Told of each range of the flat gradient buffer once backward has finished it (see
    /// [`crate::grad_sink`]); `None`: nobody is.
    pub grads: Option<&'a mut dyn GradSink>,
}

/// Forward, assignment, loss and backward for one batch. Gradients are **added** to `state.grads`
/// (zero them first for a fresh step); BN running statistics are updated. BN statistics and the
/// loss normaliser are both summed across `replicas`.
pub fn forward_backward(
    arch: &Arch,
    state: &mut ModelState,
    batch: &TrainBatch,
    epoch: usize,
    settings: &TrainSettings,
    replicas: &dyn CrossReplica,
) -> Result<StepOutputs> {
    let links = StepLinks {
        bn: replicas,
        normalizer: replicas,
        grads: None,
    };
    forward_backward_with(arch, state, batch, epoch, settings, links)
}

/// [`forward_backward`] with BN and the normaliser on their own links, and each range of the
/// gradient handed to `links.grads` as soon as no later backward op adds into it (the ranges come
/// front to back: the layout is in reverse execution order). The values the sink sees are the
/// final ones: the same as `state.grads` holds after the call.
pub fn forward_backward_with(
    arch: &Arch,
    state: &mut ModelState,
    batch: &TrainBatch,
    epoch: usize,
    settings: &TrainSettings,
    links: StepLinks,
) -> Result<StepOutputs> {
    let layout = std::sync::Arc::clone(&state.layout);
    let bufs = StepBuffers {
        layout: &layout,
        params: &state.params,
        stats: &mut state.stats,
        grads: &mut state.grads,
    };
    forward_backward_on(&Cpu, arch, bufs, batch, epoch, settings, links)
}

/// The model's flat buffers on the backend a step runs on, laid out by `layout`.
pub struct StepBuffers<'s, B: Buffers<f32>> {
    /// Names and ranges of every tensor.
    pub layout: &'s ParamLayout,
    /// Parameters.
    pub params: &'s B::Buf,
    /// BN running statistics (updated).
    pub stats: &'s mut B::Buf,
    /// Gradients (added to).
    pub grads: &'s mut B::Buf,
}

/// Sigmoid of host values through the host kernels.
fn host_sigmoid(x: &[f32]) -> Result<Vec<f32>> {
    let mut y = ringdet_kernels::arena::take(x.len());
    Cpu.sigmoid_forward(&mut y, x)
        .map_err(kernel_error("sigmoid_forward"))?;
    Ok(y)
}

/// One level's logits in host memory (borrowed on the host, downloaded from a device).
struct HostLevel<'l> {
    cls: Cow<'l, [f32]>,
    reg: Cow<'l, [f32]>,
    hw: usize,
}

/// [`forward_backward_with`] on any backend: `bufs` and `batch.image` live on `be`. The
/// network, its backward and the BN statistics run on `be`; the assigner and the loss on the
/// host, with the head's logits downloaded and their gradients uploaded once per step (no copy
/// at all on the host backend).
pub fn forward_backward_on<B: Backend<f32>>(
    be: &B,
    arch: &Arch,
    bufs: StepBuffers<B>,
    batch: &TrainBatch<B>,
    epoch: usize,
    settings: &TrainSettings,
    links: StepLinks,
) -> Result<StepOutputs<B>> {
    check_batch(batch)?;
    let StepLinks {
        bn: bn_replicas,
        normalizer: norm_replicas,
        grads: sink,
    } = links;
    let StepBuffers {
        layout,
        params,
        stats,
        grads: grad_buf,
    } = bufs;
    let mut ctx = Fwd::train_on(be, layout, params, stats, bn_replicas);
    let (bb, bb_cache) = backbone::forward(&mut ctx, &arch.backbone, batch.image)?;
    let (nk, nk_cache) = neck::forward(&mut ctx, &arch.neck, &bb)?;
    let (logits, head_cache) = head::forward(&mut ctx, &arch.head, &nk)?;
    let gather = OpTimer::new(Family::Head);
    let sizes: Vec<(usize, usize)> = nk.iter().map(|f| (f.h, f.w)).collect();
    let anchors = Anchors::new(&sizes, &arch.head.strides, 5.0, 0.5)?;

    let n = batch.image.n;
    let l = anchors.len();
    let c = arch.head.num_classes;
    let bins = arch.config.reg_bins();
    let host_levels = logits
        .iter()
        .map(|lv| {
            Ok(HostLevel {
                cls: be
                    .to_host(&lv.cls.data, 0..lv.cls.len())
                    .map_err(kernel_error("logits to the host"))?,
                reg: be
                    .to_host(&lv.reg.data, 0..lv.reg.len())
                    .map_err(kernel_error("logits to the host"))?,
                hw: lv.cls.hw(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    // Anchor-major predictions.
    let mut scores = Pooled::<f32>::zeroed(n * l * c);
    let mut softmax = Pooled::<f32>::zeroed(n * l * 4 * bins);
    let mut reg_logits = Pooled::<f32>::zeroed(n * l * 4 * bins);
    let mut dist = vec![[0.0f32; 4]; n * l];
    let mut offset = 0;
    // Class probabilities per level, NCHW: gathered here, and the sigmoid's backward below.
    let mut probs = Vec::with_capacity(host_levels.len());
    for lv in &host_levels {
        let hw = lv.hw;
        let p = host_sigmoid(&lv.cls)?;
        let mut sm = Pooled::<f32>::zeroed(lv.reg.len());
        let shape = DflShape {
            batch: n,
            bins,
            hw,
            total_anchors: l,
            anchor_offset: offset,
        };
        dfl_level(&lv.reg, shape, Some(&mut sm), &mut dist)?;
        // NCHW level → anchor-major rows, images in parallel (disjoint rows of each output).
        let rb = 4 * bins;
        scores
            .par_chunks_mut((l * c).max(1))
            .zip(softmax.par_chunks_mut((l * rb).max(1)))
            .zip(reg_logits.par_chunks_mut((l * rb).max(1)))
            .enumerate()
            .for_each(|(b, ((sc, so), rl))| {
                for i in 0..hw {
                    let a = offset + i;
                    for k in 0..c {
                        sc[a * c + k] = p[(b * c + k) * hw + i];
                    }
                    for j in 0..rb {
                        so[a * rb + j] = sm[(b * rb + j) * hw + i];
                        rl[a * rb + j] = lv.reg[(b * rb + j) * hw + i];
                    }
                }
            });
        probs.push(p);
        offset += hw;
    }
    let grid = boxes_grid(&anchors, &dist, n);
    drop(gather);
    let assign = OpTimer::new(Family::Assigner);
    let used_atss = epoch < settings.static_assigner_epoch;
    // Images are assigned independently: one per task on the rayon pool (the closure holds
    // only the host parts of the batch).
    let (gt_boxes, gt_labels, pad_mask, max_boxes) = (
        batch.gt_boxes,
        batch.gt_labels,
        batch.pad_mask,
        batch.max_boxes,
    );
    let assign_image = |b: usize| -> Result<Assignment> {
        let r = b * max_boxes..(b + 1) * max_boxes;
        let gt = GroundTruth {
            boxes: &gt_boxes[r.clone()],
            labels: &gt_labels[r.clone()],
            pad_mask: &pad_mask[r],
        };
        let px: Vec<Box4> = (0..l)
            .map(|a| grid[b * l + a].map(|v| v * anchors.strides[a]))
            .collect();
        let asg = if used_atss {
            atss_assign(
                &anchors,
                &gt,
                &px,
                &AtssParams {
                    topk: settings.atss_topk,
                    num_classes: c,
                },
            )?
        } else {
            let p = TalParams {
                topk: settings.tal_topk,
                alpha: settings.tal_alpha,
                beta: settings.tal_beta,
                num_classes: c,
            };
            tal_assign(&anchors, &gt, &scores[b * l * c..(b + 1) * l * c], &px, &p)?
        };
        Ok(asg)
    };
    let assignments = (0..n)
        .into_par_iter()
        .map(assign_image)
        .collect::<Result<Vec<_>>>()?;
    drop(assign);
    let loss_timer = OpTimer::new(Family::Loss);
    let local_sum: f32 = assignments.iter().map(Assignment::score_sum).sum();
    let normalizer = loss_normalizer(local_sum, norm_replicas)?;
    let pred = Predictions {
        batch: n,
        classes: c,
        bins,
        scores: &scores,
        softmax: &softmax,
        reg_logits: &reg_logits,
        boxes_grid: &grid,
    };
    let (losses, grads) = head_loss(&pred, &anchors, &assignments, normalizer, &settings.weights)?;

    drop(loss_timer);
    // Back to per-level NCHW logit gradients, on the host, then onto the backend.
    let scatter = OpTimer::new(Family::Head);
    let mut dlogits = Vec::with_capacity(logits.len());
    let mut offset = 0;
    for ((lv, hl), p) in logits.iter().zip(&host_levels).zip(probs) {
        let hw = hl.hw;
        let mut dp = Pooled::<f32>::zeroed(p.len());
        let mut dreg = Feat::zeros(lv.reg.n, lv.reg.c, lv.reg.h, lv.reg.w);
        // Anchor-major rows → NCHW level, images in parallel (disjoint planes of each output).
        let rb = 4 * bins;
        dp.par_chunks_mut((c * hw).max(1))
            .zip(dreg.data.par_chunks_mut((rb * hw).max(1)))
            .enumerate()
            .for_each(|(b, (dpb, drb))| {
                for i in 0..hw {
                    let a = b * l + offset + i;
                    for k in 0..c {
                        dpb[k * hw + i] = grads.dscores[a * c + k];
                    }
                    for j in 0..rb {
                        drb[j * hw + i] = grads.dreg_logits[a * rb + j];
                    }
                }
            });
        let mut dcls = Feat::zeros(lv.cls.n, lv.cls.c, lv.cls.h, lv.cls.w);
        Cpu.sigmoid_backward(&mut dcls.data, &dp, &p)
            .map_err(kernel_error("sigmoid_backward"))?;
        ringdet_kernels::arena::give(p);
        dlogits.push(LevelLogits {
            cls: onto(be, dcls)?,
            reg: onto(be, dreg)?,
        });
        offset += hw;
    }
    drop(host_levels);
    drop(scatter);
    let mut bwd = Bwd::new_on(be, layout, params, grad_buf, bn_replicas);
    if let Some(sink) = sink {
        bwd = bwd.with_sink(sink);
    }
    let dneck = head::backward(&mut bwd, &arch.head, &head_cache, &dlogits)?;
    let dbb = neck::backward(&mut bwd, &arch.neck, &nk_cache, dneck)?;
    backbone::backward(&mut bwd, &arch.backbone, &bb_cache, dbb)?;
    bwd.finish()?;
    Ok(StepOutputs {
        losses,
        used_atss,
        assignments,
        backbone: bb,
        neck: nk,
        logits,
    })
}

/// [`forward_backward`] with the network on backend `be`: the state and the images go up,
/// and the gradients (added to `state.grads`), the updated BN statistics and the features come
/// back down. For parity checks of a device against the host reference, not for training (the
/// trainer keeps its state on the device, see `ringdet-train`'s `DeviceState`).
pub fn forward_backward_device<B: Backend<f32>>(
    be: &B,
    arch: &Arch,
    state: &mut ModelState,
    batch: &TrainBatch,
    epoch: usize,
    settings: &TrainSettings,
    replicas: &dyn CrossReplica,
) -> Result<StepOutputs> {
    let up = |v: &[f32]| be.upload(v).map_err(kernel_error("upload"));
    let params = up(&state.params)?;
    let mut stats = up(&state.stats)?;
    let mut grads = up(&state.grads)?;
    let image = batch.image.upload_to(be)?;
    let on_device = batch.with_image(&image);
    let links = StepLinks {
        bn: replicas,
        normalizer: replicas,
        grads: None,
    };
    let bufs = StepBuffers {
        layout: &state.layout,
        params: &params,
        stats: &mut stats,
        grads: &mut grads,
    };
    let out = forward_backward_on(be, arch, bufs, &on_device, epoch, settings, links)?;
    let down = |b: &B::Buf| be.download(b).map_err(kernel_error("download"));
    state.grads = down(&grads)?;
    state.stats = down(&stats)?;
    let feat = |f: &Feat<f32, B>| Feat::from_vec(down(&f.data)?, f.n, f.c, f.h, f.w);
    Ok(StepOutputs {
        losses: out.losses,
        used_atss: out.used_atss,
        assignments: out.assignments,
        backbone: out.backbone.iter().map(feat).collect::<Result<_>>()?,
        neck: out.neck.iter().map(feat).collect::<Result<_>>()?,
        logits: out
            .logits
            .iter()
            .map(|lv| {
                Ok(LevelLogits {
                    cls: feat(&lv.cls)?,
                    reg: feat(&lv.reg)?,
                })
            })
            .collect::<Result<_>>()?,
    })
}

/// A host map moved onto `be` (the same vector on the host, an upload on a device).
fn onto<B: Backend<f32>>(be: &B, mut f: Feat) -> Result<Feat<f32, B>> {
    let data = std::mem::take(&mut f.data);
    let buf = be
        .adopt_host(data)
        .map_err(kernel_error("gradients to the backend"))?;
    Feat::from_buf(buf, f.n, f.c, f.h, f.w)
}

/// A whole optimizer step: zero the gradients, [`forward_backward`], then SGD at `lr`.
#[allow(clippy::too_many_arguments)]
pub fn train_step(
    arch: &Arch,
    state: &mut ModelState,
    sgd: &mut crate::train::sgd::Sgd,
    batch: &TrainBatch,
    epoch: usize,
    lr: f64,
    settings: &TrainSettings,
    replicas: &dyn CrossReplica,
) -> Result<StepOutputs> {
    // on both cores: one thread writes the 31 MB of PP-YOLOE-s's gradients at half the speed
    Cpu.fill_zero(&mut state.grads)
        .map_err(kernel_error("zeroing the gradients"))?;
    let out = forward_backward(arch, state, batch, epoch, settings, replicas)?;
    sgd.step(&mut state.params, &state.grads, lr)?;
    Ok(out)
}
