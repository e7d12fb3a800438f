//! The NOSPACE verdict: defragment more, disarm, wait, or stop because live data fills the quota.
//!
//! Why so careful: etcd's quota counts the physical db size, and the apply layer re-raises
//! NOSPACE on the next write if any member is still over quota (`quotaApplierV3`). Disarming too
//! early just flaps the alarm; so disarm only when *every* voting member's db size is at most
//! `threshold × quota` (etcd-defrag's rule).
//!
//! Live data is judged only after a member was defragmented since the emergency compaction:
//! etcd refreshes `dbSizeInUse` when its backend next commits, and during NOSPACE nothing
//! commits, so before the defrag a follower still reports its pre-compaction figure (measured:
//! 34 MiB "in use" on a follower 30 s after compacting away almost everything). A defragmented
//! member's size is the truth; if that is still over the line, live data fills the quota — say
//! so with the numbers and what to do.

use std::collections::HashSet;

use crate::etcd::AlarmKind;
use crate::observe::Observation;
use crate::units::format_bytes;

use super::plan::reclaimable;

#[derive(Debug, Clone, PartialEq)]
pub enum HealVerdict {
    /// No NOSPACE alarm.
    NoAlarm,
    /// Every voting member is below the line: disarm NOSPACE on these members.
    Disarm { alarmed_members: Vec<u64> },
    /// Space can be freed: defragment these members (reclaimable space), then look again.
    Defragment { members: Vec<u64> },
    /// Cannot decide yet (a member did not answer): wait, touch nothing.
    Wait { why: String },
    /// Live data fills the quota: disarming would re-fire at the next write.
    Blocked(LiveDataOverQuota),
}

/// The numbers behind a blocked heal.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveDataOverQuota {
    pub member: String,
    pub in_use: u64,
    pub quota: u64,
    pub threshold: f64,
    /// A quota with 25 % headroom over the live data.
    pub suggested_quota: u64,
    /// How much live data must go to fit under the disarm line.
    pub to_delete: u64,
}

impl std::fmt::Display for LiveDataOverQuota {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "live data fills the quota: {} holds {} in use, over {:.0}% of the {} quota ({}); \
             compaction and defragmentation cannot free live data, so NOSPACE stays armed. \
             Raise --quota-backend-bytes to at least {} ({} bytes) on etcd (and on etcd-upkeep), \
             or delete about {} of objects (see `etcd-upkeep analyze`)",
            self.member,
            format_bytes(self.in_use),
            self.threshold * 100.0,
            format_bytes(self.quota),
            format_bytes((self.threshold * self.quota as f64) as u64),
            format_bytes(self.suggested_quota),
            self.suggested_quota,
            format_bytes(self.to_delete),
        )
    }
}

/// Decides the next heal step from an observation made *after* the emergency compaction.
/// `defragmented` holds the members defragmented since that compaction.
pub fn heal_verdict(obs: &Observation, threshold: f64, defragmented: &HashSet<u64>) -> HealVerdict {
    if !obs.has_alarm(AlarmKind::NoSpace) {
        return HealVerdict::NoAlarm;
    }
    // A member that is down cannot be verified, but it need not be: the members that answer
    // are a quorum, and compaction, defragmentation and disarm all go through them. Waiting
    // for the lost member would keep the cluster read-only until a person brings it back.
    // Without a quorum of answering members nothing is decided (nor could be written).
    let all_voting: Vec<_> = obs.members.iter().filter(|m| !m.is_learner).collect();
    let voting: Vec<_> = all_voting
        .iter()
        .copied()
        .filter(|m| m.status.is_some())
        .collect();
    if voting.len() < quorum(all_voting.len()) {
        let silent = unverified_members(obs);
        return HealVerdict::Wait {
            why: format!(
                "only {} of {} voting members answered (a quorum is {}); {} cannot be verified",
                voting.len(),
                all_voting.len(),
                quorum(all_voting.len()),
                silent.join(", ")
            ),
        };
    }
    let line = (threshold * obs.quota.bytes as f64) as u64;
    let over: Vec<_> = voting
        .iter()
        .filter(|m| m.status.as_ref().is_some_and(|s| s.db_size > line))
        .collect();
    // Below the line everywhere, yet alarmed, and nothing defragmented since the compaction:
    // defragment every member before disarming. Why: sizes only shrink by defragmentation, so
    // no member over the line means the line is misjudged (a daemon not told etcd's
    // `--quota-backend-bytes`; before 3.6 etcd does not report it) or the space was freed
    // already. A disarm in the first case frees nothing, and the next write raises NOSPACE
    // again. Every member, not only those that look reclaimable: until its backend commits, a
    // member reports its pre-compaction `dbSizeInUse` (seen on 3.4), so "nothing to free"
    // cannot be told from that figure. In the second case the defrags are quick and free nothing.
    if over.is_empty() && defragmented.is_empty() {
        return HealVerdict::Defragment {
            members: voting.iter().map(|m| m.id).collect(),
        };
    }
    if over.is_empty() {
        let mut alarmed: Vec<u64> = obs
            .alarms
            .iter()
            .filter(|a| a.kind == AlarmKind::NoSpace)
            .map(|a| a.member_id)
            .collect();
        alarmed.sort_unstable();
        alarmed.dedup();
        return HealVerdict::Disarm {
            alarmed_members: alarmed,
        };
    }
    if let Some(full) = over
        .iter()
        .filter(|m| defragmented.contains(&m.id))
        // Freshly defragmented, the file holds only live data: its size is what is in use.
        .filter_map(|m| m.status.as_ref().map(|s| (m, s.db_size)))
        .max_by_key(|(_, in_use)| *in_use)
    {
        let (member, in_use) = full;
        return HealVerdict::Blocked(LiveDataOverQuota {
            member: member.name.clone(),
            in_use,
            quota: obs.quota.bytes,
            threshold,
            suggested_quota: suggest_quota(in_use, threshold),
            to_delete: in_use.saturating_sub(line),
        });
    }
    // Over the line and not yet defragmented, plus any other member with reclaimable space.
    let members: Vec<u64> = voting
        .iter()
        .filter(|m| !defragmented.contains(&m.id))
        .filter(|m| over.iter().any(|o| o.id == m.id) || reclaimable(m))
        .map(|m| m.id)
        .collect();
    HealVerdict::Defragment { members }
}

/// The smallest majority of `voting` members.
pub fn quorum(voting: usize) -> usize {
    voting / 2 + 1
}

/// Voting members that gave no Status, with why: a heal through the quorum does not verify
/// them (their size is unknown); each is checked when it answers again.
pub fn unverified_members(obs: &Observation) -> Vec<String> {
    obs.members
        .iter()
        .filter(|m| !m.is_learner && m.status.is_none())
        .map(|m| format!("{} ({})", m.name, m.error.as_deref().unwrap_or("no status")))
        .collect()
}

/// Members whose file is over the disarm line while every other member that answers is below
/// it by more than a defragmentation is worth: history the others have given up, e.g. a
/// member that was down during a heal and came back with its old, large file. Each raises
/// NOSPACE again at its next applied write, so it is defragmented before that (no alarm needed).
/// Its own `dbSizeInUse` cannot tell (it is refreshed only when its backend commits); the others'
/// sizes can. Stateless on purpose: whichever instance acts sees the same. When live data
/// really fills the quota, every member is over the line alike, and nothing is returned.
pub fn files_left_behind(obs: &Observation, threshold: f64) -> Vec<u64> {
    let line = (threshold * obs.quota.bytes as f64) as u64;
    let worth = (1u64 << 20).max(obs.quota.bytes / 20);
    let sizes: Vec<(u64, u64)> = obs
        .members
        .iter()
        .filter(|m| !m.is_learner)
        .filter_map(|m| m.status.as_ref().map(|s| (m.id, s.db_size)))
        .collect();
    sizes
        .iter()
        .filter(|(_, size)| *size > line)
        .filter(|(id, size)| {
            let others: Vec<u64> = sizes
                .iter()
                .filter(|(o, _)| o != id)
                .map(|(_, s)| *s)
                .collect();
            let largest_other = others.iter().copied().max();
            largest_other.is_some_and(|other| other <= line && size.saturating_sub(other) >= worth)
        })
        .map(|(id, _)| *id)
        .collect()
}

/// `--dry-run`: the cluster as the real heal would find it after compacting to the current
/// revision and defragmenting `done` — each of those members holding only the live data
/// (`live_bytes`, counted by a keyspace scan). The real heal's next decisions are then made by
/// the same functions on this projection.
pub fn project_defragmented(
    obs: &Observation,
    done: &HashSet<u64>,
    live_bytes: u64,
) -> Observation {
    let mut projected = obs.clone();
    for member in projected
        .members
        .iter_mut()
        .filter(|m| done.contains(&m.id))
    {
        if let Some(status) = member.status.as_mut() {
            status.db_size = live_bytes.min(status.db_size);
            status.db_size_in_use = status.db_size;
        }
    }
    projected
}

/// A quota giving 25 % headroom over the live data at `threshold` of it, rounded up to 64 MiB.
pub fn suggest_quota(in_use: u64, threshold: f64) -> u64 {
    const STEP: u64 = 64 << 20;
    let needed = (in_use as f64 * 1.25 / threshold).ceil() as u64;
    needed.div_ceil(STEP) * STEP
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::fixtures::*;

    fn none() -> HashSet<u64> {
        HashSet::new()
    }

    #[test]
    fn below_the_line_but_alarmed_frees_what_it_can_before_disarming() {
        // etcd enforces 32 MiB; the daemon assumes 2 GiB. Both members look far below the line.
        let obs = nospace(&[(32 * MIB, MIB), (32 * MIB, 32 * MIB)], 2 << 30);
        assert!(matches!(
            heal_verdict(&obs, 0.9, &none()),
            HealVerdict::Defragment { members } if members.len() == 2
        ));
        // Once they are defragmented: disarm.
        let done: HashSet<u64> = obs.members.iter().map(|m| m.id).collect();
        assert!(matches!(
            heal_verdict(&obs, 0.9, &done),
            HealVerdict::Disarm { .. }
        ));
    }

    fn nospace(sizes: &[(u64, u64)], quota: u64) -> Observation {
        with_alarm(cluster(sizes, quota), 2, AlarmKind::NoSpace)
    }

    #[test]
    fn no_alarm_no_heal() {
        assert_eq!(
            heal_verdict(&cluster(&[(1, 1)], 16 * MIB), 0.9, &none()),
            HealVerdict::NoAlarm
        );
    }

    #[test]
    fn disarm_only_when_every_member_is_below_the_line() {
        // Below the line everywhere: disarm — once every member was defragmented since the
        // compaction (the one at 14 MiB holds 13 MiB of free pages).
        let obs = nospace(&[(MIB, MIB), (2 * MIB, MIB), (14 * MIB, MIB)], 16 * MIB);
        assert_eq!(
            heal_verdict(&obs, 0.9, &none()),
            HealVerdict::Defragment {
                members: vec![1, 2, 3]
            }
        );
        let freed: HashSet<u64> = [1, 2, 3].into();
        assert_eq!(
            heal_verdict(&obs, 0.9, &freed),
            HealVerdict::Disarm {
                alarmed_members: vec![2]
            }
        );
        // One member at 15 MiB > 14.4 MiB: defragment it (and any other reclaimable one) first.
        let obs = nospace(
            &[(MIB, MIB), (2 * MIB, 3 * MIB / 2), (15 * MIB, MIB)],
            16 * MIB,
        );
        assert_eq!(
            heal_verdict(&obs, 0.9, &none()),
            HealVerdict::Defragment { members: vec![3] }
        );
    }

    #[test]
    fn stale_in_use_is_not_trusted_before_a_defrag() {
        // A follower reports its pre-compaction "in use" until it commits again: defragment it.
        let obs = nospace(&[(MIB, MIB), (36 * MIB, 34 * MIB)], 32 * MIB);
        assert_eq!(
            heal_verdict(&obs, 0.9, &none()),
            HealVerdict::Defragment { members: vec![2] }
        );
    }

    #[test]
    fn live_data_over_the_line_blocks_with_numbers() {
        let obs = nospace(&[(34 * MIB, 33 * MIB), (33 * MIB, 31 * MIB)], 32 * MIB);
        let HealVerdict::Blocked(blocked) = heal_verdict(&obs, 0.9, &HashSet::from([1, 2])) else {
            panic!()
        };
        assert_eq!(blocked.member, "m0");
        assert_eq!(blocked.in_use, 34 * MIB); // a defragmented file holds only live data
        assert!(blocked.suggested_quota >= 32 * MIB * 5 / 4);
        assert_eq!(blocked.suggested_quota % (64 << 20), 0);
        let text = blocked.to_string();
        assert!(text.contains("--quota-backend-bytes"), "{text}");
        assert!(text.contains("34.0 MiB in use"), "{text}");
    }

    #[test]
    fn the_dry_run_projection_leads_to_the_same_disarm_as_the_real_heal() {
        let obs = nospace(&[(34 * MIB, 33 * MIB), (33 * MIB, 31 * MIB)], 32 * MIB);
        let done = HashSet::from([1, 2]);
        let projected = project_defragmented(&obs, &done, MIB);
        assert_eq!(projected.members[0].status.as_ref().unwrap().db_size, MIB);
        assert_eq!(
            heal_verdict(&projected, 0.9, &done),
            HealVerdict::Disarm {
                alarmed_members: vec![2]
            }
        );
        // Live data really over the line: the projection blocks too, with the same numbers.
        let projected = project_defragmented(&obs, &done, 31 * MIB);
        assert!(matches!(
            heal_verdict(&projected, 0.9, &done),
            HealVerdict::Blocked(_)
        ));
    }

    #[test]
    fn a_file_left_behind_over_the_line_is_found_without_an_alarm() {
        // m2 came back with its 31 MiB file; the others hold 2 MiB after the heal.
        let obs = cluster(
            &[(2 * MIB, 2 * MIB), (2 * MIB, 2 * MIB), (31 * MIB, 30 * MIB)],
            32 * MIB,
        );
        assert_eq!(files_left_behind(&obs, 0.9), vec![3]);
        // Live data over the line everywhere: defragmenting would free nothing.
        let obs = cluster(&[(31 * MIB, 30 * MIB); 3], 32 * MIB);
        assert!(files_left_behind(&obs, 0.9).is_empty());
        // Alone, there is nothing to compare with.
        assert!(files_left_behind(&cluster(&[(31 * MIB, 30 * MIB)], 32 * MIB), 0.9).is_empty());
        // Below the line: nothing yet.
        let obs = cluster(&[(2 * MIB, 2 * MIB), (20 * MIB, 20 * MIB)], 32 * MIB);
        assert!(files_left_behind(&obs, 0.9).is_empty());
    }

    #[test]
    fn without_a_quorum_of_answering_members_wait() {
        // Two members, one silent: one of two is no quorum.
        let mut obs = nospace(&[(MIB, MIB), (MIB, MIB)], 16 * MIB);
        obs.members[1].status = None;
        let HealVerdict::Wait { why } = heal_verdict(&obs, 0.9, &none()) else {
            panic!()
        };
        assert!(why.contains("only 1 of 2"), "{why}");
        // Three members, two silent.
        let mut obs = nospace(&[(MIB, MIB); 3], 16 * MIB);
        obs.members[0].status = None;
        obs.members[2].status = None;
        assert!(matches!(
            heal_verdict(&obs, 0.9, &none()),
            HealVerdict::Wait { .. }
        ));
    }

    #[test]
    fn a_member_down_heals_through_the_quorum() {
        // m2 (id 3) is down with its old, large file; m0 and m1 answer: a quorum of three.
        let mut obs = nospace(
            &[(15 * MIB, MIB), (15 * MIB, MIB), (15 * MIB, MIB)],
            16 * MIB,
        );
        obs.members[2].status = None;
        obs.members[2].error = Some("connection refused".into());
        assert_eq!(
            heal_verdict(&obs, 0.9, &none()),
            HealVerdict::Defragment {
                members: vec![1, 2]
            }
        );
        // The two that answer are defragmented and below the line: disarm, though m2 was not
        // verified (it is named for the log and /status).
        let mut healed = obs.clone();
        for m in healed.members.iter_mut().take(2) {
            let status = m.status.as_mut().unwrap();
            status.db_size = MIB;
        }
        assert_eq!(
            heal_verdict(&healed, 0.9, &HashSet::from([1, 2])),
            HealVerdict::Disarm {
                alarmed_members: vec![2]
            }
        );
        assert_eq!(
            unverified_members(&healed),
            vec!["m2 (connection refused)".to_string()]
        );
        // Learners are not voting members: they neither count for the quorum nor block it.
        let mut obs = nospace(&[(MIB, MIB), (MIB, MIB), (MIB, MIB)], 16 * MIB);
        obs.members[2].is_learner = true;
        obs.members[2].status = None;
        assert!(unverified_members(&obs).is_empty());
        assert!(matches!(
            heal_verdict(&obs, 0.9, &none()),
            HealVerdict::Defragment { .. }
        ));
    }
}
