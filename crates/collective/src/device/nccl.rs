//! [`NcclComm`]: NCCL behind [`DeviceAllReduce`].

use super::nccl_lib::{self, FLOAT32, Nccl, RawComm, SUCCESS, SUM, UNIQUE_ID_BYTES, UniqueId};
use super::{Bootstrap, CommBackend, DeviceAllReduce, DeviceCommError};
use cudarc::driver::{CudaContext, CudaStream, CudaViewMut, DevicePtrMut};
use std::ffi::{c_int, c_void};
use std::sync::Arc;

/// One rank's NCCL communicator on one CUDA device.
pub struct NcclComm {
    comm: RawComm,
    lib: &'static Nccl,
    ctx: Arc<CudaContext>,
    rank: usize,
    world_size: usize,
}

// SAFETY: an NCCL communicator may be used from any thread, one call at a time (`&mut self`).
unsafe impl Send for NcclComm {}

impl NcclComm {
    /// Joins every rank of `boot` into one NCCL communicator on CUDA device `ordinal` (its
    /// primary context, the one the kernels use). Collective: every rank calls it at the same
    /// point. First each rank loads libnccl and opens its device, and the ranks exchange whether
    /// that worked, so a rank without NCCL or without its GPU fails every rank with its name
    /// instead of leaving the others waiting in NCCL; then rank 0's `ncclGetUniqueId` travels to
    /// the others over `boot` (the job's authenticated connections: no new port of ours), then
    /// `ncclCommInitRank`. Without libnccl: `NCCL is not available: libnccl.so.2 could not be
    /// loaded (<cause>); use -o comm_backend=ring`, never a panic.
    pub fn new(boot: &mut impl Bootstrap, ordinal: usize) -> Result<NcclComm, DeviceCommError> {
        let (rank, world_size) = (boot.rank(), boot.world_size());
        let ready = nccl_lib::nccl()
            .map_err(DeviceCommError::NcclUnavailable)
            .and_then(|lib| {
                let ctx = open_device(rank, ordinal)?;
                let key = super::uuid_key(&ctx).map_err(|e| DeviceCommError::Cuda {
                    rank,
                    op: "reading the device's UUID",
                    msg: e.to_string(),
                })?;
                Ok((lib, ctx, key))
            });
        // Byte 0: READY / NO_NCCL / NO_DEVICE; then the device key (8 bytes) when ready.
        let mine = match &ready {
            Ok((_, _, key)) => [&[READY][..], &key.to_le_bytes()].concat(),
            Err(DeviceCommError::NcclUnavailable(_)) => vec![NO_NCCL],
            Err(_) => vec![NO_DEVICE],
        };
        let all = boot.all_gather_bytes(&mine)?;
        let (lib, ctx, _) = match ready {
            Err(DeviceCommError::NcclUnavailable(why)) => {
                return Err(DeviceCommError::NcclUnavailable(format!(
                    "rank {rank}: {why}"
                )));
            }
            Err(e) => return Err(e),
            Ok(ready) => ready,
        };
        let ranks_with = |code: u8| -> Vec<String> {
            all.iter()
                .enumerate()
                .filter(|(_, v)| v.first() == Some(&code))
                .map(|(r, _)| r.to_string())
                .collect()
        };
        let (no_nccl, no_device) = (ranks_with(NO_NCCL), ranks_with(NO_DEVICE));
        if !no_nccl.is_empty() || !no_device.is_empty() {
            let mut parts = Vec::new();
            if !no_nccl.is_empty() {
                parts.push(format!(
                    "NCCL is not available on rank(s) {}",
                    no_nccl.join(", ")
                ));
            }
            if !no_device.is_empty() {
                parts.push(format!(
                    "rank(s) {} cannot open their CUDA device",
                    no_device.join(", ")
                ));
            }
            return Err(DeviceCommError::NcclUnavailable(format!(
                "{} (their logs say why); use -o comm_backend=ring",
                parts.join(", ")
            )));
        }
        let keys = all.iter().map(|v| {
            v.get(1..9)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(i64::from_le_bytes)
        });
        let shared = super::select::shared_devices(keys);
        if !shared.is_empty() {
            let groups: Vec<String> = shared.iter().map(|g| g.join(", ")).collect();
            return Err(DeviceCommError::Invalid(format!(
                "ranks {} share one GPU and NCCL needs a GPU of its own for every rank \
                 (it refuses with \"Duplicate GPU detected\"); use -o comm_backend=ring",
                groups.join("; ranks ")
            )));
        }
        let nccl_err = |op, code| DeviceCommError::Nccl {
            rank,
            op,
            msg: lib.describe(code, std::ptr::null_mut()),
        };
        // Byte 0: whether rank 0 made an id; then the id.
        let mut packet = [0u8; 1 + UNIQUE_ID_BYTES];
        let mut made = Ok(());
        if rank == 0 {
            let mut id = UniqueId {
                internal: [0; UNIQUE_ID_BYTES],
            };
            // SAFETY: writes the 128-byte id.
            match unsafe { (lib.get_unique_id)(&mut id) } {
                SUCCESS => {
                    packet[0] = 1;
                    packet[1..].copy_from_slice(&id.internal);
                }
                code => made = Err(nccl_err("ncclGetUniqueId", code)),
            }
        }
        boot.broadcast_bytes(&mut packet, 0)?;
        made?;
        if packet[0] != 1 {
            return Err(DeviceCommError::NcclUnavailable(
                "rank 0 could not make the NCCL unique id (its log says why)".into(),
            ));
        }
        let mut id = UniqueId {
            internal: [0; UNIQUE_ID_BYTES],
        };
        id.internal.copy_from_slice(&packet[1..]);
        ctx.bind_to_thread().map_err(|e| DeviceCommError::Cuda {
            rank,
            op: "binding the context",
            msg: e.to_string(),
        })?;
        let (n, r) = (to_int(world_size)?, to_int(rank)?);
        let mut comm: RawComm = std::ptr::null_mut();
        // SAFETY: `comm` receives the new communicator; the id is the one every rank got.
        let code = unsafe { (lib.comm_init_rank)(&mut comm, n, id, r) };
        if code != SUCCESS {
            return Err(nccl_err("ncclCommInitRank", code));
        }
        Ok(NcclComm {
            comm,
            lib,
            ctx,
            rank,
            world_size,
        })
    }

    /// The NCCL version in use, e.g. `2.27.3`.
    pub fn version(&self) -> &str {
        &self.lib.version
    }

    fn check_stream(&self, stream: &CudaStream) -> Result<(), DeviceCommError> {
        if stream.context().ordinal() != self.ctx.ordinal() {
            return Err(DeviceCommError::Invalid(format!(
                "rank {}: a stream of CUDA device {} given to the NCCL communicator of device {}",
                self.rank,
                stream.context().ordinal(),
                self.ctx.ordinal()
            )));
        }
        self.ctx
            .bind_to_thread()
            .map_err(|e| DeviceCommError::Cuda {
                rank: self.rank,
                op: "binding the context",
                msg: e.to_string(),
            })
    }

    fn call(&self, op: &'static str, f: impl FnOnce() -> c_int) -> Result<(), DeviceCommError> {
        match f() {
            SUCCESS => Ok(()),
            code => Err(DeviceCommError::Nccl {
                rank: self.rank,
                op,
                msg: self.lib.describe(code, self.comm),
            }),
        }
    }
}

const READY: u8 = 1;
const NO_NCCL: u8 = 2;
const NO_DEVICE: u8 = 3;

/// The primary context of CUDA device `ordinal`, or why not (cudarc panics when libcuda is
/// missing, so that is asked first).
pub(crate) fn open_context(ordinal: usize) -> Result<Arc<CudaContext>, String> {
    // SAFETY: only tries to dlopen libcuda by name.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(format!(
            "cuda:{ordinal}: libcuda.so (the NVIDIA driver) was not found"
        ));
    }
    CudaContext::new(ordinal).map_err(|e| format!("cuda:{ordinal}: {e}"))
}

fn open_device(rank: usize, ordinal: usize) -> Result<Arc<CudaContext>, DeviceCommError> {
    open_context(ordinal).map_err(|msg| DeviceCommError::Cuda {
        rank,
        op: "opening the device",
        msg,
    })
}

fn to_int(v: usize) -> Result<c_int, DeviceCommError> {
    c_int::try_from(v).map_err(|_| DeviceCommError::Invalid(format!("{v} does not fit NCCL's int")))
}

impl DeviceAllReduce for NcclComm {
    fn all_reduce_sum_f32(
        &mut self,
        buf: &mut CudaViewMut<'_, f32>,
        stream: &Arc<CudaStream>,
    ) -> Result<(), DeviceCommError> {
        self.check_stream(stream)?;
        let count = buf.len();
        let (ptr, _record) = buf.device_ptr_mut(stream);
        let (comm, s) = (self.comm, stream.cu_stream() as *mut c_void);
        // SAFETY: in place on `count` f32 of this device, enqueued on `stream`; `_record` marks
        // the buffer written by `stream` once the call is enqueued.
        self.call("ncclAllReduce", || unsafe {
            (self.lib.all_reduce)(
                ptr as *const c_void,
                ptr as *mut c_void,
                count,
                FLOAT32,
                SUM,
                comm,
                s,
            )
        })
    }

    fn broadcast_f32(
        &mut self,
        buf: &mut CudaViewMut<'_, f32>,
        root: usize,
        stream: &Arc<CudaStream>,
    ) -> Result<(), DeviceCommError> {
        if root >= self.world_size {
            return Err(DeviceCommError::Invalid(format!(
                "broadcast root {root} with {} ranks",
                self.world_size
            )));
        }
        self.check_stream(stream)?;
        let count = buf.len();
        let root = to_int(root)?;
        let (ptr, _record) = buf.device_ptr_mut(stream);
        let (comm, s) = (self.comm, stream.cu_stream() as *mut c_void);
        // SAFETY: as in `all_reduce_sum_f32`.
        self.call("ncclBroadcast", || unsafe {
            (self.lib.broadcast)(
                ptr as *const c_void,
                ptr as *mut c_void,
                count,
                FLOAT32,
                root,
                comm,
                s,
            )
        })
    }

    fn rank(&self) -> usize {
        self.rank
    }
    fn world_size(&self) -> usize {
        self.world_size
    }
    fn backend(&self) -> CommBackend {
        CommBackend::Nccl
    }
}

impl Drop for NcclComm {
    fn drop(&mut self) {
        if self.ctx.bind_to_thread().is_ok() {
            // SAFETY: the communicator is ours and used by no one after this.
            let code = unsafe { (self.lib.comm_destroy)(self.comm) };
            if code != SUCCESS {
                tracing::warn!(
                    rank = self.rank,
                    "ncclCommDestroy: {}",
                    self.lib.describe(code, std::ptr::null_mut())
                );
            }
        }
    }
}
