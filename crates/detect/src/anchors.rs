//! Anchor points (cell centres, offset 0.5) per level, deepest level first, row-major inside a level;
//! ATSS anchor boxes of side `grid_cell_scale · stride` around them.

use crate::boxes::Box4;
use crate::error::{DetectError, Result};

/// Spatial size of the feature map at `stride` for an input side: each stride-2 3×3 pad-1 conv maps
/// `n` to `ceil(n / 2)`.
pub fn feature_size(input: usize, stride: usize) -> usize {
    let mut n = input;
    let mut s = 1;
    while s < stride {
        n = n.div_ceil(2);
        s *= 2;
    }
    n
}

/// Anchors of all levels for one input size.
#[derive(Clone, Debug, PartialEq)]
pub struct Anchors {
    /// Anchor points in input pixels, `((x + 0.5)·s, (y + 0.5)·s)`.
    pub points_px: Vec<[f32; 2]>,
    /// Anchor points in grid units of their level, `(x + 0.5, y + 0.5)`.
    pub points_grid: Vec<[f32; 2]>,
    /// Stride of each anchor.
    pub strides: Vec<f32>,
    /// ATSS anchor boxes in pixels (squares of side `grid_cell_scale · stride`).
    pub boxes_px: Vec<Box4>,
    /// Anchors per level.
    pub num_per_level: Vec<usize>,
    /// `(height, width)` of each level.
    pub level_sizes: Vec<(usize, usize)>,
}

impl Anchors {
    /// Anchors for feature maps of the given `(height, width)` per level and strides.
    pub fn new(
        level_sizes: &[(usize, usize)],
        strides: &[usize],
        grid_cell_scale: f32,
        offset: f32,
    ) -> Result<Self> {
        if level_sizes.len() != strides.len() {
            return Err(DetectError::Input(format!(
                "{} level sizes for {} strides",
                level_sizes.len(),
                strides.len()
            )));
        }
        let mut a = Self {
            points_px: Vec::new(),
            points_grid: Vec::new(),
            strides: Vec::new(),
            boxes_px: Vec::new(),
            num_per_level: Vec::new(),
            level_sizes: level_sizes.to_vec(),
        };
        for (&(h, w), &stride) in level_sizes.iter().zip(strides) {
            let s = stride as f32;
            let half = grid_cell_scale * s * 0.5;
            for y in 0..h {
                for x in 0..w {
                    let gx = x as f32 + offset;
                    let gy = y as f32 + offset;
                    let (px, py) = (gx * s, gy * s);
                    a.points_px.push([px, py]);
                    a.points_grid.push([gx, gy]);
                    a.strides.push(s);
                    a.boxes_px
                        .push([px - half, py - half, px + half, py + half]);
                }
            }
            a.num_per_level.push(h * w);
        }
        Ok(a)
    }

    /// PP-YOLOE anchors (cell scale 5, offset 0.5) for an input of `height × width`.
    pub fn for_input(height: usize, width: usize, strides: &[usize]) -> Result<Self> {
        let sizes: Vec<(usize, usize)> = strides
            .iter()
            .map(|&s| (feature_size(height, s), feature_size(width, s)))
            .collect();
        Self::new(&sizes, strides, 5.0, 0.5)
    }

    /// Total number of anchors.
    pub fn len(&self) -> usize {
        self.points_px.len()
    }

    /// Whether there are no anchors.
    pub fn is_empty(&self) -> bool {
        self.points_px.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_order() {
        let a = Anchors::for_input(640, 640, &[32, 16, 8]).unwrap();
        assert_eq!(a.len(), 8400);
        assert_eq!(a.num_per_level, vec![400, 1600, 6400]);
        assert_eq!(a.points_px[1], [48.0, 16.0]);
        assert_eq!(a.boxes_px[0], [-64.0, -64.0, 96.0, 96.0]);
        assert_eq!(
            Anchors::for_input(768, 768, &[32, 16, 8]).unwrap().len(),
            12096
        );
        assert_eq!(feature_size(100, 8), 13);
    }
}
