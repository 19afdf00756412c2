//! CPU convolution speed: the machine's SGEMM peak (the `gemm` crate on square matrices), every
//! distinct conv shape of PP-YOLOE-s at 320×320, batch 2 (forward, backward-data,
//! backward-filter; throughput is reported in FLOP/s as criterion "elem/s"), and the whole set of
//! one forward + backward.
//!
//! `RINGDET_CONV_SHAPES_JSON=path cargo bench -p ringdet-benches --bench conv` writes the shape
//! list (for the PaddlePaddle peer script `benches/peers/paddle_convs.py`) and exits.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use ringdet_kernels::conv::{Conv2dParams, cpu as conv};

/// One conv layer shape of the model and how many layers have it.
struct Shape {
    name: String,
    p: Conv2dParams,
    bias: bool,
    count: usize,
}

/// Every conv of PP-YOLOE-s (training form, spec §3–§5) for `batch` images of `size`².
fn ppyoloe_s_convs(batch: usize, size: usize) -> Vec<Shape> {
    // (cin, cout, input side, kernel, stride, bias, count)
    let s = size;
    let layers: Vec<(usize, usize, usize, usize, usize, bool, usize)> = vec![
        // backbone stem
        (3, 16, s, 3, 2, false, 1),
        (16, 16, s / 2, 3, 1, false, 1),
        (16, 32, s / 2, 3, 1, false, 1),
        // stage 0: mid 48, blocks on 24 at s/4
        (32, 48, s / 2, 3, 2, false, 1),
        (48, 24, s / 4, 1, 1, false, 2),
        (24, 24, s / 4, 3, 1, false, 2),
        (24, 24, s / 4, 1, 1, false, 1),
        (48, 48, 1, 1, 1, true, 1),
        (48, 64, s / 4, 1, 1, false, 1),
        // stage 1: mid 96, 2 blocks on 48 at s/8
        (64, 96, s / 4, 3, 2, false, 1),
        (96, 48, s / 8, 1, 1, false, 2),
        (48, 48, s / 8, 3, 1, false, 4),
        (48, 48, s / 8, 1, 1, false, 2),
        (96, 96, 1, 1, 1, true, 1),
        (96, 128, s / 8, 1, 1, false, 1),
        // stage 2: mid 192, 2 blocks on 96 at s/16
        (128, 192, s / 8, 3, 2, false, 1),
        (192, 96, s / 16, 1, 1, false, 2),
        (96, 96, s / 16, 3, 1, false, 4),
        (96, 96, s / 16, 1, 1, false, 2),
        (192, 192, 1, 1, 1, true, 1),
        (192, 256, s / 16, 1, 1, false, 1),
        // stage 3: mid 384, 1 block on 192 at s/32
        (256, 384, s / 16, 3, 2, false, 1),
        (384, 192, s / 32, 1, 1, false, 2),
        (192, 192, s / 32, 3, 1, false, 2),
        (192, 192, s / 32, 1, 1, false, 1),
        (384, 384, 1, 1, 1, true, 1),
        (384, 512, s / 32, 1, 1, false, 1),
        // neck fpn_stages.0 (512 -> 384 with SPP) + route
        (512, 192, s / 32, 1, 1, false, 2),
        (192, 192, s / 32, 3, 1, false, 2),
        (192, 192, s / 32, 1, 1, false, 1),
        (768, 192, s / 32, 1, 1, false, 1),
        (384, 384, s / 32, 1, 1, false, 1),
        (384, 192, s / 32, 1, 1, false, 1),
        // fpn_stages.1 (448 -> 192) + route
        (448, 96, s / 16, 1, 1, false, 2),
        (96, 96, s / 16, 3, 1, false, 2),
        (96, 96, s / 16, 1, 1, false, 1),
        (192, 192, s / 16, 1, 1, false, 1),
        (192, 96, s / 16, 1, 1, false, 1),
        // fpn_stages.2 (224 -> 96)
        (224, 48, s / 8, 1, 1, false, 2),
        (48, 48, s / 8, 3, 1, false, 2),
        (48, 48, s / 8, 1, 1, false, 1),
        (96, 96, s / 8, 1, 1, false, 1),
        // pan_routes.1 + pan_stages.1 (288 -> 192)
        (96, 96, s / 8, 3, 2, false, 1),
        (288, 96, s / 16, 1, 1, false, 2),
        (96, 96, s / 16, 3, 1, false, 2),
        (96, 96, s / 16, 1, 1, false, 1),
        (192, 192, s / 16, 1, 1, false, 1),
        // pan_routes.0 + pan_stages.0 (576 -> 384)
        (192, 192, s / 16, 3, 2, false, 1),
        (576, 192, s / 32, 1, 1, false, 2),
        (192, 192, s / 32, 3, 1, false, 2),
        (192, 192, s / 32, 1, 1, false, 1),
        (384, 384, s / 32, 1, 1, false, 1),
        // head, levels (384 @ s/32), (192 @ s/16), (96 @ s/8): ESEAttn fc ×2, stem conv ×2, pred_cls, pred_reg
        (384, 384, 1, 1, 1, true, 2),
        (384, 384, s / 32, 1, 1, false, 2),
        (384, 80, s / 32, 3, 1, true, 1),
        (384, 68, s / 32, 3, 1, true, 1),
        (192, 192, 1, 1, 1, true, 2),
        (192, 192, s / 16, 1, 1, false, 2),
        (192, 80, s / 16, 3, 1, true, 1),
        (192, 68, s / 16, 3, 1, true, 1),
        (96, 96, 1, 1, 1, true, 2),
        (96, 96, s / 8, 1, 1, false, 2),
        (96, 80, s / 8, 3, 1, true, 1),
        (96, 68, s / 8, 3, 1, true, 1),
    ];
    let mut out: Vec<Shape> = vec![];
    for (cin, cout, side, k, stride, bias, count) in layers {
        let p = Conv2dParams::square(batch, cin, cout, side, side, k, stride, k / 2);
        if let Some(e) = out.iter_mut().find(|e| e.p == p && e.bias == bias) {
            e.count += count;
        } else {
            let name = format!(
                "{cin}to{cout}_k{k}s{stride}_{side}x{side}{}",
                if bias { "_bias" } else { "" }
            );
            out.push(Shape {
                name,
                p,
                bias,
                count,
            });
        }
    }
    out
}

/// Buffers for one shape, allocated once.
struct Bufs {
    x: Vec<f32>,
    w: Vec<f32>,
    b: Vec<f32>,
    y: Vec<f32>,
    ws: Vec<f32>,
}

impl Bufs {
    fn new(p: &Conv2dParams) -> Self {
        let fill = |n: usize, s: usize| {
            (0..n)
                .map(|i| ((i * 7 + s) % 13) as f32 * 0.01 - 0.06)
                .collect::<Vec<_>>()
        };
        Bufs {
            x: fill(p.x_shape().iter().product(), 1),
            w: fill(p.w_shape().iter().product(), 2),
            b: fill(p.out_channels, 3),
            y: fill(p.y_shape().iter().product(), 4),
            ws: vec![0.0; p.workspace_len()],
        }
    }
    fn fwd(&mut self, s: &Shape) {
        let bias = s.bias.then_some(&self.b[..]);
        conv::conv2d_forward(&mut self.y, &mut self.ws, &self.x, &self.w, bias, &s.p)
            .expect("conv forward");
    }
    fn bwd_data(&mut self, s: &Shape) {
        conv::conv2d_backward_data(&mut self.x, &mut self.ws, &self.y, &self.w, &s.p)
            .expect("conv backward data");
    }
    fn bwd_filter(&mut self, s: &Shape) {
        let db = if s.bias { Some(&mut self.b[..]) } else { None };
        conv::conv2d_backward_filter(&mut self.w, db, &mut self.ws, &self.y, &self.x, &s.p)
            .expect("conv backward filter");
    }
}

fn sgemm_peak(c: &mut Criterion) {
    let mut g = c.benchmark_group("sgemm_peak");
    for (n, threads) in [(1024usize, 1usize), (2048, 1), (1024, 2), (2048, 2)] {
        let a = vec![0.5f32; n * n];
        let b = vec![0.25f32; n * n];
        let mut d = vec![0.0f32; n * n];
        g.throughput(Throughput::Elements((2 * n * n * n) as u64));
        g.bench_function(format!("{n}x{n}x{n}_threads{threads}"), |bch| {
            bch.iter(|| {
                let par = if threads > 1 {
                    gemm::Parallelism::Rayon(threads)
                } else {
                    gemm::Parallelism::None
                };
                // SAFETY: all three buffers are n×n column-major f32, dst does not alias.
                unsafe {
                    gemm::gemm(
                        n,
                        n,
                        n,
                        d.as_mut_ptr(),
                        n as isize,
                        1,
                        false,
                        a.as_ptr(),
                        n as isize,
                        1,
                        b.as_ptr(),
                        n as isize,
                        1,
                        0.0f32,
                        1.0f32,
                        false,
                        false,
                        false,
                        par,
                    );
                }
                black_box(&d);
            })
        });
    }
    g.finish();
}

fn per_shape(c: &mut Criterion) {
    let shapes = ppyoloe_s_convs(2, 320);
    let mut g = c.benchmark_group("ppyoloe_s_conv_320_b2");
    for s in &shapes {
        let mut bufs = Bufs::new(&s.p);
        g.throughput(Throughput::Elements(s.p.flops()));
        g.bench_function(format!("fwd/{}", s.name), |b| b.iter(|| bufs.fwd(s)));
        g.bench_function(format!("bwd_data/{}", s.name), |b| {
            b.iter(|| bufs.bwd_data(s))
        });
        g.bench_function(format!("bwd_filter/{}", s.name), |b| {
            b.iter(|| bufs.bwd_filter(s))
        });
    }
    g.finish();
}

fn whole_model(c: &mut Criterion) {
    let shapes = ppyoloe_s_convs(2, 320);
    let mut bufs: Vec<Bufs> = shapes.iter().map(|s| Bufs::new(&s.p)).collect();
    let flops: u64 = shapes
        .iter()
        .map(|s| 3 * s.p.flops() * s.count as u64)
        .sum();
    let mut g = c.benchmark_group("ppyoloe_s_all_convs_320_b2");
    g.throughput(Throughput::Elements(flops));
    g.bench_function("fwd_bwd", |b| {
        b.iter(|| {
            for (s, buf) in shapes.iter().zip(bufs.iter_mut()) {
                for _ in 0..s.count {
                    buf.fwd(s);
                    buf.bwd_data(s);
                    buf.bwd_filter(s);
                }
            }
        })
    });
    g.finish();
}

fn write_shapes(path: &str) {
    let list: Vec<serde_json::Value> = ppyoloe_s_convs(2, 320)
        .iter()
        .map(|s| {
            serde_json::json!({
                "name": s.name, "batch": s.p.batch, "cin": s.p.in_channels, "cout": s.p.out_channels,
                "side": s.p.in_h, "kernel": s.p.kernel_h, "stride": s.p.stride_h, "pad": s.p.pad_h,
                "bias": s.bias, "count": s.count, "flops": s.p.flops(),
            })
        })
        .collect();
    let text = serde_json::to_string_pretty(&list).expect("shape list serialises");
    std::fs::write(path, text).unwrap_or_else(|e| panic!("writing {path}: {e}"));
}

fn main() {
    if let Ok(path) = std::env::var("RINGDET_CONV_SHAPES_JSON") {
        write_shapes(&path);
        return;
    }
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .configure_from_args();
    sgemm_peak(&mut c);
    per_shape(&mut c);
    whole_model(&mut c);
    c.final_summary();
}
