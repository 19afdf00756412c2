//! Bad input gets one clear message naming the flag, file or key, without a backtrace (even with
//! RUST_BACKTRACE=1), each cause once, and before any work or rank starts.

mod common;

use common::{BIN, scratch};
use std::process::{Command, Output};

/// Runs ringdet with RUST_BACKTRACE=1, as a developer's shell often has it.
fn ringdet(args: &[&str]) -> Output {
    ringdet_in(&std::env::temp_dir(), args)
}

/// [`ringdet`] in `dir` (where a launcher would write its logs), with no GPU made visible.
fn ringdet_in(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .current_dir(dir)
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .env_remove("CUDA_VISIBLE_DEVICES")
        .env_remove("RINGDET_SKIP_GPU_CHECK")
        .output()
        .unwrap()
}

/// Asserts a failure, without a backtrace, and returns stderr.
fn fails(run: &Output) -> String {
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(!run.status.success(), "{stderr}");
    assert!(
        !stderr.contains("acktrace") && !stderr.contains("panicked"),
        "{stderr}"
    );
    stderr
}

#[test]
fn perf_detect_names_the_input_size_and_refuses_zero_iterations() {
    let stderr = fails(&ringdet(&["perf-detect", "--input", "33"]));
    assert!(
        stderr.contains("--input 33: PP-YOLOE needs a positive multiple of 32"),
        "{stderr}"
    );
    let stderr = fails(&ringdet(&["perf-detect", "--eval-input", "100"]));
    assert!(stderr.contains("--eval-input 100"), "{stderr}");
    let stderr = fails(&ringdet(&["perf-detect", "--iters", "0"]));
    assert!(stderr.contains("--iters 0"), "{stderr}");
}

#[test]
fn a_directory_as_weights_is_called_a_directory() {
    let dir = scratch("input-weights");
    let stderr = fails(&ringdet(&[
        "perf-detect",
        "--weights",
        dir.to_str().unwrap(),
    ]));
    assert!(
        stderr.contains(&format!("--weights {}: is a directory", dir.display())),
        "{stderr}"
    );
}

#[test]
fn a_missing_base_names_both_files_and_each_cause_once() {
    let dir = scratch("input-base");
    let top = dir.join("top.yml");
    std::fs::write(&top, "_BASE_: [gone.yml]\n").unwrap();
    let stderr = fails(&ringdet(&["config", "-c", top.to_str().unwrap()]));
    assert!(
        stderr.contains(&format!(
            "{}: _BASE_ gone.yml: cannot read {}",
            top.display(),
            dir.join("gone.yml").display()
        )),
        "{stderr}"
    );
    assert_eq!(stderr.matches("No such file").count(), 1, "{stderr}");
    // A library error that formats its cause and also chains it: printed once.
    let gt = dir.join("gt.json");
    let stderr = fails(&ringdet(&["coco-eval", gt.to_str().unwrap(), "dt.json"]));
    assert_eq!(stderr.matches("No such file").count(), 1, "{stderr}");
    assert!(stderr.contains("gt.json"), "{stderr}");
}

#[test]
fn unknown_override_keys_warn_with_the_closest_key() {
    let dir = scratch("input-override");
    let cfg = dir.join("c.yml");
    std::fs::write(&cfg, "TrainReader: {batch_size: 2}\nepoch: 3\n").unwrap();
    let run = ringdet(&[
        "config",
        "-c",
        cfg.to_str().unwrap(),
        "-o",
        "TrainReader.batchsize=3",
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "warning: -o TrainReader.batchsize=3: unknown key TrainReader.batchsize; did you mean TrainReader.batch_size?"
        ),
        "{stderr}"
    );
    let run = ringdet(&["config", "-c", cfg.to_str().unwrap(), "-o", "epoch=4"]);
    assert!(String::from_utf8_lossy(&run.stderr).is_empty());
}

#[test]
fn gpus_that_cuda_does_not_show_are_refused() {
    let count = ringdet_kernels::runtime::probe::device_count().unwrap_or(0);
    let gpus = format!("{},{}", count, count + 7);
    let dir = scratch("input-gpus");
    let run = ringdet_in(&dir, &["launch", "--gpus", &gpus, "--", "true"]);
    let stderr = fails(&run);
    assert!(
        stderr.contains(&format!(
            "--gpus {gpus}: {}",
            if count == 0 {
                "no CUDA device is visible"
            } else {
                ""
            }
        )) && stderr.contains(&format!("missing: GPU {count}, GPU {}.", count + 7)),
        "{stderr}"
    );
}

#[test]
fn a_bad_worker_flag_is_reported_once_before_any_rank_starts() {
    let dir = scratch("input-worker-flag");
    let run = ringdet_in(
        &dir,
        &[
            "launch",
            "--nproc_per_node",
            "2",
            "--log_dir",
            "logs",
            "allreduce-perf",
            "--bogus",
        ],
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = fails(&run);
    let all = format!("{stdout}{stderr}");
    assert_eq!(
        all.matches("unexpected argument '--bogus'").count(),
        1,
        "{all}"
    );
    assert!(all.contains("ringdet allreduce-perf"), "{all}");
    assert!(!dir.join("logs").exists(), "ranks were started");
}

#[test]
fn a_workers_user_error_is_shown_without_backtraces() {
    let dir = scratch("input-worker-error");
    let launch = ["launch", "--nproc_per_node", "2", "--start_port", "24700"];
    let run = ringdet_in(
        &dir,
        &[&launch[..], &["allreduce-perf", "--iters", "0"]].concat(),
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = fails(&run);
    assert!(!stdout.contains("acktrace"), "{stdout}");
    assert!(
        stderr.contains("| ringdet: error: need -f >= 2, 0 < -b <= -e and -n >= 1"),
        "{stderr}"
    );
}
