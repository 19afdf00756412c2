//! The fused BN + SiLU ops of the CPU backend against their composition (BN, then SiLU; SiLU
//! backward, then BN backward) through the same backend seam, and the backward that keeps `dz`
//! between its sums and its finish against the one that computes it twice. The fused ops compute
//! every intermediate in the same order as the composition, so they agree to the last bit.

mod common;

use common::Rng;
use ringdet_kernels::backend::{ActivationOps, NormOps};
use ringdet_kernels::batchnorm::BatchNormParams;
use ringdet_kernels::{Cpu, Real};

struct Case<T> {
    p: BatchNormParams,
    x: Vec<T>,
    dy: Vec<T>,
    gamma: Vec<T>,
    beta: Vec<T>,
    running: Vec<T>,
}

fn case<T: Real>(n: usize, c: usize, hw: usize, seed: u64) -> Case<T> {
    let mut r = Rng(seed);
    let cast = |v: Vec<f64>| v.into_iter().map(T::from_f64).collect::<Vec<T>>();
    Case {
        p: BatchNormParams::new(n, c, hw),
        x: cast(r.vec_in(n * c * hw, -3.0, 3.0)),
        dy: cast(r.vec(n * c * hw)),
        gamma: cast(r.vec_in(c, 0.5, 1.5)),
        beta: cast(r.vec(c)),
        running: cast(r.vec_in(2 * c, 0.1, 1.0)),
    }
}

/// (y, saved, running, dstats, dx, dgamma, dbeta) of the training forward and backward.
type Out<T> = [Vec<T>; 7];

fn composed<T: Real>(k: &Case<T>) -> Out<T> {
    let (p, c, len) = (&k.p, k.p.channels, k.x.len());
    let mut stats = vec![T::ZERO; 2 * c];
    Cpu.batchnorm_stats_forward(&mut stats, &k.x, p).unwrap();
    let (mut z, mut y, mut saved) = (vec![T::ZERO; len], vec![T::ZERO; len], vec![T::ZERO; 2 * c]);
    let mut running = k.running.clone();
    let (rm, rv) = running.split_at_mut(c);
    let count = p.count();
    Cpu.batchnorm_forward_train(
        &mut z, &mut saved, rm, rv, &k.x, &k.gamma, &k.beta, &stats, count, p,
    )
    .unwrap();
    Cpu.silu_forward(&mut y, &z).unwrap();
    let mut dz = vec![T::ZERO; len];
    Cpu.silu_backward(&mut dz, &k.dy, &z).unwrap();
    let mut dstats = vec![T::ZERO; 2 * c];
    Cpu.batchnorm_stats_backward(&mut dstats, &dz, &k.x, &saved, p)
        .unwrap();
    let (mut dx, mut dg, mut db) = (vec![T::ONE; len], vec![T::ONE; c], vec![T::ONE; c]);
    Cpu.batchnorm_backward(
        &mut dx, &mut dg, &mut db, &dz, &k.x, &saved, &k.gamma, &dstats, &dstats, count, p,
    )
    .unwrap();
    [y, saved, running, dstats, dx, dg, db]
}

fn fused<T: Real>(k: &Case<T>) -> Out<T> {
    let (p, c, len) = (&k.p, k.p.channels, k.x.len());
    let mut stats = vec![T::ZERO; 2 * c];
    Cpu.batchnorm_stats_forward(&mut stats, &k.x, p).unwrap();
    let (mut y, mut saved) = (vec![T::ZERO; len], vec![T::ZERO; 2 * c]);
    let mut running = k.running.clone();
    let (rm, rv) = running.split_at_mut(c);
    let count = p.count();
    Cpu.batchnorm_silu_forward_train(
        &mut y, &mut saved, rm, rv, &k.x, &k.gamma, &k.beta, &stats, count, p,
    )
    .unwrap();
    let mut dstats = vec![T::ZERO; 2 * c];
    Cpu.batchnorm_silu_stats_backward(&mut dstats, &k.dy, &k.x, &saved, &k.gamma, &k.beta, p)
        .unwrap();
    let (mut dx, mut dg, mut db) = (vec![T::ONE; len], vec![T::ONE; c], vec![T::ONE; c]);
    Cpu.batchnorm_silu_backward(
        &mut dx, &mut dg, &mut db, &k.dy, &k.x, &saved, &k.gamma, &k.beta, &dstats, &dstats, count,
        p,
    )
    .unwrap();
    [y, saved, running, dstats, dx, dg, db]
}

/// [`fused`] with the backward sums keeping `dz` in `dx` and the finish in place.
fn kept<T: Real>(k: &Case<T>) -> Out<T> {
    let [y, saved, running, ..] = fused(k);
    let (p, c, len) = (&k.p, k.p.channels, k.x.len());
    let (mut dstats, mut dx) = (vec![T::ZERO; 2 * c], vec![T::ONE; len]);
    let kept = Cpu
        .batchnorm_silu_stats_backward_keep(
            &mut dstats,
            &mut dx,
            &k.dy,
            &k.x,
            &saved,
            &k.gamma,
            &k.beta,
            p,
        )
        .unwrap();
    assert!(kept, "the CPU backend keeps dz");
    let (mut dg, mut db) = (vec![T::ONE; c], vec![T::ONE; c]);
    Cpu.batchnorm_backward_in_place(
        &mut dx,
        &mut dg,
        &mut db,
        &k.x,
        &saved,
        &k.gamma,
        &dstats,
        &dstats,
        p.count(),
        p,
    )
    .unwrap();
    [y, saved, running, dstats, dx, dg, db]
}

fn check<T: Real + PartialEq>(n: usize, c: usize, hw: usize, seed: u64) {
    let k = case::<T>(n, c, hw, seed);
    let (a, b, d) = (composed(&k), fused(&k), kept(&k));
    let names = ["y", "saved", "running", "dstats", "dx", "dgamma", "dbeta"];
    for (((name, a), b), d) in names.iter().zip(&a).zip(&b).zip(&d) {
        assert_eq!(a, b, "{name} of [{n}, {c}, {hw}]");
        assert_eq!(b, d, "{name} of [{n}, {c}, {hw}], dz kept");
    }
}

#[test]
fn fused_training_ops_equal_the_composition_f32() {
    check::<f32>(2, 5, 37, 1);
    check::<f32>(1, 3, 1, 2);
    check::<f32>(3, 16, 400, 3);
}

#[test]
fn fused_training_ops_equal_the_composition_f64() {
    check::<f64>(2, 4, 23, 4);
}

#[test]
fn fused_eval_forward_equals_the_composition() {
    let k = case::<f32>(2, 6, 50, 5);
    let (p, c, len) = (&k.p, k.p.channels, k.x.len());
    let (mean, var) = k.running.split_at(c);
    let (mut z, mut y, mut f) = (vec![0.0; len], vec![0.0; len], vec![0.0; len]);
    Cpu.batchnorm_forward_inference(&mut z, &k.x, &k.gamma, &k.beta, mean, var, p)
        .unwrap();
    Cpu.silu_forward(&mut y, &z).unwrap();
    Cpu.batchnorm_silu_forward_inference(&mut f, &k.x, &k.gamma, &k.beta, mean, var, p)
        .unwrap();
    assert_eq!(y, f);
}

#[test]
fn fused_ops_check_their_buffers() {
    let k = case::<f32>(1, 2, 4, 6);
    let p = &k.p;
    let mut dstats = vec![0.0f32; 4];
    let err = Cpu
        .batchnorm_silu_stats_backward(&mut dstats, &k.dy, &k.x, &[0.0; 4], &k.gamma, &[0.0; 3], p)
        .unwrap_err();
    assert!(err.to_string().contains("beta"), "{err}");
}
