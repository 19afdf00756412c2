//! Collectives on CUDA device buffers, transport apart from algorithm (gloo / NCCL style): one
//! trait, [`DeviceAllReduce`], implemented by
//!
//! - [`RingViaHost`]: this crate's TCP ring, the buffer staged through pinned host memory
//!   (device → host, ring all-reduce, host → device); works wherever the ring does;
//! - [`NcclComm`]: NCCL on the ranks' devices, libnccl loaded at run time. Its unique id is made
//!   by rank 0 and sent to the others through the job's authenticated [`Communicator`], so no
//!   socket or port of ours is added (NCCL then opens its own, as it always does).
//!
//! Which one a job uses is [`select_backend`] (`comm_backend: ring | nccl | auto`), pure logic
//! that builds without CUDA. Everything else here needs the crate's `cuda` feature (cudarc with
//! `dynamic-loading`, so building needs no GPU, toolkit or NCCL, and a run without them gets an
//! error, never a panic).
//!
//! [`Communicator`]: crate::Communicator

mod select;

pub use select::{
    BackendError, CommBackend, CommBackendChoice, RankCapability, RankInfo, UnknownBackend,
    select_backend,
};

#[cfg(feature = "cuda")]
mod bootstrap;
#[cfg(feature = "cuda")]
mod host_ring;
#[cfg(feature = "cuda")]
mod nccl;
#[cfg(feature = "cuda")]
mod nccl_lib;

#[cfg(feature = "cuda")]
pub use bootstrap::Bootstrap;
/// The cudarc this crate's device types come from (use it to name `CudaViewMut`, `CudaStream`).
#[cfg(feature = "cuda")]
pub use cudarc;
#[cfg(feature = "cuda")]
pub use host_ring::RingViaHost;
#[cfg(feature = "cuda")]
pub use nccl::NcclComm;

/// Whether NCCL can be used here: its version (`2.27.3`) and the library name it was loaded by,
/// or why not — `NCCL is not available: libnccl.so.2 could not be loaded (<cause>); use -o
/// comm_backend=ring`. Loads libnccl on the first call (never before); needs no GPU.
pub fn nccl_probe() -> Result<String, String> {
    #[cfg(feature = "cuda")]
    {
        nccl_lib::nccl().map(|n| format!("NCCL {} ({})", n.version, n.name))
    }
    #[cfg(not(feature = "cuda"))]
    {
        Err(
            "NCCL is not available: this build of ringdet-collective has no CUDA support \
             (its `cuda` feature is off); use -o comm_backend=ring"
                .to_string(),
        )
    }
}

/// A key of CUDA device `ordinal` (folded from its UUID): two ranks get the same key exactly
/// when they use the same GPU, on any host. Opens the device's primary context; an error (never
/// a panic) without a driver or device, or without the `cuda` feature.
pub fn device_key(ordinal: usize) -> Result<i64, String> {
    #[cfg(feature = "cuda")]
    {
        let ctx = nccl::open_context(ordinal)?;
        uuid_key(&ctx).map_err(|e| format!("cuda:{ordinal}: reading the UUID: {e}"))
    }
    #[cfg(not(feature = "cuda"))]
    {
        Err(format!(
            "cuda:{ordinal}: this build of ringdet-collective has no CUDA support (its `cuda` \
             feature is off)"
        ))
    }
}

/// FNV-1a over the device's 16 UUID bytes.
#[cfg(feature = "cuda")]
fn uuid_key(ctx: &cudarc::driver::CudaContext) -> Result<i64, cudarc::driver::DriverError> {
    let uuid = ctx.uuid()?;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in uuid.bytes {
        h ^= u64::from(b as u8);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    Ok(h as i64)
}

/// Why a device collective failed.
#[cfg(feature = "cuda")]
#[derive(Debug, thiserror::Error)]
pub enum DeviceCommError {
    /// libnccl cannot be loaded, or some rank could not load it (the message says which).
    #[error("{0}")]
    NcclUnavailable(String),
    /// An NCCL call failed.
    #[error("rank {rank}: NCCL {op}: {msg}")]
    Nccl {
        /// This rank.
        rank: usize,
        /// The call.
        op: &'static str,
        /// NCCL's error name and last error text.
        msg: String,
    },
    /// A CUDA driver call (copy, pinned allocation, context) failed.
    #[error("rank {rank}: CUDA {op}: {msg}")]
    Cuda {
        /// This rank.
        rank: usize,
        /// The call.
        op: &'static str,
        /// The driver's message.
        msg: String,
    },
    /// The host collective (the ring, or the exchange of NCCL's id) failed.
    #[error(transparent)]
    Comm(#[from] crate::CommError),
    /// The arguments do not fit (a buffer on another device, a root out of range).
    #[error("invalid argument: {0}")]
    Invalid(String),
}

/// One rank's collectives on `f32` device buffers. Operations are enqueued on `stream` (NCCL) or
/// complete before returning (the ring through host memory); either way a later use of the
/// buffer on `stream` sees the result. Every rank must call the same operations in the same
/// order, as with [`Communicator`](crate::Communicator).
#[cfg(feature = "cuda")]
pub trait DeviceAllReduce {
    /// Sums `buf` over all ranks, in place.
    fn all_reduce_sum_f32(
        &mut self,
        buf: &mut cudarc::driver::CudaViewMut<'_, f32>,
        stream: &std::sync::Arc<cudarc::driver::CudaStream>,
    ) -> Result<(), DeviceCommError>;
    /// Copies rank `root`'s `buf` into every rank's `buf`.
    fn broadcast_f32(
        &mut self,
        buf: &mut cudarc::driver::CudaViewMut<'_, f32>,
        root: usize,
        stream: &std::sync::Arc<cudarc::driver::CudaStream>,
    ) -> Result<(), DeviceCommError>;
    /// This rank.
    fn rank(&self) -> usize;
    /// Number of ranks.
    fn world_size(&self) -> usize;
    /// Which backend this is.
    fn backend(&self) -> CommBackend;
}

#[cfg(test)]
mod tests {
    #[test]
    fn without_nccl_the_probe_is_an_error_not_a_panic() {
        // No libnccl on this machine (nor the `cuda` feature in some builds): an error that says
        // what to do instead.
        if let Err(e) = super::nccl_probe() {
            assert!(e.starts_with("NCCL is not available: "), "{e}");
            assert!(e.ends_with("use -o comm_backend=ring"), "{e}");
        }
    }
}
