//! Test helpers: paths of the reference sets, a minimal safetensors reader, relative L2.
#![allow(dead_code)]

use std::collections::HashMap;

pub const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/ppyoloe-golden");
pub const TOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/ppyoloe-toy");

/// One stored tensor.
pub struct Stored {
    pub dtype: String,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

/// All tensors of a safetensors file.
pub struct Set(pub HashMap<String, Stored>);

impl Set {
    pub fn open(path: &str) -> Self {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let n = u64::from_le_bytes(data[..8].try_into().unwrap()) as usize;
        let header: serde_json::Value = serde_json::from_slice(&data[8..8 + n]).unwrap();
        let mut map = HashMap::new();
        for (k, v) in header.as_object().unwrap() {
            if k == "__metadata__" {
                continue;
            }
            let off = v["data_offsets"].as_array().unwrap();
            let (a, b) = (
                off[0].as_u64().unwrap() as usize,
                off[1].as_u64().unwrap() as usize,
            );
            map.insert(
                k.clone(),
                Stored {
                    dtype: v["dtype"].as_str().unwrap().to_string(),
                    shape: v["shape"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|d| d.as_u64().unwrap() as usize)
                        .collect(),
                    bytes: data[8 + n + a..8 + n + b].to_vec(),
                },
            );
        }
        Set(map)
    }
    pub fn get(&self, name: &str) -> &Stored {
        self.0
            .get(name)
            .unwrap_or_else(|| panic!("missing tensor {name}"))
    }
    pub fn shape(&self, name: &str) -> Vec<usize> {
        self.get(name).shape.clone()
    }
    pub fn f32(&self, name: &str) -> Vec<f32> {
        let t = self.get(name);
        assert_eq!(t.dtype, "F32", "{name}");
        t.bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }
    pub fn i32(&self, name: &str) -> Vec<i32> {
        let t = self.get(name);
        assert_eq!(t.dtype, "I32", "{name}");
        t.bytes
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }
}

/// ‖a − b‖₂ / ‖b‖₂ (absolute when b is all zero).
pub fn rel_l2(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let num: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| ((*x as f64) - (*y as f64)).powi(2))
        .sum::<f64>()
        .sqrt();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum::<f64>().sqrt();
    if den == 0.0 { num } else { num / den }
}

pub fn json(path: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}
