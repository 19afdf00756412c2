//! Shape, strides and offset: how a tensor's elements sit in its storage. Every view is a new
//! `Layout` over the same storage; nothing here touches data.

use crate::{Result, TensorError};

/// Shape, strides (in elements) and offset (in elements) of a strided view.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Layout {
    shape: Vec<usize>,
    strides: Vec<usize>,
    offset: usize,
}

/// Row-major strides of a contiguous tensor of this shape.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![0; shape.len()];
    let mut acc = 1usize;
    for (s, &d) in strides.iter_mut().zip(shape).rev() {
        *s = acc;
        acc = acc.saturating_mul(d);
    }
    strides
}

fn invalid(op: &'static str, shape: &[usize], msg: String) -> TensorError {
    TensorError::InvalidShape {
        op,
        shape: shape.to_vec(),
        msg,
    }
}

impl Layout {
    /// A contiguous row-major layout at offset 0.
    pub fn contiguous(shape: &[usize]) -> Self {
        Layout {
            shape: shape.to_vec(),
            strides: contiguous_strides(shape),
            offset: 0,
        }
    }

    /// A layout from its parts; no check is made that it fits any storage.
    pub fn from_parts(shape: Vec<usize>, strides: Vec<usize>, offset: usize) -> Result<Self> {
        if shape.len() != strides.len() {
            return Err(invalid(
                "Layout::from_parts",
                &shape,
                format!("{} strides for {} dims", strides.len(), shape.len()),
            ));
        }
        Ok(Layout {
            shape,
            strides,
            offset,
        })
    }

    /// Size of each dim, outermost first.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    /// Step in elements between neighbours along each dim (0 along broadcast dims).
    pub fn strides(&self) -> &[usize] {
        &self.strides
    }
    /// Position of the first element in the storage, in elements.
    pub fn offset(&self) -> usize {
        self.offset
    }
    /// Number of dims.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// True when the elements are dense and row-major (dims of size 1 may have any stride).
    pub fn is_contiguous(&self) -> bool {
        let mut expected = 1;
        for (&d, &s) in self.shape.iter().zip(&self.strides).rev() {
            if d != 1 && s != expected {
                return false;
            }
            expected *= d;
        }
        true
    }

    /// The storage index (in elements) of a multi-index; `None` if out of bounds.
    pub fn index_of(&self, index: &[usize]) -> Option<usize> {
        if index.len() != self.shape.len() || index.iter().zip(&self.shape).any(|(i, d)| i >= d) {
            return None;
        }
        Some(
            self.offset
                + index
                    .iter()
                    .zip(&self.strides)
                    .map(|(i, s)| i * s)
                    .sum::<usize>(),
        )
    }

    /// One past the largest storage index this view reaches (0 for an empty view).
    pub fn storage_extent(&self) -> usize {
        if self.numel() == 0 {
            return 0;
        }
        self.offset
            + self
                .shape
                .iter()
                .zip(&self.strides)
                .map(|(d, s)| (d - 1) * s)
                .sum::<usize>()
            + 1
    }

    /// Storage indices of every element in row-major order.
    pub fn indices(&self) -> StridedIndex<'_> {
        StridedIndex {
            layout: self,
            pos: vec![0; self.rank()],
            next: (self.numel() > 0).then_some(self.offset),
        }
    }

    /// The same elements seen with another shape, without a copy. Fails when the strides cannot
    /// express it (then the caller copies with `contiguous()` first).
    pub fn reshape(&self, shape: &[usize]) -> Result<Layout> {
        let numel: usize = shape.iter().product();
        if numel != self.numel() {
            return Err(TensorError::ShapeMismatch {
                op: "reshape",
                lhs: self.shape.clone(),
                rhs: shape.to_vec(),
            });
        }
        if self.is_contiguous() {
            return Ok(Layout {
                shape: shape.to_vec(),
                strides: contiguous_strides(shape),
                offset: self.offset,
            });
        }
        self.reshape_strided(shape).ok_or_else(|| {
            invalid(
                "reshape",
                &self.shape,
                format!(
                    "cannot view strides {:?} as shape {shape:?} without a copy",
                    self.strides
                ),
            )
        })
    }

    /// Groups the old dims into runs that are contiguous among themselves and maps each run onto
    /// the new dims with the same element count (numpy's no-copy reshape).
    fn reshape_strided(&self, shape: &[usize]) -> Option<Layout> {
        let old: Vec<(usize, usize)> = self
            .shape
            .iter()
            .zip(&self.strides)
            .filter(|(d, _)| **d != 1)
            .map(|(d, s)| (*d, *s))
            .collect();
        let mut strides = vec![0; shape.len()];
        let (mut oi, mut ni) = (0, 0);
        while ni < shape.len() {
            if shape[ni] == 1 {
                strides[ni] = 1;
                ni += 1;
                continue;
            }
            let (oj0, nj0) = (oi, ni);
            let (mut op, mut np) = (old.get(oi)?.0, shape[ni]);
            while op != np {
                if np < op {
                    ni += 1;
                    np *= *shape.get(ni)?;
                } else {
                    oi += 1;
                    op *= old.get(oi)?.0;
                }
            }
            for k in oj0..oi {
                if old[k].1 != old[k + 1].0 * old[k + 1].1 {
                    return None;
                }
            }
            strides[ni] = old[oi].1;
            for k in (nj0..ni).rev() {
                strides[k] = strides[k + 1] * shape[k + 1];
            }
            oi += 1;
            ni += 1;
        }
        Some(Layout {
            shape: shape.to_vec(),
            strides,
            offset: self.offset,
        })
    }

    /// Reorders the dims: result dim i is input dim `dims[i]`.
    pub fn permute(&self, dims: &[usize]) -> Result<Layout> {
        let mut seen = vec![false; self.rank()];
        if dims.len() != self.rank()
            || dims
                .iter()
                .any(|&d| d >= seen.len() || std::mem::replace(&mut seen[d], true))
        {
            return Err(invalid(
                "permute",
                &self.shape,
                format!("{dims:?} is not a permutation of 0..{}", self.rank()),
            ));
        }
        Ok(Layout {
            shape: dims.iter().map(|&d| self.shape[d]).collect(),
            strides: dims.iter().map(|&d| self.strides[d]).collect(),
            offset: self.offset,
        })
    }

    /// Elements `start..start+len` along `dim`.
    pub fn narrow(&self, dim: usize, start: usize, len: usize) -> Result<Layout> {
        let size = *self
            .shape
            .get(dim)
            .ok_or_else(|| invalid("narrow", &self.shape, format!("dim {dim} out of range")))?;
        if start.checked_add(len).is_none_or(|end| end > size) {
            return Err(invalid(
                "narrow",
                &self.shape,
                format!("range {start}..{start}+{len} exceeds dim {dim} of size {size}"),
            ));
        }
        let mut out = self.clone();
        out.shape[dim] = len;
        if len > 0 {
            out.offset += start * self.strides[dim];
        }
        Ok(out)
    }

    /// Broadcasts to `shape` (numpy rules: leading dims added, size-1 dims stretched, stride 0).
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Layout> {
        let mismatch = || TensorError::ShapeMismatch {
            op: "broadcast_to",
            lhs: self.shape.clone(),
            rhs: shape.to_vec(),
        };
        if shape.len() < self.rank() {
            return Err(mismatch());
        }
        let lead = shape.len() - self.rank();
        let mut strides = vec![0; shape.len()];
        for (i, &d) in shape.iter().enumerate().skip(lead) {
            let (od, os) = (self.shape[i - lead], self.strides[i - lead]);
            strides[i] = if od == d {
                os
            } else if od == 1 {
                0
            } else {
                return Err(mismatch());
            };
        }
        Ok(Layout {
            shape: shape.to_vec(),
            strides,
            offset: self.offset,
        })
    }

    /// Removes dim `dim`, which must have size 1.
    pub fn squeeze(&self, dim: usize) -> Result<Layout> {
        if self.shape.get(dim) != Some(&1) {
            return Err(invalid(
                "squeeze",
                &self.shape,
                format!("dim {dim} is not of size 1"),
            ));
        }
        let mut out = self.clone();
        out.shape.remove(dim);
        out.strides.remove(dim);
        Ok(out)
    }

    /// Inserts a dim of size 1 before position `dim` (`dim == rank` appends).
    pub fn unsqueeze(&self, dim: usize) -> Result<Layout> {
        if dim > self.rank() {
            return Err(invalid(
                "unsqueeze",
                &self.shape,
                format!("position {dim} beyond rank {}", self.rank()),
            ));
        }
        let mut out = self.clone();
        let stride = self.strides.get(dim).map_or(1, |s| s * self.shape[dim]);
        out.shape.insert(dim, 1);
        out.strides.insert(dim, stride);
        Ok(out)
    }
}

/// Iterator over the storage indices of a layout in row-major order.
pub struct StridedIndex<'a> {
    layout: &'a Layout,
    pos: Vec<usize>,
    next: Option<usize>,
}

impl Iterator for StridedIndex<'_> {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        let cur = self.next?;
        let mut idx = cur;
        let mut done = true;
        for d in (0..self.pos.len()).rev() {
            self.pos[d] += 1;
            idx += self.layout.strides[d];
            if self.pos[d] < self.layout.shape[d] {
                done = false;
                break;
            }
            idx -= self.layout.strides[d] * self.pos[d];
            self.pos[d] = 0;
        }
        self.next = (!done).then_some(idx);
        Some(cur)
    }
}
