//! Weights as Paddle's `.pdparams`: the golden PP-YOLOE-s weights load from a pickle exactly as
//! from safetensors, a model saves to `.pdparams` and back, and a backbone-only pretrained file
//! (names without the `backbone.` prefix, as PaddleDetection's ImageNet files) loads with a
//! report of what was loaded, missing, unused and mis-shaped.

use ringdet_detect::arch::{Arch, ModelConfig};
use ringdet_detect::checkpoint;
use ringdet_detect::pretrained::load_pretrained;
use ringdet_detect::state::ModelState;
use ringdet_tensor::{SafeTensors, Tensor, pdparams};
use std::path::PathBuf;

const GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/ppyoloe-golden/weights.safetensors"
);
const PADDLE_SUBSET: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/pdparams/paddle3_p4.pdparams"
);

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ringdet-detect-pd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn golden_tensors() -> Vec<(String, Tensor)> {
    let g = SafeTensors::open(GOLDEN).unwrap();
    g.names()
        .map(|n| (n.to_string(), g.tensor(n).unwrap()))
        .collect()
}

fn write(path: &PathBuf, tensors: &[(String, Tensor)]) {
    let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    pdparams::save(path, &refs).unwrap();
}

fn fresh() -> ModelState {
    ModelState::zeros(&Arch::new(ModelConfig::s()).unwrap()).unwrap()
}

#[test]
fn golden_weights_load_from_pdparams_as_from_safetensors() {
    let path = scratch("golden.pdparams");
    write(&path, &golden_tensors());
    let mut a = fresh();
    checkpoint::load(&mut a, GOLDEN).unwrap();
    let mut b = fresh();
    checkpoint::load(&mut b, &path).unwrap();
    assert_eq!(a.params, b.params);
    assert_eq!(a.stats, b.stats);
    assert_eq!(a.frozen, b.frozen);
    // And a model saves to .pdparams and reads back equal.
    let out = scratch("saved.pdparams");
    checkpoint::save(&b, &out).unwrap();
    let mut c = fresh();
    checkpoint::load(&mut c, &out).unwrap();
    assert_eq!(c.params, a.params);
    assert_eq!(c.stats, a.stats);
    // A partial file is refused by the full loader, naming the tensor and the file.
    let e = checkpoint::load(&mut c, PADDLE_SUBSET)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("paddle3_p4.pdparams") && e.contains("missing tensor"),
        "{e}"
    );
}

#[test]
fn backbone_only_file_loads_with_a_report() {
    // As an ImageNet-pretrained backbone: names without `backbone.`, a classifier the detector
    // lacks, and one tensor of another shape.
    let mut file: Vec<(String, Tensor)> = golden_tensors()
        .into_iter()
        .filter_map(|(n, t)| n.strip_prefix("backbone.").map(|s| (s.to_string(), t)))
        .collect();
    let n_backbone = file.len();
    assert!(n_backbone > 100, "{n_backbone}");
    file.push((
        "classifier.weight".into(),
        Tensor::zeros(&[1000, 768], ringdet_tensor::DType::F32),
    ));
    let wrong = file
        .iter()
        .position(|(n, _)| n == "stem.conv1.conv.weight")
        .unwrap();
    file[wrong].1 = Tensor::zeros(&[16, 3, 5, 5], ringdet_tensor::DType::F32);
    let path = scratch("CSPResNetb_s_pretrained.pdparams");
    write(&path, &file);

    let mut state = fresh();
    let before = state
        .get("neck.fpn_stages.0.0.conv1.conv.weight")
        .unwrap()
        .to_vec();
    let report = load_pretrained(&mut state, &path).unwrap();
    assert_eq!(report.loaded, n_backbone - 1);
    assert_eq!(report.unused, vec!["classifier.weight".to_string()]);
    assert_eq!(report.mismatched.len(), 1);
    let m = &report.mismatched[0];
    assert_eq!(m.file_name, "stem.conv1.conv.weight");
    assert_eq!(m.model_name, "backbone.stem.conv1.conv.weight");
    assert_eq!(
        (m.file_shape.as_slice(), m.model_shape.as_slice()),
        (&[16, 3, 5, 5][..], &[16, 3, 3, 3][..])
    );
    assert!(
        report
            .missing
            .contains(&"backbone.stem.conv1.conv.weight".to_string())
    );
    assert!(
        report
            .missing
            .iter()
            .all(|n| !n.starts_with("backbone.") || n == "backbone.stem.conv1.conv.weight")
    );
    // Loaded tensors equal the file, the others are untouched.
    let g = SafeTensors::open(GOLDEN).unwrap();
    let name = "backbone.stages.3.blocks.0.conv2.conv1.conv.weight";
    assert_eq!(
        state.get(name).unwrap(),
        g.tensor(name).unwrap().to_vec::<f32>().unwrap().as_slice()
    );
    assert_eq!(
        state.get("neck.fpn_stages.0.0.conv1.conv.weight").unwrap(),
        before.as_slice()
    );
    let text = report.to_string();
    eprintln!("{text}");
    for want in [
        &format!("loaded {} of", n_backbone - 1),
        "model tensors not in the file",
        "neck.",
        "classifier.weight",
        "stem.conv1.conv.weight [16, 3, 5, 5] in the file vs backbone.stem.conv1.conv.weight [16, 3, 3, 3] in the model",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }
}

#[test]
fn paddle_saved_subset_loads_as_pretrained() {
    let mut state = fresh();
    let report = load_pretrained(&mut state, PADDLE_SUBSET).unwrap();
    let file = ringdet_tensor::PdParams::open(PADDLE_SUBSET).unwrap();
    assert_eq!(report.loaded, file.len());
    assert!(
        report.unused.is_empty() && report.mismatched.is_empty(),
        "{report}"
    );
    for (name, t) in file.tensors() {
        assert_eq!(
            state.get(name).unwrap(),
            t.to_vec::<f32>().unwrap().as_slice(),
            "{name}"
        );
    }
}

#[test]
fn a_file_name_that_fills_two_model_tensors_is_refused() {
    // `bn._mean` [16] ends both backbone.stem.conv1.bn._mean and ...conv2.bn._mean (both 16).
    let path = scratch("ambiguous.pdparams");
    write(
        &path,
        &[(
            "bn._mean".into(),
            Tensor::zeros(&[16], ringdet_tensor::DType::F32),
        )],
    );
    let e = load_pretrained(&mut fresh(), &path)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`bn._mean` matches both `backbone.stem.conv1.bn._mean` and `backbone.stem.conv2.bn._mean`"),
        "{e}"
    );
    assert!(e.contains("ambiguous.pdparams"), "{e}");
}
