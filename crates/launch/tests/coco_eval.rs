//! `ringdet coco-eval` end to end: summary and `--json` output, unknown images, invalid input.

use std::process::{Command, Output};

const SHARED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/coco-eval/cases"
);
const OURS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../coco/tests/fixtures/eval_cases"
);

fn ringdet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ringdet"))
        .arg("coco-eval")
        .args(args)
        .output()
        .expect("run ringdet")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn json_output_is_one_object_matching_pycocotools() {
    let dir = format!("{SHARED}/r01_random_small");
    let out = ringdet(&[
        &format!("{dir}/gt.json"),
        &format!("{dir}/dt.json"),
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let got: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let want: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{dir}/expected.json")).unwrap()).unwrap();
    let (got_stats, want_stats) = (
        got["stats"].as_array().unwrap(),
        want["stats"].as_array().unwrap(),
    );
    assert_eq!(got_stats.len(), 12);
    for (g, w) in got_stats.iter().zip(want_stats) {
        assert!(
            (g.as_f64().unwrap() - w.as_f64().unwrap()).abs() <= 1e-9,
            "{g} vs {w}"
        );
    }
    let got_cats = got["per_category_ap"].as_object().unwrap();
    assert_eq!(got_cats.len(), 10);
    for (id, w) in want["per_category_ap"].as_object().unwrap() {
        let g = got_cats[id].as_f64().unwrap();
        assert!(
            (g - w.as_f64().unwrap()).abs() <= 1e-9,
            "category {id}: {g} vs {w}"
        );
    }
    assert_eq!(got_cats["1"].as_f64(), Some(-1.0));
    assert!(text(&out.stderr).contains("coco-eval: loaded"));
}

#[test]
fn summary_prints_twelve_lines() {
    let dir = format!("{SHARED}/t01_single_image");
    let out = ringdet(&[&format!("{dir}/gt.json"), &format!("{dir}/dt.json")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 12, "{stdout}");
    assert_eq!(
        lines[0],
        " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.585"
    );
    assert_eq!(
        lines[11],
        " Average Recall     (AR) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = 0.800"
    );
}

#[test]
fn empty_detections_are_valid() {
    let dir = format!("{SHARED}/t02_empty_detections");
    let out = ringdet(&[
        &format!("{dir}/gt.json"),
        &format!("{dir}/dt.json"),
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        got["stats"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v.as_f64() == Some(0.0))
    );
}

#[test]
fn unknown_image_fails_unless_dropped() {
    let dir = format!("{OURS}/e01_unknown_image");
    let (gt, dt) = (format!("{dir}/gt.json"), format!("{dir}/dt.json"));
    let out = ringdet(&[&gt, &dt]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("image_id 99 is not among the ground-truth images"),
        "{err}"
    );
    assert!(err.contains("--drop-unknown"), "{err}");
    assert!(out.stdout.is_empty());
    let out = ringdet(&[&gt, &dt, "--drop-unknown", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("warning: dropped 1 detection(s)"));
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ap = got["stats"][0].as_f64().unwrap();
    assert!((ap - 1.0).abs() < 1e-9, "{ap}");
}

#[test]
fn invalid_input_exits_non_zero_with_a_message() {
    let dir = std::env::temp_dir().join(format!("ringdet-coco-eval-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let gt = format!("{SHARED}/t01_single_image/gt.json");
    let bad = dir.join("bad_dt.json");
    std::fs::write(
        &bad,
        r#"[{"image_id": 42, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.5},
            {"image_id": 42, "category_id": 1, "bbox": [1, 2, 3], "score": 0.5}]"#,
    )
    .unwrap();
    let out = ringdet(&[&gt, bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("detections[1].bbox: expected 4 numbers, got 3"),
        "{err}"
    );
    let out = ringdet(&[&gt, "/nonexistent/dt.json"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("/nonexistent/dt.json"));
    std::fs::remove_dir_all(&dir).ok();
}
