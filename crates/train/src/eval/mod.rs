//! COCO bbox evaluation of a model, alone or data-parallel (issue #13, item 6).
//!
//! Every rank runs the model on its own shard of the evaluation images (a strided split of the
//! id-sorted images: rank r takes images r, r + W, r + 2W, …, so the shards are disjoint and
//! cover the set), in `EvalReader.batch_size` batches, with the config's eval transforms and
//! the recipe's NMS. Detections become COCO results rows (original-image `x, y, w, h`, category
//! ids mapped back through the dataset's category map, as PaddleDetection's `get_det_res`);
//! with more than one rank they are all-gathered (variable sizes) to rank 0, which sorts them
//! by image id (the single-process order) and runs the pycocotools-exact evaluator. Rank 0
//! broadcasts the 12 stats, so [`evaluate`] returns them on every rank. Without a communicator
//! one process evaluates every image.
//!
//! ```no_run
//! use ringdet_detect::arch::Arch;
//! use ringdet_detect::state::ModelState;
//! use ringdet_train::eval::{EvalDataset, EvalSettings, evaluate};
//! use ringdet_train::{Config, TrainRecipe};
//!
//! let config = Config::load("configs/ppyoloe/ppyoloe_crn_s_300e_coco.yml".as_ref())?;
//! let recipe = TrainRecipe::from_config(&config)?;
//! let arch = Arch::new(recipe.model.clone())?;
//! let mut state = ModelState::zeros(&arch)?;
//! ringdet_detect::checkpoint::load(&mut state, "model.safetensors")?;
//! let dataset = EvalDataset::from_config(&config)?;
//! let settings = EvalSettings::from_config(&config, &recipe)?;
//! let report = evaluate(&arch, &state, &dataset, &settings, None)?;
//! print!("{}", report.summary().unwrap_or_default());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod gather;
mod settings;

pub use gather::EvalComm;
pub use settings::{EvalDataset, EvalSettings};

use std::path::PathBuf;
use std::sync::mpsc::sync_channel;
use std::time::Instant;

use ringdet_coco::eval::STAT_NAMES;
use ringdet_coco::image::{ImageError, read_image};
use ringdet_coco::loader::{Batch, CollateError, Record, collate};
use ringdet_coco::transform::{Sample, resize_sample};
use ringdet_coco::{DetectionRecord, Evaluation, JsonError, UnknownImages};
use ringdet_collective::CommError;
use ringdet_detect::arch::Arch;
use ringdet_detect::detector::{eval_forward, postprocess};
use ringdet_detect::error::DetectError;
use ringdet_detect::model::Feat;
use ringdet_detect::state::ModelState;

use crate::ConfigError;

/// Why an evaluation stopped.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A config value evaluation needs is missing or wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A file or folder of the dataset does not exist.
    #[error("{what} {path} does not exist")]
    NotFound {
        /// Which one, with the config keys it comes from.
        what: &'static str,
        /// The path, as resolved from the working directory.
        path: PathBuf,
    },
    /// The instances file is not a COCO instances file.
    #[error("reading the EvalDataset annotations {path}")]
    Annotations {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: JsonError,
    },
    /// The model has fewer classes than the dataset has categories.
    #[error(
        "the model has {num_classes} classes (num_classes) but {path} has {categories} categories"
    )]
    Classes {
        /// The model's class count.
        num_classes: usize,
        /// The instances file.
        path: PathBuf,
        /// Its category count.
        categories: usize,
    },
    /// An image could not be read (the error names the file).
    #[error(transparent)]
    Image(#[from] ImageError),
    /// Resized images of one batch differ in size.
    #[error(transparent)]
    Collate(#[from] CollateError),
    /// The model failed.
    #[error("rank {rank}: the model failed on images {image_ids:?}")]
    Model {
        /// This rank.
        rank: usize,
        /// The COCO ids of the batch.
        image_ids: Vec<i64>,
        /// The detector's error.
        #[source]
        source: DetectError,
    },
    /// A collective operation failed.
    #[error("rank {rank}: {what}")]
    Comm {
        /// This rank.
        rank: usize,
        /// Which step.
        what: &'static str,
        /// The collective's error (it names the peer).
        #[source]
        source: CommError,
    },
    /// Gathered rows that do not decode (a rank sent something else).
    #[error("rank {rank} sent {len} values, not a whole number of {row}-value detection rows")]
    Rows {
        /// The sender.
        rank: usize,
        /// Values received.
        len: usize,
        /// Values per row.
        row: usize,
    },
    /// The COCO evaluator refused the detections.
    #[error("evaluating against {path}")]
    Coco {
        /// The ground truth.
        path: PathBuf,
        /// The evaluator's error.
        #[source]
        source: ringdet_coco::EvalError,
    },
    /// The loader thread stopped without a result.
    #[error("rank {rank}: the image reader thread stopped unexpectedly")]
    Reader {
        /// This rank.
        rank: usize,
    },
}

/// The outcome of [`evaluate`].
#[derive(Clone, Debug)]
pub struct EvalReport {
    /// pycocotools' 12 stats (AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl),
    /// -1 where undefined; the same on every rank.
    pub stats: [f64; 12],
    /// Rank 0: every detection, sorted by image id (what `bbox.json` holds); other ranks: their
    /// own shard's.
    pub detections: Vec<DetectionRecord>,
    /// Rank 0: the accumulated precision and recall; `None` on other ranks.
    pub evaluation: Option<Evaluation>,
    /// Category names by id, for the per-class table.
    pub category_names: Vec<(i64, String)>,
    /// Images of the whole evaluation set.
    pub images: usize,
    /// Images this rank ran the model on.
    pub local_images: usize,
    /// Seconds of inference on this rank: reading, resizing, forward and NMS, up to the gather.
    pub inference_seconds: f64,
    /// Seconds from the start to the end of the evaluation on this rank (gather and COCO
    /// evaluation included).
    pub total_seconds: f64,
    /// This rank.
    pub rank: usize,
    /// Ranks that evaluated.
    pub world_size: usize,
}

impl EvalReport {
    /// pycocotools' 12-line summary (rank 0 only).
    pub fn summary(&self) -> Option<String> {
        self.evaluation.as_ref().map(Evaluation::summary)
    }

    /// The per-category AP table PaddleDetection prints with `--classwise` (rank 0 only): up to
    /// three `category | AP` pairs per row, AP to 3 decimals, `nan` where undefined.
    pub fn classwise_table(&self) -> Option<String> {
        let evaluation = self.evaluation.as_ref()?;
        let cells: Vec<(String, String)> = evaluation
            .per_category_ap()
            .iter()
            .map(|&(id, ap)| {
                let name = self
                    .category_names
                    .iter()
                    .find(|(i, _)| *i == id)
                    .map_or_else(|| id.to_string(), |(_, n)| n.clone());
                let ap = if ap < 0.0 {
                    "nan".to_string()
                } else {
                    format!("{ap:.3}")
                };
                (name, ap)
            })
            .collect();
        let pairs = cells.len().clamp(1, 3);
        let name_w = cells
            .iter()
            .map(|c| c.0.len())
            .chain(["category".len()])
            .max()
            .unwrap_or(8);
        let ap_w = cells
            .iter()
            .map(|c| c.1.len())
            .chain([5])
            .max()
            .unwrap_or(5);
        let row = |items: &[(String, String)]| -> String {
            let mut line = String::new();
            for (i, (n, a)) in items.iter().enumerate() {
                let sep = if i > 0 { " | " } else { "" };
                line.push_str(&format!("{sep}{n:<name_w$} | {a:<ap_w$}"));
            }
            line.trim_end().to_string() + "\n"
        };
        let header: Vec<(String, String)> = (0..pairs)
            .map(|_| ("category".to_string(), "AP".to_string()))
            .collect();
        let mut out = String::from("Per-category of bbox AP:\n");
        let head = row(&header);
        out.push_str(&head);
        out.push_str(&"-".repeat(head.trim_end().len()));
        out.push('\n');
        for chunk in cells.chunks(pairs) {
            out.push_str(&row(chunk));
        }
        Some(out)
    }

    /// Images per second of inference over the whole set (rank 0's clock).
    pub fn images_per_second(&self) -> f64 {
        self.images as f64 / self.inference_seconds.max(1e-9)
    }

    /// A one-line timing summary: images, ranks, seconds and images/s.
    pub fn timing_line(&self) -> String {
        format!(
            "eval: {} images on {} rank(s) in {:.3} s: {:.2} images/s ({:.3} s with gather and COCO evaluation)",
            self.images,
            self.world_size,
            self.inference_seconds,
            self.images_per_second(),
            self.total_seconds
        )
    }

    /// The stats as `name = value` lines (the names of [`STAT_NAMES`]).
    pub fn stat_lines(&self) -> String {
        STAT_NAMES
            .iter()
            .zip(self.stats)
            .map(|(n, v)| format!("{n} = {v:.4}\n"))
            .collect()
    }
}

/// The images a rank evaluates: positions `rank, rank + world, …` of the id-sorted records.
pub fn shard(len: usize, rank: usize, world_size: usize) -> Vec<usize> {
    (rank..len).step_by(world_size.max(1)).collect()
}

/// Evaluates `state` (an `arch` model) on `dataset`. With `comm` (a [`ringdet_collective::Communicator`]
/// or [`ringdet_collective::AsyncCommunicator`], see [`EvalComm`]) each rank evaluates its shard
/// and rank 0 the gathered detections; without it this process evaluates everything. Every rank
/// must call it (it all-gathers and broadcasts). Nothing is printed: see
/// [`EvalReport::summary`], [`EvalReport::classwise_table`] and [`EvalReport::timing_line`].
pub fn evaluate(
    arch: &Arch,
    state: &ModelState,
    dataset: &EvalDataset,
    settings: &EvalSettings,
    mut comm: Option<&mut dyn EvalComm>,
) -> Result<EvalReport, EvalError> {
    let start = Instant::now();
    let (rank, world_size) = comm
        .as_deref()
        .map_or((0, 1), |c| (c.rank(), c.world_size()));
    let num_classes = arch.head.num_classes;
    if num_classes < dataset.categories.len() {
        return Err(EvalError::Classes {
            num_classes,
            path: dataset.anno_path.clone(),
            categories: dataset.categories.len(),
        });
    }
    if num_classes > dataset.categories.len() && rank == 0 {
        // E.g. the unchanged 80-class COCO config on a smaller set laid out as COCO: class i is
        // the i-th category (PaddleDetection's catid2clsid order); the classes beyond have no
        // category to be scored against.
        tracing::warn!(
            "the model has {num_classes} classes and {} has {} categories: detections of classes \
             {}..{} are left out of the evaluation",
            dataset.anno_path.display(),
            dataset.categories.len(),
            dataset.categories.len(),
            num_classes - 1
        );
    }
    let mine = shard(dataset.records.len(), rank, world_size);
    tracing::info!(
        rank,
        world_size,
        images = mine.len(),
        total = dataset.records.len(),
        "evaluating"
    );
    let local = infer(arch, state, dataset, settings, &mine, rank)?;
    let inference_seconds = start.elapsed().as_secs_f64();
    let mut detections = match comm.as_deref_mut() {
        Some(c) if world_size > 1 => gather::gather_detections(c, &local)?,
        _ => local,
    };
    // Stable: each image's rows keep their NMS order, as in a single process.
    detections.sort_by_key(|d| d.image_id);
    let evaluation = if rank == 0 {
        ringdet_collective::progress::beat();
        let e = ringdet_coco::evaluate(&dataset.instances, &detections, UnknownImages::Error)
            .map_err(|source| EvalError::Coco {
                path: dataset.anno_path.clone(),
                source,
            })?;
        Some(e)
    } else {
        None
    };
    let mut stats = evaluation.as_ref().map_or([0.0; 12], Evaluation::stats);
    if let Some(c) = comm
        && world_size > 1
    {
        c.broadcast_f64(&mut stats, 0)
            .map_err(|source| EvalError::Comm {
                rank,
                what: "broadcasting the stats from rank 0",
                source,
            })?;
    }
    Ok(EvalReport {
        stats,
        detections,
        evaluation,
        category_names: dataset
            .instances
            .categories
            .iter()
            .map(|c| (c.id, c.name.clone()))
            .collect(),
        images: dataset.records.len(),
        local_images: mine.len(),
        inference_seconds,
        total_seconds: start.elapsed().as_secs_f64(),
        rank,
        world_size,
    })
}

/// Rank 0's bar over its `images` when asked for and stderr is a terminal; cleared when dropped.
fn progress_bar(
    settings: &EvalSettings,
    rank: usize,
    images: usize,
) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !settings.progress_bar || rank != 0 || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(images as u64),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "eval [{elapsed_precise}] {wide_bar:.cyan/blue} {pos}/{len} images  {per_sec}  eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    Some(bar.with_finish(indicatif::ProgressFinish::AndClear))
}

/// Reads and resizes one batch of records into a collated batch.
fn load_batch(
    records: &[Record],
    indices: &[usize],
    batch_index: usize,
    settings: &EvalSettings,
) -> Result<Batch, EvalError> {
    let (h, w) = settings.size;
    let mut samples = Vec::with_capacity(indices.len());
    for &i in indices {
        let r = &records[i];
        let mut sample = Sample::decoded(read_image(&r.image_path)?, vec![], vec![], r.im_id);
        resize_sample(&mut sample, h, w, settings.interp);
        samples.push(sample);
    }
    Ok(collate(batch_index, &samples, settings.mean, settings.std)?)
}

/// Runs the model on the records at `indices`, batch by batch (a reader thread prepares the next
/// batch while the model runs), and returns the COCO results rows in order.
fn infer(
    arch: &Arch,
    state: &ModelState,
    dataset: &EvalDataset,
    settings: &EvalSettings,
    indices: &[usize],
    rank: usize,
) -> Result<Vec<DetectionRecord>, EvalError> {
    let batches: Vec<&[usize]> = indices.chunks(settings.batch_size.max(1)).collect();
    let num_classes = arch.head.num_classes;
    std::thread::scope(|scope| {
        let (tx, rx) = sync_channel::<Result<Batch, EvalError>>(2);
        let records = &dataset.records;
        let batches_ref = &batches;
        scope.spawn(move || {
            for (b, indices) in batches_ref.iter().enumerate() {
                let batch = load_batch(records, indices, b, settings);
                let failed = batch.is_err();
                if tx.send(batch).is_err() || failed {
                    return;
                }
            }
        });
        let mut rows = Vec::new();
        let bar = progress_bar(settings, rank, indices.len());
        for _ in 0..batches.len() {
            // A rank that finished its shard waits in the gather: tell the launcher this one
            // is still working (its stall watch names a rank silent for 20 s).
            ringdet_collective::progress::beat();
            let mut batch = rx.recv().map_err(|_| EvalError::Reader { rank })??;
            if let Some(bar) = &bar {
                bar.inc(batch.len() as u64);
            }
            let pixels = std::mem::take(&mut batch.image);
            let model_err = |source| EvalError::Model {
                rank,
                image_ids: batch.im_id.clone(),
                source,
            };
            let [n, c, h, w] = batch.image_shape;
            let image = Feat::from_vec(pixels, n, c, h, w).map_err(model_err)?;
            let out = eval_forward(arch, state, &image).map_err(model_err)?;
            let scale_factors: Vec<[f32; 2]> = batch
                .scale_factor
                .chunks_exact(2)
                .map(|s| [s[0], s[1]])
                .collect();
            let (_, dets) =
                postprocess(&out, num_classes, &scale_factors, &settings.nms).map_err(model_err)?;
            for (&image_id, image_dets) in batch.im_id.iter().zip(&dets) {
                for d in image_dets {
                    // Only classes beyond the categories have none (checked above).
                    let Some(category_id) = dataset.categories.id_of(d.class) else {
                        continue;
                    };
                    // As PaddleDetection's get_det_res: float32 corners widened to double, then
                    // w = x2 − x1 and h = y2 − y1 in double.
                    let [x1, y1, x2, y2] = d.bbox.map(f64::from);
                    rows.push(DetectionRecord {
                        image_id,
                        category_id,
                        bbox: [x1, y1, x2 - x1, y2 - y1],
                        score: f64::from(d.score),
                    });
                }
            }
        }
        Ok(rows)
    })
}
