//! How observations travel: the latest [`Snapshot`] published by the observation loop, waiting
//! for it, and the back-off while etcd does not answer.

use std::time::Duration;

use crate::etcd::Etcd;

use super::Observation;

/// The latest observation together with the connections it was taken through (what the
/// observation loop publishes to the engine, the churn watch and the candidacy).
#[derive(Clone)]
pub struct Snapshot {
    pub etcd: std::sync::Arc<Etcd>,
    pub observation: std::sync::Arc<Observation>,
}

/// Poll, 2×, 4×, then at most 8× the poll interval after consecutive failures, capped at 1 min
/// so a recovered etcd is noticed soon.
pub fn backoff(poll: Duration, failures: u32) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(3);
    (poll * factor).min(Duration::from_secs(60).max(poll))
}

/// Waits for the latest published snapshot (at once when there is one); None on shutdown or
/// when the observation loop is gone.
pub async fn next_snapshot(
    latest: &mut tokio::sync::watch::Receiver<Option<Snapshot>>,
    shutdown: &mut crate::shutdown::Shutdown,
) -> Option<Snapshot> {
    loop {
        if let Some(s) = latest.borrow_and_update().clone() {
            return Some(s);
        }
        tokio::select! {
            changed = latest.changed() => changed.ok()?,
            _ = shutdown.requested() => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        let poll = Duration::from_secs(5);
        assert_eq!(backoff(poll, 1), poll);
        assert_eq!(backoff(poll, 2), poll * 2);
        assert_eq!(backoff(poll, 4), poll * 8);
        assert_eq!(backoff(poll, 40), Duration::from_secs(40));
        assert_eq!(backoff(Duration::from_secs(20), 9), Duration::from_secs(60));
    }
}
