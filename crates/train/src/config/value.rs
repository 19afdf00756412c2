//! The merged config tree, where each leaf came from, and typed access with errors that name the
//! key and its origin.

use super::ConfigError;
use serde_yaml_ng::{Mapping, Value};
use std::collections::BTreeMap;

/// A merged PaddleDetection config.
#[derive(Clone, Debug, Default)]
pub struct Config {
    root: Mapping,
    /// Dotted key of every leaf (lists are leaves) -> the file or `-o` override that set it.
    origins: BTreeMap<String, String>,
}

/// Turns YAML tags into PaddleDetection's `name:` form: `- !CosineDecay {max_epochs: 360}`
/// becomes `- {name: CosineDecay, max_epochs: 360}`.
pub fn normalize_tags(v: Value) -> Value {
    match v {
        Value::Tagged(t) => {
            let name = Value::String(t.tag.to_string().trim_start_matches('!').to_string());
            let mut m = match normalize_tags(t.value) {
                Value::Mapping(m) => m,
                Value::Null => Mapping::new(),
                other => {
                    let mut m = Mapping::new();
                    m.insert("value".into(), other);
                    m
                }
            };
            m.insert("name".into(), name);
            Value::Mapping(m)
        }
        Value::Sequence(s) => Value::Sequence(s.into_iter().map(normalize_tags).collect()),
        Value::Mapping(m) => {
            Value::Mapping(m.into_iter().map(|(k, v)| (k, normalize_tags(v))).collect())
        }
        other => other,
    }
}

fn record_leaves(origins: &mut BTreeMap<String, String>, key: &str, v: &Value, origin: &str) {
    match v {
        Value::Mapping(m) if !m.is_empty() => {
            for (k, v) in m {
                let sub = format!("{key}.{}", scalar_key(k));
                record_leaves(origins, &sub, v, origin);
            }
        }
        _ => {
            origins.insert(key.to_string(), origin.to_string());
        }
    }
}

fn scalar_key(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        other => serde_yaml_ng::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

impl Config {
    /// Merges `value` at top-level `key`: maps merge key by key, anything else replaces.
    pub fn merge(&mut self, key: &str, value: Value, origin: &str) {
        let slot = self
            .root
            .entry(Value::String(key.to_string()))
            .or_insert(Value::Null);
        merge_value(slot, value, key, origin, &mut self.origins);
    }

    /// Sets the value at a dotted path, creating maps on the way (used by `-o`).
    pub fn set(&mut self, path: &str, value: Value, origin: &str) -> Result<(), String> {
        let parts: Vec<&str> = path.split('.').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(format!("invalid key {path:?}"));
        }
        let mut node = &mut self.root;
        for (i, part) in parts[..parts.len() - 1].iter().enumerate() {
            let entry = node
                .entry(Value::String(part.to_string()))
                .or_insert(Value::Mapping(Mapping::new()));
            if entry.is_null() {
                *entry = Value::Mapping(Mapping::new());
            }
            node = match entry {
                Value::Mapping(m) => m,
                other => {
                    return Err(format!(
                        "{} is {}, not a map",
                        parts[..=i].join("."),
                        kind(other)
                    ));
                }
            };
        }
        let last = parts[parts.len() - 1];
        let slot = node
            .entry(Value::String(last.to_string()))
            .or_insert(Value::Null);
        *slot = Value::Null;
        merge_value(slot, value, path, origin, &mut self.origins);
        Ok(())
    }

    /// The value at a dotted path (`LearningRate.base_lr`).
    pub fn get(&self, path: &str) -> Option<&Value> {
        let mut parts = path.split('.');
        let mut v = self.root.get(parts.next()?)?;
        for p in parts {
            v = v.as_mapping()?.get(p)?;
        }
        Some(v)
    }

    /// The file or override that set the value at `path` (or the nearest enclosing key).
    pub fn origin(&self, path: &str) -> String {
        let mut p = path;
        loop {
            if let Some(o) = self.origins.get(p) {
                return o.clone();
            }
            if let Some(o) = self
                .origins
                .range(format!("{p}.")..)
                .next()
                .filter(|(k, _)| k.starts_with(&format!("{p}.")))
            {
                return o.1.clone();
            }
            match p.rfind('.') {
                Some(i) => p = &p[..i],
                None => return "<nowhere>".into(),
            }
        }
    }

    /// The merged tree.
    pub(super) fn root_map(&self) -> &Mapping {
        &self.root
    }

    /// Every leaf key with the file or override that set it.
    pub fn origins(&self) -> &BTreeMap<String, String> {
        &self.origins
    }

    /// The merged tree as YAML.
    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(&self.root).unwrap_or_default()
    }

    fn err(&self, key: &str, msg: String) -> ConfigError {
        ConfigError::Value {
            key: key.to_string(),
            origin: self.origin(key),
            msg,
        }
    }

    /// The value at `key`, or a `Missing` error.
    pub fn required(&self, key: &str) -> Result<&Value, ConfigError> {
        self.get(key).ok_or_else(|| ConfigError::Missing {
            key: key.to_string(),
        })
    }

    /// The number at `key`.
    pub fn f64(&self, key: &str) -> Result<f64, ConfigError> {
        let v = self.required(key)?;
        v.as_f64()
            .ok_or_else(|| self.err(key, format!("expected a number, found {}", kind(v))))
    }

    /// The integer at `key` (`-1` for "all", as NMS limits use it).
    pub fn i64(&self, key: &str) -> Result<i64, ConfigError> {
        let v = self.required(key)?;
        v.as_i64()
            .ok_or_else(|| self.err(key, format!("expected an integer, found {}", describe(v))))
    }

    /// The non-negative integer at `key`.
    pub fn usize(&self, key: &str) -> Result<usize, ConfigError> {
        let v = self.required(key)?;
        v.as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| {
                self.err(
                    key,
                    format!("expected a non-negative integer, found {}", describe(v)),
                )
            })
    }

    /// The boolean at `key`.
    pub fn bool(&self, key: &str) -> Result<bool, ConfigError> {
        let v = self.required(key)?;
        v.as_bool().ok_or_else(|| {
            self.err(
                key,
                format!("expected true or false, found {}", describe(v)),
            )
        })
    }

    /// The string at `key`.
    pub fn string(&self, key: &str) -> Result<String, ConfigError> {
        let v = self.required(key)?;
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| self.err(key, format!("expected a string, found {}", describe(v))))
    }
}

/// A value's kind, with the value itself when it is a short scalar.
fn describe(v: &Value) -> String {
    match v {
        Value::String(s) if s.len() <= 40 => format!("the string {s:?}"),
        Value::Number(n) => format!("the number {n}"),
        Value::Bool(b) => format!("{b}"),
        other => kind(other).to_string(),
    }
}

fn merge_value(
    slot: &mut Value,
    value: Value,
    key: &str,
    origin: &str,
    origins: &mut BTreeMap<String, String>,
) {
    match (slot, value) {
        (Value::Mapping(old), Value::Mapping(new)) => {
            for (k, v) in new {
                let sub = format!("{key}.{}", scalar_key(&k));
                let child = old.entry(k).or_insert(Value::Null);
                merge_value(child, v, &sub, origin, origins);
            }
        }
        (slot, value) => {
            let prefix = format!("{key}.");
            origins.retain(|k, _| k != key && !k.starts_with(&prefix));
            record_leaves(origins, key, &value, origin);
            *slot = value;
        }
    }
}

/// A word for the kind of a YAML value, for messages.
pub(super) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a map",
        Value::Tagged(_) => "a tagged value",
    }
}
