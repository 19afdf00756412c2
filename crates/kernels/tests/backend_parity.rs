//! One parity suite for every backend: a table of cases (op, shapes, seeded inputs), each run
//! through the backend traits on two backends and compared with the case's tolerance.
//!
//! * CPU f32 against CPU f64 always (so the suite runs in CI without a GPU);
//! * CPU f32 against CUDA f32 when a GPU is present (`SKIP` line otherwise, a failure with
//!   `REQUIRE_GPU=1`), and conv cases once more on the bf16 tensor-core engine.
//!
//! Outputs an op overwrites start as NaN, so an element it forgets shows up; gradients it
//! accumulates into start from non-zero values, and on each backend the result must equal the
//! start plus what the op adds to zeros (the `+=` contract).

use ringdet_kernels::Real;
use ringdet_kernels::backend::{Backend, Cpu, Cuda, KResult};
use ringdet_kernels::batchnorm::BatchNormParams;
use ringdet_kernels::concat::ConcatParams;
use ringdet_kernels::conv::Conv2dParams;
use ringdet_kernels::conv::cuda::ConvMath;
use ringdet_kernels::dfl::DflParams;
use ringdet_kernels::elementwise::BroadcastParams;
use ringdet_kernels::fuse::{FoldParams, RepVggParams};
use ringdet_kernels::loss::{BoxLossParams, VarifocalParams};
use ringdet_kernels::optimizer::{AdamwParams, EmaParams, SgdParams};
use ringdet_kernels::pool::PoolParams;
use ringdet_kernels::resize::UpsampleParams;
use ringdet_kernels::runtime::testing::gpu_or_skip;
use ringdet_tensor::Rng;

/// The f32 bound (CPU f32 against f64, and CUDA f32 against CPU f32).
const F32_TOL: f64 = 1e-5;
/// Looser bound for reductions with cancellation (BN backward, losses).
const SUM_TOL: f64 = 1e-4;
/// The bf16 tensor-core conv engine against the f32 CPU reference.
const BF16_TOL: f64 = 1e-2;

/// One op call with its parameters. Inputs and outputs are numbered as in the trait method.
#[derive(Clone, Debug)]
enum Op {
    ConvForward(Conv2dParams, bool),
    ConvBackwardData(Conv2dParams),
    ConvBackwardFilter(Conv2dParams, bool),
    BnStatsForward(BatchNormParams),
    BnForwardTrain(BatchNormParams),
    BnForwardInference(BatchNormParams),
    BnStatsBackward(BatchNormParams),
    BnBackward(BatchNormParams),
    Act(&'static str, bool),
    GapForward(PoolParams),
    GapBackward(PoolParams),
    MaxPoolForward(PoolParams),
    MaxPoolBackward(PoolParams),
    UpsampleForward(UpsampleParams),
    UpsampleBackward(UpsampleParams),
    ConcatForward(usize, usize, Vec<usize>),
    ConcatBackward(usize, usize, Vec<usize>),
    AddForward(BroadcastParams),
    MulForward(BroadcastParams),
    AddBackward(BroadcastParams),
    MulBackward(BroadcastParams),
    SoftmaxBinsForward(DflParams),
    SoftmaxBinsBackward(DflParams),
    DflIntegralForward(DflParams),
    DflIntegralBackward(DflParams),
    DflDecodeBackward(DflParams),
    BceForward,
    BceBackward,
    VarifocalForward(VarifocalParams),
    VarifocalBackward(VarifocalParams, f64),
    GiouPerBox,
    GiouForward(BoxLossParams),
    GiouBackward(BoxLossParams, f64),
    DflTargets(usize),
    DflLossForward(BoxLossParams),
    DflLossBackward(BoxLossParams, f64),
    Sgd(SgdParams, Vec<u8>),
    Adamw(AdamwParams, Vec<u8>),
    EmaUpdate(u64, EmaParams),
    EmaApply(f64, u64),
    FoldConvBn(FoldParams),
    RepVggFuse(RepVggParams),
}

/// How an output buffer starts and what the op promises about it.
#[derive(Clone, Debug)]
enum Out {
    /// Overwritten: starts as `n` NaNs.
    Overwrite(usize),
    /// Accumulated into (`+=`): starts from these values.
    Accumulate(Vec<f64>),
    /// Updated in place by a rule other than `+=` (running stats, SGD state).
    Update(Vec<f64>),
}

struct Case {
    name: String,
    op: Op,
    ins: Vec<Vec<f64>>,
    outs: Vec<Out>,
    tol: f64,
}

/// Seeded inputs, drawn in f32 so that both element types see the same values.
struct Gen(Rng);

impl Gen {
    fn normal(&mut self, n: usize, scale: f64) -> Vec<f64> {
        let mut v = vec![0.0f32; n];
        self.0.fill_normal(&mut v, 0.0, 1.0);
        v.iter().map(|&x| f64::from(x) * scale).collect()
    }
    fn uniform(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f64> {
        let mut v = vec![0.0f32; n];
        self.0.fill_uniform(&mut v, lo, hi);
        v.iter().map(|&x| f64::from(x)).collect()
    }
    /// `n` boxes with x1 < x2, y1 < y2.
    fn boxes(&mut self, n: usize) -> Vec<f64> {
        let u = self.uniform(4 * n, 0.0, 20.0);
        u.chunks(4)
            .flat_map(|c| [c[0], c[1], c[0] + c[2] + 0.5, c[1] + c[3] + 0.5])
            .collect()
    }
    fn acc(&mut self, n: usize) -> Out {
        Out::Accumulate(self.normal(n, 1.0))
    }
    /// An overwritten output that draws the start values [`Self::acc`] would (so the cases
    /// after it keep their inputs; the ops it serves accumulated once).
    fn overwritten(&mut self, n: usize) -> Out {
        self.normal(n, 1.0);
        Out::Overwrite(n)
    }
}

fn prod(s: &[usize]) -> usize {
    s.iter().product()
}

/// Per-channel `[Σx, Σx²]` of an NCHW input, so BN sees consistent statistics.
fn bn_sums(x: &[f64], p: &BatchNormParams) -> Vec<f64> {
    let mut s = vec![0.0; 2 * p.channels];
    for (i, v) in x.iter().enumerate() {
        let c = (i / p.spatial) % p.channels;
        s[c] += v;
        s[p.channels + c] += v * v;
    }
    s
}

fn conv_cases() -> Vec<Conv2dParams> {
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
        Conv2dParams::square(1, 48, 40, 24, 24, 3, 1, 1),
    ]
}

#[allow(clippy::too_many_lines)]
fn cases() -> Vec<Case> {
    let mut g = Gen(Rng::new(0x5ea));
    let mut v = Vec::new();
    let mut case = |name: String, op: Op, ins: Vec<Vec<f64>>, outs: Vec<Out>, tol: f64| {
        v.push(Case {
            name,
            op,
            ins,
            outs,
            tol,
        })
    };
    for p in conv_cases() {
        let (nx, nw, ny) = (prod(&p.x_shape()), prod(&p.w_shape()), prod(&p.y_shape()));
        let k = p.out_channels;
        let (x, w, b, dy) = (
            g.normal(nx, 1.0),
            g.normal(nw, 0.3),
            g.normal(k, 1.0),
            g.normal(ny, 1.0),
        );
        case(
            format!("conv forward {p:?}"),
            Op::ConvForward(p, true),
            vec![x.clone(), w.clone(), b],
            vec![Out::Overwrite(ny)],
            F32_TOL,
        );
        case(
            format!("conv backward data {p:?}"),
            Op::ConvBackwardData(p),
            vec![dy.clone(), w],
            vec![g.overwritten(nx)],
            F32_TOL,
        );
        case(
            format!("conv backward filter {p:?}"),
            Op::ConvBackwardFilter(p, true),
            vec![dy, x],
            vec![g.acc(nw), g.acc(k)],
            F32_TOL,
        );
    }
    for (batch, channels, spatial) in [(1, 1, 1), (3, 5, 37), (2, 67, 19 * 23), (5, 3, 4099)] {
        let p = BatchNormParams::new(batch, channels, spatial);
        let n = batch * channels * spatial;
        let c = channels;
        let x: Vec<f64> = g.normal(n, 2.0).iter().map(|v| v + 0.5).collect();
        let (gamma, beta) = (g.uniform(c, 0.5, 1.5), g.normal(c, 1.0));
        let stats = bn_sums(&x, &p);
        case(
            format!("bn stats forward {p:?}"),
            Op::BnStatsForward(p),
            vec![x.clone()],
            vec![Out::Overwrite(2 * c)],
            F32_TOL,
        );
        let (rm, rv) = (g.normal(c, 1.0), g.uniform(c, 0.5, 2.0));
        case(
            format!("bn forward train {p:?}"),
            Op::BnForwardTrain(p),
            vec![x.clone(), gamma.clone(), beta.clone(), stats],
            vec![
                Out::Overwrite(n),
                Out::Overwrite(2 * c),
                Out::Update(rm.clone()),
                Out::Update(rv.clone()),
            ],
            SUM_TOL,
        );
        case(
            format!("bn forward inference {p:?}"),
            Op::BnForwardInference(p),
            vec![x.clone(), gamma.clone(), beta, rm, rv],
            vec![Out::Overwrite(n)],
            F32_TOL,
        );
        let mean: Vec<f64> = g.normal(c, 0.5);
        let istd = g.uniform(c, 0.5, 2.0);
        let saved: Vec<f64> = mean.into_iter().chain(istd).collect();
        let dy = g.normal(n, 1.0);
        case(
            format!("bn stats backward {p:?}"),
            Op::BnStatsBackward(p),
            vec![dy.clone(), x.clone(), saved.clone()],
            vec![Out::Overwrite(2 * c)],
            SUM_TOL,
        );
        let (local, global) = (g.normal(2 * c, 3.0), g.normal(2 * c, 3.0));
        case(
            format!("bn backward {p:?}"),
            Op::BnBackward(p),
            vec![dy, x, saved, gamma, local, global],
            vec![g.overwritten(n), g.acc(c), g.acc(c)],
            SUM_TOL,
        );
    }
    for n in [1usize, 37, 4099, 100_003] {
        for act in ["silu", "sigmoid", "hardsigmoid"] {
            let x = g.normal(n, 4.0);
            case(
                format!("{act} forward n={n}"),
                Op::Act(act, false),
                vec![x.clone()],
                vec![Out::Overwrite(n)],
                F32_TOL,
            );
            // SiLU's backward reads the input, the others the output (a value in (0, 1)).
            let saved = if act == "silu" {
                x
            } else {
                g.uniform(n, 0.01, 0.99)
            };
            case(
                format!("{act} backward n={n}"),
                Op::Act(act, true),
                vec![g.normal(n, 1.0), saved],
                vec![g.acc(n)],
                F32_TOL,
            );
        }
    }
    for (batch, channels, h, w, kernel) in [
        (1, 1, 1, 1, 5),
        (2, 3, 7, 9, 5),
        (1, 17, 20, 13, 9),
        (2, 4, 12, 12, 13),
    ] {
        let p = PoolParams {
            batch,
            channels,
            h,
            w,
            kernel,
        };
        let (n, nc) = (batch * channels * h * w, batch * channels);
        case(
            format!("gap forward {p:?}"),
            Op::GapForward(p),
            vec![g.normal(n, 1.0)],
            vec![Out::Overwrite(nc)],
            F32_TOL,
        );
        case(
            format!("gap backward {p:?}"),
            Op::GapBackward(p),
            vec![g.normal(nc, 1.0)],
            vec![g.acc(n)],
            F32_TOL,
        );
        // Max pool: distinct values so that both backends pick the same maximum.
        let x: Vec<f64> = g
            .normal(n, 1.0)
            .iter()
            .enumerate()
            .map(|(i, v)| v + i as f64 * 1e-3)
            .collect();
        case(
            format!("max pool forward {p:?}"),
            Op::MaxPoolForward(p),
            vec![x.clone()],
            vec![Out::Overwrite(n)],
            F32_TOL,
        );
        let y = max_pool_host(&x, &p);
        case(
            format!("max pool backward {p:?}"),
            Op::MaxPoolBackward(p),
            vec![g.normal(n, 1.0), x, y],
            vec![g.acc(n)],
            F32_TOL,
        );
    }
    for (batch, channels, h, w) in [(1, 1, 1, 1), (2, 3, 5, 7), (1, 33, 10, 10)] {
        let p = UpsampleParams {
            batch,
            channels,
            h,
            w,
        };
        let n = batch * channels * h * w;
        case(
            format!("upsample forward {p:?}"),
            Op::UpsampleForward(p),
            vec![g.normal(n, 1.0)],
            vec![Out::Overwrite(4 * n)],
            F32_TOL,
        );
        case(
            format!("upsample backward {p:?}"),
            Op::UpsampleBackward(p),
            vec![g.normal(4 * n, 1.0)],
            vec![g.acc(n)],
            F32_TOL,
        );
    }
    for (batch, spatial, channels) in [
        (1, 1, vec![1, 2]),
        (2, 37, vec![3, 1, 5]),
        (3, 100, vec![64, 32]),
    ] {
        let total: usize = channels.iter().sum();
        let parts: Vec<Vec<f64>> = channels
            .iter()
            .map(|c| g.normal(batch * c * spatial, 1.0))
            .collect();
        case(
            format!("concat forward {batch}x{channels:?}x{spatial}"),
            Op::ConcatForward(batch, spatial, channels.clone()),
            parts,
            vec![Out::Overwrite(batch * total * spatial)],
            F32_TOL,
        );
        let outs = channels
            .iter()
            .map(|c| g.acc(batch * c * spatial))
            .collect();
        case(
            format!("concat backward {batch}x{channels:?}x{spatial}"),
            Op::ConcatBackward(batch, spatial, channels.clone()),
            vec![g.normal(batch * total * spatial, 1.0)],
            outs,
            F32_TOL,
        );
    }
    for (a, b) in [
        ([2, 3, 5, 7], [2, 3, 5, 7]),
        ([2, 3, 5, 7], [2, 3, 1, 1]),
        ([1, 3, 1, 7], [2, 1, 5, 1]),
        ([4, 64, 9, 9], [4, 64, 1, 1]),
    ] {
        let p = BroadcastParams { a, b };
        let out: [usize; 4] = std::array::from_fn(|i| a[i].max(b[i]));
        let (na, nb, ny) = (prod(&a), prod(&b), prod(&out));
        let (xa, xb) = (g.normal(na, 1.0), g.normal(nb, 1.0));
        case(
            format!("add forward {a:?} {b:?}"),
            Op::AddForward(p),
            vec![xa.clone(), xb.clone()],
            vec![Out::Overwrite(ny)],
            F32_TOL,
        );
        case(
            format!("mul forward {a:?} {b:?}"),
            Op::MulForward(p),
            vec![xa.clone(), xb.clone()],
            vec![Out::Overwrite(ny)],
            F32_TOL,
        );
        let dy = g.normal(ny, 1.0);
        case(
            format!("add backward {a:?} {b:?}"),
            Op::AddBackward(p),
            vec![dy.clone()],
            vec![g.acc(na), g.acc(nb)],
            F32_TOL,
        );
        case(
            format!("mul backward {a:?} {b:?}"),
            Op::MulBackward(p),
            vec![dy, xa, xb],
            vec![g.acc(na), g.acc(nb)],
            F32_TOL,
        );
    }
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
        let (nl, nd) = (prod(&p.logits_shape()), prod(&p.dist_shape()));
        let logits = g.normal(nl, 3.0);
        let prob = softmax_host(&logits, &p);
        case(
            format!("softmax bins forward {p:?}"),
            Op::SoftmaxBinsForward(p),
            vec![logits],
            vec![Out::Overwrite(nl)],
            F32_TOL,
        );
        case(
            format!("softmax bins backward {p:?}"),
            Op::SoftmaxBinsBackward(p),
            vec![g.normal(nl, 1.0), prob.clone()],
            vec![g.acc(nl)],
            F32_TOL,
        );
        case(
            format!("dfl integral forward {p:?}"),
            Op::DflIntegralForward(p),
            vec![prob.clone()],
            vec![Out::Overwrite(nd)],
            F32_TOL,
        );
        case(
            format!("dfl integral backward {p:?}"),
            Op::DflIntegralBackward(p),
            vec![g.normal(nd, 1.0)],
            vec![g.acc(nl)],
            F32_TOL,
        );
        let dist = integral_host(&prob, &p);
        case(
            format!("dfl decode backward {p:?}"),
            Op::DflDecodeBackward(p),
            vec![g.normal(nd, 1.0), prob, dist],
            vec![g.acc(nl)],
            F32_TOL,
        );
    }
    for n in [1usize, 37, 4099] {
        let (pred, target) = (g.uniform(n, 0.01, 0.99), g.uniform(n, 0.0, 1.0));
        let label: Vec<f64> = g
            .uniform(n, 0.0, 1.0)
            .iter()
            .map(|&u| f64::from(u < 0.3))
            .collect();
        case(
            format!("bce forward n={n}"),
            Op::BceForward,
            vec![pred.clone(), target.clone()],
            vec![Out::Overwrite(n)],
            F32_TOL,
        );
        case(
            format!("bce backward n={n}"),
            Op::BceBackward,
            vec![g.normal(n, 1.0), pred.clone(), target.clone()],
            vec![g.acc(n)],
            F32_TOL,
        );
        let vp = VarifocalParams {
            normalizer: 3.5,
            ..VarifocalParams::default()
        };
        case(
            format!("varifocal forward n={n}"),
            Op::VarifocalForward(vp),
            vec![pred.clone(), target.clone(), label.clone()],
            vec![Out::Overwrite(1)],
            SUM_TOL,
        );
        case(
            format!("varifocal backward n={n}"),
            Op::VarifocalBackward(vp, 1.25),
            vec![pred, target, label],
            vec![g.acc(n)],
            F32_TOL,
        );
    }
    for n in [1usize, 19, 2053] {
        let bp = BoxLossParams {
            bins: 17,
            normalizer: 3.25,
        };
        let (pred, gt, w) = (g.boxes(n), g.boxes(n), g.uniform(n, 0.1, 1.0));
        case(
            format!("giou per box n={n}"),
            Op::GiouPerBox,
            vec![pred.clone(), gt.clone()],
            vec![Out::Overwrite(n)],
            F32_TOL,
        );
        case(
            format!("giou forward n={n}"),
            Op::GiouForward(bp),
            vec![pred.clone(), gt.clone(), w.clone()],
            vec![Out::Overwrite(1)],
            SUM_TOL,
        );
        case(
            format!("giou backward n={n}"),
            Op::GiouBackward(bp, 1.5),
            vec![pred, gt, w.clone()],
            vec![g.acc(4 * n)],
            F32_TOL,
        );
        let anchors = g.uniform(2 * n, 5.0, 15.0);
        let b = g.boxes(n);
        case(
            format!("dfl targets n={n}"),
            Op::DflTargets(16),
            vec![anchors, b],
            vec![Out::Overwrite(4 * n)],
            F32_TOL,
        );
        let t = g.uniform(4 * n, 0.0, 15.9);
        let logits = g.normal(4 * 17 * n, 1.0);
        case(
            format!("dfl loss forward n={n}"),
            Op::DflLossForward(bp),
            vec![logits.clone(), t.clone(), w.clone()],
            vec![Out::Overwrite(1)],
            SUM_TOL,
        );
        case(
            format!("dfl loss backward n={n}"),
            Op::DflLossBackward(bp, 0.5),
            vec![logits, t, w],
            vec![g.acc(4 * 17 * n)],
            F32_TOL,
        );
    }
    for n in [1usize, 1001, 100_003] {
        let mask: Vec<u8> = g
            .uniform(n, 0.0, 1.0)
            .iter()
            .map(|&u| u8::from(u < 0.7))
            .collect();
        case(
            format!("sgd n={n}"),
            Op::Sgd(SgdParams::ppyoloe(0.01), mask.clone()),
            vec![g.normal(n, 1.0)],
            vec![Out::Update(g.normal(n, 1.0)), Out::Update(g.normal(n, 1.0))],
            F32_TOL,
        );
        for step in [1u64, 7] {
            let p = AdamwParams {
                lr: 0.01,
                beta1: 0.9,
                beta2: 0.999,
                epsilon: 1e-8,
                weight_decay: 0.05,
                step,
            };
            let second: Vec<f64> = g.normal(n, 1.0).iter().map(|v| v.abs()).collect();
            case(
                format!("adamw n={n} step={step}"),
                Op::Adamw(p, mask.clone()),
                vec![g.normal(n, 1.0)],
                vec![
                    Out::Update(g.normal(n, 1.0)),
                    Out::Update(g.normal(n, 1.0)),
                    Out::Update(second),
                ],
                F32_TOL,
            );
        }
        for step in [0u64, 3, 2000] {
            case(
                format!("ema update n={n} step={step}"),
                Op::EmaUpdate(step, EmaParams::default()),
                vec![g.normal(n, 1.0)],
                vec![Out::Update(g.normal(n, 1.0))],
                F32_TOL,
            );
        }
        case(
            format!("ema apply n={n}"),
            Op::EmaApply(0.9991, 37),
            vec![g.normal(n, 1.0)],
            vec![Out::Overwrite(n)],
            F32_TOL,
        );
    }
    for (cout, cin) in [(1, 1), (5, 3), (32, 16)] {
        let per_out = cin * 9;
        let p = FoldParams {
            out_channels: cout,
            per_out,
            eps: 1e-5,
        };
        case(
            format!("fold conv bn {cout}x{per_out}"),
            Op::FoldConvBn(p),
            vec![
                g.normal(cout * per_out, 0.3),
                g.normal(cout, 1.0),
                g.uniform(cout, 0.5, 1.5),
                g.normal(cout, 1.0),
                g.normal(cout, 1.0),
                g.uniform(cout, 0.5, 2.0),
            ],
            vec![Out::Overwrite(cout * per_out), Out::Overwrite(cout)],
            F32_TOL,
        );
        let p = RepVggParams {
            out_channels: cout,
            in_channels: cin,
            alpha: 1.0,
        };
        case(
            format!("repvgg fuse {cout}x{cin}"),
            Op::RepVggFuse(p),
            vec![
                g.normal(cout * cin * 9, 0.3),
                g.normal(cout, 1.0),
                g.normal(cout * cin, 0.3),
                g.normal(cout, 1.0),
            ],
            vec![Out::Overwrite(cout * cin * 9), Out::Overwrite(cout)],
            F32_TOL,
        );
    }
    v
}

fn max_pool_host(x: &[f64], p: &PoolParams) -> Vec<f64> {
    let (h, w, r) = (p.h as isize, p.w as isize, (p.kernel / 2) as isize);
    let mut y = vec![0.0; x.len()];
    for (plane, (xs, ys)) in x.chunks(p.h * p.w).zip(y.chunks_mut(p.h * p.w)).enumerate() {
        let _ = plane;
        for i in 0..h {
            for j in 0..w {
                let mut m = f64::MIN;
                for di in -r..=r {
                    for dj in -r..=r {
                        let (a, b) = (i + di, j + dj);
                        if a >= 0 && a < h && b >= 0 && b < w {
                            m = m.max(xs[(a * w + b) as usize]);
                        }
                    }
                }
                ys[(i * w + j) as usize] = m;
            }
        }
    }
    y
}

fn softmax_host(logits: &[f64], p: &DflParams) -> Vec<f64> {
    let mut prob = vec![0.0; logits.len()];
    for o in 0..p.outer * p.sides {
        for i in 0..p.inner {
            let at = |k: usize| (o * p.bins + k) * p.inner + i;
            let m = (0..p.bins).map(|k| logits[at(k)]).fold(f64::MIN, f64::max);
            let z: f64 = (0..p.bins).map(|k| (logits[at(k)] - m).exp()).sum();
            for k in 0..p.bins {
                prob[at(k)] = (logits[at(k)] - m).exp() / z;
            }
        }
    }
    prob
}

fn integral_host(prob: &[f64], p: &DflParams) -> Vec<f64> {
    let mut d = vec![0.0; p.outer * p.sides * p.inner];
    for o in 0..p.outer * p.sides {
        for i in 0..p.inner {
            d[o * p.inner + i] = (0..p.bins)
                .map(|k| k as f64 * prob[(o * p.bins + k) * p.inner + i])
                .sum();
        }
    }
    d
}

/// Runs one op on backend `B` with the given buffers.
#[allow(clippy::too_many_lines)]
fn exec<T: Real, B: Backend<T>>(
    be: &B,
    op: &Op,
    o: &mut [B::Buf],
    i: &[B::Buf],
) -> KResult<Option<f64>> {
    let v = |k: usize| B::view(&i[k]);
    match (op, o) {
        (Op::ConvForward(p, bias), [y]) => {
            be.conv2d_forward(B::view_mut(y), v(0), v(1), bias.then(|| v(2)), p)?
        }
        (Op::ConvBackwardData(p), [dx]) => {
            be.conv2d_backward_data(B::view_mut(dx), v(0), v(1), p)?
        }
        (Op::ConvBackwardFilter(p, bias), [dw, db]) => be.conv2d_backward_filter(
            B::view_mut(dw),
            bias.then(|| B::view_mut(db)),
            v(0),
            v(1),
            p,
        )?,
        (Op::BnStatsForward(p), [s]) => be.batchnorm_stats_forward(B::view_mut(s), v(0), p)?,
        (Op::BnForwardTrain(p), [y, saved, rm, rv]) => be.batchnorm_forward_train(
            B::view_mut(y),
            B::view_mut(saved),
            B::view_mut(rm),
            B::view_mut(rv),
            v(0),
            v(1),
            v(2),
            v(3),
            p.count(),
            p,
        )?,
        (Op::BnForwardInference(p), [y]) => {
            be.batchnorm_forward_inference(B::view_mut(y), v(0), v(1), v(2), v(3), v(4), p)?
        }
        (Op::BnStatsBackward(p), [ds]) => {
            be.batchnorm_stats_backward(B::view_mut(ds), v(0), v(1), v(2), p)?
        }
        (Op::BnBackward(p), [dx, dg, db]) => be.batchnorm_backward(
            B::view_mut(dx),
            B::view_mut(dg),
            B::view_mut(db),
            v(0),
            v(1),
            v(2),
            v(3),
            v(4),
            v(5),
            2 * p.count(),
            p,
        )?,
        (Op::Act(name, backward), [y]) => match (*name, *backward) {
            ("silu", false) => be.silu_forward(B::view_mut(y), v(0))?,
            ("silu", true) => be.silu_backward(B::view_mut(y), v(0), v(1))?,
            ("sigmoid", false) => be.sigmoid_forward(B::view_mut(y), v(0))?,
            ("sigmoid", true) => be.sigmoid_backward(B::view_mut(y), v(0), v(1))?,
            ("hardsigmoid", false) => be.hardsigmoid_forward(B::view_mut(y), v(0))?,
            ("hardsigmoid", true) => be.hardsigmoid_backward(B::view_mut(y), v(0), v(1))?,
            (other, _) => panic!("no activation {other}"),
        },
        (Op::GapForward(p), [y]) => be.global_avg_pool_forward(B::view_mut(y), v(0), p)?,
        (Op::GapBackward(p), [dx]) => be.global_avg_pool_backward(B::view_mut(dx), v(0), p)?,
        (Op::MaxPoolForward(p), [y]) => be.max_pool_forward(B::view_mut(y), v(0), p)?,
        (Op::MaxPoolBackward(p), [dx]) => {
            be.max_pool_backward(B::view_mut(dx), v(0), v(1), v(2), p)?
        }
        (Op::UpsampleForward(p), [y]) => be.upsample_nearest2x_forward(B::view_mut(y), v(0), p)?,
        (Op::UpsampleBackward(p), [dx]) => {
            be.upsample_nearest2x_backward(B::view_mut(dx), v(0), p)?
        }
        (Op::ConcatForward(batch, spatial, channels), [y]) => {
            let p = ConcatParams {
                batch: *batch,
                spatial: *spatial,
                channels,
            };
            be.concat_channels_forward(B::view_mut(y), i.iter().map(B::view).collect(), &p)?
        }
        (Op::ConcatBackward(batch, spatial, channels), dxs) => {
            let p = ConcatParams {
                batch: *batch,
                spatial: *spatial,
                channels,
            };
            be.concat_channels_backward(dxs.iter_mut().map(B::view_mut).collect(), v(0), &p)?
        }
        (Op::AddForward(p), [y]) => be.add_forward(B::view_mut(y), v(0), v(1), p)?,
        (Op::MulForward(p), [y]) => be.mul_forward(B::view_mut(y), v(0), v(1), p)?,
        (Op::AddBackward(p), [da, db]) => {
            be.add_backward(Some(B::view_mut(da)), Some(B::view_mut(db)), v(0), p)?
        }
        (Op::MulBackward(p), [da, db]) => be.mul_backward(
            Some(B::view_mut(da)),
            Some(B::view_mut(db)),
            v(0),
            v(1),
            v(2),
            p,
        )?,
        (Op::SoftmaxBinsForward(p), [y]) => be.softmax_bins_forward(B::view_mut(y), v(0), p)?,
        (Op::SoftmaxBinsBackward(p), [dl]) => {
            be.softmax_bins_backward(B::view_mut(dl), v(0), v(1), p)?
        }
        (Op::DflIntegralForward(p), [d]) => be.dfl_integral_forward(B::view_mut(d), v(0), p)?,
        (Op::DflIntegralBackward(p), [dp]) => be.dfl_integral_backward(B::view_mut(dp), v(0), p)?,
        (Op::DflDecodeBackward(p), [dl]) => {
            be.dfl_decode_backward(B::view_mut(dl), v(0), v(1), v(2), p)?
        }
        (Op::BceForward, [l]) => be.bce_forward(B::view_mut(l), v(0), v(1))?,
        (Op::BceBackward, [d]) => be.bce_backward(B::view_mut(d), v(0), v(1), v(2))?,
        (Op::VarifocalForward(p), [l]) => {
            be.varifocal_loss_forward(B::view_mut(l), v(0), v(1), v(2), p)?
        }
        (Op::VarifocalBackward(p, dl), [d]) => {
            be.varifocal_loss_backward(B::view_mut(d), v(0), v(1), v(2), T::from_f64(*dl), p)?
        }
        (Op::GiouPerBox, [l]) => be.giou_per_box(B::view_mut(l), v(0), v(1))?,
        (Op::GiouForward(p), [l]) => be.giou_loss_forward(B::view_mut(l), v(0), v(1), v(2), p)?,
        (Op::GiouBackward(p, dl), [d]) => {
            be.giou_loss_backward(B::view_mut(d), v(0), v(1), v(2), T::from_f64(*dl), p)?
        }
        (Op::DflTargets(reg_max), [t]) => be.dfl_targets(B::view_mut(t), v(0), v(1), *reg_max)?,
        (Op::DflLossForward(p), [l]) => be.dfl_loss_forward(B::view_mut(l), v(0), v(1), v(2), p)?,
        (Op::DflLossBackward(p, dl), [d]) => {
            be.dfl_loss_backward(B::view_mut(d), v(0), v(1), v(2), T::from_f64(*dl), p)?
        }
        (Op::Sgd(p, mask), [params, vel]) => {
            let mask = be.upload_mask(mask)?;
            be.sgd_momentum_step(B::view_mut(params), B::view_mut(vel), v(0), &mask, p)?
        }
        (Op::Adamw(p, mask), [params, m1, m2]) => {
            let mask = be.upload_mask(mask)?;
            let moments = [B::view_mut(m1), B::view_mut(m2)];
            be.adamw_step(B::view_mut(params), moments, v(0), &mask, p)?
        }
        (Op::EmaUpdate(step, p), [ema]) => {
            return be.ema_update(B::view_mut(ema), v(0), *step, p).map(Some);
        }
        (Op::EmaApply(decay, steps), [out]) => {
            be.ema_apply(B::view_mut(out), v(0), *decay, *steps)?
        }
        (Op::FoldConvBn(p), [w, b]) => be.fold_conv_bn(
            B::view_mut(w),
            B::view_mut(b),
            v(0),
            Some(v(1)),
            v(2),
            v(3),
            v(4),
            v(5),
            p,
        )?,
        (Op::RepVggFuse(p), [w, b]) => {
            be.repvgg_fuse(B::view_mut(w), B::view_mut(b), v(0), v(1), v(2), v(3), p)?
        }
        (op, outs) => panic!("{op:?}: the case has {} outputs", outs.len()),
    }
    Ok(None)
}

/// What one backend produced for a case: the outputs (as f64) and a returned scalar.
type Run = (Vec<Vec<f64>>, Option<f64>);

/// Uploads the inputs and the starting outputs (zeros instead of the accumulate starts when
/// `from_zero`), runs the op and downloads the outputs.
fn run_on<T: Real, B: Backend<T>>(be: &B, c: &Case, from_zero: bool) -> KResult<Run> {
    let up = |v: &[f64]| be.upload(&v.iter().map(|&x| T::from_f64(x)).collect::<Vec<T>>());
    let ins = c.ins.iter().map(|v| up(v)).collect::<KResult<Vec<_>>>()?;
    let mut outs = c
        .outs
        .iter()
        .map(|o| match o {
            Out::Overwrite(n) => up(&vec![f64::NAN; *n]),
            Out::Accumulate(s) if from_zero => up(&vec![0.0; s.len()]),
            Out::Accumulate(s) | Out::Update(s) => up(s),
        })
        .collect::<KResult<Vec<_>>>()?;
    let ret = exec(be, &c.op, &mut outs, &ins)?;
    let outs = outs
        .iter()
        .map(|b| Ok(be.download(b)?.iter().map(|x| x.to_f64()).collect()))
        .collect::<KResult<Vec<Vec<f64>>>>()?;
    Ok((outs, ret))
}

fn rel_l2(a: &[f64], b: &[f64]) -> f64 {
    if a.len() != b.len() || a.iter().chain(b).any(|x| !x.is_finite()) {
        return f64::INFINITY;
    }
    let num: f64 = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum();
    let den: f64 = b.iter().map(|y| y * y).sum();
    (num / den.max(1e-300)).sqrt()
}

/// Runs a case on one backend and checks the `+=` contract of its accumulated outputs there.
fn run_checked<T: Real, B: Backend<T>>(be: &B, label: &str, c: &Case) -> Run {
    let run = run_on(be, c, false).unwrap_or_else(|e| panic!("{} on {label}: {e}", c.name));
    if c.outs.iter().any(|o| matches!(o, Out::Accumulate(_))) {
        let (zero, _) =
            run_on(be, c, true).unwrap_or_else(|e| panic!("{} on {label}: {e}", c.name));
        for (k, o) in c.outs.iter().enumerate() {
            if let Out::Accumulate(start) = o {
                let want: Vec<f64> = start.iter().zip(&zero[k]).map(|(s, z)| s + z).collect();
                let e = rel_l2(&run.0[k], &want);
                assert!(
                    e <= c.tol,
                    "{} on {label}: output {k} is not start + increment (rel L2 {e:e})",
                    c.name
                );
            }
        }
    }
    run
}

/// Compares two backends over every case; returns how many cases ran.
fn compare(
    a_label: &str,
    a: &dyn Fn(&Case) -> Run,
    b_label: &str,
    b: &dyn Fn(&Case) -> Run,
    only: &dyn Fn(&Case) -> Option<f64>,
) -> usize {
    let mut ran = 0;
    for c in cases() {
        let Some(tol) = only(&c) else { continue };
        let (ra, rb) = (a(&c), b(&c));
        for (k, (x, y)) in ra.0.iter().zip(&rb.0).enumerate() {
            let e = rel_l2(y, x);
            assert!(
                e <= tol,
                "{}: output {k}: {b_label} vs {a_label} rel L2 {e:e} > {tol:e}",
                c.name
            );
        }
        if let (Some(x), Some(y)) = (ra.1, rb.1) {
            assert!((x - y).abs() <= 1e-12, "{}: returned {x} vs {y}", c.name);
        }
        ran += 1;
    }
    ran
}

#[test]
fn cpu_f32_matches_cpu_f64() {
    let ran = compare(
        "cpu f64",
        &|c| run_checked::<f64, _>(&Cpu, "cpu f64", c),
        "cpu f32",
        &|c| run_checked::<f32, _>(&Cpu, "cpu f32", c),
        &|c| Some(c.tol),
    );
    assert!(ran > 100, "only {ran} cases ran");
}

#[test]
fn cuda_matches_cpu() {
    let Some(rt) = gpu_or_skip("cuda_matches_cpu") else {
        return;
    };
    let cuda = Cuda::new(rt);
    compare(
        "cpu f32",
        &|c| run_checked::<f32, _>(&Cpu, "cpu f32", c),
        "cuda f32",
        &|c| run_checked::<f32, _>(&cuda, "cuda f32", c),
        &|c| Some(c.tol),
    );
}

#[test]
fn cuda_bf16_conv_matches_cpu() {
    let Some(rt) = gpu_or_skip("cuda_bf16_conv_matches_cpu") else {
        return;
    };
    let cuda = Cuda::new(rt).with_conv_math(ConvMath::Bf16TensorCore);
    let ran = compare(
        "cpu f32",
        &|c| run_checked::<f32, _>(&Cpu, "cpu f32", c),
        "cuda bf16 conv",
        &|c| run_checked::<f32, _>(&cuda, "cuda bf16 conv", c),
        &|c| c.name.starts_with("conv").then_some(BF16_TOL),
    );
    assert!(ran > 0);
}

/// The views of one flat buffer reach the ops: sub-ranges, and two disjoint writable ranges.
#[test]
fn ops_run_on_sub_ranges_of_one_flat_buffer_cpu_and_cuda() {
    fn go<B: Backend<f32>>(be: &B) -> Vec<f32> {
        let mut flat = be
            .upload(&[1.0, -2.0, 3.0, -4.0, 5.0, 0.0, 0.0, 0.0, 0.0, 0.0])
            .unwrap();
        let x = be.download(&flat).unwrap()[0..4].to_vec();
        let xs = be.upload(&x).unwrap();
        {
            let (y, _) = B::split_mut(&mut flat, 4..8, 0..4).unwrap();
            be.silu_forward(y, B::view(&xs)).unwrap();
        }
        assert!(B::slice(&flat, 8..11).is_err());
        be.download(&flat).unwrap()
    }
    let got = go(&Cpu);
    let silu = |v: f32| v / (1.0 + (-v).exp());
    assert_eq!(&got[..4], &[1.0, -2.0, 3.0, -4.0]);
    for k in 0..4 {
        assert!((got[4 + k] - silu(got[k])).abs() < 1e-6);
    }
    assert_eq!(&got[8..], &[0.0, 0.0]);
    if let Some(rt) = gpu_or_skip("ops_run_on_sub_ranges_of_one_flat_buffer_cpu_and_cuda") {
        assert_eq!(go(&Cuda::new(rt)), got);
    }
}
