//! The churn detector: writes per key over the last minute and the last ten minutes, in bounded
//! memory, and the sync-loop signature.
//!
//! Why windows of buckets: a sync loop is a *rate* (one object rewritten many times a minute),
//! and it must be noticed within a minute of starting and forgotten after it stops. Sixty
//! 10-second buckets, each a Space-Saving sketch of fixed capacity, give both windows; memory is
//! bounded by buckets × capacity no matter how many keys are written.

use std::collections::{HashMap, VecDeque};

use serde::Serialize;

use super::admission::Admission;
use super::fields::{FieldChange, WriterCount};
use super::keys::{classify, vcluster_sync_hint};
use super::topk::SpaceSaving;

const BUCKET_SECONDS: u64 = 10;
const BUCKETS: usize = 60; // 10 minutes

/// One hot key, as reported in /status, metrics and logs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChurnEntry {
    pub key: String,
    pub resource: String,
    /// Writes in the window, guaranteed: the sketches' counts less their error bounds.
    pub writes: u64,
    /// At most this many writes (each bucket's over-estimate, and its smallest count where the
    /// key was not tracked).
    pub writes_max: u64,
    /// From the guaranteed count: a key is never reported above what it was surely written.
    pub writes_per_minute: f64,
    pub bytes_per_minute: f64,
    /// True when the guaranteed rate is over the sync-loop threshold.
    pub sync_loop: bool,
    /// The vCluster setting that likely syncs it (for sync loops).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vcluster_hint: Option<String>,
    /// The field paths that changed between its revisions, most changed first (hot keys only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changed_fields: Vec<FieldChange>,
    /// The field managers that wrote its revisions, most writes first (hot keys only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub writers: Vec<WriterCount>,
}

pub struct ChurnDetector {
    capacity: usize,
    threshold_per_minute: f64,
    /// (bucket start in seconds, sketch), oldest first.
    buckets: VecDeque<(u64, SpaceSaving)>,
    started: Option<f64>,
    /// Every write of the current bucket, so that one-off writes do not evict tracked keys
    /// (see `admission`); replaced when a bucket opens.
    admission: Option<Admission>,
    pub events: u64,
}

impl ChurnDetector {
    pub fn new(capacity: usize, threshold_per_minute: f64) -> Self {
        ChurnDetector {
            capacity,
            threshold_per_minute,
            buckets: VecDeque::new(),
            started: None,
            admission: None,
            events: 0,
        }
    }

    /// Counts one write (put or delete) of `bytes` (key + value) to `key` at `now` seconds.
    pub fn record(&mut self, key: &str, bytes: u64, now: f64) {
        self.started.get_or_insert(now);
        self.events += 1;
        let start = (now as u64 / BUCKET_SECONDS) * BUCKET_SECONDS;
        if self.buckets.back().is_none_or(|(s, _)| *s != start) {
            self.buckets
                .push_back((start, SpaceSaving::new(self.capacity)));
            while self.buckets.len() > BUCKETS {
                self.buckets.pop_front();
            }
            self.admission = Some(Admission::default());
        }
        let admission = self.admission.get_or_insert_with(Admission::default);
        let writes = admission.record(key);
        let sketch = &mut self.buckets.back_mut().expect("just pushed").1;
        sketch.add_if(key, bytes, || writes >= 2);
    }

    /// The `n` heaviest keys over the last `window_seconds` (≤ 600) at `now`.
    pub fn top(&self, now: f64, window_seconds: f64, n: usize) -> Vec<ChurnEntry> {
        let since = now - window_seconds;
        let in_window: Vec<&SpaceSaving> = self
            .buckets
            .iter()
            .filter(|(start, _)| {
                (*start as f64 + BUCKET_SECONDS as f64) > since && *start as f64 <= now
            })
            .map(|(_, sketch)| sketch)
            .collect();
        // Per key: (guaranteed writes, upper bound over the buckets that track it, bytes,
        // buckets that track it).
        let mut merged: HashMap<&str, (u64, u64, u64, usize)> = HashMap::new();
        for sketch in &in_window {
            for counter in sketch.counters() {
                let entry = merged.entry(counter.key.as_str()).or_default();
                entry.0 += counter.count - counter.error;
                entry.1 += counter.count;
                entry.2 += counter.bytes;
                entry.3 += 1;
            }
        }
        let untracked_max: u64 = in_window.iter().map(|s| s.min_count()).sum();
        // Rates over the part of the window we have actually watched.
        let watched = self
            .started
            .map(|s| (now - s).clamp(BUCKET_SECONDS as f64, window_seconds))
            .unwrap_or(window_seconds);
        let mut entries: Vec<ChurnEntry> = merged
            .into_iter()
            .filter(|(_, (writes, ..))| *writes > 0)
            .map(|(key, (writes, upper, bytes, tracked_in))| {
                let writes_per_minute = writes as f64 * 60.0 / watched;
                let resource = classify(key).resource;
                let sync_loop = writes_per_minute > self.threshold_per_minute;
                // Where the key was not tracked it was written at most that bucket's minimum;
                // summed over every bucket as a bound (a key tracked everywhere adds nothing).
                let untracked = if tracked_in == in_window.len() {
                    0
                } else {
                    untracked_max
                };
                ChurnEntry {
                    key: key.to_string(),
                    vcluster_hint: sync_loop.then(|| vcluster_sync_hint(&resource)),
                    resource,
                    writes,
                    writes_max: upper + untracked,
                    writes_per_minute,
                    bytes_per_minute: bytes as f64 * 60.0 / watched,
                    sync_loop,
                    changed_fields: Vec::new(),
                    writers: Vec::new(),
                }
            })
            .collect();
        entries.sort_by(|a, b| b.writes.cmp(&a.writes).then_with(|| a.key.cmp(&b.key)));
        entries.truncate(n);
        entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_looping_object_is_flagged_and_named_with_its_vcluster_setting() {
        let mut d = ChurnDetector::new(128, 60.0);
        let lp = "/registry/example.com/widgets/default/looping";
        for tenth in 0..600u64 {
            let now = 1000.0 + tenth as f64 / 10.0; // 60 s
            d.record(lp, 1000, now);
            d.record(
                &format!("/registry/configmaps/default/cm-{tenth}"),
                100,
                now,
            );
        }
        let top = d.top(1060.0, 60.0, 10);
        assert_eq!(top[0].key, lp);
        assert!(top[0].sync_loop);
        assert!(
            (top[0].writes_per_minute - 600.0).abs() < 60.0,
            "{}",
            top[0].writes_per_minute
        );
        assert!(
            top[0]
                .vcluster_hint
                .as_deref()
                .unwrap()
                .contains("widgets.example.com")
        );
        assert!(!top[1].sync_loop);
    }

    /// Found by `scripts/bench.sh churn-wide`: with every object of a large cluster rewritten
    /// once a bucket, one-off writes evicted the loops and the top list named ordinary objects.
    #[test]
    fn in_a_resync_storm_the_loops_are_still_the_top_of_the_list() {
        let mut d = ChurnDetector::new(64, 60.0);
        let loops: Vec<String> = (0..3)
            .map(|i| format!("/registry/example.com/widgets/default/loop-{i}"))
            .collect();
        let mut t = 1000.0;
        for second in 0..60 {
            // 20 000 objects rewritten every 10 s (2 000 writes a second, ~300 for each of the
            // 64 counters of a bucket), and each loop 5 times a second.
            for k in 0..2_000u32 {
                t = 1000.0 + second as f64 + k as f64 / 2_000.0;
                let object = (second % 10) * 2_000 + k;
                d.record(&format!("/registry/configmaps/ns/cm-{object}"), 300, t);
                if k % 400 == 0 {
                    for l in &loops {
                        d.record(l, 1000, t);
                    }
                }
            }
        }
        let top = d.top(t, 60.0, 3);
        let named: Vec<&str> = top.iter().map(|e| e.key.as_str()).collect();
        for l in &loops {
            assert!(named.contains(&l.as_str()), "{named:?}");
        }
        assert!(top.iter().all(|e| e.sync_loop), "{top:?}");
    }

    #[test]
    fn many_keys_written_a_few_times_are_never_reported_as_loops() {
        // The reported bug: 5 000 keys written 3 times each (plus one hot key) made the sketch's
        // inherited over-estimates look like 72–104 writes a minute.
        let mut d = ChurnDetector::new(256, 60.0);
        let hot = "/registry/example.com/widgets/default/hot";
        let mut t = 1000.0;
        for round in 0..3 {
            for k in 0..5000 {
                t += 0.004; // ≈ 250 writes/s in all, 60 s
                d.record(
                    &format!("/registry/configmaps/ns-{}/cm-{k}", k % 20),
                    300,
                    t,
                );
                if k % 25 == 0 {
                    d.record(hot, 1000, t); // 10 writes/s: a real loop
                }
            }
            let _ = round;
        }
        let top = d.top(t, 60.0, 20);
        let loops: Vec<&ChurnEntry> = top.iter().filter(|e| e.sync_loop).collect();
        assert_eq!(loops.len(), 1, "only the hot key: {loops:?}");
        assert_eq!(loops[0].key, hot);
        for e in &top {
            assert!(e.writes <= e.writes_max, "{e:?}");
            if e.key != hot {
                assert!(
                    e.writes <= 3,
                    "a key written 3 times is never counted more: {e:?}"
                );
            }
        }
        // Uniform load: 800 keys at 22.5 writes/min each (300/s in all) is no loop either.
        let mut d = ChurnDetector::new(256, 60.0);
        let mut t = 1000.0;
        for i in 0..18_000u64 {
            t += 1.0 / 300.0;
            d.record(&format!("/registry/leases/ns/l-{}", i % 800), 100, t);
        }
        let top = d.top(t, 60.0, 10);
        assert!(
            top.iter().all(|e| !e.sync_loop),
            "{:?}",
            &top[..3.min(top.len())]
        );
        assert!(
            top.iter().all(|e| e.writes_per_minute <= 23.0),
            "never above the true rate: {:?}",
            &top[..3.min(top.len())]
        );
    }

    #[test]
    fn old_writes_leave_the_window() {
        let mut d = ChurnDetector::new(16, 60.0);
        for i in 0..100 {
            d.record("/registry/pods/a/b", 1, 1000.0 + i as f64 * 0.1);
        }
        assert_eq!(d.top(1010.0, 60.0, 5)[0].writes, 100);
        assert!(d.top(1200.0, 60.0, 5).is_empty());
        assert_eq!(d.top(1200.0, 600.0, 5)[0].writes, 100);
        assert!(d.top(2000.0, 600.0, 5).is_empty());
    }

    #[test]
    fn memory_is_bounded_by_buckets_times_capacity() {
        let mut d = ChurnDetector::new(32, 60.0);
        for i in 0..200_000u64 {
            d.record(
                &format!("/registry/events/ns/e{i}"),
                10,
                1000.0 + i as f64 * 0.01,
            );
        }
        assert!(d.buckets.len() <= BUCKETS);
        assert!(d.buckets.iter().all(|(_, s)| s.tracked_keys() <= 32));
    }
}
