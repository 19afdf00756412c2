//! Training forward + losses + backward of PP-YOLOE-s against PaddleDetection's golden set, for the
//! ATSS and the TAL epochs named in golden_meta.json: intermediates (5e-4), losses (1e-4 relative),
//! assignments (exact) and the listed gradients (2e-3 relative L2, absolute for all-zero ones).

mod common;

use common::{GOLDEN, Set, json, rel_l2};
use ringdet_detect::arch::{Arch, ModelConfig};
use ringdet_detect::checkpoint;
use ringdet_detect::cross_replica::SingleReplica;
use ringdet_detect::model::Feat;
use ringdet_detect::state::ModelState;
use ringdet_detect::step::{TrainBatch, TrainSettings, forward_backward};

#[test]
fn train_matches_golden() {
    let meta = json(&format!("{GOLDEN}/golden_meta.json"));
    let cfg = &meta["cfg"];
    let config = ModelConfig::new(
        cfg["width_mult"].as_f64().unwrap(),
        cfg["depth_mult"].as_f64().unwrap(),
    )
    .with_classes(cfg["num_classes"].as_u64().unwrap() as usize);
    let arch = Arch::new(config).unwrap();
    let mut fresh = ModelState::zeros(&arch).unwrap();
    checkpoint::load(&mut fresh, format!("{GOLDEN}/weights.safetensors")).unwrap();
    let inputs = Set::open(&format!("{GOLDEN}/inputs.safetensors"));
    let train = Set::open(&format!("{GOLDEN}/train.safetensors"));
    let s = inputs.shape("image");
    let image = Feat::from_vec(inputs.f32("image"), s[0], s[1], s[2], s[3]).unwrap();
    let max_boxes = inputs.shape("gt_bbox")[1];
    let gt_boxes: Vec<[f32; 4]> = inputs
        .f32("gt_bbox")
        .chunks_exact(4)
        .map(|c| [c[0], c[1], c[2], c[3]])
        .collect();
    let gt_labels: Vec<usize> = inputs.i32("gt_class").iter().map(|&v| v as usize).collect();
    let pad_mask = inputs.f32("pad_gt_mask");
    let batch = TrainBatch {
        image: &image,
        gt_boxes: &gt_boxes,
        gt_labels: &gt_labels,
        pad_mask: &pad_mask,
        max_boxes,
    };
    let settings = TrainSettings {
        static_assigner_epoch: cfg["PPYOLOEHead"]["static_assigner_epoch"]
            .as_u64()
            .unwrap() as usize,
        ..TrainSettings::default()
    };
    let mut failures = Vec::new();
    let mut check = |name: String, e: f64, tol: f64| {
        println!("{name:<48} {e:.3e} (tol {tol:.0e})");
        if e.is_nan() || e > tol {
            failures.push(format!("{name}: {e:.3e} > {tol:.0e}"));
        }
    };
    for tag in ["atss", "tal"] {
        let epoch = meta["losses"][tag]["epoch_id"].as_u64().unwrap() as usize;
        let mut state = fresh.clone();
        let out =
            forward_backward(&arch, &mut state, &batch, epoch, &settings, &SingleReplica).unwrap();
        assert_eq!(out.used_atss, tag == "atss");
        for (i, f) in out.backbone.iter().enumerate() {
            check(
                format!("train.backbone.out{i}"),
                rel_l2(&f.data, &train.f32(&format!("train.backbone.out{i}"))),
                5e-4,
            );
        }
        for (i, f) in out.neck.iter().enumerate() {
            check(
                format!("train.neck.out{i}"),
                rel_l2(&f.data, &train.f32(&format!("train.neck.out{i}"))),
                5e-4,
            );
        }
        for (i, lv) in out.logits.iter().enumerate() {
            check(
                format!("train.head.cls_logits.l{i}"),
                rel_l2(
                    &lv.cls.data,
                    &train.f32(&format!("train.head.cls_logits.l{i}")),
                ),
                5e-4,
            );
            check(
                format!("train.head.reg_logits.l{i}"),
                rel_l2(
                    &lv.reg.data,
                    &train.f32(&format!("train.head.reg_logits.l{i}")),
                ),
                5e-4,
            );
        }
        let labels: Vec<i32> = out
            .assignments
            .iter()
            .flat_map(|a| a.labels.iter().map(|&v| v as i32))
            .collect();
        assert_eq!(
            labels,
            train.i32(&format!("{tag}.assign.labels")),
            "{tag} labels"
        );
        let mask: Vec<f32> = out
            .assignments
            .iter()
            .flat_map(|a| a.mask_positive.clone())
            .collect();
        assert_eq!(
            mask,
            train.f32(&format!("{tag}.assign.mask_positive")),
            "{tag} mask"
        );
        let scores: Vec<f32> = out
            .assignments
            .iter()
            .flat_map(|a| a.scores.clone())
            .collect();
        check(
            format!("{tag}.assign.scores"),
            rel_l2(&scores, &train.f32(&format!("{tag}.assign.scores"))),
            1e-4,
        );
        let l = &out.losses;
        for (name, v) in [
            ("loss", l.loss),
            ("loss_cls", l.cls),
            ("loss_iou", l.iou),
            ("loss_dfl", l.dfl),
            ("loss_l1", l.l1),
        ] {
            let r = train.f32(&format!("{tag}.{name}"))[0];
            check(
                format!("{tag}.{name} ({v} vs {r})"),
                ((v - r) / r).abs() as f64,
                1e-4,
            );
        }
        let prefix = format!("{tag}.grad.");
        let mut names: Vec<&String> = train.0.keys().filter(|k| k.starts_with(&prefix)).collect();
        names.sort();
        for key in names {
            let p = &key[prefix.len()..];
            check(
                key.clone(),
                rel_l2(state.grad(p).unwrap(), &train.f32(key)),
                2e-3,
            );
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
