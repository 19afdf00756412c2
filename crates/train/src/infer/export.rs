//! `ringdet export`: a deployable model folder, as PaddleDetection's `tools/export_model.py`
//! writes one, that `ringdet infer --model_dir` runs without the training config.
//!
//! The folder `output_dir/<config name>/` holds `model.safetensors`, the weights given (a
//! trainer checkpoint holds the EMA weights) with every RepVGG block fused into one 3×3 conv
//! with bias (`ringdet_detect::fuse`; the block's `conv1.*`/`conv2.*` entries become
//! `<block>.conv.weight` and `<block>.conv.bias`, the names of PaddleDetection's deploy-mode
//! `RepVggBlock`), and `infer_cfg.yml` with the fields PaddleDetection writes (`mode`,
//! `draw_threshold`, `metric`, `use_dynamic_shape`, `arch`, `min_subgraph_size`, `Preprocess`,
//! `label_list`, `NMS`) plus a `ringdet:` section with what rebuilding the model needs (its size,
//! class count, batch size, category ids).
//!
//! Fusion changes the numbers only by float32 rounding: the folded weights are computed in f64
//! and rounded once, but the fused conv sums its products in another grouping than the two
//! branches plus the add did (see `docs/infer.md` for the measured difference).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ringdet_detect::arch::{Arch, CspItemSpec, RepVggSpec};
use ringdet_detect::fuse::{block_name, fuse_repvgg};
use ringdet_tensor::Tensor;

use super::infer_cfg::{INFER_CFG, WEIGHTS, write_infer_cfg};
use super::{InferError, InferModel};
use crate::Config;

/// What [`export`] wrote.
#[derive(Clone, Debug)]
pub struct ExportReport {
    /// The model folder.
    pub dir: PathBuf,
    /// The fused weights.
    pub weights: PathBuf,
    /// The inference settings.
    pub infer_cfg: PathBuf,
    /// RepVGG blocks fused.
    pub fused_blocks: usize,
    /// Tensors written.
    pub tensors: usize,
}

/// Every RepVGG block of the architecture, backbone then neck (the order of the forward).
pub fn repvgg_blocks(arch: &Arch) -> Vec<&RepVggSpec> {
    let mut out = Vec::new();
    for st in &arch.backbone.stages {
        for b in &st.blocks {
            out.push(&b.conv2);
        }
    }
    for st in arch.neck.fpn_stages.iter().chain(&arch.neck.pan_stages) {
        for item in &st.convs {
            if let CspItemSpec::Block(b) = item {
                out.push(&b.conv2);
            }
        }
    }
    out
}

/// The block a state-dict entry belongs to when it is one of a RepVGG block's branches.
pub(super) fn branch_of<'a>(blocks: &[&'a RepVggSpec], name: &str) -> Option<&'a RepVggSpec> {
    blocks.iter().copied().find(|b| {
        let prefix = block_name(b);
        name.strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with(".conv1.") || rest.starts_with(".conv2."))
    })
}

/// Exports the model of `config` with the weights at `weights` into `output_dir/name/` (`name`:
/// the config file's stem, as PaddleDetection names the folder).
pub fn export(
    config: &Config,
    name: &str,
    weights: &Path,
    output_dir: &Path,
) -> Result<ExportReport, InferError> {
    let model = InferModel::from_config(config, weights)?;
    let dir = output_dir.join(name);
    std::fs::create_dir_all(&dir).map_err(super::io_err(&dir))?;
    let fused = fuse_repvgg(&model.arch, &model.state).map_err(|source| InferError::Model {
        context: format!("fusing the RepVGG blocks of {}", weights.display()),
        source,
    })?;
    let blocks = repvgg_blocks(&model.arch);
    let mut entries: Vec<(String, Tensor)> = Vec::new();
    let tensor_err = |name: &str, e: ringdet_tensor::TensorError| InferError::Model {
        context: format!("exporting `{name}`"),
        source: ringdet_detect::error::DetectError::Input(e.to_string()),
    };
    let mut written = std::collections::HashSet::new();
    for (n, shape, values) in model.state.export() {
        if let Some(block) = branch_of(&blocks, &n) {
            let prefix = block_name(block).to_string();
            if written.insert(prefix.clone()) {
                let (w, b) = fused.get(&prefix).ok_or_else(|| InferError::Model {
                    context: format!("exporting `{prefix}`"),
                    source: ringdet_detect::error::DetectError::Input(
                        "the block was not fused".into(),
                    ),
                })?;
                let c = &block.conv1;
                let wname = format!("{prefix}.conv.weight");
                let bname = format!("{prefix}.conv.bias");
                let wt = Tensor::from_slice(w, &[c.cout, c.cin, 3, 3])
                    .map_err(|e| tensor_err(&wname, e))?;
                let bt = Tensor::from_slice(b, &[c.cout]).map_err(|e| tensor_err(&bname, e))?;
                entries.push((wname, wt));
                entries.push((bname, bt));
            }
            continue;
        }
        let t = Tensor::from_slice(&values, &shape).map_err(|e| tensor_err(&n, e))?;
        entries.push((n, t));
    }
    let weights_out = dir.join(WEIGHTS);
    let refs: Vec<(&str, &Tensor)> = entries.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let metadata = BTreeMap::from([
        ("format".to_string(), "ringdet-export".to_string()),
        ("repvgg".to_string(), "fused".to_string()),
    ]);
    ringdet_tensor::save(&weights_out, &refs, &metadata).map_err(|e| InferError::Model {
        context: format!("writing {}", weights_out.display()),
        source: ringdet_detect::error::DetectError::Input(e.to_string()),
    })?;
    let metric = match config.get("metric") {
        Some(serde_yaml_ng::Value::String(s)) => s.clone(),
        _ => "COCO".to_string(),
    };
    let infer_cfg = dir.join(INFER_CFG);
    write_infer_cfg(&infer_cfg, &model, &metric)?;
    tracing::info!(dir = %dir.display(), blocks = fused.len(), "exported");
    Ok(ExportReport {
        dir,
        weights: weights_out,
        infer_cfg,
        fused_blocks: fused.len(),
        tensors: entries.len(),
    })
}
