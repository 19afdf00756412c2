//! One rank trains a tiny PP-YOLOE on a tiny synthetic shapes set: `metrics.jsonl` has one
//! well-formed row per step with finite losses that go down; a NaN stops training naming the
//! step, the rank and the term; a missing `pretrain_weights` file is named.

mod common;

use std::path::{Path, PathBuf};

use ringdet_detect::arch::{Arch, ModelConfig};
use ringdet_detect::checkpoint;
use ringdet_detect::init::{SeededNormal, initialize};
use ringdet_detect::state::ModelState;
use ringdet_train::trainer::{Replicas, TrainError, TrainOptions, train_with};

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("trainer-tests")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A 16-image dataset, a config (64×64 inputs, width 0.125, batch 4: 3 steps an epoch) and
/// starting weights whose regression biases make the first boxes overlap the shapes.
fn setup(dir: &Path, epochs: usize) -> (PathBuf, PathBuf) {
    let data = common::tiny_dataset(dir, 2);
    let config = common::tiny_config(dir, &data, epochs, epochs + 2, "");
    let arch = Arch::new(ModelConfig::new(0.125, 0.33).with_classes(7)).unwrap();
    let mut state = ModelState::zeros(&arch).unwrap();
    initialize(&mut state, &mut SeededNormal::new(0));
    for level in 0..3 {
        let bias = state
            .get_mut(&format!("yolo_head.pred_reg.{level}.bias"))
            .unwrap();
        let bins = bias.len() / 4;
        for (i, b) in bias.iter_mut().enumerate() {
            *b = if i % bins == 2 { 6.0 } else { 0.0 };
        }
    }
    let weights = dir.join("start.safetensors");
    checkpoint::save(&state, &weights).unwrap();
    (config, weights)
}

fn options(config: PathBuf, overrides: &[String]) -> TrainOptions {
    TrainOptions {
        config,
        overrides: overrides.to_vec(),
        scale_lr: false,
        resume: None,
        eval: false,
        classwise: false,
        amp: false,
        check_replicas: None,
    }
}

#[test]
fn trains_and_writes_metrics_with_a_falling_loss() {
    let dir = scratch("falling");
    let (config, weights) = setup(&dir, 6);
    let pretrain = format!("pretrain_weights={}", weights.display());
    let summary = train_with(&options(config, &[pretrain]), &Replicas::single()).unwrap();
    assert_eq!(summary.steps, 18);
    assert_eq!(summary.metrics, dir.join("output/tiny/metrics.jsonl"));
    let text = std::fs::read_to_string(&summary.metrics).unwrap();
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 18);
    let keys = [
        "kind",
        "epoch",
        "iter",
        "step",
        "lr",
        "loss",
        "loss_cls",
        "loss_iou",
        "loss_dfl",
        "loss_l1",
        "batch_cost",
        "data_cost",
        "comm_exposed",
        "ips",
    ];
    for (s, row) in rows.iter().enumerate() {
        let obj = row.as_object().unwrap();
        assert_eq!(obj.keys().len(), keys.len(), "{row}");
        for k in keys {
            assert!(obj.contains_key(k), "row {s} has no {k}: {row}");
        }
        assert_eq!(row["kind"], "train");
        assert_eq!(row["step"], s);
        assert_eq!(row["epoch"], s / 3);
        assert_eq!(row["iter"], s % 3);
        for k in &keys[4..] {
            let v = row[*k].as_f64().unwrap();
            assert!(v.is_finite() && v >= 0.0, "row {s}: {k} = {v}");
        }
    }
    assert_eq!(rows[0]["lr"], 0.0);
    assert!(rows[3]["lr"].as_f64().unwrap() > 0.009);
    let mean = |r: &[serde_json::Value]| {
        r.iter().map(|x| x["loss"].as_f64().unwrap()).sum::<f64>() / r.len() as f64
    };
    let (first, last) = (mean(&rows[..3]), mean(&rows[15..]));
    assert!(last < first, "loss went from {first} to {last}");
}

#[test]
fn nan_names_step_rank_and_term() {
    let dir = scratch("nan");
    let (config, _) = setup(&dir, 1);
    let err = train_with(
        &options(config, &["debug_nan_step=2".into()]),
        &Replicas::single(),
    )
    .unwrap_err();
    assert!(
        matches!(err, TrainError::NonFinite { step: 2, .. }),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "step 2 (epoch 0, iter 2): rank 0: loss_cls is NaN"
    );
}

#[test]
fn missing_pretrain_file_is_named() {
    let dir = scratch("pretrain");
    let (config, _) = setup(&dir, 1);
    let err = train_with(
        &options(config, &["pretrain_weights=nowhere.safetensors".into()]),
        &Replicas::single(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("pretrain_weights: nowhere.safetensors: no such file")
            && err.contains("-o pretrain_weights="),
        "{err}"
    );
}

#[test]
fn scale_lr_uses_the_linear_scaling_rule() {
    let dir = scratch("scale-lr");
    let (config, _) = setup(&dir, 1);
    let mut opts = options(config, &[]);
    opts.scale_lr = true;
    let summary = train_with(&opts, &Replicas::single()).unwrap();
    let text = std::fs::read_to_string(&summary.metrics).unwrap();
    let lrs: Vec<f64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["lr"]
                .as_f64()
                .unwrap()
        })
        .collect();
    // Global batch 4 against PaddleDetection's 8 × 4: an eighth of the warmup's 0.01 / 3.
    assert_eq!(lrs.len(), 3);
    assert!((lrs[1] - 0.01 / 3.0 / 8.0).abs() < 1e-12, "{lrs:?}");
}
