//! GPU-vs-CPU parity of the CUDA kernels that sit outside the backend seam (see
//! `backend_parity.rs` for every op of the seam): the fused BN + SiLU kernels against the
//! composition of the CPU ops, and the f32/bf16 casts bit for bit. Without a GPU each test
//! prints `SKIP <test>: <reason>` and passes; with `REQUIRE_GPU=1` it fails instead.

use cudarc::driver::CudaSlice;
use ringdet_kernels::batchnorm::{BatchNormParams, cpu as bn};
use ringdet_kernels::cast::{cpu as cast, cuda as cast_gpu};
use ringdet_kernels::runtime::KernelRuntime;
use ringdet_kernels::runtime::testing::{gpu_or_skip, poison, rel_l2};
use ringdet_tensor::Rng;

const F32_TOL: f64 = 1e-5;

struct Gpu<'a> {
    rt: &'a KernelRuntime,
    rng: Rng,
}

impl<'a> Gpu<'a> {
    fn new(rt: &'a KernelRuntime, seed: u64) -> Self {
        Gpu {
            rt,
            rng: Rng::new(seed),
        }
    }
    fn normal(&mut self, n: usize) -> Vec<f32> {
        let mut v = vec![0.0; n];
        self.rng.fill_normal(&mut v, 0.0, 1.0);
        v
    }
    fn uniform(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        let mut v = vec![0.0; n];
        self.rng.fill_uniform(&mut v, lo, hi);
        v
    }
    fn up<T: cudarc::driver::DeviceRepr>(&self, v: &[T]) -> CudaSlice<T> {
        self.rt.stream().clone_htod(v).expect("upload")
    }
    fn poisoned(&self, n: usize) -> CudaSlice<f32> {
        self.up(&poison(n))
    }
    fn down<T: cudarc::driver::DeviceRepr + Default + Clone>(&self, d: &CudaSlice<T>) -> Vec<T> {
        let v = self.rt.stream().clone_dtoh(d).expect("download");
        self.rt.stream().synchronize().expect("synchronize");
        v
    }
}

fn check(what: &str, got: &[f32], want: &[f32], tol: f64) {
    let e = rel_l2(got, want);
    assert!(e <= tol, "{what}: rel L2 {e:e} > {tol:e}");
}

#[test]
fn fused_batchnorm_silu_cuda_matches_cpu_composition() {
    use ringdet_kernels::activation::cpu as act;
    use ringdet_kernels::batchnorm::cuda_fused as fused;
    let Some(rt) = gpu_or_skip("fused_batchnorm_silu_cuda_matches_cpu_composition") else {
        return;
    };
    let mut g = Gpu::new(&rt, 32);
    for (batch, channels, spatial) in [(1, 1, 1), (3, 5, 37), (2, 67, 19 * 23)] {
        let p = BatchNormParams::new(batch, channels, spatial);
        let n = batch * channels * spatial;
        let x: Vec<f32> = g.normal(n).iter().map(|v| 2.0 * v - 0.25).collect();
        let (gamma, beta) = (g.uniform(channels, 0.5, 1.5), g.normal(channels));
        let (rm0, rv0) = (g.normal(channels), g.uniform(channels, 0.5, 2.0));
        let (xd, gd, bd) = (g.up(&x), g.up(&gamma), g.up(&beta));
        let what = format!("{p:?}");
        let mut stats = vec![0.0; 2 * channels];
        bn::batchnorm_stats_forward(&mut stats, &x, &p).unwrap();
        let (mut z, mut saved, mut rm, mut rv) = (
            vec![0.0; n],
            vec![0.0; 2 * channels],
            rm0.clone(),
            rv0.clone(),
        );
        bn::batchnorm_forward_train(
            &mut z,
            &mut saved,
            &mut rm,
            &mut rv,
            &x,
            &gamma,
            &beta,
            &stats,
            p.count(),
            &p,
        )
        .unwrap();
        let mut y = vec![0.0; n];
        act::silu_forward(&mut y, &z).unwrap();
        let (mut yd, mut savedd, mut rmd, mut rvd) = (
            g.poisoned(n),
            g.poisoned(2 * channels),
            g.up(&rm0),
            g.up(&rv0),
        );
        fused::batchnorm_silu_forward_train(
            &rt,
            &mut yd.as_view_mut(),
            &mut savedd.as_view_mut(),
            &mut rmd.as_view_mut(),
            &mut rvd.as_view_mut(),
            &xd.as_view(),
            &gd.as_view(),
            &bd.as_view(),
            &g.up(&stats).as_view(),
            p.count(),
            &p,
        )
        .unwrap();
        check(
            &format!("fused forward y {what}"),
            &g.down(&yd),
            &y,
            F32_TOL,
        );
        check(
            &format!("fused forward saved {what}"),
            &g.down(&savedd),
            &saved,
            F32_TOL,
        );
        check(
            &format!("fused running var {what}"),
            &g.down(&rvd),
            &rv,
            F32_TOL,
        );

        let dy = g.normal(n);
        let mut dz = vec![0.0; n];
        act::silu_backward(&mut dz, &dy, &z).unwrap();
        let mut dstats = vec![0.0; 2 * channels];
        bn::batchnorm_stats_backward(&mut dstats, &dz, &x, &saved, &p).unwrap();
        let (dyd, savedd) = (g.up(&dy), g.up(&saved));
        let mut dstatsd = g.poisoned(2 * channels);
        fused::batchnorm_silu_stats_backward(
            &rt,
            &mut dstatsd.as_view_mut(),
            &dyd.as_view(),
            &xd.as_view(),
            &savedd.as_view(),
            &gd.as_view(),
            &bd.as_view(),
            &p,
        )
        .unwrap();
        check(
            &format!("fused stats backward {what}"),
            &g.down(&dstatsd),
            &dstats,
            F32_TOL,
        );
        let (dx0, dg0, db0) = (g.normal(n), g.normal(channels), g.normal(channels));
        let (mut dx, mut dg, mut db) = (dx0.clone(), dg0.clone(), db0.clone());
        bn::batchnorm_backward(
            &mut dx,
            &mut dg,
            &mut db,
            &dz,
            &x,
            &saved,
            &gamma,
            &dstats,
            &dstats,
            p.count(),
            &p,
        )
        .unwrap();
        let (mut dxd, mut dgd, mut dbd) = (g.up(&dx0), g.up(&dg0), g.up(&db0));
        let dstatsd = g.up(&dstats);
        fused::batchnorm_silu_backward(
            &rt,
            &mut dxd.as_view_mut(),
            &mut dgd.as_view_mut(),
            &mut dbd.as_view_mut(),
            &dyd.as_view(),
            &xd.as_view(),
            &savedd.as_view(),
            &gd.as_view(),
            &bd.as_view(),
            &dstatsd.as_view(),
            &dstatsd.as_view(),
            p.count(),
            &p,
        )
        .unwrap();
        check(
            &format!("fused backward dx {what}"),
            &g.down(&dxd),
            &dx,
            F32_TOL,
        );
        check(
            &format!("fused backward dgamma {what}"),
            &g.down(&dgd),
            &dg,
            F32_TOL,
        );
        check(
            &format!("fused backward dbeta {what}"),
            &g.down(&dbd),
            &db,
            F32_TOL,
        );
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
    cast_gpu::f32_to_bf16(&rt, &mut bd.as_view_mut(), &g.up(&x).as_view()).unwrap();
    let got = g.down(&bd);
    let bits = |v: &[half::bf16]| v.iter().map(|b| b.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&got), bits(&want), "f32 -> bf16");
    let mut back = vec![0.0f32; n];
    cast::bf16_to_f32(&mut back, &want).unwrap();
    let mut fd = g.poisoned(n);
    cast_gpu::bf16_to_f32(&rt, &mut fd.as_view_mut(), &bd.as_view()).unwrap();
    let got = g.down(&fd);
    assert!(
        got.iter()
            .zip(&back)
            .all(|(a, b)| a.to_bits() == b.to_bits()),
        "bf16 -> f32"
    );
}
