//! Image decoding: JPEG and PNG files to RGB pixels, without EXIF rotation.
//!
//! PaddleDetection decodes with OpenCV (`IMREAD_COLOR`, BGR) and converts to RGB; EXIF orientation is
//! not applied here so that pixels stay on the grid the COCO annotations were drawn on.

use std::path::{Path, PathBuf};

use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;

/// An RGB image, `height × width × 3`, row-major, channels last (HWC), held as `f32`.
///
/// `integral` is true while every value is a whole number in 0..=255 (the image is still what a
/// `uint8` array would hold in PaddleDetection); resizing such an image rounds and saturates the
/// result as OpenCV does for `uint8`. Float operations (RandomDistort, RandomExpand) clear it.
#[derive(Clone, Debug, PartialEq)]
pub struct RgbImage {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// `height * width * 3` values, RGB interleaved.
    pub pixels: Vec<f32>,
    /// True while the pixels are whole numbers in 0..=255.
    pub integral: bool,
}

impl RgbImage {
    /// A `height × width` image filled with one RGB colour.
    pub fn filled(height: usize, width: usize, rgb: [f32; 3]) -> RgbImage {
        let mut pixels = Vec::with_capacity(height * width * 3);
        for _ in 0..height * width {
            pixels.extend_from_slice(&rgb);
        }
        let integral = rgb
            .iter()
            .all(|v| v.fract() == 0.0 && (0.0..=255.0).contains(v));
        RgbImage {
            height,
            width,
            pixels,
            integral,
        }
    }

    /// Wraps 8-bit RGB bytes (`height * width * 3` of them).
    pub fn from_rgb8(height: usize, width: usize, rgb: &[u8]) -> RgbImage {
        RgbImage {
            height,
            width,
            pixels: rgb.iter().map(|&v| v as f32).collect(),
            integral: true,
        }
    }

    /// The pixel at (`y`, `x`) as RGB.
    pub fn get(&self, y: usize, x: usize) -> [f32; 3] {
        let i = (y * self.width + x) * 3;
        [self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]]
    }
}

/// Why an image could not be read or decoded; always names the file.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The file could not be read.
    #[error("{path}: cannot read image: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error (already in the message, so not chained as a source).
        error: std::io::Error,
    },
    /// The bytes are not a decodable JPEG or PNG.
    #[error("{path}: cannot decode image: {reason}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        reason: String,
    },
}

/// Reads and decodes a JPEG or PNG file to RGB (the `Decode` transform).
pub fn read_image(path: &Path) -> Result<RgbImage, ImageError> {
    let bytes = std::fs::read(path).map_err(|error| ImageError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    decode_image(&bytes, path)
}

/// Decodes JPEG or PNG bytes to RGB; `path` only names the source in errors.
pub fn decode_image(bytes: &[u8], path: &Path) -> Result<RgbImage, ImageError> {
    let fail = |reason: String| ImageError::Decode {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.starts_with(&[0xFF, 0xD8]) {
        let (h, w, rgb) = decode_jpeg(bytes).map_err(fail)?;
        Ok(RgbImage::from_rgb8(h, w, &rgb))
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        let (h, w, rgb) = decode_png(bytes).map_err(fail)?;
        Ok(RgbImage::from_rgb8(h, w, &rgb))
    } else {
        Err(fail(
            "neither a JPEG nor a PNG file (unknown signature)".into(),
        ))
    }
}

/// Decodes a JPEG to `(height, width, rgb bytes)`. A file that does not end with JPEG's
/// end-of-image marker (trailing zero bytes aside) is decoded in zune-jpeg's strict mode, so a
/// truncated file is an error instead of an image whose missing part is silently grey (what
/// the lenient mode, like OpenCV, returns); complete files keep the lenient decoder.
pub fn decode_jpeg(bytes: &[u8]) -> Result<(usize, usize, Vec<u8>), String> {
    let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let complete = bytes[..end].ends_with(&[0xFF, 0xD9]);
    let options = DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::RGB)
        .set_strict_mode(!complete);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    let rgb = decoder.decode().map_err(|e| {
        if complete {
            format!("{e:?}")
        } else {
            format!("{e:?} (no end-of-image marker: the file looks truncated)")
        }
    })?;
    let info = decoder.info().ok_or("JPEG without a header")?;
    let (h, w) = (info.height as usize, info.width as usize);
    check_len(h, w, 3, rgb.len())?;
    Ok((h, w, rgb))
}

/// Decodes a PNG (any colour type, 8 or 16 bits) to `(height, width, rgb bytes)`; alpha is dropped.
pub fn decode_png(bytes: &[u8]) -> Result<(usize, usize, Vec<u8>), String> {
    let options = DecoderOptions::default().png_set_strip_to_8bit(true);
    let mut decoder = zune_png::PngDecoder::new_with_options(ZCursor::new(bytes), options);
    let raw = decoder.decode_raw().map_err(|e| format!("{e:?}"))?;
    let (w, h) = decoder.dimensions().ok_or("PNG without a header")?;
    let colorspace = decoder.colorspace().ok_or("PNG without a colour type")?;
    let channels = colorspace.num_components();
    check_len(h, w, channels, raw.len())?;
    let rgb = match channels {
        3 => raw,
        4 => raw
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect(),
        1 => raw.iter().flat_map(|&v| [v, v, v]).collect(),
        2 => raw
            .chunks_exact(2)
            .flat_map(|p| [p[0], p[0], p[0]])
            .collect(),
        n => {
            return Err(format!(
                "unsupported PNG with {n} channels ({colorspace:?})"
            ));
        }
    };
    Ok((h, w, rgb))
}

fn check_len(h: usize, w: usize, channels: usize, got: usize) -> Result<(), String> {
    if h == 0 || w == 0 {
        return Err(format!("empty image {w}x{h}"));
    }
    if got != h * w * channels {
        return Err(format!(
            "decoder returned {got} bytes for {w}x{h}x{channels}"
        ));
    }
    Ok(())
}

/// Encodes 8-bit RGB pixels as a baseline JPEG of the given quality (1..=100).
pub fn encode_jpeg(
    height: usize,
    width: usize,
    rgb: &[u8],
    quality: u8,
) -> Result<Vec<u8>, String> {
    let (h, w) = (u16::try_from(height), u16::try_from(width));
    let (Ok(h), Ok(w)) = (h, w) else {
        return Err(format!("{width}x{height} is too large for JPEG"));
    };
    let mut out = Vec::with_capacity(height * width / 4);
    let encoder = jpeg_encoder::Encoder::new(&mut out, quality);
    encoder
        .encode(rgb, w, h, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// Encodes 8-bit RGB pixels as a PNG (lossless).
pub fn encode_png(height: usize, width: usize, rgb: &[u8]) -> Result<Vec<u8>, String> {
    if rgb.len() != height * width * 3 {
        return Err(format!(
            "{} bytes for a {width}x{height} RGB image",
            rgb.len()
        ));
    }
    let options = zune_core::options::EncoderOptions::new(
        width,
        height,
        ColorSpace::RGB,
        zune_core::bit_depth::BitDepth::Eight,
    );
    let mut out = Vec::with_capacity(rgb.len() / 2 + 64);
    zune_png::PngEncoder::new(rgb, options)
        .encode(&mut out)
        .map_err(|e| format!("{e:?}"))?;
    Ok(out)
}
