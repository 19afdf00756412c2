//! `.pdparams` files made by Paddle's own `paddle.save` (testdata/pdparams, made by
//! make_pdparams.py beside them; Paddle 2.6 and 3.3, protocols 2-4) read bit for bit equal to
//! the golden safetensors copy; the full golden weights round-trip through the writer; foreign
//! globals, truncated and corrupt files are refused with errors naming the file.

use ringdet_tensor::{DType, PdParams, SafeTensors, Tensor, pdparams};
use std::path::{Path, PathBuf};

const GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/ppyoloe-golden/weights.safetensors"
);
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/pdparams");
const SUBSET_PREFIXES: [&str; 3] = [
    "backbone.stem.",
    "backbone.stages.0.blocks.0.",
    "yolo_head.proj_conv.",
];

fn fixture(name: &str) -> PathBuf {
    Path::new(FIXTURES).join(name)
}

fn bits(t: &Tensor) -> (DType, Vec<usize>, Vec<u8>) {
    (
        t.dtype(),
        t.shape().to_vec(),
        t.to_contiguous_bytes().unwrap(),
    )
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ringdet-pdparams-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn paddle_saved_subsets_equal_the_golden_weights_bit_for_bit() {
    let golden = SafeTensors::open(GOLDEN).unwrap();
    let expected: Vec<&str> = golden
        .names()
        .filter(|n| SUBSET_PREFIXES.iter().any(|p| n.starts_with(p)))
        .collect();
    assert!(expected.len() > 30, "{}", expected.len());
    for tag in ["paddle2", "paddle3"] {
        for (file, protocol) in [
            (format!("{tag}_p2.pdparams"), 2),
            (format!("{tag}_p3.pdparams"), 3),
            (format!("{tag}_p4.pdparams"), 4),
            (format!("{tag}.pdema"), 4),
        ] {
            let p = PdParams::open(fixture(&file)).unwrap();
            assert_eq!(p.protocol(), protocol, "{file}");
            let mut names: Vec<&str> = p.names().collect();
            let mut want = expected.clone();
            names.sort_unstable();
            want.sort_unstable();
            assert_eq!(names, want, "{file}");
            for (name, t) in p.tensors() {
                let g = golden.tensor(name).unwrap();
                assert_eq!(bits(t), bits(&g), "{file}: {name}");
            }
            // Paddle 3 adds a table of structured names; it is reported, not a tensor.
            for s in p.skipped() {
                assert_eq!(s.key, "StructuredToParameterName@@", "{file}: {s:?}");
            }
        }
    }
}

#[test]
fn every_dtype_paddle_saves_reads_as_the_expected_bytes() {
    for tag in ["paddle2", "paddle3"] {
        let p = PdParams::open(fixture(&format!("{tag}_dtypes.pdparams"))).unwrap();
        let want = SafeTensors::open(fixture(&format!("{tag}_dtypes.safetensors"))).unwrap();
        assert_eq!(p.len(), want.len(), "{tag}");
        for name in want.names() {
            let t = p.tensor(name).unwrap_or_else(|| panic!("{tag}: no {name}"));
            assert_eq!(bits(t), bits(&want.tensor(name).unwrap()), "{tag}: {name}");
        }
        assert_eq!(p.tensor("bf16").unwrap().dtype(), DType::BF16);
        assert_eq!(p.tensor("scalar").unwrap().shape(), &[] as &[usize]);
    }
}

#[test]
fn optimizer_state_keeps_arrays_and_reports_the_rest() {
    for tag in ["paddle2", "paddle3"] {
        let p = PdParams::open(fixture(&format!("{tag}.pdopt"))).unwrap();
        let want = SafeTensors::open(fixture(&format!("{tag}_pdopt.safetensors"))).unwrap();
        assert_eq!(
            p.len(),
            want.len(),
            "{tag}: {:?}",
            p.names().collect::<Vec<_>>()
        );
        for name in want.names() {
            let t = p.tensor(name).unwrap_or_else(|| panic!("{tag}: no {name}"));
            assert_eq!(bits(t), bits(&want.tensor(name).unwrap()), "{tag}: {name}");
        }
        assert!(p.tensor("master_weights/linear_0.w_0").is_some(), "{tag}");
        let skipped: Vec<(&str, &str)> = p
            .skipped()
            .iter()
            .map(|s| (s.key.as_str(), s.what.as_str()))
            .collect();
        assert!(
            skipped.contains(&("LR_Scheduler", "dict of 2 entries, no arrays")),
            "{tag}: {skipped:?}"
        );
        assert!(
            skipped.contains(&("last_epoch", "int 7")),
            "{tag}: {skipped:?}"
        );
    }
}

#[test]
fn full_golden_weights_round_trip_through_the_writer() {
    let golden = SafeTensors::open(GOLDEN).unwrap();
    let tensors: Vec<(String, Tensor)> = golden
        .names()
        .map(|n| (n.to_string(), golden.tensor(n).unwrap()))
        .collect();
    let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let path = scratch("golden.pdparams");
    pdparams::save(&path, &refs).unwrap();
    let back = PdParams::open(&path).unwrap();
    assert_eq!(back.len(), tensors.len());
    assert!(back.skipped().is_empty());
    for ((n, t), (m, u)) in tensors.iter().zip(back.tensors()) {
        assert_eq!(n, m);
        assert_eq!(bits(t), bits(u), "{n}");
    }
    std::fs::remove_file(&path).ok();
}

#[test]
fn foreign_globals_are_refused_by_name() {
    for file in ["evil_p2.pdparams", "evil_p4.pdparams"] {
        let path = fixture(file);
        let e = PdParams::open(&path).unwrap_err().to_string();
        assert!(e.contains("global posix.system is not allowed"), "{e}");
        assert!(e.contains(&path.display().to_string()), "{e}");
    }
}

#[test]
fn truncated_and_corrupt_files_name_the_file() {
    let good = std::fs::read(fixture("paddle3_p2.pdparams")).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty.pdparams", vec![], "empty file"),
        (
            "half.pdparams",
            good[..good.len() / 2].to_vec(),
            "truncated",
        ),
        (
            "nostop.pdparams",
            good[..good.len() - 1].to_vec(),
            "without its STOP",
        ),
        ("header.pdparams", good[..1].to_vec(), "truncated"),
        (
            "global.pdparams",
            {
                // The module of the first GLOBAL: numpy._core... -> numpz._core...
                let mut b = good.clone();
                let at = b.windows(6).position(|w| w == b"numpy.").unwrap();
                b[at + 4] = b'z';
                b
            },
            "global numpz._core.multiarray._reconstruct is not allowed",
        ),
        (
            "opcode.pdparams",
            {
                let mut b = good.clone();
                b[2] = 0x81; // EMPTY_DICT -> NEWOBJ
                b
            },
            "byte 2: opcode NEWOBJ (0x81)",
        ),
        (
            "text.pdparams",
            b"{\"not\": \"pickle\"}".to_vec(),
            "not a Paddle",
        ),
    ];
    for (name, bytes, what) in cases {
        let path = scratch(name);
        std::fs::write(&path, &bytes).unwrap();
        let e = PdParams::open(&path).unwrap_err().to_string();
        assert!(e.starts_with(&path.display().to_string()), "{name}: {e}");
        assert!(e.contains(what), "{name}: {e}");
        std::fs::remove_file(&path).ok();
    }
    let e = PdParams::open(scratch("missing.pdparams"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.pdparams"), "{e}");
}

/// Seeded xorshift for the mutation loop (no timing, same mutations every run).
fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

#[test]
fn random_mutations_of_paddle_files_never_panic() {
    for file in [
        "paddle3_p2.pdparams",
        "paddle2_p4.pdparams",
        "paddle3.pdopt",
    ] {
        let good = std::fs::read(fixture(file)).unwrap();
        // Mutate mostly the pickle structure: the first 2 KB and the tail.
        let mut s = 0x2545_f491_4f6c_dd1d_u64 ^ good.len() as u64;
        for _ in 0..2000 {
            let mut b = good.clone();
            for _ in 0..1 + xorshift(&mut s) % 3 {
                let r = xorshift(&mut s) as usize;
                let i = if r.is_multiple_of(2) {
                    r / 2 % b.len().min(2048)
                } else {
                    b.len() - 1 - r / 2 % b.len().min(512)
                };
                match r % 5 {
                    0 | 1 => b[i] = (r >> 16) as u8,
                    2 => b[i] ^= 1 << ((r >> 8) % 8),
                    3 => b.truncate(i.max(1)),
                    _ => b.insert(i, (r >> 24) as u8),
                }
            }
            let _ = PdParams::parse(&b, file);
        }
    }
}

#[test]
fn parameters_saved_in_slices_are_joined() {
    let golden = SafeTensors::open(GOLDEN).unwrap();
    for tag in ["paddle2", "paddle3"] {
        let p = PdParams::open(fixture(&format!("{tag}_bigparam.pdparams"))).unwrap();
        assert_eq!(
            p.names().collect::<Vec<_>>(),
            [
                "backbone.stem.conv1.conv.weight",
                "backbone.stem.conv2.conv.weight"
            ],
            "{tag}"
        );
        for (name, t) in p.tensors() {
            assert_eq!(
                bits(t),
                bits(&golden.tensor(name).unwrap()),
                "{tag}: {name}"
            );
        }
        assert!(p.skipped().is_empty(), "{tag}: {:?}", p.skipped());
    }
}
