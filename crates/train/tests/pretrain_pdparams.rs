//! `pretrain_weights` reads Paddle's `.pdparams` directly: starting weights saved as
//! `.pdparams` train exactly as the same weights saved as safetensors, and the name without its
//! extension finds `PATH.pdparams` as PaddleDetection does.

mod common;

use std::path::{Path, PathBuf};

use ringdet_detect::arch::{Arch, ModelConfig};
use ringdet_detect::checkpoint;
use ringdet_detect::init::{SeededNormal, initialize};
use ringdet_detect::state::ModelState;
use ringdet_train::trainer::{Replicas, TrainOptions, train_with};

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("pretrain-pdparams-tests")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Trains one epoch (3 steps) of the tiny model from `weights`; the losses of every step.
fn losses(dir: &Path, weights: &str) -> Vec<f64> {
    let data = common::tiny_dataset(dir, 2);
    let config = common::tiny_config(dir, &data, 1, 3, "");
    let opts = TrainOptions {
        config,
        overrides: vec![format!("pretrain_weights={weights}")],
        scale_lr: false,
        resume: None,
        eval: false,
        classwise: false,
        amp: false,
        check_replicas: None,
    };
    let summary = train_with(&opts, &Replicas::single()).unwrap();
    std::fs::read_to_string(&summary.metrics)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"]
                .as_f64()
                .unwrap()
        })
        .collect()
}

#[test]
fn pdparams_pretrain_trains_as_safetensors() {
    let arch = Arch::new(ModelConfig::new(0.125, 0.33).with_classes(7)).unwrap();
    let mut state = ModelState::zeros(&arch).unwrap();
    initialize(&mut state, &mut SeededNormal::new(3));
    let dir = scratch("weights");
    checkpoint::save(&state, dir.join("start.safetensors")).unwrap();
    checkpoint::save(&state, dir.join("start.pdparams")).unwrap();
    let a = losses(
        &scratch("st"),
        dir.join("start.safetensors").to_str().unwrap(),
    );
    // No extension: `start` is found as `start.pdparams`, as PaddleDetection appends it.
    let b = losses(&scratch("pd"), dir.join("start").to_str().unwrap());
    assert_eq!(a.len(), 3);
    assert_eq!(a, b);
}
