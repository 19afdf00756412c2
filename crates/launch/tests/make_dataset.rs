//! `ringdet make-dataset shapes` writes the COCO layout, and refuses bad arguments.

use std::process::Command;

#[test]
fn writes_coco_layout() {
    let out = std::env::temp_dir().join(format!("ringdet-make-dataset-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let run = Command::new(env!("CARGO_BIN_EXE_ringdet"))
        .args([
            "make-dataset",
            "shapes",
            "--train",
            "5",
            "--val",
            "2",
            "--seed",
            "3",
            "--size",
            "64",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(stderr.contains("wrote 5 train images"), "{stderr}");
    for rel in [
        "train2017/000000000001.jpg",
        "train2017/000000000005.jpg",
        "val2017/000000000007.jpg",
        "annotations/instances_train2017.json",
        "annotations/instances_val2017.json",
    ] {
        assert!(out.join(rel).is_file(), "{rel} missing");
    }
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn bad_quality_is_refused() {
    let run = Command::new(env!("CARGO_BIN_EXE_ringdet"))
        .args([
            "make-dataset",
            "shapes",
            "--out",
            "/tmp/never",
            "--quality",
            "0",
        ])
        .output()
        .unwrap();
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("quality"));
}
