//! pycocotools' default bbox parameters, with the exact float values of `np.linspace`.

/// IoU thresholds T = 10.
pub const NUM_IOU: usize = 10;
/// Recall thresholds R = 101.
pub const NUM_RECALL: usize = 101;
/// Area ranges A = 4: all, small, medium, large (closed intervals on the GT `area` field).
pub const AREA_RANGES: [[f64; 2]; 4] =
    [[0.0, 1e10], [0.0, 1024.0], [1024.0, 9216.0], [9216.0, 1e10]];
/// Labels of [`AREA_RANGES`] as pycocotools prints them.
pub const AREA_LABELS: [&str; 4] = ["all", "small", "medium", "large"];
/// maxDets M = 3, applied per (image, category).
pub const MAX_DETS: [usize; 3] = [1, 10, 100];

/// `np.linspace(start, stop, n)`: `start + i * ((stop - start) / (n - 1))`, last element `stop`.
fn linspace<const N: usize>(start: f64, stop: f64) -> [f64; N] {
    let step = (stop - start) / (N - 1) as f64;
    let mut out = [0.0; N];
    for (i, v) in out.iter_mut().enumerate() {
        *v = i as f64 * step + start;
    }
    out[N - 1] = stop;
    out
}

/// `np.linspace(.5, .95, 10)`; element 8 is 0.8999999999999999.
pub fn iou_thresholds() -> [f64; NUM_IOU] {
    linspace(0.5, 0.95)
}

/// `np.linspace(0, 1, 101)`; ten elements are one ulp above `i/100`.
pub fn recall_thresholds() -> [f64; NUM_RECALL] {
    linspace(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_numpys() {
        let t = iou_thresholds();
        assert_eq!(t[8], 0.8999999999999999);
        assert_eq!(t[7], 0.85);
        assert_eq!(t[5], 0.75);
        let r = recall_thresholds();
        assert_eq!(r[35], 0.35000000000000003);
        assert_eq!(r[94], 0.9400000000000001);
        assert_eq!(r[100], 1.0);
    }
}
