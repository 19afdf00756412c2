//! DFL decoding: softmax over each side's bins, expectation Σ k·p_k (distances in stride units; the
//! kernels' `softmax_bins_forward` / `dfl_integral_forward`), boxes around anchor points, and the
//! mapping back to original-image pixels by per-axis scale factors.

use ringdet_kernels::Cpu;
use ringdet_kernels::Real;
use ringdet_kernels::arena::Pooled;
use ringdet_kernels::backend::DflOps;
use ringdet_kernels::dfl::DflParams;

use crate::anchors::Anchors;
use crate::boxes::Box4;
use crate::error::{DetectError, Result};

/// Geometry of one level's regression output inside the whole anchor list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DflShape {
    /// Images.
    pub batch: usize,
    /// Bins per side (`reg_max + 1`).
    pub bins: usize,
    /// Anchors of this level (`h · w`).
    pub hw: usize,
    /// Anchors of all levels.
    pub total_anchors: usize,
    /// Index of this level's first anchor.
    pub anchor_offset: usize,
}

/// Softmax over `bins` and its expectation, for one level's regression logits `[B, 4·bins, HW]`
/// (side-major channels). Writes the distribution `[B, 4, bins, HW]` (if given) and the
/// distances `dist[b][a_offset + i] = [l, t, r, b]` into `dist` laid out `[B, total_anchors]`.
pub fn dfl_level<T: Real>(
    logits: &[T],
    shape: DflShape,
    softmax_out: Option<&mut [T]>,
    dist: &mut [[T; 4]],
) -> Result<()> {
    let DflShape {
        batch,
        bins,
        hw,
        total_anchors,
        anchor_offset,
    } = shape;
    if logits.len() != batch * 4 * bins * hw
        || dist.len() != batch * total_anchors
        || anchor_offset + hw > total_anchors
    {
        return Err(DetectError::Input(format!(
            "dfl_level: {} logits for batch {batch} × 4 × {bins} bins × {hw}, {} distance rows",
            logits.len(),
            dist.len()
        )));
    }
    let kerr = |op: &'static str| {
        move |e: ringdet_kernels::KernelError| DetectError::Kernel {
            op,
            message: e.to_string(),
        }
    };
    // Kernels: softmax over the bins of each side, then Σ k·p_k, on the NCHW layout.
    let p = DflParams {
        outer: batch,
        sides: 4,
        bins,
        inner: hw,
    };
    let mut probs = Pooled::<T>::scratch(logits.len());
    Cpu.softmax_bins_forward(&mut probs, logits, &p)
        .map_err(kerr("softmax_bins_forward"))?;
    let mut d = Pooled::<T>::scratch(batch * 4 * hw);
    Cpu.dfl_integral_forward(&mut d, &probs, &p)
        .map_err(kerr("dfl_integral_forward"))?;
    for b in 0..batch {
        for side in 0..4 {
            for i in 0..hw {
                dist[b * total_anchors + anchor_offset + i][side] = d[(b * 4 + side) * hw + i];
            }
        }
    }
    if let Some(s) = softmax_out {
        if s.len() != probs.len() {
            return Err(DetectError::Input(format!(
                "dfl_level: softmax output holds {}, needs {}",
                s.len(),
                probs.len()
            )));
        }
        s.copy_from_slice(&probs);
    }
    Ok(())
}

/// Boxes in input pixels: `((ax − l), (ay − t), (ax + r), (ay + b)) · stride`, anchors in grid units.
pub fn boxes_input_px<T: Real>(anchors: &Anchors, dist: &[[T; 4]], batch: usize) -> Vec<[T; 4]> {
    let l = anchors.len();
    let mut out = Vec::with_capacity(batch * l);
    let t = |v: f32| T::from_f64(f64::from(v));
    for b in 0..batch {
        for a in 0..l {
            let [px, py] = anchors.points_grid[a].map(t);
            let d = dist[b * l + a];
            let s = t(anchors.strides[a]);
            out.push([
                (px - d[0]) * s,
                (py - d[1]) * s,
                (px + d[2]) * s,
                (py + d[3]) * s,
            ]);
        }
    }
    out
}

/// Predicted boxes in grid units (the training form): `(ax − l, ay − t, ax + r, ay + b)`.
pub fn boxes_grid(anchors: &Anchors, dist: &[[f32; 4]], batch: usize) -> Vec<Box4> {
    let l = anchors.len();
    let mut out = Vec::with_capacity(batch * l);
    for b in 0..batch {
        for a in 0..l {
            let [px, py] = anchors.points_grid[a];
            let d = dist[b * l + a];
            out.push([px - d[0], py - d[1], px + d[2], py + d[3]]);
        }
    }
    out
}

/// Map boxes of image `b` back to original pixels: divide by `[sx, sy, sx, sy]` where
/// `scale_factors[b] = [sy, sx]` (PaddleDetection's order). No clipping.
pub fn rescale(
    boxes: &mut [Box4],
    scale_factors: &[[f32; 2]],
    anchors_per_image: usize,
) -> Result<()> {
    if boxes.len() != scale_factors.len() * anchors_per_image {
        return Err(DetectError::Input(format!(
            "{} boxes for {} images × {anchors_per_image} anchors",
            boxes.len(),
            scale_factors.len()
        )));
    }
    for (b, chunk) in boxes.chunks_mut(anchors_per_image.max(1)).enumerate() {
        let [sy, sx] = scale_factors[b];
        for bx in chunk {
            bx[0] /= sx;
            bx[1] /= sy;
            bx[2] /= sx;
            bx[3] /= sy;
        }
    }
    Ok(())
}
