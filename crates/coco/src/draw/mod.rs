//! Detections drawn on pictures a person can look at (`ringdet infer`, the trainer's demo): a
//! box per detection in its class's colour, and a label `name 0.87` in a filled box of the same
//! colour with black or white text, whichever contrasts more, so the text reads on any image.
//!
//! The font is the public-domain 8×8 bitmap font of the `font8x8` crate, compiled in (no system
//! font at run time), scaled by a whole factor that grows with the image: 8 px text on 160–399 px
//! images, 16 px from 400 px, so labels stay crisp (no anti-aliasing to blur at small sizes).
//! [`save_image`] writes JPEG or PNG by the file's extension.
//!
//! ```
//! use ringdet_coco::draw::{Detection, draw_detections};
//! use ringdet_coco::image::RgbImage;
//!
//! let image = RgbImage::filled(160, 160, [90.0, 120.0, 60.0]);
//! let dets = [Detection { bbox: [20.0, 30.0, 60.0, 50.0], class: 1, score: 0.87 }];
//! let labels = ["circle".to_string(), "square".to_string()];
//! let drawn = draw_detections(&image, &dets, &labels, 0.5);
//! assert_ne!(drawn, image);
//! ```

mod font;

use std::path::{Path, PathBuf};

use crate::image::{RgbImage, encode_jpeg, encode_png};

/// One detection to draw: a box in original-image pixels, a class index and a score.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Detection {
    /// `x, y, w, h` in pixels of the image it is drawn on (COCO's box convention).
    pub bbox: [f32; 4],
    /// Index into the label list (the model's class index).
    pub class: usize,
    /// Confidence in 0..=1.
    pub score: f32,
}

/// Why a picture could not be written; names the file.
#[derive(Debug, thiserror::Error)]
pub enum DrawError {
    /// The extension names no format this crate writes.
    #[error("{path}: cannot tell the image format from the extension (use .jpg, .jpeg or .png)")]
    Format {
        /// The file.
        path: PathBuf,
    },
    /// The encoder refused the pixels.
    #[error("{path}: encoding the image failed: {reason}")]
    Encode {
        /// The file.
        path: PathBuf,
        /// What the encoder said.
        reason: String,
    },
    /// The file could not be written.
    #[error("{path}: cannot write the image: {error}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
}

/// JPEG quality of [`save_image`] (PaddleDetection saves its drawn pictures at 95).
pub const JPEG_QUALITY: u8 = 95;

/// Distinct, saturated colours for the first classes (Tableau 10, then brighter tones); later
/// classes get golden-angle hues.
const PALETTE: [[u8; 3]; 16] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
    [255, 215, 0],
    [0, 255, 127],
    [255, 0, 255],
    [0, 128, 255],
    [255, 64, 64],
    [128, 255, 0],
];

/// The RGB colour of class `class`: fixed for a class, different for neighbouring classes.
pub fn class_color(class: usize) -> [u8; 3] {
    if let Some(c) = PALETTE.get(class) {
        return *c;
    }
    let hue = (class as f64 * 137.507_764) % 360.0;
    hsv_to_rgb(hue, 0.85, 0.95)
}

fn hsv_to_rgb(h: f64, s: f64, v: f64) -> [u8; 3] {
    let c = v * s;
    let x = c * (1.0 - ((h / 60.0) % 2.0 - 1.0).abs());
    let m = v - c;
    let (r, g, b) = match (h / 60.0) as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    [r, g, b].map(|v| ((v + m) * 255.0).round().clamp(0.0, 255.0) as u8)
}

/// Black or white, whichever reads better on `background` (Rec. 601 luma).
fn text_color(background: [u8; 3]) -> [u8; 3] {
    let [r, g, b] = background.map(f32::from);
    if 0.299 * r + 0.587 * g + 0.114 * b > 140.0 {
        [0, 0, 0]
    } else {
        [255, 255, 255]
    }
}

/// How thick box lines are and how much the 8×8 font is scaled on an image of this size.
fn sizes(height: usize, width: usize) -> (usize, usize) {
    let short = height.min(width);
    let line = (short / 160).clamp(2, 4);
    let scale = (1 + short / 400).min(4);
    (line, scale)
}

/// The label PaddleDetection draws: the class name (its index when `labels` has none) and the
/// score to two decimals.
pub fn label_text(class: usize, score: f32, labels: &[String]) -> String {
    let name = labels
        .get(class)
        .cloned()
        .unwrap_or_else(|| class.to_string());
    format!("{name} {score:.2}")
}

/// A copy of `image` with every detection scoring at least `threshold` drawn: the box outline in
/// the class's colour and its label in a filled box of that colour above the box (inside it when
/// the box touches the top edge), kept within the image. Higher scores are drawn last (on top).
pub fn draw_detections(
    image: &RgbImage,
    detections: &[Detection],
    labels: &[String],
    threshold: f32,
) -> RgbImage {
    let mut out = image.clone();
    let mut kept: Vec<&Detection> = detections
        .iter()
        .filter(|d| d.score >= threshold && d.bbox.iter().all(|v| v.is_finite()))
        .collect();
    kept.sort_by(|a, b| a.score.total_cmp(&b.score));
    let (line, scale) = sizes(image.height, image.width);
    let mut canvas = Canvas { image: &mut out };
    for d in &kept {
        let color = class_color(d.class);
        let [x, y, w, h] = d.bbox;
        canvas.rect_outline(x, y, x + w, y + h, line, color);
    }
    for d in &kept {
        let color = class_color(d.class);
        let text = label_text(d.class, d.score, labels);
        canvas.label(d.bbox[0], d.bbox[1], &text, scale, color);
    }
    out
}

/// Pixel writes clipped to the image.
struct Canvas<'a> {
    image: &'a mut RgbImage,
}

impl Canvas<'_> {
    /// Fills the pixels `x0..x1, y0..y1` (clipped).
    fn fill(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, color: [u8; 3]) {
        let (w, h) = (self.image.width as i64, self.image.height as i64);
        let (x0, x1) = (x0.clamp(0, w), x1.clamp(0, w));
        let (y0, y1) = (y0.clamp(0, h), y1.clamp(0, h));
        let rgb = color.map(f32::from);
        for y in y0..y1 {
            for x in x0..x1 {
                let i = ((y * w + x) * 3) as usize;
                self.image.pixels[i..i + 3].copy_from_slice(&rgb);
            }
        }
    }

    /// A `line`-pixel outline whose outer edge is the box `x1, y1, x2, y2` (rounded to pixels).
    fn rect_outline(&mut self, x1: f32, y1: f32, x2: f32, y2: f32, line: usize, color: [u8; 3]) {
        let r = |v: f32| v.round() as i64;
        let (x1, y1, x2, y2) = (r(x1), r(y1), r(x2.max(x1 + 1.0)), r(y2.max(y1 + 1.0)));
        let t = line as i64;
        self.fill(x1, y1, x2, y1 + t, color);
        self.fill(x1, y2 - t, x2, y2, color);
        self.fill(x1, y1, x1 + t, y2, color);
        self.fill(x2 - t, y1, x2, y2, color);
    }

    /// `text` in a filled box of `color` whose bottom-left sits at the box corner `(x, y)`; moved
    /// inside the box when there is no room above, and left so that it stays on the image.
    fn label(&mut self, x: f32, y: f32, text: &str, scale: usize, color: [u8; 3]) {
        let pad = scale as i64;
        let glyph = (font::GLYPH * scale) as i64;
        let chars = text.chars().count() as i64;
        let box_w = chars * glyph + 2 * pad;
        let box_h = glyph + 2 * pad;
        let (img_w, img_h) = (self.image.width as i64, self.image.height as i64);
        let mut left = (x.round() as i64).max(0);
        if left + box_w > img_w {
            left = (img_w - box_w).max(0);
        }
        let top_edge = (y.round() as i64).clamp(0, img_h.max(1) - 1);
        let top = if top_edge - box_h >= 0 {
            top_edge - box_h
        } else {
            top_edge
        };
        self.fill(left, top, left + box_w, top + box_h, color);
        let ink = text_color(color);
        for (i, ch) in text.chars().enumerate() {
            let gx = left + pad + i as i64 * glyph;
            let rows = font::glyph(ch);
            for (ry, bits) in rows.iter().enumerate() {
                for rx in 0..font::GLYPH {
                    if bits & (1 << rx) != 0 {
                        let px = gx + (rx * scale) as i64;
                        let py = top + pad + (ry * scale) as i64;
                        self.fill(px, py, px + scale as i64, py + scale as i64, ink);
                    }
                }
            }
        }
    }
}

/// The image's pixels rounded and saturated to bytes.
pub fn to_rgb8(image: &RgbImage) -> Vec<u8> {
    image
        .pixels
        .iter()
        .map(|v| v.round().clamp(0.0, 255.0) as u8)
        .collect()
}

/// Writes `image` to `path` as JPEG (`.jpg`, `.jpeg`, quality [`JPEG_QUALITY`]) or PNG (`.png`),
/// by the extension, case-insensitively; creates no folders.
pub fn save_image(path: &Path, image: &RgbImage) -> Result<(), DrawError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let rgb = to_rgb8(image);
    let encode_err = |reason: String| DrawError::Encode {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = match ext.as_deref() {
        Some("jpg" | "jpeg") => encode_jpeg(image.height, image.width, &rgb, JPEG_QUALITY),
        Some("png") => encode_png(image.height, image.width, &rgb),
        _ => {
            return Err(DrawError::Format {
                path: path.to_path_buf(),
            });
        }
    }
    .map_err(encode_err)?;
    std::fs::write(path, bytes).map_err(|error| DrawError::Write {
        path: path.to_path_buf(),
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::decode_image;

    fn grey(h: usize, w: usize) -> RgbImage {
        RgbImage::filled(h, w, [128.0, 128.0, 128.0])
    }

    #[test]
    fn colours_are_fixed_and_differ_between_neighbours() {
        for c in 0..40 {
            assert_eq!(class_color(c), class_color(c));
            assert_ne!(class_color(c), class_color(c + 1), "class {c}");
        }
    }

    #[test]
    fn text_contrasts_with_its_background() {
        assert_eq!(text_color([255, 215, 0]), [0, 0, 0]);
        assert_eq!(text_color([31, 119, 180]), [255, 255, 255]);
    }

    #[test]
    fn the_box_outline_is_in_the_class_colour_and_the_label_sits_above() {
        let image = grey(160, 160);
        let d = Detection {
            bbox: [40.0, 60.0, 50.0, 40.0],
            class: 3,
            score: 0.9,
        };
        let out = draw_detections(&image, &[d], &vec!["a".to_string(); 4], 0.5);
        let c = class_color(3).map(f32::from);
        // Left edge, mid height; the box inside untouched.
        assert_eq!(out.get(80, 40), c);
        assert_eq!(out.get(80, 65), [128.0; 3]);
        // The label box: just above the top-left corner, in the class colour or the ink.
        let above = out.get(59, 40);
        assert!(above == c || above == [255.0; 3], "{above:?}");
        // Nothing drawn below the box.
        assert_eq!(out.get(110, 60), [128.0; 3]);
    }

    #[test]
    fn detections_below_the_threshold_are_not_drawn() {
        let image = grey(64, 64);
        let d = Detection {
            bbox: [5.0, 5.0, 20.0, 20.0],
            class: 0,
            score: 0.3,
        };
        assert_eq!(draw_detections(&image, &[d], &[], 0.5), image);
        assert_ne!(draw_detections(&image, &[d], &[], 0.25), image);
    }

    #[test]
    fn boxes_off_the_image_and_at_its_edges_are_clipped() {
        let image = grey(50, 40);
        let dets = [
            Detection {
                bbox: [-30.0, -30.0, 200.0, 200.0],
                class: 1,
                score: 1.0,
            },
            Detection {
                bbox: [35.0, 0.0, 10.0, 10.0],
                class: 20,
                score: 0.99,
            },
            Detection {
                bbox: [f32::NAN, 0.0, 1.0, 1.0],
                class: 2,
                score: 0.99,
            },
        ];
        let out = draw_detections(&image, &dets, &["long class name".into()], 0.0);
        assert_eq!(out.pixels.len(), image.pixels.len());
    }

    #[test]
    fn labels_fall_back_to_the_class_index() {
        assert_eq!(label_text(1, 0.876, &["a".into(), "b".into()]), "b 0.88");
        assert_eq!(label_text(7, 0.5, &[]), "7 0.50");
    }

    #[test]
    fn png_round_trips_and_jpeg_decodes() {
        let dir = std::env::temp_dir().join(format!("ringdet-draw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut image = grey(33, 47);
        image.pixels[5] = 3.0;
        image.pixels[100] = 250.0;
        let png = dir.join("a.PNG");
        save_image(&png, &image).unwrap();
        let back = decode_image(&std::fs::read(&png).unwrap(), &png).unwrap();
        assert_eq!(back, image);
        let jpg = dir.join("a.jpg");
        save_image(&jpg, &image).unwrap();
        let back = decode_image(&std::fs::read(&jpg).unwrap(), &jpg).unwrap();
        assert_eq!((back.height, back.width), (33, 47));
        let err = save_image(&dir.join("a.bmp"), &image).unwrap_err();
        assert!(err.to_string().contains("a.bmp"), "{err}");
        let err = save_image(&dir.join("missing/a.png"), &image).unwrap_err();
        assert!(err.to_string().contains("missing/a.png"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
