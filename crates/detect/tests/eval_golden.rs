//! Evaluation forward of PP-YOLOE-s on the golden weights and images: backbone, neck, head logits,
//! scores, DFL and decoded boxes within the README's tolerances; NMS equal as sets.

mod common;

use common::{GOLDEN, Set, json, rel_l2};
use ringdet_detect::arch::{Arch, ModelConfig};
use ringdet_detect::checkpoint;
use ringdet_detect::compare::{RefRow, match_nms};
use ringdet_detect::detector::{eval_forward, postprocess};
use ringdet_detect::model::Feat;
use ringdet_detect::nms::NmsParams;
use ringdet_detect::state::ModelState;

fn check(name: &str, ours: &[f32], reference: &Set, key: &str, tol: f64) {
    let e = rel_l2(ours, &reference.f32(key));
    println!("{name:<28} rel L2 {e:.3e} (tol {tol:.0e})");
    assert!(e <= tol, "{name}: {e} > {tol}");
}

#[test]
fn eval_matches_golden() {
    let meta = json(&format!("{GOLDEN}/golden_meta.json"));
    let cfg = &meta["cfg"];
    let config = ModelConfig::new(
        cfg["width_mult"].as_f64().unwrap(),
        cfg["depth_mult"].as_f64().unwrap(),
    )
    .with_classes(cfg["num_classes"].as_u64().unwrap() as usize);
    let arch = Arch::new(config).unwrap();
    let mut state = ModelState::zeros(&arch).unwrap();
    checkpoint::load(&mut state, format!("{GOLDEN}/weights.safetensors")).unwrap();
    let inputs = Set::open(&format!("{GOLDEN}/inputs.safetensors"));
    let eval = Set::open(&format!("{GOLDEN}/eval.safetensors"));
    let s = inputs.shape("image");
    let image = Feat::from_vec(inputs.f32("image"), s[0], s[1], s[2], s[3]).unwrap();
    let out = eval_forward(&arch, &state, &image).unwrap();
    for (i, f) in out.backbone.iter().enumerate() {
        check(
            &format!("backbone.out{i}"),
            &f.data,
            &eval,
            &format!("backbone.out{i}"),
            1e-4,
        );
    }
    for (i, f) in out.neck.iter().enumerate() {
        check(
            &format!("neck.out{i}"),
            &f.data,
            &eval,
            &format!("neck.out{i}"),
            5e-4,
        );
    }
    for (i, lv) in out.logits.iter().enumerate() {
        check(
            &format!("head.cls_logits.l{i}"),
            &lv.cls.data,
            &eval,
            &format!("head.cls_logits.l{i}"),
            5e-4,
        );
        check(
            &format!("head.reg_logits.l{i}"),
            &lv.reg.data,
            &eval,
            &format!("head.reg_logits.l{i}"),
            5e-4,
        );
        check(
            &format!("head.reg_softmax.l{i}"),
            &out.reg_softmax[i],
            &eval,
            &format!("head.reg_softmax.l{i}"),
            5e-4,
        );
    }
    check("head.cls_score", &out.scores, &eval, "head.cls_score", 5e-4);
    let dist: Vec<f32> = out.dist.iter().flatten().copied().collect();
    check("head.reg_dfl", &dist, &eval, "head.reg_dfl", 1e-4);
    check(
        "decoded.boxes_input_px",
        &out.boxes_input_px.concat(),
        &eval,
        "decoded.boxes_input_px",
        1e-4,
    );
    let sf: Vec<[f32; 2]> = inputs
        .f32("scale_factor")
        .chunks_exact(2)
        .map(|c| [c[0], c[1]])
        .collect();
    let classes = arch.head.num_classes;
    let l = out.anchors.len();
    for (tag, ns) in meta["nms_settings"].as_object().unwrap() {
        let p = NmsParams {
            score_threshold: ns["score_threshold"].as_f64().unwrap() as f32,
            nms_top_k: ns["nms_top_k"].as_i64().unwrap(),
            keep_top_k: ns["keep_top_k"].as_i64().unwrap(),
            nms_threshold: ns["nms_threshold"].as_f64().unwrap() as f32,
        };
        let (boxes, dets) = postprocess(&out, classes, &sf, &p).unwrap();
        check(
            "decoded.boxes",
            &boxes.concat(),
            &eval,
            "decoded.boxes",
            1e-4,
        );
        let counts = eval.i32(&format!("{tag}.bbox_num"));
        let rows = eval.f32(&format!("{tag}.bbox"));
        let index = eval
            .0
            .contains_key(&format!("{tag}.index"))
            .then(|| eval.i32(&format!("{tag}.index")));
        let mut refs = Vec::new();
        let mut row = 0;
        for (b, &n) in counts.iter().enumerate() {
            for _ in 0..n {
                let r = &rows[row * 6..row * 6 + 6];
                let index = index.as_ref().map(|ix| ix[row] as usize - b * l);
                refs.push(RefRow {
                    image: b,
                    class: r[0] as usize,
                    score: r[1],
                    bbox: [r[2], r[3], r[4], r[5]],
                    index,
                });
                row += 1;
            }
        }
        let m = match_nms(&dets, &refs);
        println!("{tag}: {m:?}");
        assert_eq!((m.unmatched, m.count_difference), (0, 0), "{tag}");
        assert!(
            m.max_score_diff <= 1e-4 && m.max_box_diff <= 0.05,
            "{tag}: {m:?}"
        );
    }
}
