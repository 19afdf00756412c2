use ringdet_coco::Instances;
use ringdet_coco::loader::{Loader, LoaderConfig, training_records};
use ringdet_detect::arch::{Arch, ModelConfig};
use ringdet_detect::cross_replica::SingleReplica;
use ringdet_detect::init::{SeededNormal, initialize};
use ringdet_detect::model::Feat;
use ringdet_detect::state::ModelState;
use ringdet_detect::step::{TrainBatch, TrainSettings, train_step};
use ringdet_detect::train::sgd::Sgd;
#[test]
fn overfit() {
    let dir = std::path::Path::new("/tmp/exp/dataset/tiny");
    let inst = Instances::load(dir.join("annotations/instances_train2017.json")).unwrap();
    let (records, _) = training_records(&inst, &dir.join("train2017"));
    let mut cfg = LoaderConfig::train(4, 1, 0);
    cfg.train_sizes = vec![160];
    cfg.transforms = ringdet_train::config::no_augmentation();
    let loader = Loader::new(records, cfg).unwrap();
    let multi = std::env::var("MULTI").is_ok();
    let mut all = vec![];
    for e in 0..60u32 {
        for b in loader.epoch(e) {
            all.push(b.unwrap());
            if !multi {
                break;
            }
        }
        if !multi {
            break;
        }
    }
    if let Ok(shift) = std::env::var("SHIFT") {
        let (dx, dy): (usize, usize) = {
            let v: Vec<usize> = shift.split(',').map(|x| x.parse().unwrap()).collect();
            (v[0], v[1])
        };
        let mut b = all[0].clone();
        let [n, c, h, w] = b.image_shape;
        for i in 0..n {
            for ch in 0..c {
                for y in 0..h {
                    for x in 0..w {
                        b.image[((i * c + ch) * h + y) * w + x] = all[0].image
                            [((i * c + ch) * h + (y + h - dy) % h) * w + (x + w - dx) % w];
                    }
                }
            }
        }
        let m = b.max_boxes;
        for k in 0..n * m {
            let bb = &mut b.gt_bbox[k * 4..k * 4 + 4];
            if b.pad_gt_mask[k] == 0.0 {
                continue;
            }
            bb[0] += dx as f32;
            bb[2] += dx as f32;
            bb[1] += dy as f32;
            bb[3] += dy as f32;
            if bb[2] > w as f32 || bb[3] > h as f32 {
                b.pad_gt_mask[k] = 0.0;
                bb.iter_mut().for_each(|v| *v = 0.0);
                b.gt_class[k] = 0;
            }
        }
        // also an unshifted copy with the same dropped boxes
        let mut a = all[0].clone();
        for k in 0..n * m {
            if b.pad_gt_mask[k] == 0.0 {
                a.pad_gt_mask[k] = 0.0;
                a.gt_bbox[k * 4..k * 4 + 4]
                    .iter_mut()
                    .for_each(|v| *v = 0.0);
                a.gt_class[k] = 0;
            }
        }
        all = vec![a.clone(), b, a.clone(), a];
    }
    let mc = ModelConfig {
        width_mult: 0.25,
        depth_mult: 0.33,
        num_classes: 7,
        reg_max: 16,
    };
    let arch = Arch::new(mc).unwrap();
    let mut state = ModelState::zeros(&arch).unwrap();
    initialize(&mut state, &mut SeededNormal::new(0));
    let mut sgd = Sgd::ppyoloe(&state.layout);
    let lr: f64 = std::env::var("LR")
        .map(|s| s.parse().unwrap())
        .unwrap_or(0.01);
    let atss: usize = std::env::var("ATSS")
        .map(|s| s.parse().unwrap())
        .unwrap_or(0);
    let settings = TrainSettings {
        static_assigner_epoch: atss,
        ..Default::default()
    };
    let steps: usize = std::env::var("STEPS")
        .map(|s| s.parse().unwrap())
        .unwrap_or(200);
    for step in 0..steps {
        let transfer = std::env::var("TRANSFER").is_ok();
        let b = if transfer {
            if step < 150 {
                &all[0]
            } else {
                &all[1 + step % 2]
            }
        } else {
            &all[step % all.len()]
        };
        let [n, c, h, w] = b.image_shape;
        let image = Feat::from_vec(b.image.clone(), n, c, h, w).unwrap();
        let boxes: Vec<[f32; 4]> = b
            .gt_bbox
            .chunks_exact(4)
            .map(|x| [x[0], x[1], x[2], x[3]])
            .collect();
        let labels: Vec<usize> = b.gt_class.iter().map(|&c| c as usize).collect();
        let batch = TrainBatch {
            image: &image,
            gt_boxes: &boxes,
            gt_labels: &labels,
            pad_mask: &b.pad_gt_mask,
            max_boxes: b.max_boxes,
        };
        let mut l = lr * ((step + 1) as f64 / 20.0).min(1.0);
        if transfer && step >= 150 {
            l = 0.0;
        }
        let out = train_step(
            &arch,
            &mut state,
            &mut sgd,
            &batch,
            1,
            l,
            &settings,
            &SingleReplica,
        )
        .unwrap();
        let v = out.losses;
        if step % 40 == 0 || (transfer && step >= 150 && step < 156) {
            println!(
                "step {step} lr {l:.4} loss {:.4} cls {:.4} iou {:.4} dfl {:.4} norm {:.3}",
                v.loss, v.cls, v.iou, v.dfl, v.normalizer
            );
        }
    }
}
