//! Gradient ranges reported as backward finishes them. The flat gradient buffer is laid out in
//! reverse execution order ([`crate::layout`]), so backward completes it roughly front to back;
//! a trainer that hears of each final range can all-reduce the front of the buffer (PyTorch
//! DDP's and Paddle's gradient buckets) while backward still computes the rest.
//!
//! Each layer's backward *releases* the parameters whose gradients it has finished
//! ([`crate::model::Bwd::release`]); every parameter is used by exactly one layer, so a released
//! gradient is final, and a later write into it is refused with an error naming the tensor.
//! `Releases` turns the released set into the prefix of the buffer that is final and hands each
//! new piece of that prefix to the [`GradSink`].

use std::ops::Range;

use ringdet_kernels::backend::Buffers;

use crate::arch::TensorKind;
use crate::error::{DetectError, Result};
use crate::layout::ParamLayout;

/// Receives the gradient of one backward pass piece by piece, each piece once it is final.
pub trait GradSink {
    /// `grads` is the final gradient of the elements `offset..offset + grads.len()` of the flat
    /// buffer. Calls come in buffer order, each starting where the previous one ended, from 0
    /// to the parameter count; an error stops the backward pass.
    fn ready(&mut self, offset: usize, grads: &[f32]) -> Result<()>;
}

impl<F: FnMut(usize, &[f32]) -> Result<()>> GradSink for F {
    fn ready(&mut self, offset: usize, grads: &[f32]) -> Result<()> {
        self(offset, grads)
    }
}

/// Which parameters' gradients are final, and how much of the buffer has been reported.
pub(crate) struct Releases<'a> {
    sink: &'a mut dyn GradSink,
    /// Per layout slot: released.
    released: Vec<bool>,
    /// Slot indices of the trainable parameters, in buffer order.
    params: Vec<usize>,
    /// Element ranges of those slots.
    ranges: Vec<Range<usize>>,
    /// Index into `params` of the first one not yet reported.
    next: usize,
    /// Elements reported so far (`0..reported`).
    reported: usize,
    num_params: usize,
}

impl<'a> Releases<'a> {
    /// Nothing released yet; reports go to `sink`.
    pub fn new(layout: &ParamLayout, sink: &'a mut dyn GradSink) -> Releases<'a> {
        let slots = layout.slots();
        let params: Vec<usize> = (0..slots.len())
            .filter(|&i| slots[i].spec.kind == TensorKind::Param)
            .collect();
        let ranges = params.iter().map(|&i| slots[i].range()).collect();
        Releases {
            sink,
            released: vec![false; slots.len()],
            params,
            ranges,
            next: 0,
            reported: 0,
            num_params: layout.num_params(),
        }
    }

    /// An error if the gradient of slot `index` (named `name`) was already released.
    pub fn check_open(&self, index: usize, name: &str) -> Result<()> {
        match self.released.get(index) {
            Some(true) => Err(DetectError::Input(format!(
                "backward: the gradient of `{name}` is written after it was reported final \
                 (a parameter used by two layers needs its release moved after the later one)"
            ))),
            _ => Ok(()),
        }
    }

    /// Marks the slots `indices` final; reports the prefix of `grads` (a buffer of `be`) that
    /// became final.
    pub fn release<B: Buffers<f32>>(
        &mut self,
        be: &B,
        indices: &[usize],
        grads: &B::Buf,
    ) -> Result<()> {
        for &i in indices {
            if let Some(r) = self.released.get_mut(i) {
                *r = true;
            }
        }
        self.advance(be, grads)
    }

    /// Marks every parameter final (the end of backward; a parameter no layer wrote keeps its
    /// zero or accumulated gradient) and reports the rest of `grads`.
    pub fn finish<B: Buffers<f32>>(&mut self, be: &B, grads: &B::Buf) -> Result<()> {
        self.released.iter_mut().for_each(|r| *r = true);
        self.advance(be, grads)
    }

    /// Hands the newly final prefix to the sink: borrowed on the host, downloaded from a
    /// device (a synchronous copy; see docs/gpu.md for the side-stream copy still to come).
    fn advance<B: Buffers<f32>>(&mut self, be: &B, grads: &B::Buf) -> Result<()> {
        while self.next < self.params.len() && self.released[self.params[self.next]] {
            self.next += 1;
        }
        let end = match self.ranges.get(self.next) {
            Some(r) => r.start,
            None => self.num_params,
        };
        if end > self.reported {
            if end > B::len(grads) {
                return Err(DetectError::Input(format!(
                    "backward: gradient buffer of {} values, layout of {}",
                    B::len(grads),
                    self.num_params
                )));
            }
            let piece = be
                .to_host(grads, self.reported..end)
                .map_err(|e| DetectError::Kernel {
                    op: "gradient download",
                    message: e.to_string(),
                })?;
            self.sink.ready(self.reported, &piece)?;
            self.reported = end;
        }
        Ok(())
    }
}
