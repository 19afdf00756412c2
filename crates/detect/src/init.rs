//! PaddleDetection's initialisation: Kaiming-normal convs (fan-in), BN identity, ESEAttn fc N(0, 0.001),
//! zero prediction weights with the prior-probability class bias and a reg bias of 1, proj = 0..reg_max.

use crate::arch::{Init, TensorKind};
use crate::state::ModelState;

/// A seeded source of standard-normal samples (SplitMix64 + Box–Muller), reproducible on any machine.
#[derive(Clone, Debug)]
pub struct SeededNormal {
    state: u64,
    spare: Option<f64>,
}

impl SeededNormal {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self {
            state: seed,
            spare: None,
        }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    fn next_open01(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// One N(0, 1) sample.
    pub fn sample(&mut self) -> f64 {
        if let Some(s) = self.spare.take() {
            return s;
        }
        let r = (-2.0 * self.next_open01().ln()).sqrt();
        let theta = 2.0 * std::f64::consts::PI * self.next_open01();
        self.spare = Some(r * theta.sin());
        r * theta.cos()
    }
}

/// Fill every tensor of `state` with its PaddleDetection initial value, drawing normals from `rng` in
/// state-dict order. Gradients are zeroed.
pub fn initialize(state: &mut ModelState, rng: &mut SeededNormal) {
    let layout = std::sync::Arc::clone(&state.layout);
    for slot in layout.state_dict_slots() {
        let buf = match slot.spec.kind {
            TensorKind::Param => &mut state.params,
            TensorKind::Buffer => &mut state.stats,
            TensorKind::Frozen => &mut state.frozen,
        };
        let values = &mut buf[slot.range()];
        match slot.spec.init {
            Init::Constant(v) => values.fill(v),
            Init::Normal { std } => values
                .iter_mut()
                .for_each(|v| *v = (rng.sample() * std as f64) as f32),
            Init::Linspace => values
                .iter_mut()
                .enumerate()
                .for_each(|(i, v)| *v = i as f32),
        }
    }
    state.grads.fill(0.0);
}
