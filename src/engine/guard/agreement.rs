//! Whether the members' data agrees, before an actor's first step and while it does not.
//!
//! Why a file of its own: a mismatch must outlive the process that saw it: it is a fact about the
//! cluster, not about one instance, so it is derived from the cluster. Every instance that
//! becomes the actor (after a restart, a handover, a takeover) first compares the members'
//! hashes at a common revision (`cluster_hashes`), and maintenance stays stopped while they
//! differ. The proof after each defragmentation is `verify.rs`.

use crate::decide::integrity::{Integrity, MemberHash, compare_hashes};
use crate::observe::Observation;

use crate::engine::rolling::record_integrity;
use crate::engine::{Ctx, Engine};

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
    pub(in crate::engine) async fn members_agree(
        &mut self,
        ctx: &Ctx<'_>,
        obs: &Observation,
        now: f64,
    ) -> bool {
        if self.guard.agreement_due(now) {
            let Some(outcome) = cluster_hashes(ctx, obs).await else {
                self.guard.consistency = Consistency::Agree; // alone: nothing to compare
                return true;
            };
            record_integrity(ctx, "cluster", &outcome);
            match outcome {
                Integrity::Verified(what) => {
                    if self.guard.disagrees() {
                        tracing::info!("the members agree again ({what}); maintenance resumes");
                    } else {
                        tracing::debug!("members agree: {what}");
                    }
                    self.guard.consistency = Consistency::Agree;
                    self.guard.set_blocked(ctx, "hash_mismatch", Vec::new());
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
                    if !self.guard.disagrees() {
                        self.guard.consistency = Consistency::Unproven { checked_at: now };
                    }
                }
            }
        }
        !self.guard.disagrees()
    }

    /// Why the members were last found to disagree (for a `Hold`).
    pub(in crate::engine) fn disagreement(&self) -> String {
        match &self.guard.consistency {
            Consistency::Disagree { why, .. } => why.clone(),
            _ => "the members' data differs".into(),
        }
    }

    /// Records that the members disagree: maintenance stops until a comparison shows otherwise.
    pub(in crate::engine) fn cluster_disagrees(&mut self, ctx: &Ctx<'_>, message: String) {
        self.guard.consistency = Consistency::Disagree {
            why: message.clone(),
            checked_at: self.clock.now(),
        };
        ctx.shared.event(
            crate::report::events::EventReason::IntegrityMismatch,
            "cluster",
            format!("{message}; maintenance stopped"),
        );
        self.guard.set_blocked(ctx, "hash_mismatch", vec![message]);
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
        let why = if silent.defragmenting {
            "is defragmenting (gRPC health NOT_SERVING)"
        } else {
            "did not answer"
        };
        return Some(Integrity::Unverifiable(format!("{} {why}", silent.name)));
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
pub(in crate::engine) async fn hash_all(
    ctx: &Ctx<'_>,
    revision: i64,
    members: &[(String, String)],
) -> Vec<MemberHash> {
    let mut hashes = Vec::with_capacity(members.len());
    for (name, endpoint) in members {
        let hash = ctx.etcd.hash_kv(endpoint, revision).await;
        hashes.push(MemberHash {
            member: name.clone(),
            hash: hash.map(|h| (h.hash, h.compact_revision)),
        });
    }
    hashes
}
