//! The one element-type tag of the workspace: what a tensor or safetensors entry holds, what a
//! collective carries (`ringdet-collective` re-exports it) and what a kernel computes in
//! (`ringdet_kernels::Real::DTYPE`), and the Rust types that stand for them.

use std::fmt;

/// The element type of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// `f32`
    F32,
    /// `half::bf16`
    BF16,
    /// `half::f16`
    F16,
    /// `u8`
    U8,
    /// `i32`
    I32,
    /// `i64`
    I64,
    /// `f64` (gradient checks and exactness proofs; collectives of f64 sums)
    F64,
}

impl DType {
    /// Every dtype, in declaration order.
    pub const ALL: [DType; 7] = [
        DType::F32,
        DType::BF16,
        DType::F16,
        DType::U8,
        DType::I32,
        DType::I64,
        DType::F64,
    ];

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::BF16 | DType::F16 => 2,
            DType::U8 => 1,
            DType::I64 | DType::F64 => 8,
        }
    }

    /// The dtype's name in the safetensors header (`F32`, `BF16`, ...).
    pub fn safetensors_name(self) -> &'static str {
        match self {
            DType::F32 => "F32",
            DType::BF16 => "BF16",
            DType::F16 => "F16",
            DType::U8 => "U8",
            DType::I32 => "I32",
            DType::I64 => "I64",
            DType::F64 => "F64",
        }
    }

    /// Parses a safetensors dtype name; `None` for dtypes this crate does not hold.
    pub fn from_safetensors_name(name: &str) -> Option<DType> {
        DType::ALL
            .into_iter()
            .find(|d| d.safetensors_name() == name)
    }

    /// Lower-case name (`f32`, `bf16`, ...), as [`fmt::Display`] prints it.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::BF16 => "bf16",
            DType::F16 => "f16",
            DType::U8 => "u8",
            DType::I32 => "i32",
            DType::I64 => "i64",
            DType::F64 => "f64",
        }
    }

    /// Parses a name as printed by [`DType::name`] (also `float`, `half`, ...).
    pub fn parse(name: &str) -> Option<DType> {
        Some(match name {
            "f32" | "float" | "float32" => DType::F32,
            "f64" | "double" | "float64" => DType::F64,
            "i32" | "int32" | "int" => DType::I32,
            "i64" | "int64" => DType::I64,
            "u8" | "uint8" => DType::U8,
            "bf16" | "bfloat16" => DType::BF16,
            "f16" | "half" | "float16" => DType::F16,
            _ => return None,
        })
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A Rust type that is the element of some [`DType`].
pub trait Element: bytemuck::Pod + Send + Sync + 'static {
    /// The dtype this type stands for.
    const DTYPE: DType;
    /// Converts a small integer or float (used by `full`, `arange`, the RNG) into this type.
    fn from_f64(v: f64) -> Self;
    /// Converts this element to f64 (exact for every dtype but i64 beyond 2^53).
    fn to_f64(self) -> f64;
}

macro_rules! element {
    ($t:ty, $d:expr, $from:expr, $to:expr) => {
        impl Element for $t {
            const DTYPE: DType = $d;
            fn from_f64(v: f64) -> Self {
                $from(v)
            }
            fn to_f64(self) -> f64 {
                $to(self)
            }
        }
    };
}

element!(f32, DType::F32, |v| v as f32, |x| x as f64);
element!(f64, DType::F64, |v| v, |x| x);
element!(u8, DType::U8, |v| v as u8, |x| x as f64);
element!(i32, DType::I32, |v| v as i32, |x| x as f64);
element!(i64, DType::I64, |v| v as i64, |x| x as f64);
element!(
    half::bf16,
    DType::BF16,
    half::bf16::from_f64,
    half::bf16::to_f64
);
element!(
    half::f16,
    DType::F16,
    half::f16::from_f64,
    half::f16::to_f64
);
