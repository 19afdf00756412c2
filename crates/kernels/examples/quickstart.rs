//! A ConvBN + SiLU layer, forward and backward, on the CPU kernels.
//!
//! Run: `cargo run -p ringdet-kernels --example quickstart`

use ringdet_kernels::KernelError;
use ringdet_kernels::activation::cpu as act;
use ringdet_kernels::batchnorm::{BatchNormParams, cpu as bn};
use ringdet_kernels::conv::{Conv2dParams, cpu as conv};

fn main() -> Result<(), KernelError> {
    // x: [N=2, C=3, 8, 8] → conv 3×3 stride 1 pad 1 → 4 channels → BN → SiLU
    let p = Conv2dParams::square(2, 3, 4, 8, 8, 3, 1, 1);
    let x: Vec<f32> = (0..2 * 3 * 64)
        .map(|i| (i % 17) as f32 / 17.0 - 0.5)
        .collect();
    let w: Vec<f32> = (0..4 * 3 * 9)
        .map(|i| (i % 7) as f32 / 70.0 - 0.05)
        .collect();
    let mut ws = vec![0.0f32; p.workspace_len()]; // reused by every call of this conv
    let mut y = vec![0.0f32; p.y_shape().iter().product()];
    conv::conv2d_forward(&mut y, &mut ws, &x, &w, None, &p)?;

    // batch norm, split as for SyncBN: local sums → (all-reduce across ranks here) → finish
    let bp = BatchNormParams::new(2, 4, 64);
    let (gamma, beta) = (vec![1.0f32; 4], vec![0.0f32; 4]);
    let (mut rmean, mut rvar) = (vec![0.0f32; 4], vec![1.0f32; 4]);
    let (mut stats, mut saved) = (vec![0.0f32; 8], vec![0.0f32; 8]);
    bn::batchnorm_stats_forward(&mut stats, &y, &bp)?;
    let mut z = vec![0.0f32; y.len()];
    bn::batchnorm_forward_train(
        &mut z,
        &mut saved,
        &mut rmean,
        &mut rvar,
        &y,
        &gamma,
        &beta,
        &stats,
        bp.count(),
        &bp,
    )?;
    let mut out = vec![0.0f32; z.len()];
    act::silu_forward(&mut out, &z)?;

    // backward of loss = Σ out: every backward accumulates (+=) into zeroed gradients
    let dout = vec![1.0f32; out.len()];
    let mut dz = vec![0.0f32; z.len()];
    act::silu_backward(&mut dz, &dout, &z)?;
    let mut dstats = vec![0.0f32; 8];
    bn::batchnorm_stats_backward(&mut dstats, &dz, &y, &saved, &bp)?;
    let (mut dy, mut dgamma, mut dbeta) = (vec![0.0f32; y.len()], vec![0.0f32; 4], vec![0.0f32; 4]);
    bn::batchnorm_backward(
        &mut dy,
        &mut dgamma,
        &mut dbeta,
        &dz,
        &y,
        &saved,
        &gamma,
        &dstats,
        &dstats,
        bp.count(),
        &bp,
    )?;
    let (mut dx, mut dw) = (vec![0.0f32; x.len()], vec![0.0f32; w.len()]);
    conv::conv2d_backward_data(&mut dx, &mut ws, &dy, &w, &p)?;
    conv::conv2d_backward_filter(&mut dw, None, &mut ws, &dy, &x, &p)?;

    println!(
        "output sum {:.4}, running mean {:?}",
        out.iter().sum::<f32>(),
        rmean
    );
    println!(
        "|dx| {:.4e}, |dw| {:.4e}, dgamma {:?}",
        norm(&dx),
        norm(&dw),
        dgamma
    );
    // a wrong shape is an error naming the op and the shapes, never a panic
    let err = conv::conv2d_forward(&mut y, &mut ws, &x[1..], &w, None, &p).unwrap_err();
    println!("error example: {err}");
    Ok(())
}

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|a| a * a).sum::<f32>().sqrt()
}
