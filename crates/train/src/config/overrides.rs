//! `-o key=value` overrides, as PaddleDetection's `-o`: dotted keys, values parsed as YAML
//! scalars or flow collections (`epoch=2`, `use_gpu=false`, `eval_size=[320,320]`).

use super::{Config, ConfigError};
use serde_yaml_ng::Value;

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
            self.set(key, value, &format!("-o {arg}")).map_err(err)?;
        }
        Ok(())
    }
}
