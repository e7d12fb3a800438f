//! Never none: a standby takes over a NOSPACE that nobody heals.
//!
//! Why: the actor is chosen among registered candidates, and registering needs a LeaseGrant
//! and a Put — both refused during NOSPACE. Instances that start during the outage (the first
//! install, or pods restarted because liveness failed while etcd refused writes) can never
//! register, and then only the instance beside the raft leader acts. When that one is missing
//! (a StatefulSet's ordered rollout holds it back) or cannot observe (a wrong CA), NOSPACE
//! stays for ever. MoveLeader is still accepted during NOSPACE (measured), so a standby that
//! sees the alarm persist with no progress for a bounded time moves leadership to its own
//! member; it is then the instance beside the leader, and the old rule holds again: one actor.
//!
//! - **No progress** means no leadership change, no member's file or bytes in use shrinking
//!   (a compaction or a defragmentation), and no member going silent or coming back (a member
//!   busy defragmenting may stop answering). A live actor making progress resets the clock on
//!   every step, so it is never displaced.
//! - **Ranked by member ID**: the standby beside the lowest-ID follower moves after one wait,
//!   the next after two, and so on; the first move is a leadership change that resets everyone
//!   else's clock, so two standbys do not both move. A blind first standby is passed over by the
//!   second one wait later.
//! - A wrong takeover costs time, never safety: the old actor's fence breaks on the new term and
//!   it stops after its current step; the new leader's instance settles before it stops a member,
//!   and the health gate closes while any member is still defragmenting.
//! - **Backing off**: every leadership change seen during the episode multiplies the wait by
//!   four. A NOSPACE that no actor can heal (live data fills the quota: the actor says so and
//!   waits for a person) must not move leadership round the members for ever; a takeover whose
//!   new actor died too is still followed by another, later.
//! - Only in `--act-when=leader` and only while nobody is registered: registered candidates keep
//!   their own rules (the first registered takes over a leader without one).

use crate::decide::actor::ActWhen;
use crate::decide::heal::quorum;
use crate::etcd::AlarmKind;
use crate::observe::Observation;

/// What the cluster looked like at the last observation, for telling progress from a stall.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    leader: Option<u64>,
    term: u64,
    /// (member, (db size, bytes in use) when it answered).
    members: Vec<(u64, Option<(u64, u64)>)>,
}

impl Sample {
    fn of(obs: &Observation) -> Sample {
        let mut members: Vec<(u64, Option<(u64, u64)>)> = obs
            .members
            .iter()
            .map(|m| {
                (
                    m.id,
                    m.status.as_ref().map(|s| (s.db_size, s.db_size_in_use)),
                )
            })
            .collect();
        members.sort_unstable();
        Sample {
            leader: obs.leader,
            term: obs.raft_term,
            members,
        }
    }

    /// Whether anything moved from `self` to `next` that a heal in progress would move.
    fn progressed_to(&self, next: &Sample) -> bool {
        if self.leader != next.leader || self.term != next.term {
            return true;
        }
        if self.members.len() != next.members.len() {
            return true;
        }
        self.members
            .iter()
            .zip(&next.members)
            .any(|((a_id, a), (b_id, b))| match (a, b) {
                _ if a_id != b_id => true,
                (Some((size, in_use)), Some((next_size, next_in_use))) => {
                    next_size < size || next_in_use < in_use
                }
                (None, None) => false,
                _ => true, // a member went silent or came back
            })
    }
}

/// How long NOSPACE has lasted without progress, as seen by this instance.
#[derive(Debug, Clone, Default)]
pub struct StallWatch {
    last: Option<Sample>,
    /// When the current stall began (monotonic seconds); None without NOSPACE.
    since: Option<f64>,
    /// Leadership changes seen since NOSPACE was raised.
    leader_changes: u32,
}

/// What the watch knows after an observation.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Stall {
    /// Seconds NOSPACE has lasted without progress (0 without NOSPACE).
    pub seconds: f64,
    /// Leadership changes seen during this NOSPACE episode.
    pub leader_changes: u32,
}

impl StallWatch {
    /// Feeds one observation.
    pub fn observe(&mut self, obs: &Observation, now: f64) -> Stall {
        let sample = Sample::of(obs);
        if !obs.has_alarm(AlarmKind::NoSpace) {
            self.since = None;
            self.leader_changes = 0;
        } else if self.since.is_none() {
            self.since = Some(now);
        } else if let Some(last) = &self.last
            && last.progressed_to(&sample)
        {
            if last.leader != sample.leader {
                self.leader_changes += 1;
            }
            self.since = Some(now);
        }
        self.last = Some(sample);
        Stall {
            seconds: self.since.map_or(0.0, |since| now - since),
            leader_changes: self.leader_changes,
        }
    }

    /// Leadership was moved by us: a stall starts over.
    pub fn reset(&mut self, now: f64) {
        if self.since.is_some() {
            self.since = Some(now);
        }
    }
}

/// A takeover to make: ask `leader` (at `leader_endpoint`) to hand leadership to `target`.
#[derive(Debug, Clone, PartialEq)]
pub struct Takeover {
    pub leader: u64,
    pub leader_endpoint: String,
    pub target: u64,
    /// The stall that justified it (seconds) and this standby's rank among the followers.
    pub stalled: f64,
    pub rank: usize,
}

/// The longest a standby waits, however often leadership changed.
const MAX_WAIT_SECONDS: f64 = 30.0 * 60.0;

/// Why a standby does not take over (now).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NoTakeover {
    #[error("only sidecars beside a member take over")]
    NotASidecar,
    #[error("no NOSPACE")]
    NoNospace,
    #[error("registered candidates choose the actor")]
    Registered,
    #[error("the candidates could not be read")]
    CandidatesUnread,
    #[error("the cluster has no leader")]
    NoLeader,
    #[error("no local member")]
    NoLocalMember,
    #[error("the local member leads: this instance is the actor")]
    LocalLeads,
    #[error("no quorum answers")]
    NoQuorum,
    #[error("the leader did not answer")]
    LeaderSilent,
    #[error("the local member is not a voting member that answers")]
    LocalNotVoting,
    /// Not yet: the stall has not lasted this standby's wait.
    #[error(
        "NOSPACE without progress for {stalled:.0}s; this standby (rank {rank}) takes over after {due:.0}s"
    )]
    NotYet { stalled: f64, rank: usize, due: f64 },
}

/// Whether this standby takes over now. `stall`: what the [`StallWatch`] saw; `wait`: how long
/// the first-ranked standby waits before any leadership change. Err says why not.
pub fn takeover(
    obs: &Observation,
    act_when: ActWhen,
    stall: Stall,
    wait: f64,
) -> Result<Takeover, NoTakeover> {
    let stalled = stall.seconds;
    if act_when != ActWhen::Leader {
        return Err(NoTakeover::NotASidecar);
    }
    if !obs.has_alarm(AlarmKind::NoSpace) {
        return Err(NoTakeover::NoNospace);
    }
    match obs.candidates.as_deref() {
        Some([]) => {}
        Some(_) => return Err(NoTakeover::Registered),
        None => return Err(NoTakeover::CandidatesUnread),
    }
    let leader = obs.leader.ok_or(NoTakeover::NoLeader)?;
    let local = obs.local_member.ok_or(NoTakeover::NoLocalMember)?;
    if local == leader {
        return Err(NoTakeover::LocalLeads);
    }
    let voting: Vec<_> = obs.members.iter().filter(|m| !m.is_learner).collect();
    let answering = voting.iter().filter(|m| m.in_quorum()).count();
    if answering < quorum(voting.len()) {
        return Err(NoTakeover::NoQuorum);
    }
    let leader_member = obs
        .member(leader)
        .filter(|m| m.in_quorum())
        .ok_or(NoTakeover::LeaderSilent)?;
    let mut followers: Vec<u64> = voting
        .iter()
        .filter(|m| m.id != leader && m.in_quorum())
        .map(|m| m.id)
        .collect();
    followers.sort_unstable();
    let rank = followers
        .iter()
        .position(|id| *id == local)
        .ok_or(NoTakeover::LocalNotVoting)?;
    let backoff = 4f64.powi(stall.leader_changes.min(8) as i32);
    let due = (wait * (rank + 1) as f64 * backoff).min(MAX_WAIT_SECONDS);
    if stalled < due {
        return Err(NoTakeover::NotYet { stalled, rank, due });
    }
    Ok(Takeover {
        leader,
        leader_endpoint: leader_member.endpoint.clone(),
        target: local,
        stalled,
        rank,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::fixtures::*;

    /// Three members in NOSPACE, m0 (id 1) leads, nobody registered; the local member is `local`.
    fn stalled_cluster(local: u64) -> Observation {
        let mut obs = with_alarm(
            cluster(&[(30 * MIB, 29 * MIB); 3], 32 * MIB),
            1,
            AlarmKind::NoSpace,
        );
        obs.local_member = Some(local);
        obs
    }

    fn stall(seconds: f64) -> Stall {
        Stall {
            seconds,
            leader_changes: 0,
        }
    }

    #[test]
    fn every_leadership_change_in_the_episode_quadruples_the_wait() {
        let obs = stalled_cluster(2);
        let after_one = Stall {
            seconds: 39.0,
            leader_changes: 1,
        };
        assert!(takeover(&obs, ActWhen::Leader, after_one, 10.0).is_err());
        let after_one = Stall {
            seconds: 40.0,
            ..after_one
        };
        assert!(takeover(&obs, ActWhen::Leader, after_one, 10.0).is_ok());
        // Never longer than the cap, so a takeover still comes after many changes.
        let many = Stall {
            seconds: MAX_WAIT_SECONDS,
            leader_changes: 30,
        };
        assert!(takeover(&obs, ActWhen::Leader, many, 10.0).is_ok());
        // The watch counts the changes while NOSPACE lasts and forgets them when it ends.
        let mut watch = StallWatch::default();
        watch.observe(&obs, 0.0);
        let mut moved = obs.clone();
        moved.leader = Some(2);
        assert_eq!(watch.observe(&moved, 1.0).leader_changes, 1);
        let mut healed = moved.clone();
        healed.alarms.clear();
        assert_eq!(watch.observe(&healed, 2.0).leader_changes, 0);
    }

    #[test]
    fn the_first_ranked_standby_moves_after_one_wait_the_next_after_two() {
        let obs = stalled_cluster(2);
        assert!(takeover(&obs, ActWhen::Leader, stall(9.0), 10.0).is_err());
        let t = takeover(&obs, ActWhen::Leader, stall(10.0), 10.0).unwrap();
        assert_eq!((t.leader, t.target, t.rank), (1, 2, 0));
        assert_eq!(t.leader_endpoint, "https://10.0.0.1:2379");
        let obs = stalled_cluster(3);
        assert!(takeover(&obs, ActWhen::Leader, stall(10.0), 10.0).is_err());
        assert_eq!(
            takeover(&obs, ActWhen::Leader, stall(20.0), 10.0)
                .unwrap()
                .rank,
            1
        );
    }

    #[test]
    fn never_beside_the_leader_never_with_registered_candidates_never_elected() {
        let obs = stalled_cluster(1);
        assert!(takeover(&obs, ActWhen::Leader, stall(99.0), 1.0).is_err());
        let mut obs = stalled_cluster(2);
        obs.candidates = Some(vec![crate::observe::Candidate {
            lease: 5,
            create_revision: 1,
            member: 3,
            instance: "pod".into(),
            quota: None,
            disk_free: None,
            watch_progress: None,
            defragmented: Default::default(),
        }]);
        assert!(takeover(&obs, ActWhen::Leader, stall(99.0), 1.0).is_err());
        obs.candidates = None;
        assert!(takeover(&obs, ActWhen::Leader, stall(99.0), 1.0).is_err());
        let obs = stalled_cluster(2);
        assert!(takeover(&obs, ActWhen::Elected, stall(99.0), 1.0).is_err());
        let mut healthy = stalled_cluster(2);
        healthy.alarms.clear();
        assert!(takeover(&healthy, ActWhen::Leader, stall(99.0), 1.0).is_err());
    }

    #[test]
    fn a_member_down_is_no_rank_and_a_lost_quorum_no_takeover() {
        let mut obs = stalled_cluster(3);
        obs.members[1].status = None; // m1 (id 2) is down: m2 (id 3) ranks first
        assert_eq!(
            takeover(&obs, ActWhen::Leader, stall(10.0), 10.0)
                .unwrap()
                .rank,
            0
        );
        obs.members[0].status = None; // the leader too: no quorum
        assert!(takeover(&obs, ActWhen::Leader, stall(99.0), 10.0).is_err());
    }

    #[test]
    fn progress_resets_the_stall_and_sameness_accumulates_it() {
        let mut watch = StallWatch::default();
        let obs = stalled_cluster(2);
        assert_eq!(watch.observe(&obs, 100.0).seconds, 0.0);
        assert_eq!(watch.observe(&obs, 105.0).seconds, 5.0);
        // Growth is no progress (a write that got through before the alarm).
        let mut grew = obs.clone();
        grew.members[0].status.as_mut().unwrap().db_size += MIB;
        assert_eq!(watch.observe(&grew, 107.0).seconds, 7.0);
        // A compaction shows as bytes in use shrinking: progress.
        let mut compacted = grew.clone();
        compacted.members[0].status.as_mut().unwrap().db_size_in_use = MIB;
        assert_eq!(watch.observe(&compacted, 110.0).seconds, 0.0);
        assert_eq!(watch.observe(&compacted, 118.0).seconds, 8.0);
        // A member going silent (busy defragmenting) and a new term: progress.
        let mut silent = compacted.clone();
        silent.members[2].status = None;
        assert_eq!(watch.observe(&silent, 120.0).seconds, 0.0);
        let mut moved = silent.clone();
        moved.raft_term += 1;
        assert_eq!(watch.observe(&moved, 125.0).seconds, 0.0);
        // The alarm gone: no stall at all; back: it starts from zero.
        let mut healed = moved.clone();
        healed.alarms.clear();
        assert_eq!(watch.observe(&healed, 130.0).seconds, 0.0);
        assert_eq!(watch.observe(&moved, 131.0).seconds, 0.0);
        assert_eq!(watch.observe(&moved, 140.0).seconds, 9.0);
        watch.reset(140.0);
        assert_eq!(watch.observe(&moved, 141.0).seconds, 1.0);
    }
}
