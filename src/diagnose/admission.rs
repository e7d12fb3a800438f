//! The admission filter in front of the churn sketch: a key written once in a bucket does not
//! evict a tracked one.
//!
//! Why: Space-Saving tracks every key written more than N/capacity times, and nothing below. In
//! a resync storm (measured: 100 000 objects each rewritten every 10 s, 256 counters) N/capacity
//! is ~390 writes a bucket, so five sync loops at 100 writes a bucket were evicted by one-off
//! writes again and again, and the top list showed five ordinary objects instead of the loops.
//! Counting every write in a small count-min sketch first, and letting an untracked key into a
//! full table only from its second write in the bucket, keeps single writes out; the loops then
//! compete only with each other and with the few keys that collide.
//!
//! Bounds stay sound: a count-min estimate is never below the true count, so a refused key was
//! written at most once in the bucket, which is never more than the table's smallest count.

use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};

/// Two rows of 2^20 saturating 8-bit counters: 2 MiB, allocated zeroed (pages untouched by a
/// quiet cluster cost no memory) and dropped when the bucket closes.
const ROW_BITS: u32 = 20;

pub struct Admission {
    rows: [Vec<u8>; 2],
}

impl Default for Admission {
    fn default() -> Self {
        Admission {
            rows: [vec![0; 1 << ROW_BITS], vec![0; 1 << ROW_BITS]],
        }
    }
}

impl Admission {
    /// Counts one write of `key`; returns the estimate of its writes so far (never below the
    /// true count).
    pub fn record(&mut self, key: &str) -> u8 {
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(key);
        let mask = (1u64 << ROW_BITS) - 1;
        let slots = [hash & mask, (hash >> 32) & mask];
        let mut estimate = u8::MAX;
        for (row, slot) in self.rows.iter_mut().zip(slots) {
            let counter = &mut row[slot as usize];
            *counter = counter.saturating_add(1);
            estimate = estimate.min(*counter);
        }
        estimate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_is_never_below_the_true_count_and_exact_without_collisions() {
        let mut filter = Admission::default();
        for n in 1..=5u8 {
            assert_eq!(filter.record("/registry/widgets/default/loop"), n);
        }
        // 100 000 other keys once each: every estimate is at least 1.
        let estimates: Vec<u8> = (0..100_000)
            .map(|i| filter.record(&format!("/registry/configmaps/ns/cm-{i}")))
            .collect();
        assert!(estimates.iter().all(|e| *e >= 1));
        // Few collide in both rows: almost every one-off write is refused.
        let admitted = estimates.iter().filter(|e| **e >= 2).count();
        assert!(admitted < 1_000, "{admitted}");
    }
}
