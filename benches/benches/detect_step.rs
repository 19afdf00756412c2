//! PP-YOLOE-s on the CPU: one training step (forward, TAL assignment, loss, backward, SGD) at batch 2,
//! 320×320, and one evaluation forward at batch 1, 640×640 (no NMS). The PaddlePaddle peer is
//! `testdata/ppyoloe-golden/time_paddle_cpu.py` (cases a and c_nonms); run it in the same
//! window (`ringdet perf-detect` prints the same two figures as medians).

use std::hint::black_box;
use std::time::Duration;

use criterion::Criterion;
use ringdet_detect::arch::{Arch, ModelConfig};
use ringdet_detect::cross_replica::SingleReplica;
use ringdet_detect::detector::eval_forward;
use ringdet_detect::init::{SeededNormal, initialize};
use ringdet_detect::state::ModelState;
use ringdet_detect::step::{TrainSettings, train_step};
use ringdet_detect::synthetic;
use ringdet_detect::train::sgd::Sgd;

fn model() -> (Arch, ModelState) {
    let arch = Arch::new(ModelConfig::s()).expect("s model");
    let mut state = ModelState::zeros(&arch).expect("state");
    let golden = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/ppyoloe-golden/weights.safetensors"
    );
    if ringdet_detect::checkpoint::load(&mut state, golden).is_err() {
        initialize(&mut state, &mut SeededNormal::new(0));
    }
    (arch, state)
}

fn bench(c: &mut Criterion) {
    let (arch, mut state) = model();
    let data = synthetic::batch(2, 320, 320, 3, 80, 2024);
    let batch = data.train_batch();
    let mut sgd = Sgd::ppyoloe(&state.layout);
    let settings = TrainSettings::default();
    let mut g = c.benchmark_group("ppyoloe_s_cpu");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .warm_up_time(Duration::from_secs(3));
    g.bench_function("train_step_b2_320", |b| {
        b.iter(|| {
            let out = train_step(
                &arch,
                &mut state,
                &mut sgd,
                &batch,
                100,
                1e-4,
                &settings,
                &SingleReplica,
            )
            .expect("train step");
            black_box(out.losses.loss)
        })
    });
    let img = synthetic::batch(1, 640, 640, 1, 80, 7).image;
    g.bench_function("eval_forward_b1_640", |b| {
        b.iter(|| {
            black_box(
                eval_forward(&arch, &state, &img)
                    .expect("eval")
                    .scores
                    .len(),
            )
        })
    });
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
