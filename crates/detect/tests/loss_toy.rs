//! Varifocal, GIoU and DFL against the toy values from PaddleDetection's own loss code.

mod common;

use ringdet_detect::loss::{dfl_box, giou_loss, vfl};
use serde_json::Value;

fn mat(v: &Value) -> Vec<Vec<f32>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect()
}

#[test]
fn losses_match_toy() {
    let j = common::json(&format!("{}/ppyoloe_golden_toy.json", common::TOY));
    let (p, q, y) = (
        mat(&j["VFL"]["pred"]),
        mat(&j["VFL"]["gt_score"]),
        mat(&j["VFL"]["label"]),
    );
    let mut sum = 0.0;
    for i in 0..p.len() {
        for k in 0..p[i].len() {
            sum += vfl(p[i][k], q[i][k], y[i][k]).0;
        }
    }
    let expect = j["VFL"]["loss_sum"].as_f64().unwrap() as f32;
    assert!(
        (sum - expect).abs() <= 1e-6 * expect.abs().max(1.0),
        "VFL {sum} vs {expect}"
    );

    let (pb, gb) = (mat(&j["GIoU"]["pred"]), mat(&j["GIoU"]["gt"]));
    for (i, e) in j["GIoU"]["loss_per_box"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let l = giou_loss(
            &[pb[i][0], pb[i][1], pb[i][2], pb[i][3]],
            &[gb[i][0], gb[i][1], gb[i][2], gb[i][3]],
        )
        .0;
        assert!(
            (l - e.as_f64().unwrap() as f32).abs() < 1e-6,
            "GIoU box {i}: {l}"
        );
    }

    let logits: Vec<f32> = mat(&j["DFL"]["logits_4x17"]).concat();
    let t: Vec<f32> = j["DFL"]["target_ltrb"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    let (l, grad) = dfl_box(&logits, [t[0], t[1], t[2], t[3]]);
    let expect = j["DFL"]["loss_mean_over_4_sides"].as_f64().unwrap() as f32;
    assert!((l - expect).abs() < 1e-5, "DFL {l} vs {expect}");
    // Gradient check by central differences.
    for i in [0usize, 5, 20, 40, 67] {
        let h = 1e-2f32;
        let (mut a, mut b) = (logits.clone(), logits.clone());
        a[i] += h;
        b[i] -= h;
        let fd = (dfl_box(&a, [t[0], t[1], t[2], t[3]]).0
            - dfl_box(&b, [t[0], t[1], t[2], t[3]]).0)
            / (2.0 * h);
        assert!(
            (fd - grad[i]).abs() < 1e-3,
            "DFL grad {i}: {fd} vs {}",
            grad[i]
        );
    }
    // VFL derivative by central differences (weight not detached).
    for (pp, qq, yy) in [(0.3f32, 0.0f32, 0.0f32), (0.6, 0.7, 1.0)] {
        let h = 1e-3;
        let fd = (vfl(pp + h, qq, yy).0 - vfl(pp - h, qq, yy).0) / (2.0 * h);
        assert!((fd - vfl(pp, qq, yy).1).abs() < 1e-3);
    }
}
