//! PPYOLOEHead (ET-head) as data: ESEAttn stems, prediction convs and the fixed DFL projection.

use super::config::{FPN_STRIDES, ModelConfig};
use super::layers::{Act, ConvBnSpec, ConvSpec};
use super::tensor_spec::{Init, TensorKind, TensorRole, TensorSpec};

/// Prior probability of the classification bias initialisation.
pub const CLS_PRIOR_PROB: f64 = 0.01;

/// `ESEAttn`: `ConvBN1x1+swish(feat · sigmoid(fc(avg)))`.
#[derive(Clone, Debug, PartialEq)]
pub struct EseAttnSpec {
    /// 1×1 conv with bias, weight N(0, 0.001).
    pub fc: ConvSpec,
    /// 1×1 ConvBN + swish.
    pub conv: ConvBnSpec,
}

impl EseAttnSpec {
    fn new(name: &str, c: usize) -> Self {
        let mut fc = ConvSpec::with_default_init(format!("{name}.fc"), c, c, 1, true);
        fc.weight_init = Init::Normal { std: 0.001 };
        Self {
            fc,
            conv: ConvBnSpec::new(format!("{name}.conv"), c, c, 1, 1, Act::Swish),
        }
    }
    fn tensors(&self, out: &mut Vec<TensorSpec>) {
        self.fc.tensors(out);
        self.conv.tensors(out);
    }
}

/// The head; vectors are indexed by level, deepest (stride 32) first.
#[derive(Clone, Debug, PartialEq)]
pub struct HeadSpec {
    /// Classification stems.
    pub stem_cls: Vec<EseAttnSpec>,
    /// Regression stems.
    pub stem_reg: Vec<EseAttnSpec>,
    /// 3×3 class convs (weight 0, bias −ln((1−p)/p)).
    pub pred_cls: Vec<ConvSpec>,
    /// 3×3 distribution convs (weight 0, bias 1), channels side-major `[l, t, r, b] × bins`.
    pub pred_reg: Vec<ConvSpec>,
    /// Strides per level.
    pub strides: Vec<usize>,
    /// Class count.
    pub num_classes: usize,
    /// DFL maximum bin.
    pub reg_max: usize,
}

impl HeadSpec {
    /// The head on neck features with `in_channels` (deepest first).
    pub fn new(cfg: &ModelConfig, in_channels: &[usize]) -> Self {
        let bins = cfg.reg_bins();
        let cls_bias = -((1.0 - CLS_PRIOR_PROB) / CLS_PRIOR_PROB).ln() as f32;
        let pred = |kind: &str, i: usize, c: usize, cout: usize, bias: f32| ConvSpec {
            name: format!("yolo_head.{kind}.{i}"),
            cin: c,
            cout,
            kernel: 3,
            bias: true,
            weight_init: Init::Constant(0.0),
            bias_init: Init::Constant(bias),
        };
        let en = in_channels.iter().enumerate();
        Self {
            stem_cls: en
                .clone()
                .map(|(i, &c)| EseAttnSpec::new(&format!("yolo_head.stem_cls.{i}"), c))
                .collect(),
            stem_reg: en
                .clone()
                .map(|(i, &c)| EseAttnSpec::new(&format!("yolo_head.stem_reg.{i}"), c))
                .collect(),
            pred_cls: en
                .clone()
                .map(|(i, &c)| pred("pred_cls", i, c, cfg.num_classes, cls_bias))
                .collect(),
            pred_reg: en
                .map(|(i, &c)| pred("pred_reg", i, c, 4 * bins, 1.0))
                .collect(),
            strides: FPN_STRIDES[..in_channels.len()].to_vec(),
            num_classes: cfg.num_classes,
            reg_max: cfg.reg_max,
        }
    }

    /// The frozen projection `proj_conv.weight` = 0..reg_max.
    pub fn proj_tensor(&self) -> TensorSpec {
        TensorSpec {
            name: "yolo_head.proj_conv.weight".into(),
            shape: vec![1, self.reg_max + 1, 1, 1],
            kind: TensorKind::Frozen,
            role: TensorRole::Projection,
            init: Init::Linspace,
        }
    }

    /// Tensors in execution order: per level stem_cls, pred_cls, stem_reg, pred_reg; projection last.
    pub fn exec_tensors(&self, out: &mut Vec<TensorSpec>) {
        for i in 0..self.strides.len() {
            self.stem_cls[i].tensors(out);
            self.pred_cls[i].tensors(out);
            self.stem_reg[i].tensors(out);
            self.pred_reg[i].tensors(out);
        }
        out.push(self.proj_tensor());
    }

    /// Tensors in PaddleDetection's state-dict order.
    pub fn state_dict_tensors(&self, out: &mut Vec<TensorSpec>) {
        self.stem_cls.iter().for_each(|s| s.tensors(out));
        self.stem_reg.iter().for_each(|s| s.tensors(out));
        self.pred_cls.iter().for_each(|c| c.tensors(out));
        self.pred_reg.iter().for_each(|c| c.tensors(out));
        out.push(self.proj_tensor());
    }
}
