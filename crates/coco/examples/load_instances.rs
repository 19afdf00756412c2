//! Loads a COCO instances file, applies PaddleDetection's training filter and prints what it holds.
//!
//! `cargo run --release -p ringdet-coco --example load_instances -- instances_train2017.json`

use ringdet_coco::json::{CategoryMap, Instances, training_samples};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: load_instances INSTANCES_JSON")?;
    let start = Instant::now();
    let instances = Instances::load(&path)?;
    let loaded = start.elapsed();
    let memory = peak_memory();
    let categories = CategoryMap::new(&instances.categories);
    let (samples, dropped) = training_samples(&instances, &categories);
    println!(
        "{path}: {} images, {} annotations, {} categories loaded in {:.3} s",
        instances.images.len(),
        instances.annotations.len(),
        categories.len(),
        loaded.as_secs_f64()
    );
    println!("after loading: {memory}");
    println!(
        "training view: {} images, {} boxes (dropped {dropped:?}) after {:.3} s",
        samples.len(),
        samples.iter().map(|s| s.gt_bbox.len()).sum::<usize>(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Peak and current resident set (Linux), split into anonymous and file-backed pages.
fn peak_memory() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .filter(|l| {
            ["VmHWM", "VmRSS", "RssAnon", "RssFile"]
                .iter()
                .any(|k| l.starts_with(k))
        })
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join(", ")
}
