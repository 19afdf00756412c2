//! Our resize against `cv2.resize` (fixture made by fixtures/make_fixtures.py, OpenCV 5.0).

use ringdet_coco::image::RgbImage;
use ringdet_coco::transform::Interp;
use ringdet_coco::transform::resize::resize_image;
use serde_json::Value;

fn interp(name: &str) -> Interp {
    match name {
        "nearest" => Interp::Nearest,
        "linear" => Interp::Linear,
        "area" => Interp::Area,
        "cubic" => Interp::Cubic,
        "lanczos4" => Interp::Lanczos4,
        other => panic!("unknown interpolation {other}"),
    }
}

#[test]
fn every_interpolation_matches_opencv() {
    let text = include_str!("fixtures/resize_cv2.json");
    let doc: Value = serde_json::from_str(text).unwrap();
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 100);
    for case in cases {
        let get = |k: &str| case[k].as_u64().unwrap() as usize;
        let (h, w, oh, ow) = (get("h"), get("w"), get("out_h"), get("out_w"));
        let floats = |k: &str| {
            case[k]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect::<Vec<_>>()
        };
        let integral = case["kind"] == "u8";
        let image = RgbImage {
            height: h,
            width: w,
            pixels: floats("input"),
            integral,
        };
        let name = case["interp"].as_str().unwrap();
        let out = resize_image(&image, oh, ow, interp(name));
        let want = floats("output");
        assert_eq!(out.pixels.len(), want.len());
        // Float paths agree to rounding; OpenCV's 8-bit paths use fixed-point weights (±1).
        let tol = if integral { 1.0 } else { 2e-3 };
        for (i, (a, b)) in out.pixels.iter().zip(&want).enumerate() {
            assert!(
                (a - b).abs() <= tol,
                "{name} {} {h}x{w}->{oh}x{ow} at {i}: ours {a}, opencv {b}",
                case["kind"]
            );
        }
    }
}
