//! `ringdet infer` and `ringdet export` end to end on a tiny model (depth 0.33, width 0.25, 64×64
//! input, seeded initial weights) and a 6-image synthetic shapes val set: one picture per image
//! and a bbox.json that `ringdet coco-eval` accepts; the exported folder runs with `--model_dir`;
//! `tools/infer.py` and `tools/export_model.py` under `ringdet launch` map to the subcommands;
//! bad inputs are errors naming the file.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The test config (crates/train/tests/data), absolute.
fn config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../train/tests/data/ppyoloe_tiny_eval.yml")
}

/// The shapes dataset and initial weights, made once for all tests of this file.
fn fixture() -> &'static (PathBuf, PathBuf) {
    static FIXTURE: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = scratch("infer-fixture");
        let data = dir.join("shapes");
        make_tiny_shapes(&data, 2, 6);
        let state = tiny_model(11);
        let weights = dir.join("init.safetensors");
        ringdet_detect::checkpoint::save(&state, &weights).unwrap();
        (data, weights)
    })
}

/// `-c CONFIG -o weights=... TestDataset.dataset_dir=...` (labels and image ids from the val
/// annotations) and a score threshold that keeps the initial model's ~0.01 scores.
fn model_args(weights: &Path, data: &Path) -> Vec<String> {
    vec![
        "-c".into(),
        config().display().to_string(),
        "-o".into(),
        format!("weights={}", weights.display()),
        format!("TestDataset.dataset_dir={}", data.display()),
        "PPYOLOEHead.nms.score_threshold=0.001".into(),
    ]
}

fn run(dir: &Path, args: &[String]) -> Output {
    Command::new(BIN)
        .current_dir(dir)
        .args(args)
        .env_remove("RINGDET_RANK")
        .env_remove("PADDLE_TRAINER_ID")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned() + &stderr
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn infer_writes_pictures_and_a_bbox_json_coco_eval_accepts() {
    let (data, weights) = fixture();
    let dir = scratch("infer-one");
    let mut args = vec!["infer".to_string()];
    args.extend(model_args(weights, data));
    args.extend(
        [
            "--save_results",
            "--draw_threshold",
            "0.005",
            "--output_dir",
            "out",
        ]
        .map(String::from),
    );
    args.push("--infer_dir".into());
    args.push(data.join("val2017").display().to_string());
    let text = ok(&run(&dir, &args));
    assert!(text.contains("infer: 6 images in"), "{text}");
    assert!(text.contains("images/s"), "{text}");
    let inputs = files_in(&data.join("val2017"));
    let mut expected = inputs.clone();
    expected.push("bbox.json".into());
    expected.sort();
    assert_eq!(files_in(&dir.join("out")), expected);

    let gt = data.join("annotations/instances_val2017.json");
    let eval = run(
        &dir,
        &[
            "coco-eval".into(),
            gt.display().to_string(),
            "out/bbox.json".into(),
            "--json".into(),
        ],
    );
    let text = ok(&eval);
    assert!(text.contains("\"stats\""), "{text}");

    // One image, default output folder `output`.
    let mut args = vec!["infer".to_string()];
    args.extend(model_args(weights, data));
    args.push("--infer_img".into());
    args.push(data.join("val2017").join(&inputs[0]).display().to_string());
    ok(&run(&dir, &args));
    assert_eq!(files_in(&dir.join("output")), vec![inputs[0].clone()]);
}

#[test]
fn exported_model_runs_without_the_config() {
    let (data, weights) = fixture();
    let dir = scratch("infer-export");
    let mut args = vec!["export".to_string()];
    args.extend(model_args(weights, data));
    let text = ok(&run(&dir, &args));
    assert!(text.contains("RepVGG blocks fused"), "{text}");
    let model = dir.join("output_inference/ppyoloe_tiny_eval");
    assert_eq!(
        files_in(&model),
        vec!["infer_cfg.yml".to_string(), "model.safetensors".to_string()]
    );
    let args: Vec<String> = [
        "infer",
        "--model_dir",
        "output_inference/ppyoloe_tiny_eval",
        "--output_dir",
        "fused",
        "--save_results",
        "--infer_dir",
    ]
    .map(String::from)
    .into_iter()
    .chain([data.join("val2017").display().to_string()])
    .collect();
    let mut with_ids = args.clone();
    with_ids.push("--anno_path".into());
    with_ids.push(
        data.join("annotations/instances_val2017.json")
            .display()
            .to_string(),
    );
    let text = ok(&run(&dir, &with_ids));
    assert!(text.contains("infer: 6 images in"), "{text}");
    assert_eq!(files_in(&dir.join("fused")).len(), 7);
    // The same detections as the unfused model from the config, up to float32 rounding.
    let mut unfused = vec!["infer".to_string()];
    unfused.extend(model_args(weights, data));
    unfused.extend(
        [
            "--save_results",
            "--visualize",
            "False",
            "--output_dir",
            "unfused",
            "--infer_dir",
        ]
        .map(String::from),
    );
    unfused.push(data.join("val2017").display().to_string());
    ok(&run(&dir, &unfused));
    let read = |p: &str| ringdet_coco::load_detections(dir.join(p)).unwrap();
    assert_eq!(
        files_in(&dir.join("unfused")),
        vec!["bbox.json".to_string()]
    );
    let (a, b) = (read("unfused/bbox.json"), read("fused/bbox.json"));
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!((x.image_id, x.category_id), (y.image_id, y.category_id));
        assert!((x.score - y.score).abs() <= 1e-4, "{x:?} vs {y:?}");
        for k in 0..4 {
            assert!((x.bbox[k] - y.bbox[k]).abs() <= 1e-2, "{x:?} vs {y:?}");
        }
    }
}

#[test]
fn paddle_tools_under_launch_map_to_infer_and_export() {
    let (data, weights) = fixture();
    let dir = scratch("infer-launch");
    let launch = |tool: &str, nproc: &str, port: &str, extra: &[String]| -> String {
        let mut args: Vec<String> = [
            "launch",
            "--nproc_per_node",
            nproc,
            "--start_port",
            port,
            "--log_dir",
            "log",
            tool,
        ]
        .map(String::from)
        .to_vec();
        args.extend(model_args(weights, data));
        args.extend(extra.iter().cloned());
        let out = Command::new(BIN)
            .current_dir(&dir)
            .args(&args)
            .env_remove("RINGDET_JOB_SECRET")
            .env_remove("FLAGS_START_PORT")
            .env_remove("POD_IP")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let log0 = std::fs::read_to_string(dir.join("log/workerlog.0")).unwrap_or_default();
        let log1 = std::fs::read_to_string(dir.join("log/workerlog.1")).unwrap_or_default();
        assert!(
            out.status.success(),
            "{}\nrank 0:\n{log0}\nrank 1:\n{log1}",
            String::from_utf8_lossy(&out.stderr)
        );
        log0 + &log1
    };
    // Two ranks split the images: 3 pictures each, one results file per rank.
    let logs = launch(
        "tools/infer.py",
        "2",
        "24850",
        &[
            "--save_results".into(),
            "--infer_dir".into(),
            data.join("val2017").display().to_string(),
        ],
    );
    assert_eq!(logs.matches("infer: 3 images in").count(), 2, "{logs}");
    let written = files_in(&dir.join("output"));
    assert_eq!(written.len(), 8, "{written:?}");
    assert!(written.contains(&"bbox.rank0.json".to_string()));
    assert!(written.contains(&"bbox.rank1.json".to_string()));

    launch("tools/export_model.py", "1", "24860", &[]);
    assert!(
        dir.join("output_inference/ppyoloe_tiny_eval/infer_cfg.yml")
            .is_file()
    );
}

#[test]
fn bad_inputs_are_errors_naming_the_file() {
    let (data, weights) = fixture();
    let dir = scratch("infer-bad");
    let infer = |weights: &Path, input: &[&str]| -> String {
        let mut args = vec!["infer".to_string()];
        args.extend(model_args(weights, data));
        args.extend(input.iter().map(|s| s.to_string()));
        let out = run(&dir, &args);
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let e = infer(weights, &["--infer_img", "missing.jpg"]);
    assert!(e.contains("missing.jpg"), "{e}");
    std::fs::write(dir.join("bad.png"), b"\x89PNG\r\n\x1a\nbroken").unwrap();
    let e = infer(weights, &["--infer_img", "bad.png"]);
    assert!(e.contains("bad.png") && e.contains("decode"), "{e}");
    let e = infer(&dir.join("none.safetensors"), &["--infer_img", "bad.png"]);
    assert!(e.contains("none.safetensors"), "{e}");
    let out = run(
        &dir,
        &["infer", "--model_dir", "nowhere", "--infer_img", "bad.png"].map(String::from),
    );
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && e.contains("nowhere"), "{e}");
}
