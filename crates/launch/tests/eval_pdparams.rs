//! `ringdet eval -o weights=W.pdparams` reads Paddle's pickle directly: the same model saved as
//! `.pdparams` and as safetensors gives the same stats and the same `bbox.json`, byte for byte,
//! and `weights=W` without an extension finds `W.pdparams`.

mod common;

use common::{BIN, scratch};
use ringdet_detect::arch::{Arch, ModelConfig};
use ringdet_detect::init::{SeededNormal, initialize};
use ringdet_detect::state::ModelState;
use std::path::Path;
use std::process::{Command, Stdio};

fn eval(dir: &Path, weights: &Path, data: &Path, out: &str) -> (String, Vec<u8>) {
    let config =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../train/tests/data/ppyoloe_tiny_eval.yml");
    let o = Command::new(BIN)
        .current_dir(dir)
        .arg("eval")
        .arg("-c")
        .arg(&config)
        .arg("-o")
        .arg(format!("weights={}", weights.display()))
        .arg(format!("EvalDataset.dataset_dir={}", data.display()))
        .arg("PPYOLOEHead.nms.score_threshold=0.001")
        .args(["--json", "--output_eval", out])
        .env_remove("RINGDET_RANK")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let bbox = std::fs::read(dir.join(out).join("bbox.json")).unwrap();
    (String::from_utf8(o.stdout).unwrap(), bbox)
}

#[test]
fn pdparams_weights_evaluate_as_safetensors() {
    let dir = scratch("eval-pdparams");
    let data = dir.join("shapes");
    let made = Command::new(BIN)
        .args([
            "make-dataset",
            "shapes",
            "--train",
            "4",
            "--val",
            "4",
            "--size",
            "64",
        ])
        .arg("--out")
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let arch = Arch::new(ModelConfig::new(0.25, 0.33).with_classes(7)).unwrap();
    let mut state = ModelState::zeros(&arch).unwrap();
    initialize(&mut state, &mut SeededNormal::new(5));
    ringdet_detect::checkpoint::save(&state, dir.join("w.safetensors")).unwrap();
    ringdet_detect::checkpoint::save(&state, dir.join("m.pdparams")).unwrap();
    let (a, bbox_a) = eval(&dir, &dir.join("w.safetensors"), &data, "st");
    let (b, bbox_b) = eval(&dir, &dir.join("m"), &data, "pd");
    assert!(a.starts_with("{\"stats\":["), "{a}");
    assert_eq!(a, b);
    assert_eq!(bbox_a, bbox_b);
}
