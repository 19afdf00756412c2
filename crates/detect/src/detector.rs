//! The detector as a whole: evaluation forward (backbone → neck → head → decode) and
//! post-processing (rescale + NMS).

use ringdet_kernels::backend::{Backend, Buffers};
use ringdet_kernels::profile::{Family, OpTimer};
use ringdet_kernels::{Cpu, Real};

use crate::anchors::Anchors;
use crate::arch::Arch;
use crate::decode::{DflShape, boxes_input_px, dfl_level, rescale};
use crate::error::{DetectError, Result, kernel_error};
use crate::fuse::FusedRepVgg;
use crate::layout::ParamLayout;
use crate::model::{Feat, Fwd, LevelLogits, backbone, head, neck, ops};
use crate::nms::{Detection, NmsParams, multiclass_nms};
use crate::state::ModelState;

/// Scores `[n, classes, anchors]`, distances `[n, anchors]`, DFL softmax per level.
pub type DecodedLogits<T = f32> = (Vec<T>, Vec<[T; 4]>, Vec<Vec<T>>);
/// Boxes in original pixels `[n, anchors]` and the detections of each image.
pub type Postprocessed = (Vec<[f32; 4]>, Vec<Vec<Detection>>);

/// Everything an evaluation forward produces (f32 unless run with [`eval_forward_as`]).
#[derive(Clone, Debug)]
pub struct EvalOutputs<T: Real = f32> {
    /// Backbone features, strides 8, 16, 32.
    pub backbone: Vec<Feat<T>>,
    /// Neck features, strides 32, 16, 8.
    pub neck: Vec<Feat<T>>,
    /// Raw head logits per level.
    pub logits: Vec<LevelLogits<T>>,
    /// DFL softmax per level `[n, 4, bins, h·w]`.
    pub reg_softmax: Vec<Vec<T>>,
    /// Class probabilities `[n, classes, anchors]`.
    pub scores: Vec<T>,
    /// Distances (l, t, r, b) in stride units `[n, anchors]`.
    pub dist: Vec<[T; 4]>,
    /// Boxes in input pixels `[n, anchors]`.
    pub boxes_input_px: Vec<[T; 4]>,
    /// Anchors of this input size.
    pub anchors: Anchors,
}

/// Check an NCHW image batch.
pub fn check_image<T: Real, B: Buffers<T>>(image: &Feat<T, B>) -> Result<()> {
    if image.c != 3 || image.n == 0 || image.h == 0 || image.w == 0 {
        return Err(DetectError::Input(format!(
            "image batch must be [n, 3, h, w], got {:?}",
            image.shape()
        )));
    }
    Ok(())
}

/// Evaluation forward (BN with running statistics).
pub fn eval_forward(arch: &Arch, state: &ModelState, image: &Feat) -> Result<EvalOutputs> {
    eval_forward_fused(arch, state, None, image)
}

/// Evaluation forward using RepVgg blocks fused by [`crate::fuse::fuse_repvgg`] where given.
pub fn eval_forward_fused(
    arch: &Arch,
    state: &ModelState,
    fused: Option<&FusedRepVgg>,
    image: &Feat,
) -> Result<EvalOutputs> {
    eval_forward_on(
        arch,
        &state.layout,
        &state.params,
        &state.stats,
        fused,
        image,
    )
}

/// [`eval_forward_fused`] in another float type, on a copy of the parameters and running statistics
/// converted to it: `f64` runs the same model without float32 rounding, to check numerics (e.g. that
/// fusion is exact) apart from float32 noise. Fused convs from [`crate::fuse::fuse_repvgg_as`].
pub fn eval_forward_as<T: Real>(
    arch: &Arch,
    state: &ModelState,
    fused: Option<&FusedRepVgg<T>>,
    image: &Feat<T>,
) -> Result<EvalOutputs<T>> {
    let cast = |v: &[f32]| -> Vec<T> { v.iter().map(|&x| T::from_f64(f64::from(x))).collect() };
    let (params, stats) = (cast(&state.params), cast(&state.stats));
    eval_forward_on(arch, &state.layout, &params, &stats, fused, image)
}

/// The evaluation forward on parameter and statistics buffers laid out by `layout`.
fn eval_forward_on<T: Real>(
    arch: &Arch,
    layout: &ParamLayout,
    params: &Vec<T>,
    stats: &Vec<T>,
    fused: Option<&FusedRepVgg<T>>,
    image: &Feat<T>,
) -> Result<EvalOutputs<T>> {
    check_image(image)?;
    let mut ctx = Fwd::eval(layout, params, stats);
    ctx.fused = fused;
    let (bb, nk, logits) = network(&mut ctx, arch, image)?;
    decoded(arch, (bb, nk, logits), image.n)
}

/// The eval outputs of a pass's host features: anchors, the decode of the logits and the boxes.
fn decoded<T: Real>(
    arch: &Arch,
    (backbone, neck, logits): NetworkOutputs<T, Cpu>,
    images: usize,
) -> Result<EvalOutputs<T>> {
    let sizes: Vec<(usize, usize)> = neck.iter().map(|f| (f.h, f.w)).collect();
    let anchors = Anchors::new(&sizes, &arch.head.strides, 5.0, 0.5)?;
    let head_host = OpTimer::new(Family::Head);
    let (scores, dist, reg_softmax) = decode_logits(arch, &logits, &anchors)?;
    let boxes_input_px = boxes_input_px(&anchors, &dist, images);
    drop(head_host);
    Ok(EvalOutputs {
        backbone,
        neck,
        logits,
        reg_softmax,
        scores,
        dist,
        boxes_input_px,
        anchors,
    })
}

/// The evaluation forward (BN with running statistics) up to the raw head logits, on any
/// backend: parameters, statistics and the image are buffers of `be`. Decoding and NMS run on
/// the host ([`decode_logits`], [`postprocess`]) after the logits are downloaded.
pub fn eval_logits_on<B: Backend<f32>>(
    be: &B,
    arch: &Arch,
    layout: &ParamLayout,
    params: &B::Buf,
    stats: &B::Buf,
    image: &Feat<f32, B>,
) -> Result<Vec<LevelLogits<f32, B>>> {
    check_image(image)?;
    let mut ctx = Fwd::eval_on(be, layout, params, stats);
    let (_, _, logits) = network(&mut ctx, arch, image)?;
    Ok(logits)
}

/// [`eval_forward`] with the network on backend `be`: the state and the image go up, the
/// features and logits come back down, and the decode runs on the host as always. For parity
/// checks of a device against the host reference (one copy each way; not a serving path).
pub fn eval_forward_device<B: Backend<f32>>(
    be: &B,
    arch: &Arch,
    state: &ModelState,
    image: &Feat,
) -> Result<EvalOutputs> {
    check_image(image)?;
    let up = |v: &[f32]| be.upload(v).map_err(kernel_error("upload"));
    let (params, stats) = (up(&state.params)?, up(&state.stats)?);
    let x = image.upload_to(be)?;
    let mut ctx = Fwd::eval_on(be, &state.layout, &params, &stats);
    let (bb, nk, logits) = network(&mut ctx, arch, &x)?;
    let down = |f: &Feat<f32, B>| -> Result<Feat> {
        Feat::from_vec(
            be.download(&f.data).map_err(kernel_error("download"))?,
            f.n,
            f.c,
            f.h,
            f.w,
        )
    };
    let backbone = bb.iter().map(down).collect::<Result<Vec<_>>>()?;
    let neck = nk.iter().map(down).collect::<Result<Vec<_>>>()?;
    let logits = logits
        .iter()
        .map(|lv| {
            Ok(LevelLogits {
                cls: down(&lv.cls)?,
                reg: down(&lv.reg)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    decoded(arch, (backbone, neck, logits), image.n)
}

/// The features of backbone and neck and the head's logits of one pass (no caches: eval).
type NetworkOutputs<T, B> = (Vec<Feat<T, B>>, Vec<Feat<T, B>>, Vec<LevelLogits<T, B>>);

/// Backbone, neck and head on `image` in the pass `ctx`.
fn network<T: Real, B: Backend<T>>(
    ctx: &mut Fwd<T, B>,
    arch: &Arch,
    image: &Feat<T, B>,
) -> Result<NetworkOutputs<T, B>> {
    let (bb, _) = backbone::forward(ctx, &arch.backbone, image)?;
    let (nk, _) = neck::forward(ctx, &arch.neck, &bb)?;
    let (logits, _) = head::forward(ctx, &arch.head, &nk)?;
    Ok((bb, nk, logits))
}

/// Scores `[n, classes, anchors]`, distances `[n, anchors]` and the DFL softmax of each level.
pub fn decode_logits<T: Real>(
    arch: &Arch,
    logits: &[LevelLogits<T>],
    anchors: &Anchors,
) -> Result<DecodedLogits<T>> {
    let n = logits.first().map(|l| l.cls.n).unwrap_or(0);
    let l = anchors.len();
    let c = arch.head.num_classes;
    let bins = arch.config.reg_bins();
    let mut scores = vec![T::ZERO; n * c * l];
    let mut dist = vec![[T::ZERO; 4]; n * l];
    let mut softmax = Vec::with_capacity(logits.len());
    let mut offset = 0;
    for lv in logits {
        let hw = lv.cls.hw();
        let s = ops::sigmoid(&Cpu, &lv.cls)?;
        let s = &s.data;
        for b in 0..n {
            for k in 0..c {
                let src = &s[(b * c + k) * hw..(b * c + k + 1) * hw];
                scores[(b * c + k) * l + offset..(b * c + k) * l + offset + hw]
                    .copy_from_slice(src);
            }
        }
        let mut sm = vec![T::ZERO; lv.reg.data.len()];
        let shape = DflShape {
            batch: n,
            bins,
            hw,
            total_anchors: l,
            anchor_offset: offset,
        };
        dfl_level(&lv.reg.data, shape, Some(&mut sm), &mut dist)?;
        softmax.push(sm);
        offset += hw;
    }
    Ok((scores, dist, softmax))
}

/// Boxes in original-image pixels and NMS, per image. `scale_factors[b] = [sy, sx]`.
pub fn postprocess(
    out: &EvalOutputs,
    num_classes: usize,
    scale_factors: &[[f32; 2]],
    nms: &NmsParams,
) -> Result<Postprocessed> {
    let l = out.anchors.len();
    let mut boxes = out.boxes_input_px.clone();
    rescale(&mut boxes, scale_factors, l)?;
    let dets = (0..scale_factors.len())
        .map(|b| {
            let s = &out.scores[b * num_classes * l..(b + 1) * num_classes * l];
            multiclass_nms(&boxes[b * l..(b + 1) * l], s, num_classes, nms)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((boxes, dets))
}
