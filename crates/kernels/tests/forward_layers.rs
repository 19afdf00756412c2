//! Small literal forward cases, SyncBN split equivalence, and error reporting.

use ringdet_kernels::KernelError;
use ringdet_kernels::activation::cpu as act;
use ringdet_kernels::batchnorm::{BatchNormParams, cpu as bn};
use ringdet_kernels::concat::{ConcatParams, cpu as cat};
use ringdet_kernels::conv::{Conv2dParams, cpu as conv};
use ringdet_kernels::elementwise::{BroadcastParams, cpu as ew};
use ringdet_kernels::pool::{PoolParams, cpu as pool};
use ringdet_kernels::resize::{UpsampleParams, cpu as rs};

fn close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol,
            "element {i}: {x} vs {y} ({a:?} vs {b:?})"
        );
    }
}

#[test]
fn conv_literal() {
    let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    let w = vec![1.0f32; 9];
    let p = Conv2dParams::square(1, 1, 1, 3, 3, 3, 1, 1);
    let mut y = vec![0.0; 9];
    let mut ws = vec![0.0; p.workspace_len()];
    conv::conv2d_forward(&mut y, &mut ws, &x, &w, None, &p).unwrap();
    close(&y, &[12., 21., 16., 27., 45., 33., 24., 39., 28.], 0.0);
    let p2 = Conv2dParams::square(1, 1, 1, 3, 3, 3, 2, 1);
    let mut y2 = vec![0.0; 4];
    conv::conv2d_forward(&mut y2, &mut ws, &x, &w, Some(&[1.0]), &p2).unwrap();
    close(&y2, &[13., 17., 25., 29.], 0.0);
    // 1x1 conv mixes channels: y_k = Σ_c w[k,c] x_c
    let p3 = Conv2dParams::square(1, 2, 1, 1, 2, 1, 1, 0);
    let mut y3 = vec![0.0; 2];
    conv::conv2d_forward(
        &mut y3,
        &mut [],
        &[1., 2., 3., 4.],
        &[10., 100.],
        Some(&[0.5]),
        &p3,
    )
    .unwrap();
    close(&y3, &[310.5, 420.5], 0.0);
}

#[test]
fn activation_literal() {
    let mut y = [0.0f32; 4];
    act::hardsigmoid_forward(&mut y, &[0., 3., -3., 1.]).unwrap();
    close(&y, &[0.5, 1.0, 0.0, 0.6666667], 1e-6);
    act::silu_forward(&mut y, &[0., 1., -1., 10.]).unwrap();
    close(&y, &[0.0, 0.7310586, -0.26894143, 9.999546], 1e-6);
    act::sigmoid_forward(&mut y, &[0., 1., -1., 10.]).unwrap();
    close(&y, &[0.5, 0.7310586, 0.26894143, 0.9999546], 1e-6);
}

#[test]
fn pool_upsample_concat_literal() {
    let p = PoolParams {
        batch: 1,
        channels: 1,
        h: 1,
        w: 5,
        kernel: 5,
    };
    let x = [3.0f32, 1., 4., 1., 5.];
    let (mut y, mut ws) = ([0.0f32; 5], [0.0f32; 5]);
    pool::max_pool_forward(&mut y, &mut ws, &x, &p).unwrap();
    close(&y, &[4., 4., 5., 5., 5.], 0.0);
    let mut dx = [0.0f32; 5];
    pool::max_pool_backward(&mut dx, &[1., 2., 3., 4., 5.], &x, &y, &p).unwrap();
    close(&dx, &[0., 0., 3., 0., 12.], 0.0);
    // ties: the first match in the window gets the gradient
    let xt = [2.0f32, 2., 2.];
    let pt = PoolParams {
        batch: 1,
        channels: 1,
        h: 1,
        w: 3,
        kernel: 5,
    };
    let (mut yt, mut wst, mut dxt) = ([0.0f32; 3], [0.0f32; 3], [0.0f32; 3]);
    pool::max_pool_forward(&mut yt, &mut wst, &xt, &pt).unwrap();
    pool::max_pool_backward(&mut dxt, &[1., 1., 1.], &xt, &yt, &pt).unwrap();
    close(&dxt, &[3., 0., 0.], 0.0);

    let mut g = [0.0f32; 2];
    pool::global_avg_pool_forward(
        &mut g,
        &[1., 2., 3., 4., 10., 10., 10., 10.],
        &PoolParams {
            batch: 1,
            channels: 2,
            h: 2,
            w: 2,
            kernel: 1,
        },
    )
    .unwrap();
    close(&g, &[2.5, 10.0], 0.0);

    let mut up = [0.0f32; 16];
    rs::upsample_nearest2x_forward(
        &mut up,
        &[1., 2., 3., 4.],
        &UpsampleParams {
            batch: 1,
            channels: 1,
            h: 2,
            w: 2,
        },
    )
    .unwrap();
    close(
        &up,
        &[
            1., 1., 2., 2., 1., 1., 2., 2., 3., 3., 4., 4., 3., 3., 4., 4.,
        ],
        0.0,
    );

    let ch = [1, 2];
    let p = ConcatParams {
        batch: 2,
        spatial: 1,
        channels: &ch,
    };
    let mut y = [0.0f32; 6];
    cat::concat_channels_forward(&mut y, &[&[1., 2.], &[3., 4., 5., 6.]], &p).unwrap();
    close(&y, &[1., 3., 4., 2., 5., 6.], 0.0);
}

#[test]
fn channel_gate_literal() {
    let p = BroadcastParams {
        a: [1, 2, 1, 2],
        b: [1, 2, 1, 1],
    };
    let mut y = [0.0f32; 4];
    ew::mul_forward(&mut y, &[1., 2., 3., 4.], &[10., 100.], &p).unwrap();
    close(&y, &[10., 20., 300., 400.], 0.0);
    let (mut da, mut db) = ([0.0f32; 4], [0.0f32; 2]);
    ew::mul_backward(
        Some(&mut da),
        Some(&mut db),
        &[1., 1., 1., 1.],
        &[1., 2., 3., 4.],
        &[10., 100.],
        &p,
    )
    .unwrap();
    close(&da, &[10., 10., 100., 100.], 0.0);
    close(&db, &[3., 7.], 0.0);
}

#[test]
fn batchnorm_literal_and_running_stats() {
    let p = BatchNormParams::new(1, 1, 4);
    let x = [1.0f32, 2., 3., 4.];
    let (mut st, mut saved, mut y) = ([0.0f32; 2], [0.0f32; 2], [0.0f32; 4]);
    let (mut rm, mut rv) = ([0.0f32], [1.0f32]);
    bn::batchnorm_stats_forward(&mut st, &x, &p).unwrap();
    close(&st, &[10., 30.], 0.0);
    bn::batchnorm_forward_train(
        &mut y,
        &mut saved,
        &mut rm,
        &mut rv,
        &x,
        &[2.0],
        &[1.0],
        &st,
        4,
        &p,
    )
    .unwrap();
    let s = (1.25f32 + 1e-5).sqrt();
    close(
        &y,
        &[1. - 3. / s, 1. - 1. / s, 1. + 1. / s, 1. + 3. / s],
        1e-6,
    );
    close(&rm, &[0.25], 1e-7);
    close(&rv, &[1.025], 1e-7);
    let mut yi = [0.0f32; 4];
    bn::batchnorm_forward_inference(&mut yi, &x, &[1.0], &[0.0], &[2.5], &[1.25], &p).unwrap();
    close(&yi, &[-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s], 1e-6);
}

/// Two ranks with different spatial sizes, sums combined, equal one BN over all the data.
#[test]
fn syncbn_split_matches_single() {
    let c = 3;
    let xa: Vec<f64> = (0..2 * c * 5)
        .map(|i| ((i * 7) % 11) as f64 * 0.3 - 1.0)
        .collect();
    let xb: Vec<f64> = (0..c * 9)
        .map(|i| ((i * 5) % 13) as f64 * 0.2 + 0.5)
        .collect();
    let dya: Vec<f64> = (0..xa.len()).map(|i| ((i * 3) % 7) as f64 - 3.0).collect();
    let dyb: Vec<f64> = (0..xb.len())
        .map(|i| ((i * 2) % 5) as f64 * 0.5 - 1.0)
        .collect();
    let (pa, pb) = (BatchNormParams::new(2, c, 5), BatchNormParams::new(1, c, 9));
    // the single reference: per channel, the 19 values laid out as one image of spatial 19
    let pr = BatchNormParams::new(1, c, 19);
    let gather = |a: &[f64], b: &[f64]| -> Vec<f64> {
        let mut v = vec![];
        for ch in 0..c {
            for n in 0..2 {
                v.extend_from_slice(&a[(n * c + ch) * 5..(n * c + ch + 1) * 5]);
            }
            v.extend_from_slice(&b[ch * 9..(ch + 1) * 9]);
        }
        v
    };
    let (gamma, beta) = (vec![1.5, 0.5, -1.0], vec![0.1, 0.2, 0.3]);
    let run = |x: &[f64], dy: &[f64], st: &[f64], count: usize, p: &BatchNormParams| {
        let (mut y, mut saved, mut rm, mut rv) = (
            vec![0.0; x.len()],
            vec![0.0; 2 * c],
            vec![0.0; c],
            vec![1.0; c],
        );
        bn::batchnorm_forward_train(
            &mut y, &mut saved, &mut rm, &mut rv, x, &gamma, &beta, st, count, p,
        )
        .unwrap();
        let mut ds = vec![0.0; 2 * c];
        bn::batchnorm_stats_backward(&mut ds, dy, x, &saved, p).unwrap();
        (y, saved, ds, rm, rv)
    };
    let stats = |x: &[f64], p: &BatchNormParams| {
        let mut s = vec![0.0; 2 * c];
        bn::batchnorm_stats_forward(&mut s, x, p).unwrap();
        s
    };
    let (sa, sb) = (stats(&xa, &pa), stats(&xb, &pb));
    let st: Vec<f64> = sa.iter().zip(&sb).map(|(a, b)| a + b).collect();
    let count = pa.count() + pb.count();
    let (ya, saved_a, dsa, rma, rva) = run(&xa, &dya, &st, count, &pa);
    let (yb, saved_b, dsb, _, _) = run(&xb, &dyb, &st, count, &pb);
    let ds: Vec<f64> = dsa.iter().zip(&dsb).map(|(a, b)| a + b).collect();
    let xr = gather(&xa, &xb);
    let dyr = gather(&dya, &dyb);
    let (yr, saved_r, dsr, rmr, rvr) = run(&xr, &dyr, &stats(&xr, &pr), pr.count(), &pr);
    let eq = |a: &[f64], b: &[f64]| {
        a.iter()
            .zip(b)
            .for_each(|(x, y)| assert!((x - y).abs() < 1e-12, "{a:?} vs {b:?}"))
    };
    eq(&gather(&ya, &yb), &yr);
    eq(&saved_a, &saved_r);
    eq(&saved_b, &saved_r);
    eq(&ds, &dsr);
    eq(&rma, &rmr);
    eq(&rva, &rvr);
    let finish = |dy: &[f64], x: &[f64], saved: &[f64], local: &[f64], p: &BatchNormParams| {
        let (mut dx, mut dg, mut db) = (vec![0.0; x.len()], vec![0.0; c], vec![0.0; c]);
        bn::batchnorm_backward(
            &mut dx, &mut dg, &mut db, dy, x, saved, &gamma, local, &ds, count, p,
        )
        .unwrap();
        (dx, dg, db)
    };
    let (dxa, dga, dba) = finish(&dya, &xa, &saved_a, &dsa, &pa);
    let (dxb, dgb, dbb) = finish(&dyb, &xb, &saved_b, &dsb, &pb);
    let (dxr, dgr, dbr) = finish(&dyr, &xr, &saved_r, &dsr, &pr);
    eq(&gather(&dxa, &dxb), &dxr);
    let add = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x + y).collect::<Vec<_>>();
    eq(&add(&dga, &dgb), &dgr);
    eq(&add(&dba, &dbb), &dbr);
}

#[test]
fn errors_name_op_and_shapes() {
    let p = Conv2dParams::square(2, 3, 4, 7, 5, 3, 1, 1);
    let mut y = vec![0.0f32; 2 * 4 * 35];
    let mut ws = vec![0.0f32; p.workspace_len()];
    let err =
        conv::conv2d_forward(&mut y, &mut ws, &[0.0; 209], &[0.0; 108], None, &p).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("conv2d_forward") && msg.contains("[2, 3, 7, 5]") && msg.contains("209"),
        "{msg}"
    );
    let err = conv::conv2d_forward(&mut y, &mut ws[..10], &[0.0; 210], &[0.0; 108], None, &p)
        .unwrap_err();
    assert!(
        matches!(
            err,
            KernelError::Length {
                what: "workspace",
                ..
            }
        ),
        "{err}"
    );
    let bp = BroadcastParams {
        a: [2, 3, 7, 5],
        b: [2, 2, 1, 1],
    };
    let err = ew::add_forward(&mut [0.0f32; 210], &[0.0; 210], &[0.0; 4], &bp).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("add_forward") && msg.contains("[2, 3, 7, 5]") && msg.contains("[2, 2, 1, 1]"),
        "{msg}"
    );
    let err = pool::max_pool_forward(
        &mut [0.0f32; 4],
        &mut [0.0; 4],
        &[0.0; 4],
        &PoolParams {
            batch: 1,
            channels: 1,
            h: 2,
            w: 2,
            kernel: 4,
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("odd"), "{err}");
    let err = act::silu_forward(&mut [0.0f32; 3], &[0.0; 4]).unwrap_err();
    assert!(err.to_string().contains("silu_forward"), "{err}");
    let bad = Conv2dParams::square(1, 1, 1, 2, 2, 5, 1, 0);
    let err = conv::conv2d_forward(
        &mut [0.0f32; 1],
        &mut [0.0; 100],
        &[0.0; 4],
        &[0.0; 25],
        None,
        &bad,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("larger than the padded input"),
        "{err}"
    );
}
