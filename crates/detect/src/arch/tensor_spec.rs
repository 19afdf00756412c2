//! One entry of the state dict: name, shape, what it is (parameter, running statistic, frozen) and how
//! PaddleDetection initialises it.

/// Whether a state-dict entry is trained, a running statistic, or a constant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorKind {
    /// Trainable parameter: lives in the flat parameter and gradient buffers.
    Param,
    /// BatchNorm running mean or variance: lives in the flat statistics buffer.
    Buffer,
    /// Not trained and not in the optimizer (`proj_conv.weight`).
    Frozen,
}

/// What a tensor is to the layer that owns it (drives weight decay and initialisation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorRole {
    /// Convolution weight `[out, in, kh, kw]`.
    ConvWeight,
    /// Convolution bias `[out]`.
    ConvBias,
    /// BatchNorm γ.
    BnWeight,
    /// BatchNorm β.
    BnBias,
    /// BatchNorm running mean.
    BnMean,
    /// BatchNorm running variance.
    BnVariance,
    /// The fixed DFL projection `[1, reg_max + 1, 1, 1]` = 0..reg_max.
    Projection,
}

/// PaddleDetection's initial value rule for a tensor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// Normal(0, std).
    Normal {
        /// Standard deviation.
        std: f32,
    },
    /// Every element equal to this value.
    Constant(f32),
    /// `linspace(0, n - 1, n)`.
    Linspace,
}

/// One named tensor of the model.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorSpec {
    /// PaddleDetection state-dict name.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Parameter, buffer or frozen.
    pub kind: TensorKind,
    /// Role in its layer.
    pub role: TensorRole,
    /// Initial value rule.
    pub init: Init,
}

impl TensorSpec {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
    /// Whether the optimizer's coupled L2 decay applies: conv weights and conv biases only
    /// (BN γ/β carry their own L2 of 0, and the frozen projection is not trained).
    pub fn decays(&self) -> bool {
        self.kind == TensorKind::Param
            && matches!(self.role, TensorRole::ConvWeight | TensorRole::ConvBias)
    }
    /// Whether EMA tracks this entry (every entry except the frozen projection).
    pub fn in_ema(&self) -> bool {
        self.kind != TensorKind::Frozen
    }
}
