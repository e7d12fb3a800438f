//! This instance's candidacy for the actor role: a lease-bound key in etcd, kept alive for as
//! long as the daemon runs, withdrawn on shutdown.
//!
//! Why a task of its own: the lease must be renewed every few seconds whatever the engine is
//! doing (a defragmentation can block it for minutes), and the registration must be retried
//! until etcd accepts it (not during NOSPACE: LeaseGrant and Put are refused then; renewals are
//! not). The choice itself is `decide::actor`, made from the candidates every observation reads.
//! It writes one key outside `/registry/`, never touches any other.
//!
//! What the key says, and when it is rewritten under the same lease, is `candidate_value`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::etcd::KeepAlive;
use crate::observe::{CandidateInfo, Observation};
use crate::observe::{Snapshot, next_snapshot};

pub use super::candidate_value::Publisher;
use super::candidate_value::republish;
use crate::report::state::Shared;
use crate::shutdown::Shutdown;

/// A candidate silent for this long drops out (its key expires with the lease).
pub const LEASE_TTL: Duration = Duration::from_secs(10);
const RENEW_EVERY: Duration = Duration::from_secs(3);

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
pub(super) enum CandidacyError {
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
