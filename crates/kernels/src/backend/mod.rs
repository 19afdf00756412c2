//! The backend seam: one set of op-family traits that a model calls, implemented once for the
//! host ([`Cpu`], the numerical reference, `f32` and `f64`) and once for a CUDA device
//! ([`Cuda`], `f32` only).
//!
//! Each backend names its own buffer types ([`Buffers`]): an owned buffer (`Vec<T>` /
//! `CudaSlice<f32>`), a read view and a write view (`&[T]` / `&mut [T]` on the host,
//! `CudaView` / `CudaViewMut` on a device). Views are taken of sub-ranges of one flat buffer
//! ([`Buffers::slice`], [`Buffers::slice_mut`], [`Buffers::split_mut`]), so parameters and
//! gradients can stay in one flat buffer each. Every op takes its views by value, outputs first,
//! then inputs, then the params struct of its module; forward ops overwrite their outputs and
//! backward ops accumulate (`+=`) into their gradients, as the kernels underneath do.
//!
//! Shape checks live in each op's module and run inside the kernels both backends call, so a
//! backend adds no checks of its own.

mod cpu;
mod cuda;

pub use cpu::Cpu;
pub use cuda::Cuda;

use std::borrow::Cow;
use std::ops::Range;

use crate::KernelError;
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
use crate::resize::UpsampleParams;

/// Result of every backend call.
pub type KResult<V> = Result<V, KernelError>;

/// Buffers of elements `T` owned by a backend, the views its ops take, and the host transfers.
pub trait Buffers<T: Real> {
    /// An owned buffer.
    type Buf;
    /// A read-only view of (part of) a buffer.
    type View<'a>;
    /// A writable view of (part of) a buffer.
    type ViewMut<'a>;
    /// An owned byte mask (the SGD decay mask).
    type Mask;

    /// Elements in a buffer.
    fn len(buf: &Self::Buf) -> usize;
    /// The whole buffer, read-only.
    fn view(buf: &Self::Buf) -> Self::View<'_>;
    /// The whole buffer, writable.
    fn view_mut(buf: &mut Self::Buf) -> Self::ViewMut<'_>;
    /// Another read view of the same elements (views are shared borrows: one can be had twice).
    fn reborrow<'a>(v: &Self::View<'a>) -> Self::View<'a>;
    /// Elements `range` of a buffer, read-only; an error names the range if it does not fit.
    fn slice(buf: &Self::Buf, range: Range<usize>) -> KResult<Self::View<'_>>;
    /// Elements `range` of a buffer, writable.
    fn slice_mut(buf: &mut Self::Buf, range: Range<usize>) -> KResult<Self::ViewMut<'_>>;
    /// Two disjoint ranges of one buffer, both writable (e.g. a BN's running mean and variance).
    fn split_mut(
        buf: &mut Self::Buf,
        a: Range<usize>,
        b: Range<usize>,
    ) -> KResult<(Self::ViewMut<'_>, Self::ViewMut<'_>)>;
    /// A copy of host values in a new buffer.
    fn upload(&self, host: &[T]) -> KResult<Self::Buf>;
    /// Copies a buffer's values to the host (the transfer point back from a device).
    fn download(&self, buf: &Self::Buf) -> KResult<Vec<T>>;
    /// A new buffer of `n` zeros.
    fn zeros(&self, n: usize) -> KResult<Self::Buf>;
    /// A copy of a host byte mask.
    fn upload_mask(&self, host: &[u8]) -> KResult<Self::Mask>;

    /// Whether buffers are host memory (then [`Self::to_host`] and [`Self::with_host_mut`] cost
    /// nothing and a pass may use them freely; on a device each is a synchronising copy).
    const HOST_MEMORY: bool;

    /// A new buffer of `n` elements whose values are unspecified (a reused buffer on the host):
    /// only for an output that an op overwrites whole.
    fn scratch(&self, n: usize) -> KResult<Self::Buf>;
    /// A new buffer holding a copy of `buf`'s values.
    fn copy(&self, buf: &Self::Buf) -> KResult<Self::Buf>;
    /// A buffer holding `host`'s values: the vector itself on the host, an upload on a device.
    fn adopt_host(&self, host: Vec<T>) -> KResult<Self::Buf>;
    /// Elements `range` of a buffer in host memory: borrowed on the host (no copy), downloaded
    /// from a device (the transfer point: the stream is synchronised).
    fn to_host<'a>(&self, buf: &'a Self::Buf, range: Range<usize>) -> KResult<Cow<'a, [T]>>;
    /// Runs `f` on the values of `buf` in host memory and keeps what it wrote: in place on the
    /// host, through a download and an upload on a device (for the few small host steps of a
    /// device pass, e.g. the SyncBN statistics on their way through the collective).
    fn with_host_mut<R>(&self, buf: &mut Self::Buf, f: impl FnOnce(&mut [T]) -> R) -> KResult<R>;
    /// Sets every element of `buf` to zero (a fresh step's gradients).
    fn fill_zero(&self, buf: &mut Self::Buf) -> KResult<()>;
    /// Gives a buffer that is being dropped back for reuse (the host [`crate::arena`]); on a
    /// device the buffer is freed as it drops.
    fn recycle(_buf: &mut Self::Buf) {}
}

/// 2-D convolution (both directions of the backward). Workspaces are the backend's business.
pub trait ConvOps<T: Real>: Buffers<T> {
    /// `y = conv(x, w) + bias`; overwrites `y`.
    fn conv2d_forward(
        &self,
        y: Self::ViewMut<'_>,
        x: Self::View<'_>,
        w: Self::View<'_>,
        bias: Option<Self::View<'_>>,
        p: &Conv2dParams,
    ) -> KResult<()>;
    /// `dx = convᵀ(dy, w)` (`dx` overwritten).
    fn conv2d_backward_data(
        &self,
        dx: Self::ViewMut<'_>,
        dy: Self::View<'_>,
        w: Self::View<'_>,
        p: &Conv2dParams,
    ) -> KResult<()>;
    /// `dw += dy ⋆ x` and, when given, `dbias += Σ dy`.
    fn conv2d_backward_filter(
        &self,
        dw: Self::ViewMut<'_>,
        dbias: Option<Self::ViewMut<'_>>,
        dy: Self::View<'_>,
        x: Self::View<'_>,
        p: &Conv2dParams,
    ) -> KResult<()>;
}

/// Batch normalisation: statistics, train and eval forward, backward.
pub trait NormOps<T: Real>: Buffers<T> {
    /// `stats = [Σx per channel, Σx² per channel]`; overwrites.
    fn batchnorm_stats_forward(
        &self,
        stats: Self::ViewMut<'_>,
        x: Self::View<'_>,
        p: &BatchNormParams,
    ) -> KResult<()>;
    /// Training forward from (possibly all-reduced) `stats` over `count` elements a channel.
    #[allow(clippy::too_many_arguments)]
    fn batchnorm_forward_train(
        &self,
        y: Self::ViewMut<'_>,
        saved: Self::ViewMut<'_>,
        running_mean: Self::ViewMut<'_>,
        running_var: Self::ViewMut<'_>,
        x: Self::View<'_>,
        gamma: Self::View<'_>,
        beta: Self::View<'_>,
        stats: Self::View<'_>,
        count: usize,
        p: &BatchNormParams,
    ) -> KResult<()>;
    /// Eval forward with running statistics.
    #[allow(clippy::too_many_arguments)]
    fn batchnorm_forward_inference(
        &self,
        y: Self::ViewMut<'_>,
        x: Self::View<'_>,
        gamma: Self::View<'_>,
        beta: Self::View<'_>,
        running_mean: Self::View<'_>,
        running_var: Self::View<'_>,
        p: &BatchNormParams,
    ) -> KResult<()>;
    /// Per-channel sums the backward needs (to be all-reduced); overwrites `dstats`.
    fn batchnorm_stats_backward(
        &self,
        dstats: Self::ViewMut<'_>,
        dy: Self::View<'_>,
        x: Self::View<'_>,
        saved: Self::View<'_>,
        p: &BatchNormParams,
    ) -> KResult<()>;
    /// `dx = …` (overwritten), `dgamma += …`, `dbeta += …`.
    #[allow(clippy::too_many_arguments)]
    fn batchnorm_backward(
        &self,
        dx: Self::ViewMut<'_>,
        dgamma: Self::ViewMut<'_>,
        dbeta: Self::ViewMut<'_>,
        dy: Self::View<'_>,
        x: Self::View<'_>,
        saved: Self::View<'_>,
        gamma: Self::View<'_>,
        dstats_local: Self::View<'_>,
        dstats: Self::View<'_>,
        count: usize,
        p: &BatchNormParams,
    ) -> KResult<()>;
    /// Fused `y = silu(BN(x))`, training: as [`Self::batchnorm_forward_train`] followed by
    /// [`ActivationOps::silu_forward`], without storing the pre-activation.
    #[allow(clippy::too_many_arguments)]
    fn batchnorm_silu_forward_train(
        &self,
        y: Self::ViewMut<'_>,
        saved: Self::ViewMut<'_>,
        running_mean: Self::ViewMut<'_>,
        running_var: Self::ViewMut<'_>,
        x: Self::View<'_>,
        gamma: Self::View<'_>,
        beta: Self::View<'_>,
        stats: Self::View<'_>,
        count: usize,
        p: &BatchNormParams,
    ) -> KResult<()>;
    /// Fused `y = silu(BN(x))` with the running statistics (eval).
    #[allow(clippy::too_many_arguments)]
    fn batchnorm_silu_forward_inference(
        &self,
        y: Self::ViewMut<'_>,
        x: Self::View<'_>,
        gamma: Self::View<'_>,
        beta: Self::View<'_>,
        running_mean: Self::View<'_>,
        running_var: Self::View<'_>,
        p: &BatchNormParams,
    ) -> KResult<()>;
    /// The sums of [`Self::batchnorm_stats_backward`] for the gradient `dz = dy·silu'(z)` of
    /// the pre-activation, recomputed from `x`, `saved`, `gamma` and `beta`; overwrites.
    #[allow(clippy::too_many_arguments)]
    fn batchnorm_silu_stats_backward(
        &self,
        dstats: Self::ViewMut<'_>,
        dy: Self::View<'_>,
        x: Self::View<'_>,
        saved: Self::View<'_>,
        gamma: Self::View<'_>,
        beta: Self::View<'_>,
        p: &BatchNormParams,
    ) -> KResult<()>;
    /// [`Self::batchnorm_silu_stats_backward`] that may also leave `dz = dy·silu'(z)` in `dz`
    /// (the values its sums add up) for [`Self::batchnorm_backward_in_place`], so that the
    /// SiLU derivative is computed once instead of twice; returns whether it did. The default
    /// computes the sums only (`false`): a backend that keeps `dz` overrides both methods.
    #[allow(clippy::too_many_arguments)]
    fn batchnorm_silu_stats_backward_keep(
        &self,
        dstats: Self::ViewMut<'_>,
        _dz: Self::ViewMut<'_>,
        dy: Self::View<'_>,
        x: Self::View<'_>,
        saved: Self::View<'_>,
        gamma: Self::View<'_>,
        beta: Self::View<'_>,
        p: &BatchNormParams,
    ) -> KResult<bool> {
        self.batchnorm_silu_stats_backward(dstats, dy, x, saved, gamma, beta, p)?;
        Ok(false)
    }
    /// [`Self::batchnorm_backward`] with `dy` read from `dx`, which it overwrites: the finish
    /// after [`Self::batchnorm_silu_stats_backward_keep`] returned `true` (equal to
    /// [`Self::batchnorm_silu_backward`]). The default refuses: a backend whose `_keep` never
    /// keeps is never asked.
    #[allow(clippy::too_many_arguments)]
    fn batchnorm_backward_in_place(
        &self,
        _dx: Self::ViewMut<'_>,
        _dgamma: Self::ViewMut<'_>,
        _dbeta: Self::ViewMut<'_>,
        _x: Self::View<'_>,
        _saved: Self::View<'_>,
        _gamma: Self::View<'_>,
        _dstats_local: Self::View<'_>,
        _dstats: Self::View<'_>,
        _count: usize,
        _p: &BatchNormParams,
    ) -> KResult<()> {
        Err(crate::error::param(
            "batchnorm_backward_in_place",
            "this backend never keeps dz (batchnorm_silu_stats_backward_keep returned false)",
        ))
    }
    /// [`ActivationOps::silu_backward`] then [`Self::batchnorm_backward`] in one pass:
    /// `dx = …` (overwritten), `dgamma += …`, `dbeta += …` from the output gradient `dy`.
    #[allow(clippy::too_many_arguments)]
    fn batchnorm_silu_backward(
        &self,
        dx: Self::ViewMut<'_>,
        dgamma: Self::ViewMut<'_>,
        dbeta: Self::ViewMut<'_>,
        dy: Self::View<'_>,
        x: Self::View<'_>,
        saved: Self::View<'_>,
        gamma: Self::View<'_>,
        beta: Self::View<'_>,
        dstats_local: Self::View<'_>,
        dstats: Self::View<'_>,
        count: usize,
        p: &BatchNormParams,
    ) -> KResult<()>;
}

/// Pointwise activations.
pub trait ActivationOps<T: Real>: Buffers<T> {
    /// `y = x·sigmoid(x)`.
    fn silu_forward(&self, y: Self::ViewMut<'_>, x: Self::View<'_>) -> KResult<()>;
    /// `dx += silu'(x)·dy`.
    fn silu_backward(
        &self,
        dx: Self::ViewMut<'_>,
        dy: Self::View<'_>,
        x: Self::View<'_>,
    ) -> KResult<()>;
    /// `y = sigmoid(x)`.
    fn sigmoid_forward(&self, y: Self::ViewMut<'_>, x: Self::View<'_>) -> KResult<()>;
    /// `dx += y(1 − y)·dy`.
    fn sigmoid_backward(
        &self,
        dx: Self::ViewMut<'_>,
        dy: Self::View<'_>,
        y: Self::View<'_>,
    ) -> KResult<()>;
    /// Paddle hardsigmoid.
    fn hardsigmoid_forward(&self, y: Self::ViewMut<'_>, x: Self::View<'_>) -> KResult<()>;
    /// `dx += hardsigmoid'·dy`, read from the output `y`.
    fn hardsigmoid_backward(
        &self,
        dx: Self::ViewMut<'_>,
        dy: Self::View<'_>,
        y: Self::View<'_>,
    ) -> KResult<()>;
}

/// Global average pool and stride-1 max pool.
pub trait PoolOps<T: Real>: Buffers<T> {
    /// Mean over H·W.
    fn global_avg_pool_forward(
        &self,
        y: Self::ViewMut<'_>,
        x: Self::View<'_>,
        p: &PoolParams,
    ) -> KResult<()>;
    /// `dx += dy / (H·W)` broadcast.
    fn global_avg_pool_backward(
        &self,
        dx: Self::ViewMut<'_>,
        dy: Self::View<'_>,
        p: &PoolParams,
    ) -> KResult<()>;
    /// Max pool `k×k`, stride 1, padding `k/2`.
    fn max_pool_forward(
        &self,
        y: Self::ViewMut<'_>,
        x: Self::View<'_>,
        p: &PoolParams,
    ) -> KResult<()>;
    /// `dx +=` the max-pool gradient (routed to the first maximum).
    fn max_pool_backward(
        &self,
        dx: Self::ViewMut<'_>,
        dy: Self::View<'_>,
        x: Self::View<'_>,
        y: Self::View<'_>,
        p: &PoolParams,
    ) -> KResult<()>;
}

/// Nearest-neighbour ×2 upsampling.
pub trait ResizeOps<T: Real>: Buffers<T> {
    /// Nearest ×2 upsample.
    fn upsample_nearest2x_forward(
        &self,
        y: Self::ViewMut<'_>,
        x: Self::View<'_>,
        p: &UpsampleParams,
    ) -> KResult<()>;
    /// `dx +=` sums of 2×2 blocks of `dy`.
    fn upsample_nearest2x_backward(
        &self,
        dx: Self::ViewMut<'_>,
        dy: Self::View<'_>,
        p: &UpsampleParams,
    ) -> KResult<()>;
}

/// Channel concatenation.
pub trait ConcatOps<T: Real>: Buffers<T> {
    /// `y = concat(xs)` along channels.
    fn concat_channels_forward(
        &self,
        y: Self::ViewMut<'_>,
        xs: Vec<Self::View<'_>>,
        p: &ConcatParams,
    ) -> KResult<()>;
    /// `dxs[i] +=` their channel block of `dy`.
    fn concat_channels_backward(
        &self,
        dxs: Vec<Self::ViewMut<'_>>,
        dy: Self::View<'_>,
        p: &ConcatParams,
    ) -> KResult<()>;
}

/// Broadcasting add and multiply.
pub trait ElementwiseOps<T: Real>: Buffers<T> {
    /// `y = a + b` (broadcast).
    fn add_forward(
        &self,
        y: Self::ViewMut<'_>,
        a: Self::View<'_>,
        b: Self::View<'_>,
        p: &BroadcastParams,
    ) -> KResult<()>;
    /// `y = a · b` (broadcast).
    fn mul_forward(
        &self,
        y: Self::ViewMut<'_>,
        a: Self::View<'_>,
        b: Self::View<'_>,
        p: &BroadcastParams,
    ) -> KResult<()>;
    /// `da += Σ dy`, `db += Σ dy` over broadcast axes.
    fn add_backward(
        &self,
        da: Option<Self::ViewMut<'_>>,
        db: Option<Self::ViewMut<'_>>,
        dy: Self::View<'_>,
        p: &BroadcastParams,
    ) -> KResult<()>;
    /// `y += x`, both of the same length (a residual's or a shared input's gradients meeting).
    fn accumulate(&self, y: Self::ViewMut<'_>, x: Self::View<'_>, len: usize) -> KResult<()> {
        let p = BroadcastParams::same([1, 1, 1, len]);
        self.add_backward(Some(y), None, x, &p)
    }
    /// `da += Σ dy·b`, `db += Σ dy·a` over broadcast axes.
    #[allow(clippy::too_many_arguments)]
    fn mul_backward(
        &self,
        da: Option<Self::ViewMut<'_>>,
        db: Option<Self::ViewMut<'_>>,
        dy: Self::View<'_>,
        a: Self::View<'_>,
        b: Self::View<'_>,
        p: &BroadcastParams,
    ) -> KResult<()>;
}

/// The distribution-focal decode: softmax over bins and the expectation.
pub trait DflOps<T: Real>: Buffers<T> {
    /// Softmax over the bins of each side.
    fn softmax_bins_forward(
        &self,
        prob: Self::ViewMut<'_>,
        logits: Self::View<'_>,
        p: &DflParams,
    ) -> KResult<()>;
    /// `dlogits +=` the softmax backward.
    fn softmax_bins_backward(
        &self,
        dlogits: Self::ViewMut<'_>,
        dprob: Self::View<'_>,
        prob: Self::View<'_>,
        p: &DflParams,
    ) -> KResult<()>;
    /// `dist = Σ_i i·prob_i`.
    fn dfl_integral_forward(
        &self,
        dist: Self::ViewMut<'_>,
        prob: Self::View<'_>,
        p: &DflParams,
    ) -> KResult<()>;
    /// `dprob += i·ddist`.
    fn dfl_integral_backward(
        &self,
        dprob: Self::ViewMut<'_>,
        ddist: Self::View<'_>,
        p: &DflParams,
    ) -> KResult<()>;
    /// Softmax and integral backward in one: `dlogits += …`.
    fn dfl_decode_backward(
        &self,
        dlogits: Self::ViewMut<'_>,
        ddist: Self::View<'_>,
        prob: Self::View<'_>,
        dist: Self::View<'_>,
        p: &DflParams,
    ) -> KResult<()>;
}

/// The training losses. Reduced losses are written to a one-element buffer so that they can
/// stay on the device; `dloss` is the host scalar the loss is scaled by.
pub trait LossOps<T: Real>: Buffers<T> {
    /// Elementwise binary cross-entropy.
    fn bce_forward(
        &self,
        loss: Self::ViewMut<'_>,
        pred: Self::View<'_>,
        target: Self::View<'_>,
    ) -> KResult<()>;
    /// `dpred += dloss·bce'`.
    fn bce_backward(
        &self,
        dpred: Self::ViewMut<'_>,
        dloss: Self::View<'_>,
        pred: Self::View<'_>,
        target: Self::View<'_>,
    ) -> KResult<()>;
    /// `loss[0] =` the varifocal loss.
    fn varifocal_loss_forward(
        &self,
        loss: Self::ViewMut<'_>,
        pred: Self::View<'_>,
        target: Self::View<'_>,
        label: Self::View<'_>,
        p: &VarifocalParams,
    ) -> KResult<()>;
    /// `dpred += dloss·∂loss/∂pred`.
    #[allow(clippy::too_many_arguments)]
    fn varifocal_loss_backward(
        &self,
        dpred: Self::ViewMut<'_>,
        pred: Self::View<'_>,
        target: Self::View<'_>,
        label: Self::View<'_>,
        dloss: T,
        p: &VarifocalParams,
    ) -> KResult<()>;
    /// GIoU loss of each box pair; overwrites.
    fn giou_per_box(
        &self,
        loss: Self::ViewMut<'_>,
        pred: Self::View<'_>,
        target: Self::View<'_>,
    ) -> KResult<()>;
    /// `loss[0] =` the weighted GIoU loss.
    fn giou_loss_forward(
        &self,
        loss: Self::ViewMut<'_>,
        pred: Self::View<'_>,
        target: Self::View<'_>,
        weight: Self::View<'_>,
        p: &BoxLossParams,
    ) -> KResult<()>;
    /// `dpred += dloss·∂loss/∂pred`.
    #[allow(clippy::too_many_arguments)]
    fn giou_loss_backward(
        &self,
        dpred: Self::ViewMut<'_>,
        pred: Self::View<'_>,
        target: Self::View<'_>,
        weight: Self::View<'_>,
        dloss: T,
        p: &BoxLossParams,
    ) -> KResult<()>;
    /// Distances from anchor points to box sides in bins, clipped; overwrites.
    fn dfl_targets(
        &self,
        target: Self::ViewMut<'_>,
        anchor_points: Self::View<'_>,
        boxes: Self::View<'_>,
        reg_max: usize,
    ) -> KResult<()>;
    /// `loss[0] =` the weighted distribution focal loss.
    fn dfl_loss_forward(
        &self,
        loss: Self::ViewMut<'_>,
        logits: Self::View<'_>,
        target: Self::View<'_>,
        weight: Self::View<'_>,
        p: &BoxLossParams,
    ) -> KResult<()>;
    /// `dlogits += dloss·∂loss/∂logits`.
    #[allow(clippy::too_many_arguments)]
    fn dfl_loss_backward(
        &self,
        dlogits: Self::ViewMut<'_>,
        logits: Self::View<'_>,
        target: Self::View<'_>,
        weight: Self::View<'_>,
        dloss: T,
        p: &BoxLossParams,
    ) -> KResult<()>;
}

/// Optimizer updates over whole flat buffers.
pub trait OptimOps<T: Real>: Buffers<T> {
    /// SGD with momentum and masked coupled L2.
    fn sgd_momentum_step(
        &self,
        params: Self::ViewMut<'_>,
        velocity: Self::ViewMut<'_>,
        grads: Self::View<'_>,
        decay_mask: &Self::Mask,
        p: &SgdParams,
    ) -> KResult<()>;
    /// Paddle's AdamW with decoupled, masked decay.
    fn adamw_step(
        &self,
        params: Self::ViewMut<'_>,
        moments: [Self::ViewMut<'_>; 2],
        grads: Self::View<'_>,
        decay_mask: &Self::Mask,
        p: &AdamwParams,
    ) -> KResult<()>;
    /// `ema ← d·ema + (1 − d)·params`; returns the decay `d` used at `step`.
    fn ema_update(
        &self,
        ema: Self::ViewMut<'_>,
        params: Self::View<'_>,
        step: u64,
        p: &EmaParams,
    ) -> KResult<f64>;
    /// The bias-corrected EMA weights into `out`.
    fn ema_apply(
        &self,
        out: Self::ViewMut<'_>,
        ema: Self::View<'_>,
        last_decay: f64,
        steps: u64,
    ) -> KResult<()>;
}

/// Eval-time weight folding (conv + BN, RepVGG branches).
pub trait FuseOps<T: Real>: Buffers<T> {
    /// Folds BN into the conv before it; overwrites `w_out`, `b_out`.
    #[allow(clippy::too_many_arguments)]
    fn fold_conv_bn(
        &self,
        w_out: Self::ViewMut<'_>,
        b_out: Self::ViewMut<'_>,
        w: Self::View<'_>,
        bias: Option<Self::View<'_>>,
        gamma: Self::View<'_>,
        beta: Self::View<'_>,
        mean: Self::View<'_>,
        var: Self::View<'_>,
        p: &FoldParams,
    ) -> KResult<()>;
    /// Merges a RepVGG block's 3×3 and 1×1 branches into one 3×3 conv.
    #[allow(clippy::too_many_arguments)]
    fn repvgg_fuse(
        &self,
        w_out: Self::ViewMut<'_>,
        b_out: Self::ViewMut<'_>,
        w3: Self::View<'_>,
        b3: Self::View<'_>,
        w1: Self::View<'_>,
        b1: Self::View<'_>,
        p: &RepVggParams,
    ) -> KResult<()>;
}

/// Every op family: what a model needs of a backend for elements `T`.
pub trait Backend<T: Real>:
    ConvOps<T>
    + NormOps<T>
    + ActivationOps<T>
    + PoolOps<T>
    + ResizeOps<T>
    + ConcatOps<T>
    + ElementwiseOps<T>
    + DflOps<T>
    + LossOps<T>
    + OptimOps<T>
    + FuseOps<T>
{
}

impl<T: Real, B> Backend<T> for B where
    B: ConvOps<T>
        + NormOps<T>
        + ActivationOps<T>
        + PoolOps<T>
        + ResizeOps<T>
        + ConcatOps<T>
        + ElementwiseOps<T>
        + DflOps<T>
        + LossOps<T>
        + OptimOps<T>
        + FuseOps<T>
{
}

/// A backend whose buffers are host memory: host slices are its views, with no transfer.
/// Code whose activations are host `Vec`s (today's `ringdet-detect`) is generic over this.
pub trait HostBackend<T: Real>: Backend<T> {
    /// A host slice as a read view.
    fn host(x: &[T]) -> Self::View<'_>;
    /// A host slice as a write view.
    fn host_mut(x: &mut [T]) -> Self::ViewMut<'_>;
}

/// Checks that `range` lies within a buffer of `len` elements.
pub(crate) fn check_range(op: &'static str, range: &Range<usize>, len: usize) -> KResult<()> {
    if range.start <= range.end && range.end <= len {
        Ok(())
    } else {
        Err(crate::error::param(
            op,
            format!("range {range:?} does not fit a buffer of {len} elements"),
        ))
    }
}

/// Checks that two ranges do not overlap.
pub(crate) fn check_disjoint(a: &Range<usize>, b: &Range<usize>) -> KResult<()> {
    if a.end <= b.start || b.end <= a.start {
        Ok(())
    } else {
        Err(crate::error::param(
            "split_mut",
            format!("ranges {a:?} and {b:?} overlap"),
        ))
    }
}
