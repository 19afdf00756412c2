//! SGD, AdamW, EMA and the inference folds against hand-computed values and against the unfused layers.

use ringdet_kernels::batchnorm::{BatchNormParams, cpu as bn};
use ringdet_kernels::conv::{Conv2dParams, cpu as conv};
use ringdet_kernels::fuse::{FoldParams, RepVggParams, cpu as fuse};
use ringdet_kernels::optimizer::{AdamwParams, EmaParams, SgdParams, cpu as opt};

#[test]
fn sgd_momentum_with_masked_decay() {
    let mut th = vec![1.0f64, 2.0];
    let mut v = vec![0.5, 0.5];
    let g = [0.1, 0.1];
    let p = SgdParams {
        lr: 0.1,
        momentum: 0.9,
        weight_decay: 0.01,
    };
    opt::sgd_momentum_step(&mut th, &mut v, &g, &[1, 0], &p).unwrap();
    // decayed: g' = 0.1 + 0.01·1 = 0.11, v = 0.45 + 0.11 = 0.56, θ = 1 − 0.056
    // not decayed: v = 0.45 + 0.1 = 0.55, θ = 2 − 0.055
    let want_v = [0.56, 0.55];
    let want_th = [0.944, 1.945];
    for i in 0..2 {
        assert!(
            (v[i] - want_v[i]).abs() < 1e-15 && (th[i] - want_th[i]).abs() < 1e-15,
            "{v:?} {th:?}"
        );
    }
    assert!(
        opt::sgd_momentum_step(&mut th, &mut v, &g, &[1], &p)
            .unwrap_err()
            .to_string()
            .contains("decay_mask")
    );
}

#[test]
fn adamw_matches_paddles_update() {
    // Two steps of Paddle's AdamW written out: decoupled decay, moments, bias-corrected step
    // with epsilon scaled by sqrt(1 - beta2^t).
    let p = |step| AdamwParams {
        lr: 0.1,
        beta1: 0.9,
        beta2: 0.999,
        epsilon: 1e-8,
        weight_decay: 0.01,
        step,
    };
    let (mut th, mut m, mut v) = (vec![1.0f64, 2.0], vec![0.0; 2], vec![0.0; 2]);
    let grads = [[0.5, -0.25], [0.1, 0.3]];
    let mut want = [1.0f64, 2.0];
    let (mut wm, mut wv) = ([0.0f64; 2], [0.0f64; 2]);
    for (k, g) in grads.iter().enumerate() {
        let t = k as i32 + 1;
        opt::adamw_step(&mut th, &mut m, &mut v, g, &[1, 0], &p(t as u64)).unwrap();
        for i in 0..2 {
            if i == 0 {
                want[i] *= 1.0 - 0.1 * 0.01;
            }
            wm[i] = 0.9 * wm[i] + 0.1 * g[i];
            wv[i] = 0.999 * wv[i] + 0.001 * g[i] * g[i];
            let c2 = (1.0 - 0.999f64.powi(t)).sqrt();
            let lr_t = 0.1 * c2 / (1.0 - 0.9f64.powi(t));
            want[i] -= lr_t * wm[i] / (wv[i].sqrt() + 1e-8 * c2);
        }
        for i in 0..2 {
            assert!(
                (th[i] - want[i]).abs() < 1e-14,
                "step {t}: {th:?} vs {want:?}"
            );
            assert!((m[i] - wm[i]).abs() < 1e-15 && (v[i] - wv[i]).abs() < 1e-15);
        }
    }
    assert!(
        opt::adamw_step(&mut th, &mut m, &mut v, &[0.0], &[1, 0], &p(3))
            .unwrap_err()
            .to_string()
            .contains("grads")
    );
}

#[test]
fn ema_threshold_and_bias_correction() {
    let p = EmaParams::default();
    assert_eq!(p.threshold_decay(0), 0.1);
    assert_eq!(p.threshold_decay(10), 11.0 / 20.0);
    assert_eq!(p.threshold_decay(1_000_000), 0.9998);
    let mut ema = vec![0.0f64; 3];
    let theta = [1.0, -2.0, 3.0];
    let mut last = 0.0;
    for t in 0..3 {
        last = opt::ema_update(&mut ema, &theta, t, &p).unwrap();
    }
    // constant θ: ema = θ·(1 − d0·d1·d2); the correction divides by 1 − d2³ (Paddle's formula)
    let (d0, d1, d2) = (0.1, 2.0 / 11.0, 3.0 / 12.0);
    assert_eq!(last, d2);
    let mut out = vec![0.0; 3];
    opt::ema_apply(&mut out, &ema, last, 3).unwrap();
    for i in 0..3 {
        assert!((ema[i] - theta[i] * (1.0 - d0 * d1 * d2)).abs() < 1e-15);
        assert!((out[i] - ema[i] / (1.0 - d2 * d2 * d2)).abs() < 1e-15);
    }
}

/// conv → BN(inference) equals the folded conv; 3×3 + 1×1 branches equal the RepVGG-fused conv.
#[test]
fn conv_bn_fold_and_repvgg_fuse_match_unfused() {
    let (n, c, k, h, w) = (2, 3, 4, 7, 5);
    let val = |i: usize, s: usize| (((i * 7919 + s * 104729) % 997) as f64) / 498.5 - 1.0;
    let x: Vec<f64> = (0..n * c * h * w).map(|i| val(i, 1)).collect();
    let w3: Vec<f64> = (0..k * c * 9).map(|i| val(i, 2)).collect();
    let w1: Vec<f64> = (0..k * c).map(|i| val(i, 3)).collect();
    let bnp = |s: usize| -> [Vec<f64>; 4] {
        [
            (0..k).map(|i| 1.0 + 0.3 * val(i, s)).collect(),
            (0..k).map(|i| val(i, s + 1)).collect(),
            (0..k).map(|i| 0.2 * val(i, s + 2)).collect(),
            (0..k).map(|i| 1.0 + 0.5 * val(i, s + 3).abs()).collect(),
        ]
    };
    let (bn3, bn1) = (bnp(10), bnp(20));
    let p3 = Conv2dParams::square(n, c, k, h, w, 3, 1, 1);
    let p1 = Conv2dParams::square(n, c, k, h, w, 1, 1, 0);
    let bp = BatchNormParams::new(n, k, h * w);
    let branch = |wt: &[f64], p: &Conv2dParams, b: &[Vec<f64>; 4]| {
        let mut y = vec![0.0; n * k * h * w];
        conv::conv2d_forward(&mut y, &mut vec![0.0; p.workspace_len()], &x, wt, None, p).unwrap();
        let mut z = vec![0.0; y.len()];
        bn::batchnorm_forward_inference(&mut z, &y, &b[0], &b[1], &b[2], &b[3], &bp).unwrap();
        z
    };
    let reference: Vec<f64> = branch(&w3, &p3, &bn3)
        .iter()
        .zip(branch(&w1, &p1, &bn1))
        .map(|(a, b)| a + b)
        .collect();
    let fold = |wt: &[f64], per: usize, b: &[Vec<f64>; 4]| {
        let (mut wo, mut bo) = (vec![0.0; wt.len()], vec![0.0; k]);
        let fp = FoldParams {
            out_channels: k,
            per_out: per,
            eps: 1e-5,
        };
        fuse::fold_conv_bn(&mut wo, &mut bo, wt, None, &b[0], &b[1], &b[2], &b[3], &fp).unwrap();
        (wo, bo)
    };
    let ((fw3, fb3), (fw1, fb1)) = (fold(&w3, c * 9, &bn3), fold(&w1, c, &bn1));
    let (mut wf, mut bf) = (vec![0.0; w3.len()], vec![0.0; k]);
    fuse::repvgg_fuse(
        &mut wf,
        &mut bf,
        &fw3,
        &fb3,
        &fw1,
        &fb1,
        &RepVggParams {
            out_channels: k,
            in_channels: c,
            alpha: 1.0,
        },
    )
    .unwrap();
    let mut y = vec![0.0; reference.len()];
    conv::conv2d_forward(
        &mut y,
        &mut vec![0.0; p3.workspace_len()],
        &x,
        &wf,
        Some(&bf),
        &p3,
    )
    .unwrap();
    for (a, b) in y.iter().zip(&reference) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }
}
