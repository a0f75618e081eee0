//! The one pseudo-random generator of detcd's state machines.
//!
//! The algorithm is pinned here, in our own code, so that a seed gives the same
//! stream on every platform and in every future build: xoshiro256** (Blackman and
//! Vigna, 2018), with its 256-bit state expanded from a 64-bit seed by SplitMix64.
//! Changing either algorithm changes every simulator trace; bump
//! [`Rng::ALGORITHM`] when doing so.

/// A seeded, version-pinned PRNG. Each state machine owns one; nothing is global.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng {
    state: [u64; 4],
}

impl Rng {
    /// The name and version of the algorithm, printed by tools that record seeds.
    pub const ALGORITHM: &'static str = "xoshiro256**/splitmix64 v1";

    /// Creates a generator whose whole stream is decided by `seed`.
    pub fn new(seed: u64) -> Self {
        let mut sm = seed;
        let mut state = [0u64; 4];
        for word in &mut state {
            *word = splitmix64(&mut sm);
        }
        // xoshiro's state must not be all zero; SplitMix64 never yields four zeros,
        // but the invariant is cheap to state.
        debug_assert!(state.iter().any(|&w| w != 0));
        Rng { state }
    }

    /// The next 64 uniformly distributed bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.state;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// A uniform value in `low..high` (exclusive). `low < high` is required.
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        assert!(low < high, "empty range {low}..{high}");
        let span = high - low;
        // Lemire's multiply-shift with rejection: unbiased and without division in
        // the common case.
        loop {
            let x = self.next_u64();
            let m = u128::from(x) * u128::from(span);
            let lo = m as u64;
            if lo >= span.wrapping_neg() % span {
                return low + (m >> 64) as u64;
            }
        }
    }

    /// True with probability `numerator / denominator`.
    pub fn chance(&mut self, numerator: u64, denominator: u64) -> bool {
        assert!(denominator > 0);
        self.range(0, denominator) < numerator
    }

    /// A child generator with its own independent stream, for handing to a
    /// sub-component without sharing state.
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.next_u64())
    }
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stream for a fixed seed is part of the format: simulator seeds recorded
    /// today must replay tomorrow. These values were produced by this
    /// implementation; a change here means every recorded seed changes meaning.
    #[test]
    fn stream_is_pinned() {
        let mut rng = Rng::new(0);
        let first: Vec<u64> = (0..3).map(|_| rng.next_u64()).collect();
        let mut again = Rng::new(0);
        let second: Vec<u64> = (0..3).map(|_| again.next_u64()).collect();
        assert_eq!(first, second);
        assert_eq!(first, PINNED_SEED_0);
    }

    const PINNED_SEED_0: [u64; 3] = [
        11_091_344_671_253_066_420,
        13_793_997_310_169_335_082,
        1_900_383_378_846_508_768,
    ];

    #[test]
    fn range_stays_in_bounds_and_covers_it() {
        let mut rng = Rng::new(42);
        let mut seen = [false; 10];
        for _ in 0..1000 {
            let v = rng.range(10, 20);
            assert!((10..20).contains(&v));
            seen[(v - 10) as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn different_seeds_differ() {
        assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
    }
}
