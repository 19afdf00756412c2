//! Inference on image files (`ringdet infer`, issue #14): a model from a training config and its
//! weights, or from an exported folder ([`export()`]), run on a list of JPEG/PNG files in batches
//! with the eval transforms (the `EvalReader`'s resize and normalisation, batch size and the
//! head's NMS, as [`crate::eval`] uses them). Each input gets a picture with its detections drawn
//! (`ringdet_coco::draw`) under the output folder with the input's file name, and the detections
//! become COCO results rows (`bbox.json`, which `ringdet coco-eval` reads).
//!
//! ```no_run
//! use std::path::Path;
//! use ringdet_train::Config;
//! use ringdet_train::infer::{InferModel, InferOptions, image_files, infer};
//!
//! let config = Config::load("configs/demo/ppyoloe_shapes_demo.yml".as_ref())?;
//! let model = InferModel::from_config(&config, Path::new("output/ppyoloe_shapes_demo/model_final.safetensors"))?;
//! let images = image_files(None, Some(Path::new("dataset/shapes/val2017")))?;
//! let report = infer(&model, &images, &InferOptions::new("output"))?;
//! println!("{}", report.timing_line());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod export;
mod infer_cfg;

pub use export::{ExportReport, export};
pub use infer_cfg::INFER_CFG;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;
use std::time::Instant;

use ringdet_coco::draw::{self, DrawError};
use ringdet_coco::image::{ImageError, RgbImage, read_image};
use ringdet_coco::loader::{CollateError, collate};
use ringdet_coco::transform::{Sample, resize_sample};
use ringdet_coco::{CategoryMap, DetectionRecord, Instances, JsonError};
use ringdet_detect::arch::Arch;
use ringdet_detect::detector::{eval_forward_fused, postprocess};
use ringdet_detect::error::DetectError;
use ringdet_detect::fuse::FusedRepVgg;
use ringdet_detect::model::Feat;
use ringdet_detect::state::ModelState;
use serde_yaml_ng::Value;

use crate::eval::{EvalError, EvalSettings};
use crate::{Config, ConfigError, TrainRecipe};

/// Why inference or export stopped; every variant names the file, folder or key at fault.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    /// A config value is missing or wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The eval transforms of the config are not supported.
    #[error(transparent)]
    Eval(#[from] EvalError),
    /// A file or folder does not exist or is not what it should be.
    #[error("{what} {path}: {msg}")]
    Path {
        /// What it is (weights, input image, …).
        what: &'static str,
        /// The path as given.
        path: PathBuf,
        /// What is wrong with it.
        msg: String,
    },
    /// An input image could not be read or decoded (names the file).
    #[error(transparent)]
    Image(#[from] ImageError),
    /// A drawn picture could not be written (names the file).
    #[error(transparent)]
    Draw(#[from] DrawError),
    /// The weights could not be loaded or the model failed.
    #[error("{context}")]
    Model {
        /// The file or images concerned.
        context: String,
        /// The detector's error.
        #[source]
        source: DetectError,
    },
    /// The annotation file that names the labels is not a COCO instances file.
    #[error("reading the labels from {path}")]
    Annotations {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: JsonError,
    },
    /// Resized images of a batch differ in size.
    #[error(transparent)]
    Collate(#[from] CollateError),
    /// `infer_cfg.yml` is missing a field or has a wrong one.
    #[error("{path}: {msg}")]
    InferCfg {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// The command line asks for something impossible.
    #[error("{0}")]
    Usage(String),
    /// A file could not be written or read.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> InferError + '_ {
    move |error| InferError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// A model ready to run: architecture, weights (RepVGG blocks fused when loaded from an export),
/// eval transforms, NMS, and the names and COCO ids of its classes.
#[derive(Clone, Debug)]
pub struct InferModel {
    /// The architecture.
    pub arch: Arch,
    /// The weights (for an exported model, the RepVGG branches are zeros: `fused` replaces them).
    pub state: ModelState,
    /// Fused RepVGG convs (an exported model) or `None` (training weights, two branches).
    pub fused: Option<FusedRepVgg>,
    /// Resize, normalisation, batch size and NMS.
    pub settings: EvalSettings,
    /// Class names by class index (drawn on the pictures; `label_list` of `infer_cfg.yml`).
    pub labels: Vec<String>,
    /// COCO category id of each class index (`bbox.json`); the index itself when no annotation
    /// file names the categories.
    pub category_ids: Vec<i64>,
    /// COCO image id by file name, from the annotation file; images not in it get their index.
    pub image_ids: HashMap<String, i64>,
    /// Where the labels came from (for the log and errors).
    pub labels_from: String,
}

/// What the model is told about its classes and images: labels, category ids, image ids.
struct Names {
    labels: Vec<String>,
    category_ids: Vec<i64>,
    image_ids: HashMap<String, i64>,
    from: String,
}

impl Names {
    fn indices(num_classes: usize, from: String) -> Names {
        Names {
            labels: (0..num_classes).map(|i| i.to_string()).collect(),
            category_ids: (0..num_classes as i64).collect(),
            image_ids: HashMap::new(),
            from,
        }
    }
}

/// The `dataset_dir/anno_path` of a dataset section, when `anno_path` is set.
fn anno_file(config: &Config, section: &str) -> Result<Option<PathBuf>, ConfigError> {
    let key = format!("{section}.anno_path");
    match config.get(&key) {
        None | Some(Value::Null) => return Ok(None),
        Some(_) => {}
    }
    let anno = config.string(&key)?;
    let dir = match config.get(&format!("{section}.dataset_dir")) {
        None | Some(Value::Null) => String::new(),
        Some(_) => config.string(&format!("{section}.dataset_dir"))?,
    };
    Ok(Some(Path::new(&dir).join(anno)))
}

/// Labels as PaddleDetection's `tools/infer.py` takes them: from `TestDataset.anno_path`
/// (`dataset_dir` joined), a COCO instances file or a text file with one label per line; when
/// that file does not exist, from `EvalDataset`'s; else the class indices.
fn names_from_config(config: &Config, num_classes: usize) -> Result<Names, InferError> {
    for section in ["TestDataset", "EvalDataset"] {
        let Some(path) = anno_file(config, section)? else {
            continue;
        };
        if !path.is_file() {
            tracing::warn!(path = %path.display(), "{section}.anno_path does not exist; labels from elsewhere");
            continue;
        }
        let from = format!("{section}.anno_path {}", path.display());
        let names = if path.extension().is_some_and(|e| e == "txt") {
            let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
            let labels: Vec<String> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect();
            Names {
                category_ids: (0..labels.len() as i64).collect(),
                labels,
                image_ids: HashMap::new(),
                from,
            }
        } else {
            let instances = Instances::load(&path).map_err(|source| InferError::Annotations {
                path: path.clone(),
                source,
            })?;
            let map = CategoryMap::new(&instances.categories);
            let category_ids = map.ids().to_vec();
            let labels = category_ids
                .iter()
                .map(|id| {
                    instances
                        .categories
                        .iter()
                        .find(|c| c.id == *id)
                        .map_or_else(|| id.to_string(), |c| c.name.clone())
                })
                .collect();
            let image_ids = instances
                .images
                .iter()
                .map(|i| (file_key(&i.file_name), i.id))
                .collect();
            Names {
                labels,
                category_ids,
                image_ids,
                from,
            }
        };
        if names.labels.len() != num_classes {
            return Err(InferError::Path {
                what: "label file",
                path,
                msg: format!(
                    "names {} classes but the model has {num_classes} (num_classes)",
                    names.labels.len()
                ),
            });
        }
        return Ok(names);
    }
    Ok(Names::indices(
        num_classes,
        "class indices (no TestDataset.anno_path file)".into(),
    ))
}

/// The last component of a file name (annotation files may name `val2017/x.jpg`).
fn file_key(name: &str) -> String {
    Path::new(name)
        .file_name()
        .map_or_else(|| name.to_string(), |n| n.to_string_lossy().into_owned())
}

/// The weights file `weights` names: the path itself, else `<path>.safetensors` (as
/// PaddleDetection appends `.pdparams`); a folder or a missing file is an error naming it.
pub fn weights_file(weights: &str) -> Result<PathBuf, InferError> {
    let path = PathBuf::from(weights);
    let err = |msg: String| InferError::Path {
        what: "weights",
        path: path.clone(),
        msg,
    };
    if path.is_dir() {
        return Err(err("is a directory; give a safetensors file".into()));
    }
    if path.is_file() {
        return Ok(path);
    }
    let with_ext = PathBuf::from(format!("{weights}.safetensors"));
    if path.extension().is_none_or(|e| e != "safetensors") && with_ext.is_file() {
        return Ok(with_ext);
    }
    Err(err("does not exist".into()))
}

impl InferModel {
    /// The model of a merged training config with the safetensors weights at `weights` (a
    /// trainer checkpoint's `<name>.safetensors` holds the EMA weights), unfused.
    pub fn from_config(config: &Config, weights: &Path) -> Result<InferModel, InferError> {
        let recipe = TrainRecipe::from_config(config)?;
        let settings = EvalSettings::from_config(config, &recipe)?;
        let arch = Arch::new(recipe.model.clone()).map_err(|source| InferError::Model {
            context: "building the model of the config".into(),
            source,
        })?;
        let mut state = ModelState::zeros(&arch).map_err(|source| InferError::Model {
            context: "building the model of the config".into(),
            source,
        })?;
        if !weights.is_file() {
            return Err(InferError::Path {
                what: "weights",
                path: weights.to_path_buf(),
                msg: "does not exist or is not a file".into(),
            });
        }
        ringdet_detect::checkpoint::load(&mut state, weights).map_err(|source| {
            InferError::Model {
                context: format!("loading the weights {}", weights.display()),
                source,
            }
        })?;
        let names = names_from_config(config, arch.head.num_classes)?;
        Ok(InferModel {
            arch,
            state,
            fused: None,
            settings,
            labels: names.labels,
            category_ids: names.category_ids,
            image_ids: names.image_ids,
            labels_from: names.from,
        })
    }

    /// Takes image ids (by file name) and category ids from the COCO instances file `path`
    /// (`ringdet infer --anno_path`, e.g. for an exported model, which has no dataset): the
    /// `bbox.json` rows then name the annotation file's ids. Its categories must be as many as
    /// the model's classes.
    pub fn use_annotations(&mut self, path: &Path) -> Result<(), InferError> {
        let instances = Instances::load(path).map_err(|source| InferError::Annotations {
            path: path.to_path_buf(),
            source,
        })?;
        let map = CategoryMap::new(&instances.categories);
        if map.len() != self.arch.head.num_classes {
            return Err(InferError::Path {
                what: "annotation file",
                path: path.to_path_buf(),
                msg: format!(
                    "has {} categories but the model has {} classes",
                    map.len(),
                    self.arch.head.num_classes
                ),
            });
        }
        self.category_ids = map.ids().to_vec();
        self.image_ids = instances
            .images
            .iter()
            .map(|i| (file_key(&i.file_name), i.id))
            .collect();
        Ok(())
    }

    /// The model `ringdet export` wrote to `dir` (`infer_cfg.yml` and the fused weights), with no
    /// training config.
    pub fn from_model_dir(dir: &Path) -> Result<InferModel, InferError> {
        infer_cfg::load_model_dir(dir)
    }
}

/// Settings of one [`infer`] run.
#[derive(Clone, Debug)]
pub struct InferOptions {
    /// Folder of the drawn pictures and `bbox.json` (created if missing).
    pub output_dir: PathBuf,
    /// Detections scoring below this are not drawn (they are still in `bbox.json`).
    pub draw_threshold: f32,
    /// Write the detections as COCO results (`results_name` in `output_dir`).
    pub save_results: bool,
    /// File name of the results in `output_dir`: `bbox.json` unless several processes share the
    /// folder (the launcher's ranks write `bbox.rank<r>.json`). Written atomically: a reader never
    /// sees half a file, and two writers of different names never touch each other's files.
    pub results_name: String,
    /// Draw and write the pictures (off: detections only).
    pub draw: bool,
}

impl InferOptions {
    /// Pictures into `output_dir`, threshold 0.5 (PaddleDetection's default), no `bbox.json`.
    pub fn new(output_dir: impl Into<PathBuf>) -> InferOptions {
        InferOptions {
            output_dir: output_dir.into(),
            draw_threshold: 0.5,
            save_results: false,
            results_name: "bbox.json".to_string(),
            draw: true,
        }
    }
}

/// The outcome of [`infer`].
#[derive(Clone, Debug)]
pub struct InferReport {
    /// Every detection as a COCO results row, in input order (then NMS order).
    pub detections: Vec<DetectionRecord>,
    /// The drawn pictures, one per input, in input order.
    pub pictures: Vec<PathBuf>,
    /// `bbox.json`, when written.
    pub bbox_json: Option<PathBuf>,
    /// Images run.
    pub images: usize,
    /// Seconds from reading the first image to writing the last picture.
    pub seconds: f64,
}

impl InferReport {
    /// Images per second over the whole run (reading, model, NMS, drawing, writing).
    pub fn images_per_second(&self) -> f64 {
        self.images as f64 / self.seconds.max(1e-9)
    }

    /// `infer: N images in S s: R images/s, D detections`.
    pub fn timing_line(&self) -> String {
        format!(
            "infer: {} images in {:.3} s: {:.2} images/s, {} detections",
            self.images,
            self.seconds,
            self.images_per_second(),
            self.detections.len()
        )
    }
}

/// File extensions [`image_files`] takes from a folder (the formats `ringdet_coco::image` reads).
pub const IMAGE_EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// The inputs of `--infer_img F` or `--infer_dir D` (exactly one): the file itself, or the
/// JPEG/PNG files of the folder (not recursive) sorted by name. A missing file or folder, or a
/// folder without images, is an error naming it.
pub fn image_files(
    infer_img: Option<&Path>,
    infer_dir: Option<&Path>,
) -> Result<Vec<PathBuf>, InferError> {
    match (infer_img, infer_dir) {
        (Some(img), None) => {
            if !img.is_file() {
                return Err(InferError::Path {
                    what: "input image (--infer_img)",
                    path: img.to_path_buf(),
                    msg: "does not exist or is not a file".into(),
                });
            }
            Ok(vec![img.to_path_buf()])
        }
        (None, Some(dir)) => {
            let err = |msg: String| InferError::Path {
                what: "image folder (--infer_dir)",
                path: dir.to_path_buf(),
                msg,
            };
            let entries = std::fs::read_dir(dir).map_err(|e| err(e.to_string()))?;
            let mut files = Vec::new();
            for entry in entries {
                let path = entry.map_err(|e| err(e.to_string()))?.path();
                let ext = path
                    .extension()
                    .and_then(|e| e.to_str())
                    .map(str::to_ascii_lowercase);
                if path.is_file() && ext.is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.as_str())) {
                    files.push(path);
                }
            }
            files.sort();
            if files.is_empty() {
                return Err(err("holds no .jpg, .jpeg or .png file".into()));
            }
            Ok(files)
        }
        (Some(_), Some(_)) => Err(InferError::Usage(
            "give either --infer_img or --infer_dir, not both".into(),
        )),
        (None, None) => Err(InferError::Usage(
            "give --infer_img FILE or --infer_dir FOLDER".into(),
        )),
    }
}

/// Per-image detections in original pixels: `(class, score, [x1, y1, x2, y2])`.
pub type ImageDetections = Vec<(usize, f32, [f32; 4])>;

impl InferModel {
    /// Runs the model on already decoded images (one batch), returning each image's detections
    /// after NMS in original-image pixels.
    pub fn detect(&self, images: &[RgbImage]) -> Result<Vec<ImageDetections>, InferError> {
        let (h, w) = self.settings.size;
        let samples: Vec<Sample> = images
            .iter()
            .enumerate()
            .map(|(i, img)| {
                let mut s = Sample::decoded(img.clone(), vec![], vec![], i as i64);
                resize_sample(&mut s, h, w, self.settings.interp);
                s
            })
            .collect();
        let mut batch = collate(0, &samples, self.settings.mean, self.settings.std)?;
        let model_err = |source| InferError::Model {
            context: format!("running the model on a batch of {} images", images.len()),
            source,
        };
        let [n, c, bh, bw] = batch.image_shape;
        let image =
            Feat::from_vec(std::mem::take(&mut batch.image), n, c, bh, bw).map_err(model_err)?;
        let out = eval_forward_fused(&self.arch, &self.state, self.fused.as_ref(), &image)
            .map_err(model_err)?;
        let scale_factors: Vec<[f32; 2]> = batch
            .scale_factor
            .chunks_exact(2)
            .map(|s| [s[0], s[1]])
            .collect();
        let (_, dets) = postprocess(
            &out,
            self.arch.head.num_classes,
            &scale_factors,
            &self.settings.nms,
        )
        .map_err(model_err)?;
        Ok(dets
            .into_iter()
            .map(|d| d.into_iter().map(|d| (d.class, d.score, d.bbox)).collect())
            .collect())
    }
}

/// Runs `model` on `images` in batches of its batch size: draws each image's detections above
/// `options.draw_threshold` into `output_dir/<file name>` and, with `save_results`, writes every
/// detection to `output_dir/bbox.json` (COCO results; image ids from the annotation file when
/// it names the file, else the input's index; category ids of the model's classes).
pub fn infer(
    model: &InferModel,
    images: &[PathBuf],
    options: &InferOptions,
) -> Result<InferReport, InferError> {
    let start = Instant::now();
    std::fs::create_dir_all(&options.output_dir).map_err(io_err(&options.output_dir))?;
    if options.draw {
        // Pictures take the inputs' names: never write them over the inputs.
        let out = options
            .output_dir
            .canonicalize()
            .map_err(io_err(&options.output_dir))?;
        if let Some(input) = images.iter().find(|p| {
            p.parent()
                .map(|d| {
                    if d.as_os_str().is_empty() {
                        Path::new(".")
                    } else {
                        d
                    }
                })
                .and_then(|d| d.canonicalize().ok())
                .is_some_and(|d| d == out)
        }) {
            return Err(InferError::Path {
                what: "output folder (--output_dir)",
                path: options.output_dir.clone(),
                msg: format!(
                    "holds the input {}: the pictures would overwrite the inputs; choose another folder",
                    input.display()
                ),
            });
        }
    }
    let mut detections = Vec::new();
    let mut pictures = Vec::new();
    let batch_size = model.settings.batch_size.max(1);
    let chunks: Vec<&[PathBuf]> = images.chunks(batch_size).collect();
    // A reader thread decodes the next batch while the model runs on this one.
    std::thread::scope(|scope| -> Result<(), InferError> {
        let (tx, rx) = sync_channel::<Result<Vec<RgbImage>, ImageError>>(2);
        let chunks_ref = &chunks;
        scope.spawn(move || {
            for chunk in chunks_ref {
                let decoded = chunk
                    .iter()
                    .map(|p| read_image(p))
                    .collect::<Result<Vec<_>, _>>();
                let failed = decoded.is_err();
                if tx.send(decoded).is_err() || failed {
                    return;
                }
            }
        });
        for (b, &chunk) in chunks.iter().enumerate() {
            let decoded = rx.recv().map_err(|_| {
                InferError::Usage("the image reader thread stopped unexpectedly".into())
            })??;
            let per_image = model.detect(&decoded).map_err(|e| match e {
                InferError::Model { source, .. } => InferError::Model {
                    context: format!(
                        "running the model on {}",
                        chunk
                            .iter()
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    source,
                },
                other => other,
            })?;
            for (i, ((path, image), dets)) in chunk.iter().zip(&decoded).zip(per_image).enumerate()
            {
                let index = (b * batch_size + i) as i64;
                let name = path.file_name().map_or_else(
                    || format!("{index}.png"),
                    |n| n.to_string_lossy().into_owned(),
                );
                let image_id = model.image_ids.get(&name).copied().unwrap_or(index);
                let mut drawable = Vec::with_capacity(dets.len());
                for &(class, score, [x1, y1, x2, y2]) in &dets {
                    let category_id = model
                        .category_ids
                        .get(class)
                        .copied()
                        .unwrap_or(class as i64);
                    // As PaddleDetection's get_det_res: f32 corners widened to f64, w and h in f64.
                    let [x1d, y1d, x2d, y2d] = [x1, y1, x2, y2].map(f64::from);
                    detections.push(DetectionRecord {
                        image_id,
                        category_id,
                        bbox: [x1d, y1d, x2d - x1d, y2d - y1d],
                        score: f64::from(score),
                    });
                    drawable.push(draw::Detection {
                        bbox: [x1, y1, x2 - x1, y2 - y1],
                        class,
                        score,
                    });
                }
                if options.draw {
                    let drawn = draw::draw_detections(
                        image,
                        &drawable,
                        &model.labels,
                        options.draw_threshold,
                    );
                    let out = options.output_dir.join(&name);
                    draw::save_image(&out, &drawn)?;
                    pictures.push(out);
                }
            }
            tracing::debug!(batch = b, images = chunk.len(), "inferred");
        }
        Ok(())
    })?;
    let bbox_json = if options.save_results {
        let path = options.output_dir.join(&options.results_name);
        ringdet_tensor::safetensors::atomic_write(&path, |out| {
            ringdet_coco::json::write_detections(out, &detections)
        })
        .map_err(|e| match e {
            ringdet_tensor::TensorError::Io { path, error } => InferError::Io { path, error },
            other => InferError::Usage(other.to_string()),
        })?;
        Some(path)
    } else {
        None
    };
    Ok(InferReport {
        detections,
        pictures,
        bbox_json,
        images: images.len(),
        seconds: start.elapsed().as_secs_f64(),
    })
}
