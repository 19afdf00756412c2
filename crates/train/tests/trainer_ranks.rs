//! Several ranks as threads of one process, joined by the collective on loopback (OS-assigned
//! ports): gradient buckets averaged while backward runs equal the whole buffer averaged at once;
//! 1, 2 and 4 ranks with the same global batch and SyncBN forced give the same loss curve and
//! the same BN running statistics, with overlap on or off (bit for bit the same weights); `--check_replicas` stays quiet while the
//! replicas agree and stops every rank naming the one perturbed; a rank that fails mid-backward
//! makes the others fail naming it; the device path (on the host backend) ends with the host
//! path's weights bit for bit, with overlap on and off, and the replica check catches a
//! perturbation made in the device state.

#[allow(dead_code)] // the shared tiny dataset has 14 usable images; these tests need 4k
mod common;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use ringdet_coco::Instances;
use ringdet_coco::loader::training_records;
use ringdet_coco::synth::{ShapesConfig, write_shapes_dataset};
use ringdet_collective::{Communicator, Config, ReduceOp};
use ringdet_detect::arch::{Arch, ModelConfig};
use ringdet_detect::checkpoint;
use ringdet_detect::grad_sink::GradSink;
use ringdet_detect::init::{SeededNormal, initialize};
use ringdet_detect::state::ModelState;
use ringdet_tensor::safetensors::SafeTensors;
use ringdet_train::trainer::{
    BucketPlan, GradReducer, Replicas, TrainError, TrainOptions, TrainSummary, train_with,
};

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("trainer-ranks-tests")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `f(rank, replicas)` on `world` threads joined by a collective on loopback.
fn on_ranks<R: Send>(world: usize, f: impl Fn(usize, Replicas) -> R + Sync) -> Vec<R> {
    if world == 1 {
        return vec![f(0, Replicas::single())];
    }
    let listeners: Vec<TcpListener> = (0..world)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let endpoints: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = listeners
            .into_iter()
            .enumerate()
            .map(|(rank, listener)| {
                let (endpoints, f) = (&endpoints, &f);
                s.spawn(move || {
                    let comm = Communicator::from_listener(
                        listener,
                        rank,
                        endpoints,
                        b"trainer-ranks-test",
                        Config::default(),
                    )
                    .unwrap();
                    f(rank, Replicas::collective(comm))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// A deterministic pseudo-random value in (-1, 1) spread over several magnitudes.
fn value(rank: usize, i: usize) -> f32 {
    let mut x = (rank as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (i as u64);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    let unit = (x >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
    unit * [1.0, 1e-3, 37.0][i % 3]
}

#[test]
fn bucketed_average_equals_the_whole_buffer_average() {
    // 40 tensors of uneven sizes; buckets of 2 KiB after a first of 512 B (many buckets, some
    // a single tensor larger than the size); the large buffers go through the ring, the small
    // ones are gathered whole (the collective switches at `small_bytes`).
    let sizes: Vec<usize> = (0..40)
        .map(|i| [7, 300, 1, 2000, 64, 129][i % 6] * (1 + i % 4))
        .collect();
    let ends: Vec<usize> = sizes
        .iter()
        .scan(0, |end, n| {
            *end += n;
            Some(*end)
        })
        .collect();
    let len = *ends.last().unwrap();
    let plan = BucketPlan::from_tensor_ends(ends.iter().copied(), len, 512, 2048);
    assert!(plan.ranges().len() > 10, "{:?}", plan.ranges());
    assert_eq!(plan.ranges().first().unwrap().start, 0);
    assert_eq!(plan.ranges().last().unwrap().end, len);
    for world in [2usize, 3] {
        let results = on_ranks(world, |rank, replicas| {
            let grads: Vec<f32> = (0..len).map(|i| value(rank, i)).collect();
            let mut whole = grads.clone();
            replicas.all_reduce(&mut whole, ReduceOp::Avg).unwrap();
            // Overlapped: pieces handed over as a backward would (uneven, in buffer order).
            let mut overlapped = grads.clone();
            let mut reducer = GradReducer::new(&replicas, &plan, true);
            {
                let sink: &mut dyn GradSink = reducer.sink().unwrap();
                let mut at = 0;
                let mut k = 0;
                while at < len {
                    let n = (1 + 97 * k % 1500).min(len - at);
                    sink.ready(at, &grads[at..at + n]).unwrap();
                    at += n;
                    k += 1;
                }
            }
            assert_eq!(reducer.queued(), plan.ranges().len());
            reducer.finish(&mut overlapped).unwrap();
            // Not overlapped: everything queued after "backward".
            let mut after = grads.clone();
            let mut reducer = GradReducer::new(&replicas, &plan, false);
            assert!(reducer.sink().is_none());
            reducer.finish(&mut after).unwrap();
            (grads, whole, overlapped, after)
        });
        for (rank, (_, whole, overlapped, after)) in results.iter().enumerate() {
            assert!(
                overlapped
                    .iter()
                    .zip(after)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{world} ranks, rank {rank}: overlap on and off differ"
            );
            let first = &results[0].2;
            assert!(
                overlapped
                    .iter()
                    .zip(first)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{world} ranks: rank {rank} ends with other gradients than rank 0"
            );
            if world == 2 {
                // a + b is b + a in floating point, and / 2 is exact: nothing can differ.
                assert!(
                    overlapped
                        .iter()
                        .zip(whole)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "2 ranks: bucketed and whole-buffer averages differ"
                );
            } else {
                // Several ranks: a bucket's additions may run in another order than the whole
                // buffer's (the collective picks its algorithm and ring chunks by length). Two
                // orders of an n-term f32 sum differ by at most (n-1)·ε·Σ|x|, so the averages
                // by (n-1)·ε·Σ|x|/n.
                let mut differ = 0;
                for (i, (a, b)) in overlapped.iter().zip(whole).enumerate() {
                    let mass: f32 = results.iter().map(|r| r.0[i].abs()).sum();
                    let bound = (world - 1) as f32 * f32::EPSILON * mass / world as f32;
                    assert!(
                        (a - b).abs() <= bound,
                        "element {i}: {a} vs {b} (bound {bound})"
                    );
                    differ += usize::from(a != b);
                }
                println!("{world} ranks: {differ} of {len} averages differ in the last bits");
            }
        }
    }
}

/// A dataset, a config and starting weights whose regression biases put the first boxes on the
/// shapes (so the loss normaliser is above its clip at 1 and ranks match one rank).
#[test]
fn a_rank_failing_mid_backward_stops_the_others_naming_it() {
    let ends = [1000usize, 2000, 3000, 4000];
    let plan = BucketPlan::from_tensor_ends(ends, 4000, 4000, 4000);
    assert_eq!(plan.ranges().len(), 4);
    let results = on_ranks(2, |rank, replicas| {
        let mut grads = vec![1.0f32; 4000];
        let mut reducer = GradReducer::new(&replicas, &plan, true);
        if rank == 1 {
            // Backward fails after the first bucket went out: the reducer is dropped unfinished.
            reducer.sink().unwrap().ready(0, &grads[..1000]).unwrap();
            drop(reducer);
            return Ok(());
        }
        reducer.sink().unwrap().ready(0, &grads[..4000]).unwrap();
        reducer.finish(&mut grads)
    });
    // Rank 1 aborts its communicator: rank 0's buckets fail (rather than wait for a deadline).
    let e = results[0].as_ref().unwrap_err().to_string();
    assert!(e.contains("rank 1"), "{e}");
    assert!(results[1].is_ok());
}

/// The training set has a multiple of 4 usable images: the sampler then pads no rank's shard,
/// and 1, 2 and 4 ranks see the same permutation (padding changes the list that is shuffled).
fn setup(dir: &Path) -> (PathBuf, String) {
    let data = dir.join("shapes");
    let mut train = 16;
    loop {
        write_shapes_dataset(&ShapesConfig {
            out: data.clone(),
            train,
            val: 2,
            seed: 1,
            size: 64,
            quality: 90,
            min_object: ringdet_coco::synth::DEFAULT_MIN_OBJECT,
        })
        .unwrap();
        let instances = Instances::load(data.join("annotations/instances_train2017.json")).unwrap();
        let usable = training_records(&instances, &data.join("train2017"))
            .0
            .len();
        if usable.is_multiple_of(4) {
            break;
        }
        assert!(
            train < 40,
            "no shapes set of 16..40 images has 4k usable ones"
        );
        train += 1;
        std::fs::remove_dir_all(&data).unwrap();
    }
    let config = common::tiny_config(dir, &data, 1, 3, "");
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
    (config, format!("pretrain_weights={}", weights.display()))
}

fn options(config: &Path, overrides: &[String], check_replicas: Option<usize>) -> TrainOptions {
    TrainOptions {
        config: config.to_path_buf(),
        overrides: overrides.to_vec(),
        check_replicas,
        ..TrainOptions::default()
    }
}

fn rows(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Trains 3 epochs on `world` ranks with batch `16 / world` (global batch 16: one step an
/// epoch) into `save`. The global batch is this large because PP-YOLOE's loss normaliser is
/// the ranks' mean soft-target sum clipped at 1: with 4 ranks each rank's share must stay
/// above 1 for the rank-averaged loss to be the one-rank loss of the same batch.
fn train_on(
    world: usize,
    config: &Path,
    save: &Path,
    extra: &[&str],
) -> Vec<Result<TrainSummary, TrainError>> {
    let mut overrides = vec![
        format!("save_dir={}", save.display()),
        format!("TrainReader.batch_size={}", 16 / world),
        "epoch=3".to_string(),
        // Small buckets: the tiny model's gradient is ~2 MiB, so a few buckets go out while
        // backward runs.
        "bucket_mb=0.25".to_string(),
        "first_bucket_mb=0.05".to_string(),
    ];
    overrides.extend(extra.iter().map(|s| s.to_string()));
    on_ranks(world, |_, replicas| {
        train_with(&options(config, &overrides, Some(1)), &replicas)
    })
}

#[test]
fn one_two_and_four_ranks_give_the_same_loss_curve_with_sync_bn() {
    let dir = scratch("equivalence");
    let (config, pretrain) = setup(&dir);
    let sync = "sync_bn_on_cpu=true";
    let mut curves = Vec::new();
    for world in [1usize, 2, 4] {
        let save = dir.join(format!("ranks{world}"));
        for r in train_on(world, &config, &save, &[&pretrain, sync]) {
            r.unwrap();
        }
        curves.push((world, rows(&save.join("tiny/metrics.jsonl"))));
    }
    let one = &curves[0].1;
    assert_eq!(one.len(), 3, "{one:?}");
    for (world, rows) in &curves[1..] {
        assert_eq!(rows.len(), one.len(), "{world} ranks: {rows:?}");
        for (x, y) in one.iter().zip(rows) {
            assert_eq!(x["step"], y["step"]);
            assert_eq!(x["lr"], y["lr"]);
            for term in ["loss", "loss_cls", "loss_iou", "loss_dfl"] {
                let (p, q) = (x[term].as_f64().unwrap(), y[term].as_f64().unwrap());
                assert!(p.is_finite() && p > 0.0, "{term} {p}");
                assert!(
                    (p - q).abs() <= 1e-4 * p.abs(),
                    "step {}: {term} one rank {p}, {world} ranks {q}",
                    x["step"]
                );
            }
        }
    }
    // SyncBN across the ranks is one rank's BN over the whole batch: the running statistics
    // every rank ends with (rank 0's are saved) are the single rank's.
    let stats = |world: usize| {
        let f =
            SafeTensors::open(dir.join(format!("ranks{world}/tiny/model_final.raw.safetensors")))
                .unwrap();
        let mut names: Vec<String> = f
            .names()
            .filter(|n| n.ends_with("._mean") || n.ends_with("._variance"))
            .map(str::to_string)
            .collect();
        names.sort();
        assert!(names.len() > 100, "{names:?}");
        names
            .iter()
            .flat_map(|n| f.tensor(n).unwrap().to_vec::<f32>().unwrap())
            .collect::<Vec<f32>>()
    };
    let one = stats(1);
    for world in [2, 4] {
        let other = stats(world);
        assert_eq!(one.len(), other.len());
        let diff: f64 = one
            .iter()
            .zip(&other)
            .map(|(a, b)| f64::from(a - b).powi(2))
            .sum::<f64>()
            .sqrt();
        let norm: f64 = one
            .iter()
            .map(|a| f64::from(*a).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!(
            diff <= 1e-4 * norm,
            "{world} ranks: BN running statistics differ from one rank's by {diff} (norm {norm})"
        );
    }
    // Overlap off: the same buckets queued after backward, so the same weights bit for bit.
    let save = dir.join("ranks2-no-overlap");
    for r in train_on(
        2,
        &config,
        &save,
        &[&pretrain, sync, "overlap_grad_reduce=false"],
    ) {
        r.unwrap();
    }
    let (a, b) = (
        rows(&dir.join("ranks2/tiny/metrics.jsonl")),
        rows(&save.join("tiny/metrics.jsonl")),
    );
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x["loss"], y["loss"], "step {}", x["step"]);
    }
    let file = "tiny/model_final.raw.safetensors";
    let (a, b) = (
        SafeTensors::open(dir.join("ranks2").join(file)).unwrap(),
        SafeTensors::open(save.join(file)).unwrap(),
    );
    let names: Vec<&str> = a.names().collect();
    assert!(!names.is_empty());
    for name in names {
        assert!(
            a.bytes(name).unwrap() == b.bytes(name).unwrap(),
            "{name}: overlap on and off end with different values"
        );
    }
}

#[test]
fn per_rank_bn_is_the_default_and_replicas_stay_identical() {
    let dir = scratch("per-rank-bn");
    let (config, pretrain) = setup(&dir);
    // No SyncBN: the ranks' BN statistics are their own, yet the averaged gradient keeps the
    // weights identical (checked after every step).
    let save = dir.join("out");
    for r in train_on(2, &config, &save, &[&pretrain]) {
        r.unwrap();
    }
    assert_eq!(rows(&save.join("tiny/metrics.jsonl")).len(), 3);
}

#[test]
fn check_replicas_stops_every_rank_naming_the_perturbed_one() {
    let dir = scratch("check-replicas");
    let (config, pretrain) = setup(&dir);
    let save = dir.join("out");
    let results = train_on(2, &config, &save, &[&pretrain, "debug_perturb_step=1"]);
    for (rank, r) in results.into_iter().enumerate() {
        let e = r.unwrap_err();
        assert!(
            matches!(&e, TrainError::ReplicasDiffer { step: 1, ranks, reference: 0, .. } if ranks == &[1]),
            "rank {rank}: {e}"
        );
        assert_eq!(
            e.to_string(),
            "step 1: the replicas differ after the update: rank 1 (parameters) differs from \
             rank 0; every rank stops"
        );
    }
    // Steps 0 and 1 ran (one an epoch); the check after step 1 stopped the job.
    assert_eq!(rows(&save.join("tiny/metrics.jsonl")).len(), 2);
}

/// The trainer's device path with the host backend standing in for a GPU, on 2 ranks: gradient
/// buckets downloaded as backward releases them (overlap on) or the whole buffer after backward
/// (overlap off), averaged through the ring on host buffers and uploaded back; the weights,
/// optimizer state and EMA at the end equal the host path's bit for bit.
#[test]
fn two_ranks_on_the_device_path_end_bit_identical_to_the_host_path() {
    let dir = scratch("device-path");
    let (config, pretrain) = setup(&dir);
    let sync = "sync_bn_on_cpu=true";
    for overlap in ["true", "false"] {
        let flag = format!("overlap_grad_reduce={overlap}");
        let mut outs = Vec::new();
        for (tag, extra) in [("host", ""), ("device", "debug_device_state_on_host=true")] {
            let save = dir.join(format!("{tag}-{overlap}"));
            let mut args = vec![pretrain.as_str(), sync, flag.as_str()];
            if !extra.is_empty() {
                args.push(extra);
            }
            for r in train_on(2, &config, &save, &args) {
                r.unwrap();
            }
            outs.push(save.join("tiny"));
        }
        for kind in ["", ".raw", ".opt"] {
            let f = format!("model_final{kind}.safetensors");
            common::assert_same_tensors(&outs[0].join(&f), &outs[1].join(&f));
        }
    }
}

#[test]
fn check_replicas_sees_a_perturbation_in_the_device_state() {
    let dir = scratch("check-replicas-device");
    let (config, pretrain) = setup(&dir);
    let save = dir.join("out");
    let args = [
        pretrain.as_str(),
        "debug_perturb_step=1",
        "debug_device_state_on_host=true",
    ];
    for (rank, r) in train_on(2, &config, &save, &args).into_iter().enumerate() {
        let e = r.unwrap_err();
        assert!(
            matches!(&e, TrainError::ReplicasDiffer { step: 1, ranks, reference: 0, .. } if ranks == &[1]),
            "rank {rank}: {e}"
        );
    }
}
