//! Where the bytes of a tensor live: aligned host memory or a memory-mapped file. Device memory
//! is not a tensor's business: a kernel backend owns it (`ringdet_kernels::backend`).

use memmap2::Mmap;
use std::sync::Arc;

/// Host allocations are aligned to this many bytes, enough for any SIMD load.
pub const HOST_ALIGN: usize = 64;

#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(64))]
struct Block([u8; HOST_ALIGN]);

/// A zero-initialised host buffer whose start is aligned to [`HOST_ALIGN`] bytes.
#[derive(Clone)]
pub struct AlignedBytes {
    blocks: Vec<Block>,
    len: usize,
}

impl AlignedBytes {
    /// `len` zero bytes.
    pub fn zeroed(len: usize) -> Self {
        AlignedBytes {
            blocks: vec![Block([0; HOST_ALIGN]); len.div_ceil(HOST_ALIGN)],
            len,
        }
    }
    /// A copy of `bytes`.
    pub fn copy_from(bytes: &[u8]) -> Self {
        let mut out = Self::zeroed(bytes.len());
        out.as_mut_bytes().copy_from_slice(bytes);
        out
    }
    /// The `len` bytes, starting on a [`HOST_ALIGN`] boundary.
    pub fn as_bytes(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.blocks)[..self.len]
    }
    /// The `len` bytes, writable, starting on a [`HOST_ALIGN`] boundary.
    pub fn as_mut_bytes(&mut self) -> &mut [u8] {
        &mut bytemuck::cast_slice_mut(&mut self.blocks)[..self.len]
    }
}

/// Host bytes: owned and aligned, or a range of a shared read-only file mapping (zero copy).
#[derive(Clone)]
pub enum HostStorage {
    /// Bytes this storage owns.
    Owned(AlignedBytes),
    /// `len` bytes from byte `start` of a read-only file mapping shared with other tensors.
    Mapped {
        /// The whole file's mapping.
        map: Arc<Mmap>,
        /// First byte of this storage in the mapping.
        start: usize,
        /// Size in bytes.
        len: usize,
    },
}

impl HostStorage {
    /// The bytes, wherever they live.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            HostStorage::Owned(b) => b.as_bytes(),
            HostStorage::Mapped { map, start, len } => &map[*start..*start + *len],
        }
    }
}

impl HostStorage {
    /// Size in bytes.
    pub fn byte_len(&self) -> usize {
        self.as_bytes().len()
    }
}
