//! The config reader on PaddleDetection's own files and on the cases they do not cover.

use super::{Config, ConfigError, OptimizerSpec, TrainRecipe};
use ringdet_collective::device::CommBackendChoice;
use ringdet_detect::arch::ModelConfig;
use ringdet_detect::loss::LossWeights;
use ringdet_detect::nms::NmsParams;
use std::path::{Path, PathBuf};

const CONFIGS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs");

fn ppyoloe(name: &str) -> PathBuf {
    Path::new(CONFIGS).join("ppyoloe").join(name)
}

#[test]
fn ppyoloe_s_300e_reads_as_the_spec_says() {
    let c = Config::load(&ppyoloe("ppyoloe_crn_s_300e_coco.yml")).unwrap();
    let r = TrainRecipe::from_config(&c).unwrap();
    assert_eq!(r.epochs, 300);
    assert_eq!(r.base_lr, 0.01);
    assert_eq!(r.cosine_max_epochs, 360.0);
    assert_eq!((r.warmup_epochs, r.warmup_start_factor), (Some(5.0), 0.0));
    assert_eq!(
        r.optimizer,
        OptimizerSpec::Momentum {
            momentum: 0.9,
            l2_decay: 0.0005
        }
    );
    assert_eq!(r.clip_grad_by_norm, None);
    assert_eq!((r.batch_size, r.eval_batch_size), (8, 2));
    assert_eq!(
        r.train_sizes,
        (0..15).map(|i| 320 + 32 * i).collect::<Vec<_>>()
    );
    assert_eq!(r.eval_size, (640, 640));
    assert_eq!(r.model, ModelConfig::s());
    let t = r.train;
    assert_eq!(
        (t.static_assigner_epoch, t.atss_topk, t.tal_topk),
        (100, 9, 13)
    );
    assert_eq!((t.tal_alpha, t.tal_beta), (1.0, 6.0));
    assert_eq!(
        t.weights,
        LossWeights {
            class: 1.0,
            iou: 2.5,
            dfl: 0.5
        }
    );
    // The PP-YOLOE config's NMS is the detector's default.
    assert_eq!(r.nms, NmsParams::default());
    assert_eq!(r.ema_decay, Some(0.9998));
    // 300e: 5 warmup epochs, a cosine over 360.
    let lr = r.lr_schedule(100).unwrap();
    assert_eq!(
        (lr.base, lr.warmup_iters, lr.max_iters),
        (0.01, 500, 36_000)
    );
    assert_eq!((r.snapshot_epoch, r.log_iter), (10, 100));
    // runtime.yml's `use_gpu: true`; no comm_backend: auto.
    assert!(r.use_gpu);
    assert_eq!(r.comm_backend, CommBackendChoice::Auto);
    // Provenance: the file that set each value.
    assert!(
        c.origin("LearningRate.base_lr")
            .ends_with("_base_/optimizer_300e.yml")
    );
    assert!(
        c.origin("depth_mult")
            .ends_with("ppyoloe_crn_s_300e_coco.yml")
    );
    assert!(c.origin("epoch").ends_with("_base_/optimizer_300e.yml"));
    assert!(
        c.origin("num_classes")
            .ends_with("datasets/coco_detection.yml")
    );
}

#[test]
fn every_size_and_the_other_recipes_load() {
    for (name, depth, width) in [
        ("ppyoloe_crn_m_300e_coco.yml", 0.67, 0.75),
        ("ppyoloe_crn_l_300e_coco.yml", 1.0, 1.0),
        ("ppyoloe_crn_x_300e_coco.yml", 1.33, 1.25),
        ("ppyoloe_crn_s_400e_coco.yml", 0.33, 0.50),
        ("ppyoloe_plus_crn_s_80e_coco.yml", 0.33, 0.50),
    ] {
        let c = Config::load(&ppyoloe(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let r = TrainRecipe::from_config(&c).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            (r.model.depth_mult, r.model.width_mult),
            (depth, width),
            "{name}"
        );
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    p
}

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ringdet-cfg-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn tags_merges_overrides_and_errors() {
    let d = tempdir("misc");
    write(
        &d,
        "base/a.yml",
        "x: {a: 1, b: [1, 2]}\nLearningRate:\n  schedulers:\n  - !CosineDecay\n    max_epochs: 12\n  - !LinearWarmup\n    start_factor: 0.1\n    steps: 7\n",
    );
    let top = write(
        &d,
        "top.yml",
        "_BASE_: ./base/a.yml\nx: {b: [3]}\nk: &k 5\nj: *k\n",
    );
    let mut c = Config::load(&top).unwrap();
    assert_eq!(c.get("x.a").unwrap().as_u64(), Some(1));
    assert_eq!(c.get("x.b").unwrap().as_sequence().unwrap().len(), 1);
    assert_eq!(c.usize("j").unwrap(), 5);
    let s = c
        .get("LearningRate.schedulers")
        .unwrap()
        .as_sequence()
        .unwrap();
    assert_eq!(s[0].get("name").unwrap().as_str(), Some("CosineDecay"));
    assert_eq!(s[1].get("steps").unwrap().as_u64(), Some(7));
    c.apply_overrides(&["x.a=hello", "new.deep.key=[1,2]", "j=false"])
        .unwrap();
    assert_eq!(c.string("x.a").unwrap(), "hello");
    assert_eq!(c.origin("x.a"), "-o x.a=hello");
    assert_eq!(
        c.get("new.deep.key").unwrap().as_sequence().unwrap().len(),
        2
    );
    assert_eq!(c.origin("new.deep.key"), "-o new.deep.key=[1,2]");
    let e = c.usize("j").unwrap_err().to_string();
    assert_eq!(
        e,
        "j (set in -o j=false): expected a non-negative integer, found false"
    );
    let e = c.f64("x.b").unwrap_err().to_string();
    assert!(
        e.contains("x.b (set in ") && e.contains("top.yml") && e.contains("found a list"),
        "{e}"
    );
    assert!(matches!(c.f64("nope"), Err(ConfigError::Missing { .. })));
    let e = c.apply_overrides(&["x.a.b=1"]).unwrap_err().to_string();
    assert_eq!(e, "-o x.a.b=1: x.a is a string, not a map");
    assert!(
        c.apply_overrides(&["novalue"])
            .unwrap_err()
            .to_string()
            .contains("expected key=value")
    );
}

#[test]
fn bad_files_are_named() {
    let d = tempdir("bad");
    let cyc = write(&d, "a.yml", "_BASE_: [b.yml]\n");
    write(&d, "b.yml", "_BASE_: [a.yml]\n");
    let e = Config::load(&cyc).unwrap_err().to_string();
    assert!(
        e.contains("cycle") && e.contains("a.yml -> ") && e.contains("b.yml"),
        "{e}"
    );
    let missing = write(&d, "m.yml", "_BASE_: [gone.yml]\n");
    let e = Config::load(&missing).unwrap_err().to_string();
    assert!(e.contains("gone.yml"), "{e}");
    let broken = write(&d, "y.yml", "a: [1, 2\n");
    let e = Config::load(&broken).unwrap_err().to_string();
    assert!(e.contains("y.yml: invalid YAML"), "{e}");
    let list = write(&d, "l.yml", "- 1\n- 2\n");
    let e = Config::load(&list).unwrap_err().to_string();
    assert!(e.contains("top level must be a map, found a list"), "{e}");
    let opt = write(
        &d,
        "o.yml",
        "epoch: 3\nLearningRate: {base_lr: 0.1, schedulers: [{name: CosineDecay, max_epochs: 3}]}\nOptimizerBuilder: {optimizer: {type: Adam, momentum: 0.9}}\nTrainReader: {batch_size: 2}\nnum_classes: 3\n",
    );
    let e = TrainRecipe::from_config(&Config::load(&opt).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("OptimizerBuilder.optimizer.type") && e.contains("o.yml") && e.contains("Adam"),
        "{e}"
    );
}

#[test]
fn merge_keys_resolve_as_pyyaml_does() {
    let d = tempdir("merge");
    let f = write(
        &d,
        "m.yml",
        "a: &a {x: 1, y: 1}\nb: &b {x: 5, z: 3}\none: {<<: *a, y: 2}\nlist: {<<: [*a, *b], w: 0}\nc: &c {<<: *a, y: 7}\nchain: {<<: *c, z: 4}\nLearningRate:\n  schedulers:\n  - !CosineDecay\n    <<: *a\n    x: 9\n",
    );
    let c = Config::load(&f).unwrap();
    let u = |k: &str| c.get(k).and_then(|v| v.as_u64());
    // Own keys win over merged ones.
    assert_eq!((u("one.x"), u("one.y")), (Some(1), Some(2)));
    // In a merge list the earlier map wins: x from a, z from b.
    assert_eq!(
        (u("list.x"), u("list.y"), u("list.z"), u("list.w")),
        (Some(1), Some(1), Some(3), Some(0))
    );
    // A merged map that merges in turn is flattened, and no `<<` key is left anywhere.
    assert_eq!(
        (u("chain.x"), u("chain.y"), u("chain.z")),
        (Some(1), Some(7), Some(4))
    );
    assert!(!c.to_yaml().contains("<<"), "{}", c.to_yaml());
    // Merged keys come first, as in PyYAML's dicts.
    let one: Vec<_> = c.get("one").unwrap().as_mapping().unwrap().keys().collect();
    assert_eq!(one, ["x", "y"]);
    let s = c
        .get("LearningRate.schedulers")
        .unwrap()
        .as_sequence()
        .unwrap();
    assert_eq!(s[0].get("x").unwrap().as_u64(), Some(9));
    assert_eq!(s[0].get("y").unwrap().as_u64(), Some(1));
    let bad = write(&d, "bad.yml", "m: {<<: 3}\n");
    let e = Config::load(&bad).unwrap_err().to_string();
    assert!(e.contains("bad.yml") && e.contains("`<<`"), "{e}");
}

#[test]
fn python_tags_are_refused_with_the_file_and_line() {
    let d = tempdir("tags");
    for (name, text, tag) in [
        (
            "obj.yml",
            "a: 1\nx: !!python/object:foo.Bar {a: 1}\n",
            "!!python/object:foo.Bar",
        ),
        (
            "tuple.yml",
            "x: [1, !!python/tuple [1, 2]]\n",
            "!!python/tuple",
        ),
        (
            "uri.yml",
            "x: !<tag:yaml.org,2002:python/name:os.system> 1\n",
            "!<tag:yaml.org,2002:python/name:os.system>",
        ),
    ] {
        let f = write(&d, name, text);
        let e = Config::load(&f).unwrap_err().to_string();
        assert!(e.contains(name) && e.contains(tag), "{e}");
    }
    let e = Config::load(&write(
        &d,
        "l2.yml",
        "a: 1\nx: !!python/object:foo.Bar {}\n",
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("l2.yml:2:"), "{e}");
    // Core tags, PaddleDetection's own tags, comments and quoted text pass.
    let ok = write(
        &d,
        "ok.yml",
        "a: !!str 5\nb: '!!python/object'\nc: 1 # !!python/object\nd: [!CosineDecay {max_epochs: 3}]\ne: x!!y\n",
    );
    let c = Config::load(&ok).unwrap();
    assert_eq!(c.string("a").unwrap(), "5");
    assert_eq!(c.string("b").unwrap(), "!!python/object");
}

#[test]
fn a_missing_base_names_the_including_file_and_the_resolved_path() {
    let d = tempdir("base");
    let top = write(&d, "sub/top.yml", "_BASE_: [../bases/gone.yml]\n");
    let e = Config::load(&top).unwrap_err().to_string();
    let resolved = d.join("bases/gone.yml");
    assert!(
        e.contains("sub/top.yml: _BASE_ ../bases/gone.yml")
            && e.contains(&format!(
                "cannot read {}",
                d.join("sub/../bases/gone.yml").display()
            )),
        "{e} (resolved {})",
        resolved.display()
    );
    // The message carries the system's error once; it is not chained again as a source.
    assert!(std::error::Error::source(&Config::load(&top).unwrap_err()).is_none());
}

#[test]
fn unknown_override_keys_get_the_closest_known_key() {
    let c = Config::load(&ppyoloe("ppyoloe_crn_s_300e_coco.yml")).unwrap();
    assert_eq!(
        c.closest_key("TrainReader.batchsize").as_deref(),
        Some("TrainReader.batch_size")
    );
    assert_eq!(c.closest_key("epochs").as_deref(), Some("epoch"));
    assert_eq!(c.closest_key("completely.different.thing"), None);
    assert_eq!(c.closest_key("epoch"), None);
}

#[test]
fn impossible_values_are_refused_naming_key_and_origin() {
    let recipe_error = |arg: &str| {
        let mut c = Config::load(&ppyoloe("ppyoloe_crn_s_300e_coco.yml")).unwrap();
        c.apply_overrides(&[arg]).unwrap();
        TrainRecipe::from_config(&c).unwrap_err().to_string()
    };
    for (arg, key) in [
        ("TrainReader.batch_size=0", "TrainReader.batch_size"),
        ("EvalReader.batch_size=0", "EvalReader.batch_size"),
        ("LearningRate.base_lr=.nan", "LearningRate.base_lr"),
        ("LearningRate.base_lr=-0.01", "LearningRate.base_lr"),
        ("num_classes=0", "num_classes"),
        ("epoch=0", "epoch"),
        (
            "OptimizerBuilder.optimizer.momentum=1.5",
            "OptimizerBuilder.optimizer.momentum",
        ),
        (
            "OptimizerBuilder.regularizer.factor=-1",
            "OptimizerBuilder.regularizer.factor",
        ),
        ("depth_mult=0", "depth_mult"),
        ("ema_decay=1.0", "ema_decay"),
        ("snapshot_epoch=0", "snapshot_epoch"),
        ("log_iter=0", "log_iter"),
        ("PPYOLOEHead.assigner.topk=0", "PPYOLOEHead.assigner.topk"),
        (
            "PPYOLOEHead.nms.nms_threshold=2",
            "PPYOLOEHead.nms.nms_threshold",
        ),
        ("PPYOLOEHead.nms.keep_top_k=0", "PPYOLOEHead.nms.keep_top_k"),
        (
            "PPYOLOEHead.loss_weight.iou=-1",
            "PPYOLOEHead.loss_weight.iou",
        ),
    ] {
        let e = recipe_error(arg);
        assert!(
            e.starts_with(&format!("{key} (set in -o {arg}): ")),
            "{arg}: {e}"
        );
    }
    // List items are named by the list key and the file that set it.
    for (arg, key, msg) in [
        (
            "LearningRate.schedulers=[{name: CosineDecay, max_epochs: 0}]",
            "LearningRate.schedulers",
            "max_epochs must be above 0",
        ),
        (
            "EvalReader.sample_transforms=[{Resize: {target_size: [33, 33]}}]",
            "Resize.target_size",
            "multiple of 32",
        ),
    ] {
        let e = recipe_error(arg);
        assert!(e.contains(key) && e.contains(msg), "{e}");
    }
}

#[test]
fn train_sample_transforms_follow_the_list() {
    use ringdet_coco::transform::TrainSampleTransforms;
    let recipe = |args: &[&str]| {
        let mut c = Config::load(&ppyoloe("ppyoloe_crn_s_300e_coco.yml")).unwrap();
        c.apply_overrides(args).unwrap();
        TrainRecipe::from_config(&c)
    };
    // PP-YOLOE's own list is PaddleDetection's defaults (with its fill value).
    let t = recipe(&[]).unwrap().sample_transforms;
    assert_eq!(t, TrainSampleTransforms::default());
    // A list with Decode alone switches every augmentation off.
    let t = recipe(&["TrainReader.sample_transforms=[{Decode: {}}]"])
        .unwrap()
        .sample_transforms;
    assert_eq!(t, super::no_augmentation());
    // Left-out transforms are off, named ones take their parameters.
    let t = recipe(&[
        "TrainReader.sample_transforms=[{Decode: {}}, {RandomCrop: {}}, {RandomFlip: {prob: 0.25}}]",
    ])
    .unwrap()
    .sample_transforms;
    assert_eq!(t.expand.prob, 1.0);
    assert_eq!(t.distort, super::no_augmentation().distort);
    assert_eq!(t.crop, TrainSampleTransforms::default().crop);
    assert_eq!(t.flip_prob.0, 0.25);
    // What this trainer does not implement is refused, named.
    for (arg, msg) in [
        ("[{Decode: {}}, {Mosaic: {}}]", "Mosaic is not supported"),
        (
            "[{RandomFlip: {}}, {RandomCrop: {}}]",
            "RandomCrop comes after",
        ),
        ("[{RandomFlip: {prob: 2}}]", "must lie in [0, 1]"),
        ("[{RandomExpand: {ratio: 0.5}}]", "must be at least 1"),
        (
            "[{RandomCrop: {is_mask_crop: true}}]",
            "only false is supported",
        ),
        (
            "[{RandomDistort: {hue: [1, 2]}}]",
            "expected a list of 3 numbers",
        ),
        ("[{RandomFlip: {probability: 1}}]", "unknown parameter"),
    ] {
        let e = recipe(&[&format!("TrainReader.sample_transforms={arg}")])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("TrainReader.sample_transforms.") && e.contains(msg),
            "{arg}: {e}"
        );
    }
}

#[test]
fn adamw_and_global_norm_clipping_read_as_paddle_takes_them() {
    let recipe = |args: &[&str]| {
        let mut c = Config::load(&ppyoloe("ppyoloe_crn_s_300e_coco.yml")).unwrap();
        c.apply_overrides(args).unwrap();
        TrainRecipe::from_config(&c)
    };
    // A Momentum base's `momentum` would reach AdamW's constructor in PaddleDetection too.
    let e = recipe(&["OptimizerBuilder.optimizer.type=AdamW"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("OptimizerBuilder.optimizer.momentum"), "{e}");
    assert!(e.contains("AdamW takes no `momentum`"), "{e}");
    let e = recipe(&["OptimizerBuilder.optimizer.type=Lamb"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("Momentum and AdamW are supported"), "{e}");

    let mut c = Config::load(&ppyoloe("ppyoloe_crn_s_300e_coco.yml")).unwrap();
    c.apply_overrides(&[
        "OptimizerBuilder.optimizer={type: AdamW, beta2: 0.99}",
        "OptimizerBuilder.clip_grad_by_norm=35",
    ])
    .unwrap();
    let r = TrainRecipe::from_config(&c).unwrap();
    assert_eq!(
        r.optimizer,
        OptimizerSpec::AdamW {
            beta1: 0.9,
            beta2: 0.99,
            epsilon: 1e-8,
            weight_decay: 0.01
        }
    );
    assert_eq!(r.clip_grad_by_norm, Some(35.0));
    let e = recipe(&["OptimizerBuilder.clip_grad_by_value=1"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("OptimizerBuilder.clip_grad_by_value"), "{e}");
    let e = recipe(&["OptimizerBuilder.clip_grad_by_norm=0"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("OptimizerBuilder.clip_grad_by_norm"), "{e}");
}

#[test]
fn use_gpu_and_comm_backend_read_from_the_config_and_overrides() {
    let recipe = |args: &[&str]| {
        let mut c = Config::load(&ppyoloe("ppyoloe_crn_s_300e_coco.yml")).unwrap();
        c.apply_overrides(args).unwrap();
        TrainRecipe::from_config(&c)
    };
    let r = recipe(&["use_gpu=false", "comm_backend=nccl"]).unwrap();
    assert!(!r.use_gpu);
    assert_eq!(r.comm_backend, CommBackendChoice::Nccl);
    assert_eq!(
        recipe(&["comm_backend=ring"]).unwrap().comm_backend,
        CommBackendChoice::Ring
    );
    assert_eq!(
        recipe(&["comm_backend=auto"]).unwrap().comm_backend,
        CommBackendChoice::Auto
    );
    // Left out (null): use_gpu false, comm_backend auto.
    let r = recipe(&["use_gpu=", "comm_backend="]).unwrap();
    assert!(!r.use_gpu);
    assert_eq!(r.comm_backend, CommBackendChoice::Auto);
    // Anything but a bool, or an unknown backend: the key, where it was set, what it takes.
    for (arg, key, msg) in [
        ("use_gpu=yes please", "use_gpu", "expected true or false"),
        ("use_gpu=1", "use_gpu", "expected true or false"),
        (
            "comm_backend=gloo",
            "comm_backend",
            "expected ring, nccl or auto, found \"gloo\"",
        ),
        ("comm_backend=[ring]", "comm_backend", "expected a string"),
    ] {
        let e = recipe(&[arg]).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{key} (set in -o {arg}): ")) && e.contains(msg),
            "{arg}: {e}"
        );
    }
    // A bad value in a file names the file.
    let dir = tempdir("use_gpu");
    let base = ppyoloe("ppyoloe_crn_s_300e_coco.yml");
    let top = write(
        &dir,
        "top.yml",
        &format!("_BASE_: ['{}']\nuse_gpu: 'on'\n", base.display()),
    );
    let c = Config::load(&top).unwrap();
    let e = TrainRecipe::from_config(&c).unwrap_err().to_string();
    assert!(
        e.starts_with("use_gpu (set in ")
            && e.contains("top.yml")
            && e.contains("expected true or false"),
        "{e}"
    );
}
