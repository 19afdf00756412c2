//! GPU-vs-CPU parity of the head and training-update families: DFL decode, the four losses,
//! SGD and EMA. Odd sizes, fresh random inputs, overwritten outputs NaN-poisoned first.

use super::common::{F32_TOL, Gpu, check};
use ringdet_kernels::dfl::{DflParams, cpu as dfl, cuda as dfl_gpu};
use ringdet_kernels::loss::{
    BoxLossParams, VarifocalParams, bce, cuda as loss_gpu, dfl as dfl_loss, giou, varifocal,
};
use ringdet_kernels::optimizer::{EmaParams, SgdParams, cpu as opt, cuda as opt_gpu};
use ringdet_kernels::runtime::testing::gpu_or_skip;

#[test]
fn dfl_decode_cuda_matches_cpu() {
    let Some(rt) = gpu_or_skip("dfl_decode_cuda_matches_cpu") else {
        return;
    };
    let mut g = Gpu::new(&rt, 21);
    for p in [
        DflParams::nchw(3, 37),
        DflParams {
            outer: 101,
            sides: 4,
            bins: 17,
            inner: 1,
        },
        DflParams {
            outer: 2,
            sides: 3,
            bins: 5,
            inner: 401,
        },
    ] {
        let (nl, nd) = (
            p.logits_shape().iter().product::<usize>(),
            p.dist_shape().iter().product::<usize>(),
        );
        let logits: Vec<f32> = g.normal(nl).iter().map(|v| v * 3.0).collect();
        let mut prob = vec![0.0; nl];
        dfl::softmax_bins_forward(&mut prob, &logits, &p).unwrap();
        let mut probd = g.poisoned(nl);
        dfl_gpu::softmax_bins_forward(&rt, &mut probd, &g.up(&logits), &p).unwrap();
        check(
            &format!("softmax forward {p:?}"),
            &g.down(&probd),
            &prob,
            F32_TOL,
        );
        let mut dist = vec![0.0; nd];
        dfl::dfl_integral_forward(&mut dist, &prob, &p).unwrap();
        let mut distd = g.poisoned(nd);
        let probd = g.up(&prob);
        dfl_gpu::dfl_integral_forward(&rt, &mut distd, &probd, &p).unwrap();
        check(
            &format!("integral forward {p:?}"),
            &g.down(&distd),
            &dist,
            F32_TOL,
        );
        let (dprob, dl0, ddist) = (g.normal(nl), g.normal(nl), g.normal(nd));
        let mut dl = dl0.clone();
        dfl::softmax_bins_backward(&mut dl, &dprob, &prob, &p).unwrap();
        let mut dld = g.up(&dl0);
        dfl_gpu::softmax_bins_backward(&rt, &mut dld, &g.up(&dprob), &probd, &p).unwrap();
        check(
            &format!("softmax backward {p:?}"),
            &g.down(&dld),
            &dl,
            F32_TOL,
        );
        let mut dp = dl0.clone();
        dfl::dfl_integral_backward(&mut dp, &ddist, &p).unwrap();
        let (mut dpd, ddistd) = (g.up(&dl0), g.up(&ddist));
        dfl_gpu::dfl_integral_backward(&rt, &mut dpd, &ddistd, &p).unwrap();
        check(
            &format!("integral backward {p:?}"),
            &g.down(&dpd),
            &dp,
            F32_TOL,
        );
        let mut dd = dl0.clone();
        dfl::dfl_decode_backward(&mut dd, &ddist, &prob, &dist, &p).unwrap();
        let mut ddd = g.up(&dl0);
        dfl_gpu::dfl_decode_backward(&rt, &mut ddd, &ddistd, &probd, &g.up(&dist), &p).unwrap();
        check(
            &format!("decode backward {p:?}"),
            &g.down(&ddd),
            &dd,
            F32_TOL,
        );
    }
}

#[test]
fn bce_and_varifocal_cuda_match_cpu() {
    let Some(rt) = gpu_or_skip("bce_and_varifocal_cuda_match_cpu") else {
        return;
    };
    let mut g = Gpu::new(&rt, 22);
    for n in [1usize, 333, 80 * 1001] {
        let pred = g.uniform(n, 0.001, 0.999);
        let target = g.uniform(n, 0.0, 1.0);
        let label: Vec<f32> = g
            .uniform(n, 0.0, 1.0)
            .iter()
            .map(|&u| (u < 0.1) as u8 as f32)
            .collect();
        let (pd, td, ld) = (g.up(&pred), g.up(&target), g.up(&label));
        let mut l = vec![0.0; n];
        bce::bce_forward(&mut l, &pred, &target).unwrap();
        let mut lg = g.poisoned(n);
        loss_gpu::bce_forward(&rt, &mut lg, &pd, &td).unwrap();
        check(&format!("bce forward n={n}"), &g.down(&lg), &l, F32_TOL);
        let (dl, d0) = (g.normal(n), g.normal(n));
        let mut d = d0.clone();
        bce::bce_backward(&mut d, &dl, &pred, &target).unwrap();
        let mut dd = g.up(&d0);
        loss_gpu::bce_backward(&rt, &mut dd, &g.up(&dl), &pd, &td).unwrap();
        check(&format!("bce backward n={n}"), &g.down(&dd), &d, F32_TOL);
        let vp = VarifocalParams {
            normalizer: 7.5,
            ..Default::default()
        };
        let want = varifocal::varifocal_loss_forward(&pred, &target, &label, &vp).unwrap();
        let mut ld1 = g.poisoned(1);
        loss_gpu::varifocal_loss_forward(&rt, &mut ld1, &pd, &td, &ld, &vp).unwrap();
        check(
            &format!("varifocal forward n={n}"),
            &g.down(&ld1),
            &[want],
            F32_TOL,
        );
        let mut d = d0.clone();
        varifocal::varifocal_loss_backward(&mut d, &pred, &target, &label, 0.75, &vp).unwrap();
        let mut dd = g.up(&d0);
        loss_gpu::varifocal_loss_backward(&rt, &mut dd, &pd, &td, &ld, 0.75, &vp).unwrap();
        check(
            &format!("varifocal backward n={n}"),
            &g.down(&dd),
            &d,
            F32_TOL,
        );
    }
}

/// `n` random boxes x1 < x2, y1 < y2 in a 40x40 grid.
fn boxes(g: &mut Gpu, n: usize) -> Vec<f32> {
    let u = g.uniform(4 * n, 0.0, 20.0);
    u.chunks(4)
        .flat_map(|c| [c[0], c[1], c[0] + c[2] + 0.5, c[1] + c[3] + 0.5])
        .collect()
}

#[test]
fn giou_and_dfl_losses_cuda_match_cpu() {
    let Some(rt) = gpu_or_skip("giou_and_dfl_losses_cuda_match_cpu") else {
        return;
    };
    let mut g = Gpu::new(&rt, 23);
    for n in [1usize, 19, 2053] {
        let bp = BoxLossParams {
            bins: 17,
            normalizer: 3.25,
        };
        let (pred, gt, w) = (boxes(&mut g, n), boxes(&mut g, n), g.uniform(n, 0.1, 1.0));
        let (pd, gd, wd) = (g.up(&pred), g.up(&gt), g.up(&w));
        let mut per = vec![0.0; n];
        giou::giou_per_box(&mut per, &pred, &gt).unwrap();
        let mut perd = g.poisoned(n);
        loss_gpu::giou_per_box(&rt, &mut perd, &pd, &gd).unwrap();
        check(
            &format!("giou per box n={n}"),
            &g.down(&perd),
            &per,
            F32_TOL,
        );
        let want = giou::giou_loss_forward(&pred, &gt, &w, &bp).unwrap();
        let mut l = g.poisoned(1);
        loss_gpu::giou_loss_forward(&rt, &mut l, &pd, &gd, &wd, &bp).unwrap();
        check(
            &format!("giou forward n={n}"),
            &g.down(&l),
            &[want],
            F32_TOL,
        );
        let d0 = g.normal(4 * n);
        let mut d = d0.clone();
        giou::giou_loss_backward(&mut d, &pred, &gt, &w, 1.5, &bp).unwrap();
        let mut dd = g.up(&d0);
        loss_gpu::giou_loss_backward(&rt, &mut dd, &pd, &gd, &wd, 1.5, &bp).unwrap();
        check(&format!("giou backward n={n}"), &g.down(&dd), &d, F32_TOL);

        let anchors: Vec<f32> = g.uniform(2 * n, 5.0, 15.0);
        let b = boxes(&mut g, n);
        let mut t = vec![0.0; 4 * n];
        dfl_loss::dfl_targets(&mut t, &anchors, &b, 16).unwrap();
        let mut td = g.poisoned(4 * n);
        loss_gpu::dfl_targets(&rt, &mut td, &g.up(&anchors), &g.up(&b), 16).unwrap();
        check(&format!("dfl targets n={n}"), &g.down(&td), &t, F32_TOL);
        let logits = g.normal(4 * 17 * n);
        let lgd = g.up(&logits);
        let want = dfl_loss::dfl_loss_forward(&logits, &t, &w, &bp).unwrap();
        let mut l = g.poisoned(1);
        loss_gpu::dfl_loss_forward(&rt, &mut l, &lgd, &td, &wd, &bp).unwrap();
        check(
            &format!("dfl loss forward n={n}"),
            &g.down(&l),
            &[want],
            F32_TOL,
        );
        let d0 = g.normal(4 * 17 * n);
        let mut d = d0.clone();
        dfl_loss::dfl_loss_backward(&mut d, &logits, &t, &w, 0.5, &bp).unwrap();
        let mut dd = g.up(&d0);
        loss_gpu::dfl_loss_backward(&rt, &mut dd, &lgd, &td, &wd, 0.5, &bp).unwrap();
        check(
            &format!("dfl loss backward n={n}"),
            &g.down(&dd),
            &d,
            F32_TOL,
        );
    }
}

#[test]
fn sgd_and_ema_cuda_match_cpu() {
    let Some(rt) = gpu_or_skip("sgd_and_ema_cuda_match_cpu") else {
        return;
    };
    let mut g = Gpu::new(&rt, 24);
    let n = 1_000_003;
    let (mut th, mut v, grads) = (g.normal(n), g.normal(n), g.normal(n));
    let mask: Vec<u8> = g
        .uniform(n, 0.0, 1.0)
        .iter()
        .map(|&u| (u < 0.7) as u8)
        .collect();
    let (mut thd, mut vd, gd, md) = (g.up(&th), g.up(&v), g.up(&grads), g.up(&mask));
    let p = SgdParams::ppyoloe(0.01);
    for _ in 0..3 {
        opt::sgd_momentum_step(&mut th, &mut v, &grads, &mask, &p).unwrap();
        opt_gpu::sgd_momentum_step(&rt, &mut thd, &mut vd, &gd, &md, &p).unwrap();
    }
    check("sgd params", &g.down(&thd), &th, F32_TOL);
    check("sgd velocity", &g.down(&vd), &v, F32_TOL);
    let ep = EmaParams::default();
    let mut ema = g.normal(n);
    let mut emad = g.up(&ema);
    let (mut d, mut dd) = (0.0, 0.0);
    for step in 0..4 {
        d = opt::ema_update(&mut ema, &th, step, &ep).unwrap();
        dd = opt_gpu::ema_update(&rt, &mut emad, &thd, step, &ep).unwrap();
    }
    assert_eq!(d, dd);
    check("ema update", &g.down(&emad), &ema, F32_TOL);
    let mut out = vec![0.0; n];
    opt::ema_apply(&mut out, &ema, d, 4).unwrap();
    let mut outd = g.poisoned(n);
    opt_gpu::ema_apply(&rt, &mut outd, &emad, dd, 4).unwrap();
    check("ema apply", &g.down(&outd), &out, F32_TOL);
}
