//! f64 central-difference gradient checks of every layer backward, on odd shapes.

mod common;
use common::{Rng, check_grad, dot};

use ringdet_kernels::activation::cpu as act;
use ringdet_kernels::batchnorm::{BatchNormParams, cpu as bn};
use ringdet_kernels::concat::{ConcatParams, cpu as cat};
use ringdet_kernels::conv::{Conv2dParams, cpu as conv};
use ringdet_kernels::elementwise::{BroadcastParams, cpu as ew};
use ringdet_kernels::pool::{PoolParams, cpu as pool};
use ringdet_kernels::resize::{UpsampleParams, cpu as rs};

fn conv_case(p: Conv2dParams, with_bias: bool, seed: u64) {
    let mut rng = Rng(seed);
    let x = rng.vec(p.x_shape().iter().product());
    let w = rng.vec(p.w_shape().iter().product());
    let b = rng.vec(p.out_channels);
    let r = rng.vec(p.y_shape().iter().product());
    let mut ws = vec![0.0; p.workspace_len()];
    let bias = |b: &[f64]| if with_bias { Some(b.to_vec()) } else { None };
    let fwd = |x: &[f64], w: &[f64], b: &[f64]| {
        let mut y = vec![0.0; r.len()];
        let mut ws = vec![0.0; p.workspace_len()];
        conv::conv2d_forward(&mut y, &mut ws, x, w, bias(b).as_deref(), &p).unwrap();
        dot(&r, &y)
    };
    let mut dx = vec![0.0; x.len()];
    conv::conv2d_backward_data(&mut dx, &mut ws, &r, &w, &p).unwrap();
    let mut dw = vec![0.0; w.len()];
    let mut db = vec![0.0; b.len()];
    conv::conv2d_backward_filter(
        &mut dw,
        with_bias.then_some(&mut db[..]),
        &mut ws,
        &r,
        &x,
        &p,
    )
    .unwrap();
    let tag = format!("conv {p:?} bias {with_bias}");
    check_grad(&format!("{tag} dx"), &x, &dx, |x| fwd(x, &w, &b));
    check_grad(&format!("{tag} dw"), &w, &dw, |w| fwd(&x, w, &b));
    if with_bias {
        check_grad(&format!("{tag} db"), &b, &db, |b| fwd(&x, &w, b));
    }
}

#[test]
fn conv_gradients() {
    conv_case(Conv2dParams::square(2, 3, 4, 7, 5, 3, 1, 1), true, 1);
    conv_case(Conv2dParams::square(2, 3, 4, 7, 5, 3, 2, 1), false, 2);
    conv_case(Conv2dParams::square(2, 3, 5, 7, 5, 1, 1, 0), true, 3);
    conv_case(Conv2dParams::square(1, 2, 3, 6, 9, 1, 2, 0), false, 4);
    let mut odd = Conv2dParams::square(2, 3, 2, 8, 7, 3, 2, 0);
    odd.kernel_w = 2;
    odd.pad_w = 1;
    conv_case(odd, true, 5);
}

#[test]
fn batchnorm_train_gradients() {
    let p = BatchNormParams::new(2, 3, 35);
    let mut rng = Rng(10);
    let x: Vec<f64> = rng.vec(2 * 3 * 35).iter().map(|v| 2.0 * v + 0.5).collect();
    let gamma = rng.vec_in(3, 0.5, 1.5);
    let beta = rng.vec(3);
    let r = rng.vec(x.len());
    let run = |x: &[f64], g: &[f64], b: &[f64]| {
        let (mut st, mut saved) = (vec![0.0; 6], vec![0.0; 6]);
        let (mut rm, mut rv) = (vec![0.0; 3], vec![1.0; 3]);
        let mut y = vec![0.0; x.len()];
        bn::batchnorm_stats_forward(&mut st, x, &p).unwrap();
        bn::batchnorm_forward_train(
            &mut y,
            &mut saved,
            &mut rm,
            &mut rv,
            x,
            g,
            b,
            &st,
            p.count(),
            &p,
        )
        .unwrap();
        (dot(&r, &y), saved)
    };
    let (_, saved) = run(&x, &gamma, &beta);
    let mut ds = vec![0.0; 6];
    bn::batchnorm_stats_backward(&mut ds, &r, &x, &saved, &p).unwrap();
    let (mut dx, mut dg, mut db) = (vec![0.0; x.len()], vec![0.0; 3], vec![0.0; 3]);
    bn::batchnorm_backward(
        &mut dx,
        &mut dg,
        &mut db,
        &r,
        &x,
        &saved,
        &gamma,
        &ds,
        &ds,
        p.count(),
        &p,
    )
    .unwrap();
    check_grad("bn dx", &x, &dx, |x| run(x, &gamma, &beta).0);
    check_grad("bn dgamma", &gamma, &dg, |g| run(&x, g, &beta).0);
    check_grad("bn dbeta", &beta, &db, |b| run(&x, &gamma, b).0);
}

#[test]
fn activation_gradients() {
    let mut rng = Rng(20);
    let x = rng.vec_in(2 * 3 * 7 * 5, -4.0, 4.0);
    let r = rng.vec(x.len());
    type Fwd = fn(&mut [f64], &[f64]) -> Result<(), ringdet_kernels::KernelError>;
    let y_of = |f: Fwd, x: &[f64]| {
        let mut y = vec![0.0; x.len()];
        f(&mut y, x).unwrap();
        y
    };
    let mut dx = vec![0.0; x.len()];
    act::silu_backward(&mut dx, &r, &x).unwrap();
    check_grad("silu", &x, &dx, |x| dot(&r, &y_of(act::silu_forward, x)));
    let mut dx = vec![0.0; x.len()];
    act::sigmoid_backward(&mut dx, &r, &y_of(act::sigmoid_forward, &x)).unwrap();
    check_grad("sigmoid", &x, &dx, |x| {
        dot(&r, &y_of(act::sigmoid_forward, x))
    });
    // keep clear of the kinks at ±3
    let xh: Vec<f64> = x
        .iter()
        .map(|v| {
            if (v.abs() - 3.0).abs() < 0.05 {
                v * 0.5
            } else {
                *v
            }
        })
        .collect();
    let mut dx = vec![0.0; x.len()];
    act::hardsigmoid_backward(&mut dx, &r, &y_of(act::hardsigmoid_forward, &xh)).unwrap();
    check_grad("hardsigmoid", &xh, &dx, |x| {
        dot(&r, &y_of(act::hardsigmoid_forward, x))
    });
}

fn broadcast_case(p: BroadcastParams, seed: u64) {
    let mut rng = Rng(seed);
    let out = p.out_shape("test").unwrap();
    let a = rng.vec(p.a.iter().product());
    let b = rng.vec(p.b.iter().product());
    let r = rng.vec(out.iter().product());
    let f = |mul: bool, a: &[f64], b: &[f64]| {
        let mut y = vec![0.0; r.len()];
        if mul {
            ew::mul_forward(&mut y, a, b, &p).unwrap();
        } else {
            ew::add_forward(&mut y, a, b, &p).unwrap();
        }
        dot(&r, &y)
    };
    let (mut da, mut db) = (vec![0.0; a.len()], vec![0.0; b.len()]);
    ew::add_backward(Some(&mut da), Some(&mut db), &r, &p).unwrap();
    check_grad("add da", &a, &da, |a| f(false, a, &b));
    check_grad("add db", &b, &db, |b| f(false, &a, b));
    let (mut da, mut db) = (vec![0.0; a.len()], vec![0.0; b.len()]);
    ew::mul_backward(Some(&mut da), Some(&mut db), &r, &a, &b, &p).unwrap();
    check_grad("mul da", &a, &da, |a| f(true, a, &b));
    check_grad("mul db", &b, &db, |b| f(true, &a, b));
}

#[test]
fn elementwise_gradients() {
    broadcast_case(BroadcastParams::same([2, 3, 7, 5]), 30);
    broadcast_case(
        BroadcastParams {
            a: [2, 3, 7, 5],
            b: [2, 3, 1, 1],
        },
        31,
    );
    broadcast_case(
        BroadcastParams {
            a: [1, 3, 1, 5],
            b: [2, 1, 7, 1],
        },
        32,
    );
    broadcast_case(
        BroadcastParams {
            a: [2, 3, 7, 5],
            b: [1, 3, 7, 1],
        },
        33,
    );
}

#[test]
fn pool_gradients() {
    let mut rng = Rng(40);
    let p = PoolParams {
        batch: 2,
        channels: 3,
        h: 7,
        w: 5,
        kernel: 1,
    };
    let x = rng.vec(2 * 3 * 35);
    let r = rng.vec(6);
    let mut dx = vec![0.0; x.len()];
    pool::global_avg_pool_backward(&mut dx, &r, &p).unwrap();
    check_grad("gap", &x, &dx, |x| {
        let mut y = vec![0.0; 6];
        pool::global_avg_pool_forward(&mut y, x, &p).unwrap();
        dot(&r, &y)
    });
    for (kernel, h, w) in [(5, 7, 5), (9, 11, 6), (13, 9, 14)] {
        let p = PoolParams {
            batch: 2,
            channels: 3,
            h,
            w,
            kernel,
        };
        let x = rng.vec(2 * 3 * h * w);
        let r = rng.vec(x.len());
        let fwd = |x: &[f64]| {
            let (mut y, mut ws) = (vec![0.0; x.len()], vec![0.0; x.len()]);
            pool::max_pool_forward(&mut y, &mut ws, x, &p).unwrap();
            y
        };
        let y = fwd(&x);
        let mut dx = vec![0.0; x.len()];
        pool::max_pool_backward(&mut dx, &r, &x, &y, &p).unwrap();
        check_grad(&format!("maxpool k{kernel}"), &x, &dx, |x| dot(&r, &fwd(x)));
    }
}

#[test]
fn upsample_and_concat_gradients() {
    let mut rng = Rng(50);
    let p = UpsampleParams {
        batch: 2,
        channels: 3,
        h: 7,
        w: 5,
    };
    let x = rng.vec(2 * 3 * 35);
    let r = rng.vec(4 * x.len());
    let mut dx = vec![0.0; x.len()];
    rs::upsample_nearest2x_backward(&mut dx, &r, &p).unwrap();
    check_grad("upsample", &x, &dx, |x| {
        let mut y = vec![0.0; r.len()];
        rs::upsample_nearest2x_forward(&mut y, x, &p).unwrap();
        dot(&r, &y)
    });

    let chans = [3, 1, 2];
    let p = ConcatParams {
        batch: 2,
        spatial: 35,
        channels: &chans,
    };
    let parts: Vec<Vec<f64>> = chans.iter().map(|c| rng.vec(2 * c * 35)).collect();
    let r = rng.vec(2 * 6 * 35);
    let mut grads: Vec<Vec<f64>> = parts.iter().map(|v| vec![0.0; v.len()]).collect();
    {
        let mut g: Vec<&mut [f64]> = grads.iter_mut().map(|v| &mut v[..]).collect();
        cat::concat_channels_backward(&mut g, &r, &p).unwrap();
    }
    for i in 0..3 {
        check_grad(&format!("concat part {i}"), &parts[i], &grads[i], |xi| {
            let mut xs: Vec<&[f64]> = parts.iter().map(|v| &v[..]).collect();
            xs[i] = xi;
            let mut y = vec![0.0; r.len()];
            cat::concat_channels_forward(&mut y, &xs, &p).unwrap();
            dot(&r, &y)
        });
    }
    // split is concat's transpose
    let x = rng.vec(2 * 6 * 35);
    let rs_: Vec<Vec<f64>> = chans.iter().map(|c| rng.vec(2 * c * 35)).collect();
    let rrefs: Vec<&[f64]> = rs_.iter().map(|v| &v[..]).collect();
    let mut dx = vec![0.0; x.len()];
    cat::split_channels_backward(&mut dx, &rrefs, &p).unwrap();
    check_grad("split", &x, &dx, |x| {
        let mut outs: Vec<Vec<f64>> = chans.iter().map(|c| vec![0.0; 2 * c * 35]).collect();
        let mut o: Vec<&mut [f64]> = outs.iter_mut().map(|v| &mut v[..]).collect();
        cat::split_channels_forward(&mut o, x, &p).unwrap();
        outs.iter().zip(&rs_).map(|(y, r)| dot(r, y)).sum()
    });
}
