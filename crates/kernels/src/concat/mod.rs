//! Concatenation and split along the channel axis of NCHW tensors (CSP blocks, SPP, FPN/PAN).

pub mod cpu;
pub mod cuda;

/// The parts' channel counts; all share N and H·W.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConcatParams<'a> {
    /// Images (N).
    pub batch: usize,
    /// H·W of every part.
    pub spatial: usize,
    /// Channels of each part, in concatenation order.
    pub channels: &'a [usize],
}

impl ConcatParams<'_> {
    /// Channels of the concatenation.
    pub fn total_channels(&self) -> usize {
        self.channels.iter().sum()
    }
}

/// Checks the parts of a concat or split (as many as channel counts, each `[N, C_i, H·W]`);
/// shared by the CPU and CUDA versions.
pub(crate) fn check_parts(
    op: &'static str,
    what: &'static str,
    lens: impl ExactSizeIterator<Item = usize>,
    p: &ConcatParams,
) -> Result<(), crate::KernelError> {
    if lens.len() != p.channels.len() {
        return Err(crate::error::param(
            op,
            format!(
                "{} parts given for {} channel counts {:?}",
                lens.len(),
                p.channels.len(),
                p.channels
            ),
        ));
    }
    for (len, &c) in lens.zip(p.channels) {
        crate::error::check_len(op, what, len, &[p.batch, c, p.spatial])?;
    }
    Ok(())
}
