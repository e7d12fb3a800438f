//! One actor across all instances, never two and never none: which etcd-upkeep may mutate the
//! cluster right now.
//!
//! Why an election in etcd itself: two instances defragmenting two members at once stall the
//! whole cluster (measured: 11.5–13.8 s write outage), and no instance may wait for a person
//! because another one is gone. Every `run` instance registers a lease-bound candidate key
//! while etcd is healthy (`act::candidacy`); its lease keeps it listed exactly as long as the
//! instance is alive — also during NOSPACE, when etcd refuses new keys but keeps leases alive
//! and lets dead ones expire. Every observation reads the list, so every instance makes the
//! same choice from the same linearizable read:
//!
//! - `--act-when=leader` (one sidecar per member, embedded etcd): the candidate beside the raft
//!   leader acts — the leader is defragmented last after a handover anyway, and raft elects one
//!   leader per term. When the leader has no live candidate beside it (its sidecar crashed, is
//!   not rolled out yet, or its node is cordoned), the first registered candidate acts instead.
//! - `--act-when=elected` (identical instances, deployed etcd behind one service): the first
//!   registered candidate acts.
//! - `--act-when=always`: the only instance (the one-shot `heal`, a single vCluster pod).
//!
//! An instance that could not register (it started during NOSPACE) never displaces a registered
//! one. When nobody is registered at all, the old rule stands: beside the leader in `leader`
//! mode (still one per term); in `elected` mode each unregistered instance acts, and only the
//! health gate keeps their defragmentations apart — the one case with more than one actor,
//! limited to instances that all started into an outage (documented in the README).
//!
//! Fencing: every mutating step re-checks the choice on a fresh observation (same basis, same
//! candidate; beside the leader also the same term). A newly chosen actor waits a settle period
//! before it stops a member (defragmentation, healing), so a step the previous actor had in
//! flight has finished or shows up in the health gate (a defragmenting member fails
//! linearizable reads). Compaction does not wait: it stops no member, is safe to repeat, and is
//! fenced like every step — so a handover never pauses prevention.

use crate::observe::{Candidate, Observation};

/// Which instance may act (`--act-when`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActWhen {
    /// The instance beside the raft leader; the first registered when the leader has none.
    Leader,
    /// The first registered of identical instances.
    Elected,
    /// Always (the only instance).
    Always,
}

/// Why an instance acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// Its member is the raft leader (in this term).
    BesideLeader,
    /// It is the first registered candidate (the leader has no live candidate, or `elected`).
    FirstRegistered,
    /// It is the only instance (`always`), or nobody could register.
    Alone,
}

/// What an instance remembers about its own role.
#[derive(Debug, Clone, Default)]
pub struct ActorMemory {
    /// (what made it the actor, when it first saw that).
    since: Option<((Basis, u64), f64)>,
}

/// The grant an actor holds: every mutating step must see the same again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fence {
    pub leader: u64,
    pub term: u64,
    pub basis: Basis,
    /// This instance's lease when it acts as a registered candidate.
    pub lease: Option<i64>,
}

/// An instance that acts, and how far.
#[derive(Debug, Clone, PartialEq)]
pub struct Actor {
    pub fence: Fence,
    /// Why it may not yet stop a member (defragment, heal), and for how long; None once
    /// settled. Compaction may run meanwhile.
    pub settling: Option<Settling>,
}

/// A new actor's wait before it stops a member.
#[derive(Debug, Clone, PartialEq)]
pub struct Settling {
    /// For people: since when and for how long.
    pub why: String,
    /// Seconds until it has settled: a NOSPACE that comes meanwhile is healed when the wait
    /// ends, not a poll later.
    pub left: f64,
}

/// Why this instance does not act now (for /status and the log).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StandBy {
    #[error("the cluster has no leader")]
    NoLeader,
    #[error("standing by: {actor} beside the raft leader {leader} acts")]
    BesideLeader { actor: String, leader: String },
    #[error(
        "standing by: the raft leader {leader} has no live etcd-upkeep beside it, so the first registered, {actor}, acts"
    )]
    FirstRegistered { leader: String, actor: String },
    /// Nobody registered, and the local member did not answer.
    #[error("the member behind the first endpoint did not answer")]
    LocalSilent,
    /// Nobody registered: the instance beside the leader acts.
    #[error(
        "standing by: the local member {local} is not the raft leader ({leader} is; its instance acts)"
    )]
    NotBesideLeader { local: String, leader: String },
    #[error("standing by: {actor} was registered first and acts")]
    Elected { actor: String },
    #[error("the actor candidates could not be read; not acting")]
    CandidatesUnread,
}

/// Why an actor stops before its next mutating step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}; stopping and leaving the rest to the actor")]
pub struct FenceBroken(pub FenceBreak);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FenceBreak {
    #[error("the reason this instance acts changed")]
    BasisChanged,
    #[error(transparent)]
    StandsBy(#[from] StandBy),
    #[error("leadership changed (term {from} → {to})")]
    LeadershipChanged { from: u64, to: u64 },
}

/// Who acts in `obs`: Ok(basis) when this instance (registered as `me`), Err(why not).
fn choose(obs: &Observation, act_when: ActWhen, me: Option<i64>) -> Result<Basis, StandBy> {
    let leader = obs.leader.ok_or(StandBy::NoLeader)?;
    if act_when == ActWhen::Always {
        return Ok(Basis::Alone);
    }
    let name = |c: &Candidate| format!("{} (lease {:x})", c.instance, c.lease);
    let registered = obs.candidates.as_deref().unwrap_or(&[]);
    let first = registered.first();
    if act_when == ActWhen::Leader {
        // Candidates are sorted by registration: the first beside the leader wins a tie.
        if let Some(beside) = registered.iter().find(|c| c.member == leader) {
            return if Some(beside.lease) == me {
                Ok(Basis::BesideLeader)
            } else {
                Err(StandBy::BesideLeader {
                    actor: name(beside),
                    leader: obs.member_name(leader),
                })
            };
        }
        if let Some(first) = first {
            return if Some(first.lease) == me {
                Ok(Basis::FirstRegistered)
            } else {
                Err(StandBy::FirstRegistered {
                    leader: obs.member_name(leader),
                    actor: name(first),
                })
            };
        }
        // Nobody registered (all started during NOSPACE, or the list is unreadable).
        let local = obs.local_member.ok_or(StandBy::LocalSilent)?;
        return if local == leader {
            Ok(Basis::BesideLeader)
        } else {
            Err(StandBy::NotBesideLeader {
                local: obs.member_name(local),
                leader: obs.member_name(leader),
            })
        };
    }
    // Elected.
    match first {
        Some(first) if Some(first.lease) == me => Ok(Basis::FirstRegistered),
        Some(first) => Err(StandBy::Elected { actor: name(first) }),
        None if obs.candidates.is_some() => Ok(Basis::Alone),
        None => Err(StandBy::CandidatesUnread),
    }
}

/// Whether this instance acts now. `Err` says why not (for /status and the log).
pub fn actor_verdict(
    obs: &Observation,
    act_when: ActWhen,
    me: Option<i64>,
    memory: &mut ActorMemory,
    now: f64,
    settle_seconds: f64,
) -> Result<Actor, StandBy> {
    let basis = match choose(obs, act_when, me) {
        Ok(basis) => basis,
        Err(why) => {
            memory.since = None;
            return Err(why);
        }
    };
    let fence = Fence {
        leader: obs.leader.unwrap_or(0),
        term: obs.raft_term,
        basis,
        lease: me.filter(|_| basis == Basis::FirstRegistered || basis == Basis::BesideLeader),
    };
    if act_when == ActWhen::Always {
        return Ok(Actor {
            fence,
            settling: None,
        });
    }
    // The grant changes with the term beside the leader, with the basis otherwise.
    let grant = (
        basis,
        if basis == Basis::BesideLeader {
            obs.raft_term
        } else {
            0
        },
    );
    let since = match memory.since {
        Some((g, since)) if g == grant => since,
        _ => {
            memory.since = Some((grant, now));
            now
        }
    };
    let settling = (now - since < settle_seconds).then(|| Settling {
        left: settle_seconds - (now - since),
        why: format!(
            "{} {:.0}s ago; settling for {:.0}s before defragmenting or healing (compaction goes on)",
            match basis {
                Basis::BesideLeader =>
                    format!("the local member became leader in term {}", obs.raft_term),
                Basis::FirstRegistered => "this instance became the first registered actor".into(),
                Basis::Alone => "this instance acts alone (no candidate registered)".into(),
            },
            now - since,
            settle_seconds
        ),
    });
    Ok(Actor { fence, settling })
}

/// Re-check before a mutating step: this instance is still chosen on the same basis, and beside
/// the leader, the same member still leads in the same term.
pub fn fence_holds(fence: Fence, act_when: ActWhen, obs: &Observation) -> Result<(), FenceBroken> {
    if act_when == ActWhen::Always {
        return Ok(());
    }
    match choose(obs, act_when, fence.lease) {
        Ok(basis) if basis == fence.basis => {}
        Ok(_) => return Err(FenceBroken(FenceBreak::BasisChanged)),
        Err(why) => return Err(FenceBroken(why.into())),
    }
    if fence.basis == Basis::BesideLeader
        && (obs.leader != Some(fence.leader) || obs.raft_term != fence.term)
    {
        return Err(FenceBroken(FenceBreak::LeadershipChanged {
            from: fence.term,
            to: obs.raft_term,
        }));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::fixtures::*;

    fn candidate(lease: i64, member: u64, order: i64) -> Candidate {
        Candidate {
            lease,
            create_revision: order,
            member,
            instance: format!("pod-{lease}"),
            quota: None,
            disk_free: None,
            watch_progress: None,
            defragmented: Default::default(),
        }
    }

    /// Members 1..=3, member 1 leads; candidates (lease, member).
    fn with_candidates(list: &[(i64, u64)]) -> Observation {
        let mut obs = cluster(&[(1, 1); 3], 100);
        obs.candidates = Some(
            list.iter()
                .enumerate()
                .map(|(i, &(lease, member))| candidate(lease, member, 10 + i as i64))
                .collect(),
        );
        obs
    }

    fn acts(obs: &Observation, act_when: ActWhen, me: Option<i64>) -> Result<Basis, StandBy> {
        choose(obs, act_when, me)
    }

    #[test]
    fn beside_the_leader_wins_then_the_first_registered() {
        let obs = with_candidates(&[(20, 2), (10, 1), (30, 3)]);
        assert_eq!(
            acts(&obs, ActWhen::Leader, Some(10)),
            Ok(Basis::BesideLeader)
        );
        for other in [20, 30] {
            let why = acts(&obs, ActWhen::Leader, Some(other)).unwrap_err();
            assert!(matches!(why, StandBy::BesideLeader { .. }), "{why:?}");
            assert!(why.to_string().contains("beside the raft leader"), "{why}");
        }
        // The leader's sidecar is gone (its lease expired): the first registered takes over.
        let obs = with_candidates(&[(20, 2), (30, 3)]);
        assert_eq!(
            acts(&obs, ActWhen::Leader, Some(20)),
            Ok(Basis::FirstRegistered)
        );
        let why = acts(&obs, ActWhen::Leader, Some(30)).unwrap_err();
        assert!(matches!(why, StandBy::FirstRegistered { .. }), "{why:?}");
        assert!(
            why.to_string().contains("no live etcd-upkeep beside it"),
            "{why}"
        );
    }

    #[test]
    fn identical_instances_elect_the_first_registered_only() {
        // Deployed etcd: no local member (0), same endpoints everywhere.
        let obs = with_candidates(&[(7, 0), (5, 0), (9, 0)]);
        let actors: Vec<i64> = [7, 5, 9]
            .into_iter()
            .filter(|me| acts(&obs, ActWhen::Elected, Some(*me)).is_ok())
            .collect();
        assert_eq!(actors, vec![7], "exactly one: the first registered");
        // An instance that could not register never displaces a registered one.
        assert!(acts(&obs, ActWhen::Elected, None).is_err());
        assert!(acts(&obs, ActWhen::Leader, None).is_err());
    }

    #[test]
    fn nobody_registered_falls_back_to_one_per_term_beside_the_leader() {
        let mut obs = with_candidates(&[]);
        assert_eq!(acts(&obs, ActWhen::Leader, None), Ok(Basis::BesideLeader));
        obs.local_member = Some(2);
        let why = acts(&obs, ActWhen::Leader, None).unwrap_err();
        assert!(matches!(why, StandBy::NotBesideLeader { .. }), "{why:?}");
        assert!(why.to_string().contains("not the raft leader"), "{why}");
        obs.candidates = None; // unreadable
        assert_eq!(
            acts(&obs, ActWhen::Elected, None),
            Err(StandBy::CandidatesUnread)
        );
        assert_eq!(acts(&obs, ActWhen::Always, None), Ok(Basis::Alone));
    }

    #[test]
    fn a_new_actor_compacts_at_once_but_settles_before_stopping_a_member() {
        let mut obs = with_candidates(&[(10, 1), (20, 2)]);
        let mut memory = ActorMemory::default();
        let settling = |memory: &mut ActorMemory, obs: &Observation, now: f64| {
            actor_verdict(obs, ActWhen::Leader, Some(10), memory, now, 10.0)
                .unwrap()
                .settling
                .map(|s| s.why)
        };
        assert!(
            settling(&mut memory, &obs, 100.0)
                .unwrap()
                .contains("compaction goes on")
        );
        assert!(settling(&mut memory, &obs, 105.0).is_some());
        let halfway =
            actor_verdict(&obs, ActWhen::Leader, Some(10), &mut memory, 106.5, 10.0).unwrap();
        assert_eq!(halfway.settling.unwrap().left, 3.5, "when to look again");
        let actor =
            actor_verdict(&obs, ActWhen::Leader, Some(10), &mut memory, 110.0, 10.0).unwrap();
        assert_eq!(actor.fence.term, 7);
        assert_eq!(actor.fence.basis, Basis::BesideLeader);
        assert_eq!(actor.settling, None);
        // A new term restarts the settle period.
        obs.raft_term = 8;
        assert!(settling(&mut memory, &obs, 111.0).is_some());
    }

    #[test]
    fn the_fence_breaks_when_the_choice_or_the_term_changes() {
        let obs = with_candidates(&[(10, 1), (20, 2)]);
        let mut memory = ActorMemory::default();
        let fence = actor_verdict(&obs, ActWhen::Leader, Some(10), &mut memory, 0.0, 0.0)
            .unwrap()
            .fence;
        assert!(fence_holds(fence, ActWhen::Leader, &obs).is_ok());
        let mut newer = obs.clone();
        newer.raft_term = 8;
        assert!(fence_holds(fence, ActWhen::Leader, &newer).is_err());
        let mut moved = obs.clone();
        moved.leader = Some(2); // now the candidate beside m1 (lease 20) is chosen
        assert!(fence_holds(fence, ActWhen::Leader, &moved).is_err());
        assert!(fence_holds(fence, ActWhen::Always, &moved).is_ok());

        // A takeover actor (first registered) keeps acting while leadership moves between
        // members without a live candidate, and stops once the leader's own sidecar is back.
        let obs = with_candidates(&[(20, 2), (30, 3)]);
        let fence = actor_verdict(&obs, ActWhen::Leader, Some(20), &mut memory, 0.0, 0.0)
            .unwrap()
            .fence;
        assert_eq!(fence.basis, Basis::FirstRegistered);
        let mut moved = obs.clone();
        moved.raft_term = 9;
        assert!(fence_holds(fence, ActWhen::Leader, &moved).is_ok());
        let back = with_candidates(&[(20, 2), (30, 3), (40, 1)]);
        assert!(fence_holds(fence, ActWhen::Leader, &back).is_err());
    }
}
