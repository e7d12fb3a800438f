//! The integrity proof: after each defragmentation, and whenever an actor starts to act.
//!
//! Why both: a defragmentation rewrites a member's whole file, so each one is proven — the
//! member's KV hash at its pre-defrag revision is unchanged, and at its current revision it
//! equals a peer's. And a mismatch must outlive the process that saw it: it is a fact about the
//! cluster, not about one instance, so it is derived from the cluster — every instance that
//! becomes the actor (after a restart, a handover, a takeover) first compares the members'
//! hashes at a common revision, and maintenance stays stopped while they differ.
//!
//! Each outcome is explicit (`decide::integrity::Integrity`): verified (with what was compared),
//! unverifiable (why), mismatch — counted in `etcd_upkeep_integrity_checks_total{outcome}`.

use std::time::{Duration, Instant};

use futures_util::future::join_all;

use crate::decide::integrity::{Integrity, MemberHash, compare_hashes};
use crate::decide::plan::DefragStep;
use crate::etcd::{FailureKind, KvHash};
use crate::observe::Observation;
use crate::observe::probe::wait_until_answering;
use crate::report::metrics::OutcomeLabel;
use crate::shutdown::Shutdown;

use super::{Ctx, Engine};

/// Rechecking a cluster known (or not yet shown) to disagree costs a HashKV of every member:
/// at most every this many seconds.
const RECHECK_SECONDS: f64 = 60.0;

/// What the engine knows about the members' agreement.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Consistency {
    /// Not compared for the current actor grant yet.
    #[default]
    Unknown,
    /// Compared and equal, for this grant.
    Agree,
    /// Compared and different (or a defragmentation's proof failed): nothing is touched.
    Disagree { why: String, checked_at: f64 },
    /// The comparison could not be made; retried later (maintenance goes on meanwhile: nothing
    /// is known to be wrong).
    Unproven { checked_at: f64 },
}

impl Engine {
    /// Before the first mutation of an actor grant, and while the cluster disagrees: compare the
    /// members. Returns false when maintenance must not touch the cluster.
    pub(super) async fn members_agree(
        &mut self,
        ctx: &Ctx<'_>,
        obs: &Observation,
        now: f64,
    ) -> bool {
        let due = match &self.consistency {
            Consistency::Unknown => true,
            Consistency::Agree => false,
            Consistency::Disagree { checked_at, .. } | Consistency::Unproven { checked_at } => {
                now - checked_at >= RECHECK_SECONDS
            }
        };
        if due {
            let outcome = cluster_hashes(ctx, obs).await;
            self.record_integrity(ctx, "cluster", &outcome);
            match outcome {
                Integrity::Verified(what) => {
                    if matches!(self.consistency, Consistency::Disagree { .. }) {
                        tracing::info!("the members agree again ({what}); maintenance resumes");
                    } else {
                        tracing::debug!("members agree: {what}");
                    }
                    self.consistency = Consistency::Agree;
                    self.set_blocked(ctx, "hash_mismatch", Vec::new());
                }
                Integrity::Mismatch(why) => self.cluster_disagrees(
                    ctx,
                    format!(
                        "the members' data differs: {why}; all maintenance stopped while they do"
                    ),
                ),
                Integrity::Unverifiable(why) => {
                    tracing::info!(
                        "could not compare the members' KV hashes ({why}); retrying later"
                    );
                    if !matches!(self.consistency, Consistency::Disagree { .. }) {
                        self.consistency = Consistency::Unproven { checked_at: now };
                    }
                }
            }
        }
        !matches!(self.consistency, Consistency::Disagree { .. })
    }

    /// Records that the members disagree: maintenance stops until a comparison shows otherwise.
    pub(super) fn cluster_disagrees(&mut self, ctx: &Ctx<'_>, message: String) {
        self.consistency = Consistency::Disagree {
            why: message.clone(),
            checked_at: crate::observe::unix_now(),
        };
        self.set_blocked(ctx, "hash_mismatch", vec![message]);
    }

    /// A new actor grant: its first mutation waits for a fresh comparison.
    pub(super) fn forget_agreement(&mut self) {
        if self.consistency == Consistency::Agree {
            self.consistency = Consistency::Unknown;
        }
    }

    pub(super) fn record_integrity(&self, ctx: &Ctx<'_>, subject: &str, outcome: &Integrity) {
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
                tracing::error!(
                    member = subject,
                    outcome = "mismatch",
                    "integrity MISMATCH for {subject}: {why}"
                )
            }
        }
    }

    /// The member answers a linearizable read again and its applied index reached the
    /// leader's raft index as it was just now.
    async fn answering_and_caught_up(
        &self,
        ctx: &Ctx<'_>,
        step: &DefragStep,
    ) -> Result<(), String> {
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
            return Err(format!("{} did not answer again", step.name));
        }
        let target_index = match ctx.observe().await {
            Ok(obs) => obs
                .leader
                .and_then(|l| obs.member(l))
                .and_then(|m| m.status.as_ref())
                .map(|s| s.raft_index),
            Err(_) => None,
        };
        let caught_up = wait_for(&mut shutdown, || async {
            match (target_index, ctx.etcd.status(&step.endpoint).await) {
                (Some(target), Ok(s)) => s.raft_applied_index >= target,
                (None, Ok(_)) => true,
                _ => false,
            }
        })
        .await;
        if caught_up {
            Ok(())
        } else {
            Err(format!(
                "{} did not catch up with the leader within 60s",
                step.name
            ))
        }
    }

    /// After a defrag: the member answers and has caught up; its KV hash at its pre-defrag
    /// revision is unchanged; and at its current revision it equals the most caught-up peer's.
    /// Every comparison that applies must be made for `Verified`.
    pub(super) async fn verify_member(
        &self,
        ctx: &Ctx<'_>,
        step: &DefragStep,
        peer: Option<(u64, String)>,
        before: Result<(i64, KvHash), String>,
    ) -> Integrity {
        use Integrity::{Unverifiable, Verified};
        if let Err(why) = self.answering_and_caught_up(ctx, step).await {
            return Unverifiable(why);
        }
        // 1. Unchanged by the defrag.
        let unchanged = match unchanged_by_defrag(ctx, step, before).await {
            Ok(what) => what,
            Err(outcome) => return outcome,
        };
        // 2. Equal to a peer at the member's current revision, once the peer has reached it.
        let mut shutdown = ctx.shutdown.clone();
        let Some((peer_id, peer_endpoint)) = peer else {
            return Verified(format!("{unchanged}; no other member to compare with"));
        };
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
            Verified(with_peer) => Verified(format!("{unchanged}; {with_peer}")),
            other => other,
        }
    }
}

/// The member's KV hash at its pre-defrag revision, taken again: what was compared, or the
/// outcome when the comparison fails or cannot be made.
async fn unchanged_by_defrag(
    ctx: &Ctx<'_>,
    step: &DefragStep,
    before: Result<(i64, KvHash), String>,
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

/// Every voting member's KV hash at a revision all of them have applied, compared.
async fn cluster_hashes(ctx: &Ctx<'_>, obs: &Observation) -> Integrity {
    let voting: Vec<_> = obs.members.iter().filter(|m| !m.is_learner).collect();
    if let Some(silent) = voting.iter().find(|m| m.status.is_none()) {
        return Integrity::Unverifiable(format!("{} did not answer", silent.name));
    }
    let Some(revision) = voting
        .iter()
        .filter_map(|m| m.status.as_ref().map(|s| s.revision))
        .min()
    else {
        return Integrity::Unverifiable("no member answered".into());
    };
    let members: Vec<(String, String)> = voting
        .iter()
        .map(|m| (m.name.clone(), m.endpoint.clone()))
        .collect();
    compare_hashes(revision, &hash_all(ctx, revision, &members).await)
}

async fn hash_all(ctx: &Ctx<'_>, revision: i64, members: &[(String, String)]) -> Vec<MemberHash> {
    let results = join_all(members.iter().map(|(_, e)| ctx.etcd.hash_kv(e, revision))).await;
    members
        .iter()
        .zip(results)
        .map(|((name, _), r)| MemberHash {
            member: name.clone(),
            hash: r
                .map(|h| (h.hash, h.compact_revision))
                .map_err(|e| e.to_string()),
        })
        .collect()
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

/// The voting member, other than `member_id`, that is furthest ahead, to compare hashes with.
pub(super) fn peer_of(obs: &Observation, member_id: u64) -> Option<(u64, String)> {
    obs.members
        .iter()
        .filter(|m| m.id != member_id && !m.is_learner)
        .filter_map(|m| m.status.as_ref().map(|s| (m, s.revision)))
        .max_by_key(|(m, revision)| (*revision, m.id))
        .map(|(m, _)| (m.id, m.endpoint.clone()))
}

#[cfg(test)]
mod tests {
    use super::peer_of;
    use crate::decide::fixtures::cluster;

    #[test]
    fn the_peer_is_the_most_caught_up_other_member() {
        let mut obs = cluster(&[(1, 1); 3], 100);
        // m2 was frozen: its revision lags far behind (the case that once looked like corruption).
        obs.members[2].status.as_mut().unwrap().revision = 3;
        obs.members[1].status.as_mut().unwrap().revision = 900;
        assert_eq!(peer_of(&obs, 1).map(|p| p.0), Some(2));
        obs.members[1].status = None;
        assert_eq!(peer_of(&obs, 1).map(|p| p.0), Some(3));
        assert_eq!(peer_of(&cluster(&[(1, 1)], 100), 1), None);
    }
}
