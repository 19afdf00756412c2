//! The element types a collective can carry and the reductions defined on them.

use half::{bf16, f16};

/// Reduction applied element-wise by [`all_reduce`](crate::Communicator::all_reduce) and
/// [`reduce_scatter`](crate::Communicator::reduce_scatter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    /// Sum.
    Sum,
    /// Sum divided by the world size (integer division for integer types).
    Avg,
    /// Maximum.
    Max,
    /// Minimum.
    Min,
}

/// Element type tags, used in messages and by `allreduce-perf`: the workspace's one `DType`
/// (defined by `ringdet-tensor`, shared with the kernels).
pub use ringdet_tensor::DType;

/// A type that collectives can carry: plain old data with the four reductions.
///
/// Reductions are element-wise, so their result does not depend on how a buffer is split into
/// frames: the same inputs and world size always give bit-identical results.
pub trait Element: bytemuck::Pod + Send + Sync + PartialEq + std::fmt::Debug + 'static {
    /// Tag of this type.
    const DTYPE: DType;
    /// `dst[i] = op(dst[i], src[i])` for `Sum`, `Max`, `Min` (`Avg` sums; see [`Element::divide`]).
    fn reduce(dst: &mut [Self], src: &[Self], op: ReduceOp);
    /// `dst[i] /= n`, the second half of `Avg`.
    fn divide(dst: &mut [Self], n: usize);
}

macro_rules! native_element {
    ($t:ty, $tag:expr, $add:expr, $div:expr) => {
        impl Element for $t {
            const DTYPE: DType = $tag;
            fn reduce(dst: &mut [Self], src: &[Self], op: ReduceOp) {
                let add: fn($t, $t) -> $t = $add;
                match op {
                    ReduceOp::Sum | ReduceOp::Avg => {
                        dst.iter_mut().zip(src).for_each(|(d, s)| *d = add(*d, *s))
                    }
                    ReduceOp::Max => dst
                        .iter_mut()
                        .zip(src)
                        .for_each(|(d, s)| *d = if *s > *d { *s } else { *d }),
                    ReduceOp::Min => dst
                        .iter_mut()
                        .zip(src)
                        .for_each(|(d, s)| *d = if *s < *d { *s } else { *d }),
                }
            }
            fn divide(dst: &mut [Self], n: usize) {
                let div: fn($t, usize) -> $t = $div;
                dst.iter_mut().for_each(|d| *d = div(*d, n));
            }
        }
    };
}

native_element!(f32, DType::F32, |a, b| a + b, |a, n| a / n as f32);
native_element!(f64, DType::F64, |a, b| a + b, |a, n| a / n as f64);
native_element!(i32, DType::I32, |a, b| a.wrapping_add(b), |a, n| a / n
    as i32);
native_element!(i64, DType::I64, |a, b| a.wrapping_add(b), |a, n| a / n
    as i64);
native_element!(
    u8,
    DType::U8,
    |a, b| a.wrapping_add(b),
    |a, n| (a as usize / n) as u8
);
native_element!(
    bf16,
    DType::BF16,
    |a, b| bf16::from_f32(a.to_f32() + b.to_f32()),
    |a, n| bf16::from_f32(a.to_f32() / n as f32)
);
native_element!(
    f16,
    DType::F16,
    |a, b| f16::from_f32(a.to_f32() + b.to_f32()),
    |a, n| f16::from_f32(a.to_f32() / n as f32)
);
