//! What a run must share with the run that wrote a checkpoint to continue it exactly.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::{CheckpointError, Result};
use crate::TrainRecipe;

/// Settings that decide the sequence of updates, as `key → exact text` (floats in Rust's
/// round-trip notation). Resuming compares them key by key and names every difference.
///
/// Left out on purpose: `epoch` (a run may be extended; the LR curve depends on
/// `cosine_max_epochs`), `snapshot_epoch`, `log_iter`, the eval reader and NMS settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Fingerprint(pub BTreeMap<String, String>);

impl Fingerprint {
    /// The fingerprint of a recipe trained on `world_size` ranks.
    pub fn new(recipe: &TrainRecipe, world_size: usize) -> Self {
        let mut f = Fingerprint::default();
        f.set("world_size", world_size);
        f.set("batch_size", recipe.batch_size);
        f.set("model.width_mult", format!("{:?}", recipe.model.width_mult));
        f.set("model.depth_mult", format!("{:?}", recipe.model.depth_mult));
        f.set("model.num_classes", recipe.model.num_classes);
        f.set("model.reg_max", recipe.model.reg_max);
        f.set("base_lr", format!("{:?}", recipe.base_lr));
        f.set(
            "cosine_max_epochs",
            format!("{:?}", recipe.cosine_max_epochs),
        );
        f.set("warmup_epochs", format!("{:?}", recipe.warmup_epochs));
        f.set("warmup_steps", recipe.warmup_steps);
        f.set("optimizer", format!("{:?}", recipe.optimizer));
        f.set(
            "clip_grad_by_norm",
            format!("{:?}", recipe.clip_grad_by_norm),
        );
        f.set("ema_decay", format!("{:?}", recipe.ema_decay));
        f.set("train_sizes", format!("{:?}", recipe.train_sizes));
        f.set("train", format!("{:?}", recipe.train));
        f
    }

    /// Adds or replaces one setting (the trainer adds e.g. `dataset_len`, `seed`).
    pub fn set(&mut self, key: &str, value: impl ToString) {
        self.0.insert(key.to_string(), value.to_string());
    }

    /// The value of one setting, as text.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// The settings that differ between this (the checkpoint's) and `now`, one line each.
    pub fn differences(&self, now: &Fingerprint) -> Vec<String> {
        let keys: std::collections::BTreeSet<&String> = self.0.keys().chain(now.0.keys()).collect();
        keys.into_iter()
            .filter_map(|k| {
                let (a, b) = (self.0.get(k), now.0.get(k));
                (a != b).then(|| {
                    let show = |v: Option<&String>| v.map_or("(not set)".to_string(), Clone::clone);
                    format!("{k}: checkpoint {}, now {}", show(a), show(b))
                })
            })
            .collect()
    }

    /// Refuses (naming every differing setting and the file) unless `now` matches.
    pub fn check(&self, now: &Fingerprint, state_file: &Path) -> Result<()> {
        let differences = self.differences(now);
        if differences.is_empty() {
            Ok(())
        } else {
            Err(CheckpointError::Incompatible {
                path: state_file.to_path_buf(),
                differences,
            })
        }
    }
}
