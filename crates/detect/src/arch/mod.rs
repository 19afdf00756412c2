//! The PP-YOLOE architecture as data: every layer, its PaddleDetection name and its sizes, for any
//! width/depth multiplier; the forward and backward passes walk these specs.

mod backbone;
mod config;
mod head;
mod layers;
mod neck;
mod tensor_spec;

pub use backbone::{BackboneSpec, BasicBlockSpec, CspResStageSpec, EseSpec, RepVggSpec};
pub use config::{
    BASE_BACKBONE_CHANNELS, BASE_BACKBONE_LAYERS, BASE_NECK_BLOCKS, BASE_NECK_CHANNELS,
    FPN_STRIDES, ModelConfig,
};
pub use head::{CLS_PRIOR_PROB, EseAttnSpec, HeadSpec};
pub use layers::{Act, ConvBnSpec, ConvSpec};
pub use neck::{CspItemSpec, CspStageSpec, NeckSpec, SppSpec};
pub use tensor_spec::{Init, TensorKind, TensorRole, TensorSpec};

use crate::error::Result;

/// The whole detector: backbone, neck, head.
#[derive(Clone, Debug, PartialEq)]
pub struct Arch {
    /// Size and classes it was built from.
    pub config: ModelConfig,
    /// CSPResNet.
    pub backbone: BackboneSpec,
    /// CustomCSPPAN.
    pub neck: NeckSpec,
    /// PPYOLOEHead.
    pub head: HeadSpec,
}

impl Arch {
    /// Build the architecture for a configuration.
    pub fn new(config: ModelConfig) -> Result<Self> {
        config.validate()?;
        let backbone = BackboneSpec::new(&config);
        let neck = NeckSpec::new(&config, &backbone.out_channels());
        let head = HeadSpec::new(&config, &neck.out_channels);
        Ok(Self {
            config,
            backbone,
            neck,
            head,
        })
    }

    /// Every state-dict entry in the order the forward pass uses it.
    pub fn exec_tensors(&self) -> Vec<TensorSpec> {
        let mut out = Vec::new();
        self.backbone.tensors(&mut out);
        self.neck.exec_tensors(&mut out);
        self.head.exec_tensors(&mut out);
        out
    }

    /// Every state-dict entry in PaddleDetection's `state_dict()` order.
    pub fn state_dict_tensors(&self) -> Vec<TensorSpec> {
        let mut out = Vec::new();
        self.backbone.tensors(&mut out);
        self.neck.state_dict_tensors(&mut out);
        self.head.state_dict_tensors(&mut out);
        out
    }
}
