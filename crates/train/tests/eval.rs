//! `ringdet_train::eval` on a tiny model (depth 0.33, width 0.25, 64×64) and a 6-image synthetic
//! shapes val set: one process, and two ranks (threads joined by the collective on loopback)
//! giving the same detections and stats; the config's eval settings; errors naming what is wrong.

use std::path::{Path, PathBuf};

use ringdet_coco::synth::{ShapesConfig, write_shapes_dataset};
use ringdet_collective::Communicator;
use ringdet_detect::arch::Arch;
use ringdet_detect::init::{SeededNormal, initialize};
use ringdet_detect::state::ModelState;
use ringdet_train::eval::{EvalDataset, EvalError, EvalSettings, evaluate, shard};
use ringdet_train::{Config, TrainRecipe};

const CONFIG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/ppyoloe_tiny_eval.yml"
);

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("train-eval")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn config(overrides: &[String]) -> Config {
    let mut c = Config::load(Path::new(CONFIG)).unwrap();
    c.apply_overrides(overrides).unwrap();
    c
}

/// The shapes dataset in `dir/shapes`, the merged config pointing at it, and a seeded model.
fn setup(dir: &Path) -> (Config, Arch, ModelState) {
    let data = dir.join("shapes");
    write_shapes_dataset(&ShapesConfig {
        out: data.clone(),
        train: 1,
        val: 6,
        seed: 5,
        size: 64,
        quality: 90,
        min_object: ringdet_coco::synth::DEFAULT_MIN_OBJECT,
    })
    .unwrap();
    let cfg = config(&[
        format!("EvalDataset.dataset_dir={}", data.display()),
        "PPYOLOEHead.nms.score_threshold=0.001".into(),
    ]);
    let recipe = TrainRecipe::from_config(&cfg).unwrap();
    let arch = Arch::new(recipe.model).unwrap();
    let mut state = ModelState::zeros(&arch).unwrap();
    initialize(&mut state, &mut SeededNormal::new(3));
    (cfg, arch, state)
}

#[test]
fn shards_are_disjoint_and_cover_the_set() {
    for len in 0..12 {
        for world in 1..5 {
            let mut all: Vec<usize> = (0..world).flat_map(|r| shard(len, r, world)).collect();
            all.sort_unstable();
            assert_eq!(all, (0..len).collect::<Vec<_>>(), "len {len} world {world}");
        }
    }
}

#[test]
fn settings_come_from_the_eval_reader() {
    let cfg = config(&[]);
    let recipe = TrainRecipe::from_config(&cfg).unwrap();
    let s = EvalSettings::from_config(&cfg, &recipe).unwrap();
    assert_eq!((s.batch_size, s.size), (2, (64, 64)));
    assert_eq!(s.interp, ringdet_coco::transform::Interp::Cubic);
    assert_eq!(s.nms.score_threshold, 0.01);
    assert_eq!(s.nms.keep_top_k, 300);

    let bad = config(&[
        "EvalReader.sample_transforms=[{Decode: {}}, {Resize: {target_size: [64, 64], keep_ratio: true}}]"
            .into(),
    ]);
    let recipe = TrainRecipe::from_config(&bad).unwrap();
    let e = EvalSettings::from_config(&bad, &recipe)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("EvalReader.sample_transforms.1.Resize.keep_ratio"),
        "{e}"
    );

    let bad = config(&["EvalReader.sample_transforms=[{Decode: {}}, {Mosaic: {}}]".into()]);
    let recipe = TrainRecipe::from_config(&bad).unwrap();
    let e = EvalSettings::from_config(&bad, &recipe)
        .unwrap_err()
        .to_string();
    assert!(e.contains("Mosaic"), "{e}");
}

#[test]
fn a_missing_dataset_is_named() {
    let cfg = config(&["EvalDataset.dataset_dir=/nonexistent/shapes".into()]);
    let e = EvalDataset::from_config(&cfg).unwrap_err().to_string();
    assert!(
        e.contains("/nonexistent/shapes/annotations/instances_val2017.json"),
        "{e}"
    );
}

#[test]
fn two_ranks_match_one_process() {
    let dir = scratch("two-ranks");
    let (cfg, arch, state) = setup(&dir);
    let recipe = TrainRecipe::from_config(&cfg).unwrap();
    let settings = EvalSettings::from_config(&cfg, &recipe).unwrap();
    let dataset = EvalDataset::from_config(&cfg).unwrap();
    assert_eq!(dataset.records.len(), 6);

    let alone = evaluate(&arch, &state, &dataset, &settings, None).unwrap();
    assert_eq!((alone.rank, alone.world_size, alone.images), (0, 1, 6));
    assert!(!alone.detections.is_empty());
    assert!(
        alone
            .detections
            .windows(2)
            .all(|w| w[0].image_id <= w[1].image_id)
    );
    assert!(alone.summary().unwrap().contains("maxDets=100"));
    let table = alone.classwise_table().unwrap();
    assert!(table.contains("circle"), "{table}");

    let endpoints = [
        "127.0.0.1:24980".parse().unwrap(),
        "127.0.0.1:24981".parse().unwrap(),
    ];
    let reports: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|rank| {
                let (arch, state, dataset, settings) = (&arch, &state, &dataset, &settings);
                s.spawn(move || {
                    let comm = Communicator::connect(
                        rank,
                        &endpoints,
                        b"eval-test",
                        ringdet_collective::Config::default(),
                    )
                    .unwrap();
                    // Rank 1 goes through the trainer's asynchronous front end.
                    if rank == 0 {
                        let mut comm = comm;
                        evaluate(arch, state, dataset, settings, Some(&mut comm)).unwrap()
                    } else {
                        let mut comm = comm.into_async();
                        evaluate(arch, state, dataset, settings, Some(&mut comm)).unwrap()
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(reports[0].local_images + reports[1].local_images, 6);
    assert_eq!(reports[0].detections, alone.detections);
    assert!(reports[1].evaluation.is_none());
    for r in &reports {
        assert_eq!(r.stats.map(f64::to_bits), alone.stats.map(f64::to_bits));
    }
}

#[test]
fn fewer_classes_than_categories_are_refused_more_are_scored_on_the_categories() {
    let dir = scratch("classes");
    let (cfg, _, _) = setup(&dir);
    let dataset = EvalDataset::from_config(&cfg).unwrap();
    // 80 classes (the COCO config) on the 7 shapes categories: classes 0..6 are scored.
    let recipe = TrainRecipe::from_config(&config(&["num_classes=80".into()])).unwrap();
    let arch = Arch::new(recipe.model.clone()).unwrap();
    let state = ModelState::zeros(&arch).unwrap();
    let settings = EvalSettings::from_config(&cfg, &recipe).unwrap();
    let report = evaluate(&arch, &state, &dataset, &settings, None).unwrap();
    assert!(!report.detections.is_empty());
    assert!(
        report
            .detections
            .iter()
            .all(|d| (1..=7).contains(&d.category_id))
    );
    let recipe = TrainRecipe::from_config(&config(&["num_classes=3".into()])).unwrap();
    let arch = Arch::new(recipe.model.clone()).unwrap();
    let state = ModelState::zeros(&arch).unwrap();
    let settings = EvalSettings::from_config(&cfg, &recipe).unwrap();
    let e = evaluate(&arch, &state, &dataset, &settings, None).unwrap_err();
    assert!(
        matches!(
            e,
            EvalError::Classes {
                num_classes: 3,
                categories: 7,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("instances_val2017.json"), "{e}");
}

#[test]
fn a_missing_or_truncated_eval_image_stops_naming_it() {
    let dir = scratch("bad-image");
    let (cfg, arch, state) = setup(&dir);
    let recipe = TrainRecipe::from_config(&cfg).unwrap();
    let settings = EvalSettings::from_config(&cfg, &recipe).unwrap();
    let dataset = EvalDataset::from_config(&cfg).unwrap();
    let (gone, cut) = (
        dataset.records[1].image_path.clone(),
        dataset.records[4].image_path.clone(),
    );
    std::fs::remove_file(&gone).unwrap();
    let e = evaluate(&arch, &state, &dataset, &settings, None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&gone.display().to_string()) && e.contains("cannot read image"),
        "{e}"
    );
    std::fs::copy(&cut, &gone).unwrap();
    let bytes = std::fs::read(&cut).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = evaluate(&arch, &state, &dataset, &settings, None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&cut.display().to_string()) && e.contains("truncated"),
        "{e}"
    );
}
