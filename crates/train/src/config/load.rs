//! Reading one file and its `_BASE_` includes, depth first, and merging them the way
//! PaddleDetection's `merge_config` does: maps merge key by key, anything else is replaced.

use super::ConfigError;
use super::value::{Config, kind, normalize_tags};
use super::yaml::{foreign_tag, resolve_merges};
use serde_yaml_ng::{Mapping, Value};
use std::path::{Path, PathBuf};

impl Config {
    /// Loads a config file and its `_BASE_` includes into a merged config.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let mut cfg = Config::default();
        load_into(path, &mut cfg, &mut Vec::new())?;
        Ok(cfg)
    }
}

fn load_into(path: &Path, cfg: &mut Config, stack: &mut Vec<PathBuf>) -> Result<(), ConfigError> {
    let canonical = path.canonicalize().map_err(|error| ConfigError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    if stack.contains(&canonical) {
        let chain: Vec<String> = stack
            .iter()
            .chain([&canonical])
            .map(|p| p.display().to_string())
            .collect();
        return Err(ConfigError::Cycle {
            path: path.to_path_buf(),
            chain: chain.join(" -> "),
        });
    }
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    if let Some((tag, line)) = foreign_tag(&text) {
        return Err(ConfigError::Tag {
            path: path.to_path_buf(),
            line,
            tag,
        });
    }
    let mut doc: Value = serde_yaml_ng::from_str(&text).map_err(|e| ConfigError::Yaml {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })?;
    resolve_merges(&mut doc).map_err(|msg| ConfigError::Structure {
        path: path.to_path_buf(),
        msg,
    })?;
    let mut map = match doc {
        Value::Mapping(m) => m,
        Value::Null => Mapping::new(),
        other => {
            return Err(ConfigError::Structure {
                path: path.to_path_buf(),
                msg: format!("top level must be a map, found {}", kind(&other)),
            });
        }
    };
    stack.push(canonical);
    if let Some(bases) = map.remove("_BASE_") {
        let dir = path.parent().unwrap_or(Path::new("."));
        for base in base_list(path, bases)? {
            // `components()` drops the `./` of `./_base_/x.yml`, for tidy origins.
            let resolved: PathBuf = dir.join(&base).components().collect();
            load_into(&resolved, cfg, stack).map_err(|e| match e {
                ConfigError::Io {
                    path: failed,
                    error,
                } if failed == resolved => ConfigError::Base {
                    including: path.to_path_buf(),
                    base,
                    resolved,
                    error,
                },
                other => other,
            })?;
        }
    }
    stack.pop();
    let origin = path.display().to_string();
    for (k, v) in map {
        let key = key_string(path, &k)?;
        cfg.merge(&key, normalize_tags(v), &origin);
    }
    Ok(())
}

fn base_list(path: &Path, bases: Value) -> Result<Vec<String>, ConfigError> {
    let bad = |what: &str| ConfigError::Structure {
        path: path.to_path_buf(),
        msg: format!("_BASE_ must be a file name or a list of them, found {what}"),
    };
    match bases {
        Value::String(s) => Ok(vec![s]),
        Value::Sequence(items) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                other => Err(bad(kind(&other))),
            })
            .collect(),
        other => Err(bad(kind(&other))),
    }
}

fn key_string(path: &Path, k: &Value) -> Result<String, ConfigError> {
    match k {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(ConfigError::Structure {
            path: path.to_path_buf(),
            msg: format!("map keys must be scalars, found {}", kind(other)),
        }),
    }
}
