//! GPU-vs-CPU parity of conv2d in all three directions, on both engines (f32 SIMT: rel. L2
//! ≤ 1e-5; bf16 tensor cores: ≤ 1e-2 against the f32 CPU reference on the same f32 inputs), for
//! odd shapes that cover 3×3, strided, 1×1 (the fast path) and strided 1×1 convolutions, with
//! GEMM extents that are not tile multiples.

use super::common::{BF16_TOL, F32_TOL, Gpu, check};
use ringdet_kernels::conv::cuda::ConvMath;
use ringdet_kernels::conv::{Conv2dParams, cpu as conv, cuda as conv_gpu};
use ringdet_kernels::runtime::testing::gpu_or_skip;

fn cases() -> Vec<Conv2dParams> {
    vec![
        Conv2dParams::square(1, 1, 1, 1, 1, 1, 1, 0),
        Conv2dParams::square(2, 3, 5, 9, 7, 3, 1, 1),
        Conv2dParams::square(3, 17, 33, 13, 11, 3, 2, 1),
        Conv2dParams::square(2, 67, 45, 15, 17, 1, 1, 0),
        Conv2dParams::square(2, 29, 70, 19, 21, 1, 2, 0),
        Conv2dParams::square(1, 5, 7, 8, 9, 5, 1, 2),
        Conv2dParams {
            kernel_h: 3,
            kernel_w: 1,
            pad_h: 1,
            pad_w: 0,
            ..Conv2dParams::square(2, 7, 9, 11, 13, 3, 1, 1)
        },
        Conv2dParams::square(1, 96, 96, 40, 40, 3, 1, 1),
    ]
}

fn run(math: ConvMath, tol: f64, test: &str) {
    let Some(rt) = gpu_or_skip(test) else { return };
    let mut g = Gpu::new(&rt, 41 + math as u64);
    for p in cases() {
        let (nx, nw, ny) = (
            p.x_shape().iter().product(),
            p.w_shape().iter().product(),
            p.y_shape().iter().product(),
        );
        let (x, w, bias) = (g.normal(nx), g.normal(nw), g.normal(p.out_channels));
        let (xd, wd, bd) = (g.up(&x), g.up(&w), g.up(&bias));
        let mut ws = vec![0.0f32; p.workspace_len()];
        let what = format!("{math:?} {p:?}");

        let mut y = vec![0.0; ny];
        conv::conv2d_forward(&mut y, &mut ws, &x, &w, Some(&bias), &p).unwrap();
        let mut yd = g.poisoned(ny);
        conv_gpu::conv2d_forward(&rt, &mut yd, &xd, &wd, Some(&bd), &p, math).unwrap();
        check(&format!("forward {what}"), &g.down(&yd), &y, tol);

        let dy = g.normal(ny);
        let dyd = g.up(&dy);
        let dx0 = g.normal(nx);
        let mut dx = dx0.clone();
        conv::conv2d_backward_data(&mut dx, &mut ws, &dy, &w, &p).unwrap();
        let mut dxd = g.up(&dx0);
        conv_gpu::conv2d_backward_data(&rt, &mut dxd, &dyd, &wd, &p, math).unwrap();
        // Compare the increments: the random start would hide a relative error in them.
        let inc = |v: Vec<f32>| v.iter().zip(&dx0).map(|(a, b)| a - b).collect::<Vec<_>>();
        check(
            &format!("backward data {what}"),
            &inc(g.down(&dxd)),
            &inc(dx.clone()),
            tol,
        );

        let (dw0, db0) = (g.normal(nw), g.normal(p.out_channels));
        let (mut dw, mut db) = (dw0.clone(), db0.clone());
        conv::conv2d_backward_filter(&mut dw, Some(&mut db), &mut ws, &dy, &x, &p).unwrap();
        let (mut dwd, mut dbd) = (g.up(&dw0), g.up(&db0));
        conv_gpu::conv2d_backward_filter(&rt, &mut dwd, Some(&mut dbd), &dyd, &xd, &p, math)
            .unwrap();
        let incw = |v: Vec<f32>| v.iter().zip(&dw0).map(|(a, b)| a - b).collect::<Vec<_>>();
        check(
            &format!("backward filter {what}"),
            &incw(g.down(&dwd)),
            &incw(dw.clone()),
            tol,
        );
        check(&format!("bias grad {what}"), &g.down(&dbd), &db, F32_TOL);
    }
}

#[test]
fn conv2d_f32_cuda_matches_cpu() {
    run(ConvMath::F32, F32_TOL, "conv2d_f32_cuda_matches_cpu");
}

#[test]
fn conv2d_bf16_tensor_core_cuda_matches_cpu() {
    run(
        ConvMath::Bf16TensorCore,
        BF16_TOL,
        "conv2d_bf16_tensor_core_cuda_matches_cpu",
    );
}
