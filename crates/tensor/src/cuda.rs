//! CUDA device storage through cudarc, loaded at run time. Every entry point probes for the driver
//! first, so a machine without a GPU gets an error, never cudarc's panic.

use crate::{Result, TensorError, device::check_cuda};
use cudarc::driver::{CudaContext, CudaSlice, CudaStream};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

fn cuda_err(op: &'static str) -> impl Fn(cudarc::driver::DriverError) -> TensorError {
    move |e| TensorError::Cuda {
        op,
        msg: e.to_string(),
    }
}

/// The process-wide context of CUDA device `ordinal`, created on first use.
pub fn context(ordinal: usize) -> Result<Arc<CudaContext>> {
    static CONTEXTS: OnceLock<Mutex<HashMap<usize, Arc<CudaContext>>>> = OnceLock::new();
    let mut map = CONTEXTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(ctx) = map.get(&ordinal) {
        return Ok(ctx.clone());
    }
    check_cuda(ordinal)?;
    let ctx = CudaContext::new(ordinal).map_err(cuda_err("CudaContext::new"))?;
    map.insert(ordinal, ctx.clone());
    Ok(ctx)
}

/// Bytes on a CUDA device, with the stream that orders work on them.
pub struct CudaStorage {
    buf: CudaSlice<u8>,
    stream: Arc<CudaStream>,
    ordinal: usize,
    len: usize,
}

impl CudaStorage {
    /// Copies host bytes to device `ordinal` (default stream) and waits for the copy.
    pub fn from_host(ordinal: usize, bytes: &[u8]) -> Result<Self> {
        let stream = context(ordinal)?.default_stream();
        // A zero-length allocation is not allowed by the driver: keep one byte.
        let buf = if bytes.is_empty() {
            stream.alloc_zeros::<u8>(1)
        } else {
            stream.clone_htod(bytes)
        }
        .map_err(cuda_err("host to device copy"))?;
        stream.synchronize().map_err(cuda_err("synchronize"))?;
        Ok(CudaStorage {
            buf,
            stream,
            ordinal,
            len: bytes.len(),
        })
    }

    /// Copies the bytes back to the host.
    pub fn to_host(&self) -> Result<Vec<u8>> {
        let mut v = self
            .stream
            .clone_dtoh(&self.buf)
            .map_err(cuda_err("device to host copy"))?;
        self.stream.synchronize().map_err(cuda_err("synchronize"))?;
        v.truncate(self.byte_len());
        Ok(v)
    }

    /// The CUDA device ordinal the bytes are on.
    pub fn ordinal(&self) -> usize {
        self.ordinal
    }
    /// Size in bytes (the buffer itself is one byte longer when this is 0).
    pub fn byte_len(&self) -> usize {
        self.len
    }
    /// The raw device buffer, for kernel launches.
    pub fn slice(&self) -> &CudaSlice<u8> {
        &self.buf
    }
    /// The stream that orders work on the buffer; launches on it need no extra sync.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }
}

/// The number of visible CUDA devices, or why none can be used.
pub fn device_count() -> Result<usize> {
    if !crate::cuda_driver_present() {
        return Err(TensorError::CudaUnavailable(
            "libcuda.so (the NVIDIA driver) was not found: this machine has no usable GPU driver"
                .into(),
        ));
    }
    cudarc::driver::result::init()
        .and_then(|_| cudarc::driver::result::device::get_count())
        .map(|n| n as usize)
        .map_err(|e| TensorError::CudaUnavailable(format!("cuInit failed: {e}")))
}
