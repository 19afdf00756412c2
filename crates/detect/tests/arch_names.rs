//! The s model's state-dict names, shapes, kinds and order equal PaddleDetection's (golden
//! `weights_index.txt`) and the spec's independent derivation (toy `ppyoloe_s_param_names.txt`);
//! parameter counts of s/m/l/x match the spec and the published (fused) figures.

use ringdet_detect::arch::{Arch, ModelConfig, TensorKind};
use ringdet_detect::layout::ParamLayout;

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/ppyoloe-golden");
const TOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/ppyoloe-toy");

fn parse_shape(s: &str, sep: char) -> Vec<usize> {
    s.trim_matches(|c| c == '[' || c == ']')
        .split(sep)
        .map(|d| d.trim().parse().expect("shape digit"))
        .collect()
}

#[test]
fn s_model_matches_paddle_state_dict() {
    let text =
        std::fs::read_to_string(format!("{GOLDEN}/weights_index.txt")).expect("weights_index.txt");
    let expected: Vec<(String, Vec<usize>, String)> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].to_string(), parse_shape(f[1], ','), f[2].to_string())
        })
        .collect();
    let arch = Arch::new(ModelConfig::s()).unwrap();
    let ours = arch.state_dict_tensors();
    assert_eq!(ours.len(), expected.len());
    for (t, (name, shape, kind)) in ours.iter().zip(&expected) {
        assert_eq!(&t.name, name, "state-dict order");
        assert_eq!(&t.shape, shape, "{name}");
        let k = match t.kind {
            TensorKind::Param => "param",
            TensorKind::Buffer => "buffer",
            TensorKind::Frozen => "frozen",
        };
        assert_eq!(k, kind, "{name}");
    }
}

#[test]
fn s_model_matches_spec_derivation() {
    let text =
        std::fs::read_to_string(format!("{TOY}/ppyoloe_s_param_names.txt")).expect("param names");
    let mut expected: Vec<(String, Vec<usize>)> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (n, s) = l.split_once(' ').expect("name shape");
            (n.to_string(), parse_shape(s, 'x'))
        })
        .collect();
    let mut ours: Vec<(String, Vec<usize>)> = Arch::new(ModelConfig::s())
        .unwrap()
        .exec_tensors()
        .into_iter()
        .map(|t| (t.name, t.shape))
        .collect();
    expected.sort();
    ours.sort();
    assert_eq!(ours, expected);
}

fn count(arch: &Arch, prefix: &str) -> usize {
    arch.exec_tensors()
        .iter()
        .filter(|t| t.kind == TensorKind::Param && t.name.starts_with(prefix))
        .map(|t| t.numel())
        .sum()
}

/// Trainable parameters after RepVGG fusion: each RepVgg block loses its 1×1 weight and both BNs'
/// γ/β and gains one bias.
fn fused_count(arch: &Arch) -> usize {
    let mut removed = 0;
    for t in arch.exec_tensors() {
        if t.name.ends_with(".conv2.conv2.conv.weight") {
            let c = t.shape[0];
            removed += c * c + 4 * c - c;
        }
    }
    count(arch, "") - removed
}

#[test]
fn parameter_counts() {
    let s = Arch::new(ModelConfig::s()).unwrap();
    assert_eq!(count(&s, "backbone."), 2_992_976);
    assert_eq!(count(&s, "neck."), 3_417_888);
    assert_eq!(count(&s, "yolo_head."), 1_673_724);
    assert_eq!(count(&s, ""), 8_084_588);
    assert_eq!(fused_count(&s), 7_926_260);
    // Published fused sizes (M params, two decimals) of m, l, x; +17 frozen projection weights.
    for (cfg, published) in [
        (ModelConfig::m(), 23.43),
        (ModelConfig::l(), 52.20),
        (ModelConfig::x(), 98.42),
    ] {
        let a = Arch::new(cfg).unwrap();
        let m = (fused_count(&a) + 17) as f64 / 1e6;
        assert!((m - published).abs() < 0.006, "{m} vs {published}");
    }
}

#[test]
fn flat_buffers_are_in_reverse_execution_order() {
    let arch = Arch::new(ModelConfig::s()).unwrap();
    let layout = ParamLayout::new(&arch).unwrap();
    assert_eq!(layout.num_params(), 8_084_588);
    assert_eq!(layout.num_stats(), 8_105_517 - 8_084_588 - 17);
    assert_eq!(layout.num_frozen(), 17);
    // The last trainable tensor of forward (pred_reg.2.bias) starts the buffer; the first conv ends it.
    let first = layout.slot("yolo_head.pred_reg.2.bias").unwrap();
    assert_eq!(first.offset, 0);
    let last = layout.slot("backbone.stem.conv1.conv.weight").unwrap();
    assert_eq!(last.offset + 16 * 3 * 3 * 3, layout.num_params());
    // Offsets tile the buffers without gaps in slot order.
    let mut next = [0usize; 3];
    for s in layout.slots() {
        let k = s.spec.kind as usize;
        assert_eq!(s.offset, next[k], "{}", s.spec.name);
        next[k] += s.spec.numel();
    }
}

#[test]
fn paddle_initialisation() {
    use ringdet_detect::init::{SeededNormal, initialize};
    use ringdet_detect::state::ModelState;
    let arch = Arch::new(ModelConfig::s()).unwrap();
    let mut st = ModelState::zeros(&arch).unwrap();
    initialize(&mut st, &mut SeededNormal::new(0));
    let proj = st.get("yolo_head.proj_conv.weight").unwrap();
    assert_eq!(
        proj,
        (0..17).map(|i| i as f32).collect::<Vec<_>>().as_slice()
    );
    assert!(
        st.get("yolo_head.pred_cls.1.weight")
            .unwrap()
            .iter()
            .all(|&v| v == 0.0)
    );
    assert!(
        st.get("yolo_head.pred_cls.1.bias")
            .unwrap()
            .iter()
            .all(|&v| (v + 4.59512).abs() < 1e-5)
    );
    assert!(
        st.get("yolo_head.pred_reg.0.bias")
            .unwrap()
            .iter()
            .all(|&v| v == 1.0)
    );
    assert!(
        st.get("neck.fpn_routes.0.bn._variance")
            .unwrap()
            .iter()
            .all(|&v| v == 1.0)
    );
    assert!(
        st.get("neck.fpn_routes.0.bn._mean")
            .unwrap()
            .iter()
            .all(|&v| v == 0.0)
    );
    assert!(
        st.get("backbone.stages.0.attn.fc.bias")
            .unwrap()
            .iter()
            .all(|&v| v == 0.0)
    );
    // Kaiming-normal fan-in std of the 512→... 1×1 conv3 of stage 3: sqrt(2 / 384).
    let w = st.get("backbone.stages.3.conv3.conv.weight").unwrap();
    let std = (w.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / w.len() as f64).sqrt();
    assert!((std - (2.0f64 / 384.0).sqrt()).abs() < 0.01 * std, "{std}");
    let fc = st.get("yolo_head.stem_reg.2.fc.weight").unwrap();
    let std = (fc.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / fc.len() as f64).sqrt();
    assert!((std - 0.001).abs() < 0.0001, "{std}");
}

#[test]
fn golden_weights_load_and_round_trip() {
    use ringdet_detect::checkpoint;
    use ringdet_detect::state::ModelState;
    let arch = Arch::new(ModelConfig::s()).unwrap();
    let mut st = ModelState::zeros(&arch).unwrap();
    checkpoint::load(&mut st, format!("{GOLDEN}/weights.safetensors")).unwrap();
    assert_eq!(st.get("yolo_head.proj_conv.weight").unwrap()[16], 16.0);
    let dir = std::env::temp_dir().join(format!("ringdet-detect-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("w.safetensors");
    checkpoint::save(&st, &p).unwrap();
    let mut again = ModelState::zeros(&arch).unwrap();
    checkpoint::load(&mut again, &p).unwrap();
    assert_eq!(again.params, st.params);
    assert_eq!(again.stats, st.stats);
    std::fs::remove_dir_all(&dir).unwrap();
    // A model of another size names the mismatch.
    let mut m = ModelState::zeros(&Arch::new(ModelConfig::m()).unwrap()).unwrap();
    let err = checkpoint::load(&mut m, format!("{GOLDEN}/weights.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("backbone.stem.conv1.conv.weight"), "{err}");
}
