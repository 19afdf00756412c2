//! Runs the memory-bound elementwise loops compiled for the widest vector unit this CPU has,
//! chosen at run time, so that one x86-64 binary uses AVX-512 where it exists and still runs
//! anywhere. The loops are plain Rust that the compiler vectorises; [`widest`] only decides which
//! instruction set the copy it runs was compiled for. No floating-point contraction happens on any
//! path (Rust never fuses a multiply and an add on its own), so every path rounds alike and gives
//! the same bits.

/// Runs `f`, inlined into a copy compiled for AVX-512 (F, VL, BW, DQ) or AVX2 + FMA when the CPU
/// has them, or the baseline otherwise. `f` should be a loop over slices with nothing opaque in it
/// (no calls into libm) so that the wider copy is worth having.
#[inline(always)]
pub(crate) fn widest<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512dq")
        {
            // SAFETY: the CPU has every feature the copy is compiled for (checked above).
            return unsafe { x86::avx512(f) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: as above, for AVX2 and FMA.
            return unsafe { x86::avx2(f) };
        }
    }
    f()
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
    pub(super) unsafe fn avx512<R>(f: impl FnOnce() -> R) -> R {
        f()
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
        f()
    }
}

/// e^x for `f32` without a call into libm, so that loops over it vectorise. Computed in `f64`
/// (as glibc's `expf` does): the argument split as n·ln2 + r with |r| ≤ ln2/2, e^r by its Taylor
/// polynomial to degree 10 (relative error below 1e-11), times 2^n built in the exponent field,
/// then rounded once to `f32`; so it is the correctly rounded e^x but in rare near-ties, and
/// overflows to ∞ and underflows to 0 where `f32::exp` does. NaN stays NaN.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const LOG2E: f64 = std::f64::consts::LOG2_E;
    // ln 2 in two parts; LN2_HI has its low 32 bits zero, so n·LN2_HI is exact for |n| < 2^20.
    const LN2_HI: f64 = f64::from_bits(0x3FE6_2E42_FEE0_0000);
    const LN2_LO: f64 = std::f64::consts::LN_2 - LN2_HI;
    // 1.5·2^52: adding it rounds to an integer held in the low mantissa bits.
    const ROUND: f64 = 6_755_399_441_055_744.0;
    // Beyond these, f32 overflows (e^89 > f32::MAX) or underflows to 0 (e^−104 < the smallest
    // subnormal / 2) anyway; clamping keeps 2^n a normal f64.
    let x = (x as f64).clamp(-104.0, 89.0);
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.0 / 3_628_800.0;
    p = p * r + 1.0 / 362_880.0;
    p = p * r + 1.0 / 40_320.0;
    p = p * r + 1.0 / 5_040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    // n as an integer from t's bits, then 2^n built in the exponent field (n in [−151, 129]).
    let n_int = (t.to_bits() as i64).wrapping_sub(ROUND.to_bits() as i64);
    let pow2n = f64::from_bits((n_int.wrapping_add(1023) as u64) << 52);
    (p * pow2n) as f32
}

/// ln x for `f32` without a call into libm, so that loops over it vectorise: Cephes' `logf`.
/// x = m·2^e with m in [√½, √2), ln m = f − f²/2 + f³·P(f) with f = m − 1 and Cephes' degree-8
/// polynomial P, plus e·ln 2 in two parts. Subnormals are scaled into the normal range first;
/// ln 0 = −∞, ln of a negative number or NaN is NaN, ln ∞ = ∞, as `f32::ln`. Within 1 ulp of
/// the correctly rounded value (measured by the tests below); plain multiplies and adds, so every
/// SIMD path gives the same bits.
#[inline(always)]
pub fn ln_f32(x: f32) -> f32 {
    const SQRT_HALF: f32 = std::f32::consts::FRAC_1_SQRT_2;
    let sub = x < f32::MIN_POSITIVE;
    let xs = if sub { x * 8_388_608.0 } else { x };
    let bits = xs.to_bits() as i32;
    let mut e = ((bits >> 23) & 0xff) - 126 - if sub { 23 } else { 0 };
    // mantissa in [0.5, 1), then into [√½, √2) by doubling the lower part
    let mut m = f32::from_bits(((bits & 0x007f_ffff) | 0x3f00_0000) as u32);
    let low = m < SQRT_HALF;
    e -= i32::from(low);
    m = if low { m + m } else { m };
    let f = m - 1.0;
    let z = f * f;
    let mut y = 7.037_683_6e-2;
    y = y * f - 1.151_461e-1;
    y = y * f + 1.167_699_9e-1;
    y = y * f - 1.242_014_1e-1;
    y = y * f + 1.424_932_3e-1;
    y = y * f - 1.666_805_8e-1;
    y = y * f + 2.000_071_5e-1;
    y = y * f - 2.499_999_4e-1;
    y = y * f + 3.333_333e-1;
    let ef = e as f32;
    y = y * f * z;
    y += ef * -2.121_944_4e-4;
    y += -0.5 * z;
    let r = f + y + ef * 0.693_359_4;
    let r = if x == 0.0 { f32::NEG_INFINITY } else { r };
    let r = if x == f32::INFINITY { x } else { r };
    if x < 0.0 || x.is_nan() { f32::NAN } else { r }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f32, b: f32) -> u32 {
        (a.to_bits() as i32 - b.to_bits() as i32).unsigned_abs()
    }

    #[test]
    fn exp_f32_is_the_rounded_f64_exp() {
        let (mut worst, mut differ, mut total) = (0, 0, 0);
        let mut x = -103.0f32;
        while x <= 89.0 {
            let exact = (x as f64).exp() as f32;
            let u = ulps(exp_f32(x), exact);
            worst = worst.max(u);
            differ += usize::from(u > 0);
            total += 1;
            x += 0.000_731;
        }
        assert!(worst <= 1, "worst {worst} ulp");
        assert!(differ * 10_000 < total, "{differ} of {total} differ");
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(1.0), std::f32::consts::E);
    }

    #[test]
    fn exp_f32_overflows_underflows_and_keeps_nan_as_libm() {
        assert!(exp_f32(f32::NAN).is_nan());
        for x in [89.0f32, 1000.0, f32::INFINITY] {
            assert_eq!(exp_f32(x), f32::INFINITY, "{x}");
        }
        for x in [-104.0f32, -1000.0, f32::NEG_INFINITY] {
            assert_eq!(exp_f32(x), 0.0, "{x}");
        }
        assert_eq!(exp_f32(-100.0), (-100.0f32).exp(), "subnormal");
        assert_eq!(exp_f32(88.5), 88.5f32.exp());
    }

    #[test]
    fn ln_f32_is_within_one_ulp_of_the_rounded_ln() {
        let (mut worst, mut differ, mut total) = (0, 0, 0);
        // every 97th f32 from the smallest subnormal to the largest finite value
        let mut b = 1u32;
        while b < f32::MAX.to_bits() {
            let x = f32::from_bits(b);
            let exact = (x as f64).ln() as f32;
            let u = ulps(ln_f32(x), exact);
            worst = worst.max(u);
            differ += usize::from(u > 0);
            total += 1;
            b += 97;
        }
        assert!(worst <= 1, "worst {worst} ulp");
        assert!(differ * 5 < total, "{differ} of {total} differ");
        assert_eq!(ln_f32(1.0), 0.0);
    }

    #[test]
    fn ln_f32_edges_as_libm() {
        assert_eq!(ln_f32(0.0), f32::NEG_INFINITY);
        assert_eq!(ln_f32(-0.0), f32::NEG_INFINITY);
        assert_eq!(ln_f32(f32::INFINITY), f32::INFINITY);
        assert!(ln_f32(-1.0).is_nan() && ln_f32(f32::NAN).is_nan());
        assert!(ln_f32(f32::NEG_INFINITY).is_nan());
    }

    #[test]
    fn every_path_gives_the_same_bits() {
        let xs: Vec<f32> = (0..4099).map(|i| (i as f32 - 2000.0) * 0.037).collect();
        let scalar: Vec<f32> = xs.iter().map(|&x| exp_f32(x)).collect();
        let wide = widest(|| xs.iter().map(|&x| exp_f32(x)).collect::<Vec<f32>>());
        assert_eq!(scalar, wide);
        let ps: Vec<f32> = xs.iter().map(|x| x.abs() * 0.3).collect();
        let scalar: Vec<u32> = ps.iter().map(|&x| ln_f32(x).to_bits()).collect();
        let wide = widest(|| {
            ps.iter()
                .map(|&x| ln_f32(x).to_bits())
                .collect::<Vec<u32>>()
        });
        assert_eq!(scalar, wide);
    }
}
