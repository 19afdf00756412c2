//! CustomCSPPAN (with SPP on the deepest FPN stage) as data.

use super::backbone::BasicBlockSpec;
use super::config::{BASE_NECK_BLOCKS, BASE_NECK_CHANNELS, ModelConfig};
use super::layers::{Act, ConvBnSpec};
use super::tensor_spec::TensorSpec;

/// SPP: concat `[x, maxpool5, maxpool9, maxpool13]` (stride 1, same size) → ConvBN 1×1 + swish.
#[derive(Clone, Debug, PartialEq)]
pub struct SppSpec {
    /// Max-pool kernel sizes, in concat order after the identity.
    pub pool_sizes: Vec<usize>,
    /// The 1×1 ConvBN 4c → c.
    pub conv: ConvBnSpec,
}

/// One item of a CSPStage's `convs` sequence.
#[derive(Clone, Debug, PartialEq)]
pub enum CspItemSpec {
    /// A BasicBlock without shortcut.
    Block(BasicBlockSpec),
    /// The SPP block.
    Spp(SppSpec),
}

/// `CSPStage`: `conv3(concat[conv1(x), convs(conv2(x))])`.
#[derive(Clone, Debug, PartialEq)]
pub struct CspStageSpec {
    /// Short branch 1×1.
    pub conv1: ConvBnSpec,
    /// Long branch 1×1.
    pub conv2: ConvBnSpec,
    /// Blocks (and SPP) on the long branch.
    pub convs: Vec<CspItemSpec>,
    /// Fusion 1×1.
    pub conv3: ConvBnSpec,
}

impl CspStageSpec {
    fn new(name: &str, cin: usize, cout: usize, n: usize, spp: bool) -> Self {
        let mid = cout / 2;
        let mut convs = Vec::new();
        for i in 0..n {
            convs.push(CspItemSpec::Block(BasicBlockSpec::new(
                &format!("{name}.convs.{i}"),
                mid,
                false,
            )));
            if spp && i == (n - 1) / 2 {
                convs.push(CspItemSpec::Spp(SppSpec {
                    pool_sizes: vec![5, 9, 13],
                    conv: ConvBnSpec::new(
                        format!("{name}.convs.spp.conv"),
                        mid * 4,
                        mid,
                        1,
                        1,
                        Act::Swish,
                    ),
                }));
            }
        }
        Self {
            conv1: ConvBnSpec::new(format!("{name}.conv1"), cin, mid, 1, 1, Act::Swish),
            conv2: ConvBnSpec::new(format!("{name}.conv2"), cin, mid, 1, 1, Act::Swish),
            convs,
            conv3: ConvBnSpec::new(format!("{name}.conv3"), mid * 2, cout, 1, 1, Act::Swish),
        }
    }
    fn tensors(&self, out: &mut Vec<TensorSpec>) {
        self.conv1.tensors(out);
        self.conv2.tensors(out);
        for item in &self.convs {
            match item {
                CspItemSpec::Block(b) => b.tensors(out),
                CspItemSpec::Spp(s) => s.conv.tensors(out),
            }
        }
        self.conv3.tensors(out);
    }
}

/// CustomCSPPAN. Index 0 is the deepest level throughout.
#[derive(Clone, Debug, PartialEq)]
pub struct NeckSpec {
    /// Top-down stages (`fpn_stages.i.0`), deepest first; stage 0 has SPP.
    pub fpn_stages: Vec<CspStageSpec>,
    /// 1×1 routes before the nearest ×2 upsample (`fpn_routes.i`).
    pub fpn_routes: Vec<ConvBnSpec>,
    /// Bottom-up stages (`pan_stages.i.0`); run in the order i = n-2 … 0.
    pub pan_stages: Vec<CspStageSpec>,
    /// 3×3 stride-2 routes (`pan_routes.i`).
    pub pan_routes: Vec<ConvBnSpec>,
    /// Output channels, deepest first.
    pub out_channels: Vec<usize>,
}

impl NeckSpec {
    /// The neck on backbone features with `in_channels` (shallowest first).
    pub fn new(cfg: &ModelConfig, in_channels: &[usize]) -> Self {
        let out: Vec<usize> = BASE_NECK_CHANNELS.iter().map(|&c| cfg.width(c)).collect();
        let n = cfg.depth(BASE_NECK_BLOCKS);
        let ins: Vec<usize> = in_channels.iter().rev().copied().collect();
        let levels = ins.len();
        let mut fpn_stages = Vec::new();
        let mut fpn_routes = Vec::new();
        let mut ch_pre = 0;
        for i in 0..levels {
            let cin = if i > 0 { ins[i] + ch_pre / 2 } else { ins[i] };
            fpn_stages.push(CspStageSpec::new(
                &format!("neck.fpn_stages.{i}.0"),
                cin,
                out[i],
                n,
                i == 0,
            ));
            if i < levels - 1 {
                fpn_routes.push(ConvBnSpec::new(
                    format!("neck.fpn_routes.{i}"),
                    out[i],
                    out[i] / 2,
                    1,
                    1,
                    Act::Swish,
                ));
            }
            ch_pre = out[i];
        }
        let mut pan_stages = Vec::new();
        let mut pan_routes = Vec::new();
        for i in 0..levels - 1 {
            pan_routes.push(ConvBnSpec::new(
                format!("neck.pan_routes.{i}"),
                out[i + 1],
                out[i + 1],
                3,
                2,
                Act::Swish,
            ));
            let cin = out[i] + out[i + 1];
            pan_stages.push(CspStageSpec::new(
                &format!("neck.pan_stages.{i}.0"),
                cin,
                out[i],
                n,
                false,
            ));
        }
        Self {
            fpn_stages,
            fpn_routes,
            pan_stages,
            pan_routes,
            out_channels: out,
        }
    }

    /// Tensors in execution order: FPN stage/route pairs top-down, then PAN route/stage pairs bottom-up.
    pub fn exec_tensors(&self, out: &mut Vec<TensorSpec>) {
        for (i, s) in self.fpn_stages.iter().enumerate() {
            s.tensors(out);
            if let Some(r) = self.fpn_routes.get(i) {
                r.tensors(out);
            }
        }
        for i in (0..self.pan_stages.len()).rev() {
            self.pan_routes[i].tensors(out);
            self.pan_stages[i].tensors(out);
        }
    }

    /// Tensors in PaddleDetection's state-dict (registration) order.
    pub fn state_dict_tensors(&self, out: &mut Vec<TensorSpec>) {
        self.fpn_stages.iter().for_each(|s| s.tensors(out));
        self.fpn_routes.iter().for_each(|r| r.tensors(out));
        self.pan_stages.iter().for_each(|s| s.tensors(out));
        self.pan_routes.iter().for_each(|r| r.tensors(out));
    }
}
