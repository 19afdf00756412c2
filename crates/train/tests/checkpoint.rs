//! Checkpoints: bit-exact round trips, crash safety, corruption and fingerprint refusals, and an
//! exact resume of SGD + EMA at the optimizer level.

use std::path::{Path, PathBuf};

use ringdet_detect::arch::{Arch, ModelConfig};
use ringdet_detect::state::ModelState;
use ringdet_detect::train::adamw::AdamW;
use ringdet_detect::train::ema::Ema;
use ringdet_detect::train::lr::LrSchedule;
use ringdet_detect::train::optimizer::Optimizer;
use ringdet_detect::train::sgd::Sgd;
use ringdet_train::checkpoint::{
    self, Checkpoint, CheckpointError, DataState, Fingerprint, SnapshotRef, TrainSnapshot,
    TrainerState,
};
use ringdet_train::{Config, TrainRecipe};

fn tmp(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("ckpt-{}-{name}", std::process::id()))
        .join("ppyoloe_test");
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn arch() -> Arch {
    Arch::new(ModelConfig::new(0.125, 0.33).with_classes(3)).unwrap()
}

/// SplitMix64: deterministic pseudo-random words.
fn words(seed: u64) -> impl FnMut() -> u64 {
    let mut s = seed;
    move || {
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Small finite values in [-1, 1) with every mantissa bit in play.
fn fill(v: &mut [f32], seed: u64) {
    let mut w = words(seed);
    for x in v {
        *x = ((w() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0;
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn fingerprint(world: usize) -> Fingerprint {
    let mut f = Fingerprint::default();
    f.set("world_size", world);
    f.set("batch_size", 8);
    f.set("base_lr", format!("{:?}", 0.01f64));
    f
}

struct Live {
    model: ModelState,
    optimizer: Optimizer,
    ema: Option<Ema>,
    state: TrainerState,
}

impl Live {
    fn view(&self) -> SnapshotRef<'_> {
        SnapshotRef {
            model: &self.model,
            optimizer: &self.optimizer,
            ema: self.ema.as_ref(),
            state: &self.state,
        }
    }
}

/// A model with random weights, some SGD+EMA history and filled-in trainer state.
fn live(with_ema: bool) -> Live {
    live_with(with_ema, false)
}

/// [`live`] with the optimizer chosen: Momentum SGD, or AdamW with non-default constants.
fn live_with(with_ema: bool, adamw: bool) -> Live {
    let mut model = ModelState::zeros(&arch()).unwrap();
    fill(&mut model.params, 1);
    fill(&mut model.stats, 2);
    fill(&mut model.frozen, 3);
    let mut sgd = if adamw {
        let mut a = AdamW::paddle_default(&model.layout);
        (a.beta1, a.beta2, a.epsilon, a.weight_decay) = (0.8, 0.99, 1e-6, 0.05);
        Optimizer::AdamW(a)
    } else {
        Optimizer::Momentum(Sgd::ppyoloe(&model.layout))
    };
    let mut ema = with_ema.then(|| Ema::new(0.9998, model.params.len(), model.stats.len()));
    let mut grads = vec![0.0; model.params.len()];
    for step in 0..3 {
        fill(&mut grads, 10 + step);
        sgd.step(&mut model.params, &grads, 0.01).unwrap();
        if let Some(e) = ema.as_mut() {
            e.update(&model.params, &model.stats).unwrap();
        }
    }
    let state = TrainerState {
        config_name: "ppyoloe_test".into(),
        epoch: 7,
        global_step: 3,
        best_ap: Some(0.1 + 0.2),
        best_epoch: Some(5),
        data: DataState {
            seed: u64::MAX - 5,
            sampler_epoch: 7,
            next_batch: 0,
            rng: vec![1, u64::MAX, 1 << 63],
        },
        fingerprint: fingerprint(8),
    };
    Live {
        model,
        optimizer: sgd,
        ema,
        state,
    }
}

fn assert_same_optimizer(a: &Optimizer, b: &Optimizer) {
    match (a, b) {
        (Optimizer::Momentum(a), Optimizer::Momentum(b)) => {
            assert_eq!(bits(&a.velocity), bits(&b.velocity));
            assert_eq!(a.decay_mask, b.decay_mask);
            assert_eq!(a.momentum.to_bits(), b.momentum.to_bits());
            assert_eq!(a.weight_decay.to_bits(), b.weight_decay.to_bits());
        }
        (Optimizer::AdamW(a), Optimizer::AdamW(b)) => {
            assert_eq!(bits(&a.moment1), bits(&b.moment1));
            assert_eq!(bits(&a.moment2), bits(&b.moment2));
            assert_eq!(a.decay_mask, b.decay_mask);
            let consts =
                |x: &AdamW| [x.beta1, x.beta2, x.epsilon, x.weight_decay].map(f64::to_bits);
            assert_eq!(consts(a), consts(b));
            assert_eq!(a.steps, b.steps);
        }
        (a, b) => panic!("optimizer {} restored as {}", b.name(), a.name()),
    }
}

fn assert_same(a: &TrainSnapshot, b: &Live) {
    assert_eq!(bits(&a.model.params), bits(&b.model.params));
    assert_eq!(bits(&a.model.stats), bits(&b.model.stats));
    assert_eq!(bits(&a.model.frozen), bits(&b.model.frozen));
    assert!(a.model.grads.iter().all(|g| *g == 0.0));
    assert_same_optimizer(&a.optimizer, &b.optimizer);
    match (&a.ema, &b.ema) {
        (Some(x), Some(y)) => {
            assert_eq!(bits(&x.params), bits(&y.params));
            assert_eq!(bits(&x.stats), bits(&y.stats));
            assert_eq!(x.updates, y.updates);
            assert_eq!(x.decay.to_bits(), y.decay.to_bits());
            assert_eq!(x.last_decay.to_bits(), y.last_decay.to_bits());
        }
        (None, None) => {}
        _ => panic!("EMA presence differs"),
    }
    assert_eq!(a.state, b.state);
    assert_eq!(
        a.state.best_ap.map(f64::to_bits),
        b.state.best_ap.map(f64::to_bits)
    );
}

#[test]
fn round_trip_is_bit_identical_and_weights_are_paddles() {
    let dir = tmp("roundtrip");
    let l = live(true);
    let c = checkpoint::save_epoch(&dir, 7, l.view()).unwrap();
    assert_eq!(c.name, "7");
    for p in [c.weights_path(), c.raw_path(), c.opt_path(), c.state_path()] {
        assert!(p.is_file(), "{}", p.display());
    }
    let back = c.load(&arch()).unwrap();
    assert_same(&back, &l);
    // Saving what was loaded gives the same snapshot again.
    let again = checkpoint::save_named(&dir, "copy", back.as_ref()).unwrap();
    assert_same(&again.load(&arch()).unwrap(), &l);

    // <name>.safetensors is the EMA's corrected state dict, loadable by the detector as is;
    // <name>.raw.safetensors the raw one.
    let (ep, es) = l.ema.as_ref().unwrap().corrected().unwrap().unwrap();
    let mut w = ModelState::zeros(&arch()).unwrap();
    ringdet_detect::checkpoint::load(&mut w, c.weights_path()).unwrap();
    assert_eq!(bits(&w.params), bits(&ep));
    assert_eq!(bits(&w.stats), bits(&es));
    assert_eq!(bits(&w.frozen), bits(&l.model.frozen));
    ringdet_detect::checkpoint::load(&mut w, c.raw_path()).unwrap();
    assert_eq!(bits(&w.params), bits(&l.model.params));
    assert_eq!(bits(&w.stats), bits(&l.model.stats));
}

#[test]
fn without_ema_the_weights_are_the_raw_ones() {
    let dir = tmp("noema");
    let l = live(false);
    let c = checkpoint::save_named(&dir, "model_final", l.view()).unwrap();
    let back = c.load(&arch()).unwrap();
    assert!(back.ema.is_none());
    assert_same(&back, &l);
    let mut w = ModelState::zeros(&arch()).unwrap();
    ringdet_detect::checkpoint::load(&mut w, c.weights_path()).unwrap();
    assert_eq!(bits(&w.params), bits(&l.model.params));
    assert_eq!(bits(&w.stats), bits(&l.model.stats));
}

#[test]
fn a_crash_mid_save_leaves_the_previous_checkpoint_and_refuses_the_half_one() {
    let dir = tmp("crash");
    let mut l = live(true);
    checkpoint::save_epoch(&dir, 0, l.view()).unwrap();
    // Epoch 1: the tensors land, the process dies before the .state.json (and leaves temps).
    l.state.epoch = 1;
    let half = checkpoint::save_epoch(&dir, 1, l.view()).unwrap();
    std::fs::remove_file(half.state_path()).unwrap();
    std::fs::write(dir.join(".1.state.json.tmp-4242"), b"{\"format\":").unwrap();
    std::fs::write(dir.join(".0.opt.safetensors.tmp-4242"), b"junk").unwrap();

    let names: Vec<String> = checkpoint::list(&dir)
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["0"]);
    let prev = Checkpoint::new(&dir, "0").unwrap().load(&arch()).unwrap();
    assert_eq!(prev.state.epoch, 7);
    let e = half.load(&arch()).unwrap_err();
    assert!(matches!(e, CheckpointError::Incomplete { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("1.state.json") && msg.contains("never committed"),
        "{msg}"
    );
}

#[test]
fn companions_of_another_save_are_refused_by_name() {
    let dir = tmp("mixed");
    let mut l = live(true);
    let c = checkpoint::save_named(&dir, "best_model", l.view()).unwrap();
    let old_state = std::fs::read(c.state_path()).unwrap();
    let old_opt = std::fs::read(c.opt_path()).unwrap();
    // A second save of the same name completes its tensors, and the old .state.json is put
    // back (a backup restored by hand): the set must not load.
    l.state.global_step = 4;
    c.save(l.view()).unwrap();
    std::fs::write(c.state_path(), &old_state).unwrap();
    let e = c.load(&arch()).unwrap_err();
    assert!(e.to_string().contains("best_model.safetensors"), "{e}");
    // The new .state.json with one companion of the old save, its digest patched to match.
    c.save(l.view()).unwrap();
    let new_state = std::fs::read_to_string(c.state_path()).unwrap();
    std::fs::write(c.opt_path(), &old_opt).unwrap();
    let e = c.load(&arch()).unwrap_err();
    assert!(e.to_string().contains("best_model.opt.safetensors"), "{e}");
    let mut json: serde_json::Value = serde_json::from_str(&new_state).unwrap();
    let files = json["files"].as_array_mut().unwrap();
    let sha: String = {
        use sha2::Digest;
        sha2::Sha256::digest(&old_opt)
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect()
    };
    files[2]["bytes"] = old_opt.len().into();
    files[2]["sha256"] = sha.into();
    std::fs::write(c.state_path(), serde_json::to_vec(&json).unwrap()).unwrap();
    let e = c.load(&arch()).unwrap_err();
    assert!(matches!(e, CheckpointError::Incomplete { .. }), "{e}");
    assert!(
        e.to_string().contains("best_model.opt.safetensors") && e.to_string().contains("step 3"),
        "{e}"
    );
}

#[test]
fn truncated_or_corrupt_files_are_errors_naming_the_file() {
    let dir = tmp("corrupt");
    let l = live(true);
    let c = checkpoint::save_epoch(&dir, 3, l.view()).unwrap();
    let keep = |p: &Path| std::fs::read(p).unwrap();
    let (opt, raw, state) = (
        keep(&c.opt_path()),
        keep(&c.raw_path()),
        keep(&c.state_path()),
    );

    std::fs::write(c.opt_path(), &opt[..opt.len() / 2]).unwrap();
    let e = c.load(&arch()).unwrap_err().to_string();
    assert!(
        e.contains("3.opt.safetensors") && e.contains("truncated"),
        "{e}"
    );
    std::fs::write(c.opt_path(), &opt).unwrap();

    let mut flipped = raw.clone();
    let n = flipped.len();
    flipped[n - 3] ^= 0x40;
    std::fs::write(c.raw_path(), &flipped).unwrap();
    let e = c.load(&arch()).unwrap_err().to_string();
    assert!(
        e.contains("3.raw.safetensors") && e.contains("corrupt"),
        "{e}"
    );
    std::fs::write(c.raw_path(), &raw).unwrap();

    std::fs::write(c.state_path(), &state[..state.len() - 10]).unwrap();
    let e = c.load(&arch()).unwrap_err().to_string();
    assert!(e.contains("3.state.json"), "{e}");
    let text = String::from_utf8(state.clone())
        .unwrap()
        .replace("\"global_step\"", "\"global_stp\"");
    std::fs::write(c.state_path(), text).unwrap();
    let e = c.load(&arch()).unwrap_err().to_string();
    assert!(
        e.contains("3.state.json") && e.contains("global_stp"),
        "{e}"
    );
    std::fs::write(c.state_path(), &state).unwrap();
    c.load(&arch()).unwrap();

    std::fs::remove_file(c.weights_path()).unwrap();
    let e = c.load(&arch()).unwrap_err().to_string();
    assert!(e.contains("3.safetensors") && e.contains("missing"), "{e}");

    // The set of another model: a tensor's shape is named with the file.
    let c = checkpoint::save_epoch(&dir, 4, l.view()).unwrap();
    let other = Arch::new(ModelConfig::new(0.125, 0.33).with_classes(4)).unwrap();
    let e = c.load(&other).unwrap_err().to_string();
    assert!(
        e.contains("4.raw.safetensors") && e.contains("pred_cls"),
        "{e}"
    );
}

#[test]
fn resuming_with_another_setup_is_refused_naming_what_differs() {
    let dir = tmp("fingerprint");
    let l = live(true);
    checkpoint::save_epoch(&dir, 7, l.view()).unwrap();
    let arg = dir.join("7");
    let ok = checkpoint::resume(&arg, &arch(), "ppyoloe_test", &fingerprint(8)).unwrap();
    assert_same(&ok, &l);
    // With an extension, as a PaddleDetection user might type it.
    checkpoint::resume(
        dir.join("7.pdparams"),
        &arch(),
        "ppyoloe_test",
        &fingerprint(8),
    )
    .unwrap();

    let mut now = fingerprint(4);
    now.set("seed", 1);
    let e = checkpoint::resume(&arg, &arch(), "ppyoloe_other", &now).unwrap_err();
    assert!(matches!(e, CheckpointError::Incompatible { .. }), "{e}");
    let msg = e.to_string();
    for part in [
        "7.state.json",
        "world_size: checkpoint 8, now 4",
        "seed: checkpoint (not set), now 1",
        "config_name: checkpoint ppyoloe_test, now ppyoloe_other",
    ] {
        assert!(msg.contains(part), "{part:?} not in {msg}");
    }
    assert!(!msg.contains("batch_size"), "{msg}");
}

#[test]
fn recipe_fingerprints_name_the_recipe_settings() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../configs/ppyoloe/ppyoloe_crn_m_300e_coco.yml");
    let mut config = Config::load(&path).unwrap();
    let a = Fingerprint::new(&TrainRecipe::from_config(&config).unwrap(), 8);
    config
        .apply_overrides(&[
            "epoch=2",
            "TrainReader.batch_size=4",
            "LearningRate.base_lr=0.02",
        ])
        .unwrap();
    let b = Fingerprint::new(&TrainRecipe::from_config(&config).unwrap(), 8);
    let d = b.differences(&a);
    assert_eq!(d.len(), 2, "{d:?}");
    assert!(d[0].starts_with("base_lr: checkpoint 0.02, now "), "{d:?}");
    assert_eq!(d[1], "batch_size: checkpoint 4, now 8");
    let wider = Fingerprint::new(&TrainRecipe::from_config(&config).unwrap(), 16);
    let e = b
        .check(&wider, Path::new("x/1.state.json"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("x/1.state.json") && e.contains("world_size: checkpoint 8, now 16"),
        "{e}"
    );
    b.check(&b.clone(), Path::new("x/1.state.json")).unwrap();
}

#[test]
fn names_paths_and_paddles_snapshot_rule() {
    let c = Checkpoint::from_resume_arg("output/ppyoloe_crn_s_300e_coco/12").unwrap();
    assert_eq!(c.dir, Path::new("output/ppyoloe_crn_s_300e_coco"));
    assert_eq!(c.name, "12");
    assert_eq!(
        c.raw_path(),
        Path::new("output/ppyoloe_crn_s_300e_coco/12.raw.safetensors")
    );
    for arg in [
        "out/best_model.safetensors",
        "out/best_model.state.json",
        "out/best_model.opt.safetensors",
    ] {
        assert_eq!(Checkpoint::from_resume_arg(arg).unwrap().name, "best_model");
    }
    assert_eq!(
        Checkpoint::from_resume_arg("m").unwrap().dir,
        Path::new(".")
    );
    for bad in ["", ".hidden", "a/b", "x.raw", "x.opt"] {
        assert!(Checkpoint::new("out", bad).is_err(), "{bad:?}");
    }
    // 300 epochs, snapshot every 10: 9, 19, …, 289 and model_final.
    let saved: Vec<String> = (0..300)
        .filter_map(|e| checkpoint::snapshot_name(e, 300, 10))
        .collect();
    assert_eq!(saved.len(), 30);
    assert_eq!(saved[0], "9");
    assert_eq!(saved[28], "289");
    assert_eq!(saved[29], "model_final");
    assert_eq!(
        checkpoint::snapshot_name(0, 1, 10).as_deref(),
        Some("model_final")
    );
    assert_eq!(checkpoint::snapshot_name(3, 300, 10), None);
    // list(): numbers ascending, then names; a missing folder lists nothing.
    let dir = tmp("list");
    assert!(checkpoint::list(&dir).unwrap().is_empty());
    let l = live(false);
    for n in ["model_final", "10", "9", "best_model"] {
        checkpoint::save_named(&dir, n, l.view()).unwrap();
    }
    let names: Vec<String> = checkpoint::list(&dir)
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["9", "10", "best_model", "model_final"]);
}

/// K SGD + EMA updates with deterministic pseudo-gradients, BN statistics that move every step
/// and a warmup + cosine LR; checkpointed after k, reloaded and continued, the result equals the
/// straight run bit for bit.
#[test]
fn exact_resume_at_the_optimizer_level() {
    exact_resume_with(false);
}

#[test]
fn exact_resume_with_adamw() {
    exact_resume_with(true);
}

#[test]
fn adamw_round_trip_is_bit_identical() {
    let dir = tmp("adamw-round-trip");
    let l = live_with(true, true);
    let c = checkpoint::save_named(&dir, "model_final", l.view()).unwrap();
    assert_same(&c.load(&arch()).unwrap(), &l);
}

fn exact_resume_with(adamw: bool) {
    const K: u64 = 9;
    let schedule = LrSchedule::new(0.01, 2, 2, 6);
    let step = |l: &mut Live| {
        let s = l.state.global_step;
        fill(&mut l.model.grads, 100 + s);
        let lr = schedule.lr(s as usize);
        l.optimizer
            .step(&mut l.model.params, &l.model.grads, lr)
            .unwrap();
        for (i, v) in l.model.stats.iter_mut().enumerate() {
            *v = 0.9 * *v + 0.1 * ((i as u64 ^ s) % 17) as f32;
        }
        if let Some(e) = l.ema.as_mut() {
            e.update(&l.model.params, &l.model.stats).unwrap();
        }
        l.state.global_step += 1;
        l.state.data.next_batch = l.state.global_step % 2;
        l.state.epoch = l.state.global_step / 2;
        l.state.data.sampler_epoch = l.state.epoch as u32;
    };
    let fresh = || {
        let mut l = live_with(true, adamw);
        l.optimizer = match &l.optimizer {
            Optimizer::Momentum(_) => Optimizer::Momentum(Sgd::ppyoloe(&l.model.layout)),
            Optimizer::AdamW(_) => Optimizer::AdamW(AdamW::paddle_default(&l.model.layout)),
        };
        l.ema = Some(Ema::new(0.9998, l.model.params.len(), l.model.stats.len()));
        l.state.global_step = 0;
        l
    };
    let mut straight = fresh();
    for _ in 0..K {
        step(&mut straight);
    }
    straight.model.grads.fill(0.0);
    for k in [0, 4, 5] {
        let dir = tmp(&format!("resume-{k}"));
        let mut first = fresh();
        for _ in 0..k {
            step(&mut first);
        }
        let c = checkpoint::save_named(&dir, "model_final", first.view()).unwrap();
        drop(first);
        let snap = c.load(&arch()).unwrap();
        let mut resumed = Live {
            model: snap.model,
            optimizer: snap.optimizer,
            ema: snap.ema,
            state: snap.state,
        };
        assert_eq!(resumed.state.global_step, k);
        for _ in k..K {
            step(&mut resumed);
        }
        let ema = resumed.ema.as_ref().unwrap();
        let want = straight.ema.as_ref().unwrap();
        assert_eq!(
            bits(&resumed.model.params),
            bits(&straight.model.params),
            "k={k}"
        );
        assert_eq!(
            bits(&resumed.model.stats),
            bits(&straight.model.stats),
            "k={k}"
        );
        assert_same_optimizer(&resumed.optimizer, &straight.optimizer);
        assert_eq!(bits(&ema.params), bits(&want.params), "k={k}");
        assert_eq!(bits(&ema.stats), bits(&want.stats), "k={k}");
        assert_eq!(ema.updates, want.updates, "k={k}");
        assert_eq!(ema.corrected().unwrap(), want.corrected().unwrap(), "k={k}");
        assert_eq!(resumed.state, straight.state, "k={k}");
    }
}

#[test]
fn buffers_that_disagree_with_the_layout_are_not_saved() {
    let dir = tmp("invalid");
    let mut l = live(true);
    if let Optimizer::Momentum(s) = &mut l.optimizer {
        s.velocity.pop();
    }
    let e = checkpoint::save_epoch(&dir, 0, l.view()).unwrap_err();
    assert!(matches!(e, CheckpointError::Invalid { .. }), "{e}");
    assert!(e.to_string().contains("0.opt.safetensors"), "{e}");
    assert!(checkpoint::list(&dir).unwrap().is_empty());

    // A lone weights file (pretrained or exported) is named as such on -r.
    let l = live(false);
    let c = checkpoint::save_named(&dir, "w", l.view()).unwrap();
    for p in [c.raw_path(), c.opt_path(), c.state_path()] {
        std::fs::remove_file(p).unwrap();
    }
    let e = c.load(&arch()).unwrap_err().to_string();
    assert!(
        e.contains("w.state.json") && e.contains("only weights"),
        "{e}"
    );
}
