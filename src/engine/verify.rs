//! The integrity proof: after each defragmentation, and whenever an actor starts to act.
//!
//! Why both: a defragmentation rewrites a member's whole file, so each one is proven — the
//! member's KV hash at its current revision equals a peer's (alone: its hash at its pre-defrag
//! revision is unchanged). And a mismatch must outlive the process that saw it: it is a fact about the
//! cluster, not about one instance, so it is derived from the cluster — every instance that
//! becomes the actor (after a restart, a handover, a takeover) first compares the members'
//! hashes at a common revision, and maintenance stays stopped while they differ.
//!
//! Each outcome is explicit (`decide::integrity::Integrity`): verified (with what was compared),
//! unverifiable (why), mismatch — counted in `etcd_upkeep_integrity_checks_total{outcome}`.

use std::time::{Duration, Instant};

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
            let Some(outcome) = cluster_hashes(ctx, obs).await else {
                self.consistency = Consistency::Agree; // alone: nothing to compare
                return true;
            };
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
            checked_at: self.clock.now(),
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
        if self.caught_up(ctx, step).await {
            Ok(())
        } else {
            Err(format!(
                "{} did not catch up with the leader within 60s",
                step.name
            ))
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
            return Unverifiable(why);
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
        before: Result<(i64, KvHash), String>,
        alone: bool,
    },
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
async fn cluster_hashes(ctx: &Ctx<'_>, obs: &Observation) -> Option<Integrity> {
    let voting: Vec<_> = obs.members.iter().filter(|m| !m.is_learner).collect();
    if voting.len() < 2 {
        return None; // one member: nothing can disagree, nothing is compared
    }
    // Never the leader while it leads: its HashKV stops its apply for the whole scan (seconds
    // on a GiB db), and with it every lease renewal in the cluster, kube-apiserver's included.
    // The followers are compared with each other; the leader's data is what they applied.
    let followers: Vec<_> = voting.iter().filter(|m| Some(m.id) != obs.leader).collect();
    if let Some(silent) = followers.iter().find(|m| !m.in_quorum()) {
        return Some(Integrity::Unverifiable(format!(
            "{} did not answer",
            silent.name
        )));
    }
    if followers.len() < 2 {
        return Some(Integrity::Unverifiable(
            "one follower: the leader is not hashed while it leads (a HashKV stops its apply, and every lease renewal with it)".into(),
        ));
    }
    let revision = followers
        .iter()
        .filter_map(|m| m.status.as_ref().map(|s| s.revision))
        .min()?;
    let members: Vec<(String, String)> = followers
        .iter()
        .map(|m| (m.name.clone(), m.endpoint.clone()))
        .collect();
    Some(
        match compare_hashes(revision, &hash_all(ctx, revision, &members).await) {
            Integrity::Verified(what) => Integrity::Verified(format!(
                "the followers: {what} (the leader is not hashed while it leads)"
            )),
            other => other,
        },
    )
}

/// One member at a time, never together. Why: etcd's HashKV reads the whole key bucket under the
/// backend's shared read-transaction lock, and the backend's periodic commit needs that lock
/// exclusively while holding the batch-transaction lock that every apply takes — so a member
/// applies nothing until its hash is done (0.2 s on a 0.9 GiB db in page cache, ~22 s on a
/// 2.9 GiB one in `bench.sh bigdb`), and its clients' writes wait. Hashed together, every member stalls at once: no
/// write is accepted anywhere (`scripts/bench.sh hashkv`). Hashed in turn, the others keep
/// serving. The revision is fixed, so hashes taken one after another compare exactly as hashes
/// taken together would.
async fn hash_all(ctx: &Ctx<'_>, revision: i64, members: &[(String, String)]) -> Vec<MemberHash> {
    let mut hashes = Vec::with_capacity(members.len());
    for (name, endpoint) in members {
        let hash = ctx.etcd.hash_kv(endpoint, revision).await;
        hashes.push(MemberHash {
            member: name.clone(),
            hash: hash
                .map(|h| (h.hash, h.compact_revision))
                .map_err(|e| e.to_string()),
        });
    }
    hashes
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
        // Never the leader (member 1 here): a follower is compared with the other follower,
        // and with no other follower, with itself from before.
        let obs = cluster(&[(1, 1); 3], 100);
        assert_eq!(peer_of(&obs, 2).map(|p| p.0), Some(3));
        assert_eq!(peer_of(&cluster(&[(1, 1); 2], 100), 2), None);
    }
}
