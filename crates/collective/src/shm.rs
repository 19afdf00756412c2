//! A growable buffer in `/dev/shm` that one rank writes and the other ranks of its host map.

use crate::error::{CommError, Result};
use memmap2::MmapMut;
use std::fs::{File, OpenOptions};
use std::path::PathBuf;

/// A shared-memory file and its current mapping.
pub struct ShmBuf {
    path: PathBuf,
    file: File,
    map: Option<MmapMut>,
    owner: bool,
}

fn err(path: &std::path::Path, what: &str, e: std::io::Error) -> CommError {
    CommError::Local(format!("shared memory {}: {what}: {e}", path.display()))
}

impl ShmBuf {
    /// Creates (or truncates) the file this rank owns.
    pub fn create(path: PathBuf) -> Result<ShmBuf> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| err(&path, "create", e))?;
        Ok(ShmBuf {
            path,
            file,
            map: None,
            owner: true,
        })
    }

    /// Opens a file another rank of this host created.
    pub fn open(path: PathBuf) -> Result<ShmBuf> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| err(&path, "open", e))?;
        Ok(ShmBuf {
            path,
            file,
            map: None,
            owner: false,
        })
    }

    /// The first `len` bytes, growing the file (owner) or remapping it (reader) as needed.
    pub fn bytes(&mut self, len: usize) -> Result<&mut [u8]> {
        let mapped = self.map.as_ref().map_or(0, |m| m.len());
        if mapped < len {
            if self.owner {
                let size = len.next_power_of_two().max(4096) as u64;
                self.file
                    .set_len(size)
                    .map_err(|e| err(&self.path, "grow", e))?;
            }
            let size = self
                .file
                .metadata()
                .map_err(|e| err(&self.path, "stat", e))?
                .len() as usize;
            if size < len {
                return Err(CommError::Local(format!(
                    "shared memory {}: {size} bytes, need {len}",
                    self.path.display()
                )));
            }
            // SAFETY: the file is private to this job's ranks; they follow the hand-off protocol
            // in `hier.rs`, so no rank reads a region while its owner writes it.
            let map =
                unsafe { MmapMut::map_mut(&self.file) }.map_err(|e| err(&self.path, "map", e))?;
            self.map = Some(map);
        }
        match &mut self.map {
            Some(m) => Ok(&mut m[..len]),
            None => Ok(&mut []),
        }
    }
}

/// The first `len` bytes of another rank's file in `slot`, opening it at `path` on first use.
pub fn open_mapped(slot: &mut Option<ShmBuf>, path: PathBuf, len: usize) -> Result<&mut [u8]> {
    let buf = match slot {
        Some(b) => b,
        None => slot.insert(ShmBuf::open(path)?),
    };
    buf.bytes(len)
}

impl Drop for ShmBuf {
    fn drop(&mut self) {
        if self.owner {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
