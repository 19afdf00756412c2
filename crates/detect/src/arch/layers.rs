//! Leaf layer specs (conv, conv+BN) and the tensors each owns, in the order its forward uses them.

use super::tensor_spec::{Init, TensorKind, TensorRole, TensorSpec};

/// Activation after a layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    /// None (identity).
    Identity,
    /// x·sigmoid(x).
    Swish,
}

/// PaddleDetection's `ConvBNLayer`: conv (no bias, groups 1) → BatchNorm → activation.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvBnSpec {
    /// Name prefix, e.g. `backbone.stem.conv1`.
    pub name: String,
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// Square kernel size (padding is `kernel / 2`).
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Activation after BN.
    pub act: Act,
}

impl ConvBnSpec {
    /// A conv+BN layer.
    pub fn new(
        name: String,
        cin: usize,
        cout: usize,
        kernel: usize,
        stride: usize,
        act: Act,
    ) -> Self {
        Self {
            name,
            cin,
            cout,
            kernel,
            stride,
            act,
        }
    }
    /// Padding (same-size for stride 1).
    pub fn padding(&self) -> usize {
        self.kernel / 2
    }
    /// Weight, γ, β, running mean, running variance.
    pub fn tensors(&self, out: &mut Vec<TensorSpec>) {
        let n = &self.name;
        let fan_in = (self.cin * self.kernel * self.kernel) as f32;
        out.push(TensorSpec {
            name: format!("{n}.conv.weight"),
            shape: vec![self.cout, self.cin, self.kernel, self.kernel],
            kind: TensorKind::Param,
            role: TensorRole::ConvWeight,
            init: Init::Normal {
                std: (2.0 / fan_in).sqrt(),
            },
        });
        let c = vec![self.cout];
        let bn = |suffix: &str, kind, role, v| TensorSpec {
            name: format!("{n}.bn.{suffix}"),
            shape: c.clone(),
            kind,
            role,
            init: Init::Constant(v),
        };
        out.push(bn("weight", TensorKind::Param, TensorRole::BnWeight, 1.0));
        out.push(bn("bias", TensorKind::Param, TensorRole::BnBias, 0.0));
        out.push(bn("_mean", TensorKind::Buffer, TensorRole::BnMean, 0.0));
        out.push(bn(
            "_variance",
            TensorKind::Buffer,
            TensorRole::BnVariance,
            1.0,
        ));
    }
}

/// A plain `nn.Conv2D` (groups 1, padding `kernel / 2`, stride 1), optionally with bias.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvSpec {
    /// Name prefix, e.g. `yolo_head.pred_cls.0`.
    pub name: String,
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// Square kernel size.
    pub kernel: usize,
    /// Whether the conv has a bias.
    pub bias: bool,
    /// Initialisation of the weight.
    pub weight_init: Init,
    /// Initialisation of the bias.
    pub bias_init: Init,
}

impl ConvSpec {
    /// A conv with Paddle's default initialisation (Normal(0, sqrt(2 / fan_in)), bias 0).
    pub fn with_default_init(
        name: String,
        cin: usize,
        cout: usize,
        kernel: usize,
        bias: bool,
    ) -> Self {
        let fan_in = (cin * kernel * kernel) as f32;
        Self {
            name,
            cin,
            cout,
            kernel,
            bias,
            weight_init: Init::Normal {
                std: (2.0 / fan_in).sqrt(),
            },
            bias_init: Init::Constant(0.0),
        }
    }
    /// Padding.
    pub fn padding(&self) -> usize {
        self.kernel / 2
    }
    /// Weight then bias.
    pub fn tensors(&self, out: &mut Vec<TensorSpec>) {
        out.push(TensorSpec {
            name: format!("{}.weight", self.name),
            shape: vec![self.cout, self.cin, self.kernel, self.kernel],
            kind: TensorKind::Param,
            role: TensorRole::ConvWeight,
            init: self.weight_init,
        });
        if self.bias {
            out.push(TensorSpec {
                name: format!("{}.bias", self.name),
                shape: vec![self.cout],
                kind: TensorKind::Param,
                role: TensorRole::ConvBias,
                init: self.bias_init,
            });
        }
    }
}
