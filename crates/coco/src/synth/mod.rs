//! A seeded synthetic detection dataset ("shapes"): real JPEG files and COCO instances JSON laid out
//! like COCO (`train2017/`, `val2017/`, `annotations/instances_{train,val}2017.json`), for demos and
//! as a test fixture. Each image depends only on (seed, split, index), so any thread count writes
//! the same files.

mod scene;
mod shapes;

pub use scene::{
    DEFAULT_MIN_OBJECT, Scene, SceneObject, render_scene, render_scene_min, render_scene_sized,
};
pub use shapes::{CLASS_NAMES, Shape};

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use crate::json;

/// What to generate.
#[derive(Clone, Debug)]
pub struct ShapesConfig {
    /// Output folder.
    pub out: PathBuf,
    /// Train images.
    pub train: usize,
    /// Val images.
    pub val: usize,
    /// Seed.
    pub seed: u64,
    /// Nominal image side; each side is drawn from `[0.75, 1.25]·size`.
    pub size: usize,
    /// JPEG quality 1..=100.
    pub quality: u8,
    /// Smallest object extent in pixels ([`DEFAULT_MIN_OBJECT`]: 6).
    pub min_object: f64,
}

/// The smallest nominal side [`write_shapes_dataset`] draws: below it a scene has no room for a
/// shape.
pub const MIN_SIZE: usize = 16;

/// The split folders written, in order (train, then val).
pub const SPLITS: [&str; 2] = ["train2017", "val2017"];

/// The instances file of `split` (`train2017`, `val2017`) under `out`.
pub fn instances_path(out: &Path, split: &str) -> PathBuf {
    out.join("annotations")
        .join(format!("instances_{split}.json"))
}

/// Why the dataset could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// A file or folder could not be written.
    #[error("{path}: {error}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error (already in the message, so not chained as a source).
        error: std::io::Error,
    },
    /// The nominal side is below [`MIN_SIZE`].
    #[error("image size {size} is below the smallest size the shapes dataset draws, {MIN_SIZE}")]
    Size {
        /// The size asked for.
        size: usize,
    },
    /// The smallest object extent is not a number of pixels the images can hold.
    #[error(
        "smallest object {min_object} px: must be at least 1 and at most 70% of the smallest image side ({largest} px at size {size})"
    )]
    MinObject {
        /// The extent asked for.
        min_object: f64,
        /// The largest it may be at this size.
        largest: f64,
        /// The nominal image side.
        size: usize,
    },
    /// JPEG encoding failed.
    #[error("{path}: cannot encode JPEG: {reason}")]
    Encode {
        /// The image file.
        path: PathBuf,
        /// The encoder's message.
        reason: String,
    },
}

/// What was written.
#[derive(Clone, Debug, PartialEq)]
pub struct ShapesSummary {
    /// Images written per split (train, val).
    pub images: [usize; 2],
    /// Annotations written per split (train, val).
    pub annotations: [usize; 2],
}

/// The instances file as written: ringdet-coco's JSON record types plus an `info` block.
#[derive(Serialize)]
struct InstancesFile {
    info: serde_json::Value,
    images: Vec<json::ImageRecord>,
    annotations: Vec<json::Annotation>,
    categories: Vec<json::Category>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SynthError + '_ {
    move |error| SynthError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// Writes the train and val splits; images are made on rayon's thread pool.
/// Existing files are overwritten: callers that must not do so check [`instances_path`] first.
pub fn write_shapes_dataset(config: &ShapesConfig) -> Result<ShapesSummary, SynthError> {
    if config.size < MIN_SIZE {
        return Err(SynthError::Size { size: config.size });
    }
    // The smallest image side is 0.75 × size (rounded); shapes span at most 70% of it.
    let largest = 0.7 * (0.75 * config.size as f64).round();
    if !(config.min_object >= 1.0 && config.min_object <= largest) {
        return Err(SynthError::MinObject {
            min_object: config.min_object,
            largest,
            size: config.size,
        });
    }
    let ann_dir = config.out.join("annotations");
    std::fs::create_dir_all(&ann_dir).map_err(io_err(&ann_dir))?;
    let mut summary = ShapesSummary {
        images: [0; 2],
        annotations: [0; 2],
    };
    // Image ids are unique across both splits: train 1..=N, val N+1..=N+M.
    let splits = [
        (SPLITS[0], 0u64, config.train, 1u64),
        (SPLITS[1], 1, config.val, 1 + config.train as u64),
    ];
    for (split_idx, (name, split, count, first_id)) in splits.into_iter().enumerate() {
        let dir = config.out.join(name);
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let rendered: Vec<(json::ImageRecord, Vec<SceneObject>)> = (0..count as u64)
            .into_par_iter()
            .map(|i| write_one(config, &dir, split, i, first_id + i))
            .collect::<Result<_, _>>()?;
        let mut doc = InstancesFile {
            info: serde_json::json!({
                "description": "ringdet synthetic shapes",
                "seed": config.seed,
                "split": name,
            }),
            images: Vec::with_capacity(count),
            annotations: Vec::new(),
            categories: CLASS_NAMES
                .iter()
                .enumerate()
                .map(|(i, &name)| json::Category {
                    id: i as i64 + 1,
                    name: name.into(),
                    supercategory: "shape".into(),
                })
                .collect(),
        };
        for (image, objects) in rendered {
            for o in objects {
                doc.annotations.push(json::Annotation {
                    id: doc.annotations.len() as i64 + 1,
                    image_id: image.id,
                    category_id: o.shape.class_index() as i64 + 1,
                    bbox: o.bbox,
                    area: o.area,
                    iscrowd: false,
                    ignore: false,
                });
            }
            doc.images.push(image);
        }
        summary.images[split_idx] = doc.images.len();
        summary.annotations[split_idx] = doc.annotations.len();
        let path = instances_path(&config.out, name);
        let file = std::fs::File::create(&path).map_err(io_err(&path))?;
        let mut writer = std::io::BufWriter::new(file);
        serde_json::to_writer(&mut writer, &doc).map_err(|e| SynthError::Io {
            path: path.clone(),
            error: e.into(),
        })?;
        std::io::Write::flush(&mut writer).map_err(io_err(&path))?;
    }
    Ok(summary)
}

fn write_one(
    config: &ShapesConfig,
    dir: &Path,
    split: u64,
    index: u64,
    id: u64,
) -> Result<(json::ImageRecord, Vec<SceneObject>), SynthError> {
    let scene = render_scene_min(config.seed, split, index, config.size, config.min_object);
    let file_name = format!("{id:012}.jpg");
    let path = dir.join(&file_name);
    let jpeg = crate::image::encode_jpeg(scene.height, scene.width, &scene.rgb, config.quality)
        .map_err(|reason| SynthError::Encode {
            path: path.clone(),
            reason,
        })?;
    std::fs::write(&path, jpeg).map_err(io_err(&path))?;
    let image = json::ImageRecord {
        id: id as i64,
        file_name,
        width: scene.width as u32,
        height: scene.height as u32,
    };
    Ok((image, scene.objects))
}
