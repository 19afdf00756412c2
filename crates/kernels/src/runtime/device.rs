//! One CUDA device as the kernels see it: its context, stream, compile options and the modules
//! loaded so far (each on first use).

use super::{CompileOptions, KernelSource, PtxCache, RuntimeError, cache_dir};
use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaStream};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

fn driver(op: &str) -> impl Fn(cudarc::driver::DriverError) -> RuntimeError + '_ {
    move |e| RuntimeError::Driver {
        op: op.to_string(),
        msg: e.to_string(),
    }
}

/// Kernels of one device: compile, cache, load and hand out functions.
pub struct KernelRuntime {
    ordinal: usize,
    context: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    options: CompileOptions,
    cache: PtxCache,
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
}

impl KernelRuntime {
    /// The process-wide runtime of device `ordinal`; an error (never a panic) without a GPU.
    pub fn get(ordinal: usize) -> Result<Arc<KernelRuntime>, RuntimeError> {
        static RUNTIMES: OnceLock<Mutex<HashMap<usize, Arc<KernelRuntime>>>> = OnceLock::new();
        let mut map = RUNTIMES
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(rt) = map.get(&ordinal) {
            return Ok(rt.clone());
        }
        let context = super::probe::context(ordinal)?;
        super::nvrtc_version()?;
        let (major, minor) = context
            .compute_capability()
            .map_err(driver("compute capability"))?;
        keep_pool_memory(&context);
        let rt = Arc::new(KernelRuntime {
            ordinal,
            stream: context.default_stream(),
            context,
            options: CompileOptions::for_capability(major, minor),
            cache: PtxCache::new(cache_dir()),
            modules: Mutex::new(HashMap::new()),
        });
        map.insert(ordinal, rt.clone());
        Ok(rt)
    }

    /// The device's CUDA ordinal.
    pub fn ordinal(&self) -> usize {
        self.ordinal
    }
    /// The device's CUDA context.
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.context
    }
    /// The stream every ringdet kernel of this device is launched on.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }
    /// The NVRTC options kernels of this device are compiled with.
    pub fn options(&self) -> &CompileOptions {
        &self.options
    }
    /// Bytes the device's default memory pool holds from the driver now (what the allocations
    /// of every step are served from): constant from step to step once the pool keeps freed
    /// memory; an error where the device has no stream-ordered pool.
    pub fn pool_reserved_bytes(&self) -> Result<u64, RuntimeError> {
        use cudarc::driver::sys;
        let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
        let mut bytes: u64 = 0;
        // SAFETY: driver queries with valid out-pointers on this runtime's device.
        let r = unsafe {
            match sys::cuDeviceGetDefaultMemPool(&mut pool, self.context.cu_device()) {
                sys::CUresult::CUDA_SUCCESS => sys::cuMemPoolGetAttribute(
                    pool,
                    sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT,
                    (&mut bytes as *mut u64).cast(),
                ),
                other => other,
            }
        };
        match r {
            sys::CUresult::CUDA_SUCCESS => Ok(bytes),
            other => Err(RuntimeError::Driver {
                op: "memory pool reserved bytes".into(),
                msg: format!("{other:?}"),
            }),
        }
    }
    /// The device's name, e.g. `NVIDIA H100 80GB HBM3`.
    pub fn device_name(&self) -> Result<String, RuntimeError> {
        self.context.name().map_err(driver("device name"))
    }

    /// The module of `source`, compiled (or read from the PTX cache) and loaded on first use.
    pub fn module(&self, source: &'static KernelSource) -> Result<Arc<CudaModule>, RuntimeError> {
        let mut modules = self.modules.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = modules.get(source.name) {
            return Ok(m.clone());
        }
        let ptx = self.cache.get_or_compile(source, &self.options)?;
        let module = self
            .context
            .load_module(cudarc::nvrtc::Ptx::from_src(ptx))
            .map_err(driver(source.name))?;
        modules.insert(source.name, module.clone());
        Ok(module)
    }

    /// The kernel `name` of `source`.
    pub fn function(
        &self,
        source: &'static KernelSource,
        name: &str,
    ) -> Result<CudaFunction, RuntimeError> {
        self.module(source)?
            .load_function(name)
            .map_err(|e| RuntimeError::Driver {
                op: format!("{}: load function {name}", source.name),
                msg: e.to_string(),
            })
    }
}

/// Makes the device's default memory pool keep what is freed instead of returning it to the
/// driver at each synchronisation (its release threshold defaults to 0). cudarc allocates
/// through that pool (`cuMemAllocAsync`) and frees into it (`cuMemFreeAsync`), so with the
/// threshold at its maximum every step after the first is served from the memory the first
/// step left: the device-side counterpart of the host [`crate::arena`]. A device without
/// stream-ordered allocation, or a driver that refuses, keeps the default (a logged warning,
/// not an error: only speed depends on it).
fn keep_pool_memory(context: &CudaContext) {
    use cudarc::driver::sys;
    let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
    let mut threshold: u64 = u64::MAX;
    // SAFETY: plain driver calls with valid out-pointers on the device of a live context; the
    // pool calls take the device, not the current context.
    let r = unsafe {
        match sys::cuDeviceGetDefaultMemPool(&mut pool, context.cu_device()) {
            sys::CUresult::CUDA_SUCCESS => sys::cuMemPoolSetAttribute(
                pool,
                sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
                (&mut threshold as *mut u64).cast(),
            ),
            other => other,
        }
    };
    if r != sys::CUresult::CUDA_SUCCESS {
        tracing::warn!(
            "CUDA device memory pool: the release threshold stays at the default ({r:?}); \
             freed memory may go back to the driver between steps"
        );
    }
}
