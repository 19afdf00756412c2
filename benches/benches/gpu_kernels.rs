//! GPU timings of the ringdet CUDA kernels beside the two ceilings measured in the same run
//! (docs/gpu.md, METHOD): a large device-to-device copy (bandwidth, bytes read + written) and a
//! large bf16 GEMM on the tensor cores without cuBLAS — ringdet's own `mma.sync` engine on a
//! GEMM-shaped problem (a 1×1 convolution of one 1 × 8192 image with 8192 channels into 8192:
//! M = N = K = 8192, no gather) — which is the math ceiling the kernels are measured against;
//! cuBLAS's rate on the same GEMM is printed beside it where cuBLAS loads (a measuring stick of
//! how far the hand-written engine is from the hardware, never in the product). Each time is the median of 20 event-timed launches after 3 warm-ups, on fresh
//! random data. Prints `SKIP` and exits 0 without a GPU. Run by `gpu-bundle/run.sh`.

use cudarc::cublas::{CudaBlas, Gemm, GemmConfig, sys::cublasOperation_t};
use cudarc::driver::{CudaSlice, sys::CUevent_flags};
use half::bf16;
use ringdet_kernels::activation::cuda as act;
use ringdet_kernels::batchnorm::{BatchNormParams, cuda as bn, cuda_fused as bn_fused};
use ringdet_kernels::cast::cuda as cast;
use ringdet_kernels::conv::Conv2dParams;
use ringdet_kernels::conv::cuda::{self as conv, ConvMath};
use ringdet_kernels::optimizer::{SgdParams, cuda as opt};
use ringdet_kernels::pool::{PoolParams, cuda as pool};
use ringdet_kernels::runtime::KernelRuntime;
use ringdet_tensor::Rng;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Median milliseconds of `f` over 20 timed runs after 3 warm-ups.
fn time_ms(rt: &KernelRuntime, mut f: impl FnMut() -> Res<()>) -> Res<f64> {
    for _ in 0..3 {
        f()?;
    }
    let mut ts = Vec::new();
    for _ in 0..20 {
        let start = rt
            .stream()
            .record_event(Some(CUevent_flags::CU_EVENT_DEFAULT))?;
        f()?;
        let end = rt
            .stream()
            .record_event(Some(CUevent_flags::CU_EVENT_DEFAULT))?;
        end.synchronize()?;
        ts.push(start.elapsed_ms(&end)? as f64);
    }
    ts.sort_by(f64::total_cmp);
    Ok(ts[ts.len() / 2])
}

fn random(rt: &KernelRuntime, rng: &mut Rng, n: usize) -> Res<CudaSlice<f32>> {
    let mut v = vec![0f32; n];
    rng.fill_normal(&mut v, 0.0, 1.0);
    Ok(rt.stream().clone_htod(&v)?)
}

struct Ceilings {
    bytes_per_s: f64,
    flops_per_s: f64,
}

fn ceilings(rt: &KernelRuntime, rng: &mut Rng) -> Res<Ceilings> {
    let n = 256 << 20; // 1 GiB of f32
    let src = random(rt, rng, n)?;
    let mut dst = rt.stream().alloc_zeros::<f32>(n)?;
    let ms = time_ms(rt, || Ok(rt.stream().memcpy_dtod(&src, &mut dst)?))?;
    let bytes_per_s = 2.0 * 4.0 * n as f64 / (ms * 1e-3);
    drop((src, dst));
    let flops_per_s = own_bf16_gemm_rate(rt, rng)?;
    // cuBLAS is loaded at run time and cudarc panics when it is missing: report, don't abort.
    let gemm = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| bf16_gemm_rate(rt, rng)));
    match gemm {
        Ok(Ok(rate)) => println!(
            "cuBLAS bf16 GEMM 8192^3: {:.0} TFLOP/s (ringdet's own engine reaches {:.0} % of it)",
            rate / 1e12,
            100.0 * flops_per_s / rate
        ),
        Ok(Err(e)) => println!("cuBLAS bf16 GEMM failed: {e}; no cuBLAS figure beside ours"),
        Err(_) => println!("cuBLAS could not be loaded; no cuBLAS figure beside ours"),
    }
    Ok(Ceilings {
        bytes_per_s,
        flops_per_s,
    })
}

/// FLOP/s of an 8192³ GEMM on ringdet's bf16 tensor-core engine (f32 in memory, operands
/// rounded to bf16 as tiles load, f32 accumulation): the 1×1 stride-1 convolution path, whose
/// operands are plain strided reads, on one 1 × 8192 "image" of 8192 channels.
fn own_bf16_gemm_rate(rt: &KernelRuntime, rng: &mut Rng) -> Res<f64> {
    let d = 8192usize;
    let p = Conv2dParams::square(1, d, d, 1, d, 1, 1, 0);
    let x = random(rt, rng, d * d)?;
    let w = random(rt, rng, d * d)?;
    let mut y = rt.stream().alloc_zeros::<f32>(d * d)?;
    let ms = time_ms(rt, || {
        Ok(conv::conv2d_forward(
            rt,
            &mut y.as_view_mut(),
            &x.as_view(),
            &w.as_view(),
            None,
            &p,
            ConvMath::Bf16TensorCore,
        )?)
    })?;
    Ok(2.0 * (d as f64).powi(3) / (ms * 1e-3))
}

/// FLOP/s of an 8192³ bf16 GEMM (f32 accumulation) through cuBLAS on random data.
fn bf16_gemm_rate(rt: &KernelRuntime, rng: &mut Rng) -> Res<f64> {
    let d = 8192usize;
    let a = random(rt, rng, d * d)?;
    let b = random(rt, rng, d * d)?;
    let mut ab = rt.stream().alloc_zeros::<bf16>(d * d)?;
    let mut bb = rt.stream().alloc_zeros::<bf16>(d * d)?;
    cast::f32_to_bf16(rt, &mut ab.as_view_mut(), &a.as_view())?;
    cast::f32_to_bf16(rt, &mut bb.as_view_mut(), &b.as_view())?;
    let mut c = rt.stream().alloc_zeros::<bf16>(d * d)?;
    let blas = CudaBlas::new(rt.stream().clone())?;
    let cfg = GemmConfig {
        transa: cublasOperation_t::CUBLAS_OP_N,
        transb: cublasOperation_t::CUBLAS_OP_N,
        m: d as i32,
        n: d as i32,
        k: d as i32,
        alpha: bf16::ONE,
        lda: d as i32,
        ldb: d as i32,
        beta: bf16::ZERO,
        ldc: d as i32,
    };
    // SAFETY: all three matrices are d×d bf16 device buffers.
    let ms = time_ms(rt, || Ok(unsafe { blas.gemm(cfg, &ab, &bb, &mut c) }?))?;
    Ok(2.0 * (d as f64).powi(3) / (ms * 1e-3))
}

fn row(name: &str, ms: f64, bytes: f64, flops: f64, c: &Ceilings) {
    let math_ms = if flops > 0.0 {
        flops / c.flops_per_s
    } else {
        0.0
    };
    let floor_ms = (bytes / c.bytes_per_s).max(math_ms) * 1e3;
    println!(
        "| {name} | {:.1} | {:.0} | {:.1} | {:.0} % |",
        ms * 1e3,
        bytes / (ms * 1e-3) / 1e9,
        flops / (ms * 1e-3) / 1e12,
        100.0 * floor_ms / ms
    );
}

fn main() -> Res<()> {
    let rt = match KernelRuntime::get(0) {
        Ok(rt) => rt,
        Err(e) => {
            println!("SKIP gpu_kernels: {e}");
            return Ok(());
        }
    };
    let rt = &*rt;
    let mut rng = Rng::new(5);
    println!("device: {}", rt.device_name()?);
    let c = ceilings(rt, &mut rng)?;
    println!(
        "ceilings: device-to-device copy {:.0} GB/s (read + write), bf16 GEMM 8192^3 on ringdet's tensor-core engine {:.0} TFLOP/s",
        c.bytes_per_s / 1e9,
        c.flops_per_s / 1e12
    );
    println!("| kernel | median µs | GB/s | TFLOP/s | floor / time |");
    println!("|---|---|---|---|---|");

    let n = 64 << 20;
    let (x, mut y) = (random(rt, &mut rng, n)?, random(rt, &mut rng, n)?);
    let ms = time_ms(rt, || {
        Ok(act::silu_forward(rt, &mut y.as_view_mut(), &x.as_view())?)
    })?;
    row("silu forward, 64 Mi f32", ms, 8.0 * n as f64, 0.0, &c);
    let mut xb = rt.stream().alloc_zeros::<bf16>(n)?;
    let ms = time_ms(rt, || {
        Ok(cast::f32_to_bf16(rt, &mut xb.as_view_mut(), &x.as_view())?)
    })?;
    row("f32 -> bf16, 64 Mi", ms, 6.0 * n as f64, 0.0, &c);

    let p = BatchNormParams::new(8, 64, 160 * 160);
    let m = 8 * 64 * 160 * 160;
    let (bx, mut by) = (random(rt, &mut rng, m)?, random(rt, &mut rng, m)?);
    let (g, b) = (random(rt, &mut rng, 64)?, random(rt, &mut rng, 64)?);
    let (mut stats, mut saved) = (random(rt, &mut rng, 128)?, random(rt, &mut rng, 128)?);
    let (mut rm, mut rv) = (random(rt, &mut rng, 64)?, random(rt, &mut rng, 64)?);
    let ms = time_ms(rt, || {
        Ok(bn::batchnorm_stats_forward(
            rt,
            &mut stats.as_view_mut(),
            &bx.as_view(),
            &p,
        )?)
    })?;
    row("BN stats fwd [8,64,160,160]", ms, 4.0 * m as f64, 0.0, &c);
    let ms = time_ms(rt, || {
        Ok(bn_fused::batchnorm_silu_forward_train(
            rt,
            &mut by.as_view_mut(),
            &mut saved.as_view_mut(),
            &mut rm.as_view_mut(),
            &mut rv.as_view_mut(),
            &bx.as_view(),
            &g.as_view(),
            &b.as_view(),
            &stats.as_view(),
            p.count(),
            &p,
        )?)
    })?;
    row(
        "BN+SiLU fused fwd [8,64,160,160]",
        ms,
        8.0 * m as f64,
        0.0,
        &c,
    );

    let pp = PoolParams {
        batch: 8,
        channels: 256,
        h: 20,
        w: 20,
        kernel: 13,
    };
    let q = 8 * 256 * 20 * 20;
    let (px, mut py, mut pws) = (
        random(rt, &mut rng, q)?,
        random(rt, &mut rng, q)?,
        random(rt, &mut rng, q)?,
    );
    let ms = time_ms(rt, || {
        Ok(pool::max_pool_forward(
            rt,
            &mut py.as_view_mut(),
            &mut pws.as_view_mut(),
            &px.as_view(),
            &pp,
        )?)
    })?;
    row("max pool 13 [8,256,20,20]", ms, 8.0 * q as f64, 0.0, &c);

    let np = 8 << 20;
    let (mut th, mut vel, gr) = (
        random(rt, &mut rng, np)?,
        random(rt, &mut rng, np)?,
        random(rt, &mut rng, np)?,
    );
    let mask = rt.stream().clone_htod(&vec![1u8; np])?;
    let sp = SgdParams::ppyoloe(0.01);
    let ms = time_ms(rt, || {
        Ok(opt::sgd_momentum_step(
            rt,
            &mut th.as_view_mut(),
            &mut vel.as_view_mut(),
            &gr.as_view(),
            &mask.as_view(),
            &sp,
        )?)
    })?;
    row("SGD step, 8 Mi params", ms, 21.0 * np as f64, 0.0, &c);

    // PP-YOLOE-s's larger convs at 640×640, batch 8 (every stage has the same FLOPs).
    let convs = [
        (
            "3x3 32->32 @160",
            Conv2dParams::square(8, 32, 32, 160, 160, 3, 1, 1),
        ),
        (
            "3x3 64->64 @80",
            Conv2dParams::square(8, 64, 64, 80, 80, 3, 1, 1),
        ),
        (
            "3x3 128->128 @40",
            Conv2dParams::square(8, 128, 128, 40, 40, 3, 1, 1),
        ),
        (
            "3x3 256->256 @20",
            Conv2dParams::square(8, 256, 256, 20, 20, 3, 1, 1),
        ),
        (
            "3x3 s2 128->256 @40",
            Conv2dParams::square(8, 128, 256, 40, 40, 3, 2, 1),
        ),
        (
            "1x1 128->128 @80",
            Conv2dParams::square(8, 128, 128, 80, 80, 1, 1, 0),
        ),
    ];
    for (name, p) in convs {
        let (nx, nw, ny) = (
            p.x_shape().iter().product::<usize>(),
            p.w_shape().iter().product::<usize>(),
            p.y_shape().iter().product::<usize>(),
        );
        let (x, w) = (random(rt, &mut rng, nx)?, random(rt, &mut rng, nw)?);
        let (mut y, dy) = (random(rt, &mut rng, ny)?, random(rt, &mut rng, ny)?);
        let (mut dx, mut dw) = (random(rt, &mut rng, nx)?, random(rt, &mut rng, nw)?);
        let bytes = 4.0 * (nx + nw + ny) as f64;
        let flops = p.flops() as f64;
        for math in [ConvMath::F32, ConvMath::Bf16TensorCore] {
            let ms = time_ms(rt, || {
                Ok(conv::conv2d_forward(
                    rt,
                    &mut y.as_view_mut(),
                    &x.as_view(),
                    &w.as_view(),
                    None,
                    &p,
                    math,
                )?)
            })?;
            row(&format!("conv fwd {name} {math:?}"), ms, bytes, flops, &c);
            let ms = time_ms(rt, || {
                Ok(conv::conv2d_backward_data(
                    rt,
                    &mut dx.as_view_mut(),
                    &dy.as_view(),
                    &w.as_view(),
                    &p,
                    math,
                )?)
            })?;
            row(
                &format!("conv bwd-data {name} {math:?}"),
                ms,
                bytes + 4.0 * nx as f64,
                flops,
                &c,
            );
            let ms = time_ms(rt, || {
                Ok(conv::conv2d_backward_filter(
                    rt,
                    &mut dw.as_view_mut(),
                    None,
                    &dy.as_view(),
                    &x.as_view(),
                    &p,
                    math,
                )?)
            })?;
            row(
                &format!("conv bwd-filter {name} {math:?}"),
                ms,
                bytes + 4.0 * nw as f64,
                flops,
                &c,
            );
        }
    }
    println!(
        "floor / time: the larger of bytes / copy rate and FLOPs / bf16 GEMM rate, over the time"
    );
    Ok(())
}
