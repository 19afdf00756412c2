//! `ringdet eval -o weights=W.pdparams` reads Paddle's pickle directly: the same model saved as
//! `.pdparams` and as safetensors gives the same stats and the same `bbox.json`, byte for byte,
//! and `weights=W` without an extension finds `W.pdparams`.

mod common;

use common::{BIN, make_tiny_shapes, scratch, tiny_model};
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
    make_tiny_shapes(&data, 4, 4);
    let state = tiny_model(5);
    ringdet_detect::checkpoint::save(&state, dir.join("w.safetensors")).unwrap();
    ringdet_detect::checkpoint::save(&state, dir.join("m.pdparams")).unwrap();
    let (a, bbox_a) = eval(&dir, &dir.join("w.safetensors"), &data, "st");
    let (b, bbox_b) = eval(&dir, &dir.join("m"), &data, "pd");
    assert!(a.starts_with("{\"stats\":["), "{a}");
    assert_eq!(a, b);
    assert_eq!(bbox_a, bbox_b);
}
