//! The `Plan`: which members to defragment, in which order, and who takes leadership first.
//!
//! Why this order: defragmentation stops the world on its member. A follower's defrag stalls only
//! the clients pinned to it; the leader's stalls writes and lease renewals cluster-wide (a ~40 s
//! control-plane outage in etcd-backup-restore#1061). So: never learners (they reject it on 3.5),
//! followers first, the leader last — after handing leadership to a healthy, caught-up follower
//! that is already defragmented, so the new leader is not itself about to be stopped.

use std::collections::HashSet;

use crate::decide::defrag_rule::{DefragRule, RuleInput};
use crate::observe::{MemberObservation, Observation};

/// One member to defragment.
#[derive(Debug, Clone, PartialEq)]
pub struct DefragStep {
    pub member_id: u64,
    pub name: String,
    pub endpoint: String,
    pub is_leader: bool,
    pub db_size: u64,
    pub db_size_in_use: u64,
}

/// Why a plan exists: shown in logs and /status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanCause {
    /// The defrag rule matched (inside the schedule window).
    Rule,
    /// NOSPACE healing: every member with reclaimable space, rule and window ignored.
    Heal,
    /// The space controller: a file near the quota with most of it free.
    Space,
}

impl PlanCause {
    pub fn as_str(self) -> &'static str {
        match self {
            PlanCause::Rule => "rule",
            PlanCause::Heal => "heal",
            PlanCause::Space => "space",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub cause: PlanCause,
    /// Followers first, the leader last.
    pub steps: Vec<DefragStep>,
}

/// A defragmentation that frees less than this is not worth stopping a member for, in healing.
pub fn reclaimable(member: &MemberObservation) -> bool {
    match (&member.status, member.db_size_free()) {
        (Some(status), Some(free)) => free >= (1 << 20).max(status.db_size / 50),
        _ => false,
    }
}

/// Orders the given members: voting members that answered, followers first (largest first, so
/// the most space comes back soonest), the leader last.
pub fn order(obs: &Observation, cause: PlanCause, members: &[u64]) -> Plan {
    let mut steps: Vec<DefragStep> = obs
        .members
        .iter()
        .filter(|m| members.contains(&m.id) && !m.is_learner)
        .filter_map(|m| {
            let status = m.status.as_ref()?;
            Some(DefragStep {
                member_id: m.id,
                name: m.name.clone(),
                endpoint: m.endpoint.clone(),
                is_leader: obs.leader == Some(m.id),
                db_size: status.db_size,
                db_size_in_use: status.db_size_in_use,
            })
        })
        .collect();
    steps.sort_by_key(|s| (s.is_leader, std::cmp::Reverse(s.db_size), s.member_id));
    Plan { cause, steps }
}

/// Members whose rule matches, outside their cool-down. Returns the matches and, for the log,
/// why the others were skipped.
pub fn rule_matches(
    obs: &Observation,
    rule: &DefragRule,
    cooling_down: &HashSet<u64>,
) -> (Vec<u64>, Vec<String>) {
    let mut matched = Vec::new();
    let mut notes = Vec::new();
    for m in obs.members.iter().filter(|m| !m.is_learner) {
        let Some(status) = &m.status else { continue };
        let input = RuleInput {
            db_size: status.db_size,
            db_size_in_use: status.db_size_in_use,
            db_quota: obs.quota.bytes,
        };
        match rule.evaluate(&input) {
            // Whatever the rule says, a member with nothing to give back is left alone: a rule
            // like `dbQuotaUsage > 0.8` stays true as long as live data is high. (The cool-down,
            // shared by every instance, keeps a new actor from repeating a pass that just ran.)
            Ok(true) if !reclaimable(m) => notes.push(format!(
                "{}: rule matches but only {} is reclaimable; skipped",
                m.name,
                crate::units::format_bytes(m.db_size_free().unwrap_or(0))
            )),
            Ok(true) if cooling_down.contains(&m.id) => notes.push(format!(
                "{}: rule matches but the member is in its cool-down",
                m.name
            )),
            Ok(true) => matched.push(m.id),
            Ok(false) => {}
            Err(e) => notes.push(format!("{}: {e}", m.name)),
        }
    }
    (matched, notes)
}

/// The follower to hand leadership to before the leader is defragmented: voting, answered,
/// caught up with the leader (applied index within `max_lag`), and not about to be defragmented
/// (`pending`). Prefers one defragmented in this pass (any of them: freshly defragmented, their
/// sizes are their data, alike), else the smallest db; the member ID breaks ties.
pub fn leader_transfer_target(
    obs: &Observation,
    pending: &HashSet<u64>,
    defragmented: &HashSet<u64>,
    max_lag: u64,
) -> Option<u64> {
    let leader = obs.member(obs.leader?)?;
    let leader_applied = leader.status.as_ref()?.raft_applied_index;
    obs.members
        .iter()
        .filter(|m| Some(m.id) != obs.leader && !m.is_learner && !pending.contains(&m.id))
        .filter_map(|m| m.status.as_ref().map(|s| (m.id, s)))
        .filter(|(_, s)| s.raft_applied_index + max_lag >= leader_applied)
        .min_by_key(|(id, s)| {
            let done = defragmented.contains(id);
            (!done, if done { 0 } else { s.db_size }, *id)
        })
        .map(|(id, _)| id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::fixtures::*;

    #[test]
    fn followers_first_largest_first_leader_last_no_learners() {
        let mut obs = cluster(
            &[(50 * MIB, 1), (10 * MIB, 1), (30 * MIB, 1), (90 * MIB, 1)],
            100 * MIB,
        );
        obs.members[3].is_learner = true;
        let plan = order(&obs, PlanCause::Heal, &[1, 2, 3, 4]);
        let names: Vec<&str> = plan.steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["m2", "m1", "m0"]);
        assert!(plan.steps.last().unwrap().is_leader);
    }

    #[test]
    fn members_without_status_are_left_out() {
        let mut obs = cluster(&[(5, 1), (5, 1)], 100);
        obs.members[1].status = None;
        assert_eq!(order(&obs, PlanCause::Rule, &[1, 2]).steps.len(), 1);
    }

    #[test]
    fn rule_matches_skip_members_with_nothing_to_reclaim() {
        // 90 % of the quota but all of it live data: the rule is true, the defrag would free nothing.
        let obs = cluster(
            &[(900 * MIB, 899 * MIB), (900 * MIB, 700 * MIB)],
            1000 * MIB,
        );
        let rule = DefragRule::parse("dbQuotaUsage > 0.8").unwrap();
        let (matched, notes) = rule_matches(&obs, &rule, &HashSet::new());
        assert_eq!(matched, vec![2]);
        assert!(notes[0].contains("reclaimable"), "{notes:?}");
    }

    #[test]
    fn rule_matches_respect_cool_down() {
        let obs = cluster(
            &[
                (500 * MIB, 100 * MIB),
                (500 * MIB, 100 * MIB),
                (10 * MIB, 9 * MIB),
            ],
            2048 * MIB,
        );
        let rule = DefragRule::parse(crate::decide::defrag_rule::DEFAULT_RULE).unwrap();
        let (matched, notes) = rule_matches(&obs, &rule, &HashSet::from([2]));
        assert_eq!(matched, vec![1]);
        assert!(notes[0].contains("cool-down"));
    }

    #[test]
    fn leadership_goes_to_a_caught_up_defragmented_follower() {
        let mut obs = cluster(&[(50, 1), (10, 1), (30, 1)], 100);
        // m1 (id 2) is smallest but lags far behind.
        obs.members[1].status.as_mut().unwrap().raft_applied_index = 10;
        assert_eq!(
            leader_transfer_target(&obs, &HashSet::new(), &HashSet::new(), 100),
            Some(3)
        );
        // A follower still pending defragmentation is not chosen.
        assert_eq!(
            leader_transfer_target(&obs, &HashSet::from([3]), &HashSet::new(), 100),
            None
        );
        // A defragmented follower wins over a smaller one.
        obs.members[1].status.as_mut().unwrap().raft_applied_index = 1000;
        assert_eq!(
            leader_transfer_target(&obs, &HashSet::new(), &HashSet::from([3]), 100),
            Some(3)
        );
        assert_eq!(
            leader_transfer_target(&obs, &HashSet::new(), &HashSet::new(), 100),
            Some(2)
        );
    }

    #[test]
    fn reclaimable_needs_a_meaningful_amount() {
        let obs = cluster(&[(17 * MIB, MIB / 2), (2 * MIB, 2 * MIB - 1000)], 16 * MIB);
        assert!(reclaimable(&obs.members[0]));
        assert!(!reclaimable(&obs.members[1]));
    }
}
