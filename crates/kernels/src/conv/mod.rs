//! 2-D convolution (NCHW, weights `[out, in, kh, kw]`, groups 1): forward, backward to the input,
//! backward to the filter and bias.
//!
//! The CPU path is im2col + GEMM (1×1 stride-1 convs skip im2col and multiply in place).

pub mod cpu;
pub mod cuda;
mod direct_filter;
mod direct_forward;

use crate::error::{KernelError, param};

/// Shapes and geometry of one convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dParams {
    /// Images in the batch (N).
    pub batch: usize,
    /// Input channels (C).
    pub in_channels: usize,
    /// Output channels (K).
    pub out_channels: usize,
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// Kernel height.
    pub kernel_h: usize,
    /// Kernel width.
    pub kernel_w: usize,
    /// Vertical stride.
    pub stride_h: usize,
    /// Horizontal stride.
    pub stride_w: usize,
    /// Zero padding above and below.
    pub pad_h: usize,
    /// Zero padding left and right.
    pub pad_w: usize,
}

impl Conv2dParams {
    /// A square kernel with the same stride and padding on both axes.
    #[allow(clippy::too_many_arguments)]
    pub fn square(
        batch: usize,
        in_channels: usize,
        out_channels: usize,
        in_h: usize,
        in_w: usize,
        kernel: usize,
        stride: usize,
        pad: usize,
    ) -> Self {
        Self {
            batch,
            in_channels,
            out_channels,
            in_h,
            in_w,
            kernel_h: kernel,
            kernel_w: kernel,
            stride_h: stride,
            stride_w: stride,
            pad_h: pad,
            pad_w: pad,
        }
    }

    /// Output height (floor mode).
    pub fn out_h(&self) -> usize {
        (self.in_h + 2 * self.pad_h).saturating_sub(self.kernel_h) / self.stride_h.max(1) + 1
    }

    /// Output width (floor mode).
    pub fn out_w(&self) -> usize {
        (self.in_w + 2 * self.pad_w).saturating_sub(self.kernel_w) / self.stride_w.max(1) + 1
    }

    /// Input shape `[N, C, H, W]`.
    pub fn x_shape(&self) -> [usize; 4] {
        [self.batch, self.in_channels, self.in_h, self.in_w]
    }

    /// Weight shape `[K, C, kh, kw]`.
    pub fn w_shape(&self) -> [usize; 4] {
        [
            self.out_channels,
            self.in_channels,
            self.kernel_h,
            self.kernel_w,
        ]
    }

    /// Output shape `[N, K, OH, OW]`.
    pub fn y_shape(&self) -> [usize; 4] {
        [self.batch, self.out_channels, self.out_h(), self.out_w()]
    }

    /// True for 1×1 kernels with stride 1 and no padding: no im2col needed.
    pub fn is_pointwise(&self) -> bool {
        self.kernel_h == 1
            && self.kernel_w == 1
            && self.stride_h == 1
            && self.stride_w == 1
            && self.pad_h == 0
            && self.pad_w == 0
    }

    /// C·kh·kw: the GEMM inner size of the forward pass.
    pub fn col_rows(&self) -> usize {
        self.in_channels * self.kernel_h * self.kernel_w
    }

    /// Output rows per work item: enough positions for an efficient GEMM while the im2col
    /// block stays near the L2 cache size, and at least `kernel_h` rows so that every other
    /// block touches disjoint input rows (backward-data relies on it).
    pub fn block_rows(&self) -> usize {
        let target = (262_144 / self.col_rows().max(1)).clamp(128, 4096);
        target
            .div_ceil(self.out_w().max(1))
            .max(self.kernel_h)
            .min(self.out_h())
            .max(1)
    }

    /// Work items per image.
    pub fn blocks_per_image(&self) -> usize {
        self.out_h().div_ceil(self.block_rows())
    }

    /// Scratch elements one thread needs: an im2col block (none for pointwise convs) and a
    /// private filter-gradient accumulator.
    pub fn workspace_per_thread(&self) -> usize {
        self.col_block_len() + self.out_channels * self.col_rows()
    }

    /// Elements of one thread's im2col block (0 for pointwise convs). Forward and
    /// backward-data need only this much per thread; backward-filter needs
    /// [`Self::workspace_per_thread`].
    pub fn col_block_len(&self) -> usize {
        if self.is_pointwise() {
            0
        } else {
            self.col_rows() * self.block_rows() * self.out_w()
        }
    }

    /// Scratch elements for `threads` threads (every direction uses the same workspace).
    pub fn workspace_len_for(&self, threads: usize) -> usize {
        threads.max(1) * self.workspace_per_thread()
    }

    /// Scratch elements for the current rayon pool. The kernels use as many threads as the
    /// workspace they are given has room for.
    pub fn workspace_len(&self) -> usize {
        self.workspace_len_for(rayon::current_num_threads())
    }

    /// Multiply-adds of the forward pass times two (each backward direction costs the same).
    pub fn flops(&self) -> u64 {
        2 * (self.batch * self.out_channels * self.out_h() * self.out_w()) as u64
            * (self.in_channels * self.kernel_h * self.kernel_w) as u64
    }

    /// Rejects geometry the kernels cannot run (zero stride, kernel larger than the padded input).
    pub fn validate(&self, op: &'static str) -> Result<(), KernelError> {
        if self.stride_h == 0 || self.stride_w == 0 {
            return Err(param(op, format!("stride must be >= 1, got {self:?}")));
        }
        if self.kernel_h == 0 || self.kernel_w == 0 {
            return Err(param(op, format!("kernel must be >= 1, got {self:?}")));
        }
        if self.kernel_h > self.in_h + 2 * self.pad_h || self.kernel_w > self.in_w + 2 * self.pad_w
        {
            return Err(param(
                op,
                format!(
                    "kernel {}x{} is larger than the padded input {}x{}",
                    self.kernel_h,
                    self.kernel_w,
                    self.in_h + 2 * self.pad_h,
                    self.in_w + 2 * self.pad_w
                ),
            ));
        }
        Ok(())
    }
}

/// Checks the geometry and the three tensors of a conv call (x, w and y, or their gradients);
/// shared by the CPU and CUDA versions.
pub(crate) fn check_common(
    op: &'static str,
    x_len: usize,
    w_len: usize,
    y_len: usize,
    p: &Conv2dParams,
) -> Result<(), crate::KernelError> {
    p.validate(op)?;
    crate::error::check_len(op, "x", x_len, &p.x_shape())?;
    crate::error::check_len(op, "w", w_len, &p.w_shape())?;
    crate::error::check_len(op, "y", y_len, &p.y_shape())
}
