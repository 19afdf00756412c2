//! NormalizeImage (`x/255`, then `(x − mean)/std` per RGB channel) fused with Permute (HWC → CHW),
//! writing straight into the batch tensor.

use crate::image::RgbImage;

/// ImageNet mean, RGB.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet standard deviation, RGB.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Writes `(v · (1/255) − mean[c]) / std[c]` of `image` into `out` as `3 × H × W` (CHW).
///
/// Panics if `out.len() != 3·H·W` (a caller bug, not an input problem).
pub fn normalize_permute(image: &RgbImage, mean: [f32; 3], std: [f32; 3], out: &mut [f32]) {
    let plane = image.height * image.width;
    assert_eq!(
        out.len(),
        3 * plane,
        "output buffer does not hold 3×{}×{}",
        image.height,
        image.width
    );
    let (r, rest) = out.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    let scale = 1.0f32 / 255.0;
    for (i, px) in image.pixels.chunks_exact(3).enumerate() {
        r[i] = (px[0] * scale - mean[0]) / std[0];
        g[i] = (px[1] * scale - mean[1]) / std[1];
        b[i] = (px[2] * scale - mean[2]) / std[2];
    }
}
