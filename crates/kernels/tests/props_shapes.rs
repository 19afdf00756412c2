//! Property tests of shape handling: every op accepts exactly the lengths its params imply and
//! answers any other length with an error naming the op (never a panic).

use proptest::prelude::*;
use ringdet_kernels::batchnorm::{BatchNormParams, cpu as bn};
use ringdet_kernels::concat::{ConcatParams, cpu as cat};
use ringdet_kernels::dfl::{DflParams, cpu as dfl};
use ringdet_kernels::pool::{PoolParams, cpu as pool};
use ringdet_kernels::resize::{UpsampleParams, cpu as rs};

fn named(r: Result<(), ringdet_kernels::KernelError>, op: &str) -> bool {
    matches!(r, Err(e) if e.to_string().starts_with(op))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn pool_and_upsample_lengths(n in 1usize..3, c in 1usize..4, h in 1usize..9, w in 1usize..9,
                                 k in prop::sample::select(vec![1usize, 3, 5, 9, 13]), off in 1usize..2) {
        let len = n * c * h * w;
        let p = PoolParams { batch: n, channels: c, h, w, kernel: k };
        let x = vec![0.5f32; len];
        let (mut y, mut ws) = (vec![0.0f32; len], vec![0.0f32; len]);
        prop_assert!(pool::max_pool_forward(&mut y, &mut ws, &x, &p).is_ok());
        prop_assert!(y.iter().all(|&v| v == 0.5));
        prop_assert!(named(pool::max_pool_forward(&mut y[off..], &mut ws, &x, &p), "max_pool_forward"));
        let mut g = vec![0.0f32; n * c];
        prop_assert!(pool::global_avg_pool_forward(&mut g, &x, &p).is_ok());
        prop_assert!(named(pool::global_avg_pool_forward(&mut g, &x[off..], &p), "global_avg_pool_forward"));
        let up = UpsampleParams { batch: n, channels: c, h, w };
        let mut u = vec![0.0f32; 4 * len];
        prop_assert!(rs::upsample_nearest2x_forward(&mut u, &x, &up).is_ok());
        prop_assert!(named(rs::upsample_nearest2x_forward(&mut u[off..], &x, &up), "upsample_nearest2x_forward"));
        let mut dx = vec![0.0f32; len];
        prop_assert!(rs::upsample_nearest2x_backward(&mut dx, &u, &up).is_ok());
        prop_assert!(dx.iter().all(|&v| v == 2.0)); // four copies of 0.5
    }

    #[test]
    fn concat_bn_dfl_lengths(n in 1usize..3, chans in prop::collection::vec(1usize..4, 1..4), hw in 1usize..7, off in 1usize..2) {
        let p = ConcatParams { batch: n, spatial: hw, channels: &chans };
        let parts: Vec<Vec<f32>> = chans.iter().map(|&c| vec![1.0; n * c * hw]).collect();
        let refs: Vec<&[f32]> = parts.iter().map(|v| &v[..]).collect();
        let total = p.total_channels();
        let mut y = vec![0.0f32; n * total * hw];
        prop_assert!(cat::concat_channels_forward(&mut y, &refs, &p).is_ok());
        prop_assert!(named(cat::concat_channels_forward(&mut y, &refs[1..], &p), "concat_channels_forward"));
        prop_assert!(named(cat::concat_channels_forward(&mut y[off..], &refs, &p), "concat_channels_forward"));

        let bp = BatchNormParams::new(n, total, hw);
        let mut st = vec![0.0f32; 2 * total];
        prop_assert!(bn::batchnorm_stats_forward(&mut st, &y, &bp).is_ok());
        prop_assert!(st[..total].iter().all(|&s| s == (n * hw) as f32));
        prop_assert!(named(bn::batchnorm_stats_forward(&mut st[off..], &y, &bp), "batchnorm_stats_forward"));

        let dp = DflParams { outer: n, sides: 4, bins: 17, inner: hw };
        let logits = vec![0.0f32; n * 4 * 17 * hw];
        let mut prob = vec![0.0f32; logits.len()];
        prop_assert!(dfl::softmax_bins_forward(&mut prob, &logits, &dp).is_ok());
        let mut dist = vec![0.0f32; n * 4 * hw];
        prop_assert!(dfl::dfl_integral_forward(&mut dist, &prob, &dp).is_ok());
        prop_assert!(dist.iter().all(|&d| (d - 8.0).abs() < 1e-5)); // uniform bins: expectation 8
        prop_assert!(named(dfl::dfl_integral_forward(&mut dist[off..], &prob, &dp), "dfl_integral_forward"));
    }
}
