//! Where every named tensor lives: trainable parameters in one flat buffer and running statistics in
//! another, both laid out in **reverse execution order** so that gradients become ready front to back
//! during backward and all-reduce buckets are contiguous slices.

use std::collections::HashMap;

use crate::arch::{Arch, TensorKind, TensorSpec};
use crate::error::{DetectError, Result};

/// One tensor and its place in the flat buffer of its kind.
#[derive(Clone, Debug, PartialEq)]
pub struct Slot {
    /// Name, shape, kind, role, init.
    pub spec: TensorSpec,
    /// Offset (in elements) into the buffer of `spec.kind`.
    pub offset: usize,
}

impl Slot {
    /// The element range of this tensor in its buffer.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.spec.numel()
    }
}

/// Offsets of every state-dict entry of a model.
#[derive(Clone, Debug)]
pub struct ParamLayout {
    slots: Vec<Slot>,
    state_dict_order: Vec<usize>,
    by_name: HashMap<String, usize>,
    num_params: usize,
    num_stats: usize,
    num_frozen: usize,
}

impl ParamLayout {
    /// Lay out the tensors of an architecture.
    pub fn new(arch: &Arch) -> Result<Self> {
        let exec = arch.exec_tensors();
        let mut by_name = HashMap::with_capacity(exec.len());
        let mut slots = Vec::with_capacity(exec.len());
        let (mut np, mut ns, mut nf) = (0, 0, 0);
        // Reverse execution order: the last tensor used by forward sits at offset 0.
        for spec in exec.into_iter().rev() {
            let counter = match spec.kind {
                TensorKind::Param => &mut np,
                TensorKind::Buffer => &mut ns,
                TensorKind::Frozen => &mut nf,
            };
            let offset = *counter;
            *counter += spec.numel();
            if by_name.insert(spec.name.clone(), slots.len()).is_some() {
                return Err(DetectError::Config(format!(
                    "duplicate tensor name `{}`",
                    spec.name
                )));
            }
            slots.push(Slot { spec, offset });
        }
        let state_dict_order = arch
            .state_dict_tensors()
            .iter()
            .map(|t| {
                by_name
                    .get(&t.name)
                    .copied()
                    .ok_or_else(|| DetectError::UnknownTensor(t.name.clone()))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            slots,
            state_dict_order,
            by_name,
            num_params: np,
            num_stats: ns,
            num_frozen: nf,
        })
    }

    /// Slots in reverse execution order (the buffer order).
    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }
    /// Slots in PaddleDetection's state-dict order.
    pub fn state_dict_slots(&self) -> impl Iterator<Item = &Slot> {
        self.state_dict_order.iter().map(|&i| &self.slots[i])
    }
    /// The slot of a name.
    pub fn slot(&self, name: &str) -> Result<&Slot> {
        self.by_name
            .get(name)
            .map(|&i| &self.slots[i])
            .ok_or_else(|| DetectError::UnknownTensor(name.into()))
    }
    /// The index in [`Self::slots`] of a name.
    pub fn index(&self, name: &str) -> Result<usize> {
        self.by_name
            .get(name)
            .copied()
            .ok_or_else(|| DetectError::UnknownTensor(name.into()))
    }
    /// Elements in the parameter (and gradient) buffer.
    pub fn num_params(&self) -> usize {
        self.num_params
    }
    /// Elements in the running-statistics buffer.
    pub fn num_stats(&self) -> usize {
        self.num_stats
    }
    /// Elements in the frozen buffer.
    pub fn num_frozen(&self) -> usize {
        self.num_frozen
    }
}
