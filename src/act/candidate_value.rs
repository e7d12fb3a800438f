//! What a candidate publishes about itself: the value of its lease-bound key, and when that
//! value is rewritten.
//!
//! Why apart from the candidacy: the lease's life (register, renew, withdraw) is one concern;
//! what the key says, and when a change is worth a write, is another. The value carries what
//! only the sidecar beside a member can see and the actor needs: that member's quota (etcd < 3.6
//! reports it only on the member's own `/metrics`), the free bytes of its data volume (a
//! defragmentation writes a copy there), its progress-notify interval, and when this instance
//! defragmented which member (the cool-down every actor honours).

use std::path::PathBuf;

use tokio::sync::watch;

use crate::etcd::KeepAlive;
use crate::observe::Snapshot;
use crate::observe::probe::free_disk_bytes;
use crate::observe::{CandidateInfo, CandidateWatch, Observation, QuotaSource};
use crate::report::state::Shared;

use super::candidacy::CandidacyError;

/// What this instance says about itself in its candidate value.
pub struct Publisher {
    /// Whether the first endpoint is this instance's own member (a sidecar), as opposed to a
    /// service that reaches any member.
    pub local_member: bool,
    /// The member's data dir as mounted here (`--data-dir`), for its volume's free bytes.
    pub data_dir: Option<PathBuf>,
    pub(super) instance: String,
}

impl Publisher {
    pub fn new(local_member: bool, data_dir: Option<PathBuf>) -> Publisher {
        Publisher {
            local_member,
            data_dir,
            instance: instance_name(),
        }
    }

    /// The value to publish, from what `obs` shows of the local member (and what the engine
    /// compared of its progress notifications).
    pub(super) fn info(&self, obs: &Observation, shared: &Shared) -> CandidateInfo {
        let local = obs.local_member.filter(|_| self.local_member);
        let quota = local
            .and_then(|id| obs.member_quotas.get(&id))
            .filter(|q| {
                matches!(
                    q.source,
                    QuotaSource::Etcd | QuotaSource::EtcdDefault | QuotaSource::MetricsUrl
                )
            })
            .map(|q| q.bytes);
        let disk_free = match (&self.data_dir, local) {
            (Some(dir), Some(_)) => free_disk_bytes(dir).ok(),
            _ => None,
        };
        let watch_progress = local.and_then(|_| {
            let state = shared.read();
            let interval = state.watch_progress?;
            Some(CandidateWatch {
                interval_seconds: interval.seconds.round() as u64,
                source: interval.source,
                set_to: state
                    .space
                    .watch_history
                    .as_ref()
                    .filter(|w| w.below)
                    .map(|w| w.recommended.clone()),
            })
        });
        let defragmented = shared
            .read()
            .maintenance
            .defragmented
            .iter()
            .map(|(id, at)| (format!("{id:x}"), *at))
            .collect();
        CandidateInfo {
            // A service endpoint reaches any member: no local member then.
            member: format!("{:x}", local.unwrap_or(0)),
            instance: self.instance.clone(),
            quota,
            disk_free,
            watch_progress,
            defragmented,
        }
    }
}

/// Whether `next` says something the actor would decide differently on: another quota, a
/// defragmentation (the cool-down), or free disk moved by more than 5 % (at least 8 MiB) — not
/// every byte the WAL writes.
fn worth_republishing(published: &CandidateInfo, next: &CandidateInfo) -> bool {
    if published.quota != next.quota
        || published.member != next.member
        || published.defragmented != next.defragmented
    {
        return true;
    }
    // Another source or advice, or an interval off by more than etcd's tenth of jitter.
    match (&published.watch_progress, &next.watch_progress) {
        (Some(a), Some(b))
            if a.source != b.source
                || a.set_to != b.set_to
                || a.interval_seconds.abs_diff(b.interval_seconds) > a.interval_seconds / 10 =>
        {
            return true;
        }
        (a, b) if a.is_some() != b.is_some() => return true,
        _ => {}
    }
    match (published.disk_free, next.disk_free) {
        (Some(a), Some(b)) => a.abs_diff(b) > (8u64 << 20).max(a / 20),
        (a, b) => a.is_some() != b.is_some(),
    }
}

/// Rewrites the candidate value when what it says changed. Refused during NOSPACE like every
/// Put: it is then tried again at the next renewal — except a new quota, which the actor judges
/// this member by: Err (withdraw), so the stale figure is gone at once and the actor falls back
/// to what it knows otherwise. Not while this instance is the actor: it reads its own member's
/// quota first-hand anyway.
pub(super) async fn republish(
    keep: &KeepAlive,
    latest: &watch::Receiver<Option<Snapshot>>,
    publisher: &Publisher,
    published: &mut CandidateInfo,
    shared: &Shared,
) -> Result<(), CandidacyError> {
    let Some(snapshot) = latest.borrow().clone() else {
        return Ok(());
    };
    let next = publisher.info(&snapshot.observation, shared);
    if !worth_republishing(published, &next) {
        return Ok(());
    }
    let value = serde_json::to_vec(&next).expect("serialisable");
    match snapshot
        .etcd
        .update_candidate(keep.endpoint(), keep.lease(), value)
        .await
    {
        Ok(()) => {
            tracing::debug!(?next, "candidate value updated");
            *published = next;
        }
        Err(e)
            if e.kind == crate::etcd::FailureKind::NoSpace
                && published.quota.is_some()
                && next.quota != published.quota
                && !shared.read().maintenance.actor =>
        {
            return Err(CandidacyError::QuotaUnpublished {
                quota: next
                    .quota
                    .map_or("unknown".into(), crate::units::format_bytes),
                refused: e,
            });
        }
        Err(e) => tracing::debug!("candidate value not updated yet: {e}"),
    }
    Ok(())
}

/// The pod (host) name and the process, for people reading /status.
fn instance_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    format!("{host}/{}", std::process::id())
}
