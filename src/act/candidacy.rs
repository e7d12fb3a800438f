//! This instance's candidacy for the actor role: a lease-bound key in etcd, kept alive for as
//! long as the daemon runs, withdrawn on shutdown.
//!
//! Why a task of its own: the lease must be renewed every few seconds whatever the engine is
//! doing (a defragmentation can block it for minutes), and the registration must be retried
//! until etcd accepts it (not during NOSPACE: LeaseGrant and Put are refused then; renewals are
//! not). The choice itself is `decide::actor`, made from the candidates every observation reads.
//! It writes one key outside `/registry/`, never touches any other.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::etcd::KeepAlive;
use crate::observe::{CandidateInfo, Observation};
use crate::observe::{Snapshot, next_snapshot};
use crate::report::state::Shared;
use crate::shutdown::Shutdown;

/// A candidate silent for this long drops out (its key expires with the lease).
pub const LEASE_TTL: Duration = Duration::from_secs(10);
const RENEW_EVERY: Duration = Duration::from_secs(3);

/// Registers, renews and withdraws; publishes this instance's lease (None while unregistered).
/// `local_member`: whether the first endpoint is this instance's own member (a sidecar), as
/// opposed to a service that reaches any member.
pub async fn run(
    local_member: bool,
    mut latest: watch::Receiver<Option<Snapshot>>,
    me: watch::Sender<Option<i64>>,
    shared: Arc<Shared>,
    mut shutdown: Shutdown,
) {
    let instance = instance_name();
    let mut failures = 0u32;
    while let Some(snapshot) = next_snapshot(&mut latest, &mut shutdown).await {
        let registered = register(&snapshot, local_member, &instance).await;
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
        let ended = keep_alive(&mut keep, &latest, &mut shutdown).await;
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
        }
    }
}

/// Registers through the local member, else another that answered (at most three tried).
async fn register(
    snapshot: &Snapshot,
    local_member: bool,
    instance: &str,
) -> Result<KeepAlive, String> {
    let obs = &snapshot.observation;
    let endpoints = answering_endpoints(obs);
    let info = CandidateInfo {
        // A service endpoint reaches any member: no local member then.
        member: format!(
            "{:x}",
            if local_member {
                obs.local_member.unwrap_or(0)
            } else {
                0
            }
        ),
        instance: instance.to_string(),
    };
    let value = serde_json::to_vec(&info).expect("serialisable");
    let mut last_error = String::from("no member answered");
    for endpoint in endpoints.iter().take(3) {
        match snapshot
            .etcd
            .register_candidate(endpoint, LEASE_TTL, value.clone())
            .await
        {
            Ok((_, keep)) => return Ok(keep),
            Err(e) => last_error = e.to_string(),
        }
    }
    Err(last_error)
}

enum KeepEnded {
    Shutdown,
    Lost(String),
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
) -> KeepEnded {
    let mut renewed = Instant::now();
    loop {
        if shutdown.sleep(RENEW_EVERY).await {
            return KeepEnded::Shutdown;
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

/// Moves `keep` to another answering member (this instance's own first) and renews there,
/// while the lease can still be alive: at most until a second before its TTL has run out
/// since the last renewal.
async fn renew_elsewhere(
    keep: &mut KeepAlive,
    latest: &watch::Receiver<Option<Snapshot>>,
    renewed: Instant,
) -> Result<(), String> {
    let Some(snapshot) = latest.borrow().clone() else {
        return Err("no observation to find another member in".into());
    };
    let endpoints: Vec<String> = answering_endpoints(&snapshot.observation)
        .into_iter()
        .filter(|e| e != keep.endpoint())
        .collect();
    let deadline = renewed + LEASE_TTL - Duration::from_secs(1);
    let mut last_error = String::from("no other member answered");
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
            Ok(Ok(_)) => return Err("the lease expired".into()),
            Ok(Err(e)) => last_error = e.to_string(),
            Err(_) => last_error = format!("no renewal through {endpoint} in time"),
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
