//! An NCHW f32 activation owned by the forward pass.

use crate::error::{DetectError, Result};

/// A dense `[n, c, h, w]` f32 feature map.
#[derive(Clone, Debug, PartialEq)]
pub struct Feat {
    /// Values, NCHW.
    pub data: Vec<f32>,
    /// Images.
    pub n: usize,
    /// Channels.
    pub c: usize,
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
}

impl Feat {
    /// Zeros of a shape.
    pub fn zeros(n: usize, c: usize, h: usize, w: usize) -> Self {
        Self {
            data: vec![0.0; n * c * h * w],
            n,
            c,
            h,
            w,
        }
    }
    /// Wrap values, checking the length.
    pub fn from_vec(data: Vec<f32>, n: usize, c: usize, h: usize, w: usize) -> Result<Self> {
        if data.len() != n * c * h * w {
            return Err(DetectError::Input(format!(
                "{} values for a [{n}, {c}, {h}, {w}] feature map",
                data.len()
            )));
        }
        Ok(Self { data, n, c, h, w })
    }
    /// Zeros shaped like `self`.
    pub fn zeros_like(&self) -> Self {
        Self::zeros(self.n, self.c, self.h, self.w)
    }
    /// `[n, c, h, w]`.
    pub fn shape(&self) -> [usize; 4] {
        [self.n, self.c, self.h, self.w]
    }
    /// `h · w`.
    pub fn hw(&self) -> usize {
        self.h * self.w
    }
    /// Element-wise `self += other`.
    pub fn add_assign(&mut self, other: &Feat) {
        self.data
            .iter_mut()
            .zip(&other.data)
            .for_each(|(a, b)| *a += b);
    }
}
