//! Every view agrees with a naive index computation on random shapes.

use proptest::prelude::*;
use ringdet_tensor::{DType, Layout, Tensor};

/// Row-major multi-index of flat position `i` in `shape`.
fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        idx[d] = i % shape[d];
        i /= shape[d];
    }
    idx
}

fn source(shape: &[usize]) -> (Tensor, Vec<f32>) {
    let data: Vec<f32> = (0..shape.iter().product::<usize>())
        .map(|x| x as f32)
        .collect();
    (Tensor::from_vec(data.clone(), shape).unwrap(), data)
}

/// The value at a multi-index of the contiguous source.
fn at(data: &[f32], shape: &[usize], idx: &[usize]) -> f32 {
    data[Layout::contiguous(shape).index_of(idx).unwrap()]
}

fn shape_strategy() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(1usize..5, 1..5)
}

proptest! {
    #[test]
    fn permute_matches_naive(shape in shape_strategy(), seed in any::<u64>()) {
        let (t, data) = source(&shape);
        let mut dims: Vec<usize> = (0..shape.len()).collect();
        let mut s = seed;
        for i in (1..dims.len()).rev() { dims.swap(i, (s % (i as u64 + 1)) as usize); s /= 7; }
        let p = t.permute(&dims).unwrap();
        let got = p.to_vec::<f32>().unwrap();
        for (flat, v) in got.iter().enumerate() {
            let idx = unravel(flat, p.shape());
            let mut src = vec![0; shape.len()];
            for (k, &d) in dims.iter().enumerate() { src[d] = idx[k]; }
            prop_assert_eq!(*v, at(&data, &shape, &src));
        }
    }

    #[test]
    fn narrow_then_reshape_matches_naive(shape in shape_strategy(), dim_pick in any::<usize>(), a in any::<usize>(), b in any::<usize>()) {
        let (t, data) = source(&shape);
        let dim = dim_pick % shape.len();
        let start = a % shape[dim];
        let len = b % (shape[dim] - start + 1);
        let n = t.narrow(dim, start, len).unwrap();
        let got = n.to_vec::<f32>().unwrap();
        for (flat, v) in got.iter().enumerate() {
            let mut idx = unravel(flat, n.shape());
            idx[dim] += start;
            prop_assert_eq!(*v, at(&data, &shape, &idx));
        }
        // reshape to 1-d (a copy when the view cannot express it) keeps the order.
        let flat = n.reshape(&[n.numel()]).unwrap().to_vec::<f32>().unwrap();
        prop_assert_eq!(flat, got);
    }

    #[test]
    fn broadcast_matches_naive(shape in shape_strategy(), mask in any::<u8>(), lead in 0usize..3) {
        let small: Vec<usize> = shape.iter().enumerate().map(|(i, &d)| if mask >> i & 1 == 1 { 1 } else { d }).collect();
        let (t, data) = source(&small);
        let mut target = vec![2; lead];
        target.extend(&shape);
        let b = t.broadcast_to(&target).unwrap();
        let got = b.to_vec::<f32>().unwrap();
        for (flat, v) in got.iter().enumerate() {
            let idx = unravel(flat, &target);
            let src: Vec<usize> = idx[lead..].iter().zip(&small).map(|(&i, &d)| if d == 1 { 0 } else { i }).collect();
            prop_assert_eq!(*v, at(&data, &small, &src));
        }
    }

    #[test]
    fn strided_reshape_views_agree_with_copies(shape in proptest::collection::vec(1usize..4, 3..6)) {
        // Permute the last two dims back and forth: a non-contiguous view whose leading dims can
        // still be merged or split without a copy.
        let (t, _) = source(&shape);
        let r = shape.len();
        let mut dims: Vec<usize> = (0..r).collect();
        dims.swap(r - 1, r - 2);
        let p = t.permute(&dims).unwrap();
        let lead: usize = p.shape()[..r - 2].iter().product();
        let mut new_shape = vec![lead];
        new_shape.extend_from_slice(&p.shape()[r - 2..]);
        let v = p.reshape(&new_shape).unwrap();
        prop_assert_eq!(v.to_vec::<f32>().unwrap(), p.contiguous().unwrap().reshape(&new_shape).unwrap().to_vec::<f32>().unwrap());
        // It is a view: the storage is shared.
        prop_assert!(std::sync::Arc::ptr_eq(v.storage(), t.storage()));
        // split the first dim again
        let f = shape[0];
        let mut back = vec![f, lead / f];
        back.extend_from_slice(&p.shape()[r - 2..]);
        let w = v.reshape(&back).unwrap();
        prop_assert_eq!(w.to_vec::<f32>().unwrap(), p.to_vec::<f32>().unwrap());
    }

    #[test]
    fn squeeze_unsqueeze_roundtrip(shape in shape_strategy(), pos in any::<usize>()) {
        let (t, data) = source(&shape);
        let pos = pos % (shape.len() + 1);
        let u = t.unsqueeze(pos).unwrap();
        prop_assert_eq!(u.shape().len(), shape.len() + 1);
        prop_assert_eq!(u.shape()[pos], 1);
        let s = u.squeeze(pos).unwrap();
        prop_assert_eq!(s.shape(), &shape[..]);
        prop_assert_eq!(s.to_vec::<f32>().unwrap(), data);
    }
}

#[test]
fn constructors_and_dtype_checks() {
    let a = Tensor::arange::<i32>(0.0, 5.0, 2.0).unwrap();
    assert_eq!(a.to_vec::<i32>().unwrap(), vec![0, 2, 4]);
    assert_eq!(
        Tensor::ones(&[2, 2], DType::BF16)
            .to_vec::<half::bf16>()
            .unwrap(),
        vec![half::bf16::ONE; 4]
    );
    assert_eq!(
        Tensor::full(7.0, &[3], DType::U8).to_vec::<u8>().unwrap(),
        vec![7; 3]
    );
    let e = a.to_vec::<f32>().unwrap_err().to_string();
    assert!(e.contains("holds i32") && e.contains("f32"), "{e}");
    let e = Tensor::from_vec(vec![1f32; 5], &[2, 3])
        .unwrap_err()
        .to_string();
    assert!(e.contains("5 elements") && e.contains("[2, 3]"), "{e}");
    let e = a.reshape(&[2, 2]).unwrap_err().to_string();
    assert!(
        e.contains("reshape") && e.contains("[3]") && e.contains("[2, 2]"),
        "{e}"
    );
    let e = a.broadcast_to(&[2, 4]).unwrap_err().to_string();
    assert!(e.contains("broadcast_to"), "{e}");
    assert!(
        Tensor::zeros(&[2, 0, 3], DType::F32)
            .to_vec::<f32>()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn host_storage_is_simd_aligned() {
    for n in [1usize, 3, 17, 1000] {
        let t = Tensor::from_vec(vec![0u8; n], &[n]).unwrap();
        let p = t.as_slice::<u8>().unwrap().as_ptr() as usize;
        assert_eq!(p % ringdet_tensor::storage::HOST_ALIGN, 0);
    }
}
