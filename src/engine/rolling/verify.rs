//! The integrity proof after each defragmentation (whether the members agree before an actor's
//! first step is `agreement.rs`).
//!
//! Why: a defragmentation rewrites a member's whole file, so each one is proven — the member's
//! KV hash at its current revision equals a peer's (alone: its hash at its pre-defrag revision
//! is unchanged).
//!
//! Each outcome is explicit (`decide::integrity::Integrity`): verified (with what was compared),
//! unverifiable (why), mismatch — counted in `etcd_upkeep_integrity_checks_total{outcome}`.

use std::time::{Duration, Instant};

use crate::decide::integrity::{Integrity, compare_hashes};
use crate::decide::plan::DefragStep;
use crate::etcd::{FailureKind, KvHash};
use crate::observe::Observation;
use crate::observe::probe::wait_until_answering;
use crate::report::metrics::OutcomeLabel;
use crate::shutdown::Shutdown;

use crate::engine::guard::hash_all;
use crate::engine::{Ctx, Engine};

/// A defragmented member that is not back in the cluster yet: nothing can be compared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum NotBack {
    #[error("{0} did not answer again")]
    Silent(String),
    #[error("{0} did not catch up with the leader within 60s")]
    Behind(String),
}

/// An integrity check's outcome, where people and Prometheus see it: the metric, the log and —
/// for a mismatch — an Event.
pub(in crate::engine) fn record_integrity(ctx: &Ctx<'_>, subject: &str, outcome: &Integrity) {
    ctx.shared
        .metrics
        .integrity_checks
        .get_or_create(&OutcomeLabel {
            outcome: outcome.label().into(),
        })
        .inc();
    match outcome {
        Integrity::Verified(what) => {
            tracing::info!(
                member = subject,
                outcome = "verified",
                "integrity verified for {subject}: {what}"
            )
        }
        Integrity::Unverifiable(why) => {
            tracing::warn!(
                member = subject,
                outcome = "unverifiable",
                "integrity of {subject} unverifiable: {why}"
            )
        }
        Integrity::Mismatch(why) => {
            ctx.shared.event(
                crate::report::events::EventReason::IntegrityMismatch,
                subject,
                format!("integrity MISMATCH for {subject}: {why}; maintenance stopped"),
            );
            tracing::error!(
                member = subject,
                outcome = "mismatch",
                "integrity MISMATCH for {subject}: {why}"
            )
        }
    }
}

impl Engine {
    /// The member answers a linearizable read again and its applied index reached the
    /// leader's raft index as it was just now.
    async fn answering_and_caught_up(
        &self,
        ctx: &Ctx<'_>,
        step: &DefragStep,
    ) -> Result<(), NotBack> {
        let mut shutdown = ctx.shutdown.clone();
        if !wait_until_answering(
            ctx.etcd,
            &step.endpoint,
            self.cfg.health_timeout,
            ctx.etcd.command_timeout(),
            &mut shutdown,
        )
        .await
        {
            return Err(NotBack::Silent(step.name.clone()));
        }
        if self.caught_up(ctx, step).await {
            Ok(())
        } else {
            Err(NotBack::Behind(step.name.clone()))
        }
    }

    /// The member's applied index reached the leader's raft index as it was just now (within
    /// 60 s). Also used between a hash and the defrag that follows it: both stop the member's
    /// apply, and waiting here lets the writes queued behind the first through before the second
    /// starts — two short stalls for its clients instead of one long one.
    pub(super) async fn caught_up(&self, ctx: &Ctx<'_>, step: &DefragStep) -> bool {
        let mut shutdown = ctx.shutdown.clone();
        let target_index = match ctx.observe().await {
            Ok(obs) => obs
                .leader
                .and_then(|l| obs.member(l))
                .and_then(|m| m.status.as_ref())
                .map(|s| s.raft_index),
            Err(_) => None,
        };
        wait_for(&mut shutdown, || async {
            match (target_index, ctx.etcd.status(&step.endpoint).await) {
                (Some(target), Ok(s)) => s.raft_applied_index >= target,
                (None, Ok(_)) => true,
                _ => false,
            }
        })
        .await
    }

    /// After a defrag: the member answers and has caught up, and its data is the same as the
    /// reference's (see `Reference`). Every comparison that applies must be made for
    /// `Verified`.
    pub(super) async fn verify_member(
        &self,
        ctx: &Ctx<'_>,
        step: &DefragStep,
        reference: Reference,
    ) -> Integrity {
        use Integrity::{Unverifiable, Verified};
        if let Err(why) = self.answering_and_caught_up(ctx, step).await {
            return Unverifiable(why.to_string());
        }
        let (peer_id, peer_endpoint) = match reference {
            Reference::Before { before, alone } => {
                return match unchanged_by_defrag(ctx, step, before).await {
                    Ok(unchanged) if alone => {
                        Verified(format!("{unchanged}; no other member to compare with"))
                    }
                    Ok(unchanged) => Verified(format!(
                        "{unchanged}; no other follower to compare with (the leader is not hashed while it leads)"
                    )),
                    Err(outcome) => outcome,
                };
            }
            // The peer chosen before the defrag may have gone since (down, cut off): the most
            // caught-up follower that answers now. None left: say so at once rather than wait
            // for one that is gone (the next pass starts from a fresh look).
            Reference::Peer { id, .. } => {
                match ctx
                    .observe()
                    .await
                    .ok()
                    .and_then(|now| peer_of(&now, step.member_id))
                {
                    Some(peer) => peer,
                    None => {
                        return Unverifiable(format!(
                            "no follower to compare {} with any more ({id:x}, chosen before, stopped answering; the leader is not hashed while it leads)",
                            step.name
                        ));
                    }
                }
            }
        };
        // Equal to the peer at the member's current revision, once the peer has reached it.
        let mut shutdown = ctx.shutdown.clone();
        let revision = match ctx.etcd.status(&step.endpoint).await {
            Ok(s) => s.revision,
            Err(e) => return Unverifiable(e.to_string()),
        };
        let peer_ready = wait_for(&mut shutdown, || async {
            ctx.etcd
                .status(&peer_endpoint)
                .await
                .is_ok_and(|s| s.revision >= revision)
        })
        .await;
        if !peer_ready {
            return Unverifiable(format!(
                "peer {peer_id:x} did not reach revision {revision} within 60s"
            ));
        }
        let hashes = [
            (step.name.clone(), step.endpoint.clone()),
            (format!("{peer_id:x}"), peer_endpoint),
        ];
        match compare_hashes(revision, &hash_all(ctx, revision, &hashes).await) {
            Verified(with_peer) => Verified(format!(
                "after its defragmentation, {} and its most caught-up peer: {with_peer}",
                step.name
            )),
            other => other,
        }
    }
}

/// What a defragmented member's data is compared with.
///
/// Why a peer at the current revision, and not also the member's own hash from before: HashKV
/// at revision r covers every revision from the compact revision up to r (and the latest
/// version of each key below it), so equality at the current revision covers everything a
/// comparison at the pre-defrag revision would, plus the writes applied since the new file
/// replaced the old. Each HashKV holds the member's backend read lock for a whole scan, and the
/// member applies nothing meanwhile (seen: ~22 s on a 2.9 GiB member in `scripts/bench.sh bigdb`), so
/// every scan saved is a stall its clients do not see. Alone, a member has no peer: its own
/// hash at its pre-defrag revision, taken before and again after, is the only reference.
pub(super) enum Reference {
    /// The most caught-up other voting member.
    Peer { id: u64 },
    /// No follower to compare with: the member's own KV hash from before the defrag, at that
    /// revision; `alone` when it is the only voting member (else the other is the leader).
    Before {
        before: Result<(i64, KvHash), crate::etcd::EtcdError>,
        alone: bool,
    },
}

/// The member's KV hash at its pre-defrag revision, taken again: what was compared, or the
/// outcome when the comparison fails or cannot be made.
async fn unchanged_by_defrag(
    ctx: &Ctx<'_>,
    step: &DefragStep,
    before: Result<(i64, KvHash), crate::etcd::EtcdError>,
) -> Result<String, Integrity> {
    use Integrity::{Mismatch, Unverifiable};
    let (revision, before) = before
        .map_err(|why| Unverifiable(format!("no KV hash before the defragmentation: {why}")))?;
    match ctx.etcd.hash_kv(&step.endpoint, revision).await {
        Ok(after) if after.compact_revision != before.compact_revision => Err(Unverifiable(
            format!("revision {revision} was compacted further during the defragmentation"),
        )),
        Ok(after) if after.hash != before.hash => Err(Mismatch(format!(
            "{}'s KV hash at revision {revision} changed across the defragmentation ({:x} → {:x})",
            step.name, before.hash, after.hash
        ))),
        Ok(after) => Ok(format!(
            "its KV hash at revision {revision} is unchanged ({:x})",
            after.hash
        )),
        Err(e) if e.kind == FailureKind::Compacted => Err(Unverifiable(format!(
            "revision {revision} was compacted during the defragmentation"
        ))),
        Err(e) => Err(Unverifiable(e.to_string())),
    }
}

/// Polls `check` every 200 ms for up to 60 s; false on timeout or shutdown.
async fn wait_for<F, Fut>(shutdown: &mut Shutdown, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline || shutdown.sleep(Duration::from_millis(200)).await {
            return false;
        }
    }
}

/// The voting member, other than `member_id`, that is furthest ahead, to compare hashes with —
/// never the leader while it leads (its HashKV would stop every lease renewal in the cluster).
/// None: the member's own hash from before is the reference.
pub(super) fn peer_of(obs: &Observation, member_id: u64) -> Option<(u64, String)> {
    obs.members
        .iter()
        .filter(|m| m.id != member_id && !m.is_learner && Some(m.id) != obs.leader)
        .filter(|m| m.in_quorum())
        .filter_map(|m| m.status.as_ref().map(|s| (m, s.revision)))
        .max_by_key(|(m, revision)| (*revision, m.id))
        .map(|(m, _)| (m.id, m.endpoint.clone()))
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
