//! PaddleDetection YAML configs, read unchanged: `_BASE_` includes resolved relative to the
//! including file (later files override earlier ones, maps merged key by key), YAML anchors,
//! scheduler tags (`- !CosineDecay`), merge keys (`<<: *base`) and `-o key=value` overrides. Every leaf remembers the file
//! (or override) that set it, so a bad value is reported with its origin. [`TrainRecipe`] is
//! the typed view the trainer uses, in `ringdet_detect`'s own types.

mod error;
mod load;
mod overrides;
mod recipe;
mod transforms;
mod value;
mod yaml;

pub use error::ConfigError;
pub use recipe::{OptimizerSpec, TrainRecipe};
pub use transforms::{no_augmentation, train_sample_transforms};
pub use value::Config;

#[cfg(test)]
mod tests;
