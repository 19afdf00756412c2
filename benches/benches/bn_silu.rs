//! BN + SiLU benches: the fused training ops (forward, backward sums, backward) and the SiLU
//! alone on one PP-YOLOE-s-sized map (2 × 64 × 80 × 80, f32), through the CPU backend. These are
//! the memory-bound, exp-heavy passes that issue 18's profile found at ~23 % of the step.

use criterion::{Criterion, Throughput};
use ringdet_kernels::Cpu;
use ringdet_kernels::backend::{ActivationOps, NormOps};
use ringdet_kernels::batchnorm::BatchNormParams;
use std::hint::black_box;

fn bn_silu(c: &mut Criterion) {
    let (n, ch, hw) = (2usize, 64usize, 80 * 80);
    let p = BatchNormParams::new(n, ch, hw);
    let len = n * ch * hw;
    let x: Vec<f32> = (0..len)
        .map(|i| ((i * 7919) % 1000) as f32 / 300.0 - 1.5)
        .collect();
    let dy: Vec<f32> = (0..len)
        .map(|i| ((i * 104_729) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let (gamma, beta) = (vec![1.1f32; ch], vec![0.1f32; ch]);
    let (mut stats, mut saved) = (vec![0f32; 2 * ch], vec![0f32; 2 * ch]);
    let (mut rm, mut rv) = (vec![0f32; ch], vec![1f32; ch]);
    let (mut y, mut dx) = (vec![0f32; len], vec![0f32; len]);
    let (mut dg, mut db, mut dstats) = (vec![0f32; ch], vec![0f32; ch], vec![0f32; 2 * ch]);
    Cpu.batchnorm_stats_forward(&mut stats, &x, &p).unwrap();
    let count = n * hw;
    let mut g = c.benchmark_group("bn_silu_2x64x80x80");
    g.throughput(Throughput::Elements(len as u64));
    g.bench_function("stats_forward", |b| {
        b.iter(|| Cpu.batchnorm_stats_forward(&mut stats, black_box(&x), &p))
    });
    g.bench_function("forward_train", |b| {
        b.iter(|| {
            Cpu.batchnorm_silu_forward_train(
                &mut y, &mut saved, &mut rm, &mut rv, &x, &gamma, &beta, &stats, count, &p,
            )
        })
    });
    g.bench_function("stats_backward", |b| {
        b.iter(|| {
            Cpu.batchnorm_silu_stats_backward(&mut dstats, &dy, &x, &saved, &gamma, &beta, &p)
        })
    });
    g.bench_function("backward", |b| {
        b.iter(|| {
            Cpu.batchnorm_silu_backward(
                &mut dx, &mut dg, &mut db, &dy, &x, &saved, &gamma, &beta, &dstats, &dstats, count,
                &p,
            )
        })
    });
    g.bench_function("silu_forward", |b| {
        b.iter(|| Cpu.silu_forward(&mut y, black_box(&x)))
    });
    g.finish();
}

// What `criterion_group!`/`criterion_main!` expand to, without the undocumented `pub fn` the
// group macro defines (the workspace warns on missing docs).
fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    bn_silu(&mut criterion);
    criterion.final_summary();
}
