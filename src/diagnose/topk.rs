//! Space-Saving top-K (Metwally et al.): the heaviest keys of a stream in fixed memory.
//!
//! Why: a sync loop is one key among millions; counting every key exactly would grow without
//! bound on a busy cluster. Space-Saving keeps `capacity` counters; a new key evicts the
//! smallest and inherits its count as an over-estimate (`error`). Any key written more than
//! N/capacity times is guaranteed to be present. A min-heap over the counters makes each update
//! O(log capacity).

use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    pub key: String,
    pub count: u64,
    pub bytes: u64,
    /// Upper bound of the over-estimate in `count`.
    pub error: u64,
}

#[derive(Debug, Clone)]
pub struct SpaceSaving {
    capacity: usize,
    counters: Vec<Counter>,
    index: HashMap<String, usize>,
    /// Min-heap of counter indices by count; `position[i]` is counter i's place in `heap`.
    heap: Vec<usize>,
    position: Vec<usize>,
}

impl SpaceSaving {
    pub fn new(capacity: usize) -> Self {
        assert!(capacity > 0);
        SpaceSaving {
            capacity,
            counters: Vec::new(),
            index: HashMap::new(),
            heap: Vec::new(),
            position: Vec::new(),
        }
    }

    /// How many keys are tracked (at most the capacity).
    pub fn tracked_keys(&self) -> usize {
        self.counters.len()
    }

    /// Counts one write of `bytes` to `key`.
    pub fn add(&mut self, key: &str, bytes: u64) {
        self.add_if(key, bytes, || true);
    }

    /// The same, but a key that would evict another (the table is full and it is not tracked)
    /// enters only when `admit` says so; otherwise the write is not counted. The caller's filter
    /// must refuse only keys written at most once in the sketch's lifetime, which keeps every
    /// bound: such a key was written no more often than the smallest tracked count.
    pub fn add_if(&mut self, key: &str, bytes: u64, admit: impl FnOnce() -> bool) {
        if let Some(&i) = self.index.get(key) {
            self.counters[i].count += 1;
            self.counters[i].bytes += bytes;
            self.sift_down(self.position[i]);
            return;
        }
        if self.counters.len() < self.capacity {
            let i = self.counters.len();
            self.counters.push(Counter {
                key: key.to_string(),
                count: 1,
                bytes,
                error: 0,
            });
            self.index.insert(key.to_string(), i);
            self.heap.push(i);
            self.position.push(self.heap.len() - 1);
            self.sift_up(self.heap.len() - 1);
            return;
        }
        if !admit() {
            return;
        }
        // Evict the minimum; the newcomer inherits its count as error.
        let i = self.heap[0];
        let old = std::mem::take(&mut self.counters[i].key);
        self.index.remove(&old);
        let floor = self.counters[i].count;
        self.counters[i] = Counter {
            key: key.to_string(),
            count: floor + 1,
            bytes,
            error: floor,
        };
        self.index.insert(key.to_string(), i);
        self.sift_down(0);
    }

    /// The smallest count a tracked key has once the sketch is full (an untracked key was
    /// written at most this often); 0 while there is room.
    pub fn min_count(&self) -> u64 {
        if self.counters.len() < self.capacity {
            0
        } else {
            self.heap
                .first()
                .map(|&i| self.counters[i].count)
                .unwrap_or(0)
        }
    }

    /// The (over-estimated) count of a tracked key.
    pub fn count(&self, key: &str) -> Option<u64> {
        self.index.get(key).map(|&i| self.counters[i].count)
    }

    /// The counters, in no particular order.
    pub fn counters(&self) -> impl Iterator<Item = &Counter> {
        self.counters.iter()
    }

    /// All counters, heaviest first.
    pub fn top(&self) -> Vec<Counter> {
        let mut all = self.counters.clone();
        all.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
        all
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        self.position[self.heap[a]] = a;
        self.position[self.heap[b]] = b;
    }

    fn count_at(&self, heap_slot: usize) -> u64 {
        self.counters[self.heap[heap_slot]].count
    }

    fn sift_up(&mut self, mut slot: usize) {
        while slot > 0 {
            let parent = (slot - 1) / 2;
            if self.count_at(parent) <= self.count_at(slot) {
                break;
            }
            self.swap(parent, slot);
            slot = parent;
        }
    }

    fn sift_down(&mut self, mut slot: usize) {
        loop {
            let (l, r) = (2 * slot + 1, 2 * slot + 2);
            let mut smallest = slot;
            if l < self.heap.len() && self.count_at(l) < self.count_at(smallest) {
                smallest = l;
            }
            if r < self.heap.len() && self.count_at(r) < self.count_at(smallest) {
                smallest = r;
            }
            if smallest == slot {
                return;
            }
            self.swap(slot, smallest);
            slot = smallest;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_while_under_capacity() {
        let mut s = SpaceSaving::new(10);
        for i in 0..5 {
            for _ in 0..=i {
                s.add(&format!("k{i}"), 10);
            }
        }
        let top = s.top();
        assert_eq!(
            top[0],
            Counter {
                key: "k4".into(),
                count: 5,
                bytes: 50,
                error: 0
            }
        );
        assert_eq!(s.tracked_keys(), 5);
    }

    #[test]
    fn a_heavy_key_survives_a_flood_of_unique_keys_in_bounded_memory() {
        let mut s = SpaceSaving::new(64);
        for i in 0..100_000u64 {
            s.add(&format!("noise-{i}"), 1);
            if i % 10 == 0 {
                s.add("/registry/example.com/widgets/default/loop", 100);
            }
        }
        assert!(s.tracked_keys() <= 64);
        let top = s.top();
        assert_eq!(top[0].key, "/registry/example.com/widgets/default/loop");
        // Space-Saving never under-counts, and over-counts by at most `error`.
        assert!(top[0].count >= 10_000 && top[0].count - top[0].error <= 10_000);
    }

    #[test]
    fn heap_invariant_holds_after_many_updates() {
        let mut s = SpaceSaving::new(16);
        for i in 0..5000u64 {
            s.add(&format!("k{}", (i * 7919) % 97), 1);
            for slot in 1..s.heap.len() {
                assert!(s.count_at((slot - 1) / 2) <= s.count_at(slot));
            }
        }
    }
}
