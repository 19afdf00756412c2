//! `ringdet train` on a tiny shapes set: one rank against two ranks through
//! `ringdet launch ... tools/train.py` with the same global batch and SyncBN forced (same losses;
//! gradient buckets overlapped with backward, `--check_replicas 1` quiet), and a NaN
//! injected on the last rank stopping the job with the step, the rank and the loss term; two
//! ranks killed mid-epoch and resumed from their epoch-0 checkpoint end bit for bit where the
//! straight run ends, with `--eval` on both ranks' shards.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{BIN, scratch};
use ringdet_detect::arch::{Arch, ModelConfig};
use ringdet_detect::checkpoint;
use ringdet_detect::init::{SeededNormal, initialize};
use ringdet_detect::state::ModelState;

/// A dataset, a config and starting weights in `dir`.
fn setup(dir: &Path) -> (PathBuf, PathBuf) {
    let data = dir.join("shapes");
    let made = Command::new(BIN)
        .args(["make-dataset", "shapes", "--train", "16", "--val", "2"])
        .args(["--size", "64", "--seed", "1", "--out"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", text(&made));
    let demo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../configs/demo/ppyoloe_shapes_demo.yml")
        .canonicalize()
        .unwrap();
    let config = dir.join("tiny.yml");
    std::fs::write(
        &config,
        format!(
            "_BASE_: ['{}']\nwidth_mult: 0.125\nlog_iter: 1\nepoch: 1\n\
             LearningRate: {{base_lr: 0.004}}\n\
             TrainDataset: {{dataset_dir: '{}'}}\n\
             TrainReader:\n  batch_size: 4\n  batch_transforms:\n    \
             - BatchRandomResize: {{target_size: [64], random_size: True, random_interp: True, keep_ratio: False}}\n    \
             - NormalizeImage: {{mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], is_scale: True}}\n    \
             - Permute: {{}}\n    - PadGT: {{}}\n",
            demo.display(),
            data.display()
        ),
    )
    .unwrap();
    // PaddleDetection's initialisation, with the regression biases peaked at 2 grid units so
    // that the first predicted boxes overlap the shapes and the loss normaliser (the soft-target
    // sum averaged over ranks) is above its clip at 1: only then is the rank-averaged loss of
    // two ranks the one-rank loss of the same global batch.
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

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn rows(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `ringdet launch` of two ranks from `port` on (each test its own: they run in parallel).
fn launch(dir: &Path, port: u16, args: &[&str]) -> Output {
    Command::new(BIN)
        .current_dir(dir)
        .args(["launch", "--nproc_per_node", "2", "--log_dir", "log"])
        .args(["--start_port", &port.to_string()])
        .args(args)
        .env_remove("RINGDET_JOB_SECRET")
        .env_remove("FLAGS_START_PORT")
        .env_remove("POD_IP")
        .output()
        .unwrap()
}

#[test]
fn two_ranks_match_one_rank_with_the_same_global_batch() {
    let dir = scratch("train-one-vs-two");
    let (config, weights) = setup(&dir);
    let pretrain = format!("pretrain_weights={}", weights.display());
    let cfg = config.to_str().unwrap();
    let one = Command::new(BIN)
        .current_dir(&dir)
        .args(["train", "-c", cfg, "-o", "save_dir=one", &pretrain])
        .output()
        .unwrap();
    assert!(one.status.success(), "{}", text(&one));
    let stdout = String::from_utf8_lossy(&one.stdout);
    assert!(
        stdout.contains("Epoch: [0] [0/3] learning_rate: 0.000000 loss: "),
        "{stdout}"
    );
    let two = launch(
        &dir,
        25110,
        &[
            "tools/train.py",
            "-c",
            cfg,
            "--check_replicas",
            "1",
            "-o",
            "save_dir=two",
            "TrainReader.batch_size=2",
            "sync_bn_on_cpu=true",
            "bucket_mb=0.25",
            "first_bucket_mb=0.05",
            &pretrain,
        ],
    );
    assert!(two.status.success(), "{}", text(&two));
    let shown = text(&two);
    assert!(
        shown.contains("global batch 4 (2 ranks x 2): using the config's base_lr 0.004")
            && shown.contains("BN statistics are summed across the 2 ranks")
            && shown.contains("queued as backward finishes them"),
        "{shown}"
    );
    let (a, b) = (
        rows(&dir.join("one/tiny/metrics.jsonl")),
        rows(&dir.join("two/tiny/metrics.jsonl")),
    );
    assert_eq!((a.len(), b.len()), (3, 3), "one: {a:?}\ntwo: {b:?}");
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x["step"], y["step"]);
        assert_eq!(x["lr"], y["lr"]);
        for term in ["loss", "loss_cls", "loss_iou", "loss_dfl"] {
            let (p, q) = (x[term].as_f64().unwrap(), y[term].as_f64().unwrap());
            assert!(p.is_finite() && p > 0.0, "{term} {p}");
            assert!(
                (p - q).abs() <= 1e-4 * p.abs(),
                "step {}: {term} one rank {p}, two ranks {q}",
                x["step"]
            );
        }
    }
}

#[test]
fn nan_on_one_rank_stops_the_job_naming_step_rank_and_term() {
    let dir = scratch("train-nan");
    let (config, _) = setup(&dir);
    let out = launch(
        &dir,
        25120,
        &[
            "tools/train.py",
            "-c",
            config.to_str().unwrap(),
            "-o",
            "TrainReader.batch_size=2",
            "debug_nan_step=1",
        ],
    );
    assert!(!out.status.success(), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains("step 1 (epoch 0, iter 1): rank 1: loss_cls is NaN"),
        "{all}"
    );
    let rows = rows(&dir.join("output/tiny/metrics.jsonl"));
    assert_eq!(rows.len(), 1, "{rows:?}");
}

#[test]
fn cpu_ranks_warn_about_use_gpu_and_forced_nccl_is_refused_on_every_rank() {
    // The demo config inherits runtime.yml's `use_gpu: true`; without a GPU these workers train
    // on the CPU and each says why once. `comm_backend=nccl` cannot work on CPU ranks (nor on
    // two ranks sharing GPU 0, where a GPU is visible): every rank stops before the first step.
    let dir = scratch("train-forced-nccl");
    let (config, _) = setup(&dir);
    let out = launch(
        &dir,
        25160,
        &[
            "tools/train.py",
            "-c",
            config.to_str().unwrap(),
            "-o",
            "TrainReader.batch_size=2",
            "comm_backend=nccl",
        ],
    );
    assert!(!out.status.success(), "{}", text(&out));
    let all = text(&out);
    assert!(all.contains("comm_backend: nccl cannot be used: "), "{all}");
    if Path::new("/proc/driver/nvidia/gpus").exists() {
        return;
    }
    assert!(
        all.contains(
            "comm_backend: nccl cannot be used: ranks 0, 1 train on the CPU (NCCL needs a CUDA \
             device on every rank: use_gpu: true and --gpus); use -o comm_backend=ring (or auto)"
        ),
        "{all}"
    );
    // The first rank to stop ends the job, so the other's log may stop short: the warning and
    // the device line are looked for in both logs together.
    let logs: String = [0, 1]
        .map(|r| {
            std::fs::read_to_string(dir.join(format!("log/workerlog.{r}"))).unwrap_or_default()
        })
        .concat();
    assert!(
        logs.contains("ringdet: warning: use_gpu: true but no CUDA device is visible (")
            && logs.contains("; training on the CPU (set use_gpu: false to silence this)")
            && logs.contains("device=cpu"),
        "{logs}\n---\n{all}"
    );
    assert!(!dir.join("output/tiny/metrics.jsonl").exists());
}

#[test]
fn check_replicas_stops_the_job_naming_the_rank_that_differs() {
    let dir = scratch("train-check-replicas");
    let (config, _) = setup(&dir);
    let out = launch(
        &dir,
        25190,
        &[
            "tools/train.py",
            "-c",
            config.to_str().unwrap(),
            "--check_replicas",
            "2",
            "-o",
            "TrainReader.batch_size=2",
            "debug_perturb_step=0",
        ],
    );
    assert!(!out.status.success(), "{}", text(&out));
    let all = text(&out);
    // Perturbed after step 0, caught by the check after step 1 (every 2 steps). The demo
    // config's AdamW decays decoupled from the gradient, so its moments stay equal.
    assert!(
        all.contains(
            "step 1: the replicas differ after the update: rank 1 (parameters) differs from rank 0"
        ),
        "{all}"
    );
}

/// Asserts every tensor of `a` and `b` has the same dtype, shape and bytes.
fn assert_same_tensors(a: &Path, b: &Path) {
    use ringdet_tensor::safetensors::SafeTensors;
    let (ta, tb) = (SafeTensors::open(a).unwrap(), SafeTensors::open(b).unwrap());
    let mut names: Vec<&str> = ta.names().collect();
    names.sort_unstable();
    let mut other: Vec<&str> = tb.names().collect();
    other.sort_unstable();
    assert_eq!(names, other, "{} and {}", a.display(), b.display());
    assert!(!names.is_empty());
    for name in names {
        assert_eq!(ta.info(name).unwrap(), tb.info(name).unwrap(), "{name}");
        assert!(
            ta.bytes(name).unwrap() == tb.bytes(name).unwrap(),
            "tensor {name} differs between {} and {}",
            a.display(),
            b.display()
        );
    }
}

#[test]
fn two_ranks_resume_bit_for_bit_and_evaluate_with_ema() {
    let dir = scratch("train-resume-eval");
    let (config, _) = setup(&dir);
    let cfg = config.to_str().unwrap();
    let args = [
        "tools/train.py",
        "-c",
        cfg,
        "--eval",
        "-o",
        "epoch=2",
        "snapshot_epoch=1",
        "EvalDataset.dataset_dir=shapes",
        "use_ema=true",
        "TrainReader.batch_size=2",
    ];
    let straight = launch(&dir, 25130, &args);
    let all = text(&straight);
    assert!(straight.status.success(), "{all}");
    assert!(all.contains("Average Precision"), "{all}");
    let out = dir.join("output/tiny");
    let evals: Vec<_> = rows(&out.join("metrics.jsonl"))
        .into_iter()
        .filter(|r| r["kind"] == "eval")
        .collect();
    assert_eq!(evals.len(), 2, "{evals:?}");
    assert!(out.join("best_model.state.json").is_file());
    let kept = dir.join("straight");
    std::fs::create_dir_all(&kept).unwrap();
    for f in ["model_final.safetensors", "model_final.raw.safetensors"] {
        std::fs::copy(out.join(f), kept.join(f)).unwrap();
    }
    // The same run with its last rank killed in the middle of epoch 1 (at its second step):
    // every rank stops, the launcher names the dead rank, checkpoint 0 stays and `-r` from it
    // ends where the straight run ended, bit for bit.
    let epoch1: Vec<u64> = rows(&out.join("metrics.jsonl"))
        .into_iter()
        .filter(|r| r["kind"] == "train" && r["epoch"] == 1)
        .map(|r| r["step"].as_u64().unwrap())
        .collect();
    assert!(epoch1.len() >= 2, "{epoch1:?}");
    let abort = format!("debug_abort_step={}", epoch1[1]);
    let mut killed_args = args.to_vec();
    killed_args.extend(["save_dir=killed", abort.as_str()]);
    let killed = launch(&dir, 25150, &killed_args);
    let all = text(&killed);
    assert!(!killed.status.success(), "{all}");
    assert!(all.contains("rank 1"), "{all}");
    let out = dir.join("killed/tiny");
    assert!(out.join("0.state.json").is_file(), "{all}");
    assert!(!out.join("model_final.state.json").exists(), "{all}");
    // `-o` takes every following word: -r goes before it.
    let mut resume_args = args.to_vec();
    resume_args.splice(3..3, ["-r", "killed/tiny/0"]);
    resume_args.push("save_dir=killed");
    let resumed = launch(&dir, 25140, &resume_args);
    let all = text(&resumed);
    assert!(resumed.status.success(), "{all}");
    assert!(all.contains("continuing at epoch 1"), "{all}");
    for f in ["model_final.safetensors", "model_final.raw.safetensors"] {
        assert_same_tensors(&kept.join(f), &out.join(f));
    }
}

#[test]
fn missing_checkpoint_is_named_and_pretrain_urls_are_explained() {
    let dir = scratch("train-flags");
    let (config, _) = setup(&dir);
    let cfg = config.to_str().unwrap();
    let resume = Command::new(BIN)
        .current_dir(&dir)
        .args(["train", "-c", cfg, "-r", "output/x/model_final"])
        .output()
        .unwrap();
    assert!(!resume.status.success());
    let all = text(&resume);
    assert!(
        all.contains(
            "model_final.state.json: incomplete checkpoint: missing: no checkpoint of this name"
        ),
        "{all}"
    );
    let url = Command::new(BIN)
        .current_dir(&dir)
        .args([
            "train",
            "-c",
            cfg,
            "-o",
            "pretrain_weights=https://x.invalid/w.pdparams",
        ])
        .output()
        .unwrap();
    assert!(!url.status.success());
    let all = text(&url);
    assert!(
        all.contains("pretrain_weights: https://x.invalid/w.pdparams is a URL"),
        "{all}"
    );
    assert!(all.contains("-o pretrain_weights="), "{all}");
}
