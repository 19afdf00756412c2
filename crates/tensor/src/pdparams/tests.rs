//! Hand-made pickles: each refused opcode and global is named, truncation names the offset,
//! and random mutations of a valid file never panic.

use super::*;
use crate::DType;

fn sample() -> Vec<u8> {
    let dir = std::env::temp_dir().join(format!("pdparams-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("s-{:?}.pdparams", std::thread::current().id()));
    let a = Tensor::from_vec(vec![1.5f32, -2.0, 3.25, 0.0, 7.0, 8.0], &[2, 3]).unwrap();
    let b = Tensor::from_vec(vec![1i64, -2], &[2]).unwrap();
    let c = Tensor::from_vec(vec![9u8], &[]).unwrap();
    save(&path, &[("a.weight", &a), ("b", &b), ("c", &c)]).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).ok();
    bytes
}

fn parse(bytes: &[u8]) -> Result<PdParams> {
    PdParams::parse(bytes, "x.pdparams")
}

#[test]
fn writer_output_reads_back() {
    let p = parse(&sample()).unwrap();
    assert_eq!(p.protocol(), 3);
    assert_eq!(p.names().collect::<Vec<_>>(), ["a.weight", "b", "c"]);
    let a = p.tensor("a.weight").unwrap();
    assert_eq!(a.shape(), &[2, 3]);
    assert_eq!(
        a.to_vec::<f32>().unwrap(),
        vec![1.5, -2.0, 3.25, 0.0, 7.0, 8.0]
    );
    assert_eq!(p.tensor("b").unwrap().to_vec::<i64>().unwrap(), vec![1, -2]);
    let c = p.tensor("c").unwrap();
    assert_eq!((c.dtype(), c.shape()), (DType::U8, &[][..]));
    assert!(p.skipped().is_empty());
}

#[test]
fn refuses_foreign_global_by_name() {
    // {'x': posix.system('true')} at protocol 2.
    let bytes = b"\x80\x02}q\x00X\x01\x00\x00\x00xcposix\nsystem\nX\x04\x00\x00\x00true\x85R.";
    let e = parse(bytes).unwrap_err().to_string();
    assert!(e.contains("posix.system"), "{e}");
    assert!(e.contains("x.pdparams"), "{e}");
    assert!(e.contains("byte 11"), "{e}");
    // STACK_GLOBAL (protocol 4) of builtins.eval.
    let bytes = b"\x80\x04}\x8c\x08builtins\x8c\x04eval\x93.";
    let e = parse(bytes).unwrap_err().to_string();
    assert!(e.contains("builtins.eval"), "{e}");
}

#[test]
fn refuses_unsupported_opcodes_by_name() {
    for (bytes, name) in [
        (&b"\x80\x02}\x81."[..], "NEWOBJ"),
        (&b"\x80\x02}Q."[..], "BINPERSID"),
        (&b"\x80\x02}i__main__\nX\n."[..], "INST"),
        (&b"\x80\x02}\xff."[..], "0xff"),
    ] {
        let e = parse(bytes).unwrap_err().to_string();
        assert!(e.contains(name), "{name}: {e}");
        assert!(e.contains("byte 3"), "{name}: {e}");
    }
}

#[test]
fn refuses_what_is_not_a_dict_of_arrays() {
    let e = parse(b"\x80\x02]q\x00.").unwrap_err().to_string();
    assert!(e.contains("expected a dict"), "{e}");
    let e = parse(b"not a pickle").unwrap_err().to_string();
    assert!(e.contains("not a Paddle state-dict pickle"), "{e}");
    let e = parse(b"").unwrap_err().to_string();
    assert!(e.contains("empty file"), "{e}");
}

#[test]
fn truncation_names_the_offset() {
    let bytes = sample();
    for cut in [bytes.len() - 1, bytes.len() / 2, 3] {
        let e = parse(&bytes[..cut]).unwrap_err().to_string();
        assert!(e.contains("truncated"), "cut {cut}: {e}");
        assert!(e.contains("x.pdparams: byte "), "cut {cut}: {e}");
    }
}

#[test]
fn non_array_values_are_reported() {
    // {'w': <array>, 'epoch': 3, 'lr': {'last_lr': 0.5}}
    let mut bytes = sample();
    bytes.truncate(bytes.len() - 2); // drop SETITEMS STOP
    bytes.extend_from_slice(b"X\x05\x00\x00\x00epochK\x03X\x02\x00\x00\x00lr}(X\x07\x00\x00\x00last_lrG?\xe0\x00\x00\x00\x00\x00\x00uu.");
    let p = parse(&bytes).unwrap();
    assert_eq!(p.len(), 3);
    assert_eq!(
        p.skipped(),
        &[
            Skipped {
                key: "epoch".into(),
                what: "int 3".into()
            },
            Skipped {
                key: "lr".into(),
                what: "dict of 1 entries, no arrays".into()
            }
        ]
    );
}

#[test]
fn a_shared_array_is_one_tensor_under_each_name() {
    // The writer's pickle of {'a': X} is PROTO 3, EMPTY_DICT, MARK, BINUNICODE 'a', X,
    // SETITEMS, STOP; make it {'a': X, 'b': X} with X memoized and fetched again.
    let path =
        std::env::temp_dir().join(format!("pdparams-shared-{}.pdparams", std::process::id()));
    let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[3]).unwrap();
    save(&path, &[("a", &x)]).unwrap();
    let one = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).ok();
    let array = &one[4 + 6..one.len() - 2];
    let mut p = one[..4 + 6].to_vec();
    p.extend_from_slice(array);
    p.extend_from_slice(b"q\x00X\x01\x00\x00\x00bh\x00u.");
    let f = parse(&p).unwrap();
    assert_eq!(f.names().collect::<Vec<_>>(), ["a", "b"]);
    for n in ["a", "b"] {
        assert_eq!(
            f.tensor(n).unwrap().to_vec::<f32>().unwrap(),
            vec![1.0, 2.0, 3.0]
        );
    }
}

#[test]
fn copying_a_list_again_and_again_is_refused() {
    let mut p = b"\x80\x02]q\x00(".to_vec();
    p.extend(std::iter::repeat_n(b'N', 1000));
    p.extend_from_slice(b"ecbuiltins\ntuple\nq\x01");
    for _ in 0..200 {
        p.extend_from_slice(b"h\x01h\x00\x85R");
    }
    p.push(b'.');
    let e = parse(&p).unwrap_err().to_string();
    assert!(e.contains("again and again"), "{e}");
}

/// A seeded xorshift: the mutation loop is the same on every run.
struct Rand(u64);
impl Rand {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_mutations_never_panic() {
    let good = sample();
    let mut r = Rand(0x9e37_79b9_7f4a_7c15);
    for _ in 0..20_000 {
        let mut b = good.clone();
        for _ in 0..1 + r.below(4) {
            let i = r.below(b.len());
            match r.below(4) {
                0 => b[i] = r.next() as u8,
                1 => b[i] ^= 1 << r.below(8),
                2 => b.truncate(i.max(1)),
                _ => {
                    let v = r.next() as u8;
                    b.insert(i, v)
                }
            }
        }
        let _ = parse(&b);
    }
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
        let mut b = vec![0x80, 2];
        b.extend_from_slice(&tail);
        let _ = parse(&b);
    }
}

#[test]
fn save_with_writes_ints_floats_strs_and_dicts_the_reader_gives_back() {
    use super::{Extra, PdParams, save_with};
    let path = std::env::temp_dir().join(format!("save-with-{}.pdopt", std::process::id()));
    let v = crate::Tensor::from_vec(vec![1.0f32, -2.0], &[2]).unwrap();
    let extras = [
        (
            "LR_Scheduler",
            Extra::Dict(vec![
                ("last_epoch".into(), Extra::Int(70000)),
                ("last_lr".into(), Extra::Float(0.25)),
            ]),
        ),
        ("last_epoch", Extra::Int(3)),
        (
            "StructuredToParameterName@@",
            Extra::Dict(vec![(
                "fc.weight".into(),
                Extra::Str("linear_0.w_0".into()),
            )]),
        ),
    ];
    save_with(&path, &[("linear_0.w_0_velocity_0", &v)], &extras).unwrap();
    let f = PdParams::open(&path).unwrap();
    std::fs::remove_file(&path).ok();
    assert_eq!(f.len(), 1);
    assert_eq!(f.int("last_epoch"), Some(3));
    assert_eq!(f.int("LR_Scheduler/last_epoch"), Some(70000));
    assert_eq!(
        f.str("StructuredToParameterName@@/fc.weight"),
        Some("linear_0.w_0")
    );
    // A repeated name across tensors and extras is refused.
    let dup = save_with(&path, &[("last_epoch", &v)], &extras[1..2]);
    assert!(dup.is_err());
}
