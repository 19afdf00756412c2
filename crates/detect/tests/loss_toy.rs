//! The kernels' varifocal, GIoU and DFL (as the head loss uses them) against the toy values from
//! PaddleDetection's own loss code.

mod common;

use ringdet_kernels::loss::{BoxLossParams, VarifocalParams, dfl, giou, varifocal};
use serde_json::Value;

fn flat(v: &Value) -> Vec<f32> {
    fn walk(v: &Value, out: &mut Vec<f32>) {
        match v {
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            other => out.push(other.as_f64().unwrap() as f32),
        }
    }
    let mut out = Vec::new();
    walk(v, &mut out);
    out
}

#[test]
fn losses_match_toy() {
    let j = common::json(&format!("{}/ppyoloe_golden_toy.json", common::TOY));
    let (p, q, y) = (
        flat(&j["VFL"]["pred"]),
        flat(&j["VFL"]["gt_score"]),
        flat(&j["VFL"]["label"]),
    );
    let sum = varifocal::varifocal_loss_forward(&p, &q, &y, &VarifocalParams::default()).unwrap();
    let expect = j["VFL"]["loss_sum"].as_f64().unwrap() as f32;
    assert!(
        (sum - expect).abs() <= 1e-6 * expect.abs().max(1.0),
        "VFL {sum} vs {expect}"
    );

    let (pb, gb) = (flat(&j["GIoU"]["pred"]), flat(&j["GIoU"]["gt"]));
    let mut per_box = vec![0.0f32; pb.len() / 4];
    giou::giou_per_box(&mut per_box, &pb, &gb).unwrap();
    assert_eq!(per_box.len(), 2);
    for (l, e) in per_box.iter().zip(flat(&j["GIoU"]["loss_per_box"])) {
        assert!((l - e).abs() < 1e-6, "GIoU {l} vs {e}");
    }

    let logits = flat(&j["DFL"]["logits_4x17"]);
    let t = flat(&j["DFL"]["target_ltrb"]);
    let l = dfl::dfl_loss_forward(&logits, &t, &[1.0], &BoxLossParams::default()).unwrap();
    let expect = j["DFL"]["loss_mean_over_4_sides"].as_f64().unwrap() as f32;
    assert!((l - expect).abs() < 1e-5, "DFL {l} vs {expect}");
}
