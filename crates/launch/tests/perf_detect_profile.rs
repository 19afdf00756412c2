//! `ringdet perf-detect --profile --json` prints one JSON object whose per-family rows (plus the
//! unattributed remainder) add up to the timed wall, for the step and for the eval forward; the
//! plain run records no profile. Sizes are the smallest the model takes, so it runs in seconds.

mod common;

use common::BIN;
use serde_json::Value;
use std::process::Command;

fn perf_detect(extra: &[&str]) -> Value {
    let mut args = vec![
        "perf-detect",
        "--batch",
        "1",
        "--input",
        "64",
        "--eval-input",
        "64",
        "--warmup",
        "1",
        "--iters",
        "2",
        "--json",
    ];
    args.extend_from_slice(extra);
    let out = Command::new(BIN)
        .args(&args)
        .env("RAYON_NUM_THREADS", "2")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn check_profile(section: &Value, must_have: &[&str]) {
    let p = &section["profile"];
    assert_eq!(p["iters"], 2, "{p}");
    let wall = p["ms_per_iter"].as_f64().unwrap();
    assert!(wall > 0.0, "{p}");
    let rows = p["families"].as_array().unwrap();
    let keys: Vec<&str> = rows.iter().map(|r| r["family"].as_str().unwrap()).collect();
    for k in must_have {
        assert!(keys.contains(k), "{k} missing from {keys:?}");
    }
    assert_eq!(keys.last(), Some(&"other"), "{keys:?}");
    // Families are exclusive times, so with the remainder they add up to the wall.
    let sum: f64 = rows
        .iter()
        .map(|r| r["ms_per_iter"].as_f64().unwrap())
        .sum();
    assert!(
        (sum - wall).abs() <= 1e-6 * wall.max(1.0),
        "{sum} vs {wall}"
    );
    let pct: f64 = rows.iter().map(|r| r["percent"].as_f64().unwrap()).sum();
    assert!((pct - 100.0).abs() < 1e-3, "{pct}");
    for r in rows {
        assert!(r["ms_per_iter"].as_f64().unwrap() >= 0.0, "{r}");
    }
    let conv = rows.iter().find(|r| r["family"] == "conv_fwd_3x3").unwrap();
    assert!(conv["gflops"].as_f64().unwrap() > 0.0, "{conv}");
    assert_eq!(
        conv["calls_per_iter"].as_f64().unwrap().fract(),
        0.0,
        "{conv}"
    );
}

#[test]
fn profile_json_parses_and_adds_up() {
    let v = perf_detect(&["--profile"]);
    check_profile(
        &v["train"],
        &[
            "conv_fwd_stem",
            "conv_fwd_3x3",
            "conv_fwd_1x1",
            "conv_bwd_data_3x3",
            "conv_bwd_filter_3x3",
            "conv_bwd_filter_stem",
            "bn_stats",
            "bn_forward",
            "bn_backward",
            "activation",
            "concat_upsample_pool",
            "head_gather_scatter",
            "assigner",
            "loss",
            "sgd",
            "alloc",
        ],
    );
    check_profile(
        &v["eval"],
        &[
            "conv_fwd_3x3",
            "bn_forward",
            "activation",
            "head_gather_scatter",
        ],
    );
    let eval_keys: Vec<&str> = v["eval"]["profile"]["families"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["family"].as_str().unwrap())
        .collect();
    for k in ["sgd", "loss", "assigner", "bn_backward"] {
        assert!(!eval_keys.contains(&k), "eval forward recorded {k}");
    }
}

#[test]
fn without_profile_no_profile_is_printed() {
    let v = perf_detect(&[]);
    assert!(v["train"]["median_s"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["train"].get("profile").is_none(), "{v}");
    assert!(v["eval"].get("profile").is_none(), "{v}");
}
