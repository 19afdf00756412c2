//! Property tests: conv against a naive direct convolution on random shapes, broadcasting rules.

use proptest::prelude::*;
use ringdet_kernels::conv::{Conv2dParams, cpu as conv};
use ringdet_kernels::elementwise::{BroadcastParams, cpu as ew};

fn val(i: usize, salt: usize) -> f64 {
    (((i * 2654435761 + salt * 40503) % 1000) as f64) / 500.0 - 1.0
}

/// Direct convolution: y[n,k,oy,ox] = Σ w[k,c,i,j] x[n,c,oy·s+i−p, ox·s+j−p].
fn naive(x: &[f64], w: &[f64], p: &Conv2dParams) -> Vec<f64> {
    let (oh, ow) = (p.out_h(), p.out_w());
    let mut y = vec![0.0; p.batch * p.out_channels * oh * ow];
    for n in 0..p.batch {
        for k in 0..p.out_channels {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut s = 0.0;
                    for c in 0..p.in_channels {
                        for i in 0..p.kernel_h {
                            for j in 0..p.kernel_w {
                                let iy = (oy * p.stride_h + i) as isize - p.pad_h as isize;
                                let ix = (ox * p.stride_w + j) as isize - p.pad_w as isize;
                                if iy >= 0
                                    && ix >= 0
                                    && (iy as usize) < p.in_h
                                    && (ix as usize) < p.in_w
                                {
                                    s += w[((k * p.in_channels + c) * p.kernel_h + i) * p.kernel_w
                                        + j]
                                        * x[((n * p.in_channels + c) * p.in_h + iy as usize)
                                            * p.in_w
                                            + ix as usize];
                                }
                            }
                        }
                    }
                    y[((n * p.out_channels + k) * oh + oy) * ow + ox] = s;
                }
            }
        }
    }
    y
}

/// Direct filter gradient: dw[k,c,i,j] = Σ dy[n,k,oy,ox] x[n,c,oy·s+i−p, ox·s+j−p].
fn naive_filter_grad(dy: &[f64], x: &[f64], p: &Conv2dParams) -> Vec<f64> {
    let (oh, ow) = (p.out_h(), p.out_w());
    let (c_in, k_out, kh, kw) = (p.in_channels, p.out_channels, p.kernel_h, p.kernel_w);
    let mut dw = vec![0.0; k_out * c_in * kh * kw];
    for n in 0..p.batch {
        for k in 0..k_out {
            for c in 0..c_in {
                for i in 0..kh {
                    for j in 0..kw {
                        let mut s = 0.0;
                        for oy in 0..oh {
                            let iy = (oy * p.stride_h + i) as isize - p.pad_h as isize;
                            if iy < 0 || iy as usize >= p.in_h {
                                continue;
                            }
                            for ox in 0..ow {
                                let ix = (ox * p.stride_w + j) as isize - p.pad_w as isize;
                                if ix >= 0 && (ix as usize) < p.in_w {
                                    s += dy[((n * k_out + k) * oh + oy) * ow + ox]
                                        * x[((n * c_in + c) * p.in_h + iy as usize) * p.in_w
                                            + ix as usize];
                                }
                            }
                        }
                        dw[((k * c_in + c) * kh + i) * kw + j] += s;
                    }
                }
            }
        }
    }
    dw
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn conv_matches_naive(n in 1usize..3, c in 1usize..5, k in 1usize..5, h in 1usize..9, w in 1usize..9,
                          kh in 1usize..4, kw in 1usize..4, s in 1usize..3, ph in 0usize..2, pw in 0usize..2) {
        let p = Conv2dParams { batch: n, in_channels: c, out_channels: k, in_h: h, in_w: w,
            kernel_h: kh, kernel_w: kw, stride_h: s, stride_w: s, pad_h: ph, pad_w: pw };
        prop_assume!(kh <= h + 2 * ph && kw <= w + 2 * pw);
        let x: Vec<f64> = (0..n * c * h * w).map(|i| val(i, 1)).collect();
        let wt: Vec<f64> = (0..k * c * kh * kw).map(|i| val(i, 2)).collect();
        let mut y = vec![0.0; n * k * p.out_h() * p.out_w()];
        let mut ws = vec![0.0; p.workspace_len()];
        conv::conv2d_forward(&mut y, &mut ws, &x, &wt, None, &p).unwrap();
        let yr = naive(&x, &wt, &p);
        for (a, b) in y.iter().zip(&yr) { prop_assert!((a - b).abs() < 1e-12); }
        // adjoint identities: <dy, conv(x, w)> = <convᵀ(dy, w), x> = <dw(dy, x), w>
        let dy: Vec<f64> = (0..y.len()).map(|i| val(i, 3)).collect();
        let mut dx = vec![0.0; x.len()];
        conv::conv2d_backward_data(&mut dx, &mut ws, &dy, &wt, &p).unwrap();
        let mut dw = vec![0.0; wt.len()];
        conv::conv2d_backward_filter(&mut dw, None, &mut ws, &dy, &x, &p).unwrap();
        let lhs: f64 = dy.iter().zip(&yr).map(|(a, b)| a * b).sum();
        let via_x: f64 = dx.iter().zip(&x).map(|(a, b)| a * b).sum();
        let via_w: f64 = dw.iter().zip(&wt).map(|(a, b)| a * b).sum();
        prop_assert!((lhs - via_x).abs() < 1e-9 * (1.0 + lhs.abs()));
        prop_assert!((lhs - via_w).abs() < 1e-9 * (1.0 + lhs.abs()));
        for (a, b) in dw.iter().zip(&naive_filter_grad(&dy, &x, &p)) { prop_assert!((a - b).abs() < 1e-12); }
        // wrong lengths are errors, never panics
        prop_assert!(conv::conv2d_forward(&mut y, &mut ws, &x[..x.len() - 1], &wt, None, &p).is_err());
        prop_assert!(conv::conv2d_forward(&mut y[1..], &mut ws, &x, &wt, None, &p).is_err());
    }

    #[test]
    fn broadcast_shapes(a in prop::array::uniform4(1usize..4), mask in prop::array::uniform4(any::<bool>())) {
        let b = [0, 1, 2, 3].map(|i| if mask[i] { 1 } else { a[i] });
        let p = BroadcastParams { a, b };
        prop_assert_eq!(p.out_shape("t").unwrap(), a);
        let av: Vec<f64> = (0..a.iter().product()).map(|i| val(i, 4)).collect();
        let bv: Vec<f64> = (0..b.iter().product()).map(|i| val(i, 5)).collect();
        let mut y = vec![0.0; av.len()];
        ew::add_forward(&mut y, &av, &bv, &p).unwrap();
        for n in 0..a[0] { for c in 0..a[1] { for h in 0..a[2] { for w in 0..a[3] {
            let idx = |s: [usize; 4]| {
                let q = [n, c, h, w].iter().zip(s).map(|(&i, d)| if d == 1 { 0 } else { i }).collect::<Vec<_>>();
                ((q[0] * s[1] + q[1]) * s[2] + q[2]) * s[3] + q[3]
            };
            prop_assert_eq!(y[idx(a)], av[idx(a)] + bv[idx(b)]);
        }}}}
        // swapping operands broadcasts the other way
        let q = BroadcastParams { a: b, b: a };
        let mut y2 = vec![0.0; av.len()];
        ew::add_forward(&mut y2, &bv, &av, &q).unwrap();
        prop_assert_eq!(y, y2);
        // an axis that is neither equal nor 1 is an error
        let bad = BroadcastParams { a, b: a.map(|d| d + 1) };
        prop_assert_eq!(bad.out_shape("t").is_err(), a.iter().any(|&d| d > 1));
    }
}

/// Shapes large enough for several row blocks per image: blocked im2col, the even/odd col2im
/// phases and the per-thread filter-gradient sums, with a full and a one-thread workspace.
#[test]
fn conv_multi_block_matches_naive() {
    for (stride, kernel, pad) in [(1, 3, 1), (2, 3, 1), (1, 1, 0), (2, 1, 0)] {
        let p = Conv2dParams::square(2, 290, 3, 25, 64, kernel, stride, pad);
        if kernel == 3 {
            assert!(
                p.blocks_per_image() > 2,
                "{p:?} has {} blocks",
                p.blocks_per_image()
            );
        }
        let x: Vec<f64> = (0..2 * 290 * 25 * 64).map(|i| val(i, 6)).collect();
        let wt: Vec<f64> = (0..3 * 290 * kernel * kernel).map(|i| val(i, 7)).collect();
        let yr = naive(&x, &wt, &p);
        let dy: Vec<f64> = (0..yr.len()).map(|i| val(i, 8)).collect();
        let mut refs: Option<(Vec<f64>, Vec<f64>)> = None;
        for ws_len in [p.workspace_len_for(4), p.workspace_per_thread()] {
            let mut ws = vec![0.0; ws_len];
            let mut y = vec![0.0; yr.len()];
            conv::conv2d_forward(&mut y, &mut ws, &x, &wt, None, &p).unwrap();
            for (a, b) in y.iter().zip(&yr) {
                assert!((a - b).abs() < 1e-10, "{p:?}: {a} vs {b}");
            }
            let (mut dx, mut dw) = (vec![0.0; x.len()], vec![0.0; wt.len()]);
            conv::conv2d_backward_data(&mut dx, &mut ws, &dy, &wt, &p).unwrap();
            conv::conv2d_backward_filter(&mut dw, None, &mut ws, &dy, &x, &p).unwrap();
            let lhs: f64 = dy.iter().zip(&yr).map(|(a, b)| a * b).sum();
            let via_x: f64 = dx.iter().zip(&x).map(|(a, b)| a * b).sum();
            let via_w: f64 = dw.iter().zip(&wt).map(|(a, b)| a * b).sum();
            assert!(
                (lhs - via_x).abs() < 1e-9 * lhs.abs().max(1.0),
                "{p:?} dx adjoint"
            );
            assert!(
                (lhs - via_w).abs() < 1e-9 * lhs.abs().max(1.0),
                "{p:?} dw adjoint"
            );
            // dx is also checked element by element against a direct scatter
            let mut dxr = vec![0.0; x.len()];
            let (oh, ow) = (p.out_h(), p.out_w());
            for n in 0..2 {
                for k in 0..3 {
                    for oy in 0..oh {
                        for ox in 0..ow {
                            let g = dy[((n * 3 + k) * oh + oy) * ow + ox];
                            for c in 0..290 {
                                for i in 0..kernel {
                                    for j in 0..kernel {
                                        let iy = (oy * stride + i) as isize - pad as isize;
                                        let ix = (ox * stride + j) as isize - pad as isize;
                                        if iy >= 0
                                            && ix >= 0
                                            && (iy as usize) < 25
                                            && (ix as usize) < 64
                                        {
                                            dxr[((n * 290 + c) * 25 + iy as usize) * 64
                                                + ix as usize] +=
                                                g * wt[((k * 290 + c) * kernel + i) * kernel + j];
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            for (a, b) in dx.iter().zip(&dxr) {
                assert!((a - b).abs() < 1e-10, "{p:?} dx: {a} vs {b}");
            }
            // and dw element by element against the direct sum over images and positions
            let dwr = naive_filter_grad(&dy, &x, &p);
            for (a, b) in dw.iter().zip(&dwr) {
                assert!((a - b).abs() < 1e-9, "{p:?} dw: {a} vs {b}");
            }
            match &refs {
                None => refs = Some((dx, dw)),
                Some((dx0, dw0)) => {
                    assert!(dx0.iter().zip(&dx).all(|(a, b)| (a - b).abs() < 1e-12));
                    assert!(dw0.iter().zip(&dw).all(|(a, b)| (a - b).abs() < 1e-12));
                }
            }
        }
    }
}

/// The f32 few-channel convs (the direct AVX-512 forward and filter gradient where the machine
/// has it, the GEMM otherwise) against the direct f64 sums: forward and filter gradient element
/// by element, backward-data (itself a forward for stride 1) through the adjoint identity. The
/// stem's shapes, channel counts that leave register-tile remainders, stride 2, and a bias.
#[test]
fn few_channel_convs_match_naive_f32() {
    for (c, k, side, stride) in [
        (3, 16, 34, 2),
        (16, 16, 23, 1),
        (16, 32, 18, 1),
        (5, 20, 29, 1),
        (24, 24, 21, 1),
    ] {
        let p = Conv2dParams::square(2, c, k, side, side, 3, stride, 1);
        let x: Vec<f64> = (0..2 * c * side * side).map(|i| val(i, 9)).collect();
        let w: Vec<f64> = (0..k * c * 9).map(|i| val(i, 11)).collect();
        let dy: Vec<f64> = (0..2 * k * p.out_h() * p.out_w())
            .map(|i| val(i, 10))
            .collect();
        let f32s = |v: &[f64]| v.iter().map(|&v| v as f32).collect::<Vec<f32>>();
        let (x32, w32, dy32) = (f32s(&x), f32s(&w), f32s(&dy));
        let close = |got: &[f32], want: &[f64], what: &str| {
            let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            for (a, b) in got.iter().zip(want) {
                assert!(
                    (*a as f64 - b).abs() <= 1e-5 * scale,
                    "{what} {p:?}: {a} vs {b}"
                );
            }
        };
        let mut ws = vec![0.0f32; p.workspace_len()];
        let bias: Vec<f32> = (0..k).map(|i| i as f32 * 0.125).collect();
        let mut y = vec![f32::NAN; dy.len()];
        conv::conv2d_forward(&mut y, &mut ws, &x32, &w32, Some(&bias), &p).unwrap();
        let yr: Vec<f64> = naive(&x, &w, &p)
            .iter()
            .enumerate()
            .map(|(i, v)| v + bias[(i / (p.out_h() * p.out_w())) % k] as f64)
            .collect();
        close(&y, &yr, "forward");
        let mut dw = vec![0.0f32; w.len()];
        conv::conv2d_backward_filter(&mut dw, None, &mut ws, &dy32, &x32, &p).unwrap();
        close(&dw, &naive_filter_grad(&dy, &x, &p), "filter gradient");
        let mut dx = vec![f32::NAN; x.len()];
        conv::conv2d_backward_data(&mut dx, &mut ws, &dy32, &w32, &p).unwrap();
        let lhs: f64 = dy.iter().zip(naive(&x, &w, &p)).map(|(a, b)| a * b).sum();
        let via_x: f64 = dx.iter().zip(&x).map(|(a, b)| *a as f64 * b).sum();
        assert!(
            (lhs - via_x).abs() <= 1e-4 * lhs.abs().max(1.0),
            "backward-data {p:?}: {lhs} vs {via_x}"
        );
    }
}
