//! `-o key=value` overrides, as PaddleDetection's `-o`: dotted keys, values parsed as YAML
//! scalars or flow collections (`epoch=2`, `use_gpu=false`, `eval_size=[320,320]`). A key the
//! config does not have is added, as PaddleDetection does, with a warning that names the closest
//! key it has (a typo would otherwise change nothing, silently).

use super::{Config, ConfigError};
use serde_yaml_ng::Value;
use tracing::warn;

impl Config {
    /// Applies each `key=value` in order.
    pub fn apply_overrides<S: AsRef<str>>(&mut self, args: &[S]) -> Result<(), ConfigError> {
        for arg in args {
            let arg = arg.as_ref();
            let err = |msg: String| ConfigError::Override {
                arg: arg.to_string(),
                msg,
            };
            let (key, text) = arg
                .split_once('=')
                .ok_or_else(|| err("expected key=value".into()))?;
            let key = key.trim();
            if key.is_empty() {
                return Err(err("empty key".into()));
            }
            let value: Value = if text.trim().is_empty() {
                Value::Null
            } else {
                serde_yaml_ng::from_str(text).map_err(|e| err(format!("value is not YAML: {e}")))?
            };
            if self.get(key).is_none() {
                match self.closest_key(key) {
                    Some(near) => warn!("-o {arg}: unknown key {key}; did you mean {near}?"),
                    None => warn!(
                        "-o {arg}: unknown key {key}; the config has no such key, so it is added"
                    ),
                }
            }
            self.set(key, value, &format!("-o {arg}")).map_err(err)?;
        }
        Ok(())
    }
}

impl Config {
    /// The key of the merged config closest to `key` (fewest single-character edits over the
    /// whole dotted path), when it is close enough to be a likely typo: at most a third of the
    /// key's length, and at least 1 edit away.
    pub fn closest_key(&self, key: &str) -> Option<String> {
        let mut keys = Vec::new();
        collect_keys(self.root_map(), "", &mut keys);
        let limit = (key.chars().count() / 3).max(1);
        keys.into_iter()
            .map(|k| (edit_distance(key, &k), k))
            .filter(|(d, _)| (1..=limit).contains(d))
            .min_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)))
            .map(|(_, k)| k)
    }
}

/// Every dotted key of `map`, maps' own keys included (`TrainReader`, `TrainReader.batch_size`).
fn collect_keys(map: &serde_yaml_ng::Mapping, prefix: &str, out: &mut Vec<String>) {
    for (k, v) in map {
        let Some(k) = k.as_str() else { continue };
        let key = if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        };
        if let Value::Mapping(m) = v {
            collect_keys(m, &key, out);
        }
        out.push(key);
    }
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}
