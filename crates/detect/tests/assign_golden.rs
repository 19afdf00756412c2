//! ATSS and TAL on the golden batch: fed with the train-mode head outputs that PaddleDetection saw,
//! the assignments (labels, masks, boxes) are identical and the soft targets within 1e-4.

mod common;

use common::{GOLDEN, Set, rel_l2};
use ringdet_detect::anchors::Anchors;
use ringdet_detect::assign::{
    Assignment, AtssParams, GroundTruth, TalParams, atss_assign, tal_assign,
};
use ringdet_detect::decode::{DflShape, boxes_input_px, dfl_level};

struct Batch {
    anchors: Anchors,
    batch: usize,
    classes: usize,
    scores: Vec<f32>,
    boxes_px: Vec<[f32; 4]>,
    gt_boxes: Vec<[f32; 4]>,
    gt_labels: Vec<usize>,
    pad: Vec<f32>,
    n: usize,
}

fn load() -> (Batch, Set) {
    let train = Set::open(&format!("{GOLDEN}/train.safetensors"));
    let inputs = Set::open(&format!("{GOLDEN}/inputs.safetensors"));
    let img = inputs.shape("image");
    let (batch, h, w) = (img[0], img[2], img[3]);
    let anchors = Anchors::for_input(h, w, &[32, 16, 8]).unwrap();
    let l = anchors.len();
    let classes = train.shape("train.head.cls_logits.l0")[1];
    let bins = train.shape("train.head.reg_logits.l0")[1] / 4;
    let mut scores = vec![0.0f32; batch * l * classes];
    let mut dist = vec![[0.0f32; 4]; batch * l];
    let mut offset = 0;
    for (lvl, &hw) in anchors.num_per_level.iter().enumerate() {
        let cls = train.f32(&format!("train.head.cls_logits.l{lvl}"));
        for b in 0..batch {
            for c in 0..classes {
                for i in 0..hw {
                    let x = cls[(b * classes + c) * hw + i];
                    scores[(b * l + offset + i) * classes + c] = 1.0 / (1.0 + (-x).exp());
                }
            }
        }
        let reg = train.f32(&format!("train.head.reg_logits.l{lvl}"));
        let shape = DflShape {
            batch,
            bins,
            hw,
            total_anchors: l,
            anchor_offset: offset,
        };
        dfl_level(&reg, shape, None, &mut dist).unwrap();
        offset += hw;
    }
    let boxes_px = boxes_input_px(&anchors, &dist, batch);
    let n = inputs.shape("gt_bbox")[1];
    let gt_boxes = inputs
        .f32("gt_bbox")
        .chunks_exact(4)
        .map(|c| [c[0], c[1], c[2], c[3]])
        .collect();
    let gt_labels = inputs.i32("gt_class").iter().map(|&v| v as usize).collect();
    let pad = inputs.f32("pad_gt_mask");
    (
        Batch {
            anchors,
            batch,
            classes,
            scores,
            boxes_px,
            gt_boxes,
            gt_labels,
            pad,
            n,
        },
        train,
    )
}

fn compare(tag: &str, outs: &[Assignment], b: &Batch, train: &Set) {
    let l = b.anchors.len();
    let labels: Vec<i32> = outs
        .iter()
        .flat_map(|o| o.labels.iter().map(|&v| v as i32))
        .collect();
    assert_eq!(
        labels,
        train.i32(&format!("{tag}.assign.labels")),
        "{tag} labels"
    );
    let mask: Vec<f32> = outs.iter().flat_map(|o| o.mask_positive.clone()).collect();
    assert_eq!(
        mask,
        train.f32(&format!("{tag}.assign.mask_positive")),
        "{tag} mask_positive"
    );
    let boxes: Vec<f32> = outs
        .iter()
        .flat_map(|o| o.bboxes.iter().flatten().copied().collect::<Vec<_>>())
        .collect();
    assert_eq!(
        boxes,
        train.f32(&format!("{tag}.assign.bboxes")),
        "{tag} bboxes"
    );
    let scores: Vec<f32> = outs.iter().flat_map(|o| o.scores.clone()).collect();
    let err = rel_l2(&scores, &train.f32(&format!("{tag}.assign.scores")));
    assert!(err < 1e-4, "{tag} scores rel L2 {err}");
    assert_eq!(scores.len(), b.batch * l * b.classes);
}

fn gt(b: &Batch, i: usize) -> GroundTruth<'_> {
    let r = i * b.n..(i + 1) * b.n;
    GroundTruth {
        boxes: &b.gt_boxes[r.clone()],
        labels: &b.gt_labels[r.clone()],
        pad_mask: &b.pad[r],
    }
}

#[test]
fn atss_matches_golden() {
    let (b, train) = load();
    let l = b.anchors.len();
    let p = AtssParams {
        topk: 9,
        num_classes: b.classes,
    };
    let outs: Vec<Assignment> = (0..b.batch)
        .map(|i| atss_assign(&b.anchors, &gt(&b, i), &b.boxes_px[i * l..(i + 1) * l], &p).unwrap())
        .collect();
    compare("atss", &outs, &b, &train);
}

#[test]
fn tal_matches_golden() {
    let (b, train) = load();
    let l = b.anchors.len();
    let c = b.classes;
    let p = TalParams {
        topk: 13,
        alpha: 1.0,
        beta: 6.0,
        num_classes: c,
    };
    let outs: Vec<Assignment> = (0..b.batch)
        .map(|i| {
            let s = &b.scores[i * l * c..(i + 1) * l * c];
            tal_assign(
                &b.anchors,
                &gt(&b, i),
                s,
                &b.boxes_px[i * l..(i + 1) * l],
                &p,
            )
            .unwrap()
        })
        .collect();
    compare("tal", &outs, &b, &train);
}
