//! The README example: draw weights, save them, map them back.

use ringdet_tensor::{DType, Rng, SafeTensors, save};
use std::collections::BTreeMap;

fn main() -> Result<(), ringdet_tensor::TensorError> {
    let w = Rng::new(7).normal(&[4, 3], 0.0, 0.02)?;
    let wt = w.permute(&[1, 0])?; // a view
    let path = std::env::temp_dir().join("example.safetensors");
    save(&path, &[("fc.weight", &wt)], &BTreeMap::new())?;
    let file = SafeTensors::open(&path)?; // zero copy
    let back = file.tensor_checked("fc.weight", DType::F32, &[3, 4])?;
    assert_eq!(back.to_vec::<f32>()?, wt.to_vec::<f32>()?);
    Ok(())
}
