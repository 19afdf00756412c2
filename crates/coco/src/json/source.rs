//! The bytes of a JSON file: memory-mapped when large, so an instances_train2017-sized file is read
//! without a heap copy, and pages already parsed can be handed back to keep the resident set bounded.

use super::error::JsonError;
use std::path::Path;

/// Files below this size are simply read into memory.
const MAP_THRESHOLD: usize = 1 << 20;

/// The content of one JSON file plus its name for error messages.
pub(crate) struct FileBytes {
    pub(crate) name: String,
    storage: Storage,
}

enum Storage {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl FileBytes {
    /// Opens `path`, mapping it when it is large.
    pub(crate) fn open(path: &Path) -> Result<Self, JsonError> {
        let name = path.display().to_string();
        let io = |error| JsonError::Io {
            file: name.clone(),
            error,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let storage = if len as usize >= MAP_THRESHOLD {
            // SAFETY: the map is read-only; a file truncated by another process while we read it would
            // fault, which is the documented limit of memory-mapped input and not reachable from input
            // content.
            let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
            // Advisory only; failure changes nothing but speed.
            let _ = map.advise(memmap2::Advice::Sequential);
            Storage::Mapped(map)
        } else {
            let mut bytes = Vec::with_capacity(len as usize);
            std::io::Read::read_to_end(&mut &file, &mut bytes).map_err(io)?;
            Storage::Owned(bytes)
        };
        Ok(Self { name, storage })
    }

    /// Wraps bytes already in memory.
    pub(crate) fn from_vec(bytes: Vec<u8>, name: &str) -> Self {
        Self {
            name: name.to_string(),
            storage: Storage::Owned(bytes),
        }
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        match &self.storage {
            Storage::Mapped(map) => map,
            Storage::Owned(bytes) => bytes,
        }
    }

    /// Tells the kernel that bytes before `offset` will not be read again, so their pages leave the
    /// resident set. A no-op for files read into memory.
    pub(crate) fn release_before(&self, offset: usize) {
        if let Storage::Mapped(map) = &self.storage {
            let page = 4096;
            let end = offset / page * page;
            if end > 0 {
                // SAFETY: the mapping is private and read-only, so dropping its pages loses nothing: a
                // later read of them faults them back in from the file with the same content.
                let _ = unsafe {
                    map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, 0, end)
                };
            }
        }
    }
}
