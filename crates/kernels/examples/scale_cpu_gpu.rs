//! The README example: the scale op on the CPU, and on the GPU when there is one.

use ringdet_kernels::runtime::KernelRuntime;
use ringdet_kernels::scale::{ScaleParams, cpu, cuda};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let x = vec![1.0f32, -2.0, 4.0];
    let mut out = vec![0.0f32; 3];
    cpu::scale(&mut out, &x, &ScaleParams { alpha: 0.5 })?;
    assert_eq!(out, [0.5, -1.0, 2.0]);

    match KernelRuntime::get(0) {
        Ok(rt) => {
            let stream = rt.stream();
            let xd = stream.clone_htod(&x)?;
            let mut od = stream.alloc_zeros::<f32>(3)?;
            cuda::scale(
                &rt,
                &mut od.as_view_mut(),
                &xd.as_view(),
                &ScaleParams { alpha: 0.5 },
            )?;
            assert_eq!(stream.clone_dtoh(&od)?, out);
        }
        Err(e) => println!("no GPU here: {e}"),
    }
    Ok(())
}
