//! The model's numbers: flat parameter, gradient, running-statistics and frozen buffers, addressed by
//! PaddleDetection state-dict name.

use std::sync::Arc;

use crate::arch::{Arch, TensorKind};
use crate::error::{DetectError, Result};
use crate::layout::{ParamLayout, Slot};

/// All tensors of one model replica.
#[derive(Clone, Debug)]
pub struct ModelState {
    /// Offsets of every name.
    pub layout: Arc<ParamLayout>,
    /// Trainable parameters, reverse execution order.
    pub params: Vec<f32>,
    /// Gradients, same layout as `params`.
    pub grads: Vec<f32>,
    /// BatchNorm running means and variances, reverse execution order.
    pub stats: Vec<f32>,
    /// Constants (the DFL projection).
    pub frozen: Vec<f32>,
}

impl ModelState {
    /// Zero-filled buffers for an architecture (initialise them, see the `init` module, or load
    /// weights next).
    pub fn zeros(arch: &Arch) -> Result<Self> {
        let layout = Arc::new(ParamLayout::new(arch)?);
        Ok(Self {
            params: vec![0.0; layout.num_params()],
            grads: vec![0.0; layout.num_params()],
            stats: vec![0.0; layout.num_stats()],
            frozen: vec![0.0; layout.num_frozen()],
            layout,
        })
    }

    fn buffer(&self, kind: TensorKind) -> &[f32] {
        match kind {
            TensorKind::Param => &self.params,
            TensorKind::Buffer => &self.stats,
            TensorKind::Frozen => &self.frozen,
        }
    }

    fn buffer_mut(&mut self, kind: TensorKind) -> &mut [f32] {
        match kind {
            TensorKind::Param => &mut self.params,
            TensorKind::Buffer => &mut self.stats,
            TensorKind::Frozen => &mut self.frozen,
        }
    }

    /// The values of a named tensor.
    pub fn get(&self, name: &str) -> Result<&[f32]> {
        let slot = self.layout.slot(name)?;
        Ok(&self.buffer(slot.spec.kind)[slot.range()])
    }

    /// The values of a named tensor, writable.
    pub fn get_mut(&mut self, name: &str) -> Result<&mut [f32]> {
        let layout = Arc::clone(&self.layout);
        let slot = layout.slot(name)?;
        Ok(&mut self.buffer_mut(slot.spec.kind)[slot.range()])
    }

    /// The gradient of a named trainable parameter.
    pub fn grad(&self, name: &str) -> Result<&[f32]> {
        let slot = self.layout.slot(name)?;
        if slot.spec.kind != TensorKind::Param {
            return Err(DetectError::Input(format!(
                "`{name}` is not a trainable parameter and has no gradient"
            )));
        }
        Ok(&self.grads[slot.range()])
    }

    /// Set a named tensor from a shape and values, checking both.
    pub fn set(&mut self, name: &str, shape: &[usize], values: &[f32]) -> Result<()> {
        let layout = Arc::clone(&self.layout);
        let slot = layout.slot(name)?;
        check_shape(slot, shape)?;
        if values.len() != slot.spec.numel() {
            return Err(DetectError::ShapeMismatch {
                name: name.into(),
                found: vec![values.len()],
                expected: vec![slot.spec.numel()],
            });
        }
        self.buffer_mut(slot.spec.kind)[slot.range()].copy_from_slice(values);
        Ok(())
    }

    /// Load every entry through `lookup(name) -> Some((shape, values))`; a missing or mis-shaped entry
    /// is an error naming it.
    pub fn load_with<F>(&mut self, mut lookup: F) -> Result<()>
    where
        F: FnMut(&str) -> Result<Option<(Vec<usize>, Vec<f32>)>>,
    {
        let layout = Arc::clone(&self.layout);
        for slot in layout.state_dict_slots() {
            let name = &slot.spec.name;
            let (shape, values) =
                lookup(name)?.ok_or_else(|| DetectError::MissingTensor(name.clone()))?;
            self.set(name, &shape, &values)?;
        }
        Ok(())
    }

    /// Every entry as `(name, shape, values)` in PaddleDetection's state-dict order.
    pub fn export(&self) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        self.layout
            .state_dict_slots()
            .map(|s| {
                (
                    s.spec.name.clone(),
                    s.spec.shape.clone(),
                    self.buffer(s.spec.kind)[s.range()].to_vec(),
                )
            })
            .collect()
    }
}

fn check_shape(slot: &Slot, shape: &[usize]) -> Result<()> {
    if shape != slot.spec.shape.as_slice() {
        return Err(DetectError::ShapeMismatch {
            name: slot.spec.name.clone(),
            found: shape.to_vec(),
            expected: slot.spec.shape.clone(),
        });
    }
    Ok(())
}
