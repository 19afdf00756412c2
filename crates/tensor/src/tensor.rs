//! `Tensor`: a dtype, a layout, and shared host storage. Views share storage; `contiguous` and
//! `to_vec` copy.

use crate::layout::Layout;
use crate::storage::{AlignedBytes, HostStorage};
use crate::{DType, Element, Result, TensorError};
use std::sync::Arc;

/// An n-dimensional array of one dtype in host memory.
#[derive(Clone)]
pub struct Tensor {
    storage: Arc<HostStorage>,
    layout: Layout,
    dtype: DType,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor({}, shape {:?})", self.dtype, self.shape())
    }
}

fn check_len(op: &'static str, len: usize, shape: &[usize]) -> Result<()> {
    let numel = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    if numel != Some(len) {
        return Err(TensorError::InvalidShape {
            op,
            shape: shape.to_vec(),
            msg: format!("{len} elements given for this shape"),
        });
    }
    Ok(())
}

impl Tensor {
    /// A contiguous host tensor that takes `data` (row-major) with the given shape.
    pub fn from_vec<T: Element>(data: Vec<T>, shape: &[usize]) -> Result<Self> {
        Self::from_slice(&data, shape)
    }

    /// A contiguous host tensor holding a copy of `data`.
    pub fn from_slice<T: Element>(data: &[T], shape: &[usize]) -> Result<Self> {
        check_len("from_slice", data.len(), shape)?;
        let bytes = AlignedBytes::copy_from(bytemuck::cast_slice(data));
        Ok(Self::from_host(HostStorage::Owned(bytes), T::DTYPE, shape))
    }

    /// A contiguous host tensor over existing host storage; the storage must hold exactly
    /// `numel * dtype.size()` bytes.
    pub fn from_host_storage(storage: HostStorage, dtype: DType, shape: &[usize]) -> Result<Self> {
        let elems = storage.as_bytes().len() / dtype.size();
        if !storage.as_bytes().len().is_multiple_of(dtype.size()) {
            return Err(TensorError::InvalidShape {
                op: "from_host_storage",
                shape: shape.to_vec(),
                msg: format!(
                    "{} bytes is not a whole number of {dtype}",
                    storage.as_bytes().len()
                ),
            });
        }
        check_len("from_host_storage", elems, shape)?;
        Ok(Self::from_host(storage, dtype, shape))
    }

    fn from_host(storage: HostStorage, dtype: DType, shape: &[usize]) -> Self {
        Tensor {
            storage: Arc::new(storage),
            layout: Layout::contiguous(shape),
            dtype,
        }
    }

    /// A host tensor filled with `value` (converted to `dtype`).
    pub fn full(value: f64, shape: &[usize], dtype: DType) -> Self {
        let numel: usize = shape.iter().product();
        let mut bytes = AlignedBytes::zeroed(numel * dtype.size());
        fn fill<T: Element>(b: &mut [u8], v: f64) {
            bytemuck::cast_slice_mut::<u8, T>(b).fill(T::from_f64(v));
        }
        if value != 0.0 {
            let b = bytes.as_mut_bytes();
            match dtype {
                DType::F32 => fill::<f32>(b, value),
                DType::BF16 => fill::<half::bf16>(b, value),
                DType::F16 => fill::<half::f16>(b, value),
                DType::U8 => fill::<u8>(b, value),
                DType::I32 => fill::<i32>(b, value),
                DType::I64 => fill::<i64>(b, value),
                DType::F64 => fill::<f64>(b, value),
            }
        }
        Self::from_host(HostStorage::Owned(bytes), dtype, shape)
    }

    /// A contiguous host tensor of `shape` filled with 0.
    pub fn zeros(shape: &[usize], dtype: DType) -> Self {
        Self::full(0.0, shape, dtype)
    }
    /// A contiguous host tensor of `shape` filled with 1.
    pub fn ones(shape: &[usize], dtype: DType) -> Self {
        Self::full(1.0, shape, dtype)
    }

    /// A 1-d host tensor `start, start+step, ...` below `end` (above it for a negative step).
    pub fn arange<T: Element>(start: f64, end: f64, step: f64) -> Result<Self> {
        if step == 0.0 || !step.is_finite() || !start.is_finite() || !end.is_finite() {
            return Err(TensorError::InvalidShape {
                op: "arange",
                shape: vec![],
                msg: format!("invalid range {start}..{end} step {step}"),
            });
        }
        let n = ((end - start) / step).ceil().max(0.0) as usize;
        let data: Vec<T> = (0..n)
            .map(|i| T::from_f64(start + i as f64 * step))
            .collect();
        Self::from_vec(data, &[n])
    }

    /// Size of each dim, outermost first.
    pub fn shape(&self) -> &[usize] {
        self.layout.shape()
    }
    /// Shape, strides and offset of this view into its storage.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }
    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    /// Number of elements of the view (not of the storage).
    pub fn numel(&self) -> usize {
        self.layout.numel()
    }
    /// Number of dims.
    pub fn rank(&self) -> usize {
        self.layout.rank()
    }
    /// Whether the elements sit in row-major order with no gaps, starting at the layout offset.
    pub fn is_contiguous(&self) -> bool {
        self.layout.is_contiguous()
    }
    /// The shared storage (for kernels that read it directly).
    pub fn storage(&self) -> &Arc<HostStorage> {
        &self.storage
    }

    fn view(&self, layout: Layout) -> Tensor {
        Tensor {
            storage: self.storage.clone(),
            layout,
            dtype: self.dtype,
        }
    }

    /// The same elements with another shape: a view when the strides allow it, else a copy.
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        match self.layout.reshape(shape) {
            Ok(l) => Ok(self.view(l)),
            Err(TensorError::InvalidShape { .. }) => self.contiguous()?.reshape(shape),
            Err(e) => Err(e),
        }
    }
    /// A view with the dims reordered.
    pub fn permute(&self, dims: &[usize]) -> Result<Tensor> {
        Ok(self.view(self.layout.permute(dims)?))
    }
    /// A view of `len` elements from `start` along `dim`.
    pub fn narrow(&self, dim: usize, start: usize, len: usize) -> Result<Tensor> {
        Ok(self.view(self.layout.narrow(dim, start, len)?))
    }
    /// A view broadcast to `shape` (stride 0 along stretched dims).
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Tensor> {
        Ok(self.view(self.layout.broadcast_to(shape)?))
    }
    /// A view without `dim`, which must be of size 1.
    pub fn squeeze(&self, dim: usize) -> Result<Tensor> {
        Ok(self.view(self.layout.squeeze(dim)?))
    }
    /// A view with a new dim of size 1 at position `dim` (at most the rank).
    pub fn unsqueeze(&self, dim: usize) -> Result<Tensor> {
        Ok(self.view(self.layout.unsqueeze(dim)?))
    }

    /// The elements in row-major order as bytes, copied from wherever they are.
    pub fn to_contiguous_bytes(&self) -> Result<Vec<u8>> {
        Ok(gather_bytes(
            self.storage.as_bytes(),
            &self.layout,
            self.dtype.size(),
        ))
    }

    /// A contiguous tensor (`self` again, sharing storage, when it already is).
    pub fn contiguous(&self) -> Result<Tensor> {
        if self.is_contiguous() && self.layout.offset() == 0 {
            return Ok(self.clone());
        }
        let bytes = self.to_contiguous_bytes()?;
        Ok(Self::from_host(
            HostStorage::Owned(AlignedBytes::copy_from(&bytes)),
            self.dtype,
            self.shape(),
        ))
    }

    fn check_dtype<T: Element>(&self, op: &'static str) -> Result<()> {
        if T::DTYPE != self.dtype {
            return Err(TensorError::DTypeMismatch {
                op,
                expected: T::DTYPE,
                actual: self.dtype,
            });
        }
        Ok(())
    }

    /// The elements in row-major order, copied to a `Vec`; `T` must match the dtype.
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        self.check_dtype::<T>("to_vec")?;
        if let Ok(s) = self.as_slice::<T>() {
            return Ok(s.to_vec());
        }
        Ok(bytemuck::pod_collect_to_vec(&self.to_contiguous_bytes()?))
    }

    /// The elements in row-major order converted to f32, whatever the dtype (as numpy's
    /// `astype(float32)`: f64 rounds to nearest, f16 / bf16 / u8 are exact, large integers
    /// round).
    pub fn to_f32_vec(&self) -> Result<Vec<f32>> {
        fn conv<T: Element>(t: &Tensor) -> Result<Vec<f32>> {
            Ok(t.to_vec::<T>()?
                .into_iter()
                .map(|x| x.to_f64() as f32)
                .collect())
        }
        match self.dtype {
            DType::F32 => self.to_vec::<f32>(),
            DType::F64 => conv::<f64>(self),
            DType::F16 => conv::<half::f16>(self),
            DType::BF16 => conv::<half::bf16>(self),
            DType::U8 => conv::<u8>(self),
            DType::I32 => conv::<i32>(self),
            DType::I64 => conv::<i64>(self),
        }
    }

    /// Borrows the elements of a contiguous, suitably aligned host tensor without a copy.
    pub fn as_slice<T: Element>(&self) -> Result<&[T]> {
        self.check_dtype::<T>("as_slice")?;
        let h = &*self.storage;
        if !self.is_contiguous() {
            return Err(TensorError::InvalidShape {
                op: "as_slice",
                shape: self.shape().to_vec(),
                msg: "not contiguous: call contiguous() first".into(),
            });
        }
        let size = self.dtype.size();
        let start = self.layout.offset() * size;
        let bytes = &h.as_bytes()[start..start + self.numel() * size];
        bytemuck::try_cast_slice(bytes).map_err(|e| TensorError::InvalidShape {
            op: "as_slice",
            shape: self.shape().to_vec(),
            msg: format!("storage cannot be borrowed as {}: {e}", self.dtype),
        })
    }
}

/// Copies the elements a layout selects, in row-major order; whole rows at a time when the
/// last dim is dense.
fn gather_bytes(src: &[u8], layout: &Layout, elem: usize) -> Vec<u8> {
    let numel = layout.numel();
    let mut out = Vec::with_capacity(numel * elem);
    if numel == 0 {
        return out;
    }
    if layout.is_contiguous() {
        let start = layout.offset() * elem;
        out.extend_from_slice(&src[start..start + numel * elem]);
        return out;
    }
    let rank = layout.rank();
    let last = layout.shape()[rank - 1];
    let rows = layout.narrow(rank - 1, 0, 1);
    if let (1, Ok(rows)) = (layout.strides()[rank - 1], rows) {
        for i in rows.indices() {
            out.extend_from_slice(&src[i * elem..(i + last) * elem]);
        }
    } else {
        for i in layout.indices() {
            out.extend_from_slice(&src[i * elem..(i + 1) * elem]);
        }
    }
    out
}
