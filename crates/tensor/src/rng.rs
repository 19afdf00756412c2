//! A counter-based random number generator (Philox4x32-10). Element `i` of a draw depends only on
//! the seed and the counter, so results are identical whatever the thread count.

use crate::{DType, Result, Tensor};

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// The Philox4x32-10 block function: four 32-bit words for a 128-bit counter and 64-bit key.
pub fn philox4x32(counter: u128, key: u64) -> [u32; 4] {
    let mut c = [
        counter as u32,
        (counter >> 32) as u32,
        (counter >> 64) as u32,
        (counter >> 96) as u32,
    ];
    let mut k = [key as u32, (key >> 32) as u32];
    for round in 0..10 {
        if round > 0 {
            k[0] = k[0].wrapping_add(W0);
            k[1] = k[1].wrapping_add(W1);
        }
        let p0 = (M0 as u64) * (c[0] as u64);
        let p1 = (M1 as u64) * (c[2] as u64);
        c = [
            ((p1 >> 32) as u32) ^ c[1] ^ k[0],
            p1 as u32,
            ((p0 >> 32) as u32) ^ c[3] ^ k[1],
            p0 as u32,
        ];
    }
    c
}

/// A uniform f32 in [0, 1) from 24 random bits.
fn unit(w: u32) -> f32 {
    (w >> 8) as f32 * (1.0 / 16_777_216.0)
}

/// A seeded stream of random numbers; each draw takes the next counters, so successive draws
/// differ and a given (seed, sequence of draws) always gives the same numbers.
#[derive(Clone, Debug)]
pub struct Rng {
    seed: u64,
    counter: u128,
}

/// Fills `out` in parallel chunks; `f(i)` gives element i.
fn fill_parallel(out: &mut [f32], f: impl Fn(usize) -> f32 + Sync) {
    const CHUNK: usize = 1 << 16;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if out.len() <= CHUNK || threads == 1 {
        out.iter_mut().enumerate().for_each(|(i, o)| *o = f(i));
        return;
    }
    let per = out.len().div_ceil(threads).next_multiple_of(4);
    std::thread::scope(|s| {
        for (c, chunk) in out.chunks_mut(per).enumerate() {
            let f = &f;
            s.spawn(move || {
                for (j, o) in chunk.iter_mut().enumerate() {
                    *o = f(c * per + j);
                }
            });
        }
    });
}

impl Rng {
    /// A generator keyed by `seed`, its counter at 0: two generators with one seed draw alike.
    pub fn new(seed: u64) -> Self {
        Rng { seed, counter: 0 }
    }

    /// Reserves the counters for `n` numbers and returns the first.
    fn take(&mut self, n: usize) -> u128 {
        let start = self.counter;
        self.counter += n.div_ceil(4) as u128;
        start
    }

    /// Fills `out` with numbers uniform in [lo, hi).
    pub fn fill_uniform(&mut self, out: &mut [f32], lo: f32, hi: f32) {
        let (base, key) = (self.take(out.len()), self.seed);
        fill_parallel(out, |i| {
            let w = philox4x32(base + (i / 4) as u128, key)[i % 4];
            lo + (hi - lo) * unit(w)
        });
    }

    /// Fills `out` with normal numbers (Box-Muller on pairs of words).
    pub fn fill_normal(&mut self, out: &mut [f32], mean: f32, std: f32) {
        let (base, key) = (self.take(out.len()), self.seed);
        fill_parallel(out, |i| {
            let w = philox4x32(base + (i / 4) as u128, key);
            let pair = (i % 4) / 2 * 2;
            let u1 = 1.0 - unit(w[pair]) as f64; // (0, 1]
            let u2 = unit(w[pair + 1]) as f64;
            let r = (-2.0 * u1.ln()).sqrt();
            let theta = std::f64::consts::TAU * u2;
            let z = if i % 2 == 0 {
                r * theta.cos()
            } else {
                r * theta.sin()
            };
            mean + std * z as f32
        });
    }

    /// An f32 host tensor uniform in [lo, hi).
    pub fn uniform(&mut self, shape: &[usize], lo: f32, hi: f32) -> Result<Tensor> {
        let mut v = vec![0f32; shape.iter().product()];
        self.fill_uniform(&mut v, lo, hi);
        Tensor::from_vec(v, shape)
    }

    /// An f32 host tensor of normal numbers.
    pub fn normal(&mut self, shape: &[usize], mean: f32, std: f32) -> Result<Tensor> {
        let mut v = vec![0f32; shape.iter().product()];
        self.fill_normal(&mut v, mean, std);
        Tensor::from_vec(v, shape)
    }

    /// The dtype every draw produces.
    pub const DTYPE: DType = DType::F32;
}
