//! OpenCV's per-axis resize coefficients: for each output index, the source indices it reads and
//! their weights (`cv::resize`'s `interpolateCubic`, `interpolateLanczos4`, `computeResizeAreaTab`,
//! and the clamping rules of `resizeGeneric`).

use super::Interp;

/// Per output index along one axis: `taps` source indices and weights.
pub(super) struct AxisTable {
    pub(super) taps: usize,
    pub(super) index: Vec<usize>,
    pub(super) weight: Vec<f32>,
}

fn cubic_coeffs(x: f32) -> [f32; 4] {
    const A: f32 = -0.75;
    let c0 = ((A * (x + 1.0) - 5.0 * A) * (x + 1.0) + 8.0 * A) * (x + 1.0) - 4.0 * A;
    let c1 = ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let c2 = ((A + 2.0) * (1.0 - x) - (A + 3.0)) * (1.0 - x) * (1.0 - x) + 1.0;
    [c0, c1, c2, 1.0 - c0 - c1 - c2]
}

fn lanczos4_coeffs(x: f32) -> [f32; 8] {
    if x < f32::EPSILON {
        let mut c = [0.0; 8];
        c[3] = 1.0;
        return c;
    }
    const S45: f64 = std::f64::consts::FRAC_1_SQRT_2;
    const CS: [[f64; 2]; 8] = [
        [1.0, 0.0],
        [-S45, -S45],
        [0.0, 1.0],
        [S45, -S45],
        [-1.0, 0.0],
        [S45, S45],
        [0.0, -1.0],
        [-S45, S45],
    ];
    let pi4 = std::f64::consts::PI * 0.25;
    let y0 = -(x as f64 + 3.0) * pi4;
    let (s0, c0) = y0.sin_cos();
    let mut c = [0.0f32; 8];
    let mut sum = 0.0f32;
    for i in 0..8 {
        let y = -(x as f64 + 3.0 - i as f64) * pi4;
        c[i] = ((CS[i][0] * s0 + CS[i][1] * c0) / (y * y)) as f32;
        sum += c[i];
    }
    let inv = 1.0 / sum;
    c.map(|v| v * inv)
}

/// Interpolating kernels (linear, cubic, Lanczos4, and INTER_AREA's bilinear variant).
pub(super) fn kernel_table(
    interp: Interp,
    src: usize,
    dst: usize,
    scale: f64,
    inv_scale: f64,
) -> AxisTable {
    let area_mode = interp == Interp::Area;
    let taps = match interp {
        Interp::Cubic => 4,
        Interp::Lanczos4 => 8,
        _ => 2,
    };
    let half = (taps / 2) as i64;
    let clamps = !matches!(interp, Interp::Cubic | Interp::Lanczos4);
    let mut index = Vec::with_capacity(dst * taps);
    let mut weight = Vec::with_capacity(dst * taps);
    for d in 0..dst {
        let (mut s, mut f) = if area_mode {
            let s = (d as f64 * scale).floor() as i64;
            let f = ((d + 1) as f64 - (s + 1) as f64 * inv_scale) as f32;
            (s, if f <= 0.0 { 0.0 } else { f - f.floor() })
        } else {
            let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
            let s = f.floor() as i64;
            (s, f - s as f32)
        };
        if s < 0 && clamps {
            (s, f) = (0, 0.0);
        }
        if s >= src as i64 - 1 && clamps {
            (s, f) = (src as i64 - 1, 0.0);
        }
        let coeffs: Vec<f32> = match interp {
            Interp::Cubic => cubic_coeffs(f).to_vec(),
            Interp::Lanczos4 => lanczos4_coeffs(f).to_vec(),
            _ => vec![1.0 - f, f],
        };
        for (k, c) in coeffs.into_iter().enumerate() {
            let i = (s + k as i64 - half + 1).clamp(0, src as i64 - 1);
            index.push(i as usize);
            weight.push(c);
        }
    }
    AxisTable {
        taps,
        index,
        weight,
    }
}

/// `INTER_NEAREST`: `min(floor(d · scale), src − 1)`.
pub(super) fn nearest_table(src: usize, dst: usize, scale: f64) -> AxisTable {
    let index = (0..dst)
        .map(|d| ((d as f64 * scale).floor() as usize).min(src - 1))
        .collect();
    AxisTable {
        taps: 1,
        index,
        weight: vec![1.0; dst],
    }
}

/// OpenCV's `computeResizeAreaTab`: the source cells each output cell covers, by coverage.
pub(super) fn area_table(src: usize, dst: usize, scale: f64) -> AxisTable {
    let mut cells: Vec<Vec<(usize, f32)>> = Vec::with_capacity(dst);
    for d in 0..dst {
        let fs1 = d as f64 * scale;
        let fs2 = fs1 + scale;
        let cell = scale.min(src as f64 - fs1);
        let s2 = (fs2.floor() as i64).min(src as i64 - 1);
        let s1 = (fs1.ceil() as i64).min(s2);
        let mut taps = Vec::new();
        if s1 as f64 - fs1 > 1e-3 {
            taps.push(((s1 - 1) as usize, ((s1 as f64 - fs1) / cell) as f32));
        }
        for s in s1..s2 {
            taps.push((s as usize, (1.0 / cell) as f32));
        }
        if fs2 - s2 as f64 > 1e-3 {
            taps.push((
                s2 as usize,
                ((fs2 - s2 as f64).min(1.0).min(cell) / cell) as f32,
            ));
        }
        cells.push(taps);
    }
    let taps = cells.iter().map(Vec::len).max().unwrap_or(1).max(1);
    let mut index = Vec::with_capacity(dst * taps);
    let mut weight = Vec::with_capacity(dst * taps);
    for c in cells {
        let pad = taps - c.len();
        let first = c.first().map_or(0, |t| t.0);
        for (i, w) in c {
            index.push(i);
            weight.push(w);
        }
        index.extend(std::iter::repeat_n(first, pad));
        weight.extend(std::iter::repeat_n(0.0, pad));
    }
    AxisTable {
        taps,
        index,
        weight,
    }
}
