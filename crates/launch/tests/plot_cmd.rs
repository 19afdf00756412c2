//! `ringdet plot METRICS [-o PNG]`: draws the curves PNG beside the metrics file (or where `-o`
//! says) and reports what it read; a malformed row fails naming the file and line.

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_ringdet");

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("plot-cmd")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn row(step: usize) -> String {
    format!(
        "{{\"kind\":\"train\",\"epoch\":0,\"iter\":{step},\"step\":{step},\"lr\":0.01,\"loss\":{},\
         \"loss_cls\":1.0,\"loss_iou\":0.5,\"loss_dfl\":0.5,\"loss_l1\":0.1,\"batch_cost\":0.5,\
         \"data_cost\":0.0,\"comm_exposed\":0.0,\"ips\":8.0}}\n",
        3.0 - step as f64 * 0.1
    )
}

#[test]
fn plot_writes_curves_beside_the_metrics_or_where_asked() {
    let dir = scratch("ok");
    let metrics = dir.join("metrics.jsonl");
    let mut text: String = (0..5).map(row).collect();
    text.push_str(
        "{\"kind\":\"eval\",\"epoch\":0,\"stats\":[0.3,0.6,0,0,0,0,0,0,0,0,0,0],\"seconds\":1}\n",
    );
    std::fs::write(&metrics, text).unwrap();
    let out = Command::new(BIN)
        .args(["plot", metrics.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("5 training steps, 1 evaluations"),
        "{stdout}"
    );
    let png = std::fs::read(dir.join("curves.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));

    let other = dir.join("elsewhere/c.png");
    let out = Command::new(BIN)
        .args([
            "plot",
            metrics.to_str().unwrap(),
            "-o",
            other.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let (h, w, _) = ringdet_coco::image::decode_png(&std::fs::read(&other).unwrap()).unwrap();
    assert_eq!((w, h), (1200, 900));
}

#[test]
fn a_malformed_row_is_named_by_line() {
    let dir = scratch("bad");
    let metrics = dir.join("metrics.jsonl");
    std::fs::write(&metrics, format!("{}{}oops\n", row(0), row(1))).unwrap();
    let out = Command::new(BIN)
        .args(["plot", metrics.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:3: not a JSON object", metrics.display())),
        "{stderr}"
    );
    assert!(!dir.join("curves.png").exists());
}
