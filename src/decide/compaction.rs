//! Which revision to compact to, and when.
//!
//! Why our own compactor: etcd's `--auto-compaction-*` is off by default and vCluster does not
//! set it, and kube-apiserver's compaction is not physical. Periodic mode keeps etcd's semantics
//! (`server/etcdserver/api/v3compactor/periodic.go`): sample the revision every retention/10 and
//! compact to the revision seen one retention ago, so watchers always have `retention` of
//! history. Revision mode keeps the last N revisions, checked every 5 minutes like etcd's.
//! Never compact backwards or to the same revision twice.

use std::collections::VecDeque;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CompactionPolicy {
    Periodic { retention: Duration },
    Revision { keep: i64 },
    Off,
}

/// The compactor's memory: revision samples and the last revision compacted.
#[derive(Debug, Clone, Default)]
pub struct CompactionState {
    /// (seconds since epoch, revision), oldest first.
    samples: VecDeque<(f64, i64)>,
    last_compacted: i64,
    last_revision_check: Option<f64>,
}

const REVISION_CHECK_EVERY: f64 = 300.0;

impl CompactionState {
    /// The revision the last compaction reached (0: none seen).
    pub fn last_compacted(&self) -> i64 {
        self.last_compacted
    }

    /// Records the revision seen at `now` if a sample is due, and returns the revision to compact
    /// to, if any. Call once per observation.
    pub fn observe(&mut self, policy: CompactionPolicy, now: f64, revision: i64) -> Option<i64> {
        match policy {
            CompactionPolicy::Off => None,
            CompactionPolicy::Periodic { retention } => {
                let retention = retention.as_secs_f64();
                let interval = retention / 10.0;
                let due = self
                    .samples
                    .back()
                    .is_none_or(|(at, _)| now - at >= interval);
                if !due {
                    return None;
                }
                self.samples.push_back((now, revision));
                // Keep one sample at least `retention` old; drop the older ones.
                while self.samples.len() > 1 && now - self.samples[1].0 >= retention {
                    self.samples.pop_front();
                }
                let (at, target) = *self.samples.front()?;
                (now - at >= retention && target > self.last_compacted).then_some(target)
            }
            CompactionPolicy::Revision { keep } => {
                let due = self
                    .last_revision_check
                    .is_none_or(|t| now - t >= REVISION_CHECK_EVERY);
                if !due {
                    return None;
                }
                self.last_revision_check = Some(now);
                let target = revision - keep;
                (target > 0 && target > self.last_compacted).then_some(target)
            }
        }
    }

    /// Remembers a compaction (ours or the emergency one), so we never compact backwards.
    pub fn compacted(&mut self, revision: i64) {
        self.last_compacted = self.last_compacted.max(revision);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periodic_waits_one_retention_then_compacts_to_the_revision_seen_then() {
        let policy = CompactionPolicy::Periodic {
            retention: Duration::from_secs(100),
        };
        let mut state = CompactionState::default();
        // Observed every 5 s, revision +10 per second; samples every 10 s.
        let mut targets = Vec::new();
        for step in 0..=40 {
            let now = 1000.0 + step as f64 * 5.0;
            let revision = 1 + step as i64 * 50;
            if let Some(t) = state.observe(policy, now, revision) {
                targets.push((now, t));
                state.compacted(t);
            }
        }
        // First compaction at t=1100 to the revision seen at t=1000.
        assert_eq!(targets[0], (1100.0, 1));
        // Then every sample interval, always to the revision one retention earlier.
        assert_eq!(targets[1], (1110.0, 101));
        assert!(targets.windows(2).all(|w| w[1].1 > w[0].1));
        assert_eq!(targets.last().unwrap(), &(1200.0, 1001));
    }

    #[test]
    fn periodic_never_compacts_the_same_revision_twice() {
        let policy = CompactionPolicy::Periodic {
            retention: Duration::from_secs(10),
        };
        let mut state = CompactionState::default();
        let mut targets = Vec::new();
        for step in 0..20 {
            if let Some(t) = state.observe(policy, step as f64 * 1.0, 42) {
                targets.push(t);
                state.compacted(t);
            }
        }
        assert_eq!(targets, vec![42]);
    }

    #[test]
    fn revision_mode_keeps_n_revisions_every_five_minutes() {
        let policy = CompactionPolicy::Revision { keep: 1000 };
        let mut state = CompactionState::default();
        assert_eq!(state.observe(policy, 0.0, 500), None);
        assert_eq!(state.observe(policy, 301.0, 5000), Some(4000));
        assert_eq!(state.observe(policy, 302.0, 9000), None); // not due yet
        state.compacted(4000);
        assert_eq!(state.observe(policy, 602.0, 4500), None); // would go backwards
        assert_eq!(state.observe(policy, 903.0, 9000), Some(8000));
    }
}
