//! f64 gradient checks of the DFL decode and of every loss.

mod common;
use common::{Rng, check_grad, dot};

use ringdet_kernels::dfl::{DflParams, cpu as dfl};
use ringdet_kernels::loss::{
    BoxLossParams, VarifocalParams, bce, dfl as dfl_loss, giou, varifocal,
};

#[test]
fn dfl_decode_gradients() {
    for p in [
        DflParams::nchw(2, 7),
        DflParams {
            outer: 5,
            sides: 4,
            bins: 17,
            inner: 1,
        },
    ] {
        let mut rng = Rng(60);
        let logits: Vec<f64> = rng
            .vec(p.logits_shape().iter().product())
            .iter()
            .map(|v| 3.0 * v)
            .collect();
        let r = rng.vec(p.dist_shape().iter().product());
        let decode = |l: &[f64]| {
            let mut prob = vec![0.0; l.len()];
            let mut dist = vec![0.0; r.len()];
            dfl::softmax_bins_forward(&mut prob, l, &p).unwrap();
            dfl::dfl_integral_forward(&mut dist, &prob, &p).unwrap();
            (prob, dist)
        };
        let (prob, dist) = decode(&logits);
        // fused backward
        let mut dl = vec![0.0; logits.len()];
        dfl::dfl_decode_backward(&mut dl, &r, &prob, &dist, &p).unwrap();
        check_grad("dfl decode fused", &logits, &dl, |l| dot(&r, &decode(l).1));
        // the two steps separately
        let mut dprob = vec![0.0; logits.len()];
        dfl::dfl_integral_backward(&mut dprob, &r, &p).unwrap();
        let mut dl2 = vec![0.0; logits.len()];
        dfl::softmax_bins_backward(&mut dl2, &dprob, &prob, &p).unwrap();
        check_grad("dfl decode two-step", &logits, &dl2, |l| {
            dot(&r, &decode(l).1)
        });
        // softmax alone
        let rp = rng.vec(logits.len());
        let mut dl3 = vec![0.0; logits.len()];
        dfl::softmax_bins_backward(&mut dl3, &rp, &prob, &p).unwrap();
        check_grad("softmax bins", &logits, &dl3, |l| dot(&rp, &decode(l).0));
    }
}

#[test]
fn bce_and_varifocal_gradients() {
    let mut rng = Rng(70);
    let n = 2 * 7 * 5;
    let pred = rng.vec_in(n, 0.02, 0.98);
    let q = rng.vec_in(n, 0.0, 1.0);
    let r = rng.vec(n);
    let mut d = vec![0.0; n];
    bce::bce_backward(&mut d, &r, &pred, &q).unwrap();
    check_grad("bce", &pred, &d, |p| {
        let mut l = vec![0.0; n];
        bce::bce_forward(&mut l, p, &q).unwrap();
        dot(&r, &l)
    });
    // one-hot labels on a third of the rows of [14 anchors, 5 classes]; soft targets only there
    let mut label = vec![0.0; n];
    let mut target = vec![0.0; n];
    for a in 0..n / 5 {
        if a % 3 == 0 {
            let c = a % 5;
            label[a * 5 + c] = 1.0;
            target[a * 5 + c] = q[a * 5 + c];
        }
    }
    let p = VarifocalParams {
        normalizer: 3.7,
        ..Default::default()
    };
    let mut d = vec![0.0; n];
    varifocal::varifocal_loss_backward(&mut d, &pred, &target, &label, 1.3, &p).unwrap();
    check_grad("varifocal", &pred, &d, |x| {
        1.3 * varifocal::varifocal_loss_forward(x, &target, &label, &p).unwrap()
    });
}

#[test]
fn giou_gradients() {
    let mut rng = Rng(80);
    let n = 9;
    let boxes = |rng: &mut Rng, shift: f64| -> Vec<f64> {
        let mut v = vec![];
        for _ in 0..n {
            let (x, y) = (rng.uniform(0.0, 6.0) + shift, rng.uniform(0.0, 6.0));
            v.extend([x, y, x + rng.uniform(0.5, 5.0), y + rng.uniform(0.5, 5.0)]);
        }
        v
    };
    let pred = boxes(&mut rng, 0.0);
    let gt = boxes(&mut rng, 0.3);
    let w = rng.vec_in(n, 0.1, 1.0);
    let p = BoxLossParams {
        normalizer: 2.5,
        ..Default::default()
    };
    let mut d = vec![0.0; pred.len()];
    giou::giou_loss_backward(&mut d, &pred, &gt, &w, 0.7, &p).unwrap();
    check_grad("giou", &pred, &d, |b| {
        0.7 * giou::giou_loss_forward(b, &gt, &w, &p).unwrap()
    });
    // disjoint boxes: intersection clipped at 0, enclosing box carries the gradient
    let far: Vec<f64> = gt
        .iter()
        .enumerate()
        .map(|(i, v)| if i % 2 == 0 { v + 20.0 } else { *v })
        .collect();
    let mut d = vec![0.0; pred.len()];
    giou::giou_loss_backward(&mut d, &pred, &far, &w, 1.0, &p).unwrap();
    check_grad("giou disjoint", &pred, &d, |b| {
        giou::giou_loss_forward(b, &far, &w, &p).unwrap()
    });
}

#[test]
fn dfl_loss_gradients() {
    let mut rng = Rng(90);
    let n = 5;
    let logits: Vec<f64> = rng.vec(n * 4 * 17).iter().map(|v| 2.0 * v).collect();
    let mut target = rng.vec_in(n * 4, 0.0, 15.99);
    target[0] = 0.0;
    target[1] = 15.99;
    target[2] = 7.0;
    let w = rng.vec_in(n, 0.1, 1.0);
    let p = BoxLossParams {
        normalizer: 1.9,
        ..Default::default()
    };
    let mut d = vec![0.0; logits.len()];
    dfl_loss::dfl_loss_backward(&mut d, &logits, &target, &w, 0.5, &p).unwrap();
    check_grad("dfl loss", &logits, &d, |l| {
        0.5 * dfl_loss::dfl_loss_forward(l, &target, &w, &p).unwrap()
    });
}
