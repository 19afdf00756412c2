//! The on-disk PTX cache: compiling every kernel takes seconds, so PTX is kept under a key that
//! changes whenever the source, the options, the architecture or the NVRTC version does.

use super::{CompileOptions, KernelSource, RuntimeError};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The cache folder: `$RINGDET_KERNEL_CACHE`, else `$XDG_CACHE_HOME/ringdet/kernels`, else
/// `~/.cache/ringdet/kernels`, else a folder under the system temp dir.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("RINGDET_KERNEL_CACHE") {
        return d.into();
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("ringdet/kernels");
    }
    if let Some(h) = std::env::var_os("HOME") {
        return PathBuf::from(h).join(".cache/ringdet/kernels");
    }
    std::env::temp_dir().join("ringdet-kernels")
}

/// A folder of PTX files named by their key.
#[derive(Clone, Debug)]
pub struct PtxCache {
    dir: PathBuf,
}

impl PtxCache {
    /// A cache of PTX files in `dir` (created on the first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        PtxCache { dir: dir.into() }
    }
    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file a (source, options, NVRTC version) triple is cached in.
    pub fn path_for(
        &self,
        src: &KernelSource,
        opts: &CompileOptions,
        nvrtc: (i32, i32),
    ) -> PathBuf {
        let mut h = Sha256::new();
        for part in [src.name, src.code, &opts.arch, &format!("{nvrtc:?}")] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        for f in &opts.flags {
            h.update((f.len() as u64).to_le_bytes());
            h.update(f.as_bytes());
        }
        let key: String = h.finalize()[..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let stem = src.name.trim_end_matches(".cu").replace('/', "_");
        self.dir.join(format!("{stem}-{}-{key}.ptx", opts.arch))
    }

    /// The cached PTX, if present.
    pub fn get(&self, path: &Path) -> Option<String> {
        std::fs::read_to_string(path).ok().filter(|s| !s.is_empty())
    }

    /// Stores PTX atomically (temporary file, fsync, rename), so a reader never sees half a file.
    pub fn put(&self, path: &Path, ptx: &str) -> Result<(), RuntimeError> {
        let err = |error| RuntimeError::Cache {
            path: path.to_path_buf(),
            error,
        };
        std::fs::create_dir_all(&self.dir).map_err(err)?;
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        let result = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(ptx.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map_err(err)
    }

    /// Cached PTX for `src`, compiling and storing it on a miss. A cache that cannot be written
    /// only costs the next run a compile.
    pub fn get_or_compile(
        &self,
        src: &KernelSource,
        opts: &CompileOptions,
    ) -> Result<String, RuntimeError> {
        let path = self.path_for(src, opts, super::nvrtc_version()?);
        if let Some(ptx) = self.get(&path) {
            return Ok(ptx);
        }
        let ptx = super::compile_ptx(src, opts)?;
        if let Err(e) = self.put(&path, &ptx) {
            tracing::warn!(path = %path.display(), "PTX cache not written: {e}");
        }
        Ok(ptx)
    }
}
