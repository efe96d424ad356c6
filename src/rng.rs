//! A small seeded random number generator (SplitMix64), identical natively and in wasm, so that
//! splits, example sampling, weight init, dropout masks and token sampling reproduce from a seed.

#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [0, n).
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "below(0)");
        // Lemire's multiply-shift; the tiny bias is irrelevant at these sizes.
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// A standard normal sample (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.next_f64();
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

thread_local! {
    /// The stream [`dropout_keys`] draws from; [`crate::device::seed`] sets it.
    static DROPOUT_KEYS: std::cell::Cell<u64> = const { std::cell::Cell::new(0x7E57_AB1E_5EED_0001) };
}

/// Starts the stream of dropout keys at `seed` ([`crate::device::seed`] does, beside the
/// device's own generator).
pub fn seed_dropout_keys(seed: u64) {
    DROPOUT_KEYS.set(seed);
}

/// The two 32-bit keys of one dropout's mask (the engine's kernels hash each element's index
/// under them): the next draw of the stream the last [`seed_dropout_keys`] started. Drawn on the
/// host, so a mask costs no launch on a GPU, and a seeded run gives the same masks again.
pub fn dropout_keys() -> (u32, u32) {
    let mut rng = Rng::new(DROPOUT_KEYS.get());
    let v = rng.next_u64();
    DROPOUT_KEYS.set(rng.state);
    (v as u32, (v >> 32) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropout_keys_restart_at_their_seed() {
        seed_dropout_keys(3);
        let first: Vec<_> = (0..4).map(|_| dropout_keys()).collect();
        seed_dropout_keys(3);
        let again: Vec<_> = (0..4).map(|_| dropout_keys()).collect();
        assert_eq!(first, again);
        assert_ne!(first[0], first[1], "two masks in a row had the same keys");
        seed_dropout_keys(4);
        assert_ne!(dropout_keys(), first[0], "another seed gave the same keys");
    }

    #[test]
    fn same_seed_same_stream_and_uniform_range() {
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        for _ in 0..1000 {
            let x = a.next_f64();
            assert_eq!(x, b.next_f64());
            assert!((0.0..1.0).contains(&x));
        }
        let mut v: Vec<usize> = (0..50).collect();
        Rng::new(7).shuffle(&mut v);
        let mut sorted = v.clone();
        sorted.sort();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        assert_ne!(v, sorted, "a shuffle of 50 items left them in order");
    }

    #[test]
    fn normal_has_unit_moments() {
        let mut r = Rng::new(1);
        let xs: Vec<f64> = (0..20000).map(|_| r.normal()).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "variance {var}");
    }
}
