//! `-r` from a checkpoint PaddleDetection 2.6.0 itself wrote (`testdata/pdparams/resume/`, made
//! by `testdata/pdparams/make_pdresume.py`): every weight, EMA value and Momentum velocity loads
//! bit for bit, training continues at the checkpoint's epoch, and missing or corrupt companions
//! are refused by name.

mod common;

use std::path::{Path, PathBuf};

use ringdet_detect::arch::{Arch, ModelConfig, TensorKind};
use ringdet_detect::state::ModelState;
use ringdet_detect::train::ema::Ema;
use ringdet_detect::train::optimizer::Optimizer;
use ringdet_detect::train::sgd::Sgd;
use ringdet_tensor::pdparams::PdParams;
use ringdet_train::checkpoint::{CheckpointError, Fingerprint, paddle};
use ringdet_train::trainer::{Replicas, TrainOptions, train_with};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/pdparams/resume/model_final")
}

fn arch() -> Arch {
    Arch::new(ModelConfig::new(0.0625, 0.2).with_classes(7)).unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("pd-resume-tests")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn load(base: &Path, with_ema: bool) -> Result<paddle::PaddleResume, CheckpointError> {
    let arch = arch();
    let layout = ModelState::zeros(&arch).unwrap().layout;
    let sgd = Optimizer::Momentum(Sgd::ppyoloe(&layout));
    let ema = Ema::new(0.9998, layout.num_params(), layout.num_stats());
    paddle::resume(
        base,
        &arch,
        "ppyoloe_shapes_demo",
        &Fingerprint::default(),
        &sgd,
        with_ema.then_some(&ema),
    )
}

fn file(ext: &str) -> PdParams {
    PdParams::open(fixture().with_extension(ext)).unwrap()
}

#[test]
fn every_tensor_and_velocity_loads_bit_for_bit() {
    let base = fixture();
    assert!(paddle::is_paddle_checkpoint(&base));
    let r = load(&base, true).unwrap();
    let snap = &r.snapshot;
    let (pdparams, pdema, pdopt) = (file("pdparams"), file("pdema"), file("pdopt"));
    let layout = &snap.model.layout;
    let ema = snap.ema.as_ref().expect("an EMA");
    let mut velocities = 0;
    for slot in layout.state_dict_slots() {
        let name = &slot.spec.name;
        // Raw weights from .pdema (PaddleDetection exchanges the two on save).
        let raw = pdema.tensor(name).unwrap().to_vec::<f32>().unwrap();
        assert_eq!(bits(snap.model.get(name).unwrap()), bits(&raw), "{name}");
        let averaged = pdparams.tensor(name).unwrap().to_vec::<f32>().unwrap();
        match slot.spec.kind {
            TensorKind::Param => {
                assert_eq!(
                    bits(&ema.params[slot.range()]),
                    bits(&averaged),
                    "EMA {name}"
                );
                // The velocity through the .pdparams name table, read here independently.
                let pname = pdparams
                    .str(&format!("StructuredToParameterName@@/{name}"))
                    .unwrap();
                let v = pdopt
                    .tensor(&format!("{pname}_velocity_0"))
                    .unwrap()
                    .to_vec::<f32>()
                    .unwrap();
                assert_eq!(
                    bits(&velocity(&snap.optimizer)[slot.range()]),
                    bits(&v),
                    "velocity {name}"
                );
                velocities += 1;
            }
            TensorKind::Buffer => {
                assert_eq!(
                    bits(&ema.stats[slot.range()]),
                    bits(&averaged),
                    "EMA {name}"
                );
            }
            TensorKind::Frozen => {}
        }
    }
    let in_file = pdopt.names().filter(|n| n.ends_with("_velocity_0")).count();
    assert_eq!(velocities, in_file);
    assert!(velocity(&snap.optimizer).iter().any(|&v| v != 0.0));
    // Two steps of epoch 0 were trained: continue at epoch 1, step 2, EMA after 2 updates.
    assert_eq!(snap.state.epoch, 1);
    assert_eq!(snap.state.global_step, 2);
    assert_eq!(ema.updates, 2);
    assert_eq!(snap.state.best_ap, None);
    assert!(
        r.report.contains("not restored: sampler position"),
        "{}",
        r.report
    );
    assert!(r.report.contains("epoch 1, step 2"), "{}", r.report);
}

#[test]
fn extension_given_or_not_names_the_same_checkpoint() {
    let a = load(&fixture().with_extension("pdparams"), true).unwrap();
    let b = load(&fixture().with_extension("pdopt"), true).unwrap();
    assert_eq!(
        bits(&a.snapshot.model.params),
        bits(&b.snapshot.model.params)
    );
}

#[test]
fn ema_off_here_uses_the_raw_weights_and_says_so() {
    let r = load(&fixture(), false).unwrap();
    assert!(r.snapshot.ema.is_none());
    assert!(r.report.contains("this config has no EMA"), "{}", r.report);
    let raw = file("pdema");
    let name = "yolo_head.pred_cls.0.weight";
    assert_eq!(
        bits(r.snapshot.model.get(name).unwrap()),
        bits(&raw.tensor(name).unwrap().to_vec::<f32>().unwrap())
    );
}

fn copy_set(dir: &Path, exts: &[&str]) -> PathBuf {
    for ext in exts {
        std::fs::copy(
            fixture().with_extension(ext),
            dir.join(format!("model_final.{ext}")),
        )
        .unwrap();
    }
    dir.join("model_final")
}

#[test]
fn without_pdema_the_ema_starts_afresh_and_says_so() {
    let dir = scratch("no-pdema");
    let base = copy_set(&dir, &["pdparams", "pdopt"]);
    let r = load(&base, true).unwrap();
    let ema = r.snapshot.ema.unwrap();
    assert_eq!(ema.updates, 0);
    assert!(r.report.contains("EMA starts afresh"), "{}", r.report);
    // Raw weights then come from .pdparams.
    let name = "yolo_head.pred_cls.0.weight";
    assert_eq!(
        bits(r.snapshot.model.get(name).unwrap()),
        bits(
            &file("pdparams")
                .tensor(name)
                .unwrap()
                .to_vec::<f32>()
                .unwrap()
        )
    );
}

#[test]
fn missing_pdopt_is_refused_naming_it() {
    let dir = scratch("no-pdopt");
    let base = copy_set(&dir, &["pdparams", "pdema"]);
    let err = load(&base, true).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, CheckpointError::Incomplete { .. }), "{text}");
    assert!(text.contains("model_final.pdopt"), "{text}");
    assert!(text.contains("pretrain_weights"), "{text}");
}

#[test]
fn missing_pdparams_is_refused_naming_it() {
    let dir = scratch("no-pdparams");
    let err = load(&dir.join("model_final.pdparams"), true).unwrap_err();
    assert!(err.to_string().contains("model_final.pdparams"), "{err}");
}

#[test]
fn corrupt_companions_are_named() {
    for ext in ["pdema", "pdopt", "pdparams"] {
        let dir = scratch(&format!("corrupt-{ext}"));
        let base = copy_set(&dir, &["pdparams", "pdema", "pdopt"]);
        let path = dir.join(format!("model_final.{ext}"));
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let err = load(&base, true).unwrap_err().to_string();
        assert!(err.contains(&format!("model_final.{ext}")), "{ext}: {err}");
    }
}

#[test]
fn another_model_is_refused_naming_the_tensor() {
    let arch = Arch::new(ModelConfig::new(0.0625, 0.2).with_classes(3)).unwrap();
    let layout = ModelState::zeros(&arch).unwrap().layout;
    let err = paddle::resume(
        fixture(),
        &arch,
        "x",
        &Fingerprint::default(),
        &Optimizer::Momentum(Sgd::ppyoloe(&layout)),
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("model_final.pdema"), "{err}");
    assert!(err.contains("yolo_head.pred_cls"), "{err}");
}

#[test]
fn trainer_continues_at_the_checkpoint_epoch() {
    let dir = scratch("train");
    let data = common::tiny_dataset(&dir, 2);
    let config = common::tiny_config(&dir, &data, 2, 2, "");
    let opts = TrainOptions {
        config,
        overrides: vec!["width_mult=0.0625".into(), "depth_mult=0.2".into()],
        scale_lr: false,
        resume: Some(fixture()),
        eval: false,
        classwise: false,
        amp: false,
        check_replicas: None,
    };
    let summary = train_with(&opts, &Replicas::single()).unwrap();
    // 14 usable images at batch 4: 3 steps of epoch 1 after the checkpoint's 2.
    assert_eq!(summary.steps, 2 + 3);
    let lines = std::fs::read_to_string(&summary.metrics).unwrap();
    let epochs: Vec<u64> = lines
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["epoch"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert!(
        !epochs.is_empty() && epochs.iter().all(|&e| e == 1),
        "{epochs:?}"
    );
    assert!(dir.join("output/tiny/model_final.state.json").exists());
}

#[test]
fn ringdet_checkpoint_written_for_paddle_resumes_the_same() {
    use ringdet_train::checkpoint::Checkpoint;
    // A ringdet checkpoint: the Paddle fixture resumed, saved our way.
    let dir = scratch("to-paddle");
    let r = load(&fixture(), true).unwrap();
    let ours = Checkpoint::new(&dir, "model_final").unwrap();
    ours.save(r.snapshot.as_ref()).unwrap();
    let names = file("pdparams");
    let out = dir.join("paddle").join("model_final");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let saved = paddle::save_paddle(&ours, &arch(), &names, &out).unwrap();
    assert_eq!(saved.files.len(), 3);
    assert_eq!((saved.epoch, saved.step), (1, 2));
    // Velocities under Paddle's own names, bit for bit those of the original .pdopt.
    let (orig, back) = (
        file("pdopt"),
        PdParams::open(out.with_extension("pdopt")).unwrap(),
    );
    let mut n = 0;
    for (name, t) in orig.tensors() {
        let b = back.tensor(name).unwrap_or_else(|| panic!("{name}"));
        assert_eq!(b.shape(), t.shape(), "{name}");
        assert_eq!(
            bits(&b.to_vec::<f32>().unwrap()),
            bits(&t.to_vec::<f32>().unwrap()),
            "{name}"
        );
        n += 1;
    }
    assert_eq!(n, saved.velocities);
    assert_eq!(back.int("last_epoch"), Some(1));
    assert_eq!(back.int("LR_Scheduler/last_epoch"), Some(2));
    // Raw weights round trip; .pdparams holds the corrected EMA.
    let again = load(&out, true).unwrap();
    assert_eq!(
        bits(&again.snapshot.model.params),
        bits(&r.snapshot.model.params)
    );
    assert_eq!(
        bits(&again.snapshot.model.stats),
        bits(&r.snapshot.model.stats)
    );
    assert_eq!(
        bits(velocity(&again.snapshot.optimizer)),
        bits(velocity(&r.snapshot.optimizer))
    );
    let (p, s) = r
        .snapshot
        .ema
        .as_ref()
        .unwrap()
        .corrected()
        .unwrap()
        .unwrap();
    let e = again.snapshot.ema.unwrap();
    assert_eq!(bits(&e.params), bits(&p));
    assert_eq!(bits(&e.stats), bits(&s));
    assert_eq!(again.snapshot.state.epoch, 1);
}

#[test]
fn a_missing_velocity_is_named() {
    use ringdet_tensor::pdparams::{Extra, save_with};
    let dir = scratch("missing-velocity");
    let base = copy_set(&dir, &["pdparams", "pdema"]);
    let orig = file("pdopt");
    // Drop the velocity of backbone.stem.conv1.conv.weight (`conv2d_0.w_0` in the name table).
    let kept: Vec<(&str, &ringdet_tensor::Tensor)> = orig
        .tensors()
        .iter()
        .filter(|(n, _)| n != "conv2d_0.w_0_velocity_0")
        .map(|(n, t)| (n.as_str(), t))
        .collect();
    assert_eq!(kept.len() + 1, orig.len());
    let extras = [
        (
            "LR_Scheduler",
            Extra::Dict(vec![("last_epoch".into(), Extra::Int(2))]),
        ),
        ("last_epoch", Extra::Int(1)),
    ];
    save_with(dir.join("model_final.pdopt"), &kept, &extras).unwrap();
    let err = load(&base, true).unwrap_err().to_string();
    assert!(err.contains("model_final.pdopt"), "{err}");
    assert!(err.contains("backbone.stem.conv1.conv.weight"), "{err}");
    assert!(err.contains("conv2d_0.w_0_velocity_0"), "{err}");
}

/// The Momentum velocity of a resumed snapshot (a PaddleDetection resume is always Momentum).
fn velocity(opt: &Optimizer) -> &[f32] {
    &opt.as_momentum().expect("Momentum").velocity
}
