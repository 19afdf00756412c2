//! The losses reproduce PaddleDetection's values in testdata/ppyoloe-toy.

use ringdet_kernels::loss::{BoxLossParams, VarifocalParams, dfl as dfl_loss, giou, varifocal};
use serde_json::Value;

const TOY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/ppyoloe-toy/ppyoloe_golden_toy.json"
);

fn flat(v: &Value) -> Vec<f32> {
    match v {
        Value::Array(a) => a.iter().flat_map(flat).collect(),
        Value::Number(n) => vec![n.as_f64().unwrap_or(f64::NAN) as f32],
        other => panic!("unexpected JSON value {other}"),
    }
}

fn toy() -> Value {
    let text = std::fs::read_to_string(TOY).unwrap_or_else(|e| panic!("reading {TOY}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {TOY}: {e}"))
}

fn assert_close(what: &str, got: f32, want: f32) {
    let rel = (got - want).abs() / want.abs().max(1e-6);
    assert!(rel < 2e-6, "{what}: got {got}, golden {want} (rel {rel:e})");
}

#[test]
fn varifocal_matches_golden() {
    let t = toy();
    let v = &t["VFL"];
    let (pred, q, y) = (flat(&v["pred"]), flat(&v["gt_score"]), flat(&v["label"]));
    let loss =
        varifocal::varifocal_loss_forward(&pred, &q, &y, &VarifocalParams::default()).unwrap();
    assert_close("VFL sum", loss, flat(&v["loss_sum"])[0]);
}

#[test]
fn giou_matches_golden() {
    let t = toy();
    let g = &t["GIoU"];
    let (pred, gt, want) = (flat(&g["pred"]), flat(&g["gt"]), flat(&g["loss_per_box"]));
    let mut got = vec![0.0f32; want.len()];
    giou::giou_per_box(&mut got, &pred, &gt).unwrap();
    for (i, (a, b)) in got.iter().zip(&want).enumerate() {
        assert_close(&format!("GIoU box {i}"), *a, *b);
    }
    let weighted =
        giou::giou_loss_forward(&pred, &gt, &[1.0, 1.0], &BoxLossParams::default()).unwrap();
    assert_close("GIoU sum", weighted, want.iter().sum());
}

#[test]
fn dfl_matches_golden() {
    let t = toy();
    let d = &t["DFL"];
    let (logits, target) = (flat(&d["logits_4x17"]), flat(&d["target_ltrb"]));
    let loss =
        dfl_loss::dfl_loss_forward(&logits, &target, &[1.0], &BoxLossParams::default()).unwrap();
    assert_close(
        "DFL mean over sides",
        loss,
        flat(&d["loss_mean_over_4_sides"])[0],
    );
}

#[test]
fn dfl_targets_clip() {
    let mut t = [0.0f32; 4];
    dfl_loss::dfl_targets(&mut t, &[2.5, 3.5], &[3.0, 0.5, 40.0, 7.0], 16).unwrap();
    assert_eq!(t, [0.0, 3.0, 15.99, 3.5]);
}
