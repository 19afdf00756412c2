//! The host backend: the `cpu` kernels behind the op-family traits, for `f32` and `f64`.
//! Views are plain slices, so calls compile to direct kernel calls (no copies, no dynamic
//! dispatch); conv and max-pool workspaces come from the [`crate::arena`] and go back to it
//! after the call, so a step reuses the previous step's workspaces.

use std::borrow::Cow;
use std::ops::Range;

use super::{
    ActivationOps, Buffers, ConcatOps, ConvOps, DflOps, ElementwiseOps, FuseOps, HostBackend,
    KResult, LossOps, NormOps, OptimOps, PoolOps, ResizeOps, check_disjoint, check_range,
};
use crate::Real;
use crate::batchnorm::BatchNormParams;
use crate::concat::ConcatParams;
use crate::conv::Conv2dParams;
use crate::dfl::DflParams;
use crate::elementwise::BroadcastParams;
use crate::fuse::{FoldParams, RepVggParams};
use crate::loss::{BoxLossParams, VarifocalParams};
use crate::optimizer::{AdamwParams, EmaParams, SgdParams};
use crate::pool::PoolParams;
use crate::profile::{self, ConvPass, Family, OpTimer};
use crate::resize::UpsampleParams;
use crate::{
    activation, batchnorm, concat, conv, dfl, elementwise, fuse, loss, optimizer, pool, resize,
};

/// The host backend (the numerical reference). Runs on the current rayon pool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cpu;

/// Writes a reduced loss into its one-element output.
fn put<T: Real>(op: &'static str, out: &mut [T], v: T) -> KResult<()> {
    crate::error::check_len(op, "loss", out.len(), &[1])?;
    out[0] = v;
    Ok(())
}

impl<T: Real> Buffers<T> for Cpu {
    type Buf = Vec<T>;
    type View<'a> = &'a [T];
    type ViewMut<'a> = &'a mut [T];
    type Mask = Vec<u8>;
    const HOST_MEMORY: bool = true;

    fn len(buf: &Vec<T>) -> usize {
        buf.len()
    }
    fn view(buf: &Vec<T>) -> &[T] {
        buf
    }
    fn view_mut(buf: &mut Vec<T>) -> &mut [T] {
        buf
    }
    fn reborrow<'a>(v: &Self::View<'a>) -> Self::View<'a> {
        v
    }
    fn slice(buf: &Vec<T>, range: Range<usize>) -> KResult<&[T]> {
        check_range("slice", &range, buf.len())?;
        Ok(&buf[range])
    }
    fn slice_mut(buf: &mut Vec<T>, range: Range<usize>) -> KResult<&mut [T]> {
        check_range("slice_mut", &range, buf.len())?;
        Ok(&mut buf[range])
    }
    fn split_mut(
        buf: &mut Vec<T>,
        a: Range<usize>,
        b: Range<usize>,
    ) -> KResult<(&mut [T], &mut [T])> {
        check_range("split_mut", &a, buf.len())?;
        check_range("split_mut", &b, buf.len())?;
        check_disjoint(&a, &b)?;
        Ok(if a.start < b.start {
            let (lo, hi) = buf.split_at_mut(b.start);
            (&mut lo[a], &mut hi[..b.len()])
        } else {
            let (lo, hi) = buf.split_at_mut(a.start);
            (&mut hi[..a.len()], &mut lo[b])
        })
    }
    fn upload(&self, host: &[T]) -> KResult<Vec<T>> {
        Ok(host.to_vec())
    }
    fn download(&self, buf: &Vec<T>) -> KResult<Vec<T>> {
        Ok(buf.clone())
    }
    fn zeros(&self, n: usize) -> KResult<Vec<T>> {
        Ok(crate::arena::take_zeroed(n))
    }
    fn upload_mask(&self, host: &[u8]) -> KResult<Vec<u8>> {
        Ok(host.to_vec())
    }
    fn scratch(&self, n: usize) -> KResult<Vec<T>> {
        Ok(crate::arena::take(n))
    }
    fn copy(&self, buf: &Vec<T>) -> KResult<Vec<T>> {
        Ok(crate::arena::take_copy(buf))
    }
    fn adopt_host(&self, host: Vec<T>) -> KResult<Vec<T>> {
        Ok(host)
    }
    fn to_host<'a>(&self, buf: &'a Vec<T>, range: Range<usize>) -> KResult<Cow<'a, [T]>> {
        check_range("to_host", &range, buf.len())?;
        Ok(Cow::Borrowed(&buf[range]))
    }
    fn with_host_mut<R>(&self, buf: &mut Vec<T>, f: impl FnOnce(&mut [T]) -> R) -> KResult<R> {
        Ok(f(buf))
    }
    fn fill_zero(&self, buf: &mut Vec<T>) -> KResult<()> {
        crate::par::fill(buf, T::ZERO);
        Ok(())
    }
    fn recycle(buf: &mut Vec<T>) {
        crate::arena::give(std::mem::take(buf));
    }
}

impl<T: Real> HostBackend<T> for Cpu {
    #[inline]
    fn host(x: &[T]) -> &[T] {
        x
    }
    #[inline]
    fn host_mut(x: &mut [T]) -> &mut [T] {
        x
    }
}

impl<T: Real> ConvOps<T> for Cpu {
    fn conv2d_forward(
        &self,
        y: &mut [T],
        x: &[T],
        w: &[T],
        bias: Option<&[T]>,
        p: &Conv2dParams,
    ) -> KResult<()> {
        let _t = profile::conv_timer(ConvPass::Forward, p);
        let mut ws = crate::arena::take::<T>(p.workspace_len());
        let r = conv::cpu::conv2d_forward(y, &mut ws, x, w, bias, p);
        crate::arena::give(ws);
        r
    }
    fn conv2d_backward_data(
        &self,
        dx: &mut [T],
        dy: &[T],
        w: &[T],
        p: &Conv2dParams,
    ) -> KResult<()> {
        let _t = profile::conv_timer(ConvPass::BackwardData, p);
        let mut ws = crate::arena::take::<T>(p.workspace_len());
        let r = conv::cpu::conv2d_backward_data(dx, &mut ws, dy, w, p);
        crate::arena::give(ws);
        r
    }
    fn conv2d_backward_filter(
        &self,
        dw: &mut [T],
        dbias: Option<&mut [T]>,
        dy: &[T],
        x: &[T],
        p: &Conv2dParams,
    ) -> KResult<()> {
        let _t = profile::conv_timer(ConvPass::BackwardFilter, p);
        let mut ws = crate::arena::take::<T>(p.workspace_len());
        let r = conv::cpu::conv2d_backward_filter(dw, dbias, &mut ws, dy, x, p);
        crate::arena::give(ws);
        r
    }
}

impl<T: Real> NormOps<T> for Cpu {
    fn batchnorm_stats_forward(
        &self,
        stats: &mut [T],
        x: &[T],
        p: &BatchNormParams,
    ) -> KResult<()> {
        let _t = OpTimer::new(Family::BnStats);
        batchnorm::cpu::batchnorm_stats_forward(stats, x, p)
    }
    fn batchnorm_forward_train(
        &self,
        y: &mut [T],
        saved: &mut [T],
        running_mean: &mut [T],
        running_var: &mut [T],
        x: &[T],
        gamma: &[T],
        beta: &[T],
        stats: &[T],
        count: usize,
        p: &BatchNormParams,
    ) -> KResult<()> {
        let _t = OpTimer::new(Family::BnForward);
        batchnorm::cpu::batchnorm_forward_train(
            y,
            saved,
            running_mean,
            running_var,
            x,
            gamma,
            beta,
            stats,
            count,
            p,
        )
    }
    fn batchnorm_forward_inference(
        &self,
        y: &mut [T],
        x: &[T],
        gamma: &[T],
        beta: &[T],
        running_mean: &[T],
        running_var: &[T],
        p: &BatchNormParams,
    ) -> KResult<()> {
        let _t = OpTimer::new(Family::BnForward);
        batchnorm::cpu::batchnorm_forward_inference(y, x, gamma, beta, running_mean, running_var, p)
    }
    fn batchnorm_stats_backward(
        &self,
        dstats: &mut [T],
        dy: &[T],
        x: &[T],
        saved: &[T],
        p: &BatchNormParams,
    ) -> KResult<()> {
        let _t = OpTimer::new(Family::BnStats);
        batchnorm::cpu::batchnorm_stats_backward(dstats, dy, x, saved, p)
    }
    fn batchnorm_backward(
        &self,
        dx: &mut [T],
        dgamma: &mut [T],
        dbeta: &mut [T],
        dy: &[T],
        x: &[T],
        saved: &[T],
        gamma: &[T],
        dstats_local: &[T],
        dstats: &[T],
        count: usize,
        p: &BatchNormParams,
    ) -> KResult<()> {
        let _t = OpTimer::new(Family::BnBackward);
        batchnorm::cpu::batchnorm_backward(
            dx,
            dgamma,
            dbeta,
            dy,
            x,
            saved,
            gamma,
            dstats_local,
            dstats,
            count,
            p,
        )
    }
    fn batchnorm_silu_forward_train(
        &self,
        y: &mut [T],
        saved: &mut [T],
        running_mean: &mut [T],
        running_var: &mut [T],
        x: &[T],
        gamma: &[T],
        beta: &[T],
        stats: &[T],
        count: usize,
        p: &BatchNormParams,
    ) -> KResult<()> {
        let _t = OpTimer::new(Family::BnForward);
        batchnorm::cpu::batchnorm_silu_forward_train(
            y,
            saved,
            running_mean,
            running_var,
            x,
            gamma,
            beta,
            stats,
            count,
            p,
        )
    }
    fn batchnorm_silu_forward_inference(
        &self,
        y: &mut [T],
        x: &[T],
        gamma: &[T],
        beta: &[T],
        running_mean: &[T],
        running_var: &[T],
        p: &BatchNormParams,
    ) -> KResult<()> {
        let _t = OpTimer::new(Family::BnForward);
        batchnorm::cpu::batchnorm_silu_forward_inference(
            y,
            x,
            gamma,
            beta,
            running_mean,
            running_var,
            p,
        )
    }
    fn batchnorm_silu_stats_backward(
        &self,
        dstats: &mut [T],
        dy: &[T],
        x: &[T],
        saved: &[T],
        gamma: &[T],
        beta: &[T],
        p: &BatchNormParams,
    ) -> KResult<()> {
        let _t = OpTimer::new(Family::BnStats);
        batchnorm::cpu::batchnorm_silu_stats_backward(dstats, dy, x, saved, gamma, beta, p)
    }
    fn batchnorm_silu_stats_backward_keep(
        &self,
        dstats: &mut [T],
        dz: &mut [T],
        dy: &[T],
        x: &[T],
        saved: &[T],
        gamma: &[T],
        beta: &[T],
        p: &BatchNormParams,
    ) -> KResult<bool> {
        let _t = OpTimer::new(Family::BnStats);
        batchnorm::cpu::batchnorm_silu_stats_backward_keep(
            dstats, dz, dy, x, saved, gamma, beta, p,
        )?;
        Ok(true)
    }
    fn batchnorm_backward_in_place(
        &self,
        dx: &mut [T],
        dgamma: &mut [T],
        dbeta: &mut [T],
        x: &[T],
        saved: &[T],
        gamma: &[T],
        dstats_local: &[T],
        dstats: &[T],
        count: usize,
        p: &BatchNormParams,
    ) -> KResult<()> {
        let _t = OpTimer::new(Family::BnBackward);
        batchnorm::cpu::batchnorm_backward_in_place(
            dx,
            dgamma,
            dbeta,
            x,
            saved,
            gamma,
            dstats_local,
            dstats,
            count,
            p,
        )
    }
    fn batchnorm_silu_backward(
        &self,
        dx: &mut [T],
        dgamma: &mut [T],
        dbeta: &mut [T],
        dy: &[T],
        x: &[T],
        saved: &[T],
        gamma: &[T],
        beta: &[T],
        dstats_local: &[T],
        dstats: &[T],
        count: usize,
        p: &BatchNormParams,
    ) -> KResult<()> {
        let _t = OpTimer::new(Family::BnBackward);
        batchnorm::cpu::batchnorm_silu_backward(
            dx,
            dgamma,
            dbeta,
            dy,
            x,
            saved,
            gamma,
            beta,
            dstats_local,
            dstats,
            count,
            p,
        )
    }
}

impl<T: Real> ActivationOps<T> for Cpu {
    fn silu_forward(&self, y: &mut [T], x: &[T]) -> KResult<()> {
        let _t = OpTimer::new(Family::Activation);
        activation::cpu::silu_forward(y, x)
    }
    fn silu_backward(&self, dx: &mut [T], dy: &[T], x: &[T]) -> KResult<()> {
        let _t = OpTimer::new(Family::Activation);
        activation::cpu::silu_backward(dx, dy, x)
    }
    fn sigmoid_forward(&self, y: &mut [T], x: &[T]) -> KResult<()> {
        let _t = OpTimer::new(Family::Activation);
        activation::cpu::sigmoid_forward(y, x)
    }
    fn sigmoid_backward(&self, dx: &mut [T], dy: &[T], y: &[T]) -> KResult<()> {
        let _t = OpTimer::new(Family::Activation);
        activation::cpu::sigmoid_backward(dx, dy, y)
    }
    fn hardsigmoid_forward(&self, y: &mut [T], x: &[T]) -> KResult<()> {
        let _t = OpTimer::new(Family::Activation);
        activation::cpu::hardsigmoid_forward(y, x)
    }
    fn hardsigmoid_backward(&self, dx: &mut [T], dy: &[T], y: &[T]) -> KResult<()> {
        let _t = OpTimer::new(Family::Activation);
        activation::cpu::hardsigmoid_backward(dx, dy, y)
    }
}

impl<T: Real> PoolOps<T> for Cpu {
    fn global_avg_pool_forward(&self, y: &mut [T], x: &[T], p: &PoolParams) -> KResult<()> {
        let _t = OpTimer::new(Family::ConcatUpsamplePool);
        pool::cpu::global_avg_pool_forward(y, x, p)
    }
    fn global_avg_pool_backward(&self, dx: &mut [T], dy: &[T], p: &PoolParams) -> KResult<()> {
        let _t = OpTimer::new(Family::ConcatUpsamplePool);
        pool::cpu::global_avg_pool_backward(dx, dy, p)
    }
    fn max_pool_forward(&self, y: &mut [T], x: &[T], p: &PoolParams) -> KResult<()> {
        let _t = OpTimer::new(Family::ConcatUpsamplePool);
        let mut ws = crate::arena::take::<T>(x.len());
        let r = pool::cpu::max_pool_forward(y, &mut ws, x, p);
        crate::arena::give(ws);
        r
    }
    fn max_pool_backward(
        &self,
        dx: &mut [T],
        dy: &[T],
        x: &[T],
        y: &[T],
        p: &PoolParams,
    ) -> KResult<()> {
        let _t = OpTimer::new(Family::ConcatUpsamplePool);
        pool::cpu::max_pool_backward(dx, dy, x, y, p)
    }
}

impl<T: Real> ResizeOps<T> for Cpu {
    fn upsample_nearest2x_forward(&self, y: &mut [T], x: &[T], p: &UpsampleParams) -> KResult<()> {
        let _t = OpTimer::new(Family::ConcatUpsamplePool);
        resize::cpu::upsample_nearest2x_forward(y, x, p)
    }
    fn upsample_nearest2x_backward(
        &self,
        dx: &mut [T],
        dy: &[T],
        p: &UpsampleParams,
    ) -> KResult<()> {
        let _t = OpTimer::new(Family::ConcatUpsamplePool);
        resize::cpu::upsample_nearest2x_backward(dx, dy, p)
    }
}

impl<T: Real> ConcatOps<T> for Cpu {
    fn concat_channels_forward(&self, y: &mut [T], xs: Vec<&[T]>, p: &ConcatParams) -> KResult<()> {
        let _t = OpTimer::new(Family::ConcatUpsamplePool);
        concat::cpu::concat_channels_forward(y, &xs, p)
    }
    fn concat_channels_backward(
        &self,
        mut dxs: Vec<&mut [T]>,
        dy: &[T],
        p: &ConcatParams,
    ) -> KResult<()> {
        let _t = OpTimer::new(Family::ConcatUpsamplePool);
        concat::cpu::concat_channels_backward(&mut dxs, dy, p)
    }
}

impl<T: Real> ElementwiseOps<T> for Cpu {
    fn add_forward(&self, y: &mut [T], a: &[T], b: &[T], p: &BroadcastParams) -> KResult<()> {
        let _t = OpTimer::new(Family::Elementwise);
        elementwise::cpu::add_forward(y, a, b, p)
    }
    fn mul_forward(&self, y: &mut [T], a: &[T], b: &[T], p: &BroadcastParams) -> KResult<()> {
        let _t = OpTimer::new(Family::Elementwise);
        elementwise::cpu::mul_forward(y, a, b, p)
    }
    fn add_backward(
        &self,
        da: Option<&mut [T]>,
        db: Option<&mut [T]>,
        dy: &[T],
        p: &BroadcastParams,
    ) -> KResult<()> {
        let _t = OpTimer::new(Family::Elementwise);
        elementwise::cpu::add_backward(da, db, dy, p)
    }
    fn mul_backward(
        &self,
        da: Option<&mut [T]>,
        db: Option<&mut [T]>,
        dy: &[T],
        a: &[T],
        b: &[T],
        p: &BroadcastParams,
    ) -> KResult<()> {
        let _t = OpTimer::new(Family::Elementwise);
        elementwise::cpu::mul_backward(da, db, dy, a, b, p)
    }
}

impl<T: Real> DflOps<T> for Cpu {
    fn softmax_bins_forward(&self, prob: &mut [T], logits: &[T], p: &DflParams) -> KResult<()> {
        let _t = OpTimer::new(Family::Head);
        dfl::cpu::softmax_bins_forward(prob, logits, p)
    }
    fn softmax_bins_backward(
        &self,
        dlogits: &mut [T],
        dprob: &[T],
        prob: &[T],
        p: &DflParams,
    ) -> KResult<()> {
        let _t = OpTimer::new(Family::Head);
        dfl::cpu::softmax_bins_backward(dlogits, dprob, prob, p)
    }
    fn dfl_integral_forward(&self, dist: &mut [T], prob: &[T], p: &DflParams) -> KResult<()> {
        let _t = OpTimer::new(Family::Head);
        dfl::cpu::dfl_integral_forward(dist, prob, p)
    }
    fn dfl_integral_backward(&self, dprob: &mut [T], ddist: &[T], p: &DflParams) -> KResult<()> {
        let _t = OpTimer::new(Family::Head);
        dfl::cpu::dfl_integral_backward(dprob, ddist, p)
    }
    fn dfl_decode_backward(
        &self,
        dlogits: &mut [T],
        ddist: &[T],
        prob: &[T],
        dist: &[T],
        p: &DflParams,
    ) -> KResult<()> {
        let _t = OpTimer::new(Family::Head);
        dfl::cpu::dfl_decode_backward(dlogits, ddist, prob, dist, p)
    }
}

impl<T: Real> LossOps<T> for Cpu {
    fn bce_forward(&self, out: &mut [T], pred: &[T], target: &[T]) -> KResult<()> {
        let _t = OpTimer::new(Family::Loss);
        loss::bce::bce_forward(out, pred, target)
    }
    fn bce_backward(&self, dpred: &mut [T], dloss: &[T], pred: &[T], target: &[T]) -> KResult<()> {
        let _t = OpTimer::new(Family::Loss);
        loss::bce::bce_backward(dpred, dloss, pred, target)
    }
    fn varifocal_loss_forward(
        &self,
        out: &mut [T],
        pred: &[T],
        target: &[T],
        label: &[T],
        p: &VarifocalParams,
    ) -> KResult<()> {
        let _t = OpTimer::new(Family::Loss);
        const OP: &str = "varifocal_loss_forward";
        put(
            OP,
            out,
            loss::varifocal::varifocal_loss_forward(pred, target, label, p)?,
        )
    }
    fn varifocal_loss_backward(
        &self,
        dpred: &mut [T],
        pred: &[T],
        target: &[T],
        label: &[T],
        dloss: T,
        p: &VarifocalParams,
    ) -> KResult<()> {
        let _t = OpTimer::new(Family::Loss);
        loss::varifocal::varifocal_loss_backward(dpred, pred, target, label, dloss, p)
    }
    fn giou_per_box(&self, out: &mut [T], pred: &[T], target: &[T]) -> KResult<()> {
        let _t = OpTimer::new(Family::Loss);
        loss::giou::giou_per_box(out, pred, target)
    }
    fn giou_loss_forward(
        &self,
        out: &mut [T],
        pred: &[T],
        target: &[T],
        weight: &[T],
        p: &BoxLossParams,
    ) -> KResult<()> {
        let _t = OpTimer::new(Family::Loss);
        const OP: &str = "giou_loss_forward";
        put(
            OP,
            out,
            loss::giou::giou_loss_forward(pred, target, weight, p)?,
        )
    }
    fn giou_loss_backward(
        &self,
        dpred: &mut [T],
        pred: &[T],
        target: &[T],
        weight: &[T],
        dloss: T,
        p: &BoxLossParams,
    ) -> KResult<()> {
        let _t = OpTimer::new(Family::Loss);
        loss::giou::giou_loss_backward(dpred, pred, target, weight, dloss, p)
    }
    fn dfl_targets(
        &self,
        target: &mut [T],
        anchor_points: &[T],
        boxes: &[T],
        reg_max: usize,
    ) -> KResult<()> {
        let _t = OpTimer::new(Family::Loss);
        loss::dfl::dfl_targets(target, anchor_points, boxes, reg_max)
    }
    fn dfl_loss_forward(
        &self,
        out: &mut [T],
        logits: &[T],
        target: &[T],
        weight: &[T],
        p: &BoxLossParams,
    ) -> KResult<()> {
        let _t = OpTimer::new(Family::Loss);
        const OP: &str = "dfl_loss_forward";
        put(
            OP,
            out,
            loss::dfl::dfl_loss_forward(logits, target, weight, p)?,
        )
    }
    fn dfl_loss_backward(
        &self,
        dlogits: &mut [T],
        logits: &[T],
        target: &[T],
        weight: &[T],
        dloss: T,
        p: &BoxLossParams,
    ) -> KResult<()> {
        let _t = OpTimer::new(Family::Loss);
        loss::dfl::dfl_loss_backward(dlogits, logits, target, weight, dloss, p)
    }
}

impl<T: Real> OptimOps<T> for Cpu {
    fn sgd_momentum_step(
        &self,
        params: &mut [T],
        velocity: &mut [T],
        grads: &[T],
        decay_mask: &Vec<u8>,
        p: &SgdParams,
    ) -> KResult<()> {
        let _t = OpTimer::new(Family::Sgd);
        optimizer::cpu::sgd_momentum_step(params, velocity, grads, decay_mask, p)
    }
    fn adamw_step(
        &self,
        params: &mut [T],
        moments: [&mut [T]; 2],
        grads: &[T],
        decay_mask: &Vec<u8>,
        p: &AdamwParams,
    ) -> KResult<()> {
        let _t = OpTimer::new(Family::Sgd);
        let [m, v] = moments;
        optimizer::cpu::adamw_step(params, m, v, grads, decay_mask, p)
    }
    fn ema_update(&self, ema: &mut [T], params: &[T], step: u64, p: &EmaParams) -> KResult<f64> {
        let _t = OpTimer::new(Family::Ema);
        optimizer::cpu::ema_update(ema, params, step, p)
    }
    fn ema_apply(&self, out: &mut [T], ema: &[T], last_decay: f64, steps: u64) -> KResult<()> {
        let _t = OpTimer::new(Family::Ema);
        optimizer::cpu::ema_apply(out, ema, last_decay, steps)
    }
}

impl<T: Real> FuseOps<T> for Cpu {
    fn fold_conv_bn(
        &self,
        w_out: &mut [T],
        b_out: &mut [T],
        w: &[T],
        bias: Option<&[T]>,
        gamma: &[T],
        beta: &[T],
        mean: &[T],
        var: &[T],
        p: &FoldParams,
    ) -> KResult<()> {
        let _t = OpTimer::new(Family::Fuse);
        fuse::cpu::fold_conv_bn(w_out, b_out, w, bias, gamma, beta, mean, var, p)
    }
    fn repvgg_fuse(
        &self,
        w_out: &mut [T],
        b_out: &mut [T],
        w3: &[T],
        b3: &[T],
        w1: &[T],
        b1: &[T],
        p: &RepVggParams,
    ) -> KResult<()> {
        let _t = OpTimer::new(Family::Fuse);
        fuse::cpu::repvgg_fuse(w_out, b_out, w3, b3, w1, b1, p)
    }
}
