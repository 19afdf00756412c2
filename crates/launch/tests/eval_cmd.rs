//! `ringdet eval` end to end on a tiny model (depth 0.33, width 0.25, 64×64 input) and a 6-image
//! synthetic shapes val set: one process prints 12 stats as one JSON line and writes bbox.json;
//! two ranks under `ringdet launch` give the same stats and the same bbox.json, byte for byte;
//! a bad weights path is an error naming it.

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
        let dir = scratch("eval-fixture");
        let data = dir.join("shapes");
        make_tiny_shapes(&data, 4, 6);
        let state = tiny_model(11);
        let weights = dir.join("init.safetensors");
        ringdet_detect::checkpoint::save(&state, &weights).unwrap();
        (data, weights)
    })
}

/// `-c CONFIG -o weights=... EvalDataset.dataset_dir=... <extra overrides>`.
fn eval_args(weights: &Path, data: &Path) -> Vec<String> {
    vec![
        "eval".into(),
        "-c".into(),
        config().display().to_string(),
        "-o".into(),
        format!("weights={}", weights.display()),
        format!("EvalDataset.dataset_dir={}", data.display()),
        // The initial model scores about 0.01 everywhere: keep those detections.
        "PPYOLOEHead.nms.score_threshold=0.001".into(),
    ]
}

fn run_eval(dir: &Path, args: &[String]) -> Output {
    Command::new(BIN)
        .current_dir(dir)
        .args(args)
        .env_remove("RINGDET_RANK")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// The 12 numbers of a `{"stats":[...]}` line.
fn stats_of(line: &str) -> Vec<f64> {
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    let stats: Vec<f64> = v["stats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(stats.len(), 12, "{line}");
    stats
}

#[test]
fn one_process_prints_one_json_line_and_writes_bbox_json() {
    let (data, weights) = fixture();
    let dir = scratch("eval-one");
    let mut args = eval_args(weights, data);
    args.extend(["--json", "--classwise", "--output_eval", "out"].map(String::from));
    let out = run_eval(&dir, &args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "stdout: {stdout}");
    assert!(lines[0].starts_with("{\"stats\":["), "{stdout}");
    let stats = stats_of(lines[0]);
    assert!(stats.iter().all(|s| (-1.0..=1.0).contains(s)), "{stats:?}");
    // The summary, the per-class table and the timing go to stderr.
    assert!(
        stderr.contains("Average Precision  (AP) @[ IoU=0.50:0.95"),
        "{stderr}"
    );
    assert!(stderr.contains("Per-category of bbox AP"), "{stderr}");
    assert!(stderr.contains("eval: 6 images on 1 rank(s)"), "{stderr}");
    assert!(stderr.contains("images/s"), "{stderr}");
    let bbox = std::fs::read_to_string(dir.join("out/bbox.json")).unwrap();
    let rows = ringdet_coco::json::detections_from_slice(bbox.as_bytes(), "bbox.json").unwrap();
    assert!(!rows.is_empty(), "no detections at all");
    assert!(rows.windows(2).all(|w| w[0].image_id <= w[1].image_id));
    assert!(rows.iter().all(|d| (1..=7).contains(&d.category_id)));
}

#[test]
fn two_ranks_give_the_stats_and_detections_of_one_process() {
    let (data, weights) = fixture();
    let dir = scratch("eval-two");
    let mut one = eval_args(weights, data);
    one.extend(["--json", "--output_eval", "one"].map(String::from));
    let single = run_eval(&dir, &one);
    assert!(
        single.status.success(),
        "{}",
        String::from_utf8_lossy(&single.stderr)
    );
    let single_line = String::from_utf8(single.stdout).unwrap().trim().to_string();

    let mut two: Vec<String> = [
        "launch",
        "--nproc_per_node",
        "2",
        "--start_port",
        "24960",
        "--log_dir",
        "log",
    ]
    .map(String::from)
    .to_vec();
    two.extend(eval_args(weights, data));
    two.extend(["--json", "--output_eval", "two"].map(String::from));
    let launched = Command::new(BIN)
        .current_dir(&dir)
        .args(&two)
        .env_remove("RINGDET_JOB_SECRET")
        .env_remove("FLAGS_START_PORT")
        .env_remove("POD_IP")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let log0 = std::fs::read_to_string(dir.join("log/workerlog.0")).unwrap_or_default();
    let log1 = std::fs::read_to_string(dir.join("log/workerlog.1")).unwrap_or_default();
    assert!(
        launched.status.success(),
        "{}\nrank 0:\n{log0}\nrank 1:\n{log1}",
        String::from_utf8_lossy(&launched.stderr)
    );
    let json: Vec<&str> = log0
        .lines()
        .filter(|l| l.starts_with("{\"stats\""))
        .collect();
    assert_eq!(json.len(), 1, "rank 0:\n{log0}");
    assert!(log0.contains("eval: 6 images on 2 rank(s)"), "{log0}");
    assert!(
        !log1.contains("{\"stats\""),
        "rank 1 printed stats:\n{log1}"
    );
    assert_eq!(json[0], single_line, "2 ranks vs 1 process");
    assert_eq!(stats_of(json[0]), stats_of(&single_line));
    let (a, b) = (
        std::fs::read(dir.join("one/bbox.json")).unwrap(),
        std::fs::read(dir.join("two/bbox.json")).unwrap(),
    );
    assert!(a.len() > 10, "no detections");
    assert!(a == b, "bbox.json differs between 1 process and 2 ranks");
    assert!(!dir.join("log/two").exists());
}

#[test]
fn bad_weights_are_errors_naming_them() {
    let (data, _) = fixture();
    let dir = scratch("eval-bad-weights");
    let missing = dir.join("nowhere/model.safetensors");
    let out = run_eval(&dir, &eval_args(&missing, data));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains(&missing.display().to_string()), "{stderr}");
    assert!(stderr.contains("does not exist"), "{stderr}");
    assert!(out.stdout.is_empty());

    let out = run_eval(&dir, &eval_args(&dir, data));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("{} (-o weights=", dir.display())),
        "{stderr}"
    );
    assert!(stderr.contains("is a directory"), "{stderr}");

    // `weights` may leave out the extension, as PaddleDetection's leaves out `.pdparams`.
    let (_, good) = fixture();
    let stem = good.with_extension("");
    let out = run_eval(&dir, &eval_args(&stem, data));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A file that is not safetensors: the loader's error names it.
    let junk = dir.join("junk.safetensors");
    std::fs::write(&junk, b"not a safetensors file").unwrap();
    let out = run_eval(&dir, &eval_args(&junk, data));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains(&junk.display().to_string()), "{stderr}");
}
