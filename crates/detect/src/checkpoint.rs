//! Load and save a model's state dict as safetensors under PaddleDetection's names (so converted
//! `.pdparams` load unchanged), f32, in Paddle's state-dict order.

use std::collections::BTreeMap;
use std::path::Path;

use ringdet_tensor::{DType, SafeTensors, Tensor};

use crate::error::{DetectError, Result};
use crate::state::ModelState;

fn tensor_err(path: &Path, e: ringdet_tensor::TensorError) -> DetectError {
    // File errors of the tensor crate already name the file: say it once.
    let message = e.to_string();
    let file = path.display().to_string();
    if message.contains(&file) {
        DetectError::Input(message)
    } else {
        DetectError::Input(format!("{file}: {message}"))
    }
}

/// Fill `state` from a safetensors file holding every entry of the model (extra entries are
/// ignored; a missing or mis-shaped one is an error naming it and the file).
pub fn load(state: &mut ModelState, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let file = SafeTensors::open(path).map_err(|e| tensor_err(path, e))?;
    state
        .load_with(|name| {
            let Some(info) = file.info(name) else {
                return Ok(None);
            };
            if info.dtype != DType::F32 {
                return Err(DetectError::Input(format!(
                    "{}: tensor `{name}` is {}, expected F32",
                    path.display(),
                    info.dtype
                )));
            }
            let t = file.tensor(name).map_err(|e| tensor_err(path, e))?;
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

/// Write every entry of `state` (parameters, BN statistics, projection) atomically.
pub fn save(state: &ModelState, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let entries = state.export();
    let tensors = entries
        .iter()
        .map(|(n, s, v)| Tensor::from_slice(v, s).map(|t| (n.as_str(), t)))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| tensor_err(path, e))?;
    let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (*n, t)).collect();
    ringdet_tensor::save(path, &refs, &BTreeMap::new()).map_err(|e| tensor_err(path, e))
}
