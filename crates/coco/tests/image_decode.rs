//! Decoding: every PNG colour type becomes RGB; bad files are errors naming the path.

use std::path::Path;

use ringdet_coco::image::{decode_image, encode_jpeg, read_image};
use serde_json::Value;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/png");

#[test]
fn png_colour_types_decode_to_rgb() {
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(DIR).join("expected.json")).unwrap(),
    )
    .unwrap();
    for (name, want) in doc["pixels"].as_object().unwrap() {
        let image = read_image(&Path::new(DIR).join(name)).unwrap();
        assert_eq!((image.height, image.width), (4, 5), "{name}");
        let want: Vec<f32> = want
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(image.pixels, want, "{name}");
        assert!(image.integral);
    }
}

#[test]
fn jpeg_round_trip_is_close() {
    let rgb: Vec<u8> = (0..32 * 24 * 3).map(|i| ((i / 3) % 32 * 8) as u8).collect();
    let bytes = encode_jpeg(24, 32, &rgb, 95).unwrap();
    let image = decode_image(&bytes, Path::new("mem.jpg")).unwrap();
    assert_eq!((image.height, image.width), (24, 32));
    let mean_err: f32 = image
        .pixels
        .iter()
        .zip(&rgb)
        .map(|(a, &b)| (a - b as f32).abs())
        .sum::<f32>()
        / rgb.len() as f32;
    assert!(mean_err < 4.0, "{mean_err}");
}

#[test]
fn a_truncated_jpeg_is_an_error_not_a_grey_image() {
    let rgb: Vec<u8> = (0..64 * 48 * 3).map(|i| (i * 7 % 251) as u8).collect();
    let bytes = encode_jpeg(48, 64, &rgb, 90).unwrap();
    // Complete, and complete with trailing zero padding: decoded.
    decode_image(&bytes, Path::new("ok.jpg")).unwrap();
    let mut padded = bytes.clone();
    padded.extend_from_slice(&[0; 16]);
    decode_image(&padded, Path::new("ok.jpg")).unwrap();
    // Cut at 60%: the lenient decoder would fill the rest with grey; here it is an error.
    let cut = &bytes[..bytes.len() * 6 / 10];
    let err = decode_image(cut, Path::new("data/cut.jpg"))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("data/cut.jpg: cannot decode image: ") && err.contains("truncated"),
        "{err}"
    );
}

#[test]
fn bad_files_name_the_path() {
    let missing = read_image(Path::new("/nonexistent/dir/x.jpg"))
        .unwrap_err()
        .to_string();
    assert!(
        missing.contains("/nonexistent/dir/x.jpg") && missing.contains("cannot read"),
        "{missing}"
    );
    for (bytes, what) in [
        (&b"GIF89a...."[..], "neither a JPEG nor a PNG"),
        (&b"\xFF\xD8\xFF\xE0garbage"[..], "cannot decode"),
        (&b"\x89PNG\r\n\x1a\ntruncated"[..], "cannot decode"),
    ] {
        let err = decode_image(bytes, Path::new("data/img.bin"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("data/img.bin: ") && err.contains(what),
            "{err}"
        );
    }
}

#[test]
fn exif_orientation_is_not_applied() {
    // A 32×24 JPEG tagged "rotate 90° clockwise" (orientation 6) keeps its stored 32×24 grid.
    let mut exif = b"Exif\0\0II*\0\x08\0\0\0\x01\0".to_vec();
    exif.extend_from_slice(&[0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0]);
    let rgb: Vec<u8> = (0..32 * 24 * 3).map(|i| (i % 251) as u8).collect();
    let mut bytes = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut bytes, 90);
    encoder.add_app_segment(1, exif).unwrap();
    encoder
        .encode(&rgb, 32, 24, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    assert!(bytes.windows(6).any(|w| w == b"Exif\0\0"));
    let image = decode_image(&bytes, Path::new("rotated.jpg")).unwrap();
    assert_eq!((image.height, image.width), (24, 32));
}

#[test]
fn grayscale_and_cmyk_jpegs_decode_to_rgb() {
    // COCO train2017 holds some grayscale JPEGs (and a few CMYK ones): they must load as RGB.
    let luma: Vec<u8> = (0..16 * 8).map(|i| (i * 2) as u8).collect();
    let mut bytes = Vec::new();
    jpeg_encoder::Encoder::new(&mut bytes, 100)
        .encode(&luma, 16, 8, jpeg_encoder::ColorType::Luma)
        .unwrap();
    let image = decode_image(&bytes, Path::new("gray.jpg")).unwrap();
    assert_eq!((image.height, image.width), (8, 16));
    for (i, px) in image.pixels.chunks_exact(3).enumerate() {
        assert!(
            px[0] == px[1] && px[1] == px[2],
            "pixel {i} not gray: {px:?}"
        );
        assert!(
            (px[0] - luma[i] as f32).abs() <= 3.0,
            "pixel {i}: {} vs {}",
            px[0],
            luma[i]
        );
    }
    let cmyk: Vec<u8> = (0..16 * 8)
        .flat_map(|i| [0u8, 255, 255, (i % 64) as u8])
        .collect();
    let mut bytes = Vec::new();
    jpeg_encoder::Encoder::new(&mut bytes, 100)
        .encode(&cmyk, 16, 8, jpeg_encoder::ColorType::Cmyk)
        .unwrap();
    let image = decode_image(&bytes, Path::new("cmyk.jpg")).unwrap();
    assert_eq!(
        (image.height, image.width, image.pixels.len()),
        (8, 16, 16 * 8 * 3)
    );
}
