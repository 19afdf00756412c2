//! Draws the ground-truth boxes of a COCO instances file on its images, as detections with score
//! 1.00 (a look at `ringdet_coco::draw` without a model):
//! `cargo run -p ringdet-coco --example draw_ground_truth -- ANNOTATIONS IMAGE_DIR OUT_DIR [N]`
//! draws the first N images (default 4) into OUT_DIR as PNG.

use std::path::PathBuf;

use ringdet_coco::draw::{Detection, draw_detections, save_image};
use ringdet_coco::image::read_image;
use ringdet_coco::{CategoryMap, Instances};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [anno, images, out, rest @ ..] = args.as_slice() else {
        return Err("usage: draw_ground_truth ANNOTATIONS IMAGE_DIR OUT_DIR [N]".into());
    };
    let n: usize = rest.first().map_or(Ok(4), |s| s.parse())?;
    let instances = Instances::load(anno)?;
    let categories = CategoryMap::new(&instances.categories);
    let mut labels = vec![String::new(); instances.categories.len()];
    for c in &instances.categories {
        if let Some(i) = categories.class_of(c.id) {
            labels[i] = c.name.clone();
        }
    }
    std::fs::create_dir_all(out)?;
    for image in instances.images.iter().take(n) {
        let pixels = read_image(&PathBuf::from(images).join(&image.file_name))?;
        let dets: Vec<Detection> = instances
            .annotations
            .iter()
            .filter(|a| a.image_id == image.id)
            .filter_map(|a| {
                Some(Detection {
                    bbox: a.bbox.map(|v| v as f32),
                    class: categories.class_of(a.category_id)?,
                    score: 1.0,
                })
            })
            .collect();
        let drawn = draw_detections(&pixels, &dets, &labels, 0.5);
        let path = PathBuf::from(out)
            .join(&image.file_name)
            .with_extension("png");
        save_image(&path, &drawn)?;
        println!("{}: {} boxes", path.display(), dets.len());
    }
    Ok(())
}
