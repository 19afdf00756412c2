//! safetensors: the golden PaddleDetection weights load with the names and shapes of their index,
//! files round-trip, and bad files fail with the path and the reason.

use ringdet_tensor::{DType, SafeTensors, Tensor, save};
use std::collections::BTreeMap;

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/ppyoloe-golden");

#[test]
fn golden_weights_match_their_index() {
    let st = SafeTensors::open(format!("{GOLDEN}/weights.safetensors")).unwrap();
    let index = std::fs::read_to_string(format!("{GOLDEN}/weights_index.txt")).unwrap();
    let mut expected = BTreeMap::new();
    for line in index
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let cols: Vec<&str> = line.split('\t').collect();
        let shape: Vec<usize> = cols[1]
            .trim_matches(|c| c == '[' || c == ']')
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.trim().parse().unwrap())
            .collect();
        expected.insert(cols[0].to_string(), shape);
    }
    assert_eq!(expected.len(), 423);
    assert_eq!(st.len(), expected.len());
    let mut values = 0usize;
    for name in st.names() {
        let t = st.tensor(name).unwrap();
        assert_eq!(t.dtype(), DType::F32, "{name}");
        assert_eq!(t.shape(), &expected[name][..], "{name}");
        // Zero copy: the mapped data is aligned for f32 and read in place.
        let v = t.as_slice::<f32>().unwrap();
        assert!(v.iter().all(|x| x.is_finite()), "{name}");
        values += v.len();
    }
    assert_eq!(values, 8_105_517);
    let w = st
        .tensor_checked(
            "backbone.stem.conv1.conv.weight",
            DType::F32,
            &[16, 3, 3, 3],
        )
        .unwrap();
    assert_eq!(w.numel(), 432);
    let e = st
        .tensor_checked("backbone.stem.conv1.conv.weight", DType::F32, &[16, 3, 3])
        .unwrap_err();
    assert!(e.to_string().contains("expected f32 [16, 3, 3]"), "{e}");
    assert!(
        st.tensor("nope")
            .unwrap_err()
            .to_string()
            .contains("no tensor named \"nope\"")
    );
}

#[test]
fn roundtrip_every_dtype_and_views() {
    let dir = std::env::temp_dir().join(format!("ringdet-st-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("t.safetensors");
    let a = Tensor::from_vec((0..12).map(|x| x as f32).collect(), &[3, 4]).unwrap();
    let at = a.permute(&[1, 0]).unwrap();
    let b = Tensor::from_vec(vec![1u8, 2, 3], &[3]).unwrap();
    let c = Tensor::from_vec(vec![-5i64, 9], &[2, 1]).unwrap();
    let d = Tensor::full(0.5, &[2], DType::F16);
    let e = Tensor::full(-2.0, &[1], DType::BF16);
    let f = Tensor::from_vec(vec![7i32], &[]).unwrap();
    let meta = BTreeMap::from([("epoch".to_string(), "3".to_string())]);
    save(
        &path,
        &[
            ("a_t", &at),
            ("b", &b),
            ("c", &c),
            ("d", &d),
            ("e", &e),
            ("f", &f),
        ],
        &meta,
    )
    .unwrap();
    let st = SafeTensors::open(&path).unwrap();
    assert_eq!(st.metadata(), &meta);
    assert_eq!(
        st.tensor("a_t").unwrap().to_vec::<f32>().unwrap(),
        at.to_vec::<f32>().unwrap()
    );
    assert_eq!(
        st.tensor("b").unwrap().to_vec::<u8>().unwrap(),
        vec![1, 2, 3]
    );
    assert_eq!(st.tensor("c").unwrap().shape(), &[2, 1]);
    assert_eq!(
        st.tensor("c").unwrap().to_vec::<i64>().unwrap(),
        vec![-5, 9]
    );
    assert_eq!(
        st.tensor("d").unwrap().to_vec::<half::f16>().unwrap(),
        vec![half::f16::from_f32(0.5); 2]
    );
    assert_eq!(
        st.tensor("e").unwrap().to_vec::<half::bf16>().unwrap(),
        vec![half::bf16::from_f32(-2.0)]
    );
    assert_eq!(st.tensor("f").unwrap().to_vec::<i32>().unwrap(), vec![7]);
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    let e = save(&path, &[("x", &b), ("x", &b)], &BTreeMap::new()).unwrap_err();
    assert!(e.to_string().contains("repeated"), "{e}");
    // The failed save left the previous file intact.
    assert_eq!(SafeTensors::open(&path).unwrap().len(), 6);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn malformed_files_name_the_path_and_reason() {
    let dir = std::env::temp_dir().join(format!("ringdet-st-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases: [(&str, Vec<u8>, &str); 3] = [
        ("short", vec![1, 2, 3], "too short"),
        ("huge", u64::MAX.to_le_bytes().to_vec(), "header length"),
        (
            "json",
            [&8u64.to_le_bytes()[..], b"not json"].concat(),
            "not a JSON object",
        ),
    ];
    for (name, bytes, want) in cases {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        let e = SafeTensors::open(&p).err().unwrap().to_string();
        assert!(e.contains(name) && e.contains(want), "{e}");
    }
    let e = SafeTensors::open(dir.join("missing"))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("missing"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
