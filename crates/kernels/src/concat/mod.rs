//! Concatenation and split along the channel axis of NCHW tensors (CSP blocks, SPP, FPN/PAN).

pub mod cpu;

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
