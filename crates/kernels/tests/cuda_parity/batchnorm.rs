//! GPU-vs-CPU parity of batch norm: the SyncBN split (stats, train forward, stats backward,
//! backward) and inference, on odd shapes with a mean offset (so one-pass variance is tested).

use super::common::{F32_TOL, Gpu, check};
use ringdet_kernels::batchnorm::{BatchNormParams, cpu as bn, cuda as bn_gpu};
use ringdet_kernels::runtime::testing::gpu_or_skip;

#[test]
fn batchnorm_cuda_matches_cpu() {
    let Some(rt) = gpu_or_skip("batchnorm_cuda_matches_cpu") else {
        return;
    };
    let mut g = Gpu::new(&rt, 31);
    for (batch, channels, spatial) in [(1, 1, 1), (3, 5, 37), (2, 67, 19 * 23), (5, 3, 4099)] {
        let p = BatchNormParams::new(batch, channels, spatial);
        let n = batch * channels * spatial;
        let x: Vec<f32> = g.normal(n).iter().map(|v| 2.0 * v + 0.5).collect();
        let (gamma, beta) = (g.uniform(channels, 0.5, 1.5), g.normal(channels));
        let (rm0, rv0) = (g.normal(channels), g.uniform(channels, 0.5, 2.0));
        let (xd, gd, bd) = (g.up(&x), g.up(&gamma), g.up(&beta));
        let what = format!("{p:?}");

        let mut stats = vec![0.0; 2 * channels];
        bn::batchnorm_stats_forward(&mut stats, &x, &p).unwrap();
        let mut statsd = g.poisoned(2 * channels);
        bn_gpu::batchnorm_stats_forward(&rt, &mut statsd, &xd, &p).unwrap();
        check(
            &format!("stats forward {what}"),
            &g.down(&statsd),
            &stats,
            F32_TOL,
        );

        let (mut y, mut saved, mut rm, mut rv) = (
            vec![0.0; n],
            vec![0.0; 2 * channels],
            rm0.clone(),
            rv0.clone(),
        );
        bn::batchnorm_forward_train(
            &mut y,
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
        let (mut yd, mut savedd, mut rmd, mut rvd) = (
            g.poisoned(n),
            g.poisoned(2 * channels),
            g.up(&rm0),
            g.up(&rv0),
        );
        let statsd = g.up(&stats);
        bn_gpu::batchnorm_forward_train(
            &rt,
            &mut yd,
            &mut savedd,
            &mut rmd,
            &mut rvd,
            &xd,
            &gd,
            &bd,
            &statsd,
            p.count(),
            &p,
        )
        .unwrap();
        check(
            &format!("train forward y {what}"),
            &g.down(&yd),
            &y,
            F32_TOL,
        );
        check(
            &format!("train forward saved {what}"),
            &g.down(&savedd),
            &saved,
            F32_TOL,
        );
        check(&format!("running mean {what}"), &g.down(&rmd), &rm, F32_TOL);
        check(&format!("running var {what}"), &g.down(&rvd), &rv, F32_TOL);

        let mut yi = vec![0.0; n];
        bn::batchnorm_forward_inference(&mut yi, &x, &gamma, &beta, &rm, &rv, &p).unwrap();
        let mut yid = g.poisoned(n);
        bn_gpu::batchnorm_forward_inference(
            &rt,
            &mut yid,
            &xd,
            &gd,
            &bd,
            &g.up(&rm),
            &g.up(&rv),
            &p,
        )
        .unwrap();
        check(
            &format!("inference forward {what}"),
            &g.down(&yid),
            &yi,
            F32_TOL,
        );

        let dy = g.normal(n);
        let (dyd, savedd) = (g.up(&dy), g.up(&saved));
        let mut dstats = vec![0.0; 2 * channels];
        bn::batchnorm_stats_backward(&mut dstats, &dy, &x, &saved, &p).unwrap();
        let mut dstatsd = g.poisoned(2 * channels);
        bn_gpu::batchnorm_stats_backward(&rt, &mut dstatsd, &dyd, &xd, &savedd, &p).unwrap();
        check(
            &format!("stats backward {what}"),
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
            &dy,
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
        bn_gpu::batchnorm_backward(
            &rt,
            &mut dxd,
            &mut dgd,
            &mut dbd,
            &dyd,
            &xd,
            &savedd,
            &gd,
            &dstatsd,
            &dstatsd,
            p.count(),
            &p,
        )
        .unwrap();
        check(&format!("backward dx {what}"), &g.down(&dxd), &dx, F32_TOL);
        check(
            &format!("backward dgamma {what}"),
            &g.down(&dgd),
            &dg,
            F32_TOL,
        );
        check(
            &format!("backward dbeta {what}"),
            &g.down(&dbd),
            &db,
            F32_TOL,
        );
    }
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
            &mut yd,
            &mut savedd,
            &mut rmd,
            &mut rvd,
            &xd,
            &gd,
            &bd,
            &g.up(&stats),
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
        fused::batchnorm_silu_stats_backward(&rt, &mut dstatsd, &dyd, &xd, &savedd, &gd, &bd, &p)
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
            &mut dxd,
            &mut dgd,
            &mut dbd,
            &dyd,
            &xd,
            &savedd,
            &gd,
            &bd,
            &dstatsd,
            &dstatsd,
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
