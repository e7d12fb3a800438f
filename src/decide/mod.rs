//! Decide: pure functions from an [`crate::observe::Observation`] (plus the engine's memory) to
//! what should happen. No I/O here, so every rule is unit-tested without etcd. One file per
//! decision, each named for what it decides:
//!
//! - [`actor`]: is this instance the one that acts (one actor across all instances)?
//! - [`gate`]: is the cluster healthy enough to touch at all (alarms, member health)?
//! - [`compaction`]: which revision to compact to, and when.
//! - [`defrag_rule`]: does a member's defragmentation pay (the CEL rule)?
//! - [`plan`]: in which order to defragment (followers first, leader last), and to whom to hand
//!   leadership first.
//! - [`heal`]: during NOSPACE — defragment more, disarm, or stop because live data fills the quota.
//! - [`disk`]: is there room on disk for the copy a defragmentation writes?
//! - [`endpoints`]: which member's endpoint a mutation or a local read goes through.
//! - [`integrity`]: what a set of KV hashes proves (verified, unverifiable, mismatch).
//! - [`space`]: how much history to keep so the db stays under its space target, and when the
//!   file itself must shrink.
//! - [`revisions`]: when each revision was current (the clock the space controller compacts by).
//! - [`watch_history`]: is the history kept long enough for the apiserver's watch cache (the
//!   members' progress-notify interval), and which etcd flag to set when it is not.

pub mod actor;
pub mod compaction;
pub mod cool_down;
pub mod defrag_rule;
pub mod disk;
pub mod endpoints;
pub mod gate;
pub mod heal;
pub mod integrity;
pub mod plan;
pub mod revisions;
pub mod space;
pub mod takeover;
pub mod watch_history;

#[cfg(test)]
pub mod fixtures {
    //! Observations built by hand for the decision tests.
    use crate::etcd::{Alarm, AlarmKind, MemberStatus};
    use crate::observe::{MemberObservation, Observation, Quota, QuotaSource};

    pub const MIB: u64 = 1024 * 1024;

    /// The space controller's defaults: 0.7 of the quota, 30 minutes kept, a 1-minute floor.
    pub fn space_policy() -> crate::decide::space::SpacePolicy {
        crate::decide::space::SpacePolicy {
            target: 0.7,
            retention: 1800.0,
            floor: 60.0,
            minimum: 10.0,
        }
    }

    /// Members `1..=n`, member 1 the leader; sizes (db_size, in_use) per member.
    pub fn cluster(sizes: &[(u64, u64)], quota: u64) -> Observation {
        let members = sizes
            .iter()
            .enumerate()
            .map(|(i, &(size, in_use))| {
                let id = i as u64 + 1;
                MemberObservation {
                    id,
                    name: format!("m{i}"),
                    endpoint: format!("https://10.0.0.{id}:2379"),
                    is_learner: false,
                    status: Some(MemberStatus {
                        member_id: id,
                        version: "3.5.16".into(),
                        db_size: size,
                        db_size_in_use: in_use,
                        leader: 1,
                        raft_term: 7,
                        raft_index: 1000,
                        raft_applied_index: 1000,
                        is_learner: false,
                        errors: vec![],
                        db_size_quota: 0,
                        downgrade_target: None,
                        revision: 500,
                    }),
                    error: None,
                    defragmenting: false,
                }
            })
            .collect();
        Observation {
            taken_at: 0.0,
            seen_at: 0.0,
            members,
            alarms: vec![],
            quota: Quota {
                bytes: quota,
                source: QuotaSource::Flag,
            },
            leader: Some(1),
            raft_term: 7,
            local_member: Some(1),
            revision: 500,
            candidates: Some(vec![]),
            member_quotas: Default::default(),
            warnings: vec![],
        }
    }

    pub fn with_alarm(mut obs: Observation, member_id: u64, kind: AlarmKind) -> Observation {
        obs.alarms.push(Alarm { member_id, kind });
        obs
    }
}
