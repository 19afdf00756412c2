//! The training loop behind `ringdet train`, on the CPU: config → [`TrainRecipe`] → model
//! (PaddleDetection's initialisation, or `pretrain_weights` from a local safetensors file) →
//! COCO training set (`TrainDataset`, paths relative to the working directory) → loader with
//! `worker_num` threads → per step: forward and backward (ATSS before `static_assigner_epoch`,
//! then TAL), gradients averaged over the ranks in buckets while backward runs, optional
//! global-norm clipping, the config's optimizer (Momentum with L2 decay, or AdamW), EMA, LR from
//! the recipe's warmup + cosine schedule.
//!
//! Data parallel when the worker environment (`ringdet launch`) names several ranks: rank 0's
//! initial weights are broadcast, each rank reads its shard through the distributed batch
//! sampler, and every exchange goes through [`Replicas`], one communication thread that runs
//! them in the order asked (the same on every rank). The loss normaliser is summed across the
//! ranks. BN: PaddleDetection turns `norm_type: sync_bn` into SyncBN only on GPUs with several
//! ranks, so on these CPU ranks each rank normalises with its own batch statistics (one line says
//! so) unless `sync_bn_on_cpu: true` sums them across the ranks; with per-rank BN the ranks'
//! running statistics differ and evaluation uses rank 0's. Gradients are averaged in buckets
//! ([`buckets`]: first `first_bucket_mb`, then `bucket_mb`, PyTorch's and
//! Paddle's 1 and 25 MiB): backward reports each range of the flat buffer once final
//! ([`forward_backward_with`]), and each full bucket is queued on the communication thread at
//! once, so it travels while backward computes the next; after backward the step waits for the
//! rest (`comm_exposed`), writes the averages back and steps SGD. `overlap_grad_reduce: false`
//! queues the same buckets after backward instead (same gradients, bit for bit). The ranks
//! exchange their losses every step, so a non-finite loss on any rank stops every rank with the
//! same error naming step, rank and term; [`TrainOptions::check_replicas`] compares a hash of
//! every rank's weights every N steps and stops every rank naming the one that differs.
//!
//! Rank 0 saves a checkpoint ([`crate::checkpoint`]) after every `snapshot_epoch`-th epoch and
//! `model_final` after the last; [`TrainOptions::resume`] continues from one bit for bit. With
//! [`TrainOptions::eval`] every rank evaluates its shard of the `EvalDataset` with the EMA weights
//! at those epochs ([`crate::eval::evaluate`]); rank 0 prints the summary, appends an `eval` row
//! to `metrics.jsonl` and saves `best_model` when the AP improves.
//!
//! What rank 0 shows: a progress bar on a terminal (`progress.rs`), PaddleDetection's line every
//! `log_iter` steps, `metrics.jsonl` ([`MetricsFile`]) and `curves.png` redrawn at each
//! snapshot ([`plots`]); `TrainReader.on_bad_image` says what a missing or corrupt image does
//! ([`bad_images`]).

pub mod bad_images;
pub mod buckets;
pub mod device_state;
mod metrics;
pub mod plots;
mod progress;
mod replica;
mod replica_check;

pub use buckets::{BucketPlan, CommSettings, GradReducer};
pub use metrics::{MetricsFile, StepLosses, StepRecord};
pub use replica::Replicas;
pub use replica_check::{check_replicas, replica_hashes};

use std::path::{Path, PathBuf};
use std::time::Instant;

use ringdet_coco::Instances;
use ringdet_coco::loader::{Batch, Loader, LoaderConfig, training_records};
use ringdet_collective::{CommError, Communicator, ReduceOp, worker_env};
use ringdet_detect::DetectError;
use ringdet_detect::arch::Arch;
use ringdet_detect::cross_replica::{CrossReplica, SingleReplica};
use ringdet_detect::init::{SeededNormal, initialize};
use ringdet_detect::model::Feat;
use ringdet_detect::state::ModelState;
use ringdet_detect::step::{StepLinks, TrainBatch, forward_backward_with};
use serde_yaml_ng::Value;
use tracing::info;

use device_state::{DeviceState, Engine};
use ringdet_kernels::Cuda;
use ringdet_kernels::conv::cuda::ConvMath;

use crate::checkpoint::{self as ckpt, CheckpointError, DataState, Fingerprint, SnapshotRef};
use crate::config::{Config, ConfigError, TrainRecipe};
use crate::device::{self, ComputeDevice};
use crate::eval::{EvalComm, EvalDataset, EvalError, EvalSettings, evaluate};
use bad_images::SkipCount;
use progress::Progress;
use ringdet_collective::device::{CommBackend, NcclComm};

/// Why training stopped.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The config could not be read or does not make a recipe.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A setting the trainer reads is wrong.
    #[error("{key}: {msg}")]
    Setting {
        /// The config key.
        key: String,
        /// What is wrong.
        msg: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        error: std::io::Error,
    },
    /// The dataset could not be read.
    #[error("TrainDataset: {0}")]
    Data(String),
    /// The model failed.
    #[error("rank {rank}: {error}")]
    Model {
        /// This rank.
        rank: usize,
        /// The error.
        error: DetectError,
    },
    /// The ranks could not talk.
    #[error("rank {rank}: {what}: {error}")]
    Comm {
        /// This rank.
        rank: usize,
        /// What was exchanged.
        what: &'static str,
        /// The error.
        error: CommError,
    },
    /// A checkpoint could not be saved or resumed from (the error names the file).
    #[error("rank {rank}: {error}")]
    Checkpoint {
        /// This rank.
        rank: usize,
        /// The error.
        error: Box<CheckpointError>,
    },
    /// Evaluation during training failed.
    #[error("epoch {epoch}: {error}")]
    Eval {
        /// The epoch evaluated, 0-based.
        epoch: usize,
        /// The error (it names the rank or file).
        error: Box<EvalError>,
    },
    /// `--check_replicas`: the ranks' weights are no longer identical.
    #[error(
        "step {step}: the replicas differ after the update: {detail} from rank {reference}; \
         every rank stops"
    )]
    ReplicasDiffer {
        /// Global step, 0-based, after whose update the hashes were compared.
        step: usize,
        /// The ranks that differ from the reference.
        ranks: Vec<usize>,
        /// The rank of the largest group of equal hashes (the lowest such rank on a tie).
        reference: usize,
        /// Each differing rank and what differs.
        detail: String,
    },
    /// A loss term is NaN or infinite.
    #[error("step {step} (epoch {epoch}, iter {iter}): rank {rank}: {term} is {value}")]
    NonFinite {
        /// Global step, 0-based.
        step: usize,
        /// Epoch, 0-based.
        epoch: usize,
        /// Iteration within the epoch.
        iter: usize,
        /// The rank whose loss it is.
        rank: usize,
        /// The loss term (`loss_cls`, ...).
        term: &'static str,
        /// Its value.
        value: f64,
    },
    /// The rank's device (`use_gpu`, `--gpus`) or the gradient backend (`comm_backend`) cannot
    /// be used; the message names the rank and the cause.
    #[error("{0}")]
    Device(String),
}

/// What `ringdet train` asks for.
#[derive(Clone, Debug, Default)]
pub struct TrainOptions {
    /// The PaddleDetection config file.
    pub config: PathBuf,
    /// `-o key=value` overrides.
    pub overrides: Vec<String>,
    /// Use the linear-scaling LR when the global batch differs from 8 × `batch_size`.
    pub scale_lr: bool,
    /// `-r output/<config name>/<name>`: the checkpoint to continue from.
    pub resume: Option<PathBuf>,
    /// `--eval`: evaluate with the EMA weights at every snapshot epoch and after the last.
    pub eval: bool,
    /// `--classwise`: print the per-class AP table with each evaluation.
    pub classwise: bool,
    /// `--amp`: bf16 tensor-core convolutions with f32 accumulation when training on a GPU
    /// (weights, BN statistics and losses stay f32); refused on the CPU.
    pub amp: bool,
    /// `--check_replicas N`: every N steps compare a hash of every rank's weights, optimizer state
    /// and (with SyncBN) BN statistics, and stop every rank, naming the one that differs, on a
    /// difference.
    pub check_replicas: Option<usize>,
}

/// How training ended.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainSummary {
    /// Global steps at the end (a resumed run counts the steps before its checkpoint too).
    pub steps: usize,
    /// Rank-averaged losses of the last step.
    pub last: StepLosses,
    /// `metrics.jsonl` (written by rank 0 only).
    pub metrics: PathBuf,
}

/// Settings the trainer reads from the config besides the recipe.
#[derive(Clone, Debug, PartialEq)]
struct Extras {
    worker_num: usize,
    seed: u64,
    pretrain: Option<String>,
    output_dir: PathBuf,
    anno_path: PathBuf,
    image_dir: PathBuf,
    debug_nan_step: Option<usize>,
    debug_abort_step: Option<usize>,
    debug_device_state_on_host: bool,
    config_name: String,
}

fn opt_string(c: &Config, key: &str) -> Result<Option<String>, ConfigError> {
    match c.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => Ok(Some(c.string(key)?).filter(|s| !s.trim().is_empty())),
    }
}

fn opt_usize(c: &Config, key: &str) -> Result<Option<usize>, ConfigError> {
    match c.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => c.usize(key).map(Some),
    }
}

fn opt_bool(c: &Config, key: &str) -> Result<Option<bool>, ConfigError> {
    match c.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => c.bool(key).map(Some),
    }
}

impl Extras {
    fn read(c: &Config, config_path: &Path) -> Result<Extras, TrainError> {
        let dataset_dir = opt_string(c, "TrainDataset.dataset_dir")?.unwrap_or_default();
        let anno = opt_string(c, "TrainDataset.anno_path")?.ok_or(ConfigError::Missing {
            key: "TrainDataset.anno_path".into(),
        })?;
        let images = opt_string(c, "TrainDataset.image_dir")?.unwrap_or_default();
        let dir = Path::new(&dataset_dir);
        let name = config_path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "train".into());
        let save_dir = opt_string(c, "save_dir")?.unwrap_or_else(|| "output".into());
        Ok(Extras {
            worker_num: opt_usize(c, "worker_num")?.unwrap_or(2).max(1),
            seed: opt_usize(c, "seed")?.unwrap_or(0) as u64,
            pretrain: opt_string(c, "pretrain_weights")?,
            output_dir: Path::new(&save_dir).join(&name),
            anno_path: dir.join(anno),
            image_dir: dir.join(images),
            debug_nan_step: opt_usize(c, "debug_nan_step")?,
            debug_abort_step: opt_usize(c, "debug_abort_step")?,
            debug_device_state_on_host: opt_bool(c, "debug_device_state_on_host")?.unwrap_or(false),
            config_name: name,
        })
    }
}

/// The ranks from the worker environment: several under `ringdet launch`, else one.
pub fn join_ranks() -> Result<Replicas, TrainError> {
    let comm_err = |error| TrainError::Comm {
        rank: 0,
        what: "joining the job",
        error,
    };
    let env = worker_env::from_env()
        .map_err(|e| comm_err(CommError::Local(format!("worker environment: {e}"))))?;
    match env {
        Some(env) if env.world_size > 1 => {
            let comm = Communicator::from_env().map_err(|error| TrainError::Comm {
                rank: env.rank,
                what: "joining the job",
                error,
            })?;
            Ok(Replicas::collective(comm))
        }
        _ => Ok(Replicas::single()),
    }
}

/// Trains as `opts` says, joining the ranks of the worker environment.
pub fn train(opts: &TrainOptions) -> Result<TrainSummary, TrainError> {
    let replicas = join_ranks()?;
    train_with(opts, &replicas)
}

/// Prints a line on rank 0's stdout (what `ringdet launch` echoes).
fn say(replicas: &Replicas, line: &str) {
    if replicas.rank() == 0 {
        println!("{line}");
    }
}

/// Trains as `opts` says over `replicas`.
pub fn train_with(opts: &TrainOptions, replicas: &Replicas) -> Result<TrainSummary, TrainError> {
    let (rank, world) = (replicas.rank(), replicas.world());
    let mut cfg = Config::load(&opts.config)?;
    cfg.apply_overrides(&opts.overrides)?;
    let recipe = TrainRecipe::from_config(&cfg)?;
    let extras = Extras::read(&cfg, &opts.config)?;
    let model_err = |error| TrainError::Model { rank, error };
    let comm_err = |what: &'static str| move |error| TrainError::Comm { rank, what, error };

    // Device (use_gpu, the launcher's --gpus) and the gradient backend (comm_backend).
    let env = device::DeviceEnv::from_env(rank)?;
    let compute = device::resolve_device(recipe.use_gpu, rank, &env, &device::SystemProbe)?;
    let comm_backend =
        device::select_comm_backend(recipe.comm_backend, recipe.use_gpu, compute, replicas)?;
    if comm_backend == CommBackend::Nccl {
        say(
            replicas,
            "comm_backend: NCCL averages the gradients on the devices (one all-reduce after \
             backward)",
        );
    }

    // Model.
    let arch = Arch::new(recipe.model.clone()).map_err(model_err)?;
    let mut state = ModelState::zeros(&arch).map_err(model_err)?;
    initialize(&mut state, &mut SeededNormal::new(extras.seed));
    if let Some(weights) = &extras.pretrain {
        let report = load_pretrained(&mut state, weights).map_err(|msg| TrainError::Setting {
            key: "pretrain_weights".into(),
            msg,
        })?;
        say(replicas, report.trim_end());
    }
    replicas
        .broadcast(&mut state.params)
        .map_err(comm_err("broadcasting rank 0's parameters"))?;
    replicas
        .broadcast(&mut state.stats)
        .map_err(comm_err("broadcasting rank 0's BN statistics"))?;

    // Data.
    let instances = Instances::load(&extras.anno_path)
        .map_err(|e| TrainError::Data(format!("{}: {e}", extras.anno_path.display())))?;
    if let Some(bad) = instances
        .categories
        .iter()
        .enumerate()
        .find(|(i, _)| *i >= recipe.model.num_classes)
    {
        return Err(TrainError::Setting {
            key: "num_classes".into(),
            msg: format!(
                "{} has {} categories (category {} is `{}`), the model {} classes",
                extras.anno_path.display(),
                instances.categories.len(),
                bad.0,
                bad.1.name,
                recipe.model.num_classes
            ),
        });
    }
    let (records, _) = training_records(&instances, &extras.image_dir);
    if records.is_empty() {
        return Err(TrainError::Data(format!(
            "{} has no image with a usable box",
            extras.anno_path.display()
        )));
    }
    let num_images = records.len();
    let mut loader_cfg = LoaderConfig::train(recipe.batch_size, extras.worker_num, extras.seed);
    loader_cfg.rank = rank;
    loader_cfg.world_size = world;
    loader_cfg.train_sizes = recipe.train_sizes.clone();
    loader_cfg.transforms = recipe.sample_transforms.clone();
    loader_cfg.bad_image = bad_images::policy(&cfg)?;
    let mut skipped = SkipCount::new(loader_cfg.bad_image);
    let loader = Loader::new(records, loader_cfg).map_err(|e| TrainError::Data(e.to_string()))?;
    let iters = loader.sampler().num_batches();
    if iters == 0 {
        return Err(TrainError::Setting {
            key: "TrainReader.batch_size".into(),
            msg: format!(
                "{num_images} training images over {world} ranks do not fill one batch of {}",
                recipe.batch_size
            ),
        });
    }

    // Optimiser, LR.
    let schedule = recipe.lr_schedule(iters)?;
    let global_batch = world * recipe.batch_size;
    let mut lr_scale = 1.0;
    if global_batch != 8 * recipe.batch_size {
        let factor = global_batch as f64 / (8 * recipe.batch_size) as f64;
        let scaled = recipe.base_lr * factor;
        if opts.scale_lr {
            lr_scale = factor;
            say(
                replicas,
                &format!(
                    "global batch {global_batch} ({world} ranks x {}): base_lr {scaled:.6} \
                     (linear scaling of the config's {} for 8 x {}, --scale_lr)",
                    recipe.batch_size, recipe.base_lr, recipe.batch_size
                ),
            );
        } else {
            say(
                replicas,
                &format!(
                    "global batch {global_batch} ({world} ranks x {}): using the config's base_lr {} \
                     (linear scaling for 8 x {} would give {scaled:.6}; pass --scale_lr to use it)",
                    recipe.batch_size, recipe.base_lr, recipe.batch_size
                ),
            );
        }
    }
    let comm_settings = CommSettings::read(&cfg)?;
    let norm_type = opt_string(&cfg, "norm_type")?.unwrap_or_else(|| "bn".into());
    if let Some(line) = comm_settings.bn_line(&norm_type, world) {
        say(replicas, &line);
    }
    let sync_bn = comm_settings.sync_bn(&norm_type, world);
    let bn_link: &dyn CrossReplica = match sync_bn {
        true => replicas,
        false => &SingleReplica,
    };
    let buckets = BucketPlan::new(
        &state.layout,
        comm_settings.first_bucket_bytes,
        comm_settings.bucket_bytes,
    );
    let grad_exchange = match (world, comm_settings.overlap) {
        (1, _) => "one rank, no gradient exchange".to_string(),
        (_, true) => format!(
            "gradients averaged in {} queued as backward finishes them",
            buckets.describe()
        ),
        (_, false) => format!(
            "gradients averaged in {} queued after backward (overlap_grad_reduce: false)",
            buckets.describe()
        ),
    };
    let mut optimizer = recipe.optimizer(&state.layout);
    let mut ema = recipe.ema(state.params.len(), state.stats.len());
    let ckpt_err = |error| TrainError::Checkpoint {
        rank,
        error: Box::new(error),
    };
    let mut fingerprint = Fingerprint::new(&recipe, world);
    fingerprint.set("seed", extras.seed);
    fingerprint.set("dataset_len", num_images);
    fingerprint.set("iters_per_epoch", iters);
    let mut start_epoch = 0;
    let mut step = 0;
    let mut best_ap: Option<f64> = None;
    let mut best_epoch: Option<u64> = None;
    if let Some(arg) = &opts.resume {
        let snap = if ckpt::paddle::is_paddle_checkpoint(arg) {
            let pd = ckpt::paddle::resume(
                arg,
                &arch,
                &extras.config_name,
                &fingerprint,
                &optimizer,
                ema.as_ref(),
            )
            .map_err(ckpt_err)?;
            say(replicas, &pd.report);
            pd.snapshot
        } else {
            ckpt::resume(arg, &arch, &extras.config_name, &fingerprint).map_err(ckpt_err)?
        };
        if snap.state.data.next_batch != 0 {
            return Err(ckpt_err(CheckpointError::Incompatible {
                path: arg.clone(),
                differences: vec![format!(
                    "data.next_batch: checkpoint {} (mid-epoch), this trainer resumes at epoch \
                     boundaries only",
                    snap.state.data.next_batch
                )],
            }));
        }
        state = snap.model;
        optimizer = snap.optimizer;
        ema = snap.ema;
        start_epoch = usize::try_from(snap.state.epoch).unwrap_or(usize::MAX);
        step = usize::try_from(snap.state.global_step).unwrap_or(usize::MAX);
        best_ap = snap.state.best_ap;
        best_epoch = snap.state.best_epoch;
        say(
            replicas,
            &format!(
                "resumed from {}: continuing at epoch {start_epoch}, step {step}",
                arg.display()
            ),
        );
    }
    // On a GPU rank the training state moves to the device for the whole run (the host copy is
    // refreshed before checkpoints, evaluations and replica checks).
    let gpu: Option<usize> = match compute {
        ComputeDevice::Cuda { ordinal } => Some(ordinal),
        ComputeDevice::Cpu => None,
    };
    let mut nccl =
        match (comm_backend, gpu) {
            (CommBackend::Nccl, Some(ordinal)) => {
                let mut boot = replicas;
                Some(NcclComm::new(&mut boot, ordinal).map_err(|e| {
                    TrainError::Device(format!("rank {rank}: comm_backend nccl: {e}"))
                })?)
            }
            _ => None,
        };
    let mut device = match gpu {
        Some(ordinal) => {
            let be = cuda_backend(rank, ordinal, opts.amp)?;
            let d = DeviceState::upload(be, &state, &optimizer, ema.as_ref()).map_err(model_err)?;
            say(
                replicas,
                &format!(
                    "training on {} ({})",
                    describe_cuda(d.backend()),
                    if opts.amp {
                        "bf16 convolutions, --amp"
                    } else {
                        "f32"
                    }
                ),
            );
            Some(Engine::Cuda(Box::new(d)))
        }
        None if extras.debug_device_state_on_host => {
            let d = DeviceState::upload(ringdet_kernels::Cpu, &state, &optimizer, ema.as_ref())
                .map_err(model_err)?;
            say(
                replicas,
                "debug_device_state_on_host: the device path on the host backend",
            );
            Some(Engine::Host(d))
        }
        None => {
            if opts.amp {
                say(replicas, "--amp: training on the CPU runs in f32; ignored");
            }
            None
        }
    };
    let eval_setup = if opts.eval {
        let settings =
            EvalSettings::from_config(&cfg, &recipe).map_err(|error| TrainError::Eval {
                epoch: 0,
                error: Box::new(error),
            })?;
        let dataset = EvalDataset::from_config(&cfg).map_err(|error| TrainError::Eval {
            epoch: 0,
            error: Box::new(error),
        })?;
        Some((settings, dataset))
    } else {
        None
    };
    let mut metrics = match rank {
        0 if opts.resume.is_some() => Some(MetricsFile::append(&extras.output_dir)?),
        0 => Some(MetricsFile::create(&extras.output_dir)?),
        _ => None,
    };
    let metrics_path = extras.output_dir.join("metrics.jsonl");
    say(
        replicas,
        &format!(
            "training {} on {num_images} images: {world} rank(s) x batch {}, {iters} iterations \
             per epoch, {} epochs; {grad_exchange}; metrics in {}",
            opts.config.display(),
            recipe.batch_size,
            recipe.epochs,
            metrics_path.display()
        ),
    );
    info!(rank, world, "training started");

    let total_steps = recipe.epochs * iters;
    let first_step = step;
    let progress = Progress::new(rank, total_steps, step);
    let mut last = StepLosses::default();
    let mut cost_sum = 0.0;
    for epoch in start_epoch..recipe.epochs {
        let mut batches = loader.epoch(epoch as u32);
        for iter in 0..iters {
            let start = Instant::now();
            let batch = match batches.next() {
                Some(b) => b.map_err(|e| bad_images::loader_error(rank, e))?,
                None => {
                    return Err(TrainError::Data(format!(
                        "rank {rank}: the loader ended after {iter} of {iters} batches"
                    )));
                }
            };
            let data_cost = start.elapsed().as_secs_f64();
            let input = TrainInput::from_batch(batch).map_err(model_err)?;
            let mut reducer = GradReducer::new(replicas, &buckets, comm_settings.overlap);
            // With NCCL the gradients stay on the device: no bucket goes through the host.
            let hands_over = reducer.sink().is_some() && nccl.is_none();
            let links = StepLinks {
                bn: bn_link,
                normalizer: replicas,
                grads: match nccl.is_none() {
                    true => reducer.sink(),
                    false => None,
                },
            };
            let v = match device.as_mut() {
                None => {
                    ringdet_kernels::backend::Buffers::fill_zero(
                        &ringdet_kernels::Cpu,
                        &mut state.grads,
                    )
                    .map_err(ringdet_detect::error::kernel_error("zero the gradients"))
                    .map_err(model_err)?;
                    let batch = input.as_batch();
                    forward_backward_with(&arch, &mut state, &batch, epoch, &recipe.train, links)
                        .map_err(model_err)?
                        .losses
                }
                Some(d) => d
                    .forward_backward(
                        &arch,
                        &state,
                        &input.as_batch(),
                        epoch,
                        &recipe.train,
                        links,
                    )
                    .map_err(model_err)?,
            };
            let comm_start = Instant::now();
            match device.as_mut() {
                Some(d) if world > 1 && nccl.is_some() => {
                    if let Some(n) = nccl.as_mut() {
                        d.all_reduce_mean(n).map_err(model_err)?;
                    }
                    drop(reducer);
                }
                Some(d) if world > 1 => {
                    // The exchange runs on host buffers: what backward did not hand over comes
                    // down first, the averages go back up after.
                    if !hands_over {
                        d.gradients_to_host(&mut state.grads).map_err(model_err)?;
                    }
                    reducer
                        .finish(&mut state.grads)
                        .map_err(comm_err("averaging gradients"))?;
                    d.gradients_from_host(&state.grads).map_err(model_err)?;
                }
                _ => reducer
                    .finish(&mut state.grads)
                    .map_err(comm_err("averaging gradients"))?,
            }
            let comm_exposed = comm_start.elapsed().as_secs_f64();
            let mut mine = [v.loss, v.cls, v.iou, v.dfl, v.l1].map(f64::from);
            if extras.debug_abort_step == Some(step) && rank + 1 == world {
                // Tests: the last rank dies mid-epoch as a killed process would (SIGABRT).
                std::process::abort();
            }
            if extras.debug_nan_step == Some(step) && rank + 1 == world {
                mine[1] = f64::NAN;
            }
            let losses = exchange_losses(replicas, &mine, step, epoch, iter)?;
            let lr = schedule.lr(step) * lr_scale;
            match device.as_mut() {
                None => {
                    if let Some(max_norm) = recipe.clip_grad_by_norm {
                        ringdet_detect::train::optimizer::clip_by_global_norm(
                            &mut state.grads,
                            max_norm,
                        );
                    }
                    optimizer
                        .step(&mut state.params, &state.grads, lr)
                        .map_err(model_err)?;
                    if let Some(ema) = ema.as_mut() {
                        ema.update(&state.params, &state.stats).map_err(model_err)?;
                    }
                }
                Some(d) => {
                    if let Some(max_norm) = recipe.clip_grad_by_norm {
                        d.clip_by_global_norm(max_norm).map_err(model_err)?;
                    }
                    d.optimizer_step(&mut optimizer, lr).map_err(model_err)?;
                    if let Some(ema) = ema.as_mut() {
                        d.ema_update(ema).map_err(model_err)?;
                    }
                }
            }
            if comm_settings.debug_perturb_step == Some(step) && rank + 1 == world {
                match device.as_mut() {
                    Some(d) => d.perturb_first_parameter(1e-3).map_err(model_err)?,
                    None => {
                        if let Some(w) = state.params.first_mut() {
                            *w += 1e-3;
                        }
                    }
                }
            }
            let batch_cost = start.elapsed().as_secs_f64();
            cost_sum += batch_cost;
            let record = StepRecord {
                epoch,
                iter,
                iters_per_epoch: iters,
                step,
                lr,
                losses,
                batch_cost,
                data_cost,
                comm_exposed,
                ips: global_batch as f64 / batch_cost.max(1e-9),
                ranks: world,
                eta_s: cost_sum / (step + 1 - first_step) as f64
                    * total_steps.saturating_sub(step + 1) as f64,
            };
            if let Some(m) = metrics.as_mut() {
                m.write(&record.json())?;
                progress.step(&record);
                if iter % recipe.log_iter == 0 {
                    progress.println(&record.console_line());
                }
            }
            if let Some(every) = opts.check_replicas.filter(|&n| n > 0)
                && (step + 1) % every == 0
            {
                if let Some(d) = device.as_ref() {
                    d.download(&mut state, &mut optimizer, ema.as_mut())
                        .map_err(model_err)?;
                }
                let hashes = replica_hashes(&state, &optimizer, sync_bn);
                check_replicas(replicas, hashes, step)?;
            }
            last = losses;
            step += 1;
        }
        drop(batches);
        skipped.end_epoch(epoch, &loader, replicas, metrics.as_mut(), &progress)?;
        let Some(name) = ckpt::snapshot_name(
            epoch as u64,
            recipe.epochs as u64,
            recipe.snapshot_epoch as u64,
        ) else {
            continue;
        };
        if let Some(d) = device.as_ref() {
            // Checkpoints and evaluation read the host copy.
            d.download(&mut state, &mut optimizer, ema.as_mut())
                .map_err(model_err)?;
        }
        if let Some((settings, dataset)) = &eval_setup {
            progress.status(&format!("evaluating epoch {epoch}"));
            let started = Instant::now();
            let mut weights = match ema.as_ref() {
                Some(e) => match e.corrected().map_err(model_err)? {
                    Some((params, stats)) => {
                        let mut w = state.clone();
                        w.params = params;
                        w.stats = stats;
                        w.grads = Vec::new();
                        Some(w)
                    }
                    None => None,
                },
                None => None,
            };
            if world > 1 && !sync_bn {
                // Per-rank BN: every rank's running statistics are its own; evaluate every
                // shard with rank 0's (the ones its checkpoints hold).
                let w = weights.get_or_insert_with(|| state.clone());
                replicas.broadcast(&mut w.stats).map_err(comm_err(
                    "broadcasting rank 0's BN statistics for evaluation",
                ))?;
            }
            let model = weights.as_ref().unwrap_or(&state);
            let mut link = ReplicaEval(replicas);
            let comm: Option<&mut dyn EvalComm> = match world {
                1 => None,
                _ => Some(&mut link),
            };
            let report = progress
                .suspend(|| evaluate(&arch, model, dataset, settings, comm))
                .map_err(|error| TrainError::Eval {
                    epoch,
                    error: Box::new(error),
                })?;
            let seconds = started.elapsed().as_secs_f64();
            let ap = report.stats[0];
            let improved = best_ap.is_none_or(|b| ap > b);
            if improved {
                best_ap = Some(ap);
                best_epoch = Some(epoch as u64);
            }
            if let Some(m) = metrics.as_mut() {
                let mut text = report.summary().unwrap_or_default();
                if opts.classwise {
                    text.push_str(&report.classwise_table().unwrap_or_default());
                }
                if !text.is_empty() {
                    progress.println(&text);
                }
                progress.println(&report.timing_line());
                let row = serde_json::json!({
                    "kind": "eval",
                    "epoch": epoch,
                    "stats": report.stats,
                    "seconds": seconds,
                });
                m.write(&row.to_string())?;
            }
            if improved && rank == 0 {
                let trainer_state =
                    trainer_state(&extras, &fingerprint, epoch, step, best_ap, best_epoch);
                ringdet_collective::progress::beat();
                ckpt::save_named(
                    &extras.output_dir,
                    "best_model",
                    SnapshotRef {
                        model: &state,
                        optimizer: &optimizer,
                        ema: ema.as_ref(),
                        state: &trainer_state,
                    },
                )
                .map_err(ckpt_err)?;
                progress.println(&format!(
                    "best_model: AP {ap:.4} at epoch {epoch}, saved in {}",
                    extras.output_dir.join("best_model").display()
                ));
            }
        }
        if rank == 0 {
            let trainer_state =
                trainer_state(&extras, &fingerprint, epoch, step, best_ap, best_epoch);
            ringdet_collective::progress::beat();
            let saved = ckpt::save_named(
                &extras.output_dir,
                &name,
                SnapshotRef {
                    model: &state,
                    optimizer: &optimizer,
                    ema: ema.as_ref(),
                    state: &trainer_state,
                },
            )
            .map_err(ckpt_err)?;
            progress.println(&format!(
                "saved checkpoint {} (epoch {epoch}, step {step})",
                saved.dir.join(&saved.name).display()
            ));
            plots::redraw(&metrics_path, &progress);
        }
    }
    progress.finish();
    say(
        replicas,
        &format!(
            "training finished: {step} steps, last loss {:.6}",
            last.loss
        ),
    );
    Ok(TrainSummary {
        steps: step,
        last,
        metrics: metrics_path,
    })
}

/// The trainer state after epoch `epoch` (0-based) with `step` optimizer steps done.
fn trainer_state(
    extras: &Extras,
    fingerprint: &Fingerprint,
    epoch: usize,
    step: usize,
    best_ap: Option<f64>,
    best_epoch: Option<u64>,
) -> ckpt::TrainerState {
    ckpt::TrainerState {
        config_name: extras.config_name.clone(),
        epoch: epoch as u64 + 1,
        global_step: step as u64,
        best_ap,
        best_epoch,
        data: DataState {
            seed: extras.seed,
            sampler_epoch: u32::try_from(epoch + 1).unwrap_or(u32::MAX),
            next_batch: 0,
            rng: Vec::new(),
        },
        fingerprint: fingerprint.clone(),
    }
}

/// The trainer's communicator as evaluation's (`None` for a single rank is handled by the
/// caller).
struct ReplicaEval<'a>(&'a Replicas);

impl EvalComm for ReplicaEval<'_> {
    fn rank(&self) -> usize {
        self.0.rank()
    }
    fn world_size(&self) -> usize {
        self.0.world()
    }
    fn all_gather_i64(&mut self, mine: &[i64]) -> Result<Vec<Vec<i64>>, CommError> {
        self.0.all_gather_i64(mine)
    }
    fn broadcast_f64(&mut self, data: &mut [f64], root: usize) -> Result<(), CommError> {
        self.0.broadcast_f64(data, root)
    }
}

/// Every rank's loss terms to every rank (each fills its own row of a zeroed table that is
/// summed), checked for non-finite values, then averaged.
fn exchange_losses(
    replicas: &Replicas,
    mine: &[f64; 5],
    step: usize,
    epoch: usize,
    iter: usize,
) -> Result<StepLosses, TrainError> {
    let (rank, world) = (replicas.rank(), replicas.world());
    let mut table = vec![0.0f32; world * 5];
    for (slot, v) in table[rank * 5..rank * 5 + 5].iter_mut().zip(mine) {
        *slot = *v as f32;
    }
    replicas
        .all_reduce(&mut table, ReduceOp::Sum)
        .map_err(|error| TrainError::Comm {
            rank,
            what: "exchanging losses",
            error,
        })?;
    let mut mean = [0.0f64; 5];
    for r in 0..world {
        for (t, name) in StepLosses::NAMES.iter().enumerate() {
            let value = if r == rank {
                mine[t]
            } else {
                f64::from(table[r * 5 + t])
            };
            if !value.is_finite() {
                return Err(TrainError::NonFinite {
                    step,
                    epoch,
                    iter,
                    rank: r,
                    term: name,
                    value,
                });
            }
            mean[t] += value / world as f64;
        }
    }
    Ok(StepLosses::from_array(mean))
}

/// `pretrain_weights`: a local `.pdparams` or safetensors file (`PATH`, else `PATH.pdparams` or
/// `PATH.safetensors`, as PaddleDetection appends `.pdparams`), loaded as PaddleDetection's
/// `load_pretrain_weight` does (names matched by dotted suffix, so a backbone-only file fills
/// the backbone). A URL is read from PaddleDetection's download cache
/// (`~/.cache/paddle/weights/<file name>`) when it is there, else refused. Returns the report of
/// what was loaded, missing, unused and mis-shaped.
fn load_pretrained(state: &mut ModelState, weights: &str) -> Result<String, String> {
    let hint = "pass `-o pretrain_weights=` to start from PaddleDetection's initialisation";
    let path = pretrained_path(weights).map_err(|e| format!("{e} ({hint})"))?;
    ringdet_detect::pretrained::load_pretrained(state, &path)
        .map(|report| report.to_string())
        .map_err(|e| format!("{e} ({hint})"))
}

/// The local file `pretrain_weights` names (see [`load_pretrained`]).
fn pretrained_path(weights: &str) -> Result<PathBuf, String> {
    if weights.contains("://") {
        let name = weights.rsplit('/').next().unwrap_or_default();
        let cached = std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".cache/paddle/weights").join(name));
        if let Some(c) = cached.filter(|c| !name.is_empty() && c.is_file()) {
            return Ok(c);
        }
        return Err(format!(
            "{weights} is a URL and this build does not download: fetch it (e.g. `wget {weights}`) \
             and pass the local file"
        ));
    }
    let path = PathBuf::from(weights);
    if path.is_file() {
        return Ok(path);
    }
    for ext in ["pdparams", "safetensors"] {
        let with = PathBuf::from(format!("{weights}.{ext}"));
        if with.is_file() {
            return Ok(with);
        }
    }
    Err(format!("{weights}: no such file (nor {weights}.pdparams)"))
}

/// The CUDA backend of GPU `ordinal` for `rank`, with bf16 tensor-core convolutions under
/// `--amp`; an error naming the rank and the cause when the device cannot be used.
fn cuda_backend(rank: usize, ordinal: usize, amp: bool) -> Result<Cuda, TrainError> {
    let rt =
        ringdet_kernels::runtime::KernelRuntime::get(ordinal).map_err(|e| TrainError::Setting {
            key: "use_gpu".into(),
            msg: format!("rank {rank}: CUDA device {ordinal} cannot be used: {e}"),
        })?;
    let math = if amp {
        ConvMath::Bf16TensorCore
    } else {
        ConvMath::F32
    };
    Ok(Cuda::new(rt).with_conv_math(math))
}

/// `NVIDIA H100 80GB HBM3 (CUDA device 0)`.
fn describe_cuda(be: &Cuda) -> String {
    let name = be
        .runtime
        .device_name()
        .unwrap_or_else(|_| "a CUDA device".into());
    format!("{name} (CUDA device {})", be.runtime.ordinal())
}

/// A loader batch in the detector's types.
struct TrainInput {
    image: Feat,
    boxes: Vec<[f32; 4]>,
    labels: Vec<usize>,
    mask: Vec<f32>,
    max_boxes: usize,
}

impl TrainInput {
    fn from_batch(b: Batch) -> Result<TrainInput, DetectError> {
        let [n, c, h, w] = b.image_shape;
        let image = Feat::from_vec(b.image, n, c, h, w)?;
        let boxes = b
            .gt_bbox
            .chunks_exact(4)
            .map(|x| [x[0], x[1], x[2], x[3]])
            .collect();
        let labels = b
            .gt_class
            .iter()
            .map(|&c| usize::try_from(c).unwrap_or(0))
            .collect();
        Ok(TrainInput {
            image,
            boxes,
            labels,
            mask: b.pad_gt_mask,
            max_boxes: b.max_boxes,
        })
    }

    fn as_batch(&self) -> TrainBatch<'_> {
        TrainBatch {
            image: &self.image,
            gt_boxes: &self.boxes,
            gt_labels: &self.labels,
            pad_mask: &self.mask,
            max_boxes: self.max_boxes,
        }
    }
}
