//! `infer_cfg.yml`: written by [`super::export`], read by [`super::InferModel::from_model_dir`].
//! PaddleDetection's fields (its `deploy/python/infer.py` reads the same file) plus `ringdet:`,
//! what rebuilding the model needs without the training config.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ringdet_coco::transform::Interp;
use ringdet_detect::arch::{Arch, ModelConfig};
use ringdet_detect::fuse::{FusedRepVgg, block_name};
use ringdet_detect::nms::NmsParams;
use ringdet_detect::state::ModelState;
use ringdet_tensor::{DType, SafeTensors};
use serde_yaml_ng::{Mapping, Value};

use super::export::{branch_of, repvgg_blocks};
use super::{InferError, InferModel};
use crate::eval::EvalSettings;

/// The settings file of an exported model folder.
pub const INFER_CFG: &str = "infer_cfg.yml";
/// The fused weights of an exported model folder.
pub(super) const WEIGHTS: &str = "model.safetensors";

fn interp_code(i: Interp) -> u64 {
    match i {
        Interp::Nearest => 0,
        Interp::Linear => 1,
        Interp::Cubic => 2,
        Interp::Area => 3,
        Interp::Lanczos4 => 4,
    }
}

fn map(items: Vec<(&str, Value)>) -> Value {
    let mut m = Mapping::new();
    for (k, v) in items {
        m.insert(Value::from(k), v);
    }
    Value::Mapping(m)
}

fn floats(v: &[f32]) -> Value {
    // Through the shortest decimal of the f32, so 0.485 is written as 0.485.
    Value::Sequence(
        v.iter()
            .map(|x| Value::from(x.to_string().parse::<f64>().unwrap_or(f64::from(*x))))
            .collect(),
    )
}

/// Writes `path` for `model` (its eval transforms, labels, NMS and size).
pub(super) fn write_infer_cfg(
    path: &Path,
    model: &InferModel,
    metric: &str,
) -> Result<(), InferError> {
    let s = &model.settings;
    let (h, w) = s.size;
    let nms = &s.nms;
    let config = &model.arch.config;
    let cfg = map(vec![
        ("mode", "ringdet".into()),
        ("draw_threshold", 0.5.into()),
        ("metric", metric.into()),
        ("use_dynamic_shape", false.into()),
        ("arch", "YOLO".into()),
        ("min_subgraph_size", 3.into()),
        (
            "Preprocess",
            Value::Sequence(vec![
                map(vec![
                    ("type", "Resize".into()),
                    ("interp", interp_code(s.interp).into()),
                    ("keep_ratio", false.into()),
                    (
                        "target_size",
                        Value::Sequence(vec![(h as u64).into(), (w as u64).into()]),
                    ),
                ]),
                map(vec![
                    ("type", "NormalizeImage".into()),
                    ("is_scale", true.into()),
                    ("mean", floats(&s.mean)),
                    ("std", floats(&s.std)),
                    ("norm_type", "mean_std".into()),
                ]),
                map(vec![("type", "Permute".into())]),
            ]),
        ),
        (
            "label_list",
            Value::Sequence(model.labels.iter().map(|l| l.as_str().into()).collect()),
        ),
        (
            "NMS",
            map(vec![
                ("name", "MultiClassNMS".into()),
                ("keep_top_k", nms.keep_top_k.into()),
                ("nms_threshold", floats(&[nms.nms_threshold])[0].clone()),
                ("nms_top_k", nms.nms_top_k.into()),
                ("score_threshold", floats(&[nms.score_threshold])[0].clone()),
            ]),
        ),
        (
            "ringdet",
            map(vec![
                ("weights", WEIGHTS.into()),
                ("repvgg", "fused".into()),
                ("width_mult", config.width_mult.into()),
                ("depth_mult", config.depth_mult.into()),
                ("num_classes", (config.num_classes as u64).into()),
                ("reg_max", (config.reg_max as u64).into()),
                ("batch_size", (s.batch_size as u64).into()),
                (
                    "category_ids",
                    Value::Sequence(model.category_ids.iter().map(|&i| i.into()).collect()),
                ),
            ]),
        ),
    ]);
    let text = serde_yaml_ng::to_string(&cfg).map_err(|e| InferError::InferCfg {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })?;
    std::fs::write(path, text).map_err(super::io_err(path))
}

/// Typed reads of `infer_cfg.yml` with errors naming the file and the key.
struct Reader<'a> {
    path: &'a Path,
    root: &'a Value,
}

impl Reader<'_> {
    fn err(&self, key: &str, msg: &str) -> InferError {
        InferError::InferCfg {
            path: self.path.to_path_buf(),
            msg: format!("{key}: {msg}"),
        }
    }

    fn get<'v>(&self, v: &'v Value, key: &str, full: &str) -> Result<&'v Value, InferError> {
        v.get(key).ok_or_else(|| self.err(full, "missing"))
    }

    fn f64(&self, v: &Value, key: &str, full: &str) -> Result<f64, InferError> {
        self.get(v, key, full)?
            .as_f64()
            .ok_or_else(|| self.err(full, "expected a number"))
    }

    fn u64(&self, v: &Value, key: &str, full: &str) -> Result<u64, InferError> {
        self.get(v, key, full)?
            .as_u64()
            .ok_or_else(|| self.err(full, "expected a whole number"))
    }

    fn i64(&self, v: &Value, key: &str, full: &str) -> Result<i64, InferError> {
        self.get(v, key, full)?
            .as_i64()
            .ok_or_else(|| self.err(full, "expected a whole number"))
    }

    fn triple(&self, v: &Value, key: &str, full: &str) -> Result<[f32; 3], InferError> {
        let seq = self
            .get(v, key, full)?
            .as_sequence()
            .ok_or_else(|| self.err(full, "expected 3 numbers"))?;
        let vals: Option<Vec<f32>> = seq.iter().map(|x| x.as_f64().map(|x| x as f32)).collect();
        match vals.as_deref() {
            Some(&[a, b, c]) => Ok([a, b, c]),
            _ => Err(self.err(full, "expected 3 numbers")),
        }
    }
}

/// The eval settings of `Preprocess` (Resize, NormalizeImage, Permute; PadStride is a no-op at
/// a fixed size) and `NMS`, with the `ringdet.batch_size`.
fn settings(r: &Reader, batch_size: usize) -> Result<EvalSettings, InferError> {
    let mut s = EvalSettings {
        batch_size,
        size: (0, 0),
        interp: Interp::Linear,
        mean: ringdet_coco::transform::IMAGENET_MEAN,
        std: ringdet_coco::transform::IMAGENET_STD,
        nms: NmsParams::default(),
        progress_bar: false,
    };
    let list = r
        .get(r.root, "Preprocess", "Preprocess")?
        .as_sequence()
        .ok_or_else(|| r.err("Preprocess", "expected a list"))?;
    for (i, item) in list.iter().enumerate() {
        let key = format!("Preprocess.{i}");
        let kind = r
            .get(item, "type", &format!("{key}.type"))?
            .as_str()
            .unwrap_or_default();
        match kind {
            "Resize" => {
                if item.get("keep_ratio").and_then(Value::as_bool) == Some(true) {
                    return Err(r.err(&format!("{key}.keep_ratio"), "true is not supported"));
                }
                let size = r
                    .get(item, "target_size", &format!("{key}.target_size"))?
                    .as_sequence()
                    .and_then(|t| match t.as_slice() {
                        [h, w] => Some((h.as_u64()? as usize, w.as_u64()? as usize)),
                        [x] => Some((x.as_u64()? as usize, x.as_u64()? as usize)),
                        _ => None,
                    })
                    .filter(|&(h, w)| h > 0 && w > 0)
                    .ok_or_else(|| {
                        r.err(&format!("{key}.target_size"), "expected [height, width]")
                    })?;
                s.size = size;
                s.interp = match item.get("interp").map_or(Some(1), Value::as_u64) {
                    Some(0) => Interp::Nearest,
                    Some(1) => Interp::Linear,
                    Some(2) => Interp::Cubic,
                    Some(3) => Interp::Area,
                    Some(4) => Interp::Lanczos4,
                    _ => return Err(r.err(&format!("{key}.interp"), "expected 0..=4")),
                };
            }
            "NormalizeImage" => {
                let mut mean = r.triple(item, "mean", &format!("{key}.mean"))?;
                let mut std = r.triple(item, "std", &format!("{key}.std"))?;
                match item.get("norm_type").and_then(Value::as_str) {
                    None | Some("mean_std") => {}
                    Some("none") => (mean, std) = ([0.0; 3], [1.0; 3]),
                    Some(other) => {
                        return Err(r.err(
                            &format!("{key}.norm_type"),
                            &format!("{other:?} is not supported"),
                        ));
                    }
                }
                if item.get("is_scale").and_then(Value::as_bool) == Some(false) {
                    mean = mean.map(|m| m / 255.0);
                    std = std.map(|v| v / 255.0);
                }
                if std.iter().any(|&v| !(v.is_finite() && v > 0.0)) {
                    return Err(r.err(&format!("{key}.std"), "must be above 0"));
                }
                (s.mean, s.std) = (mean, std);
            }
            "Permute" | "PadStride" => {}
            other => {
                return Err(r.err(
                    &format!("{key}.type"),
                    &format!("{other:?} is not supported (Resize, NormalizeImage, Permute are)"),
                ));
            }
        }
    }
    if s.size == (0, 0) {
        return Err(r.err("Preprocess", "no Resize (the model runs at a fixed size)"));
    }
    let nms = r.get(r.root, "NMS", "NMS")?;
    s.nms = NmsParams {
        score_threshold: r.f64(nms, "score_threshold", "NMS.score_threshold")? as f32,
        nms_top_k: r.i64(nms, "nms_top_k", "NMS.nms_top_k")?,
        keep_top_k: r.i64(nms, "keep_top_k", "NMS.keep_top_k")?,
        nms_threshold: r.f64(nms, "nms_threshold", "NMS.nms_threshold")? as f32,
    };
    Ok(s)
}

/// Reads an exported model folder: `infer_cfg.yml` and the fused weights it names.
pub(super) fn load_model_dir(dir: &Path) -> Result<InferModel, InferError> {
    if !dir.is_dir() {
        return Err(InferError::Path {
            what: "model folder (--model_dir)",
            path: dir.to_path_buf(),
            msg: "does not exist or is not a folder".into(),
        });
    }
    let path = dir.join(INFER_CFG);
    let text = std::fs::read_to_string(&path).map_err(super::io_err(&path))?;
    let root: Value = serde_yaml_ng::from_str(&text).map_err(|e| InferError::InferCfg {
        path: path.clone(),
        msg: e.to_string(),
    })?;
    let r = Reader {
        path: &path,
        root: &root,
    };
    let rd = r.get(&root, "ringdet", "ringdet")?;
    let num_classes = r.u64(rd, "num_classes", "ringdet.num_classes")? as usize;
    let config = ModelConfig {
        width_mult: r.f64(rd, "width_mult", "ringdet.width_mult")?,
        depth_mult: r.f64(rd, "depth_mult", "ringdet.depth_mult")?,
        num_classes,
        reg_max: r.u64(rd, "reg_max", "ringdet.reg_max")? as usize,
    };
    let batch_size = r.u64(rd, "batch_size", "ringdet.batch_size")? as usize;
    let weights_name = r
        .get(rd, "weights", "ringdet.weights")?
        .as_str()
        .ok_or_else(|| r.err("ringdet.weights", "expected a file name"))?;
    let settings = settings(&r, batch_size)?;
    let labels: Vec<String> = r
        .get(&root, "label_list", "label_list")?
        .as_sequence()
        .ok_or_else(|| r.err("label_list", "expected a list"))?
        .iter()
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => serde_yaml_ng::to_string(other)
                .unwrap_or_default()
                .trim()
                .to_string(),
        })
        .collect();
    if labels.len() != num_classes {
        return Err(r.err(
            "label_list",
            &format!(
                "{} labels for {num_classes} classes (ringdet.num_classes)",
                labels.len()
            ),
        ));
    }
    let category_ids: Vec<i64> = match rd.get("category_ids") {
        None => (0..num_classes as i64).collect(),
        Some(v) => v
            .as_sequence()
            .and_then(|s| s.iter().map(Value::as_i64).collect::<Option<Vec<_>>>())
            .filter(|ids| ids.len() == num_classes)
            .ok_or_else(|| {
                r.err(
                    "ringdet.category_ids",
                    &format!("expected {num_classes} whole numbers"),
                )
            })?,
    };
    let arch = Arch::new(config).map_err(|source| InferError::Model {
        context: format!("building the model {}", path.display()),
        source,
    })?;
    let weights = dir.join(weights_name);
    let (state, fused) = load_fused(&arch, &weights)?;
    Ok(InferModel {
        arch,
        state,
        fused: Some(fused),
        settings,
        labels,
        category_ids,
        image_ids: HashMap::new(),
        labels_from: format!("label_list of {}", path.display()),
    })
}

/// The state (RepVGG branches left zero) and fused convs of an exported weights file.
fn load_fused(arch: &Arch, path: &PathBuf) -> Result<(ModelState, FusedRepVgg), InferError> {
    let model_err = |source| InferError::Model {
        context: format!("loading the exported weights {}", path.display()),
        source,
    };
    let input = |msg: String| model_err(ringdet_detect::error::DetectError::Input(msg));
    if !path.is_file() {
        return Err(InferError::Path {
            what: "exported weights",
            path: path.clone(),
            msg: "does not exist or is not a file".into(),
        });
    }
    let file = SafeTensors::open(path).map_err(|e| input(e.to_string()))?;
    let read = |name: &str, shape: &[usize]| -> Result<Vec<f32>, InferError> {
        file.tensor_checked(name, DType::F32, shape)
            .and_then(|t| t.to_vec::<f32>())
            .map_err(|e| input(e.to_string()))
    };
    let blocks = repvgg_blocks(arch);
    let mut fused: FusedRepVgg = std::collections::HashMap::new();
    for b in &blocks {
        let prefix = block_name(b);
        let c = &b.conv1;
        let w = read(&format!("{prefix}.conv.weight"), &[c.cout, c.cin, 3, 3])?;
        let bias = read(&format!("{prefix}.conv.bias"), &[c.cout])?;
        fused.insert(prefix.to_string(), (w, bias));
    }
    let mut state = ModelState::zeros(arch).map_err(model_err)?;
    let layout = std::sync::Arc::clone(&state.layout);
    state
        .load_with(|name| {
            let slot = layout.slot(name)?;
            let shape = slot.spec.shape.clone();
            if branch_of(&blocks, name).is_some() {
                return Ok(Some((shape.clone(), vec![0.0; shape.iter().product()])));
            }
            if file.info(name).is_none() {
                return Ok(None);
            }
            let t = file
                .tensor_checked(name, DType::F32, &shape)
                .and_then(|t| t.to_vec::<f32>())
                .map_err(|e| ringdet_detect::error::DetectError::Input(e.to_string()))?;
            Ok(Some((shape, t)))
        })
        .map_err(|e| match e {
            ringdet_detect::error::DetectError::MissingTensor(n) => {
                input(format!("missing tensor `{n}`"))
            }
            other => model_err(other),
        })?;
    Ok((state, fused))
}
