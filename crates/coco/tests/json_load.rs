//! Loading instances and results JSON: reference files, parallel chunking equals a sequential parse,
//! errors naming file/record/field, the category map and PaddleDetection's training filter.

use ringdet_coco::json::{
    CategoryMap, Instances, detections_from_slice, load_detections, training_samples,
    write_detections,
};

const CASES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/coco-eval/cases"
);

#[test]
fn loads_reference_case() {
    let gt = Instances::load(format!("{CASES}/t01_single_image/gt.json")).unwrap();
    assert_eq!(gt.images.len(), 1);
    assert_eq!(gt.images[0].id, 42);
    assert_eq!(gt.images[0].file_name, "000000000042.jpg");
    assert_eq!(gt.annotations.len(), 6);
    assert_eq!(gt.annotations[0].bbox, [10.0, 10.0, 100.0, 80.0]);
    assert_eq!(
        gt.categories.iter().map(|c| c.id).collect::<Vec<_>>(),
        [7, 3, 1]
    );
    let dt = load_detections(format!("{CASES}/t01_single_image/dt.json")).unwrap();
    assert_eq!(dt.len(), 8);
    assert_eq!(dt[1].score, 0.9);
    let empty = load_detections(format!("{CASES}/t02_empty_detections/dt.json")).unwrap();
    assert!(empty.is_empty());
}

/// An instances file of `n` annotations whose text contains fake element boundaries (`},{` inside
/// strings and nested arrays of objects) so chunk guesses go wrong.
fn tricky_instances(n: usize) -> String {
    let mut s = String::from(
        "{\"info\": {\"description\": \"x\"}, \"licenses\": [{\"id\": 1}],\n\"images\": [",
    );
    for i in 0..200 {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            "{{\"id\": {i}, \"width\": 640, \"height\": 480, \"file_name\": \"{i:012}.jpg\"}}"
        ));
    }
    s.push_str("],\n\"annotations\": [\n");
    for i in 0..n {
        if i > 0 {
            s.push_str(",\n");
        }
        let junk = if i % 3 == 0 {
            "\"note\": \"a},{b} , {\", "
        } else if i % 3 == 1 {
            "\"attributes\": [{\"a\": 1},{\"b\": [2, {\"c\": 3}]} , {}], "
        } else {
            "\"segmentation\": [[1.5, 2.5, 3.25, 4.0, 5.0, 6.0]], "
        };
        s.push_str(&format!(
            "{{{junk}\"id\": {}, \"image_id\": {}, \"category_id\": {}, \"bbox\": [{}.5, 2, 30.25, 40], \"area\": {}.0, \"iscrowd\": {}}}",
            i + 1,
            i % 200,
            1 + i % 5,
            i % 600,
            i % 1300,
            u8::from(i % 17 == 0)
        ));
    }
    s.push_str("],\n\"categories\": [");
    for c in 1..=5 {
        if c > 1 {
            s.push(',');
        }
        s.push_str(&format!(
            "{{\"id\": {c}, \"name\": \"c{c}\", \"supercategory\": \"s\"}}"
        ));
    }
    s.push_str("]}\n");
    s
}

#[test]
fn parallel_chunks_match_sequential_parse() {
    let text = tricky_instances(60_000);
    assert!(
        text.len() > 8 << 20,
        "must span several chunks: {}",
        text.len()
    );
    let ours = Instances::from_slice(text.as_bytes(), "tricky.json").unwrap();
    #[derive(serde::Deserialize)]
    struct Whole {
        annotations: Vec<ringdet_coco::Annotation>,
        images: Vec<ringdet_coco::ImageRecord>,
    }
    let whole: Whole = serde_json::from_str(&text).unwrap();
    assert_eq!(ours.annotations, whole.annotations);
    assert_eq!(ours.images, whole.images);
    assert_eq!(ours.categories.len(), 5);
    assert!(ours.annotations[17].iscrowd);
}

#[test]
fn results_round_trip_through_writer() {
    let text = std::fs::read(format!("{CASES}/r01_random_small/dt.json")).unwrap();
    let dets = detections_from_slice(&text, "dt.json").unwrap();
    let mut out = Vec::new();
    write_detections(&mut out, &dets).unwrap();
    assert_eq!(detections_from_slice(&out, "written.json").unwrap(), dets);
}

fn error_of(text: &str) -> String {
    Instances::from_slice(text.as_bytes(), "bad.json")
        .unwrap_err()
        .to_string()
}

#[test]
fn errors_name_file_record_and_field() {
    let text = tricky_instances(2000).replacen(
        "\"id\": 1533, \"image_id\": 132, \"category_id\": 3, \"bbox\": [332.5, 2, 30.25, 40]",
        "\"id\": 1533, \"image_id\": 132, \"category_id\": 3, \"bbox\": [332.5, 2, 30.25]",
        1,
    );
    let err = error_of(&text);
    assert!(
        err.starts_with("bad.json: annotations[1532].bbox: expected 4 numbers, got 3 (line "),
        "{err}"
    );
    let text = tricky_instances(10).replacen("\"area\": 7.0, ", "", 1);
    assert!(
        error_of(&text).contains("annotations[7]: missing field `area`"),
        "{}",
        error_of(&text)
    );
    let text = tricky_instances(10).replacen("\"image_id\": 4,", "\"image_id\": \"4\",", 1);
    assert!(
        error_of(&text).contains("annotations[4].image_id: invalid type: string"),
        "{}",
        error_of(&text)
    );
    let text = tricky_instances(10).replacen("\"id\": 3, \"width\"", "\"width\"", 1);
    assert!(
        error_of(&text).contains("images[3]: missing field `id`"),
        "{}",
        error_of(&text)
    );
    assert!(error_of("[1, 2]").contains("expected a JSON object"));
    assert!(error_of("{\"images\": 3}").contains("images: expected an array"));
    let cut = tricky_instances(10);
    let cut = &cut[..cut.find("\"id\": 8, \"image_id\"").unwrap()];
    assert!(
        error_of(cut).starts_with("bad.json: annotations[7]: "),
        "{}",
        error_of(cut)
    );
    assert!(error_of("{\"images\": []} x").contains("trailing characters"));
    let err = detections_from_slice(
        b"[{\"image_id\": 1, \"category_id\": 1, \"bbox\": [1,2,3,4]}]",
        "dt.json",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("dt.json: detections[0]: missing field `score`"),
        "{err}"
    );
    let err = load_detections("/nonexistent/dt.json")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("/nonexistent/dt.json: "), "{err}");
}

#[test]
fn an_instances_file_without_images_is_an_error_naming_the_file_and_the_field() {
    for text in [
        "{}",
        "{\"annotations\": [], \"categories\": []}",
        "{\"info\": {\"year\": 2017}, \"annotations\": [{\"id\": 1, \"image_id\": 1, \
         \"category_id\": 1, \"bbox\": [0, 0, 1, 1], \"area\": 1.0, \"iscrowd\": 0}]}",
    ] {
        let err = error_of(text);
        assert!(
            err.starts_with("bad.json: missing field `images`"),
            "{text}: {err}"
        );
    }
    // `images` alone is enough (pycocotools indexes a file without annotations or categories).
    let only_images = Instances::from_slice(b"{\"images\": []}", "ok.json").unwrap();
    assert!(only_images.images.is_empty() && only_images.annotations.is_empty());
    let err = Instances::load(format!("{CASES}/r01_random_small/dt.json"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("expected a JSON object"), "{err}");
}

#[test]
fn category_ids_map_to_classes_in_ascending_order() {
    let gt = Instances::load(format!("{CASES}/t01_single_image/gt.json")).unwrap();
    let map = CategoryMap::new(&gt.categories);
    assert_eq!(map.ids(), &[1, 3, 7]);
    assert_eq!(map.class_of(7), Some(2));
    assert_eq!(map.class_of(55), None);
    assert_eq!(map.id_of(1), Some(3));
}

#[test]
fn training_filter_follows_paddledetection() {
    let text = r#"{"images": [
        {"id": 9, "width": 10, "height": 10, "file_name": "b.jpg"},
        {"id": 2, "width": 10, "height": 10, "file_name": "a.jpg"},
        {"id": 5, "width": 10, "height": 10, "file_name": "c.jpg"}],
      "annotations": [
        {"id": 1, "image_id": 9, "category_id": 20, "bbox": [1.00049, 2, 3, 4], "area": 12, "iscrowd": 0},
        {"id": 2, "image_id": 9, "category_id": 10, "bbox": [1, 2, 3, 4], "area": 12, "iscrowd": 1},
        {"id": 3, "image_id": 9, "category_id": 10, "bbox": [1, 2, 3, 4], "area": 12, "iscrowd": 0, "ignore": 1},
        {"id": 4, "image_id": 9, "category_id": 10, "bbox": [0, 0, 0, 0], "area": 0, "iscrowd": 0},
        {"id": 5, "image_id": 9, "category_id": 10, "bbox": [1, 2, 0.000001, 4], "area": 1, "iscrowd": 0},
        {"id": 6, "image_id": 9, "category_id": 10, "bbox": [1, 2, 3, 4], "area": 0, "iscrowd": 0},
        {"id": 7, "image_id": 2, "category_id": 10, "bbox": [0.5, 0.25, 3, 4], "area": 12, "iscrowd": false},
        {"id": 8, "image_id": 5, "category_id": 10, "bbox": [1, 2, 3, 4], "area": 12, "iscrowd": true},
        {"id": 9, "image_id": 77, "category_id": 10, "bbox": [1, 2, 3, 4], "area": 12, "iscrowd": 0}],
      "categories": [{"id": 20, "name": "b"}, {"id": 10, "name": "a"}]}"#;
    let gt = Instances::from_slice(text.as_bytes(), "train.json").unwrap();
    let (samples, counts) = training_samples(&gt, &CategoryMap::new(&gt.categories));
    assert_eq!(samples.len(), 2);
    assert_eq!(samples[0].image.file_name, "a.jpg");
    assert_eq!(samples[0].gt_bbox, vec![[0.5, 0.25, 3.5, 4.25]]);
    assert_eq!(samples[0].gt_class, vec![0]);
    assert_eq!(samples[1].image.id, 9);
    assert_eq!(samples[1].gt_bbox, vec![[1.0, 2.0, 4.0, 6.0]]);
    assert_eq!(samples[1].gt_class, vec![1]);
    assert_eq!(counts.crowd, 2);
    assert_eq!(counts.ignored, 2);
    assert_eq!(counts.degenerate, 2);
    assert_eq!(counts.orphan, 1);
    assert_eq!(counts.empty_images, 1);
}

#[test]
fn parallel_detection_parse_equals_serde_bit_for_bit() {
    for case in ["r01_random_small", "t01_single_image"] {
        let text = std::fs::read(format!("{CASES}/{case}/dt.json")).unwrap();
        let ours = detections_from_slice(&text, "dt.json").unwrap();
        let serde: Vec<ringdet_coco::DetectionRecord> = serde_json::from_slice(&text).unwrap();
        assert_eq!(ours.len(), serde.len());
        for (a, b) in ours.iter().zip(&serde) {
            assert_eq!((a.image_id, a.category_id), (b.image_id, b.category_id));
            assert_eq!(a.bbox.map(f64::to_bits), b.bbox.map(f64::to_bits));
            assert_eq!(a.score.to_bits(), b.score.to_bits());
        }
    }
}
