//! What evaluation reads from a merged config: the `EvalDataset` files (resolved as
//! PaddleDetection's `COCODataSet` does: `dataset_dir/anno_path` and `dataset_dir/image_dir`,
//! relative to the working directory) and the `EvalReader` (batch size, `Resize`,
//! `NormalizeImage`), plus the recipe's NMS.

use std::path::{Path, PathBuf};

use ringdet_coco::loader::{Record, eval_records};
use ringdet_coco::transform::{IMAGENET_MEAN, IMAGENET_STD, Interp};
use ringdet_coco::{CategoryMap, Instances};
use ringdet_detect::nms::NmsParams;
use serde_yaml_ng::Value;

use super::EvalError;
use crate::{Config, ConfigError, TrainRecipe};

/// How images are read, resized and normalised, batched, and post-processed in evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalSettings {
    /// Images per forward on each rank (`EvalReader.batch_size`).
    pub batch_size: usize,
    /// Network input (height, width) of the `Resize` (`keep_ratio: False`).
    pub size: (usize, usize),
    /// The `Resize` interpolation (`interp`, OpenCV's numbering; PaddleDetection's default 1).
    pub interp: Interp,
    /// `NormalizeImage` mean on the 0..1 scale.
    pub mean: [f32; 3],
    /// `NormalizeImage` std on the 0..1 scale.
    pub std: [f32; 3],
    /// Post-processing (`PPYOLOEHead.nms`).
    pub nms: NmsParams,
    /// Draw a progress bar over rank 0's images on stderr when stderr is a terminal
    /// (`ringdet eval` sets it; off by default, and during training).
    pub progress_bar: bool,
}

const TRANSFORMS: &str = "EvalReader.sample_transforms";

impl EvalSettings {
    /// The settings of a merged config whose recipe is `recipe` (batch size, input size and NMS
    /// come from it; the interpolation and normalisation from `EvalReader.sample_transforms`).
    /// A transform evaluation does not implement is an error naming it.
    pub fn from_config(config: &Config, recipe: &TrainRecipe) -> Result<EvalSettings, EvalError> {
        let mut settings = EvalSettings {
            batch_size: recipe.eval_batch_size,
            size: recipe.eval_size,
            interp: Interp::Linear,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
            nms: recipe.nms,
            progress_bar: false,
        };
        let Some(list) = config.get(TRANSFORMS).and_then(Value::as_sequence) else {
            return Ok(settings);
        };
        for (i, item) in list.iter().enumerate() {
            let Some((name, params)) = item.as_mapping().and_then(|m| m.iter().next()) else {
                return Err(bad(
                    config,
                    &format!("{TRANSFORMS}.{i}"),
                    "expected `- Name: {...}`",
                ));
            };
            let name = name.as_str().unwrap_or_default();
            let key = format!("{TRANSFORMS}.{i}.{name}");
            match name {
                "Decode" | "Permute" => {}
                "Resize" => {
                    if params.get("keep_ratio").and_then(Value::as_bool) == Some(true) {
                        return Err(bad(
                            config,
                            &format!("{key}.keep_ratio"),
                            "keep_ratio: True is not supported (PP-YOLOE evaluates at a fixed size)",
                        ));
                    }
                    if let Some(v) = params.get("interp") {
                        settings.interp = match v.as_u64() {
                            Some(0) => Interp::Nearest,
                            Some(1) => Interp::Linear,
                            Some(2) => Interp::Cubic,
                            Some(3) => Interp::Area,
                            Some(4) => Interp::Lanczos4,
                            _ => {
                                return Err(bad(
                                    config,
                                    &format!("{key}.interp"),
                                    "expected an OpenCV interpolation 0..=4",
                                ));
                            }
                        };
                    }
                }
                "NormalizeImage" => normalize(config, &key, params, &mut settings)?,
                other => {
                    return Err(bad(
                        config,
                        &key,
                        &format!(
                            "the eval transform {other} is not supported (Decode, Resize, NormalizeImage, Permute are)"
                        ),
                    ));
                }
            }
        }
        Ok(settings)
    }
}

/// `NormalizeImage {mean, std, is_scale, norm_type}` as mean and std on the 0..1 scale.
fn normalize(
    config: &Config,
    key: &str,
    params: &Value,
    settings: &mut EvalSettings,
) -> Result<(), EvalError> {
    let triple = |field: &str, default: [f32; 3]| -> Result<[f32; 3], EvalError> {
        let Some(v) = params.get(field) else {
            return Ok(default);
        };
        let values: Option<Vec<f32>> = v
            .as_sequence()
            .map(|s| s.iter().map(|x| x.as_f64().map(|x| x as f32)).collect())
            .unwrap_or(None);
        match values.as_deref() {
            Some(&[a, b, c]) => Ok([a, b, c]),
            _ => Err(bad(config, &format!("{key}.{field}"), "expected 3 numbers")),
        }
    };
    let (mut mean, mut std) = (triple("mean", IMAGENET_MEAN)?, triple("std", IMAGENET_STD)?);
    let is_scale = params
        .get("is_scale")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    match params.get("norm_type").and_then(Value::as_str) {
        None | Some("mean_std") => {}
        Some("none") => (mean, std) = ([0.0; 3], [1.0; 3]),
        Some(other) => {
            return Err(bad(
                config,
                &format!("{key}.norm_type"),
                &format!("{other:?} is not supported (mean_std or none)"),
            ));
        }
    }
    if !is_scale {
        // Pixels stay 0..255: (v − m)/s equals (v/255 − m/255)/(s/255).
        mean = mean.map(|m| m / 255.0);
        std = std.map(|s| s / 255.0);
    }
    if std.iter().any(|&s| !(s.is_finite() && s > 0.0)) {
        return Err(bad(config, &format!("{key}.std"), "must be above 0"));
    }
    (settings.mean, settings.std) = (mean, std);
    Ok(())
}

fn bad(config: &Config, key: &str, msg: &str) -> EvalError {
    EvalError::Config(ConfigError::Value {
        key: key.to_string(),
        origin: config.origin(key),
        msg: msg.to_string(),
    })
}

/// The evaluation set: the ground truth, its category map and one record per image (sorted by id).
#[derive(Clone, Debug)]
pub struct EvalDataset {
    /// The instances file.
    pub anno_path: PathBuf,
    /// The folder of the images.
    pub image_dir: PathBuf,
    /// The ground truth.
    pub instances: Instances,
    /// Category ids to the model's class indices (ascending id order).
    pub categories: CategoryMap,
    /// Every image, sorted by id.
    pub records: Vec<Record>,
}

impl EvalDataset {
    /// The config's `EvalDataset`: `dataset_dir` (default empty) joined with `anno_path` and
    /// `image_dir` (default empty), relative to the working directory as PaddleDetection does.
    pub fn from_config(config: &Config) -> Result<EvalDataset, EvalError> {
        let text = |key: &str| -> Result<String, ConfigError> {
            match config.get(key) {
                None | Some(Value::Null) => Ok(String::new()),
                Some(_) => config.string(key),
            }
        };
        let dataset_dir = PathBuf::from(text("EvalDataset.dataset_dir")?);
        let anno = config.string("EvalDataset.anno_path")?;
        let image_dir = text("EvalDataset.image_dir")?;
        EvalDataset::open(&dataset_dir.join(anno), &dataset_dir.join(image_dir))
    }

    /// Reads the instances file `anno_path`; the images are `image_dir/<file_name>`.
    pub fn open(anno_path: &Path, image_dir: &Path) -> Result<EvalDataset, EvalError> {
        if !anno_path.is_file() {
            return Err(EvalError::NotFound {
                what: "EvalDataset annotations (dataset_dir/anno_path)",
                path: anno_path.to_path_buf(),
            });
        }
        if !image_dir.is_dir() {
            return Err(EvalError::NotFound {
                what: "EvalDataset image folder (dataset_dir/image_dir)",
                path: image_dir.to_path_buf(),
            });
        }
        let instances = Instances::load(anno_path).map_err(|source| EvalError::Annotations {
            path: anno_path.to_path_buf(),
            source,
        })?;
        let categories = CategoryMap::new(&instances.categories);
        let records = eval_records(&instances, image_dir);
        Ok(EvalDataset {
            anno_path: anno_path.to_path_buf(),
            image_dir: image_dir.to_path_buf(),
            instances,
            categories,
            records,
        })
    }
}
