//! Model size: PaddleDetection's width/depth multipliers and the scaling rule it applies to them.

use crate::error::{DetectError, Result};

/// Base (l-size) backbone channels of CSPResNet: stem, then stage 0..3 outputs.
pub const BASE_BACKBONE_CHANNELS: [usize; 5] = [64, 128, 256, 512, 1024];
/// Base (l-size) number of BasicBlocks in each backbone stage.
pub const BASE_BACKBONE_LAYERS: [usize; 4] = [3, 6, 6, 3];
/// Base neck output channels, deepest level first.
pub const BASE_NECK_CHANNELS: [usize; 3] = [768, 384, 192];
/// Base number of BasicBlocks in each neck CSPStage.
pub const BASE_NECK_BLOCKS: usize = 3;
/// Head strides, deepest level first (the order of every anchor concatenation).
pub const FPN_STRIDES: [usize; 3] = [32, 16, 8];

/// Size and class count of a PP-YOLOE (crn) model.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    /// Channel multiplier (`width_mult`).
    pub width_mult: f64,
    /// Block-count multiplier (`depth_mult`).
    pub depth_mult: f64,
    /// Number of object classes.
    pub num_classes: usize,
    /// DFL maximum bin index (`reg_max`); there are `reg_max + 1` bins per side.
    pub reg_max: usize,
}

impl ModelConfig {
    /// A model with the given multipliers, 80 classes and reg_max 16.
    pub fn new(width_mult: f64, depth_mult: f64) -> Self {
        Self {
            width_mult,
            depth_mult,
            num_classes: 80,
            reg_max: 16,
        }
    }
    /// PP-YOLOE-s (width 0.50, depth 0.33).
    pub fn s() -> Self {
        Self::new(0.50, 0.33)
    }
    /// PP-YOLOE-m (width 0.75, depth 0.67).
    pub fn m() -> Self {
        Self::new(0.75, 0.67)
    }
    /// PP-YOLOE-l (width 1.0, depth 1.0).
    pub fn l() -> Self {
        Self::new(1.0, 1.0)
    }
    /// PP-YOLOE-x (width 1.25, depth 1.33).
    pub fn x() -> Self {
        Self::new(1.25, 1.33)
    }
    /// Look a size up by its letter (`s`, `m`, `l`, `x`).
    pub fn by_name(name: &str) -> Result<Self> {
        match name {
            "s" => Ok(Self::s()),
            "m" => Ok(Self::m()),
            "l" => Ok(Self::l()),
            "x" => Ok(Self::x()),
            other => Err(DetectError::Config(format!(
                "unknown model size `{other}` (expected s, m, l or x)"
            ))),
        }
    }
    /// The same model with another class count.
    pub fn with_classes(mut self, num_classes: usize) -> Self {
        self.num_classes = num_classes;
        self
    }

    /// Check that the values can build a model.
    pub fn validate(&self) -> Result<()> {
        let finite_pos = |v: f64| v.is_finite() && v > 0.0;
        if !finite_pos(self.width_mult) || !finite_pos(self.depth_mult) {
            return Err(DetectError::Config(format!(
                "width_mult {} and depth_mult {} must be finite and > 0",
                self.width_mult, self.depth_mult
            )));
        }
        if self.num_classes == 0 {
            return Err(DetectError::Config("num_classes must be at least 1".into()));
        }
        if self.reg_max == 0 {
            return Err(DetectError::Config("reg_max must be at least 1".into()));
        }
        Ok(())
    }

    /// A scaled channel count: `max(round(c * width_mult), 1)` with Python's round-half-to-even.
    pub fn width(&self, c: usize) -> usize {
        scale(c, self.width_mult)
    }
    /// A scaled block count: `max(round(n * depth_mult), 1)` with Python's round-half-to-even.
    pub fn depth(&self, n: usize) -> usize {
        scale(n, self.depth_mult)
    }
    /// Number of regression bins per side.
    pub fn reg_bins(&self) -> usize {
        self.reg_max + 1
    }
}

fn scale(v: usize, mult: f64) -> usize {
    ((v as f64 * mult).round_ties_even() as usize).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling_matches_python_round() {
        let s = ModelConfig::s();
        assert_eq!(
            BASE_BACKBONE_CHANNELS.map(|c| s.width(c)),
            [32, 64, 128, 256, 512]
        );
        assert_eq!(BASE_BACKBONE_LAYERS.map(|n| s.depth(n)), [1, 2, 2, 1]);
        let x = ModelConfig::x();
        assert_eq!(BASE_BACKBONE_LAYERS.map(|n| x.depth(n)), [4, 8, 8, 4]);
        assert_eq!(x.width(64), 80);
        // 2.5 rounds to 2 in Python.
        assert_eq!(ModelConfig::new(0.5, 0.5).depth(5), 2);
    }
}
