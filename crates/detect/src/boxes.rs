//! Box geometry shared by the assigners, losses and NMS: `[x1, y1, x2, y2]`, no "+1" anywhere.

/// An axis-aligned box `[x1, y1, x2, y2]`.
pub type Box4 = [f32; 4];

/// IoU as PaddleDetection's `iou_similarity`/`batch_iou_similarity`: widths clipped at 0,
/// `union = a1 + a2 − inter + eps` (eps 1e-10 for anchor boxes, 1e-9 for predicted boxes).
pub fn iou(a: &Box4, b: &Box4, eps: f32) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let overlap = w * h;
    let area_a = (a[2] - a[0]).max(0.0) * (a[3] - a[1]).max(0.0);
    let area_b = (b[2] - b[0]).max(0.0) * (b[3] - b[1]).max(0.0);
    overlap / (area_a + area_b - overlap + eps)
}

/// Whether a point lies strictly inside a box: `min(x − x1, y − y1, x2 − x, y2 − y) > 1e-9`.
pub fn point_inside(p: [f32; 2], b: &Box4) -> bool {
    let l = p[0] - b[0];
    let t = p[1] - b[1];
    let r = b[2] - p[0];
    let bo = b[3] - p[1];
    l.min(t).min(r).min(bo) > 1e-9
}

/// Box centre `((x1 + x2) / 2, (y1 + y2) / 2)`.
pub fn center(b: &Box4) -> [f32; 2] {
    [(b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_basics() {
        assert!((iou(&[0.0, 0.0, 2.0, 2.0], &[1.0, 1.0, 3.0, 3.0], 0.0) - 1.0 / 7.0).abs() < 1e-7);
        assert_eq!(iou(&[0.0, 0.0, 1.0, 1.0], &[2.0, 2.0, 3.0, 3.0], 1e-9), 0.0);
        assert_eq!(iou(&[0.0; 4], &[0.0; 4], 1e-9), 0.0);
        assert!(point_inside([1.0, 1.0], &[0.0, 0.0, 2.0, 2.0]));
        assert!(!point_inside([0.0, 1.0], &[0.0, 0.0, 2.0, 2.0]));
    }
}
