//! Evaluates a COCO results file against ground truth, exactly as pycocotools' COCOeval does.
//!
//! `cargo run --release -p ringdet-coco --example coco_eval -- instances_val2017.json bbox.json`

use ringdet_coco::{Instances, UnknownImages, evaluate, load_detections};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(gt_path), Some(dt_path)) = (args.next(), args.next()) else {
        return Err("usage: coco_eval GT_JSON DT_JSON".into());
    };
    let gt = Instances::load(gt_path)?;
    let detections = load_detections(dt_path)?;
    let evaluation = evaluate(&gt, &detections, UnknownImages::Error)?;
    print!("{}", evaluation.summary());
    for (category_id, ap) in evaluation.per_category_ap() {
        println!("category {category_id}: AP {ap:.4}");
    }
    Ok(())
}
