//! Draws the ground truth of the first training batches, after every augmentation, on the images
//! the network sees: a check by eye that boxes and pixels still agree.
//! `show_batches CONFIG.yml ANNO.json IMAGE_DIR OUT_DIR [key=value ...]`

use ringdet_coco::Instances;
use ringdet_coco::draw::{Detection, draw_detections, save_image};
use ringdet_coco::image::RgbImage;
use ringdet_coco::loader::{Loader, LoaderConfig, training_records};
use ringdet_train::{Config, TrainRecipe};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        return Err(
            "usage: show_batches CONFIG.yml ANNO.json IMAGE_DIR OUT_DIR [key=value ...]".into(),
        );
    }
    let mut config = Config::load(args[0].as_ref())?;
    config.apply_overrides(&args[4..])?;
    let recipe = TrainRecipe::from_config(&config)?;
    let instances = Instances::load(std::path::Path::new(&args[1]))?;
    let (records, _) = training_records(&instances, std::path::Path::new(&args[2]));
    let mut cfg = LoaderConfig::train(recipe.batch_size, 1, 7);
    cfg.train_sizes = recipe.train_sizes.clone();
    cfg.transforms = recipe.sample_transforms.clone();
    let (mean, std) = (cfg.mean, cfg.std);
    let loader = Loader::new(records, cfg)?;
    std::fs::create_dir_all(&args[3])?;
    for (bi, batch) in loader.epoch(0).take(2).enumerate() {
        let b = batch?;
        let [n, _, h, w] = b.image_shape;
        for i in 0..n {
            let mut pixels = vec![0f32; h * w * 3];
            for c in 0..3 {
                for p in 0..h * w {
                    let v = b.image[((i * 3 + c) * h * w) + p] * std[c] + mean[c];
                    pixels[p * 3 + c] = (v * 255.0).clamp(0.0, 255.0);
                }
            }
            let image = RgbImage {
                height: h,
                width: w,
                pixels,
                integral: false,
            };
            let mut dets = Vec::new();
            for m in 0..b.max_boxes {
                let k = i * b.max_boxes + m;
                if b.pad_gt_mask[k] > 0.0 {
                    let bb = &b.gt_bbox[k * 4..k * 4 + 4];
                    dets.push(Detection {
                        class: b.gt_class[k] as usize,
                        score: 1.0,
                        bbox: [bb[0], bb[1], bb[2] - bb[0], bb[3] - bb[1]],
                    });
                }
            }
            let out = draw_detections(&image, &dets, &[], 0.0);
            save_image(format!("{}/b{bi}_{i}.png", args[3]).as_ref(), &out)?;
        }
    }
    Ok(())
}
