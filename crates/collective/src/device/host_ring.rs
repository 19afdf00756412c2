//! [`RingViaHost`]: this crate's TCP ring behind [`DeviceAllReduce`], through pinned host memory.

use super::{CommBackend, DeviceAllReduce, DeviceCommError};
use crate::{Communicator, ReduceOp};
use cudarc::driver::{CudaContext, CudaStream, CudaViewMut, PinnedHostSlice};
use std::borrow::BorrowMut;
use std::sync::Arc;

/// The ring on device buffers: device → pinned host, ring collective, host → device. Each call
/// completes before it returns (it synchronises `stream` after each copy). The staging buffer is
/// allocated on first use and grows to the largest buffer seen; it is plain page-locked memory,
/// not cudarc's default write-combined kind, which the host reads very slowly (the ring reads
/// and adds every element). `C` is the communicator, owned or lent (`&mut Communicator`).
pub struct RingViaHost<C: BorrowMut<Communicator> = Communicator> {
    comm: C,
    staging: Option<PinnedHostSlice<f32>>,
}

impl<C: BorrowMut<Communicator>> RingViaHost<C> {
    /// Wraps a connected communicator.
    pub fn new(comm: C) -> RingViaHost<C> {
        RingViaHost {
            comm,
            staging: None,
        }
    }

    /// The communicator back.
    pub fn into_inner(self) -> C {
        self.comm
    }
}

fn cuda_err(rank: usize) -> impl Fn(cudarc::driver::DriverError) -> DeviceCommError {
    move |e| DeviceCommError::Cuda {
        rank,
        op: "staging through pinned memory",
        msg: e.to_string(),
    }
}

/// `staging`, (re)allocated in `ctx` when it is missing, too small or of another device, as a
/// host slice of `len` elements.
fn staging<'a>(
    staging: &'a mut Option<PinnedHostSlice<f32>>,
    ctx: &Arc<CudaContext>,
    len: usize,
    err: impl Fn(cudarc::driver::DriverError) -> DeviceCommError,
) -> Result<&'a mut [f32], DeviceCommError> {
    let fits = staging
        .as_ref()
        .is_some_and(|s| s.len() >= len && s.context().ordinal() == ctx.ordinal());
    if !fits {
        *staging = None;
        // SAFETY: the memory is uninitialised, and every element read is first written (the
        // device copy fills `..len` before the ring reads it); any bits are a valid f32.
        // Flags 0: page-locked, cached (not write-combined).
        *staging =
            Some(unsafe { ctx.alloc_pinned_with_flags::<f32>(len.max(1), 0) }.map_err(&err)?);
    }
    match staging.as_mut() {
        Some(s) => Ok(&mut s.as_mut_slice().map_err(&err)?[..len]),
        None => Err(DeviceCommError::Invalid("no staging buffer".into())),
    }
}

impl<C: BorrowMut<Communicator>> DeviceAllReduce for RingViaHost<C> {
    fn all_reduce_sum_f32(
        &mut self,
        buf: &mut CudaViewMut<'_, f32>,
        stream: &Arc<CudaStream>,
    ) -> Result<(), DeviceCommError> {
        let len = buf.len();
        let err = cuda_err(self.comm.borrow().rank());
        let host = staging(&mut self.staging, stream.context(), len, &err)?;
        // cudarc does not wait for copies to or from a plain slice (it counts on pageable memory,
        // where the driver copies synchronously); this one is page-locked, so the copies are
        // truly asynchronous: wait for each before the host reads or rewrites `host`.
        stream.memcpy_dtoh(&*buf, host).map_err(&err)?;
        stream.synchronize().map_err(&err)?;
        self.comm.borrow_mut().all_reduce(host, ReduceOp::Sum)?;
        stream.memcpy_htod(&*host, buf).map_err(&err)?;
        stream.synchronize().map_err(&err)?;
        Ok(())
    }

    fn broadcast_f32(
        &mut self,
        buf: &mut CudaViewMut<'_, f32>,
        root: usize,
        stream: &Arc<CudaStream>,
    ) -> Result<(), DeviceCommError> {
        let (rank, world) = (self.comm.borrow().rank(), self.comm.borrow().world_size());
        if root >= world {
            return Err(DeviceCommError::Invalid(format!(
                "broadcast root {root} with {world} ranks"
            )));
        }
        let len = buf.len();
        let err = cuda_err(self.comm.borrow().rank());
        let host = staging(&mut self.staging, stream.context(), len, &err)?;
        if rank == root {
            stream.memcpy_dtoh(&*buf, host).map_err(&err)?;
            stream.synchronize().map_err(&err)?;
        }
        self.comm.borrow_mut().broadcast(host, root)?;
        if rank != root {
            stream.memcpy_htod(&*host, buf).map_err(&err)?;
            stream.synchronize().map_err(&err)?;
        }
        Ok(())
    }

    fn rank(&self) -> usize {
        self.comm.borrow().rank()
    }
    fn world_size(&self) -> usize {
        self.comm.borrow().world_size()
    }
    fn backend(&self) -> CommBackend {
        CommBackend::Ring
    }
}
