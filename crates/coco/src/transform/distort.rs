//! RandomDistort, the float version of PaddleDetection v2.4–v2.6 (the one that trained the published
//! weights): brightness (additive), contrast, saturation and a YIQ hue rotation by δ·π, applied in a
//! random order, each with probability ½, in float32 without clipping.

use super::AugRng;
use crate::image::Image;

/// Ranges `[low, high]` and skip probability of each op (PaddleDetection defaults).
#[derive(Clone, Debug)]
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
pub fn random_distort(image: &mut Image, params: &RandomDistort, rng: &mut AugRng) {
    let mut order = [0usize, 1, 2, 3]; // brightness, contrast, saturation, hue
    rng.shuffle(&mut order);
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
        image.integral = false;
        match op {
            0 => image.pixels.iter_mut().for_each(|v| *v += delta as f32),
            1 => image.pixels.iter_mut().for_each(|v| *v *= delta as f32),
            2 => saturate(image, delta as f32),
            _ => rotate_hue(image, delta),
        }
    }
}

fn saturate(image: &mut Image, delta: f32) {
    for px in image.pixels.chunks_exact_mut(3) {
        let gray = (px[0] * 0.299 + px[1] * 0.587 + px[2] * 0.114) * (1.0 - delta);
        for v in px {
            *v = *v * delta + gray;
        }
    }
}

/// `rgb' = Tinv · R(δπ) · Tyiq · rgb`.
pub fn hue_matrix(delta: f64) -> [[f32; 3]; 3] {
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
    let m = mul(mul(ityiq, bt), tyiq);
    m.map(|row| row.map(|v| v as f32))
}

fn rotate_hue(image: &mut Image, delta: f64) {
    let m = hue_matrix(delta);
    for px in image.pixels.chunks_exact_mut(3) {
        let (r, g, b) = (px[0], px[1], px[2]);
        for (c, row) in m.iter().enumerate() {
            px[c] = row[0] * r + row[1] * g + row[2] * b;
        }
    }
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

    #[test]
    fn gray_is_kept_by_saturation_and_hue() {
        let mut image = Image::filled(2, 2, [100.0, 100.0, 100.0]);
        saturate(&mut image, 1.4);
        rotate_hue(&mut image, 7.3);
        for v in &image.pixels {
            assert!((v - 100.0).abs() < 0.2, "{v}");
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
        let mut image = Image::filled(2, 2, [1.0, 2.0, 3.0]);
        random_distort(&mut image, &params, &mut AugRng::from_keys(&[1]));
        assert!(image.integral);
        assert_eq!(image.pixels[..3], [1.0, 2.0, 3.0]);
    }
}
