//! bf16 ⇄ f32 casts on the host (`half`'s conversions, the reference).

use crate::KernelError;
use crate::error::check_len;
use half::bf16;

/// `out[i] = bf16(x[i])`, round to nearest even.
pub fn f32_to_bf16(out: &mut [bf16], x: &[f32]) -> Result<(), KernelError> {
    check_len("f32_to_bf16", "x", x.len(), &[out.len()])?;
    out.iter_mut()
        .zip(x)
        .for_each(|(o, &v)| *o = bf16::from_f32(v));
    Ok(())
}

/// `out[i] = f32(x[i])` (exact).
pub fn bf16_to_f32(out: &mut [f32], x: &[bf16]) -> Result<(), KernelError> {
    check_len("bf16_to_f32", "x", x.len(), &[out.len()])?;
    out.iter_mut().zip(x).for_each(|(o, &v)| *o = v.to_f32());
    Ok(())
}
