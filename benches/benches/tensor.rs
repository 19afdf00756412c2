//! Tensor benches: the copy behind `contiguous()` of a permuted activation, and RNG throughput.

use criterion::{Criterion, Throughput};
use ringdet_tensor::{Rng, Tensor};
use std::hint::black_box;

fn contiguous(c: &mut Criterion) {
    let shape = [2usize, 64, 80, 80];
    let n: usize = shape.iter().product();
    let t = Tensor::from_vec(vec![1f32; n], &shape).unwrap();
    let nhwc = t.permute(&[0, 2, 3, 1]).unwrap();
    let mut g = c.benchmark_group("tensor");
    g.throughput(Throughput::Bytes((n * 4) as u64));
    g.bench_function("contiguous_nchw_to_nhwc_2x64x80x80", |b| {
        b.iter(|| black_box(nhwc.contiguous().unwrap()))
    });
    g.bench_function("rng_normal_819200", |b| {
        let mut rng = Rng::new(1);
        let mut out = vec![0f32; n];
        b.iter(|| rng.fill_normal(black_box(&mut out), 0.0, 1.0))
    });
    g.finish();
}

// What `criterion_group!`/`criterion_main!` expand to, without the undocumented `pub fn` the
// group macro defines (the workspace warns on missing docs).
fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    contiguous(&mut criterion);
    criterion.final_summary();
}
