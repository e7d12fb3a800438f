//! This instance's candidacy for the actor role: a lease-bound key in etcd, kept alive for as
//! long as the daemon runs, withdrawn on shutdown.
//!
//! Why a task of its own: the lease must be renewed every few seconds whatever the engine is
//! doing (a defragmentation can block it for minutes), and the registration must be retried
//! until etcd accepts it (not during NOSPACE: LeaseGrant and Put are refused then; renewals are
//! not). The choice itself is `decide::actor`, made from the candidates every observation reads.
//! It writes one key outside `/registry/`, never touches any other.
//!
//! The key's value also carries what only the sidecar beside a member can see and the actor
//! needs: that member's quota (etcd < 3.6 reports it only on the member's own `/metrics`) and
//! the free bytes of its data volume (a defragmentation writes a copy there). It is rewritten,
//! under the same lease, when either changes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::etcd::KeepAlive;
use crate::observe::probe::free_disk_bytes;
use crate::observe::{CandidateInfo, CandidateWatch, Observation, QuotaSource};
use crate::observe::{Snapshot, next_snapshot};
use crate::report::state::Shared;
use crate::shutdown::Shutdown;

/// A candidate silent for this long drops out (its key expires with the lease).
pub const LEASE_TTL: Duration = Duration::from_secs(10);
const RENEW_EVERY: Duration = Duration::from_secs(3);

/// What this instance says about itself in its candidate value.
pub struct Publisher {
    /// Whether the first endpoint is this instance's own member (a sidecar), as opposed to a
    /// service that reaches any member.
    pub local_member: bool,
    /// The member's data dir as mounted here (`--data-dir`), for its volume's free bytes.
    pub data_dir: Option<PathBuf>,
    instance: String,
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
    fn info(&self, obs: &Observation, shared: &Shared) -> CandidateInfo {
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

/// Registers, renews and withdraws; publishes this instance's lease (None while unregistered).
pub async fn run(
    publisher: Publisher,
    mut latest: watch::Receiver<Option<Snapshot>>,
    me: watch::Sender<Option<i64>>,
    shared: Arc<Shared>,
    mut shutdown: Shutdown,
) {
    let instance = publisher.instance.clone();
    let mut failures = 0u32;
    while let Some(snapshot) = next_snapshot(&mut latest, &mut shutdown).await {
        let mut published = publisher.info(&snapshot.observation, &shared);
        let registered = register(&snapshot, &published).await;
        let mut keep = match registered {
            Ok(registered) => registered,
            Err(last_error) => {
                failures += 1;
                if failures == 1 || failures.is_multiple_of(20) {
                    tracing::warn!(
                        "cannot register as an actor candidate yet ({last_error}); retrying (during NOSPACE etcd refuses new leases: the registered candidates act)"
                    );
                }
                if shutdown.sleep(RENEW_EVERY).await {
                    return;
                }
                continue;
            }
        };
        failures = 0;
        let lease = keep.lease();
        tracing::info!(lease = format!("{lease:x}"), instance = %instance, "registered as an actor candidate");
        let _ = me.send(Some(lease));
        shared.metrics.registered.set(1);
        let ended = keep_alive(
            &mut keep,
            &latest,
            &mut shutdown,
            &publisher,
            &mut published,
            &shared,
        )
        .await;
        let _ = me.send(None);
        shared.metrics.registered.set(0);
        match ended {
            KeepEnded::Shutdown => {
                // Withdraw at once: the next candidate need not wait for the TTL.
                // Through the member the channel renews through now (it may have moved).
                let _ = snapshot
                    .etcd
                    .revoke_candidate(keep.endpoint(), keep.lease())
                    .await;
                tracing::info!("actor candidacy withdrawn");
                return;
            }
            KeepEnded::Lost(why) => {
                tracing::warn!("actor candidacy lost ({why}); registering again");
            }
            KeepEnded::Withdraw(why) => {
                let _ = snapshot
                    .etcd
                    .revoke_candidate(keep.endpoint(), keep.lease())
                    .await;
                tracing::warn!(
                    "actor candidacy withdrawn ({why}); registering again once it observes and etcd accepts writes"
                );
            }
        }
    }
}

/// Why a candidacy could not be had, kept or renewed.
#[derive(Debug, thiserror::Error)]
enum CandidacyError {
    #[error("no member answered")]
    NoMember,
    #[error("no other member answered")]
    NoOtherMember,
    #[error("no observation to find another member in")]
    NoObservation,
    #[error("the lease expired")]
    Expired,
    #[error("no renewal through {0} in time")]
    Late(String),
    #[error(transparent)]
    Etcd(#[from] crate::etcd::EtcdError),
    /// The actor judges this member by the quota it published; a stale one must go.
    #[error(
        "the local member's quota is now {quota}, but etcd refuses the write that would publish it ({refused})"
    )]
    QuotaUnpublished {
        quota: String,
        refused: crate::etcd::EtcdError,
    },
}

/// Registers through the local member, else another that answered (at most three tried).
async fn register(snapshot: &Snapshot, info: &CandidateInfo) -> Result<KeepAlive, CandidacyError> {
    let endpoints = answering_endpoints(&snapshot.observation);
    let value = serde_json::to_vec(info).expect("serialisable");
    let mut last_error = CandidacyError::NoMember;
    for endpoint in endpoints.iter().take(3) {
        match snapshot
            .etcd
            .register_candidate(endpoint, LEASE_TTL, value.clone())
            .await
        {
            Ok((_, keep)) => return Ok(keep),
            Err(e) => last_error = e.into(),
        }
    }
    Err(last_error)
}

enum KeepEnded {
    Shutdown,
    Lost(String),
    /// What it published went stale and cannot be rewritten: withdraw, register again later.
    Withdraw(String),
}

/// Renews until shutdown or until the lease is really gone. A renewal that fails does not end
/// the candidacy: the lease lives on until its TTL runs out, so the renewal is tried again
/// through the other members that answer. Why: the member a candidate renews through is often
/// the one being maintained — a HashKV or a defragmentation keeps it from answering for seconds
/// — and a candidacy given up then comes back under a new lease, which is a new actor grant: a
/// fresh comparison of every member's hash and, when the order changes, another actor.
async fn keep_alive(
    keep: &mut KeepAlive,
    latest: &watch::Receiver<Option<Snapshot>>,
    shutdown: &mut Shutdown,
    publisher: &Publisher,
    published: &mut CandidateInfo,
    shared: &Shared,
) -> KeepEnded {
    let mut renewed = Instant::now();
    loop {
        // Renewals keep their pace whatever wakes the loop early (a defragmentation to
        // publish), so the lease never runs out between them.
        let next_renewal = RENEW_EVERY.saturating_sub(renewed.elapsed());
        tokio::select! {
            stop = shutdown.sleep(next_renewal) => if stop { return KeepEnded::Shutdown },
            _ = shared.republish.notified() => {}
        }
        if let Some(why) = blind(shared) {
            return KeepEnded::Withdraw(why);
        }
        // A rewrite through a member that is busy (defragmenting, cut off) must not hold the
        // renewal back: it gets until the renewal is due, and is tried again after it.
        let budget = RENEW_EVERY
            .saturating_sub(renewed.elapsed())
            .max(Duration::from_millis(500));
        let rewrite = republish(keep, latest, publisher, published, shared);
        if let Ok(Err(why)) = tokio::time::timeout(budget, rewrite).await {
            return KeepEnded::Withdraw(why.to_string());
        }
        if renewed.elapsed() < RENEW_EVERY {
            continue;
        }
        match keep.renew(RENEW_EVERY).await {
            Ok(ttl) if ttl > 0 => renewed = Instant::now(),
            Ok(_) => return KeepEnded::Lost("the lease expired".into()),
            Err(e) => match renew_elsewhere(keep, latest, renewed).await {
                Ok(()) => {
                    tracing::info!(
                        "actor candidacy renewed through {} after {e}",
                        keep.endpoint()
                    );
                    renewed = Instant::now();
                }
                Err(why) => return KeepEnded::Lost(format!("{e}; {why}")),
            },
        }
    }
}

/// An instance that has not completed an observation for this many polls (at least 30 s) gives its
/// candidacy up: its lease may still renew through another member, but it cannot act, and as
/// the first registered it would keep every other instance standing by.
const BLIND_POLLS: u32 = 6;

/// Why this instance must withdraw: no observation has succeeded for `BLIND_POLLS` polls.
fn blind(shared: &Shared) -> Option<String> {
    let limit = (shared.poll_interval * BLIND_POLLS).max(Duration::from_secs(30));
    let last = shared.read().last_success?;
    let since = last.elapsed();
    (since > limit).then(|| {
        format!(
            "no observation has succeeded for {}s (the limit is {}s): another instance takes over",
            since.as_secs(),
            limit.as_secs()
        )
    })
}

/// Rewrites the candidate value when what it says changed. Refused during NOSPACE like every
/// Put: it is then tried again at the next renewal — except a new quota, which the actor judges
/// this member by: Err (withdraw), so the stale figure is gone at once and the actor falls back
/// to what it knows otherwise. Not while this instance is the actor: it reads its own member's
/// quota first-hand anyway.
async fn republish(
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

/// Moves `keep` to another answering member (this instance's own first) and renews there,
/// while the lease can still be alive: at most until a second before its TTL has run out
/// since the last renewal.
async fn renew_elsewhere(
    keep: &mut KeepAlive,
    latest: &watch::Receiver<Option<Snapshot>>,
    renewed: Instant,
) -> Result<(), CandidacyError> {
    let Some(snapshot) = latest.borrow().clone() else {
        return Err(CandidacyError::NoObservation);
    };
    let endpoints: Vec<String> = answering_endpoints(&snapshot.observation)
        .into_iter()
        .filter(|e| e != keep.endpoint())
        .collect();
    let deadline = renewed + LEASE_TTL - Duration::from_secs(1);
    let mut last_error = CandidacyError::NoOtherMember;
    for endpoint in endpoints {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let renewal = async {
            let mut moved = snapshot.etcd.keep_alive_on(&endpoint, keep.lease()).await?;
            let ttl = moved.renew(left).await?;
            Ok::<_, crate::etcd::EtcdError>((moved, ttl))
        };
        match tokio::time::timeout(left, renewal).await {
            Ok(Ok((moved, ttl))) if ttl > 0 => {
                *keep = moved;
                return Ok(());
            }
            Ok(Ok(_)) => return Err(CandidacyError::Expired),
            Ok(Err(e)) => last_error = e.into(),
            Err(_) => last_error = CandidacyError::Late(endpoint),
        }
    }
    Err(last_error)
}

/// The local member's endpoint first, then every member that answered the last observation's
/// Status, each once.
fn answering_endpoints(obs: &Observation) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    obs.local_member
        .and_then(|id| obs.member(id))
        .into_iter()
        .chain(obs.members.iter().filter(|m| m.status.is_some()))
        .map(|m| m.endpoint.clone())
        .filter(|e| seen.insert(e.clone()))
        .collect()
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
