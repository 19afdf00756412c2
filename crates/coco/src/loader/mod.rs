//! The batch loader: N worker threads turn sampler batches into collated [`Batch`]es.
//!
//! Worker `w` makes batches `w, w+N, w+2N, …` of the epoch and sends them down its own bounded
//! crossbeam channel; the consumer reads channel `b mod N` for batch `b`. The order is therefore
//! the sampler's whatever N is, and every random draw is keyed by (seed, epoch, rank, batch, slot),
//! so the batches themselves are the same for any N too. A worker that dies is reported, not waited on.

mod collate;
mod record;
mod worker;

pub use collate::{Batch, CollateError, collate};
pub use record::{Record, eval_records, training_records};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;

use crossbeam::channel::{Receiver, bounded};

use crate::image::ImageError;
use crate::sampler::{DistributedBatchSampler, SamplerError};
use crate::transform::{BATCH_SIZES, IMAGENET_MEAN, IMAGENET_STD, TrainSampleTransforms};

/// Training (random transforms, BatchRandomResize) or evaluation (640×640 bicubic, in order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// PP-YOLOE train transforms.
    Train,
    /// PP-YOLOE eval transforms; every image, in order, no shuffle.
    Eval,
}

/// What to do with an image that cannot be read or decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadImagePolicy {
    /// Stop with an error naming the file (always the case in evaluation).
    Fail,
    /// Training only: count it, log it to stderr, and take the next record in its place.
    Skip,
}

/// Loader settings. [`LoaderConfig::train`] and [`LoaderConfig::eval`] give PP-YOLOE's.
#[derive(Clone, Debug)]
pub struct LoaderConfig {
    /// Train or eval.
    pub mode: Mode,
    /// Images per batch on this rank.
    pub batch_size: usize,
    /// Worker threads (at least 1).
    pub workers: usize,
    /// Batches each worker may have ready ahead of the consumer.
    pub prefetch: usize,
    /// Seed of the augmentation draws (the shuffle is keyed by the epoch, as in PaddlePaddle).
    pub seed: u64,
    /// This rank.
    pub rank: usize,
    /// Number of ranks.
    pub world_size: usize,
    /// Shuffle each epoch.
    pub shuffle: bool,
    /// Drop a short last batch.
    pub drop_last: bool,
    /// Bad image handling.
    pub bad_image: BadImagePolicy,
    /// Per-sample train transforms.
    pub transforms: TrainSampleTransforms,
    /// BatchRandomResize's square sizes (`target_size`); empty: PP-YOLOE's [`BATCH_SIZES`].
    pub train_sizes: Vec<usize>,
    /// Normalisation mean (RGB, 0..1 scale).
    pub mean: [f32; 3],
    /// Normalisation std (RGB, 0..1 scale).
    pub std: [f32; 3],
}

impl LoaderConfig {
    /// PP-YOLOE's train reader: shuffle, drop_last, bad images skipped.
    pub fn train(batch_size: usize, workers: usize, seed: u64) -> LoaderConfig {
        LoaderConfig {
            mode: Mode::Train,
            batch_size,
            workers,
            prefetch: 2,
            seed,
            rank: 0,
            world_size: 1,
            shuffle: true,
            drop_last: true,
            bad_image: BadImagePolicy::Skip,
            transforms: TrainSampleTransforms::default(),
            train_sizes: BATCH_SIZES.to_vec(),
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        }
    }

    /// PP-YOLOE's eval reader: in order, every image, a bad image is an error.
    pub fn eval(batch_size: usize, workers: usize) -> LoaderConfig {
        LoaderConfig {
            mode: Mode::Eval,
            shuffle: false,
            drop_last: false,
            bad_image: BadImagePolicy::Fail,
            ..LoaderConfig::train(batch_size, workers, 0)
        }
    }
}

/// Why the loader stopped.
#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    /// An image could not be read (evaluation, or training with [`BadImagePolicy::Fail`]).
    #[error(transparent)]
    Image(#[from] ImageError),
    /// Every image of the dataset failed to load.
    #[error("none of the {0} images could be read")]
    NoReadableImage(usize),
    /// Wrong sampler settings.
    #[error(transparent)]
    Sampler(#[from] SamplerError),
    /// Samples of different sizes in one batch.
    #[error(transparent)]
    Collate(#[from] CollateError),
    /// A worker thread ended without delivering its batch (it panicked).
    #[error("loader worker {worker} stopped before delivering batch {batch}")]
    WorkerDied {
        /// The worker.
        worker: usize,
        /// The batch it owed.
        batch: usize,
    },
}

/// Counters shared by the workers.
#[derive(Debug, Default)]
pub struct LoaderStats {
    /// Images skipped because they could not be read or decoded.
    pub bad_images: AtomicUsize,
}

/// A dataset plus settings; [`Loader::epoch`] starts the workers for one epoch.
pub struct Loader {
    records: Arc<Vec<Record>>,
    config: Arc<LoaderConfig>,
    sampler: DistributedBatchSampler,
    stats: Arc<LoaderStats>,
}

impl Loader {
    /// Checks the settings against the dataset.
    pub fn new(records: Vec<Record>, config: LoaderConfig) -> Result<Loader, LoaderError> {
        let sampler = DistributedBatchSampler::new(
            records.len(),
            config.batch_size,
            config.rank,
            config.world_size,
            config.shuffle,
            config.drop_last,
        )?;
        Ok(Loader {
            records: Arc::new(records),
            config: Arc::new(config),
            sampler,
            stats: Arc::default(),
        })
    }

    /// The sampler that deals this rank's batches.
    pub fn sampler(&self) -> &DistributedBatchSampler {
        &self.sampler
    }

    /// Images skipped so far.
    pub fn bad_images(&self) -> usize {
        self.stats.bad_images.load(Ordering::Relaxed)
    }

    /// Starts the workers for `epoch` (0-based) and returns the batches in order.
    pub fn epoch(&self, epoch: u32) -> EpochBatches {
        let batches = Arc::new(self.sampler.batches(epoch));
        let workers = self.config.workers.max(1).min(batches.len().max(1));
        let stop = Arc::new(AtomicBool::new(false));
        let mut receivers = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        for w in 0..workers {
            let (tx, rx) = bounded(self.config.prefetch.max(1));
            receivers.push(rx);
            let (records, config, stats) = (
                self.records.clone(),
                self.config.clone(),
                self.stats.clone(),
            );
            let (batches, stop) = (batches.clone(), stop.clone());
            handles.push(std::thread::spawn(move || {
                for b in (w..batches.len()).step_by(workers) {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let result =
                        worker::make_batch(&records, &batches[b], b, epoch, &config, &stats);
                    let failed = result.is_err();
                    if tx.send(result).is_err() || failed {
                        return;
                    }
                }
            }));
        }
        EpochBatches {
            receivers,
            handles,
            stop,
            next: 0,
            total: batches.len(),
            failed: false,
        }
    }
}

/// The batches of one epoch, in sampler order; dropping it stops the workers.
pub struct EpochBatches {
    receivers: Vec<Receiver<Result<Batch, LoaderError>>>,
    handles: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    next: usize,
    total: usize,
    failed: bool,
}

impl EpochBatches {
    /// Batches in this epoch.
    pub fn total(&self) -> usize {
        self.total
    }
}

impl Iterator for EpochBatches {
    type Item = Result<Batch, LoaderError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.next >= self.total {
            return None;
        }
        let worker = self.next % self.receivers.len();
        let item = self.receivers[worker]
            .recv()
            .unwrap_or(Err(LoaderError::WorkerDied {
                worker,
                batch: self.next,
            }));
        self.failed = item.is_err();
        self.next += 1;
        Some(item)
    }
}

impl Drop for EpochBatches {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.receivers.clear();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}
