//! Box IoU exactly as `bbIou` in cocoapi's maskApi.c: continuous coordinates (no +1), crowd GTs divide
//! by the detection's area, and the operation order kept so exact-threshold IoUs compare the same.

/// IoU of detection `d` and ground truth `g`, both `[x, y, w, h]`.
#[inline]
pub fn bbox_iou(d: &[f64; 4], g: &[f64; 4], g_is_crowd: bool) -> f64 {
    let ga = g[2] * g[3];
    let da = d[2] * d[3];
    let w = (d[2] + d[0]).min(g[2] + g[0]) - d[0].max(g[0]);
    if w <= 0.0 {
        return 0.0;
    }
    let h = (d[3] + d[1]).min(g[3] + g[1]) - d[1].max(g[1]);
    if h <= 0.0 {
        return 0.0;
    }
    let i = w * h;
    let u = if g_is_crowd { da } else { da + ga - i };
    i / u
}
