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

fn make(out: &std::path::Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ringdet"))
        .args(["make-dataset", "shapes", "--train", "1", "--val", "1"])
        .args(["--size", "32", "--out"])
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn an_existing_dataset_is_kept_without_force() {
    let out =
        std::env::temp_dir().join(format!("ringdet-make-dataset-force-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    assert!(make(&out, &[]).status.success());
    let json = out.join("annotations/instances_train2017.json");
    std::fs::write(&json, "mine").unwrap();
    let run = make(&out, &["--seed", "9"]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("{} already exists", json.display()))
            && stderr.contains("--force"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&json).unwrap(), "mine");
    let run = make(&out, &["--force"]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_ne!(std::fs::read_to_string(&json).unwrap(), "mine");
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn sizes_below_the_smallest_are_refused() {
    for size in ["0", "1", "3", "15"] {
        let out = std::env::temp_dir().join(format!(
            "ringdet-make-dataset-size-{size}-{}",
            std::process::id()
        ));
        let run = Command::new(env!("CARGO_BIN_EXE_ringdet"))
            .args([
                "make-dataset",
                "shapes",
                "--train",
                "1",
                "--val",
                "1",
                "--size",
                size,
                "--out",
            ])
            .arg(&out)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "--size {size}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "--size {size}: the smallest size the shapes dataset draws is 16"
            )),
            "{stderr}"
        );
        assert!(!out.exists(), "--size {size} wrote {}", out.display());
    }
}

#[test]
fn coco_layout_writes_dataset_coco() {
    let dir =
        std::env::temp_dir().join(format!("ringdet-make-dataset-coco-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_ringdet"))
        .current_dir(&dir)
        .args([
            "make-dataset",
            "shapes",
            "--layout",
            "coco",
            "--train",
            "2",
            "--val",
            "1",
        ])
        .args(["--size", "32"])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    for rel in [
        "dataset/coco/annotations/instances_train2017.json",
        "dataset/coco/annotations/instances_val2017.json",
        "dataset/coco/train2017/000000000001.jpg",
    ] {
        assert!(dir.join(rel).is_file(), "{rel} missing");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
