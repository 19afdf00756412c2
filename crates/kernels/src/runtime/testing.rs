//! Helpers for tests that need a GPU or NVRTC: they skip with a printed reason on machines
//! without one, and fail instead when the environment says the hardware must be there
//! (`REQUIRE_GPU=1` on the GPU machine, `REQUIRE_NVRTC=1` in CI).

use super::{KernelRuntime, RuntimeError};
use std::sync::Arc;

fn required(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| v == "1")
}

fn skip_or_fail(var: &str, test: &str, reason: &RuntimeError) {
    if required(var) {
        panic!("{test}: {var}=1 but: {reason}");
    }
    // Written to the process's stderr directly: the test harness captures `eprintln!`, and a
    // skip must be visible in every run.
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIP {test}: {reason}");
}

/// The runtime of CUDA device 0, or `None` after printing `SKIP <test>: <reason>` to stderr.
/// With `REQUIRE_GPU=1` a missing GPU fails the test instead.
pub fn gpu_or_skip(test: &str) -> Option<Arc<KernelRuntime>> {
    match KernelRuntime::get(0) {
        Ok(rt) => Some(rt),
        Err(e) => {
            skip_or_fail("REQUIRE_GPU", test, &e);
            None
        }
    }
}

/// NVRTC's version, or `None` after printing `SKIP <test>: <reason>`. With `REQUIRE_NVRTC=1`
/// a missing NVRTC fails the test instead.
pub fn nvrtc_or_skip(test: &str) -> Option<(i32, i32)> {
    match super::nvrtc_version() {
        Ok(v) => Some(v),
        Err(e) => {
            skip_or_fail("REQUIRE_NVRTC", test, &e);
            None
        }
    }
}

/// `n` values that are NaN: outputs are filled with them before a launch, so an element the
/// kernel forgets to write shows up in the comparison.
pub fn poison(n: usize) -> Vec<f32> {
    vec![f32::NAN; n]
}

/// Relative L2 error `|a - b| / max(|b|, tiny)`; NaN anywhere gives infinity.
pub fn rel_l2(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() || a.iter().chain(b).any(|x| x.is_nan()) {
        return f64::INFINITY;
    }
    let num: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
        .sum();
    let den: f64 = b.iter().map(|&y| (y as f64).powi(2)).sum();
    (num / den.max(1e-300)).sqrt()
}
