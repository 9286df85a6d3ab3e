//! A xorshift64 generator: reproducible pseudo-random sequences for tests (generated rows,
//! keys, arrival orders), the same on every platform and without a dependency.

/// Marsaglia's xorshift64 (shifts 13, 7, 17).
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator from `seed` (0, which would stay 0, is taken as 1).
    pub fn new(seed: u64) -> Self {
        XorShift(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}
