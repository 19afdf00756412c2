//! Writes a small synthetic shapes dataset (or uses `DIR` laid out like COCO), then runs one epoch
//! of the PP-YOLOE train loader over it and one pass of the eval loader, printing what it made.
//!
//! `cargo run --release -p ringdet-coco --example train_loader [DIR] [WORKERS]`

use std::path::PathBuf;
use std::time::Instant;

use ringdet_coco::Instances;
use ringdet_coco::loader::{Loader, LoaderConfig, eval_records, training_records};
use ringdet_coco::synth::{ShapesConfig, write_shapes_dataset};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let root = match args.next() {
        Some(dir) => PathBuf::from(dir),
        None => {
            let out = std::env::temp_dir().join("ringdet-shapes-example");
            let config = ShapesConfig {
                out: out.clone(),
                train: 64,
                val: 16,
                seed: 0,
                size: 320,
                quality: 90,
                min_object: ringdet_coco::synth::DEFAULT_MIN_OBJECT,
            };
            write_shapes_dataset(&config)?;
            out
        }
    };
    let workers: usize = args.next().map(|w| w.parse()).transpose()?.unwrap_or(2);

    // Training: PaddleDetection's filter, shuffle, drop_last, PP-YOLOE transforms, batch of 8.
    let instances = Instances::load(root.join("annotations/instances_train2017.json"))?;
    let (records, dropped) = training_records(&instances, &root.join("train2017"));
    println!(
        "train: {} images kept ({} left without boxes)",
        records.len(),
        dropped.empty_images
    );
    let loader = Loader::new(records, LoaderConfig::train(8, workers, 42))?;
    let start = Instant::now();
    let mut images = 0;
    for batch in loader.epoch(0) {
        let batch = batch?;
        images += batch.len();
        println!(
            "batch {:>2}: image {:?}, gt_bbox [{}, {}, 4], im_shape {:?}",
            batch.index,
            batch.image_shape,
            batch.len(),
            batch.max_boxes,
            &batch.im_shape[..2]
        );
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{images} train images in {secs:.2} s ({:.0} images/s, {workers} workers)",
        images as f64 / secs
    );

    // Evaluation: every image in id order, 640×640 bicubic; a bad image is an error naming it.
    let val = Instances::load(root.join("annotations/instances_val2017.json"))?;
    let loader = Loader::new(
        eval_records(&val, &root.join("val2017")),
        LoaderConfig::eval(2, workers),
    )?;
    let batches = loader.epoch(0).collect::<Result<Vec<_>, _>>()?;
    println!(
        "eval: {} batches of {:?}",
        batches.len(),
        batches[0].image_shape
    );
    Ok(())
}
