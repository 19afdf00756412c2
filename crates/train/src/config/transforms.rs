//! `TrainReader.sample_transforms` read into the loader's per-sample train transforms, so a
//! config that lists fewer augmentations (or other parameters) trains with exactly those: a
//! transform the list leaves out is off, one it names takes its parameters, and a transform or
//! parameter this trainer does not implement is an error naming it — never silently ignored.

use serde_yaml_ng::{Mapping, Value};

use ringdet_coco::transform::{
    FlipProb, RandomCrop, RandomDistort, RandomExpand, TrainSampleTransforms,
};

use super::{Config, ConfigError};

/// The list the transforms are read from.
const LIST: &str = "TrainReader.sample_transforms";

/// The per-sample transforms this trainer runs, in the only order it runs them.
const ORDER: [&str; 5] = [
    "Decode",
    "RandomDistort",
    "RandomExpand",
    "RandomCrop",
    "RandomFlip",
];

/// Every augmentation switched off: what a list naming only `Decode` asks for.
pub fn no_augmentation() -> TrainSampleTransforms {
    let never = |mut t: [f64; 3]| {
        t[2] = 1.0;
        t
    };
    let d = RandomDistort::default();
    TrainSampleTransforms {
        distort: RandomDistort {
            hue: never(d.hue),
            saturation: never(d.saturation),
            contrast: never(d.contrast),
            brightness: never(d.brightness),
        },
        expand: RandomExpand {
            prob: 1.0,
            ..RandomExpand::default()
        },
        crop: RandomCrop {
            thresholds: Vec::new(),
            allow_no_crop: true,
            ..RandomCrop::default()
        },
        flip_prob: FlipProb(0.0),
    }
}

/// Reads [`LIST`]; a config without the list gets PP-YOLOE's defaults (what its base
/// `ppyoloe_reader.yml` lists).
pub fn train_sample_transforms(c: &Config) -> Result<TrainSampleTransforms, ConfigError> {
    let Some(list) = c.get(LIST) else {
        return Ok(TrainSampleTransforms::default());
    };
    let items = list.as_sequence().ok_or_else(|| ConfigError::Value {
        key: LIST.into(),
        origin: c.origin(LIST),
        msg: "expected a list of transforms (`- Name: {...}`)".into(),
    })?;
    let mut out = no_augmentation();
    let mut last_rank = None;
    for (i, item) in items.iter().enumerate() {
        let item_key = format!("{LIST}.{i}");
        let err = |key: &str, msg: String| ConfigError::Value {
            key: key.to_string(),
            origin: c.origin(&item_key),
            msg,
        };
        let (name, params) = match item.as_mapping() {
            Some(m) if m.len() == 1 => {
                let (k, v) = m
                    .iter()
                    .next()
                    .ok_or_else(|| err(&item_key, "empty".into()))?;
                let name = k
                    .as_str()
                    .ok_or_else(|| err(&item_key, "the transform name is not a string".into()))?;
                (name.to_string(), v)
            }
            _ => {
                return Err(err(
                    &item_key,
                    "expected one `Name: {parameters}` entry".into(),
                ));
            }
        };
        let rank = ORDER.iter().position(|n| *n == name).ok_or_else(|| {
            err(
                &item_key,
                format!(
                    "{name} is not supported by this trainer (it runs {})",
                    ORDER.join(", ")
                ),
            )
        })?;
        if last_rank.is_some_and(|r| r >= rank) {
            return Err(err(
                &item_key,
                format!(
                    "{name} comes after a transform it must precede: this trainer runs them in \
                     the order {}",
                    ORDER.join(" → ")
                ),
            ));
        }
        last_rank = Some(rank);
        let empty = Mapping::new();
        let params = match params {
            Value::Null => &empty,
            Value::Mapping(m) => m,
            _ => {
                return Err(err(
                    &item_key,
                    format!("{name}: expected a map of parameters"),
                ));
            }
        };
        let p = Params {
            c,
            key: format!("{item_key}.{name}"),
            params,
        };
        match name.as_str() {
            "Decode" => p.only(&[])?,
            "RandomDistort" => {
                p.only(&[
                    "hue",
                    "saturation",
                    "contrast",
                    "brightness",
                    "random_apply",
                    "count",
                    "random_channel",
                ])?;
                p.must_be("random_apply", Value::Bool(true))?;
                p.must_be("count", Value::from(4))?;
                p.must_be("random_channel", Value::Bool(false))?;
                let d = RandomDistort::default();
                out.distort = RandomDistort {
                    hue: p.triple("hue", d.hue)?,
                    saturation: p.triple("saturation", d.saturation)?,
                    contrast: p.triple("contrast", d.contrast)?,
                    brightness: p.triple("brightness", d.brightness)?,
                };
            }
            "RandomExpand" => {
                p.only(&["ratio", "prob", "fill_value"])?;
                let d = RandomExpand::default();
                let ratio = p.f64("ratio", d.ratio)?;
                if !(ratio.is_finite() && ratio >= 1.0) {
                    return Err(p.bad("ratio", format!("must be at least 1, found {ratio}")));
                }
                let fill = p.list::<3>("fill_value", d.fill_value.map(f64::from))?;
                out.expand = RandomExpand {
                    ratio,
                    prob: p.probability("prob", d.prob)?,
                    fill_value: fill.map(|v| v as f32),
                };
            }
            "RandomCrop" => {
                p.only(&[
                    "aspect_ratio",
                    "thresholds",
                    "scaling",
                    "num_attempts",
                    "allow_no_crop",
                    "cover_all_box",
                    "is_mask_crop",
                    "ioumode",
                    "prob",
                ])?;
                p.must_be("ioumode", Value::from("iou"))?;
                p.must_be("is_mask_crop", Value::Bool(false))?;
                p.must_be("prob", Value::from(1.0))?;
                let d = RandomCrop::default();
                let thresholds = match p.params.get("thresholds") {
                    None | Some(Value::Null) => d.thresholds.clone(),
                    Some(v) => v
                        .as_sequence()
                        .and_then(|s| s.iter().map(Value::as_f64).collect::<Option<Vec<_>>>())
                        .ok_or_else(|| p.bad("thresholds", "expected a list of numbers".into()))?,
                };
                out.crop = RandomCrop {
                    aspect_ratio: p.list::<2>("aspect_ratio", d.aspect_ratio)?,
                    thresholds,
                    scaling: p.list::<2>("scaling", d.scaling)?,
                    num_attempts: p.usize("num_attempts", d.num_attempts)?,
                    allow_no_crop: p.bool("allow_no_crop", d.allow_no_crop)?,
                    cover_all_box: p.bool("cover_all_box", d.cover_all_box)?,
                };
            }
            _ => {
                p.only(&["prob"])?;
                out.flip_prob = FlipProb(p.probability("prob", FlipProb::default().0)?);
            }
        }
    }
    Ok(out)
}

/// One transform's parameter map, with errors that name `key.field` and the file that set it.
struct Params<'a> {
    c: &'a Config,
    key: String,
    params: &'a Mapping,
}

impl Params<'_> {
    fn bad(&self, field: &str, msg: String) -> ConfigError {
        let key = format!("{}.{field}", self.key);
        ConfigError::Value {
            origin: self.c.origin(&key),
            key,
            msg,
        }
    }

    fn get(&self, field: &str) -> Option<&Value> {
        self.params.get(field).filter(|v| !v.is_null())
    }

    /// Refuses a parameter not in `known`.
    fn only(&self, known: &[&str]) -> Result<(), ConfigError> {
        for k in self.params.keys() {
            let name = k.as_str().unwrap_or("?");
            if !known.contains(&name) {
                return Err(self.bad(
                    name,
                    format!(
                        "unknown parameter (this trainer reads {})",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Refuses a parameter set to anything but the one value this trainer implements.
    fn must_be(&self, field: &str, value: Value) -> Result<(), ConfigError> {
        match self.get(field) {
            None => Ok(()),
            Some(v)
                if v == &value || v.as_f64().zip(value.as_f64()).is_some_and(|(a, b)| a == b) =>
            {
                Ok(())
            }
            Some(v) => Err(self.bad(
                field,
                format!(
                    "only {} is supported, found {}",
                    yaml_text(&value),
                    yaml_text(v)
                ),
            )),
        }
    }

    fn f64(&self, field: &str, default: f64) -> Result<f64, ConfigError> {
        match self.get(field) {
            None => Ok(default),
            Some(v) => v.as_f64().ok_or_else(|| {
                self.bad(field, format!("expected a number, found {}", yaml_text(v)))
            }),
        }
    }

    fn probability(&self, field: &str, default: f64) -> Result<f64, ConfigError> {
        let p = self.f64(field, default)?;
        if !(0.0..=1.0).contains(&p) {
            return Err(self.bad(field, format!("must lie in [0, 1], found {p}")));
        }
        Ok(p)
    }

    fn usize(&self, field: &str, default: usize) -> Result<usize, ConfigError> {
        match self.get(field) {
            None => Ok(default),
            Some(v) => v
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| {
                    self.bad(field, format!("expected a count, found {}", yaml_text(v)))
                }),
        }
    }

    fn bool(&self, field: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(field) {
            None => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| {
                self.bad(
                    field,
                    format!("expected true or false, found {}", yaml_text(v)),
                )
            }),
        }
    }

    fn list<const N: usize>(
        &self,
        field: &str,
        default: [f64; N],
    ) -> Result<[f64; N], ConfigError> {
        let Some(v) = self.get(field) else {
            return Ok(default);
        };
        let values: Option<Vec<f64>> = v
            .as_sequence()
            .and_then(|s| s.iter().map(Value::as_f64).collect());
        values
            .and_then(|v| <[f64; N]>::try_from(v).ok())
            .filter(|v| v.iter().all(|x| x.is_finite()))
            .ok_or_else(|| {
                self.bad(
                    field,
                    format!("expected a list of {N} numbers, found {}", yaml_text(v)),
                )
            })
    }

    /// `[low, high, skip probability]` of one RandomDistort op.
    fn triple(&self, field: &str, default: [f64; 3]) -> Result<[f64; 3], ConfigError> {
        let t = self.list::<3>(field, default)?;
        if t[0] > t[1] || !(0.0..=1.0).contains(&t[2]) {
            return Err(self.bad(
                field,
                format!(
                    "expected [low, high, probability] with low <= high and a probability in \
                     [0, 1], found {t:?}"
                ),
            ));
        }
        Ok(t)
    }
}

fn yaml_text(v: &Value) -> String {
    serde_yaml_ng::to_string(v)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| format!("{v:?}"))
}
