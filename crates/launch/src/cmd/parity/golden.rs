//! Parity against a directory laid out like `reference/ppyoloe-golden/` (the tool behind
//! `ringdet parity`, built on `ringdet-detect`'s public API only): evaluation (backbone, neck,
//! head, DFL, decoded boxes, NMS as sets) and both training paths (intermediates, losses,
//! assignments, gradients). Sizes, batch, epochs, class count, multipliers and NMS settings all come
//! from the files; only the tolerances (the golden README's) are fixed here. The network runs on
//! the host or on a CUDA device ([`On`]); with bf16 convolutions (`--amp`) every relative
//! tolerance widens to [`BF16_REL`] and the exact assignment rows allow 1 % mismatches.

use std::path::Path;

use ringdet_tensor::{DType, SafeTensors};
use serde_json::Value;

use ringdet_detect::arch::{Arch, ModelConfig};
use ringdet_detect::checkpoint;
use ringdet_detect::compare::{RefRow, match_nms, rel_l2};
use ringdet_detect::cross_replica::SingleReplica;
use ringdet_detect::detector::{eval_forward, eval_forward_device, postprocess};
use ringdet_detect::error::{DetectError, Result};
use ringdet_detect::model::Feat;
use ringdet_detect::nms::NmsParams;
use ringdet_detect::state::ModelState;
use ringdet_detect::step::{TrainBatch, TrainSettings, forward_backward, forward_backward_device};
use ringdet_kernels::Cuda;
use ringdet_kernels::conv::cuda::ConvMath;

/// Where the network of a parity run executes.
#[derive(Clone, Copy, Debug)]
pub enum On<'a> {
    /// The host kernels (the reference path).
    Host,
    /// A CUDA device (f32 or, with `ConvMath::Bf16TensorCore`, bf16 convolutions).
    Cuda(&'a Cuda),
}

impl On<'_> {
    fn amp(&self) -> bool {
        matches!(self, On::Cuda(be) if be.conv_math == ConvMath::Bf16TensorCore)
    }
}

/// The relative tolerance every compared tensor gets with bf16 convolutions (8 mantissa bits
/// through ~50 layers; the f32 tolerances below are the golden README's).
pub const BF16_REL: f64 = 3e-2;

/// One compared quantity.
#[derive(Clone, Debug, PartialEq)]
pub struct ParityRow {
    /// What was compared (the reference tensor's name).
    pub name: String,
    /// Measured error (relative L2, relative scalar error, or a mismatch count).
    pub error: f64,
    /// Tolerance.
    pub tolerance: f64,
    /// What `error` means.
    pub metric: &'static str,
}

impl ParityRow {
    /// Whether the error is within tolerance (NaN fails).
    pub fn pass(&self) -> bool {
        self.error <= self.tolerance
    }
}

struct Files<'a> {
    inputs: SafeTensors,
    eval: SafeTensors,
    train: SafeTensors,
    meta: Value,
    on: On<'a>,
}

fn open(dir: &Path, name: &str) -> Result<SafeTensors> {
    // The tensor crate's errors name the file.
    SafeTensors::open(dir.join(name)).map_err(|e| DetectError::Input(e.to_string()))
}

fn f32s(f: &SafeTensors, name: &str) -> Result<Vec<f32>> {
    let t = f
        .tensor(name)
        .map_err(|e| DetectError::Input(e.to_string()))?;
    if t.dtype() == DType::I32 {
        let v = t
            .to_vec::<i32>()
            .map_err(|e| DetectError::Input(format!("{}: {name}: {e}", f.path().display())))?;
        return Ok(v.into_iter().map(|x| x as f32).collect());
    }
    t.to_vec::<f32>()
        .map_err(|e| DetectError::Input(format!("{}: {name}: {e}", f.path().display())))
}

fn shape(f: &SafeTensors, name: &str) -> Result<Vec<usize>> {
    f.info(name).map(|i| i.shape.clone()).ok_or_else(|| {
        DetectError::Input(format!("{}: missing tensor `{name}`", f.path().display()))
    })
}

fn field<'a>(v: &'a Value, path: &[&str]) -> Result<&'a Value> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p).ok_or_else(|| {
            DetectError::Input(format!(
                "golden_meta.json: missing field `{}`",
                path.join(".")
            ))
        })?;
    }
    Ok(cur)
}

fn num(v: &Value, path: &[&str]) -> Result<f64> {
    field(v, path)?.as_f64().ok_or_else(|| {
        DetectError::Input(format!(
            "golden_meta.json: `{}` is not a number",
            path.join(".")
        ))
    })
}

/// The model configuration a golden set was made with.
fn config(meta: &Value) -> Result<ModelConfig> {
    Ok(ModelConfig::new(
        num(meta, &["cfg", "width_mult"])?,
        num(meta, &["cfg", "depth_mult"])?,
    )
    .with_classes(num(meta, &["cfg", "num_classes"])? as usize))
}

fn rel(name: impl Into<String>, ours: &[f32], reference: &[f32], tolerance: f64) -> ParityRow {
    ParityRow {
        name: name.into(),
        error: rel_l2(ours, reference).unwrap_or(f64::INFINITY),
        tolerance,
        metric: "rel L2",
    }
}

fn exact(name: impl Into<String>, ours: &[f32], reference: &[f32], amp: bool) -> ParityRow {
    let diff = if ours.len() == reference.len() {
        ours.iter().zip(reference).filter(|(a, b)| a != b).count()
    } else {
        ours.len().max(reference.len())
    };
    ParityRow {
        name: name.into(),
        error: diff as f64,
        tolerance: if amp {
            (reference.len() as f64 / 100.0).ceil()
        } else {
            0.0
        },
        metric: "mismatches",
    }
}

/// With bf16 convolutions, relative tolerances no tighter than [`BF16_REL`].
fn widen(mut rows: Vec<ParityRow>, amp: bool) -> Vec<ParityRow> {
    if amp {
        for r in &mut rows {
            if matches!(r.metric, "rel L2" | "rel" | "max abs") {
                r.tolerance = r.tolerance.max(BF16_REL);
            }
        }
    }
    rows
}

/// Run every comparison of a golden directory on the host.
pub fn run(dir: impl AsRef<Path>) -> Result<Vec<ParityRow>> {
    run_on(dir, On::Host)
}

/// Run every comparison of a golden directory with the network on `on`.
pub fn run_on(dir: impl AsRef<Path>, on: On) -> Result<Vec<ParityRow>> {
    let dir = dir.as_ref();
    let Loaded {
        meta,
        inputs,
        arch,
        weights,
        image,
    } = load(dir)?;
    let files = Files {
        inputs,
        eval: open(dir, "eval.safetensors")?,
        train: open(dir, "train.safetensors")?,
        meta,
        on,
    };
    let mut rows = eval_rows(&arch, &weights, &image, &files)?;
    rows.extend(train_rows(&arch, &weights, &image, &files)?);
    Ok(widen(rows, on.amp()))
}

/// What every parity run reads: the metadata, the inputs, the model and its weights.
struct Loaded {
    meta: Value,
    inputs: SafeTensors,
    arch: Arch,
    weights: ModelState,
    image: Feat,
}

fn load(dir: &Path) -> Result<Loaded> {
    let meta_path = dir.join("golden_meta.json");
    let meta_text = std::fs::read_to_string(&meta_path)
        .map_err(|e| DetectError::Input(format!("{}: {e}", meta_path.display())))?;
    let meta: Value = serde_json::from_str(&meta_text)
        .map_err(|e| DetectError::Input(format!("{}: {e}", meta_path.display())))?;
    let inputs = open(dir, "inputs.safetensors")?;
    let arch = Arch::new(config(&meta)?)?;
    let mut weights = ModelState::zeros(&arch)?;
    checkpoint::load(&mut weights, dir.join("weights.safetensors"))?;
    let s = shape(&inputs, "image")?;
    if s.len() != 4 {
        return Err(DetectError::Input(format!(
            "inputs.safetensors: image has shape {s:?}, expected [n, 3, h, w]"
        )));
    }
    let image = Feat::from_vec(f32s(&inputs, "image")?, s[0], s[1], s[2], s[3])?;
    Ok(Loaded {
        meta,
        inputs,
        arch,
        weights,
        image,
    })
}

/// The device against this machine's host kernels on a golden directory's weights and inputs:
/// the same rows as [`run_on`] (features, logits, scores, boxes, assignments, losses, every
/// gradient) with the host results as the reference, so only `golden_meta.json`,
/// `inputs.safetensors` and `weights.safetensors` are read — what fits in a GPU bundle. The
/// host path itself is checked against PaddleDetection by [`run`] (in CI).
pub fn run_vs_host(dir: impl AsRef<Path>, be: &Cuda) -> Result<Vec<ParityRow>> {
    let Loaded {
        meta,
        inputs,
        arch,
        weights,
        image,
    } = load(dir.as_ref())?;
    let amp = On::Cuda(be).amp();
    let mut rows = Vec::new();
    let (want, got) = (
        eval_forward(&arch, &weights, &image)?,
        eval_forward_device(be, &arch, &weights, &image)?,
    );
    let pairs = want
        .backbone
        .iter()
        .zip(&got.backbone)
        .map(|p| ("backbone.out", p));
    let pairs = pairs.chain(want.neck.iter().zip(&got.neck).map(|p| ("neck.out", p)));
    for (i, (name, (w, g))) in pairs.enumerate() {
        rows.push(rel(
            format!("{name}{} vs cpu", i % 3),
            &g.data,
            &w.data,
            5e-5,
        ));
    }
    for (i, (w, g)) in want.logits.iter().zip(&got.logits).enumerate() {
        rows.push(rel(
            format!("head.cls_logits.l{i} vs cpu"),
            &g.cls.data,
            &w.cls.data,
            5e-5,
        ));
        rows.push(rel(
            format!("head.reg_logits.l{i} vs cpu"),
            &g.reg.data,
            &w.reg.data,
            5e-5,
        ));
    }
    rows.push(rel(
        "head.cls_score vs cpu",
        &got.scores,
        &want.scores,
        5e-5,
    ));
    rows.push(rel(
        "decoded.boxes_input_px vs cpu",
        &got.boxes_input_px.concat(),
        &want.boxes_input_px.concat(),
        5e-5,
    ));
    let gt = Boxes::read(&inputs)?;
    let batch = gt.batch(&image);
    let settings = train_settings(&meta)?;
    let paths = field(&meta, &["losses"])?
        .as_object()
        .ok_or_else(|| DetectError::Input("golden_meta.json: `losses` is not an object".into()))?;
    for (tag, info) in paths {
        let epoch = num(info, &["epoch_id"])? as usize;
        let (mut host, mut dev) = (weights.clone(), weights.clone());
        let w = forward_backward(&arch, &mut host, &batch, epoch, &settings, &SingleReplica)?;
        let g = forward_backward_device(
            be,
            &arch,
            &mut dev,
            &batch,
            epoch,
            &settings,
            &SingleReplica,
        )?;
        let labels = |o: &ringdet_detect::step::StepOutputs| -> Vec<f32> {
            o.assignments
                .iter()
                .flat_map(|a| a.labels.iter().map(|&v| v as f32))
                .collect()
        };
        rows.push(exact(
            format!("{tag}.assign.labels vs cpu"),
            &labels(&g),
            &labels(&w),
            amp,
        ));
        let (lw, lg) = (&w.losses, &g.losses);
        for (name, a, b) in [
            ("loss", lg.loss, lw.loss),
            ("loss_cls", lg.cls, lw.cls),
            ("loss_iou", lg.iou, lw.iou),
            ("loss_dfl", lg.dfl, lw.dfl),
        ] {
            rows.push(rel(format!("{tag}.{name} vs cpu"), &[a], &[b], 1e-4));
        }
        rows.push(rel(
            format!("{tag}.grad (all) vs cpu"),
            &dev.grads,
            &host.grads,
            1e-3,
        ));
        rows.push(rel(
            format!("{tag}.bn statistics vs cpu"),
            &dev.stats,
            &host.stats,
            1e-5,
        ));
    }
    Ok(widen(rows, amp))
}

/// The padded ground truth of `inputs.safetensors` (`gt_bbox`, `gt_class`, `pad_gt_mask`).
struct Boxes {
    boxes: Vec<[f32; 4]>,
    labels: Vec<usize>,
    mask: Vec<f32>,
    max_boxes: usize,
}

impl Boxes {
    fn read(inputs: &SafeTensors) -> Result<Boxes> {
        Ok(Boxes {
            boxes: f32s(inputs, "gt_bbox")?
                .chunks_exact(4)
                .map(|c| [c[0], c[1], c[2], c[3]])
                .collect(),
            labels: f32s(inputs, "gt_class")?
                .iter()
                .map(|&v| v as usize)
                .collect(),
            mask: f32s(inputs, "pad_gt_mask")?,
            max_boxes: shape(inputs, "gt_bbox")?.get(1).copied().unwrap_or(0),
        })
    }
    fn batch<'a>(&'a self, image: &'a Feat) -> TrainBatch<'a> {
        TrainBatch {
            image,
            gt_boxes: &self.boxes,
            gt_labels: &self.labels,
            pad_mask: &self.mask,
            max_boxes: self.max_boxes,
        }
    }
}

/// The recipe's assigner switch from the golden config; the rest at PP-YOLOE's defaults.
fn train_settings(meta: &Value) -> Result<TrainSettings> {
    Ok(TrainSettings {
        static_assigner_epoch: num(meta, &["cfg", "PPYOLOEHead", "static_assigner_epoch"])?
            as usize,
        ..TrainSettings::default()
    })
}

fn eval_rows(arch: &Arch, weights: &ModelState, image: &Feat, f: &Files) -> Result<Vec<ParityRow>> {
    let out = match f.on {
        On::Host => eval_forward(arch, weights, image)?,
        On::Cuda(be) => eval_forward_device(be, arch, weights, image)?,
    };
    let e = &f.eval;
    let mut rows = Vec::new();
    for (i, x) in out.backbone.iter().enumerate() {
        rows.push(rel(
            format!("backbone.out{i}"),
            &x.data,
            &f32s(e, &format!("backbone.out{i}"))?,
            1e-4,
        ));
    }
    for (i, x) in out.neck.iter().enumerate() {
        rows.push(rel(
            format!("neck.out{i}"),
            &x.data,
            &f32s(e, &format!("neck.out{i}"))?,
            5e-4,
        ));
    }
    for (i, lv) in out.logits.iter().enumerate() {
        rows.push(rel(
            format!("head.cls_logits.l{i}"),
            &lv.cls.data,
            &f32s(e, &format!("head.cls_logits.l{i}"))?,
            5e-4,
        ));
        rows.push(rel(
            format!("head.reg_logits.l{i}"),
            &lv.reg.data,
            &f32s(e, &format!("head.reg_logits.l{i}"))?,
            5e-4,
        ));
        rows.push(rel(
            format!("head.reg_softmax.l{i}"),
            &out.reg_softmax[i],
            &f32s(e, &format!("head.reg_softmax.l{i}"))?,
            5e-4,
        ));
    }
    rows.push(rel(
        "head.cls_score",
        &out.scores,
        &f32s(e, "head.cls_score")?,
        5e-4,
    ));
    let dist: Vec<f32> = out.dist.iter().flatten().copied().collect();
    rows.push(rel("head.reg_dfl", &dist, &f32s(e, "head.reg_dfl")?, 1e-4));
    rows.push(rel(
        "decoded.boxes_input_px",
        &out.boxes_input_px.concat(),
        &f32s(e, "decoded.boxes_input_px")?,
        1e-4,
    ));
    let sf: Vec<[f32; 2]> = f32s(&f.inputs, "scale_factor")?
        .chunks_exact(2)
        .map(|c| [c[0], c[1]])
        .collect();
    let classes = arch.head.num_classes;
    let l = out.anchors.len();
    let settings = field(&f.meta, &["nms_settings"])?
        .as_object()
        .ok_or_else(|| {
            DetectError::Input("golden_meta.json: `nms_settings` is not an object".into())
        })?;
    let mut boxes_row_done = false;
    for (tag, ns) in settings {
        let p = NmsParams {
            score_threshold: num(ns, &["score_threshold"])? as f32,
            nms_top_k: num(ns, &["nms_top_k"])? as i64,
            keep_top_k: num(ns, &["keep_top_k"])? as i64,
            nms_threshold: num(ns, &["nms_threshold"])? as f32,
        };
        let (boxes, dets) = postprocess(&out, classes, &sf, &p)?;
        if !boxes_row_done {
            rows.push(rel(
                "decoded.boxes",
                &boxes.concat(),
                &f32s(e, "decoded.boxes")?,
                1e-4,
            ));
            boxes_row_done = true;
        }
        let counts = f32s(e, &format!("{tag}.bbox_num"))?;
        let table = f32s(e, &format!("{tag}.bbox"))?;
        let index = match e.info(&format!("{tag}.index")) {
            Some(_) => Some(f32s(e, &format!("{tag}.index"))?),
            None => None,
        };
        let mut refs = Vec::new();
        let mut row = 0usize;
        for (b, &n) in counts.iter().enumerate() {
            for _ in 0..n as usize {
                let r = table.get(row * 6..row * 6 + 6).ok_or_else(|| {
                    DetectError::Input(format!(
                        "eval.safetensors: `{tag}.bbox` has fewer rows than `{tag}.bbox_num` says"
                    ))
                })?;
                let idx = index
                    .as_ref()
                    .and_then(|ix| ix.get(row))
                    .map(|&v| v as usize - b * l);
                refs.push(RefRow {
                    image: b,
                    class: r[0] as usize,
                    score: r[1],
                    bbox: [r[2], r[3], r[4], r[5]],
                    index: idx,
                });
                row += 1;
            }
        }
        let m = match_nms(&dets, &refs);
        let mismatched = m.unmatched as f64 + m.count_difference.unsigned_abs() as f64;
        rows.push(ParityRow {
            name: format!("{tag} (as sets)"),
            error: mismatched,
            tolerance: 0.0,
            metric: "unmatched rows",
        });
        rows.push(ParityRow {
            name: format!("{tag} scores"),
            error: m.max_score_diff as f64,
            tolerance: 1e-4,
            metric: "max abs",
        });
        rows.push(ParityRow {
            name: format!("{tag} boxes"),
            error: m.max_box_diff as f64,
            tolerance: 0.05,
            metric: "max abs px",
        });
    }
    Ok(rows)
}

fn train_rows(
    arch: &Arch,
    weights: &ModelState,
    image: &Feat,
    f: &Files,
) -> Result<Vec<ParityRow>> {
    let t = &f.train;
    let gt = Boxes::read(&f.inputs)?;
    let batch = gt.batch(image);
    let settings = train_settings(&f.meta)?;
    let mut rows = Vec::new();
    let paths = field(&f.meta, &["losses"])?
        .as_object()
        .ok_or_else(|| DetectError::Input("golden_meta.json: `losses` is not an object".into()))?;
    let mut intermediates_done = false;
    for (tag, info) in paths {
        let epoch = num(info, &["epoch_id"])? as usize;
        let mut state = weights.clone();
        let out = match f.on {
            On::Host => {
                forward_backward(arch, &mut state, &batch, epoch, &settings, &SingleReplica)?
            }
            On::Cuda(be) => forward_backward_device(
                be,
                arch,
                &mut state,
                &batch,
                epoch,
                &settings,
                &SingleReplica,
            )?,
        };
        if !intermediates_done {
            for (i, x) in out.backbone.iter().enumerate() {
                rows.push(rel(
                    format!("train.backbone.out{i}"),
                    &x.data,
                    &f32s(t, &format!("train.backbone.out{i}"))?,
                    5e-4,
                ));
            }
            for (i, x) in out.neck.iter().enumerate() {
                rows.push(rel(
                    format!("train.neck.out{i}"),
                    &x.data,
                    &f32s(t, &format!("train.neck.out{i}"))?,
                    5e-4,
                ));
            }
            for (i, lv) in out.logits.iter().enumerate() {
                let c = f32s(t, &format!("train.head.cls_logits.l{i}"))?;
                rows.push(rel(
                    format!("train.head.cls_logits.l{i}"),
                    &lv.cls.data,
                    &c,
                    5e-4,
                ));
                let r = f32s(t, &format!("train.head.reg_logits.l{i}"))?;
                rows.push(rel(
                    format!("train.head.reg_logits.l{i}"),
                    &lv.reg.data,
                    &r,
                    5e-4,
                ));
            }
            intermediates_done = true;
        }
        let labels: Vec<f32> = out
            .assignments
            .iter()
            .flat_map(|a| a.labels.iter().map(|&v| v as f32))
            .collect();
        rows.push(exact(
            format!("{tag}.assign.labels"),
            &labels,
            &f32s(t, &format!("{tag}.assign.labels"))?,
            f.on.amp(),
        ));
        let mask: Vec<f32> = out
            .assignments
            .iter()
            .flat_map(|a| a.mask_positive.iter().copied())
            .collect();
        rows.push(exact(
            format!("{tag}.assign.mask_positive"),
            &mask,
            &f32s(t, &format!("{tag}.assign.mask_positive"))?,
            f.on.amp(),
        ));
        let scores: Vec<f32> = out
            .assignments
            .iter()
            .flat_map(|a| a.scores.iter().copied())
            .collect();
        rows.push(rel(
            format!("{tag}.assign.scores"),
            &scores,
            &f32s(t, &format!("{tag}.assign.scores"))?,
            1e-4,
        ));
        let l = &out.losses;
        for (name, v) in [
            ("loss", l.loss),
            ("loss_cls", l.cls),
            ("loss_iou", l.iou),
            ("loss_dfl", l.dfl),
            ("loss_l1", l.l1),
        ] {
            let r = *f32s(t, &format!("{tag}.{name}"))?
                .first()
                .unwrap_or(&f32::NAN);
            let err = if r == 0.0 {
                (v - r).abs() as f64
            } else {
                ((v - r) / r).abs() as f64
            };
            rows.push(ParityRow {
                name: format!("{tag}.{name}"),
                error: err,
                tolerance: 1e-4,
                metric: "rel",
            });
        }
        let prefix = format!("{tag}.grad.");
        let mut names: Vec<&str> = t.names().filter(|n| n.starts_with(&prefix)).collect();
        names.sort_unstable();
        for key in names {
            let ours = state.grad(&key[prefix.len()..])?;
            rows.push(rel(key, ours, &f32s(t, key)?, 2e-3));
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    /// [`super::run`] fails with a message naming the file when a golden directory is incomplete.
    #[test]
    fn missing_files_are_named() {
        let dir = std::env::temp_dir().join(format!("ringdet-parity-empty-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let err = super::run(&dir).unwrap_err().to_string();
        assert!(err.contains("golden_meta.json"), "{err}");
        std::fs::write(dir.join("golden_meta.json"), "{\"cfg\": {}}").unwrap();
        let err = super::run(&dir).unwrap_err().to_string();
        assert!(err.contains("inputs.safetensors"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
