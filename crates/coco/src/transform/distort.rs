//! RandomDistort, the float version of PaddleDetection v2.4–v2.6 (the one that trained the published
//! weights): brightness (additive), contrast, saturation and a YIQ hue rotation by δ·π, applied in a
//! random order, each with probability ½, in float32 without clipping.

use super::AugRng;
use crate::image::RgbImage;

/// Ranges `[low, high]` and skip probability of each op (PaddleDetection defaults).
#[derive(Clone, Debug, PartialEq)]
pub struct RandomDistort {
    /// Hue δ range and skip probability: `[-18, 18]`, 0.5.
    pub hue: [f64; 3],
    /// Saturation δ range and skip probability: `[0.5, 1.5]`, 0.5.
    pub saturation: [f64; 3],
    /// Contrast δ range and skip probability: `[0.5, 1.5]`, 0.5.
    pub contrast: [f64; 3],
    /// Brightness δ range and skip probability: `[0.5, 1.5]`, 0.5.
    pub brightness: [f64; 3],
}

impl Default for RandomDistort {
    fn default() -> Self {
        RandomDistort {
            hue: [-18.0, 18.0, 0.5],
            saturation: [0.5, 1.5, 0.5],
            contrast: [0.5, 1.5, 0.5],
            brightness: [0.5, 1.5, 0.5],
        }
    }
}

/// Draws the op order, then for each op `u ~ U(0,1)` (skip when `u < prob`) and its δ.
///
/// Every op is affine in RGB, so the ops that fire are composed into one 3×4 map (in f64) and
/// applied in a single pass.
pub fn random_distort(image: &mut RgbImage, params: &RandomDistort, rng: &mut AugRng) {
    let mut order = [0usize, 1, 2, 3]; // brightness, contrast, saturation, hue
    rng.shuffle(&mut order);
    let mut map: Affine = [
        [1.0, 0.0, 0.0, 0.0],
        [0.0, 1.0, 0.0, 0.0],
        [0.0, 0.0, 1.0, 0.0],
    ];
    let mut fired = false;
    for op in order {
        let [low, high, prob] = match op {
            0 => params.brightness,
            1 => params.contrast,
            2 => params.saturation,
            _ => params.hue,
        };
        if rng.uniform(0.0, 1.0) < prob {
            continue;
        }
        let delta = rng.uniform(low, high);
        fired = true;
        let step: Affine = match op {
            0 => [
                [1.0, 0.0, 0.0, delta],
                [0.0, 1.0, 0.0, delta],
                [0.0, 0.0, 1.0, delta],
            ],
            1 => [
                [delta, 0.0, 0.0, 0.0],
                [0.0, delta, 0.0, 0.0],
                [0.0, 0.0, delta, 0.0],
            ],
            2 => {
                let g = [
                    0.299 * (1.0 - delta),
                    0.587 * (1.0 - delta),
                    0.114 * (1.0 - delta),
                ];
                let row = |c: usize| {
                    let mut r = [g[0], g[1], g[2], 0.0];
                    r[c] += delta;
                    r
                };
                [row(0), row(1), row(2)]
            }
            _ => {
                let m = hue_matrix64(delta);
                m.map(|r| [r[0], r[1], r[2], 0.0])
            }
        };
        map = compose(&step, &map);
    }
    if fired {
        image.integral = false;
        apply_affine(image, &map);
    }
}

/// A 3×4 affine map of RGB: `out[c] = Σ m[c][k]·in[k] + m[c][3]`.
type Affine = [[f64; 4]; 3];

/// `outer ∘ inner`.
fn compose(outer: &Affine, inner: &Affine) -> Affine {
    let mut out = [[0.0; 4]; 3];
    for c in 0..3 {
        for k in 0..4 {
            let mut v: f64 = (0..3).map(|j| outer[c][j] * inner[j][k]).sum();
            if k == 3 {
                v += outer[c][3];
            }
            out[c][k] = v;
        }
    }
    out
}

fn apply_affine(image: &mut RgbImage, map: &Affine) {
    let m = map.map(|r| r.map(|v| v as f32));
    for px in image.pixels.chunks_exact_mut(3) {
        let (r, g, b) = (px[0], px[1], px[2]);
        for (c, row) in m.iter().enumerate() {
            px[c] = row[0] * r + row[1] * g + row[2] * b + row[3];
        }
    }
}

/// `rgb' = Tinv · R(δπ) · Tyiq · rgb`.
pub fn hue_matrix(delta: f64) -> [[f32; 3]; 3] {
    hue_matrix64(delta).map(|row| row.map(|v| v as f32))
}

fn hue_matrix64(delta: f64) -> [[f64; 3]; 3] {
    let (w, u) = (delta * std::f64::consts::PI).sin_cos();
    let bt = [[1.0, 0.0, 0.0], [0.0, u, -w], [0.0, w, u]];
    let tyiq = [
        [0.299, 0.587, 0.114],
        [0.596, -0.274, -0.321],
        [0.211, -0.523, 0.311],
    ];
    let ityiq = [
        [1.0, 0.956, 0.621],
        [1.0, -0.272, -0.647],
        [1.0, -1.107, 1.705],
    ];
    let mul = |a: [[f64; 3]; 3], b: [[f64; 3]; 3]| {
        let mut c = [[0.0; 3]; 3];
        for i in 0..3 {
            for j in 0..3 {
                c[i][j] = (0..3).map(|k| a[i][k] * b[k][j]).sum();
            }
        }
        c
    };
    mul(mul(ityiq, bt), tyiq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_rotation_is_nearly_identity() {
        // Tinv·Tyiq is the identity up to the 3-decimal rounding of the published matrices.
        let m = hue_matrix(0.0);
        for (i, row) in m.iter().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((v - want).abs() < 2e-3, "m[{i}][{j}] = {v}");
            }
        }
    }

    /// PaddleDetection's ops one after another, with the same draws, as the reference.
    fn sequential(image: &RgbImage, params: &RandomDistort, rng: &mut AugRng) -> Vec<f32> {
        let mut px = image.pixels.clone();
        let mut order = [0usize, 1, 2, 3];
        rng.shuffle(&mut order);
        for op in order {
            let [low, high, prob] = [
                params.brightness,
                params.contrast,
                params.saturation,
                params.hue,
            ][op];
            if rng.uniform(0.0, 1.0) < prob {
                continue;
            }
            let delta = rng.uniform(low, high);
            let d = delta as f32;
            for p in px.chunks_exact_mut(3) {
                let (r, g, b) = (p[0], p[1], p[2]);
                match op {
                    0 => p.iter_mut().for_each(|v| *v += d),
                    1 => p.iter_mut().for_each(|v| *v *= d),
                    2 => {
                        let gray = (r * 0.299 + g * 0.587 + b * 0.114) * (1.0 - d);
                        p.iter_mut().for_each(|v| *v = *v * d + gray);
                    }
                    _ => {
                        let m = hue_matrix(delta);
                        for c in 0..3 {
                            p[c] = m[c][0] * r + m[c][1] * g + m[c][2] * b;
                        }
                    }
                }
            }
        }
        px
    }

    #[test]
    fn composed_map_equals_the_ops_in_sequence() {
        let mut image = RgbImage::filled(3, 3, [0.0; 3]);
        for (i, v) in image.pixels.iter_mut().enumerate() {
            *v = (i * 37 % 256) as f32;
        }
        let params = RandomDistort::default();
        for seed in 0..50 {
            let want = sequential(&image, &params, &mut AugRng::from_keys(&[seed]));
            let mut got = image.clone();
            random_distort(&mut got, &params, &mut AugRng::from_keys(&[seed]));
            for (a, b) in got.pixels.iter().zip(&want) {
                assert!((a - b).abs() < 1e-2, "seed {seed}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn gray_is_kept_by_saturation_and_hue() {
        let params = RandomDistort {
            hue: [-18.0, 18.0, 0.0],
            saturation: [0.5, 1.5, 0.0],
            contrast: [0.5, 1.5, 1.0],
            brightness: [0.5, 1.5, 1.0],
        };
        let mut image = RgbImage::filled(2, 2, [100.0, 100.0, 100.0]);
        random_distort(&mut image, &params, &mut AugRng::from_keys(&[3]));
        assert!(!image.integral);
        // Up to the 3-decimal rounding of the published YIQ matrices.
        for v in &image.pixels {
            assert!((v - 100.0).abs() < 0.5, "{v}");
        }
    }

    #[test]
    fn no_op_keeps_integral_image() {
        let params = RandomDistort {
            hue: [-18.0, 18.0, 1.0],
            saturation: [0.5, 1.5, 1.0],
            contrast: [0.5, 1.5, 1.0],
            brightness: [0.5, 1.5, 1.0],
        };
        let mut image = RgbImage::filled(2, 2, [1.0, 2.0, 3.0]);
        random_distort(&mut image, &params, &mut AugRng::from_keys(&[1]));
        assert!(image.integral);
        assert_eq!(image.pixels[..3], [1.0, 2.0, 3.0]);
    }
}
