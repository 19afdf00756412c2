//! CSPResNet (crn, large stem) as data: every layer with its PaddleDetection name and sizes.

use super::config::{BASE_BACKBONE_CHANNELS, BASE_BACKBONE_LAYERS, ModelConfig};
use super::layers::{Act, ConvBnSpec, ConvSpec};
use super::tensor_spec::TensorSpec;

/// `RepVggBlock` (training form): `act(BN(conv3x3(x)) + BN(conv1x1(x)))`, no α in crn.
#[derive(Clone, Debug, PartialEq)]
pub struct RepVggSpec {
    /// 3×3 branch, no activation.
    pub conv1: ConvBnSpec,
    /// 1×1 branch, no activation.
    pub conv2: ConvBnSpec,
}

/// `BasicBlock`: ConvBN3×3+swish → RepVgg, plus the input when `shortcut`.
#[derive(Clone, Debug, PartialEq)]
pub struct BasicBlockSpec {
    /// The 3×3 ConvBN + swish.
    pub conv1: ConvBnSpec,
    /// The RepVgg block.
    pub conv2: RepVggSpec,
    /// Residual add of the block input (backbone yes, neck no).
    pub shortcut: bool,
}

impl BasicBlockSpec {
    /// A block on `c` channels named `name`.
    pub fn new(name: &str, c: usize, shortcut: bool) -> Self {
        Self {
            conv1: ConvBnSpec::new(format!("{name}.conv1"), c, c, 3, 1, Act::Swish),
            conv2: RepVggSpec {
                conv1: ConvBnSpec::new(format!("{name}.conv2.conv1"), c, c, 3, 1, Act::Identity),
                conv2: ConvBnSpec::new(format!("{name}.conv2.conv2"), c, c, 1, 1, Act::Identity),
            },
            shortcut,
        }
    }
    /// Tensors in execution order.
    pub fn tensors(&self, out: &mut Vec<TensorSpec>) {
        self.conv1.tensors(out);
        self.conv2.conv1.tensors(out);
        self.conv2.conv2.tensors(out);
    }
}

/// `EffectiveSELayer`: `x · hardsigmoid(fc(mean_hw(x)))`, fc a biased 1×1 conv.
#[derive(Clone, Debug, PartialEq)]
pub struct EseSpec {
    /// The 1×1 conv with bias.
    pub fc: ConvSpec,
}

/// `CSPResStage` with stride 2.
#[derive(Clone, Debug, PartialEq)]
pub struct CspResStageSpec {
    /// 3×3 stride-2 ConvBN c_in → mid.
    pub conv_down: ConvBnSpec,
    /// Short branch 1×1 mid → mid/2.
    pub conv1: ConvBnSpec,
    /// Long branch 1×1 mid → mid/2, then the blocks.
    pub conv2: ConvBnSpec,
    /// BasicBlocks with shortcut.
    pub blocks: Vec<BasicBlockSpec>,
    /// ESE attention over the concat.
    pub attn: EseSpec,
    /// 1×1 mid → c_out.
    pub conv3: ConvBnSpec,
}

impl CspResStageSpec {
    fn new(name: &str, cin: usize, cout: usize, n: usize) -> Self {
        let mid = (cin + cout) / 2;
        let half = mid / 2;
        Self {
            conv_down: ConvBnSpec::new(format!("{name}.conv_down"), cin, mid, 3, 2, Act::Swish),
            conv1: ConvBnSpec::new(format!("{name}.conv1"), mid, half, 1, 1, Act::Swish),
            conv2: ConvBnSpec::new(format!("{name}.conv2"), mid, half, 1, 1, Act::Swish),
            blocks: (0..n)
                .map(|i| BasicBlockSpec::new(&format!("{name}.blocks.{i}"), half, true))
                .collect(),
            attn: EseSpec {
                fc: ConvSpec::with_default_init(format!("{name}.attn.fc"), mid, mid, 1, true),
            },
            conv3: ConvBnSpec::new(format!("{name}.conv3"), mid, cout, 1, 1, Act::Swish),
        }
    }
    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.conv3.cout
    }
    fn tensors(&self, out: &mut Vec<TensorSpec>) {
        self.conv_down.tensors(out);
        self.conv1.tensors(out);
        self.conv2.tensors(out);
        for b in &self.blocks {
            b.tensors(out);
        }
        self.attn.fc.tensors(out);
        self.conv3.tensors(out);
    }
}

/// CSPResNet: 3-conv stem then four stages; stages 1..3 feed the neck (strides 8, 16, 32).
#[derive(Clone, Debug, PartialEq)]
pub struct BackboneSpec {
    /// `stem.conv1..3`.
    pub stem: Vec<ConvBnSpec>,
    /// `stages.0..3`.
    pub stages: Vec<CspResStageSpec>,
    /// Indices of the stages whose outputs are returned.
    pub return_idx: Vec<usize>,
}

impl BackboneSpec {
    /// The backbone for a model size.
    pub fn new(cfg: &ModelConfig) -> Self {
        let ch = BASE_BACKBONE_CHANNELS.map(|c| cfg.width(c));
        let layers = BASE_BACKBONE_LAYERS.map(|n| cfg.depth(n));
        let p = "backbone";
        let stem = vec![
            ConvBnSpec::new(format!("{p}.stem.conv1"), 3, ch[0] / 2, 3, 2, Act::Swish),
            ConvBnSpec::new(
                format!("{p}.stem.conv2"),
                ch[0] / 2,
                ch[0] / 2,
                3,
                1,
                Act::Swish,
            ),
            ConvBnSpec::new(
                format!("{p}.stem.conv3"),
                ch[0] / 2,
                ch[0],
                3,
                1,
                Act::Swish,
            ),
        ];
        let stages = (0..4)
            .map(|i| CspResStageSpec::new(&format!("{p}.stages.{i}"), ch[i], ch[i + 1], layers[i]))
            .collect();
        Self {
            stem,
            stages,
            return_idx: vec![1, 2, 3],
        }
    }
    /// Channels of the returned features (shallowest first).
    pub fn out_channels(&self) -> Vec<usize> {
        self.return_idx
            .iter()
            .map(|&i| self.stages[i].out_channels())
            .collect()
    }
    /// Tensors in execution order (equal to the state-dict order here).
    pub fn tensors(&self, out: &mut Vec<TensorSpec>) {
        for c in &self.stem {
            c.tensors(out);
        }
        for s in &self.stages {
            s.tensors(out);
        }
    }
}
