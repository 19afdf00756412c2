//! NumPy's legacy `RandomState(seed).shuffle`, bit for bit: MT19937 seeded with `init_genrand`,
//! Fisher–Yates with `random_interval`'s masked rejection sampling. PaddleDetection's
//! DistributedBatchSampler shuffles with `np.random.RandomState(epoch)`, so the same epoch gives the
//! same order here as there.

const N: usize = 624;
const M: usize = 397;

/// The Mersenne Twister as NumPy's `RandomState` holds it.
pub struct Mt19937 {
    key: [u32; N],
    pos: usize,
}

impl Mt19937 {
    /// `np.random.RandomState(seed)` for a seed in 0..2³².
    pub fn new(seed: u32) -> Mt19937 {
        let mut key = [0u32; N];
        let mut s = seed;
        for (i, slot) in key.iter_mut().enumerate() {
            *slot = s;
            s = 1_812_433_253u32
                .wrapping_mul(s ^ (s >> 30))
                .wrapping_add(i as u32 + 1);
        }
        Mt19937 { key, pos: N }
    }

    fn generate(&mut self) {
        let upper = 0x8000_0000u32;
        let lower = 0x7fff_ffffu32;
        let matrix = 0x9908_b0dfu32;
        for i in 0..N {
            let y = (self.key[i] & upper) | (self.key[(i + 1) % N] & lower);
            let mag = if y & 1 == 1 { matrix } else { 0 };
            self.key[i] = self.key[(i + M) % N] ^ (y >> 1) ^ mag;
        }
        self.pos = 0;
    }

    /// The next 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        if self.pos == N {
            self.generate();
        }
        let mut y = self.key[self.pos];
        self.pos += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// Uniform integer in [0, max], as NumPy's `random_interval(max)` (max < 2³²).
    pub fn interval(&mut self, max: u32) -> u32 {
        if max == 0 {
            return 0;
        }
        let mut mask = max;
        for shift in [1, 2, 4, 8, 16] {
            mask |= mask >> shift;
        }
        loop {
            let v = self.next_u32() & mask;
            if v <= max {
                return v;
            }
        }
    }

    /// `RandomState.shuffle(list)`: swaps `items[i]` with `items[interval(i)]` for i from the end.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.interval(i as u32) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_outputs_match_reference_mt19937() {
        // The reference implementation's first outputs for init_genrand(5489).
        let mut mt = Mt19937::new(5489);
        assert_eq!(mt.next_u32(), 3_499_211_612);
        assert_eq!(mt.next_u32(), 581_869_302);
        assert_eq!(mt.next_u32(), 3_890_346_734);
    }
}
