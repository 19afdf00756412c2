//! Load and save a model's state dict under PaddleDetection's names, f32, in Paddle's
//! state-dict order: as safetensors, or as Paddle's own `.pdparams` pickle (read directly, and
//! written so that PaddleDetection evaluates it), chosen by the file's extension.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use ringdet_tensor::{DType, PdParams, SafeTensors, Tensor, pdparams};

use crate::error::{DetectError, Result};
use crate::state::ModelState;

pub(crate) fn tensor_err(path: &Path, e: ringdet_tensor::TensorError) -> DetectError {
    // File errors of the tensor crate already name the file: say it once.
    let message = e.to_string();
    let file = path.display().to_string();
    if message.contains(&file) {
        DetectError::Input(message)
    } else {
        DetectError::Input(format!("{file}: {message}"))
    }
}

/// An open weights file: safetensors (memory-mapped), or a Paddle pickle (`.pdparams`,
/// `.pdema`, `.pdopt`: read whole, every entry checked; see [`ringdet_tensor::pdparams`]).
pub enum WeightsFile {
    /// A safetensors file.
    SafeTensors(SafeTensors),
    /// A Paddle state-dict pickle, with its tensors by name.
    Paddle {
        /// The file as read.
        file: PdParams,
        /// Index of each name in `file.tensors()`.
        index: HashMap<String, usize>,
    },
}

impl WeightsFile {
    /// Opens `path`: a Paddle pickle when its extension is one of
    /// [`pdparams::EXTENSIONS`], else safetensors.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        if pdparams::is_paddle_path(path) {
            let file = PdParams::open(path).map_err(|e| tensor_err(path, e))?;
            let index = file
                .names()
                .enumerate()
                .map(|(i, n)| (n.to_string(), i))
                .collect();
            Ok(WeightsFile::Paddle { file, index })
        } else {
            let file = SafeTensors::open(path).map_err(|e| tensor_err(path, e))?;
            Ok(WeightsFile::SafeTensors(file))
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        match self {
            WeightsFile::SafeTensors(f) => f.path(),
            WeightsFile::Paddle { file, .. } => file.path(),
        }
    }

    /// Tensor names in file order.
    pub fn names(&self) -> Vec<&str> {
        match self {
            WeightsFile::SafeTensors(f) => f.names().collect(),
            WeightsFile::Paddle { file, .. } => file.names().collect(),
        }
    }

    /// The tensor `name`, if the file holds it.
    pub fn tensor(&self, name: &str) -> Result<Option<Tensor>> {
        match self {
            WeightsFile::SafeTensors(f) => match f.info(name) {
                None => Ok(None),
                Some(_) => f
                    .tensor(name)
                    .map(Some)
                    .map_err(|e| tensor_err(f.path(), e)),
            },
            WeightsFile::Paddle { file, index } => {
                Ok(index.get(name).map(|&i| file.tensors()[i].1.clone()))
            }
        }
    }
}

/// Fill `state` from a weights file (safetensors or `.pdparams`) holding every entry of the
/// model (extra entries are ignored; a missing, mis-shaped or non-f32 one is an error naming it
/// and the file).
pub fn load(state: &mut ModelState, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let file = WeightsFile::open(path)?;
    state
        .load_with(|name| {
            let Some(t) = file.tensor(name)? else {
                return Ok(None);
            };
            if t.dtype() != DType::F32 {
                return Err(DetectError::Input(format!(
                    "{}: tensor `{name}` is {}, expected F32",
                    path.display(),
                    t.dtype()
                )));
            }
            let v = t.to_vec::<f32>().map_err(|e| tensor_err(path, e))?;
            Ok(Some((t.shape().to_vec(), v)))
        })
        .map_err(|e| match e {
            DetectError::MissingTensor(n) => {
                DetectError::Input(format!("{}: missing tensor `{n}`", path.display()))
            }
            other => other,
        })
}

/// Write every entry of `state` (parameters, BN statistics, projection) atomically: as a
/// `.pdparams` pickle when the extension is a Paddle one, else as safetensors.
pub fn save(state: &ModelState, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let entries = state.export();
    let tensors = entries
        .iter()
        .map(|(n, s, v)| Tensor::from_slice(v, s).map(|t| (n.as_str(), t)))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| tensor_err(path, e))?;
    let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (*n, t)).collect();
    if pdparams::is_paddle_path(path) {
        pdparams::save(path, &refs).map_err(|e| tensor_err(path, e))
    } else {
        ringdet_tensor::save(path, &refs, &BTreeMap::new()).map_err(|e| tensor_err(path, e))
    }
}
