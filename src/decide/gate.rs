//! The health gate: may maintenance touch the cluster right now?
//!
//! Why: defragmenting a member while another is down loses quorum; touching a CORRUPT cluster
//! can destroy the evidence or the last good copy. NOSPACE is let through — it is cluster-wide
//! and is exactly what healing must fix (a gate that refused it would refuse the cure). Any
//! alarm we do not know stops everything: when unsure, do nothing and say why.

use crate::etcd::AlarmKind;
use crate::observe::Observation;

/// One reason the gate is closed.
#[derive(Debug, Clone, PartialEq)]
pub enum Blocker {
    CorruptAlarm {
        member: String,
    },
    UnknownAlarm {
        member: String,
    },
    /// A voting member did not answer Status or a linearizable read in time.
    Unhealthy {
        member: String,
        why: String,
    },
}

impl Blocker {
    /// The `reason` label of `etcd_upkeep_maintenance_blocked`.
    pub fn reason(&self) -> &'static str {
        match self {
            Blocker::CorruptAlarm { .. } => "corrupt_alarm",
            Blocker::UnknownAlarm { .. } => "unknown_alarm",
            Blocker::Unhealthy { .. } => "unhealthy",
        }
    }
}

impl std::fmt::Display for Blocker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Blocker::CorruptAlarm { member } => write!(
                f,
                "CORRUPT alarm on {member}: all maintenance stopped; inspect the member (etcdctl check \
                 hashkv / endpoint hashkv) and restore it from a healthy peer or a snapshot"
            ),
            Blocker::UnknownAlarm { member } => {
                write!(
                    f,
                    "unknown alarm on {member}: all maintenance stopped until it is understood"
                )
            }
            Blocker::Unhealthy { member, why } => {
                write!(f, "member {member} is not healthy: {why}")
            }
        }
    }
}

/// Alarms that stop all maintenance (everything except NOSPACE).
pub fn alarm_blockers(obs: &Observation) -> Vec<Blocker> {
    obs.alarms
        .iter()
        .filter_map(|a| {
            let member = obs.member_name(a.member_id);
            match a.kind {
                AlarmKind::NoSpace => None,
                AlarmKind::Corrupt => Some(Blocker::CorruptAlarm { member }),
                AlarmKind::Unknown => Some(Blocker::UnknownAlarm { member }),
            }
        })
        .collect()
}

/// The full gate: alarms, every voting member answered Status, and every voting member answered
/// a linearizable read (`probes`: member id → result of the read).
pub fn gate(obs: &Observation, probes: &[(u64, Result<(), String>)]) -> Vec<Blocker> {
    let mut blockers = alarm_blockers(obs);
    for member in obs.members.iter().filter(|m| !m.is_learner) {
        if member.status.is_none() {
            blockers.push(Blocker::Unhealthy {
                member: member.name.clone(),
                why: member.error.clone().unwrap_or_else(|| "no status".into()),
            });
            continue;
        }
        match probes.iter().find(|(id, _)| *id == member.id) {
            Some((_, Ok(()))) => {}
            Some((_, Err(why))) => blockers.push(Blocker::Unhealthy {
                member: member.name.clone(),
                why: format!("linearizable read failed: {why}"),
            }),
            None => blockers.push(Blocker::Unhealthy {
                member: member.name.clone(),
                why: "not probed".into(),
            }),
        }
    }
    blockers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::fixtures::*;

    fn all_ok(n: u64) -> Vec<(u64, Result<(), String>)> {
        (1..=n).map(|id| (id, Ok(()))).collect()
    }

    #[test]
    fn nospace_passes_the_gate() {
        let obs = with_alarm(cluster(&[(10, 5); 3], 100), 2, AlarmKind::NoSpace);
        assert!(gate(&obs, &all_ok(3)).is_empty());
    }

    #[test]
    fn corrupt_and_unknown_alarms_block() {
        let obs = with_alarm(cluster(&[(10, 5); 3], 100), 2, AlarmKind::Corrupt);
        let blockers = gate(&obs, &all_ok(3));
        assert_eq!(blockers.len(), 1);
        assert_eq!(blockers[0].reason(), "corrupt_alarm");
        assert!(blockers[0].to_string().contains("m1"));
        let obs = with_alarm(cluster(&[(10, 5); 3], 100), 1, AlarmKind::Unknown);
        assert_eq!(gate(&obs, &all_ok(3))[0].reason(), "unknown_alarm");
    }

    #[test]
    fn a_silent_or_unprobed_member_blocks_but_learners_do_not_count() {
        let mut obs = cluster(&[(10, 5); 3], 100);
        let mut probes = all_ok(3);
        probes[2].1 = Err("timeout".into());
        assert_eq!(gate(&obs, &probes)[0].reason(), "unhealthy");

        obs.members[1].status = None;
        obs.members[1].error = Some("connection refused".into());
        let blockers = gate(&obs, &all_ok(3));
        assert!(blockers[0].to_string().contains("connection refused"));

        let mut obs = cluster(&[(10, 5); 3], 100);
        obs.members[2].is_learner = true;
        assert!(gate(&obs, &all_ok(2)).is_empty());
    }
}
