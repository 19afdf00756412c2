//! The seed's command, unchanged but for `fleetrun` → `ringdet launch --nproc_per_node 2` and
//! `-o` overrides for epochs and batch size (plus `pretrain_weights=`, as the offline error
//! says): PaddleDetection's own `ppyoloe_crn_s_300e_coco.yml` (80 classes, 320–768 px
//! multi-scale, 640 px eval) trains a few steps on a `--layout coco` shapes set with `--eval`,
//! from the working directory the config's dataset paths are relative to.

mod common;

use std::path::Path;
use std::process::Command;

use common::{BIN, scratch};

#[test]
fn the_seeds_command_runs_on_a_coco_layout_shapes_set() {
    let dir = scratch("seed-command");
    let made = Command::new(BIN)
        .current_dir(&dir)
        .args([
            "make-dataset",
            "shapes",
            "--layout",
            "coco",
            "--out",
            "dataset/coco",
        ])
        .args(["--train", "6", "--val", "2", "--size", "96", "--seed", "3"])
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let config = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../configs/ppyoloe/ppyoloe_crn_s_300e_coco.yml")
        .canonicalize()
        .unwrap();
    let out = Command::new(BIN)
        .current_dir(&dir)
        .args(["launch", "--nproc_per_node", "2", "--start_port", "38410"])
        .arg("tools/train.py")
        .arg("-c")
        .arg(&config)
        .arg("--eval")
        .args([
            "-o",
            "epoch=1",
            "TrainReader.batch_size=1",
            "pretrain_weights=",
        ])
        .env_remove("RINGDET_JOB_SECRET")
        .env_remove("FLAGS_START_PORT")
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{all}");
    assert!(all.contains("training finished: "), "{all}");
    assert!(
        all.contains("detections of classes 7..79 are left out"),
        "{all}"
    );
    assert_eq!(all.matches("Average Precision").count(), 6, "{all}");
    let metrics = dir.join("output/ppyoloe_crn_s_300e_coco/metrics.jsonl");
    let text = std::fs::read_to_string(&metrics).unwrap();
    assert!(
        text.lines().any(|l| l.contains("\"kind\":\"eval\"")),
        "{text}"
    );
    assert!(
        dir.join("output/ppyoloe_crn_s_300e_coco/model_final.safetensors")
            .exists()
    );
}
