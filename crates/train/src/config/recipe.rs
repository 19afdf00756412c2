//! The typed training recipe the trainer needs, read from a merged config. Defaults are
//! PaddleDetection's where the config may leave a value out; anything else missing or mistyped
//! is an error naming the key and the file that set it.

use super::{Config, ConfigError};
use ringdet_collective::device::CommBackendChoice;
use ringdet_detect::arch::ModelConfig;
use ringdet_detect::layout::ParamLayout;
use ringdet_detect::loss::LossWeights;
use ringdet_detect::nms::NmsParams;
use ringdet_detect::step::TrainSettings;
use ringdet_detect::train::adamw::AdamW;
use ringdet_detect::train::ema::Ema;
use ringdet_detect::train::lr::LrSchedule;
use ringdet_detect::train::optimizer::Optimizer;
use ringdet_detect::train::sgd::Sgd;
use serde_yaml_ng::{Mapping, Value};

/// Everything the training loop takes from the config, in the detector's own types where it
/// has them.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainRecipe {
    /// Epochs to train (`epoch`).
    pub epochs: usize,
    /// Learning rate at the end of the warmup (`LearningRate.base_lr`).
    pub base_lr: f64,
    /// CosineDecay's `max_epochs` (the cosine spans this many epochs; training may stop earlier).
    pub cosine_max_epochs: f64,
    /// LinearWarmup length in epochs (`epochs`), else in iterations (`steps`).
    pub warmup_epochs: Option<f64>,
    /// LinearWarmup length in iterations when `warmup_epochs` is None.
    pub warmup_steps: usize,
    /// LinearWarmup's first factor of `base_lr`.
    pub warmup_start_factor: f64,
    /// The optimizer and its constants (`OptimizerBuilder.optimizer`, `.regularizer`).
    pub optimizer: OptimizerSpec,
    /// Paddle's `ClipGradByGlobalNorm` bound (`OptimizerBuilder.clip_grad_by_norm`), if any.
    pub clip_grad_by_norm: Option<f64>,
    /// Images per rank per step (`TrainReader.batch_size`).
    pub batch_size: usize,
    /// Images per eval batch (`EvalReader.batch_size`).
    pub eval_batch_size: usize,
    /// BatchRandomResize's square sizes.
    pub train_sizes: Vec<usize>,
    /// The per-sample augmentations `TrainReader.sample_transforms` lists (a left-out one is off).
    pub sample_transforms: ringdet_coco::transform::TrainSampleTransforms,
    /// Eval Resize target (height, width).
    pub eval_size: (usize, usize),
    /// Model size and classes (`width_mult`, `depth_mult`, `num_classes`, `PPYOLOEHead.reg_max`).
    pub model: ModelConfig,
    /// Assigners and loss weights (`PPYOLOEHead.static_assigner_epoch`, `.static_assigner.topk`,
    /// `.assigner.{topk,alpha,beta}`, `.loss_weight.{class,iou,dfl}`).
    pub train: TrainSettings,
    /// Post-processing (`PPYOLOEHead.nms`).
    pub nms: NmsParams,
    /// EMA decay (`ema_decay`) when `use_ema` is set.
    pub ema_decay: Option<f64>,
    /// Save a checkpoint every this many epochs.
    pub snapshot_epoch: usize,
    /// Log every this many iterations.
    pub log_iter: usize,
    /// `use_gpu` (PaddleDetection's `runtime.yml` sets `true`; false when left out): train on
    /// the rank's CUDA device where there is one (`crate::device` decides, and falls back to
    /// the CPU with a warning where no GPU is visible).
    pub use_gpu: bool,
    /// `comm_backend: ring | nccl | auto` (default `auto`): what carries gradients between GPU
    /// ranks (`ringdet_collective::device::select_backend`).
    pub comm_backend: CommBackendChoice,
}

/// The optimizer a config names, with its constants.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OptimizerSpec {
    /// `type: Momentum`: SGD with `momentum` and the coupled L2 `regularizer.factor`.
    Momentum {
        /// `OptimizerBuilder.optimizer.momentum`.
        momentum: f64,
        /// `OptimizerBuilder.regularizer.factor` (0 without a regularizer).
        l2_decay: f64,
    },
    /// `type: AdamW`: Paddle's AdamW (`beta1`, `beta2`, `epsilon`, `weight_decay`, Paddle's
    /// defaults where left out); PaddleDetection ignores the regularizer for it, and so does this.
    AdamW {
        /// `OptimizerBuilder.optimizer.beta1` (0.9).
        beta1: f64,
        /// `OptimizerBuilder.optimizer.beta2` (0.999).
        beta2: f64,
        /// `OptimizerBuilder.optimizer.epsilon` (1e-8).
        epsilon: f64,
        /// `OptimizerBuilder.optimizer.weight_decay` (0.01), decoupled.
        weight_decay: f64,
    },
}

impl Config {
    fn or<T>(
        &self,
        key: &str,
        default: T,
        get: impl Fn(&Self, &str) -> Result<T, ConfigError>,
    ) -> Result<T, ConfigError> {
        match self.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(_) => get(self, key),
        }
    }

    /// The element of list `list_key` whose `name` is `name` (scheduler lists).
    fn named(&self, list_key: &str, name: &str) -> Option<&Value> {
        self.get(list_key)?
            .as_sequence()?
            .iter()
            .find(|v| v.get("name").and_then(Value::as_str) == Some(name))
    }

    /// The parameters of transform `name` in a reader's transform list (`- Name: {...}`).
    fn transform(&self, list_key: &str, name: &str) -> Option<(usize, &Mapping)> {
        self.get(list_key)?
            .as_sequence()?
            .iter()
            .enumerate()
            .find_map(|(i, v)| v.get(name).and_then(Value::as_mapping).map(|m| (i, m)))
    }

    fn item_key(list_key: &str, index: usize, field: &str) -> String {
        format!("{list_key}.{index}.{field}")
    }
}

fn list_field<'a>(m: &'a Mapping, field: &str) -> Option<&'a Value> {
    m.get(field)
}

impl TrainRecipe {
    /// Reads the recipe from a merged config.
    pub fn from_config(c: &Config) -> Result<TrainRecipe, ConfigError> {
        let scheds = "LearningRate.schedulers";
        let cosine_max_epochs = c
            .named(scheds, "CosineDecay")
            .and_then(|item| item.get("max_epochs"))
            .and_then(Value::as_f64)
            .ok_or_else(|| ConfigError::Missing {
                key: format!("{scheds}[CosineDecay].max_epochs"),
            })?;
        positive(c, scheds, "CosineDecay max_epochs", cosine_max_epochs)?;
        let (mut warmup_epochs, mut warmup_steps, mut warmup_start_factor) = (None, 0, 1.0);
        if let Some(item) = c.named(scheds, "LinearWarmup") {
            warmup_epochs = item.get("epochs").and_then(Value::as_f64);
            warmup_steps = item.get("steps").and_then(Value::as_u64).unwrap_or(500) as usize;
            warmup_start_factor = item
                .get("start_factor")
                .and_then(Value::as_f64)
                .unwrap_or(1.0 / 3.0);
            if let Some(epochs) = warmup_epochs {
                at_least(c, scheds, "LinearWarmup epochs", epochs, 0.0)?;
            }
            within(
                c,
                scheds,
                "LinearWarmup start_factor",
                warmup_start_factor,
                0.0,
                1.0,
            )?;
        }
        let optimizer = optimizer_spec(c)?;
        let reg = c.or(
            "OptimizerBuilder.regularizer.type",
            "L2".to_string(),
            Config::string,
        )?;
        if reg != "L2" {
            return Err(ConfigError::Value {
                key: "OptimizerBuilder.regularizer.type".into(),
                origin: c.origin("OptimizerBuilder.regularizer.type"),
                msg: format!("only L2 is supported, found {reg:?}"),
            });
        }
        let train_sizes = match c.transform("TrainReader.batch_transforms", "BatchRandomResize") {
            Some((i, m)) => {
                let key = Config::item_key(
                    "TrainReader.batch_transforms",
                    i,
                    "BatchRandomResize.target_size",
                );
                sizes(c, &key, list_field(m, "target_size"))?
            }
            None => vec![640],
        };
        let eval_size = match c.transform("EvalReader.sample_transforms", "Resize") {
            Some((i, m)) => {
                let key = Config::item_key("EvalReader.sample_transforms", i, "Resize.target_size");
                match sizes(c, &key, list_field(m, "target_size"))?[..] {
                    [h, w] => (h, w),
                    [s] => (s, s),
                    _ => return Err(bad(c, &key, "expected [height, width]")),
                }
            }
            None => (640, 640),
        };
        let head = "PPYOLOEHead";
        let model = ModelConfig {
            width_mult: positive(c, "width_mult", "", c.or("width_mult", 1.0, Config::f64)?)?,
            depth_mult: positive(c, "depth_mult", "", c.or("depth_mult", 1.0, Config::f64)?)?,
            num_classes: one_or_more(c, "num_classes", c.usize("num_classes")?)?,
            reg_max: c.or(&format!("{head}.reg_max"), 16, Config::usize)?,
        };
        model.validate().map_err(|e| ConfigError::Recipe {
            what: "model (width_mult, depth_mult, num_classes, PPYOLOEHead.reg_max)",
            msg: e.to_string(),
        })?;
        let f32_or = |key: &str, default: f32| -> Result<f32, ConfigError> {
            c.or(key, f64::from(default), Config::f64).map(|v| v as f32)
        };
        // A weight, exponent or threshold: finite and at least 0 (thresholds at most 1).
        let weight = |key: &str, default: f32| -> Result<f32, ConfigError> {
            let v = f32_or(key, default)?;
            at_least(c, key, "", f64::from(v), 0.0).map(|_| v)
        };
        let threshold = |key: &str, default: f32| -> Result<f32, ConfigError> {
            let v = f32_or(key, default)?;
            within(c, key, "", f64::from(v), 0.0, 1.0).map(|_| v)
        };
        let count = |key: &str, default: usize| -> Result<usize, ConfigError> {
            one_or_more(c, key, c.or(key, default, Config::usize)?)
        };
        // NMS limits: -1 keeps all, else at least 1.
        let limit = |key: &str, default: i64| -> Result<i64, ConfigError> {
            let v = c.or(key, default, Config::i64)?;
            if v == 0 || v < -1 {
                return Err(bad(
                    c,
                    key,
                    &format!("must be -1 (all) or at least 1, found {v}"),
                ));
            }
            Ok(v)
        };
        let defaults = TrainSettings::default();
        let train = TrainSettings {
            static_assigner_epoch: c.or(
                &format!("{head}.static_assigner_epoch"),
                4,
                Config::usize,
            )?,
            atss_topk: count(&format!("{head}.static_assigner.topk"), 9)?,
            tal_topk: count(&format!("{head}.assigner.topk"), 13)?,
            tal_alpha: weight(&format!("{head}.assigner.alpha"), 1.0)?,
            tal_beta: weight(&format!("{head}.assigner.beta"), 6.0)?,
            weights: LossWeights {
                class: weight(&format!("{head}.loss_weight.class"), defaults.weights.class)?,
                iou: weight(&format!("{head}.loss_weight.iou"), defaults.weights.iou)?,
                dfl: weight(&format!("{head}.loss_weight.dfl"), defaults.weights.dfl)?,
            },
        };
        // MultiClassNMS's own defaults where the config leaves a value out.
        let nms = NmsParams {
            score_threshold: threshold(&format!("{head}.nms.score_threshold"), 0.05)?,
            nms_top_k: limit(&format!("{head}.nms.nms_top_k"), 1000)?,
            keep_top_k: limit(&format!("{head}.nms.keep_top_k"), 100)?,
            nms_threshold: threshold(&format!("{head}.nms.nms_threshold"), 0.5)?,
        };
        let base_lr = c.f64("LearningRate.base_lr")?;
        if !matches!(
            c.get("OptimizerBuilder.clip_grad_by_value"),
            None | Some(Value::Null)
        ) {
            return Err(bad(
                c,
                "OptimizerBuilder.clip_grad_by_value",
                "is not supported; clip_grad_by_norm is",
            ));
        }
        let clip_grad_by_norm = match c.or("OptimizerBuilder.clip_grad_by_norm", None, |c, k| {
            c.f64(k).map(Some)
        })? {
            Some(v) => Some(positive(c, "OptimizerBuilder.clip_grad_by_norm", "", v)?),
            None => None,
        };
        let ema_decay = match c.or("use_ema", false, Config::bool)? {
            true => {
                let decay = c.or("ema_decay", 0.9998, Config::f64)?;
                if !(decay > 0.0 && decay < 1.0) {
                    return Err(bad(
                        c,
                        "ema_decay",
                        &format!("must be above 0 and below 1, found {decay}"),
                    ));
                }
                Some(decay)
            }
            false => None,
        };
        Ok(TrainRecipe {
            epochs: one_or_more(c, "epoch", c.usize("epoch")?)?,
            base_lr: positive(c, "LearningRate.base_lr", "", base_lr)?,
            cosine_max_epochs,
            warmup_epochs,
            warmup_steps,
            warmup_start_factor,
            optimizer,
            clip_grad_by_norm,
            batch_size: one_or_more(
                c,
                "TrainReader.batch_size",
                c.usize("TrainReader.batch_size")?,
            )?,
            eval_batch_size: count("EvalReader.batch_size", 1)?,
            train_sizes,
            sample_transforms: super::train_sample_transforms(c)?,
            eval_size,
            model,
            train,
            nms,
            ema_decay,
            snapshot_epoch: count("snapshot_epoch", 1)?,
            log_iter: count("log_iter", 20)?,
            use_gpu: c.or("use_gpu", false, Config::bool)?,
            comm_backend: comm_backend(c)?,
        })
    }

    /// The detector's per-iteration schedule for `iters_per_epoch` iterations per epoch: warmup
    /// over `warmup_epochs` (or `warmup_steps`), cosine to `cosine_max_epochs`. The detector's
    /// warmup starts from exactly 0, so a LinearWarmup `start_factor` other than 0 is refused.
    pub fn lr_schedule(&self, iters_per_epoch: usize) -> Result<LrSchedule, ConfigError> {
        let what = "LearningRate.schedulers";
        if self.warmup_start_factor != 0.0 {
            return Err(ConfigError::Recipe {
                what,
                msg: format!(
                    "LinearWarmup start_factor {} is not supported (the warmup starts from 0)",
                    self.warmup_start_factor
                ),
            });
        }
        if !(self.cosine_max_epochs.is_finite() && self.cosine_max_epochs > 0.0) {
            return Err(ConfigError::Recipe {
                what,
                msg: format!(
                    "CosineDecay max_epochs {} must be positive",
                    self.cosine_max_epochs
                ),
            });
        }
        let iters = |epochs: f64| (epochs * iters_per_epoch as f64).round() as usize;
        Ok(LrSchedule {
            base: self.base_lr,
            warmup_iters: self.warmup_epochs.map_or(self.warmup_steps, iters),
            max_iters: iters(self.cosine_max_epochs),
        })
    }

    /// The optimizer for a parameter layout, with this recipe's constants and fresh state.
    pub fn optimizer(&self, layout: &ParamLayout) -> Optimizer {
        match self.optimizer {
            OptimizerSpec::Momentum { momentum, l2_decay } => {
                let mut sgd = Sgd::ppyoloe(layout);
                sgd.momentum = momentum;
                sgd.weight_decay = l2_decay;
                Optimizer::Momentum(sgd)
            }
            OptimizerSpec::AdamW {
                beta1,
                beta2,
                epsilon,
                weight_decay,
            } => {
                let mut a = AdamW::paddle_default(layout);
                (a.beta1, a.beta2, a.epsilon, a.weight_decay) =
                    (beta1, beta2, epsilon, weight_decay);
                Optimizer::AdamW(a)
            }
        }
    }

    /// The model EMA for buffers of these lengths, when the recipe uses one.
    pub fn ema(&self, num_params: usize, num_stats: usize) -> Option<Ema> {
        self.ema_decay
            .map(|decay| Ema::new(decay, num_params, num_stats))
    }
}

/// `OptimizerBuilder.optimizer`: `Momentum` or `AdamW`, each with only the keys Paddle's
/// optimizer of that name takes (PaddleDetection passes them on as keyword arguments, so a stray
/// key such as a `momentum` inherited from a Momentum base fails there too).
fn optimizer_spec(c: &Config) -> Result<OptimizerSpec, ConfigError> {
    const KEY: &str = "OptimizerBuilder.optimizer";
    let kind = c.string(&format!("{KEY}.type"))?;
    let allowed: &[&str] = match kind.as_str() {
        // PaddleDetection replaces a Momentum section's `weight_decay` with the regularizer,
        // so one inherited from an AdamW base is harmless there, and ignored here too.
        "Momentum" => &["type", "momentum", "weight_decay"],
        "AdamW" => &["type", "beta1", "beta2", "epsilon", "weight_decay"],
        other => {
            return Err(bad(
                c,
                &format!("{KEY}.type"),
                &format!("Momentum and AdamW are supported, found {other:?}"),
            ));
        }
    };
    if let Some(map) = c.get(KEY).and_then(Value::as_mapping) {
        for k in map.keys().filter_map(Value::as_str) {
            if !allowed.contains(&k) {
                return Err(bad(
                    c,
                    &format!("{KEY}.{k}"),
                    &format!(
                        "{kind} takes no `{k}` (it takes {})",
                        allowed[1..].join(", ")
                    ),
                ));
            }
        }
    }
    let unit = |key: &str, default: f64| -> Result<f64, ConfigError> {
        let k = format!("{KEY}.{key}");
        let v = c.or(&k, default, Config::f64)?;
        if !(0.0..1.0).contains(&v) {
            return Err(bad(
                c,
                &k,
                &format!("must be at least 0 and below 1, found {v}"),
            ));
        }
        Ok(v)
    };
    Ok(match kind.as_str() {
        "Momentum" => {
            let momentum = c.f64(&format!("{KEY}.momentum"))?;
            let momentum = unit("momentum", momentum)?;
            let l2 = c.or("OptimizerBuilder.regularizer.factor", 0.0, Config::f64)?;
            OptimizerSpec::Momentum {
                momentum,
                l2_decay: at_least(c, "OptimizerBuilder.regularizer.factor", "", l2, 0.0)?,
            }
        }
        _ => {
            let epsilon = c.or(&format!("{KEY}.epsilon"), 1e-8, Config::f64)?;
            let weight_decay = c.or(&format!("{KEY}.weight_decay"), 0.01, Config::f64)?;
            OptimizerSpec::AdamW {
                beta1: unit("beta1", 0.9)?,
                beta2: unit("beta2", 0.999)?,
                epsilon: positive(c, &format!("{KEY}.epsilon"), "", epsilon)?,
                weight_decay: at_least(c, &format!("{KEY}.weight_decay"), "", weight_decay, 0.0)?,
            }
        }
    })
}

/// `comm_backend`: `ring`, `nccl` or `auto` (the default when left out).
fn comm_backend(c: &Config) -> Result<CommBackendChoice, ConfigError> {
    const KEY: &str = "comm_backend";
    let text = c.or(KEY, "auto".to_string(), Config::string)?;
    text.parse().map_err(|_| {
        bad(
            c,
            KEY,
            &format!("expected ring, nccl or auto, found {text:?}"),
        )
    })
}

fn bad(c: &Config, key: &str, msg: &str) -> ConfigError {
    ConfigError::Value {
        key: key.to_string(),
        origin: c.origin(key),
        msg: msg.to_string(),
    }
}

fn sizes(c: &Config, key: &str, v: Option<&Value>) -> Result<Vec<usize>, ConfigError> {
    let items = v
        .and_then(Value::as_sequence)
        .ok_or_else(|| bad(c, key, "expected a list of sizes"))?;
    items
        .iter()
        .map(|x| match x.as_u64() {
            Some(n) if n > 0 && n % STRIDE == 0 => Ok(n as usize),
            Some(n) => Err(bad(
                c,
                key,
                &format!("{n} is not a positive multiple of {STRIDE} (PP-YOLOE's largest stride)"),
            )),
            None => Err(bad(c, key, "expected positive integers")),
        })
        .collect()
}

/// PP-YOLOE's largest feature stride: every input side must be a multiple of it.
const STRIDE: u64 = 32;

/// `value` (an integer read from `key`) when it is at least 1.
fn one_or_more(c: &Config, key: &str, value: usize) -> Result<usize, ConfigError> {
    if value == 0 {
        return Err(bad(c, key, "must be at least 1, found 0"));
    }
    Ok(value)
}

/// `value` when it is finite and above 0; `what` names the item of a list key (`CosineDecay
/// max_epochs` in `LearningRate.schedulers`), empty when `key` is the value's own key.
fn positive(c: &Config, key: &str, what: &str, value: f64) -> Result<f64, ConfigError> {
    if !(value.is_finite() && value > 0.0) {
        return Err(bad(
            c,
            key,
            &format!("{what}{}must be above 0, found {value}", sep(what)),
        ));
    }
    Ok(value)
}

/// `value` when it is finite and at least `min` (see [`positive`] for `what`).
fn at_least(c: &Config, key: &str, what: &str, value: f64, min: f64) -> Result<f64, ConfigError> {
    if !(value.is_finite() && value >= min) {
        return Err(bad(
            c,
            key,
            &format!("{what}{}must be at least {min}, found {value}", sep(what)),
        ));
    }
    Ok(value)
}

/// `value` when it lies in `[min, max]` (see [`positive`] for `what`).
fn within(
    c: &Config,
    key: &str,
    what: &str,
    value: f64,
    min: f64,
    max: f64,
) -> Result<f64, ConfigError> {
    if !(min..=max).contains(&value) {
        return Err(bad(
            c,
            key,
            &format!(
                "{what}{}must be between {min} and {max}, found {value}",
                sep(what)
            ),
        ));
    }
    Ok(value)
}

fn sep(what: &str) -> &'static str {
    if what.is_empty() { "" } else { " " }
}
