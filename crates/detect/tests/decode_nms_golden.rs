//! Eval decode (DFL softmax, distances, boxes, rescale) and multiclass NMS against the golden eval
//! outputs; NMS settings come from golden_meta.json, NMS outputs are compared as sets.

mod common;

use common::{GOLDEN, Set, json, rel_l2};
use ringdet_detect::anchors::Anchors;
use ringdet_detect::compare::{RefRow, match_nms};
use ringdet_detect::decode::{DflShape, boxes_input_px, dfl_level, rescale};
use ringdet_detect::nms::{NmsParams, multiclass_nms};

fn boxes(v: &[f32]) -> Vec<[f32; 4]> {
    v.chunks_exact(4)
        .map(|c| [c[0], c[1], c[2], c[3]])
        .collect()
}

#[test]
fn decode_and_nms_match_golden() {
    let eval = Set::open(&format!("{GOLDEN}/eval.safetensors"));
    let inputs = Set::open(&format!("{GOLDEN}/inputs.safetensors"));
    let meta = json(&format!("{GOLDEN}/golden_meta.json"));
    let img = inputs.shape("image");
    let (batch, h, w) = (img[0], img[2], img[3]);
    let anchors = Anchors::for_input(h, w, &[32, 16, 8]).unwrap();
    let l = anchors.len();
    let pts: Vec<f32> = anchors.points_grid.iter().flatten().copied().collect();
    assert_eq!(pts, eval.f32("head.anchor_points"));
    assert_eq!(anchors.strides, eval.f32("head.stride_tensor"));

    let bins = eval.shape("head.reg_logits.l0")[1] / 4;
    let mut dist = vec![[0.0f32; 4]; batch * l];
    let mut offset = 0;
    for (lvl, &hw) in anchors.num_per_level.iter().enumerate() {
        let reg = eval.f32(&format!("head.reg_logits.l{lvl}"));
        let mut sm = vec![0.0f32; reg.len()];
        let shape = DflShape {
            batch,
            bins,
            hw,
            total_anchors: l,
            anchor_offset: offset,
        };
        dfl_level(&reg, shape, Some(&mut sm), &mut dist).unwrap();
        let e = rel_l2(&sm, &eval.f32(&format!("head.reg_softmax.l{lvl}")));
        assert!(e < 1e-5, "softmax l{lvl} {e}");
        offset += hw;
    }
    let flat: Vec<f32> = dist.iter().flatten().copied().collect();
    let e = rel_l2(&flat, &eval.f32("head.reg_dfl"));
    assert!(e < 1e-5, "reg_dfl {e}");
    let mut px = boxes_input_px(&anchors, &dist, batch);
    let e = rel_l2(&px.concat(), &eval.f32("decoded.boxes_input_px"));
    assert!(e < 1e-5, "boxes_input_px {e}");
    let sf: Vec<[f32; 2]> = inputs
        .f32("scale_factor")
        .chunks_exact(2)
        .map(|c| [c[0], c[1]])
        .collect();
    rescale(&mut px, &sf, l).unwrap();
    let e = rel_l2(&px.concat(), &eval.f32("decoded.boxes"));
    assert!(e < 1e-5, "decoded boxes {e}");

    // NMS on the reference's own decoded inputs, for each stored setting.
    let ref_boxes = boxes(&eval.f32("decoded.boxes"));
    let scores = eval.f32("decoded.scores");
    let classes = eval.shape("decoded.scores")[1];
    for (tag, s) in meta["nms_settings"].as_object().unwrap() {
        let p = NmsParams {
            score_threshold: s["score_threshold"].as_f64().unwrap() as f32,
            nms_top_k: s["nms_top_k"].as_i64().unwrap(),
            keep_top_k: s["keep_top_k"].as_i64().unwrap(),
            nms_threshold: s["nms_threshold"].as_f64().unwrap() as f32,
        };
        let ours: Vec<_> = (0..batch)
            .map(|b| {
                multiclass_nms(
                    &ref_boxes[b * l..(b + 1) * l],
                    &scores[b * classes * l..(b + 1) * classes * l],
                    classes,
                    &p,
                )
                .unwrap()
            })
            .collect();
        let counts: Vec<i32> = ours.iter().map(|d| d.len() as i32).collect();
        assert_eq!(counts, eval.i32(&format!("{tag}.bbox_num")), "{tag} counts");
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
                refs.push(RefRow {
                    image: b,
                    class: r[0] as usize,
                    score: r[1],
                    bbox: [r[2], r[3], r[4], r[5]],
                    index: index.as_ref().map(|ix| ix[row] as usize - b * l),
                });
                row += 1;
            }
        }
        let m = match_nms(&ours, &refs);
        assert_eq!(m.unmatched, 0, "{tag}: {m:?}");
        assert_eq!(m.count_difference, 0, "{tag}");
        assert!(
            m.max_score_diff <= 1e-4 && m.max_box_diff <= 0.05,
            "{tag}: {m:?}"
        );
    }
}
