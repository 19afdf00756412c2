//! The synthetic shapes dataset: seeded, COCO-shaped, varied, and readable by our decoder.

use ringdet_coco::image::read_image;
use ringdet_coco::synth::{CLASS_NAMES, ShapesConfig, render_scene, write_shapes_dataset};
use serde_json::Value;

#[test]
fn scenes_vary_in_classes_sizes_and_counts() {
    let mut classes = std::collections::HashSet::new();
    let (mut tiny, mut large, mut empty, mut crowded) = (0, 0, 0, 0);
    for i in 0..80 {
        let s = render_scene(3, 0, i, 320);
        assert!(s.objects.len() <= 10);
        assert!((240..=400).contains(&s.width) && (240..=400).contains(&s.height));
        empty += s.objects.is_empty() as usize;
        crowded += (s.objects.len() >= 8) as usize;
        for o in &s.objects {
            classes.insert(o.shape);
            let [x, y, w, h] = o.bbox;
            assert!(x >= 0.0 && y >= 0.0 && x + w <= s.width as f64 && y + h <= s.height as f64);
            assert!(o.area > 0.0 && o.area <= w * h);
            tiny += (w * h < 16.0 * 16.0) as usize;
            large += (w * h > 96.0 * 96.0) as usize;
        }
    }
    assert_eq!(classes.len(), CLASS_NAMES.len());
    assert!(
        tiny > 0 && large > 0 && empty > 0 && crowded > 0,
        "{tiny} {large} {empty} {crowded}"
    );
    assert_eq!(
        render_scene(3, 0, 5, 320).rgb,
        render_scene(3, 0, 5, 320).rgb
    );
    assert_ne!(
        render_scene(3, 0, 5, 320).rgb,
        render_scene(4, 0, 5, 320).rgb
    );
}

#[test]
fn writes_coco_layout_reproducibly() {
    let base = std::env::temp_dir().join(format!("ringdet-coco-synth-{}", std::process::id()));
    let write = |name: &str| {
        let out = base.join(name);
        let config = ShapesConfig {
            out: out.clone(),
            train: 6,
            val: 3,
            seed: 9,
            size: 64,
            quality: 90,
            min_object: ringdet_coco::synth::DEFAULT_MIN_OBJECT,
        };
        let summary = write_shapes_dataset(&config).unwrap();
        assert_eq!(summary.images, [6, 3]);
        out
    };
    let (a, b) = (write("a"), write("b"));
    for rel in [
        "annotations/instances_train2017.json",
        "annotations/instances_val2017.json",
        "val2017/000000000009.jpg",
    ] {
        assert_eq!(
            std::fs::read(a.join(rel)).unwrap(),
            std::fs::read(b.join(rel)).unwrap(),
            "{rel}"
        );
    }
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(a.join("annotations/instances_val2017.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        doc["categories"].as_array().unwrap().len(),
        CLASS_NAMES.len()
    );
    assert_eq!(doc["categories"][0]["name"], "circle");
    for img in doc["images"].as_array().unwrap() {
        let decoded =
            read_image(&a.join("val2017").join(img["file_name"].as_str().unwrap())).unwrap();
        assert_eq!(decoded.width as u64, img["width"].as_u64().unwrap());
        assert_eq!(decoded.height as u64, img["height"].as_u64().unwrap());
    }
    for ann in doc["annotations"].as_array().unwrap() {
        assert_eq!(ann["iscrowd"], 0);
        assert!(
            ann["image_id"].as_u64().unwrap() >= 7,
            "val ids follow train ids"
        );
    }
    let loaded =
        ringdet_coco::Instances::load(a.join("annotations/instances_train2017.json")).unwrap();
    assert_eq!(loaded.images.len(), 6);
    assert_eq!(loaded.categories.len(), CLASS_NAMES.len());
    std::fs::remove_dir_all(base).unwrap();
}
