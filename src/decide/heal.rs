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
use crate::observe::{MemberObservation, Observation};
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
    pub member_id: u64,
    pub member: String,
    pub in_use: u64,
    /// That member's own quota.
    pub quota: u64,
    /// The largest quota among the other members, when it is larger: a quota raise that has not
    /// reached this member yet.
    pub others_quota: Option<u64>,
    pub threshold: f64,
    /// A quota with 25 % headroom over the live data.
    pub suggested_quota: u64,
    /// How much live data must go to fit under the disarm line.
    pub to_delete: u64,
}

impl std::fmt::Display for LiveDataOverQuota {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(others) = self.others_quota {
            return write!(
                f,
                "live data {} exceeds {}'s quota of {} (the other members have {}): finish the \
                 quota raise on {} (--quota-backend-bytes={}), or delete about {} of objects; \
                 NOSPACE stays armed until then, since a disarm would be undone by the next write",
                format_bytes(self.in_use),
                self.member,
                format_bytes(self.quota),
                format_bytes(others),
                self.member,
                others,
                format_bytes(self.to_delete),
            );
        }
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
    let voting = match answering_quorum(obs) {
        Ok(voting) => voting,
        Err(wait) => return wait,
    };
    // Each member against its own quota: they differ for the whole length of a rolling raise,
    // and the member still on the old one is where NOSPACE comes back from.
    let line_of = |id: u64| line(obs, threshold, id);
    let over: Vec<&MemberObservation> = voting
        .iter()
        .copied()
        .filter(|m| m.status.as_ref().is_some_and(|s| s.db_size > line_of(m.id)))
        .collect();
    if over.is_empty() {
        // Below the line everywhere, yet alarmed, and nothing defragmented since the
        // compaction: defragment every member before disarming (see `behind`).
        if defragmented.is_empty() {
            return HealVerdict::Defragment {
                members: voting.iter().map(|m| m.id).collect(),
            };
        }
        let behind = behind(obs, &voting, defragmented);
        if !behind.is_empty() {
            return HealVerdict::Defragment { members: behind };
        }
        if let Some(wait) = a_learner_not_below_its_line(obs, threshold) {
            return wait;
        }
        return HealVerdict::Disarm {
            alarmed_members: alarmed_members(obs),
        };
    }
    if let Some(blocked) = live_data_over_quota(obs, &voting, &over, defragmented, threshold) {
        return blocked;
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

/// The size above which a member is over its line (`threshold` of its own quota).
fn line(obs: &Observation, threshold: f64, id: u64) -> u64 {
    (threshold * obs.quota_of(id) as f64) as u64
}

/// The voting members that answer, when they are a quorum; else what to wait for.
///
/// A member that is down cannot be verified, but it need not be: the members that answer are a
/// quorum, and compaction, defragmentation and disarm all go through them. Waiting for the lost
/// member would keep the cluster read-only until a person brings it back. Without a quorum of
/// answering members nothing is decided (nor could be written).
fn answering_quorum(obs: &Observation) -> Result<Vec<&MemberObservation>, HealVerdict> {
    let all_voting: Vec<_> = obs.members.iter().filter(|m| !m.is_learner).collect();
    let voting: Vec<_> = all_voting
        .iter()
        .copied()
        .filter(|m| m.in_quorum())
        .collect();
    if voting.len() < quorum(all_voting.len()) {
        let silent = unverified_members(obs);
        return Err(HealVerdict::Wait {
            why: format!(
                "only {} of {} voting members answered (a quorum is {}); {} cannot be verified",
                voting.len(),
                all_voting.len(),
                quorum(all_voting.len()),
                silent.join(", ")
            ),
        });
    }
    Ok(voting)
}

/// Members below the line, not defragmented here, that still have space to give back.
///
/// Why defragment below the line before disarming: sizes only shrink by defragmentation, so no
/// member over the line means the line is misjudged (a daemon not told etcd's
/// `--quota-backend-bytes`; before 3.6 etcd does not report it) or the space was freed already.
/// A disarm in the first case frees nothing, and the next write raises NOSPACE again. Every
/// member, not only those that look reclaimable: until its backend commits, a member reports its
/// pre-compaction `dbSizeInUse` (seen on 3.4), so "nothing to free" cannot be told from that
/// figure. In the second case the defrags are quick and free nothing.
///
/// And not on the first defragmented member alone: a disarm that rests on "below the line
/// everywhere" must rest on sizes that are the truth. A member not defragmented here is
/// defragmented too when it has space to give back — by its own figures, or by being larger
/// than a freshly defragmented member (whose file is the live data), since its own `dbSizeInUse`
/// may be stale. One already as small needs nothing: another instance defragmented it (a
/// handover mid-heal), and asking for it again would move leadership back and forth between two
/// actors that each remember only their own defragmentations.
fn behind(
    obs: &Observation,
    voting: &[&MemberObservation],
    defragmented: &HashSet<u64>,
) -> Vec<u64> {
    let truth = voting
        .iter()
        .filter(|m| defragmented.contains(&m.id))
        .filter_map(|m| m.status.as_ref().map(|s| s.db_size))
        .min();
    let worth = worth_a_defrag(obs);
    voting
        .iter()
        .filter(|m| !defragmented.contains(&m.id))
        .filter(|m| {
            reclaimable(m)
                || truth.is_some_and(|t| {
                    m.status
                        .as_ref()
                        .is_some_and(|s| s.db_size > t.saturating_add(worth))
                })
        })
        .map(|m| m.id)
        .collect()
}

/// A learner counts for no quorum, but its alarm blocks every write all the same: it is
/// disarmed only once its own size was checked below its own line.
fn a_learner_not_below_its_line(obs: &Observation, threshold: f64) -> Option<HealVerdict> {
    let (name, why) = alarmed_members(obs).into_iter().find_map(|id| {
        let learner = obs.member(id).filter(|m| m.is_learner)?;
        match &learner.status {
            None => Some((
                learner.name.clone(),
                "its size could not be checked".to_string(),
            )),
            Some(s) if s.db_size > line(obs, threshold, id) => Some((
                learner.name.clone(),
                format!("its db ({}) is over its line", format_bytes(s.db_size)),
            )),
            Some(_) => None,
        }
    })?;
    Some(HealVerdict::Wait {
        why: format!("the learner {name} raised NOSPACE and {why}: not disarming it"),
    })
}

/// A member over its line although freshly defragmented: its file holds only live data, so no
/// compaction or defragmentation can bring it under; the quota or the objects must change.
fn live_data_over_quota(
    obs: &Observation,
    voting: &[&MemberObservation],
    over: &[&MemberObservation],
    defragmented: &HashSet<u64>,
    threshold: f64,
) -> Option<HealVerdict> {
    let (member, in_use) = over
        .iter()
        .filter(|m| defragmented.contains(&m.id))
        .filter_map(|m| m.status.as_ref().map(|s| (m, s.db_size)))
        .max_by_key(|(_, in_use)| *in_use)?;
    let quota = obs.quota_of(member.id);
    let others_quota = voting
        .iter()
        .filter(|m| m.id != member.id)
        .map(|m| obs.quota_of(m.id))
        .max()
        .filter(|q| *q > quota);
    Some(HealVerdict::Blocked(LiveDataOverQuota {
        member_id: member.id,
        member: member.name.clone(),
        in_use,
        quota,
        others_quota,
        threshold,
        suggested_quota: suggest_quota(in_use, threshold),
        to_delete: in_use.saturating_sub(line(obs, threshold, member.id)),
    }))
}

/// The members NOSPACE is raised on, each once.
pub fn alarmed_members(obs: &Observation) -> Vec<u64> {
    let mut alarmed: Vec<u64> = obs
        .alarms
        .iter()
        .filter(|a| a.kind == AlarmKind::NoSpace)
        .map(|a| a.member_id)
        .collect();
    alarmed.sort_unstable();
    alarmed.dedup();
    alarmed
}

/// How much larger than another member a file must be for its defragmentation to be worth
/// stopping the member: 5 % of the quota, at least 1 MiB.
fn worth_a_defrag(obs: &Observation) -> u64 {
    (1u64 << 20).max(obs.quota.bytes / 20)
}

/// The smallest majority of `voting` members.
pub fn quorum(voting: usize) -> usize {
    voting / 2 + 1
}

/// Voting members out of the quorum (no Status, or no leader known), with why: a heal through
/// the quorum does not verify them; each is checked when it is back.
pub fn unverified_members(obs: &Observation) -> Vec<String> {
    obs.members
        .iter()
        .filter(|m| !m.is_learner)
        .filter_map(|m| m.out_of_quorum().map(|why| format!("{} ({why})", m.name)))
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
    let line = |id: u64| (threshold * obs.quota_of(id) as f64) as u64;
    let worth = worth_a_defrag(obs);
    let sizes: Vec<(u64, u64)> = obs
        .members
        .iter()
        .filter(|m| !m.is_learner && m.in_quorum())
        .filter_map(|m| m.status.as_ref().map(|s| (m.id, s.db_size)))
        .collect();
    sizes
        .iter()
        .filter(|(id, size)| *size > line(*id))
        .filter(|(id, size)| {
            let largest_other = sizes.iter().filter(|(o, _)| o != id).map(|(_, s)| *s).max();
            largest_other
                .is_some_and(|other| other <= line(*id) && size.saturating_sub(other) >= worth)
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
#[path = "heal_tests.rs"]
mod tests;
