//! numpy arrays as pickled, to and from the crate's [`DType`]: the type codes, byte order and
//! memory order numpy writes, and the copy into an aligned host [`Tensor`].
//!
//! Paddle saves a bfloat16 tensor as a numpy `uint16` array (numpy has no bfloat16), so the
//! type code `u2` reads as [`DType::BF16`] and [`DType::BF16`] is written as `u2`.

use super::object::{Arena, ArrayState, ByteSrc, Obj};
use crate::{DType, Tensor};

/// The dtype of numpy type code `descr` (`f4`, `<f4`, ...); `None` for one this crate lacks.
pub fn dtype_for(descr: &str) -> Option<DType> {
    Some(match descr.trim_start_matches(['<', '>', '|', '=']) {
        "f4" => DType::F32,
        "f8" => DType::F64,
        "f2" => DType::F16,
        "u2" => DType::BF16,
        "i4" => DType::I32,
        "i8" => DType::I64,
        "u1" | "b1" => DType::U8,
        _ => return None,
    })
}

/// The numpy type code and byte-order character `dtype` is written with.
pub fn descr_for(dtype: DType) -> (&'static str, &'static str) {
    match dtype {
        DType::F32 => ("f4", "<"),
        DType::F64 => ("f8", "<"),
        DType::F16 => ("f2", "<"),
        DType::BF16 => ("u2", "<"),
        DType::I32 => ("i4", "<"),
        DType::I64 => ("i8", "<"),
        DType::U8 => ("u1", "|"),
    }
}

/// The bytes of a bytes object.
pub fn bytes<'a>(src: &'a ByteSrc, input: &'a [u8]) -> &'a [u8] {
    match src {
        ByteSrc::File(r) => &input[r.clone()],
        ByteSrc::Owned(v) => v,
    }
}

/// What an array became.
pub enum Converted {
    /// A tensor of a dtype this crate holds.
    Tensor(Tensor),
    /// An array the crate cannot hold (its dtype, or an object array), said in words.
    Unsupported(String),
}

/// The tensor an array state describes; `Err` when the state contradicts itself (the data
/// does not hold `shape` elements: a corrupt file).
pub fn convert(arena: &Arena, a: &ArrayState, input: &[u8]) -> Result<Converted, String> {
    let Obj::DType(dt) = arena.get(a.dtype) else {
        return Err("array dtype is not a numpy dtype".into());
    };
    if dt.structured {
        return Ok(Converted::Unsupported(format!(
            "structured numpy dtype {}",
            dt.descr
        )));
    }
    let Some(dtype) = dtype_for(&dt.descr) else {
        return Ok(Converted::Unsupported(format!(
            "numpy dtype {} (readable: f2 f4 f8 i4 i8 u1 b1, u2 as bfloat16)",
            dt.descr
        )));
    };
    let data = match arena.get(a.data) {
        Obj::Bytes(b) => bytes(b, input),
        o => {
            return Ok(Converted::Unsupported(format!(
                "numpy array whose data is a {} (an object array)",
                o.kind()
            )));
        }
    };
    let numel = a
        .shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| format!("array shape {:?} overflows", a.shape))?;
    let want = numel.checked_mul(dtype.size());
    if want != Some(data.len()) {
        return Err(format!(
            "array of shape {:?} and dtype {} needs {} bytes, its data holds {}",
            a.shape,
            dt.descr,
            numel.saturating_mul(dtype.size()),
            data.len()
        ));
    }
    let mut owned = crate::storage::AlignedBytes::copy_from(data);
    if dt.byteorder == '>' && dtype.size() > 1 {
        owned
            .as_mut_bytes()
            .chunks_exact_mut(dtype.size())
            .for_each(<[u8]>::reverse);
    }
    let storage = crate::HostStorage::Owned(owned);
    let t = if a.fortran && a.shape.len() > 1 {
        // Column-major data is the row-major data of the reversed shape, transposed.
        let rev: Vec<usize> = a.shape.iter().rev().copied().collect();
        let dims: Vec<usize> = (0..rev.len()).rev().collect();
        Tensor::from_host_storage(storage, dtype, &rev)
            .and_then(|t| t.permute(&dims))
            .and_then(|t| t.contiguous())
    } else {
        Tensor::from_host_storage(storage, dtype, &a.shape)
    };
    t.map(Converted::Tensor).map_err(|e| e.to_string())
}

/// A numpy scalar in words, for the report of what was not kept.
pub fn describe_scalar(arena: &Arena, dtype: usize, data: usize, input: &[u8]) -> String {
    let (Obj::DType(dt), Obj::Bytes(b)) = (arena.get(dtype), arena.get(data)) else {
        return "numpy scalar".into();
    };
    let b = bytes(b, input);
    let value = match (dtype_for(&dt.descr), b.len()) {
        (Some(DType::F64), 8) => b.try_into().map(|a| f64::from_le_bytes(a).to_string()).ok(),
        (Some(DType::F32), 4) => b.try_into().map(|a| f32::from_le_bytes(a).to_string()).ok(),
        (Some(DType::I64), 8) => b.try_into().map(|a| i64::from_le_bytes(a).to_string()).ok(),
        (Some(DType::I32), 4) => b.try_into().map(|a| i32::from_le_bytes(a).to_string()).ok(),
        _ => None,
    };
    match value {
        Some(v) => format!("numpy {} scalar {v}", dt.descr),
        None => format!("numpy {} scalar", dt.descr),
    }
}
