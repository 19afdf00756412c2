//! `scale` on the host.

use super::ScaleParams;
use crate::KernelError;

/// `out[i] = alpha * x[i]`.
pub fn scale(out: &mut [f32], x: &[f32], p: &ScaleParams) -> Result<(), KernelError> {
    if out.len() != x.len() {
        return Err(KernelError::shape("scale", &[out.len()], &[x.len()]));
    }
    out.iter_mut().zip(x).for_each(|(o, &v)| *o = p.alpha * v);
    Ok(())
}
