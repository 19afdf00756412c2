//! The augmentation random stream: small, seeded, and keyed by (seed, epoch, batch, sample) so that
//! every sample's draws are the same whichever worker thread makes them.

/// A SplitMix64 generator. Cheap to create, so each sample and each batch gets its own.
#[derive(Clone, Debug)]
pub struct AugRng {
    state: u64,
}

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl AugRng {
    /// A generator whose stream depends on every key, in order.
    pub fn from_keys(keys: &[u64]) -> AugRng {
        let mut state = 0x005E_ED0F_C0C0_u64;
        for &k in keys {
            state = mix(state.wrapping_add(GOLDEN) ^ mix(k.wrapping_add(GOLDEN)));
        }
        AugRng { state }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN);
        mix(self.state)
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [low, high), as `np.random.uniform(low, high)`.
    pub fn uniform(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.next_f64()
    }

    /// Uniform integer in [low, high), as `np.random.randint(low, high)`; `low` when the range is empty.
    pub fn randint(&mut self, low: i64, high: i64) -> i64 {
        if high <= low {
            return low;
        }
        let span = (high - low) as u64;
        low + ((self.next_u64() as u128 * span as u128) >> 64) as i64
    }

    /// Uniform index in [0, n); 0 when `n` is 0.
    pub fn index(&mut self, n: usize) -> usize {
        self.randint(0, n as i64) as usize
    }

    /// Shuffles in place (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.index(i + 1);
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_depend_on_every_key_and_repeat() {
        let a: Vec<u64> = (0..4)
            .map({
                let mut r = AugRng::from_keys(&[1, 2, 3]);
                move |_| r.next_u64()
            })
            .collect();
        let b: Vec<u64> = (0..4)
            .map({
                let mut r = AugRng::from_keys(&[1, 2, 3]);
                move |_| r.next_u64()
            })
            .collect();
        assert_eq!(a, b);
        let mut c = AugRng::from_keys(&[1, 2, 4]);
        assert_ne!(a[0], c.next_u64());
        let mut d = AugRng::from_keys(&[2, 1, 3]);
        assert_ne!(a[0], d.next_u64());
    }

    #[test]
    fn ranges_are_respected() {
        let mut r = AugRng::from_keys(&[7]);
        for _ in 0..10_000 {
            let u = r.uniform(0.5, 1.5);
            assert!((0.5..1.5).contains(&u));
            let k = r.randint(-3, 4);
            assert!((-3..4).contains(&k));
        }
        assert_eq!(r.randint(5, 5), 5);
    }
}
