//! Shared test helpers: a seeded RNG and the f64 central-difference gradient check.
#![allow(dead_code)]

/// SplitMix64: deterministic, dependency-free.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
    }
    pub fn vec(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| self.uniform(-1.0, 1.0)).collect()
    }
    pub fn vec_in(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f64> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
}

/// Denominator floor of the relative error: gradients smaller than this are compared absolutely.
pub const REL_FLOOR: f64 = 1e-3;
/// The bound on the maximum relative error.
pub const MAX_REL_ERR: f64 = 1e-6;

/// Central-difference check of `analytic` = d f / d x at `x`: five-point stencil, step 1e-4,
/// in f64 (truncation error O(h⁴), round-off about 1e-16·|f|/h).
/// Returns the maximum relative error `|a − n| / max(|a|, |n|, REL_FLOOR)` and asserts the bound.
pub fn check_grad(
    name: &str,
    x: &[f64],
    analytic: &[f64],
    mut f: impl FnMut(&[f64]) -> f64,
) -> f64 {
    assert_eq!(x.len(), analytic.len(), "{name}: gradient length");
    let h = 1e-4;
    let mut xs = x.to_vec();
    let mut worst: f64 = 0.0;
    let mut at = 0;
    for i in 0..xs.len() {
        let orig = xs[i];
        let mut at_step = |k: f64| {
            xs[i] = orig + k * h;
            f(&xs)
        };
        let (f2, f1, m1, m2) = (at_step(2.0), at_step(1.0), at_step(-1.0), at_step(-2.0));
        xs[i] = orig;
        let num = (8.0 * (f1 - m1) - (f2 - m2)) / (12.0 * h);
        let a = analytic[i];
        let rel = (a - num).abs() / a.abs().max(num.abs()).max(REL_FLOOR);
        if rel > worst {
            worst = rel;
            at = i;
        }
    }
    eprintln!("gradcheck {name}: max relative error {worst:.3e}");
    assert!(
        worst <= MAX_REL_ERR,
        "{name}: max relative error {worst:e} at element {at} (analytic {}, bound {MAX_REL_ERR:e})",
        analytic[at]
    );
    worst
}

/// Σ r·y: the scalar whose gradient the checks compare (`dy = r`).
pub fn dot(r: &[f64], y: &[f64]) -> f64 {
    r.iter().zip(y).map(|(a, b)| a * b).sum()
}
