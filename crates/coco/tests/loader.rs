//! The loader on a small synthetic dataset: order and content independent of the worker count,
//! collated shapes, distributed shards, and bad images (skipped in training, an error in eval).

use std::path::{Path, PathBuf};

use ringdet_coco::Instances;
use ringdet_coco::loader::{
    BadImagePolicy, Batch, Loader, LoaderConfig, LoaderError, Record, eval_records,
    training_records,
};
use ringdet_coco::synth::{ShapesConfig, write_shapes_dataset};
use ringdet_coco::transform::BATCH_SIZES;

fn dataset(name: &str, train: usize) -> PathBuf {
    let out =
        std::env::temp_dir().join(format!("ringdet-coco-loader-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let config = ShapesConfig {
        out: out.clone(),
        train,
        val: 0,
        seed: 11,
        size: 48,
        quality: 90,
        min_object: ringdet_coco::synth::DEFAULT_MIN_OBJECT,
    };
    write_shapes_dataset(&config).unwrap();
    out
}

/// Train records through PaddleDetection's filter (images without boxes dropped), or every image.
fn records(root: &Path, keep_empty: bool) -> Vec<Record> {
    let instances = Instances::load(root.join("annotations/instances_train2017.json")).unwrap();
    let dir = root.join("train2017");
    if keep_empty {
        let mut all = eval_records(&instances, &dir);
        let (with_boxes, _) = training_records(&instances, &dir);
        for r in &mut all {
            if let Some(t) = with_boxes.iter().find(|t| t.im_id == r.im_id) {
                r.clone_from(t);
            }
        }
        all
    } else {
        training_records(&instances, &dir).0
    }
}

fn run_epoch(records: &[Record], config: LoaderConfig, epoch: u32) -> Vec<Batch> {
    let loader = Loader::new(records.to_vec(), config).unwrap();
    loader.epoch(epoch).collect::<Result<Vec<_>, _>>().unwrap()
}

#[test]
fn batches_are_identical_for_any_worker_count() {
    let root = dataset("workers", 40);
    let recs = records(&root, false);
    assert!(recs.len() >= 20, "only {} images with boxes", recs.len());
    let one = run_epoch(&recs, LoaderConfig::train(4, 1, 5), 2);
    let three = run_epoch(&recs, LoaderConfig::train(4, 3, 5), 2);
    assert_eq!(one.len(), recs.len() / 4);
    assert!(one == three, "worker count changed the batches");
    let other_epoch = run_epoch(&recs, LoaderConfig::train(4, 2, 5), 3);
    assert!(one[0].im_id != other_epoch[0].im_id || one[0].image != other_epoch[0].image);
    for (i, b) in one.iter().enumerate() {
        assert_eq!(b.index, i);
        let [n, c, h, w] = b.image_shape;
        assert_eq!((n, c), (4, 3));
        assert!(h == w && BATCH_SIZES.contains(&h));
        assert_eq!(b.image.len(), n * c * h * w);
        let m = b.max_boxes;
        assert!(m >= 1);
        assert_eq!(
            (b.gt_class.len(), b.gt_bbox.len(), b.pad_gt_mask.len()),
            (n * m, n * m * 4, n * m)
        );
        assert_eq!((b.im_shape.len(), b.scale_factor.len()), (2 * n, 2 * n));
        for k in 0..n * m {
            let bbox = &b.gt_bbox[k * 4..k * 4 + 4];
            if b.pad_gt_mask[k] == 1.0 {
                assert!(
                    bbox[0] < bbox[2]
                        && bbox[1] < bbox[3]
                        && bbox[2] <= w as f32
                        && bbox[3] <= h as f32
                );
            } else {
                assert_eq!((bbox, b.gt_class[k]), (&[0.0f32; 4][..], 0));
            }
        }
    }
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn ranks_get_disjoint_shards() {
    let root = dataset("ranks", 24);
    let recs = records(&root, true);
    let ids = |rank| {
        let config = LoaderConfig {
            rank,
            world_size: 2,
            ..LoaderConfig::train(3, 2, 1)
        };
        run_epoch(&recs, config, 0)
            .iter()
            .flat_map(|b| b.im_id.clone())
            .collect::<Vec<_>>()
    };
    let (a, b) = (ids(0), ids(1));
    assert_eq!(a.len(), b.len());
    assert!(a.iter().all(|i| !b.contains(i)), "{a:?} {b:?}");
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn bad_images_are_skipped_in_training_and_fatal_in_eval() {
    let root = dataset("bad", 12);
    let recs = records(&root, true);
    std::fs::write(&recs[2].image_path, b"\xFF\xD8not really a jpeg").unwrap();
    std::fs::remove_file(&recs[5].image_path).unwrap();
    let train = LoaderConfig {
        shuffle: false,
        drop_last: false,
        ..LoaderConfig::train(4, 2, 3)
    };
    let loader = Loader::new(recs.clone(), train.clone()).unwrap();
    let batches: Vec<Batch> = loader.epoch(0).collect::<Result<_, _>>().unwrap();
    assert_eq!(
        batches.iter().map(Batch::len).sum::<usize>(),
        12,
        "batch sizes are kept"
    );
    assert_eq!(loader.bad_images(), 2);
    let ids: Vec<i64> = batches.iter().flat_map(|b| b.im_id.clone()).collect();
    assert!(!ids.contains(&recs[2].im_id) && !ids.contains(&recs[5].im_id));

    let strict = LoaderConfig {
        bad_image: BadImagePolicy::Fail,
        ..train
    };
    let err = Loader::new(recs.clone(), strict)
        .unwrap()
        .epoch(0)
        .find_map(Result::err)
        .unwrap();
    assert!(
        err.to_string()
            .contains(&recs[2].image_path.display().to_string()),
        "{err}"
    );

    let results: Vec<Result<Batch, LoaderError>> =
        Loader::new(recs.clone(), LoaderConfig::eval(2, 2))
            .unwrap()
            .epoch(0)
            .collect();
    assert!(results[0].is_ok());
    let err = results.iter().find_map(|r| r.as_ref().err()).unwrap();
    assert!(
        err.to_string()
            .contains(&recs[2].image_path.display().to_string()),
        "{err}"
    );
    assert_eq!(results.len(), 2, "the epoch stops at the first error");
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn eval_batches_are_640_in_order() {
    let root = dataset("eval", 5);
    let recs = records(&root, true);
    let batches = run_epoch(&recs, LoaderConfig::eval(2, 3), 0);
    assert_eq!(
        batches.iter().map(Batch::len).collect::<Vec<_>>(),
        vec![2, 2, 1]
    );
    let ids: Vec<i64> = batches.iter().flat_map(|b| b.im_id.clone()).collect();
    assert_eq!(ids, recs.iter().map(|r| r.im_id).collect::<Vec<_>>());
    assert_eq!(batches[0].image_shape, [2, 3, 640, 640]);
    assert_eq!(&batches[0].im_shape[..2], &[640.0, 640.0]);
    std::fs::remove_dir_all(root).unwrap();
}
