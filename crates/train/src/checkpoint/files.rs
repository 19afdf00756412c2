//! The files of one checkpoint: safetensors writers and readers with the set's id in their
//! metadata, the `.state.json` record, content digests and directory syncs.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use ringdet_tensor::{DType, SafeTensors, Tensor, TensorError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::{CheckpointError, Result};

/// Format tag written into every `.state.json`.
pub(crate) const FORMAT: &str = "ringdet-checkpoint/1";
/// Metadata key holding the id of the save that wrote a tensor file.
pub(crate) const META_ID: &str = "ringdet.checkpoint_id";
/// Metadata key holding the file's role (`weights`, `raw`, `opt`).
pub(crate) const META_ROLE: &str = "ringdet.role";
/// Metadata key holding the global step of the save.
pub(crate) const META_STEP: &str = "ringdet.global_step";

pub(crate) fn io(path: &Path) -> impl Fn(std::io::Error) -> CheckpointError + '_ {
    move |error| CheckpointError::Io {
        path: path.to_path_buf(),
        error,
    }
}

pub(crate) fn corrupt(path: &Path, msg: impl Into<String>) -> CheckpointError {
    CheckpointError::Corrupt {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

/// A tensor-crate error about `path`, said once with the file name.
pub(crate) fn tensor_err(path: &Path, e: TensorError) -> CheckpointError {
    match e {
        TensorError::Io { path, error } => CheckpointError::Io { path, error },
        other => {
            let msg = other.to_string();
            let file = path.display().to_string();
            let msg = match msg.strip_prefix(&file) {
                Some(rest) => rest.trim_start_matches([':', ' ']).to_string(),
                None => msg,
            };
            corrupt(path, msg)
        }
    }
}

/// Size and SHA-256 of a file as the `.state.json` records them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileRecord {
    /// The file name, relative to the checkpoint folder.
    pub file: String,
    /// Its length in bytes.
    pub bytes: u64,
    /// Lower-case hex SHA-256 of its content.
    pub sha256: String,
}

/// Size and digest of a file on disk.
pub(crate) fn digest(path: &Path) -> Result<(u64, String)> {
    let mut f = File::open(path).map_err(io(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(io(path))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    let hex = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((n, hex))
}

/// Checks that a companion file is the one the `.state.json` recorded.
pub(crate) fn verify(dir: &Path, record: &FileRecord, state_file: &Path) -> Result<PathBuf> {
    let path = dir.join(&record.file);
    if !path.exists() {
        return Err(CheckpointError::Incomplete {
            path,
            msg: format!("missing, but {} lists it", state_file.display()),
        });
    }
    let (bytes, sha) = digest(&path)?;
    if bytes != record.bytes {
        return Err(corrupt(
            &path,
            format!(
                "{bytes} bytes, {} records {} (truncated or rewritten)",
                state_file.display(),
                record.bytes
            ),
        ));
    }
    if sha != record.sha256 {
        return Err(corrupt(
            &path,
            format!(
                "content digest differs from the one {} records (corrupt or rewritten)",
                state_file.display()
            ),
        ));
    }
    Ok(path)
}

/// Writes named tensors atomically with the save's id, role and step in the metadata, and returns
/// the file's record.
pub(crate) fn write_tensors(
    dir: &Path,
    file: &str,
    role: &str,
    id: &str,
    step: u64,
    tensors: &[(String, Tensor)],
) -> Result<FileRecord> {
    let path = dir.join(file);
    let meta = BTreeMap::from([
        (META_ID.to_string(), id.to_string()),
        (META_ROLE.to_string(), role.to_string()),
        (META_STEP.to_string(), step.to_string()),
    ]);
    let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    ringdet_tensor::save(&path, &refs, &meta).map_err(|e| tensor_err(&path, e))?;
    let (bytes, sha256) = digest(&path)?;
    Ok(FileRecord {
        file: file.to_string(),
        bytes,
        sha256,
    })
}

/// A host tensor from values, naming the file on failure.
pub(crate) fn tensor<T: ringdet_tensor::Element>(
    path: &Path,
    values: &[T],
    shape: &[usize],
) -> Result<Tensor> {
    Tensor::from_slice(values, shape).map_err(|e| tensor_err(path, e))
}

/// An opened companion whose metadata says it belongs to the save `id`.
pub(crate) fn open_companion(path: &Path, role: &str, id: &str, step: u64) -> Result<SafeTensors> {
    let f = SafeTensors::open(path).map_err(|e| tensor_err(path, e))?;
    let meta = f.metadata();
    let field = |k: &str| meta.get(k).map(String::as_str).unwrap_or("(none)");
    if field(META_ROLE) != role {
        return Err(corrupt(
            path,
            format!(
                "metadata {META_ROLE} is {:?}, expected {role:?}",
                field(META_ROLE)
            ),
        ));
    }
    if field(META_ID) != id || field(META_STEP) != step.to_string() {
        return Err(CheckpointError::Incomplete {
            path: path.to_path_buf(),
            msg: format!(
                "written by save {} at step {}, the .state.json is save {id} at step {step}",
                field(META_ID),
                field(META_STEP)
            ),
        });
    }
    Ok(f)
}

/// The values of tensor `name`, checked to be `dtype` of `shape`.
pub(crate) fn read<T: ringdet_tensor::Element>(
    f: &SafeTensors,
    name: &str,
    dtype: DType,
    shape: &[usize],
) -> Result<Vec<T>> {
    let path = f.path();
    if f.info(name).is_none() {
        return Err(corrupt(path, format!("missing tensor `{name}`")));
    }
    f.tensor_checked(name, dtype, shape)
        .and_then(|t| t.to_vec::<T>())
        .map_err(|e| tensor_err(path, e))
}

/// Fsyncs a folder (after a rename or removal in it).
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}
