//! libnccl, opened on first use with `libloading` and held for the life of the process.
//!
//! Why not cudarc's `nccl` module (cudarc 0.19.10, read in its `src/nccl/sys/mod.rs` and
//! `src/lib.rs`): its loading is lazy (each symbol is resolved on its first call, the library on
//! the first symbol), but (1) when no library loads, `culib()` *panics*
//! (`panic_no_lib_found`), and so does a missing symbol; (2) the names it tries are `libnccl.so`,
//! `libnccl.so.<CUDA major>`, `.12`, `.11`, `.10`, `.9`, `.1` and `libnccl64_*.so` — never
//! `libnccl.so.2`, NCCL's soname and the only name the `libnccl2` runtime package and the
//! `nvidia-nccl-cu12/13` wheels install (`libnccl.so` is the `-dev` package's symlink). So it
//! would panic on the machines that have NCCL the usual way. Here the library is opened by its
//! soname first, every symbol is resolved once up front, and each failure is an error; the
//! handful of functions ringdet calls are declared with plain C integers (an unknown
//! `ncclResult_t` from a newer NCCL stays a number instead of an invalid Rust enum).

use libloading::Library;
use std::ffi::{CStr, c_char, c_int, c_void};
use std::sync::OnceLock;

/// `ncclComm_t`.
pub(crate) type RawComm = *mut c_void;

/// `ncclUniqueId`: 128 opaque bytes made by rank 0 and handed to every rank.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct UniqueId {
    pub(crate) internal: [u8; UNIQUE_ID_BYTES],
}

/// `NCCL_UNIQUE_ID_BYTES`.
pub(crate) const UNIQUE_ID_BYTES: usize = 128;
/// `ncclSuccess`.
pub(crate) const SUCCESS: c_int = 0;
/// `ncclFloat32`.
pub(crate) const FLOAT32: c_int = 7;
/// `ncclSum`.
pub(crate) const SUM: c_int = 0;

type CollFn = unsafe extern "C" fn(
    *const c_void,
    *mut c_void,
    usize,
    c_int,
    c_int,
    RawComm,
    *mut c_void,
) -> c_int;

/// The NCCL entry points ringdet uses.
pub(crate) struct Nccl {
    /// `ncclGetUniqueId`.
    pub(crate) get_unique_id: unsafe extern "C" fn(*mut UniqueId) -> c_int,
    /// `ncclCommInitRank(comm*, nranks, id, rank)`.
    pub(crate) comm_init_rank: unsafe extern "C" fn(*mut RawComm, c_int, UniqueId, c_int) -> c_int,
    /// `ncclAllReduce(send, recv, count, datatype, op, comm, stream)`.
    pub(crate) all_reduce: CollFn,
    /// `ncclBroadcast(send, recv, count, datatype, root, comm, stream)`.
    pub(crate) broadcast: CollFn,
    /// `ncclCommDestroy`.
    pub(crate) comm_destroy: unsafe extern "C" fn(RawComm) -> c_int,
    get_error_string: unsafe extern "C" fn(c_int) -> *const c_char,
    get_last_error: Option<unsafe extern "C" fn(RawComm) -> *const c_char>,
    /// The library's version, e.g. `2.27.3`.
    pub(crate) version: String,
    /// The name it was opened by.
    pub(crate) name: &'static str,
    // Last: the function pointers above point into it, and it is never unloaded (the struct
    // lives in a static).
    _lib: Library,
}

/// The names tried, in order: NCCL's soname, then the development symlink.
const NAMES: [&str; 2] = ["libnccl.so.2", "libnccl.so"];

/// libnccl, loaded on the first call; the same error on every later call when it cannot be.
pub(crate) fn nccl() -> Result<&'static Nccl, String> {
    static NCCL: OnceLock<Result<Nccl, String>> = OnceLock::new();
    NCCL.get_or_init(load).as_ref().map_err(Clone::clone)
}

fn load() -> Result<Nccl, String> {
    let unavailable = |cause: String| {
        format!(
            "NCCL is not available: {} could not be loaded ({cause}); use -o comm_backend=ring",
            NAMES[0]
        )
    };
    let mut causes = Vec::new();
    let mut opened = None;
    for name in NAMES {
        // SAFETY: opening a shared library runs its initialisers; libnccl's only set up NCCL's
        // own state.
        match unsafe { Library::new(name) } {
            Ok(lib) => {
                opened = Some((name, lib));
                break;
            }
            Err(e) => causes.push(dl_error(&e)),
        }
    }
    let Some((name, lib)) = opened else {
        return Err(unavailable(causes.join("; ")));
    };
    let no_symbol = |symbol: &str, e: libloading::Error| {
        unavailable(format!(
            "{name} has no {symbol} ({}): is it NCCL 2?",
            dl_error(&e)
        ))
    };
    macro_rules! sym {
        ($name:literal) => {
            // SAFETY: the types are the C prototypes of nccl.h (stable across NCCL 2.x), enums
            // as `int`; the pointers stay valid while `_lib` is loaded (for ever).
            unsafe { symbol(&lib, $name) }.map_err(|e| no_symbol($name, e))?
        };
    }
    let get_version: unsafe extern "C" fn(*mut c_int) -> c_int = sym!("ncclGetVersion");
    let mut code: c_int = 0;
    // SAFETY: writes one int.
    let version = match unsafe { get_version(&mut code) } {
        SUCCESS => version_string(code),
        r => return Err(unavailable(format!("ncclGetVersion returned {r}"))),
    };
    // SAFETY: as above; absent before NCCL 2.13, so optional.
    let get_last_error = unsafe { symbol(&lib, "ncclGetLastError") }.ok();
    Ok(Nccl {
        get_unique_id: sym!("ncclGetUniqueId"),
        comm_init_rank: sym!("ncclCommInitRank"),
        all_reduce: sym!("ncclAllReduce"),
        broadcast: sym!("ncclBroadcast"),
        comm_destroy: sym!("ncclCommDestroy"),
        get_error_string: sym!("ncclGetErrorString"),
        get_last_error,
        version,
        name,
        _lib: lib,
    })
}

/// libloading's error with the system's text (its `Display` says only "dlopen failed"; the
/// dlerror text, which names the file and the reason, is its source).
fn dl_error(e: &libloading::Error) -> String {
    match std::error::Error::source(e) {
        Some(cause) => cause.to_string(),
        None => e.to_string(),
    }
}

/// Symbol `name` of `lib` as a `T` (a function pointer type).
///
/// # Safety
/// `T` must be the symbol's C type.
unsafe fn symbol<T: Copy>(lib: &Library, name: &str) -> Result<T, libloading::Error> {
    // SAFETY: the caller's promise.
    unsafe { lib.get::<T>(name) }.map(|s| *s)
}

/// `ncclGetVersion`'s number as `major.minor.patch` (`22703` → `2.27.3`; before 2.9, `2604` →
/// `2.6.4`).
pub(crate) fn version_string(code: c_int) -> String {
    if code >= 10000 {
        format!("{}.{}.{}", code / 10000, code % 10000 / 100, code % 100)
    } else {
        format!("{}.{}.{}", code / 1000, code % 1000 / 100, code % 100)
    }
}

impl Nccl {
    /// A failed call's message: NCCL's name for the code, and its last error text for `comm`
    /// when it has one (NCCL 2.13 and newer).
    pub(crate) fn describe(&self, code: c_int, comm: RawComm) -> String {
        let text = |p: *const c_char| {
            // SAFETY: NCCL returns NUL-terminated static or per-thread strings (or null).
            (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
        };
        // SAFETY: plain lookups.
        let name = text(unsafe { (self.get_error_string)(code) });
        let last = self
            .get_last_error
            .and_then(|f| text(unsafe { f(comm) }))
            .filter(|s| !s.is_empty());
        let mut msg = format!("error {code}");
        if let Some(n) = name {
            msg.push_str(&format!(" ({n})"));
        }
        if let Some(l) = last {
            msg.push_str(&format!(": {l}"));
        }
        msg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_read_as_nccl_prints_them() {
        assert_eq!(version_string(22703), "2.27.3");
        assert_eq!(version_string(21805), "2.18.5");
        assert_eq!(version_string(2604), "2.6.4");
    }
}
