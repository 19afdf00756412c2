//! `scale`: CUDA equals the CPU reference on odd sizes with poisoned outputs.

use cudarc::driver::CudaSlice;
use ringdet_kernels::runtime::testing::{gpu_or_skip, poison, rel_l2};
use ringdet_kernels::scale::{ScaleParams, cpu, cuda};
use ringdet_tensor::Rng;

#[test]
fn scale_cuda_matches_cpu() {
    let Some(rt) = gpu_or_skip("scale_cuda_matches_cpu") else {
        return;
    };
    let stream = rt.stream().clone();
    let mut rng = Rng::new(3);
    for n in [1usize, 7, 1023, 100_003] {
        let mut x = vec![0f32; n];
        rng.fill_normal(&mut x, 0.0, 3.0);
        let p = ScaleParams { alpha: -0.37 };
        let mut want = vec![0f32; n];
        cpu::scale(&mut want, &x, &p).unwrap();
        let xd: CudaSlice<f32> = stream.clone_htod(&x).unwrap();
        let mut od: CudaSlice<f32> = stream.clone_htod(&poison(n)).unwrap();
        cuda::scale(&rt, &mut od.as_view_mut(), &xd.as_view(), &p).unwrap();
        let got = stream.clone_dtoh(&od).unwrap();
        stream.synchronize().unwrap();
        assert!(
            rel_l2(&got, &want) <= 1e-7,
            "n={n}: {}",
            rel_l2(&got, &want)
        );
    }
}

#[test]
fn scale_rejects_mismatched_lengths() {
    let e = cpu::scale(&mut [0.0; 2], &[1.0; 3], &ScaleParams { alpha: 1.0 }).unwrap_err();
    assert_eq!(e.to_string(), "scale: shape mismatch: [2] vs [3]");
}
