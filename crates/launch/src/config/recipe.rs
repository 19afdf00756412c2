//! The typed training recipe the trainer needs, read from a merged config. Defaults are
//! PaddleDetection's where the config may leave a value out; anything else missing or mistyped
//! is an error naming the key and the file that set it.

use super::{Config, ConfigError};
use serde_yaml_ng::{Mapping, Value};

/// PaddleDetection's MultiClassNMS settings.
#[derive(Clone, Debug, PartialEq)]
pub struct NmsSettings {
    pub nms_top_k: usize,
    pub keep_top_k: usize,
    pub score_threshold: f64,
    pub nms_threshold: f64,
}

/// Everything the training loop takes from the config.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainRecipe {
    pub epochs: usize,
    pub base_lr: f64,
    /// CosineDecay's `max_epochs` (the cosine spans this many epochs; training may stop earlier).
    pub cosine_max_epochs: f64,
    /// LinearWarmup length in epochs (`epochs`), else in iterations (`steps`).
    pub warmup_epochs: Option<f64>,
    pub warmup_steps: usize,
    pub warmup_start_factor: f64,
    pub momentum: f64,
    pub l2_decay: f64,
    pub batch_size: usize,
    pub eval_batch_size: usize,
    /// BatchRandomResize's square sizes.
    pub train_sizes: Vec<usize>,
    /// Eval Resize target (height, width).
    pub eval_size: (usize, usize),
    pub depth_mult: f64,
    pub width_mult: f64,
    pub num_classes: usize,
    pub static_assigner_epoch: usize,
    pub atss_topk: usize,
    pub tal_topk: usize,
    pub tal_alpha: f64,
    pub tal_beta: f64,
    /// Loss weights: class, iou, dfl.
    pub loss_weights: (f64, f64, f64),
    pub nms: NmsSettings,
    pub use_ema: bool,
    pub ema_decay: f64,
    pub snapshot_epoch: usize,
    pub log_iter: usize,
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
        let (mut warmup_epochs, mut warmup_steps, mut warmup_start_factor) = (None, 0, 1.0);
        if let Some(item) = c.named(scheds, "LinearWarmup") {
            warmup_epochs = item.get("epochs").and_then(Value::as_f64);
            warmup_steps = item.get("steps").and_then(Value::as_u64).unwrap_or(500) as usize;
            warmup_start_factor = item
                .get("start_factor")
                .and_then(Value::as_f64)
                .unwrap_or(1.0 / 3.0);
        }
        let opt = c.string("OptimizerBuilder.optimizer.type")?;
        if opt != "Momentum" {
            return Err(ConfigError::Value {
                key: "OptimizerBuilder.optimizer.type".into(),
                origin: c.origin("OptimizerBuilder.optimizer.type"),
                msg: format!("only Momentum is supported, found {opt:?}"),
            });
        }
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
        Ok(TrainRecipe {
            epochs: c.usize("epoch")?,
            base_lr: c.f64("LearningRate.base_lr")?,
            cosine_max_epochs,
            warmup_epochs,
            warmup_steps,
            warmup_start_factor,
            momentum: c.f64("OptimizerBuilder.optimizer.momentum")?,
            l2_decay: c.or("OptimizerBuilder.regularizer.factor", 0.0, Config::f64)?,
            batch_size: c.usize("TrainReader.batch_size")?,
            eval_batch_size: c.or("EvalReader.batch_size", 1, Config::usize)?,
            train_sizes,
            eval_size,
            depth_mult: c.or("depth_mult", 1.0, Config::f64)?,
            width_mult: c.or("width_mult", 1.0, Config::f64)?,
            num_classes: c.usize("num_classes")?,
            static_assigner_epoch: c.or(
                &format!("{head}.static_assigner_epoch"),
                4,
                Config::usize,
            )?,
            atss_topk: c.or(&format!("{head}.static_assigner.topk"), 9, Config::usize)?,
            tal_topk: c.or(&format!("{head}.assigner.topk"), 13, Config::usize)?,
            tal_alpha: c.or(&format!("{head}.assigner.alpha"), 1.0, Config::f64)?,
            tal_beta: c.or(&format!("{head}.assigner.beta"), 6.0, Config::f64)?,
            loss_weights: (
                c.or(&format!("{head}.loss_weight.class"), 1.0, Config::f64)?,
                c.or(&format!("{head}.loss_weight.iou"), 2.5, Config::f64)?,
                c.or(&format!("{head}.loss_weight.dfl"), 0.5, Config::f64)?,
            ),
            nms: NmsSettings {
                nms_top_k: c.or(&format!("{head}.nms.nms_top_k"), 1000, Config::usize)?,
                keep_top_k: c.or(&format!("{head}.nms.keep_top_k"), 100, Config::usize)?,
                score_threshold: c.or(&format!("{head}.nms.score_threshold"), 0.05, Config::f64)?,
                nms_threshold: c.or(&format!("{head}.nms.nms_threshold"), 0.5, Config::f64)?,
            },
            use_ema: c.or("use_ema", false, Config::bool)?,
            ema_decay: c.or("ema_decay", 0.9998, Config::f64)?,
            snapshot_epoch: c.or("snapshot_epoch", 1, Config::usize)?,
            log_iter: c.or("log_iter", 20, Config::usize)?,
        })
    }
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
        .map(|x| {
            x.as_u64()
                .map(|n| n as usize)
                .ok_or_else(|| bad(c, key, "expected positive integers"))
        })
        .collect()
}
