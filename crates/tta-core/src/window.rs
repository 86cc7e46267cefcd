//! A lock-free sliding window of yes/no outcomes, for rate gauges.

use std::sync::atomic::{AtomicU64, Ordering};

/// The share of "yes" among the last `64 * WORDS` recorded outcomes, without locks: one
/// bit per outcome in a ring. Under concurrency the share is approximate for an instant
/// (a gauge), never unbounded.
///
/// # Examples
///
/// ```
/// use tta_core::OutcomeWindow;
///
/// let window = OutcomeWindow::<2>::new(); // the last 128 outcomes
/// assert_eq!(window.push(true), 1.0);
/// assert_eq!(window.push(false), 0.5);
/// ```
#[derive(Debug)]
pub struct OutcomeWindow<const WORDS: usize> {
    bits: [AtomicU64; WORDS],
    seen: AtomicU64,
    /// Set bits, kept up to date on each push instead of counted on each read.
    ones: AtomicU64,
}

impl<const WORDS: usize> Default for OutcomeWindow<WORDS> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const WORDS: usize> OutcomeWindow<WORDS> {
    /// How many outcomes the window holds.
    pub const SLOTS: u64 = 64 * WORDS as u64;

    /// An empty window.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(tta_core::OutcomeWindow::<1>::SLOTS, 64);
    /// ```
    pub fn new() -> Self {
        Self {
            bits: std::array::from_fn(|_| AtomicU64::new(0)),
            seen: AtomicU64::new(0),
            ones: AtomicU64::new(0),
        }
    }

    /// Records one outcome and returns the share of `true` in the window (0 to 1).
    ///
    /// # Examples
    ///
    /// ```
    /// let w = tta_core::OutcomeWindow::<1>::new();
    /// for _ in 0..64 { w.push(true); }
    /// assert_eq!(w.push(false), 63.0 / 64.0);
    /// ```
    pub fn push(&self, yes: bool) -> f64 {
        let i = self.seen.fetch_add(1, Ordering::Relaxed);
        let slot = i % Self::SLOTS;
        let word = &self.bits[(slot / 64) as usize];
        let mask = 1u64 << (slot % 64);
        // Most pushes repeat what their slot already holds (a steady hit ratio): a load
        // then, not a read-modify-write. Every flip is still a read-modify-write that
        // sees the bit it replaced, so `ones` stays the count of set bits.
        let held = word.load(Ordering::Relaxed) & mask != 0;
        let was_set = if held == yes {
            held
        } else if yes {
            word.fetch_or(mask, Ordering::Relaxed) & mask != 0
        } else {
            word.fetch_and(!mask, Ordering::Relaxed) & mask != 0
        };
        let ones = match (was_set, yes) {
            (false, true) => self.ones.fetch_add(1, Ordering::Relaxed) + 1,
            (true, false) => self.ones.fetch_sub(1, Ordering::Relaxed) - 1,
            _ => self.ones.load(Ordering::Relaxed),
        };
        ones as f64 / (i + 1).min(Self::SLOTS) as f64
    }

    /// The share of `true` in the window now (0 when nothing was recorded).
    ///
    /// # Examples
    ///
    /// ```
    /// let w = tta_core::OutcomeWindow::<1>::new();
    /// assert_eq!(w.share(), 0.0);
    /// w.push(true);
    /// w.push(false);
    /// assert_eq!(w.share(), 0.5);
    /// ```
    pub fn share(&self) -> f64 {
        let seen = self.seen.load(Ordering::Relaxed).min(Self::SLOTS);
        if seen == 0 {
            return 0.0;
        }
        self.ones.load(Ordering::Relaxed) as f64 / seen as f64
    }
}

#[cfg(test)]
mod tests {
    use super::OutcomeWindow;

    #[test]
    fn the_rate_window_covers_the_last_128_executions() {
        let w = OutcomeWindow::<2>::new();
        assert_eq!(w.push(true), 1.0);
        assert_eq!(w.push(false), 0.5);
        for _ in 0..126 {
            w.push(false);
        }
        // 129 executions: the first (the timeout) slid out.
        assert_eq!(w.push(false), 0.0);
        for _ in 0..64 {
            w.push(true);
        }
        assert_eq!(w.push(false), 64.0 / 128.0);
        assert_eq!(w.share(), 64.0 / 128.0);
    }

    #[test]
    fn racing_pushes_keep_the_count_of_set_bits_exact() {
        use std::sync::Barrier;
        use std::sync::atomic::Ordering;
        const THREADS: u64 = 4;
        const PUSHES: u64 = 50_000;
        for round in 0..10u64 {
            // One word: four threads share 64 slots, so pushes to one slot race.
            let w = OutcomeWindow::<1>::new();
            let start = Barrier::new(THREADS as usize);
            std::thread::scope(|scope| {
                for t in 0..THREADS {
                    let (w, start) = (&w, &start);
                    scope.spawn(move || {
                        start.wait();
                        for i in 0..PUSHES {
                            // Runs of one outcome and flips, different per thread.
                            w.push((i / (t + 1) + round) % 3 == 0);
                        }
                    });
                }
            });
            let set = u64::from(w.bits[0].load(Ordering::Relaxed).count_ones());
            assert_eq!(w.ones.load(Ordering::Relaxed), set, "round {round}");
            assert_eq!(w.seen.load(Ordering::Relaxed), THREADS * PUSHES);
            assert_eq!(w.share(), set as f64 / 64.0);
        }
    }
}
