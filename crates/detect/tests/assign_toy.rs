//! ATSS and TAL against the toy vectors produced by the real PaddleDetection assigners.

mod common;

use ringdet_detect::anchors::Anchors;
use ringdet_detect::assign::{AtssParams, GroundTruth, TalParams, atss_assign, tal_assign};
use serde_json::Value;

struct Toy {
    anchors: Anchors,
    scores: Vec<f32>,
    boxes: Vec<[f32; 4]>,
    gt_boxes: Vec<[f32; 4]>,
    gt_labels: Vec<usize>,
    pad: Vec<f32>,
}

fn rows<const N: usize>(v: &Value) -> Vec<[f32; N]> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let r = r.as_array().unwrap();
            std::array::from_fn(|i| r[i].as_f64().unwrap() as f32)
        })
        .collect()
}

fn toy() -> (Toy, Value) {
    let j = common::json(&format!("{}/ppyoloe_golden_toy.json", common::TOY));
    let anchors = Anchors::new(&[(3, 3), (6, 6), (12, 12)], &[32, 16, 8], 5.0, 0.5).unwrap();
    let pts = rows::<2>(&j["anchor_points"]);
    assert_eq!(pts, anchors.points_px, "anchor points");
    let t = Toy {
        anchors,
        scores: rows::<3>(&j["pred_scores"]).concat(),
        boxes: rows::<4>(&j["pred_boxes_pixels"]),
        gt_boxes: rows::<4>(&j["gt_bbox"]),
        gt_labels: j["gt_class"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect(),
        pad: j["pad_gt_mask"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect(),
    };
    (t, j)
}

fn check(expected: &Value, labels: &[usize], scores: &[f32], tol: f32) {
    let exp = expected.as_object().unwrap();
    let positives: Vec<usize> = (0..labels.len()).filter(|&a| labels[a] != 3).collect();
    let mut keys: Vec<usize> = exp.keys().map(|k| k.parse().unwrap()).collect();
    keys.sort();
    assert_eq!(positives, keys, "positive anchors");
    for (k, v) in exp {
        let a: usize = k.parse().unwrap();
        let lab = v[0].as_u64().unwrap() as usize;
        let s = v[1].as_f64().unwrap() as f32;
        assert_eq!(labels[a], lab, "label of anchor {a}");
        assert!(
            (scores[a * 3 + lab] - s).abs() <= tol,
            "anchor {a}: {} vs {s}",
            scores[a * 3 + lab]
        );
        let row_sum: f32 = scores[a * 3..a * 3 + 3].iter().sum();
        assert!((row_sum - scores[a * 3 + lab]).abs() < 1e-12);
    }
}

#[test]
fn tal_matches_toy() {
    let (t, j) = toy();
    let gt = GroundTruth {
        boxes: &t.gt_boxes,
        labels: &t.gt_labels,
        pad_mask: &t.pad,
    };
    let p = TalParams {
        topk: 13,
        alpha: 1.0,
        beta: 6.0,
        num_classes: 3,
    };
    let out = tal_assign(&t.anchors, &gt, &t.scores, &t.boxes, &p).unwrap();
    check(
        &j["TAL_topk13_a1_b6 positives {anchor: [label, soft_score]}"],
        &out.labels,
        &out.scores,
        1e-6,
    );
}

#[test]
fn atss_matches_toy() {
    let (t, j) = toy();
    let gt = GroundTruth {
        boxes: &t.gt_boxes,
        labels: &t.gt_labels,
        pad_mask: &t.pad,
    };
    let p = AtssParams {
        topk: 9,
        num_classes: 3,
    };
    let out = atss_assign(&t.anchors, &gt, &t.boxes, &p).unwrap();
    check(
        &j["ATSS_topk9 positives {anchor: [label, soft_score(IoU with pred box)]}"],
        &out.labels,
        &out.scores,
        1e-6,
    );
}

#[test]
fn no_gt_gives_background() {
    let (t, _) = toy();
    let gt = GroundTruth {
        boxes: &[],
        labels: &[],
        pad_mask: &[],
    };
    let out = atss_assign(
        &t.anchors,
        &gt,
        &t.boxes,
        &AtssParams {
            topk: 9,
            num_classes: 3,
        },
    )
    .unwrap();
    assert!(out.labels.iter().all(|&l| l == 3));
    assert_eq!(out.score_sum(), 0.0);
    let p = TalParams {
        topk: 13,
        alpha: 1.0,
        beta: 6.0,
        num_classes: 3,
    };
    let out = tal_assign(&t.anchors, &gt, &t.scores, &t.boxes, &p).unwrap();
    assert!(out.labels.iter().all(|&l| l == 3));
}

#[test]
fn bad_label_is_an_error() {
    let (t, _) = toy();
    let gt = GroundTruth {
        boxes: &t.gt_boxes,
        labels: &[7, 0, 0],
        pad_mask: &t.pad,
    };
    let err = atss_assign(
        &t.anchors,
        &gt,
        &t.boxes,
        &AtssParams {
            topk: 9,
            num_classes: 3,
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("class 7"), "{err}");
}
