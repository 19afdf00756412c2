//! What the trainer tests share: a tiny shapes dataset and a tiny config over the demo config
//! (64×64 inputs, width 0.125, batch 4, warmup then cosine).

use std::path::{Path, PathBuf};

use ringdet_coco::synth::{ShapesConfig, write_shapes_dataset};
use ringdet_tensor::safetensors::SafeTensors;

/// Writes a 16-image training set and `val` validation images (64 px, seed 1) under `dir/shapes`.
pub fn tiny_dataset(dir: &Path, val: usize) -> PathBuf {
    let data = dir.join("shapes");
    write_shapes_dataset(&ShapesConfig {
        out: data.clone(),
        train: 16,
        val,
        seed: 1,
        size: 64,
        quality: 90,
        min_object: ringdet_coco::synth::DEFAULT_MIN_OBJECT,
    })
    .unwrap();
    data
}

/// Writes `dir/tiny.yml`: the demo config with width 0.125, PaddleDetection's Momentum recipe
/// (these tests compare runs at 1e-4, which AdamW's sign-like steps on near-zero gradients do
/// not keep over several steps), `epochs` epochs, cosine over
/// `cosine_epochs`, batch 4 at 64×64, output under `dir/output`, the training set at `data`, and
/// `extra` YAML lines appended (each ending in a newline).
pub fn tiny_config(
    dir: &Path,
    data: &Path,
    epochs: usize,
    cosine_epochs: usize,
    extra: &str,
) -> PathBuf {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../configs/demo/ppyoloe_shapes_demo.yml")
        .canonicalize()
        .unwrap();
    let config = dir.join("tiny.yml");
    std::fs::write(
        &config,
        format!(
            "_BASE_: ['{}']\nwidth_mult: 0.125\nlog_iter: 5\nepoch: {epochs}\nsave_dir: '{}'\n\
             OptimizerBuilder:\n  optimizer: {{type: Momentum, momentum: 0.9}}\n  \
             regularizer: {{type: L2, factor: 0.0005}}\n\
             LearningRate:\n  base_lr: 0.01\n  schedulers:\n    \
             - {{name: CosineDecay, max_epochs: {cosine_epochs}}}\n    \
             - {{name: LinearWarmup, start_factor: 0., epochs: 1}}\n\
             TrainDataset: {{dataset_dir: '{}'}}\n\
             TrainReader:\n  batch_size: 4\n  batch_transforms:\n    \
             - BatchRandomResize: {{target_size: [64], random_size: True, random_interp: True, keep_ratio: False}}\n    \
             - NormalizeImage: {{mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], is_scale: True}}\n    \
             - Permute: {{}}\n    - PadGT: {{}}\n{extra}",
            demo.display(),
            dir.join("output").display(),
            data.display()
        ),
    )
    .unwrap();
    config
}

/// Asserts every tensor of `a` and `b` has the same dtype, shape and bytes.
#[allow(dead_code)] // not every test file compares checkpoints
pub fn assert_same_tensors(a: &Path, b: &Path) {
    let (ta, tb) = (SafeTensors::open(a).unwrap(), SafeTensors::open(b).unwrap());
    let mut na: Vec<&str> = ta.names().collect();
    let mut nb: Vec<&str> = tb.names().collect();
    na.sort_unstable();
    nb.sort_unstable();
    assert_eq!(
        na,
        nb,
        "{} and {} hold different tensors",
        a.display(),
        b.display()
    );
    assert!(!na.is_empty());
    for name in na {
        let (ia, ib) = (ta.info(name).unwrap(), tb.info(name).unwrap());
        assert_eq!(ia.dtype, ib.dtype, "{name}");
        assert_eq!(ia.shape, ib.shape, "{name}");
        assert!(
            ta.bytes(name).unwrap() == tb.bytes(name).unwrap(),
            "tensor {name} differs between {} and {}",
            a.display(),
            b.display()
        );
    }
}
