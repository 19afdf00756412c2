//! `pretrain_weights`: a file that covers only part of the model (an ImageNet-pretrained
//! backbone, a checkpoint of another head) loads as PaddleDetection's `load_pretrain_weight`
//! does, and says what happened: which model tensors it filled, which it left as initialised,
//! which file tensors went unused and which did not fit.
//!
//! Names match as in PaddleDetection's `match_state_dict`: a model name takes the longest file
//! name that equals it or is a dotted suffix of it (`stem.conv1.conv.weight` fills
//! `backbone.stem.conv1.conv.weight`); a file name that would fill two model tensors is an
//! error; a shape mismatch leaves the model tensor as it was and is reported with both shapes;
//! float tensors of another width are converted to f32 (Paddle's `astype`). As there, a short
//! file name matches every model name it ends: a classifier's `fc.weight` is matched by the
//! head's `yolo_head.stem_cls.0.fc.weight` and reported as a shape mismatch.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::checkpoint::{WeightsFile, tensor_err};
use crate::error::{DetectError, Result};
use crate::state::ModelState;

/// A file tensor whose shape differs from the model tensor its name matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShapeMismatch {
    /// Name in the file.
    pub file_name: String,
    /// Shape in the file.
    pub file_shape: Vec<usize>,
    /// Name in the model.
    pub model_name: String,
    /// Shape the model needs.
    pub model_shape: Vec<usize>,
}

/// What loading a pretrained file did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PretrainReport {
    /// The file.
    pub path: PathBuf,
    /// Model tensors filled from the file.
    pub loaded: usize,
    /// Model tensors (state-dict order) the file did not fill: no name matched, or the shape
    /// did not.
    pub missing: Vec<String>,
    /// File tensors no model tensor took (file order).
    pub unused: Vec<String>,
    /// Matched names whose shapes differ (not loaded).
    pub mismatched: Vec<ShapeMismatch>,
}

/// Whether model name `model` takes file name `file` (PaddleDetection's `match`).
fn matches(model: &str, file: &str) -> bool {
    let file = if file.starts_with("backbone.res5") {
        &file["backbone.".len()..]
    } else {
        file
    };
    model == file
        || (model.len() > file.len()
            && model.ends_with(file)
            && model.as_bytes()[model.len() - file.len() - 1] == b'.')
}

/// Fills the tensors of `state` that `path` (safetensors or `.pdparams`) matches, leaving the
/// others as they are, and reports what it did.
pub fn load_pretrained(state: &mut ModelState, path: impl AsRef<Path>) -> Result<PretrainReport> {
    let path = path.as_ref();
    let file = WeightsFile::open(path)?;
    let file_names: Vec<String> = file.names().into_iter().map(String::from).collect();
    // PaddleDetection sorts both key lists; among equal-length candidates the first wins.
    let mut sorted: Vec<usize> = (0..file_names.len()).collect();
    sorted.sort_by(|&a, &b| file_names[a].cmp(&file_names[b]));
    let model: Vec<(String, Vec<usize>)> = state
        .layout
        .state_dict_slots()
        .map(|s| (s.spec.name.clone(), s.spec.shape.clone()))
        .collect();
    let mut used = vec![false; file_names.len()];
    let mut taken_by: Vec<Option<usize>> = vec![None; file_names.len()];
    let mut report = PretrainReport {
        path: path.to_path_buf(),
        loaded: 0,
        missing: Vec::new(),
        unused: Vec::new(),
        mismatched: Vec::new(),
    };
    for (mi, (name, shape)) in model.iter().enumerate() {
        let mut best: Option<usize> = None;
        for &fi in &sorted {
            let f = &file_names[fi];
            if matches(name, f) && best.is_none_or(|b| f.len() > file_names[b].len()) {
                best = Some(fi);
            }
        }
        let Some(fi) = best else {
            report.missing.push(name.clone());
            continue;
        };
        used[fi] = true;
        let fname = &file_names[fi];
        let t = file
            .tensor(fname)?
            .ok_or_else(|| DetectError::Input(format!("{}: `{fname}` vanished", path.display())))?;
        if t.shape() != shape.as_slice() {
            report.mismatched.push(ShapeMismatch {
                file_name: fname.clone(),
                file_shape: t.shape().to_vec(),
                model_name: name.clone(),
                model_shape: shape.clone(),
            });
            report.missing.push(name.clone());
            continue;
        }
        if let Some(other) = taken_by[fi] {
            return Err(DetectError::Input(format!(
                "{}: `{fname}` matches both `{}` and `{name}` of the model",
                path.display(),
                model[other].0
            )));
        }
        taken_by[fi] = Some(mi);
        let values = t.to_f32_vec().map_err(|e| tensor_err(path, e))?;
        state.set(name, shape, &values)?;
        report.loaded += 1;
    }
    report.unused = file_names
        .iter()
        .zip(&used)
        .filter(|(_, u)| !**u)
        .map(|(n, _)| n.clone())
        .collect();
    Ok(report)
}

/// Names listed one per line when few, else counted by their first two dotted parts.
fn names(f: &mut fmt::Formatter<'_>, names: &[String]) -> fmt::Result {
    if names.len() <= 12 {
        for n in names {
            writeln!(f, "    {n}")?;
        }
        return Ok(());
    }
    // (group, count, first name)
    let mut groups: Vec<(String, usize, &str)> = Vec::new();
    for n in names {
        let g: Vec<&str> = n.splitn(3, '.').take(2).collect();
        let g = g.join(".");
        match groups.last_mut() {
            Some((last, c, _)) if *last == g => *c += 1,
            _ => groups.push((g, 1, n)),
        }
    }
    for (g, c, first) in groups {
        if c == 1 {
            writeln!(f, "    {first}")?;
        } else {
            writeln!(f, "    {g}.* ({c})")?;
        }
    }
    Ok(())
}

impl fmt::Display for PretrainReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.loaded + self.missing.len();
        writeln!(
            f,
            "pretrain weights {}: loaded {} of {total} model tensors",
            self.path.display(),
            self.loaded
        )?;
        if !self.missing.is_empty() {
            writeln!(
                f,
                "  model tensors not in the file, left as initialised ({}):",
                self.missing.len()
            )?;
            names(f, &self.missing)?;
        }
        if !self.unused.is_empty() {
            writeln!(
                f,
                "  file tensors the model does not use ({}):",
                self.unused.len()
            )?;
            names(f, &self.unused)?;
        }
        if !self.mismatched.is_empty() {
            writeln!(
                f,
                "  shape mismatches, not loaded ({}):",
                self.mismatched.len()
            )?;
            for m in &self.mismatched {
                writeln!(
                    f,
                    "    {} {:?} in the file vs {} {:?} in the model",
                    m.file_name, m.file_shape, m.model_name, m.model_shape
                )?;
            }
        }
        Ok(())
    }
}
