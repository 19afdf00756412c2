//! The CUDA backend: the `cuda` kernels behind the op-family traits. Buffers live on the device
//! (`CudaSlice<f32>`); the kernels are f32-only, so the traits are implemented for `f32` alone
//! and `Cuda: Backend<f64>` does not exist (a compile error, not a run-time one).
//!
//! The eval-time weight folds have no device kernel: they run on the host through an explicit
//! download and upload (once per export, never in the training step).

use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaView, CudaViewMut};

use super::{
    ActivationOps, Buffers, ConcatOps, ConvOps, DflOps, ElementwiseOps, FuseOps, KResult, LossOps,
    NormOps, OptimOps, PoolOps, ResizeOps, check_disjoint, check_range,
};
use crate::KernelError;
use crate::batchnorm::BatchNormParams;
use crate::concat::ConcatParams;
use crate::conv::Conv2dParams;
use crate::conv::cuda::ConvMath;
use crate::dfl::DflParams;
use crate::elementwise::BroadcastParams;
use crate::fuse::{FoldParams, RepVggParams};
use crate::loss::{BoxLossParams, VarifocalParams};
use crate::optimizer::{AdamwParams, EmaParams, SgdParams};
use crate::pool::PoolParams;
use crate::resize::UpsampleParams;
use crate::runtime::KernelRuntime;
use crate::{
    activation, batchnorm, concat, conv, dfl, elementwise, fuse, loss, optimizer, pool, resize,
};

/// A CUDA device's kernels (one [`KernelRuntime`], its stream) and the conv engine to use.
#[derive(Clone)]
pub struct Cuda {
    /// The device's runtime: compiled kernels and the stream every op is launched on.
    pub runtime: Arc<KernelRuntime>,
    /// Which GEMM engine convolutions use.
    pub conv_math: ConvMath,
}

impl Cuda {
    /// A backend on `runtime` with f32 convolutions (the CPU's numerics to rounding).
    pub fn new(runtime: Arc<KernelRuntime>) -> Self {
        Self {
            runtime,
            conv_math: ConvMath::F32,
        }
    }
    /// The same backend with another conv engine.
    pub fn with_conv_math(self, conv_math: ConvMath) -> Self {
        Self { conv_math, ..self }
    }
    fn rt(&self) -> &KernelRuntime {
        &self.runtime
    }
    /// Waits until every op queued on the device's stream has run (for timing; ops themselves
    /// synchronise only where the host reads a result).
    pub fn synchronize(&self) -> KResult<()> {
        self.rt()
            .stream()
            .synchronize()
            .map_err(|e| KernelError::launch("synchronize", e))
    }
    /// The device's free and total memory in bytes.
    pub fn memory_info(&self) -> KResult<(usize, usize)> {
        self.rt()
            .context()
            .mem_get_info()
            .map_err(|e| KernelError::launch("memory info", e))
    }
}

impl std::fmt::Debug for Cuda {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cuda")
            .field("device", &self.runtime.ordinal())
            .field("conv_math", &self.conv_math)
            .finish()
    }
}

type V<'a> = CudaView<'a, f32>;
type M<'a> = CudaViewMut<'a, f32>;

impl Buffers<f32> for Cuda {
    type Buf = CudaSlice<f32>;
    type View<'a> = V<'a>;
    type ViewMut<'a> = M<'a>;
    type Mask = CudaSlice<u8>;
    const HOST_MEMORY: bool = false;

    fn len(buf: &CudaSlice<f32>) -> usize {
        buf.len()
    }
    fn view(buf: &CudaSlice<f32>) -> V<'_> {
        buf.as_view()
    }
    fn view_mut(buf: &mut CudaSlice<f32>) -> M<'_> {
        buf.as_view_mut()
    }
    fn reborrow<'a>(v: &Self::View<'a>) -> Self::View<'a> {
        v.slice(..)
    }
    fn slice(buf: &CudaSlice<f32>, range: Range<usize>) -> KResult<V<'_>> {
        check_range("slice", &range, buf.len())?;
        Ok(buf.slice(range))
    }
    fn slice_mut(buf: &mut CudaSlice<f32>, range: Range<usize>) -> KResult<M<'_>> {
        check_range("slice_mut", &range, buf.len())?;
        Ok(buf.slice_mut(range))
    }
    fn split_mut(
        buf: &mut CudaSlice<f32>,
        a: Range<usize>,
        b: Range<usize>,
    ) -> KResult<(M<'_>, M<'_>)> {
        check_range("split_mut", &a, buf.len())?;
        check_range("split_mut", &b, buf.len())?;
        check_disjoint(&a, &b)?;
        // cudarc narrows a mutable view only by reborrowing, except `chunks_exact_mut`, which
        // consumes the view; so two equal-length ranges a whole number of lengths apart (a BN's
        // mean and variance, any two same-shape tensors laid out back to back) are supported.
        let (first, second, swap) = if a.start < b.start {
            (a, b, false)
        } else {
            (b, a, true)
        };
        let k = first.len();
        let gap = second.start - first.start;
        if k == 0 || second.len() != k || gap % k != 0 {
            return Err(crate::error::param(
                "split_mut",
                format!(
                    "the CUDA backend splits only equal-length ranges a whole number of lengths \
                     apart, got {first:?} and {second:?}"
                ),
            ));
        }
        let mut chunks = buf.slice_mut(first.start..second.end).chunks_exact_mut(k);
        let lo = chunks.next();
        let hi = chunks.nth(gap / k - 1);
        let (Some(lo), Some(hi)) = (lo, hi) else {
            return Err(crate::error::param(
                "split_mut",
                "chunking the range failed",
            ));
        };
        Ok(if swap { (hi, lo) } else { (lo, hi) })
    }
    fn upload(&self, host: &[f32]) -> KResult<CudaSlice<f32>> {
        self.rt()
            .stream()
            .clone_htod(host)
            .map_err(|e| KernelError::launch("upload", e))
    }
    fn download(&self, buf: &CudaSlice<f32>) -> KResult<Vec<f32>> {
        self.rt()
            .stream()
            .clone_dtoh(buf)
            .map_err(|e| KernelError::launch("download", e))
    }
    fn zeros(&self, n: usize) -> KResult<CudaSlice<f32>> {
        self.rt()
            .stream()
            .alloc_zeros(n)
            .map_err(|e| KernelError::launch("zeros", e))
    }
    fn upload_mask(&self, host: &[u8]) -> KResult<CudaSlice<u8>> {
        self.rt()
            .stream()
            .clone_htod(host)
            .map_err(|e| KernelError::launch("upload_mask", e))
    }
    fn scratch(&self, n: usize) -> KResult<CudaSlice<f32>> {
        // SAFETY: `scratch` is only for outputs an op overwrites whole before anything reads
        // them (the trait's contract), so the uninitialised values are never observed.
        unsafe { self.rt().stream().alloc::<f32>(n) }.map_err(|e| KernelError::launch("scratch", e))
    }
    fn copy(&self, buf: &CudaSlice<f32>) -> KResult<CudaSlice<f32>> {
        self.rt()
            .stream()
            .clone_dtod(buf)
            .map_err(|e| KernelError::launch("copy", e))
    }
    fn adopt_host(&self, host: Vec<f32>) -> KResult<CudaSlice<f32>> {
        self.upload(&host)
    }
    fn to_host<'a>(&self, buf: &'a CudaSlice<f32>, range: Range<usize>) -> KResult<Cow<'a, [f32]>> {
        check_range("to_host", &range, buf.len())?;
        Ok(Cow::Owned(self.download_view(&buf.slice(range))?))
    }
    fn fill_zero(&self, buf: &mut CudaSlice<f32>) -> KResult<()> {
        self.rt()
            .stream()
            .memset_zeros(buf)
            .map_err(|e| KernelError::launch("fill_zero", e))
    }
    fn with_host_mut<R>(
        &self,
        buf: &mut CudaSlice<f32>,
        f: impl FnOnce(&mut [f32]) -> R,
    ) -> KResult<R> {
        let mut host = self.download(buf)?;
        let r = f(&mut host);
        self.to_device(&host, &mut buf.as_view_mut())?;
        Ok(r)
    }
}

impl Cuda {
    /// Copies a device view to the host (the fuse fallback's download point).
    fn download_view(&self, v: &V<'_>) -> KResult<Vec<f32>> {
        self.rt()
            .stream()
            .clone_dtoh(v)
            .map_err(|e| KernelError::launch("download", e))
    }
    /// Copies host values into a device view of the same length.
    fn to_device(&self, host: &[f32], out: &mut M<'_>) -> KResult<()> {
        crate::error::check_len("upload", "out", out.len(), &[host.len()])?;
        self.rt()
            .stream()
            .memcpy_htod(host, out)
            .map_err(|e| KernelError::launch("upload", e))
    }
}

impl ConvOps<f32> for Cuda {
    fn conv2d_forward(
        &self,
        mut y: M<'_>,
        x: V<'_>,
        w: V<'_>,
        bias: Option<V<'_>>,
        p: &Conv2dParams,
    ) -> KResult<()> {
        conv::cuda::conv2d_forward(self.rt(), &mut y, &x, &w, bias.as_ref(), p, self.conv_math)
    }
    fn conv2d_backward_data(
        &self,
        mut dx: M<'_>,
        dy: V<'_>,
        w: V<'_>,
        p: &Conv2dParams,
    ) -> KResult<()> {
        conv::cuda::conv2d_backward_data(self.rt(), &mut dx, &dy, &w, p, self.conv_math)
    }
    fn conv2d_backward_filter(
        &self,
        mut dw: M<'_>,
        mut dbias: Option<M<'_>>,
        dy: V<'_>,
        x: V<'_>,
        p: &Conv2dParams,
    ) -> KResult<()> {
        conv::cuda::conv2d_backward_filter(
            self.rt(),
            &mut dw,
            dbias.as_mut(),
            &dy,
            &x,
            p,
            self.conv_math,
        )
    }
}

impl NormOps<f32> for Cuda {
    fn batchnorm_stats_forward(
        &self,
        mut stats: M<'_>,
        x: V<'_>,
        p: &BatchNormParams,
    ) -> KResult<()> {
        batchnorm::cuda::batchnorm_stats_forward(self.rt(), &mut stats, &x, p)
    }
    fn batchnorm_forward_train(
        &self,
        mut y: M<'_>,
        mut saved: M<'_>,
        mut running_mean: M<'_>,
        mut running_var: M<'_>,
        x: V<'_>,
        gamma: V<'_>,
        beta: V<'_>,
        stats: V<'_>,
        count: usize,
        p: &BatchNormParams,
    ) -> KResult<()> {
        batchnorm::cuda::batchnorm_forward_train(
            self.rt(),
            &mut y,
            &mut saved,
            &mut running_mean,
            &mut running_var,
            &x,
            &gamma,
            &beta,
            &stats,
            count,
            p,
        )
    }
    fn batchnorm_forward_inference(
        &self,
        mut y: M<'_>,
        x: V<'_>,
        gamma: V<'_>,
        beta: V<'_>,
        running_mean: V<'_>,
        running_var: V<'_>,
        p: &BatchNormParams,
    ) -> KResult<()> {
        batchnorm::cuda::batchnorm_forward_inference(
            self.rt(),
            &mut y,
            &x,
            &gamma,
            &beta,
            &running_mean,
            &running_var,
            p,
        )
    }
    fn batchnorm_stats_backward(
        &self,
        mut dstats: M<'_>,
        dy: V<'_>,
        x: V<'_>,
        saved: V<'_>,
        p: &BatchNormParams,
    ) -> KResult<()> {
        batchnorm::cuda::batchnorm_stats_backward(self.rt(), &mut dstats, &dy, &x, &saved, p)
    }
    fn batchnorm_backward(
        &self,
        mut dx: M<'_>,
        mut dgamma: M<'_>,
        mut dbeta: M<'_>,
        dy: V<'_>,
        x: V<'_>,
        saved: V<'_>,
        gamma: V<'_>,
        dstats_local: V<'_>,
        dstats: V<'_>,
        count: usize,
        p: &BatchNormParams,
    ) -> KResult<()> {
        batchnorm::cuda::batchnorm_backward(
            self.rt(),
            &mut dx,
            &mut dgamma,
            &mut dbeta,
            &dy,
            &x,
            &saved,
            &gamma,
            &dstats_local,
            &dstats,
            count,
            p,
        )
    }
    fn batchnorm_silu_forward_train(
        &self,
        mut y: M<'_>,
        mut saved: M<'_>,
        mut running_mean: M<'_>,
        mut running_var: M<'_>,
        x: V<'_>,
        gamma: V<'_>,
        beta: V<'_>,
        stats: V<'_>,
        count: usize,
        p: &BatchNormParams,
    ) -> KResult<()> {
        batchnorm::cuda_fused::batchnorm_silu_forward_train(
            self.rt(),
            &mut y,
            &mut saved,
            &mut running_mean,
            &mut running_var,
            &x,
            &gamma,
            &beta,
            &stats,
            count,
            p,
        )
    }
    /// No fused eval kernel on the device: BN into a temporary, then SiLU (the composition).
    fn batchnorm_silu_forward_inference(
        &self,
        y: M<'_>,
        x: V<'_>,
        gamma: V<'_>,
        beta: V<'_>,
        running_mean: V<'_>,
        running_var: V<'_>,
        p: &BatchNormParams,
    ) -> KResult<()> {
        let mut z = <Self as Buffers<f32>>::zeros(self, y.len())?;
        self.batchnorm_forward_inference(
            <Self as Buffers<f32>>::view_mut(&mut z),
            x,
            gamma,
            beta,
            running_mean,
            running_var,
            p,
        )?;
        self.silu_forward(y, <Self as Buffers<f32>>::view(&z))
    }
    fn batchnorm_silu_stats_backward(
        &self,
        mut dstats: M<'_>,
        dy: V<'_>,
        x: V<'_>,
        saved: V<'_>,
        gamma: V<'_>,
        beta: V<'_>,
        p: &BatchNormParams,
    ) -> KResult<()> {
        batchnorm::cuda_fused::batchnorm_silu_stats_backward(
            self.rt(),
            &mut dstats,
            &dy,
            &x,
            &saved,
            &gamma,
            &beta,
            p,
        )
    }
    fn batchnorm_silu_backward(
        &self,
        mut dx: M<'_>,
        mut dgamma: M<'_>,
        mut dbeta: M<'_>,
        dy: V<'_>,
        x: V<'_>,
        saved: V<'_>,
        gamma: V<'_>,
        beta: V<'_>,
        dstats_local: V<'_>,
        dstats: V<'_>,
        count: usize,
        p: &BatchNormParams,
    ) -> KResult<()> {
        batchnorm::cuda_fused::batchnorm_silu_backward(
            self.rt(),
            &mut dx,
            &mut dgamma,
            &mut dbeta,
            &dy,
            &x,
            &saved,
            &gamma,
            &beta,
            &dstats_local,
            &dstats,
            count,
            p,
        )
    }
}

impl ActivationOps<f32> for Cuda {
    fn silu_forward(&self, mut y: M<'_>, x: V<'_>) -> KResult<()> {
        activation::cuda::silu_forward(self.rt(), &mut y, &x)
    }
    fn silu_backward(&self, mut dx: M<'_>, dy: V<'_>, x: V<'_>) -> KResult<()> {
        activation::cuda::silu_backward(self.rt(), &mut dx, &dy, &x)
    }
    fn sigmoid_forward(&self, mut y: M<'_>, x: V<'_>) -> KResult<()> {
        activation::cuda::sigmoid_forward(self.rt(), &mut y, &x)
    }
    fn sigmoid_backward(&self, mut dx: M<'_>, dy: V<'_>, y: V<'_>) -> KResult<()> {
        activation::cuda::sigmoid_backward(self.rt(), &mut dx, &dy, &y)
    }
    fn hardsigmoid_forward(&self, mut y: M<'_>, x: V<'_>) -> KResult<()> {
        activation::cuda::hardsigmoid_forward(self.rt(), &mut y, &x)
    }
    fn hardsigmoid_backward(&self, mut dx: M<'_>, dy: V<'_>, y: V<'_>) -> KResult<()> {
        activation::cuda::hardsigmoid_backward(self.rt(), &mut dx, &dy, &y)
    }
}

impl PoolOps<f32> for Cuda {
    fn global_avg_pool_forward(&self, mut y: M<'_>, x: V<'_>, p: &PoolParams) -> KResult<()> {
        pool::cuda::global_avg_pool_forward(self.rt(), &mut y, &x, p)
    }
    fn global_avg_pool_backward(&self, mut dx: M<'_>, dy: V<'_>, p: &PoolParams) -> KResult<()> {
        pool::cuda::global_avg_pool_backward(self.rt(), &mut dx, &dy, p)
    }
    fn max_pool_forward(&self, mut y: M<'_>, x: V<'_>, p: &PoolParams) -> KResult<()> {
        let mut ws = self.zeros(x.len())?;
        pool::cuda::max_pool_forward(self.rt(), &mut y, &mut ws.as_view_mut(), &x, p)
    }
    fn max_pool_backward(
        &self,
        mut dx: M<'_>,
        dy: V<'_>,
        x: V<'_>,
        y: V<'_>,
        p: &PoolParams,
    ) -> KResult<()> {
        pool::cuda::max_pool_backward(self.rt(), &mut dx, &dy, &x, &y, p)
    }
}

impl ResizeOps<f32> for Cuda {
    fn upsample_nearest2x_forward(
        &self,
        mut y: M<'_>,
        x: V<'_>,
        p: &UpsampleParams,
    ) -> KResult<()> {
        resize::cuda::upsample_nearest2x_forward(self.rt(), &mut y, &x, p)
    }
    fn upsample_nearest2x_backward(
        &self,
        mut dx: M<'_>,
        dy: V<'_>,
        p: &UpsampleParams,
    ) -> KResult<()> {
        resize::cuda::upsample_nearest2x_backward(self.rt(), &mut dx, &dy, p)
    }
}

impl ConcatOps<f32> for Cuda {
    fn concat_channels_forward(
        &self,
        mut y: M<'_>,
        xs: Vec<V<'_>>,
        p: &ConcatParams,
    ) -> KResult<()> {
        let refs: Vec<&V<'_>> = xs.iter().collect();
        concat::cuda::concat_channels_forward(self.rt(), &mut y, &refs, p)
    }
    fn concat_channels_backward(
        &self,
        mut dxs: Vec<M<'_>>,
        dy: V<'_>,
        p: &ConcatParams,
    ) -> KResult<()> {
        let mut refs: Vec<&mut M<'_>> = dxs.iter_mut().collect();
        concat::cuda::concat_channels_backward(self.rt(), &mut refs, &dy, p)
    }
}

impl ElementwiseOps<f32> for Cuda {
    fn add_forward(&self, mut y: M<'_>, a: V<'_>, b: V<'_>, p: &BroadcastParams) -> KResult<()> {
        elementwise::cuda::add_forward(self.rt(), &mut y, &a, &b, p)
    }
    fn mul_forward(&self, mut y: M<'_>, a: V<'_>, b: V<'_>, p: &BroadcastParams) -> KResult<()> {
        elementwise::cuda::mul_forward(self.rt(), &mut y, &a, &b, p)
    }
    fn add_backward(
        &self,
        mut da: Option<M<'_>>,
        mut db: Option<M<'_>>,
        dy: V<'_>,
        p: &BroadcastParams,
    ) -> KResult<()> {
        elementwise::cuda::add_backward(self.rt(), da.as_mut(), db.as_mut(), &dy, p)
    }
    fn mul_backward(
        &self,
        mut da: Option<M<'_>>,
        mut db: Option<M<'_>>,
        dy: V<'_>,
        a: V<'_>,
        b: V<'_>,
        p: &BroadcastParams,
    ) -> KResult<()> {
        elementwise::cuda::mul_backward(self.rt(), da.as_mut(), db.as_mut(), &dy, &a, &b, p)
    }
}

impl DflOps<f32> for Cuda {
    fn softmax_bins_forward(&self, mut prob: M<'_>, logits: V<'_>, p: &DflParams) -> KResult<()> {
        dfl::cuda::softmax_bins_forward(self.rt(), &mut prob, &logits, p)
    }
    fn softmax_bins_backward(
        &self,
        mut dlogits: M<'_>,
        dprob: V<'_>,
        prob: V<'_>,
        p: &DflParams,
    ) -> KResult<()> {
        dfl::cuda::softmax_bins_backward(self.rt(), &mut dlogits, &dprob, &prob, p)
    }
    fn dfl_integral_forward(&self, mut dist: M<'_>, prob: V<'_>, p: &DflParams) -> KResult<()> {
        dfl::cuda::dfl_integral_forward(self.rt(), &mut dist, &prob, p)
    }
    fn dfl_integral_backward(&self, mut dprob: M<'_>, ddist: V<'_>, p: &DflParams) -> KResult<()> {
        dfl::cuda::dfl_integral_backward(self.rt(), &mut dprob, &ddist, p)
    }
    fn dfl_decode_backward(
        &self,
        mut dlogits: M<'_>,
        ddist: V<'_>,
        prob: V<'_>,
        dist: V<'_>,
        p: &DflParams,
    ) -> KResult<()> {
        dfl::cuda::dfl_decode_backward(self.rt(), &mut dlogits, &ddist, &prob, &dist, p)
    }
}

impl LossOps<f32> for Cuda {
    fn bce_forward(&self, mut out: M<'_>, pred: V<'_>, target: V<'_>) -> KResult<()> {
        loss::cuda::bce_forward(self.rt(), &mut out, &pred, &target)
    }
    fn bce_backward(
        &self,
        mut dpred: M<'_>,
        dloss: V<'_>,
        pred: V<'_>,
        target: V<'_>,
    ) -> KResult<()> {
        loss::cuda::bce_backward(self.rt(), &mut dpred, &dloss, &pred, &target)
    }
    fn varifocal_loss_forward(
        &self,
        mut out: M<'_>,
        pred: V<'_>,
        target: V<'_>,
        label: V<'_>,
        p: &VarifocalParams,
    ) -> KResult<()> {
        loss::cuda::varifocal_loss_forward(self.rt(), &mut out, &pred, &target, &label, p)
    }
    fn varifocal_loss_backward(
        &self,
        mut dpred: M<'_>,
        pred: V<'_>,
        target: V<'_>,
        label: V<'_>,
        dloss: f32,
        p: &VarifocalParams,
    ) -> KResult<()> {
        loss::cuda::varifocal_loss_backward(self.rt(), &mut dpred, &pred, &target, &label, dloss, p)
    }
    fn giou_per_box(&self, mut out: M<'_>, pred: V<'_>, target: V<'_>) -> KResult<()> {
        loss::cuda::giou_per_box(self.rt(), &mut out, &pred, &target)
    }
    fn giou_loss_forward(
        &self,
        mut out: M<'_>,
        pred: V<'_>,
        target: V<'_>,
        weight: V<'_>,
        p: &BoxLossParams,
    ) -> KResult<()> {
        loss::cuda::giou_loss_forward(self.rt(), &mut out, &pred, &target, &weight, p)
    }
    fn giou_loss_backward(
        &self,
        mut dpred: M<'_>,
        pred: V<'_>,
        target: V<'_>,
        weight: V<'_>,
        dloss: f32,
        p: &BoxLossParams,
    ) -> KResult<()> {
        loss::cuda::giou_loss_backward(self.rt(), &mut dpred, &pred, &target, &weight, dloss, p)
    }
    fn dfl_targets(
        &self,
        mut target: M<'_>,
        anchor_points: V<'_>,
        boxes: V<'_>,
        reg_max: usize,
    ) -> KResult<()> {
        loss::cuda::dfl_targets(self.rt(), &mut target, &anchor_points, &boxes, reg_max)
    }
    fn dfl_loss_forward(
        &self,
        mut out: M<'_>,
        logits: V<'_>,
        target: V<'_>,
        weight: V<'_>,
        p: &BoxLossParams,
    ) -> KResult<()> {
        loss::cuda::dfl_loss_forward(self.rt(), &mut out, &logits, &target, &weight, p)
    }
    fn dfl_loss_backward(
        &self,
        mut dlogits: M<'_>,
        logits: V<'_>,
        target: V<'_>,
        weight: V<'_>,
        dloss: f32,
        p: &BoxLossParams,
    ) -> KResult<()> {
        loss::cuda::dfl_loss_backward(self.rt(), &mut dlogits, &logits, &target, &weight, dloss, p)
    }
}

impl OptimOps<f32> for Cuda {
    fn sgd_momentum_step(
        &self,
        mut params: M<'_>,
        mut velocity: M<'_>,
        grads: V<'_>,
        decay_mask: &CudaSlice<u8>,
        p: &SgdParams,
    ) -> KResult<()> {
        let mask = decay_mask.as_view();
        optimizer::cuda::sgd_momentum_step(self.rt(), &mut params, &mut velocity, &grads, &mask, p)
    }
    fn adamw_step(
        &self,
        mut params: M<'_>,
        moments: [M<'_>; 2],
        grads: V<'_>,
        decay_mask: &CudaSlice<u8>,
        p: &AdamwParams,
    ) -> KResult<()> {
        let mask = decay_mask.as_view();
        let [mut m, mut v] = moments;
        optimizer::cuda::adamw_step(self.rt(), &mut params, [&mut m, &mut v], &grads, &mask, p)
    }
    fn ema_update(&self, mut ema: M<'_>, params: V<'_>, step: u64, p: &EmaParams) -> KResult<f64> {
        optimizer::cuda::ema_update(self.rt(), &mut ema, &params, step, p)
    }
    fn ema_apply(&self, mut out: M<'_>, ema: V<'_>, last_decay: f64, steps: u64) -> KResult<()> {
        optimizer::cuda::ema_apply(self.rt(), &mut out, &ema, last_decay, steps)
    }
}

impl FuseOps<f32> for Cuda {
    fn fold_conv_bn(
        &self,
        mut w_out: M<'_>,
        mut b_out: M<'_>,
        w: V<'_>,
        bias: Option<V<'_>>,
        gamma: V<'_>,
        beta: V<'_>,
        mean: V<'_>,
        var: V<'_>,
        p: &FoldParams,
    ) -> KResult<()> {
        let (mut wh, mut bh) = (vec![0.0; w_out.len()], vec![0.0; b_out.len()]);
        let bias_h = bias.as_ref().map(|b| self.download_view(b)).transpose()?;
        fuse::cpu::fold_conv_bn(
            &mut wh,
            &mut bh,
            &self.download_view(&w)?,
            bias_h.as_deref(),
            &self.download_view(&gamma)?,
            &self.download_view(&beta)?,
            &self.download_view(&mean)?,
            &self.download_view(&var)?,
            p,
        )?;
        self.to_device(&wh, &mut w_out)?;
        self.to_device(&bh, &mut b_out)
    }
    fn repvgg_fuse(
        &self,
        mut w_out: M<'_>,
        mut b_out: M<'_>,
        w3: V<'_>,
        b3: V<'_>,
        w1: V<'_>,
        b1: V<'_>,
        p: &RepVggParams,
    ) -> KResult<()> {
        let (mut wh, mut bh) = (vec![0.0; w_out.len()], vec![0.0; b_out.len()]);
        fuse::cpu::repvgg_fuse(
            &mut wh,
            &mut bh,
            &self.download_view(&w3)?,
            &self.download_view(&b3)?,
            &self.download_view(&w1)?,
            &self.download_view(&b1)?,
            p,
        )?;
        self.to_device(&wh, &mut w_out)?;
        self.to_device(&bh, &mut b_out)
    }
}
