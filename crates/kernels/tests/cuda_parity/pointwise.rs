//! GPU-vs-CPU parity of the pointwise families: activations, broadcast add/mul, pooling,
//! upsampling, concat/split, casts. Odd sizes, fresh random inputs, outputs that are
//! overwritten are NaN-poisoned first; accumulated outputs start from random values.

use super::common::{F32_TOL, Gpu, check};
use ringdet_kernels::activation::{cpu as act, cuda as act_gpu};
use ringdet_kernels::cast::{cpu as cast, cuda as cast_gpu};
use ringdet_kernels::concat::{ConcatParams, cpu as cat, cuda as cat_gpu};
use ringdet_kernels::elementwise::{BroadcastParams, cpu as ew, cuda as ew_gpu};
use ringdet_kernels::pool::{PoolParams, cpu as pool, cuda as pool_gpu};
use ringdet_kernels::resize::{UpsampleParams, cpu as rs, cuda as rs_gpu};
use ringdet_kernels::runtime::testing::gpu_or_skip;

#[test]
fn activations_cuda_match_cpu() {
    let Some(rt) = gpu_or_skip("activations_cuda_match_cpu") else {
        return;
    };
    let mut g = Gpu::new(&rt, 11);
    type Fwd = fn(&mut [f32], &[f32]) -> Result<(), ringdet_kernels::KernelError>;
    type Bwd = fn(&mut [f32], &[f32], &[f32]) -> Result<(), ringdet_kernels::KernelError>;
    type FwdG = fn(
        &ringdet_kernels::runtime::KernelRuntime,
        &mut cudarc::driver::CudaSlice<f32>,
        &cudarc::driver::CudaSlice<f32>,
    ) -> Result<(), ringdet_kernels::KernelError>;
    type BwdG = fn(
        &ringdet_kernels::runtime::KernelRuntime,
        &mut cudarc::driver::CudaSlice<f32>,
        &cudarc::driver::CudaSlice<f32>,
        &cudarc::driver::CudaSlice<f32>,
    ) -> Result<(), ringdet_kernels::KernelError>;
    // (name, forward, backward, backward reads the output (true) or the input)
    let ops: [(&str, Fwd, FwdG, Bwd, BwdG, bool); 3] = [
        (
            "silu",
            act::silu_forward,
            act_gpu::silu_forward,
            act::silu_backward,
            act_gpu::silu_backward,
            false,
        ),
        (
            "sigmoid",
            act::sigmoid_forward,
            act_gpu::sigmoid_forward,
            act::sigmoid_backward,
            act_gpu::sigmoid_backward,
            true,
        ),
        (
            "hardsigmoid",
            act::hardsigmoid_forward,
            act_gpu::hardsigmoid_forward,
            act::hardsigmoid_backward,
            act_gpu::hardsigmoid_backward,
            true,
        ),
    ];
    for n in [1usize, 37, 4099, 300_007] {
        for (name, f, fg, b, bg, from_y) in ops {
            let x: Vec<f32> = g.normal(n).iter().map(|v| v * 4.0).collect();
            let mut y = vec![0.0; n];
            f(&mut y, &x).unwrap();
            let (xd, mut yd) = (g.up(&x), g.poisoned(n));
            fg(&rt, &mut yd, &xd).unwrap();
            check(&format!("{name} forward n={n}"), &g.down(&yd), &y, F32_TOL);
            let (dy, dx0) = (g.normal(n), g.normal(n));
            let mut dx = dx0.clone();
            let saved = if from_y { &y } else { &x };
            b(&mut dx, &dy, saved).unwrap();
            let mut dxd = g.up(&dx0);
            bg(&rt, &mut dxd, &g.up(&dy), &g.up(saved)).unwrap();
            check(
                &format!("{name} backward n={n}"),
                &g.down(&dxd),
                &dx,
                F32_TOL,
            );
        }
    }
}

#[test]
fn broadcast_add_mul_cuda_match_cpu() {
    let Some(rt) = gpu_or_skip("broadcast_add_mul_cuda_match_cpu") else {
        return;
    };
    let mut g = Gpu::new(&rt, 12);
    let cases = [
        ([3, 5, 7, 9], [3, 5, 7, 9]),
        ([3, 5, 7, 9], [3, 5, 1, 1]),
        ([1, 5, 1, 9], [3, 1, 7, 1]),
        ([2, 33, 17, 13], [1, 33, 1, 1]),
    ];
    for (sa, sb) in cases {
        let p = BroadcastParams { a: sa, b: sb };
        let out = p.out_shape("test").unwrap();
        let (na, nb, no) = (
            sa.iter().product(),
            sb.iter().product(),
            out.iter().product(),
        );
        let (a, b) = (g.normal(na), g.normal(nb));
        let (ad, bd) = (g.up(&a), g.up(&b));
        for mul in [false, true] {
            let mut y = vec![0.0; no];
            let mut yd = g.poisoned(no);
            if mul {
                ew::mul_forward(&mut y, &a, &b, &p).unwrap();
                ew_gpu::mul_forward(&rt, &mut yd, &ad, &bd, &p).unwrap();
            } else {
                ew::add_forward(&mut y, &a, &b, &p).unwrap();
                ew_gpu::add_forward(&rt, &mut yd, &ad, &bd, &p).unwrap();
            }
            check(
                &format!("mul={mul} forward {sa:?} {sb:?}"),
                &g.down(&yd),
                &y,
                F32_TOL,
            );
            let dy = g.normal(no);
            let (da0, db0) = (g.normal(na), g.normal(nb));
            let (mut da, mut db) = (da0.clone(), db0.clone());
            let (mut dad, mut dbd, dyd) = (g.up(&da0), g.up(&db0), g.up(&dy));
            if mul {
                ew::mul_backward(Some(&mut da), Some(&mut db), &dy, &a, &b, &p).unwrap();
                ew_gpu::mul_backward(&rt, Some(&mut dad), Some(&mut dbd), &dyd, &ad, &bd, &p)
                    .unwrap();
            } else {
                ew::add_backward(Some(&mut da), Some(&mut db), &dy, &p).unwrap();
                ew_gpu::add_backward(&rt, Some(&mut dad), Some(&mut dbd), &dyd, &p).unwrap();
            }
            check(
                &format!("mul={mul} da {sa:?} {sb:?}"),
                &g.down(&dad),
                &da,
                F32_TOL,
            );
            check(
                &format!("mul={mul} db {sa:?} {sb:?}"),
                &g.down(&dbd),
                &db,
                F32_TOL,
            );
        }
    }
}

#[test]
fn pooling_cuda_match_cpu() {
    let Some(rt) = gpu_or_skip("pooling_cuda_match_cpu") else {
        return;
    };
    let mut g = Gpu::new(&rt, 13);
    for (batch, channels, h, w, kernel) in [
        (1, 1, 1, 1, 5),
        (2, 3, 13, 11, 5),
        (3, 7, 21, 19, 13),
        (2, 5, 9, 31, 9),
    ] {
        let p = PoolParams {
            batch,
            channels,
            h,
            w,
            kernel,
        };
        let n = batch * channels * h * w;
        // Rounded values make ties, so the first-match rule of the backward is exercised.
        let x: Vec<f32> = g.normal(n).iter().map(|v| (v * 4.0).round()).collect();
        let xd = g.up(&x);
        let (mut y, mut ws) = (vec![0.0; n], vec![0.0; n]);
        pool::max_pool_forward(&mut y, &mut ws, &x, &p).unwrap();
        let (mut yd, mut wsd) = (g.poisoned(n), g.poisoned(n));
        pool_gpu::max_pool_forward(&rt, &mut yd, &mut wsd, &xd, &p).unwrap();
        check(
            &format!("max_pool forward {p:?}"),
            &g.down(&yd),
            &y,
            F32_TOL,
        );
        let (dy, dx0) = (g.normal(n), g.normal(n));
        let mut dx = dx0.clone();
        pool::max_pool_backward(&mut dx, &dy, &x, &y, &p).unwrap();
        let mut dxd = g.up(&dx0);
        pool_gpu::max_pool_backward(&rt, &mut dxd, &g.up(&dy), &xd, &g.up(&y), &p).unwrap();
        check(
            &format!("max_pool backward {p:?}"),
            &g.down(&dxd),
            &dx,
            F32_TOL,
        );

        let x = g.normal(n);
        let nc = batch * channels;
        let mut y = vec![0.0; nc];
        pool::global_avg_pool_forward(&mut y, &x, &p).unwrap();
        let mut yd = g.poisoned(nc);
        pool_gpu::global_avg_pool_forward(&rt, &mut yd, &g.up(&x), &p).unwrap();
        check(
            &format!("global_avg_pool forward {p:?}"),
            &g.down(&yd),
            &y,
            F32_TOL,
        );
        let (dy, dx0) = (g.normal(nc), g.normal(n));
        let mut dx = dx0.clone();
        pool::global_avg_pool_backward(&mut dx, &dy, &p).unwrap();
        let mut dxd = g.up(&dx0);
        pool_gpu::global_avg_pool_backward(&rt, &mut dxd, &g.up(&dy), &p).unwrap();
        check(
            &format!("global_avg_pool backward {p:?}"),
            &g.down(&dxd),
            &dx,
            F32_TOL,
        );
    }
}

#[test]
fn upsample_cuda_matches_cpu() {
    let Some(rt) = gpu_or_skip("upsample_cuda_matches_cpu") else {
        return;
    };
    let mut g = Gpu::new(&rt, 14);
    for (batch, channels, h, w) in [(1, 1, 1, 1), (2, 3, 7, 5), (3, 17, 19, 23)] {
        let p = UpsampleParams {
            batch,
            channels,
            h,
            w,
        };
        let (n, m) = (batch * channels * h * w, 4 * batch * channels * h * w);
        let x = g.normal(n);
        let mut y = vec![0.0; m];
        rs::upsample_nearest2x_forward(&mut y, &x, &p).unwrap();
        let mut yd = g.poisoned(m);
        rs_gpu::upsample_nearest2x_forward(&rt, &mut yd, &g.up(&x), &p).unwrap();
        check(
            &format!("upsample forward {p:?}"),
            &g.down(&yd),
            &y,
            F32_TOL,
        );
        let (dy, dx0) = (g.normal(m), g.normal(n));
        let mut dx = dx0.clone();
        rs::upsample_nearest2x_backward(&mut dx, &dy, &p).unwrap();
        let mut dxd = g.up(&dx0);
        rs_gpu::upsample_nearest2x_backward(&rt, &mut dxd, &g.up(&dy), &p).unwrap();
        check(
            &format!("upsample backward {p:?}"),
            &g.down(&dxd),
            &dx,
            F32_TOL,
        );
    }
}

#[test]
fn concat_split_cuda_match_cpu() {
    let Some(rt) = gpu_or_skip("concat_split_cuda_match_cpu") else {
        return;
    };
    let mut g = Gpu::new(&rt, 15);
    let channels = [3usize, 1, 7];
    let p = ConcatParams {
        batch: 3,
        spatial: 37,
        channels: &channels,
    };
    let sizes: Vec<usize> = channels.iter().map(|c| 3 * c * 37).collect();
    let total = sizes.iter().sum::<usize>();
    let parts: Vec<Vec<f32>> = sizes.iter().map(|&s| g.normal(s)).collect();
    let parts_d: Vec<_> = parts.iter().map(|v| g.up(v)).collect();
    let mut y = vec![0.0; total];
    let refs: Vec<&[f32]> = parts.iter().map(|v| v.as_slice()).collect();
    cat::concat_channels_forward(&mut y, &refs, &p).unwrap();
    let mut yd = g.poisoned(total);
    let drefs: Vec<_> = parts_d.iter().collect();
    cat_gpu::concat_channels_forward(&rt, &mut yd, &drefs, &p).unwrap();
    check("concat forward", &g.down(&yd), &y, F32_TOL);
    // split forward (overwrite, poisoned) and both backwards (accumulate).
    let x = g.normal(total);
    let xd = g.up(&x);
    let mut ys: Vec<Vec<f32>> = sizes.iter().map(|&s| vec![0.0; s]).collect();
    let mut ys_refs: Vec<&mut [f32]> = ys.iter_mut().map(|v| v.as_mut_slice()).collect();
    cat::split_channels_forward(&mut ys_refs, &x, &p).unwrap();
    let mut ysd: Vec<_> = sizes.iter().map(|&s| g.poisoned(s)).collect();
    let mut ysd_refs: Vec<_> = ysd.iter_mut().collect();
    cat_gpu::split_channels_forward(&rt, &mut ysd_refs, &xd, &p).unwrap();
    for (i, (d, h)) in ysd.iter().zip(&ys).enumerate() {
        check(&format!("split forward part {i}"), &g.down(d), h, F32_TOL);
    }
    let dx0 = g.normal(total);
    let mut dx = dx0.clone();
    let dys: Vec<&[f32]> = parts.iter().map(|v| v.as_slice()).collect();
    cat::split_channels_backward(&mut dx, &dys, &p).unwrap();
    let mut dxd = g.up(&dx0);
    cat_gpu::split_channels_backward(&rt, &mut dxd, &drefs, &p).unwrap();
    check("split backward", &g.down(&dxd), &dx, F32_TOL);
    let mut dxs: Vec<Vec<f32>> = parts.clone();
    let mut dxs_refs: Vec<&mut [f32]> = dxs.iter_mut().map(|v| v.as_mut_slice()).collect();
    cat::concat_channels_backward(&mut dxs_refs, &x, &p).unwrap();
    let mut dxsd: Vec<_> = parts.iter().map(|v| g.up(v)).collect();
    let mut dxsd_refs: Vec<_> = dxsd.iter_mut().collect();
    cat_gpu::concat_channels_backward(&rt, &mut dxsd_refs, &xd, &p).unwrap();
    for (i, (d, h)) in dxsd.iter().zip(&dxs).enumerate() {
        check(&format!("concat backward part {i}"), &g.down(d), h, F32_TOL);
    }
}

#[test]
fn casts_cuda_match_cpu_bit_for_bit() {
    let Some(rt) = gpu_or_skip("casts_cuda_match_cpu_bit_for_bit") else {
        return;
    };
    let mut g = Gpu::new(&rt, 16);
    let n = 100_003;
    let mut x = g.normal(n);
    x[..6].copy_from_slice(&[
        f32::INFINITY,
        -0.0,
        1e-40,
        f32::MAX,
        1.0 + 1.0 / 256.0,
        3.0e38,
    ]);
    let mut want = vec![half::bf16::ZERO; n];
    cast::f32_to_bf16(&mut want, &x).unwrap();
    let mut bd = g.up(&vec![half::bf16::NAN; n]);
    cast_gpu::f32_to_bf16(&rt, &mut bd, &g.up(&x)).unwrap();
    let got = g.down(&bd);
    let bits = |v: &[half::bf16]| v.iter().map(|b| b.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&got), bits(&want), "f32 -> bf16");
    let mut back = vec![0.0f32; n];
    cast::bf16_to_f32(&mut back, &want).unwrap();
    let mut fd = g.poisoned(n);
    cast_gpu::bf16_to_f32(&rt, &mut fd, &bd).unwrap();
    let got = g.down(&fd);
    assert!(
        got.iter()
            .zip(&back)
            .all(|(a, b)| a.to_bits() == b.to_bits()),
        "bf16 -> f32"
    );
}
