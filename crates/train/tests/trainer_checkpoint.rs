//! The trainer with checkpoints and evaluation, one rank, on a tiny synthetic shapes set: a run
//! resumed from its epoch-0 checkpoint ends with the same `model_final`, bit for bit, as the
//! run that went straight through; `--eval` writes `eval` rows and keeps `best_model`; the
//! device path run on the host backend ends bit identical to the host path.

mod common;

use std::path::{Path, PathBuf};

use ringdet_train::checkpoint::Checkpoint;
use ringdet_train::trainer::{Replicas, TrainOptions, train_with};

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("trainer-checkpoint-tests")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A 16-image training set and 3 validation images, and a config (64×64 inputs, width 0.125,
/// batch 4: 3 steps an epoch (14 images have a box), EMA on with decay 0.9, cosine over 4 epochs).
fn setup(dir: &Path) -> PathBuf {
    let data = common::tiny_dataset(dir, 3);
    let extra = format!(
        "pretrain_weights: ''\nuse_ema: true\nema_decay: 0.9\nEvalDataset: {{dataset_dir: '{}'}}\n",
        data.display()
    );
    common::tiny_config(dir, &data, 2, 4, &extra)
}

fn options(config: &Path, overrides: &[&str]) -> TrainOptions {
    TrainOptions {
        config: config.to_path_buf(),
        overrides: overrides.iter().map(|s| s.to_string()).collect(),
        scale_lr: false,
        resume: None,
        eval: false,
        classwise: false,
        amp: false,
        check_replicas: None,
    }
}

#[test]
fn resumed_run_ends_bit_identical_to_the_straight_run() {
    let dir = scratch("resume");
    let config = setup(&dir);
    let out = dir.join("output/tiny");
    let overrides = ["epoch=2", "snapshot_epoch=1"];
    let straight = train_with(&options(&config, &overrides), &Replicas::single()).unwrap();
    assert_eq!(straight.steps, 6);
    for name in ["0", "model_final"] {
        assert!(
            Checkpoint::new(&out, name).unwrap().is_committed(),
            "no {name}"
        );
    }
    let kept = dir.join("straight");
    std::fs::create_dir_all(&kept).unwrap();
    for f in [
        "model_final.safetensors",
        "model_final.raw.safetensors",
        "model_final.opt.safetensors",
    ] {
        std::fs::copy(out.join(f), kept.join(f)).unwrap();
    }

    let mut opts = options(&config, &overrides);
    opts.resume = Some(out.join("0"));
    let resumed = train_with(&opts, &Replicas::single()).unwrap();
    assert_eq!(resumed.steps, 6);
    for f in [
        "model_final.safetensors",
        "model_final.raw.safetensors",
        "model_final.opt.safetensors",
    ] {
        common::assert_same_tensors(&kept.join(f), &out.join(f));
    }
    // The resumed run appended its epoch to the metrics: steps 0..6, then 3..6 again.
    let text = std::fs::read_to_string(&resumed.metrics).unwrap();
    let steps: Vec<u64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(steps, [0, 1, 2, 3, 4, 5, 3, 4, 5]);

    // Another world size is refused, naming the setting.
    let mut cfg = ringdet_train::Config::load(&config).unwrap();
    cfg.apply_overrides(&["epoch=2".to_string()]).unwrap();
    let recipe = ringdet_train::TrainRecipe::from_config(&cfg).unwrap();
    let arch = ringdet_detect::arch::Arch::new(recipe.model.clone()).unwrap();
    let last = Checkpoint::new(&out, "model_final")
        .unwrap()
        .load(&arch)
        .unwrap();
    assert!(last.ema.is_some(), "the EMA was not saved");
    assert_eq!((last.state.epoch, last.state.global_step), (2, 6));
    let two = ringdet_train::checkpoint::Fingerprint::new(&recipe, 2);
    let err = ringdet_train::checkpoint::resume(out.join("0"), &arch, "tiny", &two)
        .unwrap_err()
        .to_string();
    assert!(err.contains("world_size: checkpoint 1, now 2"), "{err}");
}

#[test]
fn eval_during_training_writes_rows_and_best_model() {
    let dir = scratch("eval");
    let config = setup(&dir);
    let out = dir.join("output/tiny");
    let mut opts = options(&config, &["epoch=2", "snapshot_epoch=1"]);
    opts.eval = true;
    opts.classwise = true;
    let summary = train_with(&opts, &Replicas::single()).unwrap();
    let text = std::fs::read_to_string(&summary.metrics).unwrap();
    let evals: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["kind"] == "eval")
        .collect();
    assert_eq!(evals.len(), 2, "{text}");
    for (e, row) in evals.iter().enumerate() {
        assert_eq!(row["epoch"], e);
        let stats = row["stats"].as_array().unwrap();
        assert_eq!(stats.len(), 12, "{row}");
        assert!(
            stats.iter().all(|s| s.as_f64().unwrap().is_finite()),
            "{row}"
        );
        assert!(row["seconds"].as_f64().unwrap() >= 0.0);
    }
    let best = Checkpoint::new(&out, "best_model").unwrap();
    assert!(best.is_committed());
    let arch = ringdet_detect::arch::Arch::new(
        ringdet_detect::arch::ModelConfig::new(0.125, 0.33).with_classes(7),
    )
    .unwrap();
    let state = best.load(&arch).unwrap().state;
    let aps: Vec<f64> = evals
        .iter()
        .map(|r| r["stats"][0].as_f64().unwrap())
        .collect();
    let best_ap = aps.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    assert_eq!(state.best_ap, Some(best_ap));
    let best_epoch = aps.iter().position(|&a| a == best_ap).unwrap() as u64;
    assert_eq!(state.best_epoch, Some(best_epoch));
    // model_final carries the record too, so a resumed run keeps it.
    let final_state = Checkpoint::new(&out, "model_final")
        .unwrap()
        .load(&arch)
        .unwrap()
        .state;
    assert_eq!(final_state.best_ap, Some(best_ap));
}

/// The trainer's device path (`DeviceState` with the host backend standing in for a GPU:
/// gradients, optimizer moments and EMA in the device state, the host copy refreshed before
/// checkpoints and evaluation) against the host path: the same checkpoints bit for bit, at the
/// snapshot and at the end, with EMA and evaluation on.
#[test]
fn the_device_path_on_the_host_backend_ends_bit_identical_to_the_host_path() {
    let dir = scratch("device-path");
    let config = setup(&dir);
    let mut outs = Vec::new();
    for (tag, extra) in [
        ("host", None),
        ("device", Some("debug_device_state_on_host=true")),
    ] {
        let save = dir.join(tag);
        let mut overrides = vec![
            "epoch=2".to_string(),
            "snapshot_epoch=1".to_string(),
            format!("save_dir={}", save.display()),
        ];
        overrides.extend(extra.map(String::from));
        let refs: Vec<&str> = overrides.iter().map(String::as_str).collect();
        let mut opts = options(&config, &refs);
        opts.eval = true;
        let summary = train_with(&opts, &Replicas::single()).unwrap();
        assert_eq!(summary.steps, 6);
        outs.push(save.join("tiny"));
    }
    for name in ["0", "model_final"] {
        for kind in ["", ".raw", ".opt"] {
            let f = format!("{name}{kind}.safetensors");
            common::assert_same_tensors(&outs[0].join(&f), &outs[1].join(&f));
        }
    }
    let evals = |out: &Path| -> Vec<String> {
        std::fs::read_to_string(out.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .filter(|l| l.contains("\"eval\""))
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["stats"].to_string()
            })
            .collect()
    };
    let (a, b) = (evals(&outs[0]), evals(&outs[1]));
    assert!(!a.is_empty() && a == b, "evaluations differ: {a:?} / {b:?}");
}
