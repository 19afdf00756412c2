//! PaddlePaddle's `.pdparams` (and `.pdopt` / `.pdema`) files, read and written without Python.
//!
//! `paddle.save(state_dict, path)` pickles a dict of name -> numpy array (protocol 2, 3 or 4;
//! Paddle 2.x and 3.x, numpy 1 and 2). PaddleDetection's released weights, its pretrained
//! backbones and its checkpoints are such files. A pickle can name any Python callable, so this
//! reader is not a pickle loader: it interprets exactly the opcodes those files use and a short
//! allow-list of globals (numpy's array and dtype constructors, `_codecs.encode`,
//! `collections.OrderedDict`, `builtins.tuple`; see [`ALLOWED_GLOBALS`]), symbolically. Any other
//! opcode or global is refused with an error naming it and its byte offset: loading weights
//! never runs code. Truncated or corrupt files give errors naming the file and the offset.
//!
//! Arrays become host [`Tensor`]s (f32, f64, f16, i32, i64, u8; Paddle's bfloat16, which it
//! saves as numpy `uint16`, as bf16). Containers nested in the top-level dict (an optimizer's
//! `master_weights`, Paddle's `(name, array)` tuples) give tensors named `outer/inner`; values
//! that are not arrays (`LR_Scheduler` state, `StructuredToParameterName@@`, epoch counters) are
//! listed in [`PdParams::skipped`].
//!
//! [`save`] writes a dict of arrays that `paddle.load` reads, so weights trained here can be
//! evaluated by PaddleDetection.
//!
//! ```
//! use ringdet_tensor::{Tensor, pdparams};
//! let path = std::env::temp_dir().join(format!("doc-{}.pdparams", std::process::id()));
//! let w = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[3])?;
//! pdparams::save(&path, &[("fc.weight", &w)])?;
//! let file = pdparams::PdParams::open(&path)?;
//! assert_eq!(file.tensor("fc.weight").unwrap().to_vec::<f32>()?, vec![1.0, 2.0, 3.0]);
//! # std::fs::remove_file(&path).ok();
//! # Ok::<(), ringdet_tensor::TensorError>(())
//! ```

mod collect;
mod globals;
mod machine;
mod numpy;
mod object;
mod opcodes;
mod writer;

use std::path::{Path, PathBuf};

use crate::{Result, Tensor, TensorError};

pub use collect::{Skipped, Value};
pub use globals::ALLOWED as ALLOWED_GLOBALS;
pub use writer::{Extra, save, save_with};

/// The file extensions of Paddle's pickled state dicts: weights, EMA weights, optimizer state.
pub const EXTENSIONS: [&str; 3] = ["pdparams", "pdema", "pdopt"];

/// Whether `path` has one of Paddle's pickle extensions ([`EXTENSIONS`]).
pub fn is_paddle_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.contains(&e))
}

/// The tensors of one Paddle state-dict file, in file order, and what was not kept.
#[derive(Debug)]
pub struct PdParams {
    path: PathBuf,
    protocol: u8,
    tensors: Vec<(String, Tensor)>,
    skipped: Vec<Skipped>,
    values: Vec<(String, Value)>,
}

impl PdParams {
    /// Reads and checks the whole file (through a read-only memory map: the arrays are copied
    /// once, into aligned tensors).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let io = |error| TensorError::Io {
            path: path.to_path_buf(),
            error,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        if file.metadata().map_err(io)?.len() == 0 {
            return Self::parse(&[], path);
        }
        // SAFETY: the mapping is read-only and dropped before this returns; like every reader
        // of memory-mapped files we rely on nobody truncating the file meanwhile.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        Self::parse(&map, path)
    }

    /// Reads the pickle in `bytes`; `path` names it in errors.
    pub fn parse(bytes: &[u8], path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let err = |offset, msg| TensorError::Pickle {
            path: path.to_path_buf(),
            offset,
            msg,
        };
        if bytes.first() != Some(&opcodes::PROTO) {
            return Err(err(
                Some(0),
                format!(
                    "not a Paddle state-dict pickle: it starts with {}, not PROTO (0x80)",
                    bytes
                        .first()
                        .map_or("nothing (empty file)".to_string(), |&b| opcodes::describe(
                            b
                        ))
                ),
            ));
        }
        let run = machine::run(bytes).map_err(|f| err(Some(f.offset), f.msg))?;
        let collected =
            collect::collect(&run.arena, run.root, bytes).map_err(|msg| err(None, msg))?;
        Ok(PdParams {
            path: path.to_path_buf(),
            protocol: run.protocol,
            tensors: collected.tensors,
            skipped: collected.skipped,
            values: collected.values,
        })
    }

    /// The file this was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// The pickle protocol the file declares (2, 3 or 4 for files Paddle writes).
    pub fn protocol(&self) -> u8 {
        self.protocol
    }
    /// `(name, tensor)` in file order.
    pub fn tensors(&self) -> &[(String, Tensor)] {
        &self.tensors
    }
    /// Takes the tensors out, in file order.
    pub fn into_tensors(self) -> Vec<(String, Tensor)> {
        self.tensors
    }
    /// The tensor named `name`.
    pub fn tensor(&self, name: &str) -> Option<&Tensor> {
        self.tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }
    /// Tensor names in file order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.iter().map(|(n, _)| n.as_str())
    }
    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }
    /// Whether the file holds no tensor.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }
    /// Entries that are not tensors (or arrays of a dtype this crate lacks), with what they are.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }
    /// The integers and strings of the file by key path (nested `outer/inner`, one level into
    /// dicts without arrays): `last_epoch`, `LR_Scheduler/last_epoch`, and the
    /// `StructuredToParameterName@@/<name>` table Paddle writes beside a state dict.
    pub fn values(&self) -> &[(String, Value)] {
        &self.values
    }
    /// The integer at key path `key`.
    pub fn int(&self, key: &str) -> Option<i64> {
        self.values.iter().find_map(|(k, v)| match v {
            Value::Int(i) if k == key => Some(*i),
            _ => None,
        })
    }
    /// The string at key path `key`.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.values.iter().find_map(|(k, v)| match v {
            Value::Str(s) if k == key => Some(s.as_str()),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests;
