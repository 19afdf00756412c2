//! `ringdet_train::infer` on a tiny model (depth 0.33, width 0.25, 64×64, seeded initial weights)
//! and a 5-image synthetic shapes val set: one picture per image and a `bbox.json` the COCO
//! evaluator accepts; export (RepVGG fused) + infer equals infer on the unfused weights within
//! the documented tolerance; bad inputs give errors naming the file.

use std::path::{Path, PathBuf};

use ringdet_coco::synth::{ShapesConfig, write_shapes_dataset};
use ringdet_coco::{Instances, UnknownImages};
use ringdet_detect::arch::Arch;
use ringdet_detect::init::{SeededNormal, initialize};
use ringdet_detect::state::ModelState;
use ringdet_train::infer::{
    INFER_CFG, ImageDetections, InferModel, InferOptions, export, image_files, infer,
};
use ringdet_train::{Config, TrainRecipe};

const CONFIG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/ppyoloe_tiny_eval.yml"
);

/// Largest score difference allowed between the fused and the unfused model (docs/infer.md).
const SCORE_TOLERANCE: f32 = 1e-4;
/// Largest box-corner difference allowed, in original-image pixels (docs/infer.md).
const BOX_TOLERANCE_PX: f32 = 1e-2;

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("train-infer")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The shapes set in `dir/shapes`, the merged config pointing at it and seeded weights saved
/// to `dir/model.safetensors`.
fn setup(dir: &Path) -> (Config, PathBuf, PathBuf) {
    let data = dir.join("shapes");
    write_shapes_dataset(&ShapesConfig {
        out: data.clone(),
        train: 1,
        val: 5,
        seed: 9,
        size: 64,
        quality: 90,
        min_object: ringdet_coco::synth::DEFAULT_MIN_OBJECT,
    })
    .unwrap();
    let mut cfg = Config::load(Path::new(CONFIG)).unwrap();
    cfg.apply_overrides(&[
        format!("EvalDataset.dataset_dir={}", data.display()),
        format!("TestDataset.dataset_dir={}", data.display()),
        "PPYOLOEHead.nms.score_threshold=0.001".to_string(),
    ])
    .unwrap();
    let recipe = TrainRecipe::from_config(&cfg).unwrap();
    let arch = Arch::new(recipe.model).unwrap();
    let mut state = ModelState::zeros(&arch).unwrap();
    initialize(&mut state, &mut SeededNormal::new(3));
    perturb(&mut state);
    let weights = dir.join("model.safetensors");
    ringdet_detect::checkpoint::save(&state, &weights).unwrap();
    (cfg, weights, data)
}

/// PP-YOLOE initialises the prediction convs to zero (every image then gets the same scores
/// and boxes) and BN to the identity: give them values, so that the outputs depend on the image
/// and fusion has BN statistics to fold, as in a trained model.
fn perturb(state: &mut ModelState) {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 11) as f32 / (1u64 << 53) as f32
    };
    let names: Vec<String> = state
        .layout
        .state_dict_slots()
        .map(|s| s.spec.name.clone())
        .collect();
    for name in names {
        let values = state.get_mut(&name).unwrap();
        if name.contains("pred_") && name.ends_with(".weight") {
            values.iter_mut().for_each(|v| *v = (next() - 0.5) * 0.2);
        } else if name.ends_with("._mean") {
            values.iter_mut().for_each(|v| *v = (next() - 0.5) * 0.2);
        } else if name.ends_with("._variance") {
            values.iter_mut().for_each(|v| *v = 0.5 + next());
        } else if name.ends_with("bn.weight") {
            values.iter_mut().for_each(|v| *v = 0.5 + next());
        }
    }
}

#[test]
fn pictures_and_a_bbox_json_the_evaluator_accepts() {
    let dir = scratch("pictures");
    let (cfg, weights, data) = setup(&dir);
    let model = InferModel::from_config(&cfg, &weights).unwrap();
    assert_eq!(model.labels.len(), 7);
    assert!(model.labels.contains(&"circle".to_string()));
    let images = image_files(None, Some(&data.join("val2017"))).unwrap();
    assert_eq!(images.len(), 5);
    let out = dir.join("out");
    let mut options = InferOptions::new(&out);
    options.save_results = true;
    options.draw_threshold = 0.0;
    let report = infer(&model, &images, &options).unwrap();
    assert_eq!(report.images, 5);
    assert_eq!(report.pictures.len(), 5);
    assert!(!report.detections.is_empty());
    for (input, picture) in images.iter().zip(&report.pictures) {
        assert_eq!(picture.file_name(), input.file_name());
        let a = ringdet_coco::image::read_image(input).unwrap();
        let b = ringdet_coco::image::read_image(picture).unwrap();
        assert_eq!((a.height, a.width), (b.height, b.width));
        assert_ne!(a, b, "{} has nothing drawn", picture.display());
    }
    // bbox.json: ids from the annotation file, accepted by the evaluator.
    let bbox = report.bbox_json.unwrap();
    let dets = ringdet_coco::load_detections(&bbox).unwrap();
    assert_eq!(dets, report.detections);
    let gt = Instances::load(data.join("annotations/instances_val2017.json")).unwrap();
    let image_ids: Vec<i64> = gt.images.iter().map(|i| i.id).collect();
    let category_ids: Vec<i64> = gt.categories.iter().map(|c| c.id).collect();
    assert!(dets.iter().all(|d| image_ids.contains(&d.image_id)));
    assert!(dets.iter().all(|d| category_ids.contains(&d.category_id)));
    let evaluation = ringdet_coco::evaluate(&gt, &dets, UnknownImages::Error).unwrap();
    assert_eq!(evaluation.stats().len(), 12);

    // One image; nothing drawn above threshold 1 leaves the picture as the input.
    let one = image_files(Some(&images[2]), None).unwrap();
    let mut options = InferOptions::new(dir.join("one"));
    options.draw_threshold = 1.0;
    let report = infer(&model, &one, &options).unwrap();
    assert!(report.bbox_json.is_none());
    assert_eq!(report.pictures.len(), 1);
}

/// The largest differences between two runs' detections, image by image and in NMS order.
fn max_differences(a: &[ImageDetections], b: &[ImageDetections]) -> (f32, f32) {
    assert_eq!(a.len(), b.len());
    let (mut score, mut px) = (0f32, 0f32);
    for (i, (da, db)) in a.iter().zip(b).enumerate() {
        assert_eq!(da.len(), db.len(), "image {i}: detection counts differ");
        for ((ca, sa, ba), (cb, sb, bb)) in da.iter().zip(db) {
            assert_eq!(ca, cb, "image {i}: classes differ");
            score = score.max((sa - sb).abs());
            for k in 0..4 {
                px = px.max((ba[k] - bb[k]).abs());
            }
        }
    }
    (score, px)
}

#[test]
fn exported_model_matches_the_unfused_model() {
    let dir = scratch("export");
    let (cfg, weights, data) = setup(&dir);
    let report = export(&cfg, "tiny", &weights, &dir.join("output_inference")).unwrap();
    assert_eq!(report.dir, dir.join("output_inference/tiny"));
    assert!(report.fused_blocks > 0);
    let text = std::fs::read_to_string(report.dir.join(INFER_CFG)).unwrap();
    for field in [
        "arch: YOLO",
        "min_subgraph_size: 3",
        "Preprocess:",
        "label_list:",
        "NMS:",
        "target_size:",
        "- circle",
    ] {
        assert!(text.contains(field), "{field} missing from:\n{text}");
    }
    // No RepVGG branch is left in the exported weights.
    let file = ringdet_tensor::SafeTensors::open(&report.weights).unwrap();
    assert!(
        !file
            .names()
            .any(|n| n.contains("blocks.0.conv2.conv1.") || n.contains("blocks.0.conv2.conv2."))
    );
    assert!(
        file.names()
            .any(|n| n == "backbone.stages.0.blocks.0.conv2.conv.weight")
    );

    let unfused = InferModel::from_config(&cfg, &weights).unwrap();
    let fused = InferModel::from_model_dir(&report.dir).unwrap();
    assert!(fused.fused.is_some());
    assert_eq!(fused.labels, unfused.labels);
    assert_eq!(fused.category_ids, unfused.category_ids);
    assert_eq!(fused.settings, unfused.settings);

    let images: Vec<_> = image_files(None, Some(&data.join("val2017")))
        .unwrap()
        .iter()
        .map(|p| ringdet_coco::image::read_image(p).unwrap())
        .collect();
    let a = unfused.detect(&images).unwrap();
    let b = fused.detect(&images).unwrap();
    assert!(a.iter().any(|d| !d.is_empty()));
    let (score, px) = max_differences(&a, &b);
    eprintln!("fused vs unfused: max |score diff| {score:e}, max |box diff| {px:e} px");
    assert!(score <= SCORE_TOLERANCE, "score differs by {score}");
    assert!(px <= BOX_TOLERANCE_PX, "box differs by {px} px");

    // The whole infer path runs the exported model too.
    let images = image_files(None, Some(&data.join("val2017"))).unwrap();
    let out = infer(&fused, &images, &InferOptions::new(dir.join("out"))).unwrap();
    assert_eq!(out.pictures.len(), 5);
}

#[test]
fn bad_inputs_name_the_file() {
    let dir = scratch("errors");
    let (cfg, weights, _) = setup(&dir);

    let missing = dir.join("nope.jpg");
    let e = image_files(Some(&missing), None).unwrap_err().to_string();
    assert!(e.contains("nope.jpg"), "{e}");
    let e = image_files(None, Some(&dir.join("no-dir")))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no-dir"), "{e}");
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let e = image_files(None, Some(&empty)).unwrap_err().to_string();
    assert!(e.contains("empty") && e.contains("no .jpg"), "{e}");

    let model = InferModel::from_config(&cfg, &weights).unwrap();
    let broken = dir.join("broken.jpg");
    std::fs::write(&broken, b"\xFF\xD8 this is not a JPEG").unwrap();
    let e = infer(&model, &[broken], &InferOptions::new(dir.join("out")))
        .unwrap_err()
        .to_string();
    assert!(e.contains("broken.jpg"), "{e}");
    let text = dir.join("notes.png");
    std::fs::write(&text, b"hello").unwrap();
    let e = infer(&model, &[text], &InferOptions::new(dir.join("out")))
        .unwrap_err()
        .to_string();
    assert!(e.contains("notes.png"), "{e}");

    // Pictures never overwrite their inputs.
    let inputs = image_files(None, Some(&dir.join("shapes/val2017"))).unwrap();
    let e = infer(
        &model,
        &inputs,
        &InferOptions::new(dir.join("shapes/val2017")),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("overwrite"), "{e}");

    // Labels from a text file, one per line; a count that is not the model's is refused.
    std::fs::write(dir.join("labels.txt"), "a\nb\nc\nd\ne\nf\ng\n").unwrap();
    let mut with_txt = cfg.clone();
    with_txt
        .apply_overrides(&[
            format!("TestDataset.dataset_dir={}", dir.display()),
            "TestDataset.anno_path=labels.txt".to_string(),
        ])
        .unwrap();
    let m = InferModel::from_config(&with_txt, &weights).unwrap();
    assert_eq!(m.labels, ["a", "b", "c", "d", "e", "f", "g"]);
    std::fs::write(dir.join("labels.txt"), "a\nb\n").unwrap();
    let e = InferModel::from_config(&with_txt, &weights)
        .unwrap_err()
        .to_string();
    assert!(e.contains("labels.txt") && e.contains("2 classes"), "{e}");

    let e = InferModel::from_config(&cfg, &dir.join("missing.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.safetensors"), "{e}");
    let e = ringdet_train::infer::weights_file(dir.join("gone").to_str().unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("gone"), "{e}");
    let corrupt = dir.join("corrupt.safetensors");
    std::fs::write(&corrupt, b"\x08\x00\x00\x00\x00\x00\x00\x00{nope}").unwrap();
    let e = format!(
        "{:#}",
        anyhow_like(InferModel::from_config(&cfg, &corrupt).unwrap_err())
    );
    assert!(e.contains("corrupt.safetensors"), "{e}");

    let e = InferModel::from_model_dir(&dir.join("no-model"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no-model"), "{e}");
    let report = export(&cfg, "m", &weights, &dir.join("exp")).unwrap();
    std::fs::remove_file(&report.weights).unwrap();
    let e = InferModel::from_model_dir(&report.dir)
        .unwrap_err()
        .to_string();
    assert!(e.contains("model.safetensors"), "{e}");
    // infer_cfg.yml edits are read; unsupported ones are named.
    let report = export(&cfg, "m", &weights, &dir.join("exp")).unwrap();
    let text = std::fs::read_to_string(report.dir.join(INFER_CFG)).unwrap();
    let edited = text
        .replace("score_threshold: 0.001", "score_threshold: 0.25")
        .replace("is_scale: true", "is_scale: false");
    std::fs::write(report.dir.join(INFER_CFG), &edited).unwrap();
    let m = InferModel::from_model_dir(&report.dir).unwrap();
    assert_eq!(m.settings.nms.score_threshold, 0.25);
    assert!((m.settings.mean[0] - 0.485 / 255.0).abs() < 1e-9);
    std::fs::write(
        report.dir.join(INFER_CFG),
        text.replace("type: Permute", "type: Pad"),
    )
    .unwrap();
    let e = InferModel::from_model_dir(&report.dir)
        .unwrap_err()
        .to_string();
    assert!(e.contains("Preprocess.2.type") && e.contains("Pad"), "{e}");
    std::fs::write(report.dir.join(INFER_CFG), "arch: YOLO\n").unwrap();
    let e = InferModel::from_model_dir(&report.dir)
        .unwrap_err()
        .to_string();
    assert!(e.contains("infer_cfg.yml") && e.contains("ringdet"), "{e}");
}

/// The error with its causes, as the binary prints it.
fn anyhow_like(e: impl std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
